/* One stack for a process and the children it forks (Onload's shared stacks).
 *
 * At engine start the engine library's writable data (its globals and lwIP's: PCB lists,
 * pools, timers, the ARP table, the flow table) is remapped MAP_SHARED, and long-lived
 * objects come from the shared arena (shm.h); DPDK's hugepage memory and the AF_XDP rings
 * are shared mappings already.  A child forked afterwards therefore sees the same stack at
 * the same addresses and drives it under the same process-shared, robust lock.
 *
 * The processes using the stack are its *members*, one slot each.  A socket object counts
 * the fds referring to it per member (struct byp_refs), as the kernel counts a file's
 * references across processes: a parent closing its copy does not close a connection a
 * child still holds, and the references of a member that died without closing (kill -9,
 * _exit) are dropped when the death is noticed.  The last member to leave closes the port,
 * which detaches the XDP program.
 *
 * What one process owns stays private: its fd table, threads, libnl caches and the
 * struct byp_local below (a private page whose address every member shares). */
#ifndef BYP_FAMILY_H
#define BYP_FAMILY_H

#include <stdint.h>
#include <sys/types.h>

#include "engine.h"   /* BYP_FAMILY_MAX */

/* Members at once (a forking server's workers, a fork-per-connection server's backends). */

/* Members are woken in groups (slot modulo BYP_WAKE_GROUPS): a readiness change wakes the
 * sleepers of the groups that hold the socket, not every sleeper of the family. */
#define BYP_WAKE_GROUPS 16
static inline unsigned byp_wake_group(int slot)
{
    return slot < 0 ? 0 : (unsigned)slot % BYP_WAKE_GROUPS;
}

/* References to a socket object, per member, and the wake groups of the members holding it.
 * Two kinds: the fds referring to it (the kernel's file count) and the calls in progress on
 * it (the kernel's fdget for the length of a call).  The object is closed and freed when
 * both are gone: a close in one thread never frees the socket under a call another thread
 * is running; the close takes effect when that call returns, as on Linux.  Both are kept
 * per member so that the references of a member that died (kill -9 mid-call) can be
 * dropped.  Lock held for all of it. */
struct byp_refs {
    uint32_t total;             /* fds and calls, every member */
    uint32_t calls;             /* calls in progress, every member */
    uint16_t groups;            /* bit g: some member of wake group g holds a reference */
    uint16_t last_caller;       /* 1 + the member slot whose call came last (0: none yet) */
    uint16_t per[BYP_FAMILY_MAX];       /* fds, per member */
    uint16_t calls_per[BYP_FAMILY_MAX]; /* calls in progress, per member */
};

struct byp_member_watch;

/* What is private to each process (same address in every member, private contents). */
struct byp_local {
    pid_t pid;                  /* the process this copy belongs to */
    int slot;                   /* its member slot, -1 when it is not a member */
    int progress;               /* its progress thread: 0 none, 1 running, 2 stopping, 3 stopped */
    int forking;                /* the slot reserved for the child of a fork in progress, or -1 */
    struct byp_member_watch *watch;  /* its progress thread's (on that thread's stack), whose
                                      * fds a forked child closes (byp_member_watch_drop) */
};
extern struct byp_local *byp_local;

/* 1 when forked children share the stack; 0 when the memory cannot be shared (DPDK on
 * --no-huge memory is private): children then keep only the kernel sockets. */
extern int byp_family_shared;

/* Remap the engine's writable data shared and set up byp_local.  Called first thing at
 * engine start, while no other thread runs engine code.  0 or -errno (the engine then runs
 * unshared). */
int byp_family_setup(void);

/* After the NIC is open: decide whether children can share (@pool_addr: an address in
 * DPDK's packet memory), and make this process member 0.  Lock held. */
void byp_family_start(const void *pool_addr);

/* Before fork (lock held): reserve the child's slot, so that the references of what it
 * inherits exist before the parent can close its copies.  The slot, or -errno (no free
 * slot, or the stack is not shareable): the child then must not use the stack. */
int byp_family_reserve(void);
/* In the child: take the slot reserved for it (no lock needed). */
void byp_family_claim(int slot);
/* The fork failed (lock held): free the reservation (the caller drops its references). */
void byp_family_cancel(int slot);

/* This process leaves (exit, exec).  Returns the number of members left.  Lock held. */
int byp_family_leave(void);

/* Members that died without leaving: calls @drop(slot) for each (lock held) and frees the
 * slot.  Cheap when nothing changed; call from the progress thread and after taking over a
 * dead holder's lock. */
void byp_family_reap(void (*drop)(int slot), const struct byp_member_watch *w);

/* Slots reserved for children being forked that have not claimed them yet. */
int byp_family_pending(void);

/* Whether @pid holds a member slot. */
int byp_family_is_member(pid_t pid);

/* The pid of a live member other than this process, or 0. */
pid_t byp_family_other(void);

/* A counter that changes whenever a member joins, leaves or is reaped, or a slot is
 * reserved or freed (read without the lock). */
