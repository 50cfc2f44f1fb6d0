package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/sdfleet/sdfleet/inference/backend"
	"github.com/sdfleet/sdfleet/inference/backend/cpu/gemm"
	"github.com/sdfleet/sdfleet/inference/backend/ref"
	"github.com/sdfleet/sdfleet/inference/tensor"
)

// forEachKernel runs fn against a backend forced onto every micro-kernel
// this machine supports, so AVX-512, AVX2 and pure Go are all exercised
// wherever the hardware has them.
func forEachKernel(t *testing.T, fn func(t *testing.T, b *Backend)) {
	for _, k := range gemm.Kernels() {
		t.Run(k.Name, func(t *testing.T) {
			b, err := New(Options{Kernel: k.Name, Workers: 2})
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			if b.Name() != "cpu/"+k.Name {
				t.Fatalf("Name() = %q, want cpu/%s", b.Name(), k.Name)
			}
			fn(t, b)
		})
	}
}

func randomTensor(rng *rand.Rand, shape ...int) *tensor.Tensor {
	t := tensor.MustNew(shape...)
	for i := range t.Data {
		t.Data[i] = float32(rng.NormFloat64())
	}
	return t
}

func randomVector(rng *rand.Rand, n int) []float32 {
	return randomTensor(rng, n).Data
}

// vec wraps a norm's scale or shift as the one-dimensional tensor the
// backend takes.
func vec(v []float32) *tensor.Tensor {
	t, err := tensor.FromData(v, len(v))
	if err != nil {
		panic(err)
	}
	return t
}

// assertClose checks got against the float64 oracle: relative tolerance
// 1e-4 plus an absolute floor for results that cancel to near zero, sized
// by the caller from the magnitude of the terms summed.
func assertClose(t *testing.T, got, want *tensor.Tensor, floor float64) {
	t.Helper()
	if !tensor.EqualShape(got.Shape, want.Shape) {
		t.Fatalf("shape %v, want %v", got.Shape, want.Shape)
	}
	for i := range got.Data {
		g, w := float64(got.Data[i]), float64(want.Data[i])
		if math.IsNaN(g) || math.Abs(g-w) > 1e-4*math.Abs(w)+floor {
			t.Fatalf("element %d of %v: got %g, want %g (diff %g)", i, got.Shape, g, w, math.Abs(g-w))
		}
	}
}

func dotFloor(depth int) float64 { return 2e-6 * math.Sqrt(float64(max(depth, 1))) }

func TestMatMul(t *testing.T) {
	cases := []struct {
		name     string
		shape    []int // x's shape; the last dimension is in
		out      int
		bias     bool
		act      backend.Activation
		residual bool
	}{
		{"single element", []int{1, 1}, 1, false, backend.None, false},
		{"below tile", []int{3, 5}, 7, true, backend.None, false},
		{"odd with silu", []int{2, 13, 37}, 33, true, backend.SiLU, false},
		{"gelu and residual", []int{29, 64}, 70, true, backend.GELU, true},
		{"quick gelu deep", []int{1, 77, 300}, 45, true, backend.QuickGELU, false},
		{"residual only", []int{50, 257}, 64, false, backend.None, true},
	}
	forEachKernel(t, func(t *testing.T, b *Backend) {
		for i, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				rng := rand.New(rand.NewPCG(uint64(i), 7))
				in := tc.shape[len(tc.shape)-1]
				x := randomTensor(rng, tc.shape...)
				w := randomTensor(rng, tc.out, in)
				var bias []float32
				var biasRaw *tensor.Raw
				if tc.bias {
					bias = randomVector(rng, tc.out)
					r := tensor.RawFromFloat32(bias, tc.out)
					biasRaw = &r
				}
				outShape := append(append([]int(nil), tc.shape[:len(tc.shape)-1]...), tc.out)
				var residual *tensor.Tensor
				if tc.residual {
					residual = randomTensor(rng, outShape...)
				}
				lin, err := b.LoadLinear(tensor.RawFromFloat32(w.Data, tc.out, in), biasRaw)
				if err != nil {
					t.Fatal(err)
				}
				if lin.In() != in || lin.Out() != tc.out {
					t.Fatalf("loaded %dx%d, want %dx%d", lin.In(), lin.Out(), in, tc.out)
				}
				dst := tensor.MustNew(outShape...)
				if err := b.MatMul(dst, x, lin, backend.Epilogue{Act: tc.act, Residual: residual}); err != nil {
					t.Fatal(err)
				}
				assertClose(t, dst, ref.MatMul(x, w, bias, tc.act, residual), dotFloor(in))
			})
		}
	})
}

