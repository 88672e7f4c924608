// The structural walk: PS3.5 section 7 (data elements, sequences, items, encapsulated fragments) over
// the raw bytes, before DCMTK parses them. DCMTK checks an element's length against its surrounding
// item but not against the end of the data, and it recurses into nested sequences without a bound;
// this walk refuses both before DCMTK allocates or recurses.
#include <cstring>
#include <vector>
#include <zlib.h>

#include "dicom_internal.h"

namespace cdicom {
namespace {

constexpr uint32_t undefinedLength = 0xFFFFFFFFu;

struct Transfer {
    const char *uid;
    bool explicitVR, littleEndian, deflated, encapsulated;
};

// PS3.6 table A-1: the transfer syntaxes DCMTK decodes with the codecs we register.
const Transfer transfers[] = {
    {"1.2.840.10008.1.2", false, true, false, false},       // Implicit VR Little Endian
    {"1.2.840.10008.1.2.1", true, true, false, false},      // Explicit VR Little Endian
    {"1.2.840.10008.1.2.2", true, false, false, false},     // Explicit VR Big Endian (retired)
    {"1.2.840.10008.1.2.1.99", true, true, true, false},    // Deflated Explicit VR Little Endian
    {"1.2.840.10008.1.2.5", true, true, false, true},       // RLE Lossless
    {"1.2.840.10008.1.2.4.50", true, true, false, true},    // JPEG Baseline (Process 1)
    {"1.2.840.10008.1.2.4.51", true, true, false, true},    // JPEG Extended (Process 2 & 4)
    {"1.2.840.10008.1.2.4.53", true, true, false, true},    // JPEG Spectral Selection (retired)
    {"1.2.840.10008.1.2.4.55", true, true, false, true},    // JPEG Full Progression (retired)
    {"1.2.840.10008.1.2.4.57", true, true, false, true},    // JPEG Lossless (Process 14)
    {"1.2.840.10008.1.2.4.70", true, true, false, true},    // JPEG Lossless, SV1
    {"1.2.840.10008.1.2.4.80", true, true, false, true},    // JPEG-LS Lossless
    {"1.2.840.10008.1.2.4.81", true, true, false, true},    // JPEG-LS Near-Lossless
    {"1.2.840.10008.1.2.4.90", true, true, false, true},    // JPEG 2000 Lossless Only (OpenJPEG, j2k.cpp)
    {"1.2.840.10008.1.2.4.91", true, true, false, true},    // JPEG 2000
};

// Value representations whose length field is 4 bytes after 2 reserved bytes (PS3.5 table 7.1-1).
bool longLength(const char vr[2]) {
    static const char *const names[] = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "UC", "UN", "UR", "UT", "SV", "UV"};
    for (const char *n : names) if (vr[0] == n[0] && vr[1] == n[1]) return true;
    return false;
}

bool knownVR(const uint8_t *p) {
    static const char *const names[] = {
        "AE", "AS", "AT", "CS", "DA", "DS", "DT", "FL", "FD", "IS", "LO", "LT", "OB", "OD", "OF", "OL", "OV",
        "OW", "PN", "SH", "SL", "SQ", "SS", "ST", "SV", "TM", "UC", "UI", "UL", "UN", "UR", "US", "UT", "UV"};
    for (const char *n : names) if (p[0] == uint8_t(n[0]) && p[1] == uint8_t(n[1])) return true;
    return false;
}

class Walker {
public:
    Walker(const Limits &limits, std::string &message) : limits_(limits), message_(message) {}

