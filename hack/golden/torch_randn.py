#!/usr/bin/python3
"""Writes inference/noise/testdata/torch_randn.json: what torch.randn returns on PyTorch's CPU
generator for a few seeds and lengths, so that the Go reproduction in inference/noise can be
checked bit for bit without PyTorch.

Run by hand with Debian's PyTorch (apt-get install python3-torch), from the repository root:

    /usr/bin/python3 hack/golden/torch_randn.py

Each case records the float32 bit patterns of the first and last 32 values and the SHA-256 of
all values as little-endian float32 bytes.
"""
import hashlib
import json
import platform
import sys

import torch

CASES = [
    (0, 5), (42, 5), (42, 15), (42, 16), (42, 17), (7, 33), (1234, 100),
    (42, 4 * 64 * 64), (0, 4 * 64 * 64), (2**32 + 5, 4 * 64 * 64), (987654321, 4 * 96 * 96),
]


def bits(values):
    return [format(int.from_bytes(v.numpy().tobytes(), "little"), "08x") for v in values]


def main():
    out = {
        "generator": "torch.randn(n, generator=torch.Generator().manual_seed(seed)), float32",
        "torch": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability()
        if hasattr(torch.backends, "cpu") and hasattr(torch.backends.cpu, "get_cpu_capability") else "unknown",
        "machine": platform.machine(),
        "cases": [],
    }
    for seed, n in CASES:
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(n, generator=g, dtype=torch.float32)
        out["cases"].append({
            "seed": seed,
            "n": n,
            "first": bits(x[:32]),
            "last": bits(x[-32:]),
            "sha256": hashlib.sha256(x.numpy().astype("<f4").tobytes()).hexdigest(),
        })
    json.dump(out, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
