/* The accelerated TCP fd kind's POSIX calls: receive and send families, shutdown, names,
 * options, fcntl/ioctl and readiness, over the socket object of tcp_sock.c.  Every call pins
 * its socket for its length (byp_tsock_enter/leave: the stack lock and a reference, which a
 * close in another thread does not take away); blocking calls release the lock, keep the
 * reference and wait in byp_wait. */
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <linux/sockios.h>

#include <netinet/tcp.h>
#undef TCP_MSS   /* the socket option; lwIP's TCP_MSS is the segment size */

#include "lwip/priv/tcp_priv.h"

#include "byp_stack.h"
#include "stats.h"
#include "tcp_sock.h"

/* ---- receive ---- */

/* Copy up to the iovec's room out of the receive queue; consume unless MSG_PEEK; with
 * MSG_TRUNC count without copying (the kernel's TCP discards then: the buffer may be NULL). */
static size_t rx_copy(struct tsock *ts, const struct iovec *iov, int iovcnt, size_t skip, int flags)
{
    int peek = flags & MSG_PEEK;
    size_t done = 0;
    struct pbuf *p = ts->rx_head;
    u16_t off = ts->rx_off;
    int i = 0;
    size_t ioff = skip;
    /* find the iovec position for @skip */
    while (i < iovcnt && ioff >= iov[i].iov_len) {
        ioff -= iov[i].iov_len;
        i++;
    }
    while (p != NULL && i < iovcnt) {
        size_t n = p->len - off;
        size_t room = iov[i].iov_len - ioff;
        if (n > room)
            n = room;
        if (!(flags & MSG_TRUNC))
            memcpy((char *)iov[i].iov_base + ioff, (char *)p->payload + off, n);
        done += n;
        off = (u16_t)(off + n);
        ioff += n;
        if (ioff == iov[i].iov_len) {
            i++;
            ioff = 0;
        }
        if (off == p->len) {
            struct pbuf *next = p->next;
            if (!peek) {
                /* Out of the queue, counted, then freed: a process killed in between
                 * leaves a queue a repair can trust (repair.h). */
                ts->rx_head = next;
                if (next == NULL)
                    ts->rx_tail = NULL;
                ts->rx_bytes -= p->len - ts->rx_off;
                ts->rx_off = 0;
                p->next = NULL;
                pbuf_free(p);
            }
            p = next;
            off = 0;
        }
    }
    if (!peek) {
        ts->rx_bytes -= off - ts->rx_off;
        ts->rx_off = off;
        size_t left = done;
        while (ts->pcb != NULL && left > 0) {
            u16_t chunk = left > 0xffff ? 0xffff : (u16_t)left;
            tcp_recved(ts->pcb, chunk);
            left -= chunk;
        }
    }
    return done;
}

/* Lock held on entry and on return. */
static ssize_t recv_core(struct tsock *ts, const struct iovec *iov, int iovcnt, int flags)
{
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    size_t done = 0;
    /* A blocking call returns once it has this much (SO_RCVLOWAT, MSG_WAITALL), or at the
     * end of the stream, an error, a signal or the timeout. */
    size_t target = (flags & MSG_WAITALL) || total < (size_t)ts->rcvlowat ? total : (size_t)ts->rcvlowat;
    if (ts->state == T_LISTEN)
        return byp_tcp_fail(ENOTCONN);
    if (flags & MSG_OOB)
        return byp_tcp_fail(EINVAL);   /* lwIP keeps no urgent byte: the kernel's answer then */
    for (;;) {
        if (ts->rx_bytes > 0 && done < total) {
            done += rx_copy(ts, iov, iovcnt, done, flags);
            if ((flags & MSG_PEEK) || done >= target)
                break;
            continue;
        }
        if (total == 0)
            break;
        if (ts->err && !ts->rx_fin) {   /* after the peer's FIN, end of file first (the
                                         * kernel's SOCK_DONE); the error waits for a send */
            if (done > 0)
                break;
            return byp_tcp_fail(byp_tsock_take_err(ts));
        }
        if (ts->rx_fin || ts->shut_rd || ts->state == T_CLOSED)
            break;
        if (ts->nonblock || (flags & MSG_DONTWAIT)) {
            if (done > 0)
                break;
            return byp_tcp_fail(EAGAIN);
        }
        int r = byp_tsock_wait(byp_tsock_readable, ts, ts->rcvtimeo_ms, NULL, 0);
        if (r <= 0 && !byp_tsock_readable(ts)) {
            if (done > 0)
                break;
            return byp_tcp_fail(r == 0 ? EAGAIN : EINTR);
        }
    }
    return (ssize_t)done;
}

