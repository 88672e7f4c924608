/* The cost checks MediscopeImaging runs in Swift before it calls the C decoders, ported to C for the
 * fuzz harnesses, so the fuzzers call the C code under the same guards as the app (and do not report
 * as a timeout a file the app refuses before decoding).
 *
 * Only the JPEG scan budget is ported: it is the one Swift check that bounds cost rather than validity
 * (a progressive JPEG costs one pass over the claimed image per scan). Validity checks (12-bit, lossless,
 * hierarchical JPEG) are left to the C code on purpose: its own refusals are part of what is fuzzed.
 *
 *   app_jpeg_allowed       ImageStructure.jpeg + ImageDecoder.checkJPEGBudget (Codecs.swift, ImageStructure.swift)
 *   app_dicom_jpegs_allowed DicomFile.checkEmbeddedJPEGs (DicomFile.swift): the fragments of the first
 *                          encapsulated (7FE0,0010) Pixel Data in explicit VR little endian after byte 132
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

/* DicomFile.checkEmbeddedJPEGs(_:limits:maxFragments:). */
static inline int app_dicom_jpegs_allowed(const uint8_t *b, size_t count, int64_t max_pixels) {
    static const uint8_t header[4] = {0xE0, 0x7F, 0x10, 0x00};
    const size_t max_fragments = 100000;
    size_t search = 132;
    for (;;) {
        if (search > count) search = count;
        size_t at = (size_t)-1;
        for (size_t k = search; k + 4 <= count; k++) {
            if (memcmp(b + k, header, 4) == 0) { at = k; break; }
        }
        if (at == (size_t)-1) return 1;
        search = at + 4;
        if (!(at + 12 <= count && b[at + 6] == 0 && b[at + 7] == 0 && b[at + 8] == 0xFF && b[at + 9] == 0xFF &&
              b[at + 10] == 0xFF && b[at + 11] == 0xFF))
            continue;
        size_t i = at + 12, seen = 0;
        while (i + 8 <= count && seen < max_fragments && b[i] == 0xFE && b[i + 1] == 0xFF && b[i + 3] == 0xE0) {
            if (b[i + 2] != 0x00) return 1;
            size_t length = (size_t)b[i + 4] | (size_t)b[i + 5] << 8 | (size_t)b[i + 6] << 16 | (size_t)b[i + 7] << 24;
            size_t start = i + 8;
            if (length > count - start) return 1;
            if (length >= 4 && b[start] == 0xFF && b[start + 1] == 0xD8) {
                if (!app_jpeg_budget_ok(app_jpeg_walk(b + start, length), max_pixels)) return 0;
            }
            seen++;
            i = start + length;
        }
        return 1;
    }
}

#endif
