//go:build amd64 && !sdfleet_purego

package gemm

//go:generate go run ./internal/kernelgen -o kernel_amd64.s

import "golang.org/x/sys/cpu"

//go:noescape
func kernelAVX512(k int, a, b, c *float32, ldc int, accumulate int)

//go:noescape
func kernelAVX512BF16(k int, a, b *uint16, c *float32, ldc int, accumulate int)

//go:noescape
func kernelAVX2(k int, a, b, c *float32, ldc int, accumulate int)

func init() {
	if cpu.X86.HasAVX512F && cpu.X86.HasAVX512BF16 {
		avx512Kernel.runBF16 = kernelAVX512BF16
	}
	if cpu.X86.HasAVX512F {
		widenF16, widenBF16 = widenF16AVX512, widenBF16AVX512
	} else if cpu.X86.HasAVX2 && cpu.X86.HasF16C {
		widenF16, widenBF16 = widenF16AVX2, widenBF16AVX2
	}
}

// The widening loops convert a multiple of 16 elements.
//
//go:noescape
func widenF16AVX512(dst *float32, src *uint16, n int)

//go:noescape
func widenBF16AVX512(dst *float32, src *uint16, n int)

//go:noescape
func widenF16AVX2(dst *float32, src *uint16, n int)

//go:noescape
func widenBF16AVX2(dst *float32, src *uint16, n int)

var (
	avx512Kernel = &Kernel{Name: "avx512", MR: 8, NR: 32, run: kernelAVX512,
		vec: vectorOps{lanes: 16, expSum: expSumAVX512, scaleMax: scaleMaxAVX512}}
	avx2Kernel = &Kernel{Name: "avx2", MR: 6, NR: 16, run: kernelAVX2,
		vec: vectorOps{lanes: 8, expSum: expSumAVX2, scaleMax: scaleMaxAVX2}}
)

func archKernels() []*Kernel {
	var ks []*Kernel
	if cpu.X86.HasAVX512F {
		ks = append(ks, avx512Kernel)
	}
	if cpu.X86.HasAVX2 && cpu.X86.HasFMA {
		ks = append(ks, avx2Kernel)
	}
	return ks
}

//go:noescape
func expSumAVX512(x *float32, n int, m float32, out *[16]float32)

//go:noescape
func scaleMaxAVX512(x *float32, n int, scale float32, out *[16]float32)

//go:noescape
func expSumAVX2(x *float32, n int, m float32, out *[16]float32)

//go:noescape
func scaleMaxAVX2(x *float32, n int, scale float32, out *[16]float32)