static ssize_t recv_call(int fd, const struct iovec *iov, int iovcnt, int flags)
{
    if (flags & MSG_ERRQUEUE) {
        /* The error queue is the kernel socket's (empty: EAGAIN), never the stream. */
        struct msghdr m = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt};
        return BYP_REAL(recvmsg)(fd, &m, flags);
    }
    struct tsock *ts = byp_tsock_enter(fd);
    if (ts == NULL)
        return -1;
    ssize_t r = recv_core(ts, iov, iovcnt, flags);
    byp_tsock_exit(ts);
    return r;
}

static ssize_t ftcp_read(int fd, void *buf, size_t n)
{
    struct iovec iov = {buf, n};
    return recv_call(fd, &iov, 1, 0);
}

static ssize_t ftcp_readv(int fd, const struct iovec *iov, int iovcnt)
{
    if (iovcnt < 0 || iovcnt > IOV_MAX)
        return byp_tcp_fail(EINVAL);
    return recv_call(fd, iov, iovcnt, 0);
}

static ssize_t ftcp_recv(int fd, void *buf, size_t n, int flags)
{
    struct iovec iov = {buf, n};
    return recv_call(fd, &iov, 1, flags);
}

static ssize_t ftcp_recvfrom(int fd, void *buf, size_t n, int flags, struct sockaddr *addr,
                            socklen_t *len)
{
    struct iovec iov = {buf, n};
    ssize_t r = recv_call(fd, &iov, 1, flags);
    if (r >= 0 && addr != NULL && len != NULL)
        *len = 0;   /* TCP reports no source address, like the kernel */
    return r;
}

static ssize_t ftcp_recvmsg(int fd, struct msghdr *msg, int flags)
{
    if (flags & MSG_ERRQUEUE)
        return BYP_REAL(recvmsg)(fd, msg, flags);
    ssize_t r = recv_call(fd, msg->msg_iov, (int)msg->msg_iovlen, flags);
    if (r >= 0) {
        msg->msg_namelen = 0;
        msg->msg_controllen = 0;
        msg->msg_flags = 0;
    }
    return r;
}

static int ftcp_recvmmsg(int fd, struct mmsghdr *vec, unsigned int vlen, int flags,
                        struct timespec *timeout)
{
    (void)timeout;
    unsigned i;
    for (i = 0; i < vlen; i++) {
        ssize_t r = ftcp_recvmsg(fd, &vec[i].msg_hdr, i == 0 ? flags : flags | MSG_DONTWAIT);
        if (r < 0)
            return i > 0 ? (int)i : -1;
        vec[i].msg_len = (unsigned)r;
        if (r == 0)
            return (int)i + 1;
    }
    return (int)i;
}


/* ---- send ---- */

