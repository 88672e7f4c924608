// One frame of the Pixel Data: the attributes dicom.cpp read are checked against what is rendered and the
// limits, an encapsulated frame's fragments are found and its codestream checked (codestream.cpp), then
// DcmPixelData::getUncompressedFrame decodes only that frame (the codec decodes nothing else), or for JPEG
// 2000, which DCMTK has no codec for, OpenJPEG does (j2k.cpp).
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "dcmtk/config/osconfig.h"
#include "dcmtk/dcmdata/dcdatset.h"
#include "dcmtk/dcmdata/dcdeftag.h"
#include "dcmtk/dcmdata/dcpixel.h"
#include "dcmtk/dcmdata/dcpixseq.h"
#include "dcmtk/dcmdata/dcpxitem.h"
#include "dcmtk/dcmdata/dcxfer.h"

#include "dicom_internal.h"

namespace cdicom {
namespace {

enum class Codec { none, rle, jpeg, jpegLS, jpeg2000 };

/// The photometric interpretations rendered, for 1 or 3 samples per pixel. YBR_ICT and YBR_RCT are JPEG
/// 2000's (PS3.5 8.2.4): the frame is decoded to RGB.
bool photometricKnown(const std::string &p, int32_t samples, Codec codec) {
    if (samples == 1) return p == "MONOCHROME1" || p == "MONOCHROME2";
    if (codec == Codec::jpeg2000 && (p == "YBR_ICT" || p == "YBR_RCT")) return true;
    return p == "RGB" || p == "YBR_FULL" || p == "YBR_FULL_422";
}

/// The codec that decodes frames of transfer syntax `uid`; none for a native one.
Codec codecOf(const std::string &uid) {
    if (uid == "1.2.840.10008.1.2.5") return Codec::rle;
    if (uid == "1.2.840.10008.1.2.4.80" || uid == "1.2.840.10008.1.2.4.81") return Codec::jpegLS;
    if (uid == "1.2.840.10008.1.2.4.90" || uid == "1.2.840.10008.1.2.4.91") return Codec::jpeg2000;
    if (uid.rfind("1.2.840.10008.1.2.4.", 0) == 0) return Codec::jpeg;
    return Codec::none;
}

/// Encapsulated Pixel Data (PS3.5 A.4): finds the fragments of frame `index` (from the Basic Offset Table,
/// one fragment per frame, or for JPEG the fragments that start a codestream), checks that the data holds
/// as many frames as Number of Frames says, and checks that frame's codestream before DCMTK decodes it.
/// `startFragment` is DCMTK's item index of the frame's first fragment (item 0 is the offset table);
/// `frame` receives the frame's fragments joined (the codestream), `j2k` what a JPEG 2000 header says.
int checkEncapsulatedFrame(DcmPixelData *pixels, E_TransferSyntax xfer, Codec codec, int32_t frames, int32_t index,
                           const FrameGeometry &g, const Limits &limits, Uint32 &startFragment, std::vector<uint8_t> &frame,
                           J2KHeader &j2k, std::string &message) {
    DcmPixelSequence *sequence = nullptr;
    if (pixels->getEncapsulatedRepresentation(xfer, nullptr, sequence).bad() || !sequence) {
        message = "the encapsulated Pixel Data cannot be read";
        return DICOM_ERR_CORRUPT;
    }
    struct Fragment { const Uint8 *data; uint32_t length; uint64_t offset; };
    std::vector<Fragment> fragments;
    uint64_t offset = 0;
    const unsigned long items = sequence->card();
    for (unsigned long i = 1; i < items; ++i) {
        DcmPixelItem *item = nullptr;
        Uint8 *bytes = nullptr;
        if (sequence->getItem(item, i).bad() || !item) { message = "unreadable Pixel Data fragment"; return DICOM_ERR_CORRUPT; }
        const uint32_t length = item->getLength();
        if (length > 0 && (item->getUint8Array(bytes).bad() || !bytes)) { message = "unreadable Pixel Data fragment"; return DICOM_ERR_CORRUPT; }
        fragments.push_back({bytes, length, offset});
        offset += 8 + uint64_t(length);
    }
    if (fragments.empty()) { message = "the encapsulated Pixel Data has no fragments"; return DICOM_ERR_CORRUPT; }

    uint32_t tableLength = 0;
    Uint8 *table = nullptr;
    DcmPixelItem *offsetTable = nullptr;
    if (sequence->getItem(offsetTable, 0).good() && offsetTable) {
        tableLength = offsetTable->getLength();
        if (tableLength > 0 && (offsetTable->getUint8Array(table).bad() || !table)) tableLength = 0;
    }
    std::vector<size_t> starts;  // index into `fragments` where each frame starts
    const std::string claimed = "Number of Frames (0028,0008) says " + std::to_string(frames);
    if (tableLength > 0) {
        if (tableLength % 4 != 0 || tableLength / 4 != uint64_t(frames)) {
            message = claimed + ", the Basic Offset Table lists " + std::to_string(tableLength / 4) + " frames";
            return DICOM_ERR_CORRUPT;
        }
        size_t next = 0;
        for (int32_t f = 0; f < frames; ++f) {
            const uint32_t at = uint32_t(table[4 * f]) | uint32_t(table[4 * f + 1]) << 8 | uint32_t(table[4 * f + 2]) << 16
                | uint32_t(table[4 * f + 3]) << 24;
            while (next < fragments.size() && fragments[next].offset < at) ++next;
            if (next >= fragments.size() || fragments[next].offset != at || (!starts.empty() && starts.back() == next)) {
                message = "the Basic Offset Table's entry for frame " + std::to_string(f + 1) + " points at no fragment";
                return DICOM_ERR_CORRUPT;
            }
            starts.push_back(next);
        }
    } else if (frames == 1) {
        starts.push_back(0);
    } else if (fragments.size() == size_t(frames)) {
        for (int32_t f = 0; f < frames; ++f) starts.push_back(size_t(f));
    } else if (codec == Codec::jpeg || codec == Codec::jpegLS) {
        for (size_t i = 0; i < fragments.size(); ++i)
            if (fragments[i].length >= 2 && fragments[i].data[0] == 0xFF && fragments[i].data[1] == 0xD8) starts.push_back(i);
        if (starts.empty() || starts.front() != 0) starts.insert(starts.begin(), 0);
    } else if (codec == Codec::jpeg2000) {
        // A frame starts with a codestream's SOC and SIZ markers, or a JP2 signature box.
        static const uint8_t jp2[8] = {0, 0, 0, 0x0C, 'j', 'P', ' ', ' '};
        for (size_t i = 0; i < fragments.size(); ++i) {
            const Fragment &f = fragments[i];
            if ((f.length >= 4 && f.data[0] == 0xFF && f.data[1] == 0x4F && f.data[2] == 0xFF && f.data[3] == 0x51)
                || (f.length >= 8 && std::memcmp(f.data, jp2, 8) == 0)) starts.push_back(i);
        }
        if (starts.empty() || starts.front() != 0) starts.insert(starts.begin(), 0);
    }
    if (starts.size() != size_t(frames)) {
        message = claimed + ", the Pixel Data holds " + std::to_string(starts.size() ? starts.size() : fragments.size())
            + (codec == Codec::rle ? " (RLE codes each frame in one fragment)" : "");
        return DICOM_ERR_CORRUPT;
    }
    const size_t begin = starts[size_t(index)], end = size_t(index) + 1 < starts.size() ? starts[size_t(index) + 1] : fragments.size();
    frame.clear();
    for (size_t i = begin; i < end; ++i) frame.insert(frame.end(), fragments[i].data, fragments[i].data + fragments[i].length);
    startFragment = Uint32(begin + 1);
    switch (codec) {
    case Codec::rle: return checkRLEFrame(frame.data(), frame.size(), g, message);
    case Codec::jpeg: return checkJPEGFrame(frame.data(), frame.size(), g, limits, false, message);
    case Codec::jpegLS: return checkJPEGFrame(frame.data(), frame.size(), g, limits, true, message);
    case Codec::jpeg2000: return checkJ2KFrame(frame.data(), frame.size(), g, j2k, message);
    case Codec::none: break;
    }
    message = "encapsulated Pixel Data in a transfer syntax without a codec here";
    return DICOM_ERR_TRANSFER_SYNTAX;
}

}  // namespace

// The data set's attributes first, then DCMTK: nothing is decoded or allocated for a frame that the
// checks refuse.
int readFrame(DcmDataset *ds, const std::string &transferSyntax, const Limits &limits, int32_t frame, dicom_image *out,
              std::string &colorModel, std::string &message) {
    const int32_t frames = out->number_of_frames;
    DcmElement *element = nullptr;
    if (ds->findAndGetElement(DCM_PixelData, element).bad() || !element || element->ident() != EVR_PixelData) {
        message = "the file has no Pixel Data (7FE0,0010): it holds no image";
        return DICOM_ERR_NO_PIXEL_DATA;
    }
    if (out->rows <= 0 || out->columns <= 0) { message = "Rows or Columns missing or zero"; return DICOM_ERR_CORRUPT; }
    if (int64_t(out->rows) * out->columns > limits.maxPixels) {
        message = std::to_string(out->columns) + "x" + std::to_string(out->rows) + " pixels per frame is over the limit of "
            + std::to_string(limits.maxPixels);
        return DICOM_ERR_TOO_LARGE;
    }
    const std::string p = out->stored_photometric_interpretation;
    if (out->samples_per_pixel != 1 && out->samples_per_pixel != 3) {
        message = "Samples per Pixel " + std::to_string(out->samples_per_pixel) + " is not rendered (1 or 3 are)";
        return DICOM_ERR_VARIANT;
    }
    const Codec codec = codecOf(transferSyntax);
    if (!photometricKnown(p, out->samples_per_pixel, codec)) {
        message = "Photometric Interpretation \"" + p + "\" with " + std::to_string(out->samples_per_pixel)
            + " samples per pixel is not rendered (MONOCHROME1, MONOCHROME2, RGB, YBR_FULL and YBR_FULL_422 are, and YBR_ICT"
              " and YBR_RCT in JPEG 2000)";
        return DICOM_ERR_VARIANT;
    }
    if (out->bits_allocated != 8 && out->bits_allocated != 16) {
        message = "Bits Allocated " + std::to_string(out->bits_allocated) + " is not rendered (8 or 16 are)";
        return DICOM_ERR_VARIANT;
    }
    if (out->bits_stored < 1 || out->bits_stored > out->bits_allocated || out->high_bit != out->bits_stored - 1
        || out->pixel_representation > 1 || out->planar_configuration > 1) {
        message = "inconsistent Bits Stored, High Bit, Pixel Representation or Planar Configuration";
        return DICOM_ERR_CORRUPT;
    }
    if (frame >= frames) {
        message = "frame " + std::to_string(int64_t(frame) + 1) + " asked for, the file has " + std::to_string(frames);
        return DICOM_ERR_FRAME;
    }

    DcmPixelData *pixels = static_cast<DcmPixelData *>(element);
    Uint32 size = 0;
    OFCondition cond = pixels->getUncompressedFrameSize(ds, size);
    const uint64_t expected = uint64_t(out->rows) * uint64_t(out->columns) * uint64_t(out->samples_per_pixel) * uint64_t(out->bits_allocated / 8);
    if (cond.bad() || size != expected) {
        message = std::string("cannot size a frame: ") + (cond.bad() ? cond.text() : "unexpected frame size");
        return DICOM_ERR_CORRUPT;
    }
    const E_TransferSyntax xfer = ds->getOriginalXfer();
    const bool encapsulated = DcmXfer(xfer).isEncapsulated();
    // Native YBR_FULL_422 stores two samples per pixel (Y Y Cb Cr per pair, PS3.3 C.7.6.3.1.2); DCMTK sizes
    // frames as three, so such a frame is read here at its true size.
    const bool subsampled = p == "YBR_FULL_422" && !encapsulated && out->planar_configuration == 0;
    if (subsampled) size = Uint32(expected / 3 * 2);
    Uint32 startFragment = 0;
    const FrameGeometry geometry{out->rows, out->columns, out->samples_per_pixel, out->bits_allocated};
    std::vector<uint8_t> codestream;
    J2KHeader j2k;
    if (encapsulated) {
        const int rc = checkEncapsulatedFrame(pixels, xfer, codec, frames, out->frame_index, geometry, limits, startFragment,
                                              codestream, j2k, message);
        if (rc != DICOM_OK) return rc;
    } else {
        // Frame offsets in 64 bits: Number of Frames x frame size must fit in the Pixel Data, or a frame past
        // the end would wrap around to an earlier one.
        const uint64_t needed = uint64_t(frames) * uint64_t(size);
        const uint64_t length = pixels->getLength();
        if (length < needed) {
            message = "Pixel Data holds " + std::to_string(length) + " bytes; " + std::to_string(frames) + (frames == 1 ? " frame of " : " frames of ")
                + std::to_string(out->columns) + "x" + std::to_string(out->rows) + " need " + std::to_string(needed)
                + " (Number of Frames, Rows, Columns or Bits Allocated is wrong, or the file is truncated)";
            return DICOM_ERR_CORRUPT;
        }
    }
    // Zeroed, and DCMTK wants room for a pad byte after an odd-sized frame: no byte of it is ever left as
    // whatever this process held before.
    const Uint32 capacity = size + (size & 1);
    out->frame_data = static_cast<uint8_t *>(std::calloc(capacity, 1));
    if (!out->frame_data) return DICOM_ERR_NOMEM;
    out->frame_size = size;
    OFString model;
    if (codec == Codec::jpeg2000 && encapsulated) {
        const int rc = decodeJ2KFrame(codestream.data(), codestream.size(), geometry, j2k, out->planar_configuration == 1,
                                      out->frame_data, capacity, message);
        if (rc != DICOM_OK) {
            message = "frame " + std::to_string(out->frame_index + 1) + ": " + message;
            return rc;
        }
        // OpenJPEG undoes the codestream's colour transform (ICT, RCT): pydicom names the frame RGB, so do we.
        if (p == "YBR_ICT" || p == "YBR_RCT") colorModel = "RGB";
        return DICOM_OK;
    }
    if (subsampled) {
        cond = pixels->getPartialValue(out->frame_data, Uint32(uint64_t(out->frame_index) * size), size);
    } else {
        cond = pixels->getUncompressedFrame(ds, Uint32(out->frame_index), startFragment, out->frame_data, capacity, model);
    }
    if (subsampled) model = p.c_str();
    if (cond.bad()) {
        message = "frame " + std::to_string(out->frame_index + 1) + " cannot be decoded: " + cond.text();
        return DICOM_ERR_CORRUPT;
    }
    colorModel.assign(model.c_str(), model.length());
    // A decoded frame's planar configuration follows the data set's (DCMTK's codecs convert to it).
    return DICOM_OK;
}

}  // namespace cdicom
