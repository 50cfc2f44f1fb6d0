package tensor

import (
	"encoding/binary"
	"fmt"
	"math"
)

// DType names how a stored weight encodes each element.
type DType int

const (
	// F32 is IEEE 754 binary32, little endian.
	F32 DType = iota
	// F16 is IEEE 754 binary16, little endian.
	F16
	// BF16 is bfloat16 (the top half of a binary32), little endian.
	BF16
)

// Size is the number of bytes per element.
func (d DType) Size() int {
	switch d {
	case F32:
		return 4
	case F16, BF16:
		return 2
	}
	return 0
}

func (d DType) String() string {
	switch d {
	case F32:
		return "F32"
	case F16:
		return "F16"
	case BF16:
		return "BF16"
	}
	return fmt.Sprintf("DType(%d)", int(d))
}

// ParseDType accepts the safetensors spellings F32, F16 and BF16.
func ParseDType(s string) (DType, error) {
	switch s {
	case "F32":
		return F32, nil
	case "F16":
		return F16, nil
	case "BF16":
		return BF16, nil
	}
	return 0, fmt.Errorf("dtype %q: expected F32, F16 or BF16", s)
}

// Raw is a weight exactly as stored on disk: an encoding, a shape and
// little-endian bytes. Backends convert it to float32 and pack it once
// when a model is loaded.
type Raw struct {
	DType DType
	Shape []int
	Data  []byte
}

// RawFromFloat32 encodes float32 values as an F32 Raw; tests and tools use
// it to hand weights to the same loading path as a checkpoint.
func RawFromFloat32(values []float32, shape ...int) Raw {
	b := make([]byte, 4*len(values))
	for i, v := range values {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return Raw{DType: F32, Shape: append([]int(nil), shape...), Data: b}
}

// Float32 decodes r into a new float32 tensor of the same shape.
func (r Raw) Float32() (*Tensor, error) {
	n, err := NumElements(r.Shape)
	if err != nil {
		return nil, err
	}
	size := r.DType.Size()
	if size == 0 {
		return nil, fmt.Errorf("raw weight: unsupported dtype %v", r.DType)
	}
	if len(r.Data) != n*size {
		return nil, fmt.Errorf("raw weight %v %v: expected %d bytes, got %d", r.DType, r.Shape, n*size, len(r.Data))
	}
	out := make([]float32, n)
	if err := DecodeInto(out, r.DType, r.Data); err != nil {
		return nil, err
	}
	return &Tensor{Shape: append([]int(nil), r.Shape...), Data: out}, nil
}

// DecodeInto converts little-endian elements of dtype d from src into dst.
// len(src) must be exactly len(dst)*d.Size().
func DecodeInto(dst []float32, d DType, src []byte) error {
	size := d.Size()
	if size == 0 {
		return fmt.Errorf("decode: unsupported dtype %v", d)
	}
	if len(src) != len(dst)*size {
		return fmt.Errorf("decode %v: expected %d bytes for %d elements, got %d", d, len(dst)*size, len(dst), len(src))
	}
	switch d {
	case F32:
		for i := range dst {
			dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:]))
		}
	case F16:
		for i := range dst {
			dst[i] = HalfToFloat32(binary.LittleEndian.Uint16(src[2*i:]))
		}
	case BF16:
		for i := range dst {
			dst[i] = BFloat16ToFloat32(binary.LittleEndian.Uint16(src[2*i:]))
		}
	}
	return nil
}

// BFloat16ToFloat32 widens a bfloat16: its bits are the upper half of the
// float32 with the same value.
func BFloat16ToFloat32(h uint16) float32 {
	return math.Float32frombits(uint32(h) << 16)
}

// Float32ToBFloat16 narrows with round-to-nearest-even, keeping NaN a NaN.
func Float32ToBFloat16(f float32) uint16 {
	b := math.Float32bits(f)
	if b&0x7fffffff > 0x7f800000 {
		return uint16(b>>16) | 0x40
	}
	round := uint32(0x7fff) + (b>>16)&1
	return uint16((b + round) >> 16)
}

// HalfToFloat32 widens an IEEE binary16, including subnormals, infinities
// and NaN, exactly.
func HalfToFloat32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f:
		// Infinity or NaN: keep the payload's top bits.
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	case exp != 0:
		return math.Float32frombits(sign | (exp+112)<<23 | mant<<13)
	case mant == 0:
		return math.Float32frombits(sign)
	}
	// Subnormal half: normalise the mantissa into a float32 exponent.
	e := uint32(113)
	for mant&0x400 == 0 {
		mant <<= 1
		e--
	}
	mant &= 0x3ff
	return math.Float32frombits(sign | e<<23 | mant<<13)
}

// Float32ToHalf narrows to IEEE binary16 with round-to-nearest-even,
// overflowing to infinity and underflowing through subnormals to zero.
func Float32ToHalf(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int32(b>>23) & 0xff
	mant := b & 0x7fffff
	if exp == 0xff {
		if mant != 0 {
			return sign | 0x7e00
		}
		return sign | 0x7c00
	}
	e := exp - 127 + 15
	if e >= 0x1f {
		return sign | 0x7c00
	}
	if e <= 0 {
		if e < -10 {
			return sign
		}
		// Subnormal: shift the implicit-one mantissa into place and round.
		m := mant | 0x800000
		shift := uint32(14 - e)
		half := uint32(1) << (shift - 1)
		rem := m & (1<<shift - 1)
		r := m >> shift
		if rem > half || (rem == half && r&1 == 1) {
			r++
		}
		return sign | uint16(r)
	}
	r := uint32(e)<<10 | mant>>13
	rem := mant & 0x1fff
	if rem > 0x1000 || (rem == 0x1000 && r&1 == 1) {
		r++ // may carry into the exponent, which correctly rounds up to infinity
	}
	return sign | uint16(r)
}
