package gemm

import (
	"math"
)

// vectorOps are the softmax building blocks in the same instruction set
// as a Kernel. The assembly versions handle a multiple of lanes elements;
// the remainder (and the whole row on the pure Go path) runs in Go.
type vectorOps struct {
	lanes    int
	expSum   func(x *float32, n int, m float32, out *[16]float32)
	scaleMax func(x *float32, n int, scale float32, out *[16]float32)
}

// ScaleMax multiplies x by scale in place and returns the largest result
// (-Inf for an empty x).
func (k *Kernel) ScaleMax(x []float32, scale float32) float32 {
	m := float32(math.Inf(-1))
	done := 0
	if k.vec.scaleMax != nil && len(x) >= k.vec.lanes {
		done = len(x) / k.vec.lanes * k.vec.lanes
		var lanes [16]float32
		k.vec.scaleMax(&x[0], done, scale, &lanes)
		// Plain comparisons: the max builtin's NaN and signed-zero rules
		// cost more than the vector loop for a 256-wide row.
		for _, v := range lanes[:k.vec.lanes] {
			if v > m {
				m = v
			}
		}
	}
	for i := done; i < len(x); i++ {
		x[i] *= scale
		if x[i] > m {
			m = x[i]
		}
	}
	return m
}

// ExpSum replaces x[i] by e^(x[i]-m) and returns the sum of the results.
// Every x[i] must be at most m, as softmax guarantees; results below the
// smallest normal float32 may come out as that tiny value or as zero.
func (k *Kernel) ExpSum(x []float32, m float32) float32 {
	var sum float32
	done := 0
	if k.vec.expSum != nil && len(x) >= k.vec.lanes {
		done = len(x) / k.vec.lanes * k.vec.lanes
		var lanes [16]float32
		k.vec.expSum(&x[0], done, m, &lanes)
		for _, v := range lanes[:k.vec.lanes] {
			sum += v
		}
	}
	for i := done; i < len(x); i++ {
		e := Exp(x[i] - m)
		x[i] = e
		sum += e
	}
	return sum
}

// Exp is e^x in float32 with a relative error near 2e-7: a degree-6
// polynomial on the reduced argument r = x - n·ln2, |r| ≤ ln2/2, scaled by
// 2^n through the exponent bits. The assembly versions compute the same
// polynomial, so every kernel path agrees. Results below the smallest
// normal float32 are returned as zero.
func Exp(x float32) float32 {
	if x < -87.3 {
		return 0
	}
	if x > 88.3 {
		return float32(math.Exp(float64(x)))
	}
	const (
		log2e   = 1.44269504088896341
		ln2Hi   = 0.693145751953125
		ln2Lo   = 1.428606765330187045e-06
		rounder = 12582912 // 1.5·2^23: adding it rounds a float32 to an integer
	)
	fn := float32(x*log2e+rounder) - rounder
	r := x - fn*ln2Hi - fn*ln2Lo
	p := 1 + r*(1+r*(0.5+r*(1.0/6+r*(1.0/24+r*(1.0/120+r*(1.0/720))))))
	return p * math.Float32frombits(uint32(int32(fn)+127)<<23)
}
