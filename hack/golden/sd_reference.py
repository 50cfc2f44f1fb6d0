#!/usr/bin/python3
"""Independent reference for the Go Stable Diffusion pipeline (inference/pipeline).

It reads a diffusers-layout model folder (safetensors parsed with numpy, configs from the
config.json files) and runs SD 1.x text-to-image in PyTorch, written from the published
architecture (CLIP text transformer, UNet2DConditionModel, AutoencoderKL decoder) and the DDIM
scheduler, without any of the Go code. It writes a JSON file of golden values that
inference/pipeline/golden_test.go compares against within 1e-3.

Run by hand with Debian's python3-numpy and python3-torch, from the repository root:

    go run ./cmd/sdgen testmodel --size tiny --layout diffusers --seed 7 --out /tmp/sd-tiny
    /usr/bin/python3 hack/golden/sd_reference.py /tmp/sd-tiny \
        > inference/pipeline/testdata/golden_tiny.json

The request is fixed below (REQUEST); the initial latents come from torch.randn on a CPU
generator seeded with the request's seed, which the Go side reproduces with --rng torch.
"""
import base64
import hashlib
import json
import math
import os
import platform
import re
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

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

# ---------------------------------------------------------------- safetensors, read with numpy

DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": None}


def load_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        raw = data[base + start:base + end]
        if info["dtype"] == "BF16":
            u = np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16
            arr = u.view(np.float32)
        else:
            arr = np.frombuffer(raw, dtype=DTYPES[info["dtype"]]).astype(np.float32)
        out[name] = torch.from_numpy(arr.reshape(info["shape"]).copy())
    return out


def weights_file(folder, base):
    for name in (base + ".safetensors", base + ".fp16.safetensors"):
        p = os.path.join(folder, name)
        if os.path.exists(p):
            return p
    raise SystemExit("no weights in " + folder)


# ---------------------------------------------------------------- CLIP byte-level BPE tokenizer


def byte_symbols():
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars = keep[:]
    extra = 0
    for b in range(256):
        if b not in keep:
            keep.append(b)
            chars.append(256 + extra)
            extra += 1
    return {b: chr(c) for b, c in zip(keep, chars)}


