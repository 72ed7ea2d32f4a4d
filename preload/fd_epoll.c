/* The epoll kind: epoll sets over any mix of kernel and accelerated fds (their members,
 * waits and changes; the epoll fd's own kind and the set objects are in epoll_set.c).
 *
 * Kernel members stay in the kernel's epoll set.  Accelerated members (whose kernel socket is
 * an unconnected placeholder and must never be watched) live in a user-space list per set,
 * with their own level/edge/one-shot state; a member whose kind names a kernel fd to watch
 * beside the stack (an accelerated listener's own listening socket) is also registered in the
 * kernel set with the same events and data.  The first accelerated member adds the engine's
 * wake fds to the kernel set under private data values, so that a thread sleeping in the
 * real epoll_wait wakes for either side; they are filtered out of every result:
 *  - the wake group's fd (every sleeper of the process has it);
 *  - the set's own wake target (an eventfd the engine writes when a member's readiness
 *    changes: threads of one process sleeping on different sets do not wake one another);
 *  - while sleepers take the frames, the backend's receive fd, with EPOLLEXCLUSIVE: a frame
 *    wakes one sleeping set, which runs the stack (stack/wake.h). */
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "byp.h"
#include "engine.h"
#include "fd_epoll.h"

#include "fd_epoll_priv.h"


pthread_mutex_t byp_epoll_reg_lock = PTHREAD_MUTEX_INITIALIZER;
struct byp_epoll *byp_epoll_all_sets;
int byp_epoll_total_members;

/* ---- members ---- */

/* What @m has to report now: the events, 0 for nothing, -1 when its fd no longer refers to
 * the object it was added with (closed; the release path normally removes it first).
 * @take: this is a report (edge and one-shot bookkeeping).  Under the set's lock. */
int64_t byp_epoll_member_check(struct member *m, int take)
{
    const byp_fd_ops_t *ops = byp_fd_ops(m->fd);
    if (ops != m->ops || byp_fdtab[m->fd].obj != m->obj)
        return -1;
    if (!m->armed)
        return 0;
    uint64_t gen = 0;
    int have_gen = ops->event_gen != NULL;
    if (have_gen) {
        /* Read before readiness: an event in between moves it again for the next check. */
        gen = ops->event_gen(m->fd);
        if (m->idle && gen == m->idle_gen)
            return 0;
        if ((m->events & EPOLLET) && !m->fresh && gen == m->rep_gen)
            return 0;
    }
    uint32_t ready = ops->readiness != NULL ? byp_poll_bits(ops->readiness(m->fd)) : 0;
    uint32_t rev = ready & m->events & EV_REPORTABLE;
    if (rev == 0) {
        m->idle = (uint8_t)have_gen;
        m->idle_gen = gen;
        return 0;
    }
    m->idle = 0;
    if (take) {
        m->rep_gen = gen;
        m->fresh = 0;
        if (m->events & EPOLLONESHOT)
            m->armed = 0;
    }
    return rev;
}

int byp_epoll_member_find(const struct byp_epoll *ep, int fd, const void *obj)
{
    if (!ep->map_off) {
        int i = byp_epoll_index_find(ep, obj);
        return i >= 0 && ep->m[i].fd == fd ? i : -1;
    }
    for (int i = 0; i < ep->n; i++)
        if (ep->m[i].fd == fd && ep->m[i].obj == obj)
            return i;
    return -1;
}

/* Remove member @i (its kernel registration too, unless the kernel drops that itself
 * because @closing is its own fd).  Under the set's lock. */
