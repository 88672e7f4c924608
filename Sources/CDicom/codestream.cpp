// Structural checks of one encapsulated frame's codestream, before DCMTK's codec sees it. DCMTK 3.6.7's
// decoders trust the RLE header's offsets and fill only as many pixels as the codestream codes; these
// checks refuse a frame whose own header disagrees with the data set (Rows, Columns, Samples per Pixel,
// Bits Allocated), whose RLE segments point outside the fragment or code too few bytes, or whose JPEG
// costs more scans than an uploaded JPEG may. Linear in the frame's size; nothing is decoded.
#include <string>

#include "dicom_internal.h"

namespace cdicom {
namespace {

uint32_t le32(const uint8_t *p) { return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24; }
uint16_t be16(const uint8_t *p) { return uint16_t(p[0] << 8 | p[1]); }

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

}  // namespace cdicom
