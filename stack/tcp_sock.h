/* Accelerated TCP sockets: the socket object over lwIP's raw TCP API (tcp_sock.c: lwIP
 * callbacks, taking over a kernel socket, accept, close) and its POSIX calls (fd_tcp.c).
 * Everything here runs with the stack lock held unless a function says otherwise. */
#ifndef BYP_TCP_SOCK_H
#define BYP_TCP_SOCK_H

#include <errno.h>
#include <netinet/in.h>

#include "lwip/tcp.h"

#include "addr4.h"
#include "byp.h"
#include "engine.h"
#include "family.h"
#include "wake.h"

enum { T_LISTEN = 1, T_CONNECTING, T_CONNECTED, T_CLOSED };

struct tsock {
    struct tcp_pcb *pcb;        /* NULL once lwIP freed it, or once in TIME_WAIT */
    struct tcp_pcb *tw_pcb;     /* its connection in TIME_WAIT, while this socket is open: a
                                 * hint, for lwIP frees it silently (byp_tsock_time_wait) */
    int state;
    struct byp_refs refs;       /* fds referring to it, per process of the family */
    struct byp_watch watch;     /* the epoll sets it is in, to wake (wake.h) */
    struct tsock *all_prev, *all_next;  /* every socket an fd refers to (tcp_sock.c) */
    int nonblock;               /* the program's O_NONBLOCK */
    int exclusive;              /* a listener some epoll set holds with EPOLLEXCLUSIVE */
    int err;                    /* error for the next call (positive errno), reported once */
    int so_error;               /* for SO_ERROR */
    int rx_fin, shut_rd, shut_wr;
    int nodelay, keepalive, linger_on, linger_s;
    u32_t keep_idle_ms, keep_intvl_ms, keep_cnt;    /* TCP_KEEP*: 0 for lwIP's default */
    u32_t user_timeout_ms;      /* TCP_USER_TIMEOUT, 0 none (on_poll) */
    int ut_armed;               /* data unacknowledged, and nothing acknowledged, since */
    u32_t ut_since_ms;          /* this sys_now() */
    int cork;                   /* TCP_CORK: a send leaves its partial segment queued
                                 * (fd_tcp.c send_core) */
    int drained;                /* nothing unsent or unacknowledged (SO_LINGER waits on it) */
    int rcvtimeo_ms, sndtimeo_ms;   /* -1: none */
    int rcvlowat;               /* SO_RCVLOWAT, at least 1 */
    struct pbuf *rx_head, *rx_tail;
    u16_t rx_off;
    size_t rx_bytes;
    u32_t sndbuf;               /* room in lwIP's send buffer, for readiness without the lock */
    uint64_t gen;
    /* listener */
    struct tsock **aq;
    unsigned aq_head, aq_n, aq_cap;
    int defer_s;                /* TCP_DEFER_ACCEPT, in seconds as the kernel reads it back */
    struct tsock *deferred;     /* its connections held back until their first data */
    unsigned defer_n;           /* how many: the accept queue keeps room for them */
    /* a connection held back by its listener's TCP_DEFER_ACCEPT (defer_l: NULL once not) */
    struct tsock *defer_l, *defer_next;
    u32_t defer_until;          /* sys_now() at which it is handed out without data */
    int reuseport;              /* its kernel socket has SO_REUSEPORT */
    int handed;                 /* a listener passed to a process without the stack: its new
                                 * connections go to the kernel (tcp_handover.c) */
    int unlistened;             /* a listener shut for reading: closed, and its shutdown
                                 * undone, as the kernel's tcp_disconnect leaves it */
    struct tsock *rp_next;      /* the SO_REUSEPORT listeners sharing its lwIP listener, a
                                 * ring; NULL alone (tcp_open.c) */
    /* steering entry held: (proto, addr, port) */
    in_addr_t flow_addr;
    in_port_t flow_port;
    int has_flow;
    int reuseaddr;              /* a listener's kernel socket has SO_REUSEADDR, and so an
                                 * accepted connection (its handover keeps it) */
    int v6;                     /* a dual-stack AF_INET6 listener and its connections: the
                                 * program sees their IPv4 addresses v4-mapped */
    int reserves_port;          /* active connect: the kernel socket holds the local port */
    /* The last fd went while calls were still running on the socket: a dup of its kernel
     * socket (in process held_pid) keeps the port reserved until the deferred close. */
    int has_held, held_fd;
    pid_t held_pid;
    struct sockaddr_in local, remote;
};