static void member_remove(struct byp_epoll *ep, int epfd, int i, int closing)
{
    struct member *m = &ep->m[i];
    if (m->kfd >= 0 && !(closing && m->kfd == m->fd))
        BYP_REAL(epoll_ctl)(epfd, EPOLL_CTL_DEL, m->kfd, NULL);
    if (m->kfd >= 0)
        ep->nkfd--;
    ep->nunsure -= m->unsure;
    byp_epoll_index_remove(ep, i);
    ep->m[i] = ep->m[ep->n - 1];
    ep->n--;
    __atomic_store_n(&ep->head.nmembers, ep->n, __ATOMIC_RELEASE);
    __atomic_sub_fetch(&byp_epoll_total_members, 1, __ATOMIC_RELAXED);
    byp_epoll_wake_del(ep, epfd);
}

/* Append a member.  0 or -ENOMEM.  Under the set's lock. */
int byp_epoll_member_append(struct byp_epoll *ep, const struct member *m)
{
    if (ep->n == ep->cap) {
        int cap = ep->cap ? ep->cap * 2 : 16;
        struct member *a = realloc(ep->m, (size_t)cap * sizeof *a);
        if (a == NULL)
            return -ENOMEM;
        ep->m = a;
        ep->cap = cap;
    }
    struct member *nm = &ep->m[ep->n++];
    *nm = *m;
    /* A nested set's kernel side moves without engine events. */
    nm->unsure = nm->ops == &byp_epoll_ops || nm->ops->event_gen == NULL;
    nm->pending = 0;
    nm->stamp = 0;
    ep->nunsure += nm->unsure;
    if (m->kfd >= 0)
        ep->nkfd++;
    byp_epoll_index_add(ep, ep->n - 1);
    byp_epoll_pend(ep, ep->n - 1);   /* the next scan looks at it */
    __atomic_store_n(&ep->head.nmembers, ep->n, __ATOMIC_RELEASE);
    __atomic_add_fetch(&byp_epoll_total_members, 1, __ATOMIC_RELAXED);
    return 0;
}

/* Fill @out with up to @max ready accelerated members, round robin.  Stale members are
 * dropped on the way.  Takes the set's lock. */
static int collect(struct byp_epoll *ep, int epfd, struct epoll_event *out, int max)
{
    int got;
    /* Read before the scan: an event during it moves the counter for the next call. */
    const struct byp_engine *eng = byp_engine;
    const uint64_t *evp = eng != NULL ? eng->events : NULL;
    uint64_t ev_now = evp != NULL ? __atomic_load_n(evp, __ATOMIC_ACQUIRE) : 0;
    ep_mutex_lock(&ep->lock);
    int skip_ok = evp != NULL && ep->nunsure == 0;
    /* Nothing was ready at the last scan and no socket has changed since: a spinning
     * epoll_wait costs one comparison instead of a walk over every member. */
    if (skip_ok && !ep->rescan && ep->npend == 0 && ev_now == ep->seen_events) {
        ep_mutex_unlock(&ep->lock);
        return 0;
    }
    int stale = 0;
    /* Only the members whose sockets changed since the last scan, and the pend list. */
    if (skip_ok && !ep->rescan && !ep->map_off && eng->changes != NULL)
        got = byp_epoll_scan_changed(ep, eng->changes, evp, ev_now, out, max, &stale);
    else
        got = -1;
    if (got < 0) {
        /* All of them, from where the last full scan stopped (round robin). */
        got = 0;
        stale = 0;
        byp_epoll_pend_clear(ep);
        int n = ep->n;
        unsigned start = n > 0 ? ep->cursor % (unsigned)n : 0, next = start;
        for (int k = 0; k < n && got < max; k++) {
            int i = (int)((start + (unsigned)k) % (unsigned)n);
            struct member *m = &ep->m[i];
            int64_t rev = byp_epoll_member_check(m, 1);
            if (rev < 0) {
                m->ops = NULL;    /* marks it for removal below */
                stale++;
            } else if (rev > 0) {
                out[got].events = (uint32_t)rev;
                out[got].data = m->data;
                got++;
                next = (unsigned)i + 1;
                if (!(m->events & EPOLLET) && m->armed)
                    byp_epoll_pend(ep, i);   /* level-triggered: still ready until drained */
            }
        }
        ep->cursor = next;
        /* A full result may have left ready members unseen: look at all of them again. */
        ep->rescan = got == max;
    }
    for (int i = ep->n - 1; stale > 0 && i >= 0; i--)
        if (ep->m[i].ops == NULL) {
            member_remove(ep, epfd, i, 1);
            stale--;
        }
    ep->seen_events = ev_now;
    ep_mutex_unlock(&ep->lock);
    return got;
}

