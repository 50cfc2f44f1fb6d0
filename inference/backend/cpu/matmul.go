package cpu

import (
	"fmt"

	"github.com/sdfleet/sdfleet/inference/backend"
	"github.com/sdfleet/sdfleet/inference/backend/cpu/gemm"
	"github.com/sdfleet/sdfleet/inference/tensor"
)

// matMul implements backend.Backend's MatMul on host tensors.
func (b *Backend) matMul(dst, x *tensor.Tensor, w backend.Linear, ep hostEpilogue) error {
	l, ok := w.(*linear)
	if !ok || l == nil {
		return fmt.Errorf("matmul weight: %T was not loaded by the cpu backend", w)
	}
	if err := requireRank("matmul x", x, 0); err != nil {
		return err
	}
	if x.Dim(-1) != l.in {
		return fmt.Errorf("matmul x: last dimension %d, expected the weight's input width %d", x.Dim(-1), l.in)
	}
	if err := requireShape("matmul dst", dst, withLast(x.Shape, l.out)...); err != nil {
		return err
	}
	if err := distinct("matmul dst", dst, "x", x); err != nil {
		return err
	}
	if err := checkEpilogue(dst, ep); err != nil {
		return err
	}
	rows := x.Rows()
	a := gemm.Dense{Data: x.Data, M: rows, K: l.in, LD: l.in}
	return b.engine.Multiply(a, l.packed, dst.Data, l.out, b.epilogue(l.bias, ep))
}

// convolve implements backend.Backend's Conv2D on host tensors.
func (b *Backend) convolve(dst, x *tensor.Tensor, w backend.Conv2D, ep hostEpilogue) error {
	c, ok := w.(*conv2D)
	if !ok || c == nil {
		return fmt.Errorf("conv weight: %T was not loaded by the cpu backend", w)
	}
	if err := requireRank("conv x", x, 4); err != nil {
		return err
	}
	n, h, wd, cin := x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3]
	if cin != c.in {
		return fmt.Errorf("conv x: %d channels, expected the weight's %d", cin, c.in)
	}
	ho, wo := (h-1)/c.stride+1, (wd-1)/c.stride+1
	if h == 0 || wd == 0 {
		ho, wo = 0, 0
	}
	if err := requireShape("conv dst", dst, n, ho, wo, c.out); err != nil {
		return err
	}
	if err := distinct("conv dst", dst, "x", x); err != nil {
		return err
	}
	if err := checkEpilogue(dst, ep); err != nil {
		return err
	}
	var a gemm.ASource
	if c.k == 1 && c.stride == 1 {
		a = gemm.Dense{Data: x.Data, M: n * h * wd, K: cin, LD: cin}
	} else {
		a = &im2col{x: x.Data, h: h, w: wd, c: cin, k: c.k, stride: c.stride, pad: c.k / 2, ho: ho, wo: wo, rows: n * ho * wo}
	}
	return b.engine.Multiply(a, c.packed, dst.Data, c.out, b.epilogue(c.bias, ep))
}

func checkEpilogue(dst *tensor.Tensor, ep hostEpilogue) error {
	if ep.Act < backend.None || ep.Act > backend.QuickGELU {
		return fmt.Errorf("epilogue activation: unknown %v", ep.Act)
	}
	if ep.Residual == nil {
		return nil
	}
	if err := requireShape("epilogue residual", ep.Residual, dst.Shape...); err != nil {
		return err
	}
	return distinct("dst", dst, "epilogue residual", ep.Residual)
}

// epilogue returns the tile callback that adds bias, applies the
// activation and adds the residual, or nil when there is nothing to do.
func (b *Backend) epilogue(bias []float32, ep hostEpilogue) gemm.Epilogue {
	if bias == nil && ep.Act == backend.None && ep.Residual == nil {
		return nil
	}
	act := activationFunc(b.kernel, ep.Act)
	var residual []float32
	if ep.Residual != nil {
		residual = ep.Residual.Data
	}
	return func(c []float32, ldc, row0, rows, col0, cols int) {
		for r := row0; r < row0+rows; r++ {
			row := c[r*ldc+col0 : r*ldc+col0+cols]
			if bias != nil {
				for j, bv := range bias[col0 : col0+cols] {
					row[j] += bv
				}
			}
			if act != nil {
				act(row, row)
			}
			if residual != nil {
				for j, rv := range residual[r*ldc+col0 : r*ldc+col0+cols] {
					row[j] += rv
				}
			}
		}
	}
}

// im2col is the convolution's A operand: row m is output pixel m's
// receptive field, ordered (ky, kx, channel), gathered from the NHWC input
// only for the cache block being packed.
type im2col struct {
	x              []float32
	h, w, c        int
	k, stride, pad int
	ho, wo, rows   int
}

func (s *im2col) Rows() int { return s.rows }
func (s *im2col) Cols() int { return s.k * s.k * s.c }

// PackPanels implements gemm.ASource. The mapping from a column to its
// (tap, channel) is the same for every row, so the block is walked tap
// segment by tap segment, interleaving the MR rows' contiguous channel
// runs (or zeros where the tap falls in the padding).
func (s *im2col) PackPanels(kern *gemm.Kernel, dst []float32, m0, rows, k0, depth int) {
	mr := kern.MR
	var rowBuf [16][]float32
	sources := rowBuf[:mr]
	for p := 0; p*mr < rows; p++ {
		panel := dst[p*mr*depth : (p+1)*mr*depth]
		for kk := k0; kk < k0+depth; {
			tap, ci := kk/s.c, kk%s.c
			run := min(s.c-ci, k0+depth-kk)
			ky, kx := tap/s.k, tap%s.k
			for r := range sources {
				sources[r] = nil
				if p*mr+r >= rows {
					continue
				}
				m := m0 + p*mr + r
				ox := m % s.wo
				oy := (m / s.wo) % s.ho
				n := m / (s.wo * s.ho)
				iy, ix := oy*s.stride+ky-s.pad, ox*s.stride+kx-s.pad
				if iy >= 0 && iy < s.h && ix >= 0 && ix < s.w {
					base := ((n*s.h+iy)*s.w+ix)*s.c + ci
					sources[r] = s.x[base : base+run]
				}
			}
			gemm.Interleave(panel[(kk-k0)*mr:(kk-k0+run)*mr], sources)
			kk += run
		}
	}
}
