#!/usr/bin/env python3
"""Wrap a torchvision ResNet18/34/50 checkpoint (.pth state_dict, N classes) into
the Mediscope model contract (DESIGN.md section 3) and save it as TorchScript:

    forward(x) -> logits   == head(features(x))
    features(x) -> A       output of layer4 (after the last block's ReLU), NCHW [N,512|2048,7,7]
    head(A) -> logits      avgpool + flatten + fc

Example:
    python models/wrap_resnet.py --arch resnet50 --weights ckpt.pth \\
        --labels no_tumor,tumor --id tumor-r50 --title "Tumour present" \\
        --out models/tumor_r50.pt --manifest models/manifest.json
    python models/wrap_resnet.py --selftest

The number of classes is read from fc.weight (checked against --num-classes and
--labels when given). Checkpoints may be a bare state_dict, {"state_dict": ...},
{"model": ...}, a pickled nn.Module, and may carry DataParallel "module." prefixes.
A 1-channel conv1 makes a greyscale ("L") model. Input spec defaults: NCHW,
224x224, RGB, bicubic, scale 1/255, ImageNet mean/std (all overridable).
With --manifest the entry is added to (or replaces the same id in) that manifest,
otherwise it is printed. The module is saved frozen (models/frozen.py).
"""
import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import torch
import torch.nn as nn
import torchvision

sys.path.insert(0, str(Path(__file__).resolve().parent))
from frozen import save_frozen  # noqa: E402

ARCHS = {"resnet18": torchvision.models.resnet18, "resnet34": torchvision.models.resnet34,
         "resnet50": torchvision.models.resnet50}
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