/* Lock held on entry and on return.  EPIPE: the caller raises SIGPIPE. */
static ssize_t send_core(struct tsock *ts, const struct iovec *iov, int iovcnt, int flags)
{
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    size_t done = 0;
    int i = 0;
    size_t ioff = 0;
    if (ts->state == T_LISTEN || (ts->state == T_CONNECTING && (ts->nonblock || (flags & MSG_DONTWAIT))))
        return byp_tcp_fail(ts->state == T_LISTEN ? EPIPE : EAGAIN);   /* a listener: the kernel's */
    while (done < total || total == 0) {
        if (ts->err) {
            int e = byp_tsock_take_err(ts);
            return done > 0 ? (ssize_t)done : byp_tcp_fail(e);
        }
        if (ts->shut_wr || ts->pcb == NULL)
            return done > 0 ? (ssize_t)done : byp_tcp_fail(EPIPE);
        if (ts->state == T_CONNECTING) {
            int r = byp_tsock_wait(byp_tsock_connected, ts, ts->sndtimeo_ms, NULL, 0);
            if (r <= 0 && ts->state == T_CONNECTING)
                return byp_tcp_fail(r == 0 ? EAGAIN : EINTR);
            continue;
        }
        if (total == 0)
            break;
        u32_t room = byp_tcp_send_room(ts->pcb);
        if (room == 0) {
            tcp_output(ts->pcb);
            ts->sndbuf = 0;
            if (done > 0 && (ts->nonblock || (flags & MSG_DONTWAIT)))
                break;
            if (ts->nonblock || (flags & MSG_DONTWAIT))
                return byp_tcp_fail(EAGAIN);
            int r = byp_tsock_wait(byp_tsock_writable, ts, ts->sndtimeo_ms, NULL, 0);
            if (r <= 0 && !byp_tsock_writable(ts)) {
                return done > 0 ? (ssize_t)done : byp_tcp_fail(r == 0 ? EAGAIN : EINTR);
            }
            continue;
        }
        size_t n = iov[i].iov_len - ioff;
        if (n > room)
            n = room;
        if (n > 0xffff)
            n = 0xffff;
        u8_t wf = TCP_WRITE_FLAG_COPY;
        if (done + n < total || (flags & MSG_MORE))
            wf |= TCP_WRITE_FLAG_MORE;
        err_t e = tcp_write(ts->pcb, (const char *)iov[i].iov_base + ioff, (u16_t)n, wf);
        if (e == ERR_MEM) {
            /* queue full of small segments: send what is there and wait for ACKs */
            tcp_output(ts->pcb);
            ts->sndbuf = 0;
            if (ts->nonblock || (flags & MSG_DONTWAIT)) {
                if (done > 0)
                    break;
                return byp_tcp_fail(EAGAIN);
            }
            byp_tsock_wait(byp_tsock_writable, ts, ts->sndtimeo_ms, NULL, 0);
            continue;
        }
        if (e != ERR_OK)
            return done > 0 ? (ssize_t)done : byp_tcp_fail(EPIPE);
        done += n;
        ioff += n;
        if (ioff == iov[i].iov_len) {
            i++;
            ioff = 0;
            while (i < iovcnt && iov[i].iov_len == 0)
                i++;
        }
    }
    byp_stats_sock_tx(ts, done);
    if (ts->pcb != NULL) {
        /* Corked (or MSG_MORE), what is queued leaves with lwIP's next output: an ACK,
         * a timer, lwIP's poll of the connection (80 ms: the kernel's ceiling is 200 ms),
         * the uncork.  The kernel would hold a partial segment through those too. */
        if (!ts->cork && !(flags & MSG_MORE))
            tcp_output(ts->pcb);
        /* A short write leaves the socket unwritable until acknowledgements make room (the
         * kernel's SOCK_NOSPACE): the change to writable is then an edge that an
         * edge-triggered waiter (nginx) sees, even when the queue, not the bytes, was full. */
        ts->sndbuf = done < total ? 0 : tcp_sndbuf(ts->pcb);
    }
    return (ssize_t)done;
}

static ssize_t send_call(int fd, const struct iovec *iov, int iovcnt, int flags)
{
    struct tsock *ts = byp_tsock_enter(fd);
    if (ts == NULL)
        return -1;
    ssize_t r = send_core(ts, iov, iovcnt, flags);
    byp_tsock_exit(ts);
    if (r < 0 && errno == EPIPE && !(flags & MSG_NOSIGNAL))
        pthread_kill(pthread_self(), SIGPIPE);   /* errno stays EPIPE, as from the kernel */
    return r;
}

static ssize_t ftcp_write_op(int fd, const void *buf, size_t n)
{
    struct iovec iov = {(void *)buf, n};
    return send_call(fd, &iov, 1, 0);
}

static ssize_t ftcp_writev(int fd, const struct iovec *iov, int iovcnt)
{
    if (iovcnt < 0 || iovcnt > IOV_MAX)
        return byp_tcp_fail(EINVAL);
    return send_call(fd, iov, iovcnt, 0);
}

static ssize_t ftcp_send(int fd, const void *buf, size_t n, int flags)
{
    struct iovec iov = {(void *)buf, n};
    return send_call(fd, &iov, 1, flags);
}

static ssize_t ftcp_sendto(int fd, const void *buf, size_t n, int flags, const struct sockaddr *a,
                          socklen_t len)
{
    (void)a;
    (void)len;   /* ignored on a connected TCP socket, as by the kernel */
    return ftcp_send(fd, buf, n, flags);
}

static ssize_t ftcp_sendmsg(int fd, const struct msghdr *msg, int flags)
{
    return send_call(fd, msg->msg_iov, (int)msg->msg_iovlen, flags);
}

static int ftcp_sendmmsg(int fd, struct mmsghdr *vec, unsigned int vlen, int flags)
{
    unsigned i;
    for (i = 0; i < vlen; i++) {
        ssize_t r = ftcp_sendmsg(fd, &vec[i].msg_hdr, flags);
        if (r < 0)
            return i > 0 ? (int)i : -1;
        vec[i].msg_len = (unsigned)r;
    }
    return (int)i;
}

