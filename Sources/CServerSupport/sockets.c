#define _GNU_SOURCE
#include "sockets.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>

static int make_nonblocking(int fd) {
    int flags = fcntl(fd, F_GETFL, 0);
    return flags < 0 ? -1 : fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

int ms_listen_unix(const char *path, int backlog, int mode) {
    struct sockaddr_un addr;
    if (strlen(path) >= sizeof addr.sun_path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    strcpy(addr.sun_path, path);
    /* A socket file that nothing listens on is stale (a crashed run) and replaced; one that a process
     * listens on (another server, or systemd's socket unit) is not taken from it. When the kernel cannot
     * tell, the file is replaced, as before the check. */
    if (ms_unix_path_listened_on(path) == 1) {
        close(fd);
        errno = EADDRINUSE;
        return -1;
    }
    unlink(path);
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0 || chmod(path, (mode_t)mode) != 0 ||
        listen(fd, backlog) != 0 || make_nonblocking(fd) != 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

int ms_inherited_listen_fds(void) {
    const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
    int n = 0;
    if (pid != NULL && fds != NULL) {
        char *end = NULL;
        errno = 0;
        long owner = strtol(pid, &end, 10);
        if (errno == 0 && end != pid && *end == '\0' && owner == (long)getpid()) {
            long count = strtol(fds, &end, 10);
            if (errno == 0 && end != fds && *end == '\0' && count > 0 && count <= 64) n = (int)count;
        }
    }
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    return n;
}

int ms_inherited_listen_fd_describe(int fd, char *out, size_t len) {
    int listening = 0, type = 0;
    socklen_t optlen = sizeof listening;
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &optlen) != 0) return -1;
    optlen = sizeof type;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &optlen) != 0) return -1;
    if (!listening || type != SOCK_STREAM) {
        errno = EINVAL;
        return -1;
    }
    struct sockaddr_storage addr;
    socklen_t alen = sizeof addr;
    memset(&addr, 0, sizeof addr);
    if (getsockname(fd, (struct sockaddr *)&addr, &alen) != 0) return -1;
    int written;
    if (addr.ss_family == AF_UNIX) {
        const struct sockaddr_un *un = (const struct sockaddr_un *)&addr;
        size_t max = alen > offsetof(struct sockaddr_un, sun_path) ? alen - offsetof(struct sockaddr_un, sun_path) : 0;
        if (max == 0 || un->sun_path[0] == '\0') {  /* unnamed or abstract: no path a pool can name */
            errno = EINVAL;
            return -1;
        }
        written = snprintf(out, len, "unix:%.*s", (int)strnlen(un->sun_path, max), un->sun_path);
    } else if (addr.ss_family == AF_INET) {
        written = snprintf(out, len, "tcp:%d", ntohs(((const struct sockaddr_in *)&addr)->sin_port));
    } else if (addr.ss_family == AF_INET6) {
        written = snprintf(out, len, "tcp:%d", ntohs(((const struct sockaddr_in6 *)&addr)->sin6_port));
    } else {
        errno = EINVAL;
        return -1;
    }
    if (written < 0 || (size_t)written >= len) {
        errno = ENAMETOOLONG;
        return -1;
    }
    int fdflags = fcntl(fd, F_GETFD, 0);
    if (fdflags < 0 || fcntl(fd, F_SETFD, fdflags | FD_CLOEXEC) != 0 || make_nonblocking(fd) != 0) return -1;
    return 0;
}

int ms_accept(int listen_fd, char *peer, size_t peer_len) {
    struct sockaddr_storage addr;
    socklen_t len = sizeof addr;
    int fd = accept4(listen_fd, (struct sockaddr *)&addr, &len, SOCK_CLOEXEC);
    if (fd < 0) return -1;
    if (peer != NULL && peer_len > 0) {
        peer[0] = '\0';
        if (addr.ss_family == AF_INET) {
            inet_ntop(AF_INET, &((struct sockaddr_in *)&addr)->sin_addr, peer, (socklen_t)peer_len);
        } else if (addr.ss_family == AF_INET6) {
            struct in6_addr *a6 = &((struct sockaddr_in6 *)&addr)->sin6_addr;
            if (IN6_IS_ADDR_V4MAPPED(a6)) {
                inet_ntop(AF_INET, &a6->s6_addr[12], peer, (socklen_t)peer_len);
            } else {
                inet_ntop(AF_INET6, a6, peer, (socklen_t)peer_len);
            }
        } else {
            snprintf(peer, peer_len, "unix");
        }
        if (addr.ss_family == AF_INET || addr.ss_family == AF_INET6) {
            int on = 1;  /* small FastCGI records: no Nagle delay */
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
        }
    }
    return fd;
}

int ms_listen_tcp(const char *host, int port, int backlog) {
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    char service[16];
    snprintf(service, sizeof service, "%d", port);
    int gai = getaddrinfo(host, service, &hints, &res);
    if (gai != 0 || res == NULL) {
        errno = EADDRNOTAVAIL;
        return -1;
    }
    int fd = socket(res->ai_family, SOCK_STREAM, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, backlog) != 0 || make_nonblocking(fd) != 0) {
        int saved = errno;
        if (fd >= 0) close(fd);
        freeaddrinfo(res);
        errno = saved;
        return -1;
    }
    freeaddrinfo(res);
    return fd;
}

/* Asks sock_diag about listening unix sockets, showing `show` (UDIAG_SHOW_*): the one whose socket
 * inode is `ino`, or all of them when `ino` is 0. Returns the netlink socket to read the answer from
 * (the caller closes it), or -1. */
