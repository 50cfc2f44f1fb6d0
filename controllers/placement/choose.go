package placement

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"sort"
	"time"

	sdfleetv1alpha1 "github.com/sdfleet/sdfleet/api/v1alpha1"
)

// The tie-break cursor is kept as the key of the last chosen GPU, so that it means the same
// whatever order or membership the next snapshot has. Within a call it is turned into
// e.cursorPos: how many GPUs of the snapshot come at or before it in (node, index, UUID) order.

// startCursor computes e.cursorPos for the current snapshot.
func (e *Engine) startCursor(gpus []GPU) {
	if !e.cursorSet {
		e.cursorPos = 0
		return
	}
	key := GPU{Node: e.cursorNode, Index: e.cursorIndex, UUID: e.cursorUUID}
	e.cursorPos = int32(sort.Search(len(e.byRank), func(r int) bool { return keyCompare(&gpus[e.byRank[r]], &key) > 0 }))
}

func (e *Engine) moveCursor(gpus []GPU, i int32) {
	e.cursorSet = true
	e.cursorNode, e.cursorIndex, e.cursorUUID = gpus[i].Node, gpus[i].Index, gpus[i].UUID
	e.cursorPos = e.rank[i] + 1
}

// cyclic is GPU i's place in the tie order: 0 for the first GPU after the cursor.
func (e *Engine) cyclic(i int32) int32 {
	n := int32(len(e.rank))
	return (e.rank[i] - e.cursorPos + n) % n
}

// better reports whether candidate i beats candidate best (-1: none yet).
func (e *Engine) better(i, best int32) bool {
	if best < 0 {
		return true
	}
	a, b := &e.state[i], &e.state[best]
	if a.score != b.score {
		return a.score < b.score
	}
	if a.loadv != b.loadv {
		return a.loadv < b.loadv
	}
	return e.cyclic(i) < e.cyclic(best)
}

// placeGreedy serves LeastLoaded, Pack and Pinned: each image goes to the best GPU that fits,
// judged after the images before it. This loop is the engine's hot path: it keeps the best
// score in a local so that most GPUs are dismissed by one comparison, and gathers the
// alternatives on the way instead of scanning again.
func (e *Engine) placeGreedy(dst []Decision, snap Snapshot, req Request, policy sdfleetv1alpha1.PlacementPolicy, r ranking) {
	bytes := req.MemoryPerImage
	k := e.cfg.MaxAlternatives
	for img := range dst {
		best, avoided, busy := int32(-1), int32(-1), int32(-1)
		bestScore := math.Inf(1)
		top := e.top[:0]
		e.busy = e.busy[:0]
		for _, c := range e.cands {
			s := &e.state[c]
			if k > 0 && (len(top) <= k || s.loadv < e.state[top[k]].loadv) {
				top = e.insertTop(top, c, k+1)
			}
			if !s.fits(bytes) {
				// A GPU that is full now (slots or memory) but has images of its own, whose
				// leaving would make room, is worth waiting for when it is expected to finish
				// sooner.
				if r == rankBySpeed && !s.avoid && s.slotsUsed > 0 && s.eff <= s.capacity {
					e.busy = append(e.busy, c)
					if e.better(c, busy) {
						busy = c
					}
				}
				continue
			}
			if s.avoid {
				if e.better(c, avoided) {
					avoided = c
				}
				continue
			}
			if s.score < bestScore || (s.score == bestScore && e.better(c, best)) {
				best, bestScore = c, s.score
			}
		}
		e.top = top
		if best < 0 && avoided >= 0 {
			best, bestScore = avoided, e.state[avoided].score
		}
		if best < 0 {
			e.fillAll(dst, img, Decision{Outcome: OutcomeWait, Policy: policy, Reason: e.noRoomReason(snap, bytes)})
			return
		}
		if r == rankBySpeed && !e.cfg.NoWaitForFasterGPU && busy >= 0 && e.state[busy].score < bestScore {
			// Busy GPUs would finish some images sooner than the best GPU with room. Count how
			// many: if they can take every image still to place (this call's and the backlog
			// behind it), all wait for them; otherwise the images beyond their share would end
			// up on a free GPU anyway, and this one starts there now.
			remaining := len(dst) - img + req.Backlog
			if remaining <= e.sooner(bestScore, remaining) {
				e.fillAll(dst, img, Decision{Outcome: OutcomeWait, Policy: policy, AwaitsGPU: snap.GPUs[busy].UUID, Reason: fmt.Sprintf(
					"waiting for busy GPUs: they are expected to finish the %d images still to place sooner than any GPU with room (the first by %s in %.1fs; the best with room is %s at %.1fs)",
					remaining, gpuName(&snap.GPUs[busy]), e.state[busy].score, gpuName(&snap.GPUs[best]), bestScore)})
				return
			}
		}
		e.decide(&dst[img], snap, best, policy, bytes, r, true)
	}
}

