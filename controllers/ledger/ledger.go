package ledger

import (
	"sort"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/sdfleet/sdfleet/controllers/placement"
	"github.com/sdfleet/sdfleet/controllers/throughput"
)

// Placement is where one image pod was placed.
type Placement struct {
	// Job is the ImageGenerationJob the pod belongs to.
	Job types.NamespacedName
	// Index is the image index.
	Index int32
	// Node is the node the pod is pinned to; empty for a CPU pod without a node.
	Node string
	// GPUIndex is the GPU's index on Node.
	GPUIndex int32
	// GPUUUID is the GPU's UUID; empty for a CPU pod.
	GPUUUID string
	// Bytes is the GPU memory reserved for the image.
	Bytes int64
	// Work is the image's megapixel-steps (0: unknown), for the expected finish of the GPU.
	Work float64
	// GPUUsedBytes is, for Reserve, the GPU's reported used memory the decision saw: the
	// reservation holds until the reported figure has grown by the image's memory (and that of
	// the images reserved there before it). Observe ignores it.
	GPUUsedBytes int64
}

// State is the life stage of a pod as the cache shows it.
type State int

const (
	// Pending: the pod exists but does not run yet.
	Pending State = iota
	// Running: the pod's container runs.
	Running
	// Finished: the pod succeeded, failed or is being deleted; it no longer holds its GPU.
	Finished
)

type entry struct {
	Placement
	pod          types.NamespacedName
	reservedAt   time.Time
	observed     bool
	runningSince time.Time
	visible      bool
	// baseKnown says the GPU's used memory at reservation is known: the reservation holds
	// until the reported figure reaches baseUsed + ahead + Bytes, ahead being the memory of the
	// reservations on the GPU still not visible when this one was made.
	baseKnown bool
	baseUsed  int64
	ahead     int64
	// clockStart is when the ledger saw the pod run, sharedAtStart its GPU's concurrency
	// integral then.
	clockStart    time.Time
	sharedAtStart float64
}

// gpuClock integrates, over time, how many recorded pods run on one GPU.
type gpuClock struct {
	running int
	shared  float64 // seconds x running pods
	at      time.Time
	// pending is the memory of the GPU's reservations not yet visible, of pods reserved with a
	// known baseline.
	pending int64
}

func (c *gpuClock) advance(now time.Time) {
	if now.After(c.at) {
		c.shared += float64(c.running) * now.Sub(c.at).Seconds()
		c.at = now
	}
}

// Ledger records the active image pods of every job. It is safe for concurrent use.
type Ledger struct {
	mu    sync.Mutex
	byJob map[types.NamespacedName]map[types.NamespacedName]*entry
	byPod map[types.NamespacedName]*entry
	gpus  map[string]*gpuClock
	now   func() time.Time
	// unobservedTTL drops a reservation whose pod never showed up in the cache, so a lost
	// creation cannot hold a GPU for ever.
	unobservedTTL time.Duration
}

// DefaultUnobservedTTL is how long a reservation waits for its pod to show up in the cache.
const DefaultUnobservedTTL = 2 * time.Minute

// New returns an empty ledger. now is the clock (time.Now when nil).
func New(now func() time.Time) *Ledger {
	if now == nil {
		now = time.Now
	}
	return &Ledger{
		byJob:         map[types.NamespacedName]map[types.NamespacedName]*entry{},
		byPod:         map[types.NamespacedName]*entry{},
		gpus:          map[string]*gpuClock{},
		now:           now,
		unobservedTTL: DefaultUnobservedTTL,
	}
}

// Reserve records a pod about to be created with placement p. It returns false, and records
// nothing, when the pod is already known: the caller must not create it again.
func (l *Ledger) Reserve(pod types.NamespacedName, p Placement) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.byPod[pod]; ok {
		return false
	}
	e := &entry{Placement: p, pod: pod, reservedAt: l.now()}
	if p.GPUUUID != "" {
		c := l.clock(p.GPUUUID)
		e.baseKnown, e.baseUsed, e.ahead = true, p.GPUUsedBytes, c.pending
		c.pending += p.Bytes
	}
	l.put(e)
	return true
}

