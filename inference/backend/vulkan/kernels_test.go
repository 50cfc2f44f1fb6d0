package vulkan

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/sdfleet/sdfleet/inference/backend"
	"github.com/sdfleet/sdfleet/inference/backend/ref"
	"github.com/sdfleet/sdfleet/inference/tensor"
)

// Every kernel is compared with package ref (float64) on random inputs of
// awkward shapes: odd sizes, sizes that are not a multiple of the 64-wide
// GEMM tile or the 16-key attention tile, batch 2, CLIP's 77 tokens, head
// widths 40, 80 and 160.
//
// Tolerance. Weights are fp16 on the device; the reference is given the
// same fp16-rounded weights, and the same activations the device holds
// (rounded to fp16 in the fp16 modes), so that rounding is common to both
// sides. What remains:
//
//   - fp32 arithmetic: a sum of K terms in a different order than float64
//     differs by at most about K·2⁻²⁴ of the sum of magnitudes (K ≤ 1,280
//     here: 8e-5); exp and the erf approximation add below 1e-6. In the
//     fp32 modes |got − want| ≤ tol32·(1 + |want|) holds that with margin.
//   - in the fp16 modes, one more rounding of every output to fp16: a
//     relative 2⁻¹¹ (4.9e-4) rounding to nearest, or 2⁻¹⁰ (9.8e-4) where
//     the driver truncates (Vulkan leaves the conversion's rounding to the
//     implementation). tol16 = tol32 + 2⁻¹⁰, rounded up.
//
// Measured on lavapipe (go test -v prints each check's worst): at most
// 3.1e-6 in the fp32 modes (matmul) and 3.8e-4 in the fp16 ones, below
// 2⁻¹¹, so lavapipe rounds to nearest; resize and embedding copy exactly.
//
// An indexing or epilogue mistake produces errors of order 1.
const (
	tol32 = 2e-4
	tol16 = 1.2e-3
)

func randValues(rng *rand.Rand, n int, scale float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64() * scale)
	}
	return v
}

func halfRound(v []float32) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = tensor.HalfToFloat32(tensor.Float32ToHalf(x))
	}
	return out
}

func count(dims []int) int {
	n := 1
	for _, d := range dims {
		n *= d
	}
	return n
}

// activation uploads random values in the activation dtype; the host copy
// is the reference's and holds the values the device stores.
func activation(t *testing.T, d *Device, rng *rand.Rand, dims ...int) (*Tensor, *tensor.Tensor) {
	t.Helper()
	host := tensor.MustNew(dims...)
	copy(host.Data, randValues(rng, len(host.Data), 1))
	dev, err := d.Alloc(dims...)
	if err != nil {
		t.Fatal(err)
	}
	if dev.dtype == tensor.F16 {
		copy(host.Data, halfRound(host.Data))
	}
	if err := d.Write(dev, host.Data); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Release(dev) })
	return dev, host
}

// weight loads random values as an fp16 weight; the host copy holds the
// same fp16-rounded values.
func weight(t *testing.T, d *Device, rng *rand.Rand, scale float64, dims ...int) (*Tensor, *tensor.Tensor) {
	t.Helper()
	vals := randValues(rng, count(dims), scale)
	dev, err := d.LoadWeight(tensor.RawFromFloat32(vals, dims...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Release(dev) })
	host, err := tensor.FromData(halfRound(vals), dims...)
	if err != nil {
		t.Fatal(err)
	}
	return dev, host
}

func output(t *testing.T, d *Device, dims ...int) *Tensor {
	t.Helper()
	dev, err := d.Alloc(dims...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Release(dev) })
	return dev
}

func expectClose(t *testing.T, d *Device, got *Tensor, want *tensor.Tensor) {
	t.Helper()
	if !sameDims(got.Dims(), want.Shape) {
		t.Fatalf("shape %v, want %v", got.Dims(), want.Shape)
	}
	vals := make([]float32, got.Len())
	if err := d.Read(vals, got); err != nil {
		t.Fatal(err)
	}
	tol := tol32
	if got.dtype == tensor.F16 {
		tol = tol16
	}
	worst, at := 0.0, 0
	for i, w := range want.Data {
		e := math.Abs(float64(vals[i])-float64(w)) / (1 + math.Abs(float64(w)))
		if e > worst || math.IsNaN(e) {
			worst, at = e, i
		}
	}
	t.Logf("worst scaled error %.2g (tolerance %g)", worst, tol)
	if worst > tol || math.IsNaN(worst) {
		t.Fatalf("element %d: got %g, want %g (scaled error %.2g > %g)", at, vals[at], want.Data[at], worst, tol)
	}
}

