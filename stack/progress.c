/* The family's progress thread: runs the stack (receiving, lwIP's timers, the kernel
 * mirror, the stats sample, reaping dead members) while no application thread does. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <time.h>

#include "lwip/opt.h"
#include "lwip/timeouts.h"

#include "byp.h"
#include "byp_stack.h"
#include "engine_int.h"
#include "fd_udp.h"
#include "family.h"
#include "kstate.h"
#include "stats.h"
#include "wake.h"

/* An application thread that ran the stack this recently is taken to be spinning on it. */
#define APP_SPIN_WINDOW_NS 20000

/* How often a progress thread looks for members that died without leaving; when this
 * process is the only member. */
#define REAP_INTERVAL_NS (200LL * 1000000)
#define REAP_ALONE_NS (2000LL * 1000000)

/* The kernel mirror is read when its socket turns readable, and at least this often. */
#define MIRROR_RETRY_NS (1000LL * 1000000)

/* The stats sample's period while packets move, and while none does. */
#define STATS_BUSY_NS (100LL * 1000000)
#define STATS_IDLE_NS (1000LL * 1000000)

/* The longest sleep with nothing to do: lwIP's ARP and reassembly timers run every second. */
#define IDLE_CAP_NS (1000LL * 1000000)
/* ... while an application thread sleeps on the frames instead of this one. */
#define SLEEPER_CAP_NS (50LL * 1000000)

/* How soon to look at the frames again after finding the lock busy. */
#define BUSY_RETRY_NS (100LL * 1000)

/* lwIP's TCP timer period (TCP_TMR_INTERVAL), in ns. */
/* Without a receive fd (memif, pci), the progress thread's poll period for sleeping
 * threads right after frames came; it doubles with every empty poll up to progress_usec. */
#define POLL_FAST_NS (10LL * 1000)
#define LWIP_TICK_NS (TCP_TMR_INTERVAL * 1000000LL)

pid_t byp_kmirror_pid;

/* The progress thread waits at idle priority, but does its work (which takes the stack
 * lock) at normal priority: an idle-priority thread preempted while it holds the lock is
 * not run again while any other thread wants the CPU, and every thread of the process then
 * waits for the lock behind it (measured with a CPU hog beside a multicast receiver: stalls
 * of 0.5 s and a fifth of the datagrams lost at the ring).  Switching costs a system call
 * each way, once per round of work. */
static void progress_priority(int working)
{
    struct sched_param sp = {.sched_priority = 0};
    pthread_setschedparam(pthread_self(), working ? SCHED_OTHER : SCHED_IDLE, &sp);
}