func (l *Ledger) clock(uuid string) *gpuClock {
	c := l.gpus[uuid]
	if c == nil {
		c = &gpuClock{at: l.now()}
		l.gpus[uuid] = c
	}
	return c
}

// Release forgets a reservation whose pod could not be created.
func (l *Ledger) Release(pod types.NamespacedName) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.byPod[pod]
	if ok && !e.observed {
		l.remove(e)
	}
}

// Observe records what the cache shows of a pod: its placement (from its annotations) and
// state. A finished pod is removed; an active one is added if unknown, which is how the ledger
// is rebuilt after a restart. When the call removes a pod the ledger saw running, it returns
// how many recorded pods ran on its GPU on average meanwhile (itself included); else 0.
func (l *Ledger) Observe(pod types.NamespacedName, p Placement, state State, runningSince time.Time) float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.byPod[pod]
	if state == Finished {
		if ok {
			return l.remove(e)
		}
		return 0
	}
	if !ok {
		e = &entry{Placement: p, pod: pod, reservedAt: l.now()}
		l.put(e)
	} else if e.Job == p.Job {
		// The pod's annotations are the truth: a reservation made from a stale view is
		// corrected by what was really created.
		if p.GPUUUID != e.GPUUUID {
			l.settle(e)
			e.baseKnown = false
		}
		e.Placement = p
	}
	e.observed = true
	if state == Running && e.runningSince.IsZero() {
		e.runningSince = runningSince
		if e.runningSince.IsZero() {
			e.runningSince = l.now()
		}
		if e.GPUUUID != "" {
			c := l.clock(e.GPUUUID)
			now := l.now()
			c.advance(now)
			c.running++
			e.clockStart, e.sharedAtStart = now, c.shared
		}
	}
	return 0
}

// settle takes e's memory out of its GPU's pending reservations, once: when it becomes
// visible or goes.
func (l *Ledger) settle(e *entry) {
	if !e.baseKnown || e.visible {
		return
	}
	if c := l.gpus[e.GPUUUID]; c != nil {
		c.pending -= e.Bytes
	}
}

// Forget removes a pod that was deleted.
func (l *Ledger) Forget(pod types.NamespacedName) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e, ok := l.byPod[pod]; ok {
		l.remove(e)
	}
}

// ForgetJob removes every pod of a job that is gone.
func (l *Ledger) ForgetJob(job types.NamespacedName) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range l.byJob[job] {
		l.remove(e)
	}
}

// PodPlacement is a recorded pod and its placement.
type PodPlacement struct {
	Pod types.NamespacedName
	Placement
}

// Unobserved returns the pods of job that were reserved but not yet seen in the cache, sorted
// by name. The caller counts them as pending pods.
func (l *Ledger) Unobserved(job types.NamespacedName) []PodPlacement {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []PodPlacement
	for _, e := range l.byJob[job] {
		if !e.observed {
			out = append(out, PodPlacement{Pod: e.pod, Placement: e.Placement})
		}
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Pod.Name < out[b].Pod.Name })
	return out
}

// Usage is what the recorded pods hold: the memory reservations still in flight, the number
// of pods on each GPU and the images in flight on each (by UUID).
type Usage struct {
	Reservations []placement.Reservation
	SlotsInUse   map[string]int32
	InFlight     map[string][]throughput.Item
}

// GPUView is what the node agent last published of a GPU, as far as reservations go.
type GPUView struct {
	// Known is false when the GPU is not published (its reservations then hold).
	Known bool
	// UsedBytes is the reported used memory.
	UsedBytes int64
	// VisibleSince is the latest pod start whose memory the figures can show: the heartbeat
	// less one sampling interval.
	VisibleSince time.Time
}

