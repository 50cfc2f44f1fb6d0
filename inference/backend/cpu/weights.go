package cpu

import (
	"fmt"

	"github.com/sdfleet/sdfleet/inference/backend"
	"github.com/sdfleet/sdfleet/inference/backend/cpu/gemm"
	"github.com/sdfleet/sdfleet/inference/tensor"
)

// linear is a packed fully connected layer.
type linear struct {
	in, out int
	packed  *gemm.PackedB
	bias    []float32
}

func (l *linear) In() int  { return l.in }
func (l *linear) Out() int { return l.out }

// conv2D is a packed convolution: its weight is the (k·k·Cin)×Cout matrix
// an im2col row multiplies, ordered tap by tap with channels innermost to
// match NHWC input.
type conv2D struct {
	in, out, k, stride int
	packed             *gemm.PackedB
	bias               []float32
}

func (c *conv2D) InChannels() int  { return c.in }
func (c *conv2D) OutChannels() int { return c.out }
func (c *conv2D) Kernel() int      { return c.k }
func (c *conv2D) Stride() int      { return c.stride }

func decodeBias(bias *tensor.Raw, out int) ([]float32, error) {
	if bias == nil {
		return nil, nil
	}
	t, err := bias.Float32()
	if err != nil {
		return nil, fmt.Errorf("bias: %w", err)
	}
	if len(t.Shape) != 1 || t.Shape[0] != out {
		return nil, fmt.Errorf("bias: shape %v, expected [%d]", t.Shape, out)
	}
	return t.Data, nil
}

// LoadLinear implements backend.Backend.
func (b *Backend) LoadLinear(weight tensor.Raw, bias *tensor.Raw) (backend.Linear, error) {
	if len(weight.Shape) != 2 {
		return nil, fmt.Errorf("linear weight: shape %v, expected [out, in]", weight.Shape)
	}
	w, err := weight.Float32()
	if err != nil {
		return nil, fmt.Errorf("linear weight: %w", err)
	}
	out, in := w.Shape[0], w.Shape[1]
	bs, err := decodeBias(bias, out)
	if err != nil {
		return nil, fmt.Errorf("linear %w", err)
	}
	// The multiply needs B[k][n] = W[n][k]: a column stride of in.
	packed, err := gemm.PackWeights(b.kernel, w.Data, in, out, 1, in)
	if err != nil {
		return nil, fmt.Errorf("linear weight: %w", err)
	}
	return &linear{in: in, out: out, packed: packed, bias: bs}, nil
}

// LoadConv2D implements backend.Backend.
func (b *Backend) LoadConv2D(weight tensor.Raw, bias *tensor.Raw, stride int) (backend.Conv2D, error) {
	s := weight.Shape
	if len(s) != 4 || s[2] != s[3] || (s[2] != 1 && s[2] != 3) {
		return nil, fmt.Errorf("conv weight: shape %v, expected [out, in, k, k] with k 1 or 3", s)
	}
	if stride != 1 && stride != 2 {
		return nil, fmt.Errorf("conv stride: %d, expected 1 or 2", stride)
	}
	w, err := weight.Float32()
	if err != nil {
		return nil, fmt.Errorf("conv weight: %w", err)
	}
	out, in, k := s[0], s[1], s[2]
	bs, err := decodeBias(bias, out)
	if err != nil {
		return nil, fmt.Errorf("conv %w", err)
	}
	// Reorder [out][in][ky][kx] into rows (ky, kx, in) × columns out.
	depth := k * k * in
	dense := make([]float32, depth*out)
	for co := 0; co < out; co++ {
		for ci := 0; ci < in; ci++ {
			for tap := 0; tap < k*k; tap++ {
				dense[(tap*in+ci)*out+co] = w.Data[(co*in+ci)*k*k+tap]
			}
		}
	}
	packed, err := gemm.PackWeights(b.kernel, dense, depth, out, out, 1)
	if err != nil {
		return nil, fmt.Errorf("conv weight: %w", err)
	}
	return &conv2D{in: in, out: out, k: k, stride: stride, packed: packed, bias: bs}, nil
}
