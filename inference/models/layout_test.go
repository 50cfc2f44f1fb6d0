package models

import (
	"errors"
	"strings"
	"testing"

	"github.com/sdfleet/sdfleet/inference/backend/cpu"
	"github.com/sdfleet/sdfleet/inference/tensor"
)

func TestTransposesRoundTrip(t *testing.T) {
	const n, c, h, w = 2, 3, 4, 5
	src := make([]float32, n*c*h*w)
	for i := range src {
		src[i] = float32(i)
	}
	nhwc := make([]float32, len(src))
	if err := NCHWToNHWC(nhwc, src, n, c, h, w); err != nil {
		t.Fatal(err)
	}
	// Element (b, ch, y, x) of NCHW lands at ((b*h+y)*w+x)*c+ch.
	for _, e := range [][4]int{{0, 0, 0, 0}, {1, 2, 3, 4}, {0, 1, 2, 3}, {1, 0, 3, 1}} {
		b, ch, y, x := e[0], e[1], e[2], e[3]
		if got, want := nhwc[((b*h+y)*w+x)*c+ch], src[((b*c+ch)*h+y)*w+x]; got != want {
			t.Errorf("element %v: %v, want %v", e, got, want)
		}
	}
	back := make([]float32, len(src))
	if err := NHWCToNCHW(back, nhwc, n, h, w, c); err != nil {
		t.Fatal(err)
	}
	for i := range src {
		if back[i] != src[i] {
			t.Fatalf("round trip differs at %d", i)
		}
	}
	if err := NCHWToNHWC(nhwc[:5], src, n, c, h, w); err == nil {
		t.Error("a short destination was accepted")
	}
}

func TestLoaderReportsFirstProblemByName(t *testing.T) {
	b, err := cpu.New(cpu.Options{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	src := MapSource{
		"blk.proj.weight": tensor.RawFromFloat32(make([]float32, 6), 2, 3),
		"blk.proj.bias":   tensor.RawFromFloat32(make([]float32, 2), 2),
		"blk.conv.weight": tensor.RawFromFloat32(make([]float32, 2*3), 2, 3, 1, 1),
		"blk.norm.weight": tensor.RawFromFloat32(make([]float32, 4), 4),
	}
	l := NewLoader(b, src).With("blk.")
	if l.Linear("proj", 2, 3, true) == nil || l.Err() != nil {
		t.Fatalf("a good linear failed: %v", l.Err())
	}
	// A 1×1 convolution weight is accepted as a linear layer.
	if l.Linear("conv", 2, 3, false) == nil || l.Err() != nil {
		t.Fatalf("a 1x1 convolution as linear failed: %v", l.Err())
	}
	if l.Tensor("norm.weight", 5) != nil {
		t.Fatal("a wrong length was accepted")
	}
	first := l.Err()
	if first == nil || !strings.Contains(first.Error(), "blk.norm.weight") || !strings.Contains(first.Error(), "[5]") {
		t.Fatalf("error %v should name blk.norm.weight and the expected shape", first)
	}
	l.Linear("absent", 1, 1, false)
	if !errors.Is(l.Err(), first) && l.Err() != first {
		t.Errorf("the first error was replaced by %v", l.Err())
	}
	var we *WeightError
	if !errors.As(first, &we) || we.Tensor != "blk.norm.weight" {
		t.Errorf("error %#v is not a WeightError for blk.norm.weight", first)
	}
}

// The loader counts what the backend holds: the CPU keeps 16-bit weights
// 16-bit in fp32 precision and fp32 ones as fp32, plus panel padding.
func TestLoaderCountsWeightsAsTheBackendHoldsThem(t *testing.T) {
	b, err := cpu.New(cpu.Options{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	const out, in = 64, 96
	f16 := tensor.Raw{DType: tensor.F16, Shape: []int{out, in}, Data: make([]byte, 2*out*in)}
	for _, tc := range []struct {
		name     string
		weight   tensor.Raw
		min, max float64 // bytes per weight
	}{
		{"fp16 kept 16-bit", f16, 2, 2.5},
		{"fp32 kept fp32", tensor.RawFromFloat32(make([]float32, out*in), out, in), 4, 4.5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := NewLoader(b, MapSource{"proj.weight": tc.weight, "proj.bias": tensor.RawFromFloat32(make([]float32, out), out)})
			if l.Linear("proj", out, in, true) == nil {
				t.Fatal(l.Err())
			}
			perWeight := float64(l.PackedBytes()-4*out) / (out * in)
			if perWeight < tc.min || perWeight > tc.max {
				t.Errorf("%.2f bytes per weight counted, expected %.1f to %.1f", perWeight, tc.min, tc.max)
			}
		})
	}
}
