package gemm

import "github.com/sdfleet/sdfleet/inference/tensor"

// widenF16 and widenBF16 convert a multiple of 16 elements in assembly
// where the CPU can; nil means the Go loops below do all of it.
var widenF16, widenBF16 func(dst *float32, src *uint16, n int)

// WidenF16 converts IEEE half values to float32 (exact).
func WidenF16(dst []float32, src []uint16) {
	dst = dst[:len(src)]
	done := 0
	if widenF16 != nil && len(src) >= 16 {
		done = len(src) &^ 15
		widenF16(&dst[0], &src[0], done)
	}
	for i := done; i < len(src); i++ {
		dst[i] = tensor.HalfToFloat32(src[i])
	}
}

// WidenBF16 converts bfloat16 values to float32 (exact).
func WidenBF16(dst []float32, src []uint16) {
	dst = dst[:len(src)]
	done := 0
	if widenBF16 != nil && len(src) >= 16 {
		done = len(src) &^ 15
		widenBF16(&dst[0], &src[0], done)
	}
	for i := done; i < len(src); i++ {
		dst[i] = BF16ToFloat32(src[i])
	}
}

// widenPanel writes panel p of the K-block at row p0 of a 16-bit pb as
// float32 in FormatF32's layout (depth rows of NR).
func (pb *PackedB) widenPanel(dst []float32, p0, p, depth int) {
	nr := pb.Kernel.NR
	block := pb.block16(p0)
	switch pb.Format {
	case FormatF16:
		WidenF16(dst[:nr*depth], block[p*nr*depth:][:nr*depth])
	case FormatBF16:
		WidenBF16(dst[:nr*depth], block[p*nr*depth:][:nr*depth])
	case FormatBF16Pairs:
		pairs := ceilDiv(depth, 2)
		src := block[p*nr*2*pairs:][:nr*2*pairs]
		for kk := range depth {
			row := dst[kk*nr : kk*nr+nr]
			in := src[(kk>>1)*2*nr:][:2*nr]
			for j := range row {
				row[j] = BF16ToFloat32(in[2*j+kk&1])
			}
		}
	}
}

// packPairs converts packed A panels (MR rows, depth deep, FormatF32's
// A layout) into bf16 pair panels for the bf16 micro-kernel, rounding to
// nearest even and padding an odd depth with a zero row.
func packPairs(dst []uint16, src []float32, mr, panels, depth int) {
	pairs := ceilDiv(depth, 2)
	for p := range panels {
		in := src[p*mr*depth:][:mr*depth]
		out := dst[p*mr*2*pairs:][:mr*2*pairs]
		for kk := 0; kk+1 < depth; kk += 2 {
			lo := in[kk*mr : kk*mr+mr]
			hi := in[(kk+1)*mr : (kk+1)*mr+mr]
			o := out[kk*mr : kk*mr+2*mr]
			for r := range lo {
				o[2*r] = RoundBF16(lo[r])
				o[2*r+1] = RoundBF16(hi[r])
			}
		}
		if depth%2 == 1 {
			kk := depth - 1
			lo := in[kk*mr : kk*mr+mr]
			o := out[kk*mr : kk*mr+2*mr]
			for r := range lo {
				o[2*r] = RoundBF16(lo[r])
				o[2*r+1] = 0
			}
		}
	}
}

// roundToBF16 rounds every value of x to the nearest bfloat16, keeping it
// as float32: what the bf16 micro-kernel does to A, for the widening path.
func roundToBF16(x []float32) {
	for i, v := range x {
		x[i] = BF16ToFloat32(RoundBF16(v))
	}
}

// multiplyPackedBF16 is MultiplyPacked for FormatBF16Pairs operands on a
// kernel with a bf16 micro-kernel; pairs is the reduction depth in pairs.
func (k *Kernel) multiplyPackedBF16(rows, cols, pairs int, a, b []uint16, c []float32, ldc int, accumulate bool, tmp []float32) {
	mr, nr := k.MR, k.NR
	acc := 0
	if accumulate {
		acc = 1
	}
	tile := func(i, j int) {
		bp := &b[j*nr*2*pairs]
		w := min(nr, cols-j*nr)
		ap := &a[i*mr*2*pairs]
		h := min(mr, rows-i*mr)
		off := i*mr*ldc + j*nr
		if h == mr && w == nr {
			_ = c[off+(mr-1)*ldc+nr-1]
			k.runBF16(pairs, ap, bp, &c[off], ldc, acc)
			return
		}
		k.runBF16(pairs, ap, bp, &tmp[0], nr, 0)
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
	if 2*pairs < shallowDepth {
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
