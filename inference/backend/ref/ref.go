package ref

import (
	"math"

	"github.com/sdfleet/sdfleet/inference/backend"
	"github.com/sdfleet/sdfleet/inference/tensor"
)

// Activate applies act to one value.
func Activate(x float64, act backend.Activation) float64 {
	switch act {
	case backend.SiLU:
		return x / (1 + math.Exp(-x))
	case backend.GELU:
		return 0.5 * x * math.Erfc(-x/math.Sqrt2)
	case backend.QuickGELU:
		return x / (1 + math.Exp(-1.702*x))
	}
	return x
}

func out(shape []int, values []float64) *tensor.Tensor {
	t := tensor.MustNew(shape...)
	for i, v := range values {
		t.Data[i] = float32(v)
	}
	return t
}

func finish(v float64, act backend.Activation, residual *tensor.Tensor, i int) float64 {
	v = Activate(v, act)
	if residual != nil {
		v += float64(residual.Data[i])
	}
	return v
}

// MatMul computes act(x·wᵀ + bias) + residual for x [..., in], w [out, in].
func MatMul(x, w *tensor.Tensor, bias []float32, act backend.Activation, residual *tensor.Tensor) *tensor.Tensor {
	in, o := w.Shape[1], w.Shape[0]
	rows := 1
	for _, d := range x.Shape[:len(x.Shape)-1] {
		rows *= d
	}
	res := make([]float64, rows*o)
	for r := 0; r < rows; r++ {
		for j := 0; j < o; j++ {
			var s float64
			for k := 0; k < in; k++ {
				s += float64(x.Data[r*in+k]) * float64(w.Data[j*in+k])
			}
			if bias != nil {
				s += float64(bias[j])
			}
			res[r*o+j] = finish(s, act, residual, r*o+j)
		}
	}
	shape := append(append([]int(nil), x.Shape[:len(x.Shape)-1]...), o)
	return out(shape, res)
}

// Conv2D convolves x [N, H, W, Cin] with w [Cout, Cin, k, k], padding k/2.
func Conv2D(x, w *tensor.Tensor, bias []float32, stride int, act backend.Activation, residual *tensor.Tensor) *tensor.Tensor {
	n, h, wd, cin := x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3]
	cout, k := w.Shape[0], w.Shape[2]
	pad := k / 2
	ho := (h+2*pad-k)/stride + 1
	wo := (wd+2*pad-k)/stride + 1
	res := make([]float64, n*ho*wo*cout)
	for b := 0; b < n; b++ {
		for oy := 0; oy < ho; oy++ {
			for ox := 0; ox < wo; ox++ {
				for co := 0; co < cout; co++ {
					var s float64
					for ky := 0; ky < k; ky++ {
						for kx := 0; kx < k; kx++ {
							iy, ix := oy*stride+ky-pad, ox*stride+kx-pad
							if iy < 0 || iy >= h || ix < 0 || ix >= wd {
								continue
							}
							for ci := 0; ci < cin; ci++ {
								s += float64(x.Data[((b*h+iy)*wd+ix)*cin+ci]) * float64(w.Data[((co*cin+ci)*k+ky)*k+kx])
							}
						}
					}
					if bias != nil {
						s += float64(bias[co])
					}
					i := ((b*ho+oy)*wo+ox)*cout + co
					res[i] = finish(s, act, residual, i)
				}
			}
		}
	}
	return out([]int{n, ho, wo, cout}, res)
}

// GroupNorm normalises x [N, ..., C] per batch item and channel group.
func GroupNorm(x *tensor.Tensor, groups int, scale, shift []float32, eps float64, act backend.Activation) *tensor.Tensor {
	n, c := x.Shape[0], x.Shape[len(x.Shape)-1]
	positions := len(x.Data) / (n * c)
	cg := c / groups
	res := make([]float64, len(x.Data))
	for b := 0; b < n; b++ {
		for g := 0; g < groups; g++ {
			var sum float64
			for p := 0; p < positions; p++ {
				for ch := g * cg; ch < (g+1)*cg; ch++ {
					sum += float64(x.Data[(b*positions+p)*c+ch])
				}
			}
			count := float64(positions * cg)
			mean := sum / count
			var sq float64
			for p := 0; p < positions; p++ {
				for ch := g * cg; ch < (g+1)*cg; ch++ {
					d := float64(x.Data[(b*positions+p)*c+ch]) - mean
					sq += d * d
				}
			}
			inv := 1 / math.Sqrt(sq/count+eps)
			for p := 0; p < positions; p++ {
				for ch := g * cg; ch < (g+1)*cg; ch++ {
					i := (b*positions+p)*c + ch
					v := (float64(x.Data[i])-mean)*inv*float64(scale[ch]) + float64(shift[ch])
					res[i] = Activate(v, act)
				}
			}
		}
	}
	return out(x.Shape, res)
}

// LayerNorm normalises every row of the last dimension.
func LayerNorm(x *tensor.Tensor, scale, shift []float32, eps float64) *tensor.Tensor {
	c := x.Shape[len(x.Shape)-1]
	res := make([]float64, len(x.Data))
	for r := 0; r < len(x.Data)/c; r++ {
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
		inv := 1 / math.Sqrt(sq/float64(c)+eps)
		for j, v := range row {
			res[r*c+j] = (float64(v)-mean)*inv*float64(scale[j]) + float64(shift[j])
		}
	}
	return out(x.Shape, res)
}

// Attention computes softmax(q·kᵀ·scale)·v per head with a full score
// matrix; scale 0 means 1/sqrt(head width).
func Attention(q, k, v *tensor.Tensor, heads int, causal bool, scale float64) *tensor.Tensor {
	b, tq, c := q.Shape[0], q.Shape[1], q.Shape[2]
	tk := k.Shape[1]
	d := c / heads
	if scale == 0 {
		scale = 1 / math.Sqrt(float64(d))
	}
	res := make([]float64, len(q.Data))
	scores := make([]float64, tk)
	for bi := 0; bi < b; bi++ {
		for h := 0; h < heads; h++ {
			for i := 0; i < tq; i++ {
				best := math.Inf(-1)
				for j := 0; j < tk; j++ {
					if causal && j > i+tk-tq {
						scores[j] = math.Inf(-1)
						continue
					}
					var s float64
					for e := 0; e < d; e++ {
						s += float64(q.Data[(bi*tq+i)*c+h*d+e]) * float64(k.Data[(bi*tk+j)*c+h*d+e])
					}
					scores[j] = s * scale
					best = math.Max(best, scores[j])
				}
				var total float64
				for j := range scores {
					scores[j] = math.Exp(scores[j] - best)
					total += scores[j]
				}
				for e := 0; e < d; e++ {
					var s float64
					for j := 0; j < tk; j++ {
						s += scores[j] * float64(v.Data[(bi*tk+j)*c+h*d+e])
					}
					res[(bi*tq+i)*c+h*d+e] = s / total
				}
			}
		}
	}
	return out(q.Shape, res)
}

// GEGLU computes value·GELU(gate) for x [..., 2F] split into halves.
func GEGLU(x *tensor.Tensor) *tensor.Tensor {
	c := x.Shape[len(x.Shape)-1]
	f := c / 2
	rows := len(x.Data) / c
	res := make([]float64, rows*f)
	for r := 0; r < rows; r++ {
		for j := 0; j < f; j++ {
			res[r*f+j] = float64(x.Data[r*c+j]) * Activate(float64(x.Data[r*c+f+j]), backend.GELU)
		}
	}
	shape := append(append([]int(nil), x.Shape[:len(x.Shape)-1]...), f)
	return out(shape, res)
}

// ActivateAll applies act element-wise.
func ActivateAll(x *tensor.Tensor, act backend.Activation) *tensor.Tensor {
	res := make([]float64, len(x.Data))
	for i, v := range x.Data {
		res[i] = Activate(float64(v), act)
	}
	return out(x.Shape, res)
}

// Upsample2x repeats each pixel of x [N, H, W, C] into a 2×2 block.
func Upsample2x(x *tensor.Tensor) *tensor.Tensor {
	n, h, w, c := x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3]
	res := make([]float64, n*4*h*w*c)
	for b := 0; b < n; b++ {
		for y := 0; y < 2*h; y++ {
			for xx := 0; xx < 2*w; xx++ {
				for ch := 0; ch < c; ch++ {
					res[((b*2*h+y)*2*w+xx)*c+ch] = float64(x.Data[((b*h+y/2)*w+xx/2)*c+ch])
				}
			}
		}
	}
	return out([]int{n, 2 * h, 2 * w, c}, res)
}

// Concat joins a and b along the last dimension.
func Concat(a, b *tensor.Tensor) *tensor.Tensor {
	ca, cb := a.Shape[len(a.Shape)-1], b.Shape[len(b.Shape)-1]
	rows := len(a.Data) / ca
	res := make([]float64, 0, rows*(ca+cb))
	for r := 0; r < rows; r++ {
		for _, v := range a.Data[r*ca : (r+1)*ca] {
			res = append(res, float64(v))
		}
		for _, v := range b.Data[r*cb : (r+1)*cb] {
			res = append(res, float64(v))
		}
	}
	shape := append(append([]int(nil), a.Shape[:len(a.Shape)-1]...), ca+cb)
	return out(shape, res)
}

// Embedding gathers rows of table [V, D].
func Embedding(table *tensor.Tensor, ids []int) *tensor.Tensor {
	d := table.Shape[1]
	res := make([]float64, 0, len(ids)*d)
	for _, id := range ids {
		for _, v := range table.Data[id*d : (id+1)*d] {
			res = append(res, float64(v))
		}
	}
	return out([]int{len(ids), d}, res)
}

// Axpby computes a·x + b·y.
func Axpby(a float64, x *tensor.Tensor, b float64, y *tensor.Tensor) *tensor.Tensor {
	res := make([]float64, len(x.Data))
	for i := range res {
		res[i] = a*float64(x.Data[i]) + b*float64(y.Data[i])
	}
	return out(x.Shape, res)
}

// AddChannelBias adds bias [N, C] to every position of x [N, ..., C].
func AddChannelBias(x, bias *tensor.Tensor) *tensor.Tensor {
	n, c := x.Shape[0], x.Shape[len(x.Shape)-1]
	per := len(x.Data) / n
	res := make([]float64, len(x.Data))
	for i, v := range x.Data {
		b := i / per
		res[i] = float64(v) + float64(bias.Data[b*c+i%c])
	}
	return out(x.Shape, res)
}
