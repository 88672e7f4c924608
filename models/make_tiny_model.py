#!/usr/bin/env python3
"""Make the tiny, deterministic contract-obeying models used by unit tests
(committed in models/tiny/):

  tiny.pt       NHWC [N,32,32,3] RGB in [0,1] (scale 1/255, mean 0, std 1)
                features: conv3x3(3->8)+ReLU, maxpool2, conv3x3/2(8->16)+ReLU -> A [N,16,8,8]
                head: global average pool + Linear(16,3) -> logits for alpha, beta, gamma
                manifest: multiclass + derived binary "not-beta" (negative ["beta"])
  tiny_gray.pt  NCHW [N,1,32,32] "L", (x/255 - 0.5) / 0.25
                same body with 1 input channel, head = GAP + Linear(16,1):
                task binary with ONE logit (sigmoid), labels ["negative","positive"]

Weights come from torch.manual_seed(0) (then scaled so the logits are not all ~0),
so running the script twice gives identical files and probabilities.

    python models/make_tiny_model.py [--out models/tiny] [--check]
"""
import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

# TorchScript writes each module's __constants__ (a set) in iteration order, which
# depends on string hashing: pin the hash seed so the saved files are byte-identical.
if os.environ.get("PYTHONHASHSEED") != "0":
    os.environ["PYTHONHASHSEED"] = "0"
    os.execv(sys.executable, [sys.executable] + sys.argv)

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent


class TinyNet(nn.Module):
    def __init__(self, in_ch: int, num_out: int, nhwc: bool):
        super().__init__()
        self.nhwc = nhwc
        self.conv1 = nn.Conv2d(in_ch, 8, kernel_size=3, padding=1)
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(8, 16, kernel_size=3, stride=2, padding=1)
        self.fc = nn.Linear(16, num_out)

    @torch.jit.export
    def features(self, x: torch.Tensor) -> torch.Tensor:
        if self.nhwc:
            x = x.permute(0, 3, 1, 2).contiguous()
        x = self.pool1(F.relu(self.conv1(x)))
        return F.relu(self.conv2(x))

    @torch.jit.export
    def head(self, a: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.mean(a, dim=(2, 3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def build(in_ch, num_out, nhwc):
    m = TinyNet(in_ch, num_out, nhwc)
    with torch.no_grad():
        # default init gives near-uniform outputs; spread them so tests see real decisions
        m.fc.weight.mul_(40.0)
    return m.eval()


MANIFEST = {
    "version": 1,
    "models": [
        {
            "id": "tiny",
            "file": "tiny.pt",
            "task": "multiclass",
            "title": "Tiny test model",
            "labels": ["alpha", "beta", "gamma"],
            "labelTitles": {"alpha": "Alpha finding"},   # partial on purpose: beta and gamma show as labels
            "input": {"width": 32, "height": 32, "layout": "NHWC", "color": "RGB", "resize": "bicubic",
                      "scale": 0.00392156862745098, "mean": [0, 0, 0], "std": [1, 1, 1]},
            "derived": [
                {"id": "not-beta", "title": "Not beta", "task": "binary",
                 "labels": ["beta", "not_beta"], "labelTitles": {"not_beta": "Anything but beta"}, "negative": ["beta"]}
            ],
        },
        {
            "id": "tiny-gray",
            "file": "tiny_gray.pt",
            "task": "binary",
            "title": "Tiny grey binary test model",
            "labels": ["negative", "positive"],
            "input": {"width": 32, "height": 32, "layout": "NCHW", "color": "L", "resize": "bicubic",
                      "scale": 0.00392156862745098, "mean": [0.5], "std": [0.25]},
            "derived": [],
        },
    ],
}


def save(m, path: Path, entry: dict):
    scripted = torch.jit.script(m)
    meta = {"labels": entry["labels"], "input": entry["input"]}
    torch.jit.save(scripted, str(path), _extra_files={"mediscope.json": json.dumps(meta, sort_keys=True)})
    loaded = torch.jit.load(str(path)).eval()
    spec = entry["input"]
    c = 1 if spec["color"] == "L" else 3
    shape = (2, 32, 32, c) if spec["layout"] == "NHWC" else (2, c, 32, 32)
    x = torch.rand(shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        a = loaded.features(x)
        y = loaded(x)
        d = float((loaded.head(a) - y).abs().max())
        d_eager = float((m(x) - y).abs().max())
    assert tuple(a.shape) == (2, 16, 8, 8), a.shape
    assert d == 0.0 and d_eager <= 1e-6, (d, d_eager)
    probs = torch.softmax(y, 1) if y.shape[1] > 1 else torch.sigmoid(y)
    return a, probs


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=HERE / "tiny")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    torch.manual_seed(0)
    rgb = build(3, 3, nhwc=True)
    gray = build(1, 1, nhwc=False)
    for m, entry in ((rgb, MANIFEST["models"][0]), (gray, MANIFEST["models"][1])):
        path = args.out / entry["file"]
        a, probs = save(m, path, entry)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        print(f"wrote {path} ({path.stat().st_size} bytes, sha256 {digest}...), A {tuple(a.shape)}, "
              f"A>0 {float((a > 0).float().mean()):.2f}, probs(rand) {probs.numpy().round(4).tolist()}")
    (args.out / "manifest.json").write_text(json.dumps(MANIFEST, indent=2) + "\n")
    print(f"wrote {args.out / 'manifest.json'}")


if __name__ == "__main__":
    main()