    /// Elements from `pos` to `end`. In an item of undefined length it stops after (FFFE,E00D).
    int dataset(const uint8_t *d, size_t &pos, size_t end, bool explicitVR, bool little, int depth, bool inUndefinedItem) {
        while (pos < end) {
            if (end - pos < 8) return fail(DICOM_ERR_CORRUPT, "truncated element header", pos);
            const uint16_t group = u16(d + pos, little), element = u16(d + pos + 2, little);
            if (group == 0xFFFE) {
                if (element == 0xE00D && inUndefinedItem) { pos += 8; return DICOM_OK; }
                return fail(DICOM_ERR_CORRUPT, "unexpected item or delimiter tag", pos);
            }
            uint32_t length;
            bool sequence = false, unknown = false;
            if (explicitVR) {
                const uint8_t *vr = d + pos + 4;
                if (!knownVR(vr)) return fail(DICOM_ERR_CORRUPT, "invalid value representation", pos);
                sequence = vr[0] == 'S' && vr[1] == 'Q';
                unknown = vr[0] == 'U' && vr[1] == 'N';
                if (longLength(reinterpret_cast<const char *>(vr))) {
                    if (end - pos < 12) return fail(DICOM_ERR_CORRUPT, "truncated element header", pos);
                    length = u32(d + pos + 8, little);
                    pos += 12;
                } else {
                    length = u16(d + pos + 6, little);
                    pos += 8;
                }
            } else {
                length = u32(d + pos + 4, little);
                pos += 8;
            }
            const bool pixelData = group == 0x7FE0 && element == 0x0010;
            if (length == undefinedLength) {
                int rc;
                if (pixelData) rc = fragments(d, pos, end, little);
                // CP-246: an explicit UN of undefined length holds implicit VR little endian items.
                else if (!explicitVR || sequence || unknown) rc = items(d, pos, end, true, explicitVR && !unknown, unknown ? true : little, depth);
                else return fail(DICOM_ERR_CORRUPT, "undefined length on an element that cannot have one", pos);
                if (rc != DICOM_OK) return rc;
                continue;
            }
            if (length > end - pos) return fail(DICOM_ERR_CORRUPT, "element value longer than the data left", pos, length);
            if (int64_t(length) > limits_.maxElementBytes) return fail(DICOM_ERR_TOO_LARGE, "element value over the size limit", pos, length);
            if (sequence) {
                size_t inner = pos;
                const int rc = items(d, inner, pos + length, false, explicitVR, little, depth);
                if (rc != DICOM_OK) return rc;
            } else if ((!explicitVR || unknown) && length >= 8 && u16(d + pos, little) == 0xFFFE && u16(d + pos + 2, little) == 0xE000) {
                // Implicit VR (or UN) whose value starts like an item: DCMTK may read it as a sequence (from its
                // dictionary, private ones included), so its nesting counts. If it is no valid sequence it stays a
                // value, unless the walk found it too deep or too large.
                size_t inner = pos;
                std::string saved = message_;
                const int rc = items(d, inner, pos + length, false, explicitVR && !unknown, unknown ? true : little, depth);
                if (rc == DICOM_ERR_TOO_COMPLEX || rc == DICOM_ERR_TOO_LARGE) return rc;
                message_ = saved;
            }
            pos += length;
        }
        if (inUndefinedItem) return fail(DICOM_ERR_CORRUPT, "item without its delimiter", pos);
        return DICOM_OK;
    }

private:
    /// Items of a sequence from `pos`; undefined: up to (FFFE,E0DD), else exactly to `end`.
    int items(const uint8_t *d, size_t &pos, size_t end, bool undefined, bool explicitVR, bool little, int depth) {
        if (depth + 1 > limits_.maxSequenceDepth) {
            message_ = "sequences nested deeper than " + std::to_string(limits_.maxSequenceDepth) + " levels";
            return DICOM_ERR_TOO_COMPLEX;
        }
        while (pos < end) {
            if (end - pos < 8) return fail(DICOM_ERR_CORRUPT, "truncated item header", pos);
            const uint16_t group = u16(d + pos, little), element = u16(d + pos + 2, little);
            const uint32_t length = u32(d + pos + 4, little);
            pos += 8;
            if (group == 0xFFFE && element == 0xE0DD && undefined) return DICOM_OK;
            if (group != 0xFFFE || element != 0xE000) return fail(DICOM_ERR_CORRUPT, "expected an item in a sequence", pos - 8);
            int rc;
            if (length == undefinedLength) {
                rc = dataset(d, pos, end, explicitVR, little, depth + 1, true);
            } else {
                if (length > end - pos) return fail(DICOM_ERR_CORRUPT, "item longer than the data left", pos - 8, length);
                size_t inner = pos;
                rc = dataset(d, inner, pos + length, explicitVR, little, depth + 1, false);
                pos += length;
            }
            if (rc != DICOM_OK) return rc;
        }
        if (undefined) return fail(DICOM_ERR_CORRUPT, "sequence without its delimiter", pos);
        return DICOM_OK;
    }

