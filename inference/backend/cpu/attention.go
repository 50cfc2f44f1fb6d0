package cpu

import (
	"fmt"
	"math"

	"github.com/sdfleet/sdfleet/inference/backend"
	"github.com/sdfleet/sdfleet/inference/backend/cpu/gemm"
	"github.com/sdfleet/sdfleet/inference/tensor"
)

// Attention block sizes: a task owns queryBlockTiles·MR query rows of one
// head and streams keys keyBlock at a time, so per-worker memory is a few
// query-block×keyBlock tiles whatever the sequence length. The only
// buffer that grows with the input is the packed copy of k and v, which
// is about their size (never Tq×Tk).
const (
	queryBlockTiles = 8 // query rows per task, in micro-kernel tiles
	keyBlock        = 256
)

// attention implements backend.Backend's Attention on host tensors with the online softmax: for each
// key block it computes scores S = Q·Kᵀ, raises the running row maximum,
// rescales the running output and sum by exp(old max - new max), and adds
// exp(S - max)·V. Only the final division by the row sum remains.
func (b *Backend) attention(dst, q, k, v *tensor.Tensor, p backend.AttentionParams) error {
	for _, a := range []struct {
		name string
		t    *tensor.Tensor
	}{{"attention q", q}, {"attention k", k}, {"attention v", v}} {
		if err := requireRank(a.name, a.t, 3); err != nil {
			return err
		}
	}
	bs, tq, c := q.Shape[0], q.Shape[1], q.Shape[2]
	tk := k.Shape[1]
	if k.Shape[0] != bs || k.Shape[2] != c {
		return fmt.Errorf("attention k: shape %v, expected [%d, Tk, %d]", k.Shape, bs, c)
	}
	if err := requireShape("attention v", v, k.Shape...); err != nil {
		return err
	}
	if err := requireShape("attention dst", dst, q.Shape...); err != nil {
		return err
	}
	if p.Heads <= 0 || c%p.Heads != 0 {
		return fmt.Errorf("attention heads: %d does not divide %d features", p.Heads, c)
	}
	for _, in := range []struct {
		name string
		t    *tensor.Tensor
	}{{"q", q}, {"k", k}, {"v", v}} {
		if err := distinct("attention dst", dst, in.name, in.t); err != nil {
			return err
		}
	}
	if len(dst.Data) == 0 {
		return nil
	}
	if tk == 0 {
		return fmt.Errorf("attention k: no keys to attend to")
	}
	d := c / p.Heads
	scale := p.Scale
	if scale == 0 {
		scale = float32(1 / math.Sqrt(float64(d)))
	}
	kern := b.kernel
	qb := queryBlockTiles * kern.MR
	qBlocks := ceilDiv(tq, qb)
	kb := min(keyBlock, ceilDiv(tk, kern.NR)*kern.NR)
	kBlocks := ceilDiv(tk, kb)

	// Pack every head's keys (as Kᵀ) and values once, block by block, so
	// the query tasks below share them instead of each repacking: the
	// packed copy is about the size of k and v, never Tq×Tk.
	kSize, vSize := kern.PackedBSize(d, kb), kern.PackedBSize(kb, d)
	blockSize := kSize + vSize
	packed := b.attentionPack(attentionPackFloats(kern, bs, p.Heads, tk, d))
	b.pool.Run(bs*p.Heads*kBlocks, func(_, task int) {
		bh, kBlock := task/kBlocks, task%kBlocks
		bi, h := bh/p.Heads, bh%p.Heads
		k0 := kBlock * kb
		keys := min(kb, tk-k0)
		dstK := packed[task*blockSize : task*blockSize+kSize]
		dstV := packed[task*blockSize+kSize : (task+1)*blockSize]
		kern.PackB(dstK, k.Data[(bi*tk+k0)*c+h*d:], 1, c, d, keys)
		kern.PackB(dstV, v.Data[(bi*tk+k0)*c+h*d:], c, 1, keys, d)
	})

	b.pool.Run(bs*p.Heads*qBlocks, func(worker, task int) {
		s := &b.scratch[worker]
		bh := task / qBlocks
		bi, h := bh/p.Heads, bh%p.Heads
		q0 := (task % qBlocks) * qb
		rows := min(qb, tq-q0)

		qPack := s.get(0, kern.PackedASize(qb, d))
		scores := s.get(1, qb*kb)
		pPack := s.get(2, kern.PackedASize(qb, kb))
		acc := s.get(3, qb*d)
		stats := s.get(4, 2*qb)
		tmp := s.get(5, kern.MR*kern.NR)
		rowMax, rowSum := stats[:qb], stats[qb:]
		for i := range rows {
			rowMax[i] = float32(math.Inf(-1))
			rowSum[i] = 0
		}
		clear(acc)

		kern.PackA(qPack, q.Data[(bi*tq+q0)*c+h*d:], c, rows, d)
		// Keys past lastKey are masked for every row of this block.
		lastKey := tk - 1
		if p.Causal {
			lastKey = min(lastKey, q0+rows-1+tk-tq)
		}
		for k0 := 0; k0 <= lastKey; k0 += kb {
			// The whole packed block is multiplied even when a causal mask
			// cuts it: the values were packed with the block's full depth,
			// and masked scores become zero probabilities below.
			keys := min(kb, tk-k0)
			block := packed[(bh*kBlocks+k0/kb)*blockSize:]
			kern.MultiplyPacked(rows, keys, d, qPack, block[:kSize], scores, kb, false, tmp)
			for i := range rows {
				row := scores[i*kb : i*kb+keys]
				valid := keys
				if p.Causal {
					valid = max(0, min(keys, q0+i+tk-tq-k0+1))
				}
				m := max(rowMax[i], kern.ScaleMax(row[:valid], scale))
				if valid == 0 || math.IsInf(float64(m), -1) {
					clear(row)
					continue
				}
				correction := expf(rowMax[i] - m)
				rowMax[i] = m
				sum := kern.ExpSum(row[:valid], m)
				clear(row[valid:])
				rowSum[i] = rowSum[i]*correction + sum
				if correction != 1 {
					for e := range acc[i*d : (i+1)*d] {
						acc[i*d+e] *= correction
					}
				}
			}
			kern.PackA(pPack, scores, kb, rows, keys)
			kern.MultiplyPacked(rows, d, keys, pPack, block[kSize:], acc, d, true, tmp)
		}
		for i := range rows {
			out := dst.Data[(bi*tq+q0+i)*c+h*d : (bi*tq+q0+i)*c+(h+1)*d]
			if rowSum[i] == 0 {
				clear(out) // every key masked: no information to mix
				continue
			}
			inv := 1 / rowSum[i]
			for e, a := range acc[i*d : (i+1)*d] {
				out[e] = a * inv
			}
		}
	})
	return nil
}

// attentionPackFloats is the size of the packed keys and values for
// batch bs, heads heads of width d, and tk keys.
func attentionPackFloats(kern *gemm.Kernel, bs, heads, tk, d int) int {
	kb := min(keyBlock, ceilDiv(tk, kern.NR)*kern.NR)
	return bs * heads * ceilDiv(tk, kb) * (kern.PackedBSize(d, kb) + kern.PackedBSize(kb, d))
}

// attentionPack returns the shared buffer for packed keys and values,
// grown on demand and reused across calls.
func (b *Backend) attentionPack(n int) []float32 {
	if cap(b.attnPack) < n {
		b.attnPack = make([]float32, n)
	}
	return b.attnPack[:n]
}
