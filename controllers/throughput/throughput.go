package throughput

import (
	"math"
	"sort"
	"sync"
	"time"

	"github.com/sdfleet/sdfleet/controllers/placement"
)

// Defaults of the learner.
const (
	// DefaultAlpha is the weight of a new sample in the moving average.
	DefaultAlpha = 0.3
	// NominalSecondsPerMegapixelStep is the speed every GPU is taken to have before any is
	// measured: any equal figure ranks GPUs by their work in flight alone.
	NominalSecondsPerMegapixelStep = 1.0
	// minLeft is the least share of its work a running image is taken to have left.
	minLeft = 0.05
	// sameProductBand is how far a GPU's own figure may lie from the median of its product's
	// measured GPUs and still be taken as that median when GPUs are ranked: GPUs of one
	// product are equal but for measurement noise (other pods sharing the node's CPUs, model
	// loads from a cold cache), which must not make one of two equal GPUs take every image.
	sameProductBand = 1.5
	// maxForeign caps the foreign share, so that a GPU fully busy with other work is very
	// slow rather than infinitely so.
	maxForeign = 0.95
)

// Source says where a GPU's speed figure comes from.
type Source string

const (
	// Measured: the GPU's own finished images.
	Measured Source = "Measured"
	// SameProduct: the median of measured GPUs of the same product.
	SameProduct Source = "SameProduct"
	// Fleet: the median of every measured GPU.
	Fleet Source = "Fleet"
	// Nominal: nothing is measured yet.
	Nominal Source = "Nominal"
)

type gpuRecord struct {
	product string
	// secondsPerMPStep is the moving average; 0 before the first sample.
	secondsPerMPStep float64
	samples          int64
	// foreign is the share of the GPU taken by work sdfleet did not place, in [0, maxForeign].
	foreign float64
	// oursUntil is the last time an sdfleet image was seen on the GPU: a utilisation sample
	// taken over a period that reaches back before it includes our own work.
	oursUntil time.Time
}

// Learner keeps the speed of every GPU. It is safe for concurrent use.
type Learner struct {
	mu    sync.Mutex
	alpha float64
	gpus  map[string]*gpuRecord
}

// NewLearner returns a learner whose moving average gives a new sample weight alpha (in
// (0, 1]; anything else takes DefaultAlpha).
func NewLearner(alpha float64) *Learner {
	if !(alpha > 0 && alpha <= 1) {
		alpha = DefaultAlpha
	}
	return &Learner{alpha: alpha, gpus: map[string]*gpuRecord{}}
}

func (l *Learner) record(uuid string) *gpuRecord {
	g := l.gpus[uuid]
	if g == nil {
		g = &gpuRecord{}
		l.gpus[uuid] = g
	}
	return g
}

// Figures is what the node agent last published of a GPU, and what the controller knows of it.
type Figures struct {
	UUID    string
	Product string
	// UtilizationPercent is the NVML utilisation over the sample period that began at
	// SampledFrom (the heartbeat less one sampling interval).
	UtilizationPercent int32
	SampledFrom        time.Time
	// Ours says whether an sdfleet image is on the GPU at Now.
	Ours bool
	Now  time.Time
}

// Describe records a GPU's figures. Its utilisation counts as work sdfleet did not place only
// when no sdfleet image was on the GPU during the sample period.
func (l *Learner) Describe(f Figures) {
	l.mu.Lock()
	defer l.mu.Unlock()
	g := l.record(f.UUID)
	g.product = f.Product
	switch {
	case f.Ours:
		if f.Now.After(g.oursUntil) {
			g.oursUntil = f.Now
		}
	case !f.SampledFrom.IsZero() && f.SampledFrom.After(g.oursUntil):
		g.foreign = min(max(float64(f.UtilizationPercent)/100, 0), maxForeign)
	}
}

// Finish is an image that finished on a GPU.
type Finish struct {
	UUID string
	// Duration is how long the image took (the pod's result); Work its megapixel-steps.
	Duration time.Duration
	Work     float64
	// Concurrency is how many sdfleet images shared the GPU on average while it ran (1 or
	// more; anything else counts as 1).
	Concurrency float64
	// At is when it finished.
	At time.Time
}

// Observe folds a finished image into its GPU's speed. It returns the sample, 0 when the
// figures make none (no duration or work).
func (l *Learner) Observe(f Finish) float64 {
	uuid, duration, work, concurrency := f.UUID, f.Duration, f.Work, f.Concurrency
	if duration <= 0 || !(work > 0) || math.IsInf(work, 0) || uuid == "" {
		return 0
	}
	if !(concurrency >= 1) || math.IsInf(concurrency, 0) {
		concurrency = 1
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	g := l.record(uuid)
	if f.At.After(g.oursUntil) {
		g.oursUntil = f.At
	}
	sample := duration.Seconds() / concurrency / work * (1 - g.foreign)
	if g.samples == 0 {
		g.secondsPerMPStep = sample
	} else {
		g.secondsPerMPStep += l.alpha * (sample - g.secondsPerMPStep)
	}
	g.samples++
	return sample
}

// Restore sets the speed of a GPU that has no samples in this process, from what an earlier
// run published; a GPU already measured keeps its figure. It reports whether it set one.
func (l *Learner) Restore(uuid string, secondsPerMPStep float64, samples int64) bool {
	if !(secondsPerMPStep > 0) || math.IsInf(secondsPerMPStep, 0) {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	g := l.record(uuid)
	if g.samples > 0 {
		return false
	}
	g.secondsPerMPStep, g.samples = secondsPerMPStep, max(samples, 1)
	return true
}

// Forget drops what is known of a GPU that left the cluster.
func (l *Learner) Forget(uuid string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.gpus, uuid)
}

// Speed is a GPU's learned figure.
type Speed struct {
	SecondsPerMegapixelStep float64
	// Samples is how many finished images the figure rests on (0 unless Measured).
	Samples int64
	Source  Source
}

// Speed returns the speed of GPU uuid, with the fallbacks of the package doc.
func (l *Learner) Speed(uuid string) Speed {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.speedLocked(uuid, nil)
}

// Measured returns the GPUs with samples and their figures.
func (l *Learner) Measured() map[string]Speed {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]Speed{}
	for uuid, g := range l.gpus {
		if g.samples > 0 {
			out[uuid] = Speed{SecondsPerMegapixelStep: g.secondsPerMPStep, Samples: g.samples, Source: Measured}
		}
	}
	return out
}

