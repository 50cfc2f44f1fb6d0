package safetensors

import (
	"path/filepath"
	"strconv"
	"testing"
)

// BenchmarkOpen measures mapping and validating a file with many tensors,
// the per-file cost of loading a checkpoint.
func BenchmarkOpen(b *testing.B) {
	var ts []TensorData
	for i := range 2000 {
		ts = append(ts, TensorData{Spec{Name: "layer." + strconv.Itoa(i) + ".weight", DType: F16, Shape: []int64{16, 16}}, make([]byte, 512)})
	}
	p := filepath.Join(b.TempDir(), "m.safetensors")
	if err := WriteFile(p, ts, nil); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		f, err := Open(p)
		if err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
}

// BenchmarkDecodeF16 measures fp16 to float32 conversion throughput.
func BenchmarkDecodeF16(b *testing.B) {
	n := 1 << 20
	data, _ := Float32Bytes(F16, make([]float32, n))
	t := Tensor{Name: "x", DType: F16, Shape: []int64{int64(n)}, Data: data}
	dst := make([]float32, n)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if err := t.DecodeFloat32(dst); err != nil {
			b.Fatal(err)
		}
	}
}
