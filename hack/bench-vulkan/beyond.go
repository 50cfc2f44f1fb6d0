package main

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/sdfleet/sdfleet/inference/backend"
	"github.com/sdfleet/sdfleet/inference/backend/cpu"
	"github.com/sdfleet/sdfleet/inference/backend/vulkan"
	"github.com/sdfleet/sdfleet/inference/tensor"
)

// beyondRange runs the tail of SD 1.5's VAE decoder at 512×512 with fp32
// activations, as a decode that asks for them does: the 2× upsample of a
// 256×256×256 map, group norm + SiLU and a 3×3 convolution over the
// 512×512×256 result (256 MiB, twice lavapipe's maxStorageBufferRange),
// narrowed to 8 output channels so that lavapipe finishes in seconds. It
// prints each operation's time and the largest difference from the CPU
// backend given the same (fp16-representable) weights.
func beyondRange(index int) error {
	vb, err := vulkan.New(vulkan.Options{Select: vulkan.Selector{Index: index}})
	if err != nil {
		return err
	}
	defer vb.Close()
	restore, err := backend.F32Activations(vb)
	if err != nil {
		return err
	}
	defer restore()
	cb, err := cpu.New(cpu.Options{})
	if err != nil {
		return err
	}
	defer cb.Close()
	fmt.Printf("device %s, maxStorageBufferRange %d MiB; 512x512x256 fp32 is %d MiB\n",
		vb.Device().Name(), vb.Device().Properties().MaxStorageBufferRange>>20, 512*512*256*4>>20)

	rng := rand.New(rand.NewPCG(2, 2))
	half := func(n int, scale float64) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = tensor.HalfToFloat32(tensor.Float32ToHalf(float32(rng.NormFloat64() * scale)))
		}
		return v
	}
	input := half(256*256*256, 1)
	scale, shift := half(256, 1), half(256, 0.1)
	w, bias := half(8*256*9, 1/math.Sqrt(256*9)), half(8, 0.1)

	var outs [2][]float32
	for i, b := range []backend.Backend{vb, cb} {
		out, err := decodeTail(b, input, scale, shift, w, bias)
		if err != nil {
			return fmt.Errorf("%s: %w", b.Name(), err)
		}
		outs[i] = out
	}
	worst := 0.0
	for i := range outs[1] {
		worst = max(worst, math.Abs(float64(outs[0][i]-outs[1][i])))
	}
	fmt.Printf("largest difference from the CPU over %d outputs: %.3g; %d Vulkan dispatches used device addresses\n",
		len(outs[1]), worst, vb.Device().AddressedDispatches())
	return nil
}

func decodeTail(b backend.Backend, input, scale, shift, w, bias []float32) ([]float32, error) {
	st, err := b.LoadTensor(tensor.RawFromFloat32(scale, 256))
	if err != nil {
		return nil, err
	}
	sh, err := b.LoadTensor(tensor.RawFromFloat32(shift, 256))
	if err != nil {
		return nil, err
	}
	braw := tensor.RawFromFloat32(bias, 8)
	conv, err := b.LoadConv2D(tensor.RawFromFloat32(w, 8, 256, 3, 3), &braw, 1)
	if err != nil {
		return nil, err
	}
	defer b.Unload(st, sh, conv)
	s := backend.NewScope(b)
	defer s.Release()
	x, err := s.Upload(input, 1, 256, 256, 256)
	if err != nil {
		return nil, err
	}
	up, err := s.Alloc(1, 512, 512, 256)
	if err != nil {
		return nil, err
	}
	h, err := s.Alloc(1, 512, 512, 256)
	if err != nil {
		return nil, err
	}
	out, err := s.Alloc(1, 512, 512, 8)
	if err != nil {
		return nil, err
	}
	if err := b.Sync(); err != nil {
		return nil, err
	}
	for _, op := range []struct {
		name string
		run  func() error
	}{
		{"resize nearest 2x", func() error { return b.ResizeNearest(up, x) }},
		{"group norm +silu", func() error { return b.GroupNorm(h, up, 32, st, sh, 1e-6, backend.SiLU) }},
		{"conv 3x3 256 → 8", func() error { return b.Conv2D(out, h, conv, backend.Epilogue{}) }},
	} {
		start := time.Now()
		if err := op.run(); err != nil {
			return nil, fmt.Errorf("%s: %w", op.name, err)
		}
		if err := b.Sync(); err != nil {
			return nil, fmt.Errorf("%s: %w", op.name, err)
		}
		fmt.Printf("  %-10.10s %-20s %8.2f s\n", b.Name(), op.name, time.Since(start).Seconds())
	}
	res := make([]float32, 512*512*8)
	return res, b.Read(res, out)
}
