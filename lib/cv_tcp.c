/*
 * cv_tcp.c - keepalives and the user timeout on a database socket. See cv_tcp.h.
 */
#define _GNU_SOURCE
#include "cv_tcp.h"

#include <dirent.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <sys/socket.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

int cv_tcp_keepalive(int fd) {
    int on = 1, idle = CV_TCP_IDLE_S, interval = CV_TCP_INTERVAL_S, count = CV_TCP_COUNT;
    unsigned int user = CV_TCP_USER_TIMEOUT_MS;

    if (setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on)) != 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle)) != 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof(interval)) != 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof(count)) != 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user, sizeof(user)) != 0)
        return -1;
    return 0;
}

/* The peer's port of a connected TCP socket fd not set yet (no user timeout: a
 * driver may have switched keepalives on with the kernel's two hours), else -1. */
static int bare_peer_port(int fd) {
    struct sockaddr_storage peer;
    socklen_t len = sizeof(peer);
    int type = 0;
    unsigned int user = 0;
    socklen_t ilen = sizeof(type);

    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &ilen) != 0 || type != SOCK_STREAM)
        return -1;
    ilen = sizeof(user);
    if (getsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user, &ilen) != 0 || user)
        return -1;
    if (getpeername(fd, (struct sockaddr *)&peer, &len) != 0)
        return -1;
    if (peer.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&peer)->sin_port);
    if (peer.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&peer)->sin6_port);
    return -1;
}

int cv_tcp_keepalive_port(int port) {
    DIR *dir = opendir("/proc/self/fd");
    struct dirent *e;
    int set = 0;

    if (!dir)
        return 0;
    while ((e = readdir(dir))) {
        char *end;
        long fd = strtol(e->d_name, &end, 10);
        if (*end || end == e->d_name || fd == dirfd(dir))
            continue;
        if (bare_peer_port((int)fd) == port && cv_tcp_keepalive((int)fd) == 0)
            set++;
    }
    closedir(dir);
    return set;
}
