#!/usr/bin/env python3
"""Synthetic 2D brain-MRI slices from the MNI ICBM152 2009a tissue maps (nilearn 0.14.1, pinned).

The input check of a brain-MRI model is fitted on in-distribution slices. The only brain MRI the
project can fetch and pin in quantity is the MNI152 template: an average of 152 T1 brains, skull
stripped, one contrast. Real uploads (like the Kaggle-style slices the VGG16 was trained on) are T1,
T1 with contrast, T2 or FLAIR, with skull and scalp, lesions, noise, bias field and JPEG artefacts.
So the fitting slices are *rendered* from the template's tissue probabilities (grey matter, white
matter, CSF = the rest of the intracranial volume) in the way of SynthSeg's generative model
(Billot et al., Medical Image Analysis 2023): per-tissue intensities drawn around each MR contrast's
known ordering, a skull (dark cortical bone with a marrow band) and scalp (fat) grown outwards from
the intracranial volume by a distance transform, an optional lesion (solid or ring, with or without
oedema), partial-volume blur, a smooth multiplicative bias field, Rician-like magnitude noise, a
gamma, in-plane rotation, a framing like exported slices, resolution loss and JPEG compression.
Then what a viewer adds when a slice is exported or screenshotted: burned-in corner text (series,
sequence, window, dates, orientation letters) on about a third, and a tighter zoom on some.

Bone is never bright and air never grey: CT and radiographs stay outside what is rendered.

    python models/synth_mri.py --out /tmp/synth --count 24     # look at some

Deterministic: sample(rng) with numpy's default_rng(seed) gives the same images on every run.
"""
import argparse
import gzip
import io
import sys
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage as ndi

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from fetch_scans import CALIBRATION, fetch_wheel, read_nifti  # noqa: E402

MAPS = {k: f"nilearn/datasets/data/mni_icbm152_{k}_tal_nlin_sym_09a_converted.nii.gz" for k in ("t1", "gm", "wm")}

# Intensity ranges (0..1) per tissue for each contrast: white matter, grey matter, CSF, cortical bone,
# marrow (diploe), scalp. The orderings are MR physics (T1: WM > GM > CSF, fat bright; T2: CSF > GM > WM;
# FLAIR: GM > WM, CSF suppressed); the ranges are wide on purpose.
CONTRASTS = {
    "t1":    [(.70, .90), (.42, .58), (.03, .18), (.00, .08), (.30, .70), (.55, 1.0)],
    "t1c":   [(.55, .75), (.40, .55), (.05, .20), (.00, .08), (.30, .70), (.60, 1.0)],
    "t2":    [(.22, .40), (.42, .60), (.80, 1.0), (.00, .08), (.20, .50), (.35, .80)],
    "flair": [(.30, .45), (.48, .65), (.00, .15), (.00, .08), (.20, .50), (.30, .70)],
}
# Slice axis (NIfTI x = sagittal, y = coronal, z = axial), how often, and the part of it that holds brain.
PLANES = [(2, .6, (.22, .80)), (1, .2, (.25, .75)), (0, .2, (.20, .80))]


class Template:
    """The MNI152 tissue maps and the distances outside the intracranial volume."""

    def __init__(self, cache: Path):
        wheel = fetch_wheel(CALIBRATION, cache)
        with zipfile.ZipFile(wheel) as z:
            vols = {k: read_nifti(gzip.decompress(z.read(m))) for k, m in MAPS.items()}
        self.gm, self.wm = vols["gm"] / 255.0, vols["wm"] / 255.0
        icv = ndi.binary_fill_holes(ndi.binary_closing(vols["t1"] > 8, iterations=2))
        self.csf = np.clip(1 - self.gm - self.wm, 0, 1) * icv
        self.outside = ndi.distance_transform_edt(~icv)  # mm (1 mm voxels)


