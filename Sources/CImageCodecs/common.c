#include <stdlib.h>
#include <string.h>
#include "codec_internal.h"

void codec_free(void *ptr) { free(ptr); }

int codec_decode_begin(const uint8_t *data, size_t size, codec_image *out, char *err, size_t errlen) {
    if (out == NULL) return CODEC_ERR_ARGUMENT;
    memset(out, 0, sizeof *out);
    if (data == NULL || size == 0) {
        codec_set_error(err, errlen, "image data is empty");
        return CODEC_ERR_EMPTY;
    }
    return CODEC_OK;
}

int codec_decode_finish(int rc, uint8_t *pixels, int width, int height, int channels, const char *msg,
                        codec_image *out, char *err, size_t errlen) {
    if (rc != CODEC_OK) {
        free(pixels);
        codec_set_error(err, errlen, "%s", msg);
        return rc;
    }
    out->pixels = pixels;
    out->width = width;
    out->height = height;
    out->channels = channels;
    return CODEC_OK;
}

void codec_set_error(char *err, size_t errlen, const char *fmt, ...) {
    if (err == NULL || errlen == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

int codec_check_dimensions(int64_t width, int64_t height, int64_t max_pixels,
                           char *msg, size_t msglen) {
    if (width <= 0 || height <= 0) {
        codec_set_error(msg, msglen, "image has zero size (%lldx%lld)",
                        (long long)width, (long long)height);
        return CODEC_ERR_CORRUPT;
    }
    if (width > CODEC_MAX_DIMENSION || height > CODEC_MAX_DIMENSION) {
        codec_set_error(msg, msglen, "image is %lldx%lld; sides over %d pixels are not supported",
                        (long long)width, (long long)height, CODEC_MAX_DIMENSION);
        return CODEC_ERR_TOO_LARGE;
    }
    // Both sides are <= 65535, so the product cannot overflow int64.
    if (width * height > max_pixels) {
        codec_set_error(msg, msglen, "image is %lldx%lld = %g megapixels, over the limit of %g",
                        (long long)width, (long long)height,
                        (double)(width * height) / 1e6, (double)max_pixels / 1e6);
        return CODEC_ERR_TOO_LARGE;
    }
    return CODEC_OK;
}
