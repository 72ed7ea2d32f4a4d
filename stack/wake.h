/* Waking the threads that sleep on the stack (wake.c).
 *
 * Kinds of wake-up, all decided under the stack lock and sent after it is released:
 *  - *wake targets*: one per epoll set of a process (a semaphore eventfd the set's kernel
 *    side holds).  A socket lists the targets of the sets it is in (struct byp_watch); a
 *    readiness change wakes just those sets' sleepers.  The threads of one process each
 *    sleeping on their own set (memcached's workers) no longer wake one another.
 *  - *wake groups* (family.h): for what a target cannot reach: a target of another process
 *    (its eventfd number means nothing here), a socket in no set or in more sets than a
 *    watch holds, threads sleeping in byp_wait (poll, select, accept with the kernel's
 *    listener), sets without a target.  A group wakes the *wake slots* in its mask (one
 *    eventfd per sleeping thread, 32 in the family) and counts on its semaphore eventfd for
 *    the sleepers without one (sets, or no slot free).  A semaphore's count can be taken by
 *    a thread that went to sleep after it was written, from the one it was written for.
 *  - *sleep words*: a thread blocked in a call on one socket (recv, send, accept, connect,
 *    a poll on that fd alone) sleeps on the socket's word, a futex, and only that socket's
 *    changes wake it; or, in one of the frames seats (one per CPU), on the frames and a
 *    wake slot published in the word, which the socket's changes write.
 * Frames: while the stack has one member, sleepers also wait on the backend's receive fd —
 * an epoll set holds it with EPOLLEXCLUSIVE, so a frame wakes one sleeping set, not all —
 * and run the stack themselves when frames come. */
#ifndef BYP_WAKE_H
#define BYP_WAKE_H

#include <stdint.h>

#include "engine.h"
#include "family.h"

/* Wake targets in the family at once (epoll sets with accelerated members); a set that
 * finds none free is woken by its group. */
#define BYP_WAKE_TARGETS 64
/* Wake slots (engine.h struct byp_engine): at most 32, a mask's bits. */
#define BYP_WAKE_SLOTS 32
/* Sleep words one hold of the lock wakes after it (more are woken under the lock). */
#define BYP_WAKE_WORDS 16

/* The sets (their targets) a socket is in.  Lock held to read or change. */
struct byp_watch {
    uint8_t n;                  /* targets in t[] */
    uint8_t all;                /* in more sets than t[] holds: wake by group */
    uint8_t t[6];               /* target indexes ... */
    uint8_t gen[6];             /* ... and their generations: a target closed since is stale */
    struct byp_sleep_word sleep;    /* threads blocked in a call on the socket (byp_wait_on) */
};

/* A socket's readiness changed (lock held): log it (@obj, the socket's object), wake the
 * sets in @w, and the sleepers of @groups (the wake groups of the members holding it) that
 * the targets do not reach.  @exclusive: a listener held with EPOLLEXCLUSIVE: one sleeping
 * set or group only. */
void byp_wake_socket(const void *obj, const struct byp_watch *w, unsigned groups,
                     int exclusive);
/* The change log (struct byp_engine changes). */
extern const void *byp_change_log[BYP_CHANGE_LOG];

/* The wake slots' eventfds, (@n) how many, and (@busy) the mask of those taken. */
const int *byp_wake_slot_fds(int *n, unsigned **busy);

/* Open the wake groups (engine start, this process is member 0).  0 or -errno. */
int byp_wake_open(void);
/* In a forked child: its group's fds take the numbers of the process's own, and its
 * frames counters are its slot's. */
void byp_wake_groups_join(int slot);
/* A member left or died (lock held): what its threads counted (asleep, spinning, on the
 * frames, the wake slots they held) goes, and so do its wake targets. */
void byp_wake_drop_member(int slot);
/* Threads of the family asleep in a wait, and spinning, now; the family's late wake-ups
 * so far (waits that a whole sleep slice passed over: engine.h, byp_late_wakes). */
void byp_wake_waiters(uint64_t *sleeping, uint64_t *spinning, uint64_t *late);
/* Application threads sleeping on the frames now, of every member. */
int byp_frame_sleepers(void);
/* ... of which in byp_wait (a poll(2) on the receive fd: not exclusive). */
int byp_frame_pollers_n(void);
/* A set of ours holding the receive fd with EPOLLEXCLUSIVE, for a poll(2) sleeper: taken
 * out and added again whenever an application's epoll set added the fd since *@seen, so
 * that it stays behind them (a frame reaches it only when no set ahead has a thread in
 * epoll_wait).  Returns @set, or the receive fd itself once re-adding failed (*@lost). */
int byp_wake_set_behind(int set, unsigned *seen, int *lost);

/* The wake-ups decided under the lock, to send once it is released. */
struct byp_wake_plan {
    unsigned groups;
    uint64_t targets;
    int n[BYP_WAKE_GROUPS];     /* per group: counts to write */
    int tn[BYP_WAKE_TARGETS];   /* per target: counts to write */
    unsigned nwords;
    uint32_t *words[BYP_WAKE_WORDS];    /* sleep words to wake (futex) */
    unsigned slots;                     /* wake slots to wake (their eventfds) */
};
/* Lock held: take what the changes since the last plan ask for; 1 when anything. */
int byp_wake_plan(struct byp_wake_plan *p);
/* Lock released: write the counts. */
void byp_wake_send(const struct byp_wake_plan *p);

/* struct byp_engine's entries (preload/engine.h). */
extern uint64_t byp_wake_events;
extern int byp_wake_frames_fd;
extern int byp_wake_frames_set;
/* What byp_wait's sleepers poll for frames (engine.h frames_poll_fd), or -1. */
int byp_wake_pollers_fd(void);
int byp_wake_sleep_fd(void);
void byp_wake_drain(void);
void byp_wake_frames_drain(void);
int byp_wake_target_open(void);
void byp_wake_target_close(int t);
int byp_wake_target_fd(int t);
int *byp_wake_target_sleepers(int t);
void byp_wake_watch(int fd, int t, int on);

#endif
