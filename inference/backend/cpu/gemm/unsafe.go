package gemm

import "unsafe"

// unsafeSlice views n floats starting at p; the micro-kernel interface
// passes pointers so assembly and Go kernels share one signature.
func unsafeSlice(p *float32, n int) []float32 {
	return unsafe.Slice(p, n)
}
