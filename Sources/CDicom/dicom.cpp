// dicom_read: DCMTK parses the data set (after the structural walk of structure.cpp), the attributes of
// the Image Pixel, Modality LUT and VOI LUT modules and the patient/study fields are copied out here, and
// one frame is decoded by frame.cpp with DcmPixelData::getUncompressedFrame (the codec decodes only that
// frame).
#include <cmath>
#include <cstdlib>
#include <vector>
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


/// Rescale Slope and Intercept of `item`, when both are there.
void readRescale(DcmItem *item, dicom_image *out) {
    Float64 slope, intercept;
    if (item->findAndGetFloat64(DCM_RescaleSlope, slope).good() && item->findAndGetFloat64(DCM_RescaleIntercept, intercept).good()) {
        out->has_rescale = 1;
        out->rescale_slope = slope;
        out->rescale_intercept = intercept;
    }
}

/// The first Window Center/Width of `item` and its VOI LUT Function, when the window is there.
void readWindow(DcmItem *item, dicom_image *out) {
    DcmElement *center = nullptr, *width = nullptr;
    Float64 c, w;
    if (item->findAndGetElement(DCM_WindowCenter, center).good() && item->findAndGetElement(DCM_WindowWidth, width).good()
        && center->getFloat64(c, 0).good() && width->getFloat64(w, 0).good()) {
        out->window_count = int32_t(center->getVM());
        out->window_center = c;
        out->window_width = w;
        OFString function;
        if (item->findAndGetOFString(DCM_VOILUTFunction, function).bad() || function.empty()) function = "LINEAR";
        copyText(out->voi_lut_function, sizeof out->voi_lut_function, function);
    }
}

/// Enhanced MR/CT (PS3.3 C.7.6.16): the macro `macro` of the frame's Per-frame Functional Groups item, else
/// of the Shared Functional Groups; nullptr when neither has it.
DcmItem *functionalGroup(DcmDataset *ds, const DcmTagKey &macro, int32_t frameIndex) {
    DcmItem *group = nullptr, *item = nullptr;
    if (ds->findAndGetSequenceItem(DCM_PerFrameFunctionalGroupsSequence, group, frameIndex).good() && group
        && group->findAndGetSequenceItem(macro, item, 0).good() && item) return item;
    if (ds->findAndGetSequenceItem(DCM_SharedFunctionalGroupsSequence, group, 0).good() && group
        && group->findAndGetSequenceItem(macro, item, 0).good() && item) return item;
    return nullptr;
}

/// Pixel Padding Value (0028,0120) and Pixel Padding Range Limit (0028,0121): US or SS, read as the
/// Pixel Representation says.
bool readPadding(DcmItem *ds, const DcmTagKey &tag, bool isSigned, int32_t &value) {
    DcmElement *e = nullptr;
    if (ds->findAndGetElement(tag, e).bad() || !e || e->getVM() < 1) return false;
    Uint16 u;
    Sint16 v;
    if (e->getUint16(u, 0).good()) { value = isSigned ? int32_t(Sint16(u)) : int32_t(u); return true; }
    if (e->getSint16(v, 0).good()) { value = isSigned ? int32_t(v) : int32_t(Uint16(v)); return true; }
    return false;
}

