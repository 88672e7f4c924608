// Plain C API over libjpeg-turbo, libpng and libwebp, plus Pillow's bicubic resampler.
//
// Ownership: every buffer a function returns through an out-pointer was allocated with
// malloc and belongs to the caller, who releases it with codec_free (never with anything
// else). On failure nothing is returned and nothing needs freeing.
//
// Errors: functions return CODEC_OK (0) or a CODEC_ERR_* code and write a NUL-terminated
// human-readable message into the caller's buffer `err` of `errlen` bytes (may be NULL/0).
// No function longjmps out or aborts: libjpeg/libpng errors are caught inside this library.
//
// All functions are reentrant: no global state; concurrent calls on different data are safe.
#ifndef CIMAGECODECS_H
#define CIMAGECODECS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
    CODEC_OK = 0,
    CODEC_ERR_EMPTY = 1,         // zero-length input
    CODEC_ERR_UNSUPPORTED = 2,   // not a format/colour layout we handle
    CODEC_ERR_CORRUPT = 3,       // malformed, truncated, bad CRC, zero dimensions
    CODEC_ERR_TOO_LARGE = 4,     // over max_pixels or a side over 65535
    CODEC_ERR_ENCODE = 5,        // an encoder failed
    CODEC_ERR_NOMEM = 6,         // malloc failed
    CODEC_ERR_ARGUMENT = 7,      // invalid arguments (null pointers, bad sizes)
    CODEC_ERR_TOO_COMPLEX = 8,   // decoding would cost more than the limits allow (e.g. too many scans)
    CODEC_ERR_VARIANT = 9        // a valid file in a variant this build does not decode (12-bit, lossless JPEG)
};

// Largest width or height accepted by the decoders.
#define CODEC_MAX_DIMENSION 65535

// A decoded 8-bit image: interleaved, row-major, no row padding.
// channels is 1 (gray), 3 (RGB) or 4 (RGBA). pixels is owned by the caller (codec_free).
typedef struct {
    uint8_t *pixels;
    int width;
    int height;
    int channels;
} codec_image;

void codec_free(void *ptr);

// JPEG: grayscale -> 1 channel; YCbCr/RGB -> 3; CMYK/YCCK -> 3, converted the way Pillow
// does (Adobe-inverted polarity assumed, then Pillow's cmyk2rgb). ISLOW DCT + fancy
// upsampling (libjpeg defaults, as Pillow uses). A truncated file is an error.
// max_scans bounds the number of scans libjpeg may read (its progress monitor stops it with
// CODEC_ERR_TOO_COMPLEX past that): a progressive file's cost grows with every scan.
// 12-bit and lossless (SOF3) files are CODEC_ERR_VARIANT.
int codec_jpeg_decode(const uint8_t *data, size_t size, int64_t max_pixels, int max_scans,
                      codec_image *out, char *err, size_t errlen);

// PNG: any bit depth/colour type. 16-bit samples keep the high byte; palette is expanded;
// tRNS becomes alpha. Output: gray -> 1 channel, RGB -> 3, anything with alpha -> 4 (RGBA).
int codec_png_decode(const uint8_t *data, size_t size, int64_t max_pixels,
                     codec_image *out, char *err, size_t errlen);

// WebP (lossy or lossless): 3 channels, or 4 when the bitstream has alpha.
int codec_webp_decode(const uint8_t *data, size_t size, int64_t max_pixels,
                      codec_image *out, char *err, size_t errlen);

// channels must be 1 or 3. quality 1...100, 4:2:0 chroma subsampling for RGB.
// progressive != 0 writes libjpeg's standard progression script (jpeg_simple_progression).
int codec_jpeg_encode(const uint8_t *pixels, int width, int height, int channels, int quality,
                      int progressive, uint8_t **out, size_t *out_size, char *err, size_t errlen);

// channels 1, 3 or 4. 8-bit, non-interlaced.
int codec_png_encode(const uint8_t *pixels, int width, int height, int channels,
                     uint8_t **out, size_t *out_size, char *err, size_t errlen);
// The same, with fast != 0: zlib level 1 (Z_RLE) and the Up filter on every row (same pixels, faster, larger).
int codec_png_encode_fast(const uint8_t *pixels, int width, int height, int channels, int fast,
                          uint8_t **out, size_t *out_size, char *err, size_t errlen);

// channels 3 or 4 (lossy, quality 0...100).
int codec_webp_encode(const uint8_t *pixels, int width, int height, int channels, float quality,
                      uint8_t **out, size_t *out_size, char *err, size_t errlen);

// Pillow's Image.resize(BICUBIC) 8-bit path (Resample.c): separable, support scaled when
// downscaling, 22-bit fixed-point coefficients, horizontal pass then vertical pass.
// channels 1, 3 or 4; 4 is treated as RGBA and premultiplied around the resize like
// Pillow does. dst is caller-allocated with dst_w * dst_h * channels bytes.
int codec_resize_bicubic(const uint8_t *src, int src_w, int src_h, int channels,
                         uint8_t *dst, int dst_w, int dst_h);

#ifdef __cplusplus
}
#endif

#endif
