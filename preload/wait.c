/* Blocking the BYPASS_SPIN_USEC way: busy-poll the stack (and, every few rounds, the kernel
 * fds) until the condition holds; then sleep in poll(2) on the engine's wake fd (the wake
 * group's), its receive fd while sleepers take the frames, and the kernel fds — or, for a
 * call on one socket, on that socket's sleep word (byp_wait_on).
 * With BYPASS_SPIN_ADAPTIVE (the default) each thread's spin adapts, as KVM's halt polling
 * does: see byp_spin_budget() and byp_spin_learn(). */
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <linux/futex.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "byp.h"
#include "engine.h"
#include "fd_epoll.h"

/* Threads sleeping in byp_wait: the progress thread writes the wake fd only when nonzero. */
static int own_sleepers, own_plain, own_frames, own_pollers, own_words;
static unsigned own_slots;
static unsigned own_adds;
BYP_SHARED int *byp_sleepers = &own_sleepers;
BYP_SHARED int *byp_plain_sleepers = &own_plain;
BYP_SHARED int *byp_frame_waiters = &own_frames;
BYP_SHARED int *byp_frame_pollers = &own_pollers;
BYP_SHARED int *byp_word_sleepers = &own_words;
BYP_SHARED unsigned *byp_group_slots = &own_slots;
BYP_SHARED unsigned *byp_frames_adds = &own_adds;
static struct byp_held own_held;
BYP_SHARED struct byp_held *byp_held = &own_held;
static uint64_t own_late;
BYP_SHARED uint64_t *byp_late_wakes = &own_late;
/* Waits that ended while spinning / that went to sleep (published by the stats). */
BYP_SHARED uint64_t byp_spin_hits, byp_spin_misses;

/* A sleep's first slice: a wake-up lost to a race costs at most this (byp_sleep_slice). */
#define BYP_WAIT_SLICE_MS 100
/* Check the kernel fds once every this many spin rounds (a poll(2) system call each). */
#define BYP_KERNEL_POLL_RATIO 32


/* ---- counts kept with this member's share (engine.h, struct byp_held) ---- */

void byp_held_enter(int *count, int *share)
{
    __atomic_add_fetch(count, 1, __ATOMIC_SEQ_CST);
    __atomic_add_fetch(share, 1, __ATOMIC_SEQ_CST);
}

void byp_held_leave(int *count, int *share)
{
    if (__atomic_sub_fetch(share, 1, __ATOMIC_SEQ_CST) >= 0)
        __atomic_sub_fetch(count, 1, __ATOMIC_SEQ_CST);
    else
        __atomic_add_fetch(share, 1, __ATOMIC_SEQ_CST);   /* the engine took it back already */
}

/* Whether this member still holds wake slot @k (the engine has not taken it back). */
static int slot_held(const struct byp_held *h, int k)
{
    return (__atomic_load_n(&h->slots, __ATOMIC_SEQ_CST) >> k) & 1;
}

/* ---- clock and signal masks, shared with the readiness wrappers (fd_epoll.h) ---- */

int64_t byp_poll_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- signal masks (ppoll, pselect, epoll_pwait) ---- */

/* Whether a pending @sig would interrupt a wait once unblocked: not when its disposition
 * discards it (ignored, or a default action of ignore), as the kernel restarts then. */
static int interrupts(int sig)
{
    struct sigaction sa;
    if (sigaction(sig, NULL, &sa) != 0)
        return 1;
    if (sa.sa_handler == SIG_IGN)
        return 0;
    if (sa.sa_handler == SIG_DFL)
        return !(sig == SIGCHLD || sig == SIGURG || sig == SIGWINCH || sig == SIGCONT);
    return 1;
}

int byp_sigmask_enter(const sigset_t *mask, sigset_t *old)
{
    if (mask == NULL)
        return 0;
    sigset_t pend;
    int deliver = 0;
    if (sigpending(&pend) == 0)
        for (int s = 1; s < NSIG && !deliver; s++)
            if (sigismember(&pend, s) == 1 && sigismember(mask, s) == 0 && interrupts(s))
                deliver = 1;
    /* A pending signal the mask unblocks is delivered on return from this call. */
    pthread_sigmask(SIG_SETMASK, mask, old);
    if (deliver) {
        pthread_sigmask(SIG_SETMASK, old, NULL);
        return -EINTR;
    }
    return 0;
}

