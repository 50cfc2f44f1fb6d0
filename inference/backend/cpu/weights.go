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

// WeightBytes implements backend.WeightSize.
func (l *linear) WeightBytes() int64 { return l.packed.Bytes() + int64(4*len(l.bias)) }

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

// WeightBytes implements backend.WeightSize.
func (c *conv2D) WeightBytes() int64 { return c.packed.Bytes() + int64(4*len(c.bias)) }

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

// weightFormat is how weights stored as d are packed: bf16 pairs in bf16
// precision; in fp32 precision the stored values exactly, 16-bit ones
// kept 16-bit and widened in the multiply.
func (b *Backend) weightFormat(d tensor.DType) gemm.Format {
	if b.precision == PrecisionBF16 {
		return gemm.FormatBF16Pairs
	}
	return gemm.StoredFormat(d)
}

// checkStored checks that w holds exactly its shape's elements.
func checkStored(what string, w tensor.Raw) error {
	n, err := tensor.NumElements(w.Shape)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if w.DType.Size() == 0 {
		return fmt.Errorf("%s: dtype %v, expected F32, F16 or BF16", what, w.DType)
	}
	if len(w.Data) != n*w.DType.Size() {
		return fmt.Errorf("%s: %v %v has %d bytes, expected %d bytes", what, w.DType, w.Shape, len(w.Data), n*w.DType.Size())
	}
	return nil
}

// LoadLinear implements backend.Backend. The weight is packed straight
// from its stored bytes on every worker, without a float32 copy.
func (b *Backend) LoadLinear(weight tensor.Raw, bias *tensor.Raw) (backend.Linear, error) {
	if len(weight.Shape) != 2 {
		return nil, fmt.Errorf("linear weight: shape %v, expected [out, in]", weight.Shape)
	}
	if err := checkStored("linear weight", weight); err != nil {
		return nil, err
	}
	out, in := weight.Shape[0], weight.Shape[1]
	bs, err := decodeBias(bias, out)
	if err != nil {
		return nil, fmt.Errorf("linear %w", err)
	}
	// The multiply needs B[k][n] = W[n][k]: a column stride of in.
	b.populate(weight.Data)
	src := gemm.Stored{DType: weight.DType, Data: weight.Data, K: in, N: out, RowStride: 1, ColStride: in}
	packed, err := gemm.PackStored(b.pool, b.kernel, src, b.weightFormat(weight.DType))
	if err != nil {
		return nil, fmt.Errorf("linear weight: %w", err)
	}
	return &linear{in: in, out: out, packed: packed, bias: bs}, nil
}

// LoadConv2D implements backend.Backend, packing like LoadLinear.
func (b *Backend) LoadConv2D(weight tensor.Raw, bias *tensor.Raw, stride int) (backend.Conv2D, error) {
	s := weight.Shape
	if len(s) != 4 || s[2] != s[3] || (s[2] != 1 && s[2] != 3) {
		return nil, fmt.Errorf("conv weight: shape %v, expected [out, in, k, k] with k 1 or 3", s)
	}
	if stride != 1 && stride != 2 {
		return nil, fmt.Errorf("conv stride: %d, expected 1 or 2", stride)
	}
	if err := checkStored("conv weight", weight); err != nil {
		return nil, err
	}
	out, in, k := s[0], s[1], s[2]
	bs, err := decodeBias(bias, out)
	if err != nil {
		return nil, fmt.Errorf("conv %w", err)
	}
	// The multiply's rows are ordered (ky, kx, in) to match an NHWC
	// im2col row; row (tap, ci) of output column co is stored at
	// [co][ci][tap].
	taps := k * k
	rows := make([]int, taps*in)
	for tap := range taps {
		for ci := range in {
			rows[tap*in+ci] = ci*taps + tap
		}
	}
	b.populate(weight.Data)
	src := gemm.Stored{DType: weight.DType, Data: weight.Data, K: taps * in, N: out, ColStride: in * taps, RowOffsets: rows}
	packed, err := gemm.PackStored(b.pool, b.kernel, src, b.weightFormat(weight.DType))
	if err != nil {
		return nil, fmt.Errorf("conv weight: %w", err)
	}
	return &conv2D{in: in, out: out, k: k, stride: stride, packed: packed, bias: bs}, nil
}
