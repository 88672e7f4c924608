#!/usr/bin/env python3
"""Helpers of bench/dicom-series.sh (Debian's python3 with python3-pydicom and numpy).

  series OUT --nilearn-wheel WHEEL --patient-id ID [--slices 64] [--size 256] [--seed 24]
      A brain MR series as a scanner sends it: SLICES axial T1 slices of the MNI ICBM152 2009a T1
      template (an average of 152 real T1 brain MRIs, 1 mm; shipped in the pinned nilearn wheel that
      models/fetch_scans.py fetches), 2 mm apart over the part of the head that holds brain, at 1 mm
      pixels in a SIZE x SIZE matrix, 16-bit MONOCHROME2 (12 bits stored), with MR noise. One Study and
      one Series Instance UID, a distinct SOP Instance UID per slice, MR Image Storage, explicit VR
      little endian. Prints one JSON line: files, bytes, UIDs.
  stats LABEL FILE
      FILE holds one "status seconds" line per upload (curl); prints one JSON line with the count,
      statuses, and median / p90 / min / max / mean in ms of the 201s.
  tree-cpu PID
      Clock ticks used so far by PID and its live descendants (and what they reaped).
  events LOG EVENT [EVENT...]
      The mediscope log (JSON lines): one JSON object {EVENT: [timestamps in s since the epoch]}.
"""
import datetime
import gzip
import hashlib
import json
import math
import os
import sys
import zipfile

NILEARN_SHA256 = "725206484e9fb3f6691f9c2d20204a068759d5072f12055324702ee0cb2bbe8a"
T1 = "nilearn/datasets/data/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"


def read_nifti(raw):
    """A NIfTI-1 volume (single file, little-endian) as float32 [x, y, z] (as models/fetch_scans.py)."""
    import numpy as np
    hdr = raw[:348]
    if int.from_bytes(hdr[:4], "little") != 348:
        sys.exit("dicom-series: the template is not a little-endian NIfTI-1 file")
    dims = np.frombuffer(hdr[40:56], "<i2")
    datatype = int(np.frombuffer(hdr[70:72], "<i2")[0])
    offset = int(np.frombuffer(hdr[108:112], "<f4")[0])
    slope, inter = (float(v) for v in np.frombuffer(hdr[112:120], "<f4"))
    dtypes = {2: "<u1", 4: "<i2", 8: "<i4", 16: "<f4", 64: "<f8", 512: "<u2"}
    shape = tuple(int(d) for d in dims[1:1 + int(dims[0])])[:3]
    data = np.frombuffer(raw, dtypes[datatype], count=int(np.prod(shape)), offset=offset)
    vol = data.reshape(shape, order="F").astype(np.float32)
    return vol * slope + inter if slope not in (0.0, 1.0) else vol


def uid(seed, *parts):
    """A deterministic UID under the 2.25 root (a UUID-derived decimal, PS3.5 B.2)."""
    digest = hashlib.sha256(("mediscope bench dicom-series/%s/" % seed + "/".join(map(str, parts))).encode()).digest()
    return "2.25." + str(int.from_bytes(digest[:16], "big"))


