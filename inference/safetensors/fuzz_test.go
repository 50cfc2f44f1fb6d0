package safetensors

import (
	"bytes"
	"testing"
)

// The seeds run as ordinary test cases in every `go test`; `go test -fuzz
// FuzzParseHeader` explores from them.
func FuzzParseHeader(f *testing.F) {
	f.Add([]byte(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`), int64(8))
	f.Add([]byte(`{"__metadata__":{"format":"pt"},"w":{"dtype":"F16","shape":[1,2],"data_offsets":[0,4]},"b":{"dtype":"BF16","shape":[],"data_offsets":[4,6]}}`), int64(6))
	f.Add([]byte(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}`), int64(12))
	f.Add([]byte(`{"a":{"dtype":"F32","shape":[9223372036854775807,2],"data_offsets":[0,8]}}`), int64(8))
	f.Add([]byte(`{"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},"b":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}}`), int64(0))
	f.Add([]byte(`{"a":1,"a":2}`), int64(0))
	f.Add([]byte(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}}`), int64(0))
	f.Add([]byte(`{`), int64(0))
	f.Add([]byte(``), int64(-1))
	f.Fuzz(func(t *testing.T, header []byte, dataLen int64) {
		h, err := ParseHeader("fuzz", header, dataLen)
		if err != nil {
			return
		}
		// Accepted headers must tile the data section exactly.
		var pos int64
		for _, ti := range h.Tensors {
			if ti.Begin != pos || ti.End < ti.Begin || ti.End-ti.Begin != ti.NumElements()*ti.DType.Size() {
				t.Fatalf("accepted inconsistent tensor %v at position %d", ti, pos)
			}
			pos = ti.End
			if got, ok := h.Lookup(ti.Name); !ok || got.Begin != ti.Begin {
				t.Fatalf("Lookup(%q) = %v, %v", ti.Name, got, ok)
			}
		}
		if pos != dataLen {
			t.Fatalf("accepted header covering %d of %d bytes", pos, dataLen)
		}
	})
}

// FuzzFromBytes feeds whole files, including the length prefix, and converts
// every accepted float tensor.
func FuzzFromBytes(f *testing.F) {
	var good bytes.Buffer
	v, _ := Float32Bytes(F16, []float32{1, 2, 3})
	_ = Encode(&good, []TensorData{{Spec{"x", F16, []int64{3}}, v}, {Spec{"y", F32, []int64{1}}, make([]byte, 4)}}, map[string]string{"k": "v"})
	f.Add(good.Bytes())
	f.Add(good.Bytes()[:20])
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{2, 0, 0, 0, 0, 0, 0, 0, '{', '}'})
	f.Fuzz(func(t *testing.T, data []byte) {
		sf, err := FromBytes("fuzz", data)
		if err != nil {
			return
		}
		for _, name := range sf.Names() {
			tn, ok := sf.Tensor(name)
			if !ok {
				t.Fatalf("listed tensor %q not found", name)
			}
			if tn.DType.IsFloat() {
				if _, err := tn.Float32(); err != nil {
					t.Fatalf("accepted tensor %q fails to convert: %v", name, err)
				}
			}
		}
	})
}
