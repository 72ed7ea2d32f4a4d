/* Waking the threads that sleep on the stack: wake targets (one per epoll set), wake groups
 * (one per group of forked members) and the frames (wake.h).  The state lives in the
 * engine's shared data, so every member of the family sees the same counts; the eventfd
 * numbers of a target are its owner's only. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "byp.h"
#include "byp_stack.h"
#include "engine.h"
#include "engine_int.h"
#include "fd_udp.h"
#include "tcp_sock.h"
#include "udp_sock.h"
#include "family.h"
#include "wake.h"

/* ---- wake groups ----
 * Each group has a semaphore eventfd and an epoll set over it (plus the kernel UDP
 * sockets' set while the stack has one member), created at start and inherited by every
 * member.  A member's own group's pair also sits at the fd numbers wake_fd and sleep_fd
 * (dup3 in a forked child), which its epoll sets and waits use. */
static int group_sleepers[BYP_WAKE_GROUPS];   /* threads sleeping, per group */
static int group_plain[BYP_WAKE_GROUPS];      /* ... of which no target reaches (byp_wait) */
static int family_spinners;                  /* threads of every member spinning (wait.c) */
/* Threads sleeping on the frames, of which in byp_wait's poll(2), and the frames seats
 * taken (wait.c), per member: a member killed while asleep leaves its counts, which
 * byp_wake_drop_member takes back (a sleeper counted for ever would keep the progress
 * thread off the frames). */
static int frame_sleepers[BYP_FAMILY_MAX];
static int frame_pollers[BYP_FAMILY_MAX];
static int frame_seats[BYP_FAMILY_MAX];
static int word_sleepers;                    /* threads asleep on sleep words (byp_wait_on) */
static uint64_t late_wakes;                  /* the family's late wake-ups (engine.h) */
static struct byp_held held[BYP_FAMILY_MAX]; /* each member's share of the counts (engine.h) */
static unsigned frames_adds;                 /* epoll sets that added the receive fd */
static int group_wake_fd[BYP_WAKE_GROUPS];
static int group_sleep_fd[BYP_WAKE_GROUPS];
#define WAKE_TAG (-2)                /* the data of a group's eventfd in its epoll set */
static unsigned wake_groups;        /* groups to wake at unlock (lock held) */
static unsigned plain_groups;       /* ... if they have sleepers no target reaches */
static unsigned wake_one_of;        /* ... and one of these (EPOLLEXCLUSIVE listeners) */
static unsigned wake_one_next;      /* where the search for that one starts (round robin) */
static int wake_fd = -1;            /* this member's group's eventfd (a dup) */
static int sleep_fd = -1;           /* this member's group's epoll set (a dup) */
/* The backend's receive fd while sleepers take the frames (one member), else -1. */
int byp_wake_frames_fd = -1;
/* The progress thread's own epoll set over the receive fd (progress.c), or -1.  Made here,
 * at start, with the engine's other fds: made later by the progress thread, it could take
 * an fd number the program had just closed, and a call the program made on that number by
 * mistake would fail ENOTSOCK instead of EBADF (test_close_race.py saw it). */
int byp_wake_frames_set = -1;
/* The set byp_wait's sleepers poll for frames (byp_wake_pollers_fd), made with it. */
static int pollers_set = -1;
static unsigned pollers_set_adds;   /* frames_adds when it last went behind the sets */
static int pollers_set_lost;        /* re-adding failed: they poll the receive fd itself */
uint64_t byp_wake_events;           /* readiness changes, bumped under the lock */
static uint64_t events_woken;       /* value of byp_wake_events at the last plan */

/* ---- wake targets ---- */
struct target {
    pid_t owner;                    /* 0: free */
    int slot;                       /* the owner's family slot */
    int efd;                        /* a semaphore eventfd, in the owner's fd numbers */
    int sleepers;                   /* threads sleeping on it */
    unsigned group;                 /* the owner's wake group */
    uint8_t gen;                    /* bumped at every close: stale watches see it */
};
static struct target targets[BYP_WAKE_TARGETS];
static uint64_t wake_targets;       /* targets to wake at unlock (lock held) */
static uint64_t wake_one_targets;   /* ... one of these (EPOLLEXCLUSIVE listeners) */
static unsigned wake_one_tnext;
static uint32_t *wake_words[BYP_WAKE_WORDS];  /* sleep words to wake at unlock (lock held) */
static unsigned wake_nwords;