// sooner counts, up to limit, the images the busy GPUs of e.busy would finish before deadline
// (in seconds), one after another after the work already on them.
func (e *Engine) sooner(deadline float64, limit int) int {
	n := 0
	for _, b := range e.busy {
		s := &e.state[b]
		// b works through images at speed / (1 + penalty) per second, after its work ahead:
		// that many seconds of work fit before the deadline, counted as a fluid amount (the
		// work ahead is itself an estimate; rounding down per GPU would undercount by half an
		// image per GPU and start slow GPUs too eagerly).
		perSecond := s.speed / (1 + s.penalty)
		if k := deadline*perSecond - s.ahead; k > 0 {
			n += int(math.Round(min(k, float64(limit))))
			if n >= limit {
				return n
			}
		}
	}
	return n
}

// insertTop inserts candidate c into top, kept sorted by load and at most size long.
func (e *Engine) insertTop(top []int32, c int32, size int) []int32 {
	l := e.state[c].loadv
	pos := len(top)
	for pos > 0 && e.state[top[pos-1]].loadv > l {
		pos--
	}
	if pos >= size {
		return top
	}
	if len(top) < size {
		top = append(top, 0)
	}
	copy(top[pos+1:], top[pos:len(top)-1])
	top[pos] = c
	return top
}

// emitTop appends to dst the candidates of e.top other than chosen, then unusable GPUs at load
// 1 when there are not enough, MaxAlternatives at most, as seen by an image of bytes before it
// was placed.
func (e *Engine) emitTop(dst []Candidate, chosen int32, bytes int64) []Candidate {
	for _, c := range e.top {
		if len(dst) == e.cfg.MaxAlternatives {
			return dst
		}
		if c != chosen {
			dst = append(dst, e.candidate(c, bytes))
		}
	}
	for _, u := range e.unusable {
		if len(dst) == e.cfg.MaxAlternatives {
			break
		}
		dst = append(dst, e.candidate(u, bytes))
	}
	return dst
}

// decide records the placement of one image on GPU i in d and updates the state and cursor.
// haveTop says e.top already holds the least loaded candidates.
func (e *Engine) decide(d *Decision, snap Snapshot, i int32, policy sdfleetv1alpha1.PlacementPolicy, bytes int64, r ranking, haveTop bool) {
	s := &e.state[i]
	alts := d.Alternatives[:0]
	*d = Decision{Outcome: OutcomeGPU, GPU: snap.GPUs[i], Load: s.loadv, Policy: policy}
	if r == rankBySpeed {
		d.ExpectedFinish = time.Duration(s.expectedFinish() * float64(time.Second))
	}
	if haveTop {
		d.Alternatives = e.emitTop(alts, i, bytes)
	} else {
		d.Alternatives = e.alternatives(alts, i, bytes)
	}
	s.add(bytes, r)
	e.moveCursor(snap.GPUs, i)
}

// roundRobinLazySort is how far into the order round robin selects GPUs one at a time before
// sorting the rest at once: a request of a few images should not pay for sorting every GPU.
const roundRobinLazySort = 32

// rrItem is a candidate in the round-robin order.
type rrItem struct {
	score float64
	tie   int32
	gpu   int32
}

func compareRR(a, b rrItem) int {
	if c := cmp.Compare(a.score, b.score); c != 0 {
		return c
	}
	return cmp.Compare(a.tie, b.tie)
}

// placeRoundRobin is the classic single-host balancer's method: sort the usable GPUs by load
// once, then deal image i to GPU i mod n. A GPU that no longer fits is skipped for the next one
// that does (an avoided GPU only when no other fits).
func (e *Engine) placeRoundRobin(dst []Decision, snap Snapshot, req Request, policy sdfleetv1alpha1.PlacementPolicy) {
	order := e.rrOrder[:0]
	for _, c := range e.cands {
		order = append(order, rrItem{score: e.state[c].score, tie: e.cyclic(c), gpu: c})
	}
	e.rrOrder = order
	n := len(order)
	sorted := 0
	// at returns the k-th GPU of the order, sorting just enough of it.
	at := func(k int) int32 {
		for sorted <= k {
			if sorted >= roundRobinLazySort {
				slices.SortFunc(order[sorted:], compareRR)
				sorted = n
				break
			}
			m := sorted
			for j := sorted + 1; j < n; j++ {
				if compareRR(order[j], order[m]) < 0 {
					m = j
				}
			}
			order[sorted], order[m] = order[m], order[sorted]
			sorted++
		}
		return order[k].gpu
	}
	bytes := req.MemoryPerImage
	for img := range dst {
		chosen, fallback := int32(-1), int32(-1)
		for k := 0; k < n; k++ {
			c := at((img + k) % n)
			s := &e.state[c]
			if !s.fits(bytes) {
				continue
			}
			if !s.avoid {
				chosen = c
				break
			}
			if fallback < 0 {
				fallback = c
			}
		}
		if chosen < 0 {
			chosen = fallback
		}
		if chosen < 0 {
			e.fillAll(dst, img, Decision{Outcome: OutcomeWait, Policy: policy, Reason: e.noRoomReason(snap, bytes)})
			return
		}
		e.decide(&dst[img], snap, chosen, policy, bytes, rankByLoad, false)
	}
}
