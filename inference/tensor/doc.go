// Package tensor holds the dense float32 tensors the inference backends
// compute on, and the conversions that turn weights stored as fp16, bf16
// or fp32 bytes into float32 once, at load time.
//
// Activations are laid out NHWC (batch, height, width, channels) so that
// the channel dimension, which every matrix multiply and convolution
// reduces over, is contiguous in memory. Sequences use [batch, tokens,
// features], which is the same layout with H*W folded into tokens.
package tensor