static void futex_wake(uint32_t *word)
{
    int saved = errno;
    syscall(SYS_futex, word, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
    errno = saved;
}

/* Wake slots (engine.h): eventfds made at start with the engine's other fds. */
static int slot_fds[BYP_WAKE_SLOTS];
static int nslots;
static unsigned slots_busy;                   /* taken, by any member */
static unsigned group_slots[BYP_WAKE_GROUPS]; /* per group: slots of its byp_wait sleepers */
static unsigned wake_slots;                   /* slots to wake at unlock (lock held) */

/* Threads asleep on @w's word: bump it now (the socket is alive under the lock) and wake
 * them once the lock is released; the wake itself only names the address, so a socket
 * freed meanwhile costs a sleeper elsewhere a spurious wake-up, never a write.  Seated
 * threads asleep for the socket get their slots' eventfds written. */
static void wake_word(const struct byp_watch *w)
{
    struct byp_sleep_word *sw = (struct byp_sleep_word *)&w->sleep;
    wake_slots |= __atomic_load_n(&sw->slots, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&sw->sleepers, __ATOMIC_SEQ_CST) == 0)
        return;
    __atomic_add_fetch(&sw->seq, 1, __ATOMIC_SEQ_CST);
    for (unsigned i = 0; i < wake_nwords; i++)
        if (wake_words[i] == &sw->seq)
            return;
    if (wake_nwords < BYP_WAKE_WORDS)
        wake_words[wake_nwords++] = &sw->seq;
    else
        futex_wake(&sw->seq);   /* rare: many sockets changed in one hold */
}

static unsigned my_group(void)
{
    return byp_wake_group(byp_local->slot);
}

/* Which socket each readiness change was about: entry e % BYP_CHANGE_LOG for the change
 * that moved byp_wake_events from e to e + 1 (NULL: any socket may have changed).  An
 * epoll set looks at just those sockets instead of at every member (struct byp_engine
 * changes).  Written under the stack lock, before the count that publishes it. */
const void *byp_change_log[BYP_CHANGE_LOG];

void byp_wake_socket(const void *obj, const struct byp_watch *w, unsigned groups, int exclusive)
{
    uint64_t e = __atomic_load_n(&byp_wake_events, __ATOMIC_RELAXED);
    __atomic_store_n(&byp_change_log[e & (BYP_CHANGE_LOG - 1)], obj, __ATOMIC_RELAXED);
    __atomic_store_n(&byp_wake_events, e + 1, __ATOMIC_RELEASE);
    if (w != NULL)
        wake_word(w);
    if (w == NULL || w->n == 0 || w->all) {
        if (exclusive)
            wake_one_of |= groups;
        else
            wake_groups |= groups;
        return;
    }
    pid_t me = byp_local->pid;
    for (unsigned i = 0; i < w->n; i++) {
        const struct target *t = &targets[w->t[i]];
        if (t->owner == 0 || t->gen != w->gen[i]) {
            /* The set closed its target (no members left, or it went inside another set
             * or a poll): whoever sleeps on it now sleeps on its group. */
            if (exclusive)
                wake_one_of |= groups;
            else
                wake_groups |= groups;
        } else if (t->owner == me) {
            if (exclusive)
                wake_one_targets |= 1ull << w->t[i];
            else
                wake_targets |= 1ull << w->t[i];
        } else if (exclusive) {
            wake_one_of |= 1u << t->group;   /* another process's set: its group */
        } else {
            wake_groups |= 1u << t->group;
        }
    }
    plain_groups |= groups;   /* a thread blocked in recv or poll on it sleeps on its group */
}

void byp_engine_event_groups(unsigned groups)
{
    byp_wake_socket(NULL, NULL, groups, 0);
}

