/* The family's progress thread: runs the stack (receiving, lwIP's timers, the kernel
 * mirror, the stats sample, reaping dead members) while no application thread does. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <linux/capability.h>

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

/* How often a progress thread looks for members that died without leaving: while a
 * forked child has not claimed its slot yet (the fork kicks this thread), or while other
 * members exist and their deaths cannot be watched with pidfds (member_watch.c); else
 * (alone, or watching) the long period, a safety net. */
#define REAP_INTERVAL_NS (200LL * 1000000)
#define REAP_ALONE_NS (8000LL * 1000000)

/* The stats sample's period while packets move, and while none does: a second, doubling
 * with every sample that finds nothing moved up to STATS_IDLE_MAX_NS (an idle process then
 * wakes for nothing else; a kick, or packets seen at a wake-up, bring the short period
 * back at once). */
#define STATS_BUSY_NS (100LL * 1000000)
#define STATS_IDLE_NS (1000LL * 1000000)
#define STATS_IDLE_MAX_NS (8000LL * 1000000)

/* The longest sleep with nothing to do: lwIP's ARP and reassembly timers run every second.
 * Steered by XDP beside the kernel, they have nothing to do: its ARP entries are the kernel
 * mirror's (static; a neighbour being resolved keeps the thread on 10 ms ticks,
 * byp_neigh_pending) and fragments go to the kernel; the sleep is then as long as the
 * idle stats period. */
#define IDLE_CAP_NS (1000LL * 1000000)
#define STEERED_IDLE_CAP_NS STATS_IDLE_MAX_NS
/* ... while an application thread sleeps on the frames instead of this one and the stack
 * changed since the last look (no kicks then: see progress_main), or while this thread
 * cannot watch the frames beside it (frames_watch). */
#define SLEEPER_CAP_NS (50LL * 1000000)

/* Chores of an idle process (the stats sample, the mirror's retry, the reaping, lwIP's
 * next timer after a nap) due this soon run at the wake-up at hand: they then keep one
 * rhythm, and an idle process wakes about once a second instead of once per chore. */
#define COALESCE_NS (100LL * 1000000)

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
/* This thread may switch between SCHED_IDLE and SCHED_OTHER (per thread, not in the
 * family's shared data: the next member to run the thread may hold other privileges). */
static __thread int idle_ok;

static void progress_priority(int working)
{
    if (!idle_ok)
        return;
    struct sched_param sp = {.sched_priority = 0};
    pthread_setschedparam(pthread_self(), working ? SCHED_OTHER : SCHED_IDLE, &sp);
}

/* Whether a thread at SCHED_IDLE may go back to SCHED_OTHER: the kernel takes SCHED_IDLE
 * for nice 20, and lets a thread leave it only with CAP_SYS_NICE or an RLIMIT_NICE that
 * allows its nice value (20 - nice; the default limit is 0).  PostgreSQL, never root,
 * had its progress thread stuck at idle priority, lock and all, from its first sleep. */
static int idle_reversible(void)
{
    struct rlimit rl;
    errno = 0;
    int nice = getpriority(PRIO_PROCESS, 0);   /* this thread's */
    if (errno == 0 && getrlimit(RLIMIT_NICE, &rl) == 0 &&
        (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= (rlim_t)(20 - nice)))
        return 1;
    struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct d[_LINUX_CAPABILITY_U32S_3];
    return syscall(SYS_capget, &h, d) == 0 &&
           (d[CAP_TO_INDEX(CAP_SYS_NICE)].effective & CAP_TO_MASK(CAP_SYS_NICE)) != 0;
}

/* What this thread polls for frames.  While application threads sleep on them in epoll
 * sets (the stack has one member), a set of its own holding the receive fd with
 * EPOLLEXCLUSIVE (byp_wake_frames_set, made at start), added again after every application
 * set's: a frame wakes the first set in the
 * fd's wait queue that has a thread in epoll_wait (an exclusive entry whose set has none
 * passes the wake-up on, fs/eventpoll.c), so this thread wakes for frames only when no
 * application set sleeps on them — when the sleeper left the library — and need not wake
 * every SLEEPER_CAP_NS to look (an idle redis-server: 20 wake-ups a second, half its CPU).
 * The set and the receive fd are inherited: whichever member runs this thread uses them.
 * -1 without a receive fd. */
