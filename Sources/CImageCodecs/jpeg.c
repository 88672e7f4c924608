// libjpeg-turbo wrapper. setjmp/longjmp stay inside this file: the error manager jumps back
// to the *_run function, which returns a code; Swift never sees a longjmp.
//
// All state that changes after setjmp lives in a struct owned by the caller's frame and is
// reached through a pointer, so it is well defined after longjmp (C11 7.13.2.1).
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <jpeglib.h>
#include <jerror.h>
#include "codec_internal.h"

struct codec_jpeg_err {
    struct jpeg_error_mgr pub;
    jmp_buf jump;
    int code;
    char msg[JMSG_LENGTH_MAX + 96];
};

static void jpeg_on_error_exit(j_common_ptr cinfo) {
    struct codec_jpeg_err *e = (struct codec_jpeg_err *)cinfo->err;
    char text[JMSG_LENGTH_MAX];
    cinfo->err->format_message(cinfo, text);
    if (cinfo->err->msg_code == JERR_OUT_OF_MEMORY) {
        e->code = CODEC_ERR_NOMEM;
    } else if (e->code == CODEC_OK && cinfo->is_decompressor &&
               (cinfo->err->msg_code == JERR_BAD_PRECISION || cinfo->err->msg_code == JERR_SOF_UNSUPPORTED)) {
        // Valid files this build of libjpeg cannot decode (12-bit, lossless, hierarchical).
        e->code = CODEC_ERR_VARIANT;
        snprintf(e->msg, sizeof e->msg, "this JPEG variant is not supported (%s)", text);
        longjmp(e->jump, 1);
    } else if (e->code == CODEC_OK) {
        e->code = cinfo->is_decompressor ? CODEC_ERR_CORRUPT : CODEC_ERR_ENCODE;
    }
    snprintf(e->msg, sizeof e->msg, "%s (%s)",
             cinfo->is_decompressor ? "JPEG data is invalid" : "JPEG encoding failed", text);
    longjmp(e->jump, 1);
}

// libjpeg only warns when the data ends early and then fills the rest with grey;
// a truncated upload must not be classified, so that warning becomes an error.
// Other warnings (e.g. extraneous bytes before a marker) are harmless and, like Pillow,
// we ignore them.
static void jpeg_on_emit_message(j_common_ptr cinfo, int msg_level) {
    if (msg_level >= 0) return;  // trace output
    struct codec_jpeg_err *e = (struct codec_jpeg_err *)cinfo->err;
    if (cinfo->err->msg_code == JWRN_JPEG_EOF) {
        char text[JMSG_LENGTH_MAX];
        cinfo->err->format_message(cinfo, text);
        e->code = CODEC_ERR_CORRUPT;
        snprintf(e->msg, sizeof e->msg, "JPEG data is truncated (%s)", text);
        longjmp(e->jump, 1);
    }
    cinfo->err->num_warnings++;
}

static void jpeg_on_output_message(j_common_ptr cinfo) { (void)cinfo; }  // never print to stderr

static void codec_jpeg_err_init(struct codec_jpeg_err *e) {
    jpeg_std_error(&e->pub);
    e->pub.error_exit = jpeg_on_error_exit;
    e->pub.emit_message = jpeg_on_emit_message;
    e->pub.output_message = jpeg_on_output_message;
    e->code = CODEC_OK;
    e->msg[0] = 0;
}

// ---------------------------------------------------------------- decode

struct jpeg_dec {
    struct jpeg_decompress_struct cinfo;
    struct codec_jpeg_err err;
    const uint8_t *data;
    size_t size;
    int64_t max_pixels;
    int max_scans;
    struct jpeg_progress_mgr progress;
    uint8_t *pixels;  // result, owned until handed to the caller
    uint8_t *row;     // CMYK scanline scratch
    int width, height, channels;
};

#define MULDIV255(a, b, tmp) (tmp = (a) * (b) + 128, ((((tmp) >> 8) + (tmp)) >> 8))

static inline uint8_t clip8i(int v) { return v < 0 ? 0 : v > 255 ? 255 : (uint8_t)v; }

// Pillow opens every CMYK JPEG as "CMYK;I" (Adobe polarity, values inverted) and converts
// with cmyk2rgb: R = nk - nk*C/255 with nk = 255-K. Here raw = stored byte, C = 255-raw.
static void cmyk_inverted_to_rgb(const uint8_t *in, uint8_t *out, int width) {
    int tmp;
    for (int x = 0; x < width; x++, in += 4, out += 3) {
        int nk = in[3];  // 255 - (255 - raw K)
        out[0] = clip8i(nk - MULDIV255(255 - in[0], nk, tmp));
        out[1] = clip8i(nk - MULDIV255(255 - in[1], nk, tmp));
        out[2] = clip8i(nk - MULDIV255(255 - in[2], nk, tmp));
    }
}

// libjpeg's documented remedy for progressive files with endless scans (libjpeg.txt, "progress
// monitoring"): it calls this while absorbing input, and input_scan_number counts the scans read.
static void jpeg_on_progress(j_common_ptr cinfo) {
    struct jpeg_dec *s = cinfo->client_data;
    if (s->cinfo.input_scan_number > s->max_scans) {
        s->err.code = CODEC_ERR_TOO_COMPLEX;
        snprintf(s->err.msg, sizeof s->err.msg, "too many progressive scans (more than %d)", s->max_scans);
        longjmp(s->err.jump, 1);
    }
}

static int jpeg_dec_run(struct jpeg_dec *s) {
    if (setjmp(s->err.jump)) return s->err.code == CODEC_OK ? CODEC_ERR_CORRUPT : s->err.code;

    jpeg_create_decompress(&s->cinfo);
    s->cinfo.client_data = s;
    s->progress.progress_monitor = jpeg_on_progress;
    s->cinfo.progress = &s->progress;
    jpeg_mem_src(&s->cinfo, s->data, (unsigned long)s->size);
    jpeg_read_header(&s->cinfo, TRUE);

    // Refuse before jpeg_start_decompress allocates anything image-sized.
    int rc = codec_check_dimensions(s->cinfo.image_width, s->cinfo.image_height,
                                    s->max_pixels, s->err.msg, sizeof s->err.msg);
    if (rc != CODEC_OK) return rc;

    int cmyk = 0;
    switch (s->cinfo.jpeg_color_space) {
    case JCS_GRAYSCALE:
        s->cinfo.out_color_space = JCS_GRAYSCALE;
        s->channels = 1;
        break;
    case JCS_CMYK:
    case JCS_YCCK:
        s->cinfo.out_color_space = JCS_CMYK;  // libjpeg converts YCCK -> CMYK
        s->channels = 3;
        cmyk = 1;
        break;
    default:
        s->cinfo.out_color_space = JCS_RGB;
        s->channels = 3;
        break;
    }
    // Defaults kept on purpose (JDCT_ISLOW, fancy upsampling, no scaling) so pixels match
    // Pillow's decoder, which uses the same libjpeg defaults.
    jpeg_start_decompress(&s->cinfo);

    s->width = (int)s->cinfo.output_width;
    s->height = (int)s->cinfo.output_height;
    size_t stride = (size_t)s->width * (size_t)s->channels;
    s->pixels = malloc(stride * (size_t)s->height);
    if (s->pixels == NULL) goto nomem;
    if (cmyk) {
        s->row = malloc((size_t)s->width * 4);
        if (s->row == NULL) goto nomem;
    }
    while (s->cinfo.output_scanline < s->cinfo.output_height) {
        uint8_t *dst = s->pixels + (size_t)s->cinfo.output_scanline * stride;
        JSAMPROW rowp = cmyk ? s->row : dst;
        if (jpeg_read_scanlines(&s->cinfo, &rowp, 1) != 1) {
            snprintf(s->err.msg, sizeof s->err.msg, "JPEG data is truncated (no more scanlines)");
            return CODEC_ERR_CORRUPT;
        }
        if (cmyk) cmyk_inverted_to_rgb(s->row, dst, s->width);
    }
    jpeg_finish_decompress(&s->cinfo);
    return CODEC_OK;

nomem:
    snprintf(s->err.msg, sizeof s->err.msg, "out of memory decoding a %dx%d JPEG",
             s->width, s->height);
    return CODEC_ERR_NOMEM;
}

