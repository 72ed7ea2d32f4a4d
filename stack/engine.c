/* The engine: brings up DPDK, the NIC and lwIP on the first accelerated socket, runs the
 * stack under one lock, drives it from the application threads that wait on it and, when
 * none does, from a background progress thread (progress.c).  Waking sleeping threads is
 * wake.c's; fork, exec and exit are engine_fork.c's. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include <stdio.h>

#include <rte_cycles.h>

#include "lwip/init.h"
#include "lwip/ip4_addr.h"
#include "lwip/sys.h"
#include "lwip/timeouts.h"

#include "backend.h"
#include "byp.h"
#include "engine.h"
#include "byp_stack.h"
#include "engine_int.h"
#include "fd_tcp.h"
#include "family.h"
#include "fd_udp.h"
#include "kstate.h"
#include "repair.h"
#include "shm.h"
#include "steer_ctl.h"
#include "stats.h"
#include "wake.h"

static pthread_mutex_t stack_mutex = PTHREAD_MUTEX_INITIALIZER;
int byp_steering = 1;
struct byp_nic *byp_engine_nic;
int byp_xsk_fd = -1;                /* the AF_XDP socket, for the progress thread to sleep on */
int64_t byp_last_app_poll_ns;       /* when an application thread last ran the stack */

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The stack's clock, read on every poll round: the TSC when the CPU says it is invariant
 * (a few cycles), else CLOCK_MONOTONIC (a vDSO call, a good part of a quiet round's cost).
 * Anchored to CLOCK_MONOTONIC at start, so both read the same time line. */
static uint64_t tsc_base, tsc_mult;   /* ns = base_ns + ((tsc - tsc_base) * tsc_mult) >> 32 */
static int64_t tsc_base_ns;
/* A TSC reading and the CLOCK_MONOTONIC time at its middle, taken at the engine's start:
 * with a second one at clock_setup, 50-100 ms later, the TSC's rate against the kernel's
 * clock.  DPDK's own figure is rounded to 10 MHz (2600 MHz for a TSC of 2596.15: a clock
 * 0.15 % slow). */
static uint64_t cal_tsc;
static int64_t cal_ns;

static void clock_sample(uint64_t *tsc, int64_t *ns)
{
    int64_t a = mono_ns();
    *tsc = rte_rdtsc();
    *ns = a + (mono_ns() - a) / 2;
}

static void clock_setup(void)
{
    uint64_t hz = rte_get_tsc_hz();
    uint64_t tsc;
    int64_t ns;
    clock_sample(&tsc, &ns);
    if (cal_ns != 0 && ns - cal_ns >= 20000000 && tsc > cal_tsc) {
        uint64_t measured = (uint64_t)((unsigned __int128)(tsc - cal_tsc) * 1000000000 /
                                       (uint64_t)(ns - cal_ns));
        /* A sample stretched by a preemption between its two clock reads would be off
         * by far more than DPDK's rounding: keep DPDK's figure then. */
        if (measured > hz - hz / 100 && measured < hz + hz / 100)
            hz = measured;
    }
    FILE *f = fopen("/proc/cpuinfo", "r");
    int invariant = 0;
    char line[4096];
    while (f != NULL && fgets(line, sizeof line, f) != NULL)
        if (strncmp(line, "flags", 5) == 0) {
            invariant = strstr(line, " constant_tsc") != NULL && strstr(line, " nonstop_tsc") != NULL;
            break;
        }
    if (f != NULL)
        fclose(f);
    if (!invariant || hz < 1000000)
        return;
    byp_info("clock: the TSC at %.3f MHz (DPDK's figure %.0f)", (double)hz / 1e6,
             (double)rte_get_tsc_hz() / 1e6);
    tsc_mult = (uint64_t)(((unsigned __int128)1000000000 << 32) / hz);
    tsc_base = tsc;   /* the second sample anchors the clock */
    tsc_base_ns = ns;
}

int64_t byp_now_ns(void)
{
    if (tsc_mult == 0)
        return mono_ns();
    uint64_t d = rte_rdtsc() - tsc_base;
    return tsc_base_ns + (int64_t)(((unsigned __int128)d * tsc_mult) >> 32);
}

/* The lock is robust: when a member died holding it (kill -9 inside the stack), the next
 * taker gets EOWNERDEAD, marks it consistent, repairs what the dead holder may have left
 * half done (repair.c) and reaps the dead member's references.  Every take records its
 * holder (byp_holder), for that repair. */
static int lock_taken(int rc)
{
    if (rc == EOWNERDEAD) {
        pthread_mutex_consistent(&stack_mutex);
        byp_warn("a process died while running the shared stack; carrying on without it");
        byp_repair_dead_holder();
        byp_reap_members(NULL);
        rc = 0;
    }
    if (rc == 0)
        byp_holder = (struct byp_holder){.pid = byp_local != NULL ? byp_local->pid : 0};
    return rc;
}

/* The family's one progress thread runs in process byp_progress_pid; 0 when none does (its
 * process left): the next member to use the stack starts one. */
pid_t byp_progress_pid;

/* Every take of the lock defers the thread's signal handlers until it is released
 * (byp_sig_hold, wrap_signal.c): a handler that calls into the library cannot deadlock. */
/* A taker that finds the lock held yields the CPU a few times before sleeping on it: on a
 * busy CPU the holder is most often a thread of ours preempted with it (by a sleeper that
 * frames or a wake-up woke), and a futex sleep costs the holder a futex wake at release
 * and both two context switches: memcached -t 4's workers handed the lock to one another
 * that way 800 times a second each (docs/architecture.md, "Deployment performance"). */
#define LOCK_YIELDS 4

void byp_stack_lock_raw(void)
{
    byp_sig_hold();   /* before: a handler between the take and the hold would deadlock */
    for (int i = 0; i < LOCK_YIELDS; i++) {
        int rc = pthread_mutex_trylock(&stack_mutex);
        if (rc != EBUSY) {
            lock_taken(rc);
            return;
        }
        sched_yield();
    }
    lock_taken(pthread_mutex_lock(&stack_mutex));
}

void byp_stack_lock(void)
{
    if (__builtin_expect(__atomic_load_n(&byp_progress_pid, __ATOMIC_RELAXED) == 0, 0))
        byp_progress_start();
    byp_stack_lock_raw();
}

int byp_stack_trylock(void)
{
    byp_sig_hold();
    int rc = lock_taken(pthread_mutex_trylock(&stack_mutex));
    if (rc != 0)
        byp_sig_release();
    return rc;
}

/* Release the lock; @kick: whoever held the lock may have given lwIP something to time (a
 * send to retransmit, a delayed ACK, a close): mark the progress thread's plan stale, and
 * (1; 2 is the progress thread itself) wake it if it sleeps past lwIP's next tick with
 * nobody else on the frames (byp_progress_napping).  Checked under the lock, which the
 * progress thread held when it decided to nap, so no change slips between the two. */
static void unlock(int kick)
{
    struct byp_wake_plan plan;
    int wake = byp_wake_plan(&plan);
    if (kick && !__atomic_load_n(&byp_progress_stale, __ATOMIC_RELAXED))
        __atomic_store_n(&byp_progress_stale, 1, __ATOMIC_RELAXED);
    kick = kick == 1 && __atomic_load_n(&byp_progress_napping, __ATOMIC_RELAXED) &&
           __atomic_exchange_n(&byp_progress_napping, 0, __ATOMIC_ACQ_REL);
    byp_holder = (struct byp_holder){0};
    pthread_mutex_unlock(&stack_mutex);
    byp_netif_kick();   /* what the flush left to send, without holding the others up */
    byp_sig_release();
    if (wake || kick) {
        int saved = errno;
        if (wake)
            byp_wake_send(&plan);
        if (kick)
            byp_progress_kick();
        errno = saved;
    }
}

void byp_stack_unlock(void)
{
    byp_netif_flush();
    unlock(1);
}

void byp_stack_unlock_noflush(void)
{
    unlock(1);
}

void byp_stack_unlock_nokick(void)
{
    byp_netif_flush();
    unlock(0);
}

void byp_stack_unlock_stale(void)
{
    byp_netif_flush();
    unlock(2);
}

void byp_stack_unlock_udp(void)
{
    byp_netif_flush();
    unlock(__atomic_load_n(&byp_neigh_pending, __ATOMIC_RELAXED) != 0);
}

uint64_t byp_rx_rounds;

static uint32_t last_timer_ms, last_owner_check_ms;
int byp_progress_kick_fd = -1;
int byp_progress_napping, byp_progress_stale, byp_progress_beside;

/* The thread going to sleep is no longer the frames' reader: the progress thread, if it
 * trusts it to be (progress.c), is woken to take them.  The clock's zero first, then the
 * flag, against the progress thread's flag first, then the clock: one of the two sees the
 * other's store. */
void byp_app_spin_over(void)
{
    __atomic_store_n(&byp_last_app_poll_ns, 0, __ATOMIC_SEQ_CST);
    /* Another thread of the family spins on the stack: it takes the frames, and kicks when
     * it stops in turn (its spin is counted off before it gets here). */
    if (__atomic_load_n(byp_spinners, __ATOMIC_SEQ_CST) > 0)
        return;
    if (__atomic_load_n(&byp_progress_beside, __ATOMIC_SEQ_CST) &&
        __atomic_exchange_n(&byp_progress_beside, 0, __ATOMIC_SEQ_CST))
        byp_progress_kick();
}

/* One round of the stack; @wait_lock: take the lock even when another thread holds it. */
int byp_engine_run(int from_app, int wait_lock)
{
    /* An application thread's round on a quiet NIC (rx ring empty, nothing to send): 7 in
     * 8 end here, without the clock, the lock or the second path's look; the 8th does all
     * that.  A spinning thread then sees a frame a few ns after it lands instead of up to
     * a whole round later (issue 9: the UDP ping-pong's p50). */
    static __thread unsigned quiet;
    if (from_app && !wait_lock && byp_netif_quiet() && (++quiet & 7) != 0)
        return 0;
    int64_t now = byp_now_ns();     /* one clock read per round: it is a good part of its cost */
    if (from_app)
        __atomic_store_n(&byp_last_app_poll_ns, now, __ATOMIC_RELAXED);
    if (__builtin_expect(__atomic_load_n(&byp_progress_pid, __ATOMIC_RELAXED) == 0, 0))
        byp_progress_start();
    if (wait_lock)
        byp_stack_lock_raw();
    else if (byp_stack_trylock() != 0)
        return 0;   /* another thread is running the stack right now */
    uint32_t t = (uint32_t)(now / 1000000);   /* sys_now's time line (CLOCK_MONOTONIC ms) */
    int tick = t != last_timer_ms;
    if (tick)   /* the progress thread may have slept through many of lwIP's ticks */
        byp_tcp_ticks_sync(now / 1000000);
    byp_rx_timed = 0;
    int n = byp_netif_rx();
    if (n > 0)
        byp_rx_rounds++;
    byp_udp_kpath_poll(now);
    if (tick) {
        last_timer_ms = t;
        byp_holder.in_timers = 1;
        sys_check_timeouts();
        byp_tw_take();
        byp_tw_expire();
        byp_holder.in_timers = 0;
        byp_repair_learn();
        byp_nic_tick(byp_engine_nic);
        if (byp_neigh_pending)
            byp_neigh_poll();
        byp_tcp_reap();
        if (__builtin_expect(t - last_owner_check_ms >= 500, 0)) {
            /* The process running the family's progress thread was killed: nobody reaps
             * the dead or runs the timers.  Whoever runs the stack notices. */
            last_owner_check_ms = t;
            pid_t pp = byp_progress_pid;
            int saved = errno;
            if (pp > 0 && pp != getpid() && kill(pp, 0) != 0 && errno == ESRCH)
                byp_reap_members(NULL);
            errno = saved;
        }
    }
    /* Only TCP input gives lwIP something to time (a delayed ACK, a handshake, a close):
     * datagrams do not, and a feed of them must not kick a napping progress thread per
     * datagram. */
    if (byp_rx_timed || byp_neigh_pending)
        byp_stack_unlock();
    else
        byp_stack_unlock_nokick();
    return n;
}

int byp_engine_poll(int from_app)
{
    return byp_engine_run(from_app, 0);
}

static int engine_progress(void)
{
    return byp_engine_poll(1);
}

/* ---- flows: steering entries with reference counts ---- */

struct flow {
    int proto;
    in_addr_t addr;
    in_port_t port;
    int refs;
    int handed;                 /* byp_flow_hand */
};
/* A fixed table in the engine's (shared) data: the map has as many entries at most. */
#define MAX_FLOWS 4096
static struct flow flows[MAX_FLOWS];
static int nflows;
int byp_flows_handed;

int byp_flow_ref(int proto, in_addr_t addr, in_port_t port)
{
    for (int i = 0; i < nflows; i++)
        if (flows[i].proto == proto && flows[i].addr == addr && flows[i].port == port) {
            flows[i].refs++;
            return 0;
        }
    if (nflows == MAX_FLOWS)
        return -ENOSPC;
    int rc = byp_steering ? byp_steer_add(proto, addr, port) : 0;
    if (rc < 0) {
        byp_err("cannot steer %s port %u to the stack: %s", proto == IPPROTO_TCP ? "tcp" : "udp",
                ntohs(port), strerror(-rc));
        return rc;
    }
    flows[nflows++] = (struct flow){proto, addr, port, 1, 0};
    return 0;
}

void byp_flow_unref(int proto, in_addr_t addr, in_port_t port)
{
    for (int i = 0; i < nflows; i++)
        if (flows[i].proto == proto && flows[i].addr == addr && flows[i].port == port) {
            if (--flows[i].refs == 0) {
                if (byp_steering)
                    byp_steer_del(proto, addr, port);
                byp_flows_handed -= flows[i].handed;
                flows[i] = flows[--nflows];
            }
            return;
        }
}

int byp_flow_hand(int proto, in_addr_t addr, in_port_t port)
{
    int rc = byp_steering ? byp_steer_hand(proto, addr, port) : -ENOTSUP;
    for (int i = 0; rc == 0 && i < nflows; i++)
        if (flows[i].proto == proto && flows[i].addr == addr && flows[i].port == port &&
            !flows[i].handed) {
            flows[i].handed = 1;
            byp_flows_handed++;
        }
    return rc;
}

int byp_flow_handed_tcp(in_addr_t dst, in_port_t port, in_addr_t *flow_addr)
{
    for (int i = 0; i < nflows; i++)
        if (flows[i].handed && flows[i].proto == IPPROTO_TCP && flows[i].port == port &&
            (flows[i].addr == dst || flows[i].addr == 0)) {
            *flow_addr = flows[i].addr;
            return 1;
        }
    return 0;
}

static in_addr_t gateway;   /* `gateway` key on a dedicated interface; 0: none */

int byp_route_ok(in_addr_t addr)
{
    /* On-link, or through the configured gateway of a dedicated interface (af_xdp's
     * routes and gateways come with the live kernel mirror). */
    if (addr == byp_if_addr)
        return 0;
    return (addr & byp_if_mask) == (byp_if_addr & byp_if_mask) || gateway != 0;
}

/* How long a connect() waits for a link that is coming up (a memif handshake). */
#define LINK_WAIT_NS (1000LL * 1000000)

int byp_link_ready(void)
{
    int64_t end = byp_now_ns() + LINK_WAIT_NS;
    for (;;) {
        int st = byp_nic_link_state(byp_engine_nic);
        if (st != 0)
            return st > 0;
        if (byp_now_ns() >= end)
            return 0;
        byp_engine_poll(1);   /* runs the backend's tick, which drives the handshake */
        struct timespec pause = {0, 200000};
        nanosleep(&pause, NULL);
    }
}

/* ---- start ---- */

/* The fd the backend receives on, for sleeping threads: the socket of domain @domain the
 * PMD opened (AF_XDP, AF_PACKET), or with @domain 0 the tap device (/dev/net/tun). */
static int find_rx_fd(int domain)
{
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return -1;
    int found = -1;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        int fd = atoi(de->d_name);
        if (fd <= 2 || fd == dirfd(d))
            continue;
        if (domain == 0) {
            char path[64], target[64];
            snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
            ssize_t n = readlink(path, target, sizeof target - 1);
            if (n > 0 && (target[n] = '\0', strcmp(target, "/dev/net/tun") == 0))
                found = fd;
            continue;
        }
        int dom = 0;
        socklen_t len = sizeof dom;
        if (BYP_REAL(getsockopt)(fd, SOL_SOCKET, SO_DOMAIN, &dom, &len) == 0 && dom == domain)
            found = fd;
    }
    closedir(d);
    return found;
}

