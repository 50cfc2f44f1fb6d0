package gemm

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"unsafe"

	"github.com/sdfleet/sdfleet/inference/backend/cpu/workpool"
	"github.com/sdfleet/sdfleet/inference/tensor"
)

// Format is how a PackedB holds its elements.
type Format int

const (
	// FormatF32 holds float32 panels, multiplied as they are.
	FormatF32 Format = iota
	// FormatF16 holds IEEE half panels in FormatF32's layout; each panel
	// is widened to float32 (exactly) just before the micro-kernel uses
	// it, so an fp16 checkpoint costs half the memory of FormatF32 at
	// the same results.
	FormatF16
	// FormatBF16 is FormatF16 with bfloat16 elements.
	FormatBF16
	// FormatBF16Pairs holds bfloat16 panels whose rows are interleaved in
	// pairs (row 2i in the low half of a 32-bit lane, row 2i+1 in the high
	// half), the operand of VDPBF16PS. Multiplying by it rounds A to
	// bfloat16 too and accumulates in float32.
	FormatBF16Pairs
)

func (f Format) String() string {
	switch f {
	case FormatF32:
		return "f32"
	case FormatF16:
		return "f16"
	case FormatBF16:
		return "bf16"
	case FormatBF16Pairs:
		return "bf16-pairs"
	}
	return fmt.Sprintf("Format(%d)", int(f))
}

// Stored is a K×N weight matrix as a checkpoint stores it: element (k, n)
// is element RowOffsets[k] + n*ColStride of Data, or k*RowStride +
// n*ColStride when RowOffsets is nil, in DType's little-endian encoding.
// Offsets let a caller pack a PyTorch [out, in] matrix (or a convolution's
// taps) as B without a transposed copy.
type Stored struct {
	DType                tensor.DType
	Data                 []byte
	K, N                 int
	RowStride, ColStride int
	RowOffsets           []int
}

func (s Stored) rowOffset(k int) int {
	if s.RowOffsets != nil {
		return s.RowOffsets[k]
	}
	return k * s.RowStride
}

func (s Stored) check() error {
	if s.K < 0 || s.N < 0 {
		return fmt.Errorf("pack weights: shape %dx%d is negative", s.K, s.N)
	}
	if s.DType.Size() == 0 {
		return fmt.Errorf("pack weights: dtype %v is not F32, F16 or BF16", s.DType)
	}
	if s.RowOffsets != nil && len(s.RowOffsets) != s.K {
		return fmt.Errorf("pack weights: %d row offsets for %d rows", len(s.RowOffsets), s.K)
	}
	if s.K == 0 || s.N == 0 {
		return nil
	}
	last, first := 0, math.MaxInt
	for k := range s.K {
		o := s.rowOffset(k)
		last, first = max(last, o), min(first, o)
	}
	last += (s.N - 1) * s.ColStride
	if first < 0 || s.ColStride < 0 || last < 0 || (last+1)*s.DType.Size() > len(s.Data) {
		return fmt.Errorf("pack weights: %dx%d %v needs %d bytes, got %d", s.K, s.N, s.DType, (last+1)*s.DType.Size(), len(s.Data))
	}
	return nil
}

// StoredFormat is the format that keeps a stored dtype's values exactly
// while holding no more bytes than the checkpoint: FormatF16 or FormatBF16
// for 16-bit weights, FormatF32 for float32 ones.
func StoredFormat(d tensor.DType) Format {
	switch d {
	case tensor.F16:
		return FormatF16
	case tensor.BF16:
		return FormatBF16
	}
	return FormatF32
}

// PackStored packs s into format f for kern, reading s.Data once and
// holding no other copy. The panels are packed in parallel on pool (which
// may be nil to pack on the caller's goroutine); streaming from a mapped
// file, the page faults spread over the workers too.
func PackStored(pool *workpool.Pool, kern *Kernel, s Stored, f Format) (*PackedB, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	if (f == FormatF16 && s.DType != tensor.F16) || (f == FormatBF16 && s.DType != tensor.BF16) {
		return nil, fmt.Errorf("pack weights: format %v cannot hold %v values exactly", f, s.DType)
	}
	if f < FormatF32 || f > FormatBF16Pairs {
		return nil, fmt.Errorf("pack weights: unknown format %v", f)
	}
	pb := newPacked(kern, s.K, s.N, f)
	panels := ceilDiv(s.N, kern.NR)
	// One task packs one panel through every K-block, visiting its rows
	// in file order (packRows), so each stored column is read front to
	// back once. A 3×3 convolution is stored [out][in][tap] but multiplied
	// tap by tap: packing block by block across all panels brought every
	// line of it back from memory once per tap. The 16-bit view of the
	// data is made once here, not per panel (it copies unaligned data).
	var order []int
	var src []uint16
	if f != FormatBF16Pairs {
		order = s.rowsInStoredOrder()
		if f != FormatF32 {
			src = s.uint16s()
		}
	}
	task := func(_, p int) {
		if f != FormatBF16Pairs {
			pb.packRows(s, src, order, p)
			return
		}
		for p0 := 0; p0 < s.K; p0 += pb.kc {
			pb.packPairsPanel(s, p0, p)
		}
	}
	if pool == nil || panels < 2 {
		for p := range panels {
			task(0, p)
		}
		return pb, nil
	}
	pool.Run(panels, task)
	return pb, nil
}

