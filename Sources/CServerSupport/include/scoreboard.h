/* The scoreboard: one shared anonymous mapping the master creates before forking, read and written by
 * the master and every worker (PHP-FPM's fpm_scoreboard). Each worker owns one slot; each pool has one
 * row of counters.
 *
 * Ownership: the master creates and destroys the mapping and is the only one to claim or free slots.
 * A worker writes only its own slot and its pool's counters. Anyone may read anything.
 * Every field is a lock-free C11 atomic, so it is read and written whole across processes; the layout
 * is private to scoreboard.c and reachable only through these functions, which check every slot, pool
 * and field index. Functions returning int give 0, or -1 with errno EINVAL for an index out of range. */
#ifndef MS_SCOREBOARD_H
#define MS_SCOREBOARD_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum { MS_MAX_POOLS = 4, MS_MAX_SLOTS = 128 };

enum ms_slot_state {
    MS_SLOT_FREE = 0,
    MS_SLOT_STARTING = 1,   /* forked, not yet accepting */
    MS_SLOT_IDLE = 2,       /* waiting in accept */
    MS_SLOT_BUSY = 3,       /* handling a request */
    MS_SLOT_EXITING = 4,    /* told to stop, finishing */
};

enum ms_slot_field {
    MS_SLOT_PID = 0,
    MS_SLOT_POOL,
    MS_SLOT_GENERATION,
    MS_SLOT_STATE,              /* an ms_slot_state */
    MS_SLOT_STARTED_NS,         /* ms_now_ns() when the worker was forked */
    MS_SLOT_REQUEST_STARTED_NS, /* ms_now_ns() when the current request began, 0 when idle */
    MS_SLOT_REQUESTS,           /* served by this worker */
    MS_SLOT_RSS_KB,             /* after its last request */
    MS_SLOT_LOADED_MODELS,      /* bit i set: manifest model i is loaded in this worker */
    MS_SLOT_CLIENT_KEY,         /* who the current request is charged to (crashledger.h), 0: nobody yet */
    MS_SLOT_CONTENT_KEY,        /* which uploaded file it works on, 0: none */
    MS_SLOT_FIELD_COUNT
};

enum ms_pool_field {
    MS_POOL_ACCEPTED = 0,       /* requests accepted since the pool started */
    MS_POOL_MAX_ACTIVE,         /* most workers busy at once */
    MS_POOL_SLOW_REQUESTS,
    MS_POOL_KILLED_REQUESTS,    /* requests over the time limit (worker killed) */
    MS_POOL_RESTARTS,           /* workers respawned after an exit */
    MS_POOL_MAX_LISTEN_QUEUE,   /* longest listen queue seen */
    /* Abnormal worker exits, by when and why: busy with a request (charged to it) or not (at start,
     * idle: what the crash-loop rule counts); a signal, the request time limit, or a non-zero exit. */
    MS_POOL_CRASHES_REQUEST_SIGNAL,
    MS_POOL_CRASHES_REQUEST_TIME_LIMIT,
    MS_POOL_CRASHES_REQUEST_EXIT,
    MS_POOL_CRASHES_IDLE_SIGNAL,
    MS_POOL_CRASHES_IDLE_EXIT,
    /* A pool whose workers are forked from a fork server (PoolConfig.preload), written by the master
     * only: its pid (0 while none runs), its ms_fork_server_state, how long its preload took and
     * whether anything failed to preload (1), and how many times one was started. */
    MS_POOL_FORK_SERVER_PID,
    MS_POOL_FORK_SERVER_STATE,
    MS_POOL_FORK_SERVER_PRELOAD_MS,
    MS_POOL_FORK_SERVER_PRELOAD_FAILED,
    MS_POOL_FORK_SERVER_STARTS,
    MS_POOL_FIELD_COUNT
};

enum ms_fork_server_state {
    MS_FORK_SERVER_DOWN = 0,        /* none runs: it died and waits out its back-off */
    MS_FORK_SERVER_PRELOADING = 1,
    MS_FORK_SERVER_READY = 2,       /* forks workers */
    MS_FORK_SERVER_DISABLED = 3,    /* it kept dying before it was ready: the master forks the workers */
};

typedef struct ms_scoreboard ms_scoreboard;

/* A zeroed shared mapping (every slot free) that remembers `started_unix`. NULL with errno on failure. */
ms_scoreboard *ms_scoreboard_create(int64_t started_unix);
/* Unmaps the scoreboard in this process (others keep their mapping). NULL is ignored. */
void ms_scoreboard_destroy(ms_scoreboard *board);
int64_t ms_scoreboard_started_unix(const ms_scoreboard *board);

/* Master only: claims a free slot for a worker of `pool`, resets its fields, stamps `now_ns`, and
 * publishes it as MS_SLOT_STARTING. Returns the slot index, or -1 with errno EINVAL (pool out of
 * range) or ENOSPC (every slot taken). */
int ms_slot_claim(ms_scoreboard *board, int pool, int generation, int64_t now_ns);

/* One field of one slot: load into *value, store, or add `delta` (the new value into *value if not NULL). */
int ms_slot_load(const ms_scoreboard *board, int slot, enum ms_slot_field field, int64_t *value);
int ms_slot_store(ms_scoreboard *board, int slot, enum ms_slot_field field, int64_t value);
int ms_slot_add(ms_scoreboard *board, int slot, enum ms_slot_field field, int64_t delta, int64_t *value);

/* One counter of one pool: load, add, or raise to `value` when that is larger (a maximum). */
int ms_pool_load(const ms_scoreboard *board, int pool, enum ms_pool_field field, int64_t *value);
int ms_pool_add(ms_scoreboard *board, int pool, enum ms_pool_field field, int64_t delta);
int ms_pool_store(ms_scoreboard *board, int pool, enum ms_pool_field field, int64_t value);
int ms_pool_raise(ms_scoreboard *board, int pool, enum ms_pool_field field, int64_t value);

/* CLOCK_MONOTONIC in nanoseconds: the clock every *_NS field is on. */
int64_t ms_now_ns(void);

#ifdef __cplusplus
}
#endif

#endif