/* The kernel side, without waiting.  Count, or -1 with errno. */
static int kernel_take(struct byp_epoll *ep, int epfd, struct epoll_event *evs, int max)
{
    if (max <= 0)
        return 0;
    int k = BYP_REAL(epoll_wait)(epfd, evs, max, 0);
    if (k <= 0)
        return k;
    return byp_epoll_filter_wake(ep, evs, k, 0);
}

/* A listener's own kernel socket sits in the kernel set under the member's data: with
 * connections waiting on both paths (the stack's queue and the kernel's), one wait would
 * list the fd twice, which the kernel never does.  Fold each such pair of the @total
 * results into the first of them.  The new count. */
static int fold_twins(struct byp_epoll *ep, struct epoll_event *evs, int total)
{
    if (total < 2 || __atomic_load_n(&ep->nkfd, __ATOMIC_RELAXED) == 0)
        return total;
    int folded = 0;
    ep_mutex_lock(&ep->lock);
    for (int m = 0; m < ep->n; m++) {
        if (ep->m[m].kfd < 0)
            continue;
        uint64_t d = ep->m[m].data.u64;
        int first = -1;
        for (int i = 0; i < total; i++) {
            if (evs[i].events == 0 || evs[i].data.u64 != d)
                continue;
            if (first < 0) {
                first = i;
                continue;
            }
            evs[first].events |= evs[i].events;
            evs[i].events = 0;   /* no result has none: marks it folded */
            folded++;
        }
    }
    ep_mutex_unlock(&ep->lock);
    if (folded == 0)
        return total;
    int j = 0;
    for (int i = 0; i < total; i++)
        if (evs[i].events != 0)
            evs[j++] = evs[i];
    return j;
}

/* Both sides once, without waiting: the side that fills the result first alternates, so
 * that a busy side cannot starve the other when @max is small.  @with_kernel: include the
 * kernel set this time.  Count or -1 with errno. */
static int gather(struct byp_epoll *ep, int epfd, struct epoll_event *evs, int max,
                  int with_kernel)
{
    if (!with_kernel)
        return collect(ep, epfd, evs, max);
    unsigned turn = __atomic_fetch_add(&ep->turn, 1, __ATOMIC_RELAXED);
    int n, k;
    if (turn & 1) {
        k = kernel_take(ep, epfd, evs, max);
        if (k < 0)
            return -1;
        n = collect(ep, epfd, evs + k, max - k);
    } else {
        n = collect(ep, epfd, evs, max);
        k = kernel_take(ep, epfd, evs + n, max - n);
        if (k < 0)
            return n > 0 ? n : -1;
    }
    return k > 0 && n > 0 ? fold_twins(ep, evs, n + k) : n + k;
}

