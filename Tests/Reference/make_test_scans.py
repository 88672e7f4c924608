#!/usr/bin/env python3
"""Write a few deterministic synthetic brain-MRI-like "scans" for the parity test
and the benchmark (numpy RandomState(seed) + Pillow, no other inputs):

  scan_baseline.jpg     512x512 RGB (grey content), baseline JPEG, quality 92
  scan_progressive.jpg  512x512 RGB (grey content), progressive JPEG, quality 92
  scan_gray.jpg         512x512 greyscale (mode L) JPEG
  scan_rgb.png          512x512 RGB PNG with a slight colour tint (lossless)
  scan_wide.png         640x400 greyscale PNG (non-square: resize changes aspect)

Each scan: elliptic skull ring, textured brain tissue, dark ventricles, one
"lesion" at a per-image position (ring-enhancing in scan_baseline / scan_rgb,
a bright blob in scan_progressive / scan_wide, none in scan_gray), Gaussian noise.

    python Tests/Reference/make_test_scans.py OUTDIR [--seed 7]
"""
import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter


def scan(h, w, rng, lesion="blob"):
    """lesion: None, "blob" (bright blob) or "ring" (ring-enhancing lesion: the default
    model calls these glioma/meningioma; blob and no lesion come out as notumor)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    cy, cx = h / 2 + rng.uniform(-0.03, 0.03) * h, w / 2 + rng.uniform(-0.03, 0.03) * w
    ry, rx = 0.42 * h, 0.36 * min(w, h * 1.1)
    r = np.sqrt(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2)
    img = np.zeros((h, w))
    img += 0.85 * np.exp(-((r - 1.0) / 0.035) ** 2)                     # skull ring
    brain = r < 0.95
    tex = rng.normal(0, 1, (h // 8 + 1, w // 8 + 1))
    tex = np.array(Image.fromarray(((tex - tex.min()) / np.ptp(tex) * 255).astype(np.uint8))
                   .resize((w, h), Image.BICUBIC)) / 255.0
    img += brain * (0.35 + 0.18 * tex + 0.1 * np.cos(6 * np.arctan2(yy - cy, xx - cx)) * (1 - r))
    for s in (-1, 1):                                                    # ventricles
        vy, vx = cy - 0.05 * h, cx + s * 0.07 * w
        img -= 0.25 * np.exp(-(((yy - vy) / (0.12 * h)) ** 2 + ((xx - vx) / (0.035 * w)) ** 2))
    if lesion:
        ang, rad = rng.uniform(0, 2 * np.pi), rng.uniform(0.2, 0.6)
        ly, lx = cy + rad * ry * np.sin(ang), cx + rad * rx * np.cos(ang)
        size = rng.uniform(0.04, 0.09) * h
        if lesion == "ring":
            d = np.sqrt((yy - ly) ** 2 + (xx - lx) ** 2)
            img += 0.6 * np.exp(-((d - 1.2 * size) / (0.25 * size)) ** 2) - 0.15 * (d < size)
        else:
            img += 0.55 * np.exp(-(((yy - ly) ** 2 + (xx - lx) ** 2) / size ** 2) ** 1.5)
    img += rng.normal(0, 0.03, (h, w))
    img = np.clip(img, 0, 1)
    g = Image.fromarray((img * 255 + 0.5).astype(np.uint8), "L")
    return g.filter(ImageFilter.GaussianBlur(0.6))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("outdir", type=Path)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    args.outdir.mkdir(parents=True, exist_ok=True)
    rng = np.random.RandomState(args.seed)

    out = []
    g = scan(512, 512, rng, lesion="ring")
    p = args.outdir / "scan_baseline.jpg"
    g.convert("RGB").save(p, "JPEG", quality=92, progressive=False, optimize=False, subsampling=2)
    out.append(p)
    g = scan(512, 512, rng)
    p = args.outdir / "scan_progressive.jpg"
    g.convert("RGB").save(p, "JPEG", quality=92, progressive=True, subsampling=2)
    out.append(p)
    g = scan(512, 512, rng, lesion=None)
    p = args.outdir / "scan_gray.jpg"
    g.save(p, "JPEG", quality=92)
    out.append(p)
    g = np.asarray(scan(512, 512, rng, lesion="ring"), dtype=np.float64) / 255.0
    rgb = np.stack([g, g * 0.96 + 0.02, g * 0.9 + 0.05], axis=2)
    p = args.outdir / "scan_rgb.png"
    Image.fromarray((rgb * 255 + 0.5).astype(np.uint8), "RGB").save(p, "PNG")
    out.append(p)
    p = args.outdir / "scan_wide.png"
    scan(400, 640, rng).save(p, "PNG")
    out.append(p)
    for p in out:
        with Image.open(p) as im:
            print(f"{p}  {im.format} {im.mode} {im.size[0]}x{im.size[1]} "
                  f"progressive={bool(im.info.get('progressive') or im.info.get('progression'))}  "
                  f"{p.stat().st_size} bytes")


if __name__ == "__main__":
    main()