void byp_sigmask_leave(const sigset_t *mask, const sigset_t *old)
{
    if (mask != NULL)
        pthread_sigmask(SIG_SETMASK, old, NULL);
}

/* ---- adaptive spinning ----
 * A spin pays only when the wait ends while spinning and the spinner had a CPU to itself.
 * Measured (bench/deploy, docs/architecture.md "Deployment performance"): memcached's main
 * thread, which waits on the listening socket only, spun 100 us at every wake-up and took
 * as much of the server's CPU as the worker doing the requests.  So:
 * - each thread has its own budget, at most spin_usec: a wait that slept longer than
 *   spin_usec halves it (down to 0, no spin); a wait that ended within spin_usec of going
 *   to sleep (a longer spin would have caught it) doubles it (from SPIN_GROW_NS);
 * - at most as many threads of a process spin at once as it has CPUs to run on (its
 *   affinity mask): a further waiter sleeps at once, and whoever runs the stack wakes it. */
#define SPIN_GROW_NS 10000      /* first budget after a zero one */
#define SPIN_FLOOR_NS 2000      /* a budget below this is zero */

static __thread int64_t spin_ns = -1;   /* this thread's budget; -1 before its first wait */
/* Threads spinning now: of this process, and once the engine runs, of its whole family (a
 * counter in the engine's shared memory): eight PostgreSQL backends on one CPU each spinning
 * their budget took it from the one with work (pgbench -S at half the kernel's rate). */
static int own_spinners;
BYP_SHARED int *byp_spinners = &own_spinners;
static __thread int *spin_ctr;          /* the counter this thread's spin was counted in */
static __thread int *spin_share;        /* ... and this member's share of it */
static int spin_cpus;                   /* the CPUs it may run on (0 before the first wait) */

static int cpus_allowed(void)
{
    int cpus = __atomic_load_n(&spin_cpus, __ATOMIC_RELAXED);
    if (cpus == 0) {
        cpu_set_t set;
        cpus = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 1;
        if (cpus < 1)
            cpus = 1;
        __atomic_store_n(&spin_cpus, cpus, __ATOMIC_RELAXED);
    }
    return cpus;
}

int64_t byp_spin_budget(int *slot)
{
    long usec = byp_cfg.spin_usec;
    *slot = 0;
    if (usec < 0)
        return INT64_MAX;
    if (usec == 0 || !byp_cfg.spin_adaptive)
        return (int64_t)usec * 1000;
    if (spin_ns < 0)
        spin_ns = (int64_t)usec * 1000;
    if (spin_ns == 0)
        return 0;
    int cpus = cpus_allowed();
    int *ctr = __atomic_load_n(&byp_spinners, __ATOMIC_ACQUIRE);
    int *share = &__atomic_load_n(&byp_held, __ATOMIC_ACQUIRE)->spinners;
    if (__atomic_add_fetch(ctr, 1, __ATOMIC_ACQ_REL) > cpus) {
        __atomic_sub_fetch(ctr, 1, __ATOMIC_RELEASE);
        return 0;
    }
    __atomic_add_fetch(share, 1, __ATOMIC_SEQ_CST);
    spin_ctr = ctr;   /* the engine may start meanwhile and move byp_spinners */
    spin_share = share;
    *slot = 1;
    return spin_ns;
}

void byp_spin_done(int *slot)
{
    if (*slot)
        byp_held_leave(spin_ctr, spin_share);
    *slot = 0;
}

void byp_spin_learn(int64_t slept_ns)
{
    long usec = byp_cfg.spin_usec;
    if (usec <= 0 || !byp_cfg.spin_adaptive || spin_ns < 0)
        return;
    int64_t max = (int64_t)usec * 1000;
    if (slept_ns > max) {
        spin_ns /= 2;
        if (spin_ns < SPIN_FLOOR_NS)
            spin_ns = 0;
    } else {
        spin_ns = spin_ns == 0 ? SPIN_GROW_NS : spin_ns * 2;
        if (spin_ns > max)
            spin_ns = max;
    }
}

static int kernel_ready(struct pollfd *pfds, nfds_t n)
{
    if (n == 0)
        return 0;
    int saved = errno;
    int rc = BYP_REAL(poll)(pfds, n, 0);
    errno = saved;
    return rc > 0;
}

/* The spin of a wait: 1 @cond held, 2 a kernel fd ready, 0 timeout, -EINTR/-ERESTART, or
 * 3 when the spin ended with the deadline still ahead (the caller sleeps). */
