/* The accelerated UDP fd kind's POSIX calls: the receive family over both paths (the
 * stack's queue and the kernel socket underneath), the send family (each datagram's path
 * is udp_send.c's), names, fcntl,
 * ioctl and readiness, over the socket object of udp_sock.c. */
#include <limits.h>
#include <time.h>
#include <linux/net_tstamp.h>
#include <linux/sockios.h>
#include <string.h>
#include <sys/ioctl.h>

#include "lwip/ip.h"

#include "byp_stack.h"
#include "fd_udp.h"
#include "udp_sock.h"

/* While the stack's queue has datagrams, the kernel path is looked at once every this many
 * receives (a system call), so that neither path starves the other. */
#define KERNEL_TURN 64

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- control messages ---- */

struct cbuf {
    struct msghdr *m;
    size_t used;
    int trunc;
};

static void put_cmsg(struct cbuf *cb, int level, int type, const void *data, size_t len)
{
    struct msghdr *m = cb->m;
    if (m->msg_control == NULL || cb->used + CMSG_LEN(len) > m->msg_controllen) {
        cb->trunc = 1;
        return;
    }
    struct cmsghdr *c = (struct cmsghdr *)((char *)m->msg_control + cb->used);
    c->cmsg_level = level;
    c->cmsg_type = type;
    c->cmsg_len = CMSG_LEN(len);
    memcpy(CMSG_DATA(c), data, len);
    size_t space = CMSG_SPACE(len);
    cb->used += space < m->msg_controllen - cb->used ? space : m->msg_controllen - cb->used;
}

/* The control messages the kernel gives a datagram, in its order: timestamps, the drop
 * count, then the IP level ones. */
static void put_cmsgs(const struct usock *us, const struct udgram *d, struct msghdr *m)
{
    struct cbuf cb = {.m = m};
    struct timespec ts = {.tv_sec = d->ts_ns / 1000000000, .tv_nsec = d->ts_ns % 1000000000};
    /* The _NEW types carry 64-bit fields: the same layout as the old ones on x86-64. */
    _Static_assert(sizeof(struct timespec) == 16 && sizeof(struct timeval) == 16, "64-bit time");
    int tsnew = (us->cmsg & U_TSNEW) != 0;
    if (us->cmsg & U_TSNS) {
        put_cmsg(&cb, SOL_SOCKET, tsnew ? SO_TIMESTAMPNS_NEW : SO_TIMESTAMPNS, &ts, sizeof ts);
    } else if (us->cmsg & U_TS) {
        struct timeval tv = {.tv_sec = ts.tv_sec, .tv_usec = ts.tv_nsec / 1000};
        put_cmsg(&cb, SOL_SOCKET, tsnew ? SO_TIMESTAMP_NEW : SO_TIMESTAMP, &tv, sizeof tv);
    }
    if (us->cmsg & U_TSING) {
        struct timespec three[3];
        memset(three, 0, sizeof three);
        three[0] = ts;
        put_cmsg(&cb, SOL_SOCKET, tsnew ? SO_TIMESTAMPING_NEW : SO_TIMESTAMPING, three,
                 sizeof three);
    }
    if ((us->cmsg & U_OVFL) && d->drops != 0)
        put_cmsg(&cb, SOL_SOCKET, SO_RXQ_OVFL, &d->drops, sizeof d->drops);
    if (us->cmsg & U_PKTINFO) {
        struct in_pktinfo pi = {.ipi_ifindex = (int)byp_if_index,
                                .ipi_spec_dst.s_addr = byp_if_addr,
                                .ipi_addr.s_addr = d->dst};
        put_cmsg(&cb, IPPROTO_IP, IP_PKTINFO, &pi, sizeof pi);
    }
    if (us->cmsg & U_PKTINFO6) {
        struct in6_pktinfo pi6 = {.ipi6_ifindex = byp_if_index};
        pi6.ipi6_addr.s6_addr[10] = pi6.ipi6_addr.s6_addr[11] = 0xff;
        memcpy(&pi6.ipi6_addr.s6_addr[12], &d->dst, 4);
        put_cmsg(&cb, IPPROTO_IPV6, IPV6_PKTINFO, &pi6, sizeof pi6);
    }
    m->msg_controllen = cb.used;
    if (cb.trunc)
        m->msg_flags |= MSG_CTRUNC;
}

/* ---- receive ---- */

/* Copy datagram @d into @m (payload, source, control); returns what recvmsg returns. */
static ssize_t deliver(const struct usock *us, const struct udgram *d, struct msghdr *m, int flags)
{
    size_t len = d->p->tot_len, off = 0;
    for (size_t i = 0; i < m->msg_iovlen && off < len; i++) {
        size_t n = m->msg_iov[i].iov_len < len - off ? m->msg_iov[i].iov_len : len - off;
        pbuf_copy_partial(d->p, m->msg_iov[i].iov_base, (u16_t)n, (u16_t)off);
        off += n;
    }
    m->msg_flags = off < len ? MSG_TRUNC : 0;
    if (m->msg_name != NULL) {
        struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = d->sport,
                                  .sin_addr.s_addr = d->src};
        byp_addr4_put(&sin, us->v6, m->msg_name, &m->msg_namelen);
    }
    if (m->msg_control != NULL)
        put_cmsgs(us, d, m);
    else
        m->msg_controllen = 0;
    return (flags & MSG_TRUNC) ? (ssize_t)len : (ssize_t)off;
}

/* A receive from the kernel socket (the second path), without waiting.  Its mark is
 * cleared first and set again while something may be left, so that a datagram arriving
 * meanwhile is never missed (its edge marks it again). */
static ssize_t kernel_try(int fd, struct usock *us, struct msghdr *m, int flags)
{
    __atomic_store_n(&us->kready, 0, __ATOMIC_SEQ_CST);
    ssize_t r = BYP_REAL(recvmsg)(fd, m, flags | MSG_DONTWAIT);
    if (r < 0 && errno == EAGAIN)
        return r;
    int saved = errno;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if ((r >= 0 && (flags & MSG_PEEK)) || (BYP_REAL(poll)(&p, 1, 0) > 0 && p.revents != 0))
        __atomic_or_fetch(&us->kready, (p.revents & POLLERR) ? U_KIN | U_KERR : U_KIN,
                          __ATOMIC_ACQ_REL);
    errno = saved;
    return r;
}

/* Take the head datagram into @m (lock held). */
static ssize_t take(struct usock *us, struct msghdr *m, int flags)
{
    if (flags & MSG_PEEK)
        return deliver(us, &us->q[us->qhead], m, flags);
    struct udgram d;
    byp_usock_pop(us, &d);
    ssize_t r = deliver(us, &d, m, flags);
    pbuf_free(d.p);
    return r;
}

/* Lock held on entry and on return, @us pinned.  Once the family's fds for it are closed
 * (by another thread while this call waits), the kernel socket and its fd number are no
 * longer its own: only the stack's queue is looked at. */
static ssize_t recv_core(int fd, struct usock *us, struct msghdr *m, int flags)
{
    int nb = us->nonblock || (flags & MSG_DONTWAIT);
    int64_t deadline = 0;
    for (;;) {
        int orphan = byp_usock_orphan(us, fd);
        int kwatched = us->kwatched;
        int kpath = !orphan && (__atomic_load_n(&us->kready, __ATOMIC_ACQUIRE) != 0 || !kwatched);
        if (us->qn > 0 && !(kpath && ++us->kturn >= KERNEL_TURN))
            return take(us, m, flags);
        int turn = us->qn > 0;   /* the kernel path's turn, with datagrams queued */
        if (turn)
            us->kturn = 0;
        byp_stack_unlock_udp();
        if (!turn)
            byp_engine_poll(1);   /* an empty queue: run the stack once, as a wait would */
        if (!orphan && (__atomic_load_n(&us->kready, __ATOMIC_ACQUIRE) != 0 || !kwatched) &&
            (turn || __atomic_load_n(&us->qn, __ATOMIC_ACQUIRE) == 0)) {
            int saved = errno;
            ssize_t r = kernel_try(fd, us, m, flags);
            if (r >= 0 || errno != EAGAIN) {
                byp_stack_lock();
                return r;
            }
            errno = saved;
        }
        byp_stack_lock();
        if (us->qn > 0)
            return take(us, m, flags);
        if (us->shut_rd)
            return 0;   /* shut down for receiving, nothing queued: as the kernel's */
        if (nb)
            return byp_udp_fail(EAGAIN);
        int timeout = -1;
        if (us->rcvtimeo_ms >= 0) {
            int64_t now = now_ns();
            if (deadline == 0)
                deadline = now + (int64_t)us->rcvtimeo_ms * 1000000;
            if (now >= deadline)
                return byp_udp_fail(EAGAIN);
            timeout = (int)((deadline - now + 999999) / 1000000);
        }
        struct pollfd p = {.fd = fd, .events = POLLIN};
        /* The kernel socket is watched by the engine's kernel-path set (udp_kpath.c). */
        nfds_t np = us->kwatched || byp_usock_orphan(us, fd) ? 0 : 1;
        byp_stack_unlock_udp();
        int r = np == 0 ? byp_wait_on(byp_usock_readable, us, timeout, &us->watch.sleep)
                        : byp_wait(byp_usock_readable, us, timeout, &p, np);
        byp_stack_lock();
        if (r == 0)
            return byp_udp_fail(EAGAIN);
        if (r < 0)
            return byp_udp_fail(EINTR);
        if (r == 2) {
            us->kturn = KERNEL_TURN;   /* the kernel path first */
            __atomic_or_fetch(&us->kready, U_KIN, __ATOMIC_ACQ_REL);
        }
    }
}

static ssize_t recv_call(int fd, struct msghdr *m, int flags)
{
    if (flags & MSG_ERRQUEUE)
        return BYP_REAL(recvmsg)(fd, m, flags);   /* IP_RECVERR: the kernel socket's */
    struct usock *us = byp_usock_enter(fd);
    if (us == NULL)
        return -1;
    ssize_t r = recv_core(fd, us, m, flags);
    byp_usock_exit(us);
    return r;
}

static ssize_t recv_iov(int fd, const struct iovec *iov, int iovcnt, int flags,
                        struct sockaddr *addr, socklen_t *len)
{
    struct msghdr m = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt};
    if (addr != NULL && len != NULL) {
        m.msg_name = addr;
        m.msg_namelen = *len;
    }
    ssize_t r = recv_call(fd, &m, flags);
    if (r >= 0 && addr != NULL && len != NULL)
        *len = m.msg_namelen;
    return r;
}

static ssize_t fudp_read(int fd, void *buf, size_t n)
{
    struct iovec iov = {buf, n};
    return recv_iov(fd, &iov, 1, 0, NULL, NULL);
}

static ssize_t fudp_readv(int fd, const struct iovec *iov, int iovcnt)
{
    if (iovcnt < 0 || iovcnt > IOV_MAX)
        return byp_udp_fail(EINVAL);
    return recv_iov(fd, iov, iovcnt, 0, NULL, NULL);
}

static ssize_t fudp_recv(int fd, void *buf, size_t n, int flags)
{
    struct iovec iov = {buf, n};
    return recv_iov(fd, &iov, 1, flags, NULL, NULL);
}

static ssize_t fudp_recvfrom(int fd, void *buf, size_t n, int flags, struct sockaddr *addr,
                             socklen_t *len)
{
    struct iovec iov = {buf, n};
    return recv_iov(fd, &iov, 1, flags, addr, len);
}

static ssize_t fudp_recvmsg(int fd, struct msghdr *msg, int flags)
{
    if (msg == NULL)
        return byp_udp_fail(EFAULT);
    if (msg->msg_iovlen > IOV_MAX)
        return byp_udp_fail(EMSGSIZE);
    return recv_call(fd, msg, flags);
}

/* A batch: the first datagram waits as recvmsg would (unless MSG_DONTWAIT), the others
 * with MSG_WAITFORONE do not; the timeout, as the kernel's, is checked after each one. */
static int fudp_recvmmsg(int fd, struct mmsghdr *vec, unsigned int vlen, int flags,
                         struct timespec *timeout)
{
    int64_t deadline = 0;
    if (timeout != NULL) {
        if (timeout->tv_sec < 0 || timeout->tv_nsec < 0 || timeout->tv_nsec >= 1000000000)
            return byp_udp_fail(EINVAL);
        deadline = now_ns() + (int64_t)timeout->tv_sec * 1000000000 + timeout->tv_nsec;
    }
    if (vlen > UIO_MAXIOV)
        vlen = UIO_MAXIOV;
    unsigned i;
    int f = flags & ~MSG_WAITFORONE;
    for (i = 0; i < vlen; i++) {
        ssize_t r = fudp_recvmsg(fd, &vec[i].msg_hdr, f);
        if (r < 0) {
            if (i > 0)
                break;
            return -1;
        }
        vec[i].msg_len = (unsigned)r;
        if (flags & MSG_WAITFORONE)
            f |= MSG_DONTWAIT;
        if (timeout != NULL) {
            int64_t now = now_ns();
            if (now >= deadline) {
                i++;
                break;
            }
        }
    }
    if (timeout != NULL) {
        int64_t left = deadline - now_ns();
        if (left < 0)
            left = 0;
        timeout->tv_sec = left / 1000000000;
        timeout->tv_nsec = left % 1000000000;
    }
    return (int)i;
}

/* ---- send (the path of each datagram: udp_send.c) ---- */

static ssize_t send_one(int fd, const struct iovec *iov, int iovcnt, int flags,
                        const struct sockaddr *to, socklen_t tolen)
{
    struct mmsghdr mm = {.msg_hdr = {.msg_name = (void *)to, .msg_namelen = to ? tolen : 0,
                                     .msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt}};
    int r = byp_udp_send_batch(fd, &mm, 1, flags);
    return r < 0 ? -1 : (ssize_t)mm.msg_len;
}

static ssize_t fudp_write(int fd, const void *buf, size_t n)
{
    struct iovec iov = {(void *)buf, n};
    return send_one(fd, &iov, 1, 0, NULL, 0);
}

static ssize_t fudp_writev(int fd, const struct iovec *iov, int iovcnt)
{
    if (iovcnt < 0 || iovcnt > IOV_MAX)
        return byp_udp_fail(EINVAL);
    return send_one(fd, iov, iovcnt, 0, NULL, 0);
}

static ssize_t fudp_send(int fd, const void *buf, size_t n, int flags)
{
    struct iovec iov = {(void *)buf, n};
    return send_one(fd, &iov, 1, flags, NULL, 0);
}

static ssize_t fudp_sendto(int fd, const void *buf, size_t n, int flags, const struct sockaddr *a,
                           socklen_t len)
{
    struct iovec iov = {(void *)buf, n};
    return send_one(fd, &iov, 1, flags, a, len);
}

static ssize_t fudp_sendmsg(int fd, const struct msghdr *msg, int flags)
{
    if (msg == NULL)
        return byp_udp_fail(EFAULT);
    struct mmsghdr mm = {.msg_hdr = *msg};
    int r = byp_udp_send_batch(fd, &mm, 1, flags);
    return r < 0 ? -1 : (ssize_t)mm.msg_len;
}

static int fudp_sendmmsg(int fd, struct mmsghdr *vec, unsigned int vlen, int flags)
{
    if (vlen > UIO_MAXIOV)
        vlen = UIO_MAXIOV;
    return byp_udp_send_batch(fd, vec, vlen, flags);
}

static ssize_t fudp_sendfile(int fd, int in_fd, off_t *offset, size_t count)
{
    return BYP_REAL(sendfile)(fd, in_fd, offset, count);
}

static ssize_t fudp_sendfile64(int fd, int in_fd, off64_t *offset, size_t count)
{
    return BYP_REAL(sendfile64)(fd, in_fd, offset, count);
}

/* splice(2) on an accelerated UDP socket: not moved through the stack; the kernel's answer
 * for a file that cannot splice, rather than the kernel socket's own queue (which holds
 * only what came another way). */
