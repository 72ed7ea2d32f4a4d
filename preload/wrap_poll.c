/* Readiness calls over any mix of kernel and accelerated fds: poll, ppoll, select, pselect
 * and the epoll family (the sets themselves are fd_epoll.c's).
 *
 * A set with no accelerated fd goes straight to libc, at the cost of one table load per
 * entry.  Otherwise the accelerated entries are answered from their kind's readiness(), the
 * rest (and the kernel fds some accelerated kinds name, such as a listener's own listening
 * socket) form a kernel sub-set, and byp_wait spins on the stack and sleeps on both. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "byp.h"
#include "engine.h"
#include "fd_epoll.h"

/* Sets up to this size are handled without malloc. */
#define SMALL_SET 32

/* One accelerated entry of a poll set. */
struct acc_ent {
    int fd;
    short events;
};

/* A poll set split in two: the accelerated entries and the kernel sub-set. */
struct split {
    struct pollfd *fds;
    nfds_t nfds;
    struct acc_ent *acc;        /* acc[j] answers fds[aidx[j]] */
    nfds_t *aidx;
    nfds_t nacc;
    struct pollfd *kset;        /* kset[j] answers (part of) fds[kidx[j]] */
    nfds_t *kidx;
    nfds_t nk;
};

/* Whether any entry is accelerated.  A set the kernel refuses without reading it (more
 * entries than fds can exist, or no array) is left to the kernel's error. */
static int has_accel(const struct pollfd *fds, nfds_t nfds)
{
    if (fds == NULL || nfds > byp_fdtab_size)
        return 0;
    for (nfds_t i = 0; i < nfds; i++)
        if (byp_fd_ops(fds[i].fd) != NULL)
            return 1;
    return 0;
}

/* What an accelerated entry reports now, as poll(2) revents. */
static short acc_revents(const struct acc_ent *a)
{
    const byp_fd_ops_t *ops = byp_fd_ops(a->fd);
    if (ops == NULL || ops->readiness == NULL)
        return 0;
    uint32_t r = byp_poll_bits(ops->readiness(a->fd));
    return (short)(r & ((uint16_t)a->events | POLLERR | POLLHUP));
}

/* byp_wait's condition: an accelerated entry is ready. */
static int any_acc_ready(void *arg)
{
    const struct split *s = arg;
    for (nfds_t j = 0; j < s->nacc; j++)
        if (acc_revents(&s->acc[j]) != 0)
            return 1;
    return 0;
}

/* Write every revents from the current state of both halves; returns the ready count. */
static int fill(struct split *s)
{
    for (nfds_t i = 0; i < s->nfds; i++)
        s->fds[i].revents = 0;
    for (nfds_t j = 0; j < s->nacc; j++)
        s->fds[s->aidx[j]].revents = acc_revents(&s->acc[j]);
    for (nfds_t j = 0; j < s->nk; j++) {
        struct pollfd *p = &s->fds[s->kidx[j]];
        short r = s->kset[j].revents;
        if (p->fd != s->kset[j].fd)
            r &= (short)~POLLNVAL;  /* an accelerated entry's kernel half */
        p->revents |= r;
    }
    int n = 0;
    for (nfds_t i = 0; i < s->nfds; i++)
        n += s->fds[i].revents != 0;
    return n;
}

/* Poll the kernel sub-set without waiting.  0, or -errno. */
static int kernel_now(struct split *s)
{
    for (nfds_t j = 0; j < s->nk; j++)
        s->kset[j].revents = 0;
    if (s->nk == 0)
        return 0;
    return BYP_REAL(poll)(s->kset, s->nk, 0) < 0 ? -errno : 0;
}

/* poll over a set holding accelerated fds.  @timeout_ns: -1 forever.  Returns the count,
 * or -errno (EINTR, ENOMEM). */
