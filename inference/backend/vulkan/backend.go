package vulkan

import (
	"fmt"
	"strings"

	"github.com/sdfleet/sdfleet/inference/backend"
	"github.com/sdfleet/sdfleet/inference/tensor"
)

// Backend is backend.Backend on a Vulkan device.
type Backend struct {
	d *Device
}

var (
	_ backend.Backend             = (*Backend)(nil)
	_ backend.ActivationPrecision = (*Backend)(nil)
)

// New opens the selected device as a backend.
func New(opts Options) (*Backend, error) {
	d, err := Open(opts)
	if err != nil {
		return nil, err
	}
	return &Backend{d: d}, nil
}

// Device is the device the backend runs on.
func (b *Backend) Device() *Device { return b.d }

// Name is "vulkan" and the device's name.
func (b *Backend) Name() string { return "vulkan (" + b.d.Name() + ")" }

// own converts the tensor arguments of op, named by the space-separated
// names, to this backend's tensors; a nil or foreign one is an error
// naming it.
func (b *Backend) own(op, names string, ts ...backend.Tensor) ([]*Tensor, error) {
	name := strings.Fields(names)
	out := make([]*Tensor, len(ts))
	for i, t := range ts {
		if t == nil {
			return nil, fmt.Errorf("%s: %s is nil", op, name[i])
		}
		vt, ok := t.(*Tensor)
		if !ok || vt.d != b.d {
			return nil, fmt.Errorf("%s: %s %v was not made by this Vulkan backend", op, name[i], t.Dims())
		}
		if vt.buf == nil {
			return nil, fmt.Errorf("%s: %s %v was released", op, name[i], vt.dims)
		}
		out[i] = vt
	}
	return out, nil
}

// Alloc returns an activation from the pool: fp16 unless the phase asked
// for fp32 (SetActivationDType).
func (b *Backend) Alloc(shape ...int) (backend.Tensor, error) { return b.d.Alloc(shape...) }

// SetActivationDType chooses F16 (the default) or F32 for later Allocs.
func (b *Backend) SetActivationDType(dt tensor.DType) (tensor.DType, error) {
	return b.d.SetActivationDType(dt)
}

// Reshape returns a view sharing t's memory.
func (b *Backend) Reshape(t backend.Tensor, shape ...int) (backend.Tensor, error) {
	ts, err := b.own("reshape", "t", t)
	if err != nil {
		return nil, err
	}
	return b.d.Reshape(ts[0], shape...)
}

// Release returns an activation to the pool; weights go with Unload.
func (b *Backend) Release(t backend.Tensor) {
	if vt, ok := t.(*Tensor); ok && vt != nil && !vt.weight {
		b.d.Release(vt)
	}
}

// Write uploads through a staging buffer, recorded in order.
func (b *Backend) Write(dst backend.Tensor, src []float32) error {
	ts, err := b.own("write", "dst", dst)
	if err != nil {
		return err
	}
	return b.d.Write(ts[0], src)
}

// Read submits the recorded work, waits and downloads t.
func (b *Backend) Read(dst []float32, t backend.Tensor) error {
	ts, err := b.own("read", "t", t)
	if err != nil {
		return err
	}
	return b.d.Read(dst, ts[0])
}

// Sync submits the recorded work and waits.
func (b *Backend) Sync() error { return b.d.Sync() }

// LoadTensor loads a norm scale, shift or embedding table as fp16.
func (b *Backend) LoadTensor(r tensor.Raw) (backend.Tensor, error) { return b.d.LoadWeight(r) }

type linear struct {
	w, bias *Tensor
}

func (l *linear) In() int  { return l.w.dims[1] }
func (l *linear) Out() int { return l.w.dims[0] }

// WeightBytes implements backend.WeightSize.
func (l *linear) WeightBytes() int64 { return deviceBytes(l.w) + deviceBytes(l.bias) }

type conv struct {
	w, bias *Tensor
	stride  int
}

