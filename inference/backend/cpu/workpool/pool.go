package workpool

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
)

// Pool runs batches of independent tasks on a fixed set of goroutines.
// Run calls are serialised: a pool executes one batch at a time, which is
// what lets callers index per-worker scratch by worker number. A task must
// not call Run on the pool that runs it.
type Pool struct {
	mu      sync.Mutex
	workers int
	inbox   []chan *batch
	closed  bool
}

type batch struct {
	fn    func(worker, task int)
	tasks int64
	next  atomic.Int64
	done  sync.WaitGroup
	// failure keeps the first panic raised by a task so Run can re-raise it
	// on the caller's goroutine instead of crashing a helper.
	failure atomic.Pointer[any]
}

// New starts a pool with the given number of workers; zero or less means
// runtime.GOMAXPROCS(0). The calling goroutine of Run acts as worker 0, so
// a pool of n workers starts n-1 goroutines.
func New(workers int) *Pool {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	p := &Pool{workers: workers, inbox: make([]chan *batch, workers)}
	for i := 1; i < workers; i++ {
		ch := make(chan *batch)
		p.inbox[i] = ch
		go func(worker int) {
			for b := range ch {
				b.work(worker)
				b.done.Done()
			}
		}(i)
	}
	return p
}

// Workers is the number of workers, and so the exclusive upper bound of
// the worker index passed to tasks.
func (p *Pool) Workers() int { return p.workers }

// Run calls fn(worker, task) once for every task in [0, tasks) and returns
// when all have finished. Tasks are handed out dynamically, so uneven task
// costs balance across workers. If a task panics, the remaining tasks are
// skipped and the panic is re-raised here.
func (p *Pool) Run(tasks int, fn func(worker, task int)) {
	if tasks <= 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		panic("workpool: Run on a closed pool")
	}
	b := &batch{fn: fn, tasks: int64(tasks)}
	helpers := min(p.workers-1, tasks-1)
	b.done.Add(helpers)
	for i := 1; i <= helpers; i++ {
		p.inbox[i] <- b
	}
	b.work(0)
	b.done.Wait()
	if f := b.failure.Load(); f != nil {
		panic(fmt.Sprintf("workpool: task panicked: %v", *f))
	}
}

// Close stops the worker goroutines. Run must not be called afterwards.
func (p *Pool) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.closed = true
	for i := 1; i < p.workers; i++ {
		close(p.inbox[i])
	}
}

func (b *batch) work(worker int) {
	defer func() {
		if r := recover(); r != nil {
			b.failure.CompareAndSwap(nil, &r)
			b.next.Store(b.tasks) // stop handing out tasks
		}
	}()
	for {
		t := b.next.Add(1) - 1
		if t >= b.tasks {
			return
		}
		b.fn(worker, int(t))
	}
}
