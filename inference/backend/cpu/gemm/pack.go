package gemm

import "fmt"

// PackedASize is the number of floats PackA needs for rows×depth.
func (k *Kernel) PackedASize(rows, depth int) int {
	return ceilDiv(rows, k.MR) * k.MR * depth
}

// PackedBSize is the number of floats PackB needs for depth×cols.
func (k *Kernel) PackedBSize(depth, cols int) int {
	return ceilDiv(cols, k.NR) * k.NR * depth
}

// PackA packs rows×depth of the row-major matrix src (row stride lda) into
// MR-row panels; rows beyond the last are zero so edge tiles need no
// special case inside the micro-kernel.
func (k *Kernel) PackA(dst, src []float32, lda, rows, depth int) {
	mr := k.MR
	var rowBuf [maxMR][]float32
	for p := 0; p*mr < rows; p++ {
		sources := rowBuf[:mr]
		for r := range sources {
			if row := p*mr + r; row < rows {
				sources[r] = src[row*lda : row*lda+depth]
			} else {
				sources[r] = nil
			}
		}
		Interleave(dst[p*mr*depth:(p+1)*mr*depth], sources)
	}
}

// maxMR bounds the micro-kernels' tile height.
const maxMR = 16

// Interleave writes the equal-length rows side by side into dst, element
// kk of row r at dst[kk*len(rows)+r]: the layout of one packed A panel. A
// nil row stands for zeros (padding rows, or convolution taps that fall
// outside the image). Reading the rows in lock step and writing dst
// sequentially is several times faster than scattering row by row.
func Interleave(dst []float32, rows [][]float32) {
	mr := len(rows)
	n := len(dst) / mr
	var zeros [256]float32
	for start := 0; start < n; start += len(zeros) {
		seg := min(len(zeros), n-start)
		var cut [maxMR][]float32
		for r, row := range rows {
			if row == nil {
				cut[r] = zeros[:seg]
			} else {
				cut[r] = row[start : start+seg]
			}
		}
		out := dst[start*mr : (start+seg)*mr]
		switch mr {
		case 8: // the AVX-512 micro-kernel's panels
			interleave8(out, &cut, seg)
			continue
		case 6: // the AVX2 micro-kernel's
			interleave6(out, &cut, seg)
			continue
		case 4: // the pure-Go one's
			interleave4(out, &cut, seg)
			continue
		}
		for r := 0; r < mr; r++ {
			col := cut[r][:seg]
			for kk, v := range col {
				out[kk*mr+r] = v
			}
		}
	}
}

func interleave8(out []float32, rows *[maxMR][]float32, n int) {
	r0, r1, r2, r3 := rows[0][:n], rows[1][:n], rows[2][:n], rows[3][:n]
	r4, r5, r6, r7 := rows[4][:n], rows[5][:n], rows[6][:n], rows[7][:n]
	out = out[:8*n]
	for kk := 0; kk < n; kk++ {
		o := out[kk*8 : kk*8+8 : kk*8+8]
		o[0], o[1], o[2], o[3] = r0[kk], r1[kk], r2[kk], r3[kk]
		o[4], o[5], o[6], o[7] = r4[kk], r5[kk], r6[kk], r7[kk]
	}
}

func interleave6(out []float32, rows *[maxMR][]float32, n int) {
	r0, r1, r2, r3, r4, r5 := rows[0][:n], rows[1][:n], rows[2][:n], rows[3][:n], rows[4][:n], rows[5][:n]
	out = out[:6*n]
	for kk := 0; kk < n; kk++ {
		o := out[kk*6 : kk*6+6 : kk*6+6]
		o[0], o[1], o[2], o[3], o[4], o[5] = r0[kk], r1[kk], r2[kk], r3[kk], r4[kk], r5[kk]
	}
}

func interleave4(out []float32, rows *[maxMR][]float32, n int) {
	r0, r1, r2, r3 := rows[0][:n], rows[1][:n], rows[2][:n], rows[3][:n]
	out = out[:4*n]
	for kk := 0; kk < n; kk++ {
		o := out[kk*4 : kk*4+4 : kk*4+4]
		o[0], o[1], o[2], o[3] = r0[kk], r1[kk], r2[kk], r3[kk]
	}
}

// PackB packs a depth×cols matrix whose element (kk, j) is
// src[kk*rowStride + j*colStride] into NR-column panels, zero padding the
// last panel. Strides let callers pack B or Bᵀ without a transpose copy.
func (k *Kernel) PackB(dst, src []float32, rowStride, colStride, depth, cols int) {
	nr := k.NR
	for p := 0; p*nr < cols; p++ {
		panel := dst[p*nr*depth : (p+1)*nr*depth]
		for kk := 0; kk < depth; kk++ {
			out := panel[kk*nr : kk*nr+nr]
			base := kk*rowStride + p*nr*colStride
			for jj := range out {
				if p*nr+jj < cols {
					out[jj] = src[base+jj*colStride]
				} else {
					out[jj] = 0
				}
			}
		}
	}
}

