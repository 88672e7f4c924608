#!/usr/bin/python3
"""Writes the fuzzers' seed corpus: Tests/Fuzz/corpus/dicom and Tests/Fuzz/corpus/images.

The corpus is committed (CI never regenerates it); run this again only to change it, then commit the
result. Deterministic: fixed pixels, fixed UIDs, no dates.

Needs Debian's python3-pydicom, python3-numpy, python3-pil (for the WebP and PNG seeds) and DCMTK's
command line tools (Debian's `dcmtk` package: dcmconv, dcmcrle, dcmcjpeg, dcmcjpls).

DICOM seeds: every transfer syntax the shim decodes (implicit/explicit VR little endian, explicit big
endian, deflated, RLE, JPEG baseline, extended 12-bit, spectral, progressive, lossless process 14 and
SV1, JPEG-LS lossless and near-lossless, JPEG 2000 from pydicom's test files), grey 8/16-bit signed and unsigned, RGB by pixel and by plane,
YBR_FULL_422, multi-frame, LUT sequences, character sets, files without preamble or meta information,
and hostile classes: a JPEG that codes fewer pixels than Rows x Columns (and more), RLE with segment
offsets past the fragment and fragments shorter than the 64-byte RLE header, a many-scan progressive
JPEG in an Icon Image Sequence (0088,0200) before the real Pixel Data (and one in the real Pixel Data
after a harmless icon), Number of Frames huge with one frame of data, Rescale Slope 0 and NaN/inf
windows, deep sequences, short native pixel data.

Image seeds: small JPEG/PNG files from Tests/MediscopeImagingTests/Fixtures, plus WebP (lossy,
lossless, alpha), 12-bit and lossless JPEG (taken from DCMTK's fragments), a scan bomb, PNG variants.

Usage: /usr/bin/python3 Tests/Fuzz/make_corpus.py [--out Tests/Fuzz/corpus]
"""
import argparse
import os
import shutil
import sys

# The seed writers are modules beside this file (a script's folder is on sys.path).
import seed_builders
from dicom_seeds import dicom_seeds
from image_seeds import image_seeds

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(HERE, "corpus"))
    args = ap.parse_args()
    seed_builders.OUT = OUT = args.out
    for tool in ("dcmconv", "dcmcrle", "dcmcjpeg", "dcmcjpls"):
        if not shutil.which(tool):
            sys.exit("%s not found: install Debian's dcmtk package (apt-get install dcmtk)" % tool)
    for sub in ("dicom", "images"):
        shutil.rmtree(os.path.join(OUT, sub), ignore_errors=True)
        os.makedirs(os.path.join(OUT, sub))
    try:
        dicom_seeds()
        image_seeds()
    finally:
        shutil.rmtree(seed_builders.TMP, ignore_errors=True)
    total = 0
    for sub in ("dicom", "images"):
        files = os.listdir(os.path.join(OUT, sub))
        size = sum(os.path.getsize(os.path.join(OUT, sub, f)) for f in files)
        total += size
        print("%s: %d files, %d bytes" % (sub, len(files), size))
    print("total: %d bytes" % total)


if __name__ == "__main__":
    main()
