#!/usr/bin/env python3
"""Median bare forward time of a contract model (default: models/brain_tumor_vgg16.pt),
as the server runs it: torch.jit.freeze (preserving features/head) +
torch.jit.optimize_for_inference, under torch.no_grad, batch 1. Prints JSON.

    python models/bench_forward.py --threads 1 --runs 50 [--model M.pt] [--all-variants]

--all-variants also times: unfrozen scripted module, frozen only,
frozen + optimize_for_inference(other_methods=["features","head"]), and one
Grad-CAM step (optimised features without grad + unfrozen head forward/backward).
"""
import argparse
import json
import statistics
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent


def input_for(model_path: Path, module) -> torch.Tensor:
    """Build a random input from the model's embedded metadata or manifest entry."""
    spec = None
    extra = {"mediscope.json": ""}
    try:
        torch.jit.load(str(model_path), _extra_files=extra)
        if extra["mediscope.json"]:
            spec = json.loads(extra["mediscope.json"]).get("input")
    except Exception:
        spec = None
    if spec is None:
        manifest = model_path.parent / "manifest.json"
        if manifest.is_file():
            for m in json.loads(manifest.read_text())["models"]:
                if m["file"] == model_path.name:
                    spec = m["input"]
    if spec is None:
        spec = {"width": 240, "height": 240, "layout": "NHWC", "color": "RGB"}
    c = 1 if spec.get("color") == "L" else 3
    h, w = spec["height"], spec["width"]
    shape = (1, h, w, c) if spec.get("layout", "NCHW") == "NHWC" else (1, c, h, w)
    g = torch.Generator().manual_seed(0)
    return torch.rand(shape, generator=g)


def time_it(fn, x, runs, warmup):
    with torch.no_grad():
        for _ in range(warmup):
            fn(x)
        ts = []
        for _ in range(runs):
            t0 = time.perf_counter()
            fn(x)
            ts.append((time.perf_counter() - t0) * 1000.0)
    return {"median_ms": round(statistics.median(ts), 3), "min_ms": round(min(ts), 3),
            "max_ms": round(max(ts), 3)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=HERE / "brain_tumor_vgg16.pt")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--all-variants", action="store_true")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    base = torch.jit.load(str(args.model))
    if hasattr(base, "training"):
        base.eval()
    x = input_for(args.model, base)
    with torch.no_grad():
        ref = base(x)

    extra = {"mediscope.json": ""}
    torch.jit.load(str(args.model), _extra_files=extra)
    engine = (json.loads(extra["mediscope.json"] or "{}").get("quantized") or {}).get("engine")

    def frozen():
        m = torch.jit.load(str(args.model))
        if hasattr(m, "training"):  # saved unfrozen (older conversions): freeze here, as the shim does
            m = torch.jit.freeze(m.eval(), preserved_attrs=["features", "head"])
        return m

    t0 = time.perf_counter()
    if engine:  # int8: the shim selects the engine and runs the packed quantised weights as they are
        torch.backends.quantized.engine = engine
        opt = frozen()
    else:  # as the shim: oneDNN repacking of `features` (models saved frozen call it from `forward`)
        opt = torch.jit.optimize_for_inference(frozen(), other_methods=["features"])
    prep_ms = (time.perf_counter() - t0) * 1000.0
    with torch.no_grad():
        diff = float((opt(x) - ref).abs().max())
    result = {"model": str(args.model), "input_shape": list(x.shape), "threads": args.threads,
              "runs": args.runs, "torch": torch.__version__,
              "variant": f"int8 {engine}" if engine else "freeze+optimize_for_inference",
              **time_it(opt, x, args.runs, args.warmup),
              "prepare_ms": round(prep_ms, 1), "max_abs_logit_diff_vs_unfrozen": diff}
    if args.all_variants:
        variants = {"scripted_unfrozen": base, "frozen": frozen()}
        try:
            variants["frozen+optimize(other_methods=features,head)"] = torch.jit.optimize_for_inference(
                frozen(), other_methods=["features", "head"])
        except Exception as e:  # noqa: BLE001
            result["other_methods_error"] = f"{type(e).__name__}: {e}"[:300]
        result["variants"] = {k: time_it(m, x, args.runs, args.warmup) for k, m in variants.items()}

        # Grad-CAM cost: A = features(x) on the optimised module without grad, then the
        # unfrozen head forward + backward to A (gradient of one logit).
        def cam_step(inp):
            with torch.no_grad():
                a = opt.features(inp)
            with torch.enable_grad():
                a.requires_grad_(True)
                y = base.head(a)[0, 0]
                torch.autograd.grad(y, a)

        result["gradcam_features_plus_head_backward"] = time_it(cam_step, x, args.runs, args.warmup)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
