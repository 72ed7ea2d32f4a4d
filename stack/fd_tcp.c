/* The accelerated TCP fd kind: POSIX socket semantics over lwIP's raw TCP API.
 *
 * Every accelerated socket is still a kernel socket under the same fd number:
 *  - a listener's kernel socket listens too (the second path: connections arriving through
 *    loopback or another interface), and accept() returns either kind;
 *  - an actively connected socket's kernel socket is bound to the same local port (the
 *    port reservation) and kept, duplicated, until lwIP has finished with the connection;
 *  - an accepted connection's fd is a fresh unconnected kernel socket holding the number.
 * All calls take the stack lock; blocking calls release it and wait in byp_wait. */
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <linux/sockios.h>

#include <netinet/tcp.h>
#undef TCP_MSS   /* the socket option; lwIP's TCP_MSS is the segment size */

#include "lwip/priv/tcp_priv.h"
#include "lwip/sys.h"
#include "lwip/tcp.h"

#include "byp.h"
#include "engine.h"
#include "byp_stack.h"
#include "fd_tcp.h"

enum { T_LISTEN = 1, T_CONNECTING, T_CONNECTED, T_CLOSED };

struct tsock {
    struct tcp_pcb *pcb;        /* NULL once lwIP freed it */
    int state;
    int refs;                   /* fds referring to it */
    int nonblock;               /* the program's O_NONBLOCK */
    int err;                    /* error for the next call (positive errno), reported once */
    int so_error;               /* for SO_ERROR */
    int rx_fin, shut_rd, shut_wr;
    int nodelay, keepalive, linger_on, linger_s;
    int rcvtimeo_ms, sndtimeo_ms;   /* -1: none */
    struct pbuf *rx_head, *rx_tail;
    u16_t rx_off;
    size_t rx_bytes;
    u32_t sndbuf;               /* room in lwIP's send buffer, for readiness without the lock */
    uint64_t gen;
    /* listener */
    struct tsock **aq;
    unsigned aq_head, aq_n, aq_cap;
    /* steering entry held: (proto, addr, port) */
    in_addr_t flow_addr;
    in_port_t flow_port;
    int has_flow;
    int reserves_port;          /* active connect: the kernel socket holds the local port */
    struct sockaddr_in local, remote;
};

/* A connection the program closed that lwIP still finishes (FIN handshake). */
struct zombie {
    struct tcp_pcb *pcb;
    in_addr_t flow_addr;
    in_port_t flow_port;
    int reserve_fd;
    struct zombie *next;
};
static struct zombie *zombies;

static const byp_fd_ops_t tcp_ops;

#define TS(fd) ((struct tsock *)byp_fdtab[(fd)].obj)
#define WRITABLE_MIN 2048

static int fail(int err)
{
    errno = err;
    return -1;
}

static void changed(struct tsock *ts)
{
    ts->gen++;
    byp_engine_event();
}

static struct tsock *tsock_new(void)
{
    struct tsock *ts = calloc(1, sizeof *ts);
    if (ts != NULL) {
        ts->refs = 1;
        ts->rcvtimeo_ms = ts->sndtimeo_ms = -1;
    }
    return ts;
}

static void rx_drop(struct tsock *ts)
{
    struct pbuf *p = ts->rx_head;
    while (p != NULL) {
        struct pbuf *n = p->next;
        p->next = NULL;
        pbuf_free(p);
        p = n;
    }
    ts->rx_head = ts->rx_tail = NULL;
    ts->rx_off = 0;
    ts->rx_bytes = 0;
}

/* ---- lwIP callbacks (lock held) ---- */

static err_t on_recv(void *arg, struct tcp_pcb *pcb, struct pbuf *p, err_t err)
{
    struct tsock *ts = arg;
    (void)pcb;
    (void)err;
    if (p == NULL) {
        ts->rx_fin = 1;
    } else if (ts->shut_rd) {
        tcp_recved(pcb, p->tot_len);
        pbuf_free(p);
        return ERR_OK;
    } else {
        /* Queue pbuf by pbuf: each is freed on its own once read. */
        ts->rx_bytes += p->tot_len;
        if (ts->rx_tail != NULL)
            ts->rx_tail->next = p;
        else
            ts->rx_head = p;
        struct pbuf *q = p;
        while (q->next != NULL)
            q = q->next;
        ts->rx_tail = q;
    }
    changed(ts);
    return ERR_OK;
}

static err_t on_sent(void *arg, struct tcp_pcb *pcb, u16_t len)
{
    struct tsock *ts = arg;
    (void)len;
    u32_t before = ts->sndbuf;
    ts->sndbuf = tcp_sndbuf(pcb);
    if (before < WRITABLE_MIN && ts->sndbuf >= WRITABLE_MIN)
        changed(ts);
    return ERR_OK;
}

static void on_err(void *arg, err_t err)
{
    struct tsock *ts = arg;
    int e;
    if (ts->state == T_CONNECTING)
        e = err == ERR_RST ? ECONNREFUSED : ETIMEDOUT;
    else
        e = err == ERR_RST ? ECONNRESET : err == ERR_ABRT ? ETIMEDOUT : ECONNABORTED;
    ts->pcb = NULL;
    ts->state = T_CLOSED;
    ts->err = ts->so_error = e;
    ts->sndbuf = 0;
    changed(ts);
}

static err_t on_connected(void *arg, struct tcp_pcb *pcb, err_t err)
{
    struct tsock *ts = arg;
    (void)err;
    ts->state = T_CONNECTED;
    ts->sndbuf = tcp_sndbuf(pcb);
    changed(ts);
    return ERR_OK;
}

static void zombie_err(void *arg, err_t err)
{
    (void)err;
    ((struct zombie *)arg)->pcb = NULL;
}

static void attach(struct tsock *ts, struct tcp_pcb *pcb)
{
    ts->pcb = pcb;
    tcp_arg(pcb, ts);
    tcp_recv(pcb, on_recv);
    tcp_sent(pcb, on_sent);
    tcp_err(pcb, on_err);
    if (ts->nodelay)
        tcp_nagle_disable(pcb);
    if (ts->keepalive)
        ip_set_option(pcb, SOF_KEEPALIVE);
}

static err_t on_accept(void *arg, struct tcp_pcb *pcb, err_t err)
{
    struct tsock *l = arg;
    if (err != ERR_OK || pcb == NULL || l->state != T_LISTEN)
        return ERR_VAL;
    if (l->aq_n == l->aq_cap) {
        unsigned cap = l->aq_cap ? l->aq_cap * 2 : 64;
        struct tsock **q = cap <= 65536 ? malloc(cap * sizeof *q) : NULL;
        if (q == NULL)
            return ERR_MEM;   /* lwIP resets the connection */
        for (unsigned i = 0; i < l->aq_n; i++)
            q[i] = l->aq[(l->aq_head + i) % l->aq_cap];
        free(l->aq);
        l->aq = q;
        l->aq_head = 0;
        l->aq_cap = cap;
    }
    struct tsock *c = tsock_new();
    if (c == NULL)
        return ERR_MEM;
    c->state = T_CONNECTED;
    c->nodelay = l->nodelay;       /* options are inherited from the listener */
    c->keepalive = l->keepalive;
    attach(c, pcb);
    c->sndbuf = tcp_sndbuf(pcb);
    c->flow_addr = l->flow_addr;
    c->flow_port = l->flow_port;
    c->has_flow = byp_flow_ref(IPPROTO_TCP, l->flow_addr, l->flow_port) == 0;
    c->local = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons(pcb->local_port),
                                    .sin_addr.s_addr = ip4_addr_get_u32(&pcb->local_ip)};
    c->remote = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons(pcb->remote_port),
                                     .sin_addr.s_addr = ip4_addr_get_u32(&pcb->remote_ip)};
    l->aq[(l->aq_head + l->aq_n++) % l->aq_cap] = c;
    changed(l);
    return ERR_OK;
}

/* ---- waiting ---- */

static int cond_readable(void *arg)
{
    struct tsock *ts = arg;
    return ts->rx_bytes > 0 || ts->rx_fin || ts->err || ts->state == T_CLOSED || ts->shut_rd;
}

static int cond_writable(void *arg)
{
    struct tsock *ts = arg;
    return ts->sndbuf >= WRITABLE_MIN || ts->err || ts->pcb == NULL || ts->state != T_CONNECTED;
}

static int cond_connected(void *arg)
{
    return ((struct tsock *)arg)->state != T_CONNECTING;
}

static int cond_acceptable(void *arg)
{
    struct tsock *ts = arg;
    return ts->aq_n > 0 || ts->state != T_LISTEN;
}

/* Drop the lock and wait; 1 ready, 0 timeout, -EINTR. */
static int wait_unlocked(byp_wait_cond_t cond, struct tsock *ts, int timeout_ms, struct pollfd *pfd,
                         nfds_t n)
{
    byp_stack_unlock();
    int r = byp_wait(cond, ts, timeout_ms, pfd, n);
    byp_stack_lock();
    return r;
}

/* ---- receive ---- */

/* Copy up to the iovec's room out of the receive queue; consume unless @peek. */
static size_t rx_copy(struct tsock *ts, const struct iovec *iov, int iovcnt, size_t skip, int peek)
{
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
                p->next = NULL;
                pbuf_free(p);
                ts->rx_head = next;
                if (next == NULL)
                    ts->rx_tail = NULL;
            }
            p = next;
            off = 0;
        }
    }
    if (!peek) {
        ts->rx_off = off;
        ts->rx_bytes -= done;
        size_t left = done;
        while (ts->pcb != NULL && left > 0) {
            u16_t chunk = left > 0xffff ? 0xffff : (u16_t)left;
            tcp_recved(ts->pcb, chunk);
            left -= chunk;
        }
    }
    return done;
}

static ssize_t recv_core(int fd, const struct iovec *iov, int iovcnt, int flags)
{
    struct tsock *ts = TS(fd);
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    size_t done = 0;
    byp_stack_lock();
    if (ts->state == T_LISTEN) {
        byp_stack_unlock();
        return fail(ENOTCONN);
    }
    for (;;) {
        if (ts->rx_bytes > 0 && done < total) {
            done += rx_copy(ts, iov, iovcnt, done, flags & MSG_PEEK);
            if ((flags & MSG_PEEK) || !(flags & MSG_WAITALL) || done == total)
                break;
            continue;
        }
        if (total == 0)
            break;
        if (ts->err) {
            if (done > 0)
                break;
            int e = ts->err;
            ts->err = 0;
            byp_stack_unlock();
            return fail(e);
        }
        if (ts->rx_fin || ts->shut_rd || ts->state == T_CLOSED)
            break;
        if (ts->nonblock || (flags & MSG_DONTWAIT)) {
            if (done > 0)
                break;
            byp_stack_unlock();
            return fail(EAGAIN);
        }
        int r = wait_unlocked(cond_readable, ts, ts->rcvtimeo_ms, NULL, 0);
        if (r <= 0 && !cond_readable(ts)) {
            if (done > 0)
                break;
            byp_stack_unlock();
            return fail(r == 0 ? EAGAIN : EINTR);
        }
    }
    byp_stack_unlock();
    return (ssize_t)done;
}

static ssize_t ftcp_read(int fd, void *buf, size_t n)
{
    struct iovec iov = {buf, n};
    return recv_core(fd, &iov, 1, 0);
}

static ssize_t ftcp_readv(int fd, const struct iovec *iov, int iovcnt)
{
    if (iovcnt < 0 || iovcnt > IOV_MAX)
        return fail(EINVAL);
    return recv_core(fd, iov, iovcnt, 0);
}

static ssize_t ftcp_recv(int fd, void *buf, size_t n, int flags)
{
    struct iovec iov = {buf, n};
    return recv_core(fd, &iov, 1, flags);
}

static ssize_t ftcp_recvfrom(int fd, void *buf, size_t n, int flags, struct sockaddr *addr,
                            socklen_t *len)
{
    struct iovec iov = {buf, n};
    ssize_t r = recv_core(fd, &iov, 1, flags);
    if (r >= 0 && addr != NULL && len != NULL)
        *len = 0;   /* TCP reports no source address, like the kernel */
    return r;
}