func TestLoadLinearDecodesHalfPrecision(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const out, in = 9, 21
	for _, dtype := range []tensor.DType{tensor.F16, tensor.BF16} {
		t.Run(dtype.String(), func(t *testing.T) {
			raw := tensor.Raw{DType: dtype, Shape: []int{out, in}, Data: make([]byte, 2*out*in)}
			for i := 0; i < out*in; i++ {
				v := float32(rng.NormFloat64())
				var h uint16
				if dtype == tensor.F16 {
					h = tensor.Float32ToHalf(v)
				} else {
					h = tensor.Float32ToBFloat16(v)
				}
				raw.Data[2*i], raw.Data[2*i+1] = byte(h), byte(h>>8)
			}
			decoded, err := raw.Float32()
			if err != nil {
				t.Fatal(err)
			}
			b, err := New(Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			lin, err := b.LoadLinear(raw, nil)
			if err != nil {
				t.Fatal(err)
			}
			x := randomTensor(rng, 4, in)
			dst := tensor.MustNew(4, out)
			if err := b.MatMul(dst, x, lin, backend.Epilogue{}); err != nil {
				t.Fatal(err)
			}
			assertClose(t, dst, ref.MatMul(x, decoded, nil, backend.None, nil), dotFloor(in))
		})
	}
}

func TestConv2D(t *testing.T) {
	cases := []struct {
		n, h, w, cin, cout, k, stride int
		bias, residual                bool
		act                           backend.Activation
	}{
		{1, 1, 1, 4, 3, 3, 1, false, false, backend.None},
		{1, 5, 7, 3, 5, 3, 1, true, false, backend.None},
		{2, 9, 6, 13, 17, 3, 2, true, true, backend.None},
		{1, 8, 8, 16, 40, 1, 1, true, false, backend.SiLU},
		{1, 7, 7, 5, 6, 1, 2, false, true, backend.None},
		{1, 16, 12, 40, 33, 3, 1, true, true, backend.None}, // depth 360 crosses a K-block
		{1, 10, 10, 64, 32, 3, 2, true, false, backend.None},
	}
	forEachKernel(t, func(t *testing.T, b *Backend) {
		for i, tc := range cases {
			t.Run(fmt.Sprintf("%dx%dx%dx%d_to_%d_k%d_s%d", tc.n, tc.h, tc.w, tc.cin, tc.cout, tc.k, tc.stride), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(uint64(i), 11))
				x := randomTensor(rng, tc.n, tc.h, tc.w, tc.cin)
				w := randomTensor(rng, tc.cout, tc.cin, tc.k, tc.k)
				var bias []float32
				var biasRaw *tensor.Raw
				if tc.bias {
					bias = randomVector(rng, tc.cout)
					r := tensor.RawFromFloat32(bias, tc.cout)
					biasRaw = &r
				}
				ho, wo := (tc.h-1)/tc.stride+1, (tc.w-1)/tc.stride+1
				var residual *tensor.Tensor
				if tc.residual {
					residual = randomTensor(rng, tc.n, ho, wo, tc.cout)
				}
				conv, err := b.LoadConv2D(tensor.RawFromFloat32(w.Data, w.Shape...), biasRaw, tc.stride)
				if err != nil {
					t.Fatal(err)
				}
				if conv.InChannels() != tc.cin || conv.OutChannels() != tc.cout || conv.Kernel() != tc.k || conv.Stride() != tc.stride {
					t.Fatalf("loaded conv reports %d→%d k%d s%d", conv.InChannels(), conv.OutChannels(), conv.Kernel(), conv.Stride())
				}
				dst := tensor.MustNew(tc.n, ho, wo, tc.cout)
				if err := b.Conv2D(dst, x, conv, backend.Epilogue{Act: tc.act, Residual: residual}); err != nil {
					t.Fatal(err)
				}
				want := ref.Conv2D(x, w, bias, tc.stride, tc.act, residual)
				assertClose(t, dst, want, dotFloor(tc.k*tc.k*tc.cin))
			})
		}
	})
}

