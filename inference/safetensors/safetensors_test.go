package safetensors

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// rawFile assembles a file from a literal header and data section, so tests
// can build files that no correct writer would produce.
func rawFile(header string, data []byte) []byte {
	var b bytes.Buffer
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(header)))
	b.Write(n[:])
	b.WriteString(header)
	b.Write(data)
	return b.Bytes()
}

func writeTemp(t *testing.T, content []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "model.safetensors")
	if err := os.WriteFile(p, content, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRoundTrip(t *testing.T) {
	a := []float32{1, -2, 0.5, 3.25, 65504, -0.0001}
	f32, _ := Float32Bytes(F32, a)
	f16, _ := Float32Bytes(F16, a)
	bf16, _ := Float32Bytes(BF16, a[:4])
	tensors := []TensorData{
		{Spec{"w.f32", F32, []int64{2, 3}}, f32},
		{Spec{"w.f16", F16, []int64{6}}, f16},
		{Spec{"w.bf16", BF16, []int64{2, 2}}, bf16},
		{Spec{"count", I32, []int64{}}, []byte{7, 0, 0, 0}},
	}
	p := filepath.Join(t.TempDir(), "rt.safetensors")
	if err := WriteFile(p, tensors, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
	f, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got := f.Metadata()["format"]; got != "pt" {
		t.Errorf("metadata format = %q, want pt", got)
	}
	if got, want := f.Names(), []string{"count", "w.bf16", "w.f16", "w.f32"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Names() = %v, want %v", got, want)
	}
	cases := []struct {
		name string
		want []float32
		tol  float64
	}{
		{"w.f32", a, 0},
		{"w.f16", a, 1e-3},
		{"w.bf16", a[:4], 1e-2},
	}
	for _, c := range cases {
		tn, ok := f.Tensor(c.name)
		if !ok {
			t.Fatalf("tensor %s missing", c.name)
		}
		got, err := tn.Float32()
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		for i := range c.want {
			if d := math.Abs(float64(got[i] - c.want[i])); d > c.tol*math.Max(1, math.Abs(float64(c.want[i]))) {
				t.Errorf("%s[%d] = %v, want %v", c.name, i, got[i], c.want[i])
			}
		}
	}
	tn, _ := f.Tensor("w.f32")
	view, ok := tn.Float32View()
	if !ok || !reflect.DeepEqual(view, a) {
		t.Errorf("Float32View = %v, %v; want %v, true", view, ok, a)
	}
	// Dropping the resident pages keeps every tensor readable with the same contents.
	if err := f.DropResidentPages(); err != nil {
		t.Fatal(err)
	}
	if view, _ := tn.Float32View(); !reflect.DeepEqual(view, a) {
		t.Errorf("after DropResidentPages, Float32View = %v; want %v", view, a)
	}
	// Dropping a tensor's pages keeps it readable, and bytes outside the mapping (the Go heap)
	// are never touched.
	heap := append([]byte(nil), tn.Data...)
	if err := f.DropPagesOf(tn.Data); err != nil {
		t.Fatal(err)
	}
	if err := f.DropPagesOf(heap); err != nil || !reflect.DeepEqual(heap, tn.Data) {
		t.Errorf("DropPagesOf on a heap copy: err %v, copy changed: %v", err, !reflect.DeepEqual(heap, tn.Data))
	}
	cnt, _ := f.Tensor("count")
	if _, err := cnt.Float32(); err == nil || !strings.Contains(err.Error(), "I32") || !strings.Contains(err.Error(), `"count"`) {
		t.Errorf("converting I32 tensor: err = %v, want an error naming the dtype and tensor", err)
	}
}

func TestHalfConversions(t *testing.T) {
	cases := []struct {
		bits uint16
		val  float32
	}{
		{0x0000, 0},
		{0x3c00, 1},
		{0xc000, -2},
		{0x3800, 0.5},
		{0x7bff, 65504},
		{0x0001, float32(math.Ldexp(1, -24))}, // smallest subnormal
		{0x0400, float32(math.Ldexp(1, -14))}, // smallest normal
		{0x7c00, float32(math.Inf(1))},
		{0xfc00, float32(math.Inf(-1))},
	}
	for _, c := range cases {
		if got := HalfToFloat32(c.bits); got != c.val {
			t.Errorf("HalfToFloat32(%#04x) = %v, want %v", c.bits, got, c.val)
		}
		if got := Float32ToHalf(c.val); got != c.bits {
			t.Errorf("Float32ToHalf(%v) = %#04x, want %#04x", c.val, got, c.bits)
		}
	}
	// Every finite half survives a round trip through float32.
	for h := range 0x10000 {
		b := uint16(h)
		if b&0x7c00 == 0x7c00 {
			continue
		}
		if got := Float32ToHalf(HalfToFloat32(b)); got != b {
			t.Fatalf("half %#04x round-trips to %#04x", b, got)
		}
	}
	// Ties round to even, overflow saturates, NaN stays NaN.
	if got := Float32ToHalf(1 + float32(math.Ldexp(1, -11))); got != 0x3c00 {
		t.Errorf("1+2^-11 rounds to %#04x, want 0x3c00 (even)", got)
	}
	if got := Float32ToHalf(1e6); got != 0x7c00 {
		t.Errorf("1e6 = %#04x, want +Inf", got)
	}
	if got := HalfToFloat32(Float32ToHalf(float32(math.NaN()))); !math.IsNaN(float64(got)) {
		t.Errorf("NaN became %v", got)
	}
	if got := BFloat16ToFloat32(Float32ToBFloat16(1.5)); got != 1.5 {
		t.Errorf("bf16 1.5 round-trips to %v", got)
	}
	if got := Float32ToBFloat16(1 + float32(math.Ldexp(1, -8))); got != 0x3f80 {
		t.Errorf("bf16 tie rounds to %#04x, want 0x3f80", got)
	}
}

func TestCorruptFiles(t *testing.T) {
	good := `{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F16","shape":[2],"data_offsets":[8,12]}}`
	data := make([]byte, 12)
	cases := []struct {
		name       string
		content    []byte
		wantTensor string
		wantMsg    string
	}{
		{"shorter than length field", []byte{1, 2, 3}, "", "shorter than the 8-byte"},
		{"header past the end", rawFile(good, data)[:40], "", "runs past the end"},
		{"truncated data", rawFile(good, data[:10]), "b", "run past the end of the data section"},
		{"trailing bytes", rawFile(good, make([]byte, 16)), "", "cover 12 bytes but the data section has 16"},
		{"header over limit", func() []byte {
			b := make([]byte, 16)
			binary.LittleEndian.PutUint64(b, MaxHeaderSize+1)
			return b
		}(), "", "exceeds the"},
		{"malformed json", rawFile(`{"a":{"dtype":`, nil), "a", "unexpected EOF"},
		{"malformed key", rawFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},`, data[:4]), "", "not valid JSON"},
		{"not an object", rawFile(`[1,2]`, nil), "", "must be a JSON object"},
		{"trailing json", rawFile(`{} {}`, nil), "", "trailing data"},
		{"overlapping offsets", rawFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}`, data), "b", `overlap tensor "a"`},
		{"gap between tensors", rawFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}`, data), "b", "unused"},
		{"reversed offsets", rawFile(`{"a":{"dtype":"F32","shape":[0],"data_offsets":[8,4]}}`, data), "a", "reversed"},
		{"wrong byte count", rawFile(`{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}`, data[:8]), "a", "holds 8 bytes but F32[3] needs 12"},
		{"byte count too small", rawFile(`{"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,12]}}`, data), "a", "holds 12 bytes but F32[2 2] needs 16"},
		{"duplicate names", rawFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, data[:8]), "a", "duplicate"},
		{"unknown dtype", rawFile(`{"a":{"dtype":"F7","shape":[1],"data_offsets":[0,4]}}`, data[:4]), "a", "unknown dtype"},
		{"negative dimension", rawFile(`{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}`, data[:4]), "a", "negative"},
		{"missing field", rawFile(`{"a":{"dtype":"F32","data_offsets":[0,4]}}`, data[:4]), "a", "needs dtype, shape and data_offsets"},
		{"three offsets", rawFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}}`, data[:4]), "a", "want 2"},
		{"float offsets", rawFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0.5,4]}}`, data[:4]), "a", "entry is not"},
		{"overflowing shape", rawFile(`{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}}`, data[:4]), "a", "overflows"},
		{"non-string metadata", rawFile(`{"__metadata__":{"k":1}}`, nil), "", "__metadata__"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := writeTemp(t, c.content)
			f, err := Open(p)
			if err == nil {
				f.Close()
				t.Fatalf("Open succeeded on a corrupt file")
			}
			var se *Error
			if !errors.As(err, &se) {
				t.Fatalf("error %v is not a *safetensors.Error", err)
			}
			if se.File != p || !strings.Contains(err.Error(), p) {
				t.Errorf("error %q does not name the file %s", err, p)
			}
			if c.wantTensor != "" && se.Tensor != c.wantTensor {
				t.Errorf("error %q names tensor %q, want %q", err, se.Tensor, c.wantTensor)
			}
			if !strings.Contains(err.Error(), c.wantMsg) {
				t.Errorf("error %q does not contain %q", err, c.wantMsg)
			}
		})
	}
}

