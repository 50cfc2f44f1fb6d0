package gemm

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

func TestVectorOpsMatchFloat64OnEveryKernel(t *testing.T) {
	for _, kern := range Kernels() {
		for _, n := range []int{0, 1, 7, 8, 15, 16, 17, 33, 1000} {
			t.Run(fmt.Sprintf("%s/%d", kern.Name, n), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(uint64(n), 5))
				x := make([]float32, n)
				for i := range x {
					x[i] = float32(rng.NormFloat64() * 20)
				}
				orig := append([]float32(nil), x...)
				const scale = 0.37
				m := kern.ScaleMax(x, scale)
				wantMax := math.Inf(-1)
				for i, v := range orig {
					want := float32(v * scale)
					if x[i] != want {
						t.Fatalf("ScaleMax element %d = %g, want %g", i, x[i], want)
					}
					wantMax = math.Max(wantMax, float64(want))
				}
				if float64(m) != wantMax {
					t.Fatalf("ScaleMax returned %g, want %g", m, wantMax)
				}
				if n == 0 {
					return
				}
				scaled := append([]float32(nil), x...)
				sum := kern.ExpSum(x, m)
				var wantSum float64
				for i, v := range scaled {
					want := math.Exp(float64(v - m)) // the float32 argument every path computes
					wantSum += want
					// Values far below the row maximum may flush to zero.
					if diff := math.Abs(float64(x[i]) - want); diff > 4e-7*want+1e-37 {
						t.Fatalf("ExpSum element %d: exp(%g) = %g, want %g", i, v-m, x[i], want)
					}
				}
				if math.Abs(float64(sum)-wantSum) > 1e-6*wantSum {
					t.Fatalf("ExpSum returned %g, want %g", sum, wantSum)
				}
			})
		}
	}
}

func TestExp(t *testing.T) {
	for x := float32(-87); x < 88; x += 0.0137 {
		got, want := float64(Exp(x)), math.Exp(float64(x))
		if math.Abs(got-want) > 4e-7*want {
			t.Fatalf("Exp(%g) = %g, want %g", x, got, want)
		}
	}
	if Exp(-100) != 0 || !math.IsInf(float64(Exp(100)), 1) {
		t.Fatalf("Exp limits: %g, %g", Exp(-100), Exp(100))
	}
}
