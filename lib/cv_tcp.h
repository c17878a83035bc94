/*
 * cv_tcp.h - how long a worker's connection to a database may go unanswered
 * (cv_tcp.c). A host that vanished (its network cut, its power gone) never
 * closes its side: without these a read waits for ever and a write waits out
 * TCP's retransmissions, up to a quarter of an hour, holding the job's slot.
 *
 * Keepalives find a silent peer of an idle connection (a long statement that
 * sends nothing): a probe after CV_TCP_IDLE_S, then every CV_TCP_INTERVAL_S,
 * CV_TCP_COUNT unanswered probes ending it. CV_TCP_USER_TIMEOUT_MS ends a
 * connection whose sent data stays unacknowledged that long. A peer that is
 * there but slow (a server busy for an hour) answers both and is waited for.
 *
 * libpq takes them as conninfo parameters (cv_pg.c), psqlODBC as its own
 * options and pqopt (cv_odbc.c), libmariadb on its socket (cv_maria.c).
 * MariaDB's ODBC driver has no option for them (its client library switches
 * keepalives on with the kernel's two hours) and does not show its socket:
 * cv_odbc.c sets them on the process's sockets to the server's port right after
 * the driver connected (cv_tcp_keepalive_port()).
 */
#ifndef CV_TCP_H
#define CV_TCP_H

#define CV_TCP_IDLE_S 30
#define CV_TCP_INTERVAL_S 10
#define CV_TCP_COUNT 3
#define CV_TCP_USER_TIMEOUT_MS 30000

/* Sets the four on a connected TCP socket. Returns 0, or -1 with errno (an
 * AF_UNIX socket: EOPNOTSUPP or ENOPROTOOPT, which the caller may ignore). */
int cv_tcp_keepalive(int fd);

/* Sets them on every TCP socket of the process connected to a peer's `port`
 * (read from /proc/self/fd) that has no user timeout yet. Returns how many. */
int cv_tcp_keepalive_port(int port);

#endif
