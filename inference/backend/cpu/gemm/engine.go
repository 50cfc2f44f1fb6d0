package gemm

import (
	"fmt"

	"github.com/sdfleet/sdfleet/inference/backend/cpu/workpool"
)

// ASource provides the left operand A (M×K) of a multiply. PackPanels
// writes rows [m0, m0+rows) and columns [k0, k0+depth) into dst as the
// kernel's MR-row panels, zero padding rows to a multiple of MR. Sources
// may compute A on the fly (convolution gathers its im2col rows here).
type ASource interface {
	Rows() int
	Cols() int
	PackPanels(kern *Kernel, dst []float32, m0, rows, k0, depth int)
}

// Dense is a row-major M×K matrix with row stride LD.
type Dense struct {
	Data     []float32
	M, K, LD int
}

// Rows implements ASource.
func (d Dense) Rows() int { return d.M }

// Cols implements ASource.
func (d Dense) Cols() int { return d.K }

// PackPanels implements ASource.
func (d Dense) PackPanels(kern *Kernel, dst []float32, m0, rows, k0, depth int) {
	kern.PackA(dst, d.Data[m0*d.LD+k0:], d.LD, rows, depth)
}

// Epilogue is called once per finished tile of C, rows [row0,row0+rows)
// and columns [col0,col0+cols), while the tile is still in cache; the CPU
// backend fuses bias, activation and residual add here.
type Epilogue func(c []float32, ldc, row0, rows, col0, cols int)

// Engine multiplies on a worker pool with per-worker packing scratch.
type Engine struct {
	pool    *workpool.Pool
	kern    *Kernel
	mc      int
	scratch [][]float32
	// wide holds one widened B panel per worker for the 16-bit formats,
	// pairs one block of A as bf16 pairs for the bf16 micro-kernel.
	wide  [][]float32
	pairs [][]uint16
}

// DefaultMC is the largest number of A rows packed per task: an MC×KC
// block of A (about 256 KiB) stays in the L2 cache while it meets every
// panel of B.
const DefaultMC = 240

// NewEngine returns an engine that runs kern on pool.
func NewEngine(pool *workpool.Pool, kern *Kernel) *Engine {
	mc := DefaultMC / kern.MR * kern.MR
	e := &Engine{pool: pool, kern: kern, mc: mc, scratch: make([][]float32, pool.Workers())}
	size := kern.PackedASize(mc, DefaultKC) + kern.MR*kern.NR
	e.wide = make([][]float32, pool.Workers())
	e.pairs = make([][]uint16, pool.Workers())
	for i := range e.scratch {
		e.scratch[i] = make([]float32, size)
		e.wide[i] = make([]float32, DefaultKC*kern.NR)
		if kern.NativeBF16() {
			e.pairs[i] = make([]uint16, kern.PackedASize(mc, DefaultKC))
		}
	}
	return e
}

// ScratchBytes is the packing memory each worker holds: it depends only
// on the block sizes, never on the operands, which is what keeps
// convolution's on-the-fly im2col bounded.
func (e *Engine) ScratchBytes() int {
	return 4*len(e.scratch[0]) + 4*len(e.wide[0]) + 2*len(e.pairs[0])
}

// Kernel is the micro-kernel weights must be packed for.
func (e *Engine) Kernel() *Kernel { return e.kern }

// Pool is the worker pool the engine runs on.
func (e *Engine) Pool() *workpool.Pool { return e.pool }

