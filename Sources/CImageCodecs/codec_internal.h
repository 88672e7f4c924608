// Helpers shared by the codec translation units (not part of the public API).
#ifndef CODEC_INTERNAL_H
#define CODEC_INTERNAL_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include "CImageCodecs.h"

// Writes a formatted message into the caller's error buffer, if there is one.
void codec_set_error(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

// Checks decoded dimensions before any pixel buffer is allocated.
// Returns CODEC_OK or an error code, with the reason written to msg.
int codec_check_dimensions(int64_t width, int64_t height, int64_t max_pixels,
                           char *msg, size_t msglen);

// Start of every decoder: clears *out; CODEC_ERR_ARGUMENT without `out`, CODEC_ERR_EMPTY without data.
int codec_decode_begin(const uint8_t *data, size_t size, codec_image *out, char *err, size_t errlen);

// End of every decoder: on success hands `pixels` to *out; on failure frees `pixels` and copies `msg`
// into the caller's error buffer. Returns rc.
int codec_decode_finish(int rc, uint8_t *pixels, int width, int height, int channels, const char *msg,
                        codec_image *out, char *err, size_t errlen);

#endif
