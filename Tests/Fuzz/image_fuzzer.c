/* libFuzzer harness over the image codecs (Sources/CImageCodecs), built with ASan + UBSan by
 * Tests/Fuzz/fuzz.sh.
 *
 * Each input goes to every decoder (JPEG, PNG, WebP) the way MediscopeImaging's ImageDecoder.decode
 * calls them (max_pixels, and for JPEG max_scans 256 after the app's scan budget, app_checks.h); each
 * checks its own signature, so the decoders that do not match refuse at once. A decoded image is checked
 * against CImageCodecs.h (sizes, channels), every byte of it is read, it is resized with
 * codec_resize_bicubic to a small size the input chooses (as the pipeline resizes every upload), and it
 * is released with codec_free. A violation aborts with a message, which libFuzzer reports as a crash.
 *
 * MEDISCOPE_FUZZ_RAW=1 skips the app's JPEG scan budget (the codec alone: expect slow inputs). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "CImageCodecs.h"
#include "app_checks.h"

#define MAX_PIXELS 4000000

static volatile uint64_t sink;

static void violated(const char *codec, const char *what, int rc, const codec_image *img) {
    fprintf(stderr, "\n==image_fuzzer== CImageCodecs.h contract violated by %s: %s (rc %d, %dx%d, %d channels)\n",
            codec, what, rc, img->width, img->height, img->channels);
    abort();
}

static void check(const char *codec, int rc, const codec_image *img, const char *err, size_t errlen,
                  const uint8_t *data, size_t size, int min_channels) {
    if (rc != CODEC_OK) {
        if (!memchr(err, 0, errlen)) violated(codec, "error message not NUL-terminated", rc, img);
        if (rc < CODEC_ERR_EMPTY || rc > CODEC_ERR_VARIANT) violated(codec, "unknown error code", rc, img);
        if (img->pixels) violated(codec, "pixels returned with an error", rc, img);
        if (err[0] == 0) violated(codec, "an error without a message", rc, img);
        return;
    }
    if (!img->pixels) violated(codec, "CODEC_OK without pixels", rc, img);
    if (img->width <= 0 || img->height <= 0 || img->width > CODEC_MAX_DIMENSION || img->height > CODEC_MAX_DIMENSION)
        violated(codec, "dimensions out of range", rc, img);
    if ((int64_t)img->width * img->height > MAX_PIXELS) violated(codec, "over max_pixels", rc, img);
    if (img->channels < min_channels || img->channels > 4 || img->channels == 2)
        violated(codec, "channels not 1, 3 or 4 as documented", rc, img);
    const size_t n = (size_t)img->width * img->height * img->channels;
    uint64_t sum = 0;
    for (size_t i = 0; i < n; i++) sum += img->pixels[i];
    /* Resize as the pipeline does (to a small size the input picks, up or down). */
    const int dw = 1 + (size ? data[size - 1] % 31 : 0), dh = 1 + (size > 1 ? data[size - 2] % 29 : 0);
    uint8_t *dst = malloc((size_t)dw * dh * img->channels);
    if (dst) {
        const int r = codec_resize_bicubic(img->pixels, img->width, img->height, img->channels, dst, dw, dh);
        if (r != CODEC_OK) violated(codec, "resize of a decoded image failed", r, img);
        for (size_t i = 0; i < (size_t)dw * dh * img->channels; i++) sum += dst[i];
        free(dst);
    }
    sink += sum;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int raw = -1;
    if (raw < 0) raw = getenv("MEDISCOPE_FUZZ_RAW") != NULL;
    char err[512];
    codec_image img;

    if (raw || size < 2 || app_jpeg_allowed(data, size, MAX_PIXELS)) {
        memset(&img, 0, sizeof img);
        memset(err, 'x', sizeof err);
        int rc = codec_jpeg_decode(data, size, MAX_PIXELS, 256, &img, err, sizeof err);
        check("codec_jpeg_decode", rc, &img, err, sizeof err, data, size, 1);
        if (rc == CODEC_OK && img.channels == 4) violated("codec_jpeg_decode", "4 channels from JPEG", rc, &img);
        codec_free(img.pixels);
    }

    memset(&img, 0, sizeof img);
    memset(err, 'x', sizeof err);
    int rc = codec_png_decode(data, size, MAX_PIXELS, &img, err, sizeof err);
    check("codec_png_decode", rc, &img, err, sizeof err, data, size, 1);
    codec_free(img.pixels);

    memset(&img, 0, sizeof img);
    memset(err, 'x', sizeof err);
    rc = codec_webp_decode(data, size, MAX_PIXELS, &img, err, sizeof err);
    check("codec_webp_decode", rc, &img, err, sizeof err, data, size, 3);
    codec_free(img.pixels);
    return 0;
}
