/* libFuzzer harness over the image codecs (Sources/CImageCodecs), built with ASan + UBSan by
 * Tests/Fuzz/fuzz.sh.
 *
 * Each input goes to every decoder (JPEG, PNG, WebP) the way MediscopeImaging's ImageDecoder.decode
 * calls them (max_pixels, and for JPEG max_scans 256 after the app's scan budget, app_checks.h); each
 * checks its own signature, so the decoders that do not match refuse at once. A decoded image is checked
 * against CImageCodecs.h (sizes, channels), every byte of it is read, it is resized with
 * codec_resize_bicubic to a small size the input chooses (as the pipeline resizes every upload), and it
 * is released with codec_free. A violation aborts with a message, which libFuzzer reports as a crash.
 * Every decode runs twice, new heap blocks filled with 0x00 and then 0xFF (heap_fill.h): pixels that
 * differ mean the decoder returned memory nobody wrote (a previous upload's bytes, in production).
 *
 * MEDISCOPE_FUZZ_RAW=1 skips the app's JPEG scan budget (the codec alone: expect slow inputs). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "CImageCodecs.h"
#include "app_checks.h"
#include "heap_fill.h"

#define MAX_PIXELS 4000000

static volatile uint64_t sink;

static void violated(const char *codec, const char *what, int rc, const codec_image *img) {
    fprintf(stderr, "\n==image_fuzzer== CImageCodecs.h contract violated by %s: %s (rc %d, %dx%d, %d channels)\n",
            codec, what, rc, img->width, img->height, img->channels);
    abort();
}

static void check(const char *codec, int rc, const codec_image *img, const char *err, size_t errlen,
                  const uint8_t *data, size_t size, int min_channels, int max_channels) {
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
    if (img->channels < min_channels || img->channels > max_channels || img->channels == 2)
        violated(codec, "channels out of what CImageCodecs.h documents for this codec", rc, img);
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

typedef int (*decoder)(const uint8_t *, size_t, codec_image *, char *, size_t);

static int jpeg(const uint8_t *d, size_t n, codec_image *o, char *e, size_t l) { return codec_jpeg_decode(d, n, MAX_PIXELS, 256, o, e, l); }
static int png(const uint8_t *d, size_t n, codec_image *o, char *e, size_t l) { return codec_png_decode(d, n, MAX_PIXELS, o, e, l); }
static int webp(const uint8_t *d, size_t n, codec_image *o, char *e, size_t l) { return codec_webp_decode(d, n, MAX_PIXELS, o, e, l); }

/* Decodes with new heap blocks filled with 0x00, then 0xFF; checks both and compares them. */
static void decode_twice(const char *codec, decoder fn, const uint8_t *data, size_t size, int min_channels, int max_channels) {
    codec_image img[2];
    char err[2][512];
    int rc[2];
    for (int k = 0; k < 2; k++) {
        memset(&img[k], 0, sizeof img[k]);
        memset(err[k], 'x', sizeof err[k]);
        heap_fill_byte = k ? 0xFF : 0x00;
        rc[k] = fn(data, size, &img[k], err[k], sizeof err[k]);
        heap_fill_byte = -1;
        check(codec, rc[k], &img[k], err[k], sizeof err[k], data, size, min_channels, max_channels);
    }
    const char *what = NULL;
    size_t at = 0, n = 0;
    if (rc[0] != rc[1]) what = "result code";
    else if (rc[0] != CODEC_OK && strcmp(err[0], err[1]) != 0) what = "error message";
    else if (rc[0] == CODEC_OK) {
        if (img[0].width != img[1].width || img[0].height != img[1].height || img[0].channels != img[1].channels) {
            what = "size";
        } else {
            n = (size_t)img[0].width * img[0].height * img[0].channels;
            if (memcmp(img[0].pixels, img[1].pixels, n) != 0) {
                what = "pixels";
                while (img[0].pixels[at] == img[1].pixels[at]) at++;
            }
        }
    }
    if (what) {
        fprintf(stderr, "\n==image_fuzzer== uninitialised memory in the output of %s: the %s differs between runs with new "
                "heap blocks filled with 0x00 and with 0xFF (rc %d vs %d", codec, what, rc[0], rc[1]);
        if (at < n) fprintf(stderr, "; first differing byte %zu of %zu: 0x%02x vs 0x%02x", at, n, img[0].pixels[at], img[1].pixels[at]);
        fprintf(stderr, ")\n");
        abort();
    }
    codec_free(img[0].pixels);
    codec_free(img[1].pixels);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    heap_fill_install();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int raw = -1;
    if (raw < 0) raw = getenv("MEDISCOPE_FUZZ_RAW") != NULL;
    if (raw || size < 2 || app_jpeg_allowed(data, size, MAX_PIXELS)) decode_twice("codec_jpeg_decode", jpeg, data, size, 1, 3);
    decode_twice("codec_png_decode", png, data, size, 1, 4);
    decode_twice("codec_webp_decode", webp, data, size, 3, 4);
    return 0;
}
