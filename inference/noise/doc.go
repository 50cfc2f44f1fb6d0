// Package noise makes the seeded Gaussian noise of Stable Diffusion's initial latents and of
// ancestral samplers, deterministic across runs and machines.
//
// Two generators are offered. "sdfleet" noise (the default) is a splitmix64 stream
// turned into normal samples by the Box-Muller transform in float64; it is fast, simple and
// the same on every platform. "torch" noise reproduces torch.randn on PyTorch's CPU generator
// (mt19937 seeded with torch.manual_seed) so that a seed gives the same starting latents as the
// common Python tools; see torch.go for how exactly.
package noise