void byp_engine_event_one(unsigned groups)
{
    byp_wake_socket(NULL, NULL, groups, 1);
}

void byp_engine_event(void)
{
    byp_wake_socket(NULL, NULL, (1u << BYP_WAKE_GROUPS) - 1, 0);
}

int byp_wake_plan(struct byp_wake_plan *p)
{
    int changed = byp_wake_events != events_woken;
    events_woken = byp_wake_events;
    unsigned groups = changed ? wake_groups : 0;
    unsigned plain = changed ? plain_groups : 0;
    unsigned one_of = changed ? wake_one_of : 0;
    uint64_t tg = changed ? wake_targets : 0;
    uint64_t one_t = changed ? wake_one_targets : 0;
    wake_groups = plain_groups = wake_one_of = 0;
    wake_targets = wake_one_targets = 0;
    p->groups = 0;
    p->targets = 0;
    p->nwords = wake_nwords;
    for (unsigned i = 0; i < wake_nwords; i++)
        p->words[i] = wake_words[i];
    wake_nwords = 0;
    p->slots = wake_slots;
    wake_slots = 0;
    if (!changed)
        return p->nwords != 0 || p->slots != 0;
    for (unsigned m = plain & ~groups; m != 0; m &= m - 1) {
        unsigned g = (unsigned)__builtin_ctz(m);
        if (__atomic_load_n(&group_plain[g], __ATOMIC_SEQ_CST) > 0 ||
            __atomic_load_n(&group_slots[g], __ATOMIC_SEQ_CST) != 0)
            groups |= 1u << g;
    }
    for (unsigned m = groups; m != 0; m &= m - 1) {
        unsigned g = (unsigned)__builtin_ctz(m);
        p->slots |= __atomic_load_n(&group_slots[g], __ATOMIC_SEQ_CST);
        p->n[g] = __atomic_load_n(&group_sleepers[g], __ATOMIC_SEQ_CST);
        if (p->n[g] > 0)
            p->groups |= 1u << g;
    }
    for (uint64_t m = tg; m != 0; m &= m - 1) {
        unsigned t = (unsigned)__builtin_ctzll(m);
        p->tn[t] = __atomic_load_n(&targets[t].sleepers, __ATOMIC_SEQ_CST);
        if (p->tn[t] > 0)
            p->targets |= 1ull << t;
    }
    if (one_t != 0 && (one_t & p->targets) == 0) {
        /* An EPOLLEXCLUSIVE listener in sets of this process: one set with sleepers. */
        for (unsigned k = 0; k < BYP_WAKE_TARGETS; k++) {
            unsigned t = (wake_one_tnext + k) % BYP_WAKE_TARGETS;
            if (!(one_t & (1ull << t)))
                continue;
            p->tn[t] = __atomic_load_n(&targets[t].sleepers, __ATOMIC_SEQ_CST);
            if (p->tn[t] > 0) {
                p->targets |= 1ull << t;
                wake_one_tnext = t + 1;
                one_of = 0;   /* woken here: no other process's group too */
                break;
            }
        }
    }
    if (one_of != 0 && (one_of & p->groups) == 0) {
        /* An EPOLLEXCLUSIVE listener: the first group holding it that has sleepers, from
         * where the last search stopped; none sleeping, whoever runs next sees it. */
        for (unsigned k = 0; k < BYP_WAKE_GROUPS; k++) {
            unsigned g = (wake_one_next + k) % BYP_WAKE_GROUPS;
            if (!(one_of & (1u << g)))
                continue;
            p->n[g] = __atomic_load_n(&group_sleepers[g], __ATOMIC_SEQ_CST);
            unsigned sl = __atomic_load_n(&group_slots[g], __ATOMIC_SEQ_CST);
            if (p->n[g] > 0 || sl != 0) {
                if (p->n[g] > 0)
                    p->groups |= 1u << g;
                p->slots |= sl;
                wake_one_next = g + 1;
                break;
            }
        }
    }
    return p->groups != 0 || p->targets != 0 || p->nwords != 0 || p->slots != 0;
}