    /// Encapsulated Pixel Data (PS3.5 A.4): the offset table and fragments as items, then (FFFE,E0DD).
    int fragments(const uint8_t *d, size_t &pos, size_t end, bool little) {
        while (end - pos >= 8) {
            const uint16_t group = u16(d + pos, little), element = u16(d + pos + 2, little);
            const uint32_t length = u32(d + pos + 4, little);
            pos += 8;
            if (group == 0xFFFE && element == 0xE0DD) return DICOM_OK;
            if (group != 0xFFFE || element != 0xE000 || length == undefinedLength)
                return fail(DICOM_ERR_CORRUPT, "expected a pixel data fragment", pos - 8);
            if (length > end - pos) return fail(DICOM_ERR_CORRUPT, "pixel data fragment longer than the data left", pos - 8, length);
            if (int64_t(length) > limits_.maxElementBytes) return fail(DICOM_ERR_TOO_LARGE, "pixel data fragment over the size limit", pos - 8, length);
            pos += length;
        }
        return fail(DICOM_ERR_CORRUPT, "encapsulated pixel data without its sequence delimiter", pos);
    }

    static uint16_t u16(const uint8_t *p, bool little) { return little ? uint16_t(p[0] | p[1] << 8) : uint16_t(p[0] << 8 | p[1]); }
    static uint32_t u32(const uint8_t *p, bool little) {
        return little ? uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24
                      : uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | uint32_t(p[3]);
    }

    int fail(int code, const char *what, size_t offset, uint64_t length = 0) {
        message_ = std::string(what) + " at byte " + std::to_string(offset);
        if (length) message_ += " (" + std::to_string(length) + " bytes)";
        return code;
    }

    const Limits &limits_;
    std::string &message_;
};

/// Inflates a deflated data set (raw deflate, RFC 1951, as PS3.5 A.5 specifies) to at most `limit` bytes.
int inflateDataset(const uint8_t *data, size_t size, int64_t limit, std::vector<uint8_t> &out, std::string &message) {
    z_stream z;
    std::memset(&z, 0, sizeof z);
    if (inflateInit2(&z, -MAX_WBITS) != Z_OK) { message = "zlib could not start"; return DICOM_ERR_NOMEM; }
    z.next_in = const_cast<Bytef *>(data);
    z.avail_in = uInt(size > 0x7FFFFFFF ? 0x7FFFFFFF : size);
    int rc = Z_OK;
    while (rc == Z_OK) {
        if (int64_t(out.size()) >= limit) {
            inflateEnd(&z);
            message = "deflated data set inflates to more than " + std::to_string(limit) + " bytes";
            return DICOM_ERR_TOO_LARGE;
        }
        const size_t chunk = size_t(std::min<int64_t>(limit - int64_t(out.size()), 1 << 20));
        const size_t before = out.size();
        out.resize(before + chunk);
        z.next_out = out.data() + before;
        z.avail_out = uInt(chunk);
        rc = inflate(&z, Z_NO_FLUSH);
        out.resize(before + (chunk - z.avail_out));
        if (rc == Z_BUF_ERROR && z.avail_in == 0) break;  // input ended without the stream's end
    }
    inflateEnd(&z);
    if (rc != Z_STREAM_END) { message = "deflated data set is corrupt or truncated"; return DICOM_ERR_CORRUPT; }
    return DICOM_OK;
}

}  // namespace

bool supportedTransferSyntax(const std::string &uid, Encoding &encoding) {
    for (const Transfer &t : transfers) {
        if (uid == t.uid) {
            encoding.explicitVR = t.explicitVR;
            encoding.littleEndian = t.littleEndian;
            encoding.deflated = t.deflated;
            encoding.encapsulated = t.encapsulated;
            return true;
        }
    }
    return false;
}