static int spin(const struct byp_engine *eng, byp_wait_cond_t cond, void *arg, int64_t start,
                int64_t deadline, struct pollfd *pfds, nfds_t npfds, unsigned seq)
{
    int slot;
    int64_t budget = byp_spin_budget(&slot);
    int64_t spin_end = budget == INT64_MAX ? INT64_MAX : start + budget;
    if (spin_end > deadline)
        spin_end = deadline;
    int r = 3;
    for (unsigned round = 0;; round++) {
        if (eng != NULL)
            eng->progress();
        if (cond(arg)) {
            __atomic_add_fetch(&byp_spin_hits, 1, __ATOMIC_RELAXED);
            r = 1;
            break;
        }
        if (round % BYP_KERNEL_POLL_RATIO == 0 && kernel_ready(pfds, npfds)) {
            __atomic_add_fetch(&byp_spin_hits, 1, __ATOMIC_RELAXED);
            r = 2;
            break;
        }
        int sig = byp_sig_check(seq, 1);
        if (sig < 0) {
            r = sig;     /* a handler ran: the kernel would have woken us too */
            break;
        }
        if (spin_end == INT64_MAX)
            continue;   /* no deadline and an endless spin: nothing to time */
        if (round % 4 != 0 && deadline != start)
            continue;   /* reading the clock costs as much as a quiet round */
        int64_t t = byp_poll_now_ns();
        if (t >= deadline) {
            r = 0;
            break;
        }
        if (t >= spin_end)
            break;
    }
    byp_spin_done(&slot);
    if (r == 3)
        __atomic_add_fetch(&byp_spin_misses, 1, __ATOMIC_RELAXED);
    return r;
}

/* ---- sleep slices ----
 * A sleep is cut into slices: a wake-up lost to a race would cost at most one.  None is
 * lost in any workload tried (bypass-stat's late wake-ups, which the tests check under
 * nginx, PostgreSQL, memcached and redis load), so each slice that passes with nothing
 * doubles this thread's next, up to BYP_WAIT_SLICE_MAX_MS: an idle nginx's two workers
 * woke 200 times in 10 s (13.6 ms of CPU) where the kernel's never wake.  Anything that
 * ends a sleep brings the first slice back. */
#define BYP_WAIT_SLICE_MAX_MS 1600
static __thread int slice_now;   /* this thread's next slice in ms; 0: the first */

int byp_sleep_slice(int64_t deadline, int fixed, int *full)
{
    int slice = fixed || slice_now == 0 ? BYP_WAIT_SLICE_MS : slice_now;
    int64_t left = deadline - byp_poll_now_ns();
    *full = left / 1000000 > slice;
    return left <= 0 ? 0 : *full ? slice : (int)((left + 999999) / 1000000);
}

void byp_sleep_slice_end(int full, int woken, int found)
{
    if (full && !woken && found)
        __atomic_add_fetch(__atomic_load_n(&byp_late_wakes, __ATOMIC_ACQUIRE), 1, __ATOMIC_RELAXED);
    if (woken || found)
        slice_now = 0;
    else if (full)
        slice_now = slice_now == 0 ? 2 * BYP_WAIT_SLICE_MS
                    : slice_now * 2 > BYP_WAIT_SLICE_MAX_MS ? BYP_WAIT_SLICE_MAX_MS
                                                            : slice_now * 2;
}

/* A poll(2) or futex sleep ended with EINTR: what the wait returns.  A handler the
 * trampoline did not see (installed without libc) counts as one without SA_RESTART. */
static int interrupted(unsigned seq)
{
    int r = byp_sig_check(seq, 1);
    return r == 0 ? -EINTR : r;
}

static void learn(int result, int64_t slept_from)
{
    if (result == 1 || result == 2)
        byp_spin_learn(byp_poll_now_ns() - slept_from);
    else if (result == 0)
        byp_spin_learn(INT64_MAX);
}

