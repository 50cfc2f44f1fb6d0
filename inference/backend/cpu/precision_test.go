package cpu

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/sdfleet/sdfleet/inference/backend"
	"github.com/sdfleet/sdfleet/inference/backend/cpu/gemm"
	"github.com/sdfleet/sdfleet/inference/backend/ref"
	"github.com/sdfleet/sdfleet/inference/tensor"
)

func TestPrecisionOption(t *testing.T) {
	for _, k := range gemm.Kernels() {
		auto := PrecisionFP32
		if k.NativeBF16() {
			auto = PrecisionBF16
		}
		for in, want := range map[string]Precision{"": PrecisionFP32, "fp32": PrecisionFP32, "bf16": PrecisionBF16, "auto": auto} {
			b, err := New(Options{Kernel: k.Name, Workers: 1, Precision: in})
			if err != nil {
				t.Fatalf("%s, precision %q: %v", k.Name, in, err)
			}
			if b.Precision() != want {
				t.Errorf("%s, precision %q: got %s, want %s", k.Name, in, b.Precision(), want)
			}
			b.Close()
		}
	}
	_, err := New(Options{Precision: "fp16"})
	if err == nil || !strings.Contains(err.Error(), "Precision") || !strings.Contains(err.Error(), "auto, fp32, bf16") {
		t.Errorf("precision fp16: err = %v, want one naming the option and its values", err)
	}
}

// half stores values as F16 and returns the raw weight with the float32
// values it holds.
func half(values []float32, shape ...int) (tensor.Raw, *tensor.Tensor) {
	raw := tensor.Raw{DType: tensor.F16, Shape: shape, Data: make([]byte, 2*len(values))}
	held := tensor.MustNew(shape...)
	for i, v := range values {
		h := tensor.Float32ToHalf(v)
		binary.LittleEndian.PutUint16(raw.Data[2*i:], h)
		held.Data[i] = tensor.HalfToFloat32(h)
	}
	return raw, held
}

// TestFP16WeightsAreExactInFP32 loads fp16 weights, which stay 16-bit in
// memory, and the same values as float32: in fp32 precision both give
// bit-identical products, since widening half to float32 is exact and the
// multiply is the same.
func TestFP16WeightsAreExactInFP32(t *testing.T) {
	forEachKernel(t, func(t *testing.T, b *Backend) {
		rng := rand.New(rand.NewPCG(3, 4))
		x := randomTensor(rng, 2, 9, 7, 24)
		raw, held := half(randomVector(rng, 40*24*3*3), 40, 24, 3, 3)
		for _, stride := range []int{1, 2} {
			c16, err := b.LoadConv2D(raw, nil, stride)
			if err != nil {
				t.Fatal(err)
			}
			c32, err := b.LoadConv2D(tensor.RawFromFloat32(held.Data, held.Shape...), nil, stride)
			if err != nil {
				t.Fatal(err)
			}
			if got := c16.(*conv2D).packed.Format; got != gemm.FormatF16 {
				t.Fatalf("fp16 conv weight packed as %v, want %v", got, gemm.FormatF16)
			}
			ho, wo := (9-1)/stride+1, (7-1)/stride+1
			d16, d32 := tensor.MustNew(2, ho, wo, 40), tensor.MustNew(2, ho, wo, 40)
			must(t, b.Conv2D(d16, x, c16, backend.Epilogue{}))
			must(t, b.Conv2D(d32, x, c32, backend.Epilogue{}))
			if !slices.Equal(d16.Data, d32.Data) {
				t.Fatalf("stride %d: fp16 weights give other products than the same values in float32", stride)
			}
		}
		xl := randomTensor(rng, 13, 300)
		lraw, lheld := half(randomVector(rng, 70*300), 70, 300)
		l16, err := b.LoadLinear(lraw, nil)
		must(t, err)
		l32, err := b.LoadLinear(tensor.RawFromFloat32(lheld.Data, 70, 300), nil)
		must(t, err)
		d16, d32 := tensor.MustNew(13, 70), tensor.MustNew(13, 70)
		must(t, b.MatMul(d16, xl, l16, backend.Epilogue{}))
		must(t, b.MatMul(d32, xl, l32, backend.Epilogue{}))
		if !slices.Equal(d16.Data, d32.Data) {
			t.Fatal("fp16 linear weights give other products than the same values in float32")
		}
	})
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func abs(x *tensor.Tensor) *tensor.Tensor {
	out := tensor.MustNew(x.Shape...)
	for i, v := range x.Data {
		out.Data[i] = float32(math.Abs(float64(v)))
	}
	return out
}

// TestBF16PrecisionAccuracy runs a convolution and a linear layer in bf16
// precision on every kernel (VDPBF16PS where the CPU has it, widening
// elsewhere) against the float64 reference. Rounding each operand to
// bf16 errs by at most 2⁻⁹ of it, so each product by at most about 2⁻⁸
// of its magnitude; with float32 accumulation the sum is then within
// 2⁻⁸·Σ|x·w| (plus float32's own error) of the exact one.
func TestBF16PrecisionAccuracy(t *testing.T) {
	for _, k := range gemm.Kernels() {
		t.Run(k.Name, func(t *testing.T) {
			b, err := New(Options{Kernel: k.Name, Workers: 2, Precision: "bf16"})
			must(t, err)
			defer b.Close()
			rng := rand.New(rand.NewPCG(8, 9))
			x := randomTensor(rng, 1, 10, 11, 33)
			w := randomTensor(rng, 48, 33, 3, 3)
			bias := randomVector(rng, 48)
			raws := map[tensor.DType]tensor.Raw{tensor.F32: tensor.RawFromFloat32(w.Data, w.Shape...)}
			raws[tensor.F16], _ = half(w.Data, w.Shape...)
			for d, raw := range raws {
				held, err := raw.Float32()
				must(t, err)
				conv, err := b.LoadConv2D(raw, ptr(tensor.RawFromFloat32(bias, 48)), 1)
				must(t, err)
				if f := conv.(*conv2D).packed.Format; f != gemm.FormatBF16Pairs {
					t.Fatalf("%v weight packed as %v in bf16 precision", d, f)
				}
				got := tensor.MustNew(1, 10, 11, 48)
				must(t, b.Conv2D(got, x, conv, backend.Epilogue{}))
				want := ref.Conv2D(x, held, bias, 1, backend.None, nil)
				scale := ref.Conv2D(abs(x), abs(held), nil, 1, backend.None, nil)
				var worst float64
				for i := range got.Data {
					diff := math.Abs(float64(got.Data[i]) - float64(want.Data[i]))
					bound := 0x1p-8*float64(scale.Data[i]) + 1e-5
					if !(diff <= bound) {
						t.Fatalf("%v conv element %d: got %g, want %g (diff %g > %g)", d, i, got.Data[i], want.Data[i], diff, bound)
					}
					worst = max(worst, diff/float64(scale.Data[i]))
				}
				// bf16 must actually be in use: float32 would err a
				// thousand times less.
				if worst < 0x1p-16 {
					t.Errorf("%v conv: worst relative error %g, too small for bf16 products", d, worst)
				}
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }
