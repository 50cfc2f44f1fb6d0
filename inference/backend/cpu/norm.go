package cpu

import (
	"fmt"
	"math"

	"github.com/sdfleet/sdfleet/inference/backend"
	"github.com/sdfleet/sdfleet/inference/tensor"
)

// groupNorm implements backend.Backend's GroupNorm on host tensors. Statistics are accumulated in
// float64 per channel and reduced per group: a 64×64×320 group holds
// 40960 values, too many to sum in float32 within 1e-4.
func (b *Backend) groupNorm(dst, x *tensor.Tensor, groups int, scale, shift []float32, eps float32, act backend.Activation) error {
	if err := requireRank("group norm x", x, 0); err != nil {
		return err
	}
	if len(x.Shape) < 2 {
		return fmt.Errorf("group norm x: shape %v, expected [N, ..., C]", x.Shape)
	}
	if err := requireShape("group norm dst", dst, x.Shape...); err != nil {
		return err
	}
	n, c := x.Shape[0], x.Dim(-1)
	if groups <= 0 || c%groups != 0 {
		return fmt.Errorf("group norm groups: %d does not divide %d channels", groups, c)
	}
	if len(scale) != c || len(shift) != c {
		return fmt.Errorf("group norm scale/shift: lengths %d/%d, expected %d", len(scale), len(shift), c)
	}
	if act != backend.None && act != backend.SiLU {
		return fmt.Errorf("group norm activation: %v, expected none or silu", act)
	}
	if err := distinct("group norm dst", dst, "x", x); err != nil {
		return err
	}
	if n == 0 || c == 0 {
		return nil
	}
	positions := len(x.Data) / (n * c)
	if positions == 0 {
		return nil
	}
	cg := c / groups

	// Pass 1 and 2 compute per-chunk channel sums (then squared deviations)
	// over position chunks of each batch item; chunks are reduced serially.
	chunks := min(positions, 4*b.pool.Workers())
	per := ceilDiv(positions, chunks)
	chunks = ceilDiv(positions, per)
	partial := make([]float64, n*chunks*c)
	mean := make([]float64, n*groups)
	inv := make([]float64, n*groups)
	count := float64(positions * cg)

	accumulate := func(square bool) {
		b.pool.Run(n*chunks, func(_, task int) {
			bi, ch := task/chunks, task%chunks
			sums := partial[task*c : (task+1)*c]
			clear(sums)
			for p := ch * per; p < min(positions, (ch+1)*per); p++ {
				row := x.Data[(bi*positions+p)*c : (bi*positions+p+1)*c]
				if !square {
					for j, v := range row {
						sums[j] += float64(v)
					}
					continue
				}
				for j, v := range row {
					d := float64(v) - mean[bi*groups+j/cg]
					sums[j] += d * d
				}
			}
		})
	}
	reduce := func(out []float64) {
		for bi := 0; bi < n; bi++ {
			for g := 0; g < groups; g++ {
				var s float64
				for ch := 0; ch < chunks; ch++ {
					for _, v := range partial[(bi*chunks+ch)*c+g*cg : (bi*chunks+ch)*c+(g+1)*cg] {
						s += v
					}
				}
				out[bi*groups+g] = s / count
			}
		}
	}
	accumulate(false)
	reduce(mean)
	accumulate(true)
	reduce(inv)
	for i, v := range inv {
		inv[i] = 1 / math.Sqrt(v+float64(eps))
	}

	// Pass 3 folds mean, 1/σ, scale and shift into one multiply-add per
	// element: y = x·a + b with per-(item, channel) a and b.
	mulAdd := make([]float32, 2*n*c)
	for bi := 0; bi < n; bi++ {
		for j := 0; j < c; j++ {
			g := bi*groups + j/cg
			a := inv[g] * float64(scale[j])
			mulAdd[2*(bi*c+j)] = float32(a)
			mulAdd[2*(bi*c+j)+1] = float32(float64(shift[j]) - mean[g]*a)
		}
	}
	b.parallelRanges(n*positions, 64, func(_, lo, hi int) {
		for row := lo; row < hi; row++ {
			bi := row / positions
			src := x.Data[row*c : (row+1)*c]
			out := dst.Data[row*c : (row+1)*c]
			coef := mulAdd[2*bi*c : 2*(bi+1)*c]
			for j, v := range src {
				out[j] = v*coef[2*j] + coef[2*j+1]
			}
			if act == backend.SiLU {
				sigmoidScaled(b.kernel, out, out, 1)
			}
		}
	})
	return nil
}

// layerNorm implements backend.Backend's LayerNorm on host tensors.
func (b *Backend) layerNorm(dst, x *tensor.Tensor, scale, shift []float32, eps float32) error {
	if err := requireRank("layer norm x", x, 0); err != nil {
		return err
	}
	if err := requireShape("layer norm dst", dst, x.Shape...); err != nil {
		return err
	}
	c := x.Dim(-1)
	if len(scale) != c || len(shift) != c {
		return fmt.Errorf("layer norm scale/shift: lengths %d/%d, expected %d", len(scale), len(shift), c)
	}
	if err := distinct("layer norm dst", dst, "x", x); err != nil {
		return err
	}
	if c == 0 {
		return nil
	}
	b.parallelRanges(x.Rows(), 16, func(_, lo, hi int) {
		for r := lo; r < hi; r++ {
			row := x.Data[r*c : (r+1)*c]
			var sum float64
			for _, v := range row {
				sum += float64(v)
			}
			mean := sum / float64(c)
			var sq float64
			for _, v := range row {
				d := float64(v) - mean
				sq += d * d
			}
			inv := float32(1 / math.Sqrt(sq/float64(c)+float64(eps)))
			m := float32(mean)
			out := dst.Data[r*c : (r+1)*c]
			for j, v := range row {
				out[j] = (v-m)*inv*scale[j] + shift[j]
			}
		}
	})
	return nil
}
