/* The epoll kind's wake fds (see fd_epoll.c's head): the kernel set of an epoll set with
 * accelerated members holds, under private data values filtered out of every result, the
 * wake group's fd, the set's own wake target and, while sleepers take the frames, the
 * backend's receive fd (stack/wake.h). */
#include <stdint.h>
#include <unistd.h>

#include "byp.h"
#include "engine.h"
#include "fd_epoll.h"

#include "fd_epoll_priv.h"

/* The data values of the wake fds in kernel sets: the addresses of these bytes. */
static const char wake_tag, target_tag, frames_tag;
#define WAKE_DATA ((uint64_t)(uintptr_t)&wake_tag)
#define TARGET_DATA ((uint64_t)(uintptr_t)&target_tag)
#define FRAMES_DATA ((uint64_t)(uintptr_t)&frames_tag)

/* Register the engine's wake fds in the kernel set if they are not there.  0 or -errno
 * (only the group's is required: without a target or the frames the set still wakes). */
int byp_epoll_wake_add(struct byp_epoll *ep, int epfd)
{
    const struct byp_engine *eng = __atomic_load_n(&byp_engine, __ATOMIC_ACQUIRE);
    if (eng == NULL || eng->wake_fd < 0)
        return 0;
    if (ep->wake_fd < 0) {
        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = WAKE_DATA};
        if (BYP_REAL(epoll_ctl)(epfd, EPOLL_CTL_ADD, eng->wake_fd, &ev) != 0 && errno != EEXIST)
            return -errno;
        ep->wake_fd = eng->wake_fd;
    }
    int saved = errno;
    if (ep->target < 0 && !ep->nested) {
        int t = eng->target_open();
        if (t >= 0) {
            struct epoll_event ev = {.events = EPOLLIN, .data.u64 = TARGET_DATA};
            int efd = eng->target_fd(t);
            if (BYP_REAL(epoll_ctl)(epfd, EPOLL_CTL_ADD, efd, &ev) == 0) {
                ep->target = t;
                ep->target_efd = efd;
                ep->target_pid = getpid();
                __atomic_store_n(&ep->target_sleepers, eng->target_sleepers(t), __ATOMIC_RELEASE);
                /* A thread may be asleep in the kernel's epoll_wait on this set already,
                 * begun while it had no accelerated member: counted nowhere, nothing would
                 * wake it for this one when the progress thread takes its frames (a
                 * member added by another thread went unseen for the whole wait).  One
                 * count on the target brings it back through byp_epoll_wait, which counts
                 * it; a wait begun later takes the count and goes on waiting. */
                uint64_t one = 1;
                (void)!BYP_REAL(write)(efd, &one, sizeof one);
            } else {
                eng->target_close(t);
            }
        }
    }
    errno = saved;
    return 0;
}

/* The set takes frames from its first member that is no listener: a set of listeners only
 * (memcached's main thread) would take frames meant for the workers' sets and wait for the
 * stack lock they hold; while no set with connections sleeps, the progress thread takes
 * them and wakes the listener's set.  The set lock held. */
void byp_epoll_frames_add(struct byp_epoll *ep, int epfd)
{
    const struct byp_engine *eng = byp_engine;
    if (eng == NULL || ep->frames_fd >= 0)
        return;
    int saved = errno;
    int ffd = __atomic_load_n(eng->frames_fd, __ATOMIC_ACQUIRE);
    if (ffd >= 0) {
        struct epoll_event ev = {.events = EPOLLIN | EPOLLEXCLUSIVE, .data.u64 = FRAMES_DATA};
        if (BYP_REAL(epoll_ctl)(epfd, EPOLL_CTL_ADD, ffd, &ev) == 0) {
            ep->frames_fd = ffd;
            __atomic_add_fetch(__atomic_load_n(&byp_frames_adds, __ATOMIC_ACQUIRE), 1,
                               __ATOMIC_RELEASE);
        }
    }
    errno = saved;
}

/* Drop the set's wake target (the set lock held). */
void byp_epoll_target_drop(struct byp_epoll *ep, int epfd)
{
    if (ep->target < 0)
        return;
    __atomic_store_n(&ep->target_sleepers, NULL, __ATOMIC_RELEASE);
    if (ep->target_pid == getpid()) {   /* a child's copy of its parent's set leaves it */
        if (epfd >= 0)
            BYP_REAL(epoll_ctl)(epfd, EPOLL_CTL_DEL, ep->target_efd, NULL);
        const struct byp_engine *eng = byp_engine;
        if (eng != NULL)
            eng->target_close(ep->target);
    }
    ep->target = -1;
    ep->target_efd = -1;
}

/* Drop the receive fd from the kernel set (the set lock held). */
void byp_epoll_frames_drop(struct byp_epoll *ep, int epfd)
{
    if (ep->frames_fd < 0)
        return;
    if (epfd >= 0)
        BYP_REAL(epoll_ctl)(epfd, EPOLL_CTL_DEL, ep->frames_fd, NULL);
    ep->frames_fd = -1;
}

/* Take the wake fds out of the kernel set once no accelerated member is left, so that the
 * set goes back to plain libc calls. */
void byp_epoll_wake_del(struct byp_epoll *ep, int epfd)
{
    if (ep->n > 0 || ep->wake_fd < 0)
        return;
    BYP_REAL(epoll_ctl)(epfd, EPOLL_CTL_DEL, ep->wake_fd, NULL);
    ep->wake_fd = -1;
    byp_epoll_target_drop(ep, epfd);
    byp_epoll_frames_drop(ep, epfd);
}

void byp_epoll_watch(int fd, int t, int on)
{
    const struct byp_engine *eng = byp_engine;
    if (t >= 0 && eng != NULL)
        eng->watch(fd, t, on);
}

/* Drop the wake fds' entries from @k kernel results, returning what is left: a group's or
 * a target's count is taken (one per sleeper woken); frames are run only by a thread that
 * was asleep (@slept: a spinning one runs the stack anyway). */
int byp_epoll_filter_wake(struct byp_epoll *ep, struct epoll_event *evs, int k, int slept)
{
    int j = 0;
    for (int i = 0; i < k; i++) {
        const struct byp_engine *eng = byp_engine;
        if (evs[i].data.u64 == WAKE_DATA) {
            if (eng != NULL)
                eng->wake_drain();
            continue;
        }
        if (evs[i].data.u64 == TARGET_DATA) {
            uint64_t v;
            int saved = errno;
            if (ep->target_efd >= 0)
                (void)!BYP_REAL(read)(ep->target_efd, &v, sizeof v);
            errno = saved;
            continue;
        }
        if (evs[i].data.u64 == FRAMES_DATA) {
            if (slept && eng != NULL)
                eng->frames_drain();
            continue;
        }
        evs[j++] = evs[i];
    }
    return j;
}
