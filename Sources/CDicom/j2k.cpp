// JPEG 2000 frames (transfer syntaxes 1.2.840.10008.1.2.4.90 and .91), decoded by OpenJPEG (Debian's
// libopenjp2-7-dev) from memory, after codestream.cpp checked the main header against the data set. DCMTK
// 3.6.7 has no JPEG 2000 codec, so this is the one frame the shim decodes itself.
#include <algorithm>
#include <cstring>
#include <string>

// The header path spelt out: SwiftPM adds no pkg-config include path (-I/usr/include/openjpeg-2.5).
#include <openjpeg-2.5/openjpeg.h>

#include "dicom_internal.h"

namespace cdicom {
namespace {

/// The frame's bytes as an OpenJPEG stream: read, skip and seek within them, nothing else.
struct Memory {
    const uint8_t *data;
    size_t size;
    size_t pos;
};

OPJ_SIZE_T readMemory(void *buffer, OPJ_SIZE_T bytes, void *user) {
    Memory *m = static_cast<Memory *>(user);
    if (m->pos >= m->size) return OPJ_SIZE_T(-1);  // end of stream, as OpenJPEG expects it
    const size_t n = std::min<size_t>(bytes, m->size - m->pos);
    std::memcpy(buffer, m->data + m->pos, n);
    m->pos += n;
    return n;
}

OPJ_OFF_T skipMemory(OPJ_OFF_T bytes, void *user) {
    Memory *m = static_cast<Memory *>(user);
    if (bytes < 0) {
        const size_t back = std::min<size_t>(size_t(-bytes), m->pos);
        m->pos -= back;
        return -OPJ_OFF_T(back);
    }
    const size_t ahead = std::min<size_t>(size_t(bytes), m->size - m->pos);
    m->pos += ahead;
    return OPJ_OFF_T(ahead);
}

OPJ_BOOL seekMemory(OPJ_OFF_T to, void *user) {
    Memory *m = static_cast<Memory *>(user);
    if (to < 0 || uint64_t(to) > m->size) return OPJ_FALSE;
    m->pos = size_t(to);
    return OPJ_TRUE;
}

/// OpenJPEG's first error and first warning are kept (the error says what went wrong; a warning explains
/// a failure that came without one); information is dropped. Nothing goes to stderr.
struct Messages {
    std::string error, warning;
};

void keep(std::string &into, const char *text) {
    if (!text || !into.empty()) return;
    into = text;
    while (!into.empty() && (into.back() == '\n' || into.back() == ' ')) into.pop_back();
    if (into.size() > 200) into.resize(200);
}

void onError(const char *text, void *user) { keep(static_cast<Messages *>(user)->error, text); }
void onWarning(const char *text, void *user) { keep(static_cast<Messages *>(user)->warning, text); }

void ignore(const char *, void *) {}

/// Frees the codec, the stream and the image however the decoding ends.
struct Session {
    opj_codec_t *codec = nullptr;
    opj_stream_t *stream = nullptr;
    opj_image_t *image = nullptr;
    ~Session() {
        if (image) opj_image_destroy(image);
        if (stream) opj_stream_destroy(stream);
        if (codec) opj_destroy_codec(codec);
    }
};

}  // namespace

int decodeJ2KFrame(const uint8_t *data, size_t size, const FrameGeometry &g, const J2KHeader &header, bool planar,
                   uint8_t *out, size_t outSize, std::string &message) {
    const size_t pixels = size_t(g.rows) * size_t(g.columns);
    const size_t bytesPerSample = g.bitsAllocated / 8;
    if (outSize < pixels * size_t(g.samples) * bytesPerSample) { message = "the frame buffer is too small"; return DICOM_ERR_INTERNAL; }
    Messages messages;
    Memory memory{data, size, 0};
    Session s;
    s.codec = opj_create_decompress(header.jp2 ? OPJ_CODEC_JP2 : OPJ_CODEC_J2K);
    if (!s.codec) return DICOM_ERR_NOMEM;
    opj_set_error_handler(s.codec, onError, &messages);
    opj_set_warning_handler(s.codec, onWarning, &messages);
    opj_set_info_handler(s.codec, ignore, nullptr);
    opj_dparameters_t parameters;
    opj_set_default_decoder_parameters(&parameters);
    const auto failed = [&](const char *step) {
        const std::string &said = messages.error.empty() ? messages.warning : messages.error;
        message = std::string("the JPEG 2000 frame cannot be decoded (") + step + ")"
            + (said.empty() ? std::string() : ": OpenJPEG says \"" + said + "\"");
        return DICOM_ERR_CORRUPT;
    };
    if (!opj_setup_decoder(s.codec, &parameters)) return failed("decoder setup");
    // Strict: a codestream that ends early is an error, not an image with its last tiles missing.
    opj_decoder_set_strict_mode(s.codec, OPJ_TRUE);
    s.stream = opj_stream_create(64 * 1024, OPJ_TRUE);
    if (!s.stream) return DICOM_ERR_NOMEM;
    opj_stream_set_user_data(s.stream, &memory, nullptr);
    opj_stream_set_user_data_length(s.stream, size);
    opj_stream_set_read_function(s.stream, readMemory);
    opj_stream_set_skip_function(s.stream, skipMemory);
    opj_stream_set_seek_function(s.stream, seekMemory);
    if (!opj_read_header(s.stream, s.codec, &s.image) || !s.image) return failed("header");
    // OpenJPEG's reading of the header must agree with ours before it allocates the image.
    const opj_image_t *im = s.image;
    if (im->numcomps != uint32_t(g.samples) || im->x1 - im->x0 != uint32_t(g.columns) || im->y1 - im->y0 != uint32_t(g.rows)) {
        message = "OpenJPEG reads the JPEG 2000 header differently from its SIZ marker";
        return DICOM_ERR_CORRUPT;
    }
    if (!opj_decode(s.codec, s.stream, s.image)) return failed("decode");
    if (!opj_end_decompress(s.codec, s.stream)) return failed("end of codestream");
    // A JP2 wrapper's palette or channel definitions (pclr, cdef) may change the components while decoding.
    if (im->numcomps != uint32_t(g.samples)) {
        message = "OpenJPEG decoded the JPEG 2000 frame to " + std::to_string(im->numcomps) + " components, Samples per Pixel is "
            + std::to_string(g.samples);
        return DICOM_ERR_CORRUPT;
    }
    for (uint32_t c = 0; c < im->numcomps; ++c) {
        const opj_image_comp_t &comp = im->comps[c];
        if (!comp.data || comp.w != uint32_t(g.columns) || comp.h != uint32_t(g.rows) || comp.dx != 1 || comp.dy != 1
            || comp.prec == 0 || comp.prec > uint32_t(g.bitsAllocated)) {
            message = "OpenJPEG decoded JPEG 2000 component " + std::to_string(c + 1) + " at a size or precision the data set does not have";
            return DICOM_ERR_CORRUPT;
        }
    }
    // Stored values: the low Bits Allocated bits of each sample (two's complement when signed), interleaved
    // (Planar Configuration 0) or by plane (1), as a native frame stores them.
    const size_t samples = size_t(g.samples);
    for (size_t c = 0; c < samples; ++c) {
        const OPJ_INT32 *src = im->comps[c].data;
        const size_t first = planar ? c * pixels : c, step = planar ? 1 : samples;
        if (bytesPerSample == 1) {
            for (size_t i = 0; i < pixels; ++i) out[first + i * step] = uint8_t(uint32_t(src[i]));
        } else {
            uint16_t *words = reinterpret_cast<uint16_t *>(out);
            for (size_t i = 0; i < pixels; ++i) words[first + i * step] = uint16_t(uint32_t(src[i]));
        }
    }
    return DICOM_OK;
}

}  // namespace cdicom
