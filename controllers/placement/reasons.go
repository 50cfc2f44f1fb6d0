package placement

import (
	"fmt"
	"strings"
	"time"
)

// grow returns dst with length n, keeping the Alternatives buffers of the elements it reuses
// and giving the others one shared backing array.
func (e *Engine) grow(dst []Decision, n int) []Decision {
	if cap(dst) < n {
		grown := make([]Decision, n)
		copy(grown, dst[:cap(dst)])
		dst = grown
	}
	dst = dst[:n]
	k := e.cfg.MaxAlternatives
	if k == 0 {
		return dst
	}
	missing := 0
	for i := range dst {
		if cap(dst[i].Alternatives) < k {
			missing++
		}
	}
	if missing > 0 {
		slab := make([]Candidate, missing*k)
		for i := range dst {
			if cap(dst[i].Alternatives) < k {
				dst[i].Alternatives = slab[:0:k]
				slab = slab[k:]
			}
		}
	}
	return dst
}

// fillAll writes d to dst[from:], with the current alternatives, keeping each element's
// Alternatives buffer.
func (e *Engine) fillAll(dst []Decision, from int, d Decision) {
	for i := from; i < len(dst); i++ {
		alts := dst[i].Alternatives[:0]
		dst[i] = d
		if i == from {
			dst[i].Alternatives = e.alternatives(alts, -1, 0)
		} else {
			dst[i].Alternatives = append(alts, dst[from].Alternatives...)
		}
	}
}

// alternatives appends to dst the MaxAlternatives least loaded candidates other than chosen,
// then unusable ones at load 1 when there are not enough, as seen by an image of bytes.
func (e *Engine) alternatives(dst []Candidate, chosen int32, bytes int64) []Candidate {
	k := e.cfg.MaxAlternatives
	if k == 0 {
		return dst
	}
	top := e.top[:0]
	for _, c := range e.cands {
		if c == chosen {
			continue
		}
		l := e.state[c].loadv
		if len(top) == k && l >= e.state[top[k-1]].loadv {
			continue
		}
		// Insert c keeping top sorted by load, dropping the last when full.
		pos := len(top)
		for pos > 0 && e.state[top[pos-1]].loadv > l {
			pos--
		}
		if len(top) < k {
			top = append(top, 0)
		}
		copy(top[pos+1:], top[pos:len(top)-1])
		top[pos] = c
	}
	for _, u := range e.unusable {
		if len(top) == k {
			break
		}
		top = append(top, u)
	}
	e.top = top
	for _, c := range top {
		dst = append(dst, e.candidate(c, bytes))
	}
	return dst
}

// candidate describes GPU c as an alternative for an image of bytes (0: the bytes are not
// known here, and Fits says whether it had a free slot only).
func (e *Engine) candidate(c int32, bytes int64) Candidate {
	s := &e.state[c]
	out := Candidate{UUID: e.uuids[c], Load: s.loadv, Avoided: s.avoid}
	if s.why != usableGPU {
		out.Unusable, out.Load = s.why.String(), 1
		return out
	}
	out.Fits = s.fits(bytes)
	if e.ranking == rankBySpeed && s.speed > 0 {
		out.ExpectedFinish = time.Duration(s.expectedFinish() * float64(time.Second))
	}
	return out
}

func (w unusableWhy) String() string {
	switch w {
	case whyUnhealthy:
		return "unhealthy"
	case whySilent:
		return "silent"
	case whyNoFigures:
		return "no memory figures"
	}
	return ""
}

// noUsableGPU reports whether no GPU of the snapshot can take images at all, and why.
func (e *Engine) noUsableGPU(snap Snapshot) (string, bool) {
	var unhealthy, silent, noFigures int
	for i := range e.state {
		switch e.state[i].why {
		case usableGPU:
			return "", false
		case whyUnhealthy:
			unhealthy++
		case whySilent:
			silent++
		case whyNoFigures:
			noFigures++
		}
	}
	if len(snap.GPUs) == 0 {
		return "no usable GPU: the cluster has no GPU", true
	}
	return fmt.Sprintf("no usable GPU: of %d GPUs, %d are unhealthy, %d have not reported for %v, %d report no memory figures",
		len(snap.GPUs), unhealthy, silent, staleIntervals*e.cfg.SampleInterval, noFigures), true
}

func (e *Engine) noCandidateReason(snap Snapshot) string {
	var names []string
	for _, u := range e.unusable {
		names = append(names, gpuName(&snap.GPUs[u]))
	}
	return "no usable GPU among the pinned ones: " + strings.Join(names, ", ") + " are unhealthy or silent"
}

func gpuName(g *GPU) string { return fmt.Sprintf("%s/%d (%s)", g.Node, g.Index, g.UUID) }

func (e *Engine) noRoomReason(snap Snapshot, bytes int64) string {
	var slotsFull, noMemory int
	var roomiest int32 = -1
	var capacityMax int64
	for _, c := range e.cands {
		s := &e.state[c]
		capacityMax = max(capacityMax, s.capacity)
		if !s.hasSlot() {
			slotsFull++
			continue
		}
		noMemory++
		if roomiest < 0 || s.capacity-s.eff > e.state[roomiest].capacity-e.state[roomiest].eff {
			roomiest = c
		}
	}
	if bytes > capacityMax {
		return fmt.Sprintf("no GPU has room: an image needs %d bytes, more than any usable GPU offers (%d bytes after the %.0f%% headroom)",
			bytes, capacityMax, e.cfg.Headroom*100)
	}
	reason := fmt.Sprintf("no GPU has room for an image of %d bytes: of %d usable GPUs, %d have every slot taken and %d lack the memory",
		bytes, len(e.cands), slotsFull, noMemory)
	if roomiest >= 0 {
		s := &e.state[roomiest]
		reason += fmt.Sprintf(" (the most free is %d bytes on %s)", max(s.capacity-s.eff, 0), gpuName(&snap.GPUs[roomiest]))
	}
	return reason
}
