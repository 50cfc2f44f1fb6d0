package vulkan

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/sdfleet/sdfleet/inference/tensor"
)

// Tensor is a device-resident tensor: fp16 (or, for a phase that asks,
// fp32) activations, fp16 weights.
type Tensor struct {
	d      *Device
	buf    *Buffer
	dims   []int
	dtype  tensor.DType
	view   bool // a Reshape of another tensor: Release does nothing
	weight bool // loaded once, freed with the device
}

// Dims is the shape, last dimension fastest.
func (t *Tensor) Dims() []int { return t.dims }

// DType is the element type in device memory.
func (t *Tensor) DType() tensor.DType { return t.dtype }

// Len is the element count.
func (t *Tensor) Len() int {
	n := 1
	for _, d := range t.dims {
		n *= d
	}
	return n
}

func (t *Tensor) String() string { return fmt.Sprintf("%v %v", t.dtype, t.dims) }

func elements(dims []int) (int, error) {
	n := 1
	for _, d := range dims {
		if d <= 0 {
			return 0, fmt.Errorf("shape %v: every dimension must be positive", dims)
		}
		n *= d
	}
	return n, nil
}

// Alloc returns an uninitialised activation from the pool, in the
// activation dtype (F16 unless SetActivationDType chose F32).
func (d *Device) Alloc(dims ...int) (*Tensor, error) {
	return d.alloc(d.act, false, dims)
}

func (d *Device) alloc(dtype tensor.DType, weight bool, dims []int) (*Tensor, error) {
	n, err := elements(dims)
	if err != nil {
		return nil, err
	}
	if n >= 1<<32 {
		return nil, fmt.Errorf("shape %v: %d elements, but the kernels index with 32 bits", dims, n)
	}
	what := fmt.Sprintf("activation %v", dims)
	if weight {
		what = fmt.Sprintf("weight %v %v", dtype, dims)
	}
	size := uint64(n * dtype.Size())
	var b *Buffer
	if weight {
		b, err = d.allocate(what, size, false)
		if err == nil {
			d.weights[b] = true
		}
	} else {
		b, err = d.pool.get(what, size, false)
	}
	if err != nil {
		return nil, err
	}
	return &Tensor{d: d, buf: b, dims: append([]int(nil), dims...), dtype: dtype, weight: weight}, nil
}

// Reshape returns a view of t sharing its memory.
func (d *Device) Reshape(t *Tensor, dims ...int) (*Tensor, error) {
	infer := -1
	known := 1
	for i, v := range dims {
		switch {
		case v == -1 && infer < 0:
			infer = i
		case v <= 0:
			return nil, fmt.Errorf("reshape %v to %v: dimension %d is %d", t.dims, dims, i, v)
		default:
			known *= v
		}
	}
	out := append([]int(nil), dims...)
	if infer >= 0 {
		if t.Len()%known != 0 {
			return nil, fmt.Errorf("reshape %v to %v: %d elements do not divide by %d", t.dims, dims, t.Len(), known)
		}
		out[infer] = t.Len() / known
	}
	if n, _ := elements(out); n != t.Len() {
		return nil, fmt.Errorf("reshape %v to %v: %d elements, want %d", t.dims, dims, n, t.Len())
	}
	return &Tensor{d: d, buf: t.buf, dims: out, dtype: t.dtype, view: true, weight: t.weight}, nil
}

// Release returns an activation's buffer to the pool. Recorded commands
// that use it still run first: the pool hands it out again only to later
// commands, and the recorder orders those after every earlier reader.
func (d *Device) Release(t *Tensor) {
	if t == nil || t.view || t.buf == nil {
		return
	}
	if t.weight {
		b := t.buf
		delete(d.weights, b)
		if d.rec != nil && d.rec.open {
			// Recorded commands may still use it: free after the submit.
			d.rec.after = append(d.rec.after, func() { d.free(b) })
		} else {
			d.free(b)
		}
	} else {
		d.pool.put(t.buf)
	}
	t.buf = nil
}

