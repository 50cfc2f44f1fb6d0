// Package vae is the decoder half of Stable Diffusion's autoencoder
// (diffusers' AutoencoderKL), which turns denoised latents into an image.
//
// Decode divides the latents by the scaling factor (0.18215 for SD 1.x and
// 2.x), applies post_quant_conv (1×1) and the decoder: conv_in; a middle
// block of ResNet, single-head self-attention over all positions and
// ResNet; up blocks of ResNets each followed, except the last, by a
// nearest-neighbour 2× upsample and a convolution; then group norm, SiLU
// and conv_out. Every group norm of the autoencoder uses ε 1e-6, as the
// published model does. The output is mapped from [-1, 1] to [0, 1] and
// clamped. Activations are NHWC.
package vae
