package tensor

import (
	"encoding/binary"
	"math"
	"testing"
)

func TestNewAndReshape(t *testing.T) {
	x, err := New(2, 3, 4)
	if err != nil {
		t.Fatal(err)
	}
	if x.Len() != 24 || x.Rank() != 3 || x.Dim(-1) != 4 || x.Rows() != 6 {
		t.Fatalf("len %d rank %d last %d rows %d", x.Len(), x.Rank(), x.Dim(-1), x.Rows())
	}
	cases := []struct {
		shape   []int
		want    []int
		wantErr bool
	}{
		{[]int{6, 4}, []int{6, 4}, false},
		{[]int{-1, 8}, []int{3, 8}, false},
		{[]int{2, -1}, []int{2, 12}, false},
		{[]int{5, -1}, nil, true},
		{[]int{-1, -1}, nil, true},
		{[]int{7, 3}, nil, true},
		{[]int{0, -1}, nil, true},
	}
	for _, tc := range cases {
		y, err := x.Reshape(tc.shape...)
		if tc.wantErr {
			if err == nil {
				t.Fatalf("Reshape%v: expected an error, got %v", tc.shape, y.Shape)
			}
			continue
		}
		if err != nil {
			t.Fatalf("Reshape%v: %v", tc.shape, err)
		}
		if !EqualShape(y.Shape, tc.want) || &y.Data[0] != &x.Data[0] {
			t.Fatalf("Reshape%v = %v (shared %v), want %v sharing data", tc.shape, y.Shape, &y.Data[0] == &x.Data[0], tc.want)
		}
	}
	if _, err := New(2, -1); err == nil {
		t.Fatal("New accepted a negative dimension")
	}
	if _, err := FromData(make([]float32, 5), 2, 3); err == nil {
		t.Fatal("FromData accepted a length that does not match the shape")
	}
	c := x.Clone()
	c.Data[0] = 1
	if x.Data[0] != 0 || !c.SameShape(x) {
		t.Fatal("Clone shares data or changes shape")
	}
}

func TestHalfConversionRoundTripsEveryValue(t *testing.T) {
	for h := 0; h < 1<<16; h++ {
		f := HalfToFloat32(uint16(h))
		if math.IsNaN(float64(f)) {
			if back := Float32ToHalf(f); back&0x7c00 != 0x7c00 || back&0x3ff == 0 {
				t.Fatalf("NaN %#04x came back as %#04x", h, back)
			}
			continue
		}
		if back := Float32ToHalf(f); back != uint16(h) {
			t.Fatalf("half %#04x -> %g -> %#04x", h, f, back)
		}
	}
}

func TestHalfConversionValues(t *testing.T) {
	cases := []struct {
		bits uint16
		want float64
	}{
		{0x3c00, 1},
		{0xc000, -2},
		{0x7bff, 65504},                 // largest finite
		{0x0001, math.Ldexp(1, -24)},    // smallest subnormal
		{0x03ff, math.Ldexp(1023, -24)}, // largest subnormal
		{0x0400, math.Ldexp(1, -14)},    // smallest normal
		{0x3555, 0.333251953125},
		{0x7c00, math.Inf(1)},
		{0x8000, math.Copysign(0, -1)},
	}
	for _, tc := range cases {
		got := float64(HalfToFloat32(tc.bits))
		if got != tc.want || math.Signbit(got) != math.Signbit(tc.want) {
			t.Fatalf("HalfToFloat32(%#04x) = %g, want %g", tc.bits, got, tc.want)
		}
	}
	// Rounding: halfway cases go to even, overflow goes to infinity.
	rounding := []struct {
		in   float32
		want uint16
	}{
		{1 + 1.0/2048, 0x3c00},                // halfway between 1 and the next half, even is 1
		{1 + 3.0/2048, 0x3c02},                // halfway, rounds up to even
		{65520, 0x7c00},                       // rounds past the largest finite
		{float32(math.Ldexp(1, -25)), 0x0000}, // halfway to the smallest subnormal, even is zero
		{float32(math.Ldexp(3, -26)), 0x0001},
	}
	for _, tc := range rounding {
		if got := Float32ToHalf(tc.in); got != tc.want {
			t.Fatalf("Float32ToHalf(%g) = %#04x, want %#04x", tc.in, got, tc.want)
		}
	}
}

func TestBFloat16(t *testing.T) {
	for h := 0; h < 1<<16; h++ {
		f := BFloat16ToFloat32(uint16(h))
		if math.IsNaN(float64(f)) {
			continue
		}
		if back := Float32ToBFloat16(f); back != uint16(h) {
			t.Fatalf("bf16 %#04x -> %g -> %#04x", h, f, back)
		}
	}
	if got := BFloat16ToFloat32(0x3f80); got != 1 {
		t.Fatalf("bf16 0x3f80 = %g, want 1", got)
	}
	if got := Float32ToBFloat16(float32(math.NaN())); got&0x7f80 != 0x7f80 || got&0x7f == 0 {
		t.Fatalf("NaN narrowed to %#04x, not a NaN", got)
	}
}

func TestRawFloat32(t *testing.T) {
	values := []float32{1.5, -2.25, 0, 3}
	f16 := Raw{DType: F16, Shape: []int{2, 2}, Data: make([]byte, 8)}
	bf16 := Raw{DType: BF16, Shape: []int{2, 2}, Data: make([]byte, 8)}
	for i, v := range values {
		binary.LittleEndian.PutUint16(f16.Data[2*i:], Float32ToHalf(v))
		binary.LittleEndian.PutUint16(bf16.Data[2*i:], Float32ToBFloat16(v))
	}
	for _, raw := range []Raw{RawFromFloat32(values, 2, 2), f16, bf16} {
		got, err := raw.Float32()
		if err != nil {
			t.Fatalf("%v: %v", raw.DType, err)
		}
		if !EqualShape(got.Shape, []int{2, 2}) {
			t.Fatalf("%v: shape %v", raw.DType, got.Shape)
		}
		for i, v := range values {
			if got.Data[i] != v {
				t.Fatalf("%v element %d = %g, want %g", raw.DType, i, got.Data[i], v)
			}
		}
	}
	bad := []Raw{
		{DType: F16, Shape: []int{3}, Data: make([]byte, 5)},
		{DType: DType(9), Shape: []int{1}, Data: make([]byte, 4)},
		{DType: F32, Shape: []int{-1}, Data: nil},
	}
	for _, raw := range bad {
		if _, err := raw.Float32(); err == nil {
			t.Fatalf("%v %v with %d bytes decoded without error", raw.DType, raw.Shape, len(raw.Data))
		}
	}
	for _, s := range []string{"F32", "F16", "BF16"} {
		d, err := ParseDType(s)
		if err != nil || d.String() != s {
			t.Fatalf("ParseDType(%q) = %v, %v", s, d, err)
		}
	}
	if _, err := ParseDType("I8"); err == nil {
		t.Fatal("ParseDType accepted I8")
	}
}
