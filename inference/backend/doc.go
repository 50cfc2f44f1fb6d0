// Package backend defines the compute interface the Stable Diffusion
// pipeline (text encoder, UNet, VAE) is written against, so the same model
// code runs on the CPU backend today and on an accelerator backend later.
//
// The interface is deliberately small and sized for SD:
//
//   - Activations are float32 tensors (package tensor) laid out NHWC for
//     images and [batch, tokens, features] for sequences.
//   - Weights arrive as tensor.Raw (fp16, bf16 or fp32 bytes, exactly as a
//     checkpoint stores them) and are converted and packed once by
//     LoadLinear and LoadConv2D; the returned handles are then reused for
//     every call. Norm scales, biases and embedding tables are plain
//     float32, obtained with tensor.Raw.Float32.
//   - Every operation writes into a caller-allocated dst whose shape must
//     already be right; operations return an error naming the argument
//     when shapes disagree and never panic on bad input. Element-wise
//     operations (Activate, Axpby, AddChannelBias) accept dst aliasing an
//     input; MatMul, Conv2D, Attention, GEGLU, Upsample2x, Concat and the
//     norms require dst distinct from their inputs.
//   - MatMul and Conv2D take an Epilogue that is fused into the multiply:
//     dst = act(x·W + bias) + residual, which covers a ResNet block's
//     skip connection and a transformer's residual stream.
//
// A typical UNet ResNet block reads:
//
//	b.GroupNorm(h, x, 32, gn1Scale, gn1Shift, 1e-5, backend.SiLU)
//	b.Conv2D(h2, h, conv1, backend.Epilogue{})
//	b.AddChannelBias(h2, h2, tembProj)            // [N, C] time embedding
//	b.GroupNorm(h, h2, 32, gn2Scale, gn2Shift, 1e-5, backend.SiLU)
//	b.Conv2D(out, h, conv2, backend.Epilogue{Residual: x})
//
// and attention over a [1, 4096, 320] sequence with 8 heads:
//
//	b.MatMul(q, hs, toQ, backend.Epilogue{})
//	b.MatMul(k, hs, toK, backend.Epilogue{})
//	b.MatMul(v, hs, toV, backend.Epilogue{})
//	b.Attention(o, q, k, v, backend.AttentionParams{Heads: 8})
//	b.MatMul(hs2, o, toOut, backend.Epilogue{Residual: hs})
package backend