int byp_epoll_wait(struct byp_epoll_head *h, int epfd, struct epoll_event *evs, int max,
                   int64_t timeout_ns, const sigset_t *mask)
{
    struct byp_epoll *ep = (struct byp_epoll *)h;
    if (max <= 0 || max > EP_MAX_EVENTS) {
        errno = EINVAL;
        return -1;
    }
    if (evs == NULL) {
        errno = EFAULT;
        return -1;
    }
    int saved = errno;
    sigset_t old;
    if (byp_sigmask_enter(mask, &old) < 0) {
        errno = EINTR;
        return -1;
    }
    const struct byp_engine *eng = byp_engine;
    int64_t start = byp_poll_now_ns();
    int64_t deadline = timeout_ns < 0 ? INT64_MAX : start + timeout_ns;
    int slot;
    int64_t spin = byp_spin_budget(&slot);
    int64_t spin_end = spin == INT64_MAX ? INT64_MAX : start + spin;
    if (spin_end > deadline)
        spin_end = deadline;
    int rc, err = 0;
    unsigned seq = byp_sig_seq();
    /* No spin before the sleep: the sleep's own epoll_wait reports the kernel set, so a
     * look at it first would be a second system call per wait (an idle redis-server's
     * every timer tick). */
    int straight_to_sleep = spin_end <= start && deadline != start;

    /* Spin: the stack and the accelerated members every round, the kernel set every
     * KERNEL_POLL_RATIO rounds. */
    for (unsigned round = 0;; round++) {
        if (eng != NULL)
            eng->progress();
        /* The kernel set costs a system call: look at it every KERNEL_POLL_RATIO calls
         * (and rounds) while the stack has events, and before going to sleep unless the
         * sleep follows at once. */
        unsigned call = __atomic_fetch_add(&ep->calls, 1, __ATOMIC_RELAXED);
        rc = gather(ep, epfd, evs, max, call % KERNEL_POLL_RATIO == 0 && !straight_to_sleep);
        if (rc == 0 && call % KERNEL_POLL_RATIO != 0 && round % KERNEL_POLL_RATIO == 0 &&
            !straight_to_sleep)
            rc = gather(ep, epfd, evs, max, 1);
        if (rc != 0) {
            if (rc > 0 && timeout_ns != 0)
                __atomic_add_fetch(&byp_spin_hits, 1, __ATOMIC_RELAXED);
            byp_spin_done(&slot);
            goto out;
        }
        if (byp_sig_check(seq, 0) < 0) {
            /* A handler ran while spinning: epoll_wait is never restarted (signal(7)). */
            rc = -1;
            err = EINTR;
            byp_spin_done(&slot);
            goto out;
        }
        if (spin_end == INT64_MAX)
            continue;   /* no deadline and an endless spin: nothing to time */
        if (round % CLOCK_RATIO != 0 && deadline != start)
            continue;   /* reading the clock costs as much as a quiet round */
        int64_t t = byp_poll_now_ns();
        if (t >= deadline) {
            byp_spin_done(&slot);
            goto out;
        }
        if (t >= spin_end)
            break;
    }
    byp_spin_done(&slot);
    if (eng != NULL && (ep->frames_fd < 0 || __atomic_load_n(eng->frames_fd, __ATOMIC_ACQUIRE) < 0))
        eng->spin_over();   /* no frame wakes this sleep: the progress thread takes them */

    __atomic_add_fetch(&byp_spin_misses, 1, __ATOMIC_RELAXED);
    int64_t slept_from = byp_poll_now_ns();
    /* Sleep in the real epoll_wait: the wake fds in the kernel set stand for the stack. */
    for (;;) {
        if (ep->frames_fd >= 0 && eng != NULL && __atomic_load_n(eng->frames_fd, __ATOMIC_ACQUIRE) < 0) {
            /* The family forked: the progress thread takes the frames now. */
            ep_mutex_lock(&ep->lock);
            byp_epoll_frames_drop(ep, epfd);
            ep_mutex_unlock(&ep->lock);
        }
        /* Counted where the engine looks: the set's target, else the group's plain
         * sleepers (woken by every change of the group's sockets). */
        int *tsl = __atomic_load_n(&ep->target_sleepers, __ATOMIC_ACQUIRE);
        int *cnt = tsl != NULL ? tsl : __atomic_load_n(&byp_plain_sleepers, __ATOMIC_ACQUIRE);
        int *frames = ep->frames_fd >= 0 ? __atomic_load_n(&byp_frame_waiters, __ATOMIC_ACQUIRE) : NULL;
        int *all = __atomic_load_n(&byp_sleepers, __ATOMIC_ACQUIRE);
        struct byp_held *held = __atomic_load_n(&byp_held, __ATOMIC_ACQUIRE);
        /* A target's count stays with the target (a dead owner's is never written). */
        int unheld = 0, *cnt_share = tsl != NULL ? &unheld : &held->plain;
        byp_held_enter(cnt, cnt_share);
        byp_held_enter(all, &held->sleepers);
        if (frames != NULL)
            __atomic_add_fetch(frames, 1, __ATOMIC_SEQ_CST);
        rc = collect(ep, epfd, evs, max);
        int k = 0, full = 0;
        if (rc == 0) {
            k = BYP_REAL(epoll_wait)(epfd, evs, max, byp_sleep_slice(deadline, 0, &full));
            err = errno;
        }
        if (frames != NULL)
            __atomic_sub_fetch(frames, 1, __ATOMIC_SEQ_CST);
        byp_held_leave(all, &held->sleepers);
        byp_held_leave(cnt, cnt_share);
        if (rc > 0) {
            k = kernel_take(ep, epfd, evs + rc, max - rc);
            if (k > 0)
                rc = fold_twins(ep, evs, rc + k);
            goto out;
        }
        if (k < 0) {
            rc = -1;
            goto out;
        }
        int woken = k != 0;   /* before the wake fds' events are filtered out */
        k = byp_epoll_filter_wake(ep, evs, k, 1);
        if (eng != NULL)
            eng->progress();
        rc = k + collect(ep, epfd, evs + k, max - k);
        if (k > 0 && rc > k)
            rc = fold_twins(ep, evs, rc);
        byp_sleep_slice_end(full, woken, rc > 0);
        int64_t t = byp_poll_now_ns();
        if (rc > 0 || t >= deadline) {
            byp_spin_learn(rc > 0 ? t - slept_from : INT64_MAX);
            goto out;
        }
    }
out:
    if (rc < 0 && err == 0)
        err = errno;
    byp_sigmask_leave(mask, &old);
    errno = rc < 0 ? err : saved;
    return rc;
}