// medians are the medians of the measured GPUs, by product and over the fleet.
type medians struct {
	byProduct map[string]float64
	// pooled are the products with more than one measured GPU.
	pooled map[string]bool
	fleet  float64
}

func (l *Learner) mediansLocked() *medians {
	byProduct := map[string][]float64{}
	var all []float64
	for _, g := range l.gpus {
		if g.samples == 0 {
			continue
		}
		byProduct[g.product] = append(byProduct[g.product], g.secondsPerMPStep)
		all = append(all, g.secondsPerMPStep)
	}
	m := &medians{byProduct: map[string]float64{}, pooled: map[string]bool{}, fleet: median(all)}
	for p, xs := range byProduct {
		if p != "" {
			m.byProduct[p] = median(xs)
			m.pooled[p] = len(xs) > 1
		}
	}
	return m
}

// rankingSpeed is the figure GPUs are ranked by: the GPU's speed, except that a measured GPU
// within sameProductBand of its product's median counts as the median.
func (l *Learner) rankingSpeed(uuid string, m *medians) float64 {
	sp := l.speedLocked(uuid, m)
	g := l.gpus[uuid]
	if sp.Source != Measured || g == nil || !m.pooled[g.product] {
		return sp.SecondsPerMegapixelStep
	}
	med := m.byProduct[g.product]
	if r := sp.SecondsPerMegapixelStep / med; r <= sameProductBand && r >= 1/sameProductBand {
		return med
	}
	return sp.SecondsPerMegapixelStep
}

func (l *Learner) speedLocked(uuid string, m *medians) Speed {
	g := l.gpus[uuid]
	if g != nil && g.samples > 0 {
		return Speed{SecondsPerMegapixelStep: g.secondsPerMPStep, Samples: g.samples, Source: Measured}
	}
	if m == nil {
		m = l.mediansLocked()
	}
	if g != nil && g.product != "" {
		if v, ok := m.byProduct[g.product]; ok {
			return Speed{SecondsPerMegapixelStep: v, Source: SameProduct}
		}
	}
	if m.fleet > 0 {
		return Speed{SecondsPerMegapixelStep: m.fleet, Source: Fleet}
	}
	return Speed{SecondsPerMegapixelStep: NominalSecondsPerMegapixelStep, Source: Nominal}
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	sort.Float64s(xs)
	n := len(xs)
	if n%2 == 1 {
		return xs[n/2]
	}
	return (xs[n/2-1] + xs[n/2]) / 2
}

// Item is one image in flight on a GPU.
type Item struct {
	// Work is the image's megapixel-steps.
	Work float64
	// RunningSince is when it started running; zero while it is reserved or pending.
	RunningSince time.Time
}

// Annotate sets ImagesPerSecond and QueuedWork of every GPU of gpus for a request whose
// images are work megapixel-steps each, from the learned speeds and the images in flight on
// each GPU (by UUID). A work of 0 or less leaves gpus as they are: placement then ranks by
// memory alone.
func (l *Learner) Annotate(gpus []placement.GPU, inFlight map[string][]Item, now time.Time, work float64) {
	if !(work > 0) || math.IsInf(work, 0) {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	m := l.mediansLocked()
	for i := range gpus {
		g := &gpus[i]
		sp := l.rankingSpeed(g.UUID, m)
		foreign := 0.0
		if r := l.gpus[g.UUID]; r != nil {
			foreign = r.foreign
		}
		// Seconds one megapixel-step takes on this GPU now, other tenants' share taken out.
		perMPStep := sp / (1 - foreign)
		g.ImagesPerSecond = 1 / (perMPStep * work)
		g.QueuedWork = queued(inFlight[g.UUID], now, perMPStep) / work
	}
}

// queued is the megapixel-steps left of items on a GPU that does one megapixel-step in
// perMPStep seconds, shared equally by its running items.
func queued(items []Item, now time.Time, perMPStep float64) float64 {
	running := 0
	for _, it := range items {
		if !it.RunningSince.IsZero() {
			running++
		}
	}
	total := 0.0
	for _, it := range items {
		if !(it.Work > 0) {
			continue
		}
		if it.RunningSince.IsZero() {
			total += it.Work
			continue
		}
		done := now.Sub(it.RunningSince).Seconds() / perMPStep / float64(running)
		total += max(it.Work-done, minLeft*it.Work)
	}
	return total
}

// MegapixelSteps is the work of one image: width x height / 10^6 x steps.
func MegapixelSteps(width, height, steps int32) float64 {
	return float64(width) * float64(height) / 1e6 * float64(steps)
}
