// Package ref holds naive float64 implementations of every backend
// operation. They favour obviousness over speed and exist only as the
// oracle the real backends are tested against; nothing in production code
// may import this package.
//
// Weights use PyTorch's layouts ([out, in] for linear layers,
// [out, in, k, k] for convolutions) so the oracle is independent of how
// any backend packs them.
package ref