void byp_wake_send(const struct byp_wake_plan *p)
{
    /* Semaphore eventfds: one count per sleeper, each takes one (byp_wake_drain,
     * byp_wake_target_drain), so no sleeper is robbed of its wake-up by another. */
    for (unsigned m = p->groups; m != 0; m &= m - 1) {
        unsigned g = (unsigned)__builtin_ctz(m);
        uint64_t cnt = (uint64_t)p->n[g];
        (void)!BYP_REAL(write)(group_wake_fd[g], &cnt, sizeof cnt);
    }
    for (uint64_t m = p->targets; m != 0; m &= m - 1) {
        unsigned t = (unsigned)__builtin_ctzll(m);
        uint64_t cnt = (uint64_t)p->tn[t];
        (void)!BYP_REAL(write)(targets[t].efd, &cnt, sizeof cnt);
    }
    for (unsigned i = 0; i < p->nwords; i++)
        futex_wake(p->words[i]);
    for (unsigned m = p->slots; m != 0; m &= m - 1) {
        uint64_t one = 1;
        (void)!BYP_REAL(write)(slot_fds[__builtin_ctz(m)], &one, sizeof one);
    }
}

static int sum(const int *per_member)
{
    int n = 0;
    for (int i = 0; i < BYP_FAMILY_MAX; i++)
        n += __atomic_load_n(&per_member[i], __ATOMIC_RELAXED);
    return n;
}

int byp_frame_sleepers(void)
{
    /* Without a receive fd (memif, pci) no sleeper sees frames come: the progress thread
     * polls for them (test_memif_redis took 47 s once waits stopped spinning). */
    if (byp_wake_frames_fd < 0)
        return 0;
    return sum(frame_sleepers);
}

int byp_frame_pollers_n(void)
{
    if (byp_wake_frames_fd < 0)
        return 0;
    return sum(frame_pollers);
}

/* Take back what member @slot's threads still count in the family's counts: it died, or
 * leaves, with threads in a wait (lock held); also at engine start and in a forked child,
 * for the slot this process takes.  Its wake targets go too: their eventfds were its own
 * fd numbers, which no one else may write. */
void byp_wake_drop_member(int slot)
{
    __atomic_store_n(&frame_sleepers[slot], 0, __ATOMIC_RELAXED);
    __atomic_store_n(&frame_pollers[slot], 0, __ATOMIC_RELAXED);
    __atomic_store_n(&frame_seats[slot], 0, __ATOMIC_RELAXED);
    struct byp_held *h = &held[slot];
    unsigned g = byp_wake_group(slot);
    int n;
    /* Exchanged for 0 one by one: a thread of a leaving member that takes itself off
     * later finds its share gone and leaves the count alone (byp_held_leave). */
    if ((n = __atomic_exchange_n(&h->sleepers, 0, __ATOMIC_SEQ_CST)) > 0)
        __atomic_sub_fetch(&group_sleepers[g], n, __ATOMIC_SEQ_CST);
    if ((n = __atomic_exchange_n(&h->plain, 0, __ATOMIC_SEQ_CST)) > 0)
        __atomic_sub_fetch(&group_plain[g], n, __ATOMIC_SEQ_CST);
    if ((n = __atomic_exchange_n(&h->words, 0, __ATOMIC_SEQ_CST)) > 0)
        __atomic_sub_fetch(&word_sleepers, n, __ATOMIC_SEQ_CST);
    if ((n = __atomic_exchange_n(&h->spinners, 0, __ATOMIC_SEQ_CST)) > 0)
        __atomic_sub_fetch(&family_spinners, n, __ATOMIC_SEQ_CST);
    unsigned sl = __atomic_exchange_n(&h->slots, 0, __ATOMIC_SEQ_CST);
    if (sl != 0) {
        __atomic_and_fetch(&group_slots[g], ~sl, __ATOMIC_SEQ_CST);
        __atomic_and_fetch(&slots_busy, ~sl, __ATOMIC_SEQ_CST);
    }
    for (int t = 0; t < BYP_WAKE_TARGETS; t++)
        if (targets[t].owner != 0 && targets[t].slot == slot) {
            targets[t].owner = 0;
            targets[t].gen++;
        }
}

