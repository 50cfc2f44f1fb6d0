package cpu

import (
	"fmt"

	"github.com/sdfleet/sdfleet/inference/tensor"
)

// requireShape reports an error naming arg unless t has exactly shape.
func requireShape(arg string, t *tensor.Tensor, shape ...int) error {
	if t == nil {
		return fmt.Errorf("%s: tensor is nil", arg)
	}
	if !tensor.EqualShape(t.Shape, shape) {
		return fmt.Errorf("%s: shape %v, expected %v", arg, t.Shape, shape)
	}
	if n, _ := tensor.NumElements(t.Shape); n != len(t.Data) {
		return fmt.Errorf("%s: shape %v holds %d elements but data has %d", arg, t.Shape, n, len(t.Data))
	}
	return nil
}

// requireRank reports an error naming arg unless t is a consistent tensor
// of the given rank (any rank when rank is 0 but at least 1).
func requireRank(arg string, t *tensor.Tensor, rank int) error {
	if t == nil {
		return fmt.Errorf("%s: tensor is nil", arg)
	}
	if rank > 0 && len(t.Shape) != rank {
		return fmt.Errorf("%s: shape %v, expected rank %d", arg, t.Shape, rank)
	}
	if len(t.Shape) == 0 {
		return fmt.Errorf("%s: scalar tensor, expected at least one dimension", arg)
	}
	n, err := tensor.NumElements(t.Shape)
	if err != nil {
		return fmt.Errorf("%s: %w", arg, err)
	}
	if n != len(t.Data) {
		return fmt.Errorf("%s: shape %v holds %d elements but data has %d", arg, t.Shape, n, len(t.Data))
	}
	return nil
}

// withLast returns shape with its last dimension replaced.
func withLast(shape []int, last int) []int {
	out := append([]int(nil), shape...)
	out[len(out)-1] = last
	return out
}

// distinct reports an error when dst shares memory with an input that an
// operation reads after writing dst.
func distinct(dstArg string, dst *tensor.Tensor, srcArg string, src *tensor.Tensor) error {
	if dst == nil || src == nil || len(dst.Data) == 0 || len(src.Data) == 0 {
		return nil
	}
	d0, d1 := &dst.Data[0], &dst.Data[len(dst.Data)-1]
	s0, s1 := &src.Data[0], &src.Data[len(src.Data)-1]
	if overlaps(d0, d1, s0, s1) {
		return fmt.Errorf("%s: must not share memory with %s", dstArg, srcArg)
	}
	return nil
}
