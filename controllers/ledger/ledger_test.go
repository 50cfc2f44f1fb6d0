package ledger

import (
	"reflect"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/sdfleet/sdfleet/controllers/placement"
)

var (
	jobA = types.NamespacedName{Namespace: "ns", Name: "a"}
	jobB = types.NamespacedName{Namespace: "ns", Name: "b"}
)

func pod(name string) types.NamespacedName { return types.NamespacedName{Namespace: "ns", Name: name} }

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func TestReserveCountsBeforeTheCacheSeesThePod(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1000, 0)}
	l := New(clock.now)
	if !l.Reserve(pod("a-0"), Placement{Job: jobA, Index: 0, Node: "n1", GPUUUID: "GPU-1", Bytes: 100}) {
		t.Fatal("first Reserve of a-0 returned false")
	}
	if l.Reserve(pod("a-0"), Placement{Job: jobA, Index: 0, Node: "n2", GPUUUID: "GPU-2", Bytes: 100}) {
		t.Error("second Reserve of a-0 returned true: the pod would be created twice")
	}
	l.Reserve(pod("b-0"), Placement{Job: jobB, Index: 0, Node: "n1", GPUUUID: "GPU-1", Bytes: 50})

	u := l.Usage(nil)
	want := []placement.Reservation{{GPU: "GPU-1", Bytes: 100}, {GPU: "GPU-1", Bytes: 50}}
	if len(u.Reservations) != 2 || u.SlotsInUse["GPU-1"] != 2 || u.SlotsInUse["GPU-2"] != 0 {
		t.Errorf("Usage = %+v, want reservations %v and 2 slots on GPU-1", u, want)
	}
	if got := l.Unobserved(jobA); len(got) != 1 || got[0].Pod != pod("a-0") || got[0].GPUUUID != "GPU-1" {
		t.Errorf("Unobserved(a) = %+v, want a-0 on GPU-1", got)
	}

	l.Observe(pod("a-0"), Placement{Job: jobA, Node: "n1", GPUUUID: "GPU-1", Bytes: 100}, Pending, time.Time{})
	if got := l.Unobserved(jobA); len(got) != 0 {
		t.Errorf("Unobserved(a) after Observe = %+v, want none", got)
	}
}

// view is a published GPU with used bytes, sampled over a period starting at since.
func view(used int64, since time.Time) func(string, string) GPUView {
	return func(string, string) GPUView { return GPUView{Known: true, UsedBytes: used, VisibleSince: since} }
}

func TestReservationClearsWhenMemoryIsVisible(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1000, 0)}
	l := New(clock.now)
	p := Placement{Job: jobA, Node: "n1", GPUUUID: "GPU-1", Bytes: 100, GPUUsedBytes: 1000}
	l.Reserve(pod("a-0"), p)
	started := time.Unix(1010, 0)
	l.Observe(pod("a-0"), p, Running, started)

	if u := l.Usage(view(1100, started.Add(-time.Second))); len(u.Reservations) != 1 {
		t.Errorf("reservation dropped before the live figures covered the pod's start: %+v", u)
	}
	u := l.Usage(view(1100, started.Add(time.Second)))
	if len(u.Reservations) != 0 || u.SlotsInUse["GPU-1"] != 1 {
		t.Errorf("Usage after memory visible = %+v, want no reservation and the slot still used", u)
	}
	l.Observe(pod("a-0"), p, Finished, time.Time{})
	if u := l.Usage(view(1000, started.Add(time.Second))); len(u.SlotsInUse) != 0 || l.Len() != 0 {
		t.Errorf("finished pod still recorded: %+v, len %d", u, l.Len())
	}
}