/// The Image Pixel, Modality LUT and VOI LUT attributes of `ds` (a frame's functional groups over the data
/// set's own), then, with `decodePixels`, the frame itself (readFrame, frame.cpp).
int readImage(DcmDataset *ds, const std::string &transferSyntax, const Limits &limits, int32_t frame, bool decodePixels,
              dicom_image *out, std::string &message) {
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
    out->frame_index = frame < 0 ? (frames - 1) / 2 : frame;
    const int32_t groupFrame = std::min(out->frame_index, frames - 1);
    OFString photometric;
    ds->findAndGetOFString(DCM_PhotometricInterpretation, photometric);
    copyText(out->stored_photometric_interpretation, sizeof out->stored_photometric_interpretation, photometric);
    std::strcpy(out->photometric_interpretation, out->stored_photometric_interpretation);

    // The data set's own values, then the frame's functional groups (Enhanced MR/CT), which take precedence.
    std::strcpy(out->voi_lut_function, "LINEAR");
    readRescale(ds, out);
    readWindow(ds, out);
    if (DcmItem *transform = functionalGroup(ds, DCM_PixelValueTransformationSequence, groupFrame)) readRescale(transform, out);
    if (DcmItem *voi = functionalGroup(ds, DCM_FrameVOILUTSequence, groupFrame)) readWindow(voi, out);
    const bool isSigned = out->pixel_representation == 1;
    out->has_pixel_padding = readPadding(ds, DCM_PixelPaddingValue, isSigned, out->pixel_padding_value);
    out->has_pixel_padding_range = out->has_pixel_padding
        && readPadding(ds, DCM_PixelPaddingRangeLimit, isSigned, out->pixel_padding_range_limit);
    int rc = readLUT(ds, DCM_ModalityLUTSequence, isSigned, out->modality_lut, message);
    if (rc == DICOM_OK) rc = readLUT(ds, DCM_VOILUTSequence, false, out->voi_lut, message);
    if (rc != DICOM_OK || !decodePixels) return rc;

    std::string colorModel;
    rc = readFrame(ds, transferSyntax, limits, frame, out, colorModel, message);
    // The photometric interpretation of the frame as decoded (DCMTK's JPEG codec turns YBR into RGB), when
    // DCMTK names one; otherwise the stored one stands.
    if (rc == DICOM_OK && !colorModel.empty()) {
        copyText(out->photometric_interpretation, sizeof out->photometric_interpretation, OFString(colorModel.c_str(), colorModel.size()));
    }
    return rc;
}

