package main

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"time"

	"github.com/sdfleet/sdfleet/inference/backend"
	"github.com/sdfleet/sdfleet/inference/backend/vulkan"
	"github.com/sdfleet/sdfleet/inference/tensor"
)

func main() {
	index := flag.Int("device", 0, "Vulkan device index (vulkan:N)")
	repeat := flag.Int("repeat", 3, "runs per figure; the best is reported")
	f32Act := flag.Bool("f32", false, "fp32 activations (the phase a backend.F32Activations caller gets) instead of fp16")
	beyond := flag.Bool("beyond-range", false, "instead, run the tail of a 512x512 VAE decode in fp32, on tensors beyond lavapipe's maxStorageBufferRange, against the CPU")
	flag.Parse()
	if *beyond {
		if err := beyondRange(*index); err != nil {
			fmt.Fprintln(os.Stderr, "bench-vulkan:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(*index, *repeat, *f32Act); err != nil {
		fmt.Fprintln(os.Stderr, "bench-vulkan:", err)
		os.Exit(1)
	}
}

// kernelCase is one kernel at one shape: work is its FLOPs (or bytes
// moved, for memory-bound kernels), rec records one execution.
type kernelCase struct {
	name  string
	shape string
	work  float64
	unit  string // "GFLOP/s" or "GB/s"
	rec   func() error
}

func run(index, repeat int, f32Act bool) error {
	d, err := vulkan.Open(vulkan.Options{Select: vulkan.Selector{Index: index}})
	if err != nil {
		return err
	}
	defer d.Close()
	if f32Act {
		if _, err := d.SetActivationDType(tensor.F32); err != nil {
			return err
		}
	}
	fmt.Printf("device %s (%s), maxStorageBufferRange %d MiB, %v activations\n", d.Name(), d.UUID(), d.Properties().MaxStorageBufferRange>>20, d.ActivationDType())

	rng := rand.New(rand.NewPCG(1, 1))
	act := func(dims ...int) *vulkan.Tensor {
		t, err := d.Alloc(dims...)
		if err != nil {
			panic(err)
		}
		n, _ := tensor.NumElements(dims)
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(rng.NormFloat64())
		}
		if err := d.Write(t, v); err != nil {
			panic(err)
		}
		return t
	}
	weight := func(dims ...int) *vulkan.Tensor {
		n, _ := tensor.NumElements(dims)
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(rng.NormFloat64() * 0.05)
		}
		t, err := d.LoadWeight(tensor.RawFromFloat32(v, dims...))
		if err != nil {
			panic(err)
		}
		return t
	}
	// Bytes per activation element, for the memory-bound kernels' GB/s.
	bytes := float64(d.ActivationDType().Size())

	mmX, mmW, mmB, mmD := act(1, 1024, 320), weight(320, 320), weight(320), act(1, 1024, 320)
	cvX, cvW, cvB, cvD := act(1, 32, 32, 320), weight(320, 320, 3, 3), weight(320), act(1, 32, 32, 320)
	c1X, c1W, c1D := act(1, 32, 32, 320), weight(640, 320, 1, 1), act(1, 32, 32, 640)
	q, k, v, o := act(1, 1024, 320), act(1, 1024, 320), act(1, 1024, 320), act(1, 1024, 320)
	ck, cv := act(1, 77, 320), act(1, 77, 320)
	gnX, gnS, gnT, gnD := act(1, 64, 64, 320), weight(320), weight(320), act(1, 64, 64, 320)
	lnX, lnS, lnT, lnD := act(1, 4096, 320), weight(320), weight(320), act(1, 4096, 320)
	ggX, ggD := act(1, 1024, 2560), act(1, 1024, 1280)
	ewX, ewY := act(1, 64, 64, 320), act(1, 64, 64, 320)
	upX, upD := act(1, 32, 32, 320), act(1, 64, 64, 320)
	catA, catB, catD := act(1, 32, 32, 320), act(1, 32, 32, 320), act(1, 32, 32, 640)
	emT, emD := weight(49408, 768), act(1, 77, 768)
	ids := make([]int, 77)
	for i := range ids {
		ids[i] = rng.IntN(49408)
	}

	cases := []kernelCase{
		{"matmul +bias +gelu", "1024x320 · 320x320", 2 * 1024 * 320 * 320, "GFLOP/s", func() error {
			return d.MatMul(mmD, mmX, mmW, mmB, nil, backend.GELU)
		}},
		{"conv 3x3 (implicit GEMM)", "32x32x320 → 320", 2 * 1024 * 320 * 320 * 9, "GFLOP/s", func() error {
			return d.Conv2D(cvD, cvX, cvW, cvB, nil, 1, backend.None)
		}},
		{"conv 1x1 +residual", "32x32x320 → 640", 2 * 1024 * 640 * 320, "GFLOP/s", func() error {
			return d.Conv2D(c1D, c1X, c1W, nil, nil, 1, backend.None)
		}},
		{"attention self (online softmax)", "1024 tokens, 8 heads of 40", 4 * 8 * 1024 * 1024 * 40, "GFLOP/s", func() error {
			return d.Attention(o, q, k, v, backend.AttentionParams{Heads: 8})
		}},
		{"attention cross", "1024 × 77 tokens, 8 heads of 40", 4 * 8 * 1024 * 77 * 40, "GFLOP/s", func() error {
			return d.Attention(o, q, ck, cv, backend.AttentionParams{Heads: 8})
		}},
		{"group norm +silu", "64x64x320, 32 groups", 2 * 64 * 64 * 320 * bytes * 1.5, "GB/s", func() error {
			return d.GroupNorm(gnD, gnX, 32, gnS, gnT, 1e-5, backend.SiLU)
		}},
		{"layer norm", "4096x320", 2 * 4096 * 320 * bytes * 1.5, "GB/s", func() error {
			return d.LayerNorm(lnD, lnX, lnS, lnT, 1e-5)
		}},
		{"geglu", "1024x2560 → 1280", (1024*2560 + 1024*1280) * bytes, "GB/s", func() error { return d.GEGLU(ggD, ggX) }},
		{"axpby", "64x64x320", 3 * 64 * 64 * 320 * bytes, "GB/s", func() error { return d.Axpby(ewX, 0.5, ewX, 0.5, ewY) }},
		{"activate silu", "64x64x320", 2 * 64 * 64 * 320 * bytes, "GB/s", func() error { return d.Activate(ewY, ewX, backend.SiLU) }},
		{"resize nearest 2x", "32x32x320 → 64x64", (32*32*320 + 64*64*320) * bytes, "GB/s", func() error { return d.ResizeNearest(upD, upX) }},
		{"concat", "32x32x(320+320)", 2 * 32 * 32 * 640 * bytes, "GB/s", func() error { return d.Concat(catD, catA, catB) }},
		{"embedding", "77 of 49408x768 fp16", 77 * 768 * (2 + bytes), "GB/s", func() error { return d.Embedding(emD, emT, ids) }},
	}
	if err := d.Sync(); err != nil {
		return err
	}
	fmt.Printf("%-32s %-32s %10s %12s\n", "kernel", "shape", "ms", "throughput")
	for _, c := range cases {
		// Warm up (pipeline creation), then the best of repeat runs, each
		// one dispatch submitted and waited for.
		if err := c.rec(); err != nil {
			return fmt.Errorf("%s: %w", c.name, err)
		}
		if err := d.Sync(); err != nil {
			return err
		}
		best := time.Duration(1 << 62)
		for r := 0; r < repeat; r++ {
			start := time.Now()
			if err := c.rec(); err != nil {
				return err
			}
			if err := d.Sync(); err != nil {
				return err
			}
			best = min(best, time.Since(start))
		}
		fmt.Printf("%-32s %-32s %10.2f %8.2f %s\n", c.name, c.shape, best.Seconds()*1000, c.work/best.Seconds()/1e9, c.unit)
	}
	return nil
}