func TestGroupNorm(t *testing.T) {
	cases := []struct {
		shape  []int
		groups int
		act    backend.Activation
	}{
		{[]int{1, 1, 1, 4}, 2, backend.None},
		{[]int{2, 5, 3, 12}, 3, backend.SiLU},
		{[]int{1, 16, 16, 64}, 32, backend.SiLU},
		{[]int{2, 37, 20}, 4, backend.None}, // [N, T, C] sequence
	}
	forEachKernel(t, func(t *testing.T, b *Backend) {
		for i, tc := range cases {
			t.Run(fmt.Sprint(tc.shape, tc.groups, tc.act), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(uint64(i), 13))
				x := randomTensor(rng, tc.shape...)
				for j := range x.Data {
					x.Data[j] = x.Data[j]*3 + 5 // an offset mean tests the two-pass variance
				}
				c := tc.shape[len(tc.shape)-1]
				scale, shift := randomVector(rng, c), randomVector(rng, c)
				dst := tensor.MustNew(tc.shape...)
				if err := b.GroupNorm(dst, x, tc.groups, vec(scale), vec(shift), 1e-5, tc.act); err != nil {
					t.Fatal(err)
				}
				assertClose(t, dst, ref.GroupNorm(x, tc.groups, scale, shift, 1e-5, tc.act), 1e-5)
			})
		}
	})
}

func TestLayerNorm(t *testing.T) {
	b, err := New(Options{Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for i, shape := range [][]int{{1, 1}, {3, 7}, {2, 77, 768}, {5, 33}} {
		t.Run(fmt.Sprint(shape), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(i), 17))
			x := randomTensor(rng, shape...)
			c := shape[len(shape)-1]
			scale, shift := randomVector(rng, c), randomVector(rng, c)
			dst := tensor.MustNew(shape...)
			if err := b.LayerNorm(dst, x, vec(scale), vec(shift), 1e-5); err != nil {
				t.Fatal(err)
			}
			assertClose(t, dst, ref.LayerNorm(x, scale, shift, 1e-5), 1e-5)
		})
	}
}

func TestAttention(t *testing.T) {
	cases := []struct {
		name          string
		batch, tq, tk int
		heads, width  int
		causal        bool
		scale         float32
	}{
		{"single token", 1, 1, 1, 1, 1, false, 0},
		{"below tile", 1, 5, 7, 1, 3, false, 0},
		{"cross attention", 2, 50, 77, 2, 8, false, 0},
		{"causal text encoder", 1, 77, 77, 4, 16, true, 0},
		{"causal with longer keys", 1, 13, 300, 1, 5, true, 0},
		{"several key blocks", 1, 300, 600, 2, 40, false, 0},
		{"explicit scale", 1, 30, 20, 3, 7, false, 0.3},
		{"causal wide heads over key blocks", 1, 300, 300, 2, 40, true, 0},
		{"causal head wider than two panels", 2, 40, 90, 1, 80, true, 0},
	}
	forEachKernel(t, func(t *testing.T, b *Backend) {
		for i, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				rng := rand.New(rand.NewPCG(uint64(i), 19))
				c := tc.heads * tc.width
				q := randomTensor(rng, tc.batch, tc.tq, c)
				k := randomTensor(rng, tc.batch, tc.tk, c)
				v := randomTensor(rng, tc.batch, tc.tk, c)
				dst := tensor.MustNew(tc.batch, tc.tq, c)
				p := backend.AttentionParams{Heads: tc.heads, Causal: tc.causal, Scale: tc.scale}
				if err := b.Attention(dst, q, k, v, p); err != nil {
					t.Fatal(err)
				}
				want := ref.Attention(q, k, v, tc.heads, tc.causal, float64(tc.scale))
				assertClose(t, dst, want, 2e-6)
			})
		}
	})
}

func TestElementwise(t *testing.T) {
	forEachKernel(t, testElementwise)
}

