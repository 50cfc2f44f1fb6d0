//go:build !amd64

package main

func fmaLoop() (loop func(int), flopsPerIteration float64, name string) {
	return nil, 0, "none"
}

func autoCoretypes() []string { return nil }
