package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/layout"
)

// build builds the image of the files with mkimage's code and returns its digest and archive.
func build(t *testing.T, dir, user string, files ...string) (string, []byte) {
	t.Helper()
	var fs []file
	for _, f := range files {
		fs = append(fs, file{host: filepath.Join(dir, f), image: "/" + f})
	}
	layer, err := buildLayer(fs)
	if err != nil {
		t.Fatal(err)
	}
	img, err := buildImage("/"+files[0], user, layer)
	if err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "image.tar")
	if err := output(img, "ghcr.io/sdfleet/manager:dev", out, false, false); err != nil {
		t.Fatal(err)
	}
	archive, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	// The layout the archive holds has that very image.
	lay := t.TempDir()
	if err := writeLayout(lay, "ghcr.io/sdfleet/manager:dev", img); err != nil {
		t.Fatal(err)
	}
	p, err := layout.FromPath(lay)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Image(d); err != nil {
		t.Fatalf("image %s not in the layout: %v", d, err)
	}
	index, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	m, err := index.IndexManifest()
	if err != nil || len(m.Manifests) != 1 || m.Manifests[0].Annotations["io.containerd.image.name"] != "ghcr.io/sdfleet/manager:dev" {
		t.Fatalf("layout index %+v (%v): want one image named ghcr.io/sdfleet/manager:dev for containerd", m, err)
	}
	return d.String(), archive
}

func TestImagesAreReproducible(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mtime time.Time) {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	write("manager", "binary v1", time.Now())
	first, firstArchive := build(t, dir, "65532:65532", "manager")

	// The same bytes written again later: same digest, same archive.
	write("manager", "binary v1", time.Now().Add(time.Hour))
	again, againArchive := build(t, dir, "65532:65532", "manager")
	if again != first || !bytes.Equal(againArchive, firstArchive) {
		t.Errorf("rebuilding the same files gave %s (archive equal: %v), first %s", again, bytes.Equal(againArchive, firstArchive), first)
	}

	for name, change := range map[string]func() (string, []byte){
		"other content": func() (string, []byte) {
			write("manager", "binary v2", time.Now())
			defer write("manager", "binary v1", time.Now())
			return build(t, dir, "65532:65532", "manager")
		},
		"other user": func() (string, []byte) { return build(t, dir, "0:0", "manager") },
	} {
		if d, _ := change(); d == first {
			t.Errorf("%s: same digest %s as the original image", name, d)
		}
	}
}

func TestRunRefusesBadArguments(t *testing.T) {
	tests := []struct {
		name, ref, out string
		args           []string
		want           string
	}{
		{"no name", "", "x.tar", []string{"a=/a"}, "-name"},
		{"no output", "ghcr.io/sdfleet/x:dev", "", []string{"a=/a"}, "-o or -push"},
		{"no files", "ghcr.io/sdfleet/x:dev", "x.tar", nil, "no files"},
		{"relative image path", "ghcr.io/sdfleet/x:dev", "x.tar", []string{"a=a"}, `"a=a"`},
		{"bad reference", "ghcr.io/Sdfleet/x:dev", filepath.Join(t.TempDir(), "x.tar"), []string{"main_test.go=/a"}, "-name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := run(tt.ref, tt.out, "", "", false, false, tt.args)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("run = %v, want an error naming %q", err, tt.want)
			}
		})
	}
}
