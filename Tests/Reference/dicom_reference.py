"""Reference 8-bit renderings of real DICOM test files, made with pydicom.

Files: Debian's python3-pydicom test files (/usr/lib/python3/dist-packages/pydicom/data/test_files) and
PyPI's pydicom-data (data_store/data), both installed, never committed. For each file with pixel data:
the middle frame ((frames - 1) // 2), pydicom's pixel handlers (pylibjpeg and its plugins), then

  apply_modality_lut -> apply_windowing (the first window) when the file has a usable one, else
  apply_voi (VOI LUT Sequence) scaled from 0..2^bits-1, else the frame's full range; MONOCHROME1
  inverted; colour converted to RGB by pydicom and scaled from Bits Stored;

mapped to 0..255 and rounded to nearest: the same policy as DicomRenderer. Enhanced MR/CT (PS3.3
C.7.6.16): the frame's Pixel Value Transformation and Frame VOI LUT macros (Per-frame Functional Groups,
else Shared) are copied to the top level before rendering, as PS3.3 says they apply to that frame. Writes OUT/index.json
(one entry per file: name, status, size, channels, photometric, transfer syntax) and OUT/<name>.raw.

Usage: dicom_reference.py --out DIR
"""
import argparse
import json
import os
import sys
import warnings

import numpy as np
import pydicom
from pydicom.pixels import apply_modality_lut, apply_voi, apply_windowing

DEBIAN = "/usr/lib/python3/dist-packages/pydicom/data/test_files"


def data_store():
    import data_store as ds_pkg
    return os.path.join(os.path.dirname(ds_pkg.__file__), "data")


def window_range(ds):
    """pydicom's apply_windowing output range (y_min, y_max) for this data set."""
    if ds.get("ModalityLUTSequence"):
        y_min, y_max = 0, 2 ** ds.ModalityLUTSequence[0].LUTDescriptor[2] - 1
    elif ds.PixelRepresentation == 0:
        y_min, y_max = 0, 2 ** ds.BitsStored - 1
    else:
        y_min, y_max = -(2 ** (ds.BitsStored - 1)), 2 ** (ds.BitsStored - 1) - 1
    if "RescaleSlope" in ds and "RescaleIntercept" in ds:
        y_min = y_min * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        y_max = y_max * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    return y_min, y_max


def usable_window(ds):
    if "WindowCenter" not in ds or "WindowWidth" not in ds:
        return False
    w = ds["WindowWidth"].value
    w = float(w[0] if ds["WindowWidth"].VM > 1 else w)
    function = str(ds.get("VOILUTFunction", "LINEAR")).upper()
    return w >= 1 if function not in ("LINEAR_EXACT", "SIGMOID") else w > 0


def with_functional_groups(ds, index):
    """A copy of ds with the rescale and window of frame `index`'s functional groups at the top level."""
    groups = []
    if "PerFrameFunctionalGroupsSequence" in ds and index < len(ds.PerFrameFunctionalGroupsSequence):
        groups.append(ds.PerFrameFunctionalGroupsSequence[index])
    if "SharedFunctionalGroupsSequence" in ds and len(ds.SharedFunctionalGroupsSequence):
        groups.append(ds.SharedFunctionalGroupsSequence[0])
    out = ds
    for macro, keywords in (("PixelValueTransformationSequence", ("RescaleSlope", "RescaleIntercept")),
                            ("FrameVOILUTSequence", ("WindowCenter", "WindowWidth", "VOILUTFunction"))):
        for group in groups:
            items = getattr(group, macro, None) or []
            if len(items) and all(k in items[0] for k in keywords[:2]):
                if out is ds:
                    out = ds.copy()
                for k in keywords:
                    if k in items[0]:
                        setattr(out, k, getattr(items[0], k))
                    elif k in out:
                        delattr(out, k)
                break
    return out


def render(ds, frame):
    if ds.SamplesPerPixel == 3:
        x = frame.astype(np.float64)
        if ds.BitsStored != 8:
            x = x * 255 / (2 ** ds.BitsStored - 1)
        return x, "none"
    m = apply_modality_lut(frame, ds)
    if usable_window(ds):
        y_min, y_max = window_range(ds)
        x = (apply_windowing(m.astype(np.float64), ds) - y_min) / (y_max - y_min) * 255
        voi = "window"
    elif ds.get("VOILUTSequence"):
        bits = ds.VOILUTSequence[0].LUTDescriptor[2]
        x = apply_voi(np.floor(m).astype(np.int64), ds).astype(np.float64) * 255 / (2 ** bits - 1)
        voi = "lutSequence"
    else:
        m = m.astype(np.float64)
        lo, hi = m.min(), m.max()
        x = (m - lo) / (hi - lo) * 255 if hi > lo else np.zeros_like(m)
        voi = "frameRange"
    if ds.PhotometricInterpretation == "MONOCHROME1":
        x = 255 - np.clip(np.floor(x + 0.5), 0, 255)
    return x, voi


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    files = []
    for folder, prefix in ((DEBIAN, "debian"), (data_store(), "pydicom-data")):
        for name in sorted(os.listdir(folder)):
            if name.endswith(".dcm"):
                files.append((os.path.join(folder, name), f"{prefix}/{name}"))
    index = []
    for path, name in files:
        entry = {"name": name, "path": path}
        try:
            ds = pydicom.dcmread(path, force=True)
            entry["transferSyntax"] = str(ds.file_meta.get("TransferSyntaxUID", "")) if "file_meta" in dir(ds) else ""
            if "PixelData" not in ds:
                entry["status"] = "no-pixel-data"
            else:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    frames = int(ds.get("NumberOfFrames", 1) or 1)
                    middle = (frames - 1) // 2
                    arr = ds.pixel_array
                    frame = arr[middle] if frames > 1 else arr
                    x, voi = render(with_functional_groups(ds, middle), frame)
                out = np.clip(np.floor(x + 0.5), 0, 255).astype(np.uint8)
                entry.update(status="decoded", rows=int(ds.Rows), columns=int(ds.Columns),
                             channels=int(ds.SamplesPerPixel), frame=middle, voi=voi,
                             photometric=str(ds.PhotometricInterpretation), bitsAllocated=int(ds.BitsAllocated))
                raw = name.replace("/", "__") + ".raw"
                out.tofile(os.path.join(args.out, raw))
                entry["raw"] = raw
        except Exception as e:  # the reference records what pydicom cannot do, too
            entry["status"] = "pydicom-error"
            entry["error"] = f"{type(e).__name__}: {e}"[:300]
        index.append(entry)
    with open(os.path.join(args.out, "index.json"), "w") as f:
        json.dump(index, f, indent=1)
    decoded = sum(e["status"] == "decoded" for e in index)
    print(f"dicom_reference: {decoded} of {len(index)} files rendered -> {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