/* The stack's address on a dedicated interface: "a.b.c.d/len" from the `ip` key. */
static int parse_ip(const char *text, in_addr_t *addr, unsigned *prefix)
{
    char buf[32];
    unsigned len = 32;
    snprintf(buf, sizeof buf, "%s", text ? text : "");
    char *slash = strchr(buf, '/');
    if (slash != NULL) {
        char *end;
        unsigned long v = strtoul(slash + 1, &end, 10);
        if (*end != '\0' || end == slash + 1 || v > 32)
            return -EINVAL;
        len = (unsigned)v;
        *slash = '\0';
    }
    struct in_addr a;
    if (inet_pton(AF_INET, buf, &a) != 1)
        return -EINVAL;
    *addr = a.s_addr;
    *prefix = len;
    return 0;
}


static int engine_start(void)
{
    clock_sample(&cal_tsc, &cal_ns);
    byp_family_setup();
    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&ma, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&stack_mutex, &ma);
    pthread_mutexattr_destroy(&ma);
    byp_progress_pid = -1;         /* started below, once the stack is up */
    int rc = byp_shm_setup((size_t)byp_cfg.shm_mb << 20);   /* BYPASS_SHM_MB */
    if (rc < 0) {
        byp_err("cannot map the stack's shared memory: %s", strerror(-rc));
        return rc;
    }
    const char *bname = byp_backend_name((int)byp_cfg.backend);
    const struct byp_nic_ops *bops = byp_nic_find_backend(bname);
    if (bops == NULL) {
        byp_err("backend %s is not available; accepted: af_xdp, af_packet, tap, memif, pci", bname);
        return -ENOTSUP;
    }
    byp_steering = bops->steers;
    if (byp_cfg.interface == NULL && bops->label == NULL) {
        byp_err("no interface configured (interface = \"...\" in the config file, or BYPASS_INTERFACE)");
        return -EINVAL;
    }
    struct byp_kif kif;
    memset(&kif, 0, sizeof kif);
    if (byp_steering) {
        rc = byp_kstate_get_if(byp_cfg.interface, &kif);
        if (rc < 0) {
            byp_err("interface %s: %s", byp_cfg.interface,
                    rc == -ENODEV ? "no such interface in this network namespace" : strerror(-rc));
            return rc;
        }
        if (kif.addr == 0) {
            byp_err("interface %s has no IPv4 address", byp_cfg.interface);
            return -EADDRNOTAVAIL;
        }
    } else {
        unsigned prefix;
        if (parse_ip(byp_cfg.ip, &kif.addr, &prefix) < 0) {
            byp_err("backend %s needs the stack's address: ip = \"a.b.c.d/len\" (or BYPASS_IP)%s%s",
                    bname, byp_cfg.ip ? "; not an IPv4 address/prefix: " : "",
                    byp_cfg.ip ? byp_cfg.ip : "");
            return -EINVAL;
        }
        kif.prefixlen = (uint8_t)prefix;
        kif.mtu = 1500;
        struct in_addr g;
        if (byp_cfg.gateway != NULL &&
            (inet_pton(AF_INET, byp_cfg.gateway, &g) != 1 || prefix == 0 ||
             ((g.s_addr ^ kif.addr) & htonl(~0u << (32 - prefix))) != 0)) {
            byp_err("gateway = \"%s\" is not an IPv4 address inside %s (the ip key's subnet)",
                    byp_cfg.gateway, byp_cfg.ip);
            return -EINVAL;
        }
        gateway = byp_cfg.gateway != NULL ? g.s_addr : 0;
    }
    struct byp_nic_conf conf = {
        .ifname = byp_cfg.interface,
        .backend = bname,
        .nb_eal_args = byp_cfg.n_dpdk_args,
        .eal_args = byp_cfg.dpdk_args,
        .xdp_prog = byp_cfg.xdp_prog,
        /* Room for bursts (1,000 connections closing at once): rings of 4096 and a pool
         * that also covers what sockets hold unread. */
        .nb_rxd = 4096,
        .nb_txd = 4096,
        .nb_mbufs = 32768,
        .af_xdp_pmd = byp_cfg.rx_ring == 0,
        .rx_ring = (unsigned)byp_cfg.rx_ring,
        .memif_socket = byp_cfg.memif_socket,
        .memif_client = byp_cfg.memif_role == BYP_ROLE_CLIENT,
        .memif_id = (unsigned)byp_cfg.memif_id,
        .ip = kif.addr,
        .pci = byp_cfg.pci,
        .dpdk_port = byp_cfg.dpdk_port,
    };
    rc = byp_nic_open(&conf, &byp_engine_nic);
    if (rc < 0)
        return rc;
    if (!byp_steering) {
        struct rte_ether_addr ea;
        uint16_t mtu = 0;
        rte_eth_macaddr_get(byp_engine_nic->port_id, &ea);
        memcpy(kif.mac, ea.addr_bytes, 6);
        if (rte_eth_dev_get_mtu(byp_engine_nic->port_id, &mtu) == 0 && mtu >= 576)
            kif.mtu = mtu;
    }
    byp_progress_kick_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (byp_progress_kick_fd < 0) {
        rc = -errno;
        byp_nic_close(byp_engine_nic);
        return rc;
    }
    clock_setup();
    byp_xsk_fd = find_rx_fd(byp_cfg.backend == BYP_BACKEND_AF_XDP ? AF_XDP :
                        byp_cfg.backend == BYP_BACKEND_AF_PACKET ? AF_PACKET : 0);
    rc = byp_udp_kpath_start();
    if (rc < 0)
        byp_warn("udp: no kernel-path set (%s): receives look at kernel sockets each time",
                 strerror(-rc));
    rc = byp_wake_open();
    if (rc < 0) {
        byp_err("cannot create the engine's wake-up fds: %s", strerror(-rc));
        byp_nic_close(byp_engine_nic);
        return rc;
    }
    byp_info("sleepers wait on %s", byp_xsk_fd >= 0 ? "the backend's receive fd" : "a timer");

    byp_stack_lock();
    lwip_init();
    rc = byp_netif_setup(byp_engine_nic, kif.mac, kif.mtu, kif.addr, kif.prefixlen);
    if (rc == 0 && gateway != 0)
        netif_set_gw(&byp_netif, &(ip4_addr_t){.addr = gateway});
    byp_family_start(byp_engine_nic->pool);
    byp_stack_unlock();
    if (rc < 0) {
        byp_err("cannot set up the lwIP interface");
        return rc;
    }
    /* The stats before the progress thread, which samples them (found by ThreadSanitizer:
     * it could read the header half written). */
    byp_stats_start(byp_engine_nic, bname, byp_engine_nic->ifname, kif.addr, kif.prefixlen);
    byp_progress_pid = 0;
    byp_progress_start();
    byp_info("accelerating on %s (%s/%u), backend %s", byp_engine_nic->ifname,
             inet_ntoa((struct in_addr){kif.addr}), kif.prefixlen, bname);
    /* Frames from the local kernel over veth may carry its partial checksums (transmit
     * offload): trusted for that driver only. */
    struct byp_kif link = kif;
    if (!byp_steering && (byp_cfg.interface == NULL || byp_kstate_get_if(byp_cfg.interface, &link) < 0))
        link.kind[0] = '\0';   /* a tap the PMD made, say: not veth */
    byp_netif_trust_partial_csum(strcmp(link.kind, "veth") == 0);
    if (byp_steering) {
        /* The interface stays the kernel's: follow its routes, addresses, link and
         * neighbours live. */
        rc = byp_mirror_start(kif.ifindex);
        if (rc == 0)   /* read by a progress thread that may run already */
            __atomic_store_n(&byp_kmirror_pid, getpid(), __ATOMIC_RELEASE);
        if (rc < 0)
            byp_warn("cannot mirror the kernel's routes and neighbours (%s): only peers on "
                     "%s's subnet are served", strerror(-rc), byp_cfg.interface);
    }
    return 0;
}

