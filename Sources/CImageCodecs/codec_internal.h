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

#endif
