package cpu

import (
	"fmt"

	"github.com/go-logr/logr"

	"github.com/sdfleet/sdfleet/inference/backend"
	"github.com/sdfleet/sdfleet/inference/backend/cpu/gemm"
	"github.com/sdfleet/sdfleet/inference/backend/cpu/workpool"
)

// Options configures New.
type Options struct {
	// Kernel forces a micro-kernel by name ("avx512", "avx2", "purego");
	// empty or "auto" picks the fastest this machine supports.
	Kernel string
	// Workers is the number of worker goroutines; zero means GOMAXPROCS.
	Workers int
	// Logger receives one line describing the chosen configuration.
	Logger logr.Logger
}

// Backend is the CPU backend. Create it with New and release its workers
// with Close.
type Backend struct {
	pool    *workpool.Pool
	engine  *gemm.Engine
	kernel  *gemm.Kernel
	scratch []scratch
	// attnPack holds attention's packed keys and values between calls.
	attnPack []float32
}

var _ backend.Backend = (*Backend)(nil)

// New starts a CPU backend.
func New(opts Options) (*Backend, error) {
	kern, err := gemm.Lookup(opts.Kernel)
	if err != nil {
		return nil, fmt.Errorf("cpu backend option Kernel: %w", err)
	}
	if opts.Workers < 0 {
		return nil, fmt.Errorf("cpu backend option Workers: %d is negative", opts.Workers)
	}
	pool := workpool.New(opts.Workers)
	b := &Backend{
		pool:    pool,
		engine:  gemm.NewEngine(pool, kern),
		kernel:  kern,
		scratch: make([]scratch, pool.Workers()),
	}
	opts.Logger.V(1).Info("cpu backend ready", "kernel", kern.Name, "workers", pool.Workers())
	return b, nil
}

// Name is "cpu/" followed by the micro-kernel's name.
func (b *Backend) Name() string { return "cpu/" + b.kernel.Name }

// Close stops the worker pool.
func (b *Backend) Close() { b.pool.Close() }

// Workers is the size of the worker pool.
func (b *Backend) Workers() int { return b.pool.Workers() }

// scratch is one worker's reusable buffers, grown on demand so steady
// state allocates nothing.
type scratch struct {
	bufs [8][]float32
}

// get returns buffer slot i with at least n floats.
func (s *scratch) get(i, n int) []float32 {
	if cap(s.bufs[i]) < n {
		s.bufs[i] = make([]float32, n)
	}
	return s.bufs[i][:n]
}

// parallelRanges splits [0, n) into chunks of at least minChunk and runs
// fn on the pool, one task per chunk.
func (b *Backend) parallelRanges(n, minChunk int, fn func(worker, lo, hi int)) {
	if n <= 0 {
		return
	}
	tasks := min(ceilDiv(n, max(minChunk, 1)), 4*b.pool.Workers())
	chunk := ceilDiv(n, tasks)
	tasks = ceilDiv(n, chunk)
	b.pool.Run(tasks, func(worker, t int) {
		lo := t * chunk
		fn(worker, lo, min(n, lo+chunk))
	})
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }
