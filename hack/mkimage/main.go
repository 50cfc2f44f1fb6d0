// Command mkimage builds a single-layer OCI image holding static binaries with
// go-containerregistry, reproducibly (same files, same digest). It writes an image archive
// that `ctr images import` reads (the local cluster's way in, without a registry) and, with
// -push, pushes the image to its registry. It prints the image's reference by digest on
// standard error (standard output stays free for the scripts that call it).
//
//	go run ./hack/mkimage -name ghcr.io/sdfleet/manager:dev -o manager.tar \
//	    -entrypoint /manager -user 65532:65532 bin/manager=/manager
//	go run ./hack/mkimage -name 127.0.0.1:5000/sdfleet/manager:dev -push -insecure bin/manager=/manager
package main

import (
	"archive/tar"
	"bytes"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

func main() {
	imageName := flag.String("name", "", "image reference, e.g. ghcr.io/sdfleet/manager:dev (required)")
	out := flag.String("o", "", "image archive to write, for `ctr images import`")
	push := flag.Bool("push", false, "push the image to the registry -name names")
	insecure := flag.Bool("insecure", false, "reach the registry over plain HTTP (a local registry)")
	entrypoint := flag.String("entrypoint", "", "entrypoint path inside the image (default: the first file)")
	user := flag.String("user", "", "user the image runs as, e.g. 65532:65532 (default root)")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: mkimage -name REF [-o FILE.tar] [-push] [flags] HOSTFILE=/IMAGE/PATH...\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if err := run(*imageName, *out, *entrypoint, *user, *push, *insecure, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
}

type file struct{ host, image string }

func run(imageName, out, entrypoint, user string, push, insecure bool, args []string) error {
	if imageName == "" || (out == "" && !push) {
		return fmt.Errorf("-name and at least one of -o or -push are required")
	}
	if len(args) == 0 {
		return fmt.Errorf("no files: give at least one HOSTFILE=/IMAGE/PATH")
	}
	var files []file
	for _, a := range args {
		host, image, ok := strings.Cut(a, "=")
		if !ok || !path.IsAbs(image) {
			return fmt.Errorf("argument %q: expected HOSTFILE=/ABSOLUTE/IMAGE/PATH", a)
		}
		files = append(files, file{host, path.Clean(image)})
	}
	if entrypoint == "" {
		entrypoint = files[0].image
	}
	layer, err := buildLayer(files)
	if err != nil {
		return err
	}
	img, err := buildImage(entrypoint, user, layer)
	if err != nil {
		return err
	}
	return output(img, imageName, out, push, insecure)
}

// buildLayer is a tar of the files, a world-writable /tmp and nothing else, with fixed
// timestamps so that the same binaries give the same image digest.
func buildLayer(files []file) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	epoch := time.Unix(0, 0)
	dirs := map[string]bool{}
	addDir := func(d string, mode int64) error {
		if d == "/" || d == "." || dirs[d] {
			return nil
		}
		dirs[d] = true
		return tw.WriteHeader(&tar.Header{Name: strings.TrimPrefix(d, "/") + "/", Typeflag: tar.TypeDir, Mode: mode, ModTime: epoch})
	}
	if err := addDir("/tmp", 0o1777); err != nil {
		return nil, err
	}
	for _, f := range files {
		data, err := os.ReadFile(f.host)
		if err != nil {
			return nil, err
		}
		for d, parts := "", strings.Split(path.Dir(f.image), "/"); len(parts) > 0; parts = parts[1:] {
			if parts[0] == "" {
				continue
			}
			d += "/" + parts[0]
			if err := addDir(d, 0o755); err != nil {
				return nil, err
			}
		}
		hdr := &tar.Header{Name: strings.TrimPrefix(f.image, "/"), Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(data)), ModTime: epoch}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if _, err := tw.Write(data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// buildImage is the image of one layer: an OCI manifest and config with no creation time, so
// that the same files give the same digest.
func buildImage(entrypoint, user string, layer []byte) (v1.Image, error) {
	// Uncompressed: the binaries barely compress and gzip would only cost time.
	l := static.NewLayer(layer, types.OCIUncompressedLayer)
	base := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	base, err := mutate.ConfigFile(base, &v1.ConfigFile{
		Architecture: "amd64", OS: "linux",
		Config: v1.Config{Entrypoint: []string{entrypoint}, Env: []string{"PATH=/"}, User: user},
	})
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return mutate.AppendLayers(base, l)
}

// output writes the image as an archive (`ctr images import` reads it) and, when push is set,
// to its registry; it prints the reference by digest on standard error.
func output(img v1.Image, imageName, out string, push, insecure bool) error {
	opts := []name.Option{name.StrictValidation}
	if insecure {
		opts = append(opts, name.Insecure)
	}
	ref, err := name.ParseReference(imageName, opts...)
	if err != nil {
		return fmt.Errorf("-name %q: %w", imageName, err)
	}
	d, err := img.Digest()
	if err != nil {
		return err
	}
	if out != "" {
		// The name as given: containerd looks images up by the spelling the kubelet uses
		// (docker.io/library/pause, not go-containerregistry's index.docker.io).
		if err := writeArchive(out, imageName, img); err != nil {
			return fmt.Errorf("write %s: %w", out, err)
		}
	}
	if push {
		if err := remote.Write(ref, img, remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
			return fmt.Errorf("push %s: %w", ref, err)
		}
	}
	fmt.Fprintf(os.Stderr, "%s@%s\n", ref.Context().Name(), d)
	return nil
}

// writeLayout writes img as an OCI image layout in dir, named for `ctr images import`.
func writeLayout(dir, ref string, img v1.Image) error {
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	return p.AppendImage(img, layout.WithAnnotations(map[string]string{
		"io.containerd.image.name": ref, "org.opencontainers.image.ref.name": ref,
	}))
}

// writeArchive writes img's OCI image layout as a tar with fixed timestamps and order, so that
// the archive, like the digest, is the same for the same files.
func writeArchive(out, ref string, img v1.Image) error {
	dir, err := os.MkdirTemp("", "mkimage")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := writeLayout(dir, ref, img); err != nil {
		return err
	}
	var names []string
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			names = append(names, p)
		}
		return err
	})
	if err != nil {
		return err
	}
	sort.Strings(names)
	tmp := out + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(f)
	for _, p := range names {
		data, err := os.ReadFile(p)
		if err == nil {
			rel, _ := filepath.Rel(dir, p)
			err = tw.WriteHeader(&tar.Header{Name: filepath.ToSlash(rel), Mode: 0o644, Size: int64(len(data)),
				ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg})
			if err == nil {
				_, err = tw.Write(data)
			}
		}
		if err != nil {
			f.Close()
			return err
		}
	}
	if err := tw.Close(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, out)
}