static ssize_t ftcp_sendfile(int fd, int in_fd, off_t *offset, size_t count)
{
    char buf[65536];
    size_t done = 0;
    off_t pos = offset ? *offset : 0;
    while (done < count) {
        size_t want = count - done < sizeof buf ? count - done : sizeof buf;
        ssize_t r = offset ? pread(in_fd, buf, want, pos) : BYP_REAL(read)(in_fd, buf, want);
        if (r < 0) {
            if (done > 0)
                break;
            return -1;
        }
        if (r == 0)
            break;
        ssize_t w = ftcp_send(fd, buf, (size_t)r, 0);
        if (w < 0) {
            if (!offset) {   /* what was read and not sent goes back to the file */
                int e = errno;
                lseek(in_fd, -r, SEEK_CUR);
                errno = e;
            }
            if (done > 0)
                break;
            return -1;
        }
        done += (size_t)w;
        pos += w;
        if (w < r) {
            if (!offset)
                lseek(in_fd, w - r, SEEK_CUR);
            break;
        }
    }
    if (offset)
        *offset = pos;
    return (ssize_t)done;
}

static ssize_t ftcp_sendfile64(int fd, int in_fd, off64_t *offset, size_t count)
{
    return ftcp_sendfile(fd, in_fd, (off_t *)offset, count);
}


/* ---- state, names, options ---- */

static int ftcp_bind(int fd, const struct sockaddr *addr, socklen_t len)
{
    (void)fd;
    (void)addr;
    (void)len;
    return byp_tcp_fail(EINVAL);   /* already bound */
}

static int ftcp_listen_op(int fd, int backlog)
{
    struct tsock *ts = byp_tsock_enter(fd);
    if (ts == NULL)
        return -1;
    int listening = ts->state == T_LISTEN;
    byp_tsock_exit(ts);
    if (!listening)
        return byp_tcp_fail(EINVAL);
    return BYP_REAL(listen)(fd, backlog);   /* updates the kernel side's backlog */
}

static int ftcp_connect_op(int fd, const struct sockaddr *addr, socklen_t len)
{
    (void)addr;
    (void)len;
    struct tsock *ts = byp_tsock_enter(fd);
    if (ts == NULL)
        return -1;
    int e;
    switch (ts->state) {
    case T_CONNECTING:
        e = EALREADY;
        break;
    case T_CONNECTED:
    case T_LISTEN:
        e = EISCONN;
        break;
    default:
        e = EISCONN;
        if (ts->so_error) {
            e = ts->so_error;
            ts->so_error = 0;
            ts->err = 0;
        }
    }
    byp_tsock_exit(ts);
    return byp_tcp_fail(e);
}

static int shutdown_core(struct tsock *ts, int how)
{
    if (ts->state == T_CLOSED) {
        /* The kernel's closed socket (reset, or closed in order: TIME_WAIT, the last ACK)
         * takes the flags and says ENOTCONN. */
        ts->shut_rd |= how != SHUT_WR;
        ts->shut_wr |= how != SHUT_RD;
        byp_tsock_changed(ts);
        return byp_tcp_fail(ENOTCONN);
    }
    if (ts->state != T_CONNECTED)
        return byp_tcp_fail(ENOTCONN);
    /* The kernel's SHUT_RD only marks the end: what is queued, and what still arrives,
     * stays readable (recv gives it, then 0), and a close with it unread resets. */
    if (how != SHUT_WR)
        ts->shut_rd = 1;
    if (how != SHUT_RD && !ts->shut_wr) {
        ts->shut_wr = 1;
        if (ts->pcb != NULL) {
            tcp_shutdown(ts->pcb, 0, 1);
            tcp_output(ts->pcb);
        }
    }
    byp_tsock_changed(ts);
    return 0;
}

static int ftcp_shutdown(int fd, int how)
{
    if (how != SHUT_RD && how != SHUT_WR && how != SHUT_RDWR)
        return byp_tcp_fail(EINVAL);
    struct tsock *ts = byp_tsock_enter(fd);
    if (ts == NULL)
        return -1;
    if (ts->state == T_LISTEN) {
        /* The kernel's listener ignores SHUT_WR; a shutdown for reading stops it: waiting
         * accepts fail (EINVAL), queued connections are reset, new ones refused. */
        if (how != SHUT_WR) {
            BYP_REAL(shutdown)(fd, how);
            byp_tcp_unlisten(ts);
            ts->unlistened = 1;
            byp_tsock_changed(ts);
        }
        byp_tsock_exit(ts);
        return 0;
    }
    int r = shutdown_core(ts, how);
    byp_tsock_exit(ts);
    return r;
}

