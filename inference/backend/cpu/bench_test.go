package cpu

import (
	"math/rand/v2"
	"testing"

	"github.com/sdfleet/sdfleet/inference/backend"
	"github.com/sdfleet/sdfleet/inference/tensor"
)

func BenchmarkAttention4096x8x40(b *testing.B) {
	be, err := New(Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer be.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	q, k, v := randomTensor(rng, 1, 4096, 320), randomTensor(rng, 1, 4096, 320), randomTensor(rng, 1, 4096, 320)
	dst := tensor.MustNew(1, 4096, 320)
	b.ResetTimer()
	for range b.N {
		if err := be.Attention(dst, q, k, v, backend.AttentionParams{Heads: 8}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(4*4096*4096*40*8*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}

func BenchmarkConv3x3_64x64x320(b *testing.B) {
	be, err := New(Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer be.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	w := randomTensor(rng, 320, 320, 3, 3)
	conv, err := be.LoadConv2D(tensor.RawFromFloat32(w.Data, w.Shape...), nil, 1)
	if err != nil {
		b.Fatal(err)
	}
	x := randomTensor(rng, 1, 64, 64, 320)
	dst := tensor.MustNew(1, 64, 64, 320)
	b.ResetTimer()
	for range b.N {
		if err := be.Conv2D(dst, x, conv, backend.Epilogue{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(2*4096*320*2880*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}

func BenchmarkElementwise(b *testing.B) {
	be, err := New(Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer be.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	x := randomTensor(rng, 1, 4096, 2560)
	half := tensor.MustNew(1, 4096, 1280)
	img := randomTensor(rng, 1, 64, 64, 320)
	img2 := tensor.MustNew(1, 64, 64, 320)
	scale, shift := vec(randomVector(rng, 320)), vec(randomVector(rng, 320))
	cases := []struct {
		name string
		run  func() error
	}{
		{"geglu_4096x2560", func() error { return be.GEGLU(half, x) }},
		{"silu_4096x2560", func() error { return be.Activate(x, x, backend.SiLU) }},
		{"groupnorm_silu_64x64x320", func() error { return be.GroupNorm(img2, img, 32, scale, shift, 1e-5, backend.SiLU) }},
		{"layernorm_4096x320", func() error {
			return be.LayerNorm(img2, img, scale, shift, 1e-5)
		}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			for range b.N {
				if err := c.run(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