// MultiplyPacked computes the rows×cols matrix c = a·b (or c += a·b when
// accumulate is set) from operands packed by PackA and PackB with the same
// depth. tmp must hold MR*NR floats; it receives edge tiles so the
// micro-kernel never writes outside c.
func (k *Kernel) MultiplyPacked(rows, cols, depth int, a, b, c []float32, ldc int, accumulate bool, tmp []float32) {
	mr, nr := k.MR, k.NR
	acc := 0
	if accumulate {
		acc = 1
	}
	if depth == 0 {
		if !accumulate {
			for i := 0; i < rows; i++ {
				clear(c[i*ldc : i*ldc+cols])
			}
		}
		return
	}
	tile := func(i, j int) {
		bp := &b[j*nr*depth]
		w := min(nr, cols-j*nr)
		ap := &a[i*mr*depth]
		h := min(mr, rows-i*mr)
		off := i*mr*ldc + j*nr
		if h == mr && w == nr {
			_ = c[off+(mr-1)*ldc+nr-1]
			k.run(depth, ap, bp, &c[off], ldc, acc)
			return
		}
		k.run(depth, ap, bp, &tmp[0], nr, 0)
		for r := 0; r < h; r++ {
			dst := c[off+r*ldc : off+r*ldc+w]
			src := tmp[r*nr : r*nr+w]
			if accumulate {
				for x := range dst {
					dst[x] += src[x]
				}
			} else {
				copy(dst, src)
			}
		}
	}
	// With a shallow reduction the cost is writing C, so walk it row-block
	// by row-block; with a deep one keep each B panel in L1 while A panels
	// stream past it.
	if depth < shallowDepth {
		for i := 0; i*mr < rows; i++ {
			for j := 0; j*nr < cols; j++ {
				tile(i, j)
			}
		}
		return
	}
	for j := 0; j*nr < cols; j++ {
		for i := 0; i*mr < rows; i++ {
			tile(i, j)
		}
	}
}

// shallowDepth is the reduction depth below which MultiplyPacked walks C
// in row order; attention's 4096×4096×40 score product runs about twice as
// fast that way.
const shallowDepth = 128

// PackedB is a weight matrix (K rows of reduction, N output columns)
// packed once for one Kernel: cut into K-blocks of KC rows and, within
// each block, into NR-column panels, its elements in one of the Formats.
type PackedB struct {
	Kernel *Kernel
	K, N   int
	Format Format
	kc     int
	data   []float32
	// data16 holds the 16-bit formats' elements.
	data16 []uint16
}

// DefaultKC is the depth of one K-block: a KC×NR panel of B must sit in
// the L1 cache next to a stream of A. It is even, so that only the last
// block of a bf16-pair matrix needs a padding row.
const DefaultKC = 256

// Bytes is the memory the packed elements occupy.
func (pb *PackedB) Bytes() int64 { return int64(4*len(pb.data) + 2*len(pb.data16)) }

// PackWeights packs the K×N float32 matrix whose element (k, n) is
// src[k*rowStride + n*colStride] as FormatF32.
func PackWeights(kern *Kernel, src []float32, k, n, rowStride, colStride int) (*PackedB, error) {
	if k < 0 || n < 0 {
		return nil, fmt.Errorf("pack weights: shape %dx%d is negative", k, n)
	}
	if k > 0 && n > 0 {
		last := (k-1)*rowStride + (n-1)*colStride
		if last >= len(src) || last < 0 {
			return nil, fmt.Errorf("pack weights: %dx%d with strides (%d,%d) needs %d floats, got %d", k, n, rowStride, colStride, last+1, len(src))
		}
	}
	pb := newPacked(kern, k, n, FormatF32)
	for p0 := 0; p0 < k; p0 += pb.kc {
		depth := min(pb.kc, k-p0)
		kern.PackB(pb.data[p0*pb.npad():], src[p0*rowStride:], rowStride, colStride, depth, n)
	}
	return pb, nil
}

func newPacked(kern *Kernel, k, n int, f Format) *PackedB {
	pb := &PackedB{Kernel: kern, K: k, N: n, Format: f, kc: DefaultKC}
	size := pb.npad() * k
	if f == FormatBF16Pairs && k%2 == 1 {
		size += pb.npad() // the last block's padding row
	}
	if f == FormatF32 {
		pb.data = make([]float32, size)
	} else {
		pb.data16 = make([]uint16, size)
	}
	return pb
}

// npad is N rounded up to whole panels.
func (pb *PackedB) npad() int { return ceilDiv(pb.N, pb.Kernel.NR) * pb.Kernel.NR }

// block returns the float32 panels of the K-block starting at row p0.
func (pb *PackedB) block(p0 int) []float32 {
	npad := pb.npad()
	depth := min(pb.kc, pb.K-p0)
	return pb.data[p0*npad : p0*npad+npad*depth]
}

// block16 returns the 16-bit panels of the K-block starting at row p0;
// for FormatBF16Pairs its depth is rounded up to whole pairs.
func (pb *PackedB) block16(p0 int) []uint16 {
	npad := pb.npad()
	depth := min(pb.kc, pb.K-p0)
	if pb.Format == FormatBF16Pairs {
		depth = 2 * ceilDiv(depth, 2)
	}
	return pb.data16[p0*npad : p0*npad+npad*depth]
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }
