// dicom_read: DCMTK parses the data set (after the structural walk of structure.cpp), the attributes of
// the Image Pixel, Modality LUT and VOI LUT modules and the patient/study fields are copied out, and one
// frame is decoded with DcmPixelData::getUncompressedFrame (the codec decodes only that frame).
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <stdexcept>
#include <string>

#include "dcmtk/config/osconfig.h"
#include "dcmtk/dcmdata/dcdeftag.h"
#include "dcmtk/dcmdata/dcdict.h"
#include "dcmtk/dcmdata/dcfilefo.h"
#include "dcmtk/dcmdata/dcistrmb.h"
#include "dcmtk/dcmdata/dcpixel.h"
#include "dcmtk/dcmdata/dcrledrg.h"
#include "dcmtk/dcmdata/dcxfer.h"
#include "dcmtk/dcmjpeg/djdecode.h"
#include "dcmtk/dcmjpls/djdecode.h"
#include "dcmtk/oflog/oflog.h"

#include "dicom_internal.h"

using namespace cdicom;

namespace {

void setError(char *err, size_t errlen, const std::string &message) {
    if (!err || errlen == 0) return;
    const size_t n = std::min(message.size(), errlen - 1);
    std::memcpy(err, message.data(), n);
    err[n] = '\0';
}

std::once_flag registration;

// DCMTK's codecs and logger are process-wide: set up once. Its warnings would go to stderr, and a
// warning may quote a value, so the logger is turned off.
void registerOnce() {
    std::call_once(registration, [] {
        OFLog::configure(OFLogger::OFF_LOG_LEVEL);
        DcmRLEDecoderRegistration::registerCodecs();
        // YBR_FULL(_422) JPEG frames are converted to RGB, as the photometric interpretation says they were coded.
        DJDecoderRegistration::registerCodecs(EDC_photometricInterpretation);
        DJLSDecoderRegistration::registerCodecs();
    });
}

void copyText(char *dst, size_t cap, const OFString &src) {
    std::string s(src.c_str(), src.length());
    while (!s.empty() && (s.back() == ' ' || s.back() == '\0')) s.pop_back();
    while (!s.empty() && s.front() == ' ') s.erase(s.begin());
    if (s.size() >= cap || s.find('\0') != std::string::npos) { dst[0] = '\0'; return; }
    std::memcpy(dst, s.data(), s.size());
    dst[s.size()] = '\0';
}

void readText(DcmItem *item, const DcmTagKey &tag, dicom_text &out) {
    OFString value;
    if (item->findAndGetOFStringArray(tag, value).good()) copyText(out.value, sizeof out.value, value);
}

int32_t readInt(DcmItem *item, const DcmTagKey &tag, int32_t fallback) {
    Uint16 v;
    return item->findAndGetUint16(tag, v).good() ? int32_t(v) : fallback;
}

/// The first item of a LUT sequence: its descriptor and data (PS3.3 C.11.1.1, C.11.2.1.1).
int readLUT(DcmItem *dataset, const DcmTagKey &sequence, bool signedInput, dicom_lut &out, std::string &message) {
    DcmItem *item = nullptr;
    if (dataset->findAndGetSequenceItem(sequence, item, 0).bad() || !item) return DICOM_OK;
    DcmElement *descriptor = nullptr;
    if (item->findAndGetElement(DCM_LUTDescriptor, descriptor).bad() || descriptor->getVM() != 3) {
        message = "a LUT sequence item without a three-valued LUT Descriptor (0028,3002)";
        return DICOM_ERR_CORRUPT;
    }
    Uint16 values[3];
    for (unsigned long i = 0; i < 3; ++i) {
        Sint16 s;
        if (descriptor->getVR() == EVR_SS && descriptor->getSint16(s, i).good()) values[i] = Uint16(s);
        else if (descriptor->getUint16(values[i], i).bad()) { message = "unreadable LUT Descriptor (0028,3002)"; return DICOM_ERR_CORRUPT; }
    }
    const int32_t entries = values[0] == 0 ? 65536 : values[0];
    const bool firstSigned = descriptor->getVR() == EVR_SS || signedInput;
    const int32_t first = firstSigned ? int32_t(Sint16(values[1])) : int32_t(values[1]);
    const int32_t bits = values[2];
    if (bits < 8 || bits > 16) { message = "LUT Descriptor (0028,3002) gives " + std::to_string(bits) + " bits per entry (8 to 16 are read)"; return DICOM_ERR_VARIANT; }
    const Uint16 *data = nullptr;
    unsigned long count = 0;
    if (item->findAndGetUint16Array(DCM_LUTData, data, &count).bad() || !data) {
        message = "a LUT sequence item without LUT Data (0028,3006)";
        return DICOM_ERR_CORRUPT;
    }
    out.data = static_cast<uint16_t *>(std::malloc(size_t(entries) * sizeof(uint16_t)));
    if (!out.data) return DICOM_ERR_NOMEM;
    if (count >= static_cast<unsigned long>(entries)) {
        std::memcpy(out.data, data, size_t(entries) * sizeof(uint16_t));
    } else if (bits == 8 && count * 2 >= static_cast<unsigned long>(entries)) {
        // 8-bit entries packed two to a 16-bit word (low byte first), as some older files store them.
        for (int32_t i = 0; i < entries; ++i) out.data[i] = (data[i / 2] >> ((i % 2) * 8)) & 0xFF;
    } else {
        std::free(out.data);
        out.data = nullptr;
        message = "LUT Data (0028,3006) has " + std::to_string(count) + " entries, the descriptor says " + std::to_string(entries);
        return DICOM_ERR_CORRUPT;
    }
    out.entries = entries;
    out.first_mapped = first;
    out.bits = bits;
    return DICOM_OK;
}

bool photometricKnown(const std::string &p, int32_t samples) {
    if (samples == 1) return p == "MONOCHROME1" || p == "MONOCHROME2";
    return p == "RGB" || p == "YBR_FULL" || p == "YBR_FULL_422";
}

int readImage(DcmDataset *ds, const Limits &limits, int32_t frame, bool decodePixels, dicom_image *out, std::string &message) {
    out->rows = readInt(ds, DCM_Rows, 0);
    out->columns = readInt(ds, DCM_Columns, 0);
    out->samples_per_pixel = readInt(ds, DCM_SamplesPerPixel, 1);
    out->bits_allocated = readInt(ds, DCM_BitsAllocated, 0);
    out->bits_stored = readInt(ds, DCM_BitsStored, out->bits_allocated);
    out->high_bit = readInt(ds, DCM_HighBit, out->bits_stored - 1);
    out->pixel_representation = readInt(ds, DCM_PixelRepresentation, 0);
    out->planar_configuration = readInt(ds, DCM_PlanarConfiguration, 0);
    Sint32 frames = 1;
    if (ds->findAndGetSint32(DCM_NumberOfFrames, frames).bad() || frames < 1) frames = 1;
    out->number_of_frames = frames;
    OFString photometric;
    ds->findAndGetOFString(DCM_PhotometricInterpretation, photometric);
    copyText(out->stored_photometric_interpretation, sizeof out->stored_photometric_interpretation, photometric);
    std::strcpy(out->photometric_interpretation, out->stored_photometric_interpretation);

    Float64 slope, intercept;
    if (ds->findAndGetFloat64(DCM_RescaleSlope, slope).good() && ds->findAndGetFloat64(DCM_RescaleIntercept, intercept).good()) {
        out->has_rescale = 1;
        out->rescale_slope = slope;
        out->rescale_intercept = intercept;
    }
    DcmElement *center = nullptr, *width = nullptr;
    Float64 c, w;
    if (ds->findAndGetElement(DCM_WindowCenter, center).good() && ds->findAndGetElement(DCM_WindowWidth, width).good()
        && center->getFloat64(c, 0).good() && width->getFloat64(w, 0).good()) {
        out->window_count = int32_t(center->getVM());
        out->window_center = c;
        out->window_width = w;
    }
    OFString function;
    if (ds->findAndGetOFString(DCM_VOILUTFunction, function).bad() || function.empty()) function = "LINEAR";
    copyText(out->voi_lut_function, sizeof out->voi_lut_function, function);
    int rc = readLUT(ds, DCM_ModalityLUTSequence, out->pixel_representation == 1, out->modality_lut, message);
    if (rc == DICOM_OK) rc = readLUT(ds, DCM_VOILUTSequence, false, out->voi_lut, message);
    if (rc != DICOM_OK || !decodePixels) return rc;

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
    if (!photometricKnown(p, out->samples_per_pixel)) {
        message = "Photometric Interpretation \"" + p + "\" with " + std::to_string(out->samples_per_pixel)
            + " samples per pixel is not rendered (MONOCHROME1, MONOCHROME2, RGB, YBR_FULL and YBR_FULL_422 are)";
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
        message = "frame " + std::to_string(frame + 1) + " asked for, the file has " + std::to_string(frames);
        return DICOM_ERR_FRAME;
    }
    out->frame_index = frame < 0 ? (frames - 1) / 2 : frame;

    DcmPixelData *pixels = static_cast<DcmPixelData *>(element);
    Uint32 size = 0;
    OFCondition cond = pixels->getUncompressedFrameSize(ds, size);
    const uint64_t expected = uint64_t(out->rows) * uint64_t(out->columns) * uint64_t(out->samples_per_pixel) * uint64_t(out->bits_allocated / 8);
    if (cond.bad() || size != expected) {
        message = std::string("cannot size a frame: ") + (cond.bad() ? cond.text() : "unexpected frame size");
        return DICOM_ERR_CORRUPT;
    }
    // Native YBR_FULL_422 stores two samples per pixel (Y Y Cb Cr per pair, PS3.3 C.7.6.3.1.2); DCMTK sizes
    // frames as three, so such a frame is read here at its true size.
    const bool subsampled = p == "YBR_FULL_422" && !DcmXfer(ds->getOriginalXfer()).isEncapsulated() && out->planar_configuration == 0;
    if (subsampled) size = Uint32(expected / 3 * 2);
    // DCMTK wants room for a pad byte after an odd-sized frame.
    const Uint32 capacity = size + (size & 1);
    out->frame_data = static_cast<uint8_t *>(std::malloc(capacity));
    if (!out->frame_data) return DICOM_ERR_NOMEM;
    out->frame_size = size;
    Uint32 startFragment = 0;
    OFString colorModel;
    if (subsampled) {
        cond = pixels->getPartialValue(out->frame_data, Uint32(out->frame_index) * size, size);
        colorModel = p.c_str();
    } else {
        cond = pixels->getUncompressedFrame(ds, Uint32(out->frame_index), startFragment, out->frame_data, capacity, colorModel);
    }
    if (cond.bad()) {
        message = "frame " + std::to_string(out->frame_index + 1) + " cannot be decoded: " + cond.text();
        return DICOM_ERR_CORRUPT;
    }
    if (!colorModel.empty()) copyText(out->photometric_interpretation, sizeof out->photometric_interpretation, colorModel);
    // A decoded frame's planar configuration follows the data set's (DCMTK's codecs convert to it).
    return DICOM_OK;
}

int readAll(const uint8_t *data, size_t size, const Limits &limits, int32_t frame, bool decodePixels, dicom_image *out, std::string &message) {
    Encoding encoding;
    int rc = walkStructure(data, size, limits, encoding, message);
    if (rc == DICOM_ERR_TRANSFER_SYNTAX) {
        const std::string &uid = encoding.transferSyntaxUID;
        DcmXfer xfer(uid.c_str());
        const std::string name = xfer.getXfer() == EXS_Unknown ? std::string("an unknown transfer syntax") : xfer.getXferName();
        message = name + " (" + uid + ") is not decoded here; export the series as uncompressed (explicit VR little "
            "endian), RLE, JPEG or JPEG-LS";
        if (uid.size() < sizeof out->transfer_syntax_uid) std::strcpy(out->transfer_syntax_uid, uid.c_str());
        return rc;
    }
    if (rc != DICOM_OK) return rc;

    registerOnce();
    if (!dcmDataDict.isDictionaryLoaded()) { message = "DCMTK's data dictionary is not installed"; return DICOM_ERR_INTERNAL; }
    DcmInputBufferStream stream;
    stream.setBuffer(data, offile_off_t(size));
    stream.setEos();
    DcmFileFormat file;
    file.transferInit();
    const Uint32 maxRead = limits.maxElementBytes > 0xFFFFFFFEll ? 0xFFFFFFFEu : Uint32(limits.maxElementBytes);
    OFCondition cond = file.read(stream, EXS_Unknown, EGL_noChange, maxRead);
    file.transferEnd();
    if (cond.bad()) { message = std::string("DCMTK cannot read the data set: ") + cond.text(); return DICOM_ERR_CORRUPT; }
    DcmDataset *ds = file.getDataset();
    DcmXfer xfer(ds->getOriginalXfer());
    if (encoding.transferSyntaxUID.empty()) {
        if (xfer.isExplicitVR() != encoding.explicitVR || xfer.isLittleEndian() != encoding.littleEndian) {
            message = "the data set's encoding is ambiguous";
            return DICOM_ERR_CORRUPT;
        }
    }
    const std::string uid = encoding.transferSyntaxUID.empty() ? xfer.getXferID() : encoding.transferSyntaxUID;
    if (uid.size() < sizeof out->transfer_syntax_uid) std::strcpy(out->transfer_syntax_uid, uid.c_str());
    DcmXfer named(uid.c_str());
    std::snprintf(out->transfer_syntax_name, sizeof out->transfer_syntax_name, "%s", named.getXferName());

    // Patient and study fields in UTF-8; a data set whose character set cannot be converted keeps them empty
    // unless they are ASCII (checked by the caller).
    const bool utf8 = ds->convertToUTF8().good();
    (void)utf8;
    readText(ds, DCM_PatientID, out->patient_id);
    readText(ds, DCM_PatientName, out->patient_name);
    readText(ds, DCM_PatientAge, out->patient_age);
    readText(ds, DCM_PatientBirthDate, out->patient_birth_date);
    readText(ds, DCM_PatientSex, out->patient_sex);
    readText(ds, DCM_Modality, out->modality);
    readText(ds, DCM_BodyPartExamined, out->body_part_examined);
    readText(ds, DCM_StudyDate, out->study_date);
    readText(ds, DCM_SeriesDescription, out->series_description);
    readText(ds, DCM_StudyInstanceUID, out->study_instance_uid);
    readText(ds, DCM_SeriesInstanceUID, out->series_instance_uid);
    readText(ds, DCM_SOPInstanceUID, out->sop_instance_uid);

    return readImage(ds, limits, frame, decodePixels, out, message);
}

}  // namespace

extern "C" int dicom_read(const uint8_t *data, size_t size, const dicom_limits *limits, int32_t frame,
                          int32_t decode_pixels, dicom_image *out, char *err, size_t errlen) {
    if (err && errlen) err[0] = '\0';
    if (!out) { setError(err, errlen, "no output"); return DICOM_ERR_ARGUMENT; }
    std::memset(out, 0, sizeof *out);
    if (!data || size == 0) { setError(err, errlen, "the file is empty"); return DICOM_ERR_EMPTY; }
    Limits l{50000000, 268435456, 16};
    if (limits) {
        if (limits->max_pixels < 0 || limits->max_element_bytes < 0 || limits->max_sequence_depth < 0) {
            setError(err, errlen, "negative limits");
            return DICOM_ERR_ARGUMENT;
        }
        if (limits->max_pixels) l.maxPixels = limits->max_pixels;
        if (limits->max_element_bytes) l.maxElementBytes = limits->max_element_bytes;
        if (limits->max_sequence_depth) l.maxSequenceDepth = limits->max_sequence_depth;
    }
    std::string message;
    int rc;
    try {
        rc = readAll(data, size, l, frame < 0 ? -1 : frame, decode_pixels != 0, out, message);
    } catch (const std::bad_alloc &) {
        rc = DICOM_ERR_NOMEM;
        message = "out of memory while reading the file";
    } catch (const std::exception &e) {
        rc = DICOM_ERR_INTERNAL;
        message = std::string("DCMTK failed: ") + e.what();
    } catch (...) {
        rc = DICOM_ERR_INTERNAL;
        message = "DCMTK failed with an unknown exception";
    }
    if (rc != DICOM_OK) {
        char uid[sizeof out->transfer_syntax_uid];
        std::memcpy(uid, out->transfer_syntax_uid, sizeof uid);
        dicom_image_free(out);
        if (rc == DICOM_ERR_TRANSFER_SYNTAX) std::memcpy(out->transfer_syntax_uid, uid, sizeof uid);
        if (message.empty()) message = rc == DICOM_ERR_NOMEM ? "out of memory" : "the file cannot be read";
        setError(err, errlen, message);
    }
    return rc;
}

extern "C" void dicom_image_free(dicom_image *image) {
    if (!image) return;
    std::free(image->frame_data);
    std::free(image->modality_lut.data);
    std::free(image->voi_lut.data);
    std::memset(image, 0, sizeof *image);
}
