/* The engine's entry points for the family's life: fork (a child shares the stack), exec
 * (connections go to the kernel), exit (the last member delivers what is queued and closes
 * the port), and members that died without leaving. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "backend.h"
#include "byp.h"
#include "byp_stack.h"
#include "engine.h"
#include "engine_int.h"
#include "family.h"
#include "fd_tcp.h"
#include "fd_udp.h"
#include "steer_ctl.h"
#include "stats.h"
#include "wake.h"

/* Drop what dead members held (lock held). */
void byp_drop_member(int slot)
{
    byp_tcp_drop_member(slot);
    byp_udp_drop_member(slot);
    byp_wake_drop_member(slot);
}

void byp_reap_members(const struct byp_member_watch *w)
{
    byp_family_reap(byp_drop_member, w);
    if (byp_progress_pid != 0 && byp_progress_pid != getpid() && !byp_family_is_member(byp_progress_pid))
        byp_progress_pid = 0;
    byp_steer_claim_live();
    byp_stats_claim_live();
}

/* How long an exiting process keeps running the stack so that connections it closed still
 * deliver what they had queued (the kernel would go on for minutes; an in-process stack
 * ends with its process). */
#define EXIT_FLUSH_NS (5LL * 1000000000)
#define EXIT_NEIGH_NS (1LL * 1000000000)

/* This process stops using the stack (exit, exec): its references go (the sockets only it
 * held are closed, as the kernel closes a dying process's files) and it leaves the family.
 * The last member to leave delivers what closed connections still queue, then closes the
 * port, which detaches the XDP program; another member takes over the owner records.
 * Returns the members left. */