static unsigned frames_set_adds;
static int frames_set_lost;   /* re-adding failed: poll the receive fd itself */

static int frames_watch(void)
{
    if (byp_xsk_fd < 0)
        return -1;
    if (byp_wake_frames_set < 0 || __atomic_load_n(&byp_wake_frames_fd, __ATOMIC_ACQUIRE) < 0)
        return byp_xsk_fd;
    return byp_wake_set_behind(byp_wake_frames_set, &frames_set_adds, &frames_set_lost);
}

/* The next sleep beside an application thread that spins on the stack, after one of
 * @last ns (0: none yet).  The sleep only bounds how late this thread notices a spinner
 * that left the library without a kick (to compute, say): the interval.  But a thread
 * that can run on one CPU only (its process pinned with taskset, as latency-bound users
 * run) shares it with the spinner, and each of its wake-ups takes the CPU from it for
 * 10-50 us: at 1,000 a second, the p99.9 of a ping-pong (memif, both ends pinned: 16-35
 * us).  There the sleep doubles while the spinner goes on, up to SPIN_BESIDE_MAX intervals;
 * sharing the CPU at idle priority it would hardly run sooner anyway. */
#define SPIN_BESIDE_MAX 16

/* A sleep of @wait ns from @now cut short by the stats sample and the reaping due. */
static int64_t until_chores(int64_t wait, int64_t now, int64_t next_stats, int64_t next_reap)
{
    if (wait > next_stats - now)
        wait = next_stats - now;
    if (byp_family_shared && wait > next_reap - now)
        wait = next_reap - now;
    return wait < 0 ? 0 : wait;
}