/* Threads of the family asleep in a wait, and spinning; its late wake-ups (the stats). */
void byp_wake_waiters(uint64_t *sleeping, uint64_t *spinning, uint64_t *late)
{
    *late = __atomic_load_n(&late_wakes, __ATOMIC_RELAXED);
    int n = __atomic_load_n(&word_sleepers, __ATOMIC_RELAXED);
    for (int g = 0; g < BYP_WAKE_GROUPS; g++)
        n += __atomic_load_n(&group_sleepers[g], __ATOMIC_RELAXED);
    n += __builtin_popcount(__atomic_load_n(&slots_busy, __ATOMIC_RELAXED));
    int s = __atomic_load_n(&family_spinners, __ATOMIC_RELAXED);
    *sleeping = n > 0 ? (uint64_t)n : 0;
    *spinning = s > 0 ? (uint64_t)s : 0;
}

static void wake_counters_mine(int slot)
{
    byp_wake_drop_member(slot);   /* a slot taken again starts from nothing */
    byp_held = &held[slot];
    byp_frame_waiters = &frame_sleepers[slot];
    byp_frame_pollers = &frame_pollers[slot];
    byp_seats_mine = &frame_seats[slot];
}

int byp_engine_sleeping(void)
{
    int n = __atomic_load_n(&word_sleepers, __ATOMIC_RELAXED);
    for (int g = 0; g < BYP_WAKE_GROUPS; g++)
        n += __atomic_load_n(&group_sleepers[g], __ATOMIC_RELAXED);
    return n;
}

/* ---- what sleepers call (struct byp_engine) ---- */

const int *byp_wake_slot_fds(int *n, unsigned **busy)
{
    *n = nslots;
    *busy = &slots_busy;
    return slot_fds;
}

int byp_wake_sleep_fd(void)
{
    return sleep_fd;
}

/* Frames woke a sleeper.  Frames in the ring keep the receive fd readable (level-
 * triggered), so a sleeper that only tried the lock, found it taken and slept again woke
 * again at once: memcached's main thread made 200k epoll_wait+read calls a second while its
 * worker ran the stack (docs/architecture.md, "Deployment performance").  Whoever wakes for
 * frames runs the stack until the ring is empty, waiting for the lock if need be; a thread
 * that keeps finding frames stops after 16 rounds and goes back to its caller (it runs the
 * stack again on its next wait). */
void byp_wake_frames_drain(void)
{
    int saved = errno;
    for (int i = 0; i < 16 && byp_engine_run(1, 1) > 0; i++)
        ;
    errno = saved;
}

/* A sleeper woke on its group's set: take one count, and run the stack if the kernel UDP
 * sockets' set is what woke it. */
void byp_wake_drain(void)
{
    byp_udp_kpath_wake();   /* the wake-up may be a kernel UDP socket's: look at once */
    struct epoll_event ev[2];
    int saved = errno, other = 0;
    int n = BYP_REAL(epoll_wait)(sleep_fd, ev, 2, 0);
    for (int i = 0; i < n; i++) {
        if (ev[i].data.fd == WAKE_TAG) {
            uint64_t v;
            (void)!BYP_REAL(read)(wake_fd, &v, sizeof v);
        } else {
            other = 1;
        }
    }
    errno = saved;
    if (other)
        byp_wake_frames_drain();
}

/* A target for an epoll set of this process: its index, or -ENOSPC / -errno. */
int byp_wake_target_open(void)
{
    int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC | EFD_SEMAPHORE);
    if (efd < 0)
        return -errno;
    byp_stack_lock_raw();
    int t = -ENOSPC;
    for (int i = 0; i < BYP_WAKE_TARGETS; i++)
        if (targets[i].owner == 0) {
            /* The count of sleepers is kept across close and reuse: a thread still asleep
             * on a closed target takes itself off the count when it wakes. */
            targets[i] = (struct target){.owner = byp_local->pid, .slot = byp_local->slot,
                                         .efd = efd, .group = my_group(),
                                         .gen = targets[i].gen, .sleepers = targets[i].sleepers};
            t = i;
            break;
        }
    byp_stack_unlock_nokick();
    if (t < 0)
        BYP_REAL(close)(efd);
    return t;
}

