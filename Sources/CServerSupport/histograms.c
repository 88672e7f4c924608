/* Shared histograms; see include/histograms.h. */
#include "histograms.h"

#include <errno.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>

enum { FREE = 0, CLAIMING = 1, READY = 2 };

typedef struct {
    _Atomic int32_t state;
    char key[MS_HIST_KEY_MAX];   /* written once, while CLAIMING, by the claiming process */
    _Atomic uint64_t counts[MS_HIST_BUCKETS_MAX];
    _Atomic uint64_t count;
    _Atomic uint64_t sum_micros;
} series_t;

struct ms_histograms {
    series_t series[MS_HIST_SERIES_MAX];
};

ms_histograms *ms_histograms_create(void) {
    void *p = mmap(NULL, sizeof(ms_histograms), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : (ms_histograms *)p;   /* anonymous mappings start zeroed: all FREE */
}

void ms_histograms_destroy(ms_histograms *h) {
    if (h != NULL) munmap(h, sizeof(ms_histograms));
}

int32_t ms_histograms_series(ms_histograms *h, const char *key) {
    size_t len = key == NULL ? 0 : strlen(key);
    if (h == NULL || len == 0 || len >= MS_HIST_KEY_MAX) {
        errno = EINVAL;
        return -1;
    }
    for (int32_t i = 0; i < MS_HIST_SERIES_MAX; i++) {
        series_t *s = &h->series[i];
        int32_t state = atomic_load(&s->state);
        if (state == FREE) {
            int32_t expected = FREE;
            if (atomic_compare_exchange_strong(&s->state, &expected, CLAIMING)) {
                memcpy(s->key, key, len + 1);
                atomic_store(&s->state, READY);
                return i;
            }
            state = expected;
        }
        /* Another process is writing this key right now: wait the few instructions it takes. */
        while (state == CLAIMING) state = atomic_load(&s->state);
        if (state == READY && strcmp(s->key, key) == 0) return i;
    }
    errno = ENOSPC;
    return -1;
}

int32_t ms_histograms_observe(ms_histograms *h, int32_t series, int32_t bucket, uint64_t micros) {
    if (h == NULL || series < 0 || series >= MS_HIST_SERIES_MAX || bucket < 0 || bucket >= MS_HIST_BUCKETS_MAX) {
        errno = EINVAL;
        return -1;
    }
    series_t *s = &h->series[series];
    atomic_fetch_add(&s->counts[bucket], 1);
    atomic_fetch_add(&s->sum_micros, micros);
    atomic_fetch_add(&s->count, 1);
    return 0;
}

int32_t ms_histograms_read(ms_histograms *h, int32_t series, char *key, uint64_t *counts,
                           uint64_t *count, uint64_t *sum_micros) {
    if (h == NULL || series < 0 || series >= MS_HIST_SERIES_MAX || key == NULL || counts == NULL ||
        count == NULL || sum_micros == NULL) {
        errno = EINVAL;
        return -1;
    }
    series_t *s = &h->series[series];
    if (atomic_load(&s->state) != READY) return 0;
    memcpy(key, s->key, MS_HIST_KEY_MAX);
    *count = atomic_load(&s->count);
    for (int b = 0; b < MS_HIST_BUCKETS_MAX; b++) counts[b] = atomic_load(&s->counts[b]);
    *sum_micros = atomic_load(&s->sum_micros);
    return 1;
}