static ssize_t fudp_splice(int fd_in, loff_t *off_in, int fd_out, loff_t *off_out, size_t len,
                           unsigned int flags)
{
    (void)off_in, (void)off_out, (void)len, (void)flags;
    static int said;
    if (!__atomic_exchange_n(&said, 1, __ATOMIC_RELAXED))
        byp_info("fd %d: splice on an accelerated UDP socket is not served: EINVAL (logged once)",
                 byp_fd_ops(fd_in) == &byp_udp_ops ? fd_in : fd_out);
    errno = EINVAL;
    return -1;
}

/* ---- state, names ---- */

static int fudp_bind(int fd, const struct sockaddr *addr, socklen_t len)
{
    return BYP_REAL(bind)(fd, addr, len);   /* already bound: the kernel says EINVAL */
}

static int fudp_listen(int fd, int backlog)
{
    return BYP_REAL(listen)(fd, backlog);   /* EOPNOTSUPP */
}

/* Connect (or with AF_UNSPEC disconnect) the kernel socket, then the stack's. */
static int fudp_connect(int fd, const struct sockaddr *addr, socklen_t len)
{
    struct usock *us = byp_usock_pin(fd);
    if (us == NULL)
        return -1;
    if (BYP_REAL(connect)(fd, addr, len) < 0) {
        byp_usock_unpin(us);
        return -1;
    }
    byp_stack_lock();
    struct sockaddr_in sin;
    if (addr->sa_family != AF_UNSPEC && byp_addr4_get(addr, len, &sin) >= 0) {
        ip_addr_t rip = IPADDR4_INIT(sin.sin_addr.s_addr);
        if (us->pcb != NULL)
            udp_connect(us->pcb, &rip, ntohs(sin.sin_port));
        us->remote = sin;
        us->connected = 1;
    } else {
        if (us->pcb != NULL)
            udp_disconnect(us->pcb);
        us->connected = 0;
    }
    byp_usock_exit(us);
    return 0;
}

/* The kernel socket's, then the stack side's: the kernel marks the socket shut down even
 * when it answers ENOTCONN (not connected), and wakes its receivers. */
static int fudp_shutdown(int fd, int how)
{
    struct usock *us = byp_usock_pin(fd);
    if (us == NULL)
        return -1;
    int r = BYP_REAL(shutdown)(fd, how);
    byp_stack_lock();
    if ((r == 0 || errno == ENOTCONN) && (how == SHUT_RD || how == SHUT_WR || how == SHUT_RDWR)) {
        if (how != SHUT_WR)
            __atomic_store_n(&us->shut_rd, 1, __ATOMIC_RELAXED);
        if (how != SHUT_RD)
            us->shut_wr = 1;
        byp_usock_changed(us);
    }
    byp_usock_exit(us);
    return r;
}

static int fudp_getsockname(int fd, struct sockaddr *addr, socklen_t *len)
{
    return BYP_REAL(getsockname)(fd, addr, len);
}

static int fudp_getpeername(int fd, struct sockaddr *addr, socklen_t *len)
{
    return BYP_REAL(getpeername)(fd, addr, len);
}

static int fudp_getsockopt(int fd, int level, int opt, void *val, socklen_t *len)
{
    if (level == SOL_SOCKET && opt == SO_ERROR) {   /* reading it clears the kernel's error */
        struct usock *us = byp_usock_enter(fd);
        if (us == NULL)
            return -1;
        __atomic_and_fetch(&us->kready, ~U_KERR, __ATOMIC_ACQ_REL);
        byp_usock_exit(us);
    }
    return BYP_REAL(getsockopt)(fd, level, opt, val, len);
}

static int fudp_accept(int fd, struct sockaddr *addr, socklen_t *len)
{
    return BYP_REAL(accept)(fd, addr, len);
}

static int fudp_accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
    return BYP_REAL(accept4)(fd, addr, len, flags);
}

static int fudp_fcntl(int fd, int cmd, void *arg)
{
    if (cmd != F_SETFL)
        return BYP_REAL(fcntl)(fd, cmd, arg);
    struct usock *us = byp_usock_pin(fd);
    if (us == NULL)
        return -1;
    int r = BYP_REAL(fcntl)(fd, cmd, arg);
    byp_stack_lock();
    if (r == 0) {
        us->nonblock = ((int)(intptr_t)arg & O_NONBLOCK) != 0;
        byp_engine_event();
    }
    byp_usock_exit(us);
    return r;
}