def sample(t: Template, rng: np.random.Generator) -> tuple[Image.Image, str]:
    """One synthetic slice (8-bit greyscale) and its contrast's name."""
    u = rng.random()
    axis, _, (lo, hi) = PLANES[0] if u < .6 else PLANES[1] if u < .8 else PLANES[2]
    k = int(rng.uniform(lo, hi) * t.gm.shape[axis])
    gm, wm, csf, out = (np.take(v, k, axis=axis) for v in (t.gm, t.wm, t.csf, t.outside))
    contrast = list(CONTRASTS)[rng.integers(len(CONTRASTS))]
    wm_i, gm_i, csf_i, bone_i, marrow_i, scalp_i = (rng.uniform(*r) for r in CONTRASTS[contrast])
    skull_mm, scalp_mm, marrow_w = rng.uniform(3, 7), rng.uniform(3, 9), rng.uniform(.2, .5)
    skull = (out > 0) & (out <= skull_mm)
    marrow = skull & (np.abs(out / skull_mm - .5) < marrow_w / 2)
    scalp = (out > skull_mm) & (out <= skull_mm + scalp_mm)
    img = wm * wm_i + gm * gm_i + csf * csf_i + (skull & ~marrow) * bone_i + marrow * marrow_i + scalp * scalp_i

    if rng.random() < .6:  # a lesion: solid or ring-enhancing, with or without oedema
        ys, xs = np.nonzero(gm + wm > .5)
        if len(ys):
            i = rng.integers(len(ys))
            r = rng.uniform(5, 28)
            yy, xx = np.indices(img.shape)
            d = np.hypot((yy - ys[i]) / (r * rng.uniform(.7, 1.3)), (xx - xs[i]) / (r * rng.uniform(.7, 1.3)))
            core = np.clip(1.2 - d, 0, 1)
            oedema = np.clip(1.8 - d, 0, 1) * (d > 1) * rng.uniform(0, .25) * (1 if contrast in ("t2", "flair") else -1)
            ring = np.exp(-((d - 1) / .12) ** 2) * rng.uniform(0, .5) * (rng.random() < .4)
            img = img * (1 - core) + core * rng.uniform(.05, 1) + oedema * (gm + wm > .2) + ring

    img = ndi.gaussian_filter(np.rot90(img), rng.uniform(.3, 1.2))
    yy, xx = np.indices(img.shape) / max(img.shape)
    bias = 1 + rng.uniform(-.15, .15) * (xx - .5) + rng.uniform(-.15, .15) * (yy - .5) \
        + rng.uniform(-.1, .1) * ((xx - .5) ** 2 + (yy - .5) ** 2)
    img = np.abs(img * bias + rng.normal(0, rng.uniform(.003, .03), img.shape))
    img = np.clip(img / max(np.percentile(img, 99.7), 1e-3), 0, 1) ** rng.uniform(.75, 1.35)
    img = ndi.rotate(img, rng.uniform(-12, 12), reshape=False, order=1)

    # Framing like an exported slice: the head nearly fills a square, black around it.
    ys, xs = np.nonzero(ndi.gaussian_filter(img, 2) > .05)
    if len(ys):
        img = img[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    side = int(max(img.shape) * rng.uniform(1.02, 1.3))
    canvas = np.zeros((side, side))
    y0 = int(np.clip((side - img.shape[0]) // 2 + rng.integers(-6, 7), 0, side - img.shape[0]))
    x0 = int(np.clip((side - img.shape[1]) // 2 + rng.integers(-6, 7), 0, side - img.shape[1]))
    canvas[y0:y0 + img.shape[0], x0:x0 + img.shape[1]] = img
    pil = Image.fromarray((np.clip(canvas, 0, 1) * 255).astype(np.uint8), "L")
    # Acquired at a lower matrix than shown, then saved as JPEG (most shared slices are).
    acquired = int(side * rng.uniform(.6, 1.0))
    shown = int(rng.choice([256, 320, 400, 512]))
    pil = pil.resize((acquired, acquired), Image.BICUBIC).resize((shown, shown), Image.BICUBIC)
    if rng.random() < .2:  # zoomed in: the head fills the frame, its edge cut
        keep = int(shown * rng.uniform(.72, .9))
        x0, y0 = (int(rng.integers(0, shown - keep + 1)) for _ in range(2))
        pil = pil.crop((x0, y0, x0 + keep, y0 + keep)).resize((shown, shown), Image.BICUBIC)
    if rng.random() < .35:
        annotate(pil, rng)
    if rng.random() < .7:
        buf = io.BytesIO()
        pil.save(buf, "JPEG", quality=int(rng.integers(70, 96)))
        pil = Image.open(io.BytesIO(buf.getvalue())).convert("L")
    return pil, contrast


# What viewers burn into the corners of an exported slice (no real person's data: made-up values).
OVERLAY_LINES = ["Ax T2 FLAIR", "Sag T1", "Cor T1 +C", "Ax T1 MPRAGE", "Se: {n}", "Im: {n}/{m}", "TR {tr} TE {te}",
                 "W: {w} L: {l}", "ST {st}mm", "{t}T", "{d}", "ID {id}", "{age}Y {sex}", "Zoom {z}%", "FOV {fov}mm",
                 "HEAD", "BRAIN", "Page {n} of {m}", "DFOV {fov}", "ACQ {id}"]
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"   # fonts-dejavu-core (deploy/install-deps.sh)


def annotate(pil: Image.Image, rng: np.random.Generator) -> None:
    """Burned-in viewer text: 1-4 lines in 2-4 corners, orientation letters at the edges, sometimes a scale bar."""
    side = pil.size[0]
    font = ImageFont.truetype(FONT, max(8, int(side * rng.uniform(.022, .04))))
    draw = ImageDraw.Draw(pil)
    shade = int(rng.integers(170, 256))
    def line():
        text = OVERLAY_LINES[int(rng.integers(len(OVERLAY_LINES)))]
        return text.format(n=rng.integers(1, 40), m=rng.integers(20, 200), tr=rng.integers(400, 11000), te=rng.integers(8, 140),
                           w=rng.integers(80, 4000), l=rng.integers(40, 2000), st=rng.choice([1, 3, 5]), t=rng.choice(["1.5", "3.0"]),
                           d=f"20{rng.integers(10, 25)}-{rng.integers(1, 13):02d}-{rng.integers(1, 29):02d}",
                           id=rng.integers(10000, 99999999), age=rng.integers(2, 95), sex=rng.choice(["F", "M"]),
                           z=rng.integers(80, 300), fov=rng.integers(180, 260))
    step = font.size + 2
    for corner in rng.permutation(4)[:int(rng.integers(2, 5))]:
        lines = [line() for _ in range(int(rng.integers(1, 5)))]
        for i, text in enumerate(lines):
            width = draw.textlength(text, font=font)
            x = 4 if corner in (0, 2) else side - 4 - width
            y = 4 + i * step if corner in (0, 1) else side - 4 - (len(lines) - i) * step
            draw.text((x, y), text, fill=shade, font=font)
    if rng.random() < .5:
        for text, (x, y) in (("R", (4, side / 2)), ("L", (side - 14, side / 2)), ("A", (side / 2, 4)), ("P", (side / 2, side - step))):
            draw.text((x, y), text, fill=shade, font=font)
    if rng.random() < .3:
        y = side - int(side * .08)
        draw.line((side * .7, y, side * .7 + side * .15, y), fill=shade, width=max(1, side // 256))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path, default=HERE / "cache")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--count", type=int, default=24)
    ap.add_argument("--seed", type=int, default=20240522)
    args = ap.parse_args()
    t = Template(args.cache)
    rng = np.random.default_rng(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    for i in range(args.count):
        img, contrast = sample(t, rng)
        img.save(args.out / f"synth_{i:03d}_{contrast}.png")


if __name__ == "__main__":
    main()