static void *progress_main(void *arg)
{
    (void)arg;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    /* Idle priority: this thread only stands in for application threads that are not
     * running the stack, so it must never take a CPU from one that is (a spinning thread
     * preempted for a time slice is milliseconds of latency).  When the application
     * sleeps, the CPU is idle and this thread runs at once. */
    struct sched_param sp = {.sched_priority = 0};
    if (pthread_setschedparam(pthread_self(), SCHED_IDLE, &sp) != 0)
        byp_info("progress thread: SCHED_IDLE refused; it runs at normal priority");
    const int64_t interval_ns = byp_cfg.progress_usec * 1000;
    int64_t next_reap = 0, next_stats = 0;
    if (byp_kmirror_pid != 0 && byp_kmirror_pid != getpid()) {
        /* Taking over from another member: the mirror's caches here are as old as the fork
         * (its messages since went to the process that read them). */
        byp_kmirror_resync();
        byp_kmirror_pid = getpid();
    }
    /* When lwIP's timers next have work (0: look again), as found under the lock with
     * byp_progress_napping set: until a kick says the stack changed, it stands. */
    int64_t timers_at = 0;
    int polling_for_sleepers = 0;
    int64_t poll_ns = interval_ns;
    int mirror_ready = 1;
    int64_t next_mirror = 0;
    for (;;) {
        int64_t now = byp_now_ns();
        int kfd = byp_kmirror_fd();   /* the kernel mirror's netlink socket, once started */
        if (kfd >= 0 && (mirror_ready || now >= next_mirror)) {
            /* When its socket is readable, and once a second for what it retries (a
             * snapshot that found no memory). */
            byp_kmirror_poll();   /* never blocks; applies changes under the stack lock */
            next_mirror = now + MIRROR_RETRY_NS;
        }
        if (__atomic_load_n(&byp_local->progress, __ATOMIC_ACQUIRE) != 1)
            break;   /* this process leaves the stack */
        int working = 0;
        if (now >= next_stats) {
            progress_priority(working = 1);
            /* Every 100 ms while packets move, every second while none does. */
            next_stats = now + (byp_stats_tick() ? STATS_BUSY_NS : STATS_IDLE_NS);
        }
        if (byp_family_shared && now >= next_reap) {
            if (!working)
                progress_priority(working = 1);
            byp_stack_lock();
            byp_reap_members();
            /* Alone, only a fork (which reserves a slot) brings someone to reap. */
            next_reap = now + (byp_family_other() != 0 || byp_family_pending() > 0
                               ? REAP_INTERVAL_NS : REAP_ALONE_NS);
            byp_stack_unlock_nokick();
        }
        int sleepers = byp_frame_sleepers() > 0;
        int64_t idle = now - __atomic_load_n(&byp_last_app_poll_ns, __ATOMIC_RELAXED);
        if (idle < APP_SPIN_WINDOW_NS) {
            /* An application thread spins on the stack: it receives and runs the timers. */
            if (working)
                progress_priority(0);
            timers_at = 0;
            struct timespec ts = {.tv_sec = interval_ns / 1000000000, .tv_nsec = interval_ns % 1000000000};
            nanosleep(&ts, NULL);
            continue;
        }
        /* The lock was busy at the last look: an application thread runs the stack and
         * takes the frames itself; this thread waits out the interval without watching them
         * (it woke at once for the frames still in the ring, found the lock busy again and
         * switched its priority twice each time: 22 % of the server's CPU, most of it
         * sched_setscheduler, while nginx sent 1 MB files). */
        int lock_busy = 0;
        /* Woken early with a sleeper still on the frames and nothing changed: sleep on. */
        if (!sleepers || timers_at == 0 || now >= timers_at ||
            __atomic_load_n(&byp_progress_stale, __ATOMIC_RELAXED)) {
            if (!working)
                progress_priority(working = 1);
            /* An application thread sleeping on the engine's wake fd (which holds the
             * AF_XDP socket) is woken by frames and runs the stack itself; one that ran
             * it within the last interval ran the timers too. */
            int frames = 0;
            if (!sleepers || idle >= interval_ns)
                for (int i = 0, got; i < 16 && (got = byp_engine_poll(0)) > 0; i++)
                    frames += got;
            /* No receive fd: while threads sleep, this thread is their receive path.  Poll
             * every POLL_FAST_NS after frames came, backing off to the interval. */
            polling_for_sleepers = byp_xsk_fd < 0 && byp_engine_sleeping() > 0;
            if (frames > 0)
                poll_ns = POLL_FAST_NS;
            else if (poll_ns < interval_ns)
                poll_ns *= 2;
            timers_at = now + interval_ns;   /* the lock is busy: someone runs the stack */
            lock_busy = 1;
            if (byp_stack_trylock() == 0) {
                lock_busy = 0;
                now = byp_now_ns();
                int64_t wait;
                if (byp_xsk_fd >= 0) {
                    wait = (int64_t)byp_timers_wait_ms(now / 1000000, IDLE_CAP_NS / 1000000) * 1000000;
                } else {
                    /* No receive fd (memif, pci): frames are seen only by polling, every
                     * interval; while a thread sleeps (on a timer), until lwIP's next
                     * timer, at most SLEEPER_CAP_NS: as before this work. */
                    int64_t lwip = (int64_t)sys_timeouts_sleeptime() * 1000000;
                    wait = !sleepers ? interval_ns : lwip > SLEEPER_CAP_NS ? SLEEPER_CAP_NS : lwip;
                    if (wait < interval_ns)
                        wait = interval_ns;
                    if (polling_for_sleepers && poll_ns < wait)
                        wait = poll_ns;
                }
                timers_at = now + wait;
                /* With a sleeper on the frames, no kicks: they would cost a system call on
                 * the data path (a request answered after the reply's ACK left the
                 * connection quiet); the sleeps are short then, and a stale plan is seen
                 * at the next wake-up. */
                __atomic_store_n(&byp_progress_stale, 0, __ATOMIC_RELAXED);
                __atomic_store_n(&byp_progress_napping, wait > 2 * LWIP_TICK_NS && !sleepers,
                                 __ATOMIC_RELEASE);
                byp_stack_unlock_nokick();
            }
        }
        /* A sleeper's receive path must not wait behind other programs' time slices. */
        if (working && !polling_for_sleepers)
            progress_priority(0);
        else if (!working && polling_for_sleepers)
            progress_priority(working = 1);
        /* Sleep until something needs this thread: frames (unless a sleeper takes them), a
         * kick from a thread that gave lwIP something to time, the kernel mirror, lwIP's
         * next timer that has work (never the ticks of idle connections), the stats, the
         * reaping.  While a sleeper takes the frames, at most SLEEPER_CAP_NS: the sleeper
         * may leave the library meanwhile, and nobody would watch the frames (nothing
         * tells this thread). */
        now = byp_now_ns();
        int64_t wait = timers_at - now;
        if (sleepers && wait > SLEEPER_CAP_NS)
            wait = SLEEPER_CAP_NS;
        if (lock_busy && wait > BUSY_RETRY_NS)
            wait = BUSY_RETRY_NS;   /* the holder may be a sender that leaves the frames */
        if (wait > next_stats - now)
            wait = next_stats - now;
        if (byp_family_shared && wait > next_reap - now)
            wait = next_reap - now;
        if (kfd >= 0 && wait > next_mirror - now)
            wait = next_mirror - now;
        if (wait < 0)
            wait = 0;
        struct pollfd p[4];
        nfds_t np = 0, kp = 0;
        p[np++] = (struct pollfd){.fd = byp_progress_kick_fd, .events = POLLIN};
        if (kfd >= 0)
            p[np++] = (struct pollfd){.fd = kfd, .events = POLLIN};
        if (!sleepers && !lock_busy && byp_xsk_fd >= 0)
            p[np++] = (struct pollfd){.fd = byp_xsk_fd, .events = POLLIN};
        if (!sleepers && !lock_busy && byp_udp_kpath_fd() >= 0) {   /* the kernel UDP sockets, like the frames */
            kp = np;
            p[np++] = (struct pollfd){.fd = byp_udp_kpath_fd(), .events = POLLIN};
        }
        struct timespec ts = {.tv_sec = wait / 1000000000, .tv_nsec = wait % 1000000000};
        BYP_REAL(ppoll)(p, np, &ts, NULL);
        if (kp > 0 && p[kp].revents != 0) {
            byp_udp_kpath_wake();
            timers_at = 0;   /* run the stack, which reads the set */
        }
        mirror_ready = kfd >= 0 && p[1].revents != 0;
        if (p[0].revents & POLLIN) {
            /* Kicked (the kicker cleared byp_progress_napping): the stack changed, look
             * again; packets may move again, sample the stats soon. */
            uint64_t v;
            (void)!BYP_REAL(read)(byp_progress_kick_fd, &v, sizeof v);
            timers_at = 0;
            if (next_stats > now + STATS_BUSY_NS)
                next_stats = now + STATS_BUSY_NS;
        }
    }
    __atomic_store_n(&byp_local->progress, 3, __ATOMIC_RELEASE);   /* stopped */
    return NULL;
}

