/* Listening sockets for the pools (PHP-FPM's fpm_sockets): the master binds them before forking and
 * every worker of the pool inherits and accepts on the same descriptor. The caller owns each returned
 * descriptor and closes it. All functions set errno on failure. */
#ifndef MS_SOCKETS_H
#define MS_SOCKETS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A non-blocking unix stream socket listening at `path` with permissions `mode`. A stale socket file at
 * `path` is replaced. Returns the descriptor, or -1 (ENAMETOOLONG for a path too long for sun_path;
 * EADDRINUSE when a process listens on the socket file at `path`: see ms_unix_path_listened_on). */
int ms_listen_unix(const char *path, int backlog, int mode);

/* Whether a socket in this network namespace listens on the socket file at `path` (the same file: device
 * and inode, from sock_diag's UDIAG_SHOW_VFS): 1, 0 (also when there is no file, or it is no socket),
 * or -1 with errno when the kernel cannot tell. */
int ms_unix_path_listened_on(const char *path);

/* A non-blocking TCP socket listening on numeric `host` and `port` (SO_REUSEADDR). Returns the
 * descriptor, or -1 (EADDRNOTAVAIL when the address does not resolve). */
int ms_listen_tcp(const char *host, int port, int backlog);

/* The listening sockets a service manager passed to this process (systemd's socket activation, the
 * sd_listen_fds protocol: LISTEN_PID names this process, LISTEN_FDS = n, descriptors 3 ... 3 + n - 1).
 * Returns n, 0 when none were passed to this process (no variables, or another process's). Clears the
 * variables either way, so that no child takes the sockets for its own. */
int ms_inherited_listen_fds(void);

/* Describes inherited descriptor `fd` as a pool's listen address is written: "unix:<path>" or
 * "tcp:<port>", into `out` (NUL-terminated, at most `len` bytes), and makes it non-blocking and
 * close-on-exec like the pools' own sockets. Returns 0, or -1 when it is not a listening stream socket
 * on a unix path or TCP (errno ENOTSOCK, EINVAL; ENAMETOOLONG when `out` is too short). */
int ms_inherited_listen_fd_describe(int fd, char *out, size_t len);

/* Takes one connection from the non-blocking listening socket `listen_fd`. Returns the connection's
 * descriptor (blocking, close-on-exec; the caller owns and closes it), or -1 with errno (EAGAIN when none
 * waits: another worker took it). The peer's numeric address goes into `peer` (NUL-terminated, at most
 * `peer_len` bytes): "10.0.0.2" or "fd00::2" (IPv4-mapped IPv6 written as IPv4), "unix" for a unix socket. */
int ms_accept(int listen_fd, char *peer, size_t peer_len);

/* Connections waiting in a listening socket's accept queue now (*queued) and the queue's bound
 * (*backlog): unix sockets through sock_diag, TCP through TCP_INFO. 0, or -1 (ENOENT when the kernel
 * does not report the unix socket's queue). */
int ms_listen_queue(int fd, int64_t *queued, int64_t *backlog);

#ifdef __cplusplus
}
#endif

#endif