// Usage returns the reservations, slot usage and work in flight for a placement snapshot.
// view gives each GPU's published figures (by node and UUID). A reservation holds until its
// pod runs, a sample taken after it started shows the GPU's used memory grown by the pod's
// memory (and by that of the reservations made on the GPU before it), or the pod ends. A pod
// the ledger only knows from the cache (after a restart) holds its reservation until a sample
// taken after it started. The memory of a model half loaded when a sample is taken keeps the
// reservation, which errs towards spreading, never towards an out-of-memory.
func (l *Ledger) Usage(view func(node, uuid string) GPUView) Usage {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	u := Usage{SlotsInUse: map[string]int32{}, InFlight: map[string][]throughput.Item{}}
	for _, e := range l.byPod {
		if !e.observed && now.Sub(e.reservedAt) > l.unobservedTTL {
			l.remove(e)
			continue
		}
		if e.GPUUUID == "" {
			continue
		}
		u.SlotsInUse[e.GPUUUID]++
		u.InFlight[e.GPUUUID] = append(u.InFlight[e.GPUUUID], throughput.Item{Work: e.Work, RunningSince: e.clockStart})
		if !e.visible && !e.runningSince.IsZero() && view != nil {
			v := view(e.Node, e.GPUUUID)
			sampledAfterStart := v.Known && !v.VisibleSince.IsZero() && !e.runningSince.After(v.VisibleSince)
			if sampledAfterStart && (!e.baseKnown || v.UsedBytes >= e.baseUsed+e.ahead+e.Bytes) {
				l.settle(e)
				e.visible = true
			}
		}
		if !e.visible {
			u.Reservations = append(u.Reservations, placement.Reservation{GPU: e.GPUUUID, Bytes: e.Bytes})
		}
	}
	sort.Slice(u.Reservations, func(a, b int) bool { return u.Reservations[a].GPU < u.Reservations[b].GPU })
	return u
}

// JobsOnNode returns the jobs with a recorded pod on node.
func (l *Ledger) JobsOnNode(node string) []types.NamespacedName {
	l.mu.Lock()
	defer l.mu.Unlock()
	seen := map[types.NamespacedName]bool{}
	var out []types.NamespacedName
	for _, e := range l.byPod {
		if e.Node == node && !seen[e.Job] {
			seen[e.Job] = true
			out = append(out, e.Job)
		}
	}
	return out
}

// AwaitsSample reports whether a pod runs on a GPU of node whose memory reservation still
// holds: a new sample of that node, even with unchanged figures, may show its memory and free
// the room the reservation kept.
func (l *Ledger) AwaitsSample(node string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range l.byPod {
		if e.Node == node && e.GPUUUID != "" && !e.visible && !e.runningSince.IsZero() {
			return true
		}
	}
	return false
}

// Len is the number of recorded pods.
func (l *Ledger) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.byPod)
}

func (l *Ledger) put(e *entry) {
	l.byPod[e.pod] = e
	pods := l.byJob[e.Job]
	if pods == nil {
		pods = map[types.NamespacedName]*entry{}
		l.byJob[e.Job] = pods
	}
	pods[e.pod] = e
}

// remove drops e and returns, for a pod the ledger saw running on a GPU, the mean number of
// recorded pods that ran there meanwhile; else 0.
func (l *Ledger) remove(e *entry) float64 {
	l.settle(e)
	mean := 0.0
	if c := l.gpus[e.GPUUUID]; c != nil {
		if !e.clockStart.IsZero() {
			now := l.now()
			c.advance(now)
			mean = 1
			if ran := now.Sub(e.clockStart).Seconds(); ran > 0 {
				mean = max((c.shared-e.sharedAtStart)/ran, 1)
			}
			c.running--
		}
		if c.running == 0 && c.pending == 0 {
			// Nothing the clock holds matters any more; a later pod starts a fresh one.
			delete(l.gpus, e.GPUUUID)
		}
	}
	delete(l.byPod, e.pod)
	if pods := l.byJob[e.Job]; pods != nil {
		delete(pods, e.pod)
		if len(pods) == 0 {
			delete(l.byJob, e.Job)
		}
	}
	return mean
}