// stage copies bytes into a staging buffer and records its copy into dst
// at offset; the staging buffer returns to the pool after the submit.
func (d *Device) stage(dst *Buffer, offset uint64, data []byte) error {
	r, err := d.recorder()
	if err != nil {
		return err
	}
	s, err := d.pool.get("staging", uint64(len(data)), true)
	if err != nil {
		return err
	}
	copy(s.host, data)
	if err := r.copyBuffer(dst, s, offset, 0, uint64(len(data))); err != nil {
		d.pool.put(s)
		return err
	}
	r.after = append(r.after, func() { d.pool.put(s) })
	r.staged += uint64(len(data))
	// Loading a model stages every weight: submit now and then so host
	// memory holds a bounded amount of staging, not a second model.
	if r.staged > stagingLimit {
		return d.Sync()
	}
	return nil
}

const stagingLimit = 64 << 20

// Write uploads float32 values into t, converting to t's dtype.
func (d *Device) Write(t *Tensor, src []float32) error {
	if t.buf == nil {
		return fmt.Errorf("write: tensor %v was released", t.dims)
	}
	if len(src) != t.Len() {
		return fmt.Errorf("write: %d values for tensor %v of %d elements", len(src), t.dims, t.Len())
	}
	var raw []byte
	switch t.dtype {
	case tensor.F32:
		raw = make([]byte, 4*len(src))
		for i, v := range src {
			binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
		}
	case tensor.F16:
		raw = make([]byte, 2*len(src))
		for i, v := range src {
			binary.LittleEndian.PutUint16(raw[2*i:], tensor.Float32ToHalf(v))
		}
	default:
		return fmt.Errorf("write: unsupported dtype %v", t.dtype)
	}
	return d.stage(t.buf, 0, raw)
}

// Read waits for the recorded work and downloads t as float32 values.
func (d *Device) Read(dst []float32, t *Tensor) error {
	if t.buf == nil {
		return fmt.Errorf("read: tensor %v was released", t.dims)
	}
	if len(dst) != t.Len() {
		return fmt.Errorf("read: %d values for tensor %v of %d elements", len(dst), t.dims, t.Len())
	}
	r, err := d.recorder()
	if err != nil {
		return err
	}
	size := uint64(t.Len() * t.dtype.Size())
	s, err := d.pool.get("staging", size, true)
	if err != nil {
		return err
	}
	defer d.pool.put(s)
	if err := r.copyBuffer(s, t.buf, 0, 0, size); err != nil {
		return err
	}
	if err := d.Sync(); err != nil {
		return err
	}
	switch t.dtype {
	case tensor.F32:
		for i := range dst {
			dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(s.host[4*i:]))
		}
	case tensor.F16:
		for i := range dst {
			dst[i] = tensor.HalfToFloat32(binary.LittleEndian.Uint16(s.host[2*i:]))
		}
	default:
		return fmt.Errorf("read: unsupported dtype %v", t.dtype)
	}
	return nil
}

// Sync submits the recorded commands and waits for them.
func (d *Device) Sync() error {
	if d.rec == nil {
		return nil
	}
	d.rec.staged = 0
	return d.rec.submit()
}

// LoadWeight uploads a stored tensor as fp16: fp16 bytes go up as they
// are, fp32 and bf16 are rounded to fp16 on the way.
func (d *Device) LoadWeight(r tensor.Raw) (*Tensor, error) {
	n, err := elements(r.Shape)
	if err != nil {
		return nil, fmt.Errorf("weight: %w", err)
	}
	if len(r.Data) != n*r.DType.Size() {
		return nil, fmt.Errorf("weight %v %v: %d bytes, want %d", r.DType, r.Shape, len(r.Data), n*r.DType.Size())
	}
	t, err := d.alloc(tensor.F16, true, r.Shape)
	if err != nil {
		return nil, err
	}
	raw := r.Data
	if r.DType != tensor.F16 {
		vals := make([]float32, n)
		if err := tensor.DecodeInto(vals, r.DType, r.Data); err != nil {
			d.Release(t)
			return nil, fmt.Errorf("weight %v %v: %w", r.DType, r.Shape, err)
		}
		raw = make([]byte, 2*n)
		for i, v := range vals {
			binary.LittleEndian.PutUint16(raw[2*i:], tensor.Float32ToHalf(v))
		}
	}
	// Chunks keep each staging buffer small whatever the weight's size.
	const chunk = 16 << 20
	for off := 0; off < len(raw); off += chunk {
		end := min(off+chunk, len(raw))
		if err := d.stage(t.buf, uint64(off), raw[off:end]); err != nil {
			d.Release(t)
			return nil, err
		}
	}
	return t, nil
}
