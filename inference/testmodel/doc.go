// Package testmodel generates Stable Diffusion 1.5- and SDXL base
// 1.0-topology checkpoints with deterministic random weights, for tests and
// benchmarks that cannot use real weights (Options.Family; SD 1.5 by
// default). An SDXL model has both text encoders and both tokenizers (the
// second pads with "!"); its tiny size keeps every structural feature of
// SDXL (a UNet level without attention, levels and a middle block with
// more than one transformer block, 64-wide heads, the text_time
// embedding), its full size is the released shapes, about 6.9 GB in fp16.
//
// A generated model has every tensor name of the released SD 1.5
// checkpoints, in either layout: a diffusers folder (model_index.json,
// unet/, vae/, text_encoder/ with config.json files, tokenizer/, scheduler/)
// or a single LDM-style .safetensors file (with the noise-schedule and EMA
// buffers real files carry) and a tokenizer folder beside it. Both layouts
// of the same seed hold identical canonical tensors.
//
// Two sizes exist: Tiny (UNet channels 32/32/64/64, text width 32, a few
// megabytes, quick enough for a whole pipeline run in a test) and Full (the
// real SD 1.5 shapes in fp16, about 2 GB, for benchmarks; generated on
// demand into a temporary folder and never committed).
//
// Weights are uniform with a variance of about 1/fan-in, norms near 1 and
// biases near 0, so activations keep their scale through every layer and
// stay finite through a whole denoising loop. The tokenizer is a small
// synthetic CLIP-format vocabulary covering a list of common prompt words.
package testmodel