// A pod that runs for several sampling intervals before its model's memory shows up (a slow
// model load) keeps its reservation: dropping it after one sample would let the next decisions
// hand the same memory out again.
func TestReservationHoldsUntilTheMemoryShowsUp(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1000, 0)}
	l := New(clock.now)
	a := Placement{Job: jobA, Node: "n1", GPUUUID: "GPU-1", Bytes: 100, GPUUsedBytes: 1000}
	b := Placement{Job: jobA, Index: 1, Node: "n1", GPUUUID: "GPU-1", Bytes: 100, GPUUsedBytes: 1000}
	l.Reserve(pod("a-0"), a)
	l.Reserve(pod("a-1"), b)
	started := time.Unix(1010, 0)
	l.Observe(pod("a-0"), a, Running, started)
	l.Observe(pod("a-1"), b, Running, started)
	for _, tc := range []struct {
		used int64
		want int
	}{
		{1000, 2}, // sampled well after the start, nothing loaded yet
		{1050, 2}, // half a model
		{1100, 1}, // the first image's memory
		{1150, 1},
		{1200, 0}, // both
	} {
		if u := l.Usage(view(tc.used, started.Add(10*time.Second))); len(u.Reservations) != tc.want {
			t.Errorf("used %d: %d reservations, want %d", tc.used, len(u.Reservations), tc.want)
		}
	}
}

// After a restart the ledger knows a pod only from the cache, without the GPU's figures at its
// placement: its reservation holds until a sample taken after it started.
func TestRebuiltReservationClearsAfterASampleSinceItsStart(t *testing.T) {
	l := New(nil)
	p := Placement{Job: jobA, Node: "n1", GPUUUID: "GPU-1", Bytes: 100}
	started := time.Unix(1010, 0)
	l.Observe(pod("a-0"), p, Running, started)
	if u := l.Usage(view(0, started.Add(-time.Second))); len(u.Reservations) != 1 {
		t.Errorf("before a sample since the start: %+v, want the reservation", u)
	}
	if u := l.Usage(view(0, started.Add(time.Second))); len(u.Reservations) != 0 {
		t.Errorf("after a sample since the start: %+v, want none", u)
	}
	if u := l.Usage(func(string, string) GPUView { return GPUView{} }); len(u.Reservations) != 0 {
		t.Errorf("a visible reservation came back: %+v", u)
	}
}

func TestMeanConcurrencyAndWorkInFlight(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1000, 0)}
	l := New(clock.now)
	a := Placement{Job: jobA, Node: "n1", GPUUUID: "GPU-1", Bytes: 1, Work: 5}
	b := Placement{Job: jobA, Index: 1, Node: "n1", GPUUUID: "GPU-1", Bytes: 1, Work: 7}
	l.Reserve(pod("a-0"), a)
	l.Reserve(pod("a-1"), b)
	u := l.Usage(nil)
	if got := u.InFlight["GPU-1"]; len(got) != 2 || got[0].Work+got[1].Work != 12 || !got[0].RunningSince.IsZero() {
		t.Errorf("in flight before running: %+v, want two reserved items of 5 and 7", got)
	}
	l.Observe(pod("a-0"), a, Running, time.Time{}) // a alone from 1000
	clock.t = time.Unix(1010, 0)
	l.Observe(pod("a-1"), b, Running, time.Time{}) // a and b together from 1010
	clock.t = time.Unix(1020, 0)
	// a ran 20 s: 10 alone, 10 shared: 1.5 on average.
	if got := l.Observe(pod("a-0"), a, Finished, time.Time{}); got != 1.5 {
		t.Errorf("mean concurrency of a = %v, want 1.5", got)
	}
	clock.t = time.Unix(1030, 0)
	// b ran 20 s: 10 shared, 10 alone.
	if got := l.Observe(pod("a-1"), b, Finished, time.Time{}); got != 1.5 {
		t.Errorf("mean concurrency of b = %v, want 1.5", got)
	}
	if got := l.Observe(pod("gone"), a, Finished, time.Time{}); got != 0 {
		t.Errorf("unknown pod: %v, want 0", got)
	}
	if len(l.gpus) != 0 {
		t.Errorf("GPU clocks left after every pod ended: %d", len(l.gpus))
	}
}