func TestMatMul(t *testing.T) {
	for _, tc := range []struct {
		rows      []int
		in, out   int
		bias, res bool
		act       backend.Activation
	}{
		{[]int{2, 77}, 40, 83, true, true, backend.GELU},
		{[]int{1, 5}, 1, 3, false, false, backend.None},
		{[]int{3, 19}, 131, 65, true, false, backend.SiLU},
		{[]int{1, 64}, 64, 64, false, true, backend.QuickGELU},
		{[]int{2, 77}, 768, 320, true, false, backend.None},
	} {
		t.Run(fmt.Sprintf("%v_%dx%d_%v", tc.rows, tc.in, tc.out, tc.act), func(t *testing.T) {
			forEachMode(t, func(t *testing.T, d *Device) {
				rng := rand.New(rand.NewPCG(1, uint64(tc.in*tc.out)))
				x, hx := activation(t, d, rng, append(tc.rows, tc.in)...)
				w, hw := weight(t, d, rng, 1/math.Sqrt(float64(tc.in)), tc.out, tc.in)
				var b, res *Tensor
				var hb []float32
				var hres *tensor.Tensor
				if tc.bias {
					var bt *tensor.Tensor
					b, bt = weight(t, d, rng, 1, tc.out)
					hb = bt.Data
				}
				dims := append(append([]int(nil), tc.rows...), tc.out)
				if tc.res {
					res, hres = activation(t, d, rng, dims...)
				}
				dst := output(t, d, dims...)
				if err := d.MatMul(dst, x, w, b, res, tc.act); err != nil {
					t.Fatal(err)
				}
				expectClose(t, d, dst, ref.MatMul(hx, hw, hb, tc.act, hres))
			})
		})
	}
}

func TestConv2D(t *testing.T) {
	for _, tc := range []struct {
		n, h, w, cin, cout, k, stride int
		bias, res                     bool
		act                           backend.Activation
	}{
		{2, 9, 7, 5, 67, 3, 1, true, true, backend.None},
		{1, 9, 7, 5, 13, 3, 2, true, false, backend.SiLU},
		{2, 8, 8, 16, 24, 1, 1, false, true, backend.None},
		{1, 7, 5, 3, 9, 1, 2, true, false, backend.None},
		{1, 8, 8, 64, 64, 3, 1, true, false, backend.None},
	} {
		t.Run(fmt.Sprintf("%dx%dx%dx%d_to_%d_k%d_s%d", tc.n, tc.h, tc.w, tc.cin, tc.cout, tc.k, tc.stride), func(t *testing.T) {
			forEachMode(t, func(t *testing.T, d *Device) {
				rng := rand.New(rand.NewPCG(2, uint64(tc.cin*tc.cout*tc.k)))
				x, hx := activation(t, d, rng, tc.n, tc.h, tc.w, tc.cin)
				w, hw := weight(t, d, rng, 1/math.Sqrt(float64(tc.cin*tc.k*tc.k)), tc.cout, tc.cin, tc.k, tc.k)
				var b, res *Tensor
				var hb []float32
				var hres *tensor.Tensor
				if tc.bias {
					var bt *tensor.Tensor
					b, bt = weight(t, d, rng, 1, tc.cout)
					hb = bt.Data
				}
				ho, wo := (tc.h-1)/tc.stride+1, (tc.w-1)/tc.stride+1
				if tc.res {
					res, hres = activation(t, d, rng, tc.n, ho, wo, tc.cout)
				}
				dst := output(t, d, tc.n, ho, wo, tc.cout)
				if err := d.Conv2D(dst, x, w, b, res, tc.stride, tc.act); err != nil {
					t.Fatal(err)
				}
				expectClose(t, d, dst, ref.Conv2D(hx, hw, hb, tc.stride, tc.act, hres))
			})
		})
	}
}

