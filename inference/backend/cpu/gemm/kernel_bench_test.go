package gemm

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/sdfleet/sdfleet/inference/backend/cpu/workpool"
	"github.com/sdfleet/sdfleet/inference/tensor"
)

// BenchmarkKernelL1 measures each micro-kernel on L1-resident panels, the
// bf16 dot-product one beside the float32 one where the CPU has it.
func BenchmarkKernelL1(b *testing.B) {
	for _, kern := range Kernels() {
		for _, depth := range []int{40, 256} {
			b.Run(fmt.Sprintf("%s/%d", kern.Name, depth), func(b *testing.B) {
				a := make([]float32, kern.MR*depth)
				bb := make([]float32, kern.NR*depth)
				c := make([]float32, kern.MR*kern.NR)
				for range b.N {
					kern.run(depth, &a[0], &bb[0], &c[0], kern.NR, 1)
				}
				b.ReportMetric(2*float64(kern.MR*kern.NR*depth)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
			if !kern.NativeBF16() {
				continue
			}
			b.Run(fmt.Sprintf("%s-bf16/%d", kern.Name, depth), func(b *testing.B) {
				a := make([]uint16, kern.MR*depth)
				bb := make([]uint16, kern.NR*depth)
				c := make([]float32, kern.MR*kern.NR)
				for range b.N {
					kern.runBF16(depth/2, &a[0], &bb[0], &c[0], kern.NR, 1)
				}
				b.ReportMetric(2*float64(kern.MR*kern.NR*depth)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}

// BenchmarkMultiplyStored multiplies a UNet-sized convolution (a 64×64
// latent, 320 channels, 3×3 taps) with its weights in each packed format,
// on two workers: what keeping fp16 weights 16-bit costs or saves in a
// step against packing them as float32.
func BenchmarkMultiplyStored(b *testing.B) {
	const m, k, n = 4096, 2880, 320
	pool := workpool.New(2)
	defer pool.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	x := make([]float32, m*k)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	w := make([]float32, k*n)
	for i := range w {
		w[i] = float32(rng.NormFloat64()) / 50
	}
	c := make([]float32, m*n)
	for _, kern := range Kernels() {
		e := NewEngine(pool, kern)
		for _, tc := range []struct {
			dtype  tensor.DType
			format Format
		}{{tensor.F32, FormatF32}, {tensor.F16, FormatF32}, {tensor.F16, FormatF16}, {tensor.F16, FormatBF16Pairs}} {
			data, _ := encode(tc.dtype, w)
			packed, err := PackStored(pool, kern, Stored{DType: tc.dtype, Data: data, K: k, N: n, RowStride: 1, ColStride: k}, tc.format)
			if err != nil {
				b.Fatal(err)
			}
			b.Run(fmt.Sprintf("%s/native-bf16=%v/%v-as-%v", kern.Name, kern.NativeBF16(), tc.dtype, tc.format), func(b *testing.B) {
				for range b.N {
					if err := e.Multiply(Dense{Data: x, M: m, K: k, LD: k}, packed, c, n, nil); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(2*float64(m*k*n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}
