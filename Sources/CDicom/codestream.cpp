// Structural checks of one encapsulated frame's codestream, before DCMTK's codec sees it. DCMTK 3.6.7's
// decoders trust the RLE header's offsets and fill only as many pixels as the codestream codes; these
// checks refuse a frame whose own header disagrees with the data set (Rows, Columns, Samples per Pixel,
// Bits Allocated), whose RLE segments point outside the fragment or code too few bytes, whose JPEG
// costs more scans than an uploaded JPEG may, or whose JPEG 2000 main header (SIZ, COD, COC) and tile-parts
// say a size, components, tiling or decomposition OpenJPEG must not be asked to decode. Linear in the
// frame's size; nothing is decoded.
#include <algorithm>
#include <string>

#include "dicom_internal.h"

namespace cdicom {
namespace {

uint32_t le32(const uint8_t *p) { return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24; }
uint16_t be16(const uint8_t *p) { return uint16_t(p[0] << 8 | p[1]); }
uint32_t be32(const uint8_t *p) { return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | uint32_t(p[3]); }

std::string dims(int64_t columns, int64_t rows, int64_t samples) {
    return std::to_string(columns) + "x" + std::to_string(rows) + " with " + std::to_string(samples) + " sample" + (samples == 1 ? "" : "s");
}

/// PackBits (PS3.5 G.3.1): the bytes one segment codes, up to `needed`. A run that would read past the
/// segment before `needed` bytes are coded is corrupt; what follows once they are (padding) is ignored.
int rleSegment(const uint8_t *d, size_t begin, size_t end, uint64_t needed, size_t index, std::string &message) {
    uint64_t produced = 0;
    size_t pos = begin;
    while (produced < needed && pos < end) {
        const int8_t n = int8_t(d[pos++]);
        if (n >= 0) {
            const size_t literal = size_t(n) + 1;
            if (literal > end - pos) break;
            produced += literal;
            pos += literal;
        } else if (n != -128) {
            if (pos >= end) break;
            produced += uint64_t(1 - n);
            ++pos;
        }
    }
    if (produced < needed) {
        message = "RLE segment " + std::to_string(index + 1) + " codes " + std::to_string(produced) + " of the "
            + std::to_string(needed) + " bytes Rows x Columns needs: the frame is truncated or its header is wrong";
        return DICOM_ERR_CORRUPT;
    }
    return DICOM_OK;
}

bool isSOF(uint8_t m) { return m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC; }

}  // namespace

int checkRLEFrame(const uint8_t *d, size_t size, const FrameGeometry &g, std::string &message) {
    if (size < 64) {
        message = "the RLE frame is " + std::to_string(size) + " bytes, shorter than its 64-byte header";
        return DICOM_ERR_CORRUPT;
    }
    const uint32_t segments = le32(d);
    const uint32_t expected = uint32_t(g.samples) * uint32_t(g.bitsAllocated / 8);
    if (segments != expected) {
        message = "the RLE header names " + std::to_string(segments) + " segments; " + std::to_string(g.samples)
            + (g.samples == 1 ? " sample of " : " samples of ") + std::to_string(g.bitsAllocated) + " bits needs "
            + std::to_string(expected);
        return DICOM_ERR_CORRUPT;
    }
    const uint64_t needed = uint64_t(g.rows) * uint64_t(g.columns);
    uint32_t offsets[16];
    for (uint32_t i = 0; i < segments; ++i) offsets[i] = le32(d + 4 + 4 * i);
    offsets[segments] = uint32_t(size);
    if (offsets[0] != 64) {
        message = "the first RLE segment starts at byte " + std::to_string(offsets[0]) + ", not right after the 64-byte header";
        return DICOM_ERR_CORRUPT;
    }
    for (uint32_t i = 0; i < segments; ++i) {
        if (offsets[i + 1] <= offsets[i] || offsets[i + 1] > size) {
            message = "RLE segment " + std::to_string(i + 1) + " starts at byte " + std::to_string(offsets[i])
                + (i + 1 < segments ? " and the next at byte " + std::to_string(offsets[i + 1]) : std::string())
                + ": outside the " + std::to_string(size) + "-byte frame or out of order";
            return DICOM_ERR_CORRUPT;
        }
        const int rc = rleSegment(d, offsets[i], offsets[i + 1], needed, i, message);
        if (rc != DICOM_OK) return rc;
    }
    return DICOM_OK;
}

int checkJPEGFrame(const uint8_t *d, size_t size, const FrameGeometry &g, const Limits &limits, bool jpegLS, std::string &message) {
    const char *kind = jpegLS ? "JPEG-LS" : "JPEG";
    if (size < 4 || d[0] != 0xFF || d[1] != 0xD8) {
        message = std::string("the frame does not start with a ") + kind + " start-of-image marker";
        return DICOM_ERR_CORRUPT;
    }
    bool haveFrame = false;
    int64_t scans = 0, pixels = 0;
    size_t pos = 2;
    while (pos + 1 < size) {
        if (d[pos] != 0xFF) { message = std::string(kind) + " marker expected at byte " + std::to_string(pos) + " of the frame"; return DICOM_ERR_CORRUPT; }
        const uint8_t m = d[pos + 1];
        if (m == 0xFF) { ++pos; continue; }  // fill byte
        pos += 2;
        if (m == 0xD9) break;                // EOI
        if (m == 0x01 || (m >= 0xD0 && m <= 0xD7)) continue;
        if (pos + 2 > size) break;
        const size_t length = be16(d + pos);
        if (length < 2 || length > size - pos) { message = std::string(kind) + " segment longer than the frame at byte " + std::to_string(pos); return DICOM_ERR_CORRUPT; }
        const uint8_t *seg = d + pos + 2;
        const bool sof = jpegLS ? m == 0xF7 : isSOF(m);
        if (!jpegLS && (m == 0xDE || m == 0xC5 || m == 0xC6 || m == 0xC7 || m == 0xCD || m == 0xCE || m == 0xCF)) {
            message = "hierarchical JPEG is not decoded here";
            return DICOM_ERR_VARIANT;
        }
        if (sof) {
            if (haveFrame) { message = std::string("the ") + kind + " frame has two frame headers"; return DICOM_ERR_CORRUPT; }
            if (length < 8) { message = std::string("truncated ") + kind + " frame header"; return DICOM_ERR_CORRUPT; }
            const int precision = seg[0];
            const int height = be16(seg + 1), width = be16(seg + 3), components = seg[5];
            if (height != g.rows || width != g.columns || components != g.samples) {
                message = std::string("the ") + kind + " codestream is " + dims(width, height, components) + ", the data set says "
                    + dims(g.columns, g.rows, g.samples) + " (Columns x Rows, Samples per Pixel): the frame would not fill the image";
                return DICOM_ERR_CORRUPT;
            }
            if (precision < 2 || precision > g.bitsAllocated) {
                message = std::string("the ") + kind + " codestream has " + std::to_string(precision) + "-bit samples, Bits Allocated is "
                    + std::to_string(g.bitsAllocated);
                return DICOM_ERR_CORRUPT;
            }
            haveFrame = true;
            pixels = int64_t(width) * height;
        }
        pos += length;
        if (m == 0xDA) {  // SOS: entropy-coded data up to the next marker
            if (!haveFrame) { message = std::string("a ") + kind + " scan before its frame header"; return DICOM_ERR_CORRUPT; }
            ++scans;
            if (scans > limits.maxJPEGScans || (pixels > 0 && scans > limits.maxJPEGScanPixels / pixels)) {
                const int64_t allowed = std::min<int64_t>(limits.maxJPEGScans, std::max<int64_t>(1, limits.maxJPEGScanPixels / std::max<int64_t>(pixels, 1)));
                message = "too many progressive scans: the frame's JPEG has more than " + std::to_string(allowed) + " scans, at most "
                    + std::to_string(allowed) + " are decoded for a " + std::to_string(g.columns) + "x" + std::to_string(g.rows) + " image";
                return DICOM_ERR_TOO_COMPLEX;
            }
            while (pos + 1 < size) {
                if (d[pos] != 0xFF) { ++pos; continue; }
                const uint8_t next = d[pos + 1];
                // Stuffed bytes: 0xFF00 in JPEG; in JPEG-LS a marker's second byte has its high bit set.
                const bool data = jpegLS ? next < 0x80 : (next == 0x00 || (next >= 0xD0 && next <= 0xD7) || next == 0xFF);
                if (!data) break;
                pos += next == 0xFF ? 1 : 2;
            }
        }
    }
    if (!haveFrame || scans == 0) {
        message = std::string("the frame's ") + kind + " codestream has no " + (haveFrame ? "scan" : "frame header");
        return DICOM_ERR_CORRUPT;
    }
    return DICOM_OK;
}

int findJ2KCodestream(const uint8_t *d, size_t size, size_t &offset, size_t &length, bool &jp2, std::string &message) {
    static const uint8_t signature[12] = {0, 0, 0, 0x0C, 'j', 'P', ' ', ' ', 0x0D, 0x0A, 0x87, 0x0A};
    jp2 = size >= 12 && std::equal(signature, signature + 12, d);
    if (!jp2) {
        if (size < 4 || d[0] != 0xFF || d[1] != 0x4F) {
            message = "the frame does not start with a JPEG 2000 start-of-codestream marker (nor a JP2 signature box)";
            return DICOM_ERR_CORRUPT;
        }
        offset = 0;
        length = size;
        return DICOM_OK;
    }
    // JP2 boxes (ISO/IEC 15444-1 I.4): length, type, contents; the codestream is the "jp2c" box.
    size_t pos = 0;
    while (size - pos >= 8) {
        uint64_t box = be32(d + pos);
        size_t header = 8;
        if (box == 1) {
            if (size - pos < 16) break;
            box = uint64_t(be32(d + pos + 8)) << 32 | be32(d + pos + 12);
            header = 16;
        } else if (box == 0) {
            box = size - pos;
        }
        if (box < header || box > size - pos) break;
        if (std::equal(d + pos + 4, d + pos + 8, reinterpret_cast<const uint8_t *>("jp2c"))) {
            offset = pos + header;
            length = size_t(box) - header;
            return DICOM_OK;
        }
        pos += size_t(box);
    }
    message = "the frame's JP2 file has no complete codestream box (jp2c)";
    return DICOM_ERR_CORRUPT;
}

int checkJ2KFrame(const uint8_t *frame, size_t frameSize, const FrameGeometry &g, J2KHeader &header, std::string &message) {
    size_t offset = 0, size = 0;
    int rc = findJ2KCodestream(frame, frameSize, offset, size, header.jp2, message);
    if (rc != DICOM_OK) return rc;
    const uint8_t *d = frame + offset;
    // SOC, then SIZ first (ISO/IEC 15444-1 A.5.1): the image and tile grid, and every component.
    if (size < 4 || d[0] != 0xFF || d[1] != 0x4F || d[2] != 0xFF || d[3] != 0x51) {
        message = "the JPEG 2000 codestream does not start with SOC and SIZ markers";
        return DICOM_ERR_CORRUPT;
    }
    if (size < 4 + 40) { message = "the JPEG 2000 codestream ends inside its SIZ marker"; return DICOM_ERR_CORRUPT; }
    const uint8_t *siz = d + 4;
    const size_t lsiz = be16(siz);
    const uint32_t xsiz = be32(siz + 4), ysiz = be32(siz + 8), xosiz = be32(siz + 12), yosiz = be32(siz + 16);
    const uint32_t xtsiz = be32(siz + 20), ytsiz = be32(siz + 24), xtosiz = be32(siz + 28), ytosiz = be32(siz + 32);
    const uint32_t components = be16(siz + 36);
    if (components == 0 || lsiz != 38 + 3 * size_t(components) || lsiz > size - 4) {
        message = "the JPEG 2000 SIZ marker is " + std::to_string(lsiz) + " bytes for " + std::to_string(components)
            + " components (38 + 3 per component, inside the codestream)";
        return DICOM_ERR_CORRUPT;
    }
    if (xosiz >= xsiz || yosiz >= ysiz) {
        message = "the JPEG 2000 SIZ marker's image offset lies outside its image";
        return DICOM_ERR_CORRUPT;
    }
    const int64_t width = int64_t(xsiz) - xosiz, height = int64_t(ysiz) - yosiz;
    if (width != g.columns || height != g.rows || int64_t(components) != g.samples) {
        message = "the JPEG 2000 codestream is " + dims(width, height, components) + ", the data set says "
            + dims(g.columns, g.rows, g.samples) + " (Columns x Rows, Samples per Pixel): the frame would not fill the image";
        return DICOM_ERR_CORRUPT;
    }
    for (uint32_t c = 0; c < components; ++c) {
        const uint8_t ssiz = siz[38 + 3 * c], xr = siz[39 + 3 * c], yr = siz[40 + 3 * c];
        const int precision = (ssiz & 0x7F) + 1;
        const bool isSigned = (ssiz & 0x80) != 0;
        if (xr != 1 || yr != 1) {
            message = "JPEG 2000 component " + std::to_string(c + 1) + " is subsampled (" + std::to_string(xr) + "x" + std::to_string(yr)
                + "); every component must have one sample per pixel";
            return DICOM_ERR_CORRUPT;
        }
        // Bits Stored may differ from the codestream's precision (pydicom decodes both ways); the values
        // must fit Bits Allocated.
        if (precision > g.bitsAllocated) {
            message = "the JPEG 2000 codestream has " + std::to_string(precision) + "-bit samples, Bits Allocated is "
                + std::to_string(g.bitsAllocated);
            return DICOM_ERR_CORRUPT;
        }
        if (c == 0) {
            header.precision = precision;
            header.isSigned = isSigned;
        } else if (precision != header.precision || isSigned != header.isSigned) {
            message = "the JPEG 2000 codestream's components differ in precision or sign";
            return DICOM_ERR_CORRUPT;
        }
    }
    // The tile grid (A.5.1): it starts at or before the image and its first tile overlaps the image.
    if (xtsiz == 0 || ytsiz == 0 || xtosiz > xosiz || ytosiz > yosiz || uint64_t(xtsiz) + xtosiz <= xosiz
        || uint64_t(ytsiz) + ytosiz <= yosiz) {
        message = "the JPEG 2000 tile grid (" + std::to_string(xtsiz) + "x" + std::to_string(ytsiz) + " tiles) does not cover the image";
        return DICOM_ERR_CORRUPT;
    }
    const uint64_t across = (uint64_t(xsiz) - xtosiz + xtsiz - 1) / xtsiz, down = (uint64_t(ysiz) - ytosiz + ytsiz - 1) / ytsiz;
    header.tiles = across * down;
    if (header.tiles > uint64_t(maxJ2KTiles)) {
        message = "the JPEG 2000 codestream cuts the image into " + std::to_string(header.tiles) + " tiles of " + std::to_string(xtsiz)
            + "x" + std::to_string(ytsiz) + "; at most " + std::to_string(maxJ2KTiles) + " are decoded";
        return DICOM_ERR_TOO_COMPLEX;
    }

    // The rest of the main header up to the first tile-part: coding style (COD, COC) bounds.
    size_t pos = 4 + lsiz;  // SOC, the SIZ marker, then Lsiz bytes (its length field included)
    bool haveCOD = false;
    auto levelsOK = [&](int levels) {
        header.levels = std::max(header.levels, levels);
        if (levels <= maxJ2KLevels) return true;
        message = "the JPEG 2000 codestream asks for " + std::to_string(levels) + " decomposition levels; at most "
            + std::to_string(maxJ2KLevels) + " are decoded";
        return false;
    };
    while (true) {
        if (size - pos < 4) { message = "the JPEG 2000 codestream ends inside its main header"; return DICOM_ERR_CORRUPT; }
        if (d[pos] != 0xFF) { message = "JPEG 2000 marker expected at byte " + std::to_string(pos) + " of the codestream"; return DICOM_ERR_CORRUPT; }
        const uint8_t m = d[pos + 1];
        if (m == 0x90) break;  // SOT: the main header ends
        const size_t length = be16(d + pos + 2);
        if (length < 2 || length > size - pos - 2) {
            message = "JPEG 2000 marker segment longer than the codestream at byte " + std::to_string(pos);
            return DICOM_ERR_CORRUPT;
        }
        const uint8_t *seg = d + pos + 4;
        if (m == 0x52) {  // COD: Scod, progression, layers, MCT, then levels
            if (length < 12) { message = "truncated JPEG 2000 COD marker"; return DICOM_ERR_CORRUPT; }
            haveCOD = true;
            header.layers = be16(seg + 2);
            header.multipleComponentTransform = seg[4] != 0;
            if (header.layers == 0) { message = "the JPEG 2000 COD marker names no quality layers"; return DICOM_ERR_CORRUPT; }
            if (!levelsOK(seg[5])) return DICOM_ERR_TOO_COMPLEX;
        } else if (m == 0x53) {  // COC: component index (1 or 2 bytes), Scoc, levels
            const size_t index = components < 257 ? 1 : 2;
            if (length < 2 + index + 1 + 5) { message = "truncated JPEG 2000 COC marker"; return DICOM_ERR_CORRUPT; }
            if (!levelsOK(seg[index + 1])) return DICOM_ERR_TOO_COMPLEX;
        }
        pos += 2 + length;
    }
    if (!haveCOD) { message = "the JPEG 2000 main header has no COD marker"; return DICOM_ERR_CORRUPT; }

    // Tile-parts (A.4.2): each SOT names its tile and its length; a length past the codestream is a
    // truncated frame, refused here rather than half decoded.
    uint64_t parts = 0;
    while (size - pos >= 12 && d[pos] == 0xFF && d[pos + 1] == 0x90) {
        const size_t lsot = be16(d + pos + 2);
        const uint32_t tile = be16(d + pos + 4), psot = be32(d + pos + 6);
        if (lsot != 10 || tile >= header.tiles) {
            message = "JPEG 2000 tile-part " + std::to_string(parts + 1) + " names tile " + std::to_string(tile) + " of "
                + std::to_string(header.tiles);
            return DICOM_ERR_CORRUPT;
        }
        if (++parts > uint64_t(maxJ2KTileParts)) {
            message = "the JPEG 2000 codestream has more than " + std::to_string(maxJ2KTileParts) + " tile-parts";
            return DICOM_ERR_TOO_COMPLEX;
        }
        if (psot == 0) { pos = size; break; }  // the last tile-part runs to the end of the codestream
        if (psot < 14 || psot > size - pos) {
            message = "JPEG 2000 tile-part " + std::to_string(parts) + " is " + std::to_string(psot) + " bytes, " + std::to_string(size - pos)
                + " are left in the codestream: the frame is truncated";
            return DICOM_ERR_CORRUPT;
        }
        pos += psot;
    }
    if (parts == 0) { message = "the JPEG 2000 codestream has no tile-part"; return DICOM_ERR_CORRUPT; }
    header.codestreamOffset = offset;
    header.codestreamLength = size;
    return DICOM_OK;
}

}  // namespace cdicom