/* Start the family's progress thread in this process when no process runs one: in the
 * process that starts the engine, then in whichever member uses the stack after the one
 * running it left (a child that never touches an accelerated fd, like redis' BGSAVE,
 * never runs one).  byp_local->progress: 0 none, 1 running, 2 asked to stop, 3 stopped. */
void byp_progress_start(void)
{
    pid_t none = 0;
    if (byp_local->slot < 0 ||
        !__atomic_compare_exchange_n(&byp_progress_pid, &none, getpid(), false, __ATOMIC_ACQ_REL,
                                     __ATOMIC_ACQUIRE))
        return;
    byp_local->progress = 1;
    pthread_t th;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    /* Created with every signal blocked, so that no program handler ever runs on it (a
     * signal the program blocks would otherwise be delivered here). */
    sigset_t all, old_mask;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old_mask);
    int rc = pthread_create(&th, &attr, progress_main, NULL);
    pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        byp_local->progress = 0;
        byp_warn("cannot start the progress thread: %s; the stack runs only inside calls",
                 strerror(rc));
        return;
    }
    pthread_setname_np(th, "bypass-progress");
}

/* Stop this process's progress thread before it leaves, so that it never dies holding the
 * lock; another member starts the next one.  Lock not held. */
void byp_progress_stop(void)
{
    if (__atomic_load_n(&byp_local->progress, __ATOMIC_ACQUIRE) != 1)
        return;
    __atomic_store_n(&byp_local->progress, 2, __ATOMIC_RELEASE);
    for (int i = 0; i < 2000 && __atomic_load_n(&byp_local->progress, __ATOMIC_ACQUIRE) != 3; i++) {
        struct timespec ms = {0, 500000};
        nanosleep(&ms, NULL);
    }
    pid_t me = getpid();
    __atomic_compare_exchange_n(&byp_progress_pid, &me, 0, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}

