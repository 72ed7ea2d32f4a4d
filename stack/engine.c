/* The engine: brings up DPDK, the NIC and lwIP on the first accelerated socket, runs the
 * stack under one lock, drives it from the application threads that wait on it and, when
 * none does, from a background progress thread; wakes sleeping threads. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
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
#include "fd_tcp.h"
#include "fd_udp.h"
#include "kstate.h"
#include "shm.h"
#include "steer_ctl.h"
#include "stats.h"

static pthread_mutex_t stack_mutex = PTHREAD_MUTEX_INITIALIZER;
int byp_steering = 1;
static struct byp_nic *nic;
static int wake_fd = -1;            /* eventfd the engine signals sleepers with */
static int sleep_fd = -1;           /* epoll over wake_fd and the AF_XDP socket */
static int xsk_fd = -1;              /* the AF_XDP socket, for the progress thread to sleep on */
static uint64_t events;              /* readiness changes, bumped under the lock */
static uint64_t events_woken;        /* value of @events at the last wake-up */
static int64_t last_app_poll_ns;     /* when an application thread last ran the stack */

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

static void clock_setup(void)
{
    uint64_t hz = rte_get_tsc_hz();
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
    tsc_mult = (uint64_t)(((unsigned __int128)1000000000 << 32) / hz);
    tsc_base_ns = mono_ns();
    tsc_base = rte_rdtsc();
}

static int64_t now_ns(void)
{
    if (tsc_mult == 0)
        return mono_ns();
    uint64_t d = rte_rdtsc() - tsc_base;
    return tsc_base_ns + (int64_t)(((unsigned __int128)d * tsc_mult) >> 32);
}

void byp_stack_lock(void)
{
    pthread_mutex_lock(&stack_mutex);
}

void byp_stack_unlock(void)
{
    byp_netif_flush();
    byp_stack_unlock_noflush();
}

void byp_stack_unlock_noflush(void)
{
    int wake = events != events_woken && __atomic_load_n(&byp_sleepers, __ATOMIC_SEQ_CST) > 0;
    events_woken = events;
    pthread_mutex_unlock(&stack_mutex);
    if (wake) {
        uint64_t one = 1;
        int saved = errno;
        (void)!BYP_REAL(write)(wake_fd, &one, sizeof one);
        errno = saved;
    }
}

void byp_engine_event(void)
{
    __atomic_add_fetch(&events, 1, __ATOMIC_RELEASE);
}

static uint32_t last_timer_ms;

int byp_engine_poll(int from_app)
{
    int64_t now = now_ns();     /* one clock read per round: it is a good part of its cost */
    if (from_app)
        __atomic_store_n(&last_app_poll_ns, now, __ATOMIC_RELAXED);
    if (pthread_mutex_trylock(&stack_mutex) != 0)
        return 0;   /* another thread is running the stack right now */
    int n = byp_netif_rx();
    uint32_t t = (uint32_t)(now / 1000000);   /* sys_now's time line (CLOCK_MONOTONIC ms) */
    if (t != last_timer_ms) {
        last_timer_ms = t;
        sys_check_timeouts();
        if (byp_neigh_pending)
            byp_neigh_poll();
        byp_tcp_reap();
    }
    byp_stack_unlock();
    return n;
}

static void wake_drain(void)
{
    uint64_t v;
    int saved = errno;
    (void)!BYP_REAL(read)(wake_fd, &v, sizeof v);
    errno = saved;
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
};
static struct flow *flows;
static int nflows, capflows;

int byp_flow_ref(int proto, in_addr_t addr, in_port_t port)
{
    for (int i = 0; i < nflows; i++)
        if (flows[i].proto == proto && flows[i].addr == addr && flows[i].port == port) {
            flows[i].refs++;
            return 0;
        }
    if (nflows == capflows) {
        int cap = capflows ? capflows * 2 : 64;
        struct flow *f = realloc(flows, (size_t)cap * sizeof *f);
        if (f == NULL)
            return -ENOMEM;
        flows = f;
        capflows = cap;
    }
    int rc = byp_steering ? byp_steer_add(proto, addr, port) : 0;
    if (rc < 0) {
        byp_err("cannot steer %s port %u to the stack: %s", proto == IPPROTO_TCP ? "tcp" : "udp",
                ntohs(port), strerror(-rc));
        return rc;
    }
    flows[nflows++] = (struct flow){proto, addr, port, 1};
    return 0;
}

void byp_flow_unref(int proto, in_addr_t addr, in_port_t port)
{
    for (int i = 0; i < nflows; i++)
        if (flows[i].proto == proto && flows[i].addr == addr && flows[i].port == port) {
            if (--flows[i].refs == 0) {
                if (byp_steering)
                    byp_steer_del(proto, addr, port);
                flows[i] = flows[--nflows];
            }
            return;
        }
}

int byp_route_ok(in_addr_t addr)
{
    /* On-link only for now: routes and gateways come with the live kernel mirror. */
    return (addr & byp_if_mask) == (byp_if_addr & byp_if_mask) && addr != byp_if_addr;
}

/* ---- progress thread ---- */

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

/* An application thread that ran the stack this recently is taken to be spinning on it. */
#define APP_SPIN_WINDOW_NS 20000

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
    int64_t last_stats = 0;
    for (;;) {
        if (now_ns() - last_stats >= 100000000) {   /* the stats sample every 100 ms */
            last_stats = now_ns();
            progress_priority(1);
            byp_stats_tick();
            progress_priority(0);
        }
        struct timespec ts = {.tv_sec = interval_ns / 1000000000, .tv_nsec = interval_ns % 1000000000};
        int64_t idle = now_ns() - __atomic_load_n(&last_app_poll_ns, __ATOMIC_RELAXED);
        if (idle < APP_SPIN_WINDOW_NS || __atomic_load_n(&byp_sleepers, __ATOMIC_RELAXED) > 0) {
            /* An application thread spins on the stack, or sleeps on the engine's wake fd
             * (which holds the AF_XDP socket, so the frames wake it and it runs the stack
             * itself): receiving is taken care of.  Only the timers are left to watch. */
            nanosleep(&ts, NULL);
            if (now_ns() - __atomic_load_n(&last_app_poll_ns, __ATOMIC_RELAXED) < interval_ns)
                continue;
        } else if (xsk_fd >= 0) {
            struct pollfd p = {.fd = xsk_fd, .events = POLLIN};
            BYP_REAL(ppoll)(&p, 1, &ts, NULL);
            if (now_ns() - __atomic_load_n(&last_app_poll_ns, __ATOMIC_RELAXED) < APP_SPIN_WINDOW_NS)
                continue;
        } else {
            nanosleep(&ts, NULL);
        }
        progress_priority(1);
        for (int i = 0; i < 16 && byp_engine_poll(0) > 0; i++)
            ;
        progress_priority(0);
    }
    return NULL;
}

/* ---- start ---- */

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

/* Address space of the shared arena (shm.h); pages are used as they are touched. */
#define SHM_ARENA_BYTES ((size_t)1 << 30)

