#!/usr/bin/python3
"""Independent reference for the Go SDXL pipeline (inference/pipeline, family sdxl).

It reads a diffusers-layout SDXL folder (safetensors parsed with numpy, configs from the
config.json files) and runs SDXL base text-to-image in PyTorch, written from the published
architecture and not from the Go code:

- text: CLIP ViT-L (text_encoder) and OpenCLIP bigG (text_encoder_2), each read at its
  penultimate hidden state (hidden_states[-2], no final layer norm), concatenated along the
  features; the pooled embedding is text_encoder_2's last hidden state through its final layer
  norm, at the position of the highest token id (the end token), through text_projection;
  tokenizer_2 pads with the pad token of its special_tokens_map.json;
- UNet: UNet2DConditionModel with addition_embed_type "text_time": the six time ids (original
  size, crop top-left, target size) through addition_time_embed_dim-wide sinusoidal features,
  after the pooled embedding, through add_embedding (linear, SiLU, linear), added to the
  timestep embedding;
- VAE: the AutoencoderKL decoder at the folder's scaling factor, in float32.

The blocks shared with SD 1.x (resnets, spatial transformers, the VAE decoder, DDIM) come
from sd_reference.py beside this file. It writes a JSON file of golden values that
inference/pipeline/sdxl_golden_test.go compares against.

Run by hand with Debian's python3-numpy and python3-torch, from the repository root:

    go run ./cmd/sdgen testmodel --family sdxl --size tiny --layout diffusers --seed 7 --out /tmp/sdxl-tiny
    /usr/bin/python3 hack/golden/sdxl_reference.py /tmp/sdxl-tiny \\
        > inference/pipeline/testdata/golden_sdxl_tiny.json
"""
import base64
import hashlib
import json
import math
import os
import platform
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sd_reference as sd  # noqa: E402

REQUEST = {
    "prompt": "a photo of a red cat in the forest",
    "negativePrompt": "dark",
    "width": 64,
    "height": 48,
    "steps": 2,
    "guidance": 7.5,
    "sampler": "ddim",
    "seed": 42,
    "rng": "torch",
}


class PaddingTokenizer(sd.Tokenizer):
    """The CLIP tokenizer, padding with the token its special_tokens_map.json names."""

    def __init__(self, folder):
        super().__init__(folder)
        self.pad = self.vocab["<|endoftext|>"]
        path = os.path.join(folder, "special_tokens_map.json")
        if os.path.exists(path):
            pad = json.load(open(path)).get("pad_token")
            if isinstance(pad, dict):
                pad = pad.get("content")
            if pad:
                self.pad = self.vocab[pad]

    def encode(self, text):
        ids = super().encode(text)
        n = ids.index(self.vocab["<|endoftext|>"]) + 1
        return ids[:n] + [self.pad] * (77 - n)


