/* Signals for the master and its workers (PHP-FPM's fpm_signals), as flags: a handler only records that
 * a signal came, and the owner's loop takes the flags when it wakes.
 *
 * ms_signals_install blocks the handled signals; ms_wait unblocks them only while it sleeps, so a
 * signal can never slip in between a check and a sleep. Handlers have no SA_RESTART, so a blocking
 * call that a signal interrupts returns EINTR.
 *
 * After fork a worker keeps the master's handlers and blocked mask until it calls ms_signals_install
 * itself, which clears the flags inherited from the master. Signals stay blocked across that gap, so
 * one sent to a new worker waits for its loop instead of taking the default action; there is no
 * separate reset to the defaults. The flags are per process (not in shared memory). */
#ifndef MS_SIGNALS_H
#define MS_SIGNALS_H

#ifdef __cplusplus
extern "C" {
#endif

/* Installs the flag handlers for TERM, QUIT, INT, HUP, USR1, USR2 and CHLD (CHLD without stop
 * notifications), clears their flags, ignores SIGPIPE (a client that goes away must not kill the
 * process; writes fail with EPIPE instead) and blocks the handled signals. 0, or -1 with errno. */
int ms_signals_install(void);

/* Gives the fatal signals (SEGV, BUS, ILL, FPE, ABRT, TRAP, SYS) back their default action: the process
 * dies at once, as a PHP-FPM child does, and the master sees the signal. Called by every worker and
 * background process after fork, because the Swift runtime's crash backtracer, inherited from the
 * master, (1) writes registers and the memory bytes around them to standard error, where an upload's
 * bytes (patient data) may be, (2) holds a dying worker for its backtrace, and (3) returns from a SEGV
 * sent with kill(), so the process lives on. A core dump (systemd-coredump) keeps what it showed. 0, or
 * -1 with errno. */
int ms_signals_default_fatal(void);

/* 1 when `sig` arrived since the last call (and clears its flag), else 0. */
int ms_signal_take(int sig);

/* Sleeps until fd is readable (fd < 0: no fd), a handled signal arrives or timeout_ms passes
 * (timeout_ms < 0: no limit). Returns 1 readable, 0 timeout or signal, -1 error (errno set). */
int ms_wait(int fd, int timeout_ms);

/* As ms_wait for several descriptors: sleeps until one of fds[0..count) is readable (or hung up), a
 * handled signal arrives or timeout_ms passes. Returns the index of the first ready descriptor, -1 on
 * timeout or signal, -2 on error (errno set). */
int ms_wait_any(const int *fds, int count, int timeout_ms);

/* The signal's constant name ("SIGSEGV"), or NULL for a number without one. Static storage. */
const char *ms_signal_name(int sig);

/* Asks the kernel to send `sig` to this process when its parent dies. 0, or -1 with errno. */
int ms_set_parent_death_signal(int sig);

/* Makes this process the reaper of its orphaned descendants (PR_SET_CHILD_SUBREAPER): a worker
 * forked by a fork server through an intermediate child becomes this process's child. 0, or -1. */
int ms_set_child_subreaper(void);

#ifdef __cplusplus
}
#endif

#endif
