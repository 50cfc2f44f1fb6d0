package placement

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	sdfleetv1alpha1 "github.com/sdfleet/sdfleet/api/v1alpha1"
)

// index maps the snapshot's UUIDs to positions and ranks the GPUs in (node, index, UUID)
// order, the order ties are broken in. Both are reused while the GPU list stays the same as in
// the previous call (the usual case for a controller re-deciding on a stable cluster), so only
// a changed list pays for the map and the sort.
func (e *Engine) index(gpus []GPU) error {
	if e.sameGPUs(gpus) {
		return nil
	}
	clear(e.byUUID)
	e.uuids = e.uuids[:0]
	for i := range gpus {
		uuid := gpus[i].UUID
		if uuid == "" {
			e.uuids = e.uuids[:0]
			return fmt.Errorf("snapshot.GPUs[%d] (node %q, index %d): UUID is empty", i, gpus[i].Node, gpus[i].Index)
		}
		if j, dup := e.byUUID[uuid]; dup {
			e.uuids = e.uuids[:0]
			return fmt.Errorf("snapshot.GPUs[%d]: UUID %q repeats snapshot.GPUs[%d]", i, uuid, j)
		}
		e.byUUID[uuid] = int32(i)
		e.uuids = append(e.uuids, uuid)
	}
	e.byRank = e.byRank[:0]
	for i := range gpus {
		e.byRank = append(e.byRank, int32(i))
	}
	slices.SortFunc(e.byRank, func(a, b int32) int { return keyCompare(&gpus[a], &gpus[b]) })
	e.rank = slices.Grow(e.rank[:0], len(gpus))[:len(gpus)]
	for r, i := range e.byRank {
		e.rank[i] = int32(r)
	}
	e.rankNodes = e.rankNodes[:0]
	e.rankIndexes = e.rankIndexes[:0]
	for i := range gpus {
		e.rankNodes = append(e.rankNodes, gpus[i].Node)
		e.rankIndexes = append(e.rankIndexes, gpus[i].Index)
	}
	return nil
}

// sameGPUs reports whether gpus lists the same GPUs, in the same order, with the same node and
// index as the list the index was built from (a UUID moving to another node or index is
// unusual, but must not leave the ranks stale).
func (e *Engine) sameGPUs(gpus []GPU) bool {
	if len(gpus) != len(e.uuids) {
		return false
	}
	for i := range gpus {
		g := &gpus[i]
		if g.UUID != e.uuids[i] || g.Index != e.rankIndexes[i] || g.Node != e.rankNodes[i] {
			return false
		}
	}
	return true
}

// keyCompare orders GPUs by node, index, then UUID.
func keyCompare(a, b *GPU) int {
	if c := strings.Compare(a.Node, b.Node); c != 0 {
		return c
	}
	if a.Index != b.Index {
		if a.Index < b.Index {
			return -1
		}
		return 1
	}
	return strings.Compare(a.UUID, b.UUID)
}

// unusableWhy says why a GPU cannot be chosen at all.
type unusableWhy uint8

const (
	usableGPU unusableWhy = iota
	whyUnhealthy
	whySilent
	whyNoFigures
)

// gpuState is one GPU's figures as the decisions of the current call see them. score is what
// the policy ranks by (lower is better; equal scores go to the lower load), kept up to date as
// images are placed.
type gpuState struct {
	total     int64
	capacity  int64 // total minus headroom
	used      int64 // live used: the baseline
	reserved  int64 // reservations plus the images placed in this call
	eff       int64 // max(used, reserved + baseline)
	slots     int32
	slotsUsed int32
	ahead     float64 // images' worth of work on the GPU, for expected finishes
	speed     float64 // images per second; the slowest known for a GPU of unknown speed
	penalty   float64
	loadv     float64 // eff / total, at most 1; 1 for an unusable GPU
	score     float64
	why       unusableWhy
	inSet     bool // allowed by the policy (Pinned)
	avoid     bool
}

func (s *gpuState) hasSlot() bool { return s.slots <= 0 || s.slotsUsed < s.slots }

