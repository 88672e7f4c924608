"""What the seed writers of make_corpus.py build with: fixed pixels, Secondary Capture data sets,
the temporary and corpus folders, encapsulated Pixel Data and JPEG surgery."""
import io
import os
import shutil
import struct
import subprocess
import sys
import tempfile

import numpy as np
import pydicom
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.uid import ExplicitVRLittleEndian

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
FIXTURES = os.path.join(ROOT, "Tests", "MediscopeImagingTests", "Fixtures")
UID_ROOT = "1.2.826.0.1.3680043.8.498.77."   # pydicom's root, a fixed branch for these seeds
SC = "1.2.840.10008.5.1.4.1.1.7"              # Secondary Capture Image Storage
RLE = "1.2.840.10008.1.2.5"
JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
JPEG_EXTENDED = "1.2.840.10008.1.2.4.51"
JPEG_PROGRESSIVE = "1.2.840.10008.1.2.4.55"

TMP = tempfile.mkdtemp(prefix="mediscope-corpus-")
OUT = None   # the corpus folder: make_corpus.main sets it before any seed is written


def uid(n):
    return UID_ROOT + str(n)


# ---------------------------------------------------------------- pixels

def gray16(w, h, frames=1, bits=12, signed=False):
    y, x = np.mgrid[0:h, 0:w]
    out = []
    for f in range(frames):
        v = (x * 97 + y * 61 + f * 400) % (1 << bits)
        if signed:
            v = v - (1 << (bits - 1))
        out.append(v.astype(np.int16 if signed else np.uint16))
    return np.stack(out) if frames > 1 else out[0]


def gray8(w, h, frames=1):
    y, x = np.mgrid[0:h, 0:w]
    out = [((x * 13 + y * 7 + f * 50) % 256).astype(np.uint8) for f in range(frames)]
    return np.stack(out) if frames > 1 else out[0]


def rgb8(w, h, frames=1):
    y, x = np.mgrid[0:h, 0:w]
    out = []
    for f in range(frames):
        out.append(np.stack([(x * 16 + f * 40) % 256, (y * 16) % 256, ((x + y) * 8) % 256], axis=-1).astype(np.uint8))
    return np.stack(out) if frames > 1 else out[0]


# ---------------------------------------------------------------- data sets

def dataset(pixels, photometric="MONOCHROME2", bits_stored=None, signed=False, frames=1, planar=0, n=1, **extra):
    """An explicit VR little endian Secondary Capture file with `pixels` (frames, rows, columns[, 3])."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SC
    meta.MediaStorageSOPInstanceUID = uid(n)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = UID_ROOT + "0"
    ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
    ds.is_little_endian, ds.is_implicit_VR = True, False
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = SC
    ds.SOPInstanceUID = uid(n)
    ds.StudyInstanceUID = uid(n + 1000)
    ds.SeriesInstanceUID = uid(n + 2000)
    ds.PatientName = "Fuzz^Seed"
    ds.PatientID = "SEED%d" % n
    ds.PatientSex = "O"
    ds.PatientAge = "042Y"
    ds.Modality = "OT"
    ds.StudyDate = "20240101"
    colour = pixels.ndim == (4 if frames > 1 else 3)
    shape = pixels.shape[1:] if frames > 1 else pixels.shape
    ds.Rows, ds.Columns = int(shape[0]), int(shape[1])
    ds.SamplesPerPixel = 3 if colour else 1
    ds.PhotometricInterpretation = photometric
    if colour:
        ds.PlanarConfiguration = planar
        if planar == 1:
            axes = (0, 3, 1, 2) if frames > 1 else (2, 0, 1)
            pixels = np.ascontiguousarray(np.transpose(pixels, axes))
    bits = pixels.dtype.itemsize * 8
    ds.BitsAllocated = bits
    ds.BitsStored = bits_stored or bits
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 1 if signed else 0
    if frames > 1:
        ds.NumberOfFrames = frames
    for k, v in extra.items():
        setattr(ds, k, v)
    ds.PixelData = pixels.tobytes()
    ds["PixelData"].VR = "OW" if bits == 16 else "OB"
    return ds


def save(ds, name):
    path = os.path.join(TMP, name)
    ds.save_as(path, write_like_original=False)
    return path


def run(*args):
    r = subprocess.run(args, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("command failed: %s\n%s%s" % (" ".join(args), r.stdout, r.stderr))


def emit(name, path_or_bytes):
    dst = os.path.join(OUT, "dicom", name)
    if isinstance(path_or_bytes, (bytes, bytearray)):
        with open(dst, "wb") as f:
            f.write(path_or_bytes)
    else:
        shutil.copyfile(path_or_bytes, dst)


def encode(ds, little=True, implicit=False):
    """A data set's elements alone (no preamble, no meta information)."""
    f = DicomBytesIO()
    f.is_little_endian, f.is_implicit_VR = little, implicit
    pydicom.filewriter.write_dataset(f, ds)
    return f.getvalue()


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def fragments_of(path):
    """The items of an encapsulated Pixel Data: [offset table, fragment, ...]."""
    value = pydicom.dcmread(path).PixelData
    out, i = [], 0
    while i + 8 <= len(value):
        tag, length = struct.unpack_from("<II", value, i)
        if tag != 0xE000FFFE:
            break
        out.append(bytes(value[i + 8:i + 8 + length]))
        i += 8 + length
    return out