int codec_jpeg_decode(const uint8_t *data, size_t size, int64_t max_pixels, int max_scans,
                      codec_image *out, char *err, size_t errlen) {
    int begun = codec_decode_begin(data, size, out, err, errlen);
    if (begun != CODEC_OK) return begun;
    struct jpeg_dec s;
    memset(&s, 0, sizeof s);
    s.data = data;
    s.size = size;
    s.max_pixels = max_pixels;
    s.max_scans = max_scans > 0 ? max_scans : 1;
    codec_jpeg_err_init(&s.err);
    s.cinfo.err = &s.err.pub;

    int rc = jpeg_dec_run(&s);
    jpeg_destroy_decompress(&s.cinfo);  // safe on a partially created struct
    free(s.row);
    return codec_decode_finish(rc, s.pixels, s.width, s.height, s.channels, s.err.msg, out, err, errlen);
}

// ---------------------------------------------------------------- encode

struct jpeg_enc {
    struct jpeg_compress_struct cinfo;
    struct codec_jpeg_err err;
    const uint8_t *pixels;
    int width, height, channels, quality, progressive;
    unsigned char *buffer;  // allocated by jpeg_mem_dest with malloc
    unsigned long size;
};

static int jpeg_enc_run(struct jpeg_enc *s) {
    if (setjmp(s->err.jump)) return s->err.code == CODEC_OK ? CODEC_ERR_ENCODE : s->err.code;
    jpeg_create_compress(&s->cinfo);
    jpeg_mem_dest(&s->cinfo, &s->buffer, &s->size);
    s->cinfo.image_width = (JDIMENSION)s->width;
    s->cinfo.image_height = (JDIMENSION)s->height;
    s->cinfo.input_components = s->channels;
    s->cinfo.in_color_space = s->channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&s->cinfo);  // 4:2:0 for colour
    jpeg_set_quality(&s->cinfo, s->quality, TRUE);
    if (s->progressive) jpeg_simple_progression(&s->cinfo);
    jpeg_start_compress(&s->cinfo, TRUE);
    size_t stride = (size_t)s->width * (size_t)s->channels;
    while (s->cinfo.next_scanline < s->cinfo.image_height) {
        JSAMPROW rowp = (JSAMPROW)(s->pixels + (size_t)s->cinfo.next_scanline * stride);
        jpeg_write_scanlines(&s->cinfo, &rowp, 1);
    }
    jpeg_finish_compress(&s->cinfo);
    return CODEC_OK;
}

int codec_jpeg_encode(const uint8_t *pixels, int width, int height, int channels, int quality,
                      int progressive, uint8_t **out, size_t *out_size, char *err, size_t errlen) {
    if (out == NULL || out_size == NULL) return CODEC_ERR_ARGUMENT;
    *out = NULL;
    *out_size = 0;
    if (pixels == NULL || width <= 0 || height <= 0 || width > 65500 || height > 65500 ||
        (channels != 1 && channels != 3)) {
        codec_set_error(err, errlen, "JPEG encoding needs a 1- or 3-channel image of 1...65500 "
                        "pixels a side, got %dx%d with %d channels", width, height, channels);
        return CODEC_ERR_ARGUMENT;
    }
    struct jpeg_enc s;
    memset(&s, 0, sizeof s);
    s.pixels = pixels;
    s.width = width;
    s.height = height;
    s.channels = channels;
    s.quality = quality < 1 ? 1 : quality > 100 ? 100 : quality;
    s.progressive = progressive != 0;
    codec_jpeg_err_init(&s.err);
    s.cinfo.err = &s.err.pub;

    int rc = jpeg_enc_run(&s);
    jpeg_destroy_compress(&s.cinfo);
    if (rc != CODEC_OK) {
        free(s.buffer);
        codec_set_error(err, errlen, "%s", s.err.msg);
        return rc;
    }
    *out = s.buffer;
    *out_size = s.size;
    return CODEC_OK;
}