// rowsInStoredOrder lists the rows by their offset in the file: 0, 1, 2 …
// for evenly strided rows, sorted for RowOffsets.
func (s Stored) rowsInStoredOrder() []int {
	order := make([]int, s.K)
	for k := range order {
		order[k] = k
	}
	if s.RowOffsets != nil {
		slices.SortFunc(order, func(a, b int) int { return cmp.Compare(s.RowOffsets[a], s.RowOffsets[b]) })
	}
	return order
}

// packRows packs panel p through every K-block, visiting the rows in
// order (their file order): each of the panel's columns is then read
// front to back once, while the rows written land in a few runs that
// advance together (one per convolution tap). Padding columns are
// cleared as each row is written. src is s.Data as 16-bit elements for
// the 16-bit formats.
func (pb *PackedB) packRows(s Stored, src []uint16, order []int, p int) {
	nr := pb.Kernel.NR
	npad := pb.npad()
	cols := min(nr, s.N-p*nr)
	for _, k := range order {
		p0 := k / pb.kc * pb.kc
		depth := min(pb.kc, pb.K-p0)
		at := p0*npad + p*nr*depth + (k-p0)*nr
		base := s.rowOffset(k) + p*nr*s.ColStride
		switch pb.Format {
		case FormatF32:
			row := pb.data[at : at+nr]
			for j := range cols {
				row[j] = s.float32At(base + j*s.ColStride)
			}
			clear(row[cols:])
		default:
			row := pb.data16[at : at+nr]
			for j := range cols {
				row[j] = src[base+j*s.ColStride]
			}
			clear(row[cols:])
		}
	}
}

// packPairsPanel packs panel p (columns p*NR …) of the K-block at row p0
// as bf16 row pairs.
func (pb *PackedB) packPairsPanel(s Stored, p0, p int) {
	nr := pb.Kernel.NR
	npad := pb.npad()
	depth := min(pb.kc, pb.K-p0)
	cols := min(nr, s.N-p*nr)
	pairs := ceilDiv(depth, 2)
	panel := pb.data16[p0*npad+p*nr*2*pairs:][:nr*2*pairs]
	for kk := range 2 * pairs {
		half := kk & 1
		out := panel[(kk>>1)*2*nr:][:2*nr]
		if kk >= depth {
			for j := range nr {
				out[2*j+half] = 0
			}
			continue
		}
		base := s.rowOffset(p0+kk) + p*nr*s.ColStride
		if s.DType == tensor.BF16 {
			for j := range cols {
				out[2*j+half] = binary.LittleEndian.Uint16(s.Data[2*(base+j*s.ColStride):])
			}
		} else {
			for j := range cols {
				out[2*j+half] = RoundBF16(s.float32At(base + j*s.ColStride))
			}
		}
		for j := cols; j < nr; j++ {
			out[2*j+half] = 0
		}
	}
}

// uint16s views s.Data as 16-bit elements (little-endian hosts, the only
// ones with a Go backend here), copying only when it is not 2-byte aligned.
func (s Stored) uint16s() []uint16 {
	if len(s.Data) < 2 {
		return nil
	}
	if uintptr(unsafe.Pointer(unsafe.SliceData(s.Data)))%2 == 0 {
		return unsafe.Slice((*uint16)(unsafe.Pointer(unsafe.SliceData(s.Data))), len(s.Data)/2)
	}
	out := make([]uint16, len(s.Data)/2)
	for i := range out {
		out[i] = binary.LittleEndian.Uint16(s.Data[2*i:])
	}
	return out
}

// float32At decodes element i of s.Data.
func (s Stored) float32At(i int) float32 {
	switch s.DType {
	case tensor.F16:
		return tensor.HalfToFloat32(binary.LittleEndian.Uint16(s.Data[2*i:]))
	case tensor.BF16:
		return math.Float32frombits(uint32(binary.LittleEndian.Uint16(s.Data[2*i:])) << 16)
	}
	return math.Float32frombits(binary.LittleEndian.Uint32(s.Data[4*i:]))
}

// RoundBF16 rounds f to bfloat16, to nearest with ties to even, as the
// hardware's conversions do; NaNs stay NaNs.
func RoundBF16(f float32) uint16 {
	u := math.Float32bits(f)
	if u&0x7fffffff > 0x7f800000 {
		return uint16(u>>16) | 0x40 // quiet NaN
	}
	return uint16((u + 0x7fff + (u>>16)&1) >> 16)
}

// BF16ToFloat32 widens a bfloat16 value (exact).
func BF16ToFloat32(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }
