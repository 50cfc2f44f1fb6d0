// Package clip is the CLIP text transformer that turns token ids into the
// per-token embeddings Stable Diffusion's UNet attends to.
//
// The architecture is Hugging Face's CLIPTextModel, configured by
// checkpoint.TextEncoderConfig: token plus learned position embeddings,
// pre-norm transformer layers with causal self-attention and a two-layer
// MLP (quick-GELU for OpenAI CLIP as in SD 1.x, exact GELU for OpenCLIP as
// in SD 2.x and SDXL), and a final layer norm. The output is the last
// hidden state after that norm, [batch, 77, width], as SD 1.x uses it;
// Options.SkipLastLayers reads an earlier layer instead (the "clip skip"
// other tools offer).
package clip