static int poll_accel(struct pollfd *fds, nfds_t nfds, int64_t timeout_ns, const sigset_t *mask)
{
    struct acc_ent acc_small[SMALL_SET];
    nfds_t aidx_small[SMALL_SET], kidx_small[2 * SMALL_SET];
    struct pollfd kset_small[2 * SMALL_SET];
    struct split s = {.fds = fds, .nfds = nfds};
    void *heap = NULL;
    if (nfds <= SMALL_SET) {
        s.acc = acc_small;
        s.aidx = aidx_small;
        s.kset = kset_small;
        s.kidx = kidx_small;
    } else {
        heap = malloc(nfds * (sizeof *s.acc + sizeof *s.aidx + 2 * sizeof *s.kset +
                              2 * sizeof *s.kidx));
        if (heap == NULL)
            return -ENOMEM;
        s.kset = heap;
        s.kidx = (nfds_t *)(s.kset + 2 * nfds);
        s.aidx = s.kidx + 2 * nfds;
        s.acc = (struct acc_ent *)(s.aidx + nfds);
    }
    for (nfds_t i = 0; i < nfds; i++) {
        int fd = fds[i].fd;
        if (fd < 0)
            continue;
        const byp_fd_ops_t *ops = byp_fd_ops(fd);
        if (byp_unlikely(ops != NULL && (byp_fd_replaces(fd) & 1))) {
            byp_fd_replace_wait(fd);   /* a dup2 onto @fd: poll the new file */
            ops = byp_fd_ops(fd);
        }
        int kfd = fd;
        if (ops != NULL) {
            s.acc[s.nacc] = (struct acc_ent){.fd = fd, .events = fds[i].events};
            s.aidx[s.nacc++] = i;
            kfd = ops->kernel_fd != NULL ? ops->kernel_fd(fd) : -1;
        }
        if (kfd >= 0) {
            s.kset[s.nk] = (struct pollfd){.fd = kfd, .events = fds[i].events};
            s.kidx[s.nk++] = i;
        }
    }

    sigset_t old;
    int rc = byp_sigmask_enter(mask, &old);
    if (rc < 0)
        goto out_free;
    const struct byp_engine *eng = byp_engine;
    if (eng != NULL)
        eng->progress();
    rc = kernel_now(&s);
    if (rc == 0)
        rc = fill(&s);
    if (rc != 0 || timeout_ns == 0)
        goto out;
    int ms = timeout_ns < 0                          ? -1
             : timeout_ns / 1000000 >= INT_MAX - 1 ? INT_MAX
                                                   : (int)((timeout_ns + 999999) / 1000000);
    const byp_fd_ops_t *one = s.nacc == 1 && s.nk == 0 ? byp_fd_ops(s.acc[0].fd) : NULL;
    if (one != NULL && one->wait_one != NULL)
        rc = one->wait_one(s.acc[0].fd, any_acc_ready, &s, ms);   /* varnish's reads */
    else
        rc = byp_wait(any_acc_ready, &s, ms, s.kset, s.nk);
    if (rc == -ERESTART)
        rc = -EINTR;        /* poll and select are never restarted (signal(7)) */
    if (rc < 0)
        goto out;
    if (rc == 1)            /* the stack side: look at the kernel side too */
        rc = kernel_now(&s);
    else if (rc == 0)       /* timed out: nothing from the kernel side */
        for (nfds_t j = 0; j < s.nk; j++)
            s.kset[j].revents = 0;
    else
        rc = 0;
    if (rc == 0)
        rc = fill(&s);
out:
    byp_sigmask_leave(mask, &old);
out_free:
    free(heap);
    return rc;
}