/* The set no longer needs its target: free it if this process owns it (a forked child
 * holding its parent's set leaves it to the parent).  Sockets still listing it cost a
 * spurious wake-up of whichever set takes it next, never a lost one. */
void byp_wake_target_close(int t)
{
    if (t < 0 || t >= BYP_WAKE_TARGETS)
        return;
    byp_stack_lock_raw();
    int efd = -1;
    if (targets[t].owner == byp_local->pid) {
        efd = targets[t].efd;
        targets[t].owner = 0;
        targets[t].gen++;
    }
    byp_stack_unlock_nokick();
    if (efd >= 0)
        BYP_REAL(close)(efd);
}

int byp_wake_target_fd(int t)
{
    return t >= 0 && t < BYP_WAKE_TARGETS ? targets[t].efd : -1;
}

int *byp_wake_target_sleepers(int t)
{
    return &targets[t].sleepers;
}

/* The watch list of accelerated @fd's socket, or NULL (another kind). */
static struct byp_watch *watch_of(int fd)
{
    const byp_fd_ops_t *ops = byp_fd_ops(fd);
    if (ops == &byp_tcp_ops)
        return &TS(fd)->watch;
    if (ops == &byp_udp_ops)
        return &US(fd)->watch;
    return NULL;
}

/* @fd went into (@on) or out of the set of target @t. */
void byp_wake_watch(int fd, int t, int on)
{
    if (t < 0 || t >= BYP_WAKE_TARGETS)
        return;
    byp_stack_lock_raw();
    struct byp_watch *w = watch_of(fd);
    if (w != NULL) {
        /* Stale entries (targets closed since) go first: they only cost group wake-ups. */
        for (unsigned k = w->n; k-- > 0;)
            if (targets[w->t[k]].owner == 0 || targets[w->t[k]].gen != w->gen[k]) {
                w->n--;
                w->t[k] = w->t[w->n];
                w->gen[k] = w->gen[w->n];
            }
        unsigned i;
        for (i = 0; i < w->n && w->t[i] != t; i++)
            ;
        if (!on && i < w->n) {
            w->n--;
            w->t[i] = w->t[w->n];
            w->gen[i] = w->gen[w->n];
        } else if (on && i == w->n) {
            if (w->n < sizeof w->t) {
                w->t[w->n] = (uint8_t)t;
                w->gen[w->n] = targets[t].gen;
                w->n++;
            } else {
                w->all = 1;   /* in more sets than it can list: by group from now on */
            }
        }
    }
    byp_stack_unlock_nokick();
}

/* ---- open, fork ---- */

/* An epoll set over the receive fd, EPOLLEXCLUSIVE, for a poll(2) sleeper: or -1. */
static int frames_set_make(void)
{
    int set = BYP_REAL(epoll_create1)(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLEXCLUSIVE};
    if (set >= 0 && BYP_REAL(epoll_ctl)(set, EPOLL_CTL_ADD, byp_xsk_fd, &ev) != 0) {
        BYP_REAL(close)(set);
        set = -1;
    }
    return set;
}

