package main

import (
	"fmt"

	"github.com/sdfleet/sdfleet/inference/checkpoint"
	"github.com/sdfleet/sdfleet/inference/safetensors"
	"github.com/sdfleet/sdfleet/inference/testmodel"
)

var testmodelCommand = command{
	name:    "testmodel",
	summary: "write a synthetic SD 1.5- or SDXL-topology checkpoint (tiny or full size) for tests and benchmarks",
	run:     runTestmodel,
}

func runTestmodel(e *env, args []string) error {
	fs := newFlagSet(e, "testmodel", "[--family sd1|sdxl] --size tiny|full --layout diffusers|single-file --out DIR [--seed N] [--dtype F32|F16|BF16]")
	family := fs.String("family", "sd1", "model family: sd1 (SD 1.5) or sdxl (SDXL base 1.0, full size about 6.9 GB in fp16)")
	size := fs.String("size", "tiny", "model size: tiny (a few MB) or full (the real shapes; SD 1.5 is about 2 GB in fp16)")
	layout := fs.String("layout", string(checkpoint.Diffusers), "layout: diffusers (a folder) or single-file (one .safetensors file plus a tokenizer folder)")
	out := fs.String("out", "", "output folder (created if missing)")
	seed := fs.Uint64("seed", 1, "random seed; the same seed gives the same weights in both layouts")
	dtype := fs.String("dtype", "", "weight dtype F32, F16 or BF16 (default F32 for tiny, F16 for full)")
	if err := parse(e, fs, args); err != nil {
		return err
	}
	s, err := testmodel.ParseSize(*size)
	if err != nil {
		return usageError{err.Error()}
	}
	f, err := testmodel.ParseFamily(*family)
	if err != nil {
		return usageError{"--family: " + err.Error()}
	}
	l := checkpoint.Layout(*layout)
	if l != checkpoint.Diffusers && l != checkpoint.SingleFile {
		return usageError{fmt.Sprintf("--layout %q: want %s or %s", *layout, checkpoint.Diffusers, checkpoint.SingleFile)}
	}
	if *out == "" {
		return usageError{"--out is required"}
	}
	dt := safetensors.DType(*dtype)
	if dt != "" && !dt.IsFloat() {
		return usageError{fmt.Sprintf("--dtype %q: want F32, F16 or BF16", *dtype)}
	}
	bytes, err := testmodel.ByteSizeFor(f, s, l)
	if err != nil {
		return err
	}
	e.log.Info("generating test model", "family", f, "size", s, "layout", l, "seed", *seed, "out", *out, "approxBytes", bytes)
	path, err := testmodel.Generate(*out, testmodel.Options{Family: f, Size: s, Layout: l, Seed: *seed, DType: dt, Log: e.log})
	if err != nil {
		return err
	}
	// The path to load is the only thing on stdout, for scripts.
	fmt.Fprintln(e.stdout, path)
	return nil
}