func (s *gpuState) fits(bytes int64) bool { return s.hasSlot() && s.eff+bytes <= s.capacity }

// expectedFinish is the time, in seconds, for the GPU to finish one more image after the work
// already on it, taking it as a server of s.speed images per second.
func (s *gpuState) expectedFinish() float64 {
	return (s.ahead + 1) / s.speed * (1 + s.penalty)
}

// rescore recomputes the effective bytes, the load and the policy's ranking of the GPU.
func (s *gpuState) rescore(r ranking) {
	s.eff = max(s.used, s.reserved+s.used)
	s.loadv = 1
	if s.why == usableGPU {
		s.loadv = min(float64(s.eff)/float64(s.total), 1)
	}
	switch r {
	case rankBySpeed:
		s.score = s.expectedFinish()
	case rankByFullness:
		s.score = -(s.loadv - s.penalty)
	default:
		s.score = s.loadv + s.penalty
	}
}

// add places one image of bytes on the GPU.
func (s *gpuState) add(bytes int64, r ranking) {
	s.reserved += bytes
	s.slotsUsed++
	s.ahead++
	s.rescore(r)
}

// ranking is what a policy compares GPUs by.
type ranking uint8

const (
	rankByLoad     ranking = iota // least effective load (plus temperature penalty) first
	rankBySpeed                   // earliest expected finish first, then least load
	rankByFullness                // most effective load (less temperature penalty) first
)

// prepare fills e.state from the snapshot and the request, e.cands with the usable GPUs the
// policy may use and e.unusable with the others it may use, and returns the ranking.
func (e *Engine) prepare(snap Snapshot, req Request, policy sdfleetv1alpha1.PlacementPolicy) (ranking, error) {
	n := len(snap.GPUs)
	// What is looked up by UUID goes first into per-position arrays, so that the figures of
	// each GPU are then read, and its state written, in a single pass.
	e.reservedAt = slices.Grow(e.reservedAt[:0], n)[:n]
	clear(e.reservedAt)
	e.marks = slices.Grow(e.marks[:0], n)[:n]
	clear(e.marks)
	// Reservations usually come grouped by GPU, so remember the last lookup.
	lastUUID, last := "", int32(-1)
	for i := range snap.Reservations {
		r := &snap.Reservations[i]
		if r.Bytes < 0 {
			return 0, fmt.Errorf("snapshot.Reservations[%d] (GPU %q): Bytes is %d; want 0 or more", i, r.GPU, r.Bytes)
		}
		if r.GPU != lastUUID || last < 0 {
			j, ok := e.byUUID[r.GPU]
			if !ok {
				// A reservation on a GPU that left the snapshot holds nothing the engine could
				// choose.
				continue
			}
			lastUUID, last = r.GPU, j
		}
		e.reservedAt[last] += r.Bytes
	}
	pinned := policy == sdfleetv1alpha1.PlacementPinned
	if pinned {
		for i, ref := range req.Pinned {
			j, ok := e.findPinned(snap.GPUs, ref)
			if !ok {
				return 0, fmt.Errorf("request.Pinned[%d]: no GPU %s in the snapshot", i, describeRef(ref))
			}
			e.marks[j] |= markPinned
		}
	}
	for _, uuid := range req.Avoid {
		if j, ok := e.byUUID[uuid]; ok {
			e.marks[j] |= markAvoid
		}
	}

	r := rankByLoad
	if policy == sdfleetv1alpha1.PlacementPack {
		r = rankByFullness
	}
	e.state = slices.Grow(e.state[:0], n)[:n]
	e.cands, e.unusable = e.cands[:0], e.unusable[:0]
	// Heartbeats are compared as Unix seconds and nanoseconds: cheaper than time.Time.Before
	// on every GPU, and exact (no nanosecond count of year-1 zero times to overflow).
	staleBefore := snap.Now.Add(-staleIntervals * e.cfg.SampleInterval)
	staleSec, staleNsec := staleBefore.Unix(), staleBefore.Nanosecond()
	keep := 1 - e.cfg.Headroom
	speeds := false
	for i := range snap.GPUs {
		g := &snap.GPUs[i]
		s := &e.state[i]
		*s = gpuState{
			total:     g.MemoryTotalBytes,
			used:      g.MemoryUsedBytes,
			reserved:  e.reservedAt[i],
			capacity:  int64(float64(g.MemoryTotalBytes) * keep),
			slots:     g.Slots,
			slotsUsed: max(g.SlotsInUse, 0),
			speed:     g.ImagesPerSecond,
			inSet:     !pinned || e.marks[i]&markPinned != 0,
			avoid:     e.marks[i]&markAvoid != 0,
		}
		switch {
		case !g.Healthy:
			s.why = whyUnhealthy
		case g.StaleAfter > 0 && g.Heartbeat.Before(snap.Now.Add(-g.StaleAfter)):
			s.why = whySilent
		case g.StaleAfter <= 0 && silent(g.Heartbeat, staleSec, staleNsec):
			s.why = whySilent
		case g.MemoryTotalBytes <= 0 || g.MemoryUsedBytes < 0:
			s.why = whyNoFigures
		}
		if g.TemperatureCelsius > e.cfg.HotTemperatureCelsius {
			s.penalty = e.cfg.TemperaturePenalty
		}
		if !(s.speed > 0) || math.IsInf(s.speed, 0) {
			s.speed = 0
		}
		s.ahead = float64(s.slotsUsed)
		if g.QueuedWork > 0 && !math.IsInf(g.QueuedWork, 0) {
			s.ahead = g.QueuedWork
		}
		switch {
		case !s.inSet:
		case s.why == usableGPU:
			e.cands = append(e.cands, int32(i))
			speeds = speeds || s.speed > 0
			s.rescore(r)
		default:
			// Only candidates are ranked; the others only ever show as alternatives, at load 1.
			e.unusable = append(e.unusable, int32(i))
			s.loadv = 1
		}
	}
	if policy == sdfleetv1alpha1.PlacementLeastLoaded && speeds {
		r = rankBySpeed
		e.fillUnknownSpeeds()
		for _, c := range e.cands {
			e.state[c].rescore(r)
		}
	}
	return r, nil
}

