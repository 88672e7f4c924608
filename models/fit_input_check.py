#!/usr/bin/env python3
"""Fit a model's input check (issue 22), set its threshold on held-out brain MRI, and measure it.

    python models/fit_input_check.py [--manifest models/manifest.json] [--model ID]
        [--fit-images DIR] [--synthetic 600] [--held-out DIR] [--margin 1.15] [--compare]

Two layers, as the server runs them (Sources/MediscopeInference/InputCheck.swift):

  image checks   before inference, from the entry's `scope`: too small, near-uniform, low information
                 (few grey levels or no spatial detail), colour where greyscale is expected, and a
                 declared modality / body part (DICOM tags or the form) that is not the model's. The same
                 statistics as the server's are computed here (this file's image_checks), to report
                 what each layer catches.
  feature check  after the forward pass: Mahalanobis distance of the mean-pooled `features(x)`
                 activations (512 for the VGG16: the same tensor Grad-CAM uses, so no extra forward),
                 square-rooted (Tukey's ladder, lambda = 1/2: the means of ReLU activations are skewed and
                 non-negative; the root makes them closer to Gaussian), from in-distribution slices, with
                 a Ledoit-Wolf shrunk covariance (scikit-learn). --compare measures the alternatives
                 (no root, k-NN, energy, max softmax) on the same sets.

Fitting slices: --fit-images DIR (your own in-distribution images), or by default --synthetic N
brain-MRI slices rendered from the MNI152 tissue maps (models/synth_mri.py, seeded). Threshold:
--margin times the largest distance among held-out in-scope slices, never fitted on: by default the 17
evaluation slices and matplotlib's s1045 (models/input_check_sets.py); --held-out DIR for your own.
The out-of-scope set (input_check_sets.out_of_scope) only measures; it never sets anything.

Writes beside the model (names from the model file's stem):
  <stem>.input-check.json            the parameters the server loads: method, threshold, mean and the
                                     upper Cholesky factor U of the precision matrix (P = U^T U; packed
                                     rows, float32 little-endian, base64), what they were fitted on
  <stem>.input-check-fidelity.json   false flags on held-out in-scope slices (plus a leave-one-out
                                     estimate), detection on the out-of-scope set (dev and test splits,
                                     per category, per layer), every image's source, score and reasons
and sets the parameter file's sha256 in the manifest entry's "inputCheck" (the server refuses a file
whose checksum differs). Deterministic: same inputs, same bytes.
"""
import argparse
import base64
import hashlib
import json
import re
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import input_check_sets as sets  # noqa: E402

FILTERS = {"bicubic": Image.BICUBIC}
# Image-check limits when the entry's scope does not set them. Chosen from in-scope slices only: each
# is about a third of the lowest value among the 18 held-out real slices (std 21, entropy 4.2 bits,
# detail 3.0; no coloured pixels), so a real slice is far from them.
DEFAULT_LIMITS = {"minImageSide": 128, "minGreySpread": 3.0, "minEntropyBits": 1.5, "minDetail": 1.0, "maxColourFraction": 0.02}
COLOUR_CHROMA = 40  # max(r, g, b) - min(r, g, b) above which a pixel is clearly coloured
GRID = 256          # statistics are taken on at most GRID x GRID pixels (every k-th pixel)
BACKGROUND_LUMA = 16          # luma at or below: the black margin around an exported slice
MIN_FOREGROUND_SAMPLES = 64   # a smaller bright box (a dot) is no foreground: the whole frame is measured


