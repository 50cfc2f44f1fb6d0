// Package models holds what the Stable Diffusion networks (subpackages
// clip, unet and vae) share: a Loader that turns canonical (diffusers-named)
// checkpoint tensors into backend weights, collecting the first error with
// the file and tensor it concerns, and the NCHW/NHWC conversions of the
// host latents at the pipeline's edges.
//
// Every network is built from a Source, normally FromCheckpoint, so the
// same code runs on weights from a diffusers folder or a single-file
// checkpoint; each weight is declared once, by name and shape, and loaded
// through the backend in its stored dtype (the backend converts, packs or
// uploads it), and the mapped file bytes are not referenced after loading.
// A network's Release unloads its weights from the backend.
package models
