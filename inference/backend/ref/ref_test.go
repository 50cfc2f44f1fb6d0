package ref

import (
	"math"
	"testing"

	"github.com/sdfleet/sdfleet/inference/backend"
	"github.com/sdfleet/sdfleet/inference/tensor"
)

// The oracle is checked against identities that hold by construction,
// so a mistake in it cannot hide behind agreement with a backend.

func TestConvOneByOneIsMatMul(t *testing.T) {
	x := tensor.MustNew(1, 2, 3, 4)
	w := tensor.MustNew(5, 4, 1, 1)
	for i := range x.Data {
		x.Data[i] = float32(i%7) - 3
	}
	for i := range w.Data {
		w.Data[i] = float32(i%5) * 0.5
	}
	conv := Conv2D(x, w, nil, 1, backend.None, nil)
	wm, _ := w.Reshape(5, 4)
	mm := MatMul(x, wm, nil, backend.None, nil)
	for i := range conv.Data {
		if conv.Data[i] != mm.Data[i] {
			t.Fatalf("element %d: conv %g, matmul %g", i, conv.Data[i], mm.Data[i])
		}
	}
}

func TestAttentionWithEqualKeysAveragesValues(t *testing.T) {
	q := tensor.MustNew(1, 2, 2)
	k := tensor.MustNew(1, 3, 2)
	v := tensor.MustNew(1, 3, 2)
	for i := range q.Data {
		q.Data[i] = float32(i)
	}
	for i := range k.Data {
		k.Data[i] = 1
	}
	copy(v.Data, []float32{1, 2, 3, 4, 5, 6})
	out := Attention(q, k, v, 1, false, 0)
	want := []float32{3, 4, 3, 4}
	for i := range want {
		if math.Abs(float64(out.Data[i]-want[i])) > 1e-6 {
			t.Fatalf("element %d = %g, want %g", i, out.Data[i], want[i])
		}
	}
	// With a causal mask the first query sees only the first key and the
	// second, whose keys score equally, averages both.
	v2, _ := tensor.FromData([]float32{1, 2, 3, 4}, 1, 2, 2)
	causal := Attention(q, tensor.MustNew(1, 2, 2), v2, 1, true, 0)
	for i, w := range []float32{1, 2, 2, 3} {
		if math.Abs(float64(causal.Data[i]-w)) > 1e-6 {
			t.Fatalf("causal element %d = %g, want %g", i, causal.Data[i], w)
		}
	}
}

func TestNormsAreStandardised(t *testing.T) {
	x := tensor.MustNew(1, 4, 6)
	for i := range x.Data {
		x.Data[i] = float32(i*i%11) + 2
	}
	ones, zeros := []float32{1, 1, 1, 1, 1, 1}, make([]float32, 6)
	for name, y := range map[string]*tensor.Tensor{
		"layer": LayerNorm(x, ones, zeros, 0),
		"group": GroupNorm(x, 1, ones, zeros, 0, backend.None),
	} {
		rows := 4
		if name == "group" {
			rows = 1
		}
		per := len(y.Data) / rows
		for r := 0; r < rows; r++ {
			var sum, sq float64
			for _, v := range y.Data[r*per : (r+1)*per] {
				sum += float64(v)
				sq += float64(v) * float64(v)
			}
			if math.Abs(sum/float64(per)) > 1e-6 || math.Abs(sq/float64(per)-1) > 1e-5 {
				t.Fatalf("%s norm row %d: mean %g, variance %g", name, r, sum/float64(per), sq/float64(per))
			}
		}
	}
}
