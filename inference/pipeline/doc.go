// Package pipeline runs Stable Diffusion text-to-image generation: it opens
// a checkpoint, encodes the prompt and the negative prompt with the text
// encoder (SDXL's two, with its pooled embedding and size conditioning), denoises seeded latents with the UNet under classifier-free
// guidance and a sampler, decodes them with the VAE and writes a PNG that
// carries its generation parameters.
//
// Latents are kept in PyTorch's [1, C, h, w] order between steps, so that
// the noise streams of package noise (including the torch-compatible one)
// land on the same latent elements as in the common Python tools; they are
// transposed to the backend's NHWC layout and written to a backend tensor
// for each UNet evaluation, whose prediction is read back. Everything in
// between (the text embeddings, every activation, the weights) stays on
// the backend.
//
// Models are loaded when first needed. Unless Options.KeepModels is set,
// the text encoder is released before denoising and the UNet before
// decoding (their weights unloaded from the backend), so that the peak
// memory is the UNet plus the activations.
//
// Failures are typed so a caller can map them to exit codes: *InputError
// for an invalid request, *ModelError for a missing, corrupt or unsupported
// checkpoint (naming the file and tensor), *NonFiniteError when the
// latents become NaN or infinite (with the step); an allocation the
// backend cannot satisfy surfaces as *backend.OutOfMemoryError, also
// inside a *ModelError when a weight does not fit.
package pipeline
