#!/usr/bin/python3
"""Writes the MediscopeImaging reference fixtures (deterministic; rerun to regenerate).

Run with Debian's /usr/bin/python3 (python3-pil = Pillow 9.4 over libjpeg-turbo 2.1.5,
python3-numpy). OpenCV references (JET table, INTER_LINEAR float resize, Grad-CAM overlay)
need cv2: pass --cv2-python /path/to/python-with-cv2 (e.g. a venv made from /usr/bin/python3
with --system-site-packages and `pip install "numpy<2" opencv-python-headless`); without it
the existing opencv.json / *.f32 / overlay files are kept as they are.

    /usr/bin/python3 Tests/Reference/make_imaging_fixtures.py --cv2-python /tmp/cvenv/bin/python

Output: Tests/MediscopeImagingTests/Fixtures/ (index.json + sources + raw references).
Raw references are headerless 8-bit interleaved bytes (.rgb = 3 channels, .rgba = 4,
.l = 1) or little-endian float32 (.f32), row-major.
"""
import io
import json
import os
import struct
import subprocess
import sys
import zlib

import numpy as np
import PIL
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.normpath(os.path.join(HERE, "..", "MediscopeImagingTests", "Fixtures"))


def pattern(w, h, seed, channels=3, noise=12, edges=60):
    """Smooth gradients + sharp edges + noise: exercises ringing, clipping and rounding."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    base = []
    for c in range(channels):
        v = 128 + 100 * np.sin(x / (3 + 2 * c) + c) * np.cos(y / (5 + c))
        v += np.where((x // 7 + y // 5 + c) % 2 == 0, edges, -edges)  # hard edges -> overshoot/clip
        v += rng.normal(0, noise, size=(h, w))
        base.append(v)
    return np.clip(np.stack(base, axis=-1), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------- hand-written PNGs
# Pillow cannot write Adam7-interlaced or 16-bit RGB PNGs, so these are built by hand.

def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def write_png(samples, color_type, bit_depth, interlace=False, plte=None, trns=None):
    """samples: (h, w, c) uint8/uint16 array of raw sample values."""
    h, w = samples.shape[:2]
    dtype = ">u2" if bit_depth == 16 else "u1"

    def scanlines(img):
        rows = b""
        for row in img:
            # Filter type 0 (None) on every row; libpng handles the others for Pillow-made files.
            rows += b"\x00" + row.astype(dtype).tobytes()
        return rows

    if not interlace:
        raw = scanlines(samples)
    else:
        raw = b""
        passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
        for x0, y0, dx, dy in passes:
            sub = samples[y0::dy, x0::dx]
            if sub.shape[0] and sub.shape[1]:
                raw += scanlines(sub)
    ihdr = struct.pack(">IIBBBBB", w, h, bit_depth, color_type, 0, 0, 1 if interlace else 0)
    data = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr)
    if plte is not None:
        data += png_chunk(b"PLTE", plte)
    if trns is not None:
        data += png_chunk(b"tRNS", trns)
    data += png_chunk(b"IDAT", zlib.compress(raw, 9)) + png_chunk(b"IEND", b"")
    return data


def save_pil(im, name, **kw):
    buf = io.BytesIO()
    im.save(buf, format="JPEG" if name.endswith(".jpg") else "PNG", **kw)
    return buf.getvalue()


def main():
    cv2_python = None
    if "--cv2-python" in sys.argv:
        cv2_python = sys.argv[sys.argv.index("--cv2-python") + 1]
    os.makedirs(OUT, exist_ok=True)
    index = {"pillow": PIL.__version__, "sources": [], "rgba_resizes": [], "bad": {}}

    def put(name, data):
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)

    sources = {}
    # JPEGs (Pillow's encoder; what matters is that both sides decode the same bytes).
    sources["gray.jpg"] = save_pil(Image.fromarray(pattern(61, 45, 1, 1)[:, :, 0], "L"), "x.jpg", quality=90)
    sources["rgb_baseline.jpg"] = save_pil(Image.fromarray(pattern(160, 120, 2)), "x.jpg", quality=90)
    sources["rgb_444.jpg"] = save_pil(Image.fromarray(pattern(37, 23, 3)), "x.jpg", quality=95, subsampling=0)
    sources["progressive.jpg"] = save_pil(Image.fromarray(pattern(61, 45, 4)), "x.jpg", quality=85, progressive=True)
    cmyk = Image.fromarray(pattern(37, 23, 5, 4), "CMYK")
    cmyk_adobe = save_pil(cmyk, "x.jpg", quality=92)  # libjpeg writes an Adobe APP14 marker
    sources["cmyk_adobe.jpg"] = cmyk_adobe
    # Same file with APP14 renamed to APP15, so libjpeg sees no Adobe marker.
    assert b"\xff\xee\x00\x0eAdobe" in cmyk_adobe
    sources["cmyk_noadobe.jpg"] = cmyk_adobe.replace(b"\xff\xee\x00\x0eAdobe", b"\xff\xef\x00\x0eAdobe", 1)
    sources["big.jpg"] = save_pil(Image.fromarray(pattern(512, 512, 6, noise=3, edges=20)), "x.jpg", quality=75)
    # PNGs
    sources["gray8.png"] = save_pil(Image.fromarray(pattern(37, 23, 7, 1)[:, :, 0], "L"), "x.png")
    g16 = (pattern(37, 23, 8, 1)[:, :, 0].astype(np.uint16) * 257 + np.arange(37, dtype=np.uint16)).astype(np.uint16)
    sources["gray16.png"] = write_png(g16[:, :, None], 0, 16)
    sources["gray1.png"] = save_pil(Image.fromarray(pattern(37, 23, 9, 1)[:, :, 0] > 127), "x.png")
    sources["gray_alpha.png"] = save_pil(Image.fromarray(pattern(37, 23, 10, 2), "LA"), "x.png")
    sources["rgb.png"] = save_pil(Image.fromarray(pattern(61, 45, 11)), "x.png")
    sources["rgba.png"] = save_pil(Image.fromarray(pattern(61, 45, 12, 4), "RGBA"), "x.png")
    pal = Image.fromarray(pattern(37, 23, 13)).quantize(colors=40, dither=Image.Dither.NONE)
    sources["palette.png"] = save_pil(pal, "x.png")
    pal_t = pal.copy()
    pal_t.info["transparency"] = bytes([0, 128] + [255] * 5 + [30])
    sources["palette_trns.png"] = save_pil(pal_t, "x.png", transparency=pal_t.info["transparency"])
    sources["rgb16.png"] = write_png(pattern(37, 23, 14).astype(np.uint16) * 257 + 99, 2, 16)
    sources["interlaced.png"] = write_png(pattern(61, 45, 15), 2, 8, interlace=True)

    resize_sizes = [(17, 29), (8, 8), (53, 41), (1, 1)]
    for name, data in sources.items():
        put(name, data)
        im = Image.open(io.BytesIO(data))
        im.load()
        if name == "gray16.png":
            # Pillow opens 16-bit gray as mode I and convert() clips at 255 (almost all white);
            # Mediscope keeps the high byte instead, so the reference is computed here.
            assert im.mode in ("I", "I;16", "I;16B"), im.mode
            hi = (np.asarray(im).astype(np.uint32) >> 8).astype(np.uint8)
            rgb = Image.fromarray(np.repeat(hi[:, :, None], 3, axis=2), "RGB")
            channels = 1
        else:
            rgb = im.convert("RGB")
            channels = {"L": 1, "1": 1, "RGB": 3, "CMYK": 3, "RGBA": 4, "LA": 4, "P": 3}[im.mode]
            if im.mode == "P" and "transparency" in im.info:
                channels = 4
        stem = name.rsplit(".", 1)[0]
        entry = {"file": name, "width": im.size[0], "height": im.size[1], "pillowMode": im.mode,
                 "decodedChannels": channels, "rgb": f"{stem}.rgb", "gray": f"{stem}.l", "resizes": []}
        if name == "big.jpg":
            entry["rgb"] = entry["gray"] = None
        else:
            put(entry["rgb"], rgb.tobytes())
            put(entry["gray"], rgb.convert("L").tobytes())
        w, h = im.size
        # Kept small so the fixtures stay well under 1 MB.
        sizes = list(resize_sizes)
        if w < 100:
            sizes += [(w, max(1, round(h * 0.45))), (round(w * 1.3), h)]  # one axis only
            if w > 50:
                sizes += [(79, 59)]  # upscale both (53x41 already does for the 37x23 ones)
        else:
            sizes += [(w, round(h * 0.2)), (round(w * 0.2), h), (230, 20)]  # one axis; up x + down y
        if name == "big.jpg":
            # The production case (512x512 -> 240x240); its decode is covered by the others.
            sizes = [(240, 240), (8, 8)]
        for rw, rh in sizes:
            fn = f"{stem}_{rw}x{rh}.rgb"
            put(fn, rgb.resize((rw, rh)).tobytes())
            entry["resizes"].append({"width": rw, "height": rh, "rgb": fn})
        index["sources"].append(entry)

    # RGBA resize goes through Pillow's premultiplied RGBa path.
    rgba = Image.open(io.BytesIO(sources["rgba.png"]))
    for rw, rh in [(17, 29), (79, 59), (61, 20)]:
        fn = f"rgba_{rw}x{rh}.rgba"
        put(fn, rgba.resize((rw, rh)).tobytes())
        index["rgba_resizes"].append({"source": "rgba.png", "width": rw, "height": rh, "rgba": fn})

    # ------------------------------------------------------------ bad inputs
    put("bad_text.jpg", b"hello, this is not an image at all\n")
    base = sources["rgb_baseline.jpg"]
    put("bad_truncated.jpg", base[: len(base) // 2])
    put("bad_truncated_progressive.jpg", sources["progressive.jpg"][: len(sources["progressive.jpg"]) * 2 // 3])
    png = bytearray(sources["rgb.png"])
    idat = png.find(b"IDAT")
    idat_len = struct.unpack(">I", png[idat - 4 : idat])[0]
    png[idat + 4 + idat_len] ^= 0x01  # first byte of the IDAT CRC
    put("bad_crc_idat.png", bytes(png))
    png = bytearray(sources["rgb.png"])
    png[8 + 8 + 13] ^= 0x80  # first byte of the IHDR CRC
    put("bad_crc_ihdr.png", bytes(png))
    put("bad_truncated.png", sources["rgb.png"][: len(sources["rgb.png"]) // 2])
    # Headers claiming 20000x20000 (1.2 GB as RGB) followed by almost no data.
    ihdr = struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0)
    put("huge_20000.png", b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + png_chunk(b"IEND", b""))
    ihdr = struct.pack(">IIBBBBB", 70000, 10, 8, 0, 0, 0, 0)  # 0.7 MP but too wide
    put("huge_70000x10.png", b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + png_chunk(b"IEND", b""))
    ihdr = struct.pack(">IIBBBBB", 0, 0, 8, 2, 0, 0, 0)
    put("zero_0x0.png", b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", zlib.compress(b"")) + png_chunk(b"IEND", b""))
    jpg = bytearray(sources["rgb_444.jpg"])
    sof = jpg.find(b"\xff\xc0")
    jpg[sof + 5 : sof + 9] = struct.pack(">HH", 20000, 20000)  # height, width
    put("huge_20000.jpg", bytes(jpg))
    jpg[sof + 5 : sof + 9] = struct.pack(">HH", 0, 0)
    put("zero_0x0.jpg", bytes(jpg))

    with open(os.path.join(OUT, "index.json"), "w") as f:
        json.dump(index, f, indent=1, sort_keys=True)

    if cv2_python:
        subprocess.run([cv2_python, os.path.abspath(__file__), "--opencv-part"], check=True)


def opencv_part():
    """Runs under a Python with cv2: JET table, INTER_LINEAR float resize, CAM overlay."""
    import cv2

    out = {"opencv": cv2.__version__, "bilinear": [], "overlay": []}
    jet = cv2.applyColorMap(np.arange(256, dtype=np.uint8).reshape(256, 1), cv2.COLORMAP_JET)
    out["jetRGB"] = jet[:, 0, ::-1].reshape(-1).tolist()

    rng = np.random.default_rng(42)
    cases = [((7, 7), (37, 23)), ((10, 8), (61, 45)), ((61, 45), (13, 9)), ((20, 16), (10, 8)),
             ((7, 7), (96, 96)), ((1, 5), (4, 9))]
    for i, ((sw, sh), (dw, dh)) in enumerate(cases):
        src = rng.normal(0, 3, size=(sh, sw)).astype(np.float32)
        dst = cv2.resize(src, (dw, dh), interpolation=cv2.INTER_LINEAR)
        sname, dname = f"bilinear{i}_src_{sw}x{sh}.f32", f"bilinear{i}_dst_{dw}x{dh}.f32"
        src.astype("<f4").tofile(os.path.join(OUT, sname))
        dst.astype("<f4").tofile(os.path.join(OUT, dname))
        out["bilinear"].append({"srcWidth": sw, "srcHeight": sh, "src": sname,
                                "dstWidth": dw, "dstHeight": dh, "dst": dname})

    def scale_cam_image(cam, target_size=None):  # pytorch_grad_cam.utils.image
        img = cam - np.min(cam)
        img = img / (1e-7 + np.max(img))
        if target_size is not None:
            img = cv2.resize(img, target_size)
        return np.float32(img)

    def show_cam_on_image(img, mask, use_rgb=False, colormap=cv2.COLORMAP_JET, image_weight=0.5):
        heatmap = cv2.applyColorMap(np.uint8(255 * mask), colormap)
        if use_rgb:
            heatmap = cv2.cvtColor(heatmap, cv2.COLOR_BGR2RGB)
        heatmap = np.float32(heatmap) / 255
        cam = (1 - image_weight) * heatmap + image_weight * img
        cam = cam / np.max(cam)
        return np.uint8(255 * cam)

    image = np.fromfile(os.path.join(OUT, "rgb_444.rgb"), dtype=np.uint8).reshape(23, 37, 3)
    for j, (cw, ch, weight) in enumerate([(7, 7, 0.5), (37, 23, 0.3)]):
        raw = rng.normal(0, 1, size=(ch, cw)).astype(np.float32)
        normalized = scale_cam_image(raw)
        mask = cv2.resize(normalized, (37, 23)) if (cw, ch) != (37, 23) else normalized
        result = show_cam_on_image(np.float32(image) / 255, mask, use_rgb=True, image_weight=weight)
        cname, nname, rname = f"cam{j}_raw_{cw}x{ch}.f32", f"cam{j}_normalized_{cw}x{ch}.f32", f"cam{j}_overlay.rgb"
        raw.astype("<f4").tofile(os.path.join(OUT, cname))
        normalized.astype("<f4").tofile(os.path.join(OUT, nname))
        with open(os.path.join(OUT, rname), "wb") as f:
            f.write(result.tobytes())
        out["overlay"].append({"image": "rgb_444.rgb", "imageWidth": 37, "imageHeight": 23,
                               "camWidth": cw, "camHeight": ch, "raw": cname, "normalized": nname,
                               "imageWeight": weight, "overlay": rname})
    with open(os.path.join(OUT, "opencv.json"), "w") as f:
        json.dump(out, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    if "--opencv-part" in sys.argv:
        opencv_part()
    else:
        main()