def clip_hidden_states(w, cfg, ids):
    """Every hidden state of a CLIPTextModel: the embeddings, then each layer's output."""
    D, H = cfg["hidden_size"], cfg["num_attention_heads"]
    act = {"quick_gelu": lambda x: x * torch.sigmoid(1.702 * x), "gelu": F.gelu}[cfg["hidden_act"]]
    p = "text_model."
    ids = torch.tensor(ids)
    B, T = ids.shape
    x = w[p + "embeddings.token_embedding.weight"][ids] + w[p + "embeddings.position_embedding.weight"][:T]
    mask = torch.full((T, T), float("-inf")).triu(1)
    states = [x]
    for i in range(cfg["num_hidden_layers"]):
        l = p + "encoder.layers.%d." % i
        lin = lambda n, t: F.linear(t, w[l + n + ".weight"], w[l + n + ".bias"])
        h = F.layer_norm(x, (D,), w[l + "layer_norm1.weight"], w[l + "layer_norm1.bias"], 1e-5)
        split = lambda t: t.view(B, T, H, D // H).transpose(1, 2)
        q, k, v = split(lin("self_attn.q_proj", h)), split(lin("self_attn.k_proj", h)), split(lin("self_attn.v_proj", h))
        s = q @ k.transpose(-1, -2) / math.sqrt(D // H) + mask
        a = (s.softmax(-1) @ v).transpose(1, 2).reshape(B, T, D)
        x = x + lin("self_attn.out_proj", a)
        h = F.layer_norm(x, (D,), w[l + "layer_norm2.weight"], w[l + "layer_norm2.bias"], 1e-5)
        x = x + lin("mlp.fc2", act(lin("mlp.fc1", h)))
        states.append(x)
    return states


def encode_prompts(folder, texts):
    cfg = lambda c: json.load(open(os.path.join(folder, c, "config.json")))
    c1, c2 = cfg("text_encoder"), cfg("text_encoder_2")
    w1 = sd.load_safetensors(sd.weights_file(os.path.join(folder, "text_encoder"), "model"))
    w2 = sd.load_safetensors(sd.weights_file(os.path.join(folder, "text_encoder_2"), "model"))
    t1, t2 = PaddingTokenizer(os.path.join(folder, "tokenizer")), PaddingTokenizer(os.path.join(folder, "tokenizer_2"))
    ids1 = [t1.encode(t) for t in texts]
    ids2 = [t2.encode(t) for t in texts]
    e1 = clip_hidden_states(w1, c1, ids1)[-2]
    s2 = clip_hidden_states(w2, c2, ids2)
    e2 = s2[-2]
    D = c2["hidden_size"]
    last = F.layer_norm(s2[-1], (D,), w2["text_model.final_layer_norm.weight"], w2["text_model.final_layer_norm.bias"], 1e-5)
    eos = torch.tensor(ids2).argmax(dim=-1)
    pooled = F.linear(last[torch.arange(len(texts)), eos], w2["text_projection.weight"])
    return ids1, ids2, e1, e2, pooled


def unet_forward_xl(w, cfg, x, t, ctx, pooled, time_ids):
    chs, L, groups = cfg["block_out_channels"], cfg["layers_per_block"], cfg["norm_num_groups"]
    heads_cfg = cfg["attention_head_dim"]
    heads = heads_cfg if isinstance(heads_cfg, list) else [heads_cfg] * len(chs)
    attn = [t_ == "CrossAttnDownBlock2D" for t_ in cfg["down_block_types"]]
    eps = cfg["norm_eps"]
    B = x.shape[0]
    temb = sd.timestep_embedding(t, chs[0]).repeat(B, 1)
    temb = F.linear(F.silu(F.linear(temb, w["time_embedding.linear_1.weight"], w["time_embedding.linear_1.bias"])),
                    w["time_embedding.linear_2.weight"], w["time_embedding.linear_2.bias"])
    assert cfg["addition_embed_type"] == "text_time"
    tw = cfg["addition_time_embed_dim"]
    time_embeds = torch.cat([torch.cat([sd.timestep_embedding(v, tw) for v in row], dim=-1) for row in time_ids])
    add = torch.cat([pooled, time_embeds], dim=-1)
    assert add.shape[1] == cfg["projection_class_embeddings_input_dim"]
    aug = F.linear(F.silu(F.linear(add, w["add_embedding.linear_1.weight"], w["add_embedding.linear_1.bias"])),
                   w["add_embedding.linear_2.weight"], w["add_embedding.linear_2.bias"])
    temb = temb + aug
    h = sd.conv(w, "conv_in", x)
    skips = [h]
    for i in range(len(chs)):
        for j in range(L):
            h = sd.resnet(w, "down_blocks.%d.resnets.%d" % (i, j), h, temb, groups, eps)
            if attn[i]:
                h = sd.spatial_transformer(w, "down_blocks.%d.attentions.%d" % (i, j), h, ctx, heads[i], groups)
            skips.append(h)
        if i < len(chs) - 1:
            h = sd.conv(w, "down_blocks.%d.downsamplers.0.conv" % i, h, stride=2)
            skips.append(h)
    h = sd.resnet(w, "mid_block.resnets.0", h, temb, groups, eps)
    h = sd.spatial_transformer(w, "mid_block.attentions.0", h, ctx, heads[-1], groups)
    h = sd.resnet(w, "mid_block.resnets.1", h, temb, groups, eps)
    for i in range(len(chs)):
        rev = len(chs) - 1 - i
        for j in range(L + 1):
            h = torch.cat([h, skips.pop()], dim=1)
            h = sd.resnet(w, "up_blocks.%d.resnets.%d" % (i, j), h, temb, groups, eps)
            if attn[rev]:
                h = sd.spatial_transformer(w, "up_blocks.%d.attentions.%d" % (i, j), h, ctx, heads[rev], groups)
        if i < len(chs) - 1:
            h = F.interpolate(h, size=skips[-1].shape[-2:], mode="nearest")
            h = sd.conv(w, "up_blocks.%d.upsamplers.0.conv" % i, h)
    h = F.silu(F.group_norm(h, groups, w["conv_norm_out.weight"], w["conv_norm_out.bias"], eps))
    return sd.conv(w, "conv_out", h)


def main():
    folder = sys.argv[1]
    cfg = lambda c: json.load(open(os.path.join(folder, c, "config.json")))
    ucfg, vcfg = cfg("unet"), cfg("vae")
    uw = sd.load_safetensors(sd.weights_file(os.path.join(folder, "unet"), "diffusion_pytorch_model"))
    vw = sd.load_safetensors(sd.weights_file(os.path.join(folder, "vae"), "diffusion_pytorch_model"))
    r = REQUEST
    torch.set_grad_enabled(False)

    ids1, ids2, e1, e2, pooled = encode_prompts(folder, [r["negativePrompt"], r["prompt"]])
    ctx = torch.cat([e1, e2], dim=-1)
    assert ctx.shape[-1] == ucfg["cross_attention_dim"]
    # original size (h, w), crop top-left (0, 0), target size (h, w)
    time_ids = [[r["height"], r["width"], 0, 0, r["height"], r["width"]]] * 2

    scale = 2 ** (len(vcfg["block_out_channels"]) - 1)
    shape = (1, ucfg["in_channels"], r["height"] // scale, r["width"] // scale)
    gen = torch.Generator().manual_seed(r["seed"])
    latents = torch.randn(shape, generator=gen, dtype=torch.float32)
    initial = sd.sample(latents, 64)

    ac = sd.alphas_cumprod()
    timesteps, ratio = sd.ddim_timesteps(r["steps"])
    steps_out = []
    for i, t in enumerate(timesteps):
        pred = unet_forward_xl(uw, ucfg, torch.cat([latents, latents]), t, ctx, pooled, time_ids)
        uncond, cond = pred.chunk(2)
        eps = uncond + r["guidance"] * (cond - uncond)
        latents = sd.ddim_step(ac, latents, eps, t, ratio)
        steps_out.append({"timestep": t, "unetOutput": sd.sample(pred, 128), "guidedEps": sd.sample(eps, 96), "latents": sd.sample(latents, 192)})

    image = sd.vae_decode(vw, vcfg, latents.float())
    pixels = (image[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    end = lambda s, tok: s[:s.index(tok.vocab["<|endoftext|>"]) + 1]
    t1 = PaddingTokenizer(os.path.join(folder, "tokenizer"))
    t2 = PaddingTokenizer(os.path.join(folder, "tokenizer_2"))
    json.dump({
        "comment": "written by hack/golden/sdxl_reference.py; see its docstring for the command",
        "python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
        "model": {"generator": "sdgen testmodel --family sdxl", "size": "tiny", "layout": "diffusers", "seed": 7},
        "request": r,
        "tokenIds": [end(s, t1) for s in ids1],
        "tokenIds2": ids2,
        "pad2": t2.pad,
        "timeIds": time_ids[0],
        "embeddings1": sd.sample(e1, 256),
        "embeddings2": sd.sample(e2, 256),
        "pooled": sd.sample(pooled, 96),
        "initialLatents": initial,
        "steps": steps_out,
        "image": sd.sample(image.permute(0, 2, 3, 1), 256),
        "imagePixelsSHA256": hashlib.sha256(pixels.tobytes()).hexdigest(),
        "imagePixels": base64.b64encode(pixels.tobytes()).decode("ascii"),
    }, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