/* Wake slots (engine.h): one per sleeping thread, taken from the family's mask. */
static int slot_take(const struct byp_engine *eng)
{
    if (eng->slots_busy == NULL)
        return -1;
    unsigned busy = __atomic_load_n(eng->slots_busy, __ATOMIC_ACQUIRE);
    for (;;) {
        int k = __builtin_ctz(~busy);
        if (k >= eng->nslots)
            return -1;
        if (__atomic_compare_exchange_n(eng->slots_busy, &busy, busy | 1u << k, 0,
                                        __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
            __atomic_or_fetch(&byp_held->slots, 1u << k, __ATOMIC_SEQ_CST);
            return k;
        }
    }
}

/* Give slot @k back, unless the engine took it back from this member already (it may be
 * another member's now). */
static void slot_give(const struct byp_engine *eng, int k)
{
    if (__atomic_fetch_and(&byp_held->slots, ~(1u << k), __ATOMIC_SEQ_CST) & 1u << k)
        __atomic_and_fetch(eng->slots_busy, ~(1u << k), __ATOMIC_RELEASE);
}

/* Sleep in poll(2) on a wake fd, the frames, the kernel UDP sockets' set and the caller's
 * kernel fds.  The wake fd is wake slot @k's eventfd, published in *@mask (a socket's word,
 * or the wake group's slots when @mask is NULL) before the condition is read, as a count
 * would be; with @k < 0 (no slot free) the wake group's eventfd, counted in its sleepers.
 * @seated (byp_wait_on): a slice that passes with nothing for this thread, or the frames
 * going to the progress thread (a fork), returns 3, to leave the seat. */
static int sleep_poll(const struct byp_engine *eng, byp_wait_cond_t cond, void *arg,
                      int64_t deadline, struct pollfd *pfds, nfds_t npfds, unsigned seq, int k,
                      unsigned *mask, int seated)
{
    struct pollfd local[16];
    nfds_t n = npfds + 3;
    struct pollfd *set = n <= 16 ? local : malloc(n * sizeof *set);
    if (set == NULL)
        return -ENOMEM;
    int result = 0, kfd = k >= 0 ? eng->kpath_fd() : -1;
    for (;;) {
        int ffd = eng != NULL ? __atomic_load_n(eng->frames_fd, __ATOMIC_ACQUIRE) : -1;
        if (seated && ffd < 0) {
            result = 3;
            break;
        }
        unsigned *pub = k < 0 ? NULL : mask != NULL ? mask
                                     : __atomic_load_n(&byp_group_slots, __ATOMIC_ACQUIRE);
        int wfd = k >= 0 ? eng->slot_fds[k] : eng ? eng->wake_fd : -1;
        set[0] = (struct pollfd){.fd = wfd, .events = POLLIN};
        set[1] = (struct pollfd){.fd = ffd >= 0 ? eng->frames_poll_fd() : -1, .events = POLLIN};
        /* The group's set holds the kernel UDP sockets' while the frames are the sleepers'. */
        set[2] = (struct pollfd){.fd = ffd >= 0 ? kfd : -1, .events = POLLIN};
        for (nfds_t i = 0; i < npfds; i++) {
            set[i + 3] = pfds[i];
            set[i + 3].revents = 0;
        }
        int *plain = __atomic_load_n(&byp_plain_sleepers, __ATOMIC_ACQUIRE);
        int *all = __atomic_load_n(&byp_sleepers, __ATOMIC_ACQUIRE);
        int *frames = __atomic_load_n(&byp_frame_waiters, __ATOMIC_ACQUIRE);
        int *pollers = __atomic_load_n(&byp_frame_pollers, __ATOMIC_ACQUIRE);
        struct byp_held *held = __atomic_load_n(&byp_held, __ATOMIC_ACQUIRE);
        if (pub != NULL) {
            __atomic_or_fetch(pub, 1u << k, __ATOMIC_SEQ_CST);
        } else {
            /* No wake target reaches this thread: a readiness change wakes its group. */
            byp_held_enter(plain, &held->plain);
            byp_held_enter(all, &held->sleepers);
        }
        if (ffd >= 0) {
            __atomic_add_fetch(pollers, 1, __ATOMIC_SEQ_CST);
            __atomic_add_fetch(frames, 1, __ATOMIC_SEQ_CST);
        }
        int ready = cond(arg), rc = 0, perr = 0, full = 0;
        if (!ready) {
            /* A seat's slice stays the first: a seat that waits a slice for nothing is
             * given up to threads with traffic. */
            rc = BYP_REAL(poll)(set, n, byp_sleep_slice(deadline, seated, &full));
            perr = errno;
        }
        if (ffd >= 0) {
            __atomic_sub_fetch(frames, 1, __ATOMIC_SEQ_CST);
            __atomic_sub_fetch(pollers, 1, __ATOMIC_SEQ_CST);
        }
        if (pub != NULL) {
            if (slot_held(held, k))   /* else the slot may be another member's now */
                __atomic_and_fetch(pub, ~(1u << k), __ATOMIC_SEQ_CST);
        } else {
            byp_held_leave(all, &held->sleepers);
            byp_held_leave(plain, &held->plain);
        }
        if (ready) {
            result = 1;
            break;
        }
        if (rc < 0 && perr == EINTR) {
            result = interrupted(seq);
            break;
        }
        if (rc > 0 && (set[0].revents & POLLIN)) {
            if (k >= 0) {
                uint64_t v;
                (void)!BYP_REAL(read)(wfd, &v, sizeof v);
            } else if (eng != NULL) {
                eng->wake_drain();
            }
        }
        if (rc > 0 && (set[2].revents & POLLIN))
            eng->kpath_wake();
        if (rc > 0 && ((set[1].revents | set[2].revents) & POLLIN) && eng != NULL)
            eng->frames_drain();
        if (rc > 0 && npfds > 0) {
            int any = 0;
            for (nfds_t i = 0; i < npfds; i++) {
                pfds[i].revents = set[i + 3].revents;
                any |= pfds[i].revents != 0;
            }
            if (any) {
                byp_sleep_slice_end(full, 1, 0);
                result = 2;
                break;
            }
        }
        if (eng != NULL)
            eng->progress();
        int found = cond(arg);
        byp_sleep_slice_end(full, rc != 0, found);
        if (found) {
            result = 1;
            break;
        }
        if (byp_poll_now_ns() >= deadline) {
            result = 0;
            break;
        }
        if (seated && rc == 0) {
            result = 3;
            break;
        }
    }
    if (set != local)
        free(set);
    return result;
}

/* Sleep on a socket's word (a futex in memory every member of the family maps: a change
 * made by another process wakes this thread too).  Counted as a sleeper first, then the
 * word read, then the condition: a change either comes before the condition is read or
 * finds the count and bumps the word (stack/wake.c, byp_wake_socket), which the futex
 * compares. */
static int sleep_word(const struct byp_engine *eng, byp_wait_cond_t cond, void *arg,
                      int64_t deadline, struct byp_sleep_word *sw, unsigned seq)
{
    int *all = __atomic_load_n(&byp_word_sleepers, __ATOMIC_ACQUIRE);
    int *share = &__atomic_load_n(&byp_held, __ATOMIC_ACQUIRE)->words;
    for (;;) {
        __atomic_add_fetch(&sw->sleepers, 1, __ATOMIC_SEQ_CST);
        byp_held_enter(all, share);
        uint32_t v = __atomic_load_n(&sw->seq, __ATOMIC_SEQ_CST);
        int ready = cond(arg), rc = 0, ferr = 0, full = 0;
        if (!ready) {
            int ms = byp_sleep_slice(deadline, 0, &full);
            struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
            rc = (int)syscall(SYS_futex, &sw->seq, FUTEX_WAIT, v, &ts, NULL, 0);
            ferr = errno;
        }
        byp_held_leave(all, share);
        __atomic_sub_fetch(&sw->sleepers, 1, __ATOMIC_SEQ_CST);
        if (ready)
            return 1;
        if (rc < 0 && ferr == EINTR)
            return interrupted(seq);
        if (eng != NULL)
            eng->progress();
        int found = cond(arg);
        byp_sleep_slice_end(full, !(rc < 0 && ferr == ETIMEDOUT), found);
        if (found)
            return 1;
        if (byp_poll_now_ns() >= deadline)
            return 0;
    }
}

/* The frames seats: while sleepers take the frames, as many threads of the whole family
 * blocked in byp_wait_on as the process has CPUs sleep on them (each member counts its own
 * seats, which the engine takes back from a member that died), each in a wake slot
 * published in its socket's word, the others on their words.  Every sleeper on the frames wakes for every frame (poll(2) is not
 * exclusive): 200 of them took a third of varnish's CPU in the scheduler.  A seated thread
 * that sleeps a whole slice with nothing for it stands up, so that the seats go to threads
 * with traffic, which a frame then wakes directly instead of through a seated thread. */
static int own_seats[BYP_FAMILY_MAX];
BYP_SHARED int *byp_seats = own_seats;
BYP_SHARED int *byp_seats_mine = &own_seats[0];

/* Seats taken in the whole family (the engine's per-member counts; a process alone before
 * the engine starts has its own). */
static int seats_taken(void)
{
    int *all = __atomic_load_n(&byp_seats, __ATOMIC_ACQUIRE), n = 0;
    for (int i = 0; i < BYP_FAMILY_MAX; i++)
        n += __atomic_load_n(&all[i], __ATOMIC_ACQUIRE);
    return n;
}

static int seat_take(const struct byp_engine *eng)
{
    if (__atomic_load_n(eng->frames_fd, __ATOMIC_ACQUIRE) < 0)
        return -1;
    int *mine = __atomic_load_n(&byp_seats_mine, __ATOMIC_ACQUIRE);
    __atomic_add_fetch(mine, 1, __ATOMIC_SEQ_CST);
    if (seats_taken() <= cpus_allowed()) {
        int k = slot_take(eng);
        if (k >= 0)
            return k;
    }
    __atomic_sub_fetch(mine, 1, __ATOMIC_RELEASE);
    return -1;
}

/* Leave seat @k; @to_word: this thread sleeps on its word next, blind to the frames as
 * the word sleepers already counted are.  The last seat left with such a sleeper wakes the
 * progress thread to watch the frames: its plan may date from when the seat was taken (no
 * frames watched, up to SLEEPER_CAP_NS).  A feed's burst of 300 datagrams reached a member
 * that had just stood up only that much later, the socket's queue full (issue 9's IGMP
 * test, about one run in 20). */
static void seat_leave(const struct byp_engine *eng, int k, int to_word)
{
    slot_give(eng, k);
    __atomic_sub_fetch(__atomic_load_n(&byp_seats_mine, __ATOMIC_ACQUIRE), 1, __ATOMIC_SEQ_CST);
    if (seats_taken() <= 0 &&
        (to_word || __atomic_load_n(byp_word_sleepers, __ATOMIC_SEQ_CST) > 0))
        eng->seat_left();
}

/* byp_wait and byp_wait_on: the spin, then a sleep on @sw (a seat, else the word), or,
 * with kernel fds or without @sw, in a wake slot published in @sw or the wake group's
 * mask. */
static int wait_for(byp_wait_cond_t cond, void *arg, int timeout_ms, struct pollfd *pfds,
                    nfds_t npfds, struct byp_sleep_word *sw)
{
    const struct byp_engine *eng = byp_engine;
    int64_t start = byp_poll_now_ns();
    int64_t deadline = timeout_ms < 0 ? INT64_MAX : start + (int64_t)timeout_ms * 1000000;
    unsigned seq = byp_sig_seq();
    int r = spin(eng, cond, arg, start, deadline, pfds, npfds, seq);
    if (r != 3)
        return r;
    if (eng != NULL && __atomic_load_n(eng->frames_fd, __ATOMIC_ACQUIRE) < 0)
        eng->spin_over();   /* the progress thread takes the frames while this one sleeps */
    int64_t slept_from = byp_poll_now_ns();
    int k;
    if (sw != NULL && eng != NULL && npfds == 0) {
        if ((k = seat_take(eng)) >= 0) {
            r = sleep_poll(eng, cond, arg, deadline, NULL, 0, seq, k, &sw->slots, 1);
            seat_leave(eng, k, r == 3);
        }
        if (r == 3)
            r = sleep_word(eng, cond, arg, deadline, sw, seq);
    } else {
        /* A socket's wait with kernel fds too (an accept that watches the kernel's listener
         * as well) publishes its slot in the socket's word, not the group's mask, which
         * every readiness change of the group wakes (a thread blocked in accept() beside
         * epoll workers woke once per request they served). */
        k = eng != NULL ? slot_take(eng) : -1;
        r = sleep_poll(eng, cond, arg, deadline, pfds, npfds, seq, k,
                       sw != NULL ? &sw->slots : NULL, 0);
        if (k >= 0)
            slot_give(eng, k);
    }
    learn(r, slept_from);
    return r;
}

int byp_wait(byp_wait_cond_t cond, void *arg, int timeout_ms, struct pollfd *pfds, nfds_t npfds)
{
    return wait_for(cond, arg, timeout_ms, pfds, npfds, NULL);
}

int byp_wait_on(byp_wait_cond_t cond, void *arg, int timeout_ms, struct byp_sleep_word *sw)
{
    return wait_for(cond, arg, timeout_ms, NULL, 0, sw);
}

int byp_wait_on_fds(byp_wait_cond_t cond, void *arg, int timeout_ms, struct byp_sleep_word *sw,
                    struct pollfd *pfds, nfds_t npfds)
{
    return wait_for(cond, arg, timeout_ms, pfds, npfds, sw);
}