static int put_name(const struct sockaddr_in *sin, int v6, struct sockaddr *addr,
                    socklen_t *len)
{
    if (addr == NULL || len == NULL)
        return byp_tcp_fail(EFAULT);
    byp_addr4_put(sin, v6, addr, len);
    return 0;
}

static int ftcp_getsockname(int fd, struct sockaddr *addr, socklen_t *len)
{
    struct tsock *ts = byp_tsock_enter(fd);
    if (ts == NULL)
        return -1;
    int kernel = ts->state == T_LISTEN || ts->reserves_port;
    struct sockaddr_in local = ts->local;
    int v6 = ts->v6;
    byp_tsock_exit(ts);
    if (kernel)
        return BYP_REAL(getsockname)(fd, addr, len);
    return put_name(&local, v6, addr, len);
}

static int ftcp_getpeername(int fd, struct sockaddr *addr, socklen_t *len)
{
    struct tsock *ts = byp_tsock_enter(fd);
    if (ts == NULL)
        return -1;
    int connected = ts->state == T_CONNECTED;   /* closed in order too: ENOTCONN, as the kernel */
    struct sockaddr_in remote = ts->remote;
    int v6 = ts->v6;
    byp_tsock_exit(ts);
    if (!connected)
        return byp_tcp_fail(ENOTCONN);
    return put_name(&remote, v6, addr, len);
}

/* The kernel call runs with the socket pinned but the lock released (a lock command may
 * block). */
static int ftcp_fcntl(int fd, int cmd, void *arg)
{
    if (cmd != F_GETFL && cmd != F_SETFL)
        return BYP_REAL(fcntl)(fd, cmd, arg);
    struct tsock *ts = byp_tsock_enter(fd);
    if (ts == NULL)
        return -1;
    /* A listener's kernel path is polled beside the stack, so never blocks; unless the
     * listener went to another process, which must see the program's O_NONBLOCK. */
    int listener = ts->state == T_LISTEN && !ts->handed;
    byp_stack_unlock();
    int r;
    if (cmd == F_GETFL) {
        r = BYP_REAL(fcntl)(fd, F_GETFL);
        byp_stack_lock();
        if (r >= 0)
            r = (r & ~O_NONBLOCK) | (ts->nonblock ? O_NONBLOCK : 0);
    } else {
        int fl = (int)(intptr_t)arg;
        r = BYP_REAL(fcntl)(fd, F_SETFL, listener ? fl | O_NONBLOCK : fl);
        byp_stack_lock();
        if (r == 0) {
            ts->nonblock = (fl & O_NONBLOCK) != 0;
            byp_engine_event();
        }
    }
    byp_tsock_exit(ts);
    return r;
}

static int ftcp_ioctl(int fd, unsigned long req, void *arg)
{
    if (req != FIONREAD && req != SIOCOUTQ && req != FIONBIO)
        return BYP_REAL(ioctl)(fd, req, arg);
    if (arg == NULL)
        return byp_tcp_fail(EFAULT);
    struct tsock *ts = byp_tsock_enter(fd);
    if (ts == NULL)
        return -1;
    int listener = ts->state == T_LISTEN;
    int handed = ts->handed;
    if (req == FIONREAD && !listener) {
        *(int *)arg = ts->rx_bytes > 0x7fffffff ? 0x7fffffff : (int)ts->rx_bytes;
        byp_tsock_exit(ts);
        return 0;
    }
    if (req == SIOCOUTQ && listener) {
        byp_tsock_exit(ts);   /* the kernel's answer; and a listen PCB has no send buffer */
        return byp_tcp_fail(EINVAL);
    }
    if (req == SIOCOUTQ) {
        *(int *)arg = ts->pcb != NULL ? (int)(TCP_SND_BUF - ts->pcb->snd_buf) : 0;   /* tcp_sndbuf() caps at 64 KiB */
        byp_tsock_exit(ts);
        return 0;
    }
    if (req == FIONBIO)
        ts->nonblock = *(int *)arg != 0;
    byp_tsock_exit(ts);
    if (req == FIONBIO && listener && !handed)
        return 0;   /* the kernel path stays non-blocking (ftcp_fcntl) */
    return BYP_REAL(ioctl)(fd, req, arg);
}

