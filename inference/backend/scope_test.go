package backend_test

import (
	"testing"

	"github.com/sdfleet/sdfleet/inference/backend"
	"github.com/sdfleet/sdfleet/inference/backend/cpu"
)

// countingBackend records which tensors were released.
type countingBackend struct {
	backend.Backend
	released []backend.Tensor
}

func (c *countingBackend) Release(t backend.Tensor) {
	c.released = append(c.released, t)
	c.Backend.Release(t)
}

func TestScopeFreesKeepsAndReleases(t *testing.T) {
	b, err := cpu.New(cpu.Options{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	cb := &countingBackend{Backend: b}
	s := backend.NewScope(cb)
	input, err := b.Alloc(2) // not the scope's
	if err != nil {
		t.Fatal(err)
	}
	x, _ := s.Alloc(2)
	y, _ := s.Alloc(3)
	kept, err := s.Upload([]float32{1, 2, 3, 4}, 2, 2)
	if err != nil {
		t.Fatal(err)
	}
	s.Free(x, input, nil)
	s.Free(x) // already freed: not released twice
	if len(cb.released) != 1 || cb.released[0] != x {
		t.Fatalf("Free released %v, want only x", cb.released)
	}
	s.Keep(kept)
	s.Release()
	if len(cb.released) != 2 || cb.released[1] != y {
		t.Fatalf("Release released %v, want x then y only", cb.released)
	}
	// The scope is empty and reusable.
	z, _ := s.Alloc(1)
	s.Release()
	if len(cb.released) != 3 || cb.released[2] != z {
		t.Fatalf("a reused scope released %v", cb.released)
	}
	if _, err := s.Upload([]float32{1, 2, 3}, 2, 2); err == nil {
		t.Error("Upload of 3 values into a 2x2 tensor was accepted")
	}
}
