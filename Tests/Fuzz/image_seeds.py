"""The image seeds (corpus/images): small JPEG/PNG fixtures, WebP, 12-bit and lossless JPEG from
DCMTK's fragments, a scan bomb, PNG variants (see make_corpus.py)."""
import io
import os
import shutil

import numpy as np

import seed_builders
from seed_builders import FIXTURES, TMP, fragments_of, gray8, progressive_jpeg_8x8, rgb8, scan_bomb


def image_seeds():
    from PIL import Image
    out = os.path.join(seed_builders.OUT, "images")
    keep = ["gray.jpg", "progressive.jpg", "cmyk_adobe.jpg", "cmyk_noadobe.jpg", "rgb_444.jpg", "rgb_baseline.jpg",
            "bad_truncated_progressive.jpg", "huge_20000.jpg", "zero_0x0.jpg", "gray1.png", "gray8.png",
            "gray16.png", "gray_alpha.png", "interlaced.png", "palette.png", "palette_trns.png", "rgb16.png",
            "rgba.png", "huge_70000x10.png", "zero_0x0.png", "bad_crc_ihdr.png"]
    for name in keep:
        src = os.path.join(FIXTURES, name)
        if os.path.exists(src) and os.path.getsize(src) <= 16384:
            shutil.copyfile(src, os.path.join(out, name))

    def write(name, img, fmt, **kw):
        f = io.BytesIO()
        img.save(f, fmt, **kw)
        with open(os.path.join(out, name), "wb") as g:
            g.write(f.getvalue())
        return f.getvalue()

    rgb = Image.fromarray(rgb8(16, 12))
    rgba = Image.fromarray(np.dstack([rgb8(16, 12), gray8(16, 12)]), "RGBA")
    write("lossy.webp", rgb, "WEBP", quality=60, method=0)
    write("lossless.webp", rgba, "WEBP", lossless=True)
    write("lossy_alpha.webp", rgba, "WEBP", quality=50)
    write("exif_orientation.jpg", rgb, "JPEG", quality=70, exif=bytes.fromhex(
        "4d4d002a00000008000101120003000000010006000000000000"))
    write("progressive_color.jpg", rgb, "JPEG", quality=70, progressive=True, subsampling=2)
    write("palette_4bit.png", rgb.convert("P", palette=Image.ADAPTIVE, colors=16), "PNG", bits=4)
    write("la.png", rgba.convert("LA"), "PNG")
    write("exif_orientation.png", rgb, "PNG", exif=bytes.fromhex("4d4d002a00000008000101120003000000010003000000000000"))
    with open(os.path.join(out, "scan_bomb_300.jpg"), "wb") as g:
        g.write(scan_bomb(progressive_jpeg_8x8(), 64, 64, 300))
    # 12-bit and lossless (SOF3) JPEG from DCMTK's fragments: the codec refuses them (variant).
    for src, name in (("jpeg_extended12_gray16.dcm", "jpeg12_extended.jpg"), ("jpeg_lossless_sv1_gray16.dcm", "jpeg_lossless_sof3.jpg")):
        frag = fragments_of(os.path.join(TMP, src))[1]
        end = frag.rfind(b"\xff\xd9")
        with open(os.path.join(out, name), "wb") as g:
            g.write(frag[:end + 2] if end > 0 else frag)
