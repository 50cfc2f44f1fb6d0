// Command bench-vulkan prints each Vulkan kernel's throughput (GFLOP/s for
// the multiplies and attention, GB/s for the memory-bound kernels) on one
// Vulkan device, at SD 1.5 shapes scaled down so that Mesa's software
// device (lavapipe) finishes in seconds. It catches kernel regressions; it
// is not a timed test.
//
//	go run ./hack/bench-vulkan [--device N] [--repeat 3] [--f32]
//
// With --beyond-range it instead runs the tail of a 512×512 VAE decode
// with fp32 activations, on tensors of 256 MiB (beyond lavapipe's 128 MiB
// maxStorageBufferRange), and prints the largest difference from the CPU
// backend.
package main
