package health

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sdfleet/sdfleet/deviceplugin/gpu"
)

// DefaultIgnoredXIDs are Xids caused by applications (illegal memory access, a killed context,
// a page fault in user code), not by the GPU; the reference NVIDIA plugin ignores the same ones.
var DefaultIgnoredXIDs = []uint64{13, 31, 43, 45, 68, 109}

// Policy is how the Tracker judges GPUs.
type Policy struct {
	// IgnoredXIDs never make a GPU unhealthy.
	IgnoredXIDs []uint64
	// QuietPeriod is how long an unhealthy GPU must go without any failure before it may recover.
	QuietPeriod time.Duration
	// RecoveryProbes is how many consecutive successful probes an unhealthy GPU needs to recover.
	RecoveryProbes int
}

// Validate names the first wrong field.
func (p Policy) Validate() error {
	if p.QuietPeriod < 0 {
		return fmt.Errorf("health recovery quiet period %s is negative", p.QuietPeriod)
	}
	if p.RecoveryProbes < 1 {
		return fmt.Errorf("health recovery probes %d must be at least 1", p.RecoveryProbes)
	}
	return nil
}

// Transition is a GPU changing health.
type Transition struct {
	Index   int
	Healthy bool
	// Reason says why the GPU became unhealthy; empty on recovery.
	Reason string
}

// Status is a GPU's current health.
type Status struct {
	Healthy bool
	Reason  string
}

// Counts are the transitions made so far.
type Counts struct {
	BecameUnhealthy uint64
	Recovered       uint64
}

type gpuHealth struct {
	healthy       bool
	reason        string
	lastFailure   time.Time
	consecutiveOK int
}

// Tracker holds the health of every managed GPU. It is safe for concurrent use: the event loop
// and the sampling loop both feed it.
type Tracker struct {
	policy  Policy
	ignored map[uint64]bool
	now     func() time.Time

	mu     sync.Mutex
	gpus   map[int]*gpuHealth
	counts Counts
}

// NewTracker starts every GPU in indexes healthy. now is the clock; nil means time.Now.
func NewTracker(indexes []int, policy Policy, now func() time.Time) *Tracker {
	if now == nil {
		now = time.Now
	}
	t := &Tracker{policy: policy, ignored: map[uint64]bool{}, now: now, gpus: map[int]*gpuHealth{}}
	for _, x := range policy.IgnoredXIDs {
		t.ignored[x] = true
	}
	for _, i := range indexes {
		t.gpus[i] = &gpuHealth{healthy: true}
	}
	return t
}

// Ignored says whether an Xid is on the ignore list.
func (t *Tracker) Ignored(xid uint64) bool { return t.ignored[xid] }

// Event records a GPU error event. It returns the transition it caused, if any; an ignored
// Xid or an event for an unknown GPU causes none.
func (t *Tracker) Event(ev gpu.Event) *Transition {
	var reason string
	switch ev.Kind {
	case gpu.EventXID:
		if t.ignored[ev.XID] {
			return nil
		}
		reason = fmt.Sprintf("XID %d", ev.XID)
	default:
		reason = ev.Kind.String()
	}
	if ev.Detail != "" {
		reason += ": " + ev.Detail
	}
	return t.fail(ev.Index, reason)
}

// Probe records the outcome of sampling a GPU: a failed query makes it unhealthy, a success
// counts towards recovery.
func (t *Tracker) Probe(index int, err error) *Transition {
	if err != nil {
		return t.fail(index, err.Error()) // the source words it: "NVML query failed: ..."
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	g, ok := t.gpus[index]
	if !ok || g.healthy {
		return nil
	}
	g.consecutiveOK++
	if g.consecutiveOK < t.policy.RecoveryProbes || t.now().Sub(g.lastFailure) < t.policy.QuietPeriod {
		return nil
	}
	g.healthy, g.reason, g.consecutiveOK = true, "", 0
	t.counts.Recovered++
	return &Transition{Index: index, Healthy: true}
}

func (t *Tracker) fail(index int, reason string) *Transition {
	t.mu.Lock()
	defer t.mu.Unlock()
	g, ok := t.gpus[index]
	if !ok {
		return nil
	}
	g.lastFailure, g.consecutiveOK = t.now(), 0
	if !g.healthy {
		// Already out of service; the newest reason is the most useful one to show.
		g.reason = reason
		return nil
	}
	g.healthy, g.reason = false, reason
	t.counts.BecameUnhealthy++
	return &Transition{Index: index, Healthy: false, Reason: reason}
}

// Status returns a GPU's health; unknown GPUs read as unhealthy.
func (t *Tracker) Status(index int) Status {
	t.mu.Lock()
	defer t.mu.Unlock()
	g, ok := t.gpus[index]
	if !ok {
		return Status{Reason: fmt.Sprintf("GPU %d is not managed", index)}
	}
	return Status{Healthy: g.healthy, Reason: g.reason}
}

// Counts returns the transitions made so far.
func (t *Tracker) Counts() Counts {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.counts
}

// ParseXIDs reads a comma-separated Xid list, for the --ignored-xids flag. An empty string is an
// empty list.
func ParseXIDs(s string) ([]uint64, error) {
	var out []uint64
	for _, field := range strings.Split(s, ",") {
		field = strings.TrimSpace(field)
		if field == "" {
			continue
		}
		x, err := strconv.ParseUint(field, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("the Xid %q is not a non-negative whole number", field)
		}
		if !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	slices.Sort(out)
	return out, nil
}
