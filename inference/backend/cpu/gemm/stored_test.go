package gemm

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/sdfleet/sdfleet/inference/backend/cpu/workpool"
	"github.com/sdfleet/sdfleet/inference/tensor"
)

// encode stores values in dtype d and returns the bytes and the values the
// encoding actually holds.
func encode(d tensor.DType, values []float32) ([]byte, []float32) {
	held := make([]float32, len(values))
	b := make([]byte, d.Size()*len(values))
	for i, v := range values {
		switch d {
		case tensor.F32:
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
			held[i] = v
		case tensor.F16:
			h := tensor.Float32ToHalf(v)
			binary.LittleEndian.PutUint16(b[2*i:], h)
			held[i] = tensor.HalfToFloat32(h)
		case tensor.BF16:
			h := RoundBF16(v)
			binary.LittleEndian.PutUint16(b[2*i:], h)
			held[i] = BF16ToFloat32(h)
		}
	}
	return b, held
}

// referenceProduct is the float64 product of x [m, k] and a PyTorch-layout
// weight w [n, k], each operand first passed through round (identity for
// fp32, bf16 rounding for the bf16 reference). It also returns, per
// element, the sum of the terms' magnitudes, the scale of float32
// accumulation error.
func referenceProduct(x, w []float32, m, n, k int, round func(float32) float32) (want, scale []float64) {
	want, scale = make([]float64, m*n), make([]float64, m*n)
	for i := range m {
		for j := range n {
			var s, a float64
			for p := range k {
				t := float64(round(x[i*k+p])) * float64(round(w[j*k+p]))
				s += t
				a += math.Abs(t)
			}
			want[i*n+j], scale[i*n+j] = s, a
		}
	}
	return want, scale
}

func bf16Round(v float32) float32 { return BF16ToFloat32(RoundBF16(v)) }

// TestMultiplyStoredFormats multiplies weights stored as F32, F16 and BF16
// in every format that can hold them, on every kernel. The exact formats
// must match the float64 product of the stored values to float32
// accumulation error; FormatBF16Pairs must match the pure-Go bf16
// reference (both operands rounded to bf16, products exact, summed in
// float64) to the same error, whichever way the kernel multiplies it: by
// VDPBF16PS on CPUs with AVX-512 BF16 (the "avx512" kernel here, when this
// CPU has it) or by widening to float32 elsewhere.
func TestMultiplyStoredFormats(t *testing.T) {
	shapes := []struct{ m, n, k int }{{1, 1, 1}, {3, 5, 7}, {12, 32, 16}, {13, 33, 257}, {17, 70, 513}, {250, 64, 40}, {9, 40, 0}}
	for _, kern := range Kernels() {
		pool := workpool.New(2)
		eng := NewEngine(pool, kern)
		for _, d := range []tensor.DType{tensor.F32, tensor.F16, tensor.BF16} {
			for _, f := range []Format{StoredFormat(d), FormatBF16Pairs} {
				for _, s := range shapes {
					name := fmt.Sprintf("%s/native-bf16=%v/%v-as-%v/%dx%dx%d", kern.Name, kern.NativeBF16(), d, f, s.m, s.n, s.k)
					t.Run(name, func(t *testing.T) {
						rng := rand.New(rand.NewPCG(uint64(s.m), uint64(s.n*1000+s.k)))
						x := randomTensor(rng, s.m, s.k).Data
						raw, held := encode(d, randomTensor(rng, s.n, s.k).Data)
						pb, err := PackStored(pool, kern, Stored{DType: d, Data: raw, K: s.k, N: s.n, RowStride: 1, ColStride: s.k}, f)
						if err != nil {
							t.Fatal(err)
						}
						round := func(v float32) float32 { return v }
						if f == FormatBF16Pairs {
							round = bf16Round
						}
						want, scale := referenceProduct(x, held, s.m, s.n, s.k, round)
						c := make([]float32, s.m*s.n)
						if err := eng.Multiply(Dense{Data: x, M: s.m, K: s.k, LD: s.k}, pb, c, s.n, nil); err != nil {
							t.Fatal(err)
						}
						for i, g := range c {
							// float32 accumulation of k terms errs by at most
							// about k·2⁻²⁴ of the sum of their magnitudes.
							bound := float64(s.k+2)*0x1p-24*scale[i] + 1e-30
							if diff := math.Abs(float64(g) - want[i]); !(diff <= bound) {
								t.Fatalf("element %d: got %g, want %g (diff %g > %g)", i, g, want[i], diff, bound)
							}
						}
					})
				}
			}
		}
		pool.Close()
	}
}

