/* Process-manager support that is awkward or unsafe to write in Swift: shared-memory
 * scoreboard with atomic updates, signal flags set from handlers, listening sockets,
 * and the listen-queue length of unix and TCP sockets. Plain C, no allocation hidden
 * from the caller: the scoreboard is freed with ms_scoreboard_destroy. */
#ifndef SERVER_SUPPORT_H
#define SERVER_SUPPORT_H

#include <stdint.h>
#include <sys/types.h>

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

typedef struct ms_slot {
    int32_t pid;
    int32_t pool;
    int32_t generation;
    int32_t state;
    int64_t started_ns;          /* CLOCK_MONOTONIC, when the worker was forked */
    int64_t request_started_ns;  /* CLOCK_MONOTONIC, 0 when idle */
    int64_t requests;            /* served by this worker */
    int64_t rss_kb;              /* after its last request */
    int64_t loaded_models;       /* bit i set: manifest model i is loaded in this worker */
} ms_slot;

typedef struct ms_pool_stats {
    int64_t accepted;            /* requests accepted since the pool started */
    int64_t max_active;          /* most workers busy at once */
    int64_t slow_requests;
    int64_t killed_requests;     /* requests over the time limit (worker killed) */
    int64_t restarts;            /* workers respawned after an exit */
    int64_t max_listen_queue;    /* longest listen queue seen */
} ms_pool_stats;

typedef struct ms_scoreboard {
    int64_t started_unix;
    ms_pool_stats pools[MS_MAX_POOLS];
    ms_slot slots[MS_MAX_SLOTS];
} ms_scoreboard;

/* Shared anonymous mapping, inherited by every forked worker. NULL on failure. */
ms_scoreboard *ms_scoreboard_create(void);
void ms_scoreboard_destroy(ms_scoreboard *board);

int64_t ms_now_ns(void);
int64_t ms_load64(const int64_t *p);
void ms_store64(int64_t *p, int64_t v);
int64_t ms_add64(int64_t *p, int64_t delta);
int32_t ms_load32(const int32_t *p);
void ms_store32(int32_t *p, int32_t v);
/* Raises *p to v if v is larger. */
void ms_max64(int64_t *p, int64_t v);

/* Signal flags: handlers only record that a signal came (no SA_RESTART, so blocking
 * calls return EINTR). ms_signals_install blocks the signals; ms_wait unblocks them
 * only while it sleeps, so a signal can never slip in between a check and a sleep. */
int ms_signals_install(void);
/* Returns 1 and clears the flag if `sig` arrived since the last call. */
int ms_signal_take(int sig);
/* Restores default handlers and an empty mask (for a freshly forked worker before it installs its own). */
void ms_signals_reset(void);
/* Sleeps until fd is readable (fd < 0: no fd), a signal arrives or timeout_ms passes.
 * Returns 1 readable, 0 timeout or signal, -1 error. */
int ms_wait(int fd, int timeout_ms);

/* Listening sockets, non-blocking, inherited across fork. Return fd or -1 with errno set. */
int ms_listen_unix(const char *path, int backlog, int mode);
int ms_listen_tcp(const char *host, int port, int backlog);

/* Current and maximum listen queue of a listening socket (unix: sock_diag; TCP: TCP_INFO).
 * Returns 0 on success, -1 on failure. */
int ms_listen_queue(int fd, int64_t *queued, int64_t *backlog);

/* The worker receives `sig` when its parent dies. */
int ms_set_parent_death_signal(int sig);

#ifdef __cplusplus
}
#endif

#endif
