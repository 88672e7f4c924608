// libwebp wrapper (encode, plus decode so encoded output can be checked and WebP uploads work).
#include <stdlib.h>
#include <string.h>
#include <webp/decode.h>
#include <webp/encode.h>
#include "codec_internal.h"

int codec_webp_encode(const uint8_t *pixels, int width, int height, int channels, float quality,
                      uint8_t **out, size_t *out_size, char *err, size_t errlen) {
    if (out == NULL || out_size == NULL) return CODEC_ERR_ARGUMENT;
    *out = NULL;
    *out_size = 0;
    if (pixels == NULL || width <= 0 || height <= 0 || width > WEBP_MAX_DIMENSION ||
        height > WEBP_MAX_DIMENSION || (channels != 3 && channels != 4)) {
        codec_set_error(err, errlen, "WebP encoding needs a 3- or 4-channel image of 1...%d pixels "
                        "a side, got %dx%d with %d channels", WEBP_MAX_DIMENSION, width, height, channels);
        return CODEC_ERR_ARGUMENT;
    }
    if (quality < 0) quality = 0;
    if (quality > 100) quality = 100;
    // The simple API (WebPEncodeRGB) uses method 4; method 2 is several times faster for heatmap
    // overlays at near-identical size and quality, and overlays are encoded on every analysis.
    WebPConfig config;
    WebPPicture picture;
    WebPMemoryWriter writer;
    if (!WebPConfigInit(&config) || !WebPPictureInit(&picture)) {
        codec_set_error(err, errlen, "libwebp version mismatch");
        return CODEC_ERR_ENCODE;
    }
    config.quality = quality;
    config.method = 2;
    picture.use_argb = 0;
    picture.width = width;
    picture.height = height;
    WebPMemoryWriterInit(&writer);
    picture.writer = WebPMemoryWrite;
    picture.custom_ptr = &writer;
    int imported = channels == 3 ? WebPPictureImportRGB(&picture, pixels, width * 3)
                                 : WebPPictureImportRGBA(&picture, pixels, width * 4);
    int ok = imported && WebPEncode(&config, &picture);
    WebPPictureFree(&picture);
    if (!ok || writer.size == 0) {
        WebPMemoryWriterClear(&writer);
        codec_set_error(err, errlen, "WebP encoding failed for a %dx%d image (error %d)", width, height,
                        (int)picture.error_code);
        return imported ? CODEC_ERR_ENCODE : CODEC_ERR_NOMEM;
    }
    // Copy so every buffer this library returns is released the same way (codec_free).
    uint8_t *copy = malloc(writer.size);
    if (copy == NULL) {
        WebPMemoryWriterClear(&writer);
        codec_set_error(err, errlen, "out of memory copying WebP output");
        return CODEC_ERR_NOMEM;
    }
    memcpy(copy, writer.mem, writer.size);
    *out = copy;
    *out_size = writer.size;
    WebPMemoryWriterClear(&writer);
    return CODEC_OK;
}

int codec_webp_decode(const uint8_t *data, size_t size, int64_t max_pixels,
                      codec_image *out, char *err, size_t errlen) {
    int begun = codec_decode_begin(data, size, out, err, errlen);
    if (begun != CODEC_OK) return begun;
    WebPBitstreamFeatures f;
    VP8StatusCode st = WebPGetFeatures(data, size, &f);
    if (st != VP8_STATUS_OK) {
        codec_set_error(err, errlen, st == VP8_STATUS_NOT_ENOUGH_DATA
                        ? "WebP data is truncated" : "WebP data is invalid (status %d)", (int)st);
        return CODEC_ERR_CORRUPT;
    }
    int rc = codec_check_dimensions(f.width, f.height, max_pixels, err, errlen);
    if (rc != CODEC_OK) return rc;
    int channels = f.has_alpha ? 4 : 3;
    size_t stride = (size_t)f.width * (size_t)channels;
    size_t total = stride * (size_t)f.height;
    uint8_t *pixels = malloc(total);
    if (pixels == NULL) {
        codec_set_error(err, errlen, "out of memory decoding a %dx%d WebP", f.width, f.height);
        return CODEC_ERR_NOMEM;
    }
    uint8_t *ok = channels == 4
        ? WebPDecodeRGBAInto(data, size, pixels, total, (int)stride)
        : WebPDecodeRGBInto(data, size, pixels, total, (int)stride);
    return codec_decode_finish(ok == NULL ? CODEC_ERR_CORRUPT : CODEC_OK, pixels, f.width, f.height, channels,
                               "WebP data is invalid or truncated", out, err, errlen);
}