func TestRebuildFromCacheAndForget(t *testing.T) {
	l := New(nil)
	for i, name := range []string{"a-0", "a-1", "b-0"} {
		job := jobA
		if name == "b-0" {
			job = jobB
		}
		l.Observe(pod(name), Placement{Job: job, Index: int32(i), GPUUUID: "GPU-2", Bytes: 10}, Pending, time.Time{})
	}
	if u := l.Usage(nil); u.SlotsInUse["GPU-2"] != 3 || len(u.Reservations) != 3 {
		t.Errorf("rebuilt usage = %+v, want 3 pods reserved on GPU-2", u)
	}
	l.ForgetJob(jobA)
	l.Forget(pod("missing"))
	if l.Len() != 1 {
		t.Errorf("after ForgetJob(a) len = %d, want 1", l.Len())
	}
	l.Forget(pod("b-0"))
	if l.Len() != 0 {
		t.Errorf("after Forget(b-0) len = %d, want 0", l.Len())
	}
}

func TestReleaseAndUnobservedTTL(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1000, 0)}
	l := New(clock.now)
	l.Reserve(pod("a-0"), Placement{Job: jobA, GPUUUID: "GPU-1", Bytes: 1})
	l.Release(pod("a-0"))
	if l.Len() != 0 {
		t.Errorf("Release kept the reservation")
	}
	l.Reserve(pod("a-1"), Placement{Job: jobA, GPUUUID: "GPU-1", Bytes: 1})
	l.Reserve(pod("a-2"), Placement{Job: jobA, GPUUUID: "GPU-1", Bytes: 1})
	l.Observe(pod("a-2"), Placement{Job: jobA, GPUUUID: "GPU-1", Bytes: 1}, Pending, time.Time{})
	l.Release(pod("a-2")) // observed pods are not released: they exist
	clock.t = clock.t.Add(DefaultUnobservedTTL + time.Second)
	u := l.Usage(nil)
	if got := []int32{u.SlotsInUse["GPU-1"]}; !reflect.DeepEqual(got, []int32{1}) || l.Len() != 1 {
		t.Errorf("after the TTL usage = %+v, len %d; want only the observed pod a-2", u, l.Len())
	}
}

func TestCPUPodsHoldNoGPU(t *testing.T) {
	l := New(nil)
	l.Reserve(pod("a-0"), Placement{Job: jobA})
	if u := l.Usage(nil); len(u.Reservations) != 0 || len(u.SlotsInUse) != 0 {
		t.Errorf("CPU pod counted on a GPU: %+v", u)
	}
	if got := l.Unobserved(jobA); len(got) != 1 {
		t.Errorf("CPU pod not reported as unobserved: %+v", got)
	}
}

func TestAwaitsSampleWhileARunningPodsMemoryIsReserved(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1000, 0)}
	l := New(clock.now)
	p := Placement{Job: jobA, Node: "n1", GPUUUID: "GPU-1", Bytes: 100, GPUUsedBytes: 1000}
	l.Reserve(pod("a-0"), p)
	l.Reserve(pod("cpu-0"), Placement{Job: jobA, Index: 1})
	if l.AwaitsSample("n1") {
		t.Error("AwaitsSample(n1) with a pod not yet running = true; a sample cannot show its memory yet")
	}
	started := time.Unix(1010, 0)
	l.Observe(pod("a-0"), p, Running, started)
	l.Observe(pod("cpu-0"), Placement{Job: jobA, Index: 1}, Running, started)
	if !l.AwaitsSample("n1") {
		t.Error("AwaitsSample(n1) with a running pod whose memory is reserved = false")
	}
	if l.AwaitsSample("n2") {
		t.Error("AwaitsSample(n2) = true; no pod runs there")
	}
	// A sample from after the start that shows the memory ends the reservation.
	l.Usage(view(1100, started.Add(time.Second)))
	if l.AwaitsSample("n1") {
		t.Error("AwaitsSample(n1) after its memory showed up = true")
	}
}