int byp_wake_open(void)
{
    byp_sleepers = &group_sleepers[0];
    byp_plain_sleepers = &group_plain[0];
    byp_seats = frame_seats;
    wake_counters_mine(0);
    byp_word_sleepers = &word_sleepers;
    byp_frames_adds = &frames_adds;
    byp_spinners = &family_spinners;
    byp_late_wakes = &late_wakes;
    for (int g = 0; g < BYP_WAKE_GROUPS; g++) {
        group_wake_fd[g] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC | EFD_SEMAPHORE);
        group_sleep_fd[g] = BYP_REAL(epoll_create1)(EPOLL_CLOEXEC);
        if (group_wake_fd[g] < 0 || group_sleep_fd[g] < 0)
            return -errno;
        /* The eventfd is known by a tag, not its number: a child's dup has another. */
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = WAKE_TAG};
        if (BYP_REAL(epoll_ctl)(group_sleep_fd[g], EPOLL_CTL_ADD, group_wake_fd[g], &ev) != 0)
            return -errno;
        /* The kernel UDP sockets' set (udp_kpath.c), taken like the frames. */
        ev.data.fd = byp_udp_kpath_fd();
        if (ev.data.fd >= 0)
            BYP_REAL(epoll_ctl)(group_sleep_fd[g], EPOLL_CTL_ADD, ev.data.fd, &ev);
    }
    for (nslots = 0; nslots < BYP_WAKE_SLOTS; nslots++)
        if ((slot_fds[nslots] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0)
            break;   /* fewer slots: more sleepers on their words or the groups */
    byp_group_slots = &group_slots[0];
    wake_fd = BYP_REAL(fcntl)(group_wake_fd[0], F_DUPFD_CLOEXEC, 0);
    sleep_fd = BYP_REAL(fcntl)(group_sleep_fd[0], F_DUPFD_CLOEXEC, 0);
    if (wake_fd < 0 || sleep_fd < 0)
        return -errno;
    byp_wake_frames_fd = byp_xsk_fd;
    if (byp_xsk_fd >= 0) {
        byp_wake_frames_set = frames_set_make();   /* -1: the progress thread polls the fd */
        pollers_set = frames_set_make();           /* -1: so do byp_wait's sleepers */
    }
    return 0;
}

/* What byp_wait's sleepers poll for frames: the receive fd itself woke every one of them
 * for every frame, even while an epoll set that sleeps on the frames took it (a thread
 * blocked in accept() beside epoll workers, PostgreSQL's postmaster in select() beside its
 * backends: 50,000 wake-ups a second, one per request).  A set holding the fd with
 * EPOLLEXCLUSIVE, added again behind the application's sets whenever one added the fd: a
 * frame then reaches it only when no set ahead has a thread in epoll_wait to take it (an
 * exclusive entry whose set has none passes the wake-up on, fs/eventpoll.c), and then
 * wakes its pollers as before. */
int byp_wake_pollers_fd(void)
{
    int ffd = __atomic_load_n(&byp_wake_frames_fd, __ATOMIC_ACQUIRE);
    if (ffd < 0 || pollers_set < 0)
        return ffd;
    return byp_wake_set_behind(pollers_set, &pollers_set_adds, &pollers_set_lost);
}

int byp_wake_set_behind(int set, unsigned *seen, int *lost)
{
    if (__atomic_load_n(lost, __ATOMIC_RELAXED))
        return byp_xsk_fd;
    unsigned adds = __atomic_load_n(&frames_adds, __ATOMIC_ACQUIRE);
    unsigned was = __atomic_load_n(seen, __ATOMIC_ACQUIRE);
    if (adds != was && __atomic_compare_exchange_n(seen, &was, adds, 0, __ATOMIC_ACQ_REL,
                                                   __ATOMIC_ACQUIRE)) {
        /* Out and in again: a frame that came between is seen by the add (level). */
        int saved = errno;
        BYP_REAL(epoll_ctl)(set, EPOLL_CTL_DEL, byp_xsk_fd, NULL);
        struct epoll_event ev = {.events = EPOLLIN | EPOLLEXCLUSIVE};
        int rc = BYP_REAL(epoll_ctl)(set, EPOLL_CTL_ADD, byp_xsk_fd, &ev);
        errno = saved;
        if (rc != 0) {
            __atomic_store_n(lost, 1, __ATOMIC_RELAXED);
            return byp_xsk_fd;
        }
    }
    return set;
}

void byp_wake_groups_join(int slot)
{
    wake_counters_mine(slot);
    unsigned g = byp_wake_group(slot);
    if (sleep_fd >= 0 && group_sleep_fd[g] >= 0) {
        BYP_REAL(dup3)(group_wake_fd[g], wake_fd, O_CLOEXEC);
        BYP_REAL(dup3)(group_sleep_fd[g], sleep_fd, O_CLOEXEC);
    }
    byp_sleepers = &group_sleepers[g];
    byp_plain_sleepers = &group_plain[g];
    byp_group_slots = &group_slots[g];
}
