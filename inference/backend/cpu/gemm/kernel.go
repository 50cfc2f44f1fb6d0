package gemm

import (
	"fmt"
	"strings"
)

// kernelFunc computes an MR×NR tile: c = a·b (accumulate == 0) or
// c += a·b, where a is an MR-row panel and b an NR-column panel, both
// k deep, and c has a row stride of ldc elements.
type kernelFunc func(k int, a, b, c *float32, ldc int, accumulate int)

// kernelBF16Func is a kernelFunc over bf16 pairs: k counts pairs of the
// reduction, a and b are panels of FormatBF16Pairs, c is float32.
type kernelBF16Func func(k int, a, b *uint16, c *float32, ldc int, accumulate int)

// Kernel is one micro-kernel implementation and the panel sizes its packed
// operands use. Weights packed for one Kernel can only be multiplied by it.
type Kernel struct {
	// Name is "avx512", "avx2" or "purego".
	Name string
	// MR and NR are the tile's rows and columns.
	MR, NR int
	run    kernelFunc
	vec    vectorOps
	// runBF16 is the bf16 dot-product micro-kernel with the same tile, or
	// nil where the CPU lacks one; FormatBF16Pairs weights then multiply
	// by widening to float32 (see Engine.Multiply), with the same
	// rounding of A and B and so nearly the same results, only slower.
	runBF16 kernelBF16Func
}

// NativeBF16 reports whether the kernel multiplies bf16 in hardware.
func (k *Kernel) NativeBF16() bool { return k.runBF16 != nil }

func (k *Kernel) String() string { return k.Name }

var pureGoKernel = &Kernel{Name: "purego", MR: 4, NR: 16, run: kernelPureGo}

// Kernels lists the micro-kernels this machine and build can run, fastest
// first.
func Kernels() []*Kernel {
	return append(archKernels(), pureGoKernel)
}

// Best returns the fastest micro-kernel available.
func Best() *Kernel { return Kernels()[0] }

// Lookup returns the available kernel with the given name; "" or "auto"
// means Best.
func Lookup(name string) (*Kernel, error) {
	if name == "" || name == "auto" {
		return Best(), nil
	}
	var names []string
	for _, k := range Kernels() {
		if k.Name == name {
			return k, nil
		}
		names = append(names, k.Name)
	}
	return nil, fmt.Errorf("kernel %q: not available on this machine/build, expected one of %s", name, strings.Join(names, ", "))
}

// kernelPureGo is the portable 4×16 micro-kernel.
func kernelPureGo(k int, a, b, c *float32, ldc int, accumulate int) {
	const mr, nr = 4, 16
	ap := unsafeSlice(a, k*mr)
	bp := unsafeSlice(b, k*nr)
	var acc [mr][nr]float32
	for p := 0; p < k; p++ {
		brow := bp[p*nr : p*nr+nr : p*nr+nr]
		arow := ap[p*mr : p*mr+mr : p*mr+mr]
		for r := 0; r < mr; r++ {
			av := arow[r]
			row := &acc[r]
			for j := 0; j < nr; j++ {
				row[j] += av * brow[j]
			}
		}
	}
	cp := unsafeSlice(c, (mr-1)*ldc+nr)
	for r := 0; r < mr; r++ {
		dst := cp[r*ldc : r*ldc+nr]
		if accumulate != 0 {
			for j := range dst {
				dst[j] += acc[r][j]
			}
		} else {
			copy(dst, acc[r][:])
		}
	}
}
