// Package sampler holds Stable Diffusion's noise schedule and the samplers that turn the UNet's
// noise predictions into a denoised latent: DDIM (eta = 0, "leading" spacing), Euler ancestral
// and DPM-Solver++(2M) with Karras sigmas.
//
// The package is pure arithmetic on flat float32 latents and knows nothing of the model or of
// the compute backend: the pipeline asks a Sampler for the model time and input scale of each
// step, runs the UNet (with classifier-free guidance) to get a noise prediction, and hands it
// back to Step. Internal arithmetic is float64.
package sampler
