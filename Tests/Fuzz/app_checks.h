/* The cost checks MediscopeImaging runs in Swift before it calls the C decoders, ported to C for the
 * fuzz harnesses, so the fuzzers call the C code under the same guards as the app (and do not report
 * as a timeout a file the app refuses before decoding).
 *
 * Only the JPEG scan budget is ported: it is the one Swift check that bounds cost rather than validity
 * (a progressive JPEG costs one pass over the claimed image per scan). Validity checks (12-bit, lossless,
 * hierarchical JPEG) are left to the C code on purpose: its own refusals are part of what is fuzzed.
 *
 *   app_jpeg_allowed       ImageStructure.jpeg + ImageDecoder.checkJPEGBudget (Codecs.swift, ImageStructure.swift)
 *
 * (DICOM has no such Swift check: the shim holds a frame's JPEG to the same budget itself, from the
 * max_jpeg_scans and max_jpeg_scan_pixels limits the harness passes.)
 *
 * Keep these in step with the Swift code; they return 1 when the app would go on to decode. */
#ifndef MEDISCOPE_FUZZ_APP_CHECKS_H
#define MEDISCOPE_FUZZ_APP_CHECKS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct {
    int64_t width, height, scans;
} app_jpeg_structure;

/* ImageStructure.jpeg(_:from:) for the fields checkJPEGBudget reads. */
static inline app_jpeg_structure app_jpeg_walk(const uint8_t *b, size_t count) {
    app_jpeg_structure s = {0, 0, 0};
    int have_frame = 0;
    size_t i = 2; /* after SOI */
    while (i + 1 < count) {
        if (b[i] != 0xFF) {
            while (i < count && b[i] != 0xFF) i++;
            continue;
        }
        uint8_t marker = b[i + 1];
        i += 2;
        while (marker == 0xFF && i < count) marker = b[i++];
        if (marker == 0xD9) return s;
        if (marker == 0x01 || (marker >= 0xD0 && marker <= 0xD8)) continue;
        if (!(i + 1 < count)) return s;
        size_t length = (size_t)b[i] << 8 | b[i + 1];
        if (length < 2 || i + length > count) return s;
        size_t payload = i + 2, payload_count = length - 2;
        if ((marker >= 0xC0 && marker <= 0xC3) || (marker >= 0xC5 && marker <= 0xC7) ||
            (marker >= 0xC9 && marker <= 0xCB) || (marker >= 0xCD && marker <= 0xCF)) {
            if (!have_frame && payload_count >= 5) {
                have_frame = 1;
                s.height = (int64_t)b[payload + 1] << 8 | b[payload + 2];
                s.width = (int64_t)b[payload + 3] << 8 | b[payload + 4];
            }
        } else if (marker == 0xDA) {
            s.scans++;
            i += length;
            while (i + 1 < count && !(b[i] == 0xFF && b[i + 1] != 0 && !(b[i + 1] >= 0xD0 && b[i + 1] <= 0xD7))) i++;
            continue;
        }
        i += length;
    }
    return s;
}

/* ImageDecoder.checkJPEGBudget with ImageLimits(maxPixels:) defaults: 256 scans, 12 full passes. */
static inline int app_jpeg_budget_ok(app_jpeg_structure s, int64_t max_pixels) {
    const int64_t max_scans = 256, max_scan_pixels = (max_pixels > 1 ? max_pixels : 1) * 12;
    const int64_t pixels = s.width * s.height;
    if (pixels > max_pixels) return 0;
    if (s.scans > max_scans || (pixels > 0 && s.scans > max_scan_pixels / pixels)) return 0;
    return 1;
}

static inline int app_jpeg_allowed(const uint8_t *b, size_t count, int64_t max_pixels) {
    return app_jpeg_budget_ok(app_jpeg_walk(b, count), max_pixels);
}

#endif
