package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sdfleet/sdfleet/controllers/podcontract"
	"github.com/sdfleet/sdfleet/inference/checkpoint"
	"github.com/sdfleet/sdfleet/inference/pipeline"
)

// sdgen testmodel --family sdxl writes a tiny SDXL model that sdgen
// generate runs, from both layouts to the same bytes, naming SDXL in the
// PNG's parameters and the family and peak memory in its result.
func TestGenerateSDXL(t *testing.T) {
	dir := t.TempDir()
	var pngs [][]byte
	for _, l := range []checkpoint.Layout{checkpoint.Diffusers, checkpoint.SingleFile} {
		var stdout, stderr bytes.Buffer
		if code := run([]string{"testmodel", "--family", "sdxl", "--size", "tiny", "--layout", string(l), "--seed", "3", "--out", filepath.Join(dir, string(l))}, &stdout, &stderr); code != 0 {
			t.Fatalf("testmodel --family sdxl: exit %d: %s", code, stderr.String())
		}
		model := strings.TrimSpace(stdout.String())
		g := generate(t, small(model)...)
		if g.code != 0 {
			t.Fatalf("exit %d: %s", g.code, g.stderr)
		}
		if !bytes.Contains(g.png, []byte(", Model: SDXL")) || !bytes.Contains(g.png, []byte(`"family":"sdxl"`)) {
			t.Errorf("%s: the PNG's text does not name SDXL", l)
		}
		r, ok := podcontract.ParseResult(g.resultRaw)
		if !ok || r.Family != "sdxl" || r.PeakHostMemoryBytes <= 0 || r.PeakDeviceMemoryBytes != 0 {
			t.Errorf("%s: result %+v, want family sdxl and a host peak (no device on the CPU)", l, r)
		}
		pngs = append(pngs, g.png)
	}
	if !bytes.Equal(pngs[0], pngs[1]) {
		t.Error("the two layouts of the SDXL model gave different PNGs")
	}
	if code := run([]string{"testmodel", "--family", "sdxl2", "--out", dir}, new(bytes.Buffer), new(bytes.Buffer)); code != podcontract.ExitUsage {
		t.Errorf("testmodel --family sdxl2: exit %d, want %d", code, podcontract.ExitUsage)
	}
}

// A refiner checkpoint fails as a model error whose message says the
// refiner is out of scope.
func TestGenerateRefusesTheSDXLRefiner(t *testing.T) {
	dir := t.TempDir()
	if code := run([]string{"testmodel", "--family", "sdxl", "--size", "tiny", "--out", dir}, new(bytes.Buffer), new(bytes.Buffer)); code != 0 {
		t.Fatal("testmodel failed")
	}
	index := filepath.Join(dir, "model_index.json")
	data, err := os.ReadFile(index)
	if err != nil {
		t.Fatal(err)
	}
	data = bytes.Replace(data, []byte(`"StableDiffusionXLPipeline"`), []byte(`"StableDiffusionXLImg2ImgPipeline", "requires_aesthetics_score": true`), 1)
	if err := os.WriteFile(index, data, 0o644); err != nil {
		t.Fatal(err)
	}
	g := generate(t, small(dir)...)
	if g.code != podcontract.ExitModelError || !strings.Contains(g.result.Error, "refiner is out of scope") {
		t.Errorf("exit %d, error %q: want %d and the refiner named out of scope", g.code, g.result.Error, podcontract.ExitModelError)
	}
}

func TestSDXLDefaultsTo1024(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		family checkpoint.Family
		w, h   int
	}{
		{nil, checkpoint.SDXL, 1024, 1024},
		{nil, checkpoint.SD1, 512, 512},
		{[]string{"--width", "768"}, checkpoint.SDXL, 768, 1024},
		{[]string{"--height", "512"}, checkpoint.SDXL, 1024, 512},
		{[]string{"--width", "640", "--height", "384"}, checkpoint.SD1, 640, 384},
	} {
		fs := flag.NewFlagSet("generate", flag.ContinueOnError)
		g := defineGenerateFlags(fs)
		if err := fs.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		req := withFamilyDefaults(fs, g.req, tc.family)
		if req.Width != tc.w || req.Height != tc.h {
			t.Errorf("%v for %s: %dx%d, want %dx%d", tc.args, tc.family, req.Width, req.Height, tc.w, tc.h)
		}
	}
	if pipeline.DefaultSide(checkpoint.SDXL) != 1024 {
		t.Error("SDXL's default side is not 1024")
	}
}

// A single-file SDXL checkpoint finds its second tokenizer through --tokenizer-2 when it is
// not beside the file, and names the folder it looked in when it is missing.
func TestGenerateSDXLSecondTokenizerFlag(t *testing.T) {
	dir := t.TempDir()
	var stdout bytes.Buffer
	if code := run([]string{"testmodel", "--family", "sdxl", "--size", "tiny", "--layout", "single-file", "--out", dir}, &stdout, new(bytes.Buffer)); code != 0 {
		t.Fatal("testmodel failed")
	}
	model := strings.TrimSpace(stdout.String())
	moved := filepath.Join(t.TempDir(), "tok2")
	if err := os.Rename(filepath.Join(dir, "tokenizer_2"), moved); err != nil {
		t.Fatal(err)
	}
	if g := generate(t, small(model)...); g.code != podcontract.ExitModelError || !strings.Contains(g.result.Error, "tokenizer_2") {
		t.Errorf("without tokenizer_2: exit %d, error %q", g.code, g.result.Error)
	}
	if g := generate(t, small(model, "--tokenizer-2", moved)...); g.code != 0 {
		t.Errorf("--tokenizer-2 %s: exit %d: %s", moved, g.code, g.stderr)
	}
}