def series(args):
    import numpy as np
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, PYDICOM_IMPLEMENTATION_UID

    out, wheel, patient_id = args["out"], args["nilearn-wheel"], args["patient-id"]
    slices, size, seed = int(args.get("slices", 64)), int(args.get("size", 256)), int(args.get("seed", 24))
    h = hashlib.sha256(open(wheel, "rb").read()).hexdigest()
    if h != NILEARN_SHA256:
        sys.exit("dicom-series: %s has sha256 %s, not the pinned nilearn 0.14.1 wheel's" % (wheel, h))
    with zipfile.ZipFile(wheel) as z:
        vol = read_nifti(gzip.decompress(z.read(T1)))       # [x (R->L), y (P->A), z (I->S)], 1 mm
    nx, ny, nz = vol.shape
    hi = float(np.percentile(vol[vol > 0], 99.5))
    # Axial slices 2 mm apart (closer when that does not fit), centred on the z range that holds brain.
    z = np.nonzero((vol > 0.2 * hi).sum(axis=(0, 1)) > 200)[0]
    spacing = min(2.0, (z[-1] - z[0]) / max(1, slices - 1))
    centre = (z[0] + z[-1]) / 2.0
    ks = [centre + (i - (slices - 1) / 2) * spacing for i in range(slices)]
    if ks[0] < 0 or ks[-1] > nz - 1:
        sys.exit("dicom-series: %d slices %.0f mm apart do not fit the template's %d mm" % (slices, spacing, nz))
    rng = np.random.RandomState(seed)
    study, series_uid, frame = uid(seed, "study"), uid(seed, "series"), uid(seed, "frame")
    os.makedirs(out, exist_ok=True)
    now = datetime.datetime(2026, 12, 1, 9, 30, 0)
    files, total = [], 0
    for i, k in enumerate(ks):
        k0 = int(math.floor(k)); f = k - k0
        plane = vol[:, :, k0] * (1 - f) + vol[:, :, min(k0 + 1, nz - 1)] * f
        # Display orientation: rows anterior->posterior, columns patient right->left (radiological).
        img = np.rot90(plane)                                  # [y reversed, x]
        canvas = np.zeros((256, 256), np.float32)             # 256 mm field of view at 1 mm
        sy, sx = min(256, img.shape[0]), min(256, img.shape[1])
        y0, x0 = (256 - sy) // 2, (256 - sx) // 2
        iy, ix = (img.shape[0] - sy) // 2, (img.shape[1] - sx) // 2
        canvas[y0:y0 + sy, x0:x0 + sx] = img[iy:iy + sy, ix:ix + sx]
        if size != 256:                                        # another matrix: the same field of view
            from PIL import Image
            canvas = np.asarray(Image.fromarray(canvas, "F").resize((size, size), Image.BICUBIC), np.float32)
        # MR magnitude: 12-bit range with Rician noise (the template is an average, so noiseless).
        signal = np.clip(canvas / hi, 0, 1.2) * 3000.0
        sigma = 25.0
        noisy = np.sqrt((signal + rng.normal(0, sigma, signal.shape)) ** 2 + rng.normal(0, sigma, signal.shape) ** 2)
        stored = np.clip(np.rint(noisy), 0, 4095).astype("<u2")

        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4"      # MR Image Storage
        sop = uid(seed, "instance", i + 1)
        meta.MediaStorageSOPInstanceUID = sop
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        ds = Dataset()
        ds.file_meta = meta
        ds.is_little_endian, ds.is_implicit_VR = True, False
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "ND"]
        ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, sop
        ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = now.strftime("%Y%m%d")
        ds.StudyTime = now.strftime("%H%M%S")
        ds.SeriesTime = ds.AcquisitionTime = ds.ContentTime = (now + datetime.timedelta(minutes=3)).strftime("%H%M%S")
        ds.AccessionNumber = "ACC-BENCH-24"
        ds.Modality = "MR"
        ds.Manufacturer = "Mediscope bench"
        ds.InstitutionName = "Mediscope bench"
        ds.ReferringPhysicianName = ""
        ds.StudyDescription = "MRI BRAIN WITHOUT CONTRAST"
        ds.SeriesDescription = "AX T1 SE"
        ds.ManufacturerModelName = "MNI ICBM152 2009a T1 (nilearn 0.14.1)"
        ds.PatientName = "Bench^Series"
        ds.PatientID = patient_id
        ds.PatientBirthDate = "19700101"
        ds.PatientSex = "F"
        ds.PatientAge = "056Y"
        ds.BodyPartExamined = "BRAIN"
        ds.ScanningSequence, ds.SequenceVariant, ds.ScanOptions, ds.MRAcquisitionType = "SE", "NONE", "", "2D"
        ds.SliceThickness = ds.SpacingBetweenSlices = "%.4g" % spacing
        ds.RepetitionTime, ds.EchoTime, ds.NumberOfAverages = "500", "12", "1"
        ds.ImagingFrequency, ds.MagneticFieldStrength = "63.87", "1.5"
        ds.EchoTrainLength, ds.FlipAngle = "1", "90"
        ds.PatientPosition = "HFS"
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series_uid, frame
        ds.StudyID, ds.SeriesNumber, ds.AcquisitionNumber, ds.InstanceNumber = "24", "3", "1", str(i + 1)
        z_mm = (k - nz / 2.0)
        edge = -128.0 + 128.0 / size                           # the centre of the first pixel
        ds.ImagePositionPatient = ["%.2f" % edge, "%.2f" % edge, "%.1f" % z_mm]
        ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
        ds.PositionReferenceIndicator = ""
        ds.SliceLocation = "%.1f" % z_mm
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows, ds.Columns = size, size
        ds.PixelSpacing = ["%.4g" % (256.0 / size)] * 2
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.WindowCenter, ds.WindowWidth = "1400", "2800"
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = "0", "1", "US"
        ds.PixelData = stored.astype("<u2").tobytes()
        path = os.path.join(out, "MR%03d.dcm" % (i + 1))
        ds.save_as(path, write_like_original=False)
        files.append(path)
        total += os.path.getsize(path)
    print(json.dumps({"files": len(files), "bytes": total, "rows": size, "columns": size, "study": study,
                      "series": series_uid, "patient_id": patient_id, "pydicom": pydicom.__version__,
                      "slice_spacing_mm": spacing, "first": files[0], "last": files[-1]}))


