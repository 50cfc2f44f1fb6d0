package gemm

import (
	"fmt"
	"testing"
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