class ResNetContract(nn.Module):
    """Holds the torchvision ResNet's modules under their own names, so that this
    module's state_dict keys equal torchvision's."""

    def __init__(self, net: nn.Module, nhwc: bool = False):
        super().__init__()
        self.nhwc = nhwc
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
        self.avgpool, self.fc = net.avgpool, net.fc

    @torch.jit.export
    def features(self, x: torch.Tensor) -> torch.Tensor:
        if self.nhwc:
            x = x.permute(0, 3, 1, 2).contiguous()
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        return self.layer4(x)

    @torch.jit.export
    def head(self, a: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.avgpool(a), 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def load_state_dict(path: Path) -> dict:
    obj = torch.load(str(path), map_location="cpu")
    if isinstance(obj, nn.Module):
        obj = obj.state_dict()
    for key in ("state_dict", "model_state_dict", "model"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict):
        raise SystemExit(f"{path}: not a state_dict ({type(obj).__name__})")
    if all(k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return obj


def build(arch: str, sd: dict, nhwc: bool):
    if "fc.weight" not in sd or "conv1.weight" not in sd:
        raise SystemExit("checkpoint has no fc.weight / conv1.weight: not a torchvision ResNet state_dict")
    n = sd["fc.weight"].shape[0]
    in_ch = sd["conv1.weight"].shape[1]
    net = ARCHS[arch](num_classes=n)
    if in_ch != 3:
        net.conv1 = nn.Conv2d(in_ch, 64, kernel_size=7, stride=2, padding=3, bias=False)
    net.load_state_dict(sd, strict=True)
    net.eval()
    return net, ResNetContract(net, nhwc).eval(), n, in_ch


def wrap(args) -> dict:
    sd = load_state_dict(args.weights)
    net, model, n, in_ch = build(args.arch, sd, args.layout == "NHWC")
    if args.num_classes is not None and args.num_classes != n:
        raise SystemExit(f"--num-classes {args.num_classes} but fc has {n} outputs")
    labels = args.labels.split(",") if args.labels else [f"class{i}" for i in range(max(n, 2))]
    task = args.task or ("binary" if n <= 2 else "multiclass")
    if task == "binary" and len(labels) != 2:
        raise SystemExit("a binary model needs exactly 2 labels (negative,positive)")
    if len(labels) != max(n, 2) or (task == "multiclass" and len(labels) != n):
        raise SystemExit(f"{len(labels)} labels for {n} outputs")
    color = args.color or ("L" if in_ch == 1 else "RGB")
    mean = [float(v) for v in args.mean.split(",")] if args.mean else (IMAGENET_MEAN if in_ch == 3 else [0.449])
    std = [float(v) for v in args.std.split(",")] if args.std else (IMAGENET_STD if in_ch == 3 else [0.226])
    if len(mean) != in_ch or len(std) != in_ch:
        raise SystemExit(f"mean/std need {in_ch} values")
    spec = {"width": args.size, "height": args.size, "layout": args.layout, "color": color,
            "resize": args.resize, "scale": 1.0 / 255.0, "mean": mean, "std": std}

    scripted = torch.jit.script(model)
    shape = (2, args.size, args.size, in_ch) if args.layout == "NHWC" else (2, in_ch, args.size, args.size)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = net(x.permute(0, 3, 1, 2) if args.layout == "NHWC" else x)
        out = scripted(x)
        a = scripted.features(x)
        split = scripted.head(a)
    d_ref = float((out - ref).abs().max())
    d_split = float((split - out).abs().max())
    print(f"check: |forward - torchvision| = {d_ref:.2e}, |head(features) - forward| = {d_split:.2e}, "
          f"A {tuple(a.shape)}", file=sys.stderr)
    if d_ref > 1e-5 or d_split > 1e-5:
        raise SystemExit("FAILED: wrapped model differs from the torchvision model")

    meta = {"source": f"torchvision {args.arch}", "labels": labels, "input": spec}
    # Saved frozen, so the server holds one copy of the weights at load (models/frozen.py).
    save_frozen(scripted, args.out, meta, x)

    model_id = args.id or args.out.stem.replace("_", "-")
    base = args.manifest.parent if args.manifest else args.out.parent
    entry = {"id": model_id, "file": os.path.relpath(args.out.resolve(), base.resolve()), "task": task,
             "title": args.title or model_id, "labels": labels, "input": spec, "derived": []}
    if args.derived_negative:
        entry["derived"].append({"id": args.derived_id, "title": args.derived_title, "task": "binary",
                                 "labels": args.derived_labels.split(","),
                                 "negative": args.derived_negative.split(",")})
        for neg in entry["derived"][0]["negative"]:
            if neg not in labels:
                raise SystemExit(f"derived negative {neg!r} is not a label")
    if args.manifest:
        m = json.loads(args.manifest.read_text()) if args.manifest.is_file() else {"version": 1, "models": []}
        m["models"] = [e for e in m["models"] if e["id"] != model_id] + [entry]
        args.manifest.write_text(json.dumps(m, indent=2) + "\n")
        print(f"wrote {args.out} ({args.out.stat().st_size} bytes); manifest entry {model_id!r} in {args.manifest}",
              file=sys.stderr)
    else:
        print(f"wrote {args.out} ({args.out.stat().st_size} bytes)", file=sys.stderr)
    print(json.dumps(entry, indent=2))
    return entry


def selftest():
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        net = torchvision.models.resnet18(num_classes=2).eval()
        # non-trivial BatchNorm statistics, so eval-mode BN is really exercised
        with torch.no_grad():
            for mod in net.modules():
                if isinstance(mod, nn.BatchNorm2d):
                    mod.running_mean.uniform_(-0.1, 0.1)
                    mod.running_var.uniform_(0.5, 1.5)
        pth = tmp / "r18.pth"
        torch.save({"state_dict": {"module." + k: v for k, v in net.state_dict().items()}}, pth)
        for layout in ("NCHW", "NHWC"):
            out = tmp / f"r18_{layout.lower()}.pt"
            ns = parser().parse_args(["--arch", "resnet18", "--weights", str(pth), "--num-classes", "2",
                                      "--labels", "benign,malignant", "--layout", layout, "--out", str(out),
                                      "--manifest", str(tmp / "manifest.json"), "--id", f"r18-{layout}"])
            wrap(ns)
            ts = torch.jit.load(str(out)).eval()
            x = torch.rand(1, 3, 224, 224)
            xin = x.permute(0, 2, 3, 1).contiguous() if layout == "NHWC" else x
            with torch.no_grad():
                ref = net(x)
                d1 = float((ts(xin) - ref).abs().max())
                d2 = float((ts.head(ts.features(xin)) - ref).abs().max())
                a = ts.features(xin)
            assert tuple(a.shape) == (1, 512, 7, 7), a.shape
            assert d1 < 1e-5 and d2 < 1e-5, (d1, d2)
            print(f"selftest {layout}: |forward - torchvision| {d1:.2e}, |head(features) - torchvision| {d2:.2e}")
        m = json.loads((tmp / "manifest.json").read_text())
        assert [e["id"] for e in m["models"]] == ["r18-NCHW", "r18-NHWC"], m
        assert m["models"][0]["file"] == "r18_nchw.pt" and m["models"][0]["task"] == "binary"
    print("selftest OK")


def parser():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--selftest", action="store_true")
    ap.add_argument("--arch", choices=sorted(ARCHS))
    ap.add_argument("--weights", type=Path, help=".pth state_dict")
    ap.add_argument("--num-classes", type=int)
    ap.add_argument("--labels", help="comma-separated, in output order (binary: negative,positive)")
    ap.add_argument("--task", choices=["binary", "multiclass"])
    ap.add_argument("--id")
    ap.add_argument("--title")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--manifest", type=Path, help="add/replace the entry in this manifest.json")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--layout", choices=["NCHW", "NHWC"], default="NCHW")
    ap.add_argument("--color", choices=["RGB", "L"])
    ap.add_argument("--resize", default="bicubic", choices=["bicubic", "bilinear", "nearest", "lanczos"])
    ap.add_argument("--mean", help="comma-separated (default ImageNet)")
    ap.add_argument("--std", help="comma-separated (default ImageNet)")
    ap.add_argument("--derived-negative", help="comma-separated negative labels for a derived binary head")
    ap.add_argument("--derived-id", default="presence")
    ap.add_argument("--derived-title", default="Finding present")
    ap.add_argument("--derived-labels", default="negative,positive")
    return ap


def main():
    args = parser().parse_args()
    if args.selftest:
        selftest()
        return
    if not (args.arch and args.weights and args.out):
        parser().error("--arch, --weights and --out are required (or --selftest)")
    wrap(args)


if __name__ == "__main__":
    main()