func TestGroupNorm(t *testing.T) {
	for _, tc := range []struct {
		dims   []int
		groups int
		act    backend.Activation
	}{
		{[]int{2, 5, 7, 32}, 8, backend.SiLU},
		{[]int{1, 77, 12}, 3, backend.None},
		{[]int{1, 16, 16, 64}, 32, backend.SiLU},
	} {
		t.Run(fmt.Sprintf("%v_g%d_%v", tc.dims, tc.groups, tc.act), func(t *testing.T) {
			forEachMode(t, func(t *testing.T, d *Device) {
				rng := rand.New(rand.NewPCG(3, uint64(tc.groups)))
				c := tc.dims[len(tc.dims)-1]
				x, hx := activation(t, d, rng, tc.dims...)
				s, hs := weight(t, d, rng, 1, c)
				sh, hsh := weight(t, d, rng, 1, c)
				dst := output(t, d, tc.dims...)
				if err := d.GroupNorm(dst, x, tc.groups, s, sh, 1e-5, tc.act); err != nil {
					t.Fatal(err)
				}
				expectClose(t, d, dst, ref.GroupNorm(hx, tc.groups, hs.Data, hsh.Data, 1e-5, tc.act))
			})
		})
	}
}

func TestLayerNorm(t *testing.T) {
	for _, dims := range [][]int{{2, 77, 40}, {1, 3, 1280}, {1, 1, 7}} {
		t.Run(fmt.Sprint(dims), func(t *testing.T) {
			forEachMode(t, func(t *testing.T, d *Device) {
				rng := rand.New(rand.NewPCG(4, uint64(dims[2])))
				c := dims[len(dims)-1]
				x, hx := activation(t, d, rng, dims...)
				s, hs := weight(t, d, rng, 1, c)
				sh, hsh := weight(t, d, rng, 1, c)
				dst := output(t, d, dims...)
				if err := d.LayerNorm(dst, x, s, sh, 1e-5); err != nil {
					t.Fatal(err)
				}
				expectClose(t, d, dst, ref.LayerNorm(hx, hs.Data, hsh.Data, 1e-5))
			})
		})
	}
}

func TestAttention(t *testing.T) {
	for _, tc := range []struct {
		b, tq, tk, c, heads int
		causal              bool
		scale               float32
	}{
		{2, 77, 77, 80, 2, false, 0},  // head width 40
		{1, 70, 77, 160, 2, false, 0}, // width 80, cross-attention to 77 tokens
		{1, 33, 33, 160, 1, false, 0}, // width 160
		{2, 77, 77, 80, 2, true, 0},   // CLIP's causal self-attention
		{1, 5, 21, 8, 2, true, 0.3},   // causal with Tk > Tq, explicit scale
		{1, 1, 1, 3, 1, false, 0},
	} {
		t.Run(fmt.Sprintf("b%d_q%d_k%d_c%d_h%d_causal%v", tc.b, tc.tq, tc.tk, tc.c, tc.heads, tc.causal), func(t *testing.T) {
			forEachMode(t, func(t *testing.T, d *Device) {
				rng := rand.New(rand.NewPCG(5, uint64(tc.tq*tc.tk)))
				q, hq := activation(t, d, rng, tc.b, tc.tq, tc.c)
				k, hk := activation(t, d, rng, tc.b, tc.tk, tc.c)
				v, hv := activation(t, d, rng, tc.b, tc.tk, tc.c)
				dst := output(t, d, tc.b, tc.tq, tc.c)
				if err := d.Attention(dst, q, k, v, backend.AttentionParams{Heads: tc.heads, Causal: tc.causal, Scale: tc.scale}); err != nil {
					t.Fatal(err)
				}
				expectClose(t, d, dst, ref.Attention(hq, hk, hv, tc.heads, tc.causal, float64(tc.scale)))
			})
		})
	}
}

