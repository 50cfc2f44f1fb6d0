package backend_test

import (
	"testing"

	"github.com/sdfleet/sdfleet/inference/backend"
	"github.com/sdfleet/sdfleet/inference/backend/cpu"
	"github.com/sdfleet/sdfleet/inference/tensor"
)

// halfBackend is a backend with fp16 activations by default.
type halfBackend struct {
	backend.Backend
	act tensor.DType
}

func (h *halfBackend) SetActivationDType(dt tensor.DType) (tensor.DType, error) {
	prev := h.act
	h.act = dt
	return prev, nil
}

func TestF32ActivationsSetsAndRestores(t *testing.T) {
	c, err := cpu.New(cpu.Options{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	h := &halfBackend{Backend: c, act: tensor.F16}
	restore, err := backend.F32Activations(h)
	if err != nil {
		t.Fatal(err)
	}
	if h.act != tensor.F32 {
		t.Errorf("inside the phase: %v, want F32", h.act)
	}
	restore()
	if h.act != tensor.F16 {
		t.Errorf("after restore: %v, want F16 again", h.act)
	}
	// The CPU is fp32 throughout: nothing to set, and restore is safe.
	restore, err = backend.F32Activations(c)
	if err != nil {
		t.Fatal(err)
	}
	restore()
	x, err := c.Alloc(2)
	if err != nil {
		t.Fatal(err)
	}
	if x.DType() != tensor.F32 {
		t.Errorf("CPU activation %v, want F32", x.DType())
	}
}