/* Timeouts as nanoseconds, -1 for none; -EINVAL for an invalid timespec. */
static int64_t ts_to_ns(const struct timespec *ts)
{
    if (ts == NULL)
        return -1;
    if (ts->tv_sec < 0 || ts->tv_nsec < 0 || ts->tv_nsec >= 1000000000)
        return -EINVAL;
    if (ts->tv_sec >= INT64_MAX / 1000000000 - 1)
        return -1;
    return (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec;
}

static int finish(int rc, int saved)
{
    if (rc < 0) {
        errno = -rc;
        return -1;
    }
    errno = saved;
    return rc;
}

/* glibc declares poll's array write-only (access attribute), so reading the events the
 * caller put there looks to GCC like reading uninitialised memory. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

BYP_EXPORT int poll(struct pollfd *fds, nfds_t nfds, int timeout)
{
    if (byp_likely(!has_accel(fds, nfds)))
        return BYP_REAL(poll)(fds, nfds, timeout);
    int saved = errno;
    return finish(poll_accel(fds, nfds, timeout < 0 ? -1 : (int64_t)timeout * 1000000, NULL),
                  saved);
}

BYP_EXPORT int ppoll(struct pollfd *fds, nfds_t nfds, const struct timespec *ts,
                     const sigset_t *mask)
{
    if (byp_likely(!has_accel(fds, nfds)))
        return BYP_REAL(ppoll)(fds, nfds, ts, mask);
    int saved = errno;
    int64_t ns = ts_to_ns(ts);
    if (ns < -1)
        return finish((int)ns, saved);
    return finish(poll_accel(fds, nfds, ns, mask), saved);
}

#pragma GCC diagnostic pop

/* ---- select ---- */

#define NFDBITS_ (8 * (int)sizeof(unsigned long))

static inline unsigned long *fd_words(fd_set *set)
{
    return (unsigned long *)(void *)set;
}

static inline int bit_isset(fd_set *set, int fd)
{
    return set != NULL && (fd_words(set)[fd / NFDBITS_] >> (fd % NFDBITS_)) & 1;
}

/* Whether any fd in the three sets is accelerated: one table load per fd set. */
static int sets_have_accel(int nfds, fd_set *r, fd_set *w, fd_set *e)
{
    for (int base = 0; base < nfds; base += NFDBITS_) {
        unsigned long word = 0;
        if (r)
            word |= fd_words(r)[base / NFDBITS_];
        if (w)
            word |= fd_words(w)[base / NFDBITS_];
        if (e)
            word |= fd_words(e)[base / NFDBITS_];
        if (nfds - base < NFDBITS_)
            word &= (1ul << (nfds - base)) - 1;
        while (word) {
            int fd = base + __builtin_ctzl(word);
            word &= word - 1;
            if (byp_fd_ops(fd) != NULL)
                return 1;
        }
    }
    return 0;
}

/* select over sets holding accelerated fds, through poll_accel.  Returns the number of bits
 * set, or -errno (EBADF for a closed fd, as the kernel; the sets are then left alone). */
static int select_accel(int nfds, fd_set *r, fd_set *w, fd_set *e, int64_t timeout_ns,
                        const sigset_t *mask)
{
    int n = 0;
    for (int fd = 0; fd < nfds; fd++)
        n += bit_isset(r, fd) || bit_isset(w, fd) || bit_isset(e, fd);
    struct pollfd small[SMALL_SET];
    struct pollfd *p = n <= SMALL_SET ? small : malloc((size_t)n * sizeof *p);
    if (p == NULL)
        return -ENOMEM;
    int k = 0;
    for (int fd = 0; fd < nfds; fd++) {
        short ev = (short)((bit_isset(r, fd) ? POLLIN : 0) | (bit_isset(w, fd) ? POLLOUT : 0) |
                           (bit_isset(e, fd) ? POLLPRI : 0));
        if (ev)
            p[k++] = (struct pollfd){.fd = fd, .events = ev};
    }
    int rc = poll_accel(p, (nfds_t)n, timeout_ns, mask);
    for (int i = 0; rc >= 0 && i < n; i++)
        if (p[i].revents & POLLNVAL)
            rc = -EBADF;
    if (rc >= 0) {
        /* Clear exactly the nfds bits the call covers, then set the ready ones. */
        for (int fd = 0; fd < nfds; fd++) {
            unsigned long m = ~(1ul << (fd % NFDBITS_));
            if (r)
                fd_words(r)[fd / NFDBITS_] &= m;
            if (w)
                fd_words(w)[fd / NFDBITS_] &= m;
            if (e)
                fd_words(e)[fd / NFDBITS_] &= m;
        }
        rc = 0;
        for (int i = 0; i < n; i++) {
            int fd = p[i].fd;
            short re = p[i].revents;
            unsigned long m = 1ul << (fd % NFDBITS_);
            if ((p[i].events & POLLIN) && (re & (POLLIN | POLLRDNORM | POLLRDBAND | POLLHUP | POLLERR))) {
                fd_words(r)[fd / NFDBITS_] |= m;
                rc++;
            }
            if ((p[i].events & POLLOUT) && (re & (POLLOUT | POLLWRNORM | POLLWRBAND | POLLERR))) {
                fd_words(w)[fd / NFDBITS_] |= m;
                rc++;
            }
            if ((p[i].events & POLLPRI) && (re & POLLPRI)) {
                fd_words(e)[fd / NFDBITS_] |= m;
                rc++;
            }
        }
    }
    if (p != small)
        free(p);
    return rc;
}

BYP_EXPORT int select(int nfds, fd_set *r, fd_set *w, fd_set *e, struct timeval *tv)
{
    if (byp_likely(nfds <= 0 || !sets_have_accel(nfds, r, w, e)))
        return BYP_REAL(select)(nfds, r, w, e, tv);
    int saved = errno;
    int64_t ns = -1;
    if (tv != NULL) {
        if (tv->tv_sec < 0 || tv->tv_usec < 0)
            return finish(-EINVAL, saved);
        ns = tv->tv_sec >= INT64_MAX / 1000000000 - 1
                 ? -1
                 : (int64_t)tv->tv_sec * 1000000000 + (int64_t)tv->tv_usec * 1000;
    }
    int64_t start = byp_poll_now_ns();
    int rc = select_accel(nfds, r, w, e, ns, NULL);
    if (tv != NULL && ns >= 0) {
        /* Linux writes back the time left. */
        int64_t left = rc == 0 ? 0 : ns - (byp_poll_now_ns() - start);
        if (left < 0)
            left = 0;
        tv->tv_sec = left / 1000000000;
        tv->tv_usec = (left % 1000000000) / 1000;
    }
    return finish(rc, saved);
}

BYP_EXPORT int pselect(int nfds, fd_set *r, fd_set *w, fd_set *e, const struct timespec *ts,
                       const sigset_t *mask)
{
    if (byp_likely(nfds <= 0 || !sets_have_accel(nfds, r, w, e)))
        return BYP_REAL(pselect)(nfds, r, w, e, ts, mask);
    int saved = errno;
    int64_t ns = ts_to_ns(ts);
    if (ns < -1)
        return finish((int)ns, saved);
    return finish(select_accel(nfds, r, w, e, ns, mask), saved);
}

/* ---- epoll ---- */

BYP_EXPORT int epoll_create(int size)
{
    int fd = BYP_REAL(epoll_create)(size);
    if (fd >= 0)
        byp_fd_set_kernel(fd, BYP_FD_EPOLL);
    return fd;
}

BYP_EXPORT int epoll_create1(int flags)
{
    int fd = BYP_REAL(epoll_create1)(flags);
    if (fd >= 0)
        byp_fd_set_kernel(fd, BYP_FD_EPOLL);
    return fd;
}

BYP_EXPORT int epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
    if (byp_likely(byp_fd_ops(fd) == NULL)) {
        int rc = BYP_REAL(epoll_ctl)(epfd, op, fd, ev);
        if (rc == 0 && op == EPOLL_CTL_ADD) {
            /* A kernel TCP/UDP socket may become accelerated later (listen, connect): note it
             * for byp_epoll_adopt. */
            const byp_fd_t *e = byp_fd_get(fd);
            if (e != NULL && (e->kind == BYP_FD_KTCP || e->kind == BYP_FD_KUDP))
                byp_epoll_note_kernel(fd);
        }
        return rc;
    }
    return byp_epoll_ctl(epfd, op, fd, ev);
}

/* Where a plain wait of @timeout ms ends, on byp_poll_now_ns's clock (-1: never), for
 * byp_epoll_plain_after.  The clock is read only for a wait that has a timeout in a
 * process whose engine runs: without one no set gains accelerated members (should the
 * engine start during the wait, such a wait ends at the first private entry, with 0). */
static inline int64_t plain_deadline(int64_t timeout_ns)
{
    if (timeout_ns <= 0)
        return timeout_ns < 0 ? -1 : 0;
    return byp_likely(byp_engine == NULL) ? 0 : byp_poll_now_ns() + timeout_ns;
}

BYP_EXPORT int epoll_wait(int epfd, struct epoll_event *evs, int max, int timeout)
{
    struct byp_epoll_head *h = byp_epoll_active(epfd);
    if (byp_likely(h == NULL)) {
        int64_t deadline = plain_deadline(timeout < 0 ? -1 : (int64_t)timeout * 1000000);
        int k = BYP_REAL(epoll_wait)(epfd, evs, max, timeout);
        return byp_likely(k <= 0) ? k : byp_epoll_plain_after(epfd, evs, max, k, deadline, NULL);
    }
    return byp_epoll_wait(h, epfd, evs, max, timeout < 0 ? -1 : (int64_t)timeout * 1000000, NULL);
}

BYP_EXPORT int epoll_pwait(int epfd, struct epoll_event *evs, int max, int timeout,
                           const sigset_t *mask)
{
    struct byp_epoll_head *h = byp_epoll_active(epfd);
    if (byp_likely(h == NULL)) {
        int64_t deadline = plain_deadline(timeout < 0 ? -1 : (int64_t)timeout * 1000000);
        int k = BYP_REAL(epoll_pwait)(epfd, evs, max, timeout, mask);
        return byp_likely(k <= 0) ? k : byp_epoll_plain_after(epfd, evs, max, k, deadline, mask);
    }
    return byp_epoll_wait(h, epfd, evs, max, timeout < 0 ? -1 : (int64_t)timeout * 1000000, mask);
}

BYP_EXPORT int epoll_pwait2(int epfd, struct epoll_event *evs, int max, const struct timespec *ts,
                            const sigset_t *mask)
{
    struct byp_epoll_head *h = byp_epoll_active(epfd);
    if (byp_likely(h == NULL)) {
        int64_t d = ts_to_ns(ts);
        d = d < -1 ? 0 : plain_deadline(d);
        int k = BYP_REAL(epoll_pwait2)(epfd, evs, max, ts, mask);
        return byp_likely(k <= 0) ? k : byp_epoll_plain_after(epfd, evs, max, k, d, mask);
    }
    int64_t ns = ts_to_ns(ts);
    if (ns < -1) {
        errno = EINVAL;
        return -1;
    }
    return byp_epoll_wait(h, epfd, evs, max, ns, mask);
}
