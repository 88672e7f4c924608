// libpng wrapper. libpng reports errors by longjmp to png_jmpbuf; the jump lands in the
// *_run function of this file, which turns it into a return code.
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <png.h>
#include <zlib.h>  // Z_RLE
#include "codec_internal.h"

// ---------------------------------------------------------------- decode

struct png_dec {
    png_structp png;
    png_infop info;
    const uint8_t *data;
    size_t size, pos;
    int64_t max_pixels;
    uint8_t *pixels;
    png_bytep *rows;
    int width, height, channels;
    int code;
    char msg[320];
};

static void png_dec_on_error(png_structp png, png_const_charp text) {
    struct png_dec *s = png_get_error_ptr(png);
    if (s->code == CODEC_OK) {
        s->code = CODEC_ERR_CORRUPT;
        snprintf(s->msg, sizeof s->msg, "PNG data is invalid (%s)", text);
    }
    png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp text) { (void)png; (void)text; }

static void png_dec_read(png_structp png, png_bytep out, size_t n) {
    struct png_dec *s = png_get_io_ptr(png);
    if (n > s->size - s->pos) {
        s->code = CODEC_ERR_CORRUPT;
        snprintf(s->msg, sizeof s->msg, "PNG data is truncated (needed %zu more bytes at offset %zu of %zu)",
                 n, s->pos, s->size);
        png_longjmp(png, 1);
    }
    memcpy(out, s->data + s->pos, n);
    s->pos += n;
}

