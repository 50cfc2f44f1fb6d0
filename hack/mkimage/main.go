// Command mkimage writes a single-layer OCI image archive holding static binaries, importable
// with `ctr images import`. The local cluster uses it because it has no registry and no Docker
// engine to build images with.
//
//	go run ./hack/mkimage -name docker.io/sdfleet/manager:dev -o manager.tar \
//	    -entrypoint /manager -user 65532:65532 bin/manager=/manager
package main

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path"
	"strings"
	"time"
)

func main() {
	name := flag.String("name", "", "image reference, e.g. docker.io/sdfleet/manager:dev (required)")
	out := flag.String("o", "", "OCI archive to write (required)")
	entrypoint := flag.String("entrypoint", "", "entrypoint path inside the image (default: the first file)")
	user := flag.String("user", "", "user the image runs as, e.g. 65532:65532 (default root)")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: mkimage -name REF -o FILE.tar [flags] HOSTFILE=/IMAGE/PATH...\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if err := run(*name, *out, *entrypoint, *user, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
}

type file struct{ host, image string }

func run(name, out, entrypoint, user string, args []string) error {
	if name == "" || out == "" {
		return fmt.Errorf("-name and -o are required")
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
	return writeArchive(out, name, entrypoint, user, layer)
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

func digest(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

func writeArchive(out, name, entrypoint, user string, layer []byte) error {
	config := map[string]any{
		"architecture": "amd64",
		"os":           "linux",
		"config":       map[string]any{"Entrypoint": []string{entrypoint}, "Env": []string{"PATH=/"}, "User": user},
		"rootfs":       map[string]any{"type": "layers", "diff_ids": []string{digest(layer)}},
	}
	cfg, err := json.Marshal(config)
	if err != nil {
		return err
	}
	manifest, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest(cfg), "size": len(cfg)},
		"layers":        []any{map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest(layer), "size": len(layer)}},
	})
	if err != nil {
		return err
	}
	index, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.index.v1+json",
		"manifests": []any{map[string]any{
			"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest(manifest), "size": len(manifest),
			"annotations": map[string]string{"io.containerd.image.name": name, "org.opencontainers.image.ref.name": name},
		}},
	})
	if err != nil {
		return err
	}
	tmp := out + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(f)
	epoch := time.Unix(0, 0)
	entries := []struct {
		name string
		data []byte
	}{
		{"oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)},
		{"index.json", index},
		{"blobs/sha256/" + strings.TrimPrefix(digest(layer), "sha256:"), layer},
		{"blobs/sha256/" + strings.TrimPrefix(digest(cfg), "sha256:"), cfg},
		{"blobs/sha256/" + strings.TrimPrefix(digest(manifest), "sha256:"), manifest},
	}
	for _, e := range entries {
		if err := tw.WriteHeader(&tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.data)), ModTime: epoch, Typeflag: tar.TypeReg}); err != nil {
			f.Close()
			return err
		}
		if _, err := tw.Write(e.data); err != nil {
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