/* The object an fd refers to, read without the lock: only for hints (readiness), which
 * must cope with NULL (the fd is being closed).  Calls pin their object instead. */
#define TS(fd) ((struct tsock *)__atomic_load_n(&byp_fdtab[(fd)].obj, __ATOMIC_RELAXED))
#define WRITABLE_MIN 2048

/* The accelerated TCP ops table (fd_tcp.c). */
extern const byp_fd_ops_t byp_tcp_ops;
/* splice(2) with the connection at one end and a pipe at the other (tcp_splice.c). */
ssize_t byp_tcp_splice(int fd_in, loff_t *off_in, int fd_out, loff_t *off_out, size_t len,
                       unsigned int flags);

/* The bytes lwIP's send queue of @pcb takes now: 0 once its segments are nearly all
 * used, as a queue of small segments fills before the bytes do (send and splice). */
static inline u32_t byp_tcp_send_room(const struct tcp_pcb *pcb)
{
    return tcp_sndqueuelen(pcb) >= TCP_SND_QUEUELEN - 2 ? 0 : tcp_sndbuf(pcb);
}

/* Set errno, return -1: the libc convention of the ops. */
static inline int byp_tcp_fail(int err)
{
    errno = err;
    return -1;
}

/* The pending error, reported once: taken by a call as by SO_ERROR (the kernel's sk_err is
 * one field that either clears). */
static inline int byp_tsock_take_err(struct tsock *ts)
{
    int e = ts->err;
    ts->err = 0;
    if (ts->so_error == e)
        ts->so_error = 0;
    return e;
}

/* The socket's readiness changed: bump its counter, tell the engine. */
void byp_tsock_changed(struct tsock *ts);
/* Free the receive queue. */
void byp_tsock_rx_drop(struct tsock *ts);

/* A new socket object (shared memory, timeouts unset), or NULL. */
struct tsock *byp_tsock_new(void);
/* Give lwIP's @pcb to @ts: its callbacks and the socket's options. */
void byp_tsock_attach(struct tsock *ts, struct tcp_pcb *pcb);
/* Release the steering entry and the port a socket holds. */
void byp_tsock_put_flow(struct tsock *ts);
/* An fd of this process refers to @ts now / no longer does (tcp_close.c). */
void byp_tsock_link(struct tsock *ts);
void byp_tsock_unlink(struct tsock *ts);

/* A socket's connection in TIME_WAIT (tsock.tw_pcb): whether @pcb is one, and the socket
 * letting go of its own (it closes, or a new SYN takes the four-tuple); tcp_sock.c. */
int byp_tsock_tw_held(const struct tcp_pcb *pcb);
void byp_tsock_tw_release(struct tsock *ts);

/* Whether lwIP's poll callback on @pcb has work (a send refused for want of memory left
 * the socket unwritable); timers.c. */
int byp_tsock_wants_poll(const struct tcp_pcb *pcb);
/* TCP_DEFER_ACCEPT (tcp_open.c; lock held).  end: the connection @c, held back by its
 * listener, goes to the accept queue (its first data or FIN came, or the wait is over).
 * drop: @c, held back, is gone (reset or aborted before it was accepted); it is freed.
 * wait (tcp_sock.c): the ms until @pcb's held-back connection is handed out anyway,
 * UINT32_MAX when it is not held back (timers.c). */
void byp_tcp_defer_end(struct tsock *c);
void byp_tcp_defer_drop(struct tsock *c);
uint32_t byp_tsock_defer_wait(const struct tcp_pcb *pcb, uint32_t now);

/* Whether @pcb is a closed connection lwIP finishes alone, and how many those are
 * (tcp_close.c; timers.c compares the two to know when byp_tcp_reap has work). */
int byp_tcp_is_zombie(const struct tcp_pcb *pcb);
unsigned byp_tcp_zombie_count(void);

