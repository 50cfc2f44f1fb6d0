package vulkan

import (
	"math"
	"testing"

	"github.com/sdfleet/sdfleet/inference/backend"
	"github.com/sdfleet/sdfleet/inference/tensor"
)

// Activations are fp16 by default; a phase that asks for fp32 through
// backend.F32Activations gets fp32 storage in every kernel, so values past
// fp16's largest finite 65504 survive there and overflow to +Inf outside
// it. Weights stay fp16 in both.
func TestF32ActivationsKeepValuesBeyondHalfRange(t *testing.T) {
	d := device(t)
	b := &Backend{d: d}
	x := []float32{1, 2, 3}
	w, err := b.LoadLinear(tensor.RawFromFloat32([]float32{40000, 0, 0, 0, 30000, 0, 0, 0, 1}, 3, 3), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Unload(w)
	// x·wᵀ = [40000, 60000, 3], then 2·that + 1·x = [80001, 120002, 9].
	want := []float32{80001, 120002, 9}
	run := func() ([]float32, tensor.DType) {
		in, err := b.Alloc(1, 3)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Release(in)
		mid, err := b.Alloc(1, 3)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Release(mid)
		if err := b.Write(in, x); err != nil {
			t.Fatal(err)
		}
		if err := b.MatMul(mid, in, w, backend.Epilogue{}); err != nil {
			t.Fatal(err)
		}
		if err := b.Axpby(mid, 2, mid, 1, in); err != nil {
			t.Fatal(err)
		}
		got := make([]float32, 3)
		if err := b.Read(got, mid); err != nil {
			t.Fatal(err)
		}
		return got, mid.DType()
	}

	restore, err := backend.F32Activations(b)
	if err != nil {
		t.Fatal(err)
	}
	got, dt := run()
	restore()
	if dt != tensor.F32 {
		t.Errorf("activation dtype %v inside the fp32 phase, want F32", dt)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("fp32 phase: element %d is %g, want %g", i, got[i], want[i])
		}
	}

	got, dt = run()
	if dt != tensor.F16 {
		t.Errorf("activation dtype %v after the phase, want F16 again", dt)
	}
	if !math.IsInf(float64(got[0]), 1) || !math.IsInf(float64(got[1]), 1) || got[2] != 9 {
		t.Errorf("fp16 activations: got %v, want +Inf, +Inf, 9 (fp16 ends at 65504)", got)
	}
}
