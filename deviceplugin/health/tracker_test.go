package health_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sdfleet/sdfleet/deviceplugin/gpu"
	"github.com/sdfleet/sdfleet/deviceplugin/health"
)

// step is one input to the tracker at a time offset, with the transition expected from it.
type step struct {
	after   time.Duration // advance the clock first
	event   *gpu.Event
	probeOK *bool
	want    string // "", "unhealthy:<reason>" or "healthy"
}

func ok(v bool) *bool { return &v }

func TestTracker(t *testing.T) {
	policy := health.Policy{IgnoredXIDs: health.DefaultIgnoredXIDs, QuietPeriod: 30 * time.Second, RecoveryProbes: 3}
	xid := func(x uint64) *gpu.Event { return &gpu.Event{Index: 0, Kind: gpu.EventXID, XID: x} }
	tests := []struct {
		name  string
		steps []step
	}{
		{name: "every default application Xid is ignored", steps: []step{
			{event: xid(13)}, {event: xid(31)}, {event: xid(43)}, {event: xid(45)}, {event: xid(68)}, {event: xid(109)},
		}},
		{name: "critical Xid marks unhealthy once", steps: []step{
			{event: xid(79), want: "unhealthy:XID 79"},
			{event: xid(48)},
		}},
		{name: "failed probe marks unhealthy", steps: []step{
			{probeOK: ok(false), want: "unhealthy:boom"},
		}},
		{name: "rising RAS counters mark unhealthy with the block", steps: []step{
			{event: &gpu.Event{Index: 0, Kind: gpu.EventUncorrectableRAS, Detail: "umc 0 -> 2"}, want: "unhealthy:uncorrectable RAS errors: umc 0 -> 2"},
		}},
		{name: "recovery needs the quiet period and consecutive probes", steps: []step{
			{event: xid(79), want: "unhealthy:XID 79"},
			{after: 10 * time.Second, probeOK: ok(true)},
			{after: 10 * time.Second, probeOK: ok(true)},
			{after: 5 * time.Second, probeOK: ok(true)}, // 3 probes but only 25 s quiet
			{after: 5 * time.Second, probeOK: ok(true), want: "healthy"},
		}},
		{name: "a failure restarts the quiet period and the probe count", steps: []step{
			{event: &gpu.Event{Index: 0, Kind: gpu.EventDoubleBitECC}, want: "unhealthy:double-bit ECC error"},
			{after: 40 * time.Second, probeOK: ok(true)},
			{probeOK: ok(false)},
			{after: 40 * time.Second, probeOK: ok(true)},
			{probeOK: ok(true)},
			{probeOK: ok(true), want: "healthy"},
		}},
		{name: "events for unknown GPUs are dropped", steps: []step{
			{event: &gpu.Event{Index: 9, Kind: gpu.EventLost}},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			now := time.Unix(0, 0)
			tr := health.NewTracker([]int{0}, policy, func() time.Time { return now })
			for i, s := range tc.steps {
				now = now.Add(s.after)
				var got *health.Transition
				switch {
				case s.event != nil:
					got = tr.Event(*s.event)
				case s.probeOK != nil && *s.probeOK:
					got = tr.Probe(0, nil)
				default:
					got = tr.Probe(0, errors.New("boom"))
				}
				var gotS string
				if got != nil {
					gotS = "healthy"
					if !got.Healthy {
						gotS = "unhealthy:" + got.Reason
					}
				}
				if gotS != s.want {
					t.Fatalf("step %d: got transition %q, want %q", i, gotS, s.want)
				}
			}
		})
	}
}

func TestCountsAndStatus(t *testing.T) {
	now := time.Unix(0, 0)
	tr := health.NewTracker([]int{0, 1}, health.Policy{QuietPeriod: 0, RecoveryProbes: 1}, func() time.Time { return now })
	tr.Event(gpu.Event{Index: 1, Kind: gpu.EventXID, XID: 13}) // not ignored: empty ignore list
	if s := tr.Status(1); s.Healthy || s.Reason != "XID 13" {
		t.Fatalf("status: got %+v, want unhealthy XID 13", s)
	}
	tr.Probe(1, nil)
	if c := tr.Counts(); c != (health.Counts{BecameUnhealthy: 1, Recovered: 1}) {
		t.Fatalf("counts: got %+v", c)
	}
	if s := tr.Status(5); s.Healthy {
		t.Errorf("an unmanaged GPU must read unhealthy, got %+v", s)
	}
}

func TestParseXIDs(t *testing.T) {
	tests := []struct {
		in      string
		want    []uint64
		wantErr string
	}{
		{in: "", want: nil},
		{in: "13, 31,13 ,109", want: []uint64{13, 31, 109}},
		{in: "13,x", wantErr: `"x"`},
		{in: "-1", wantErr: `"-1"`},
	}
	for _, tc := range tests {
		got, err := health.ParseXIDs(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%q: got error %v, want one naming %s", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("%q: got %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestPolicyValidate(t *testing.T) {
	if err := (health.Policy{RecoveryProbes: 0}).Validate(); err == nil || !strings.Contains(err.Error(), "probes 0") {
		t.Errorf("zero probes: got %v", err)
	}
	if err := (health.Policy{QuietPeriod: -time.Second, RecoveryProbes: 1}).Validate(); err == nil || !strings.Contains(err.Error(), "-1s") {
		t.Errorf("negative quiet period: got %v", err)
	}
}