/* Wait conditions for byp_wait (read without the lock; rechecked under it). */
int byp_tsock_readable(void *ts);
int byp_tsock_writable(void *ts);
int byp_tsock_connected(void *ts);
/* byp_wait for a socket call, lock not held: a handler with SA_RESTART resumes the wait
 * unless a timeout is set on the socket; 1 ready, 2 kernel fd ready, 0 timeout, -EINTR. */
int byp_tsock_wait_restarting(byp_wait_cond_t cond, struct tsock *ts, int timeout_ms,
                              struct pollfd *pfd, nfds_t n);
/* Release the stack lock, byp_wait, take it back: 1 ready, 0 timeout, -EINTR. */
int byp_tsock_wait(byp_wait_cond_t cond, struct tsock *ts, int timeout_ms, struct pollfd *pfd,
                   nfds_t n);

/* Abort @pcb with ECONNRESET for its socket (an RST to the peer): the repair after a dead
 * lock holder (repair.c). */
void byp_tcp_abort_untrusted(struct tcp_pcb *pcb);

/* Socket options (tcp_opts.c). */
int byp_tcp_setsockopt(int fd, int level, int opt, const void *val, socklen_t len);
int byp_tcp_getsockopt(int fd, int level, int opt, void *val, socklen_t *len);

/* The ops implemented in tcp_open.c (accepting) and tcp_close.c (closing). */
int byp_tcp_accept(int fd, struct sockaddr *addr, socklen_t *len);
int byp_tcp_accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags);
void byp_tcp_release(int fd);
/* What the program set on the kernel socket before the stack took it over (listen,
 * connect): TCP_NODELAY, TCP_CORK, keepalive and its parameters, TCP_USER_TIMEOUT,
 * SO_LINGER, the timeouts
 * (tcp_opts.c; lock not held).  A connection accepted from a listener inherits them, as
 * the kernel's does (tcp_open.c). */
void byp_tcp_opts_inherit(struct tsock *ts, int fd);
/* Apply the keepalive parameters @ts holds to its connection (lock held). */
void byp_tcp_keep_apply(struct tsock *ts);
/* A listener stops (its close, or a shutdown for reading): it leaves lwIP's listener (or
 * its SO_REUSEPORT group), the connections waiting in its queue are reset, its steering
 * entry goes; closed (lock held). */
void byp_tcp_unlisten(struct tsock *ts);

/* A call on @fd begins: take the stack lock and a reference for the call on the socket @fd
 * refers to, as the kernel's fdget does: a close of the fd in another thread meanwhile does
 * not free it (the close completes when the last call returns).  The socket with the lock
 * held, or NULL with errno EBADF when @fd no longer refers to an accelerated TCP socket
 * (closed by another thread before the call got the lock); tcp_close.c. */
struct tsock *byp_tsock_enter(int fd);
/* The call returns: drop its reference (closing and freeing the socket when it was the last)
 * and the lock.  errno is kept. */
void byp_tsock_exit(struct tsock *ts);
/* The same for a call that mostly runs without the lock: pinned, lock not held. */
struct tsock *byp_tsock_pin(int fd);
void byp_tsock_unpin(struct tsock *ts);

/* Rebuild the kernel socket under @fd as the connection @ts (TCP_REPAIR) and let lwIP
 * forget it (lock held; tcp_handover.c).  0, or -errno with the connection left as it was. */
int byp_tcp_handover(struct tsock *ts, int fd);

/* SO_REUSEPORT listeners sharing one lwIP listener (tcp_reuseport.c; lock held).  join:
 * the lwIP listener of the group @ts joins on @addr:@port, or NULL (none: it makes its own).
 * pick: the member that gets the connection @pcb.  leave: 1 when @ts left a group whose
 * listener stays with the others (not to be closed), 0 when it was alone. */
struct tcp_pcb *byp_reuseport_join(struct tsock *ts, in_addr_t addr, in_port_t port);
struct tsock *byp_reuseport_pick(struct tsock *owner, const struct tcp_pcb *pcb);
int byp_reuseport_leave(struct tsock *ts);
void *byp_tcp_ref(int fd);

#endif
