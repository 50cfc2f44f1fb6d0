package cpu

import (
	"fmt"

	"github.com/sdfleet/sdfleet/inference/backend"
	"github.com/sdfleet/sdfleet/inference/tensor"
)

// The CPU backend's tensors are host *tensor.Tensor values: the exported
// operations check that each argument is one and run the host
// implementation, so the interface costs a type assertion per argument.

// hostEpilogue is a backend.Epilogue whose residual is a host tensor.
type hostEpilogue struct {
	Act      backend.Activation
	Residual *tensor.Tensor
}

// host returns t as a host tensor, or an error naming arg when t is nil
// or was made by another backend.
func host(arg string, t backend.Tensor) (*tensor.Tensor, error) {
	if t == nil {
		return nil, fmt.Errorf("%s: tensor is nil", arg)
	}
	h, ok := t.(*tensor.Tensor)
	if !ok {
		return nil, fmt.Errorf("%s: %T was not made by the cpu backend", arg, t)
	}
	if h == nil {
		return nil, fmt.Errorf("%s: tensor is nil", arg)
	}
	return h, nil
}

// hosts unwraps several named tensors at once.
func hosts(op string, names []string, ts ...backend.Tensor) ([]*tensor.Tensor, error) {
	out := make([]*tensor.Tensor, len(ts))
	for i, t := range ts {
		h, err := host(op+" "+names[i], t)
		if err != nil {
			return nil, err
		}
		out[i] = h
	}
	return out, nil
}

// vector returns a one-dimensional host tensor's values (a norm's scale
// or shift).
func vector(arg string, t backend.Tensor) ([]float32, error) {
	h, err := host(arg, t)
	if err != nil {
		return nil, err
	}
	if len(h.Shape) != 1 || len(h.Data) != h.Shape[0] {
		return nil, fmt.Errorf("%s: shape %v, expected one dimension", arg, h.Shape)
	}
	return h.Data, nil
}

func hostEp(ep backend.Epilogue) (hostEpilogue, error) {
	out := hostEpilogue{Act: ep.Act}
	// A nil *tensor.Tensor stored in the interface is no residual, as
	// callers holding host tensors naturally write it.
	if r, ok := ep.Residual.(*tensor.Tensor); ok && r == nil {
		return out, nil
	}
	if ep.Residual != nil {
		r, err := host("epilogue residual", ep.Residual)
		if err != nil {
			return out, err
		}
		out.Residual = r
	}
	return out, nil
}

// Alloc implements backend.Backend with a zeroed host tensor. Sizes past
// the address space are reported as out of memory; the Go runtime cannot
// report an allocation that merely exceeds free memory.
func (b *Backend) Alloc(shape ...int) (backend.Tensor, error) {
	n, err := tensor.NumElements(shape)
	if err != nil {
		return nil, fmt.Errorf("alloc: %w", err)
	}
	if n > maxElements {
		return nil, &backend.OutOfMemoryError{What: fmt.Sprintf("activation %v", shape), Bytes: 4 * int64(n), Device: "host"}
	}
	return tensor.New(shape...)
}

// maxElements bounds one allocation to 64 GiB of float32 values.
const maxElements = 1 << 34

// Reshape implements backend.Backend.
func (b *Backend) Reshape(t backend.Tensor, shape ...int) (backend.Tensor, error) {
	h, err := host("reshape", t)
	if err != nil {
		return nil, err
	}
	return h.Reshape(shape...)
}

// Release implements backend.Backend: host memory goes back to the
// garbage collector, which already reuses it across steps.
func (b *Backend) Release(backend.Tensor) {}

// Unload implements backend.Backend: packed weights are ordinary Go
// memory, freed by the garbage collector once the model drops them.
func (b *Backend) Unload(...any) {}

// Write implements backend.Backend.
func (b *Backend) Write(dst backend.Tensor, src []float32) error {
	h, err := host("write dst", dst)
	if err != nil {
		return err
	}
	if len(src) != len(h.Data) {
		return fmt.Errorf("write src: %d values for a %v tensor of %d", len(src), h.Shape, len(h.Data))
	}
	copy(h.Data, src)
	return nil
}

// Read implements backend.Backend; every operation has already run.
func (b *Backend) Read(dst []float32, t backend.Tensor) error {
	h, err := host("read", t)
	if err != nil {
		return err
	}
	if len(dst) != len(h.Data) {
		return fmt.Errorf("read dst: %d values for a %v tensor of %d", len(dst), h.Shape, len(h.Data))
	}
	copy(dst, h.Data)
	return nil
}

// Sync implements backend.Backend: the CPU runs every operation eagerly.
func (b *Backend) Sync() error { return nil }

// LoadTensor implements backend.Backend by decoding to float32.
func (b *Backend) LoadTensor(r tensor.Raw) (backend.Tensor, error) {
	return r.Float32()
}

