#include "scoreboard.h"

#include <errno.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

/* Several processes share these atomics, so they must not hide a lock in one process's memory. */
_Static_assert(ATOMIC_LONG_LOCK_FREE == 2 && ATOMIC_LLONG_LOCK_FREE == 2,
               "64-bit atomics must be lock-free to live in shared memory");

typedef _Atomic int64_t field_t;

struct ms_scoreboard {
    field_t started_unix;
    field_t pools[MS_MAX_POOLS][MS_POOL_FIELD_COUNT];
    field_t slots[MS_MAX_SLOTS][MS_SLOT_FIELD_COUNT];
};

ms_scoreboard *ms_scoreboard_create(int64_t started_unix) {
    void *p = mmap(NULL, sizeof(ms_scoreboard), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return NULL;
    ms_scoreboard *board = p;
    memset(board, 0, sizeof *board);  /* before any other process can see it */
    atomic_store_explicit(&board->started_unix, started_unix, memory_order_release);
    return board;
}

void ms_scoreboard_destroy(ms_scoreboard *board) {
    if (board) munmap(board, sizeof *board);
}

int64_t ms_scoreboard_started_unix(const ms_scoreboard *board) {
    return atomic_load_explicit((field_t *)&board->started_unix, memory_order_acquire);
}

/* The one place slot and pool indices are checked; NULL (errno EINVAL) when out of range. */
static field_t *slot_field(const ms_scoreboard *board, int slot, enum ms_slot_field field) {
    if (board == NULL || slot < 0 || slot >= MS_MAX_SLOTS || (int)field < 0 || field >= MS_SLOT_FIELD_COUNT) {
        errno = EINVAL;
        return NULL;
    }
    return (field_t *)&board->slots[slot][field];
}

static field_t *pool_field(const ms_scoreboard *board, int pool, enum ms_pool_field field) {
    if (board == NULL || pool < 0 || pool >= MS_MAX_POOLS || (int)field < 0 || field >= MS_POOL_FIELD_COUNT) {
        errno = EINVAL;
        return NULL;
    }
    return (field_t *)&board->pools[pool][field];
}

int ms_slot_claim(ms_scoreboard *board, int pool, int generation, int64_t now_ns) {
    if (pool_field(board, pool, MS_POOL_ACCEPTED) == NULL) return -1;
    for (int i = 0; i < MS_MAX_SLOTS; i++) {
        field_t *f = board->slots[i];
        if (atomic_load_explicit(&f[MS_SLOT_STATE], memory_order_acquire) != MS_SLOT_FREE) continue;
        /* Only the master claims, so nobody else can take the slot meanwhile; readers ignore a free
         * slot's other fields, and the release store of the state publishes them. */
        atomic_store_explicit(&f[MS_SLOT_PID], 0, memory_order_relaxed);
        atomic_store_explicit(&f[MS_SLOT_POOL], pool, memory_order_relaxed);
        atomic_store_explicit(&f[MS_SLOT_GENERATION], generation, memory_order_relaxed);
        atomic_store_explicit(&f[MS_SLOT_REQUESTS], 0, memory_order_relaxed);
        atomic_store_explicit(&f[MS_SLOT_REQUEST_STARTED_NS], 0, memory_order_relaxed);
        atomic_store_explicit(&f[MS_SLOT_RSS_KB], 0, memory_order_relaxed);
        atomic_store_explicit(&f[MS_SLOT_LOADED_MODELS], 0, memory_order_relaxed);
        atomic_store_explicit(&f[MS_SLOT_CLIENT_KEY], 0, memory_order_relaxed);
        atomic_store_explicit(&f[MS_SLOT_CONTENT_KEY], 0, memory_order_relaxed);
        atomic_store_explicit(&f[MS_SLOT_STARTED_NS], now_ns, memory_order_relaxed);
        atomic_store_explicit(&f[MS_SLOT_STATE], MS_SLOT_STARTING, memory_order_release);
        return i;
    }
    errno = ENOSPC;
    return -1;
}

/* What every field function does once its index is checked (f is NULL when it was out of range). */
enum op { OP_LOAD, OP_STORE, OP_ADD, OP_RAISE };

static int apply(field_t *f, enum op op, int64_t operand, int64_t *result) {
    if (f == NULL) return -1;
    int64_t value = 0;
    switch (op) {
    case OP_LOAD:
        value = atomic_load_explicit(f, memory_order_acquire);
        break;
    case OP_STORE:
        atomic_store_explicit(f, operand, memory_order_release);
        value = operand;
        break;
    case OP_ADD:
        value = atomic_fetch_add_explicit(f, operand, memory_order_acq_rel) + operand;
        break;
    case OP_RAISE:
        value = atomic_load_explicit(f, memory_order_acquire);
        /* A failed exchange reloads `value`; stop once the stored maximum is at least `operand`. */
        while (operand > value &&
               !atomic_compare_exchange_weak_explicit(f, &value, operand, memory_order_acq_rel, memory_order_acquire)) {
        }
        break;
    }
    if (result) *result = value;
    return 0;
}

int ms_slot_load(const ms_scoreboard *board, int slot, enum ms_slot_field field, int64_t *value) {
    return apply(slot_field(board, slot, field), OP_LOAD, 0, value);
}

int ms_slot_store(ms_scoreboard *board, int slot, enum ms_slot_field field, int64_t value) {
    return apply(slot_field(board, slot, field), OP_STORE, value, NULL);
}

int ms_slot_add(ms_scoreboard *board, int slot, enum ms_slot_field field, int64_t delta, int64_t *value) {
    return apply(slot_field(board, slot, field), OP_ADD, delta, value);
}

int ms_pool_load(const ms_scoreboard *board, int pool, enum ms_pool_field field, int64_t *value) {
    return apply(pool_field(board, pool, field), OP_LOAD, 0, value);
}

int ms_pool_add(ms_scoreboard *board, int pool, enum ms_pool_field field, int64_t delta) {
    return apply(pool_field(board, pool, field), OP_ADD, delta, NULL);
}

int ms_pool_store(ms_scoreboard *board, int pool, enum ms_pool_field field, int64_t value) {
    return apply(pool_field(board, pool, field), OP_STORE, value, NULL);
}

int ms_pool_raise(ms_scoreboard *board, int pool, enum ms_pool_field field, int64_t value) {
    return apply(pool_field(board, pool, field), OP_RAISE, value, NULL);
}

int64_t ms_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}
