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

// Tensor is a dense, row-major tensor owned by the backend that made it,
// through Alloc, Reshape or LoadTensor. Its elements live wherever the
// backend keeps them (host memory for the CPU backend, device memory for
// a GPU backend); callers reach them only through Write and Read.
//
// The CPU backend's tensors are *tensor.Tensor values, which is why that
// type has the two methods below; callers must not rely on it, and every
// backend rejects tensors made by another one with an error.
type Tensor interface {
	// Dims is the shape, last dimension fastest. The caller must not
	// modify the returned slice.
	Dims() []int
	// DType is how the backend stores the elements: F32 on the CPU; a GPU
	// backend may keep activations or weights in F16 or BF16.
	DType() tensor.DType
}

// Epilogue is fused into a matrix multiply or convolution:
// dst = Act(x·W + bias) + Residual. A nil Residual adds nothing; when set
// it must have dst's shape and must not alias dst.
type Epilogue struct {
	Act      Activation
	Residual Tensor
}

// Linear is a fully connected layer's weight (and optional bias), held
// in whatever layout the backend that loaded it multiplies fastest.
type Linear interface {
	// In is the input feature count, Out the output feature count.
	In() int
	Out() int
}

// Conv2D is a convolution's weight (and optional bias), held in whatever
// layout the backend that loaded it convolves fastest. Padding is
// Kernel/2 on every side.
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

// Backend runs the operations of a Stable Diffusion forward pass on the
// tensors it owns. Callers must not invoke a Backend from several
// goroutines at once.
//
// Execution model. Every operation behaves as if it ran to completion, in
// call order, before the next call begins; a backend may instead record
// operations and execute them later (a GPU backend records a whole UNet
// evaluation into one command buffer), as long as no caller can tell the
// difference. The host waits for recorded work only in Read and Sync.
// Operations check their arguments (shapes, dtypes, aliasing, ownership)
// when called and return an error naming the argument; a failure that
// only execution reveals (a lost device, an out-of-memory at submission)
// is returned by the next Read or Sync, after which the backend's results
// are undefined and the caller should Close it.
//
// Memory. Alloc and the Load methods return errors, never panic; running
// out of memory is an *OutOfMemoryError. Release hands an activation's
// memory back for reuse by later Allocs; a backend may keep it pooled, so
// a per-step working set costs no allocation after the first step.
// Release may be called as soon as the last operation that reads or
// writes the tensor has been called: a recording backend must order the
// reuse after that operation's execution.
//
// Layouts are NHWC for images and latents ([N, H, W, C]) and
// [batch, tokens, features] for sequences. Unless an operation says
// otherwise, dst must already have the right shape and must not share
// memory with any input.
type Backend interface {
	// Name identifies the backend and, for the CPU, its micro-kernel.
	Name() string

	// Alloc returns an uninitialised activation of the given shape in the
	// backend's activation dtype (F32 on the CPU, F16 on a GPU backend
	// unless the phase asked for F32: see ActivationPrecision). Every
	// operation writes all of its dst, so nothing needs clearing.
	Alloc(shape ...int) (Tensor, error)
	// Reshape returns a view of t with a new shape of the same element
	// count; one dimension may be -1 and is then inferred. The view shares
	// t's memory (writing one changes the other), costs no copy and no
	// wait, and lives as long as t: releasing a view does nothing, and a
	// view must not be used after t is released.
	Reshape(t Tensor, shape ...int) (Tensor, error)
	// Release hands t's memory back to the backend (see Memory above).
	// Releasing nil, a view or a loaded weight does nothing (weights go
	// with Unload); releasing an activation twice, or using it after
	// Release, is a caller bug.
	Release(t Tensor)
	// Write copies src, row-major float32 values, into all of dst,
	// converting to dst's dtype. It is ordered like an operation: it sees
	// no effect of later calls and later calls see its result. src may be
	// reused as soon as Write returns.
	Write(dst Tensor, src []float32) error
	// Read copies all of t into dst as row-major float32 values. The host
	// waits here for every earlier operation that t depends on; it returns
	// any error that execution reported.
	Read(dst []float32, t Tensor) error
	// Sync waits for every recorded operation to finish and returns any
	// error that execution reported. A backend that runs operations
	// eagerly returns nil at once.
	Sync() error

	// LoadTensor loads a weight used as a plain tensor (a norm's scale or
	// shift, an embedding table) in the dtype it is stored in or one the
	// backend prefers. r.Data may be memory-mapped: the backend copies
	// what it needs before returning, so the caller may then drop it.
	LoadTensor(r tensor.Raw) (Tensor, error)
	// LoadLinear loads a [out, in] weight (PyTorch's layout) and an
	// optional [out] bias, as stored (F32, F16 or BF16), into the
	// backend's multiply layout. Like LoadTensor, it keeps no reference
	// to the Raw bytes.
	LoadLinear(weight tensor.Raw, bias *tensor.Raw) (Linear, error)
	// LoadConv2D loads an [out, in, k, k] weight (PyTorch's layout, k of 1
	// or 3) with an optional [out] bias, for the given stride (1 or 2) and
	// padding k/2. Like LoadTensor, it keeps no reference to the Raw bytes.
	LoadConv2D(weight tensor.Raw, bias *tensor.Raw, stride int) (Conv2D, error)
	// Unload frees weights this backend loaded: Tensors from LoadTensor,
	// Linears and Conv2Ds; nil entries are skipped. It is ordered like
	// Release: recorded operations that read a weight still see it. The
	// pipeline unloads each network when its phase ends, so that the text
	// encoder, the UNet and the VAE need not fit in memory together.
	Unload(weights ...any)

	// MatMul applies a linear layer to x [..., in], writing dst [..., out].
	MatMul(dst, x Tensor, w Linear, ep Epilogue) error
	// Conv2D convolves x [N, H, W, Cin] into dst [N, Ho, Wo, Cout] where
	// Ho = (H-1)/stride + 1 and Wo = (W-1)/stride + 1 (padding k/2).
	Conv2D(dst, x Tensor, w Conv2D, ep Epilogue) error

	// GroupNorm normalises x [N, H, W, C] (or [N, T, C]) over each of
	// groups channel groups and all positions, then applies the
	// per-channel scale [C] and shift [C] and act (None or SiLU).
	GroupNorm(dst, x Tensor, groups int, scale, shift Tensor, eps float32, act Activation) error
	// LayerNorm normalises every row of the last dimension [..., C], then
	// applies the per-feature scale [C] and shift [C].
	LayerNorm(dst, x Tensor, scale, shift Tensor, eps float32) error
	// Attention computes softmax(q·kᵀ·scale)·v per head for q [B, Tq, C]
	// and k, v [B, Tk, C], writing dst [B, Tq, C]; k and v may come from a
	// different sequence (cross-attention) with their own Tk. No Tq×Tk
	// buffer is part of the contract: a backend may stream the softmax.
	Attention(dst, q, k, v Tensor, p AttentionParams) error

	// GEGLU splits x [..., 2F] into value and gate halves and writes
	// dst [..., F] = value · GELU(gate).
	GEGLU(dst, x Tensor) error
	// Activate applies act to every element; dst may be x.
	Activate(dst, x Tensor, act Activation) error
	// ResizeNearest writes dst [N, Ho, Wo, C] from x [N, H, W, C] by
	// nearest neighbour with PyTorch's index rule: source row
	// min(floor(y·(H/Ho)), H-1) with the ratio in float32, likewise for
	// columns. Ho = 2H, Wo = 2W is the UNet's and VAE's 2× upsample.
	ResizeNearest(dst, x Tensor) error
	// Concat joins a [..., Ca] and b [..., Cb] along the last (channel)
	// dimension into dst [..., Ca+Cb], as the UNet's skip connections need.
	Concat(dst, a, b Tensor) error
	// Embedding copies rows ids of table [V, D] into dst [len(ids), D]
	// (or any shape with len(ids)*D elements and last dimension D). ids
	// are host values, copied before Embedding returns; an id outside
	// [0, V) is an error.
	Embedding(dst, table Tensor, ids []int) error
	// Axpby writes dst = a·x + b·y element-wise, the update every sampler
	// and classifier-free guidance is made of; dst may be x or y.
	Axpby(dst Tensor, a float32, x Tensor, b float32, y Tensor) error
	// AddChannelBias adds bias [N, C] to every position of x [N, ..., C],
	// as a ResNet block adds its projected time embedding; dst may be x.
	AddChannelBias(dst, x, bias Tensor) error

	// Close waits for recorded work, then releases every tensor, weight
	// and worker of the backend.
	Close()
}

