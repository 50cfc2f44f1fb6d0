// Package backendtest checks that a backend.Backend keeps the interface's
// contract: tensors allocated, written, read and reshaped as documented,
// operations ordered as called even when a backend records them, weights
// loaded from every stored dtype, foreign tensors and bad shapes rejected
// with errors. Every backend's tests call Run, so the CPU backend and a
// GPU backend are held to the same rules; each backend's own tests then
// compare its kernels' numbers.
package backendtest