uint32_t byp_family_gen(void);
/* The members other than this process that claimed their slot: pids and start times (as
 * byp_proc_start_ticks), at most @max; returns how many (read without the lock: a hint). */
int byp_family_list(pid_t *pids, uint64_t *starts, int max);

/* Members' deaths watched with pidfds (member_watch.c), for the progress thread; the state
 * on its stack (its fds are this process's own).  update: bring the watch up to the member
 * list (cheap when it did not change); 1 when a member is gone already (reap now).  fd:
 * the epoll set to poll (readable when a watched member died), -1 when none.  ok is 0
 * when pidfds cannot be had (the caller then looks periodically). */
struct byp_member_watch {
    int ep, ok, n, ndead;
    uint32_t gen;
    pid_t pid[BYP_FAMILY_MAX];
    uint64_t start[BYP_FAMILY_MAX];
    int fd[BYP_FAMILY_MAX];
    pid_t dead[BYP_FAMILY_MAX];   /* watched members whose pidfd said exited (collect) */
};
void byp_member_watch_init(struct byp_member_watch *w);
int byp_member_watch_update(struct byp_member_watch *w);
int byp_member_watch_fd(const struct byp_member_watch *w);
void byp_member_watch_end(struct byp_member_watch *w);
/* Before a reap: which watched members exited (their pidfds, one epoll_wait).  Then
 * alive: 1 when member @pid started at @start is watched and its pidfd has not said it
 * exited, which a pidfd says of that very process (no pid reuse): no /proc read needed;
 * 0 when the watch cannot tell. */
void byp_member_watch_collect(struct byp_member_watch *w);
int byp_member_watch_alive(const struct byp_member_watch *w, pid_t pid, uint64_t start);
/* In a forked child: close the pidfds it inherited from the parent's progress thread (a
 * PostgreSQL backend would otherwise hold one per backend forked before it). */
void byp_member_watch_drop_inherited(void);

/* ---- references ---- */

static inline void byp_refs_get_for(struct byp_refs *r, int slot)
{
    if (slot < 0)
        return;   /* a process that left the family (exiting) takes nothing */
    r->total++;
    r->per[slot]++;
    r->groups |= (uint16_t)(1u << byp_wake_group(slot));
}

/* Member @slot holds no reference any more: its group's bit stays only for another member. */
static inline void byp_refs_regroup(struct byp_refs *r, int slot)
{
    unsigned g = byp_wake_group(slot);
    for (int s = (int)g; s < BYP_FAMILY_MAX; s += BYP_WAKE_GROUPS)
        if (r->per[s] > 0 || r->calls_per[s] > 0)
            return;
    r->groups &= (uint16_t)~(1u << g);
}

static inline void byp_refs_get(struct byp_refs *r)
{
    byp_refs_get_for(r, byp_local->slot);
}

/* One reference of this process less; returns the references left in the family. */
static inline uint32_t byp_refs_put(struct byp_refs *r)
{
    int s = byp_local->slot;
    if (s >= 0 && r->per[s] > 0) {
        r->per[s]--;
        r->total--;
        if (r->per[s] == 0 && r->calls_per[s] == 0)
            byp_refs_regroup(r, s);
    }
    return r->total;
}

/* This process's references. */
static inline uint32_t byp_refs_mine(const struct byp_refs *r)
{
    return byp_local->slot >= 0 ? r->per[byp_local->slot] : 0;
}

/* The fds referring to the object in the whole family (0: only calls keep it). */
static inline uint32_t byp_refs_fds(const struct byp_refs *r)
{
    return r->total - r->calls;
}

/* A call of this process on the object begins (the fd was checked to refer to it).  A
 * process that left the family (exiting) counts nothing: its references went when it left. */
static inline void byp_refs_call_get(struct byp_refs *r)
{
    int s = byp_local->slot;
    if (s < 0)
        return;
    r->calls_per[s]++;   /* 65,535 threads of one process in calls on one socket: not here */
    r->last_caller = (uint16_t)(s + 1);
    r->calls++;
    r->total++;
    r->groups |= (uint16_t)(1u << byp_wake_group(s));
}

/* That call returns; returns the references left in the family (0: close and free it). */
static inline uint32_t byp_refs_call_put(struct byp_refs *r)
{
    int s = byp_local->slot;
    if (s >= 0 && r->calls_per[s] > 0) {
        r->calls_per[s]--;
        r->calls--;
        r->total--;
        if (r->per[s] == 0 && r->calls_per[s] == 0)
            byp_refs_regroup(r, s);
    }
    return r->total;
}

/* Forget every reference of member @slot, fds and calls; returns the references left. */
static inline uint32_t byp_refs_drop(struct byp_refs *r, int slot)
{
    r->total -= (uint32_t)r->per[slot] + r->calls_per[slot];
    r->calls -= r->calls_per[slot];
    r->per[slot] = 0;
    r->calls_per[slot] = 0;
    byp_refs_regroup(r, slot);
    return r->total;
}

/* Whether member @slot holds any reference (fd or call). */
static inline int byp_refs_held(const struct byp_refs *r, int slot)
{
    return r->per[slot] > 0 || r->calls_per[slot] > 0;
}

#endif
