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

func TestReservationClearsWhenMemoryIsVisible(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1000, 0)}
	l := New(clock.now)
	p := Placement{Job: jobA, Node: "n1", GPUUUID: "GPU-1", Bytes: 100}
	l.Reserve(pod("a-0"), p)
	started := time.Unix(1010, 0)
	l.Observe(pod("a-0"), p, Running, started)

	before := func(string) time.Time { return started.Add(-time.Second) }
	if u := l.Usage(before); len(u.Reservations) != 1 {
		t.Errorf("reservation dropped before the live figures covered the pod's start: %+v", u)
	}
	after := func(string) time.Time { return started.Add(time.Second) }
	u := l.Usage(after)
	if len(u.Reservations) != 0 || u.SlotsInUse["GPU-1"] != 1 {
		t.Errorf("Usage after memory visible = %+v, want no reservation and the slot still used", u)
	}
	l.Observe(pod("a-0"), p, Finished, time.Time{})
	if u := l.Usage(after); len(u.SlotsInUse) != 0 || l.Len() != 0 {
		t.Errorf("finished pod still recorded: %+v, len %d", u, l.Len())
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
