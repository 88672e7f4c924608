// libFuzzer harness over the DICOM shim (Sources/CDicom), built with ASan + UBSan by Tests/Fuzz/fuzz.sh.
//
// Each input is read the way MediscopeImaging's DicomFile.read calls the shim: dicom_read with the
// attributes only (decode_pixels 0), then with pixels for the middle frame (frame -1), then with pixels
// for a frame chosen from the input (the last, one past the last, the first or another one), each
// followed by dicom_image_free. The limits are the app's ImageLimits (with max_pixels 4,000,000): the
// JPEG scan budget included, which the shim enforces itself. Every byte of the decoded frame and of the
// LUTs is read (so an uninitialised or short buffer is touched), and the promises of CDicom.h are
// checked: a violation aborts with a message, which libFuzzer reports as a crash.
//
// Every call runs twice, with new heap blocks filled with 0x00 and then 0xFF (heap_fill.h): results that
// differ mean the shim returned memory nobody wrote (another upload's bytes, in production).
//
// MEDISCOPE_FUZZ_VERBOSE=1 prints each call's result code and message (to read a reproducer).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <string>
#include <vector>

#include "CDicom.h"
#include "heap_fill.h"

namespace {

const int64_t kMaxPixels = 4000000;  // small enough that no frame costs more than ~24 MB
// ImageLimits(maxPixels: kMaxPixels) as DicomFile.read passes it, with a smaller element bound.
dicom_limits appLimits() {
    dicom_limits l;
    std::memset(&l, 0, sizeof l);
    l.max_pixels = kMaxPixels;
    l.max_element_bytes = 64 << 20;
    l.max_sequence_depth = 16;
    l.max_jpeg_scans = 256;
    l.max_jpeg_scan_pixels = kMaxPixels * 12;
    return l;
}

volatile uint64_t sink;
const bool verbose = std::getenv("MEDISCOPE_FUZZ_VERBOSE") != nullptr;

[[noreturn]] void violated(const char *what, int rc, const dicom_image &img) {
    std::fprintf(stderr,
                 "\n==dicom_fuzzer== CDicom.h contract violated: %s (rc %d, %dx%d, spp %d, bits %d, frames %d, "
                 "frame %d, frame_size %zu)\n",
                 what, rc, img.rows, img.columns, img.samples_per_pixel, img.bits_allocated, img.number_of_frames,
                 img.frame_index, img.frame_size);
    std::abort();
}

bool terminated(const char *s, size_t cap) { return std::memchr(s, '\0', cap) != nullptr; }

uint64_t touch(const void *p, size_t n) {
    const uint8_t *b = static_cast<const uint8_t *>(p);
    uint64_t sum = 0;
    for (size_t i = 0; i < n; ++i) sum += b[i];
    return sum;
}

bool isZero(const void *p, size_t n) {
    const uint8_t *b = static_cast<const uint8_t *>(p);
    for (size_t i = 0; i < n; ++i) if (b[i]) return false;
    return true;
}

/// What a call returned, to compare two runs: the code, the message, the struct without its pointers,
/// the frame and the LUTs.
struct Result {
    int rc = 0;
    std::string message;
    dicom_image fields;
    std::vector<uint8_t> frame, luts;
};

/// One call as the app makes it, new heap blocks filled with `fill`; returns the number of frames on
/// success, 0 otherwise.
int32_t readOnce(const uint8_t *data, size_t size, int32_t frame, int32_t decodePixels, int fill, Result &result) {
    dicom_limits limits = appLimits();
    dicom_image img;
    std::memset(&img, 0xA5, sizeof img);  // dicom_read must set every field it returns
    char err[512];
    heap_fill_byte = fill;
    const int rc = dicom_read(data, size, &limits, frame, decodePixels, &img, err, sizeof err);
    heap_fill_byte = -1;
    if (!terminated(err, sizeof err)) violated("error message not NUL-terminated", rc, img);
    if (verbose)
        std::fprintf(stderr, "dicom_read(frame %d, pixels %d) = %d%s%s%s\n", frame, decodePixels, rc, rc ? " (" : "",
                     rc ? err : "", rc ? ")" : "");
    int32_t frames = 0;
    if (rc == DICOM_OK) {
        const dicom_text *texts[] = {&img.patient_id, &img.patient_name, &img.patient_age, &img.patient_birth_date,
                                     &img.patient_sex, &img.modality, &img.body_part_examined, &img.study_date,
                                     &img.series_description, &img.study_instance_uid, &img.series_instance_uid,
                                     &img.sop_instance_uid};
        for (const dicom_text *t : texts)
            if (!terminated(t->value, sizeof t->value)) violated("text field not NUL-terminated", rc, img);
        if (!terminated(img.transfer_syntax_uid, sizeof img.transfer_syntax_uid) ||
            !terminated(img.transfer_syntax_name, sizeof img.transfer_syntax_name) ||
            !terminated(img.photometric_interpretation, sizeof img.photometric_interpretation) ||
            !terminated(img.stored_photometric_interpretation, sizeof img.stored_photometric_interpretation) ||
            !terminated(img.voi_lut_function, sizeof img.voi_lut_function))
            violated("string field not NUL-terminated", rc, img);
        if (img.number_of_frames < 1) violated("number_of_frames < 1", rc, img);
        const dicom_lut *luts[] = {&img.modality_lut, &img.voi_lut};
        uint64_t sum = 0;
        for (const dicom_lut *l : luts) {
            if (l->entries < 0 || l->entries > 65536) violated("LUT entries out of range", rc, img);
            if (l->entries > 0 && !l->data) violated("LUT entries without data", rc, img);
            if (l->entries > 0 && (l->bits < 8 || l->bits > 16)) violated("LUT bits out of 8...16", rc, img);
            if (l->data) sum += touch(l->data, size_t(l->entries) * sizeof(uint16_t));
        }
        if (decodePixels) {
            if (!img.frame_data) violated("pixels asked for, frame_data NULL", rc, img);
            if (img.rows <= 0 || img.columns <= 0) violated("a frame without rows or columns", rc, img);
            if (int64_t(img.rows) * img.columns > kMaxPixels) violated("a frame over max_pixels", rc, img);
            if (img.samples_per_pixel != 1 && img.samples_per_pixel != 3) violated("samples_per_pixel not 1 or 3", rc, img);
            if (img.bits_allocated != 8 && img.bits_allocated != 16) violated("bits_allocated not 8 or 16", rc, img);
            if (img.frame_index < 0 || img.frame_index >= img.number_of_frames) violated("frame_index out of range", rc, img);
            if (frame >= 0 && img.frame_index != frame) violated("another frame than the one asked for", rc, img);
            if (frame < 0 && img.frame_index != (img.number_of_frames - 1) / 2) violated("frame -1 is not the middle frame", rc, img);
            const uint64_t expected = uint64_t(img.rows) * uint64_t(img.columns) * uint64_t(img.samples_per_pixel) *
                                      uint64_t(img.bits_allocated / 8);
            const bool subsampled = std::strcmp(img.stored_photometric_interpretation, "YBR_FULL_422") == 0 &&
                                    img.frame_size == expected / 3 * 2;
            if (img.frame_size != expected && !subsampled) violated("frame_size is not rows x columns x samples x bytes", rc, img);
            sum += touch(img.frame_data, img.frame_size);
        } else if (img.frame_data) {
            violated("frame_data set without decode_pixels", rc, img);
        }
        frames = img.number_of_frames;
        sink = sink + sum;
        if (img.frame_data) result.frame.assign(img.frame_data, img.frame_data + img.frame_size);
        for (const dicom_lut *l : luts)
            if (l->data) {
                const uint8_t *b = reinterpret_cast<const uint8_t *>(l->data);
                result.luts.insert(result.luts.end(), b, b + size_t(l->entries) * sizeof(uint16_t));
            }
    } else {
        if (rc < DICOM_ERR_EMPTY || rc > DICOM_ERR_INTERNAL) violated("unknown error code", rc, img);
        if (err[0] == '\0') violated("an error without a message", rc, img);
        // On failure the struct is left zeroed (the transfer syntax UID may name the refused syntax).
        char uid[sizeof img.transfer_syntax_uid];
        std::memcpy(uid, img.transfer_syntax_uid, sizeof uid);
        std::memset(img.transfer_syntax_uid, 0, sizeof img.transfer_syntax_uid);
        if (!isZero(&img, sizeof img)) violated("the struct is not zeroed after a failure", rc, img);
        if (rc != DICOM_ERR_TRANSFER_SYNTAX && !isZero(uid, sizeof uid)) violated("a UID left after a failure", rc, img);
        std::memcpy(img.transfer_syntax_uid, uid, sizeof uid);
    }
    result.rc = rc;
    result.message = err;
    result.fields = img;
    result.fields.frame_data = nullptr;
    result.fields.modality_lut.data = result.fields.voi_lut.data = nullptr;
    dicom_image_free(&img);
    if (!isZero(&img, sizeof img)) violated("dicom_image_free did not zero the struct", rc, img);
    dicom_image_free(&img);  // freeing twice is harmless
    return frames;
}

/// The call twice, new heap blocks 0x00 then 0xFF: the results must not differ.
int32_t readTwice(const uint8_t *data, size_t size, int32_t frame, int32_t decodePixels) {
    Result a, b;
    const int32_t frames = readOnce(data, size, frame, decodePixels, 0x00, a);
    readOnce(data, size, frame, decodePixels, 0xFF, b);
    const char *what = nullptr;
    size_t at = 0;
    if (a.rc != b.rc) what = "result code";
    else if (a.message != b.message) what = "error message";
    else if (std::memcmp(&a.fields, &b.fields, sizeof a.fields) != 0) what = "dicom_image fields";
    else if (a.luts != b.luts) what = "LUT data";
    else if (a.frame.size() != b.frame.size()) what = "frame size";
    else if (a.frame != b.frame) {
        what = "frame_data";
        while (a.frame[at] == b.frame[at]) ++at;
    }
    if (what) {
        std::fprintf(stderr, "\n==dicom_fuzzer== uninitialised memory in the output: the %s differs between runs with new heap "
                     "blocks filled with 0x00 and with 0xFF (frame %d, pixels %d; rc %d vs %d", what, frame, decodePixels,
                     a.rc, b.rc);
        if (a.frame.size() == b.frame.size() && at < a.frame.size())
            std::fprintf(stderr, "; first differing frame byte %zu of %zu: 0x%02x vs 0x%02x", at, a.frame.size(),
                         a.frame[at], b.frame[at]);
        std::fprintf(stderr, ")\n");
        std::abort();
    }
    return frames;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int *, char ***) {
    heap_fill_install();
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    // Attributes only (as for the app's DICOM attribute endpoint).
    const int32_t frames = readTwice(data, size, -1, 0);
    // Pixels of the middle frame (an upload's default).
    readTwice(data, size, -1, 1);
    // Pixels of a frame the input chooses: the last, one past the last, the first, or any.
    const uint8_t pick = size ? data[size - 1] : 0;
    const uint32_t mix = size ? uint32_t(data[size / 2]) << 8 | data[size / 3] : 0;
    int32_t frame;
    if (frames <= 0) frame = pick % 4;
    else switch (pick % 4) {
        case 0: frame = frames - 1; break;
        case 1: frame = frames; break;                 // DICOM_ERR_FRAME expected
        case 2: frame = 0; break;
        default: frame = int32_t(mix % uint32_t(frames)); break;
    }
    if (frames <= 0 || frame != (frames - 1) / 2) readTwice(data, size, frame, 1);
    return 0;
}
