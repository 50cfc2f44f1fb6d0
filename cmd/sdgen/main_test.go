package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sdfleet/sdfleet/controllers/podcontract"
	"github.com/sdfleet/sdfleet/inference/checkpoint"
)

func TestHelpAndUsage(t *testing.T) {
	cases := []struct {
		args       []string
		code       int
		wantOut    string
		wantErrOut string
	}{
		{[]string{"--help"}, 0, "testmodel", ""},
		{[]string{"help"}, 0, "Commands:", ""},
		{nil, podcontract.ExitUsage, "", "Usage: sdgen COMMAND"},
		{[]string{"frobnicate"}, podcontract.ExitUsage, "", `unknown command "frobnicate"`},
		{[]string{"testmodel", "--help"}, 0, "--layout", ""},
		{[]string{"testmodel", "--size", "huge", "--out", "x"}, podcontract.ExitUsage, "", `unknown test model size "huge"`},
		{[]string{"testmodel", "--layout", "zip", "--out", "x"}, podcontract.ExitUsage, "", `--layout "zip"`},
		{[]string{"testmodel"}, podcontract.ExitUsage, "", "--out is required"},
		{[]string{"testmodel", "--out", "x", "--dtype", "I8"}, podcontract.ExitUsage, "", `--dtype "I8"`},
		{[]string{"testmodel", "--out", "x", "extra"}, podcontract.ExitUsage, "", "unexpected arguments"},
		{[]string{"testmodel", "--bogus"}, podcontract.ExitUsage, "", "flag provided but not defined"},
	}
	for _, c := range cases {
		var out, errOut bytes.Buffer
		code := run(c.args, &out, &errOut)
		if code != c.code || !strings.Contains(out.String(), c.wantOut) || !strings.Contains(errOut.String(), c.wantErrOut) {
			t.Errorf("sdgen %q: exit %d, stdout %q, stderr %q; want exit %d, stdout with %q, stderr with %q",
				c.args, code, out.String(), errOut.String(), c.code, c.wantOut, c.wantErrOut)
		}
	}
}

func TestTestmodelWritesLoadableModels(t *testing.T) {
	for _, layout := range []string{"diffusers", "single-file"} {
		dir := filepath.Join(t.TempDir(), "m")
		var out, errOut bytes.Buffer
		if code := run([]string{"testmodel", "--size", "tiny", "--layout", layout, "--out", dir, "--seed", "5"}, &out, &errOut); code != 0 {
			t.Fatalf("%s: exit %d: %s", layout, code, errOut.String())
		}
		path := strings.TrimSpace(out.String())
		m, err := checkpoint.Open(path, checkpoint.Options{})
		if err != nil {
			t.Fatalf("%s: %v", layout, err)
		}
		if string(m.Layout) != layout || m.Family != checkpoint.SD1 {
			t.Errorf("%s: opened as %s %s", layout, m.Layout, m.Family)
		}
		m.Close()
		if !strings.Contains(errOut.String(), "wrote test model file") {
			t.Errorf("%s: no progress log on stderr: %q", layout, errOut.String())
		}
	}
}
