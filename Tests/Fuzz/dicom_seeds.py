"""The DICOM seeds (corpus/dicom): every transfer syntax the shim decodes and the hostile classes
listed in make_corpus.py's docstring, written through DCMTK's converters and pydicom."""
import io
import os
import struct

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from seed_builders import (JPEG_BASELINE, JPEG_PROGRESSIVE, TMP, dataset, emit, encapsulated, encode, fragments_of, gray8,
                           gray16, items, patch_sof, progressive_jpeg_8x8, read_bytes, rgb8, run, save, scan_bomb)


def dicom_seeds():
    n = iter(range(1, 1000))
    g16 = save(dataset(gray16(24, 20), n=next(n), RescaleSlope="1.5", RescaleIntercept="-1024",
                       WindowCenter="1000", WindowWidth="2000"), "g16.dcm")
    g8 = save(dataset(gray8(16, 16), photometric="MONOCHROME1", n=next(n)), "g8.dcm")
    rgb = save(dataset(rgb8(16, 12), photometric="RGB", n=next(n)), "rgb.dcm")
    rgb_planar = save(dataset(rgb8(16, 12), photometric="RGB", planar=1, n=next(n)), "rgbp.dcm")
    signed = save(dataset(gray16(20, 16, bits=16, signed=True), signed=True, n=next(n),
                          RescaleSlope="1", RescaleIntercept="0"), "s16.dcm")
    multi16 = save(dataset(gray16(16, 16, frames=3), frames=3, n=next(n)), "m16.dcm")
    multi8 = save(dataset(gray8(16, 8, frames=4), frames=4, n=next(n)), "m8.dcm")
    multirgb = save(dataset(rgb8(8, 8, frames=2), photometric="RGB", frames=2, n=next(n)), "mrgb.dcm")

    # Native transfer syntaxes.
    emit("explicit_le_gray16.dcm", g16)
    emit("explicit_le_rgb_planar.dcm", rgb_planar)
    emit("explicit_le_signed16.dcm", signed)
    emit("explicit_le_multiframe3.dcm", multi16)
    for flag, tag in (("+ti", "implicit_le"), ("+tb", "explicit_be"), ("+td", "deflated")):
        for src, what in ((g16, "gray16"), (rgb, "rgb"), (multi8, "multiframe4")):
            dst = os.path.join(TMP, "%s_%s.dcm" % (tag, what))
            run("dcmconv", flag, src, dst)
            emit(os.path.basename(dst), dst)
    emit("explicit_le_mono1_gray8.dcm", g8)

    # RLE.
    for src, what in ((g16, "gray16"), (rgb, "rgb"), (multi16, "multiframe3"), (g8, "gray8")):
        dst = os.path.join(TMP, "rle_%s.dcm" % what)
        run("dcmcrle", src, dst)
        emit(os.path.basename(dst), dst)
    rle = os.path.join(TMP, "rle_gray16.dcm")

    # JPEG processes (DCMTK's IJG codecs), JPEG-LS.
    jpegs = [
        ("jpeg_baseline_gray8.dcm", ["dcmcjpeg", "+eb", "+un"], g8),
        ("jpeg_baseline_rgb.dcm", ["dcmcjpeg", "+eb", "+un"], rgb),
        ("jpeg_baseline_rgb444.dcm", ["dcmcjpeg", "+eb", "+un", "+s4"], rgb),
        ("jpeg_baseline_multiframe2_rgb.dcm", ["dcmcjpeg", "+eb", "+un"], multirgb),
        ("jpeg_baseline_multiframe4_fragments.dcm", ["dcmcjpeg", "+eb", "+un", "+fs", "1", "-ot"], multi8),
        ("jpeg_extended12_gray16.dcm", ["dcmcjpeg", "+ee", "+un"], g16),
        ("jpeg_spectral_gray8.dcm", ["dcmcjpeg", "+es", "+un"], g8),
        ("jpeg_progressive_gray16.dcm", ["dcmcjpeg", "+ep", "+un"], g16),
        ("jpeg_lossless_p14_gray16.dcm", ["dcmcjpeg", "+el", "+un"], g16),
        ("jpeg_lossless_sv1_gray16.dcm", ["dcmcjpeg", "+e1", "+un"], g16),
        ("jpeg_lossless_sv1_rgb.dcm", ["dcmcjpeg", "+e1", "+un"], rgb),
        ("jpeg_lossless_sv1_multiframe3.dcm", ["dcmcjpeg", "+e1", "+un"], multi16),
        ("jpegls_lossless_gray16.dcm", ["dcmcjpls", "+el"], g16),
        ("jpegls_lossless_rgb.dcm", ["dcmcjpls", "+el"], rgb),
        ("jpegls_near_lossless_gray16.dcm", ["dcmcjpls", "+en"], g16),
        ("jpegls_lossless_multiframe3.dcm", ["dcmcjpls", "+el"], multi16),
    ]
    for name, cmd, src in jpegs:
        dst = os.path.join(TMP, name)
        run(*cmd, src, dst)
        emit(name, dst)
    baseline8 = os.path.join(TMP, "jpeg_baseline_gray8.dcm")
    extended12 = os.path.join(TMP, "jpeg_extended12_gray16.dcm")

    # YBR_FULL_422 native (two samples per pixel), and YBR_FULL native.
    y = rgb8(8, 4)
    ybr = dataset(y, photometric="YBR_FULL_422", n=next(n))
    ybr.PixelData = bytes(range(8 * 4 * 2))  # Y Y Cb Cr per pair of pixels
    emit("explicit_le_ybr_full_422.dcm", save(ybr, "ybr422.dcm"))
    emit("explicit_le_ybr_full.dcm", save(dataset(y, photometric="YBR_FULL", n=next(n)), "ybr.dcm"))

    # Odd-sized 8-bit frame (DCMTK's pad byte), and a 1x1 16-bit image.
    emit("explicit_le_odd_3x3.dcm", save(dataset(gray8(3, 3), n=next(n)), "odd.dcm"))
    emit("explicit_le_1x1.dcm", save(dataset(gray16(1, 1), n=next(n)), "one.dcm"))

    # LUT sequences: Modality LUT (signed input, SS descriptor), VOI LUT with 8-bit entries packed two a word.
    ds = dataset(gray16(16, 16, bits=12, signed=True), bits_stored=12, signed=True, n=next(n))
    item = Dataset()
    item.LUTDescriptor = [256, -128, 16]
    item["LUTDescriptor"].VR = "SS"
    item.ModalityLUTType = "HU"
    item.LUTData = np.arange(0, 256 * 8, 8, dtype="<u2").tobytes()
    item["LUTData"].VR = "OW"
    ds.ModalityLUTSequence = Sequence([item])
    voi = Dataset()
    voi.LUTDescriptor = [512, 0, 8]
    voi.LUTData = np.array([(2 * i + 1) % 256 << 8 | (2 * i) % 256 for i in range(256)], dtype="<u2").tobytes()
    voi["LUTData"].VR = "OW"
    ds.VOILUTSequence = Sequence([voi])
    emit("explicit_le_lut_sequences.dcm", save(ds, "lut.dcm"))
    ds = dataset(gray16(16, 16), n=next(n))
    voi = Dataset()
    voi.LUTDescriptor = [0, 0, 16]  # 0 entries means 65536; the data is short
    voi.LUTData = np.array([1, 2, 3, 4], dtype="<u2").tobytes()
    voi["LUTData"].VR = "OW"
    ds.VOILUTSequence = Sequence([voi])
    emit("hostile_lut_descriptor_65536_short_data.dcm", save(ds, "lut2.dcm"))

    # Windows and rescale the renderer must survive (the shim passes them on).
    for name, kw in (
        ("hostile_rescale_slope_zero.dcm", dict(RescaleSlope="0", RescaleIntercept="5")),
        ("hostile_window_nan.dcm", dict(WindowCenter="NaN", WindowWidth="NaN", VOILUTFunction="SIGMOID")),
        ("hostile_window_inf_width_zero.dcm", dict(WindowCenter=["inf", "1"], WindowWidth=["0", "-5"],
                                                   VOILUTFunction="LINEAR_EXACT", RescaleSlope="1e308", RescaleIntercept="-inf")),
    ):
        emit(name, save(dataset(gray16(16, 16), n=next(n), **kw), name))

    # Character sets: Latin-1, Japanese ISO 2022 escapes, UTF-8, and an unknown one.
    for name, charset, raw in (
        ("charset_latin1.dcm", "ISO_IR 100", "Müller^Zoë".encode("latin-1")),
        ("charset_iso2022_jp.dcm", "\\ISO 2022 IR 87", b"Yamada^Tarou=\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B"),
        ("charset_utf8.dcm", "ISO_IR 192", "Ωμέγα^Ж".encode("utf-8")),
        ("charset_unknown.dcm", "ISO_IR 999", b"\xff\xfe^\x80"),
    ):
        ds = dataset(gray8(8, 8), n=next(n))
        ds.SpecificCharacterSet = charset
        ds.add_new(0x00100010, "PN", raw)
        emit(name, save(ds, name))

    # Without preamble (meta information first), and bare data sets (no meta at all).
    whole = read_bytes(g16)
    emit("no_preamble.dcm", whole[128 + 4:] if whole[128:132] == b"DICM" else whole)
    for ts, tag in ((ImplicitVRLittleEndian, "implicit_le"), (ExplicitVRBigEndian, "explicit_be"),
                    (ExplicitVRLittleEndian, "explicit_le")):
        ds = pydicom.dcmread(g8)
        emit("bare_dataset_%s.dcm" % tag, encode(ds, ts != ExplicitVRBigEndian, ts == ImplicitVRLittleEndian))

    # Sequences: undefined lengths, nesting at and past the limit (16), private implicit sequence, CP-246 UN.
    def nested(depth):
        inner = Dataset()
        inner.CodeValue = "X"
        for _ in range(depth - 1):
            outer = Dataset()
            outer.add_new(0x00400275, "SQ", Sequence([inner]))  # Request Attributes Sequence
            inner = outer
        return Sequence([inner])
    for depth in (16, 17):
        ds = dataset(gray8(8, 8), n=next(n))
        ds.add_new(0x00400275, "SQ", nested(depth))
        for elem in ds.iterall():
            if elem.VR == "SQ":
                elem.is_undefined_length = True
        emit("sequence_depth_%d.dcm" % depth, save(ds, "depth%d.dcm" % depth))
    ds = dataset(gray8(8, 8), n=next(n))
    priv = Dataset()
    priv.add_new(0x00091001, "LO", "x")
    ds.add_new(0x00090010, "LO", "MEDISCOPE FUZZ")
    ds.add_new(0x00091010, "SQ", Sequence([priv, priv]))
    p = save(ds, "un.dcm")
    b = bytearray(read_bytes(p))
    i = b.find(b"\x09\x00\x10\x10SQ")
    if i > 0:  # turn the private sequence into UN of undefined length holding implicit VR items (CP-246)
        length = struct.unpack_from("<I", b, i + 8)[0]
        body = bytes(b[i + 12:i + 12 + length])
        implicit = io.BytesIO()
        s = pydicom.dcmread(p)[0x00091010].value
        for it in s:
            implicit.write(b"\xfe\xff\x00\xe0\xff\xff\xff\xff" + encode(it, True, True) + b"\xfe\xff\x0d\xe0\x00\x00\x00\x00")
        implicit.write(b"\xfe\xff\xdd\xe0\x00\x00\x00\x00")
        b[i:i + 12 + length] = b"\x09\x00\x10\x10UN\x00\x00\xff\xff\xff\xff" + implicit.getvalue()
        del body
    emit("un_undefined_length_cp246.dcm", bytes(b))

    # ---- hostile classes

    # A JPEG coding fewer pixels than Rows x Columns (16x16 coded, 64x48 declared), and more (declared 8x8).
    frag = fragments_of(baseline8)
    emit("hostile_jpeg_fewer_pixels_than_rows_columns.dcm",
         encapsulated(baseline8, frag, "jf.dcm", Rows=48, Columns=64))
    emit("hostile_jpeg_more_pixels_than_rows_columns.dcm",
         encapsulated(baseline8, frag, "jm.dcm", Rows=8, Columns=8))
    # A JPEG whose frame header claims 4096x4096 inside a 16x16 data set, and a 12-bit JPEG declared 8-bit.
    emit("hostile_jpeg_sof_claims_4096.dcm",
         encapsulated(baseline8, [frag[0], patch_sof(frag[1], 4096, 4096)], "js.dcm"))
    frag12 = fragments_of(extended12)
    emit("hostile_jpeg12_in_8bit_dataset.dcm",
         encapsulated(baseline8, [b"", frag12[1]], "j12.dcm", Rows=20, Columns=24))
    # Truncated JPEG fragment, and two frames' worth of fragments with Number of Frames 1 / 3.
    emit("hostile_jpeg_truncated_fragment.dcm",
         encapsulated(baseline8, [b"", frag[1][: len(frag[1]) // 2 & ~1]], "jt.dcm"))

    # RLE: segment offsets past the fragment, a fragment shorter than the 64-byte header, segment counts.
    rfrag = fragments_of(rle)
    header = bytearray(rfrag[1][:64])
    segments = struct.unpack_from("<I", header, 0)[0]
    past = bytearray(header)
    struct.pack_into("<I", past, 4, 0x7FFFFFF0)
    struct.pack_into("<I", past, 8, len(rfrag[1]) + 64)
    emit("hostile_rle_offsets_past_fragment.dcm",
         encapsulated(rle, [b"", bytes(past) + rfrag[1][64:]], "r1.dcm"))
    back = bytearray(rfrag[1])
    if segments >= 2:
        struct.pack_into("<I", back, 8, 32)  # second segment starts inside the header
    emit("hostile_rle_offset_inside_header.dcm", encapsulated(rle, [b"", bytes(back)], "r2.dcm"))
    emit("hostile_rle_fragment_shorter_than_header.dcm", encapsulated(rle, [b"", bytes(header[:20])], "r3.dcm"))
    emit("hostile_rle_header_only.dcm", encapsulated(rle, [b"", bytes(header)], "r4.dcm"))
    many = bytearray(rfrag[1])
    struct.pack_into("<I", many, 0, 15)
    emit("hostile_rle_15_segments.dcm", encapsulated(rle, [b"", bytes(many)], "r5.dcm"))
    zero = bytearray(rfrag[1])
    struct.pack_into("<I", zero, 0, 0)
    emit("hostile_rle_0_segments.dcm", encapsulated(rle, [b"", bytes(zero)], "r6.dcm"))
    emit("hostile_rle_truncated_segment.dcm",
         encapsulated(rle, [b"", rfrag[1][: 64 + (len(rfrag[1]) - 64) // 3 & ~1]], "r7.dcm"))
    emit("hostile_rle_offset_table_past_end.dcm",
         encapsulated(rle, [struct.pack("<I", 0x10000000), rfrag[1]], "r8.dcm"))

    # A many-scan progressive JPEG in an Icon Image Sequence before the real Pixel Data, and the reverse:
    # a harmless icon, then a scan bomb as the real Pixel Data.
    bomb_small = scan_bomb(progressive_jpeg_8x8(), 64, 64, 2000)
    bomb_big = scan_bomb(progressive_jpeg_8x8(), 2000, 2000, 1000)
    def with_icon(icon_jpeg, main_frags, rows, columns, name):
        ds = pydicom.dcmread(baseline8)
        icon = Dataset()
        icon.SamplesPerPixel = 1
        icon.PhotometricInterpretation = "MONOCHROME2"
        icon.Rows, icon.Columns = 64, 64
        icon.BitsAllocated, icon.BitsStored, icon.HighBit, icon.PixelRepresentation = 8, 8, 7, 0
        icon.PixelData = items([b"", icon_jpeg + (b"\0" if len(icon_jpeg) % 2 else b"")])
        icon["PixelData"].VR = "OB"
        icon["PixelData"].is_undefined_length = True
        ds.IconImageSequence = Sequence([icon])
        ds.Rows, ds.Columns = rows, columns
        ds.PixelData = items(main_frags)
        ds["PixelData"].VR = "OB"
        ds["PixelData"].is_undefined_length = True
        ds.file_meta.TransferSyntaxUID = JPEG_PROGRESSIVE if rows > 16 else JPEG_BASELINE
        return save(ds, name)
    emit("hostile_icon_sequence_scan_bomb_before_pixel_data.dcm",
         with_icon(bomb_small, frag, 16, 16, "icon1.dcm"))
    emit("hostile_icon_then_scan_bomb_pixel_data.dcm",
         with_icon(frag[1], [b"", bomb_big + (b"\0" if len(bomb_big) % 2 else b"")], 2000, 2000, "icon2.dcm"))

    # Number of Frames huge with one frame of data: native, RLE, JPEG; and unparsable / negative values.
    for name, src, frames in (
        ("hostile_frames_huge_native.dcm", g16, "2147483647"),
        ("hostile_frames_huge_rle.dcm", rle, "2147483647"),
        ("hostile_frames_huge_jpeg.dcm", baseline8, "2147483647"),
        ("hostile_frames_65536_native.dcm", g16, "65536"),
        ("hostile_frames_overflow_native.dcm", g16, "4294967297"),
        ("hostile_frames_negative_rle.dcm", rle, "-3"),
    ):
        ds = pydicom.dcmread(src)
        ds.add_new(0x00280008, "IS", frames)
        emit(name, save(ds, name))
    # Native pixel data shorter than one frame, and a frame of 65535 x 61 declared over a few bytes.
    ds = pydicom.dcmread(g16)
    ds.PixelData = ds.PixelData[:100]
    emit("hostile_native_pixel_data_short.dcm", save(ds, "short.dcm"))
    ds = pydicom.dcmread(g8)
    ds.Rows, ds.Columns = 61, 65535
    emit("hostile_native_rows_columns_large.dcm", save(ds, "large.dcm"))
    # Bits Allocated 16 with 8-bit data (size mismatch), Bits Stored past Bits Allocated, odd Planar Configuration.
    ds = pydicom.dcmread(g8)
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    emit("hostile_bits_allocated_16_with_8bit_data.dcm", save(ds, "ba.dcm"))
    ds = pydicom.dcmread(multirgb)
    ds.PlanarConfiguration = 1
    ds.SamplesPerPixel = 3
    ds.NumberOfFrames = 3
    emit("hostile_rgb_planar_3_frames_of_2.dcm", save(ds, "pl.dcm"))

    # JPEG 2000 (OpenJPEG behind the shim): pydicom's small J2K test files, lossless and lossy, a JP2
    # wrapper with YBR_RCT and 128x128 tiles, a codestream whose signedness differs from Pixel
    # Representation. (No J2K encoder among DCMTK's tools; these are the files the reference renders.)
    pydicom_files = "/usr/lib/python3/dist-packages/pydicom/data/test_files"
    for name in ("MR_small_jp2klossless.dcm", "JPEG2000.dcm", "693_J2KI.dcm", "GDCMJ2K_TextGBR.dcm"):
        emit("j2k_" + name, os.path.join(pydicom_files, name))