// silent reports whether heartbeat is before the instant sec.nsec (Unix time).
func silent(heartbeat time.Time, sec int64, nsec int) bool {
	hs := heartbeat.Unix()
	return hs < sec || (hs == sec && heartbeat.Nanosecond() < nsec)
}

// Marks of a GPU for the current request.
const (
	markPinned uint8 = 1 << iota
	markAvoid
)

// fillUnknownSpeeds gives the candidates of unknown speed the slowest known speed. A GPU never
// measured still gets images when it is free (and so gets measured), but is not trusted with a
// queue before it has shown its speed: taking it as average would pile images onto a slow GPU
// that simply has not finished one yet.
func (e *Engine) fillUnknownSpeeds() {
	slowest := math.Inf(1)
	for _, c := range e.cands {
		if sp := e.state[c].speed; sp > 0 {
			slowest = min(slowest, sp)
		}
	}
	if math.IsInf(slowest, 1) {
		return
	}
	for _, c := range e.cands {
		if e.state[c].speed == 0 {
			e.state[c].speed = slowest
		}
	}
}

func (e *Engine) findPinned(gpus []GPU, ref GPURef) (int32, bool) {
	if ref.UUID != "" {
		j, ok := e.byUUID[ref.UUID]
		if !ok || (ref.Node != "" && gpus[j].Node != ref.Node) {
			return 0, false
		}
		return j, true
	}
	for i := range gpus {
		if gpus[i].Node == ref.Node && gpus[i].Index == *ref.Index {
			return int32(i), true
		}
	}
	return 0, false
}

func describeRef(ref GPURef) string {
	switch {
	case ref.UUID != "" && ref.Node != "":
		return fmt.Sprintf("%q on node %q", ref.UUID, ref.Node)
	case ref.UUID != "":
		return fmt.Sprintf("%q", ref.UUID)
	default:
		return fmt.Sprintf("with index %d on node %q", *ref.Index, ref.Node)
	}
}
