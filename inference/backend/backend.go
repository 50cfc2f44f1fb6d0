package backend

import (
	"fmt"

	"github.com/sdfleet/sdfleet/inference/tensor"
)

// Activation is a point-wise non-linearity applied by Activate or fused
// into an Epilogue or GroupNorm.
type Activation int

const (
	// None leaves values unchanged.
	None Activation = iota
	// SiLU is x·sigmoid(x) (also called swish).
	SiLU
	// GELU is the exact x·Φ(x) with the Gaussian CDF written through erf.
	GELU
	// QuickGELU is x·sigmoid(1.702·x), used by CLIP's text encoder.
	QuickGELU
)

func (a Activation) String() string {
	switch a {
	case None:
		return "none"
	case SiLU:
		return "silu"
	case GELU:
		return "gelu"
	case QuickGELU:
		return "quick_gelu"
	}
	return fmt.Sprintf("Activation(%d)", int(a))
}

// Epilogue is fused into a matrix multiply or convolution:
// dst = Act(x·W + bias) + Residual. A nil Residual adds nothing; when set
// it must have dst's shape and must not alias dst.
type Epilogue struct {
	Act      Activation
	Residual *tensor.Tensor
}

// Linear is a fully connected layer's weight (and optional bias), packed
// for the backend that loaded it.
type Linear interface {
	// In is the input feature count, Out the output feature count.
	In() int
	Out() int
}

// Conv2D is a convolution's weight (and optional bias), packed for the
// backend that loaded it. Padding is Kernel/2 on every side.
type Conv2D interface {
	InChannels() int
	OutChannels() int
	// Kernel is the square kernel's side: 1 or 3.
	Kernel() int
	// Stride is 1 or 2.
	Stride() int
}

// AttentionParams configures scaled dot-product attention.
type AttentionParams struct {
	// Heads splits the feature dimension of q, k and v into this many
	// heads of equal width.
	Heads int
	// Causal masks key j for query i when j > i + (Tk - Tq), as in CLIP's
	// text encoder.
	Causal bool
	// Scale multiplies q·k; zero means 1/sqrt(head width).
	Scale float32
}

// Backend runs the operations of a Stable Diffusion forward pass. A
// Backend runs one operation at a time across all its cores; callers must
// not invoke it from several goroutines at once.
type Backend interface {
	// Name identifies the backend and, for the CPU, its micro-kernel.
	Name() string

	// LoadLinear converts and packs a [out, in] weight (PyTorch's layout)
	// and an optional [out] bias.
	LoadLinear(weight tensor.Raw, bias *tensor.Raw) (Linear, error)
	// LoadConv2D converts and packs an [out, in, k, k] weight (PyTorch's
	// layout, k of 1 or 3) with an optional [out] bias, for the given
	// stride (1 or 2) and padding k/2.
	LoadConv2D(weight tensor.Raw, bias *tensor.Raw, stride int) (Conv2D, error)

	// MatMul applies a linear layer to x [..., in], writing dst [..., out].
	MatMul(dst, x *tensor.Tensor, w Linear, ep Epilogue) error
	// Conv2D convolves x [N, H, W, Cin] into dst [N, Ho, Wo, Cout] where
	// Ho = (H-1)/stride + 1 and Wo = (W-1)/stride + 1 (padding k/2).
	Conv2D(dst, x *tensor.Tensor, w Conv2D, ep Epilogue) error

	// GroupNorm normalises x [N, H, W, C] (or [N, T, C]) over each of
	// groups channel groups and all positions, then applies the per-channel
	// scale and shift and act (None or SiLU).
	GroupNorm(dst, x *tensor.Tensor, groups int, scale, shift []float32, eps float32, act Activation) error
	// LayerNorm normalises every row of the last dimension, then applies
	// the per-feature scale and shift.
	LayerNorm(dst, x *tensor.Tensor, scale, shift []float32, eps float32) error
	// Attention computes softmax(q·kᵀ·scale)·v per head for q [B, Tq, C]
	// and k, v [B, Tk, C], writing dst [B, Tq, C]; k and v may come from a
	// different sequence (cross-attention) with their own Tk.
	Attention(dst, q, k, v *tensor.Tensor, p AttentionParams) error

	// GEGLU splits x [..., 2F] into value and gate halves and writes
	// dst [..., F] = value · GELU(gate).
	GEGLU(dst, x *tensor.Tensor) error
	// Activate applies act to every element.
	Activate(dst, x *tensor.Tensor, act Activation) error
	// Upsample2x repeats every pixel of x [N, H, W, C] into a 2×2 block of
	// dst [N, 2H, 2W, C] (nearest neighbour).
	Upsample2x(dst, x *tensor.Tensor) error
	// Concat joins a [..., Ca] and b [..., Cb] along the last (channel)
	// dimension into dst [..., Ca+Cb], as the UNet's skip connections need.
	Concat(dst, a, b *tensor.Tensor) error
	// Embedding copies rows ids of table [V, D] into dst [len(ids), D]
	// (or any shape with len(ids)*D elements and last dimension D).
	Embedding(dst, table *tensor.Tensor, ids []int) error
	// Axpby writes dst = a·x + b·y element-wise, the update every sampler
	// and classifier-free guidance is made of.
	Axpby(dst *tensor.Tensor, a float32, x *tensor.Tensor, b float32, y *tensor.Tensor) error
	// AddChannelBias adds bias [N, C] to every position of x [N, ..., C],
	// as a ResNet block adds its projected time embedding.
	AddChannelBias(dst, x, bias *tensor.Tensor) error

	// Close releases the backend's worker threads.
	Close()
}