func TestPointwise(t *testing.T) {
	forEachMode(t, func(t *testing.T, d *Device) {
		rng := rand.New(rand.NewPCG(6, 6))
		for _, act := range []backend.Activation{backend.None, backend.SiLU, backend.GELU, backend.QuickGELU} {
			x, hx := activation(t, d, rng, 3, 77, 5)
			dst := output(t, d, 3, 77, 5)
			if err := d.Activate(dst, x, act); err != nil {
				t.Fatal(err)
			}
			expectClose(t, d, dst, ref.ActivateAll(hx, act))
			// In place.
			if err := d.Activate(x, x, act); err != nil {
				t.Fatal(err)
			}
			expectClose(t, d, x, ref.ActivateAll(hx, act))
		}

		x, hx := activation(t, d, rng, 2, 9, 7)
		y, hy := activation(t, d, rng, 2, 9, 7)
		if err := d.Axpby(x, 0.75, x, -1.5, y); err != nil {
			t.Fatal(err)
		}
		expectClose(t, d, x, ref.Axpby(0.75, hx, -1.5, hy))

		a, ha := activation(t, d, rng, 2, 3, 5, 7)
		bias, hbias := activation(t, d, rng, 2, 7)
		if err := d.AddChannelBias(a, a, bias); err != nil {
			t.Fatal(err)
		}
		expectClose(t, d, a, ref.AddChannelBias(ha, hbias))

		g, hg := activation(t, d, rng, 2, 7, 90)
		gd := output(t, d, 2, 7, 45)
		if err := d.GEGLU(gd, g); err != nil {
			t.Fatal(err)
		}
		expectClose(t, d, gd, ref.GEGLU(hg))

		ca, hca := activation(t, d, rng, 2, 3, 5)
		cb, hcb := activation(t, d, rng, 2, 3, 7)
		cd := output(t, d, 2, 3, 12)
		if err := d.Concat(cd, ca, cb); err != nil {
			t.Fatal(err)
		}
		expectClose(t, d, cd, ref.Concat(hca, hcb))
	})
}

// resizeNearest is PyTorch's nearest rule, written out for the test.
func resizeNearest(x *tensor.Tensor, ho, wo int) *tensor.Tensor {
	n, h, w, c := x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3]
	out := tensor.MustNew(n, ho, wo, c)
	sh, sw := float32(h)/float32(ho), float32(w)/float32(wo)
	for b := 0; b < n; b++ {
		for oy := 0; oy < ho; oy++ {
			iy := min(int(float32(oy)*sh), h-1)
			for ox := 0; ox < wo; ox++ {
				ix := min(int(float32(ox)*sw), w-1)
				copy(out.Data[((b*ho+oy)*wo+ox)*c:][:c], x.Data[((b*h+iy)*w+ix)*c:][:c])
			}
		}
	}
	return out
}

func TestResizeNearest(t *testing.T) {
	forEachMode(t, func(t *testing.T, d *Device) {
		rng := rand.New(rand.NewPCG(7, 7))
		x, hx := activation(t, d, rng, 2, 3, 5, 4)
		up := output(t, d, 2, 6, 10, 4)
		if err := d.ResizeNearest(up, x); err != nil {
			t.Fatal(err)
		}
		expectClose(t, d, up, ref.Upsample2x(hx))
		odd := output(t, d, 2, 7, 4, 4)
		if err := d.ResizeNearest(odd, x); err != nil {
			t.Fatal(err)
		}
		expectClose(t, d, odd, resizeNearest(hx, 7, 4))
	})
}

func TestEmbedding(t *testing.T) {
	forEachMode(t, func(t *testing.T, d *Device) {
		rng := rand.New(rand.NewPCG(8, 8))
		table, htable := weight(t, d, rng, 1, 50, 24)
		ids := make([]int, 77)
		for i := range ids {
			ids[i] = rng.IntN(50)
		}
		dst := output(t, d, 1, 77, 24)
		if err := d.Embedding(dst, table, ids); err != nil {
			t.Fatal(err)
		}
		want := ref.Embedding(htable, ids)
		want.Shape = []int{1, 77, 24}
		expectClose(t, d, dst, want)
		// An activation as the table (fp32 in the fp32 modes).
		table32, htable32 := activation(t, d, rng, 50, 24)
		if err := d.Embedding(dst, table32, ids); err != nil {
			t.Fatal(err)
		}
		want32 := ref.Embedding(htable32, ids)
		want32.Shape = []int{1, 77, 24}
		expectClose(t, d, dst, want32)
		if err := d.Embedding(dst, table, append(ids[:76], 50)); err == nil || !strings.Contains(err.Error(), "ids[76] = 50") {
			t.Errorf("out-of-range id: %v, want an error naming it", err)
		}
	})
}