// TestBF16MicroKernelMatchesReference compares the bf16 micro-kernel
// with VDPBF16PS's definition computed in Go: per lane, the odd pair
// product then the even one added to the accumulator, each rounded to
// float32. It runs on CPUs with AVX-512 BF16; elsewhere no such
// micro-kernel exists to check, and TestMultiplyStoredFormats covers the
// widening path that replaces it.
func TestBF16MicroKernelMatchesReference(t *testing.T) {
	for _, kern := range Kernels() {
		if !kern.NativeBF16() {
			continue
		}
		t.Run(kern.Name, func(t *testing.T) {
			const pairs = 37
			mr, nr := kern.MR, kern.NR
			rng := rand.New(rand.NewPCG(5, 6))
			a := make([]uint16, mr*2*pairs)
			b := make([]uint16, nr*2*pairs)
			for i := range a {
				a[i] = RoundBF16(float32(rng.NormFloat64()))
			}
			for i := range b {
				b[i] = RoundBF16(float32(rng.NormFloat64()))
			}
			for _, accumulate := range []int{0, 1} {
				c := make([]float32, mr*nr)
				want := make([]float32, mr*nr)
				for i := range c {
					c[i] = float32(i % 7)
					if accumulate == 1 {
						want[i] = c[i]
					}
				}
				for r := range mr {
					for j := range nr {
						var acc float32
						for p := range pairs {
							a0, a1 := BF16ToFloat32(a[(p*mr+r)*2]), BF16ToFloat32(a[(p*mr+r)*2+1])
							b0, b1 := BF16ToFloat32(b[(p*nr+j)*2]), BF16ToFloat32(b[(p*nr+j)*2+1])
							acc = float32(float64(acc) + float64(a1)*float64(b1))
							acc = float32(float64(acc) + float64(a0)*float64(b0))
						}
						if accumulate == 1 {
							want[r*nr+j] += acc
						} else {
							want[r*nr+j] = acc
						}
					}
				}
				kern.runBF16(pairs, &a[0], &b[0], &c[0], nr, accumulate)
				for i := range c {
					if diff := math.Abs(float64(c[i] - want[i])); diff > 1e-5*math.Abs(float64(want[i]))+1e-6 {
						t.Fatalf("accumulate=%d element %d: got %g, want %g", accumulate, i, c[i], want[i])
					}
				}
			}
		})
	}
}

func TestRoundBF16(t *testing.T) {
	cases := []struct {
		in   uint32
		want uint16
	}{
		{0x3f800000, 0x3f80}, // 1
		{0x3f808000, 0x3f80}, // tie, even stays
		{0x3f818000, 0x3f82}, // tie, odd rounds up
		{0x3f808001, 0x3f81}, // above the tie
		{0xbf80ffff, 0xbf81}, // negative rounds away in magnitude
		{0x7f7fffff, 0x7f80}, // largest float overflows to infinity
		{0x7f800000, 0x7f80}, // infinity
		{0x7f800001, 0x7fc0}, // signalling NaN stays a NaN
	}
	for _, c := range cases {
		if got := RoundBF16(math.Float32frombits(c.in)); got != c.want {
			t.Errorf("RoundBF16(%#08x) = %#04x, want %#04x", c.in, got, c.want)
		}
	}
}

// TestWidenIsExact converts every 16-bit pattern, through the assembly
// loops where the CPU has them and the Go tail.
func TestWidenIsExact(t *testing.T) {
	src := make([]uint16, 1<<16+3)
	for i := range src {
		src[i] = uint16(i)
	}
	dst := make([]float32, len(src))
	WidenF16(dst, src)
	for i, h := range src {
		want := tensor.HalfToFloat32(h)
		if math.Float32bits(dst[i]) != math.Float32bits(want) && !(want != want && dst[i] != dst[i]) {
			t.Fatalf("WidenF16(%#04x) = %g, want %g", h, dst[i], want)
		}
	}
	WidenBF16(dst, src)
	for i, h := range src {
		if math.Float32bits(dst[i]) != uint32(h)<<16 {
			t.Fatalf("WidenBF16(%#04x) = %#08x", h, math.Float32bits(dst[i]))
		}
	}
}