int walkStructure(const uint8_t *data, size_t size, const Limits &limits, Encoding &encoding, std::string &message) {
    Walker walker(limits, message);
    size_t pos = (size >= 132 && std::memcmp(data + 128, "DICM", 4) == 0) ? 132 : 0;

    // File Meta Information (PS3.10 7.1): explicit VR little endian, group 0002.
    size_t metaStart = pos;
    while (size - pos >= 8 && data[pos] == 0x02 && data[pos + 1] == 0x00) {
        size_t next = pos;
        // One element at a time, so the group ends where the next group starts.
        const uint8_t *p = data + pos;
        if (!knownVR(p + 4)) { message = "invalid File Meta Information at byte " + std::to_string(pos); return DICOM_ERR_CORRUPT; }
        const bool isLong = longLength(reinterpret_cast<const char *>(p + 4));
        if (isLong && size - pos < 12) { message = "truncated File Meta Information"; return DICOM_ERR_CORRUPT; }
        const uint32_t length = isLong ? uint32_t(p[8] | p[9] << 8 | p[10] << 16 | uint32_t(p[11]) << 24) : uint32_t(p[6] | p[7] << 8);
        const size_t header = isLong ? 12 : 8;
        if (length == 0xFFFFFFFFu || length > size - pos - header) {
            message = "File Meta Information element longer than the data left at byte " + std::to_string(pos);
            return DICOM_ERR_CORRUPT;
        }
        if (p[2] == 0x10 && p[3] == 0x00) {  // (0002,0010) Transfer Syntax UID
            std::string uid(reinterpret_cast<const char *>(p + header), length);
            while (!uid.empty() && (uid.back() == '\0' || uid.back() == ' ')) uid.pop_back();
            encoding.transferSyntaxUID = uid;
        }
        next = pos + header + length;
        pos = next;
    }
    encoding.hasMeta = pos > metaStart;

    if (!encoding.transferSyntaxUID.empty()) {
        if (!supportedTransferSyntax(encoding.transferSyntaxUID, encoding)) return DICOM_ERR_TRANSFER_SYNTAX;
    } else {
        // No transfer syntax: recognise the data set from its first element, as DCMTK does.
        if (size - pos < 8) { message = "no DICOM data set found"; return DICOM_ERR_NOT_DICOM; }
        const uint8_t *p = data + pos;
        const unsigned groupLE = p[0] | p[1] << 8, groupBE = p[0] << 8 | p[1];
        encoding.explicitVR = knownVR(p + 4);
        // Implicit VR is little endian only (PS3.5 A.1): there is no implicit VR big endian to guess.
        encoding.littleEndian = !encoding.explicitVR || groupLE <= groupBE;
    }
    if (pos >= size) { message = "the file has no data set"; return DICOM_ERR_CORRUPT; }
    encoding.datasetOffset = pos;

    if (encoding.deflated) {
        const int rc = inflateDataset(data + pos, size - pos, limits.maxElementBytes, encoding.inflated, message);
        if (rc != DICOM_OK) return rc;
        size_t inner = 0;
        return walker.dataset(encoding.inflated.data(), inner, encoding.inflated.size(), true, true, 0, false);
    }
    // Explicit VR little endian in the meta, but the first element has no VR and reads as implicit VR: some
    // writers do this; pydicom reads such files, and so do we.
    if (encoding.explicitVR && encoding.littleEndian && !encoding.encapsulated && size - pos >= 8 && !knownVR(data + pos + 4)
        && encoding.transferSyntaxUID == "1.2.840.10008.1.2.1") {
        size_t probe = pos;
        std::string ignored;
        Walker implicit(limits, ignored);
        if (implicit.dataset(data, probe, size, false, true, 0, false) == DICOM_OK) {
            encoding.explicitVR = false;
            encoding.implicitDespiteMeta = true;
            return DICOM_OK;
        }
    }
    return walker.dataset(data, pos, size, encoding.explicitVR, encoding.littleEndian, 0, false);
}

}  // namespace cdicom