static int engine_start(void)
{
    int rc = byp_shm_setup(SHM_ARENA_BYTES);
    if (rc < 0) {
        byp_err("cannot map the stack's shared memory: %s", strerror(-rc));
        return rc;
    }
    const char *bname = byp_backend_name((int)byp_cfg.backend);
    const struct byp_nic_ops *bops = byp_nic_find_backend(bname);
    if (bops == NULL) {
        byp_err("backend %s is not available yet; accepted: af_xdp, af_packet, tap", bname);
        return -ENOTSUP;
    }
    byp_steering = bops->steers;
    if (byp_cfg.interface == NULL) {
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
    };
    rc = byp_nic_open(&conf, &nic);
    if (rc < 0)
        return rc;
    if (!byp_steering) {
        struct rte_ether_addr ea;
        uint16_t mtu = 0;
        rte_eth_macaddr_get(nic->port_id, &ea);
        memcpy(kif.mac, ea.addr_bytes, 6);
        if (rte_eth_dev_get_mtu(nic->port_id, &mtu) == 0 && mtu >= 576)
            kif.mtu = mtu;
    }
    wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wake_fd < 0) {
        rc = -errno;
        byp_nic_close(nic);
        return rc;
    }
    clock_setup();
    xsk_fd = find_rx_fd(byp_cfg.backend == BYP_BACKEND_AF_XDP ? AF_XDP :
                        byp_cfg.backend == BYP_BACKEND_AF_PACKET ? AF_PACKET : 0);
    sleep_fd = BYP_REAL(epoll_create1)(EPOLL_CLOEXEC);
    if (sleep_fd < 0) {
        rc = -errno;
        byp_err("cannot create the engine's epoll set: %s", strerror(-rc));
        byp_nic_close(nic);
        return rc;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = wake_fd};
    BYP_REAL(epoll_ctl)(sleep_fd, EPOLL_CTL_ADD, wake_fd, &ev);
    if (xsk_fd >= 0) {
        ev.data.fd = xsk_fd;
        BYP_REAL(epoll_ctl)(sleep_fd, EPOLL_CTL_ADD, xsk_fd, &ev);
    }
    byp_info("sleepers wait on %s", xsk_fd >= 0 ? "the backend's receive fd" : "a timer");

    byp_stack_lock();
    lwip_init();
    rc = byp_netif_setup(nic, kif.mac, kif.mtu, kif.addr, kif.prefixlen);
    byp_stack_unlock();
    if (rc < 0) {
        byp_err("cannot set up the lwIP interface");
        return rc;
    }
    pthread_t th;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    rc = pthread_create(&th, &attr, progress_main, NULL);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        byp_err("cannot start the progress thread: %s", strerror(rc));
        return -rc;
    }
    pthread_setname_np(th, "bypass-progress");
    byp_stats_start(nic, bname, byp_cfg.interface, kif.addr, kif.prefixlen);
    byp_info("accelerating on %s (%s/%u), backend %s", byp_cfg.interface,
             inet_ntoa((struct in_addr){kif.addr}), kif.prefixlen, bname);
    return 0;
}

static struct byp_engine engine = {
    .abi = BYP_ENGINE_ABI,
    .start = NULL,
    .tcp_listen = byp_tcp_listen,
    .tcp_connect = byp_tcp_connect,
    .progress = engine_progress,
    .wake_fd = -1,
    .wake_drain = wake_drain,
    .events = &events,
    .udp_bind = byp_udp_bind,
    .udp_connect = byp_udp_connect,
    .udp_join = byp_udp_join,
};

static pid_t engine_pid;

/* At exit of the process that started the engine (not of a forked child): close the port,
 * which detaches the XDP program, so the interface is the kernel's alone again.  Under the
 * stack lock, so no thread is inside DPDK meanwhile; never waits long for it. */
/* How long an exiting process keeps running the stack so that connections it closed still
 * deliver what they had queued (the kernel would go on for minutes; an in-process stack
 * ends with its process). */
#define EXIT_FLUSH_NS (5LL * 1000000000)

static void engine_atexit(void)
{
    if (getpid() != engine_pid || nic == NULL)
        return;
    int64_t end = now_ns() + EXIT_FLUSH_NS;
    for (;;) {
        int pending = 0;
        if (pthread_mutex_trylock(&stack_mutex) == 0) {
            pending = byp_tcp_flushing();
            byp_stack_unlock();
        } else {
            pending = 1;   /* another thread runs the stack: let it */
        }
        if (!pending || now_ns() >= end)
            break;
        byp_engine_poll(0);
        struct timespec pause = {0, 20000};
        nanosleep(&pause, NULL);
    }
    for (int i = 0; i < 1000; i++) {
        if (pthread_mutex_trylock(&stack_mutex) == 0) {
            byp_nic_close(nic);
            nic = NULL;
            return;   /* the lock stays taken: nothing may use the stack any more */
        }
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
}

/* Start, collecting the first error message as the one-line cause libbypass.so reports. */
static int start_and_publish(char *why, size_t whylen)
{
    byp_log_level = (int)byp_cfg.log_level;
    byp_log_capture(why, whylen);
    int rc = engine_start();
    byp_log_capture(NULL, 0);
    if (rc == 0) {
        engine_pid = getpid();
        atexit(engine_atexit);
    }
    engine.wake_fd = sleep_fd;
    return rc;
}

__attribute__((visibility("default"))) const struct byp_engine *byp_engine_entry(void)
{
    engine.start = start_and_publish;
    return &engine;
}
