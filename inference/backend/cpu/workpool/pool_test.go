package workpool

import (
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

func TestRunCoversEveryTaskOnce(t *testing.T) {
	cases := []struct {
		name    string
		workers int
		tasks   int
	}{
		{"single worker", 1, 17},
		{"fewer tasks than workers", 4, 2},
		{"many tasks", 3, 1000},
		{"no tasks", 2, 0},
		{"default size", 0, 64},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := New(tc.workers)
			defer p.Close()
			hits := make([]atomic.Int32, tc.tasks)
			var badWorker atomic.Int32
			p.Run(tc.tasks, func(w, task int) {
				if w < 0 || w >= p.Workers() {
					badWorker.Store(1)
				}
				hits[task].Add(1)
			})
			for i := range hits {
				if got := hits[i].Load(); got != 1 {
					t.Fatalf("task %d ran %d times, want 1", i, got)
				}
			}
			if badWorker.Load() != 0 {
				t.Fatalf("a task saw a worker index outside [0,%d)", p.Workers())
			}
		})
	}
}

// Per-worker scratch is only safe if no two tasks with the same worker
// index run at the same time; the race detector checks this through the
// unsynchronised writes below.
func TestWorkerIndexIsExclusive(t *testing.T) {
	p := New(4)
	defer p.Close()
	scratch := make([][]int, p.Workers())
	for round := 0; round < 20; round++ {
		p.Run(200, func(w, task int) {
			scratch[w] = append(scratch[w], task)
		})
	}
	total := 0
	for _, s := range scratch {
		total += len(s)
	}
	if total != 20*200 {
		t.Fatalf("recorded %d tasks, want %d", total, 20*200)
	}
}

func TestConcurrentCallersAreSerialised(t *testing.T) {
	p := New(3)
	defer p.Close()
	var wg sync.WaitGroup
	var sum atomic.Int64
	for c := 0; c < 4; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := 0; r < 10; r++ {
				p.Run(50, func(_, task int) { sum.Add(int64(task)) })
			}
		}()
	}
	wg.Wait()
	want := int64(4 * 10 * (49 * 50 / 2))
	if sum.Load() != want {
		t.Fatalf("sum %d, want %d", sum.Load(), want)
	}
}

func TestPanicIsReraisedOnCaller(t *testing.T) {
	p := New(2)
	defer p.Close()
	var msg string
	func() {
		defer func() {
			if r := recover(); r != nil {
				msg, _ = r.(string)
			}
		}()
		p.Run(100, func(_, task int) {
			if task == 37 {
				panic("boom")
			}
		})
	}()
	if !strings.Contains(msg, "boom") {
		t.Fatalf("recovered %q, want the task's panic", msg)
	}
	// The pool must still work after a failed batch.
	var n atomic.Int32
	p.Run(10, func(_, _ int) { n.Add(1) })
	if n.Load() != 10 {
		t.Fatalf("after panic ran %d tasks, want 10", n.Load())
	}
}
