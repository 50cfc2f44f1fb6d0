package cpu

import (
	"math"

	"github.com/sdfleet/sdfleet/inference/backend"
	"github.com/sdfleet/sdfleet/inference/backend/cpu/gemm"
)

// expf is gemm.Exp: the same polynomial the vector kernels use.
func expf(x float32) float32 { return gemm.Exp(x) }

// activationChunk is how many elements the slice activations stage
// through their stack buffers: small enough to stay in L1.
const activationChunk = 256

// expArgMax keeps exponent arguments where e^x is finite in float32, as
// Kernel.ExpSum requires.
const expArgMax = 88.3

// sigmoidScaled writes dst[i] = src[i]·sigmoid(alpha·src[i]): SiLU for
// alpha 1, quick GELU for 1.702. The exponentials run through the
// kernel's vector code a chunk at a time.
func sigmoidScaled(kern *gemm.Kernel, dst, src []float32, alpha float32) {
	var buf [activationChunk]float32
	for start := 0; start < len(src); start += activationChunk {
		in := src[start:min(len(src), start+activationChunk)]
		e := buf[:len(in)]
		for i, v := range in {
			e[i] = min(-alpha*v, expArgMax)
		}
		kern.ExpSum(e, 0)
		out := dst[start : start+len(in)]
		for i, v := range in {
			out[i] = v / (1 + e[i])
		}
	}
}

// geluSlice writes dst[i] = src[i]·Φ(src[i]) with Φ(x) = erfc(-x/√2)/2,
// where erfc uses the Chebyshev-fitted form t·exp(-z²+P(t)),
// t = 1/(1+z/2), whose relative error stays below 1.2e-7 for every z ≥ 0.
// Working from erfc of |x| keeps the result's relative accuracy in the
// negative tail, where x·(1+erf) would cancel to nothing.
func geluSlice(kern *gemm.Kernel, dst, src []float32) {
	var tBuf, eBuf [activationChunk]float32
	for start := 0; start < len(src); start += activationChunk {
		in := src[start:min(len(src), start+activationChunk)]
		ts, e := tBuf[:len(in)], eBuf[:len(in)]
		for i, x := range in {
			z := x * (1 / math.Sqrt2)
			if z < 0 {
				z = -z
			}
			t := 1 / (1 + 0.5*z)
			p := -1.26551223 + t*(1.00002368+t*(0.37409196+t*(0.09678418+t*(-0.18628806+
				t*(0.27886807+t*(-1.13520398+t*(1.48851587+t*(-0.82215223+t*0.17087277))))))))
			ts[i] = t
			e[i] = p - z*z // at most about -1.27: always a valid exponent argument
		}
		kern.ExpSum(e, 0)
		out := dst[start : start+len(in)]
		for i, x := range in {
			tail := 0.5 * ts[i] * e[i] // Φ(-|x|)
			if x < 0 {
				out[i] = x * tail
			} else {
				out[i] = x * (1 - tail)
			}
		}
	}
}

// activationFunc returns a slice transform for act (dst and src may be
// the same slice), or nil for None.
func activationFunc(kern *gemm.Kernel, act backend.Activation) func(dst, src []float32) {
	switch act {
	case backend.SiLU:
		return func(dst, src []float32) { sigmoidScaled(kern, dst, src, 1) }
	case backend.QuickGELU:
		return func(dst, src []float32) { sigmoidScaled(kern, dst, src, 1.702) }
	case backend.GELU:
		return func(dst, src []float32) { geluSlice(kern, dst, src) }
	}
	return nil
}
