package gemm

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/sdfleet/sdfleet/inference/backend"
	"github.com/sdfleet/sdfleet/inference/backend/cpu/workpool"
	"github.com/sdfleet/sdfleet/inference/backend/ref"
	"github.com/sdfleet/sdfleet/inference/tensor"
)

func randomTensor(rng *rand.Rand, shape ...int) *tensor.Tensor {
	t := tensor.MustNew(shape...)
	for i := range t.Data {
		t.Data[i] = float32(rng.NormFloat64())
	}
	return t
}

// closeEnough compares against the float64 oracle with relative tolerance
// 1e-4; the absolute floor scales with the row's magnitude so sums that
// cancel to near zero are judged against the size of their terms.
func closeEnough(t *testing.T, got, want []float32, floor float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("length %d, want %d", len(got), len(want))
	}
	for i := range got {
		diff := math.Abs(float64(got[i]) - float64(want[i]))
		if diff > 1e-4*math.Abs(float64(want[i]))+floor || math.IsNaN(float64(got[i])) {
			t.Fatalf("element %d: got %g, want %g (diff %g)", i, got[i], want[i], diff)
		}
	}
}

func TestMultiplyMatchesReferenceOnEveryKernel(t *testing.T) {
	shapes := []struct{ m, n, k int }{
		{1, 1, 1},
		{3, 5, 7},
		{5, 15, 3},    // below every tile size
		{12, 32, 16},  // exactly one AVX-512 tile
		{13, 33, 257}, // one past tile and K-block edges
		{64, 96, 300},
		{250, 70, 513},
		{7, 200, 0}, // empty reduction gives zeros
	}
	for _, kern := range Kernels() {
		pool := workpool.New(2)
		eng := NewEngine(pool, kern)
		for _, s := range shapes {
			t.Run(fmt.Sprintf("%s/%dx%dx%d", kern.Name, s.m, s.n, s.k), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(uint64(s.m), uint64(s.n*1000+s.k)))
				x := randomTensor(rng, s.m, s.k)
				w := randomTensor(rng, s.n, s.k)
				want := ref.MatMul(x, w, nil, backend.None, nil)
				packed, err := PackWeights(kern, w.Data, s.k, s.n, 1, s.k)
				if err != nil {
					t.Fatal(err)
				}
				// A wider C row stride and poisoned padding prove the
				// kernel neither reads nor writes outside its tile.
				ldc := s.n + 3
				c := make([]float32, s.m*ldc)
				for i := range c {
					c[i] = float32(math.NaN())
				}
				if err := eng.Multiply(Dense{Data: x.Data, M: s.m, K: s.k, LD: s.k}, packed, c, ldc, nil); err != nil {
					t.Fatal(err)
				}
				got := make([]float32, 0, s.m*s.n)
				for r := 0; r < s.m; r++ {
					got = append(got, c[r*ldc:r*ldc+s.n]...)
					for _, pad := range c[r*ldc+s.n : r*ldc+ldc] {
						if !math.IsNaN(float64(pad)) {
							t.Fatalf("row %d padding overwritten", r)
						}
					}
				}
				closeEnough(t, got, want.Data, 1e-5*math.Sqrt(float64(s.k)))
			})
		}
		pool.Close()
	}
}

func TestMultiplyRejectsMismatchedOperands(t *testing.T) {
	pool := workpool.New(1)
	defer pool.Close()
	kern := Best()
	eng := NewEngine(pool, kern)
	packed, err := PackWeights(kern, make([]float32, 12), 4, 3, 3, 1)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		a    Dense
		c    []float32
		ldc  int
	}{
		{"depth mismatch", Dense{Data: make([]float32, 10), M: 2, K: 5, LD: 5}, make([]float32, 6), 3},
		{"short C", Dense{Data: make([]float32, 8), M: 2, K: 4, LD: 4}, make([]float32, 5), 3},
		{"narrow stride", Dense{Data: make([]float32, 8), M: 2, K: 4, LD: 4}, make([]float32, 6), 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := eng.Multiply(tc.a, packed, tc.c, tc.ldc, nil); err == nil {
				t.Fatal("expected an error")
			}
		})
	}
	if _, err := PackWeights(kern, make([]float32, 5), 2, 3, 3, 1); err == nil {
		t.Fatal("PackWeights accepted a source that is too short")
	}
}

func TestLookup(t *testing.T) {
	for _, k := range Kernels() {
		got, err := Lookup(k.Name)
		if err != nil || got != k {
			t.Fatalf("Lookup(%q) = %v, %v", k.Name, got, err)
		}
	}
	if got, _ := Lookup("auto"); got != Best() {
		t.Fatalf("Lookup(auto) = %v, want %v", got, Best())
	}
	if _, err := Lookup("sse1"); err == nil {
		t.Fatal("Lookup accepted an unknown kernel")
	}
}

func BenchmarkMultiply(b *testing.B) {
	for _, s := range []struct{ m, n, k int }{{4096, 320, 2880}, {1024, 640, 5760}, {64, 1280, 11520}} {
		for _, kern := range Kernels() {
			for _, f := range []Format{FormatF32, FormatF16, FormatBF16Pairs} {
				b.Run(fmt.Sprintf("%s/%v/%dx%dx%d", kern.Name, f, s.m, s.n, s.k), func(b *testing.B) {
					pool := workpool.New(0)
					defer pool.Close()
					eng := NewEngine(pool, kern)
					rng := rand.New(rand.NewPCG(1, 2))
					x := randomTensor(rng, s.m, s.k)
					d := tensor.F32
					if f == FormatF16 {
						d = tensor.F16
					}
					raw, _ := encode(d, randomTensor(rng, s.k, s.n).Data)
					packed, err := PackStored(pool, kern, Stored{DType: d, Data: raw, K: s.k, N: s.n, RowStride: s.n, ColStride: 1}, f)
					if err != nil {
						b.Fatal(err)
					}
					c := make([]float32, s.m*s.n)
					b.ResetTimer()
					for range b.N {
						_ = eng.Multiply(Dense{Data: x.Data, M: s.m, K: s.k, LD: s.k}, packed, c, s.n, nil)
					}
					b.ReportMetric(2*float64(s.m*s.n*s.k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
				})
			}
		}
	}
}

// TestInterleave checks every panel height, the micro-kernels' own (4, 6
// and 8) on their unrolled paths, with a nil row standing for zeros and
// rows longer than one internal segment.
func TestInterleave(t *testing.T) {
	for mr := 1; mr <= maxMR; mr++ {
		for _, n := range []int{1, 7, 256, 600} {
			rows := make([][]float32, mr)
			for r := range rows {
				if r == mr/2 && mr > 1 {
					continue // nil: zeros
				}
				rows[r] = make([]float32, n)
				for kk := range rows[r] {
					rows[r][kk] = float32(r*10000 + kk + 1)
				}
			}
			dst := make([]float32, mr*n)
			for i := range dst {
				dst[i] = -1
			}
			Interleave(dst, rows)
			for kk := range n {
				for r := range mr {
					want := float32(0)
					if rows[r] != nil {
						want = rows[r][kk]
					}
					if got := dst[kk*mr+r]; got != want {
						t.Fatalf("mr %d, n %d: element (%d, %d) is %g, want %g", mr, n, r, kk, got, want)
					}
				}
			}
		}
	}
}