class Tokenizer:
    def __init__(self, folder):
        with open(os.path.join(folder, "vocab.json"), encoding="utf-8") as f:
            self.vocab = json.load(f)
        with open(os.path.join(folder, "merges.txt"), encoding="utf-8") as f:
            lines = [l.rstrip("\n") for l in f]
        if lines and lines[0].startswith("#version"):
            lines = lines[1:]
        self.ranks = {tuple(l.split(" ")): i for i, l in enumerate(lines) if l}
        self.bytes = byte_symbols()
        self.pattern = re.compile(r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[a-zA-Z]+|[0-9]|[^\sa-zA-Z0-9]+")

    def bpe(self, word):
        parts = list(word[:-1]) + [word[-1] + "</w>"]
        while len(parts) > 1:
            pairs = [(self.ranks.get((a, b), math.inf), i) for i, (a, b) in enumerate(zip(parts, parts[1:]))]
            rank, _ = min(pairs)
            if rank == math.inf:
                break
            a, b = next((parts[i], parts[i + 1]) for r, i in pairs if r == rank)
            merged, i = [], 0
            while i < len(parts):
                if i < len(parts) - 1 and parts[i] == a and parts[i + 1] == b:
                    merged.append(a + b)
                    i += 2
                else:
                    merged.append(parts[i])
                    i += 1
            parts = merged
        return parts

    def encode(self, text):
        text = " ".join(text.split()).lower()
        ids = []
        for w in self.pattern.findall(text):
            sym = "".join(self.bytes[b] for b in w.encode("utf-8"))
            ids += [self.vocab[p] for p in self.bpe(sym)]
        ids = ids[:75]
        start, end = self.vocab["<|startoftext|>"], self.vocab["<|endoftext|>"]
        ids = [start] + ids + [end]
        return ids + [end] * (77 - len(ids))


# ---------------------------------------------------------------- CLIP text encoder


def clip_encode(w, cfg, ids):
    D, H = cfg["hidden_size"], cfg["num_attention_heads"]
    act = {"quick_gelu": lambda x: x * torch.sigmoid(1.702 * x), "gelu": F.gelu}[cfg["hidden_act"]]
    p = "text_model."
    ids = torch.tensor(ids)
    B, T = ids.shape
    x = w[p + "embeddings.token_embedding.weight"][ids] + w[p + "embeddings.position_embedding.weight"][:T]
    mask = torch.full((T, T), float("-inf")).triu(1)
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
    return F.layer_norm(x, (D,), w[p + "final_layer_norm.weight"], w[p + "final_layer_norm.bias"], 1e-5)


# ---------------------------------------------------------------- UNet


def conv(w, name, x, stride=1):
    k = w[name + ".weight"]
    return F.conv2d(x, k, w[name + ".bias"], stride=stride, padding=k.shape[-1] // 2)


def resnet(w, name, x, temb, groups, eps):
    h = F.silu(F.group_norm(x, groups, w[name + ".norm1.weight"], w[name + ".norm1.bias"], eps))
    h = conv(w, name + ".conv1", h)
    if temb is not None:
        h = h + F.linear(F.silu(temb), w[name + ".time_emb_proj.weight"], w[name + ".time_emb_proj.bias"])[:, :, None, None]
    h = F.silu(F.group_norm(h, groups, w[name + ".norm2.weight"], w[name + ".norm2.bias"], eps))
    h = conv(w, name + ".conv2", h)
    if name + ".conv_shortcut.weight" in w:
        x = conv(w, name + ".conv_shortcut", x)
    return x + h


def attention(q, k, v, heads):
    B, Tq, C = q.shape
    Tk = k.shape[1]
    split = lambda t, T: t.view(B, T, heads, C // heads).transpose(1, 2)
    q, k, v = split(q, Tq), split(k, Tk), split(v, Tk)
    s = q @ k.transpose(-1, -2) / math.sqrt(C // heads)
    return (s.softmax(-1) @ v).transpose(1, 2).reshape(B, Tq, C)


def spatial_transformer(w, name, x, ctx, heads, groups):
    B, C, H, W = x.shape
    res = x
    h = F.group_norm(x, groups, w[name + ".norm.weight"], w[name + ".norm.bias"], 1e-6)
    pw = w[name + ".proj_in.weight"]
    if pw.dim() == 4:
        h = conv(w, name + ".proj_in", h).permute(0, 2, 3, 1).reshape(B, H * W, C)
    else:
        h = F.linear(h.permute(0, 2, 3, 1).reshape(B, H * W, C), pw, w[name + ".proj_in.bias"])
    i = 0
    while name + ".transformer_blocks.%d.norm1.weight" % i in w:
        b = name + ".transformer_blocks.%d." % i
        ln = lambda n, t: F.layer_norm(t, (C,), w[b + n + ".weight"], w[b + n + ".bias"], 1e-5)
        lin = lambda n, t, bias=True: F.linear(t, w[b + n + ".weight"], w[b + n + ".bias"] if bias else None)
        n1 = ln("norm1", h)
        h = h + lin("attn1.to_out.0", attention(lin("attn1.to_q", n1, False), lin("attn1.to_k", n1, False), lin("attn1.to_v", n1, False), heads))
        n2 = ln("norm2", h)
        h = h + lin("attn2.to_out.0", attention(lin("attn2.to_q", n2, False), lin("attn2.to_k", ctx, False), lin("attn2.to_v", ctx, False), heads))
        n3 = ln("norm3", h)
        value, gate = lin("ff.net.0.proj", n3).chunk(2, dim=-1)
        h = h + lin("ff.net.2", value * F.gelu(gate))
        i += 1
    pw = w[name + ".proj_out.weight"]
    if pw.dim() == 4:
        h = conv(w, name + ".proj_out", h.reshape(B, H, W, C).permute(0, 3, 1, 2))
    else:
        h = F.linear(h, pw, w[name + ".proj_out.bias"]).reshape(B, H, W, C).permute(0, 3, 1, 2)
    return h + res


def timestep_embedding(t, dim):
    half = dim // 2
    exponent = -math.log(10000) * torch.arange(half, dtype=torch.float32) / half
    emb = torch.tensor([float(t)], dtype=torch.float32)[:, None] * torch.exp(exponent)[None, :]
    return torch.cat([torch.cos(emb), torch.sin(emb)], dim=-1)  # flip_sin_to_cos


def unet_forward(w, cfg, x, t, ctx):
    chs, L, groups = cfg["block_out_channels"], cfg["layers_per_block"], cfg["norm_num_groups"]
    heads_cfg = cfg["attention_head_dim"]
    heads = heads_cfg if isinstance(heads_cfg, list) else [heads_cfg] * len(chs)
    attn = [t_ == "CrossAttnDownBlock2D" for t_ in cfg["down_block_types"]]
    eps = cfg["norm_eps"]
    temb = timestep_embedding(t, chs[0]).repeat(x.shape[0], 1)
    temb = F.linear(F.silu(F.linear(temb, w["time_embedding.linear_1.weight"], w["time_embedding.linear_1.bias"])),
                    w["time_embedding.linear_2.weight"], w["time_embedding.linear_2.bias"])
    h = conv(w, "conv_in", x)
    skips = [h]
    for i in range(len(chs)):
        for j in range(L):
            h = resnet(w, "down_blocks.%d.resnets.%d" % (i, j), h, temb, groups, eps)
            if attn[i]:
                h = spatial_transformer(w, "down_blocks.%d.attentions.%d" % (i, j), h, ctx, heads[i], groups)
            skips.append(h)
        if i < len(chs) - 1:
            h = conv(w, "down_blocks.%d.downsamplers.0.conv" % i, h, stride=2)
            skips.append(h)
    h = resnet(w, "mid_block.resnets.0", h, temb, groups, eps)
    h = spatial_transformer(w, "mid_block.attentions.0", h, ctx, heads[-1], groups)
    h = resnet(w, "mid_block.resnets.1", h, temb, groups, eps)
    for i in range(len(chs)):
        rev = len(chs) - 1 - i
        for j in range(L + 1):
            h = torch.cat([h, skips.pop()], dim=1)
            h = resnet(w, "up_blocks.%d.resnets.%d" % (i, j), h, temb, groups, eps)
            if attn[rev]:
                h = spatial_transformer(w, "up_blocks.%d.attentions.%d" % (i, j), h, ctx, heads[rev], groups)
        if i < len(chs) - 1:
            h = F.interpolate(h, size=skips[-1].shape[-2:], mode="nearest")
            h = conv(w, "up_blocks.%d.upsamplers.0.conv" % i, h)
    h = F.silu(F.group_norm(h, groups, w["conv_norm_out.weight"], w["conv_norm_out.bias"], eps))
    return conv(w, "conv_out", h)


# ---------------------------------------------------------------- VAE decoder


def vae_decode(w, cfg, z):
    groups, eps = cfg["norm_num_groups"], 1e-6
    chs, L = cfg["block_out_channels"], cfg["layers_per_block"]
    z = z / cfg["scaling_factor"]
    pq = w["post_quant_conv.weight"]
    z = F.conv2d(z, pq.reshape(pq.shape[0], pq.shape[1], 1, 1), w["post_quant_conv.bias"])
    h = conv(w, "decoder.conv_in", z)
    h = resnet(w, "decoder.mid_block.resnets.0", h, None, groups, eps)
    a = "decoder.mid_block.attentions.0."
    B, C, H, W = h.shape
    n = F.group_norm(h, groups, w[a + "group_norm.weight"], w[a + "group_norm.bias"], eps).reshape(B, C, H * W).transpose(1, 2)
    lin = lambda name, t: F.linear(t, w[a + name + ".weight"].reshape(C, C), w[a + name + ".bias"])
    o = attention(lin("to_q", n), lin("to_k", n), lin("to_v", n), 1)
    h = h + lin("to_out.0", o).transpose(1, 2).reshape(B, C, H, W)
    h = resnet(w, "decoder.mid_block.resnets.1", h, None, groups, eps)
    for i in range(len(chs)):
        for j in range(L + 1):
            h = resnet(w, "decoder.up_blocks.%d.resnets.%d" % (i, j), h, None, groups, eps)
        if i < len(chs) - 1:
            h = F.interpolate(h, scale_factor=2.0, mode="nearest")
            h = conv(w, "decoder.up_blocks.%d.upsamplers.0.conv" % i, h)
    h = F.silu(F.group_norm(h, groups, w["decoder.conv_norm_out.weight"], w["decoder.conv_norm_out.bias"], eps))
    h = conv(w, "decoder.conv_out", h)
    return (h / 2 + 0.5).clamp(0, 1)


# ---------------------------------------------------------------- DDIM (eta 0, leading spacing, steps offset 1)


def alphas_cumprod():
    betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64) ** 2
    return torch.cumprod(1 - betas, dim=0)


def ddim_timesteps(steps):
    ratio = 1000 // steps
    return [i * ratio + 1 for i in reversed(range(steps))], ratio


def ddim_step(ac, x, eps, t, ratio):
    prev = t - ratio
    a_t = ac[t]
    a_prev = ac[prev] if prev >= 0 else ac[0]
    x0 = (x.double() - (1 - a_t).sqrt() * eps.double()) / a_t.sqrt()
    return (a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps.double()).float()


# ---------------------------------------------------------------- run


def sample(t, n):
    """Every k-th value of a flattened tensor, about n of them."""
    flat = t.detach().reshape(-1).double()
    step = max(1, flat.numel() // n)
    return {"stride": step, "values": [round(float(v), 7) for v in flat[::step][:n]]}


def main():
    folder = sys.argv[1]
    cfg = lambda c: json.load(open(os.path.join(folder, c, "config.json")))
    tcfg, ucfg, vcfg = cfg("text_encoder"), cfg("unet"), cfg("vae")
    tw = load_safetensors(weights_file(os.path.join(folder, "text_encoder"), "model"))
    uw = load_safetensors(weights_file(os.path.join(folder, "unet"), "diffusion_pytorch_model"))
    vw = load_safetensors(weights_file(os.path.join(folder, "vae"), "diffusion_pytorch_model"))
    tok = Tokenizer(os.path.join(folder, "tokenizer"))
    r = REQUEST
    torch.set_grad_enabled(False)

    ids = [tok.encode(r["negativePrompt"]), tok.encode(r["prompt"])]
    emb = clip_encode(tw, tcfg, ids)

    scale = 2 ** (len(vcfg["block_out_channels"]) - 1)
    shape = (1, ucfg["in_channels"], r["height"] // scale, r["width"] // scale)
    gen = torch.Generator().manual_seed(r["seed"])
    latents = torch.randn(shape, generator=gen, dtype=torch.float32)
    initial = sample(latents, 64)

    ac = alphas_cumprod()
    timesteps, ratio = ddim_timesteps(r["steps"])
    steps_out = []
    for i, t in enumerate(timesteps):
        pred = unet_forward(uw, ucfg, torch.cat([latents, latents]), t, emb)
        uncond, cond = pred.chunk(2)
        eps = uncond + r["guidance"] * (cond - uncond)
        latents = ddim_step(ac, latents, eps, t, ratio)
        steps_out.append({"timestep": t, "unetOutput": sample(pred, 128), "guidedEps": sample(eps, 96), "latents": sample(latents, 192)})

    image = vae_decode(vw, vcfg, latents)
    pixels = (image[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    json.dump({
        "comment": "written by hack/golden/sd_reference.py; see its docstring for the command",
        "python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
        "model": {"generator": "sdgen testmodel", "size": "tiny", "layout": "diffusers", "seed": 7},
        "request": r,
        "tokenIds": [s[:s.index(tok.vocab["<|endoftext|>"]) + 1] for s in ids],
        "embeddings": sample(emb, 256),
        "initialLatents": initial,
        "steps": steps_out,
        "image": sample(image.permute(0, 2, 3, 1), 256),
        "imagePixelsSHA256": hashlib.sha256(pixels.tobytes()).hexdigest(),
        # The 8-bit RGB pixels themselves (row-major, base64), so that a
        # pipeline whose floats differ in the last bits can show that only
        # values on a rounding boundary land one level apart.
        "imagePixels": base64.b64encode(pixels.tobytes()).decode("ascii"),
    }, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
