package main

import (
	"container/heap"
	"fmt"
	"math"
	"time"

	"github.com/sdfleet/sdfleet/controllers/placement"
)

const (
	gib = int64(1) << 30
	// sampleInterval is how often node agents publish live figures.
	sampleInterval = 1.0
	// sampleIntervalDuration is sampleInterval for the placement engine.
	sampleIntervalDuration = time.Second
	// retryDelay is how long after failing an image is placed again.
	retryDelay = 1.0
	// doomedDelay is how long an image bound to a GPU that is down takes to fail.
	doomedDelay = 1.0
	// maxAttempts is how many times an image is tried before it is lost.
	maxAttempts = 4
	// horizon stops a simulation that would otherwise never end (a strategy that can never place
	// some image); what is left then counts as lost.
	horizon = 1e6
	// eps absorbs float rounding when an image's progress reaches a milestone.
	eps = 1e-9
)

// epoch is time 0 of a simulation, for the placement engine's time.Time fields.
var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func wallclock(t float64) time.Time { return epoch.Add(time.Duration(t * float64(time.Second))) }

// outage is a scripted failure of a GPU from at until until (math.Inf(1): for good).
type outage struct{ at, until float64 }

// gpuSpec is a GPU of a scenario.
type gpuSpec struct {
	node      string
	index     int32
	memTotal  int64
	speed     float64
	bgMem     int64
	bgCompute float64
	slots     int
	outages   []outage
}

// jobSpec is a job of a scenario: images arriving together at a time.
type jobSpec struct {
	at     float64
	images int
	// namespace is the job's tenant, for fair sharing; empty: every job its own.
	namespace string
}

// scenario is a cluster and the jobs that arrive on it.
type scenario struct {
	name      string
	gpus      []gpuSpec
	jobs      []jobSpec
	loadWork  float64 // model-load work of one image, reference seconds
	genWork   float64 // generation work of one image, reference seconds
	footprint int64   // GPU memory of one image once loaded
}

func (sc *scenario) work() float64 { return sc.loadWork + sc.genWork }

func (sc *scenario) images() int {
	n := 0
	for _, j := range sc.jobs {
		n += j.images
	}
	return n
}

// effectiveSpeed is a GPU's speed left by its background load: 0 when its background memory
// leaves no room for one image.
func (sc *scenario) effectiveSpeed(g *gpuSpec) float64 {
	if g.memTotal-g.bgMem < sc.footprint {
		return 0
	}
	return g.speed * (1 - g.bgCompute)
}

// lowerBound is no schedule's makespan can beat: total work over the cluster's total effective
// speed, or one image on the fastest GPU.
func (sc *scenario) lowerBound() float64 {
	var total, fastest float64
	for i := range sc.gpus {
		e := sc.effectiveSpeed(&sc.gpus[i])
		total += e
		fastest = max(fastest, e)
	}
	if total == 0 {
		return math.Inf(1)
	}
	return max(float64(sc.images())*sc.work()/total, sc.work()/fastest)
}

type imageState uint8

const (
	imageWaiting imageState = iota // not on a GPU: pending in the controller or about to retry
	imageQueued                    // bound to a GPU, waiting for one of its slots
	imageRunning
	imageDoomed // bound to a GPU that is down
	imageDone
	imageLost
)

type image struct {
	job       *job
	state     imageState
	gpu       *gpu
	startV    float64 // the GPU's virtual time when the image started
	startedAt float64
	loaded    bool
	loadedAt  float64
	attempts  int
	avoid     []string // UUIDs of the GPUs where the image failed
	resvIdx   int      // position in sim.resv, -1 when it holds no reservation
	doneAt    float64
	// sharedAtStart is the GPU's concurrency integral when the image started; meanConcurrency
	// how many images shared the GPU on average while it ran, set when it finishes.
	sharedAtStart   float64
	meanConcurrency float64
}

type job struct {
	name      string
	namespace string
	arrival   float64
	images    []*image
	// bound counts its images on a GPU (queued, running or doomed); firstStart is when its
	// first image started (-1: none yet).
	bound      int
	firstStart float64
}