// Multiply computes C = A·B into c (row stride ldc) and then runs
// epilogue, if any, on every tile.
func (e *Engine) Multiply(a ASource, b *PackedB, c []float32, ldc int, epilogue Epilogue) error {
	m, k, n := a.Rows(), a.Cols(), b.N
	if b.Kernel != e.kern {
		return fmt.Errorf("multiply: weights packed for kernel %s, engine runs %s", b.Kernel.Name, e.kern.Name)
	}
	if k != b.K {
		return fmt.Errorf("multiply: A has %d columns but B has %d rows", k, b.K)
	}
	if ldc < n {
		return fmt.Errorf("multiply: C row stride %d is below its %d columns", ldc, n)
	}
	if m == 0 || n == 0 {
		return nil
	}
	if need := (m-1)*ldc + n; len(c) < need {
		return fmt.Errorf("multiply: C needs %d floats for %dx%d with stride %d, got %d", need, m, n, ldc, len(c))
	}
	kern := e.kern
	workers := e.pool.Workers()
	// Split rows into balanced blocks of at most mc, then split columns
	// into chunks of whole panels until every worker has a few tasks.
	// Splitting columns first matters for skinny products (M=64): every
	// row block streams all of its columns of B from memory, so cutting M
	// finer would multiply that traffic, while cutting N does not.
	mBlocks := ceilDiv(m, e.mc)
	mc := ceilDiv(ceilDiv(m, mBlocks), kern.MR) * kern.MR
	mBlocks = ceilDiv(m, mc)
	panels := ceilDiv(n, kern.NR)
	want := 3 * workers
	nChunks := 1
	if mBlocks < want {
		nChunks = min(panels, ceilDiv(want, mBlocks))
	}
	if mBlocks*nChunks < 2*workers && m > kern.MR {
		// Too few panels as well: fall back to thinner row blocks.
		mc = max(kern.MR, ceilDiv(ceilDiv(m, ceilDiv(want, nChunks)), kern.MR)*kern.MR)
		mBlocks = ceilDiv(m, mc)
	}
	panelsPerChunk := ceilDiv(panels, nChunks)
	nChunks = ceilDiv(panels, panelsPerChunk)

	e.pool.Run(mBlocks*nChunks, func(worker, task int) {
		scratch := e.scratch[worker]
		tmp := scratch[len(scratch)-kern.MR*kern.NR:]
		apack := scratch[:len(scratch)-kern.MR*kern.NR]
		m0 := (task / nChunks) * mc
		rows := min(mc, m-m0)
		j0 := (task % nChunks) * panelsPerChunk
		j1 := min(panels, j0+panelsPerChunk)
		col0 := j0 * kern.NR
		cols := min(n, j1*kern.NR) - col0
		ctile := c[m0*ldc+col0:]
		if k == 0 {
			for r := 0; r < rows; r++ {
				clear(ctile[r*ldc : r*ldc+cols])
			}
		}
		for p0 := 0; p0 < k; p0 += b.kc {
			depth := min(b.kc, k-p0)
			a.PackPanels(kern, apack, m0, rows, p0, depth)
			switch {
			case b.Format == FormatF32:
				bblock := b.block(p0)[j0*kern.NR*depth:]
				kern.MultiplyPacked(rows, cols, depth, apack, bblock, ctile, ldc, p0 > 0, tmp)
			case b.Format == FormatBF16Pairs && kern.NativeBF16():
				pairs := ceilDiv(depth, 2)
				panelsA := ceilDiv(rows, kern.MR)
				a16 := e.pairs[worker][:panelsA*kern.MR*2*pairs]
				packPairs(a16, apack, kern.MR, panelsA, depth)
				bblock := b.block16(p0)[j0*kern.NR*2*pairs:]
				kern.multiplyPackedBF16(rows, cols, pairs, a16, bblock, ctile, ldc, p0 > 0, tmp)
			default:
				// 16-bit weights without a matching micro-kernel: widen
				// one panel at a time (it stays in L1 while every A
				// panel of the block meets it), rounding A first when
				// the weights are bf16 pairs so the products are the
				// bf16 micro-kernel's.
				if b.Format == FormatBF16Pairs {
					roundToBF16(apack[:ceilDiv(rows, kern.MR)*kern.MR*depth])
				}
				wide := e.wide[worker][:kern.NR*depth]
				for j := j0; j < j1; j++ {
					b.widenPanel(wide, p0, j, depth)
					jc := (j - j0) * kern.NR
					kern.MultiplyPacked(rows, min(kern.NR, cols-jc), depth, apack, wide, ctile[jc:], ldc, p0 > 0, tmp)
				}
			}
		}
		if epilogue != nil {
			epilogue(c, ldc, m0, rows, col0, cols)
		}
	})
	return nil
}
