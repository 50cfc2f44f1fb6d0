package imagestream

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"time"
)

// Commands and flags of the reader pod's sdgen.
var (
	// HoldCommand is the reader pod's main process; FlagHoldFor bounds how long it lives, so a
	// reader the plugin could not delete ends by itself.
	HoldCommand = []string{"sdgen", "hold"}
	// ExportCommand is run through exec, followed by FlagRoot, the mount point, and the files.
	ExportCommand = []string{"sdgen", "export"}
)

const (
	FlagHoldFor = "--for"
	FlagRoot    = "--root"
	// MaxFileBytes bounds one file of the stream: a 2048x2048 PNG is far smaller, and a file
	// larger than this is not an image of a job.
	MaxFileBytes = 256 << 20
	// MaxFilesPerExport is how many files one export names, so that the exec request's URL,
	// which carries the command line, stays short.
	MaxFilesPerExport = 64
)

// CheckRelative says whether p is a clean path inside the root: relative, no "." or ".."
// segments, no empty segments.
func CheckRelative(p string) error {
	switch {
	case p == "":
		return errors.New("empty path")
	case strings.HasPrefix(p, "/"):
		return fmt.Errorf("%q: want a path relative to the root, not an absolute one", p)
	case path.Clean(p) != p || p == "." || p == ".." || strings.HasPrefix(p, "../"):
		return fmt.Errorf("%q: want a clean path inside the root (no '.', '..' or empty segments)", p)
	}
	return nil
}

// Write writes the files, relative to root, to w as a tar stream, in the order given. Files
// are opened through os.Root, so neither ".." nor a symbolic link can reach outside root. It
// stops at the first file that is missing, not a regular file or too large.
func Write(w io.Writer, root string, files []string) error {
	r, err := os.OpenRoot(root)
	if err != nil {
		return fmt.Errorf("open %s: %w", root, err)
	}
	defer func() { _ = r.Close() }()
	tw := tar.NewWriter(w)
	for _, name := range files {
		if err := CheckRelative(name); err != nil {
			return err
		}
		if err := writeOne(tw, r, name); err != nil {
			return err
		}
	}
	return tw.Close()
}

func writeOne(tw *tar.Writer, r *os.Root, name string) error {
	f, err := r.Open(name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%s: no such file in the output volume", name)
		}
		return fmt.Errorf("%s: %w", name, err)
	}
	defer func() { _ = f.Close() }()
	info, err := f.Stat()
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if !info.Mode().IsRegular() {
		return fmt.Errorf("%s: not a regular file (%s)", name, info.Mode().Type())
	}
	if info.Size() > MaxFileBytes {
		return fmt.Errorf("%s: %d bytes, more than the %d an image may have", name, info.Size(), MaxFileBytes)
	}
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: name, Size: info.Size(), Mode: 0o644,
		ModTime: info.ModTime().UTC().Truncate(time.Second), Format: tar.FormatPAX}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	// A file that changes size while it is read would break the stream's framing: copy
	// exactly the size announced and fail if the file ends early.
	n, err := io.CopyN(tw, f, info.Size())
	if err != nil {
		return fmt.Errorf("%s: read %d of %d bytes: %w", name, n, info.Size(), err)
	}
	return nil
}

// Read calls each for every file of the tar stream in r, with its path and contents. The
// contents must be read before the next file; each returns an error to stop. Only regular
// files with clean relative names and at most MaxFileBytes are accepted.
func Read(r io.Reader, each func(name string, contents io.Reader) error) error {
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read the export stream: %w", err)
		}
		if hdr.Typeflag != tar.TypeReg {
			return fmt.Errorf("export stream: %q is not a regular file", hdr.Name)
		}
		if err := CheckRelative(hdr.Name); err != nil {
			return fmt.Errorf("export stream: %w", err)
		}
		if hdr.Size > MaxFileBytes {
			return fmt.Errorf("export stream: %s has %d bytes, more than the %d an image may have", hdr.Name, hdr.Size, MaxFileBytes)
		}
		if err := each(hdr.Name, tr); err != nil {
			return err
		}
	}
}