// gpu is a simulated GPU. Its images share its effective speed; v is its virtual time, the work
// each running image has received since the GPU started, so an image's progress is v - startV.
type gpu struct {
	spec     *gpuSpec
	pos      int
	uuid     string
	eff      float64
	failed   bool
	active   []*image
	queue    []*image
	doomed   int
	resident int64
	v, lastT float64
	version  uint64

	// product names the GPU's model, as NVML would (one per speed and memory size).
	product string
	// shared is the integral over time of the number of images running on the GPU, up to
	// sharedAt: how the controller's ledger measures the concurrency an image ran at. busy is
	// how long the GPU ran any image, up to sharedAt.
	shared, sharedAt, busy float64

	// started counts the images that started here, for the spread figure.
	started int
	// reserved is the memory of the reservations on the GPU.
	reserved int64
}

func (g *gpu) rate() float64 {
	if len(g.active) == 0 {
		return 0
	}
	return g.eff / float64(len(g.active))
}

// advance brings g's virtual time to t.
func (g *gpu) advance(t float64) {
	g.v += (t - g.lastT) * g.rate()
	g.lastT = t
}

// tick brings the concurrency integral to t; call it before the running images change.
func (g *gpu) tick(t float64) {
	g.shared += float64(len(g.active)) * (t - g.sharedAt)
	if len(g.active) > 0 {
		g.busy += t - g.sharedAt
	}
	g.sharedAt = t
}

type eventKind uint8

// Kinds in the order events of the same time are handled: fresh figures first, then changes
// of the cluster, then work.
const (
	evSample eventKind = iota
	evFail
	evRecover
	evMilestone
	evDoomed
	evArrival
	evRetry
)

type event struct {
	t       float64
	kind    eventKind
	seq     uint64
	gpu     *gpu
	version uint64
	img     *image
	job     *job
}

type eventQueue []*event