def image_statistics(img: Image.Image) -> dict:
    """The server's ImageStatistics: every k-th pixel (k = ceil(longest side / 256)), Pillow's luma;
    spread, entropy and detail of the foreground box (samples brighter than BACKGROUND_LUMA)."""
    w, h = img.size
    k = max(1, -(-max(w, h) // GRID))
    rgb = np.asarray(img.convert("RGB"))[::k, ::k].astype(np.int32)
    luma = np.asarray(img.convert("L"))[::k, ::k].astype(np.float64)
    chroma = rgb.max(axis=2) - rgb.min(axis=2)
    colour = float((chroma > COLOUR_CHROMA).mean())
    rows, cols = np.nonzero(luma > BACKGROUND_LUMA)
    if len(rows) and (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1) >= MIN_FOREGROUND_SAMPLES:
        luma = luma[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    hist = np.bincount(luma.astype(np.int64).ravel(), minlength=256) / luma.size
    p = hist[hist > 0]
    dx = np.abs(np.diff(luma, axis=1)).sum() if luma.shape[1] > 1 else 0.0
    dy = np.abs(np.diff(luma, axis=0)).sum() if luma.shape[0] > 1 else 0.0
    pairs = luma.shape[0] * (luma.shape[1] - 1) + (luma.shape[0] - 1) * luma.shape[1]
    return {"width": w, "height": h, "greySpread": float(luma.std()), "entropyBits": float(-(p * np.log2(p)).sum()),
            "detail": float((dx + dy) / max(pairs, 1)), "colourFraction": colour}


def image_checks(s: dict, limits: dict, greyscale: bool) -> list[str]:
    """Reason codes, as InputCheck.swift gives them."""
    reasons = []
    if min(s["width"], s["height"]) < limits["minImageSide"]:
        reasons.append("too_small")
    if s["greySpread"] < limits["minGreySpread"]:
        reasons.append("uniform")
    elif s["entropyBits"] < limits["minEntropyBits"] or s["detail"] < limits["minDetail"]:
        reasons.append("low_information")
    if greyscale and s["colourFraction"] > limits["maxColourFraction"]:
        reasons.append("colour")
    return reasons


def tensor(img: Image.Image, spec: dict) -> torch.Tensor:
    """The manifest's preprocessing (as Tests/Reference/reference_pipeline.py and the server do it)."""
    mode = "L" if spec["color"] == "L" else "RGB"
    a = np.asarray(img.convert(mode).resize((spec["width"], spec["height"]), FILTERS[spec["resize"]]), np.float64)
    if a.ndim == 2:
        a = a[:, :, None]
    a = (a * spec["scale"] - np.asarray(spec["mean"])) / np.asarray(spec["std"])
    a = a.astype(np.float32)
    a = a[None] if spec["layout"] == "NHWC" else np.ascontiguousarray(a.transpose(2, 0, 1))[None]
    return torch.from_numpy(a)


class Features:
    def __init__(self, path: Path, spec: dict, engine: str | None):
        if engine:
            torch.backends.quantized.engine = engine
        self.module = torch.jit.load(str(path)).eval()
        self.spec = spec

    @torch.no_grad()
    def __call__(self, images) -> tuple[np.ndarray, np.ndarray]:
        """Mean-pooled activations [N, C] (float32, as the shim returns them) and logits [N, K]."""
        pooled, logits = [], []
        for img in images:
            a = self.module.features(tensor(img, self.spec))
            a = a.dequantize() if a.is_quantized else a
            pooled.append(a.float().mean(dim=(2, 3))[0].numpy())
            logits.append(self.module.head(a)[0].float().numpy())
        return np.asarray(pooled, np.float32), np.asarray(logits, np.float64)


def transformed(X: np.ndarray, transform: str) -> np.ndarray:
    """The feature transform the server applies before the distance: sqrt(max(x, 0)) or none, in float64."""
    X = X.astype(np.float64)
    return np.sqrt(np.maximum(X, 0)) if transform == "sqrt" else X


def fit(X: np.ndarray, transform: str) -> dict:
    from sklearn.covariance import LedoitWolf
    lw = LedoitWolf(assume_centered=False).fit(transformed(X, transform))
    precision = np.linalg.inv(lw.covariance_)
    precision = (precision + precision.T) / 2
    upper = np.linalg.cholesky(precision).T  # P = L L^T = U^T U with U = L^T
    return {"mean": lw.location_.astype(np.float32), "upper": upper.astype(np.float32), "shrinkage": float(lw.shrinkage_),
            "transform": transform}


def distances(params: dict, X: np.ndarray) -> np.ndarray:
    """sqrt((t(x) - mu)^T P (t(x) - mu)) = |U (t(x) - mu)| with the stored float32 parameters, in float64 (as Swift)."""
    d = transformed(X, params["transform"]) - params["mean"].astype(np.float64)
    return np.linalg.norm(d @ params["upper"].astype(np.float64).T, axis=1)


def packed_upper(u: np.ndarray) -> bytes:
    n = u.shape[0]
    return np.concatenate([u[i, i:] for i in range(n)]).astype("<f4").tobytes()


def auroc(inside: np.ndarray, outside: np.ndarray) -> float:
    """P(score of an out-of-scope image > score of an in-scope one), ties counted half."""
    o, i = outside[:, None], inside[None, :]
    return float(((o > i).sum() + .5 * (o == i).sum()) / max(o.size * i.size, 1))


def rate(flags) -> dict:
    flags = list(flags)
    return {"flagged": int(sum(flags)), "of": len(flags), "rate": round(sum(flags) / max(len(flags), 1), 4)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--manifest", type=Path, default=HERE / "manifest.json")
    ap.add_argument("--model", help="model id (default: the manifest's first)")
    ap.add_argument("--cache", type=Path, default=HERE / "cache")
    ap.add_argument("--fit-images", type=Path, help="folder of in-distribution images to fit on (default: synthetic)")
    ap.add_argument("--synthetic", type=int, default=600, help="synthetic MNI152 slices to fit on")
    ap.add_argument("--seed", type=int, default=20240522)
    ap.add_argument("--held-out", type=Path, help="folder of held-out in-scope images that set the threshold")
    ap.add_argument("--margin", type=float, default=1.15, help="threshold = margin x largest held-out distance")
    ap.add_argument("--transform", choices=("sqrt", "none"), default="sqrt",
                    help="feature transform before the distance (sqrt needs non-negative features, e.g. after a ReLU)")
    ap.add_argument("--compare", action="store_true", help="also measure the alternatives (k-NN, energy, ...)")
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    manifest = json.loads(args.manifest.read_text())
    entry = next((m for m in manifest["models"] if args.model in (None, m["id"])), None)
    if entry is None:
        sys.exit(f"fit: no model {args.model} in {args.manifest}")
    model_path = (args.manifest.parent / entry["file"]).resolve()
    scope = entry.get("scope", {})
    limits = {**DEFAULT_LIMITS, **{k: v for k, v in scope.get("imageChecks", {}).items() if k in DEFAULT_LIMITS}}
    greyscale = bool(scope.get("greyscale", False))
    features = Features(model_path, entry["input"], entry.get("engine"))

    # In-distribution fitting slices.
    if args.fit_images:
        paths = sorted(p for p in args.fit_images.rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
        fit_images = [Image.open(p).convert("RGB") for p in paths]
        fit_source = {"images": len(fit_images), "source": f"{args.fit_images} (given)"}
    else:
        import synth_mri
        template = synth_mri.Template(args.cache)
        rng = np.random.default_rng(args.seed)
        fit_images = [synth_mri.sample(template, rng)[0] for _ in range(args.synthetic)]
        fit_source = {"images": args.synthetic, "seed": args.seed,
                      "source": "synthetic brain-MRI slices (T1, T1c, T2, FLAIR; axial 60%, coronal 20%, sagittal 20%; "
                                "lesions in 60%) rendered by models/synth_mri.py from the MNI ICBM152 2009a grey/white "
                                "matter maps in nilearn 0.14.1 (wheel sha256 " + sets_pin_nilearn() + ")"}
    print(f"fit: features of {len(fit_images)} fitting slices", file=sys.stderr)
    X, _ = features(fit_images)
    params = fit(X, args.transform)

    if args.held_out:
        held = [sets.Item(p.name, Image.open(p).convert("RGB"), str(args.held_out))
                for p in sorted(args.held_out.rglob("*")) if p.suffix.lower() in (".png", ".jpg", ".jpeg")]
        low_res = []
    else:
        held, low_res = sets.held_out_brain(args.cache), sets.low_resolution_brain(args.cache)
    exported = [] if args.held_out else sets.held_out_exported(args.cache)
    ood = sets.out_of_scope(args.cache)
    print(f"fit: {len(held)} held-out, {len(exported)} exported held-out, {len(low_res)} low-resolution, "
          f"{len(ood)} out-of-scope images", file=sys.stderr)
    everything = held + low_res + ood + exported
    P, L = features([it.image for it in everything])
    scores = distances(params, P)
    held_scores = scores[:len(held)]
    threshold = float(np.float32(args.margin * held_scores.max()))

    # The images as measured, lossless, for the Swift tests that check the server reaches the same verdicts.
    saved = args.cache / "input-check"
    groups = ["held-out"] * len(held) + ["low-resolution"] * len(low_res) + ["out-of-scope"] * len(ood) \
        + ["held-out-exported"] * len(exported)
    rows = []
    for it, s, group in zip(everything, scores, groups):
        file = sets.file_name(group, it)
        (saved / file).parent.mkdir(parents=True, exist_ok=True)
        it.image.save(saved / file)
        st = image_statistics(it.image)
        reasons = image_checks(st, limits, greyscale)
        if s > threshold:
            reasons.append("unfamiliar")
        rows.append({**it.row(), "file": str(file), "score": round(float(s), 3), "reasons": reasons,
                     "statistics": {k: round(v, 3) if isinstance(v, float) else v for k, v in st.items()}})
    n_h, n_l, n_o = len(held), len(low_res), len(ood)
    held_rows, low_rows, ood_rows = rows[:n_h], rows[n_h:n_h + n_l], rows[n_h + n_l:n_h + n_l + n_o]
    exported_rows = rows[n_h + n_l + n_o:]
    # Leave-one-out: each held-out slice judged by the threshold the others would have set.
    loo = [float(held_scores[i]) > args.margin * float(np.delete(held_scores, i).max()) for i in range(len(held))]

    def detection(split):
        rs = [r for r in ood_rows if split in (None, r["split"])]
        image_layer = [any(x != "unfamiliar" for x in r["reasons"]) for r in rs]
        feature_layer = ["unfamiliar" in r["reasons"] for r in rs]
        per_category = {}
        for r in rs:
            per_category.setdefault(r["category"], []).append(bool(r["reasons"]))
        return {"combined": rate(bool(r["reasons"]) for r in rs), "imageChecks": rate(image_layer),
                "featureCheck": rate(feature_layer),
                "featureCheckAUROC": round(auroc(held_scores, np.array([r["score"] for r in rs])), 4),
                "perCategory": {k: rate(v) for k, v in sorted(per_category.items())}}

    stem = model_path.name[:-len(model_path.suffix)]
    param_file = model_path.parent / f"{stem}.input-check.json"
    fidelity_file = model_path.parent / f"{stem}.input-check-fidelity.json"
    held_source = sorted({it.source for it in held})
    document = {
        "format": 1,
        "model": entry["id"],
        "method": "mahalanobis",
        "feature": "mean over H and W of features(x)",
        "transform": args.transform,
        "covariance": "Ledoit-Wolf shrinkage (scikit-learn 1.9.1)",
        "dimensions": int(X.shape[1]),
        "shrinkage": round(params["shrinkage"], 6),
        "threshold": threshold,
        "fittedOn": fit_source,
        "thresholdFrom": {"images": len(held), "sources": held_source, "margin": args.margin,
                          "rule": f"{args.margin} x the largest distance among the held-out in-scope slices"},
        "fidelity": fidelity_file.name,
        "mean": base64.b64encode(params["mean"].astype("<f4").tobytes()).decode(),
        "precisionUpper": base64.b64encode(packed_upper(params["upper"])).decode(),
    }
    data = (json.dumps(document, indent=1) + "\n").encode()
    param_file.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()

    report = {
        "model": entry["id"],
        "parameters": param_file.name,
        "parametersSha256": digest,
        "method": document["method"], "transform": args.transform, "threshold": threshold, "margin": args.margin,
        "limits": limits, "greyscale": greyscale,
        "fittedOn": fit_source,
        "heldOutInScope": {"sources": held_source, "falseFlags": rate(bool(r["reasons"]) for r in held_rows),
                           "leaveOneOutFalseFlags": rate(loo),
                           "scoreMax": round(float(held_scores.max()), 3), "scoreMedian": round(float(np.median(held_scores)), 3)},
        "heldOutExported": {"note": "the held-out slices with burned-in viewer text, in a wide black margin, and zoomed "
                                    "in with the edge cut; measured only, never setting the threshold",
                            "falseFlags": rate(bool(r["reasons"]) for r in exported_rows),
                            "perCategory": {c: rate(bool(r["reasons"]) for r in exported_rows if r["category"] == c)
                                            for c in sorted({r["category"] for r in exported_rows})},
                            "scoreMax": round(max((r["score"] for r in exported_rows), default=0.0), 3)},
        "lowResolutionMR": {"note": "real MR head slices of 64x64 px: out of scope by the image check too_small",
                            "flagged": rate(bool(r["reasons"]) for r in low_rows),
                            "unfamiliar": rate("unfamiliar" in r["reasons"] for r in low_rows)},
        "outOfScope": {"all": detection(None), "dev": detection("dev"), "test": detection("test")},
        "sources": {"fit": fit_source["source"], "outOfScope": sorted({r["source"] for r in ood_rows}),
                    "note": "out-of-scope images measure only; DICOM files are rendered as exported images "
                            "(as DICOM their Modality tag alone marks them out of scope)"},
        "images": {"heldOut": held_rows, "heldOutExported": exported_rows, "lowResolution": low_rows, "outOfScope": ood_rows},
    }
    if args.compare:
        report["alternatives"] = compare(X, P, L, len(held), len(low_res), ood_rows)
    fidelity_file.write_text(json.dumps(report, indent=1) + "\n")
    set_manifest_checksum(args.manifest, entry["id"], param_file.name, digest)
    o = report["outOfScope"]
    print(json.dumps({"threshold": threshold, "heldOut": report["heldOutInScope"]["falseFlags"],
                      "leaveOneOut": report["heldOutInScope"]["leaveOneOutFalseFlags"],
                      "exported": report["heldOutExported"]["falseFlags"],
                      "dev": o["dev"]["combined"], "test": o["test"]["combined"],
                      "featureOnly": {"dev": o["dev"]["featureCheck"], "test": o["test"]["featureCheck"]}}, indent=1))


def sets_pin_nilearn() -> str:
    from fetch_scans import CALIBRATION
    return CALIBRATION["sha256"][:12] + "…"


def compare(X, P, L, n_held, n_low, ood_rows):
    """The alternatives measured on the same sets: AUROC (held-out in-scope vs out-of-scope, dev and test)
    and the detection rate at the same rule (margin x the largest held-out score)."""
    from sklearn.covariance import LedoitWolf
    held = slice(0, n_held)
    ood = slice(n_held + n_low, n_held + n_low + len(ood_rows))
    split = np.array([r["split"] for r in ood_rows])

    def mahalanobis(transform):
        lw = LedoitWolf().fit(transform(X.astype(np.float64)))
        prec = lw.precision_
        return lambda Y: np.sqrt(np.einsum("ij,jk,ik->i", transform(Y) - lw.location_, prec, transform(Y) - lw.location_))

    def knn(k):
        ref = X / np.linalg.norm(X, axis=1, keepdims=True)
        return lambda Y: np.sort(1 - (Y / np.maximum(np.linalg.norm(Y, axis=1, keepdims=True), 1e-12)) @ ref.T, axis=1)[:, k - 1]

    scores = {
        "mahalanobis (Ledoit-Wolf, mean-pooled)": mahalanobis(lambda a: a)(P.astype(np.float64)),
        "mahalanobis on sqrt features": mahalanobis(np.sqrt)(P.astype(np.float64)),
        "k-NN cosine distance, k=1": knn(1)(P), "k-NN cosine distance, k=10": knn(10)(P),
        "energy (-logsumexp of logits)": -np.log(np.exp(L - L.max(1, keepdims=True)).sum(1)) - L.max(1),
        "max softmax probability (negated)": -np.max(np.exp(L - L.max(1, keepdims=True)) / np.exp(L - L.max(1, keepdims=True)).sum(1, keepdims=True), 1),
    }
    out = {}
    for name, s in scores.items():
        h, o = s[held], s[ood]
        thr = 1.15 * h.max() if h.max() > 0 else h.max() + abs(h.max()) * .15
        out[name] = {sp: {"AUROC": round(auroc(h, o[split == sp]), 4), "detectedAtRule": rate(o[split == sp] > thr)}
                     for sp in ("dev", "test")}
    return out


def set_manifest_checksum(manifest: Path, model_id: str, file_name: str, digest: str) -> None:
    """Writes the parameter file's sha256 into the entry's "inputCheck" (text edit, formatting kept)."""
    text = manifest.read_text()
    pattern = re.compile(r'("inputCheck"\s*:\s*\{\s*"file"\s*:\s*"' + re.escape(file_name) + r'"\s*,\s*"sha256"\s*:\s*")[0-9a-f]*(")')
    new, n = pattern.subn(lambda m: m.group(1) + digest + m.group(2), text)
    if n == 1:
        if new != text:
            manifest.write_text(new)
            print(f"fit: {manifest}: inputCheck sha256 of {model_id} set to {digest}", file=sys.stderr)
    else:
        print(f"fit: add to the entry of {model_id} in {manifest}:\n"
              f'  "inputCheck": {{"file": "{file_name}", "sha256": "{digest}"}}', file=sys.stderr)


if __name__ == "__main__":
    main()