// MatMul implements backend.Backend.
func (b *Backend) MatMul(dst, x backend.Tensor, w backend.Linear, ep backend.Epilogue) error {
	t, err := hosts("matmul", []string{"dst", "x"}, dst, x)
	if err != nil {
		return err
	}
	e, err := hostEp(ep)
	if err != nil {
		return err
	}
	return b.matMul(t[0], t[1], w, e)
}

// Conv2D implements backend.Backend.
func (b *Backend) Conv2D(dst, x backend.Tensor, w backend.Conv2D, ep backend.Epilogue) error {
	t, err := hosts("conv", []string{"dst", "x"}, dst, x)
	if err != nil {
		return err
	}
	e, err := hostEp(ep)
	if err != nil {
		return err
	}
	return b.convolve(t[0], t[1], w, e)
}

// GroupNorm implements backend.Backend. Statistics are accumulated in
// float64 per channel and reduced per group.
func (b *Backend) GroupNorm(dst, x backend.Tensor, groups int, scale, shift backend.Tensor, eps float32, act backend.Activation) error {
	t, err := hosts("group norm", []string{"dst", "x"}, dst, x)
	if err != nil {
		return err
	}
	sc, err := vector("group norm scale", scale)
	if err != nil {
		return err
	}
	sh, err := vector("group norm shift", shift)
	if err != nil {
		return err
	}
	return b.groupNorm(t[0], t[1], groups, sc, sh, eps, act)
}

// LayerNorm implements backend.Backend.
func (b *Backend) LayerNorm(dst, x backend.Tensor, scale, shift backend.Tensor, eps float32) error {
	t, err := hosts("layer norm", []string{"dst", "x"}, dst, x)
	if err != nil {
		return err
	}
	sc, err := vector("layer norm scale", scale)
	if err != nil {
		return err
	}
	sh, err := vector("layer norm shift", shift)
	if err != nil {
		return err
	}
	return b.layerNorm(t[0], t[1], sc, sh, eps)
}

// Attention implements backend.Backend with the online softmax.
func (b *Backend) Attention(dst, q, k, v backend.Tensor, p backend.AttentionParams) error {
	t, err := hosts("attention", []string{"dst", "q", "k", "v"}, dst, q, k, v)
	if err != nil {
		return err
	}
	return b.attention(t[0], t[1], t[2], t[3], p)
}

// GEGLU implements backend.Backend.
func (b *Backend) GEGLU(dst, x backend.Tensor) error {
	t, err := hosts("geglu", []string{"dst", "x"}, dst, x)
	if err != nil {
		return err
	}
	return b.geglu(t[0], t[1])
}

// Activate implements backend.Backend; dst may be x.
func (b *Backend) Activate(dst, x backend.Tensor, act backend.Activation) error {
	t, err := hosts("activate", []string{"dst", "x"}, dst, x)
	if err != nil {
		return err
	}
	return b.activate(t[0], t[1], act)
}

// ResizeNearest implements backend.Backend; the exact 2× case takes the
// faster row-copying path.
func (b *Backend) ResizeNearest(dst, x backend.Tensor) error {
	t, err := hosts("resize", []string{"dst", "x"}, dst, x)
	if err != nil {
		return err
	}
	d, s := t[0], t[1]
	if len(s.Shape) == 4 && len(d.Shape) == 4 && d.Shape[1] == 2*s.Shape[1] && d.Shape[2] == 2*s.Shape[2] {
		return b.upsample2x(d, s)
	}
	return b.resizeNearest(d, s)
}

// Concat implements backend.Backend.
func (b *Backend) Concat(dst, a, bt backend.Tensor) error {
	t, err := hosts("concat", []string{"dst", "a", "b"}, dst, a, bt)
	if err != nil {
		return err
	}
	return b.concat(t[0], t[1], t[2])
}

// Embedding implements backend.Backend.
func (b *Backend) Embedding(dst, table backend.Tensor, ids []int) error {
	t, err := hosts("embedding", []string{"dst", "table"}, dst, table)
	if err != nil {
		return err
	}
	return b.embedding(t[0], t[1], ids)
}

// Axpby implements backend.Backend; dst may alias x or y.
func (b *Backend) Axpby(dst backend.Tensor, a float32, x backend.Tensor, bc float32, y backend.Tensor) error {
	t, err := hosts("axpby", []string{"dst", "x", "y"}, dst, x, y)
	if err != nil {
		return err
	}
	return b.axpby(t[0], a, t[1], bc, t[2])
}

// AddChannelBias implements backend.Backend; dst may alias x.
func (b *Backend) AddChannelBias(dst, x, bias backend.Tensor) error {
	t, err := hosts("channel bias", []string{"dst", "x", "bias"}, dst, x, bias)
	if err != nil {
		return err
	}
	return b.addChannelBias(t[0], t[1], t[2])
}
