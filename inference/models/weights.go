package models

import (
	"fmt"
	"runtime"

	"github.com/sdfleet/sdfleet/inference/backend"
	"github.com/sdfleet/sdfleet/inference/checkpoint"
	"github.com/sdfleet/sdfleet/inference/tensor"
)

// Source hands out the stored weights of one network by canonical name.
type Source interface {
	// Raw returns the tensor's dtype, canonical shape and bytes.
	Raw(name string) (tensor.Raw, error)
}

// WeightError is a weight that could not be read or loaded. File is the
// checkpoint file it is stored in when known.
type WeightError struct {
	Tensor string
	File   string
	Err    error
}

func (e *WeightError) Error() string {
	if e.File != "" {
		return fmt.Sprintf("tensor %q in %s: %v", e.Tensor, e.File, e.Err)
	}
	return fmt.Sprintf("tensor %q: %v", e.Tensor, e.Err)
}

func (e *WeightError) Unwrap() error { return e.Err }

// checkpointSource reads one component of an opened checkpoint.
type checkpointSource struct {
	model     *checkpoint.Model
	component checkpoint.Component
}

// FromCheckpoint returns a Source over component c of m.
func FromCheckpoint(m *checkpoint.Model, c checkpoint.Component) Source {
	return checkpointSource{model: m, component: c}
}

func (s checkpointSource) Raw(name string) (tensor.Raw, error) {
	t, err := s.model.Tensor(s.component, name)
	if err != nil {
		return tensor.Raw{}, &WeightError{Tensor: string(s.component) + "/" + name, File: s.model.Path, Err: err}
	}
	dt, err := tensor.ParseDType(string(t.DType))
	if err != nil {
		return tensor.Raw{}, &WeightError{Tensor: string(s.component) + "/" + name, File: t.File, Err: err}
	}
	shape := make([]int, len(t.Shape))
	for i, d := range t.Shape {
		shape[i] = int(d)
	}
	return tensor.Raw{DType: dt, Shape: shape, Data: t.Bytes()}, nil
}

// DropStored implements storedDropper: the tensor's mapped pages leave resident memory once
// the backend has packed its own copy, so that loading a network does not hold both.
func (s checkpointSource) DropStored(r tensor.Raw) { _ = s.model.DropPagesOf(r.Data) }

// storedDropper is a Source that can release a tensor's stored bytes after they are loaded.
type storedDropper interface {
	DropStored(tensor.Raw)
}

// MapSource is a Source over in-memory tensors, for tests.
type MapSource map[string]tensor.Raw

// Raw implements Source.
func (m MapSource) Raw(name string) (tensor.Raw, error) {
	r, ok := m[name]
	if !ok {
		return tensor.Raw{}, &WeightError{Tensor: name, Err: fmt.Errorf("not found")}
	}
	return r, nil
}

// Loader loads weights through a backend and remembers the first failure,
// so a network's constructor can load dozens of tensors and check once.
// Loaders made by With share that state and extend the name prefix.
type Loader struct {
	st     *loaderState
	prefix string
}

type loaderState struct {
	backend backend.Backend
	source  Source
	err     error
	bytes   int64
	// sinceGC counts the bytes loaded since the last forced collection.
	sinceGC int64
}

// gcEvery bounds the garbage a load leaves behind: the backend converts
// each weight through temporary float32 copies, and without a collection
// every few hundred megabytes a 3.4 GB UNet would leave gigabytes of them
// on the heap at the peak of loading. The weights hold no pointers, so a
// collection is cheap.
const gcEvery = 256 << 20

func (st *loaderState) loaded(n int64) {
	st.bytes += n
	st.sinceGC += n
	if st.sinceGC >= gcEvery {
		st.sinceGC = 0
		runtime.GC()
	}
}

// dropStored releases a loaded weight's stored bytes when the source can.
func (st *loaderState) dropStored(r tensor.Raw) {
	if d, ok := st.source.(storedDropper); ok {
		d.DropStored(r)
	}
}

// NewLoader returns a loader reading src and packing through b.
func NewLoader(b backend.Backend, src Source) *Loader {
	return &Loader{st: &loaderState{backend: b, source: src}}
}

// With returns a loader sharing l's state whose names get an extra prefix.
func (l *Loader) With(prefix string) *Loader { return &Loader{st: l.st, prefix: l.prefix + prefix} }