static struct byp_engine engine = {
    .abi = BYP_ENGINE_ABI,
    .start = NULL,
    .tcp_listen = byp_tcp_listen,
    .tcp_connect = byp_tcp_connect,
    .progress = engine_progress,
    .wake_fd = -1,
    .wake_drain = byp_wake_drain,
    .events = &byp_wake_events,
    .changes = (const void *const *)byp_change_log,
    .frames_fd = &byp_wake_frames_fd,
    .frames_drain = byp_wake_frames_drain,
    .frames_poll_fd = byp_wake_pollers_fd,
    .kpath_fd = byp_udp_kpath_fd,
    .kpath_wake = byp_udp_kpath_wake,
    .seat_left = byp_progress_kick,   /* it then watches the frames */
    .spin_over = byp_app_spin_over,
    .target_open = byp_wake_target_open,
    .target_close = byp_wake_target_close,
    .target_fd = byp_wake_target_fd,
    .target_sleepers = byp_wake_target_sleepers,
    .watch = byp_wake_watch,
    .fork_prepare = byp_engine_fork_prepare,
    .fork_child = byp_engine_fork_child,
    .fork_failed = byp_engine_fork_failed,
    .exec_prepare = byp_engine_exec_prepare,
    .leave = byp_engine_atexit,
    .spawn_prepare = byp_engine_spawn_prepare,
    .pass_prepare = byp_engine_pass_prepare,
    .udp_bind = byp_udp_bind,
    .udp_connect = byp_udp_connect,
    .udp_join = byp_udp_join,
};
/* Start, collecting the first error message as the one-line cause libbypass.so reports. */
static int start_and_publish(char *why, size_t whylen)
{
    byp_log_level = (int)byp_cfg.log_level;
    byp_log_capture(why, whylen);
    int rc = engine_start();
    byp_log_capture(NULL, 0);
    engine.wake_fd = byp_wake_sleep_fd();
    engine.slot_fds = byp_wake_slot_fds(&engine.nslots, &engine.slots_busy);
    return rc;
}

__attribute__((visibility("default"))) const struct byp_engine *byp_engine_entry(void)
{
    engine.start = start_and_publish;
    return &engine;
}
