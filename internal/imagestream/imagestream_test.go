package imagestream

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// volume is an output volume with two images of job fox in namespace studio, a folder, and a
// symbolic link pointing out of it.
func volume(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	dir := filepath.Join(root, "studio", "fox")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string]string{"0.png": "first image", "1.png": strings.Repeat("x", 70000)} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	outside := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(outside, []byte("not an image"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, "2.png")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("0.png", filepath.Join(dir, "3.png")); err != nil {
		t.Fatal(err)
	}
	return root
}

func TestWriteThenRead(t *testing.T) {
	root := volume(t)
	var stream bytes.Buffer
	files := []string{"studio/fox/1.png", "studio/fox/0.png", "studio/fox/3.png"}
	if err := Write(&stream, root, files); err != nil {
		t.Fatalf("Write: %v", err)
	}
	var got []string
	contents := map[string]string{}
	err := Read(&stream, func(name string, r io.Reader) error {
		data, err := io.ReadAll(r)
		got = append(got, name)
		contents[name] = string(data)
		return err
	})
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	if strings.Join(got, " ") != strings.Join(files, " ") {
		t.Errorf("files %v, want %v in the order asked", got, files)
	}
	if contents["studio/fox/0.png"] != "first image" || len(contents["studio/fox/1.png"]) != 70000 {
		t.Errorf("contents differ: %d and %d bytes", len(contents["studio/fox/0.png"]), len(contents["studio/fox/1.png"]))
	}
	if contents["studio/fox/3.png"] != "first image" {
		t.Errorf("a link inside the volume should be followed, got %q", contents["studio/fox/3.png"])
	}
}

func TestWriteRefuses(t *testing.T) {
	root := volume(t)
	for _, tc := range []struct {
		name, file, want string
	}{
		{"absolute", "/etc/passwd", "not an absolute one"},
		{"dot-dot", "studio/../../etc/passwd", "clean path inside the root"},
		{"leading dot-dot", "../secret", "clean path inside the root"},
		{"empty", "", "empty path"},
		{"missing", "studio/fox/9.png", "studio/fox/9.png: no such file in the output volume"},
		{"folder", "studio/fox", "studio/fox: not a regular file"},
		{"link out of the volume", "studio/fox/2.png", "studio/fox/2.png"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stream bytes.Buffer
			err := Write(&stream, root, []string{"studio/fox/0.png", tc.file})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Write(%q) = %v, want an error containing %q", tc.file, err, tc.want)
			}
			// The file before the refused one was written whole.
			n := 0
			_ = Read(&stream, func(name string, r io.Reader) error {
				n++
				_, err := io.Copy(io.Discard, r)
				return err
			})
			if n != 1 {
				t.Errorf("%d files before the refused one, want 1", n)
			}
		})
	}
}

func TestReadRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		hdr  tar.Header
		want string
	}{
		{"absolute name", tar.Header{Typeflag: tar.TypeReg, Name: "/etc/passwd", Size: 1}, "not an absolute one"},
		{"escaping name", tar.Header{Typeflag: tar.TypeReg, Name: "a/../../b", Size: 1}, "clean path"},
		{"link", tar.Header{Typeflag: tar.TypeSymlink, Name: "a.png", Linkname: "/etc/passwd"}, "not a regular file"},
		{"too large", tar.Header{Typeflag: tar.TypeReg, Name: "a.png", Size: MaxFileBytes + 1}, "more than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			tw := tar.NewWriter(&b)
			if err := tw.WriteHeader(&tc.hdr); err != nil {
				t.Fatal(err)
			}
			if tc.hdr.Size > 0 && tc.hdr.Size < 10 {
				_, _ = tw.Write(bytes.Repeat([]byte("x"), int(tc.hdr.Size)))
			}
			_ = tw.Flush()
			called := false
			err := Read(&b, func(string, io.Reader) error { called = true; return nil })
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Read = %v, want an error containing %q", err, tc.want)
			}
			if called {
				t.Error("the refused file was handed on")
			}
		})
	}
}
