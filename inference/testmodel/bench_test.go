package testmodel

import (
	"path/filepath"
	"testing"

	"github.com/sdfleet/sdfleet/inference/checkpoint"
)

func BenchmarkGenerateTiny(b *testing.B) {
	for b.Loop() {
		if _, err := Generate(filepath.Join(b.TempDir(), "m"), Options{Size: Tiny, Layout: checkpoint.SingleFile, Seed: 1}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGenerateFull writes the full-size model (about 2 GB) once per
// iteration; run it with -benchtime 1x.
func BenchmarkGenerateFull(b *testing.B) {
	n, _ := ByteSize(Full, checkpoint.SingleFile)
	b.SetBytes(n)
	for b.Loop() {
		if _, err := Generate(filepath.Join(b.TempDir(), "m"), Options{Size: Full, Layout: checkpoint.SingleFile, Seed: 1}); err != nil {
			b.Fatal(err)
		}
	}
}