func TestWriterChecks(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf, []Spec{{"a", F32, []int64{2}}, {"b", F16, []int64{1}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteTensor("b", []byte{0, 0}); err == nil || !strings.Contains(err.Error(), `want "a" next`) {
		t.Errorf("out-of-order write: err = %v", err)
	}
	if err := w.WriteTensor("a", make([]byte, 4)); err == nil || !strings.Contains(err.Error(), "needs 8") {
		t.Errorf("short write: err = %v", err)
	}
	if err := w.WriteTensor("a", make([]byte, 8)); err != nil {
		t.Fatal(err)
	}
	if err := w.Finish(); err == nil || !strings.Contains(err.Error(), `"b" is next`) {
		t.Errorf("early Finish: err = %v", err)
	}
	if _, err := NewWriter(&buf, []Spec{{"a", F32, nil}, {"a", F32, nil}}, nil); err == nil {
		t.Error("duplicate spec accepted")
	}
	if _, err := NewWriter(&buf, []Spec{{"a", "X", nil}}, nil); err == nil {
		t.Error("unknown dtype accepted")
	}
	// The header is padded so the data section starts 8-byte aligned.
	var out bytes.Buffer
	if err := Encode(&out, []TensorData{{Spec{"x", F32, []int64{1}}, make([]byte, 4)}}, nil); err != nil {
		t.Fatal(err)
	}
	if n := binary.LittleEndian.Uint64(out.Bytes()); n%8 != 0 {
		t.Errorf("header length %d is not a multiple of 8", n)
	}
	mem, err := FromBytes("mem", out.Bytes())
	if err != nil {
		t.Fatalf("FromBytes on encoded file: %v", err)
	}
	if _, ok := mem.Tensor("x"); !ok {
		t.Error("tensor x missing")
	}
	mem.Close()
	if _, ok := mem.Tensor("x"); ok {
		t.Error("a closed file still hands out tensors")
	}
}