def items(raw_items):
    """Encapsulated Pixel Data value (items only; pydicom adds the sequence delimiter)."""
    return b"".join(b"\xfe\xff\x00\xe0" + struct.pack("<I", len(v)) + v for v in raw_items)


def encapsulated(path, raw_items, name, **changes):
    """`path` (an encapsulated file) with its Pixel Data items replaced and attributes changed."""
    ds = pydicom.dcmread(path)
    for k, v in changes.items():
        setattr(ds, k, v)
    ds.PixelData = items(raw_items)
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    return save(ds, name)


# ---------------------------------------------------------------- JPEG surgery

def jpeg_segments(b):
    """(marker, start, end) of every segment, each scan with its entropy-coded data."""
    out = [(0xD8, 0, 2)]
    i = 2
    while i + 3 < len(b) and b[i] == 0xFF:
        m = b[i + 1]
        if m == 0xD9:
            out.append((m, i, i + 2))
            break
        end = i + 2 + (b[i + 2] << 8 | b[i + 3])
        if m == 0xDA:
            while end + 1 < len(b) and not (b[end] == 0xFF and b[end + 1] != 0 and not 0xD0 <= b[end + 1] <= 0xD7):
                end += 1
        out.append((m, i, end))
        i = end
    return out


def scan_bomb(small_progressive, width, height, scans):
    """A progressive JPEG claiming width x height with `scans` scans: the last scan repeated
    (ImageTestKit's ImageBuilders.scanBomb)."""
    b = bytearray(small_progressive)
    segs = jpeg_segments(b)
    sos = [s for s in segs if s[0] == 0xDA]
    sof = next(s for s in segs if s[0] == 0xC2)
    last = sos[-1]
    out = bytearray(b[:last[2]])
    out += bytes(b[last[1]:last[2]]) * (scans - len(sos))
    out += b"\xff\xd9"
    out[sof[1] + 5:sof[1] + 9] = struct.pack(">HH", height, width)
    return bytes(out)


def progressive_jpeg_8x8():
    from PIL import Image
    img = Image.fromarray(gray8(8, 8))
    f = io.BytesIO()
    img.save(f, "JPEG", quality=75, progressive=True)
    return f.getvalue()


def patch_sof(jpeg, width, height):
    b = bytearray(jpeg)
    for m, s, e in jpeg_segments(b):
        if 0xC0 <= m <= 0xCF and m not in (0xC4, 0xC8, 0xCC):
            b[s + 5:s + 9] = struct.pack(">HH", height, width)
            break
    return bytes(b)
