// Package unet is Stable Diffusion's denoiser, diffusers'
// UNet2DConditionModel, built from canonical weights and a
// checkpoint.UNetConfig.
//
// The network: a sinusoidal timestep embedding (cos first, as
// flip_sin_to_cos sets it, no frequency shift) through two linear layers;
// conv_in; down blocks of ResNet blocks (group norm ε 1e-5 and SiLU, the
// projected time embedding added between the two convolutions) each
// followed, where the config says, by a spatial transformer (group norm ε
// 1e-6, a 1×1 or linear projection, transformer blocks of self-attention,
// cross-attention on the text embeddings and a GEGLU feed-forward, each
// pre-normed by a layer norm and added to the residual stream) and a
// stride-2 convolution; a middle block ResNet–transformer–ResNet; up
// blocks that concatenate the matching skip connection before each ResNet
// and end in a nearest-neighbour 2× upsample and a convolution; and a final
// group norm, SiLU and conv_out.
//
// Activations are NHWC backend tensors; Forward releases each as soon as
// its last reader has been called (the skip connections when their up
// block has consumed them). SD 2.x (linear projections, per-block head counts)
// is expressed by the config; SDXL's added size conditioning is not
// implemented and is rejected when the config asks for it.
package unet