static int64_t beside_sleep(int64_t last, int64_t interval_ns)
{
    if (last == 0)
        return interval_ns;
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) != 0 || CPU_COUNT(&set) != 1)
        return interval_ns;
    return last >= interval_ns * (SPIN_BESIDE_MAX / 2) ? interval_ns * SPIN_BESIDE_MAX : last * 2;
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
    if (!idle_reversible())
        byp_info("progress thread: runs at normal priority (without CAP_SYS_NICE or an "
                 "RLIMIT_NICE of 20 it could not leave SCHED_IDLE to do its work)");
    else if (pthread_setschedparam(pthread_self(), SCHED_IDLE, &sp) != 0)
        byp_info("progress thread: SCHED_IDLE refused; it runs at normal priority");
    else
        idle_ok = 1;
    const int64_t interval_ns = byp_cfg.progress_usec * 1000;
    int64_t next_reap = 0, next_stats = 0;
    int reap_alone = 0;   /* next_reap is the safety net's (REAP_ALONE_NS) */
    int stats_idle = 0;   /* next_stats is idle_period away: nothing moved at the last sample */
    int64_t idle_period = STATS_IDLE_NS;
    uint64_t stats_rx_seen = 0;   /* byp_rx_rounds at the last sample */
    pid_t mirror_pid = __atomic_load_n(&byp_kmirror_pid, __ATOMIC_ACQUIRE);
    if (mirror_pid != 0 && mirror_pid != getpid()) {
        /* Taking over from another member: the mirror's caches here are as old as the fork
         * (its messages since went to the process that read them). */
        byp_kmirror_resync();
        __atomic_store_n(&byp_kmirror_pid, getpid(), __ATOMIC_RELEASE);
    }
    /* When lwIP's timers next have work (0: look again), as found under the lock with
     * byp_progress_napping set: until a kick says the stack changed, it stands. */
    int64_t timers_at = 0;
    int polling_for_sleepers = 0;
    int napped = 0;        /* the last plan sleeps past lwIP's next tick (kicks wake it) */
    uint64_t rx_seen = 0;  /* byp_rx_rounds at the last plan */
    int frames_woke = 0;   /* the last sleep ended for frames */
    int64_t poll_ns = interval_ns;
    int64_t beside_ns = 0;   /* the last sleep beside a spinning application thread */
    int64_t slept_until = 0; /* when the last sleep was to end */
    uint64_t beside_rx = 0;  /* byp_rx_rounds when that sleep began */
    int mirror_ready = 1;
    struct byp_member_watch mw;
    byp_member_watch_init(&mw);
    byp_local->watch = &mw;
    for (;;) {
        int64_t now = byp_now_ns();
        if (stats_idle && byp_rx_rounds != stats_rx_seen && next_stats > now + STATS_BUSY_NS) {
            next_stats = now + STATS_BUSY_NS;   /* packets again: sample soon */
            stats_idle = 0;
        }
        /* The stats sample, and the chores that go with it. */
        int chores = now + (stats_idle ? COALESCE_NS : 0) >= next_stats;
        int kfd = byp_kmirror_fd();   /* the kernel mirror's netlink socket, once started */
        if (kfd >= 0 && (mirror_ready || chores)) {
            /* When its socket is readable, and with every sample (at least once a second)
             * for what it retries (a snapshot that found no memory). */
            byp_kmirror_poll();   /* never blocks; applies changes under the stack lock */
        }
        if (__atomic_load_n(&byp_local->progress, __ATOMIC_ACQUIRE) != 1)
            break;   /* this process leaves the stack */
        int working = 0;
        if (chores) {
            progress_priority(working = 1);
            /* Every 100 ms while packets move, every idle_period while none does (longer
             * while nothing moves, but every second while the mirror has a snapshot to
             * retry). */
            int was_idle = stats_idle;
            stats_idle = !byp_stats_tick();
            stats_rx_seen = byp_rx_rounds;
            if (!stats_idle || byp_kmirror_dirty())
                idle_period = STATS_IDLE_NS;
            else if (was_idle && idle_period < STATS_IDLE_MAX_NS)
                idle_period *= 2;
            next_stats = now + (stats_idle ? idle_period : STATS_BUSY_NS);
        }
        if (byp_family_shared && next_reap > now + REAP_INTERVAL_NS && byp_family_pending() > 0) {
            next_reap = now + REAP_INTERVAL_NS;   /* a fork: the child may die before joining */
            reap_alone = 0;
        }
        if (byp_family_shared && byp_member_watch_update(&mw))
            next_reap = 0;   /* a member already gone */
        /* The safety net's reaping also runs with the stats sample before it is due (an
         * idle process then wakes once every STATS_IDLE_MAX_NS for both, not twice). */
        if (byp_family_shared &&
            (now + COALESCE_NS >= next_reap || (chores && reap_alone && next_reap <= next_stats))) {
            if (!working)
                progress_priority(working = 1);
            int death = next_reap == 0;   /* a member's death seen (or the first look) */
            byp_member_watch_collect(&mw);   /* the watched dead, so that the living */
            byp_stack_lock();                /* need no /proc read each (pgbench -C: 3 %) */
            byp_reap_members(&mw);
            byp_member_watch_update(&mw);   /* the reaped leave the watch */
            if (death) {
                /* The stats show the family without it now, not a whole idle period on. */
                next_stats = now;
                stats_idle = 0;
                idle_period = STATS_IDLE_NS;
            }
            reap_alone = !(byp_family_pending() > 0 || (!mw.ok && byp_family_other() != 0));
            next_reap = now + (reap_alone ? REAP_ALONE_NS : REAP_INTERVAL_NS);
            byp_stack_unlock_nokick();
        }
        int sleepers = byp_frame_sleepers() > 0;
        int wfd = frames_watch();
        /* Frames watched beside the sleepers while this thread naps (below), and the
         * kernel UDP sockets' set with them.  Epoll sets sleep on the frames exclusively,
         * ahead of this thread; threads in byp_wait's poll(2) do not (a frame wakes them
         * all), so the first frame after a quiet spell wakes this thread with them, once.
         * Not napping beside those kept this thread's sleeps at SLEEPER_CAP_NS for as long
         * as a thread blocked in accept() (which polls the frames and the kernel's
         * listener) waited: 20 wake-ups a second, idle; and, while any UDP socket was
         * accelerated, an idle feed handler's 200 in 10 s.  The set is readable only for
         * what reaches the kernel sockets (loopback, another interface, fragments), which
         * the sleepers' sets wake for too: this thread wakes beside them, once. */
        int beside = wfd >= 0 && wfd != byp_xsk_fd;
        int was_stale = __atomic_load_n(&byp_progress_stale, __ATOMIC_RELAXED);
        /* Flag first, then the clock (byp_app_spin_over: the clock, then the flag). */
        __atomic_store_n(&byp_progress_beside, 1, __ATOMIC_SEQ_CST);
        /* Judged at the end of the last sleep: a thread that shares its CPU with the
         * spinner gets it only once the spinner is preempted, often more than the window
         * after the timeout (which then took every wake-up for the spinner gone). */
        int64_t seen = slept_until != 0 && slept_until < now ? slept_until : now;
        slept_until = 0;
        int64_t idle = seen - __atomic_load_n(&byp_last_app_poll_ns, __ATOMIC_SEQ_CST);
        /* A spinner that received nothing since the last look: with a receive fd, nap as
         * beside an idle process (below), woken by frames, kicks and lwIP's timers. */
        int quiet_spin = beside_ns != 0 && byp_xsk_fd >= 0 && byp_rx_rounds == beside_rx;
        if (idle < APP_SPIN_WINDOW_NS && !quiet_spin) {
            /* An application thread spins on the stack: it receives and runs the timers.
             * Sleep the interval, or until it stops where no frame wakes it (a kick), the
             * kernel mirror has news or a member dies.  On one CPU, longer and longer. */
            if (working)
                progress_priority(0);
            timers_at = 0;
            beside_rx = byp_rx_rounds;
            beside_ns = beside_sleep(beside_ns, interval_ns);
            int64_t wait = until_chores(beside_ns, now, next_stats, next_reap);
            struct timespec ts = {.tv_sec = wait / 1000000000, .tv_nsec = wait % 1000000000};
            struct pollfd sp[3];
            nfds_t sn = 0, smp = 0;
            sp[sn++] = (struct pollfd){.fd = byp_progress_kick_fd, .events = POLLIN};
            if (kfd >= 0)
                sp[sn++] = (struct pollfd){.fd = kfd, .events = POLLIN};
            if (byp_member_watch_fd(&mw) >= 0) {
                smp = sn;
                sp[sn++] = (struct pollfd){.fd = byp_member_watch_fd(&mw), .events = POLLIN};
            }
            slept_until = now + wait;
            BYP_REAL(ppoll)(sp, sn, &ts, NULL);
            if (sp[0].revents & POLLIN) {
                uint64_t v;
                (void)!BYP_REAL(read)(byp_progress_kick_fd, &v, sizeof v);
                beside_ns = 0;   /* the spinner stopped: look at the interval again */
            }
            mirror_ready = kfd >= 0 && sp[1].revents != 0;
            if (smp > 0 && sp[smp].revents != 0)
                next_reap = 0;
            __atomic_store_n(&byp_progress_beside, 0, __ATOMIC_RELAXED);
            continue;
        }
        beside_ns = 0;
        __atomic_store_n(&byp_progress_beside, 0, __ATOMIC_RELAXED);
        /* The lock was busy at the last look: an application thread runs the stack and
         * takes the frames itself; this thread waits out the interval without watching them
         * (it woke at once for the frames still in the ring, found the lock busy again and
         * switched its priority twice each time: 22 % of the server's CPU, most of it
         * sched_setscheduler, while nginx sent 1 MB files). */
        int lock_busy = 0;
        /* Woken early with a sleeper still on the frames and nothing changed: sleep on
         * (unless a quiet interval lets this thread nap beside the sleeper). */
        if (!sleepers || timers_at == 0 || now + (napped ? COALESCE_NS : 0) >= timers_at ||
            was_stale || frames_woke ||
            (beside && !napped)) {
            if (!working)
                progress_priority(working = 1);
            /* An application thread sleeping on the engine's wake fd (which holds the
             * AF_XDP socket) is woken by frames and runs the stack itself; one that ran
             * it within the last interval ran the timers too. */
            int frames = 0;
            napped = 0;
            if (!sleepers || idle >= interval_ns || frames_woke)
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
                    int64_t cap = byp_steering ? STEERED_IDLE_CAP_NS : IDLE_CAP_NS;
                    wait = (int64_t)byp_timers_wait_ms(now / 1000000, cap / 1000000) * 1000000;
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
                /* A long sleep ends with the next sample's: one wake-up for both. */
                if (wait > 2 * LWIP_TICK_NS && timers_at > next_stats)
                    timers_at = next_stats;
                /* With a sleeper on the frames, no kicks while the stack keeps changing:
                 * they would cost a system call on the data path (a request answered after
                 * the reply's ACK left the connection quiet); the sleeps are short then,
                 * and a stale plan is seen at the next wake-up.  After a whole short sleep
                 * with no change, this thread naps until lwIP's next timer beside the
                 * sleeper (the first change kicks it), when it watches the frames too. */
                int quiet = !was_stale && byp_rx_rounds == rx_seen;
                rx_seen = byp_rx_rounds;
                napped = wait > 2 * LWIP_TICK_NS && (!sleepers || (beside && quiet));
                __atomic_store_n(&byp_progress_stale, 0, __ATOMIC_RELAXED);
                __atomic_store_n(&byp_progress_napping, napped, __ATOMIC_RELEASE);
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
         * reaping.  While a sleeper takes the frames and the stack is busy, at most
         * SLEEPER_CAP_NS: the sleeper may leave the library meanwhile, and nobody would
         * watch the frames or time what changed (no kicks then).  Napping beside it, this
         * thread watches the frames behind the sleepers' sets and is kicked. */
        now = byp_now_ns();
        int64_t wait = timers_at - now;
        if (sleepers && !napped && wait > SLEEPER_CAP_NS)
            wait = SLEEPER_CAP_NS;
        if (lock_busy && wait > BUSY_RETRY_NS)
            wait = BUSY_RETRY_NS;   /* the holder may be a sender that leaves the frames */
        wait = until_chores(wait, now, next_stats, next_reap);
        struct pollfd p[5];
        nfds_t np = 0, kp = 0, fp = 0, mp = 0;
        p[np++] = (struct pollfd){.fd = byp_progress_kick_fd, .events = POLLIN};
        if (kfd >= 0)
            p[np++] = (struct pollfd){.fd = kfd, .events = POLLIN};
        /* The input: the frames, and the kernel UDP sockets' set with them. */
        int input = (!sleepers || (beside && napped)) && !lock_busy;
        if (input && wfd >= 0) {
            fp = np;
            p[np++] = (struct pollfd){.fd = wfd, .events = POLLIN};
        }
        if (input && byp_udp_kpath_fd() >= 0) {
            kp = np;
            p[np++] = (struct pollfd){.fd = byp_udp_kpath_fd(), .events = POLLIN};
        }
        if (byp_member_watch_fd(&mw) >= 0) {   /* a member's death */
            mp = np;
            p[np++] = (struct pollfd){.fd = byp_member_watch_fd(&mw), .events = POLLIN};
        }
        struct timespec ts = {.tv_sec = wait / 1000000000, .tv_nsec = wait % 1000000000};
        slept_until = now + wait;
        BYP_REAL(ppoll)(p, np, &ts, NULL);
        if (mp > 0 && p[mp].revents != 0)
            next_reap = 0;   /* reaped at the top of the loop; its pidfd then goes */
        frames_woke = fp > 0 && p[fp].revents != 0;
        if (kp > 0 && p[kp].revents != 0) {
            byp_udp_kpath_wake();
            timers_at = 0;     /* run the stack, which reads the set, */
            frames_woke = 1;   /* even beside a sleeper that ran it a moment ago */
        }
        mirror_ready = kfd >= 0 && p[1].revents != 0;
        if (p[0].revents & POLLIN) {
            /* Kicked (the kicker cleared byp_progress_napping): the stack changed, look
             * again; packets may move again, sample the stats soon. */
            uint64_t v;
            (void)!BYP_REAL(read)(byp_progress_kick_fd, &v, sizeof v);
            timers_at = 0;
            if (next_stats > now + STATS_BUSY_NS) {
                next_stats = now + STATS_BUSY_NS;
                stats_idle = 0;
                idle_period = STATS_IDLE_NS;
            }
        }
    }
    byp_local->watch = NULL;
    byp_member_watch_end(&mw);
    __atomic_store_n(&byp_local->progress, 3, __ATOMIC_RELEASE);   /* stopped */
    return NULL;
}

void byp_progress_kick(void)
{
    if (byp_progress_kick_fd < 0)
        return;
    int saved = errno;
    uint64_t one = 1;
    (void)!BYP_REAL(write)(byp_progress_kick_fd, &one, sizeof one);
    errno = saved;
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
    /* Out of its ppoll now: asleep until its next timer (up to seconds when idle), it
     * made every exit wait that long (90 ms measured at a short program's exit). */
    byp_progress_kick();
    for (int i = 0; i < 2000 && __atomic_load_n(&byp_local->progress, __ATOMIC_ACQUIRE) != 3; i++) {
        struct timespec ms = {0, 500000};
        nanosleep(&ms, NULL);
    }
    pid_t me = getpid();
    __atomic_compare_exchange_n(&byp_progress_pid, &me, 0, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}

