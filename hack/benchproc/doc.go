// Package benchproc holds what the benchmarks under hack/ need to run an sdfleet binary as its
// own process against envtest and measure it: a kubeconfig for it, a free loopback address, a
// wait for its health endpoint, its CPU time and memory from /proc, and the manager itself
// (built, started, ready, and its API writes from its metrics).
package benchproc
