package cpu

import (
	"fmt"
	"strings"

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
	// Precision is what the matrix multiplies and convolutions compute
	// in: "fp32" (or empty) multiplies float32 activations by the weights
	// exactly as stored; "bf16" rounds both to bfloat16 and accumulates in
	// float32, on the CPU's bf16 dot-product instructions where it has
	// them (AVX-512 BF16) and by widening elsewhere; "auto" is bf16 where
	// those instructions exist and fp32 otherwise. Norms, softmax,
	// attention and everything else always run in float32.
	Precision string
	// Logger receives one line describing the chosen configuration.
	Logger logr.Logger
}

// Backend is the CPU backend. Create it with New and release its workers
// with Close.
type Backend struct {
	pool      *workpool.Pool
	engine    *gemm.Engine
	kernel    *gemm.Kernel
	precision Precision
	scratch   []scratch
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
	prec, err := resolvePrecision(opts.Precision, kern)
	if err != nil {
		return nil, err
	}
	if opts.Workers < 0 {
		return nil, fmt.Errorf("cpu backend option Workers: %d is negative", opts.Workers)
	}
	pool := workpool.New(opts.Workers)
	b := &Backend{
		pool:      pool,
		engine:    gemm.NewEngine(pool, kern),
		kernel:    kern,
		precision: prec,
		scratch:   make([]scratch, pool.Workers()),
	}
	opts.Logger.V(1).Info("cpu backend ready", "kernel", kern.Name, "workers", pool.Workers(), "precision", prec, "nativeBF16", kern.NativeBF16())
	return b, nil
}

// Name is "cpu/" followed by the micro-kernel's name.
func (b *Backend) Name() string { return "cpu/" + b.kernel.Name }

// Precision is what matrix multiplies and convolutions compute in.
func (b *Backend) Precision() Precision { return b.precision }

// Precision is the arithmetic of the CPU backend's matrix multiplies.
type Precision string

const (
	// PrecisionFP32 multiplies in float32 with the weights as stored.
	PrecisionFP32 Precision = "fp32"
	// PrecisionBF16 multiplies bfloat16 values, accumulating in float32.
	PrecisionBF16 Precision = "bf16"
)

// Precisions are the accepted values of Options.Precision.
var Precisions = []string{"auto", string(PrecisionFP32), string(PrecisionBF16)}

// resolvePrecision turns an Options.Precision into the one to use.
func resolvePrecision(p string, kern *gemm.Kernel) (Precision, error) {
	switch p {
	case "", string(PrecisionFP32):
		return PrecisionFP32, nil
	case string(PrecisionBF16):
		return PrecisionBF16, nil
	case "auto":
		if kern.NativeBF16() {
			return PrecisionBF16, nil
		}
		return PrecisionFP32, nil
	}
	return "", fmt.Errorf("cpu backend option Precision: %q, expected one of %s", p, strings.Join(Precisions, ", "))
}

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