static ssize_t ftcp_recvmsg(int fd, struct msghdr *msg, int flags)
{
    ssize_t r = recv_core(fd, msg->msg_iov, (int)msg->msg_iovlen, flags);
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

static ssize_t send_error(int e, int flags)
{
    if (e == EPIPE && !(flags & MSG_NOSIGNAL))
        pthread_kill(pthread_self(), SIGPIPE);
    return fail(e);
}

static ssize_t send_core(int fd, const struct iovec *iov, int iovcnt, int flags)
{
    struct tsock *ts = TS(fd);
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    size_t done = 0;
    int i = 0;
    size_t ioff = 0;
    byp_stack_lock();
    if (ts->state == T_LISTEN || (ts->state == T_CONNECTING && (ts->nonblock || (flags & MSG_DONTWAIT)))) {
        int e = ts->state == T_LISTEN ? ENOTCONN : EAGAIN;
        byp_stack_unlock();
        return fail(e);
    }
    while (done < total || total == 0) {
        if (ts->err) {
            int e = ts->err;
            ts->err = 0;
            byp_stack_unlock();
            return done > 0 ? (ssize_t)done : fail(e);
        }
        if (ts->shut_wr || ts->pcb == NULL) {
            byp_stack_unlock();
            return done > 0 ? (ssize_t)done : send_error(EPIPE, flags);
        }
        if (ts->state == T_CONNECTING) {
            int r = wait_unlocked(cond_connected, ts, ts->sndtimeo_ms, NULL, 0);
            if (r <= 0 && ts->state == T_CONNECTING) {
                byp_stack_unlock();
                return fail(r == 0 ? EAGAIN : EINTR);
            }
            continue;
        }
        if (total == 0)
            break;
        u32_t room = tcp_sndbuf(ts->pcb);
        if (tcp_sndqueuelen(ts->pcb) >= TCP_SND_QUEUELEN - 2)
            room = 0;
        if (room == 0) {
            tcp_output(ts->pcb);
            ts->sndbuf = 0;
            if (done > 0 && (ts->nonblock || (flags & MSG_DONTWAIT)))
                break;
            if (ts->nonblock || (flags & MSG_DONTWAIT)) {
                byp_stack_unlock();
                return fail(EAGAIN);
            }
            int r = wait_unlocked(cond_writable, ts, ts->sndtimeo_ms, NULL, 0);
            if (r <= 0 && !cond_writable(ts)) {
                byp_stack_unlock();
                return done > 0 ? (ssize_t)done : fail(r == 0 ? EAGAIN : EINTR);
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
                byp_stack_unlock();
                return fail(EAGAIN);
            }
            wait_unlocked(cond_writable, ts, ts->sndtimeo_ms, NULL, 0);
            continue;
        }
        if (e != ERR_OK) {
            byp_stack_unlock();
            return done > 0 ? (ssize_t)done : send_error(EPIPE, flags);
        }
        done += n;
        ioff += n;
        if (ioff == iov[i].iov_len) {
            i++;
            ioff = 0;
            while (i < iovcnt && iov[i].iov_len == 0)
                i++;
        }
    }
    if (ts->pcb != NULL) {
        tcp_output(ts->pcb);
        ts->sndbuf = tcp_sndbuf(ts->pcb);
    }
    byp_stack_unlock();
    return (ssize_t)done;
}

static ssize_t ftcp_write_op(int fd, const void *buf, size_t n)
{
    struct iovec iov = {(void *)buf, n};
    return send_core(fd, &iov, 1, 0);
}

static ssize_t ftcp_writev(int fd, const struct iovec *iov, int iovcnt)
{
    if (iovcnt < 0 || iovcnt > IOV_MAX)
        return fail(EINVAL);
    return send_core(fd, iov, iovcnt, 0);
}

static ssize_t ftcp_send(int fd, const void *buf, size_t n, int flags)
{
    struct iovec iov = {(void *)buf, n};
    return send_core(fd, &iov, 1, flags);
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
    return send_core(fd, msg->msg_iov, (int)msg->msg_iovlen, flags);
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

/* ---- accept ---- */

static int ftcp_accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
    struct tsock *l = TS(fd);
    if (flags & ~(SOCK_NONBLOCK | SOCK_CLOEXEC))
        return fail(EINVAL);
    byp_stack_lock();
    if (l->state != T_LISTEN) {
        byp_stack_unlock();
        return fail(EINVAL);
    }
    for (;;) {
        if (l->aq_n > 0) {
            struct tsock *c = l->aq[l->aq_head];
            l->aq_head = (l->aq_head + 1) % l->aq_cap;
            l->aq_n--;
            byp_stack_unlock();
            int nfd = BYP_REAL(socket)(AF_INET, SOCK_STREAM | flags, 0);
            if (nfd < 0) {
                int e = errno;
                byp_stack_lock();   /* put it back, at the head */
                l->aq_head = (l->aq_head + l->aq_cap - 1) % l->aq_cap;
                l->aq[l->aq_head] = c;
                l->aq_n++;
                byp_stack_unlock();
                return fail(e);
            }
            c->nonblock = (flags & SOCK_NONBLOCK) != 0;
            byp_fd_t *e = byp_fd_get(nfd);
            if (e != NULL) {
                e->obj = c;
                e->kind = BYP_FD_TCP;
                __atomic_store_n(&e->ops, &tcp_ops, __ATOMIC_RELEASE);
                if ((unsigned)nfd >= byp_fdtab_hwm)
                    byp_fdtab_hwm = (unsigned)nfd + 1;
            }
            if (addr != NULL && len != NULL) {
                socklen_t n = *len < sizeof c->remote ? *len : sizeof c->remote;
                memcpy(addr, &c->remote, n);
                *len = sizeof c->remote;
            }
            return nfd;
        }
        /* The kernel path: its listening socket is non-blocking under us. */
        byp_stack_unlock();
        int kfd = BYP_REAL(accept4)(fd, addr, len, flags);
        if (kfd >= 0) {
            byp_fd_set_kernel(kfd, BYP_FD_KTCP);
            return kfd;
        }
        if (errno != EAGAIN)
            return -1;
        if (l->nonblock)
            return fail(EAGAIN);
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int r = byp_wait(cond_acceptable, l, l->rcvtimeo_ms, &p, 1);
        if (r == 0)
            return fail(EAGAIN);
        if (r < 0)
            return fail(EINTR);
        byp_stack_lock();
        if (l->state != T_LISTEN) {
            byp_stack_unlock();
            return fail(EINVAL);
        }
    }
}

static int ftcp_accept(int fd, struct sockaddr *addr, socklen_t *len)
{
    return ftcp_accept4(fd, addr, len, 0);
}

/* ---- close ---- */

/* Release the steering entry and the port a socket holds. */
static void put_flow(struct tsock *ts)
{
    if (ts->has_flow) {
        byp_flow_unref(IPPROTO_TCP, ts->flow_addr, ts->flow_port);
        ts->has_flow = 0;
    }
}

static void ftcp_release(int fd)
{
    struct tsock *ts = TS(fd);
    byp_stack_lock();
    if (--ts->refs > 0) {
        byp_stack_unlock();
        return;
    }
    if (ts->state == T_LISTEN) {
        ts->state = T_CLOSED;
        if (ts->pcb != NULL)
            tcp_close(ts->pcb);
        ts->pcb = NULL;
        for (unsigned i = 0; i < ts->aq_n; i++) {
            struct tsock *c = ts->aq[(ts->aq_head + i) % ts->aq_cap];
            if (c->pcb != NULL) {
                tcp_arg(c->pcb, NULL);
                tcp_err(c->pcb, NULL);
                tcp_abort(c->pcb);
            }
            rx_drop(c);
            put_flow(c);
            free(c);
        }
        free(ts->aq);
        put_flow(ts);
    } else if (ts->pcb != NULL) {
        struct tcp_pcb *pcb = ts->pcb;
        tcp_recv(pcb, NULL);
        tcp_sent(pcb, NULL);
        if (ts->rx_bytes > 0 || (ts->linger_on && ts->linger_s == 0)) {
            /* Unread data (or SO_LINGER 0): reset, as the kernel does. */
            tcp_arg(pcb, NULL);
            tcp_err(pcb, NULL);
            tcp_abort(pcb);
            put_flow(ts);
        } else {
            struct zombie *z = calloc(1, sizeof *z);
            if (z == NULL || tcp_close(pcb) != ERR_OK) {
                tcp_arg(pcb, NULL);
                tcp_err(pcb, NULL);
                tcp_abort(pcb);
                put_flow(ts);
                free(z);
            } else {
                z->pcb = pcb;
                tcp_arg(pcb, z);
                tcp_err(pcb, zombie_err);
                z->flow_addr = ts->flow_addr;
                z->flow_port = ts->flow_port;
                z->reserve_fd = -1;
                if (ts->has_flow) {
                    ts->has_flow = 0;   /* the zombie holds it now */
                    if (ts->reserves_port)
                        z->reserve_fd = BYP_REAL(fcntl)(fd, F_DUPFD_CLOEXEC, 0);
                    z->next = zombies;
                    zombies = z;
                } else {
                    free(z);
                }
            }
        }
    } else {
        put_flow(ts);
    }
    rx_drop(ts);
    byp_stack_unlock();
    free(ts);
}

static int cmp_ptr(const void *a, const void *b)
{
    uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
    return x < y ? -1 : x > y;
}

void byp_tcp_reap(void)
{
    static uint32_t last;
    if (zombies == NULL || sys_now() - last < 50)
        return;
    last = sys_now();
    size_t n = 0, cap = 256;
    uintptr_t *act = malloc(cap * sizeof *act);
    if (act == NULL)
        return;
    for (struct tcp_pcb *p = tcp_active_pcbs; p != NULL; p = p->next) {
        if (n == cap) {
            uintptr_t *a = realloc(act, 2 * cap * sizeof *act);
            if (a == NULL)
                break;
            act = a;
            cap *= 2;
        }
        act[n++] = (uintptr_t)p;
    }
    qsort(act, n, sizeof *act, cmp_ptr);
    for (struct zombie **zp = &zombies; *zp != NULL;) {
        struct zombie *z = *zp;
        uintptr_t key = (uintptr_t)z->pcb;
        if (z->pcb != NULL && bsearch(&key, act, n, sizeof *act, cmp_ptr) != NULL) {
            zp = &z->next;
            continue;
        }
        if (z->pcb != NULL) {     /* in TIME_WAIT now: lwIP owns it alone */
            tcp_arg(z->pcb, NULL);
            tcp_err(z->pcb, NULL);
        }
        byp_flow_unref(IPPROTO_TCP, z->flow_addr, z->flow_port);
        if (z->reserve_fd >= 0)
            BYP_REAL(close)(z->reserve_fd);
        *zp = z->next;
        free(z);
    }
    free(act);
}

static void ftcp_ref(void *obj)
{
    byp_stack_lock();
    ((struct tsock *)obj)->refs++;
    byp_stack_unlock();
}

/* ---- state, names, options ---- */

static int ftcp_bind(int fd, const struct sockaddr *addr, socklen_t len)
{
    (void)fd;
    (void)addr;
    (void)len;
    return fail(EINVAL);   /* already bound */
}

static int ftcp_listen_op(int fd, int backlog)
{
    struct tsock *ts = TS(fd);
    if (ts->state != T_LISTEN)
        return fail(EINVAL);
    return BYP_REAL(listen)(fd, backlog);   /* updates the kernel side's backlog */
}

static int ftcp_connect_op(int fd, const struct sockaddr *addr, socklen_t len)
{
    struct tsock *ts = TS(fd);
    (void)addr;
    (void)len;
    switch (ts->state) {
    case T_CONNECTING:
        return fail(EALREADY);
    case T_CONNECTED:
        return fail(EISCONN);
    case T_LISTEN:
        return fail(EISCONN);
    default:
        if (ts->so_error) {
            int e = ts->so_error;
            ts->so_error = 0;
            ts->err = 0;
            return fail(e);
        }
        return fail(EISCONN);
    }
}

static int ftcp_shutdown(int fd, int how)
{
    struct tsock *ts = TS(fd);
    if (how != SHUT_RD && how != SHUT_WR && how != SHUT_RDWR)
        return fail(EINVAL);
    byp_stack_lock();
    if (ts->state != T_CONNECTED && !(ts->state == T_CLOSED && ts->rx_fin)) {
        byp_stack_unlock();
        return fail(ENOTCONN);
    }
    if (how != SHUT_WR) {
        ts->shut_rd = 1;
        size_t unread = ts->rx_bytes;
        rx_drop(ts);
        while (ts->pcb != NULL && unread > 0) {
            u16_t c = unread > 0xffff ? 0xffff : (u16_t)unread;
            tcp_recved(ts->pcb, c);
            unread -= c;
        }
    }
    if (how != SHUT_RD && !ts->shut_wr) {
        ts->shut_wr = 1;
        if (ts->pcb != NULL) {
            tcp_shutdown(ts->pcb, 0, 1);
            tcp_output(ts->pcb);
        }
    }
    changed(ts);
    byp_stack_unlock();
    return 0;
}

static int put_name(const struct sockaddr_in *sin, struct sockaddr *addr, socklen_t *len)
{
    if (addr == NULL || len == NULL)
        return fail(EFAULT);
    socklen_t n = *len < sizeof *sin ? *len : sizeof *sin;
    memcpy(addr, sin, n);
    *len = sizeof *sin;
    return 0;
}

static int ftcp_getsockname(int fd, struct sockaddr *addr, socklen_t *len)
{
    struct tsock *ts = TS(fd);
    if (ts->state == T_LISTEN || ts->reserves_port)
        return BYP_REAL(getsockname)(fd, addr, len);
    return put_name(&ts->local, addr, len);
}

static int ftcp_getpeername(int fd, struct sockaddr *addr, socklen_t *len)
{
    struct tsock *ts = TS(fd);
    if (ts->state != T_CONNECTED && !(ts->state == T_CLOSED && ts->rx_fin))
        return fail(ENOTCONN);
    return put_name(&ts->remote, addr, len);
}

static int get_int(const void *val, socklen_t len, int *out)
{
    if (val == NULL || len < (socklen_t)sizeof(int))
        return fail(EINVAL);
    memcpy(out, val, sizeof(int));
    return 0;
}

static int timeo_ms(const void *val, socklen_t len, int *out)
{
    struct timeval tv;
    if (val == NULL || len < (socklen_t)sizeof tv)
        return fail(EINVAL);
    memcpy(&tv, val, sizeof tv);
    if (tv.tv_usec < 0 || tv.tv_usec >= 1000000)
        return fail(EDOM);
    long long ms = (long long)tv.tv_sec * 1000 + (tv.tv_usec + 999) / 1000;
    *out = ms == 0 ? -1 : ms > 0x7fffffff ? 0x7fffffff : (int)ms;
    return 0;
}

static int ftcp_setsockopt(int fd, int level, int opt, const void *val, socklen_t len)
{
    struct tsock *ts = TS(fd);
    int v = 0;
    if (level == IPPROTO_TCP) {
        switch (opt) {
        case TCP_NODELAY:
            if (get_int(val, len, &v) < 0)
                return -1;
            byp_stack_lock();
            ts->nodelay = v != 0;
            if (ts->pcb != NULL) {
                if (v)
                    tcp_nagle_disable(ts->pcb);
                else
                    tcp_nagle_enable(ts->pcb);
            }
            byp_stack_unlock();
            break;
        case TCP_KEEPIDLE:
        case TCP_KEEPINTVL:
        case TCP_KEEPCNT:
            if (get_int(val, len, &v) < 0)
                return -1;
            if (v < 1)
                return fail(EINVAL);
            byp_stack_lock();
            if (ts->pcb != NULL) {
                if (opt == TCP_KEEPIDLE)
                    ts->pcb->keep_idle = (u32_t)v * 1000;
                else if (opt == TCP_KEEPINTVL)
                    ts->pcb->keep_intvl = (u32_t)v * 1000;
                else
                    ts->pcb->keep_cnt = (u32_t)v;
            }
            byp_stack_unlock();
            break;
        default:
            return fail(ENOPROTOOPT);   /* the stack cannot honour it: say so */
        }
        return BYP_REAL(setsockopt)(fd, level, opt, val, len) < 0 ? 0 : 0;
    }
    if (level == SOL_SOCKET) {
        switch (opt) {
        case SO_KEEPALIVE:
            if (get_int(val, len, &v) < 0)
                return -1;
            byp_stack_lock();
            ts->keepalive = v != 0;
            if (ts->pcb != NULL) {
                if (v)
                    ip_set_option(ts->pcb, SOF_KEEPALIVE);
                else
                    ip_reset_option(ts->pcb, SOF_KEEPALIVE);
            }
            byp_stack_unlock();
            break;
        case SO_RCVTIMEO:
            if (timeo_ms(val, len, &ts->rcvtimeo_ms) < 0)
                return -1;
            break;
        case SO_SNDTIMEO:
            if (timeo_ms(val, len, &ts->sndtimeo_ms) < 0)
                return -1;
            break;
        case SO_LINGER: {
            struct linger lg;
            if (val == NULL || len < (socklen_t)sizeof lg)
                return fail(EINVAL);
            memcpy(&lg, val, sizeof lg);
            ts->linger_on = lg.l_onoff != 0;
            ts->linger_s = lg.l_linger;
            break;
        }
        default:
            break;   /* SO_REUSEADDR, SO_RCVBUF, ...: the kernel socket keeps them */
        }
    }
    /* Mirror onto the kernel socket: it answers getsockopt for what the stack doesn't
     * track, and a listener's kernel path honours it. */
    return BYP_REAL(setsockopt)(fd, level, opt, val, len);
}

static int ftcp_getsockopt(int fd, int level, int opt, void *val, socklen_t *len)
{
    struct tsock *ts = TS(fd);
    int v;
    if (level == SOL_SOCKET && opt == SO_ERROR) {
        byp_stack_lock();
        v = ts->so_error;
        ts->so_error = 0;
        if (ts->err == v)
            ts->err = 0;
        byp_stack_unlock();
    } else if (level == SOL_SOCKET && opt == SO_ACCEPTCONN) {
        v = ts->state == T_LISTEN;
    } else if (level == SOL_SOCKET && opt == SO_KEEPALIVE) {
        v = ts->keepalive;
    } else if (level == IPPROTO_TCP && opt == TCP_NODELAY) {
        v = ts->nodelay;
    } else if (level == IPPROTO_TCP && (opt == TCP_KEEPIDLE || opt == TCP_KEEPINTVL || opt == TCP_KEEPCNT || opt == TCP_MAXSEG)) {
        return BYP_REAL(getsockopt)(fd, level, opt, val, len);
    } else if (level == IPPROTO_TCP) {
        return fail(ENOPROTOOPT);
    } else {
        return BYP_REAL(getsockopt)(fd, level, opt, val, len);
    }
    if (val == NULL || len == NULL)
        return fail(EFAULT);
    socklen_t n = *len < (socklen_t)sizeof v ? *len : (socklen_t)sizeof v;
    memcpy(val, &v, n);
    *len = n;
    return 0;
}

static int ftcp_fcntl(int fd, int cmd, void *arg)
{
    struct tsock *ts = TS(fd);
    if (cmd == F_GETFL) {
        int r = BYP_REAL(fcntl)(fd, F_GETFL);
        if (r < 0)
            return r;
        return (r & ~O_NONBLOCK) | (ts->nonblock ? O_NONBLOCK : 0);
    }
    if (cmd == F_SETFL) {
        int fl = (int)(intptr_t)arg;
        int r = BYP_REAL(fcntl)(fd, F_SETFL, ts->state == T_LISTEN ? fl | O_NONBLOCK : fl);
        if (r == 0) {
            ts->nonblock = (fl & O_NONBLOCK) != 0;
            byp_engine_event();
        }
        return r;
    }
    return BYP_REAL(fcntl)(fd, cmd, arg);
}

static int ftcp_ioctl(int fd, unsigned long req, void *arg)
{
    struct tsock *ts = TS(fd);
    if (req == FIONREAD && ts->state != T_LISTEN) {
        if (arg == NULL)
            return fail(EFAULT);
        *(int *)arg = ts->rx_bytes > 0x7fffffff ? 0x7fffffff : (int)ts->rx_bytes;
        return 0;
    }
    if (req == SIOCOUTQ) {
        if (arg == NULL)
            return fail(EFAULT);
        byp_stack_lock();
        *(int *)arg = ts->pcb != NULL ? (int)(TCP_SND_BUF - tcp_sndbuf(ts->pcb)) : 0;
        byp_stack_unlock();
        return 0;
    }
    if (req == FIONBIO) {
        if (arg == NULL)
            return fail(EFAULT);
        ts->nonblock = *(int *)arg != 0;
        if (ts->state == T_LISTEN)
            return 0;
    }
    return BYP_REAL(ioctl)(fd, req, arg);
}

static uint32_t ftcp_readiness(int fd)
{
    struct tsock *ts = TS(fd);
    uint32_t ev = 0;
    switch (ts->state) {
    case T_LISTEN:
        return ts->aq_n > 0 ? POLLIN : 0;
    case T_CONNECTING:
        return 0;
    case T_CONNECTED:
        if (ts->rx_bytes > 0 || ts->rx_fin || ts->shut_rd)
            ev |= POLLIN;
        if (ts->rx_fin)
            ev |= POLLRDHUP;
        if (!ts->shut_wr && ts->sndbuf >= WRITABLE_MIN)
            ev |= POLLOUT;
        if (ts->shut_wr && (ts->rx_fin || ts->shut_rd))
            ev |= POLLHUP;
        if (ts->so_error)
            ev |= POLLERR;
        return ev;
    default:
        ev = POLLIN | POLLOUT | POLLHUP;
        if (ts->rx_fin)
            ev |= POLLRDHUP;
        if (ts->so_error)
            ev |= POLLERR;
        return ev;
    }
}

static uint64_t ftcp_event_gen(int fd)
{
    return TS(fd)->gen;
}

static int ftcp_kernel_fd(int fd)
{
    return TS(fd)->state == T_LISTEN ? fd : -1;
}

static const byp_fd_ops_t tcp_ops = {
    .bind = ftcp_bind,
    .listen = ftcp_listen_op,
    .connect = ftcp_connect_op,
    .shutdown = ftcp_shutdown,
    .getsockname = ftcp_getsockname,
    .getpeername = ftcp_getpeername,
    .getsockopt = ftcp_getsockopt,
    .setsockopt = ftcp_setsockopt,
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
    .accept = ftcp_accept,
    .accept4 = ftcp_accept4,
    .release = ftcp_release,
    .ref = ftcp_ref,
    .fcntl = ftcp_fcntl,
    .ioctl = ftcp_ioctl,
    .readiness = ftcp_readiness,
    .event_gen = ftcp_event_gen,
    .kernel_fd = ftcp_kernel_fd,
};

/* ---- taking over a kernel socket ---- */

static void install(int fd, struct tsock *ts)
{
    byp_fd_t *e = byp_fd_get(fd);
    e->obj = ts;
    e->kind = BYP_FD_TCP;
    __atomic_store_n(&e->ops, &tcp_ops, __ATOMIC_RELEASE);
}

int byp_tcp_listen(int fd, const struct sockaddr_in *local, int backlog)
{
    in_addr_t a = local->sin_addr.s_addr;
    if (byp_fd_get(fd) == NULL || (a != INADDR_ANY && a != byp_if_addr))
        return BYP_ENGINE_DECLINE;   /* bound to another interface's address */
    int fl = BYP_REAL(fcntl)(fd, F_GETFL);
    if (BYP_REAL(listen)(fd, backlog) < 0)
        return -errno;
    struct tsock *ts = tsock_new();
    if (ts == NULL)
        return BYP_ENGINE_DECLINE;
    ts->state = T_LISTEN;
    ts->nonblock = fl >= 0 && (fl & O_NONBLOCK);
    ts->flow_addr = a;
    ts->flow_port = local->sin_port;
    ts->local = *local;
    byp_stack_lock();
    struct tcp_pcb *pcb = tcp_new_ip_type(IPADDR_TYPE_V4);
    err_t err = ERR_MEM;
    if (pcb != NULL) {
        ip_set_option(pcb, SOF_REUSEADDR);
        ip_addr_t ip = IPADDR4_INIT(a);
        err = tcp_bind(pcb, &ip, ntohs(local->sin_port));
    }
    struct tcp_pcb *lpcb = NULL;
    if (err == ERR_OK)
        lpcb = tcp_listen_with_backlog_and_err(pcb, 255, &err);
    if (lpcb == NULL || byp_flow_ref(IPPROTO_TCP, a, local->sin_port) < 0) {
        if (lpcb != NULL)
            tcp_close(lpcb);
        else if (pcb != NULL)
            tcp_abort(pcb);
        byp_stack_unlock();
        free(ts);
        byp_warn("cannot accelerate the listener on port %u (lwIP error %d); it stays on the kernel",
                 ntohs(local->sin_port), err);
        return BYP_ENGINE_DECLINE;
    }
    ts->has_flow = 1;
    ts->pcb = lpcb;
    tcp_arg(lpcb, ts);
    tcp_accept(lpcb, on_accept);
    install(fd, ts);
    byp_stack_unlock();
    /* The kernel path is polled beside the stack: never let it block us. */
    BYP_REAL(fcntl)(fd, F_SETFL, (fl < 0 ? 0 : fl) | O_NONBLOCK);
    byp_info("tcp listener on port %u accelerated", ntohs(local->sin_port));
    return 0;
}

int byp_tcp_connect(int fd, const struct sockaddr_in *remote)
{
    if (!byp_route_ok(remote->sin_addr.s_addr) || byp_fd_get(fd) == NULL)
        return BYP_ENGINE_DECLINE;
    /* The local port: the kernel socket's, reserving it; bind it first if needed. */
    struct sockaddr_in local;
    socklen_t len = sizeof local;
    if (BYP_REAL(getsockname)(fd, (struct sockaddr *)&local, &len) < 0 || local.sin_family != AF_INET)
        return BYP_ENGINE_DECLINE;
    if (local.sin_port == 0) {
        local.sin_addr.s_addr = byp_if_addr;
        if (BYP_REAL(bind)(fd, (struct sockaddr *)&local, sizeof local) < 0)
            return -errno;
        len = sizeof local;
        BYP_REAL(getsockname)(fd, (struct sockaddr *)&local, &len);
    } else if (local.sin_addr.s_addr != INADDR_ANY && local.sin_addr.s_addr != byp_if_addr) {
        return BYP_ENGINE_DECLINE;
    }
    local.sin_addr.s_addr = byp_if_addr;
    int fl = BYP_REAL(fcntl)(fd, F_GETFL);
    struct tsock *ts = tsock_new();
    if (ts == NULL)
        return BYP_ENGINE_DECLINE;
    ts->nonblock = fl >= 0 && (fl & O_NONBLOCK);
    ts->local = local;
    ts->remote = *remote;
    ts->flow_addr = byp_if_addr;
    ts->flow_port = local.sin_port;
    ts->reserves_port = 1;
    ts->state = T_CONNECTING;
    byp_stack_lock();
    struct tcp_pcb *pcb = tcp_new_ip_type(IPADDR_TYPE_V4);
    if (pcb == NULL) {
        byp_stack_unlock();
        free(ts);
        return -ENOBUFS;
    }
    ip_set_option(pcb, SOF_REUSEADDR);
    ip_addr_t lip = IPADDR4_INIT(byp_if_addr), rip = IPADDR4_INIT(remote->sin_addr.s_addr);
    err_t err = tcp_bind(pcb, &lip, ntohs(local.sin_port));
    if (err != ERR_OK || byp_flow_ref(IPPROTO_TCP, byp_if_addr, local.sin_port) < 0) {
        tcp_abort(pcb);
        byp_stack_unlock();
        free(ts);
        return err == ERR_USE ? -EADDRINUSE : BYP_ENGINE_DECLINE;
    }
    ts->has_flow = 1;
    attach(ts, pcb);
    err = tcp_connect(pcb, &rip, ntohs(remote->sin_port), on_connected);
    if (err != ERR_OK) {
        tcp_arg(pcb, NULL);
        tcp_err(pcb, NULL);
        tcp_abort(pcb);
        put_flow(ts);
        byp_stack_unlock();
        free(ts);
        return err == ERR_RTE ? -ENETUNREACH : -ENOBUFS;
    }
    install(fd, ts);
    byp_stack_unlock();
    if (ts->nonblock)
        return -EINPROGRESS;
    byp_stack_lock();
    while (ts->state == T_CONNECTING) {
        int r = wait_unlocked(cond_connected, ts, ts->sndtimeo_ms, NULL, 0);
        if (r <= 0 && ts->state == T_CONNECTING) {
            byp_stack_unlock();
            return r == 0 ? -EINPROGRESS : -EINTR;
        }
    }
    int e = ts->state == T_CONNECTED ? 0 : ts->so_error;
    if (e) {
        ts->so_error = 0;
        ts->err = 0;
    }
    byp_stack_unlock();
    return -e;
}
