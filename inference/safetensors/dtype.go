package safetensors

import "fmt"

// DType is the element type of a tensor, spelled as in the safetensors header.
type DType string

// The dtypes the format defines. Only F32, F16 and BF16 can be converted to
// float32; the rest are recognised so that headers of mixed files validate.
const (
	F64    DType = "F64"
	F32    DType = "F32"
	F16    DType = "F16"
	BF16   DType = "BF16"
	I64    DType = "I64"
	I32    DType = "I32"
	I16    DType = "I16"
	I8     DType = "I8"
	U64    DType = "U64"
	U32    DType = "U32"
	U16    DType = "U16"
	U8     DType = "U8"
	Bool   DType = "BOOL"
	F8E4M3 DType = "F8_E4M3"
	F8E5M2 DType = "F8_E5M2"
)

var dtypeSizes = map[DType]int64{
	F64: 8, F32: 4, F16: 2, BF16: 2,
	I64: 8, I32: 4, I16: 2, I8: 1,
	U64: 8, U32: 4, U16: 2, U8: 1,
	Bool: 1, F8E4M3: 1, F8E5M2: 1,
}

// Size returns the byte size of one element, or 0 for an unknown dtype.
func (d DType) Size() int64 { return dtypeSizes[d] }

// Valid reports whether d is a dtype the format defines.
func (d DType) Valid() bool { return dtypeSizes[d] != 0 }

// IsFloat reports whether tensors of this dtype can be converted to float32.
func (d DType) IsFloat() bool { return d == F32 || d == F16 || d == BF16 }

// ParseDType checks a header dtype string.
func ParseDType(s string) (DType, error) {
	d := DType(s)
	if !d.Valid() {
		return "", fmt.Errorf("unknown dtype %q (want one of F64, F32, F16, BF16, I64, I32, I16, I8, U64, U32, U16, U8, BOOL, F8_E4M3, F8_E5M2)", s)
	}
	return d, nil
}