/* A wait that began on a set with no accelerated member (libc's epoll_wait, straight) and
 * returned @k events.  Another thread may have added the set's first accelerated member
 * meanwhile (Apache's event MPM adds connections from its workers while its listener thread
 * waits): the wake fds then joined the kernel set under private data values, which must
 * never reach the program (Apache took one for its own pointer and died of SIGBUS).  Drop
 * them; when nothing else is left, wait on for what remains of the timeout (@deadline_ns
 * on byp_poll_now_ns's clock, -1: none), as the set now is.  The count, or -1 with errno. */
int byp_epoll_plain_after(int epfd, struct epoll_event *evs, int max, int k, int64_t deadline_ns,
                          const sigset_t *mask)
{
    for (;;) {
        if (k <= 0 || byp_fd_ops(epfd) != &byp_epoll_ops)
            return k;
        struct byp_epoll *ep = byp_fdtab[epfd].obj;
        if (ep == NULL)
            return k;
        int saved = errno;
        k = byp_epoll_filter_wake(ep, evs, k, 1);
        errno = saved;
        if (k > 0)
            return k;
        int64_t left = -1;
        if (deadline_ns >= 0 && (left = deadline_ns - byp_poll_now_ns()) <= 0)
            return 0;
        if (__atomic_load_n(&ep->head.nmembers, __ATOMIC_ACQUIRE) > 0)
            return byp_epoll_wait(&ep->head, epfd, evs, max, left, mask);
        int ms = left < 0 ? -1 : left / 1000000 >= INT_MAX ? INT_MAX : (int)((left + 999999) / 1000000);
        k = BYP_REAL(epoll_pwait)(epfd, evs, max, ms, mask);
    }
}

