/* The inside of the epoll kind, shared by fd_epoll.c (members, waits, changes),
 * epoll_set.c (the epoll fd's own kind, the set objects), epoll_wake.c (the engine's wake
 * fds in a set) and epoll_adopt.c (kernel sockets that become accelerated while in a set). */
#ifndef BYP_FD_EPOLL_PRIV_H
#define BYP_FD_EPOLL_PRIV_H

#include <limits.h>
#include <pthread.h>

#include "engine.h"
#include "fd_epoll.h"

/* The sets' mutexes, taken with the thread's signal handlers deferred until released
 * (wrap_signal.c): a handler calling epoll_ctl on a set its thread is changing would
 * otherwise deadlock. */
static inline void ep_mutex_lock(pthread_mutex_t *m)
{
    byp_sig_hold();
    pthread_mutex_lock(m);
}
static inline void ep_mutex_unlock(pthread_mutex_t *m)
{
    pthread_mutex_unlock(m);
    byp_sig_release();
}

/* Every set object (recycled, never freed) and the lock over that list and over attaching
 * sets to fds (epoll_set.c). */
extern pthread_mutex_t byp_epoll_reg_lock;
extern struct byp_epoll *byp_epoll_all_sets;
/* Accelerated members over all sets: byp_epoll_forget has nothing to do while zero. */
extern int byp_epoll_total_members;

/* Spin rounds between two checks of the kernel set (an epoll_wait system call each). */
#define KERNEL_POLL_RATIO 16
/* Spin rounds between two reads of the clock. */
#define CLOCK_RATIO 4
/* The kernel's limit on maxevents. */
#define EP_MAX_EVENTS ((int)(INT_MAX / sizeof(struct epoll_event)))
/* Bits an event may carry back (the rest are input flags). */
#define EV_REPORTABLE (~(uint32_t)(EPOLLET | EPOLLONESHOT | EPOLLWAKEUP | EPOLLEXCLUSIVE))
/* Flags EPOLLEXCLUSIVE may be combined with (the kernel's EPOLLEXCLUSIVE_OK_BITS). */
#define EXCLUSIVE_OK                                                                        \
    (EPOLLIN | EPOLLOUT | EPOLLRDNORM | EPOLLRDBAND | EPOLLWRNORM | EPOLLWRBAND | EPOLLERR |  \
     EPOLLHUP | EPOLLWAKEUP | EPOLLET | EPOLLEXCLUSIVE)

/* One accelerated fd in one set. */
struct member {
    int fd;
    int kfd;                    /* kernel fd also registered in the kernel set, or -1 */
    void *obj;                  /* the fd's object when added: a different one means stale */
    const byp_fd_ops_t *ops;
    uint32_t events;            /* as requested, EPOLLERR | EPOLLHUP added */
    epoll_data_t data;
    uint64_t rep_gen;           /* edge: event_gen at the last report */
    uint64_t idle_gen;          /* event_gen when last found with nothing to report */
    uint8_t armed;              /* one-shot: cleared once reported, set again by MOD */
    uint8_t fresh;              /* edge: report the current readiness once after ADD/MOD */
    uint8_t idle;               /* idle_gen is valid: nothing to report until it moves */
    uint8_t unsure;             /* its readiness moves without engine events (a nested set) */
    uint8_t pending;            /* in the set's pend list */
    uint32_t stamp;             /* the set's stamp when last taken as a candidate */
};

struct byp_epoll {
    struct byp_epoll_head head; /* first: nmembers, read without the lock */
    pthread_mutex_t lock;       /* guards everything below but refs and live */
    int refs;                   /* fd numbers referring to the set (atomic) */
    int live;                   /* 0: recyclable (under reg_lock) */
    int epfd;                   /* an fd number of the set, for clean-ups without one */
    int wake_fd;                /* the wake fd registered in the kernel set, or -1 */
    int target;                 /* its wake target (engine), or -1: woken by its group */
    int target_efd;             /* that target's eventfd, registered in the kernel set */
    int *target_sleepers;       /* that target's count of sleepers, or NULL */
    pid_t target_pid;           /* the process that opened the target */
    int frames_fd;              /* the engine's receive fd registered in the kernel set, or -1 */
    uint8_t nested;             /* inside another set: woken by its group, never a target */
    struct member *m;
    int n, cap;
    int nkfd;                   /* members with a kernel fd in the kernel set (listeners) */
    unsigned cursor;            /* where the next scan starts: round robin over members */
    unsigned turn;              /* alternates which side fills the result first */
    unsigned calls;             /* epoll_wait calls, for the kernel-set poll ratio */
    uint64_t seen_events;       /* the engine's event counter before the last scan */
    uint8_t rescan;             /* the next scan looks at every member */
    uint8_t map_off;            /* no index (two fds of one object, or no memory): full scans */
    int nunsure;                /* members whose readiness moves without engine events */
    /* epoll_index.c: members by object (open addressing, member index + 1, 0 empty) ... */
    int *map;
    unsigned map_cap;
    /* ... and the members the next scan looks at whatever changed: reported level-triggered
     * ones, ready ones a full result left out, new and modified ones. */
    int *pend;
    int npend, pend_cap;
    uint32_t stamp;
    struct byp_epoll *next;     /* every set ever made */
};


/* The set of epoll fd @epfd, given the epoll kind first if needed.  0 or -errno. */
int byp_epoll_set_attach(int epfd, struct byp_epoll **out);
/* Register the engine's wake fd in the kernel set (first accelerated member).  0 or -errno. */
int byp_epoll_wake_add(struct byp_epoll *ep, int epfd);
/* epoll_wake.c.  Under the set's lock: drop the set's target / the receive fd from its
 * kernel set @epfd (-1: the kernel set is gone); all of the wake fds once the set has no
 * accelerated member left. */
void byp_epoll_target_drop(struct byp_epoll *ep, int epfd);
void byp_epoll_frames_drop(struct byp_epoll *ep, int epfd);
void byp_epoll_wake_del(struct byp_epoll *ep, int epfd);
/* Drop the wake fds' entries from @k kernel results (taking their counts; running the
 * frames when @slept), returning how many are left. */
int byp_epoll_filter_wake(struct byp_epoll *ep, struct epoll_event *evs, int k, int slept);
/* The set takes frames (its first member that is no listener).  Set lock held. */
void byp_epoll_frames_add(struct byp_epoll *ep, int epfd);
/* Tell the engine that accelerated @fd went into (@on) or out of the set of target @t (the
 * set's target when the member was added or removed; -1: none).  Set lock not held. */
void byp_epoll_watch(int fd, int t, int on);
/* What member @m has to report now: its events, 0, or -1 when its fd no longer refers to
 * the object it was added with.  @take: a report (edge, one-shot).  Set lock held. */
int64_t byp_epoll_member_check(struct member *m, int take);
/* Index of the member for @fd / @obj, or -1.  Set lock held. */
int byp_epoll_member_find(const struct byp_epoll *ep, int fd, const void *obj);
/* Append a member.  0 or -ENOMEM.  Set lock held. */
int byp_epoll_member_append(struct byp_epoll *ep, const struct member *m);
/* epoll_index.c.  Under the set's lock.  Members by object: @i was appended / is about to
 * be removed (the last one then moves to @i); find: the member of @obj, or -1 (also when
 * there is no index: map_off). */
void byp_epoll_index_add(struct byp_epoll *ep, int i);
void byp_epoll_index_remove(struct byp_epoll *ep, int i);
int byp_epoll_index_find(const struct byp_epoll *ep, const void *obj);
/* No members: an empty index and pend list, full scans allowed to stop. */
void byp_epoll_index_reset(struct byp_epoll *ep);
/* Member @i goes into the pend list (or, when it cannot grow, the next scan is full). */
void byp_epoll_pend(struct byp_epoll *ep, int i);
/* Empty the pend list. */
void byp_epoll_pend_clear(struct byp_epoll *ep);
/* A scan of only the members the change log names since the last scan, and the pend list:
 * what a full scan would report, in @out (up to @max).  -1 when it cannot tell (the log
 * overran or names no socket): scan them all.  Stale members are marked (ops NULL) and
 * counted in @stale. */
int byp_epoll_scan_changed(struct byp_epoll *ep, const void *const *log, const uint64_t *evp,
                           uint64_t ev_now, struct epoll_event *out, int max, int *stale);

/* Move @fd's registration in the kernel set @epfd (inode @ino) to the accelerated list;
 * 1 when it did (epoll_adopt.c). */
int byp_epoll_adopt_in(int epfd, int fd, const byp_fd_ops_t *ops, unsigned long ino);

#endif
