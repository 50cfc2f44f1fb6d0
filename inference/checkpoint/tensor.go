package checkpoint

import (
	"fmt"

	"github.com/sdfleet/sdfleet/inference/safetensors"
)

// Tensor is a weight under its canonical name. Its bytes come straight from
// the memory-mapped file whenever the layouts agree byte for byte, which is
// every case except a transposed matrix.
type Tensor struct {
	Component Component
	Name      string
	DType     safetensors.DType
	Shape     []int64
	// File and Source say where the bytes are stored, for messages.
	File   string
	Source string

	stored safetensors.Tensor
	t      transform
}

// NumElements is the product of the canonical shape.
func (t Tensor) NumElements() int64 {
	n := int64(1)
	for _, x := range t.Shape {
		n *= x
	}
	return n
}

// Bytes returns the little-endian bytes in canonical layout. The slice
// aliases read-only mapped memory (except for transposed tensors, which are
// copied) and is valid until the Model is closed.
func (t Tensor) Bytes() []byte {
	size := t.DType.Size()
	n := t.NumElements() * size
	switch t.t {
	case splitQ, splitK, splitV:
		off := int64(t.t-splitQ) * n
		return t.stored.Data[off : off+n : off+n]
	case transposed:
		rows, cols := t.stored.Shape[0], t.stored.Shape[1]
		out := make([]byte, n)
		for r := range rows {
			for c := range cols {
				src := (r*cols + c) * size
				dst := (c*rows + r) * size
				copy(out[dst:dst+size], t.stored.Data[src:src+size])
			}
		}
		return out
	}
	return t.stored.Data
}

// Float32 converts the tensor, in canonical layout, to float32.
func (t Tensor) Float32() ([]float32, error) {
	v := safetensors.Tensor{File: t.File, Name: t.Source, DType: t.DType, Shape: t.Shape, Data: t.Bytes()}
	out, err := v.Float32()
	if err != nil {
		return nil, fmt.Errorf("%s %q: %w", t.Component, t.Name, err)
	}
	return out, nil
}
