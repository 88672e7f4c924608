/* The crash ledger; see include/crashledger.h. */
#include "crashledger.h"

#include <errno.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>

_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "64-bit atomics must be lock-free to live in shared memory");

enum { F_KEY, F_CRASHES, F_FIRST, F_LAST, F_UNTIL, F_CAUSE, F_COUNT };
enum { READ_TRIES = 10000 };

typedef struct {
    _Atomic uint64_t seq;   /* odd while the master writes the entry */
    _Atomic int64_t f[F_COUNT];
} entry_t;

struct ms_crash_ledger {
    entry_t tables[MS_LEDGER_TABLE_COUNT][MS_LEDGER_ENTRIES];
    _Atomic int64_t counters[MS_LEDGER_COUNTER_COUNT];
};

ms_crash_ledger *ms_ledger_create(void) {
    void *p = mmap(NULL, sizeof(ms_crash_ledger), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : (ms_crash_ledger *)p;  /* anonymous mappings start zeroed */
}

void ms_ledger_destroy(ms_crash_ledger *ledger) {
    if (ledger != NULL) munmap(ledger, sizeof(ms_crash_ledger));
}

/* The one place tables and indices are checked; NULL (errno EINVAL) when out of range. */
static entry_t *entry_at(const ms_crash_ledger *ledger, int table, int index) {
    if (ledger == NULL || table < 0 || table >= MS_LEDGER_TABLE_COUNT || index < 0 || index >= MS_LEDGER_ENTRIES) {
        errno = EINVAL;
        return NULL;
    }
    return (entry_t *)&ledger->tables[table][index];
}

static _Atomic int64_t *counter_at(const ms_crash_ledger *ledger, int counter) {
    if (ledger == NULL || counter < 0 || counter >= MS_LEDGER_COUNTER_COUNT) {
        errno = EINVAL;
        return NULL;
    }
    return (_Atomic int64_t *)&ledger->counters[counter];
}

/* Seqlock read (Boehm, "Can seqlocks get along with programming language memory models?"): the
 * acquire fence orders the field loads before the second load of the sequence. */
static int read_entry(const entry_t *e, ms_ledger_entry *out) {
    entry_t *m = (entry_t *)e;
    for (int tries = 0; tries < READ_TRIES; tries++) {
        uint64_t before = atomic_load_explicit(&m->seq, memory_order_acquire);
        if (before & 1) continue;
        int64_t v[F_COUNT];
        for (int i = 0; i < F_COUNT; i++) v[i] = atomic_load_explicit(&m->f[i], memory_order_relaxed);
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&m->seq, memory_order_relaxed) != before) continue;
        out->key = v[F_KEY];
        out->crashes = v[F_CRASHES];
        out->first_ns = v[F_FIRST];
        out->last_ns = v[F_LAST];
        out->refused_until_ns = v[F_UNTIL];
        out->cause = v[F_CAUSE];
        return 0;
    }
    errno = EAGAIN;
    return -1;
}

int ms_ledger_read(const ms_crash_ledger *ledger, int table, int index, ms_ledger_entry *out) {
    entry_t *e = entry_at(ledger, table, index);
    if (e == NULL || out == NULL) {
        errno = EINVAL;
        return -1;
    }
    return read_entry(e, out);
}

int ms_ledger_write(ms_crash_ledger *ledger, int table, int index, const ms_ledger_entry *entry) {
    entry_t *e = entry_at(ledger, table, index);
    if (e == NULL || entry == NULL) {
        errno = EINVAL;
        return -1;
    }
    /* One writer (the master), so a plain load of the sequence is its own. */
    uint64_t seq = atomic_load_explicit(&e->seq, memory_order_relaxed);
    atomic_store_explicit(&e->seq, seq + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    int64_t v[F_COUNT] = {entry->key, entry->crashes, entry->first_ns, entry->last_ns, entry->refused_until_ns, entry->cause};
    for (int i = 0; i < F_COUNT; i++) atomic_store_explicit(&e->f[i], v[i], memory_order_relaxed);
    atomic_store_explicit(&e->seq, seq + 2, memory_order_release);
    return 0;
}

int ms_ledger_find(const ms_crash_ledger *ledger, int table, int64_t key, ms_ledger_entry *out) {
    if (entry_at(ledger, table, 0) == NULL || key == 0 || out == NULL) {
        errno = EINVAL;
        return -1;
    }
    for (int i = 0; i < MS_LEDGER_ENTRIES; i++) {
        entry_t *e = (entry_t *)&ledger->tables[table][i];
        if (atomic_load_explicit(&e->f[F_KEY], memory_order_relaxed) != key) continue;
        /* A match seen in passing is confirmed by a whole read (the entry may be changing). */
        if (read_entry(e, out) == 0 && out->key == key) return i;
    }
    errno = ENOENT;
    return -1;
}

int ms_ledger_counter_load(const ms_crash_ledger *ledger, int counter, int64_t *value) {
    _Atomic int64_t *c = counter_at(ledger, counter);
    if (c == NULL || value == NULL) return -1;
    *value = atomic_load_explicit(c, memory_order_acquire);
    return 0;
}

int ms_ledger_counter_add(ms_crash_ledger *ledger, int counter, int64_t delta) {
    _Atomic int64_t *c = counter_at(ledger, counter);
    if (c == NULL) return -1;
    atomic_fetch_add_explicit(c, delta, memory_order_acq_rel);
    return 0;
}

int ms_ledger_counter_store(ms_crash_ledger *ledger, int counter, int64_t value) {
    _Atomic int64_t *c = counter_at(ledger, counter);
    if (c == NULL) return -1;
    atomic_store_explicit(c, value, memory_order_release);
    return 0;
}
