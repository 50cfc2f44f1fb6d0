package main

import (
	"fmt"
	"sort"
	"time"

	"github.com/sdfleet/sdfleet/controllers/fairshare"
	"github.com/sdfleet/sdfleet/controllers/placement"
	"github.com/sdfleet/sdfleet/controllers/throughput"
)

// strategyNames are the strategies, in the order they are reported.
var strategyNames = []string{"gpu0", "seed-round-robin", "count-spread", "least-loaded", "production"}

func newStrategy(name string) strategy {
	switch name {
	case "gpu0":
		return firstGPU{}
	case "seed-round-robin":
		return &seedRoundRobin{}
	case "count-spread":
		return countSpread{}
	case "least-loaded":
		return newEngineStrategy(false, true)
	case "production":
		return newEngineStrategy(true, true)
	}
	return nil
}

// firstGPU binds every image to the first GPU.
type firstGPU struct{}

func (firstGPU) arrive(s *sim, j *job) {
	for _, img := range j.images {
		s.bind(img, s.gpus[0])
	}
}
func (firstGPU) retry(s *sim, img *image) { s.bind(img, s.gpus[0]) }
func (firstGPU) dispatch(*sim)            {}

// seedRoundRobin sorts the healthy GPUs by published memory load at each arrival and deals the
// job's images over them in turn.
type seedRoundRobin struct{ order []*gpu }

func (r *seedRoundRobin) sortGPUs(s *sim) bool {
	r.order = r.order[:0]
	for _, g := range s.gpus {
		if s.healthyByFigures(g) {
			r.order = append(r.order, g)
		}
	}
	sort.SliceStable(r.order, func(a, b int) bool {
		pa, pb := &s.snap[r.order[a].pos], &s.snap[r.order[b].pos]
		return float64(pa.MemoryUsedBytes)/float64(pa.MemoryTotalBytes) < float64(pb.MemoryUsedBytes)/float64(pb.MemoryTotalBytes)
	})
	return len(r.order) > 0
}

func (r *seedRoundRobin) arrive(s *sim, j *job) {
	if !r.sortGPUs(s) {
		for _, img := range j.images {
			s.failImage(img)
		}
		return
	}
	for i, img := range j.images {
		s.bind(img, r.order[i%len(r.order)])
	}
}

// retry places the image as a single-host balancer places a new one-image job: on the least loaded.
func (r *seedRoundRobin) retry(s *sim, img *image) {
	if !r.sortGPUs(s) {
		s.failImage(img)
		return
	}
	s.bind(img, r.order[0])
}
func (r *seedRoundRobin) dispatch(*sim) {}

// countSpread binds each image to the healthy GPU with the fewest images bound.
type countSpread struct{}

func (countSpread) place(s *sim, img *image) {
	var best *gpu
	bestCount := 0
	for _, g := range s.gpus {
		if !s.healthyByFigures(g) {
			continue
		}
		if n := len(g.active) + len(g.queue) + g.doomed; best == nil || n < bestCount {
			best, bestCount = g, n
		}
	}
	if best == nil {
		s.failImage(img) // nowhere to go: counts as a failed attempt
		return
	}
	s.bind(img, best)
}

func (c countSpread) arrive(s *sim, j *job) {
	for _, img := range j.images {
		c.place(s, img)
	}
}
func (c countSpread) retry(s *sim, img *image) { c.place(s, img) }
func (countSpread) dispatch(*sim)              {}

// engineStrategy is sdfleet's controller: images wait in the controller until the placement
// engine finds a GPU with room for them.
type engineStrategy struct {
	// learner is the controller's speed learner (controllers/throughput); nil ranks by memory
	// alone, as the controller did before it learned speeds.
	learner      *throughput.Learner
	reservations bool
	eng          *placement.Engine
	pending      []*image
	byUUID       map[string]*gpu
	dst          []placement.Decision

	// fair shares the GPU slots between jobs as the controller does (controllers/fairshare):
	// waiting counts each job's pending images, jobs lists the jobs that hold or want slots.
	fair    bool
	waiting map[*job]int
	jobs    []*job
}

// newEngineStrategy returns sdfleet's strategy; speeds learns and passes each GPU's speed and
// work in flight as the controller does, reservations (always on in the product) can be turned
// off to show what they are for.
func newEngineStrategy(speeds, reservations bool) *engineStrategy {
	e := &engineStrategy{
		reservations: reservations,
		eng:          placement.New(placement.Config{SampleInterval: sampleIntervalDuration}),
	}
	if speeds {
		e.learner = throughput.NewLearner(0)
		e.fair = true
	}
	e.waiting = map[*job]int{}
	return e
}

// finished feeds a finished image to the learner, as the controller does with each pod's
// result: its duration, its work and how many images shared its GPU on average.
func (e *engineStrategy) finished(s *sim, img *image) {
	if e.learner == nil {
		return
	}
	e.learner.Observe(throughput.Finish{UUID: img.gpu.uuid, Duration: time.Duration((img.doneAt - img.startedAt) * float64(time.Second)),
		Work: imageWork, Concurrency: img.meanConcurrency, At: wallclock(img.doneAt)})
}

func (e *engineStrategy) arrive(_ *sim, j *job) {
	e.pending = append(e.pending, j.images...)
	e.waiting[j] += len(j.images)
	e.jobs = append(e.jobs, j)
}