def pct(values, q):
    """The q-th percentile, nearest rank."""
    s = sorted(values)
    return s[max(0, min(len(s) - 1, int(math.ceil(q / 100.0 * len(s))) - 1))] if s else float("nan")


def stats(label, path):
    rows = [l.split() for l in open(path) if l.strip()]
    statuses = {}
    for r in rows:
        statuses[r[0]] = statuses.get(r[0], 0) + 1
    ms = [float(r[1]) * 1000 for r in rows if r[0] == "201"]
    med = (sorted(ms)[len(ms) // 2] if len(ms) % 2 else sum(sorted(ms)[len(ms) // 2 - 1:len(ms) // 2 + 1]) / 2) if ms else float("nan")
    print(json.dumps({"label": label, "n": len(rows), "n201": len(ms), "statuses": statuses,
                      "median": round(med, 1), "p90": round(pct(ms, 90), 1), "min": round(min(ms), 1) if ms else None,
                      "max": round(max(ms), 1) if ms else None, "mean": round(sum(ms) / len(ms), 1) if ms else None,
                      "all": [round(x) for x in ms]}))


def events(log, names):
    got = {n: [] for n in names}
    for line in open(log, errors="replace"):
        try:
            e = json.loads(line)
        except ValueError:
            continue
        n = e.get("event")
        if n in got:
            t = e.get("time") or e.get("ts") or e.get("timestamp")
            if isinstance(t, str):
                try:
                    t = datetime.datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp()
                except ValueError:
                    t = None
            got[n].append(t)
    print(json.dumps(got))


def tree_cpu(root):
    """Clock ticks used by process ROOT and its live descendants, with the children each has reaped."""
    parent, ticks = {}, {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            stat = open("/proc/%s/stat" % pid).read()
        except OSError:
            continue
        f = stat[stat.rindex(")") + 2:].split()
        parent[int(pid)] = int(f[1])
        ticks[int(pid)] = sum(int(x) for x in f[11:15])     # utime stime cutime cstime
    total = 0
    for pid in ticks:
        p = pid
        while p > 1 and p != root:
            p = parent.get(p, 0)
        if p == root:
            total += ticks[pid]
    print(total)


def main():
    cmd, rest = sys.argv[1], sys.argv[2:]
    if cmd == "series":
        args, i = {"out": rest[0]}, 1
        while i < len(rest):
            args[rest[i].lstrip("-")] = rest[i + 1]; i += 2
        series(args)
    elif cmd == "stats":
        stats(rest[0], rest[1])
    elif cmd == "tree-cpu":
        tree_cpu(int(rest[0]))
    elif cmd == "events":
        events(rest[0], rest[1:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