int byp_engine_leave(void)
{
    if (byp_engine_nic == NULL || byp_local == NULL || byp_local->slot < 0)
        return -1;
    byp_progress_stop();
    byp_stack_lock_raw();
    byp_drop_member(byp_local->slot);
    byp_reap_members(NULL);   /* the dead are not "left": the last one alive closes the port */
    int left = byp_family_leave();
    if (left > 0) {
        pid_t heir = byp_family_other();
        /* A daemon exits right after fork: give its child a moment to claim its slot. */
        for (int i = 0; heir == 0 && byp_family_pending() > 0 && i < 1000; i++) {
            byp_stack_unlock();
            struct timespec ms = {0, 1000000};
            nanosleep(&ms, NULL);
            byp_stack_lock_raw();
            heir = byp_family_other();
        }
        if (heir > 0) {
            byp_steer_claim(heir);
            byp_stats_handoff(heir);
        }
        byp_stack_unlock();
        return left;
    }
    byp_stats_end();
    byp_stack_unlock();
    int64_t end = byp_now_ns() + EXIT_FLUSH_NS, neigh_end = byp_now_ns() + EXIT_NEIGH_NS;
    for (;;) {
        int pending = 0;
        if (byp_stack_trylock() == 0) {
            /* Packets lwIP queued for a neighbour the kernel is resolving (a UDP sender's
             * first datagrams) go too, as the kernel's queue would send them. */
            pending = byp_tcp_flushing() || (byp_neigh_pending > 0 && byp_now_ns() < neigh_end);
            byp_stack_unlock();
        } else {
            pending = 1;   /* another thread runs the stack: let it */
        }
        /* A link that is not up (memif: the peer left) carries nothing out: waiting the
         * 5 s would only delay the exit (redis over memif took 5.1 s to stop). */
        if (!pending || byp_now_ns() >= end || byp_nic_link_state(byp_engine_nic) != 1)
            break;
        byp_engine_poll(0);
        struct timespec pause = {0, 20000};
        nanosleep(&pause, NULL);
    }
    for (int i = 0; i < 1000; i++) {
        if (byp_stack_trylock() == 0) {
            byp_nic_close(byp_engine_nic);
            byp_engine_nic = NULL;
            byp_sig_release();
            return 0;   /* the lock stays taken: nothing may use the stack any more */
        }
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
    return 0;
}

/* At exit of any member: libbypass.so's exit handler (engine.h, leave), or _exit.  It runs
 * before the exit handlers the program registered before the engine started and before
 * libc flushes stdio: its connections go to the kernel first, so what those write still
 * leaves. */
void byp_engine_atexit(void)
{
    /* exit() from a signal handler: the handover allocates, and what the signal
     * interrupted (malloc) may hold the allocator's lock; the connections close as before. */
    if (byp_engine_nic != NULL && byp_local != NULL && byp_local->slot >= 0 &&
        !byp_sig_in_handler()) {
        byp_stack_lock_raw();
        byp_tcp_handover_fds(1);
        byp_stack_unlock();
    }
    byp_engine_leave();
}

/* Before fork (libbypass.so's atfork handler): reserve the child's member slot and give it
 * a reference for every accelerated fd it inherits, before the parent can close its copies
 * (a fork-per-connection server closes its copy at once). */
void byp_engine_fork_prepare(void)
{
    byp_local->forking = -1;
    if (!byp_family_shared || byp_engine_nic == NULL || byp_local->slot < 0)
        return;
    byp_stack_lock_raw();
    int slot = byp_family_reserve();
    if (slot >= 0) {
        byp_tcp_fork_refs(slot);
        byp_udp_fork_refs(slot);
    }
    byp_stack_unlock_noflush();
    byp_local->forking = slot;
    if (slot >= 0)
        byp_progress_kick();   /* it looks for members more often now */
}

/* In the forked child: take the reserved slot.  -errno when the child cannot share the
 * stack: it must then keep only the kernel sockets. */
int byp_engine_fork_child(void)
{
    int slot = byp_local->forking;
    byp_local->forking = -1;
    byp_local->progress = 0;   /* the parent's thread is not ours */
    byp_member_watch_drop_inherited();
    if (slot < 0) {
        byp_local->pid = getpid();
        byp_local->slot = -1;
        return -ENOTSUP;
    }
    byp_family_claim(slot);
    byp_wake_groups_join(slot);
    return 0;
}

/* Before exec: connections that survive it go to the kernel, then this process leaves. */
void byp_engine_exec_prepare(void)
{
    if (byp_engine_nic == NULL || byp_local->slot < 0)
        return;
    byp_stack_lock_raw();
    byp_tcp_handover_fds(0);
    byp_tcp_exec_hand_listeners();
    byp_udp_spawn_handover(NULL, 0, 0, 1, "the exec'd program");
    byp_stack_unlock();
    byp_engine_leave();
}

int byp_fd_inherited(unsigned fd, const int *extra, int nextra, int listed)
{
    for (int i = 0; i < nextra; i++)
        if (extra[i] == (int)fd)
            return 2;
    int fdfl = listed ? -1 : BYP_REAL(fcntl)((int)fd, F_GETFD);
    return fdfl >= 0 && !(fdfl & FD_CLOEXEC);
}

/* A listener just handed: the connections whose SYN the stack took before (some still in
 * the NIC's ring) finish their handshake into its accept queue now, while this process
 * still accepts, not after it has closed its copy and they would be reset (HAProxy's old
 * process closes it within a ms of passing it on).  At most 20 ms. */
#define SETTLE_NS (20LL * 1000000)
static void settle_handed(void)
{
    if (__atomic_load_n(&byp_flows_handed, __ATOMIC_RELAXED) == 0)
        return;   /* nothing handed, ever: a spawn or a send of other fds */
    int64_t end = byp_now_ns() + SETTLE_NS;
    for (;;) {
        byp_engine_poll(1);
        byp_stack_lock();
        int n = byp_tcp_handed_half_open(NULL);
        byp_stack_unlock();
        if (n == 0 || byp_now_ns() >= end)
            return;
        struct timespec pause = {0, 20000};
        nanosleep(&pause, NULL);
    }
}

/* Connections going to a process that does not run the stack (@listed: only those of
 * @fds; else also every fd without FD_CLOEXEC) go to the kernel, and their fds become
 * kernel fds here too. */
static void hand_over(const int *fds, int nfds, int listed, const char *to)
{
    if (byp_engine_nic == NULL || byp_local->slot < 0)
        return;
    unsigned end = __atomic_load_n(&byp_fdtab_hwm, __ATOMIC_RELAXED);
    int *out = malloc((end + 1) * sizeof *out);
    if (out == NULL)
        return;
    byp_stack_lock();
    int n = byp_tcp_spawn_handover(fds, nfds, listed, to, out, (int)end);
    byp_udp_spawn_handover(fds, nfds, listed, 0, to);
    byp_stack_unlock();
    for (int i = 0; i < n; i++) {
        byp_fd_clear(out[i]);   /* drops the object: lwIP has let go already */
        byp_fd_set_kernel(out[i], BYP_FD_KERNEL);
    }
    free(out);
    settle_handed();
}

/* Before posix_spawn: connections the spawned program inherits go to the kernel, for this
 * process too (its child never runs the library: the fd is a kernel socket there). */
void byp_engine_spawn_prepare(const int *extra, int nextra)
{
    hand_over(extra, nextra, 0, "a spawned program");
}

/* Before sendmsg passes @fds over a UNIX socket (node's cluster hands each accepted
 * connection to a worker it exec'd): the receiver cannot reach this stack. */
void byp_engine_pass_prepare(const int *fds, int nfds)
{
    hand_over(fds, nfds, 1, "another process");
}

/* fork() failed: give the reservation back. */
void byp_engine_fork_failed(void)
{
    int slot = byp_local->forking;
    byp_local->forking = -1;
    if (slot < 0)
        return;
    byp_stack_lock_raw();
    byp_drop_member(slot);
    byp_family_cancel(slot);
    byp_stack_unlock_noflush();
}