func TestPackStoredRejectsBadInput(t *testing.T) {
	kern := Best()
	ok := Stored{DType: tensor.F16, Data: make([]byte, 2*12), K: 4, N: 3, RowStride: 3, ColStride: 1}
	if _, err := PackStored(nil, kern, ok, FormatF16); err != nil {
		t.Fatalf("valid matrix: %v", err)
	}
	cases := map[string]struct {
		s Stored
		f Format
	}{
		"short data":      {Stored{DType: tensor.F16, Data: make([]byte, 2*11), K: 4, N: 3, RowStride: 3, ColStride: 1}, FormatF16},
		"inexact format":  {Stored{DType: tensor.F32, Data: make([]byte, 4*12), K: 4, N: 3, RowStride: 3, ColStride: 1}, FormatF16},
		"row offsets":     {Stored{DType: tensor.F16, Data: make([]byte, 2*12), K: 4, N: 3, ColStride: 1, RowOffsets: []int{0, 3}}, FormatF16},
		"negative offset": {Stored{DType: tensor.F16, Data: make([]byte, 2*12), K: 2, N: 3, ColStride: 1, RowOffsets: []int{0, -1}}, FormatF16},
		"unknown format":  {ok, Format(9)},
	}
	for name, c := range cases {
		if _, err := PackStored(nil, kern, c.s, c.f); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestPackStoredF32MatchesPackWeights checks the parallel packer against
// the float32 one, with row offsets standing for a plain row stride.
func TestPackStoredF32MatchesPackWeights(t *testing.T) {
	pool := workpool.New(2)
	defer pool.Close()
	for _, kern := range Kernels() {
		rng := rand.New(rand.NewPCG(1, 1))
		k, n := 600, 77
		w := randomTensor(rng, n, k).Data
		raw, _ := encode(tensor.F32, w)
		offsets := make([]int, k)
		for i := range offsets {
			offsets[i] = i
		}
		pb, err := PackStored(pool, kern, Stored{DType: tensor.F32, Data: raw, K: k, N: n, ColStride: k, RowOffsets: offsets}, FormatF32)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := PackWeights(kern, w, k, n, 1, k)
		if !slices.Equal(pb.data, want.data) || pb.Bytes() != int64(4*len(want.data)) {
			t.Fatalf("%s: parallel packing differs from PackWeights", kern.Name)
		}
	}
}

// TestMultiplyStoredConvolutionTaps packs weights stored as a convolution
// stores them ([out][in][tap], multiplied tap by tap, so that the row
// offsets are not in file order) in every format and checks the product,
// with a depth that spans several K-blocks and a tap that straddles two.
func TestMultiplyStoredConvolutionTaps(t *testing.T) {
	const m, in, taps, n = 13, 100, 9, 37
	k := in * taps
	rows := make([]int, k)
	for tap := range taps {
		for ci := range in {
			rows[tap*in+ci] = ci*taps + tap
		}
	}
	pool := workpool.New(2)
	defer pool.Close()
	for _, kern := range Kernels() {
		eng := NewEngine(pool, kern)
		for _, d := range []tensor.DType{tensor.F32, tensor.F16, tensor.BF16} {
			for _, f := range []Format{StoredFormat(d), FormatBF16Pairs} {
				t.Run(fmt.Sprintf("%s/%v-as-%v", kern.Name, d, f), func(t *testing.T) {
					rng := rand.New(rand.NewPCG(7, uint64(d)))
					x := randomTensor(rng, m, k).Data
					raw, held := encode(d, randomTensor(rng, n, k).Data)
					// The reference weight in multiply order: W[j][tap·in+ci].
					w := make([]float32, n*k)
					for j := range n {
						for r := range k {
							w[j*k+r] = held[j*k+rows[r]]
						}
					}
					pb, err := PackStored(pool, kern, Stored{DType: d, Data: raw, K: k, N: n, ColStride: k, RowOffsets: rows}, f)
					if err != nil {
						t.Fatal(err)
					}
					round := func(v float32) float32 { return v }
					if f == FormatBF16Pairs {
						round = bf16Round
					}
					want, scale := referenceProduct(x, w, m, n, k, round)
					c := make([]float32, m*n)
					if err := eng.Multiply(Dense{Data: x, M: m, K: k, LD: k}, pb, c, n, nil); err != nil {
						t.Fatal(err)
					}
					for i, g := range c {
						bound := float64(k+2)*0x1p-24*scale[i] + 1e-30
						if diff := math.Abs(float64(g) - want[i]); !(diff <= bound) {
							t.Fatalf("element %d: got %g, want %g (diff %g > %g)", i, g, want[i], diff, bound)
						}
					}
				})
			}
		}
	}
}