// ActivationPrecision is implemented by a backend whose activations are
// narrower than float32 by default: the Vulkan backend stores them in fp16
// (and computes in fp32). A network whose activations exceed fp16's range
// of ±65504 (SDXL's VAE) asks for float32 activations for its phase
// through F32Activations; backends without the interface (the CPU) are
// float32 throughout.
type ActivationPrecision interface {
	// SetActivationDType sets the dtype of later Allocs, tensor.F32 or the
	// backend's narrower default, and returns the previous one. Tensors
	// already allocated keep theirs; an operation given activations of
	// different dtypes returns an error, so a phase allocates its own.
	SetActivationDType(dtype tensor.DType) (previous tensor.DType, err error)
}

// F32Activations makes b allocate float32 activations until restore is
// called, which brings back the previous dtype:
//
//	restore, err := backend.F32Activations(b)
//	if err != nil { ... }
//	defer restore()
//	// decode the latents: every Alloc here is float32
//
// On a backend without ActivationPrecision it changes nothing.
func F32Activations(b Backend) (restore func(), err error) {
	p, ok := b.(ActivationPrecision)
	if !ok {
		return func() {}, nil
	}
	prev, err := p.SetActivationDType(tensor.F32)
	if err != nil {
		return nil, err
	}
	return func() { _, _ = p.SetActivationDType(prev) }, nil
}

// WeightSize is implemented by a loaded Linear or Conv2D that can tell the
// memory it holds, which depends on the backend's layout (the CPU keeps
// 16-bit weights 16-bit and packs fp32 ones as fp32; the Vulkan backend
// stores fp16).
type WeightSize interface {
	// WeightBytes is the memory the weight and its bias occupy.
	WeightBytes() int64
}

// LoadedBytes is the memory a loaded weight occupies: a Tensor's elements
// at its dtype's size, a WeightSize's own figure, or, for a handle that
// tells neither, fallback.
func LoadedBytes(w any, fallback int64) int64 {
	switch w := w.(type) {
	case WeightSize:
		return w.WeightBytes()
	case Tensor:
		n := int64(w.DType().Size())
		for _, d := range w.Dims() {
			n *= int64(d)
		}
		return n
	}
	return fallback
}

// OutOfMemoryError is an allocation the backend could not satisfy.
// sdgen reports it with its out-of-memory exit status.
type OutOfMemoryError struct {
	// What names the allocation: "activation [2 64 64 320]", a weight.
	What string
	// Bytes is the size that failed.
	Bytes int64
	// Device names the memory: "host", or the GPU's name.
	Device string
	Err    error
}

func (e *OutOfMemoryError) Error() string {
	msg := fmt.Sprintf("out of %s memory allocating %d bytes for %s", e.Device, e.Bytes, e.What)
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *OutOfMemoryError) Unwrap() error { return e.Err }