int readAll(const uint8_t *data, size_t size, const Limits &limits, int32_t frame, bool decodePixels, dicom_image *out, std::string &message) {
    Encoding encoding;
    int rc = walkStructure(data, size, limits, encoding, message);
    if (rc == DICOM_ERR_TRANSFER_SYNTAX) {
        const std::string &uid = encoding.transferSyntaxUID;
        DcmXfer xfer(uid.c_str());
        std::string name = xfer.getXfer() == EXS_Unknown ? std::string("an unknown transfer syntax") : xfer.getXferName();
        // DCMTK 3.6.7 predates High-Throughput JPEG 2000 (PS3.5 A.4.11): named here, so the refusal says what it is.
        if (uid == "1.2.840.10008.1.2.4.201") name = "High-Throughput JPEG 2000 Image Compression (Lossless Only)";
        else if (uid == "1.2.840.10008.1.2.4.202") name = "High-Throughput JPEG 2000 with RPCL Options Image Compression (Lossless Only)";
        else if (uid == "1.2.840.10008.1.2.4.203") name = "High-Throughput JPEG 2000 Image Compression";
        message = name + " (" + uid + ") is not decoded here; export the series as uncompressed (explicit VR little "
            "endian), RLE, JPEG, JPEG-LS or JPEG 2000";
        if (uid.size() < sizeof out->transfer_syntax_uid) std::strcpy(out->transfer_syntax_uid, uid.c_str());
        return rc;
    }
    if (rc != DICOM_OK) return rc;

    registerOnce();
    if (!dcmDataDict.isDictionaryLoaded()) { message = "DCMTK's data dictionary is not installed"; return DICOM_ERR_INTERNAL; }
    // DCMTK reads the data set alone, from the bytes the walk checked: the inflated copy of a deflated data
    // set (never inflated twice), or the input after its meta information, in the encoding the walk found.
    const uint8_t *dataset = encoding.deflated ? encoding.inflated.data() : data + encoding.datasetOffset;
    const size_t datasetSize = encoding.deflated ? encoding.inflated.size() : size - encoding.datasetOffset;
    E_TransferSyntax readAs = EXS_Unknown;
    std::string uid = encoding.transferSyntaxUID;
    if (encoding.deflated) readAs = EXS_LittleEndianExplicit;
    else if (encoding.implicitDespiteMeta) { readAs = EXS_LittleEndianImplicit; uid = "1.2.840.10008.1.2"; }
    else if (!uid.empty()) readAs = DcmXfer(uid.c_str()).getXfer();
    // A bare data set: DCMTK reads it in the encoding the walk checked, never a guess of its own (a guess
    // that differs reads the walk's lengths in another byte order and bypasses max_element_bytes).
    else readAs = !encoding.explicitVR ? EXS_LittleEndianImplicit : encoding.littleEndian ? EXS_LittleEndianExplicit : EXS_BigEndianExplicit;
    DcmInputBufferStream stream;
    stream.setBuffer(dataset, offile_off_t(datasetSize));
    stream.setEos();
    DcmFileFormat file;
    DcmDataset *ds = file.getDataset();
    const Uint32 maxRead = limits.maxElementBytes > 0xFFFFFFFEll ? 0xFFFFFFFEu : Uint32(limits.maxElementBytes);
    ds->transferInit();
    OFCondition cond = ds->read(stream, readAs, EGL_noChange, maxRead);
    ds->transferEnd();
    // DCMTK holds its own copy of every value now: the inflated bytes are not needed past this point.
    std::vector<uint8_t>().swap(encoding.inflated);
    if (cond.bad()) { message = std::string("DCMTK cannot read the data set: ") + cond.text(); return DICOM_ERR_CORRUPT; }
    DcmXfer xfer(ds->getOriginalXfer());
    if (uid.empty()) {
        if (xfer.isExplicitVR() != encoding.explicitVR || xfer.isLittleEndian() != encoding.littleEndian) {
            message = "the data set's encoding is ambiguous";
            return DICOM_ERR_CORRUPT;
        }
        uid = xfer.getXferID();
    }
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
    readText(ds, DCM_SOPClassUID, out->sop_class_uid);
    readText(ds, DCM_StudyDescription, out->study_description);
    readText(ds, DCM_SeriesNumber, out->series_number);
    readText(ds, DCM_InstanceNumber, out->instance_number);
    readText(ds, DCM_Manufacturer, out->manufacturer);

    return readImage(ds, uid, limits, frame, decodePixels, out, message);
}

}  // namespace

extern "C" int dicom_read(const uint8_t *data, size_t size, const dicom_limits *limits, int32_t frame,
                          int32_t decode_pixels, dicom_image *out, char *err, size_t errlen) {
    if (err && errlen) err[0] = '\0';
    if (!out) { setError(err, errlen, "no output"); return DICOM_ERR_ARGUMENT; }
    std::memset(out, 0, sizeof *out);
    if (!data || size == 0) { setError(err, errlen, "the file is empty"); return DICOM_ERR_EMPTY; }
    Limits l{50000000, 268435456, 16, 256, 0};
    if (limits) {
        if (limits->max_pixels < 0 || limits->max_element_bytes < 0 || limits->max_sequence_depth < 0) {
            setError(err, errlen, "negative limits");
            return DICOM_ERR_ARGUMENT;
        }
        if (limits->max_pixels) l.maxPixels = limits->max_pixels;
        if (limits->max_element_bytes) l.maxElementBytes = limits->max_element_bytes;
        if (limits->max_sequence_depth) l.maxSequenceDepth = limits->max_sequence_depth;
        if (limits->max_jpeg_scans > 0) l.maxJPEGScans = limits->max_jpeg_scans;
        if (limits->max_jpeg_scan_pixels > 0) l.maxJPEGScanPixels = limits->max_jpeg_scan_pixels;
    }
    if (l.maxJPEGScanPixels == 0) l.maxJPEGScanPixels = l.maxPixels * 12;
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
