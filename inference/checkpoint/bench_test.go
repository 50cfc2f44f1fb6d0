package checkpoint_test

import (
	"path/filepath"
	"testing"

	"github.com/sdfleet/sdfleet/inference/checkpoint"
	"github.com/sdfleet/sdfleet/inference/testmodel"
)

// benchmarkOpen measures Open (mapping, validation, config inference and
// name mapping) on a generated model. The model is generated once per
// benchmark, outside the timed loop; for the full size that writes about
// 2 GB to a temporary folder, which is why it only happens under -bench.
func benchmarkOpen(b *testing.B, size testmodel.Size, layout checkpoint.Layout) {
	p, err := testmodel.Generate(filepath.Join(b.TempDir(), "m"), testmodel.Options{Size: size, Layout: layout, Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		m, err := checkpoint.Open(p, checkpoint.Options{})
		if err != nil {
			b.Fatal(err)
		}
		m.Close()
	}
}

func BenchmarkOpenTinyDiffusers(b *testing.B) { benchmarkOpen(b, testmodel.Tiny, checkpoint.Diffusers) }
func BenchmarkOpenTinySingleFile(b *testing.B) {
	benchmarkOpen(b, testmodel.Tiny, checkpoint.SingleFile)
}
func BenchmarkOpenFullDiffusers(b *testing.B) { benchmarkOpen(b, testmodel.Full, checkpoint.Diffusers) }
func BenchmarkOpenFullSingleFile(b *testing.B) {
	benchmarkOpen(b, testmodel.Full, checkpoint.SingleFile)
}

// BenchmarkFullToFloat32 converts every tensor of the full fp16 model to
// float32, the CPU-side cost of loading weights for a float32 backend.
func BenchmarkFullToFloat32(b *testing.B) {
	p, err := testmodel.Generate(filepath.Join(b.TempDir(), "m"), testmodel.Options{Size: testmodel.Full, Layout: checkpoint.SingleFile, Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	m, err := checkpoint.Open(p, checkpoint.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	var total int64
	for _, c := range m.Components() {
		for _, n := range m.Names(c) {
			t, _ := m.Tensor(c, n)
			total += int64(len(t.Bytes()))
		}
	}
	b.SetBytes(total)
	for b.Loop() {
		for _, c := range m.Components() {
			for _, n := range m.Names(c) {
				t, _ := m.Tensor(c, n)
				if _, err := t.Float32(); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
}
