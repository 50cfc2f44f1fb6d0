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
	// weights are the handles loaded so far, for Unload.
	weights []any
	// sinceGC counts the bytes loaded since the last forced collection.
	sinceGC int64
}

// gcEvery bounds the garbage a load leaves behind: a backend may convert
// weights through temporary host copies (the Vulkan backend does for
// weights not stored in fp16; the CPU backend packs from the stored bytes),
// and without a collection every few hundred megabytes a 3.4 GB UNet would
// leave gigabytes of them on the heap at the peak of loading. The weights hold no pointers, so a
// collection is cheap.
const gcEvery = 256 << 20

func (st *loaderState) loaded(w any, n int64) {
	st.weights = append(st.weights, w)
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

// Unload frees every weight loaded through l and the loaders made from
// it: a network's constructor calls it when a later weight fails, and the
// network's Release when it is dropped.
func (l *Loader) Unload() {
	l.st.backend.Unload(l.st.weights...)
	l.st.weights = nil
}

// PackedBytes is the memory the loaded weights occupy in the backend.
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

// stored reads name and checks its shape against the declared one; a
// [out, in, 1, 1] 1×1 convolution passes for a declared [out, in] matrix.
func (l *Loader) stored(name string, shape ...int) (tensor.Raw, bool) {
	r, ok := l.raw(name)
	if !ok {
		return tensor.Raw{}, false
	}
	if len(shape) == 2 && len(r.Shape) == 4 && r.Shape[2] == 1 && r.Shape[3] == 1 {
		r.Shape = r.Shape[:2]
	}
	if !tensor.EqualShape(r.Shape, shape) {
		l.fail(name, fmt.Errorf("shape %v, expected %v", r.Shape, shape))
		return tensor.Raw{}, false
	}
	return r, true
}

// Tensor loads name, declared with the given shape, as a plain weight
// tensor: a norm's scale or shift, an embedding table.
func (l *Loader) Tensor(name string, shape ...int) backend.Tensor {
	r, ok := l.stored(name, shape...)
	if !ok {
		return nil
	}
	t, err := l.st.backend.LoadTensor(r)
	l.st.dropStored(r)
	if err != nil {
		l.fail(name, err)
		return nil
	}
	l.st.loaded(t, backend.LoadedBytes(t, int64(len(r.Data))))
	return t
}

// Norm loads name.weight and name.bias of a norm over ch channels.
func (l *Loader) Norm(name string, ch int) Norm {
	return Norm{Scale: l.Tensor(name+".weight", ch), Shift: l.Tensor(name+".bias", ch)}
}

// Linear loads name.weight [out, in] (a [out, in, 1, 1] 1×1 convolution
// is accepted as the same matrix) and, when bias is set, name.bias [out].
func (l *Loader) Linear(name string, out, in int, bias bool) backend.Linear {
	w, ok := l.stored(name+".weight", out, in)
	if !ok {
		return nil
	}
	var b *tensor.Raw
	if bias {
		r, ok := l.stored(name+".bias", out)
		if !ok {
			return nil
		}
		b = &r
	}
	lin, err := l.st.backend.LoadLinear(w, b)
	l.st.dropStored(w)
	if err != nil {
		l.fail(name, err)
		return nil
	}
	l.st.loaded(lin, backend.LoadedBytes(lin, int64(len(w.Data))))
	return lin
}

// Conv loads name.weight [out, in, k, k] and name.bias [out] for the given
// stride.
func (l *Loader) Conv(name string, out, in, k, stride int) backend.Conv2D {
	w, ok := l.stored(name+".weight", out, in, k, k)
	if !ok {
		return nil
	}
	b, ok := l.stored(name+".bias", out)
	if !ok {
		return nil
	}
	c, err := l.st.backend.LoadConv2D(w, &b, stride)
	l.st.dropStored(w)
	if err != nil {
		l.fail(name, err)
		return nil
	}
	l.st.loaded(c, backend.LoadedBytes(c, int64(len(w.Data)+len(b.Data))))
	return c
}

// Norm is a group or layer norm's per-channel scale and shift.
type Norm struct {
	Scale, Shift backend.Tensor
}
