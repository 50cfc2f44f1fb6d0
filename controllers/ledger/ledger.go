package ledger

import (
	"sort"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/sdfleet/sdfleet/controllers/placement"
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
}

// Ledger records the active image pods of every job. It is safe for concurrent use.
type Ledger struct {
	mu    sync.Mutex
	byJob map[types.NamespacedName]map[types.NamespacedName]*entry
	byPod map[types.NamespacedName]*entry
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
	l.put(&entry{Placement: p, pod: pod, reservedAt: l.now()})
	return true
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
// is rebuilt after a restart.
func (l *Ledger) Observe(pod types.NamespacedName, p Placement, state State, runningSince time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.byPod[pod]
	if state == Finished {
		if ok {
			l.remove(e)
		}
		return
	}
	if !ok {
		e = &entry{Placement: p, pod: pod, reservedAt: l.now()}
		l.put(e)
	} else if e.Job == p.Job {
		// The pod's annotations are the truth: a reservation made from a stale view is
		// corrected by what was really created.
		e.Placement = p
	}
	e.observed = true
	if state == Running && e.runningSince.IsZero() {
		e.runningSince = runningSince
		if e.runningSince.IsZero() {
			e.runningSince = l.now()
		}
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

// Usage is what the recorded pods hold: the memory reservations still in flight, and the
// number of pods on each GPU (by UUID).
type Usage struct {
	Reservations []placement.Reservation
	SlotsInUse   map[string]int32
}

// Usage returns the reservations and slot usage for a placement snapshot. visibleSince says,
// for a node, the latest pod start whose memory the node's live figures already show (the
// node's last heartbeat minus one sampling interval); a running pod that started before it no
// longer holds a reservation, since its real usage is counted in the live figures.
func (l *Ledger) Usage(visibleSince func(node string) time.Time) Usage {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	u := Usage{SlotsInUse: map[string]int32{}}
	for _, e := range l.byPod {
		if !e.observed && now.Sub(e.reservedAt) > l.unobservedTTL {
			l.remove(e)
			continue
		}
		if e.GPUUUID == "" {
			continue
		}
		u.SlotsInUse[e.GPUUUID]++
		if !e.visible && !e.runningSince.IsZero() && visibleSince != nil {
			if v := visibleSince(e.Node); !v.IsZero() && !e.runningSince.After(v) {
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

func (l *Ledger) remove(e *entry) {
	delete(l.byPod, e.pod)
	if pods := l.byJob[e.Job]; pods != nil {
		delete(pods, e.pod)
		if len(pods) == 0 {
			delete(l.byJob, e.Job)
		}
	}
}
