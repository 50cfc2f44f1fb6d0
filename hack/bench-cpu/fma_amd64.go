//go:build amd64

package main

import "golang.org/x/sys/cpu"

func fmaLoopAVX512(iterations int)
func fmaLoopAVX2(iterations int)

// fmaLoop returns the widest FMA loop this CPU runs, the flops one
// iteration performs, and the instruction set's name.
func fmaLoop() (loop func(int), flopsPerIteration float64, name string) {
	switch {
	case cpu.X86.HasAVX512F:
		return fmaLoopAVX512, 16 * 16 * 2, "avx512"
	case cpu.X86.HasAVX2 && cpu.X86.HasFMA:
		return fmaLoopAVX2, 12 * 8 * 2, "avx2"
	}
	return nil, 0, "none"
}

// autoCoretypes are the OpenBLAS kernels worth forcing on this CPU: its
// AVX-512 and AVX2 kernels, which OpenBLAS's own detection misses on CPUs
// released after the library.
func autoCoretypes() []string {
	var names []string
	if cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW && cpu.X86.HasAVX512VL {
		names = append(names, "SkylakeX")
		if cpu.X86.HasAVX512BF16 {
			names = append(names, "Cooperlake")
		}
	}
	if cpu.X86.HasAVX2 && cpu.X86.HasFMA {
		names = append(names, "Haswell")
	}
	return names
}
