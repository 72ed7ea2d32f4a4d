/* Epoll sets over any mix of kernel and accelerated fds (fd_epoll.c), and the small helpers
 * the readiness wrappers (wrap_poll.c) share with it.
 *
 * An epoll fd stays a plain kernel epoll (no ops table, every call straight to libc) until an
 * accelerated fd is added to it.  It then gets the epoll ops table and a struct byp_epoll:
 * the accelerated members live in a user-space list beside the kernel set, and the kernel
 * set gains the engine's wake eventfd (under a private data value that is never returned),
 * so that one real epoll_wait sleeps on both sides. */
#ifndef BYP_FD_EPOLL_H
#define BYP_FD_EPOLL_H

#include "fdtab.h"

/* The part of struct byp_epoll the wrappers read without its lock. */
struct byp_epoll_head {
    int nmembers;               /* accelerated members now (atomic) */
};

/* The ops table of an epoll fd that has (or had) accelerated members: libc for every call,
 * plus release/ref and readiness, so that an epoll fd can sit in poll(), select() or another
 * epoll beside accelerated fds. */
extern const byp_fd_ops_t byp_epoll_ops;

/* The set behind @epfd when it holds accelerated members, else NULL: the caller then goes
 * straight to libc.  One table load for a plain epoll fd. */
static inline struct byp_epoll_head *byp_epoll_active(int epfd)
{
    const byp_fd_ops_t *ops = byp_fd_ops(epfd);
    if (__builtin_expect(ops == NULL, 1) || ops != &byp_epoll_ops)
        return NULL;
    struct byp_epoll_head *h = byp_fdtab[epfd].obj;
    return h != NULL && __atomic_load_n(&h->nmembers, __ATOMIC_ACQUIRE) > 0 ? h : NULL;
}

/* epoll_ctl for an accelerated @fd (one with an ops table).  libc's convention: 0, or -1
 * with errno as the kernel would set it (EBADF, EINVAL, EEXIST, ENOENT, EFAULT, ENOMEM). */
int byp_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev);

/* epoll_wait on a set with accelerated members: @timeout_ns -1 waits forever; @mask (may be
 * NULL) is the epoll_pwait signal mask.  Returns the event count, 0 on timeout, or -1 with
 * errno (EINTR, EINVAL, EFAULT). */
int byp_epoll_wait(struct byp_epoll_head *h, int epfd, struct epoll_event *evs, int max,
                   int64_t timeout_ns, const sigset_t *mask);

/* After libc's epoll_wait on a set without accelerated members returned @k > 0 events:
 * drops the library's private entries a member added meanwhile brought (and waits on until
 * @deadline_ns, -1: none, when only those came).  The count, or -1 with errno. */
int byp_epoll_plain_after(int epfd, struct epoll_event *evs, int max, int k, int64_t deadline_ns,
                          const sigset_t *mask);

/* The accelerated fd @fd stops referring to @obj (its last release): take it out of every
 * epoll set, as the kernel does for a closed file.  Call it without the stack lock held:
 * epoll_wait calls readiness() under the set's lock. */
BYP_SHARED void byp_epoll_forget(int fd, void *obj);

/* @fd has just become accelerated (listen or connect taken over by the engine): epoll sets
 * that hold its kernel socket move it to their accelerated list, with the same events and
 * data.  Cheap when the fd was never added to an epoll set while it was a kernel socket.
 * Call it without the stack lock held. */
BYP_SHARED void byp_epoll_adopt(int fd);

/* A kernel TCP/UDP socket @fd was just added to an epoll set (for byp_epoll_adopt). */
void byp_epoll_note_kernel(int fd);

/* ---- shared by the readiness wrappers (clock and signal masks: wait.c) ---- */

/* CLOCK_MONOTONIC in nanoseconds. */
int64_t byp_poll_now_ns(void);

/* This wait's spin budget in ns (INT64_MAX: spin until ready; 0: sleep at once), from
 * BYPASS_SPIN_USEC and, with BYPASS_SPIN_ADAPTIVE, this thread's recent waits and the
 * threads spinning now.  *slot tells byp_spin_done whether it took a spinner's place. */
int64_t byp_spin_budget(int *slot);
/* Count a thread into @count (one of the family's counts, engine.h) and this member's
 * @share of it; take it off both, or off neither if the engine took the share back. */
void byp_held_enter(int *count, int *share);
void byp_held_leave(int *count, int *share);
/* The next sleep's length in ms, up to @deadline (byp_poll_now_ns's clock): this thread's
 * slice (the first one when @fixed); *@full tells whether the slice is shorter than what
 * is left.  After it, byp_sleep_slice_end: @woken, something woke the sleep; @found, the
 * wait found what it waited for.  A full slice that nothing woke but that found something
 * is a late wake-up (engine.h, byp_late_wakes). */
int byp_sleep_slice(int64_t deadline, int fixed, int *full);
void byp_sleep_slice_end(int full, int woken, int found);

/* The spin of a wait is over (before it sleeps or returns): give back its place. */
void byp_spin_done(int *slot);

/* A wait that slept went on for @slept_ns after it fell asleep before its condition held
 * (INT64_MAX for a wait that timed out asleep): adapts this thread's budget. */
void byp_spin_learn(int64_t slept_ns);

/* poll(2) bits from a readiness() value: POLLIN adds POLLRDNORM, POLLOUT adds POLLWRNORM,
 * as the kernel's socket poll reports them. */
static inline uint32_t byp_poll_bits(uint32_t r)
{
    if (r & POLLIN)
        r |= POLLRDNORM;
    if (r & POLLOUT)
        r |= POLLWRNORM;
    return r;
}

/* Install the signal mask of ppoll/pselect/epoll_pwait for the wait (nothing when @mask is
 * NULL), saving the thread's mask in @old.  Returns 0, or -EINTR when a signal that @mask
 * unblocks is already pending: it has then been delivered, the old mask is back, and the
 * call must fail with EINTR as the kernel's would. */
int byp_sigmask_enter(const sigset_t *mask, sigset_t *old);

/* Put back the mask saved by byp_sigmask_enter. */
void byp_sigmask_leave(const sigset_t *mask, const sigset_t *old);

#endif
