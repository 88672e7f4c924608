#define _GNU_SOURCE
#include "signals.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>

static const int handled_signals[] = {SIGTERM, SIGQUIT, SIGINT, SIGHUP, SIGUSR1, SIGUSR2, SIGCHLD};
enum { HANDLED_COUNT = sizeof handled_signals / sizeof handled_signals[0] };
static volatile sig_atomic_t arrived[NSIG];

static void record_signal(int sig) {
    if (sig > 0 && sig < NSIG) arrived[sig] = 1;
}

int ms_signals_install(void) {
    sigset_t block;
    sigemptyset(&block);
    for (int i = 0; i < HANDLED_COUNT; i++) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = record_signal;
        sigemptyset(&sa.sa_mask);
        sa.sa_flags = handled_signals[i] == SIGCHLD ? SA_NOCLDSTOP : 0;  /* deliberately no SA_RESTART */
        if (sigaction(handled_signals[i], &sa, NULL) != 0) return -1;
        sigaddset(&block, handled_signals[i]);
        arrived[handled_signals[i]] = 0;
    }
    if (signal(SIGPIPE, SIG_IGN) == SIG_ERR) return -1;
    return sigprocmask(SIG_BLOCK, &block, NULL);
}

int ms_signals_default_fatal(void) {
    static const int fatal[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTRAP, SIGSYS};
    sigset_t unblock;
    sigemptyset(&unblock);
    for (size_t i = 0; i < sizeof fatal / sizeof fatal[0]; i++) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = SIG_DFL;
        sigemptyset(&sa.sa_mask);
        if (sigaction(fatal[i], &sa, NULL) != 0) return -1;
        sigaddset(&unblock, fatal[i]);
    }
    return sigprocmask(SIG_UNBLOCK, &unblock, NULL);
}

int ms_signal_take(int sig) {
    if (sig <= 0 || sig >= NSIG || !arrived[sig]) return 0;
    arrived[sig] = 0;
    return 1;
}

int ms_wait(int fd, int timeout_ms) {
    sigset_t open_mask;
    sigprocmask(SIG_SETMASK, NULL, &open_mask);
    for (int i = 0; i < HANDLED_COUNT; i++) sigdelset(&open_mask, handled_signals[i]);
    struct pollfd pfd = {.fd = fd, .events = POLLIN, .revents = 0};
    struct timespec ts = {.tv_sec = timeout_ms / 1000, .tv_nsec = (long)(timeout_ms % 1000) * 1000000L};
    int rc = ppoll(fd >= 0 ? &pfd : NULL, fd >= 0 ? 1 : 0, timeout_ms >= 0 ? &ts : NULL, &open_mask);
    if (rc < 0) return errno == EINTR ? 0 : -1;
    return rc > 0 && (pfd.revents & POLLIN) ? 1 : 0;
}

int ms_wait_any(const int *fds, int count, int timeout_ms) {
    enum { MAX_FDS = 256 };
    if (count < 0 || count > MAX_FDS) {
        errno = EINVAL;
        return -2;
    }
    sigset_t open_mask;
    sigprocmask(SIG_SETMASK, NULL, &open_mask);
    for (int i = 0; i < HANDLED_COUNT; i++) sigdelset(&open_mask, handled_signals[i]);
    struct pollfd pfds[MAX_FDS];
    for (int i = 0; i < count; i++) pfds[i] = (struct pollfd){.fd = fds[i], .events = POLLIN, .revents = 0};
    struct timespec ts = {.tv_sec = timeout_ms / 1000, .tv_nsec = (long)(timeout_ms % 1000) * 1000000L};
    int rc = ppoll(pfds, (nfds_t)count, timeout_ms >= 0 ? &ts : NULL, &open_mask);
    if (rc < 0) return errno == EINTR ? -1 : -2;
    for (int i = 0; i < count && rc > 0; i++) {
        if (pfds[i].revents & (POLLIN | POLLHUP | POLLERR)) return i;
    }
    return -1;
}

const char *ms_signal_name(int sig) {
    /* Fixed names rather than strsignal(): its text is localised and meant for people, not log fields. */
    static const struct { int number; const char *name; } names[] = {
        {SIGHUP, "SIGHUP"},   {SIGINT, "SIGINT"},   {SIGQUIT, "SIGQUIT"},     {SIGILL, "SIGILL"},
        {SIGTRAP, "SIGTRAP"}, {SIGABRT, "SIGABRT"}, {SIGBUS, "SIGBUS"},       {SIGFPE, "SIGFPE"},
        {SIGKILL, "SIGKILL"}, {SIGUSR1, "SIGUSR1"}, {SIGSEGV, "SIGSEGV"},     {SIGUSR2, "SIGUSR2"},
        {SIGPIPE, "SIGPIPE"}, {SIGALRM, "SIGALRM"}, {SIGTERM, "SIGTERM"},     {SIGCHLD, "SIGCHLD"},
        {SIGCONT, "SIGCONT"}, {SIGSTOP, "SIGSTOP"}, {SIGTSTP, "SIGTSTP"},     {SIGTTIN, "SIGTTIN"},
        {SIGTTOU, "SIGTTOU"}, {SIGURG, "SIGURG"},   {SIGXCPU, "SIGXCPU"},     {SIGXFSZ, "SIGXFSZ"},
        {SIGVTALRM, "SIGVTALRM"}, {SIGPROF, "SIGPROF"}, {SIGWINCH, "SIGWINCH"}, {SIGIO, "SIGIO"},
        {SIGPWR, "SIGPWR"},   {SIGSYS, "SIGSYS"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (names[i].number == sig) return names[i].name;
    }
    return NULL;
}

int ms_set_parent_death_signal(int sig) { return prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0); }

int ms_set_child_subreaper(void) { return prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); }