func (e *engineStrategy) retry(_ *sim, img *image) {
	e.pending = append(e.pending, img)
	e.waiting[img.job]++
}

// allowances is, for each job that holds or wants slots, how many more images its fair share
// of the usable GPUs' slots lets it place now; nil when fairness is off.
func (e *engineStrategy) allowances(s *sim) map[*job]int {
	if !e.fair {
		return nil
	}
	capacity := 0
	for _, g := range s.gpus {
		if s.healthyByFigures(g) {
			capacity += g.spec.slots
		}
	}
	kept := e.jobs[:0]
	demands := make([]fairshare.Demand, 0, len(e.jobs))
	for _, j := range e.jobs {
		if d := j.bound + e.waiting[j]; d > 0 {
			kept = append(kept, j)
			demands = append(demands, fairshare.Demand{Namespace: j.namespace, Job: j.name, Slots: d})
		}
	}
	e.jobs = kept
	out := make(map[*job]int, len(kept))
	for i, sh := range fairshare.Shares(capacity, demands) {
		out[kept[i]] = max(sh.Slots-kept[i].bound, 0)
	}
	return out
}

// freeSlots counts the images the GPUs could take now by what the controller sees: free slots
// of the GPUs the published figures show usable, as far as their memory allows.
func freeSlots(s *sim) int {
	free := 0
	for _, g := range s.gpus {
		if !s.healthyByFigures(g) {
			continue
		}
		p := &s.snap[g.pos]
		room := int64(float64(p.MemoryTotalBytes)*(1-placement.DefaultHeadroom)) - p.MemoryUsedBytes - g.reserved
		free += max(min(g.spec.slots-int(p.SlotsInUse), int(room/s.sc.footprint)), 0)
	}
	return free
}

func (e *engineStrategy) dispatch(s *sim) {
	if len(e.pending) == 0 {
		return
	}
	free := freeSlots(s)
	if free == 0 {
		return
	}
	if e.byUUID == nil {
		e.byUUID = map[string]*gpu{}
		for _, g := range s.gpus {
			e.byUUID[g.uuid] = g
		}
	}
	if e.learner != nil {
		// What the controller knows: the published figures, and its ledger of the images on
		// each GPU (running since when, or not yet running).
		inFlight := make(map[string][]throughput.Item, len(s.gpus))
		now := wallclock(s.now)
		for _, g := range s.gpus {
			p := &s.snap[g.pos]
			e.learner.Describe(throughput.Figures{UUID: g.uuid, Product: g.product, UtilizationPercent: p.UtilizationPercent,
				SampledFrom: p.Heartbeat.Add(-sampleIntervalDuration), Ours: len(g.active)+len(g.queue)+g.doomed > 0, Now: now})
			items := make([]throughput.Item, 0, len(g.active)+len(g.queue)+g.doomed)
			for _, img := range g.active {
				items = append(items, throughput.Item{Work: imageWork, RunningSince: wallclock(img.startedAt)})
			}
			for range len(g.queue) + g.doomed {
				items = append(items, throughput.Item{Work: imageWork})
			}
			inFlight[g.uuid] = items
		}
		e.learner.Annotate(s.snap, inFlight, now, imageWork)
	}
	snap := placement.Snapshot{GPUs: s.snap, Now: wallclock(s.now)}
	if e.reservations {
		snap.Reservations = s.resv
	}
	// The pending images are asked for in order, a job's images (or one retry with its GPUs to
	// avoid) per request, as many as there are free slots; the rest of the queue is the
	// request's backlog. The first Wait ends the round: nothing later would be placed.
	allow := e.allowances(s)
	keep := e.pending[:0]
	next := 0
	for next < len(e.pending) && free > 0 {
		head := e.pending[next]
		limit := free
		if allow != nil {
			if limit = min(free, allow[head.job]); limit == 0 {
				// Its job holds its fair share: it waits, the images behind it may go.
				keep = append(keep, head)
				next++
				continue
			}
		}
		req := placement.Request{MemoryPerImage: s.sc.footprint, Avoid: head.avoid, Images: 1}
		if len(head.avoid) == 0 {
			for next+req.Images < len(e.pending) && req.Images < limit {
				img := e.pending[next+req.Images]
				if img.job != head.job || len(img.avoid) > 0 {
					break
				}
				req.Images++
			}
		}
		req.Backlog = len(e.pending) - next - req.Images
		var err error
		e.dst, err = e.eng.PlaceInto(e.dst, snap, req)
		if err != nil {
			s.err = fmt.Errorf("the engine rejected a request of the simulator at t=%.1fs: %w", s.now, err)
			return
		}
		waited := false
		for i := range e.dst {
			img := e.pending[next+i]
			if e.dst[i].Outcome != placement.OutcomeGPU {
				keep = append(keep, img)
				waited = true
				continue
			}
			g := e.byUUID[e.dst[i].GPU.UUID]
			s.bind(img, g)
			s.reserve(img)
			e.waiting[img.job]--
			if allow != nil {
				allow[img.job]--
			}
			free--
		}
		next += req.Images
		if waited {
			break
		}
	}
	e.pending = append(keep, e.pending[next:]...)
}
