package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sdfleet/sdfleet/controllers/podcontract"
	"github.com/sdfleet/sdfleet/internal/imagestream"
)

func TestExport(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "ns", "job"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "ns", "job", "0.png"), []byte("png bytes"), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if code := run([]string{"export", "--root", root, "ns/job/0.png"}, &out, &errOut); code != 0 {
		t.Fatalf("export: exit %d, stderr %q", code, errOut.String())
	}
	var names []string
	if err := imagestream.Read(&out, func(name string, r io.Reader) error {
		data, err := io.ReadAll(r)
		names = append(names, name+"="+string(data))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if strings.Join(names, ",") != "ns/job/0.png=png bytes" {
		t.Errorf("stream held %v", names)
	}

	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"export", "ns/job/0.png"}, podcontract.ExitUsage, "--root is required"},
		{[]string{"export", "--root", root}, podcontract.ExitUsage, "name at least one file"},
		{[]string{"export", "--root", root, "ns/job/1.png"}, 1, "ns/job/1.png: no such file in the output volume"},
		{[]string{"export", "--root", root, "../x"}, 1, "clean path inside the root"},
		{[]string{"hold", "--for", "0s"}, podcontract.ExitUsage, "want a positive duration"},
		{[]string{"hold", "extra"}, podcontract.ExitUsage, "unexpected arguments"},
	} {
		out.Reset()
		errOut.Reset()
		if code := run(c.args, &out, &errOut); code != c.code || !strings.Contains(errOut.String(), c.want) {
			t.Errorf("sdgen %q: exit %d, stderr %q; want exit %d and %q", c.args, code, errOut.String(), c.code, c.want)
		}
	}
}

func TestHoldEnds(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"hold", "--for", "10ms"}, &out, &errOut); code != 0 {
		t.Fatalf("hold: exit %d, stderr %q", code, errOut.String())
	}
}
