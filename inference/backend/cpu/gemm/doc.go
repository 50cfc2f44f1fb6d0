// Package gemm is the single-precision matrix multiply at the heart of the
// CPU backend: C = A·B where B (the weights) is packed once at load time
// and A (the activations) is packed per cache block while multiplying.
//
// The structure follows the usual high-performance layout: B is cut into
// K-blocks of KC rows and, inside each, into panels NR columns wide; A is
// packed per task into panels MR rows tall; a register-blocked micro-kernel
// multiplies one A panel by one B panel. Micro-kernels exist in Go assembly
// for AVX-512 and AVX2+FMA and in pure Go; which one runs is chosen at run
// time from the CPU's features, can be forced for tests, and the build tag
// sdfleet_purego removes the assembly entirely.
//
// Weights are packed by PackStored from a checkpoint's encoding in one of
// the Formats: float32; fp16 or bf16 kept 16-bit and widened one panel at
// a time just before the micro-kernel (exact, half the memory); or bf16
// row pairs for the AVX-512 BF16 micro-kernel (VDPBF16PS, float32
// accumulation), for which A is rounded to bf16 as it is packed. Kernels
// without bf16 instructions multiply bf16 pairs by widening them, with
// the same rounding.
//
// A is read through the ASource interface so that convolution can gather
// its im2col rows straight into the packed panel of one cache block,
// never materialising the full im2col matrix.
package gemm
