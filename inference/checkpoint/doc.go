// Package checkpoint opens Stable Diffusion checkpoints in the layouts
// people have them in and presents them under one naming.
//
// Open accepts a diffusers folder (model_index.json with unet/, vae/,
// text_encoder/ and tokenizer/, weights in diffusion_pytorch_model.safetensors
// or model.safetensors, or their .fp16 variants) or a single original-LDM
// .safetensors file. It detects the family (SD 1.x, SD 2.x, SDXL) from which
// text encoders are present and the cross-attention width, infers the
// architecture from tensor shapes (UNetConfig, VAEConfig, TextEncoderConfig;
// a diffusers config.json fills in what shapes cannot show, such as head
// counts and the VAE scaling factor, and is cross-checked against the
// shapes), and maps every tensor to its diffusers name. Every tensor the
// architecture needs is checked; all missing, unexpected and mis-shaped
// tensors are reported together in a *ValidationError, each by canonical
// name, stored name and file.
//
// The single-file mapping handles the layouts' known differences:
// input_blocks/middle_block/output_blocks numbering versus down_blocks/
// mid_block/up_blocks; the VAE decoder's up.N counted from the other end
// (LDM up.3 is diffusers up_blocks.0); nin_shortcut versus conv_shortcut;
// the VAE mid-block attention stored as 1x1 convolutions (q, k, v,
// proj_out) versus linear layers (to_q, to_k, to_v, to_out.0), and the
// older diffusers names query/key/value/proj_attn; OpenCLIP text towers
// (SD 2.x, SDXL's second encoder) with a fused in_proj split into q/k/v and
// a text_projection stored transposed.
//
// Usage:
//
//	m, err := checkpoint.Open(path, checkpoint.Options{})
//	if err != nil { ... } // *ValidationError lists every problem
//	defer m.Close()
//	_ = m.Family            // checkpoint.SD1, SD2 or SDXL
//	_ = m.UNet.BlockOutChannels
//	t, err := m.Tensor(checkpoint.UNet, "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight")
//	raw := t.Bytes()        // t.DType, t.Shape describe it; zero-copy from the mapping
//	f32, err := t.Float32() // converted copy
//	dir, err := m.TokenizerDir(checkpoint.TextEncoder)
//
// Tensors keep their stored dtype (F32, F16 or BF16). Bytes is zero-copy
// except for transposed matrices; the mapping lives until Model.Close.
// ExpectedTensors lists, for an architecture and layout, the tensors a
// checkpoint stores; the test-model generator writes exactly that list.
package checkpoint
