//go:build !amd64 || sdfleet_purego

package gemm

func archKernels() []*Kernel { return nil }
