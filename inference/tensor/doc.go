// Package tensor holds dense float32 host tensors, and the conversions
// that turn weights stored as fp16, bf16 or fp32 bytes into float32.
// Host tensors are what the pipeline hands in and out at its edges, and
// what the CPU backend computes on (a *Tensor is its backend.Tensor).
//
// Activations are laid out NHWC (batch, height, width, channels) so that
// the channel dimension, which every matrix multiply and convolution
// reduces over, is contiguous in memory. Sequences use [batch, tokens,
// features], which is the same layout with H*W folded into tokens.
package tensor
