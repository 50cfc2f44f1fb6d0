package safetensors

import "github.com/sdfleet/sdfleet/inference/tensor"

// The 16-bit conversions are inference/tensor's, where the backends use them too; they are
// repeated here by name so that readers of safetensors files need only this package.

// HalfToFloat32 converts an IEEE 754 binary16 value to float32 exactly.
func HalfToFloat32(h uint16) float32 { return tensor.HalfToFloat32(h) }

// Float32ToHalf converts a float32 to binary16 with round-to-nearest-even, saturating to
// infinity on overflow and keeping NaNs NaN.
func Float32ToHalf(f float32) uint16 { return tensor.Float32ToHalf(f) }

// BFloat16ToFloat32 converts a bfloat16 value to float32 exactly.
func BFloat16ToFloat32(h uint16) float32 { return tensor.BFloat16ToFloat32(h) }

// Float32ToBFloat16 converts a float32 to bfloat16 with round-to-nearest-even.
func Float32ToBFloat16(f float32) uint16 { return tensor.Float32ToBFloat16(f) }
