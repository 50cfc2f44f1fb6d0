package backend_test

import (
	"fmt"

	"github.com/sdfleet/sdfleet/inference/backend"
	"github.com/sdfleet/sdfleet/inference/backend/cpu"
	"github.com/sdfleet/sdfleet/inference/tensor"
)

// A ResNet block's second half as the UNet runs it: group norm fused with
// SiLU, then a 3×3 convolution whose epilogue adds the skip connection.
// Weights would come from a checkpoint as fp16 tensor.Raw values; here an
// identity-like kernel keeps the arithmetic easy to follow. Activations
// belong to the backend: the input is written in, the result read out.
func Example_resnetTail() {
	var b backend.Backend
	b, err := cpu.New(cpu.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer b.Close()

	const channels = 4
	// A 3×3 kernel whose centre tap copies each channel: the convolution
	// returns its input unchanged.
	w := make([]float32, channels*channels*9)
	for c := 0; c < channels; c++ {
		w[(c*channels+c)*9+4] = 1
	}
	conv, err := b.LoadConv2D(tensor.RawFromFloat32(w, channels, channels, 3, 3), nil, 1)
	if err != nil {
		fmt.Println(err)
		return
	}
	scale, err := b.LoadTensor(tensor.RawFromFloat32([]float32{1, 1, 1, 1}, channels))
	if err != nil {
		fmt.Println(err)
		return
	}
	shift, err := b.LoadTensor(tensor.RawFromFloat32([]float32{0, 0, 0, 0}, channels))
	if err != nil {
		fmt.Println(err)
		return
	}

	step := backend.NewScope(b)
	defer step.Release()
	input := make([]float32, 2*2*channels)
	for i := range input {
		input[i] = float32(i % 3)
	}
	x, err := step.Upload(input, 1, 2, 2, channels)
	if err != nil {
		fmt.Println(err)
		return
	}
	h, err := step.Alloc(1, 2, 2, channels)
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := b.GroupNorm(h, x, 2, scale, shift, 1e-5, backend.SiLU); err != nil {
		fmt.Println(err)
		return
	}
	out, err := step.Alloc(1, 2, 2, channels)
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := b.Conv2D(out, h, conv, backend.Epilogue{Residual: x}); err != nil {
		fmt.Println(err)
		return
	}
	// out = x + SiLU(GroupNorm(x)); the host waits here, in ToHost.
	result, err := backend.ToHost(b, out)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%v %.3f\n", result.Shape, result.Data[:channels])
	// Output: [1 2 2 4] [-0.276 1.086 2.878 -0.277]
}
