package vulkan

import (
	"testing"

	"github.com/sdfleet/sdfleet/inference/backend/backendtest"
)

// TestContract runs the checks every backend passes, in every mode. The
// device keeps weights in fp16, and activations too outside the fp32
// modes, so a weight loaded from fp32 or bf16, or a value written and read
// back, is within fp16's relative rounding of 2⁻¹¹ (4.9e-4), and an
// operation's result within one more such rounding of its fp32
// computation: 1e-3 covers both.
func TestContract(t *testing.T) {
	forEachMode(t, func(t *testing.T, d *Device) {
		backendtest.Run(t, &Backend{d: d}, backendtest.Options{Tolerance: 1e-3})
	})
}
