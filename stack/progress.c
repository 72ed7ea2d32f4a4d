/* The family's progress thread: runs the stack (receiving, lwIP's timers, the kernel
 * mirror, the stats sample, reaping dead members) while no application thread does. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <time.h>

#include "byp.h"
#include "byp_stack.h"
#include "engine_int.h"
#include "family.h"
#include "kstate.h"
#include "stats.h"

/* An application thread that ran the stack this recently is taken to be spinning on it. */
#define APP_SPIN_WINDOW_NS 20000

/* How often a progress thread looks for members that died without leaving. */
#define REAP_INTERVAL_NS (200LL * 1000000)

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
    int64_t next_reap = 0, last_stats = 0;
    if (byp_kmirror_pid != 0 && byp_kmirror_pid != getpid()) {
        /* Taking over from another member: the mirror's caches here are as old as the fork
         * (its messages since went to the process that read them). */
        byp_kmirror_resync();
        byp_kmirror_pid = getpid();
    }
    for (;;) {
        int kfd = byp_kmirror_fd();   /* the kernel mirror's netlink socket, once started */
        if (kfd >= 0)
            byp_kmirror_poll();   /* never blocks; applies changes under the stack lock */
        if (byp_now_ns() - last_stats >= 100000000) {   /* the stats sample every 100 ms */
            last_stats = byp_now_ns();
            progress_priority(1);
            byp_stats_tick();
            progress_priority(0);
        }
        if (__atomic_load_n(&byp_local->progress, __ATOMIC_ACQUIRE) != 1)
            break;   /* this process leaves the stack */
        if (byp_family_shared && byp_now_ns() >= next_reap) {
            next_reap = byp_now_ns() + REAP_INTERVAL_NS;
            progress_priority(1);
            byp_stack_lock();
            byp_reap_members();
            byp_stack_unlock();
            progress_priority(0);
        }
        struct timespec ts = {.tv_sec = interval_ns / 1000000000, .tv_nsec = interval_ns % 1000000000};
        int64_t idle = byp_now_ns() - __atomic_load_n(&byp_last_app_poll_ns, __ATOMIC_RELAXED);
        if (idle < APP_SPIN_WINDOW_NS || __atomic_load_n(&byp_engine_sleepers, __ATOMIC_RELAXED) > 0) {
            /* An application thread spins on the stack, or sleeps on the engine's wake fd
             * (which holds the AF_XDP socket, so the frames wake it and it runs the stack
             * itself): receiving is taken care of.  Only the timers are left to watch:
             * sleep until lwIP's next one (at most 50 ms, for the stats and the reaping),
             * not every BYPASS_PROGRESS_USEC; an idle server then costs about what it
             * costs on the kernel (bench/idle). */
            int64_t wait = (int64_t)__atomic_load_n(&byp_timer_wait_ms, __ATOMIC_RELAXED) * 1000000;
            if (wait > 50000000)
                wait = 50000000;
            if (wait > interval_ns && idle >= APP_SPIN_WINDOW_NS) {
                ts.tv_sec = wait / 1000000000;
                ts.tv_nsec = wait % 1000000000;
            }
            nanosleep(&ts, NULL);
            if (byp_now_ns() - __atomic_load_n(&byp_last_app_poll_ns, __ATOMIC_RELAXED) < interval_ns)
                continue;
        } else if (byp_xsk_fd >= 0) {
            struct pollfd p[2] = {{.fd = byp_xsk_fd, .events = POLLIN}, {.fd = kfd, .events = POLLIN}};
            BYP_REAL(ppoll)(p, kfd >= 0 ? 2 : 1, &ts, NULL);
            if (byp_now_ns() - __atomic_load_n(&byp_last_app_poll_ns, __ATOMIC_RELAXED) < APP_SPIN_WINDOW_NS)
                continue;
        } else {
            nanosleep(&ts, NULL);
        }
        progress_priority(1);
        for (int i = 0; i < 16 && byp_engine_poll(0) > 0; i++)
            ;
        progress_priority(0);
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
    int rc = pthread_create(&th, &attr, progress_main, NULL);
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