static int fudp_ioctl(int fd, unsigned long req, void *arg)
{
    if (req != FIONREAD && req != FIONBIO)
        return BYP_REAL(ioctl)(fd, req, arg);
    if (req == FIONREAD && arg == NULL)
        return byp_udp_fail(EFAULT);
    struct usock *us = byp_usock_enter(fd);
    if (us == NULL)
        return -1;
    if (req == FIONREAD && us->qn > 0) {
        *(int *)arg = us->q[us->qhead].p->tot_len;
        byp_usock_exit(us);
        return 0;
    }
    byp_stack_unlock();
    /* FIONREAD: the kernel path's next datagram, or 0. */
    int r = BYP_REAL(ioctl)(fd, req, arg);
    byp_stack_lock();
    if (r == 0 && req == FIONBIO && arg != NULL)
        us->nonblock = *(int *)arg != 0;
    byp_usock_exit(us);
    return r;
}

/* Both paths: the stack's queue and the kernel socket's mark (udp_kpath.c).  Always
 * writable: a send that finds no buffer says ENOBUFS, as the kernel's UDP does. */
static uint32_t fudp_readiness(int fd)
{
    struct usock *us = US(fd);
    if (us == NULL)
        return 0;   /* being closed */
    int k = __atomic_load_n(&us->kready, __ATOMIC_ACQUIRE);
    uint32_t ev = (us->qn > 0 || (k & U_KIN) ? POLLIN : 0) | ((k & U_KERR) ? POLLERR : 0) | POLLOUT;
    if (us->shut_rd)
        ev |= POLLIN | POLLRDHUP;
    if (us->shut_rd && us->shut_wr)
        ev |= POLLHUP;
    return ev;
}

static uint64_t fudp_event_gen(int fd)
{
    struct usock *us = US(fd);
    return us != NULL ? us->gen : 0;
}

/* The kernel socket, the second receive path, is watched by the engine (udp_kpath.c) and
 * counts in readiness(): in an epoll set it would report the fd a second time (EPOLLOUT,
 * and EPOLLIN when both paths have datagrams) in one epoll_wait. */
static int fudp_kernel_fd(int fd)
{
    (void)fd;
    return -1;
}

/* A poll on this fd alone: as ftcp_wait_one (fd_tcp.c). */
static int fudp_wait_one(int fd, int (*cond)(void *), void *arg, int timeout_ms)
{
    struct usock *us = byp_usock_pin(fd);
    if (us == NULL)
        return byp_wait(cond, arg, timeout_ms, NULL, 0);   /* closed meanwhile */
    int r = byp_wait_on(cond, arg, timeout_ms, &us->watch.sleep);
    byp_usock_unpin(us);
    return r;
}

const byp_fd_ops_t byp_udp_ops = {
    .bind = fudp_bind,
    .listen = fudp_listen,
    .connect = fudp_connect,
    .shutdown = fudp_shutdown,
    .getsockname = fudp_getsockname,
    .getpeername = fudp_getpeername,
    .getsockopt = fudp_getsockopt,
    .setsockopt = byp_udp_setsockopt,
    .read = fudp_read,
    .readv = fudp_readv,
    .write = fudp_write,
    .writev = fudp_writev,
    .recv = fudp_recv,
    .recvfrom = fudp_recvfrom,
    .recvmsg = fudp_recvmsg,
    .recvmmsg = fudp_recvmmsg,
    .send = fudp_send,
    .sendto = fudp_sendto,
    .sendmsg = fudp_sendmsg,
    .sendmmsg = fudp_sendmmsg,
    .sendfile = fudp_sendfile,
    .sendfile64 = fudp_sendfile64,
    .splice = fudp_splice,
    .accept = fudp_accept,
    .accept4 = fudp_accept4,
    .release = byp_udp_release,
    .ref = byp_udp_ref,
    .fcntl = fudp_fcntl,
    .ioctl = fudp_ioctl,
    .readiness = fudp_readiness,
    .event_gen = fudp_event_gen,
    .kernel_fd = fudp_kernel_fd,
    .wait_one = fudp_wait_one,
};
