// Package backend defines the compute interface the Stable Diffusion
// pipeline (text encoder, UNet, VAE) is written against, so the same model
// code runs on the CPU backend and on a GPU backend that keeps its tensors
// in device memory.
//
// The interface is deliberately small and sized for SD:
//
//   - Activations are backend-owned Tensors (an opaque handle with a shape
//     and a dtype) laid out NHWC for images and [batch, tokens, features]
//     for sequences. Models allocate them with Alloc (or a Scope, which
//     releases a whole evaluation's working set at once) and never touch
//     their elements: the host copies data in and out only at the edges,
//     with Write and Read (token ids go in through Embedding).
//   - Weights arrive as tensor.Raw (fp16, bf16 or fp32 bytes, exactly as a
//     checkpoint stores them, often memory-mapped) and are loaded once by
//     LoadLinear, LoadConv2D and LoadTensor (norm scales and shifts,
//     embedding tables); each backend decides how to hold them: the CPU
//     packs float32 panels for its GEMM, a GPU uploads fp16 as stored.
//   - Every operation writes into a caller-allocated dst whose shape must
//     already be right; operations return an error naming the argument
//     when shapes disagree and never panic on bad input. Element-wise
//     operations (Activate, Axpby, AddChannelBias) accept dst aliasing an
//     input; MatMul, Conv2D, Attention, GEGLU, ResizeNearest, Concat and
//     the norms require dst distinct from their inputs.
//   - Operations may be recorded and run later: the host waits only in
//     Read and Sync, which also report failures of recorded work.
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