/* A member added or re-armed while threads sleep on the set, and ready already: wake them,
 * as the kernel's epoll_ctl does (they would otherwise see it only when their sleep slice
 * ends, a second or more later).  Sleepers counted on the set's target only; the set
 * lock held. */
static void wake_for_ready_member(struct byp_epoll *ep, int fd, uint32_t events)
{
    int *tsl = __atomic_load_n(&ep->target_sleepers, __ATOMIC_ACQUIRE);
    if (tsl == NULL || ep->target_efd < 0)
        return;
    int n = __atomic_load_n(tsl, __ATOMIC_ACQUIRE);
    const byp_fd_ops_t *ops = byp_fd_ops(fd);
    if (n <= 0 || ops == NULL || ops->readiness == NULL ||
        !(byp_poll_bits(ops->readiness(fd)) & events & EV_REPORTABLE))
        return;
    uint64_t v = (uint64_t)n;
    int saved = errno;
    (void)!BYP_REAL(write)(ep->target_efd, &v, sizeof v);
    errno = saved;
}

/* ADD, MOD or DEL of accelerated @fd (ops @fops) in @ep.  0 or -errno. */
static int ctl_locked(struct byp_epoll *ep, int epfd, int op, int fd, const byp_fd_ops_t *fops,
                      struct epoll_event *ev)
{
    void *obj = byp_fdtab[fd].obj;
    int i = byp_epoll_member_find(ep, fd, obj);
    switch (op) {
    case EPOLL_CTL_ADD: {
        if (i >= 0)
            return -EEXIST;
        int kfd = fops->kernel_fd != NULL ? fops->kernel_fd(fd) : -1;
        if (kfd >= 0 && BYP_REAL(epoll_ctl)(epfd, EPOLL_CTL_ADD, kfd, ev) != 0)
            return -errno;
        int rc = byp_epoll_wake_add(ep, epfd);
        struct member m = {
            .fd = fd, .kfd = kfd, .obj = obj, .ops = fops,
            .events = ev->events | EPOLLERR | EPOLLHUP, .data = ev->data,
            .armed = 1, .fresh = 1,
        };
        if (rc == 0)
            rc = byp_epoll_member_append(ep, &m);
        if (rc == 0 && kfd < 0)
            byp_epoll_frames_add(ep, epfd);
        if (rc < 0) {
            if (kfd >= 0)
                BYP_REAL(epoll_ctl)(epfd, EPOLL_CTL_DEL, kfd, NULL);
            byp_epoll_wake_del(ep, epfd);
        }
        return rc;
    }
    case EPOLL_CTL_MOD: {
        if (i < 0)
            return -ENOENT;
        struct member *m = &ep->m[i];
        if (m->events & EPOLLEXCLUSIVE)
            return -EINVAL;
        if (m->kfd >= 0 && BYP_REAL(epoll_ctl)(epfd, EPOLL_CTL_MOD, m->kfd, ev) != 0)
            return -errno;
        m->events = ev->events | EPOLLERR | EPOLLHUP;
        m->data = ev->data;
        m->armed = 1;
        m->fresh = 1;
        m->idle = 0;
        byp_epoll_pend(ep, i);   /* re-armed: the next scan looks at it */
        return 0;
    }
    case EPOLL_CTL_DEL:
        if (i < 0)
            return -ENOENT;
        member_remove(ep, epfd, i, 0);
        return 0;
    default:
        return -EINVAL;
    }
}

int byp_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
    const byp_fd_ops_t *fops = byp_fd_ops(fd);
    if (byp_unlikely(fops != NULL && (byp_fd_replaces(fd) & 1))) {
        byp_fd_replace_wait(fd);   /* a dup2 onto @fd: the new file, once there */
        fops = byp_fd_ops(fd);
    }
    if (byp_unlikely(fops != NULL && byp_fdtab[fd].kind == BYP_FD_CLOSING)) {
        errno = EBADF;             /* closed by another thread meanwhile */
        return -1;
    }
    if (fops == NULL)
        return BYP_REAL(epoll_ctl)(epfd, op, fd, ev);
    int saved = errno;
    int rc;
    struct byp_epoll *ep = NULL;
    if (op != EPOLL_CTL_DEL && ev == NULL) {
        rc = -EFAULT;
    } else if ((rc = byp_epoll_set_attach(epfd, &ep)) < 0) {
        /* EBADF or EINVAL, as the kernel checks epfd */
    } else if (epfd == fd || ep == (struct byp_epoll *)byp_fdtab[fd].obj) {
        rc = -EINVAL;
    } else if (op != EPOLL_CTL_DEL && (ev->events & EPOLLEXCLUSIVE) &&
               (op == EPOLL_CTL_MOD || (op == EPOLL_CTL_ADD && ((ev->events & ~EXCLUSIVE_OK) ||
                                                                fops == &byp_epoll_ops)))) {
        rc = -EINVAL;
    } else {
        if (fops == &byp_epoll_ops && op == EPOLL_CTL_ADD) {
            /* A set inside another: its own target's count has no sleepers to go by (they
             * sleep on the outer set): it is woken by its group from now on. */
            struct byp_epoll *inner = byp_fdtab[fd].obj;
            ep_mutex_lock(&inner->lock);
            inner->nested = 1;
            byp_epoll_target_drop(inner, inner->epfd);
            ep_mutex_unlock(&inner->lock);
        }
        ep_mutex_lock(&ep->lock);
        int t_before = ep->target;
        rc = ctl_locked(ep, epfd, op, fd, fops, ev);
        int t_after = ep->target;
        if (rc == 0 && op != EPOLL_CTL_DEL)
            wake_for_ready_member(ep, fd, ev->events);
        ep_mutex_unlock(&ep->lock);
        if (rc == 0 && op == EPOLL_CTL_ADD)
            byp_epoll_watch(fd, t_after, 1);
        else if (rc == 0 && op == EPOLL_CTL_DEL && t_before == t_after)
            byp_epoll_watch(fd, t_before, 0);
        if (rc == 0 && op == EPOLL_CTL_ADD && (ev->events & EPOLLEXCLUSIVE) &&
            fops->epoll_exclusive != NULL)
            fops->epoll_exclusive(fd);
        struct stat st;
        if (rc == -ENOENT && op != EPOLL_CTL_ADD && fstat(fd, &st) == 0 &&
            byp_epoll_adopt_in(epfd, fd, fops, (unsigned long)st.st_ino)) {
            /* It was added while a kernel socket and nobody moved it over: now it is. */
            ep_mutex_lock(&ep->lock);
            rc = ctl_locked(ep, epfd, op, fd, fops, ev);
            int t = ep->target;
            ep_mutex_unlock(&ep->lock);
            if (rc == 0 && op == EPOLL_CTL_DEL)
                byp_epoll_watch(fd, t, 0);
        }
    }
    if (rc < 0) {
        errno = -rc;
        return -1;
    }
    errno = saved;
    return 0;
}

void byp_epoll_forget(int fd, void *obj)
{
    if (__atomic_load_n(&byp_epoll_total_members, __ATOMIC_RELAXED) == 0)
        return;
    int saved = errno;
    ep_mutex_lock(&byp_epoll_reg_lock);
    for (struct byp_epoll *ep = byp_epoll_all_sets; ep != NULL; ep = ep->next) {
        if (!ep->live || __atomic_load_n(&ep->head.nmembers, __ATOMIC_RELAXED) == 0)
            continue;
        ep_mutex_lock(&ep->lock);
        int i = byp_epoll_member_find(ep, fd, obj);
        if (i >= 0)
            member_remove(ep, ep->epfd, i, 1);
        ep_mutex_unlock(&ep->lock);
    }
    ep_mutex_unlock(&byp_epoll_reg_lock);
    errno = saved;
}
