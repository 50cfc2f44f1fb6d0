package main

import (
	"fmt"
	"os"
	"unsafe"

	"github.com/ebitengine/purego"
)

// openBLAS is the handful of OpenBLAS entry points the benchmark calls,
// bound at run time so no other binary of the project links a C library.
type openBLAS struct {
	sgemm func(order, transA, transB, m, n, k int32, alpha float32, a unsafe.Pointer, lda int32,
		b unsafe.Pointer, ldb int32, beta float32, c unsafe.Pointer, ldc int32)
	corename func() string
	config   func() string
}

const (
	cblasRowMajor = 101
	cblasNoTrans  = 111
)

// openBLASCandidates are where Debian's libopenblas0-pthread installs the
// library, most specific first.
var openBLASCandidates = []string{
	"/usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so.0",
	"/usr/lib/aarch64-linux-gnu/openblas-pthread/libopenblas.so.0",
	"libopenblas.so.0",
}

func loadOpenBLAS(path string) (*openBLAS, string, error) {
	candidates := openBLASCandidates
	if path != "" {
		candidates = []string{path}
	}
	var lastErr error
	for _, p := range candidates {
		if p[0] == '/' {
			if _, err := os.Stat(p); err != nil {
				lastErr = err
				continue
			}
		}
		lib, err := purego.Dlopen(p, purego.RTLD_NOW|purego.RTLD_GLOBAL)
		if err != nil {
			lastErr = err
			continue
		}
		ob := &openBLAS{}
		purego.RegisterLibFunc(&ob.sgemm, lib, "cblas_sgemm")
		purego.RegisterLibFunc(&ob.corename, lib, "openblas_get_corename")
		purego.RegisterLibFunc(&ob.config, lib, "openblas_get_config")
		return ob, p, nil
	}
	return nil, "", fmt.Errorf("openblas: no library loaded from %v (install libopenblas0-pthread): %v", candidates, lastErr)
}

// multiply computes C = A·B for row-major A (m×k), B (k×n), C (m×n).
func (ob *openBLAS) multiply(m, n, k int, a, b, c []float32) {
	ob.sgemm(cblasRowMajor, cblasNoTrans, cblasNoTrans, int32(m), int32(n), int32(k), 1,
		unsafe.Pointer(&a[0]), int32(k), unsafe.Pointer(&b[0]), int32(n), 0, unsafe.Pointer(&c[0]), int32(n))
}