// testElementwise covers the element-wise operations; the activations use
// the kernel's vector exponential, so it runs once per kernel.
func testElementwise(t *testing.T, b *Backend) {
	rng := rand.New(rand.NewPCG(23, 29))

	t.Run("activations", func(t *testing.T) {
		x := randomTensor(rng, 3, 40001) // spans several parallel chunks
		for j := range x.Data[:200] {
			x.Data[j] = float32(j-100) * 0.5 // the tails, where cancellation bites
		}
		for j := range x.Data[200:30200] {
			x.Data[200+j] = -15 + float32(j)*0.001 // a fine sweep of the curved part
		}
		for _, act := range []backend.Activation{backend.None, backend.SiLU, backend.GELU, backend.QuickGELU} {
			dst := tensor.MustNew(x.Shape...)
			if err := b.Activate(dst, x, act); err != nil {
				t.Fatal(err)
			}
			assertClose(t, dst, ref.ActivateAll(x, act), 1e-30)
		}
	})
	t.Run("activate in place", func(t *testing.T) {
		x := randomTensor(rng, 100)
		want := ref.ActivateAll(x, backend.SiLU)
		if err := b.Activate(x, x, backend.SiLU); err != nil {
			t.Fatal(err)
		}
		assertClose(t, x, want, 1e-30)
	})
	t.Run("geglu", func(t *testing.T) {
		for _, shape := range [][]int{{1, 2}, {2, 7, 10}, {1, 300, 128}} {
			x := randomTensor(rng, shape...)
			dst := tensor.MustNew(append(shape[:len(shape)-1:len(shape)-1], shape[len(shape)-1]/2)...)
			if err := b.GEGLU(dst, x); err != nil {
				t.Fatal(err)
			}
			assertClose(t, dst, ref.GEGLU(x), 1e-30)
		}
	})
	t.Run("upsample", func(t *testing.T) {
		for _, shape := range [][]int{{1, 1, 1, 1}, {2, 3, 5, 7}} {
			x := randomTensor(rng, shape...)
			dst := tensor.MustNew(shape[0], 2*shape[1], 2*shape[2], shape[3])
			if err := b.ResizeNearest(dst, x); err != nil {
				t.Fatal(err)
			}
			assertClose(t, dst, ref.Upsample2x(x), 0)
		}
	})
	t.Run("resize nearest", func(t *testing.T) {
		// A 1×3 row resized to 1×5 takes source columns floor(x·3/5):
		// 0 0 1 1 2, PyTorch's "nearest" rule.
		cases := []struct {
			h, w, ho, wo int
			want         []float32
		}{
			{1, 3, 1, 5, []float32{0, 0, 1, 1, 2}},
			{1, 2, 2, 4, []float32{0, 0, 1, 1, 0, 0, 1, 1}},
			{2, 1, 3, 1, []float32{0, 0, 1}},
			{3, 3, 5, 5, []float32{0, 0, 1, 1, 2, 0, 0, 1, 1, 2, 3, 3, 4, 4, 5, 3, 3, 4, 4, 5, 6, 6, 7, 7, 8}},
		}
		for _, tc := range cases {
			src := tensor.MustNew(1, tc.h, tc.w, 1)
			for i := range src.Data {
				src.Data[i] = float32(i)
			}
			dst := tensor.MustNew(1, tc.ho, tc.wo, 1)
			if err := b.ResizeNearest(dst, src); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(dst.Data, tc.want) {
				t.Errorf("%dx%d to %dx%d: %v, want %v", tc.h, tc.w, tc.ho, tc.wo, dst.Data, tc.want)
			}
		}
	})
	t.Run("concat", func(t *testing.T) {
		a, c := randomTensor(rng, 2, 3, 4, 5), randomTensor(rng, 2, 3, 4, 9)
		dst := tensor.MustNew(2, 3, 4, 14)
		if err := b.Concat(dst, a, c); err != nil {
			t.Fatal(err)
		}
		assertClose(t, dst, ref.Concat(a, c), 0)
	})
	t.Run("embedding", func(t *testing.T) {
		table := randomTensor(rng, 11, 6)
		ids := []int{0, 10, 3, 3}
		dst := tensor.MustNew(4, 6)
		if err := b.Embedding(dst, table, ids); err != nil {
			t.Fatal(err)
		}
		assertClose(t, dst, ref.Embedding(table, ids), 0)
	})
	t.Run("axpby in place", func(t *testing.T) {
		x, y := randomTensor(rng, 3, 50000), randomTensor(rng, 3, 50000)
		want := ref.Axpby(0.7, x, -1.3, y)
		if err := b.Axpby(y, 0.7, x, -1.3, y); err != nil {
			t.Fatal(err)
		}
		assertClose(t, y, want, 1e-6)
	})
	t.Run("channel bias", func(t *testing.T) {
		x, bias := randomTensor(rng, 2, 4, 3, 5), randomTensor(rng, 2, 5)
		dst := tensor.MustNew(2, 4, 3, 5)
		if err := b.AddChannelBias(dst, x, bias); err != nil {
			t.Fatal(err)
		}
		assertClose(t, dst, ref.AddChannelBias(x, bias), 1e-6)
	})
}
