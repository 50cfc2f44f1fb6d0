// Package models holds what the Stable Diffusion networks (subpackages
// clip, unet and vae) share: a Loader that turns canonical (diffusers-named)
// checkpoint tensors into backend weights, collecting the first error with
// the file and tensor it concerns, and small layout helpers the backend
// interface leaves to the caller.
//
// Every network is built from a Source, normally FromCheckpoint, so the
// same code runs on weights from a diffusers folder or a single-file
// checkpoint; weights are converted and packed once by the backend, and the
// mapped file bytes are not referenced after loading.
package models
