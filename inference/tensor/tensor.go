package tensor

import (
	"fmt"
	"strings"
)

// Tensor is a dense, row-major float32 tensor. The last dimension is the
// fastest varying one. A Tensor owns no hidden state: Shape and Data may
// be read directly, and Reshape returns a view sharing Data.
type Tensor struct {
	Shape []int
	Data  []float32
}

// New allocates a zeroed tensor of the given shape. It returns an error
// instead of panicking when a dimension is negative.
func New(shape ...int) (*Tensor, error) {
	n, err := NumElements(shape)
	if err != nil {
		return nil, err
	}
	return &Tensor{Shape: append([]int(nil), shape...), Data: make([]float32, n)}, nil
}

// MustNew is New for shapes known to be valid at compile time (tests,
// benchmarks); it panics on a negative dimension.
func MustNew(shape ...int) *Tensor {
	t, err := New(shape...)
	if err != nil {
		panic(err)
	}
	return t
}

// FromData wraps data in a tensor of the given shape without copying.
func FromData(data []float32, shape ...int) (*Tensor, error) {
	n, err := NumElements(shape)
	if err != nil {
		return nil, err
	}
	if n != len(data) {
		return nil, fmt.Errorf("tensor data: shape %v needs %d elements, got %d", shape, n, len(data))
	}
	return &Tensor{Shape: append([]int(nil), shape...), Data: data}, nil
}

// NumElements returns the product of shape, or an error when a dimension
// is negative.
func NumElements(shape []int) (int, error) {
	n := 1
	for i, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("tensor shape %v: dimension %d is negative", shape, i)
		}
		n *= d
	}
	return n, nil
}

// Len is the number of elements.
func (t *Tensor) Len() int { return len(t.Data) }

// Rank is the number of dimensions.
func (t *Tensor) Rank() int { return len(t.Shape) }

// Dim returns dimension i; negative i counts from the end (-1 is the
// last dimension).
func (t *Tensor) Dim(i int) int {
	if i < 0 {
		i += len(t.Shape)
	}
	return t.Shape[i]
}

// Rows is the product of every dimension but the last: the number of
// feature vectors in the tensor.
func (t *Tensor) Rows() int {
	if len(t.Shape) == 0 {
		return 1
	}
	last := t.Shape[len(t.Shape)-1]
	if last == 0 {
		return 0
	}
	return len(t.Data) / last
}

// Reshape returns a view of t with a new shape holding the same number of
// elements. One dimension may be -1 and is then inferred.
func (t *Tensor) Reshape(shape ...int) (*Tensor, error) {
	infer := -1
	known := 1
	for i, d := range shape {
		switch {
		case d == -1 && infer < 0:
			infer = i
		case d < 0:
			return nil, fmt.Errorf("reshape %v to %v: dimension %d is invalid", t.Shape, shape, i)
		default:
			known *= d
		}
	}
	out := append([]int(nil), shape...)
	if infer >= 0 {
		if known == 0 || len(t.Data)%known != 0 {
			return nil, fmt.Errorf("reshape %v to %v: cannot infer dimension %d", t.Shape, shape, infer)
		}
		out[infer] = len(t.Data) / known
		known *= out[infer]
	}
	if known != len(t.Data) {
		return nil, fmt.Errorf("reshape %v to %v: element count %d differs from %d", t.Shape, shape, len(t.Data), known)
	}
	return &Tensor{Shape: out, Data: t.Data}, nil
}

// Clone returns a deep copy.
func (t *Tensor) Clone() *Tensor {
	return &Tensor{Shape: append([]int(nil), t.Shape...), Data: append([]float32(nil), t.Data...)}
}

// SameShape reports whether t and u have identical shapes.
func (t *Tensor) SameShape(u *Tensor) bool {
	return EqualShape(t.Shape, u.Shape)
}

// EqualShape reports whether two shapes are identical.
func EqualShape(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// String describes the shape, not the data, so tensors can be logged.
func (t *Tensor) String() string {
	parts := make([]string, len(t.Shape))
	for i, d := range t.Shape {
		parts[i] = fmt.Sprint(d)
	}
	return "tensor[" + strings.Join(parts, "x") + "]"
}

// Dims is the shape; with DType it makes a host tensor the CPU backend's
// backend.Tensor.
func (t *Tensor) Dims() []int { return t.Shape }

// DType is F32: a host tensor holds float32 values.
func (t *Tensor) DType() DType { return F32 }
