package main

import (
	"fmt"

	"github.com/sdfleet/sdfleet/inference/checkpoint"
	"github.com/sdfleet/sdfleet/inference/safetensors"
	"github.com/sdfleet/sdfleet/inference/testmodel"
)

var testmodelCommand = command{
	name:    "testmodel",
	summary: "write a synthetic SD 1.5-topology checkpoint (tiny or full size) for tests and benchmarks",
	run:     runTestmodel,
}

func runTestmodel(e *env, args []string) error {
	fs := newFlagSet(e, "testmodel", "--size tiny|full --layout diffusers|single-file --out DIR [--seed N] [--dtype F32|F16|BF16]")
	size := fs.String("size", "tiny", "model size: tiny (a few MB) or full (real SD 1.5 shapes, about 2 GB in fp16)")
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
	bytes, err := testmodel.ByteSize(s, l)
	if err != nil {
		return err
	}
	e.log.Info("generating test model", "size", s, "layout", l, "seed", *seed, "out", *out, "approxBytes", bytes)
	path, err := testmodel.Generate(*out, testmodel.Options{Size: s, Layout: l, Seed: *seed, DType: dt, Log: e.log})
	if err != nil {
		return err
	}
	// The path to load is the only thing on stdout, for scripts.
	fmt.Fprintln(e.stdout, path)
	return nil
}