// Err is the first failure, nil when every load succeeded.
func (l *Loader) Err() error { return l.st.err }

// PackedBytes estimates the float32 bytes the loaded weights occupy.
func (l *Loader) PackedBytes() int64 { return l.st.bytes }

func (l *Loader) raw(name string) (tensor.Raw, bool) {
	if l.st.err != nil {
		return tensor.Raw{}, false
	}
	r, err := l.st.source.Raw(l.prefix + name)
	if err != nil {
		l.st.err = err
		return tensor.Raw{}, false
	}
	return r, true
}

func (l *Loader) fail(name string, err error) {
	if l.st.err == nil {
		l.st.err = &WeightError{Tensor: l.prefix + name, Err: err}
	}
}

// Vector decodes a one-dimensional weight (norm scale, bias) of length n.
func (s *Loader) Vector(name string, n int) []float32 {
	r, ok := s.raw(name)
	if !ok {
		return nil
	}
	t, err := r.Float32()
	if err != nil {
		s.fail(name, err)
		return nil
	}
	if len(t.Shape) != 1 || t.Shape[0] != n {
		s.fail(name, fmt.Errorf("shape %v, expected [%d]", t.Shape, n))
		return nil
	}
	s.st.loaded(int64(4 * n))
	return t.Data
}

// Matrix decodes a two-dimensional weight (an embedding table) of shape
// [rows, cols] into a float32 tensor.
func (s *Loader) Matrix(name string, rows, cols int) *tensor.Tensor {
	r, ok := s.raw(name)
	if !ok {
		return nil
	}
	t, err := r.Float32()
	if err != nil {
		s.fail(name, err)
		return nil
	}
	if len(t.Shape) != 2 || t.Shape[0] != rows || t.Shape[1] != cols {
		s.fail(name, fmt.Errorf("shape %v, expected [%d %d]", t.Shape, rows, cols))
		return nil
	}
	s.st.loaded(int64(4 * rows * cols))
	return t
}

// Norm loads name.weight and name.bias of a norm over ch channels.
func (s *Loader) Norm(name string, ch int) Norm {
	return Norm{Scale: s.Vector(name+".weight", ch), Shift: s.Vector(name+".bias", ch)}
}

// Linear loads name.weight [out, in] (a [out, in, 1, 1] 1×1 convolution
// is accepted as the same matrix) and, when bias is set, name.bias.
func (s *Loader) Linear(name string, out, in int, bias bool) backend.Linear {
	w, ok := s.raw(name + ".weight")
	if !ok {
		return nil
	}
	if len(w.Shape) == 4 && w.Shape[2] == 1 && w.Shape[3] == 1 {
		w.Shape = w.Shape[:2]
	}
	if len(w.Shape) != 2 || w.Shape[0] != out || w.Shape[1] != in {
		s.fail(name+".weight", fmt.Errorf("shape %v, expected [%d %d]", w.Shape, out, in))
		return nil
	}
	var b *tensor.Raw
	if bias {
		r, ok := s.raw(name + ".bias")
		if !ok {
			return nil
		}
		b = &r
	}
	l, err := s.st.backend.LoadLinear(w, b)
	s.st.dropStored(w)
	if err != nil {
		s.fail(name, err)
		return nil
	}
	s.st.loaded(int64(4 * (out*in + out)))
	return l
}

// Conv loads name.weight [out, in, k, k] and name.bias for the given stride.
func (s *Loader) Conv(name string, out, in, k, stride int) backend.Conv2D {
	w, ok := s.raw(name + ".weight")
	if !ok {
		return nil
	}
	if len(w.Shape) != 4 || w.Shape[0] != out || w.Shape[1] != in || w.Shape[2] != k || w.Shape[3] != k {
		s.fail(name+".weight", fmt.Errorf("shape %v, expected [%d %d %d %d]", w.Shape, out, in, k, k))
		return nil
	}
	b, ok := s.raw(name + ".bias")
	if !ok {
		return nil
	}
	c, err := s.st.backend.LoadConv2D(w, &b, stride)
	s.st.dropStored(w)
	if err != nil {
		s.fail(name, err)
		return nil
	}
	s.st.loaded(int64(4 * (out*in*k*k + out)))
	return c
}

// Norm is a group or layer norm's per-channel scale and shift.
type Norm struct {
	Scale, Shift []float32
}
