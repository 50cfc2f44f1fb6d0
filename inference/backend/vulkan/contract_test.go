package vulkan

import (
	"testing"

	"github.com/sdfleet/sdfleet/inference/backend/backendtest"
)

// TestContract runs the checks every backend passes. The device keeps
// weights in fp16, so a weight loaded from fp32 or bf16 comes back within
// fp16's relative rounding of 2⁻¹¹ (4.9e-4); activations are fp32, so
// everything else is exact or one fp32 rounding away.
func TestContract(t *testing.T) {
	d := device(t)
	backendtest.Run(t, &Backend{d: d}, backendtest.Options{Tolerance: 1e-3})
}