/* Readiness, its counter and the listener's kernel fd are read without the lock (hints,
 * looked at again under it by whoever acts): an fd being closed reads as nothing. */
static uint32_t ftcp_readiness(int fd)
{
    struct tsock *ts = TS(fd);
    uint32_t ev = 0;
    if (ts == NULL)
        return 0;
    switch (ts->state) {
    case T_LISTEN:
        return ts->aq_n > 0 ? POLLIN : 0;
    case T_CONNECTING:
        return 0;
    case T_CONNECTED:
        if (ts->rx_bytes >= (size_t)ts->rcvlowat || ts->rx_fin || ts->shut_rd)
            ev |= POLLIN;
        if (ts->rx_fin || ts->shut_rd)
            ev |= POLLRDHUP;
        if (ts->shut_wr || ts->sndbuf >= WRITABLE_MIN)   /* after SHUT_WR a send fails at once */
            ev |= POLLOUT;
        if (ts->shut_wr && (ts->rx_fin || ts->shut_rd))
            ev |= POLLHUP;
        if (ts->so_error)
            ev |= POLLERR;
        return ev;
    default:
        /* Closed: reset, refused, timed out, TIME_WAIT, or closed in order.  The kernel's
         * tcp_done shuts both ways then (POLLIN, POLLRDHUP); a listener's shutdown leaves
         * its socket closed with neither. */
        ev = ts->unlistened ? POLLOUT | POLLHUP : POLLIN | POLLOUT | POLLHUP | POLLRDHUP;
        if (ts->so_error)
            ev |= POLLERR;
        return ev;
    }
}

static uint64_t ftcp_event_gen(int fd)
{
    struct tsock *ts = TS(fd);
    return ts != NULL ? ts->gen : 0;
}

static void ftcp_epoll_exclusive(int fd)
{
    struct tsock *ts = byp_tsock_enter(fd);
    if (ts == NULL)
        return;
    ts->exclusive = 1;
    byp_tsock_exit(ts);
}

static int ftcp_kernel_fd(int fd)
{
    struct tsock *ts = TS(fd);
    return ts != NULL && ts->state == T_LISTEN ? fd : -1;
}

/* A poll on this fd alone: sleep on the socket's word, pinned (a close meanwhile must not
 * free the word under the sleeper). */
static int ftcp_wait_one(int fd, int (*cond)(void *), void *arg, int timeout_ms)
{
    struct tsock *ts = byp_tsock_pin(fd);
    if (ts == NULL)
        return byp_wait(cond, arg, timeout_ms, NULL, 0);   /* closed meanwhile */
    int r = byp_wait_on(cond, arg, timeout_ms, &ts->watch.sleep);
    byp_tsock_unpin(ts);
    return r;
}

const byp_fd_ops_t byp_tcp_ops = {
    .bind = ftcp_bind,
    .listen = ftcp_listen_op,
    .connect = ftcp_connect_op,
    .shutdown = ftcp_shutdown,
    .getsockname = ftcp_getsockname,
    .getpeername = ftcp_getpeername,
    .getsockopt = byp_tcp_getsockopt,
    .setsockopt = byp_tcp_setsockopt,
    .read = ftcp_read,
    .readv = ftcp_readv,
    .write = ftcp_write_op,
    .writev = ftcp_writev,
    .recv = ftcp_recv,
    .recvfrom = ftcp_recvfrom,
    .recvmsg = ftcp_recvmsg,
    .recvmmsg = ftcp_recvmmsg,
    .send = ftcp_send,
    .sendto = ftcp_sendto,
    .sendmsg = ftcp_sendmsg,
    .sendmmsg = ftcp_sendmmsg,
    .sendfile = ftcp_sendfile,
    .sendfile64 = ftcp_sendfile64,
    .accept = byp_tcp_accept,
    .accept4 = byp_tcp_accept4,
    .release = byp_tcp_release,
    .ref = byp_tcp_ref,
    .fcntl = ftcp_fcntl,
    .ioctl = ftcp_ioctl,
    .readiness = ftcp_readiness,
    .event_gen = ftcp_event_gen,
    .kernel_fd = ftcp_kernel_fd,
    .epoll_exclusive = ftcp_epoll_exclusive,
    .splice = byp_tcp_splice,
    .wait_one = ftcp_wait_one,
};