func (c *conv) InChannels() int  { return c.w.dims[1] }
func (c *conv) OutChannels() int { return c.w.dims[0] }
func (c *conv) Kernel() int      { return c.w.dims[2] }
func (c *conv) Stride() int      { return c.stride }

// WeightBytes implements backend.WeightSize.
func (c *conv) WeightBytes() int64 { return deviceBytes(c.w) + deviceBytes(c.bias) }

// deviceBytes is the device memory of a weight's elements; nil is none.
func deviceBytes(t *Tensor) int64 {
	if t == nil {
		return 0
	}
	return int64(t.Len() * t.dtype.Size())
}

func (b *Backend) loadWithBias(weight tensor.Raw, bias *tensor.Raw, out int) (*Tensor, *Tensor, error) {
	w, err := b.d.LoadWeight(weight)
	if err != nil {
		return nil, nil, err
	}
	if bias == nil {
		return w, nil, nil
	}
	if n, _ := tensor.NumElements(bias.Shape); n != out {
		b.d.Release(w)
		return nil, nil, fmt.Errorf("bias %v: want %d elements for weight %v", bias.Shape, out, weight.Shape)
	}
	bt, err := b.d.LoadWeight(*bias)
	if err != nil {
		b.d.Release(w)
		return nil, nil, err
	}
	return w, bt, nil
}

// LoadLinear uploads a [out, in] weight as stored (rounded to fp16 when
// stored wider) and its bias.
func (b *Backend) LoadLinear(weight tensor.Raw, bias *tensor.Raw) (backend.Linear, error) {
	if len(weight.Shape) != 2 {
		return nil, fmt.Errorf("linear weight %v: want [out, in]", weight.Shape)
	}
	w, bt, err := b.loadWithBias(weight, bias, weight.Shape[0])
	if err != nil {
		return nil, err
	}
	return &linear{w: w, bias: bt}, nil
}

// LoadConv2D uploads an [out, in, k, k] weight in PyTorch's layout, which
// the implicit-GEMM kernel reads directly.
func (b *Backend) LoadConv2D(weight tensor.Raw, bias *tensor.Raw, stride int) (backend.Conv2D, error) {
	s := weight.Shape
	if len(s) != 4 || s[2] != s[3] || (s[2] != 1 && s[2] != 3) {
		return nil, fmt.Errorf("conv weight %v: want [out, in, k, k] with k 1 or 3", s)
	}
	if stride != 1 && stride != 2 {
		return nil, fmt.Errorf("conv stride %d: want 1 or 2", stride)
	}
	w, bt, err := b.loadWithBias(weight, bias, s[0])
	if err != nil {
		return nil, err
	}
	return &conv{w: w, bias: bt, stride: stride}, nil
}

// Unload frees weights; commands already recorded still read them.
func (b *Backend) Unload(weights ...any) {
	for _, w := range weights {
		switch w := w.(type) {
		case *Tensor:
			if w != nil && w.weight && !w.view {
				b.d.Release(w)
			}
		case *linear:
			if w != nil {
				b.d.Release(w.w)
				b.d.Release(w.bias)
			}
		case *conv:
			if w != nil {
				b.d.Release(w.w)
				b.d.Release(w.bias)
			}
		}
	}
}

func (b *Backend) residual(name string, ep backend.Epilogue) (*Tensor, error) {
	if ep.Residual == nil {
		return nil, nil
	}
	ts, err := b.own(name, "residual", ep.Residual)
	if err != nil {
		return nil, err
	}
	return ts[0], nil
}

// MatMul applies a linear layer with its fused epilogue.
func (b *Backend) MatMul(dst, x backend.Tensor, w backend.Linear, ep backend.Epilogue) error {
	ts, err := b.own("matmul", "dst x", dst, x)
	if err != nil {
		return err
	}
	l, ok := w.(*linear)
	if !ok || l.w.d != b.d {
		return fmt.Errorf("matmul: the weight was not loaded by this Vulkan backend")
	}
	res, err := b.residual("matmul", ep)
	if err != nil {
		return err
	}
	return b.d.MatMul(ts[0], ts[1], l.w, l.bias, res, ep.Act)
}

