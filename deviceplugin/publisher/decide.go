package publisher

import (
	"fmt"
	"time"

	sdfleetv1alpha1 "github.com/sdfleet/sdfleet/api/v1alpha1"
)

// Rule says when a status is worth writing.
type Rule struct {
	// MemoryThresholdPercent is the move, in percentage points of one GPU's memory, that is
	// published at once.
	MemoryThresholdPercent float64
	// Heartbeat is the longest time between two writes.
	Heartbeat time.Duration
}

// Validate names the first wrong field.
func (r Rule) Validate() error {
	if r.MemoryThresholdPercent <= 0 || r.MemoryThresholdPercent > 100 {
		return fmt.Errorf("memory change threshold %g is not above 0 and at most 100 percentage points", r.MemoryThresholdPercent)
	}
	if r.Heartbeat <= 0 {
		return fmt.Errorf("heartbeat interval %s must be positive", r.Heartbeat)
	}
	return nil
}

// Decide says whether next must be written, given what was last written at lastAt, and why.
// last is nil before the first write.
func (r Rule) Decide(last *sdfleetv1alpha1.GPUNodeStatus, lastAt time.Time, next *sdfleetv1alpha1.GPUNodeStatus, now time.Time) (bool, string) {
	if last == nil {
		return true, "first status"
	}
	if len(last.GPUs) != len(next.GPUs) {
		return true, "GPU set changed"
	}
	for i := range next.GPUs {
		a, b := &last.GPUs[i], &next.GPUs[i]
		if a.Index != b.Index || a.UUID != b.UUID {
			return true, "GPU set changed"
		}
		if a.Health != b.Health {
			return true, fmt.Sprintf("GPU %d became %s", b.Index, b.Health)
		}
		if a.HealthReason != b.HealthReason {
			return true, fmt.Sprintf("GPU %d health reason changed", b.Index)
		}
		if move := MemoryPercent(b) - MemoryPercent(a); move >= r.MemoryThresholdPercent || -move >= r.MemoryThresholdPercent {
			return true, fmt.Sprintf("GPU %d memory moved %.1f points", b.Index, move)
		}
	}
	if now.Sub(lastAt) >= r.Heartbeat {
		return true, "heartbeat"
	}
	return false, ""
}

// MemoryPercent is a GPU's used memory in percent of its total.
func MemoryPercent(g *sdfleetv1alpha1.GPUStatus) float64 {
	if g.MemoryTotalBytes <= 0 {
		return 0
	}
	return 100 * float64(g.MemoryUsedBytes) / float64(g.MemoryTotalBytes)
}
