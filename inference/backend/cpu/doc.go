// Package cpu is the CPU implementation of backend.Backend: fp32 compute
// on NHWC activations, with weights packed once at load straight from
// their stored bytes, on every worker and without a float32 copy. In fp32
// precision (the default) fp16 and bf16 weights stay 16-bit and are
// widened exactly inside the multiply; in bf16 precision (Options.
// Precision) matrix multiplies and convolutions round activations and
// weights to bfloat16 and accumulate in float32, on the AVX-512 BF16 dot
// product where the CPU has it, while norms, softmax, attention and the
// sampler stay float32. Its tensors are host *tensor.Tensor values, so
// Write and Read are copies, Sync returns at once and released memory
// goes back to the garbage collector.
//
// Matrix multiplies and convolutions run on package gemm's cache-blocked
// engine, whose micro-kernel (AVX-512, AVX2+FMA or pure Go) is picked from
// the CPU's features or forced with Options.Kernel. Convolutions gather
// their im2col rows block by block straight into the engine's packing
// buffer, so no scratch buffer grows with the image. Attention is tiled
// with an online softmax: memory per worker is a few query×key blocks and
// the keys and values are packed once into a copy of their own size, so
// nothing grows as Tq×Tk. All parallel loops run on one persistent worker
// pool (package workpool) sized to GOMAXPROCS by default.
package cpu