static int unix_diag_request(uint32_t ino, uint32_t show) {
    int nl = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    if (nl < 0) return -1;
    struct {
        struct nlmsghdr nlh;
        struct unix_diag_req req;
    } msg;
    memset(&msg, 0, sizeof msg);
    msg.nlh.nlmsg_len = sizeof msg;
    msg.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
    msg.nlh.nlmsg_flags = NLM_F_REQUEST | (ino == 0 ? NLM_F_DUMP : 0);
    msg.req.sdiag_family = AF_UNIX;
    msg.req.udiag_states = 1u << 10; /* TCP_LISTEN */
    msg.req.udiag_ino = ino;
    msg.req.udiag_show = show;
    msg.req.udiag_cookie[0] = msg.req.udiag_cookie[1] = (uint32_t)-1; /* INET_DIAG_NOCOOKIE */
    struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
    if (sendto(nl, &msg, sizeof msg, 0, (struct sockaddr *)&kernel, sizeof kernel) != (ssize_t)sizeof msg) {
        int saved = errno;
        close(nl);
        errno = saved;
        return -1;
    }
    return nl;
}

/* The first attribute of type `type` of sock_diag's answer `h` with at least `size` bytes, or NULL. */
static const void *unix_diag_attribute(const struct nlmsghdr *h, unsigned short type, size_t size) {
    if (h->nlmsg_len < NLMSG_LENGTH(sizeof(struct unix_diag_msg))) return NULL;
    const struct unix_diag_msg *m = NLMSG_DATA(h);
    const struct rtattr *attr = (const struct rtattr *)((const char *)m + NLMSG_ALIGN(sizeof *m));
    int len = (int)(h->nlmsg_len - NLMSG_LENGTH(NLMSG_ALIGN(sizeof *m)));
    for (; RTA_OK(attr, len); attr = RTA_NEXT(attr, len)) {
        if (attr->rta_type == type && RTA_PAYLOAD(attr) >= size) return RTA_DATA(attr);
    }
    return NULL;
}

/* Unix listening sockets report their accept queue through sock_diag (UDIAG_SHOW_RQLEN):
 * rqueue is the number of connections waiting, wqueue the backlog. */
static int unix_listen_queue(int fd, int64_t *queued, int64_t *backlog) {
    struct stat st;
    if (fstat(fd, &st) != 0) return -1;
    int nl = unix_diag_request((uint32_t)st.st_ino, UDIAG_SHOW_RQLEN);
    if (nl < 0) return -1;
    int rc = -1, saved = ENOENT;  /* ENOENT: the kernel answered without the queue lengths */
    long buf[8192 / sizeof(long)];
    ssize_t n = recv(nl, buf, sizeof buf, 0);
    if (n < 0) saved = errno;
    int len = (int)n;
    for (struct nlmsghdr *h = (struct nlmsghdr *)buf; len > 0 && NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
        if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY) break;
        const struct unix_diag_rqlen *q = unix_diag_attribute(h, UNIX_DIAG_RQLEN, sizeof *q);
        if (q != NULL) {
            *queued = q->udiag_rqueue;
            *backlog = q->udiag_wqueue;
            rc = 0;
        }
        break;
    }
    close(nl);
    if (rc != 0) errno = saved;
    return rc;
}

int ms_unix_path_listened_on(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0) return errno == ENOENT ? 0 : -1;
    if (!S_ISSOCK(st.st_mode)) return 0;
    int nl = unix_diag_request(0, UDIAG_SHOW_VFS);
    if (nl < 0) return -1;
    int result = -1, saved = EPROTO, found = 0, done = 0;
    long buf[32768 / sizeof(long)];
    while (!done) {
        ssize_t n = recv(nl, buf, sizeof buf, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            saved = n < 0 ? errno : EPROTO;
            break;
        }
        int len = (int)n;
        for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
            if (h->nlmsg_type == NLMSG_DONE) {
                result = found;
                done = 1;
                break;
            }
            if (h->nlmsg_type == NLMSG_ERROR) {
                const struct nlmsgerr *e = NLMSG_DATA(h);
                saved = h->nlmsg_len >= NLMSG_LENGTH(sizeof *e) && e->error < 0 ? -e->error : EPROTO;
                done = 1;
                break;
            }
            if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY) continue;
            const struct unix_diag_vfs *v = unix_diag_attribute(h, UNIX_DIAG_VFS, sizeof *v);
            /* The kernel gives the file system's device as the kernel writes it (major << 20 | minor). */
            if (v != NULL && v->udiag_vfs_ino == (uint32_t)st.st_ino && v->udiag_vfs_dev >> 20 == major(st.st_dev) &&
                (v->udiag_vfs_dev & 0xfffff) == minor(st.st_dev)) {
                found = 1;
            }
        }
    }
    close(nl);
    if (result < 0) errno = saved;
    return result;
}

int ms_listen_queue(int fd, int64_t *queued, int64_t *backlog) {
    struct sockaddr_storage addr;
    socklen_t len = sizeof addr;
    if (getsockname(fd, (struct sockaddr *)&addr, &len) != 0) return -1;
    if (addr.ss_family == AF_UNIX) return unix_listen_queue(fd, queued, backlog);
    struct tcp_info info;
    socklen_t info_len = sizeof info;
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &info_len) != 0) return -1;
    /* For a listening TCP socket the kernel puts the accept queue in unacked, the backlog in sacked. */
    *queued = info.tcpi_unacked;
    *backlog = info.tcpi_sacked;
    return 0;
}