func (q eventQueue) Len() int { return len(q) }
func (q eventQueue) Less(a, b int) bool {
	if q[a].t != q[b].t {
		return q[a].t < q[b].t
	}
	if q[a].kind != q[b].kind {
		return q[a].kind < q[b].kind
	}
	return q[a].seq < q[b].seq
}
func (q eventQueue) Swap(a, b int) { q[a], q[b] = q[b], q[a] }
func (q *eventQueue) Push(x any)   { *q = append(*q, x.(*event)) }
func (q *eventQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

// strategy decides where images go.
type strategy interface {
	// arrive is called when a job arrives, retry when one of its images is to be placed again.
	arrive(s *sim, j *job)
	retry(s *sim, img *image)
	// dispatch is called after every event; strategies that hold images place them here.
	dispatch(s *sim)
}

// finisher is a strategy that learns from the images that finish.
type finisher interface {
	finished(s *sim, img *image)
}

// sim is one run of one strategy on one scenario.
type sim struct {
	sc     *scenario
	strat  strategy
	now    float64
	events eventQueue
	seq    uint64
	gpus   []*gpu
	jobs   []*job
	left   int // images neither done nor lost

	// What the controller sees: the published figures of every GPU, with SlotsInUse and
	// ImagesPerSecond kept current, and the reservations of images whose memory the published
	// figures do not show yet.
	snap    []placement.GPU
	resv    []placement.Reservation
	resvImg []*image

	// err stops the run: a strategy hit something it cannot handle.
	err error
}

func newSim(sc *scenario, strat strategy) *sim {
	s := &sim{sc: sc, strat: strat}
	for i := range sc.gpus {
		spec := &sc.gpus[i]
		g := &gpu{spec: spec, pos: i, uuid: fmt.Sprintf("GPU-%s-%d", spec.node, spec.index), eff: sc.effectiveSpeed(spec),
			product: fmt.Sprintf("simulated %.1fx %d GiB", spec.speed, spec.memTotal/gib)}
		if g.eff == 0 {
			// It can still be chosen (and fail); work on it just never progresses usefully.
			g.eff = spec.speed * (1 - spec.bgCompute)
		}
		s.gpus = append(s.gpus, g)
		s.snap = append(s.snap, placement.GPU{
			Node: spec.node, Index: spec.index, UUID: g.uuid,
			MemoryTotalBytes: spec.memTotal, Slots: int32(spec.slots),
		})
		for _, o := range spec.outages {
			s.push(&event{t: o.at, kind: evFail, gpu: g})
			if !math.IsInf(o.until, 1) {
				s.push(&event{t: o.until, kind: evRecover, gpu: g})
			}
		}
	}
	for k, js := range sc.jobs {
		j := &job{name: fmt.Sprintf("job-%d", k), namespace: js.namespace, arrival: js.at, firstStart: -1}
		if j.namespace == "" {
			j.namespace = j.name
		}
		for range js.images {
			j.images = append(j.images, &image{job: j, resvIdx: -1})
		}
		s.jobs = append(s.jobs, j)
		s.left += js.images
		s.push(&event{t: js.at, kind: evArrival, job: j})
	}
	s.push(&event{t: 0, kind: evSample})
	return s
}

func (s *sim) push(e *event) {
	s.seq++
	e.seq = s.seq
	heap.Push(&s.events, e)
}

// run simulates until every image is done or lost.
func (s *sim) run() error {
	for s.left > 0 && len(s.events) > 0 && s.err == nil {
		e := heap.Pop(&s.events).(*event)
		if e.t > horizon {
			break
		}
		s.now = e.t
		// Only events that can open room for an image call the strategy's dispatch: a model
		// load only moves memory from reserved to resident, which the next sample publishes.
		changed := true
		switch e.kind {
		case evSample:
			s.sample()
			s.push(&event{t: s.now + sampleInterval, kind: evSample})
		case evFail:
			s.fail(e.gpu)
		case evRecover:
			e.gpu.advance(s.now)
			e.gpu.failed = false
		case evMilestone:
			changed = e.version == e.gpu.version && s.milestone(e.gpu)
		case evDoomed:
			e.img.gpu.doomed--
			s.failImage(e.img)
		case evArrival:
			s.strat.arrive(s, e.job)
		case evRetry:
			s.strat.retry(s, e.img)
		}
		if changed {
			s.strat.dispatch(s)
		}
	}
	for _, j := range s.jobs {
		for _, img := range j.images {
			if img.state != imageDone && img.state != imageLost {
				img.state = imageLost
			}
		}
	}
	return s.err
}

// sample publishes every GPU's live figures and drops the reservations they now cover.
func (s *sim) sample() {
	hb := wallclock(s.now)
	for i, g := range s.gpus {
		p := &s.snap[i]
		p.Healthy = !g.failed
		p.Heartbeat = hb
		p.MemoryUsedBytes = g.spec.bgMem + g.resident
		p.UtilizationPercent = int32(100 * g.spec.bgCompute)
		if len(g.active) > 0 {
			p.UtilizationPercent = 100
		}
	}
	for i := 0; i < len(s.resvImg); {
		if img := s.resvImg[i]; img.loaded && img.loadedAt <= s.now {
			s.unreserve(img)
			continue
		}
		i++
	}
}

func (s *sim) reserve(img *image) {
	img.resvIdx = len(s.resv)
	img.gpu.reserved += s.sc.footprint
	s.resv = append(s.resv, placement.Reservation{GPU: img.gpu.uuid, Bytes: s.sc.footprint})
	s.resvImg = append(s.resvImg, img)
}

func (s *sim) unreserve(img *image) {
	i := img.resvIdx
	if i < 0 {
		return
	}
	last := len(s.resv) - 1
	img.gpu.reserved -= s.resv[i].Bytes
	s.resv[i], s.resvImg[i] = s.resv[last], s.resvImg[last]
	s.resvImg[i].resvIdx = i
	s.resv, s.resvImg = s.resv[:last], s.resvImg[:last]
	img.resvIdx = -1
}

// bind puts img on g: it runs if g has a free slot, queues otherwise, and fails soon if g is
// down.
func (s *sim) bind(img *image, g *gpu) {
	img.gpu = g
	img.job.bound++
	s.snap[g.pos].SlotsInUse++
	switch {
	case g.failed:
		img.state = imageDoomed
		g.doomed++
		s.push(&event{t: s.now + doomedDelay, kind: evDoomed, img: img})
	case len(g.active) < g.spec.slots:
		s.start(img, g)
	default:
		img.state = imageQueued
		g.queue = append(g.queue, img)
	}
}

func (s *sim) start(img *image, g *gpu) {
	g.advance(s.now)
	g.tick(s.now)
	img.state = imageRunning
	img.startV = g.v
	img.startedAt = s.now
	img.sharedAtStart = g.shared
	if img.job.firstStart < 0 {
		img.job.firstStart = s.now
	}
	img.loaded = false
	g.active = append(g.active, img)
	g.started++
	s.reschedule(g)
}

// reschedule plans g's next milestone: the earliest model load or finish of its images.
func (s *sim) reschedule(g *gpu) {
	g.version++
	if len(g.active) == 0 {
		return
	}
	next := math.Inf(1)
	for _, img := range g.active {
		target := img.startV + s.sc.work()
		if !img.loaded {
			target = img.startV + s.sc.loadWork
		}
		next = min(next, target)
	}
	dt := max(next-g.v, 0) / g.rate()
	s.push(&event{t: s.now + dt, kind: evMilestone, gpu: g, version: g.version})
}

// milestone handles the model loads and finishes g's images have reached, and reports whether
// an image left g.
func (s *sim) milestone(g *gpu) bool {
	g.advance(s.now)
	g.tick(s.now)
	before := len(g.active) + len(g.queue)
	kept := g.active[:0]
	var ended []*image
	for _, img := range g.active {
		progress := g.v - img.startV
		if !img.loaded && progress >= s.sc.loadWork-eps {
			if g.spec.bgMem+g.resident+s.sc.footprint > g.spec.memTotal {
				ended = append(ended, img) // out of memory
				continue
			}
			img.loaded, img.loadedAt = true, s.now
			g.resident += s.sc.footprint
		}
		if img.loaded && progress >= s.sc.work()-eps {
			g.resident -= s.sc.footprint
			img.state, img.doneAt = imageDone, s.now
			if ran := s.now - img.startedAt; ran > 0 {
				img.meanConcurrency = (g.shared - img.sharedAtStart) / ran
			}
			if f, ok := s.strat.(finisher); ok {
				f.finished(s, img)
			}
			img.job.bound--
			s.left--
			s.unreserve(img)
			s.snap[g.pos].SlotsInUse--
			continue
		}
		kept = append(kept, img)
	}
	g.active = kept
	for _, img := range ended {
		s.snap[g.pos].SlotsInUse--
		s.failImage(img)
	}
	s.fillSlots(g)
	s.reschedule(g)
	return len(g.active)+len(g.queue) < before
}

// fillSlots starts queued images while g has free slots.
func (s *sim) fillSlots(g *gpu) {
	for len(g.queue) > 0 && len(g.active) < g.spec.slots && !g.failed {
		img := g.queue[0]
		g.queue = g.queue[1:]
		s.start(img, g)
	}
}

// fail takes g down: everything on it fails.
func (s *sim) fail(g *gpu) {
	g.advance(s.now)
	g.tick(s.now)
	g.failed = true
	victims := append(append([]*image{}, g.active...), g.queue...)
	g.active, g.queue = nil, nil
	g.resident = 0
	g.version++
	for _, img := range victims {
		s.snap[g.pos].SlotsInUse--
		s.failImage(img)
	}
}

// failImage records a failed attempt of img (already off its GPU's slots) and retries it or
// gives up.
func (s *sim) failImage(img *image) {
	s.unreserve(img)
	if img.state == imageDoomed && img.gpu != nil {
		s.snap[img.gpu.pos].SlotsInUse--
	}
	img.attempts++
	if img.gpu != nil {
		img.avoid = append(img.avoid, img.gpu.uuid)
		img.job.bound--
	}
	img.gpu = nil
	img.loaded = false
	if img.attempts >= maxAttempts {
		img.state = imageLost
		s.left--
		return
	}
	img.state = imageWaiting
	s.push(&event{t: s.now + retryDelay, kind: evRetry, img: img})
}

// healthyByFigures reports whether the published figures show g as usable now.
func (s *sim) healthyByFigures(g *gpu) bool {
	p := &s.snap[g.pos]
	return p.Healthy && !p.Heartbeat.Before(wallclock(s.now-3*sampleInterval))
}