// Conv2D convolves with the fused epilogue.
func (b *Backend) Conv2D(dst, x backend.Tensor, w backend.Conv2D, ep backend.Epilogue) error {
	ts, err := b.own("conv2d", "dst x", dst, x)
	if err != nil {
		return err
	}
	c, ok := w.(*conv)
	if !ok || c.w.d != b.d {
		return fmt.Errorf("conv2d: the weight was not loaded by this Vulkan backend")
	}
	res, err := b.residual("conv2d", ep)
	if err != nil {
		return err
	}
	return b.d.Conv2D(ts[0], ts[1], c.w, c.bias, res, c.stride, ep.Act)
}

// GroupNorm normalises per channel group.
func (b *Backend) GroupNorm(dst, x backend.Tensor, groups int, scale, shift backend.Tensor, eps float32, act backend.Activation) error {
	ts, err := b.own("groupnorm", "dst x scale shift", dst, x, scale, shift)
	if err != nil {
		return err
	}
	return b.d.GroupNorm(ts[0], ts[1], groups, ts[2], ts[3], eps, act)
}

// LayerNorm normalises every row.
func (b *Backend) LayerNorm(dst, x, scale, shift backend.Tensor, eps float32) error {
	ts, err := b.own("layernorm", "dst x scale shift", dst, x, scale, shift)
	if err != nil {
		return err
	}
	return b.d.LayerNorm(ts[0], ts[1], ts[2], ts[3], eps)
}

// Attention runs the fused online-softmax kernel.
func (b *Backend) Attention(dst, q, k, v backend.Tensor, p backend.AttentionParams) error {
	ts, err := b.own("attention", "dst q k v", dst, q, k, v)
	if err != nil {
		return err
	}
	return b.d.Attention(ts[0], ts[1], ts[2], ts[3], p)
}

// GEGLU gates the value half by GELU of the gate half.
func (b *Backend) GEGLU(dst, x backend.Tensor) error {
	ts, err := b.own("geglu", "dst x", dst, x)
	if err != nil {
		return err
	}
	return b.d.GEGLU(ts[0], ts[1])
}

// Activate applies act element-wise.
func (b *Backend) Activate(dst, x backend.Tensor, act backend.Activation) error {
	ts, err := b.own("activate", "dst x", dst, x)
	if err != nil {
		return err
	}
	return b.d.Activate(ts[0], ts[1], act)
}

// ResizeNearest resizes with PyTorch's nearest rule.
func (b *Backend) ResizeNearest(dst, x backend.Tensor) error {
	ts, err := b.own("resize", "dst x", dst, x)
	if err != nil {
		return err
	}
	return b.d.ResizeNearest(ts[0], ts[1])
}

// Concat joins along the channel dimension.
func (b *Backend) Concat(dst, a, c backend.Tensor) error {
	ts, err := b.own("concat", "dst a b", dst, a, c)
	if err != nil {
		return err
	}
	return b.d.Concat(ts[0], ts[1], ts[2])
}

// Embedding gathers rows of a loaded table.
func (b *Backend) Embedding(dst, table backend.Tensor, ids []int) error {
	ts, err := b.own("embedding", "dst table", dst, table)
	if err != nil {
		return err
	}
	return b.d.Embedding(ts[0], ts[1], ids)
}

// Axpby writes a·x + b·y.
func (b *Backend) Axpby(dst backend.Tensor, a float32, x backend.Tensor, c float32, y backend.Tensor) error {
	ts, err := b.own("axpby", "dst x y", dst, x, y)
	if err != nil {
		return err
	}
	return b.d.Axpby(ts[0], a, ts[1], c, ts[2])
}

// AddChannelBias adds a per-batch, per-channel bias.
func (b *Backend) AddChannelBias(dst, x, bias backend.Tensor) error {
	ts, err := b.own("add channel bias", "dst x bias", dst, x, bias)
	if err != nil {
		return err
	}
	return b.d.AddChannelBias(ts[0], ts[1], ts[2])
}

// Close waits for the device and frees everything.
func (b *Backend) Close() { b.d.Close() }