static int png_dec_run(struct png_dec *s) {
    if (setjmp(png_jmpbuf(s->png))) return s->code == CODEC_OK ? CODEC_ERR_CORRUPT : s->code;

    png_set_read_fn(s->png, s, png_dec_read);
    // Bound the work that is not pixels: skip the ancillary chunks we never use (text and ICC
    // profiles are zlib streams a file can make arbitrarily expensive; eXIf is read by the caller),
    // cap what any kept chunk may allocate and how many may be kept.
    static const png_byte skipped[] = {
        'i', 'C', 'C', 'P', 0, 'i', 'T', 'X', 't', 0, 's', 'P', 'L', 'T', 0, 't', 'E', 'X', 't', 0,
        'z', 'T', 'X', 't', 0, 'e', 'X', 'I', 'f', 0, 'h', 'I', 'S', 'T', 0, 't', 'I', 'M', 'E', 0,
    };
    png_set_keep_unknown_chunks(s->png, PNG_HANDLE_CHUNK_NEVER, skipped, (int)(sizeof skipped / 5));
    png_set_keep_unknown_chunks(s->png, PNG_HANDLE_CHUNK_NEVER, NULL, 0);
    png_set_chunk_malloc_max(s->png, 1 << 20);
    png_set_chunk_cache_max(s->png, 64);
    png_read_info(s->png, s->info);  // header and chunks up to the first IDAT; no pixel buffers

    png_uint_32 w = 0, h = 0;
    int depth = 0, type = 0, interlace = 0;
    png_get_IHDR(s->png, s->info, &w, &h, &depth, &type, &interlace, NULL, NULL);
    int rc = codec_check_dimensions(w, h, s->max_pixels, s->msg, sizeof s->msg);
    if (rc != CODEC_OK) {
        s->code = rc;
        return rc;
    }

    int has_trns = png_get_valid(s->png, s->info, PNG_INFO_tRNS) != 0;
    int has_alpha = (type & PNG_COLOR_MASK_ALPHA) != 0 || has_trns;
    int is_gray = (type & PNG_COLOR_MASK_COLOR) == 0;  // palette has the colour bit set

    // 16-bit: keep the high byte (png_set_strip_16 truncates). Pillow does the same for
    // RGB(A)/LA 16-bit, but opens 16-bit gray as mode I and clips at 255 on convert, which
    // would turn most of a medical image white; the high byte keeps the full range.
    if (depth == 16) png_set_strip_16(s->png);
    if (type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(s->png);
    if (is_gray && depth < 8) png_set_expand_gray_1_2_4_to_8(s->png);
    if (has_trns) png_set_tRNS_to_alpha(s->png);
    if (is_gray && has_alpha) png_set_gray_to_rgb(s->png);  // we have no 2-channel layout
    png_set_interlace_handling(s->png);
    png_read_update_info(s->png, s->info);

    s->width = (int)w;
    s->height = (int)h;
    s->channels = has_alpha ? 4 : (is_gray ? 1 : 3);
    size_t stride = (size_t)s->width * (size_t)s->channels;
    if (png_get_channels(s->png, s->info) != s->channels || png_get_bit_depth(s->png, s->info) != 8 ||
        png_get_rowbytes(s->png, s->info) != stride) {
        snprintf(s->msg, sizeof s->msg, "unsupported PNG layout (colour type %d, bit depth %d)", type, depth);
        s->code = CODEC_ERR_UNSUPPORTED;
        return s->code;
    }

    s->pixels = malloc(stride * (size_t)s->height);
    s->rows = malloc(sizeof(png_bytep) * (size_t)s->height);
    if (s->pixels == NULL || s->rows == NULL) {
        snprintf(s->msg, sizeof s->msg, "out of memory decoding a %dx%d PNG", s->width, s->height);
        s->code = CODEC_ERR_NOMEM;
        return s->code;
    }
    for (int y = 0; y < s->height; y++) s->rows[y] = s->pixels + (size_t)y * stride;
    // Reading the last row also finishes the zlib stream and checks the IDAT CRC.
    png_read_image(s->png, s->rows);
    return CODEC_OK;
}

int codec_png_decode(const uint8_t *data, size_t size, int64_t max_pixels,
                     codec_image *out, char *err, size_t errlen) {
    int begun = codec_decode_begin(data, size, out, err, errlen);
    if (begun != CODEC_OK) return begun;
    if (size < 8 || png_sig_cmp(data, 0, 8) != 0) {
        codec_set_error(err, errlen, "data is not a PNG file (bad signature)");
        return CODEC_ERR_UNSUPPORTED;
    }
    struct png_dec s;
    memset(&s, 0, sizeof s);
    s.data = data;
    s.size = size;
    s.max_pixels = max_pixels;
    s.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &s, png_dec_on_error, png_on_warning);
    if (s.png != NULL) s.info = png_create_info_struct(s.png);
    if (s.png == NULL || s.info == NULL) {
        png_destroy_read_struct(s.png ? &s.png : NULL, NULL, NULL);
        codec_set_error(err, errlen, "out of memory creating a PNG decoder");
        return CODEC_ERR_NOMEM;
    }
    int rc = png_dec_run(&s);
    png_destroy_read_struct(&s.png, &s.info, NULL);
    free(s.rows);
    return codec_decode_finish(rc, s.pixels, s.width, s.height, s.channels, s.msg, out, err, errlen);
}

// ---------------------------------------------------------------- encode

struct png_enc {
    png_structp png;
    png_infop info;
    const uint8_t *pixels;
    int width, height, channels;
    int fast;         // zlib level 1, Z_RLE and the Up filter: a few ms instead of tens, a larger file
    uint8_t *buffer;  // growable output, malloc/realloc
    size_t size, capacity;
    png_bytep *rows;
    int code;
    char msg[320];
};

static void png_enc_on_error(png_structp png, png_const_charp text) {
    struct png_enc *s = png_get_error_ptr(png);
    if (s->code == CODEC_OK) {
        s->code = CODEC_ERR_ENCODE;
        snprintf(s->msg, sizeof s->msg, "PNG encoding failed (%s)", text);
    }
    png_longjmp(png, 1);
}

static void png_enc_write(png_structp png, png_bytep data, size_t n) {
    struct png_enc *s = png_get_io_ptr(png);
    if (n > s->capacity - s->size) {
        size_t cap = s->capacity ? s->capacity : 4096;
        while (cap - s->size < n) cap *= 2;
        uint8_t *grown = realloc(s->buffer, cap);
        if (grown == NULL) {
            s->code = CODEC_ERR_NOMEM;
            snprintf(s->msg, sizeof s->msg, "out of memory writing PNG");
            png_longjmp(png, 1);
        }
        s->buffer = grown;
        s->capacity = cap;
    }
    memcpy(s->buffer + s->size, data, n);
    s->size += n;
}

static void png_enc_flush(png_structp png) { (void)png; }

static int png_enc_run(struct png_enc *s) {
    if (setjmp(png_jmpbuf(s->png))) return s->code == CODEC_OK ? CODEC_ERR_ENCODE : s->code;
    png_set_write_fn(s->png, s, png_enc_write, png_enc_flush);
    int type = s->channels == 1 ? PNG_COLOR_TYPE_GRAY
             : s->channels == 3 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_RGB_ALPHA;
    png_set_IHDR(s->png, s->info, (png_uint_32)s->width, (png_uint_32)s->height, 8, type,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (s->fast) {
        png_set_compression_level(s->png, 1);
        // Up-filtered scans are mostly runs: Z_RLE is ~20% faster than level 1's default and smaller.
        png_set_compression_strategy(s->png, Z_RLE);
        png_set_filter(s->png, PNG_FILTER_TYPE_BASE, PNG_FILTER_UP);
    }
    png_write_info(s->png, s->info);
    s->rows = malloc(sizeof(png_bytep) * (size_t)s->height);
    if (s->rows == NULL) {
        s->code = CODEC_ERR_NOMEM;
        snprintf(s->msg, sizeof s->msg, "out of memory writing PNG");
        return s->code;
    }
    size_t stride = (size_t)s->width * (size_t)s->channels;
    for (int y = 0; y < s->height; y++) s->rows[y] = (png_bytep)(s->pixels + (size_t)y * stride);
    png_write_image(s->png, s->rows);
    png_write_end(s->png, NULL);
    return CODEC_OK;
}

int codec_png_encode(const uint8_t *pixels, int width, int height, int channels,
                     uint8_t **out, size_t *out_size, char *err, size_t errlen) {
    return codec_png_encode_fast(pixels, width, height, channels, 0, out, out_size, err, errlen);
}

int codec_png_encode_fast(const uint8_t *pixels, int width, int height, int channels, int fast,
                          uint8_t **out, size_t *out_size, char *err, size_t errlen) {
    if (out == NULL || out_size == NULL) return CODEC_ERR_ARGUMENT;
    *out = NULL;
    *out_size = 0;
    if (pixels == NULL || width <= 0 || height <= 0 ||
        (channels != 1 && channels != 3 && channels != 4)) {
        codec_set_error(err, errlen, "PNG encoding needs a 1-, 3- or 4-channel image, got %dx%d "
                        "with %d channels", width, height, channels);
        return CODEC_ERR_ARGUMENT;
    }
    struct png_enc s;
    memset(&s, 0, sizeof s);
    s.pixels = pixels;
    s.width = width;
    s.height = height;
    s.channels = channels;
    s.fast = fast != 0;
    s.png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &s, png_enc_on_error, png_on_warning);
    if (s.png != NULL) s.info = png_create_info_struct(s.png);
    if (s.png == NULL || s.info == NULL) {
        png_destroy_write_struct(s.png ? &s.png : NULL, NULL);
        codec_set_error(err, errlen, "out of memory creating a PNG encoder");
        return CODEC_ERR_NOMEM;
    }
    int rc = png_enc_run(&s);
    png_destroy_write_struct(&s.png, &s.info);
    free(s.rows);
    if (rc != CODEC_OK) {
        free(s.buffer);
        codec_set_error(err, errlen, "%s", s.msg);
        return rc;
    }
    *out = s.buffer;
    *out_size = s.size;
    return CODEC_OK;
}
