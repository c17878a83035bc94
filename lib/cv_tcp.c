/*
 * cv_tcp.c - keepalives and the user timeout on a database socket. See cv_tcp.h.
 */
#define _GNU_SOURCE
#include "cv_tcp.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
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
