package safetensors

import (
	"encoding/binary"
	"math"
	"unsafe"
)

// Tensor is a view of one tensor. Data holds its raw little-endian bytes and
// aliases the file's mapping: it is read-only and valid until the File is
// closed.
type Tensor struct {
	File  string
	Name  string
	DType DType
	Shape []int64
	Data  []byte
}

// NumElements is the product of the shape (1 for a scalar).
func (t Tensor) NumElements() int64 {
	n := int64(1)
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// Float32 converts the tensor to a newly allocated float32 slice.
func (t Tensor) Float32() ([]float32, error) {
	out := make([]float32, t.NumElements())
	if err := t.DecodeFloat32(out); err != nil {
		return nil, err
	}
	return out, nil
}

// DecodeFloat32 converts the tensor into dst, which must have exactly
// NumElements entries.
func (t Tensor) DecodeFloat32(dst []float32) error {
	if !t.DType.IsFloat() {
		return tensorErr(t.File, t.Name, "dtype %s cannot be converted to float32 (want F32, F16 or BF16)", t.DType)
	}
	n := t.NumElements()
	if int64(len(dst)) != n {
		return tensorErr(t.File, t.Name, "destination has %d elements, tensor has %d", len(dst), n)
	}
	if int64(len(t.Data)) != n*t.DType.Size() {
		return tensorErr(t.File, t.Name, "holds %d bytes but %s%v needs %d", len(t.Data), t.DType, t.Shape, n*t.DType.Size())
	}
	switch t.DType {
	case F32:
		for i := range dst {
			dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(t.Data[4*i:]))
		}
	case F16:
		for i := range dst {
			dst[i] = HalfToFloat32(binary.LittleEndian.Uint16(t.Data[2*i:]))
		}
	case BF16:
		for i := range dst {
			dst[i] = BFloat16ToFloat32(binary.LittleEndian.Uint16(t.Data[2*i:]))
		}
	}
	return nil
}

// Float32View returns the data of an F32 tensor as a float32 slice without
// copying, when the host is little-endian and the bytes are 4-byte aligned
// (they are in files written with the usual 8-byte header padding). The
// slice aliases read-only memory and must not be modified.
func (t Tensor) Float32View() ([]float32, bool) {
	if t.DType != F32 || !hostLittleEndian || len(t.Data)%4 != 0 {
		return nil, false
	}
	if len(t.Data) == 0 {
		return []float32{}, true
	}
	p := unsafe.Pointer(unsafe.SliceData(t.Data))
	if uintptr(p)%4 != 0 {
		return nil, false
	}
	return unsafe.Slice((*float32)(p), len(t.Data)/4), true
}

var hostLittleEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()
