/* Shared histograms: one shared anonymous mapping, separate from the scoreboard, that the master
 * creates before forking and every worker adds observations to (stage times, queueing time).
 *
 * A series is a metric name plus its label set, e.g. key "mediscope_stage_seconds|stage=\"forward\"".
 * The first process to observe a key claims a free series for it (a compare-and-swap on its state);
 * later ones find it. Counts are per bucket (not cumulative), lock-free C11 atomics; the caller picks
 * the bucket, so this file knows nothing of the bounds. A key longer than MS_HIST_KEY_MAX - 1 bytes,
 * or a full table, is refused with -1. */
#ifndef MS_HISTOGRAMS_H
#define MS_HISTOGRAMS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum { MS_HIST_SERIES_MAX = 128, MS_HIST_BUCKETS_MAX = 24, MS_HIST_KEY_MAX = 160 };

typedef struct ms_histograms ms_histograms;

/* Maps a zeroed table (MAP_SHARED | MAP_ANONYMOUS). NULL with errno on failure. */
ms_histograms *ms_histograms_create(void);
void ms_histograms_destroy(ms_histograms *h);

/* The series for key, claimed if new. Returns its index, or -1 (errno ENOSPC when full, EINVAL for a
 * bad key). */
int32_t ms_histograms_series(ms_histograms *h, const char *key);

/* Adds one observation of `micros` microseconds to bucket `bucket` (0 ..< MS_HIST_BUCKETS_MAX) of
 * series `series`. Returns 0, or -1 with errno EINVAL for an index out of range. */
int32_t ms_histograms_observe(ms_histograms *h, int32_t series, int32_t bucket, uint64_t micros);

/* Copies series `series` if it is claimed: its key (NUL-terminated, into key[MS_HIST_KEY_MAX]), its
 * per-bucket counts (into counts[MS_HIST_BUCKETS_MAX]), its count and sum of microseconds.
 * Returns 1 when copied, 0 when the series is free, -1 with errno EINVAL for an index out of range. */
int32_t ms_histograms_read(ms_histograms *h, int32_t series, char *key, uint64_t *counts,
                           uint64_t *count, uint64_t *sum_micros);

#ifdef __cplusplus
}
#endif

#endif
