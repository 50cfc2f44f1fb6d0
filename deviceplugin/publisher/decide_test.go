package publisher_test

import (
	"strings"
	"testing"
	"time"

	sdfleetv1alpha1 "github.com/sdfleet/sdfleet/api/v1alpha1"
	"github.com/sdfleet/sdfleet/deviceplugin/publisher"
)

func status(usedPercent ...int64) *sdfleetv1alpha1.GPUNodeStatus {
	st := &sdfleetv1alpha1.GPUNodeStatus{}
	for i, p := range usedPercent {
		st.GPUs = append(st.GPUs, sdfleetv1alpha1.GPUStatus{Index: int32(i), UUID: "GPU-" + string(rune('a'+i)),
			MemoryTotalBytes: 1000, MemoryUsedBytes: p * 10, Health: sdfleetv1alpha1.GPUHealthy})
	}
	return st
}

func TestDecide(t *testing.T) {
	rule := publisher.Rule{MemoryThresholdPercent: 2, Heartbeat: 10 * time.Second}
	t0 := time.Unix(0, 0)
	unhealthy := status(10, 20)
	unhealthy.GPUs[1].Health, unhealthy.GPUs[1].HealthReason = sdfleetv1alpha1.GPUUnhealthy, "XID 79"
	otherReason := status(10, 20)
	otherReason.GPUs[1].Health, otherReason.GPUs[1].HealthReason = sdfleetv1alpha1.GPUUnhealthy, "XID 48"
	tests := []struct {
		name      string
		last      *sdfleetv1alpha1.GPUNodeStatus
		next      *sdfleetv1alpha1.GPUNodeStatus
		after     time.Duration
		want      bool
		wantWhyIn string
	}{
		{"first status", nil, status(10), 0, true, "first"},
		{"small move waits", status(10, 20), status(11, 21), time.Second, false, ""},
		{"2 points up publish", status(10, 20), status(10, 22), time.Second, true, "GPU 1 memory"},
		{"2 points down publish", status(10, 20), status(8, 20), time.Second, true, "GPU 0 memory"},
		{"health change publishes", status(10, 20), unhealthy, time.Second, true, "GPU 1 became Unhealthy"},
		{"reason change publishes", unhealthy, otherReason, time.Second, true, "reason"},
		{"GPU count change publishes", status(10), status(10, 20), time.Second, true, "GPU set"},
		{"heartbeat due", status(10, 20), status(10, 20), 10 * time.Second, true, "heartbeat"},
		{"heartbeat not due", status(10, 20), status(10, 20), 9 * time.Second, false, ""},
	}
	for _, tc := range tests {
		got, why := rule.Decide(tc.last, t0, tc.next, t0.Add(tc.after))
		if got != tc.want || !strings.Contains(why, tc.wantWhyIn) {
			t.Errorf("%s: got %v (%q), want %v (%q)", tc.name, got, why, tc.want, tc.wantWhyIn)
		}
	}
}

func TestRuleValidate(t *testing.T) {
	for rule, want := range map[publisher.Rule]string{
		{MemoryThresholdPercent: 0, Heartbeat: time.Second}:   "threshold 0",
		{MemoryThresholdPercent: 101, Heartbeat: time.Second}: "threshold 101",
		{MemoryThresholdPercent: 2, Heartbeat: 0}:             "heartbeat interval 0s",
	} {
		if err := rule.Validate(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%+v: got %v, want %q", rule, err, want)
		}
	}
}
