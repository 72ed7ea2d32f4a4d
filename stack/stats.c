/* Live statistics: publishes the engine's counters in /dev/shm/bypass.<pid> (layout and
 * concurrency rules in stats.h) for bypass-stat.  Never harms the host: any failure is one
 * warning and the engine runs on without stats. */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <rte_ethdev.h>
#include <rte_mempool.h>

#include "backend.h"
/* DPDK pulls in <netinet/ip.h>, whose fragment flags lwIP defines again. */
#undef IP_RF
#undef IP_DF
#undef IP_MF
#undef IP_OFFMASK
#include "byp_stack.h"
#include "log.h"
#include "engine_int.h"
#include "stats.h"
#include "proc.h"
#include "tcp_sock.h"
#include "wake.h"
#include "udp_sock.h"
#include "lwip/stats.h"

struct byp_stats_stack *byp_stats;
static struct byp_stats_hdr *hdr;
static struct byp_stats_sock *socks;
static struct byp_nic *nic;
static pid_t owner;
static char path[64];
static const uint64_t *spin_hits, *spin_misses;   /* libbypass.so's, when it exports them */

/* Socket slots: owner of each, free list, and a map tsock -> slot (open addressing with
 * linear probing and backward-shift deletion; private memory, stack lock held). */
#define MAP_BITS 13
#define MAP_SIZE (1u << MAP_BITS)
static struct tsock *slot_ts[BYP_STATS_MAX_SOCKS];
static struct usock *slot_us[BYP_STATS_MAX_SOCKS];
static uint32_t free_slots[BYP_STATS_MAX_SOCKS];
static unsigned nfree;
static struct {
    const struct tsock *key;
    uint32_t slot;
} map[MAP_SIZE];

static unsigned bucket(const struct tsock *ts)
{
    return (unsigned)((((uintptr_t)ts >> 4) * 0x9E3779B97F4A7C15ull) >> (64 - MAP_BITS));
}

struct byp_stats_sock *byp_stats_sock_of(const struct tsock *ts)
{
    for (unsigned h = bucket(ts);; h = (h + 1) & (MAP_SIZE - 1)) {
        if (map[h].key == ts)
            return &socks[map[h].slot];
        if (map[h].key == NULL)
            return NULL;
    }
}

static int64_t real_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static int64_t mono_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Rename the file after member @pid, which publishes from now on (lock held). */
static void stats_move(pid_t pid)
{
    char np[sizeof path];
    if (path[0] == '\0' || hdr == NULL || pid == owner)
        return;
    snprintf(np, sizeof np, BYP_STATS_PATH_FMT, (int)pid);
    if (rename(path, np) != 0)
        return;
    memcpy(path, np, sizeof path);
    owner = pid;
    hdr->start_ticks = byp_proc_start_ticks(pid);
    __atomic_store_n(&hdr->pid, (int32_t)pid, __ATOMIC_RELEASE);
}

void byp_stats_handoff(pid_t pid)
{
    if (getpid() == owner)
        stats_move(pid);
}

void byp_stats_claim_live(void)
{
    if (hdr != NULL && !byp_proc_running(owner, hdr->start_ticks))
        stats_move(getpid());
}

void byp_stats_end(void)
{
    if (path[0] != '\0')
        unlink(path);
    path[0] = '\0';
}

/* Remove the stats files of this user's processes that died without removing theirs
 * (killed by a signal whose default action ends them: SIGKILL, an unhandled SIGTERM), as
 * bypass-stat does when it meets one.  A file is stale when neither the process its name
 * gives nor the one its header names still runs with the header's start time (a file being
 * handed to another member of a forked family names both). */
static void sweep_stale(void)
{
    DIR *d = opendir("/dev/shm");
    if (d == NULL)
        return;
    unsigned removed = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, BYP_STATS_PREFIX, strlen(BYP_STATS_PREFIX)) != 0)
            continue;
        char *end;
        long pid = strtol(e->d_name + strlen(BYP_STATS_PREFIX), &end, 10);
        if (*end != '\0' || pid <= 0 || pid == (long)getpid())
            continue;
        int fd = openat(dirfd(d), e->d_name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
        if (fd < 0)
            continue;
        struct stat sb;
        struct byp_stats_hdr h;
        int ours = fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_uid == geteuid() &&
                   pread(fd, &h, sizeof h, 0) == (ssize_t)sizeof h &&
                   h.magic == BYP_STATS_MAGIC;
        close(fd);
        if (ours && !byp_proc_running((pid_t)pid, h.start_ticks) &&
            !byp_proc_running((pid_t)h.pid, h.start_ticks) &&
            unlinkat(dirfd(d), e->d_name, 0) == 0)
            removed++;
    }
    closedir(d);
    if (removed > 0)
        byp_info("removed %u stale stats file%s of exited processes from /dev/shm", removed,
                 removed == 1 ? "" : "s");
}

void byp_stats_start(struct byp_nic *n, const char *backend, const char *ifname, uint32_t addr,
                     unsigned prefixlen)
{
    owner = getpid();
    sweep_stale();
    snprintf(path, sizeof path, BYP_STATS_PATH_FMT, (int)owner);
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0 && errno == EEXIST) {
        /* Left by an earlier process with our pid: that one is gone. */
        unlink(path);
        fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    }
    if (fd < 0) {
        byp_warn("live stats off: cannot create %s: %s", path, strerror(errno));
        path[0] = '\0';
        return;
    }
    void *m = MAP_FAILED;
    if (fchmod(fd, 0600) == 0 && ftruncate(fd, (off_t)BYP_STATS_SIZE) == 0)
        m = mmap(NULL, BYP_STATS_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    int err = errno;
    close(fd);
    if (m == MAP_FAILED) {
        byp_warn("live stats off: cannot map %s: %s", path, strerror(err));
        unlink(path);
        path[0] = '\0';
        return;
    }
    nic = n;
    hdr = m;
    struct byp_stats_stack *st = (void *)((char *)m + sizeof *hdr);
    socks = (void *)((char *)st + sizeof *st);
    hdr->version = BYP_STATS_VERSION;
    hdr->size = (uint32_t)BYP_STATS_SIZE;
    hdr->hdr_size = sizeof *hdr;
    hdr->stack_size = sizeof *st;
    hdr->sock_size = sizeof *socks;
    hdr->max_socks = BYP_STATS_MAX_SOCKS;
    hdr->pid = (int32_t)owner;
    hdr->prefixlen = prefixlen;
    hdr->start_ticks = byp_proc_start_ticks(getpid());
    hdr->start_unix_ns = real_ns();
    hdr->addr = addr;
    snprintf(hdr->backend, sizeof hdr->backend, "%s", backend ? backend : "");
    snprintf(hdr->ifname, sizeof hdr->ifname, "%s", ifname ? ifname : "");
    st->nb_queues = 1;
    if (n != NULL && n->pool != NULL)
        st->pool_size = n->pool->size;
    for (unsigned i = 0; i < BYP_STATS_MAX_SOCKS; i++)
        free_slots[i] = BYP_STATS_MAX_SOCKS - 1 - i;
    nfree = BYP_STATS_MAX_SOCKS;
    spin_hits = dlsym(RTLD_DEFAULT, "byp_spin_hits");
    spin_misses = dlsym(RTLD_DEFAULT, "byp_spin_misses");
    __atomic_store_n(&hdr->magic, BYP_STATS_MAGIC, __ATOMIC_RELEASE);   /* last: complete */
    byp_stats = st;
}

void byp_stats_sock_open(struct tsock *ts)
{
    if (byp_stats == NULL || byp_stats_sock_of(ts) != NULL)
        return;
    if (nfree == 0) {
        byp_stats->socks_overflow++;
        return;
    }
    uint32_t slot = free_slots[--nfree];
    unsigned h = bucket(ts);
    while (map[h].key != NULL)
        h = (h + 1) & (MAP_SIZE - 1);
    map[h].key = ts;
    map[h].slot = slot;
    slot_ts[slot] = ts;
    struct byp_stats_sock *s = &socks[slot];
    __atomic_add_fetch(&s->seq, 1, __ATOMIC_RELEASE);   /* odd: being assigned */
    uint32_t seq = s->seq;
    memset(s, 0, sizeof *s);
    s->seq = seq;
    s->laddr = ts->local.sin_addr.s_addr;
    s->lport = ts->local.sin_port;
    s->raddr = ts->remote.sin_addr.s_addr;
    s->rport = ts->remote.sin_port;
    s->state = ts->state == T_LISTEN ? BYP_SS_LISTEN : ts->state == T_CONNECTING ? BYP_SS_CONNECTING
             : ts->state == T_CONNECTED ? BYP_SS_ESTABLISHED : BYP_SS_CLOSED;
    __atomic_add_fetch(&s->seq, 1, __ATOMIC_RELEASE);
}

void byp_stats_sock_close(struct tsock *ts)
{
    if (byp_stats == NULL)
        return;
    unsigned h = bucket(ts);
    while (map[h].key != ts) {
        if (map[h].key == NULL)
            return;   /* never listed (table full) */
        h = (h + 1) & (MAP_SIZE - 1);
    }
    uint32_t slot = map[h].slot;
    /* Backward-shift deletion: pull later entries of the run into the hole. */
    for (unsigned j = (h + 1) & (MAP_SIZE - 1); map[j].key != NULL; j = (j + 1) & (MAP_SIZE - 1)) {
        unsigned home = bucket(map[j].key);
        if (((j - home) & (MAP_SIZE - 1)) >= ((j - h) & (MAP_SIZE - 1))) {
            map[h] = map[j];
            h = j;
        }
    }
    map[h].key = NULL;
    struct byp_stats_sock *s = &socks[slot];
    __atomic_add_fetch(&s->seq, 1, __ATOMIC_RELEASE);
    s->state = BYP_SS_FREE;
    __atomic_add_fetch(&s->seq, 1, __ATOMIC_RELEASE);
    slot_ts[slot] = NULL;
    free_slots[nfree++] = slot;
}

void byp_stats_udp_open(struct usock *us)
{
    us->stat_slot = -1;
    if (byp_stats == NULL)
        return;
    if (nfree == 0) {
        byp_stats->socks_overflow++;
        return;
    }
    uint32_t slot = free_slots[--nfree];
    slot_us[slot] = us;
    us->stat_slot = (int)slot;
    struct byp_stats_sock *s = &socks[slot];
    __atomic_add_fetch(&s->seq, 1, __ATOMIC_RELEASE);   /* odd: being assigned */
    uint32_t seq = s->seq;
    memset(s, 0, sizeof *s);
    s->seq = seq;
    s->proto = IPPROTO_UDP;
    s->laddr = us->local.sin_addr.s_addr;
    s->lport = us->local.sin_port;
    s->state = BYP_SS_LISTEN;
    __atomic_add_fetch(&s->seq, 1, __ATOMIC_RELEASE);
}

void byp_stats_udp_close(struct usock *us)
{
    if (byp_stats == NULL || us->stat_slot < 0)
        return;
    uint32_t slot = (uint32_t)us->stat_slot;
    struct byp_stats_sock *s = &socks[slot];
    __atomic_add_fetch(&s->seq, 1, __ATOMIC_RELEASE);
    s->state = BYP_SS_FREE;
    __atomic_add_fetch(&s->seq, 1, __ATOMIC_RELEASE);
    slot_us[slot] = NULL;
    us->stat_slot = -1;
    free_slots[nfree++] = slot;
}

/* Sampled fields of a UDP socket's slot. */
static void sample_udp(struct byp_stats_sock *s, const struct usock *us)
{
    s->state = us->connected ? BYP_SS_ESTABLISHED : BYP_SS_LISTEN;
    s->raddr = us->connected ? us->remote.sin_addr.s_addr : 0;
    s->rport = us->connected ? us->remote.sin_port : 0;
    s->rx_pkts = us->rx_pkts;
    s->rx_bytes = us->rx_bytes;
    s->tx_pkts = us->tx_pkts;
    s->tx_bytes = us->tx_bytes;
    s->rxq_bytes = us->qpayload;
    s->rxq_pkts = us->qn;
    s->txq_bytes = 0;
    s->drops = us->drops;
    s->ngroups = (uint32_t)us->ngroups;
    for (int g = 0; g < us->ngroups && g < BYP_STATS_GROUPS; g++)
        s->groups[g] = us->groups[g].group;
}

/* Sampled fields of every listed socket (stack lock held). */
static void sample_socks(void)
{
    uint64_t n = 0;
    for (unsigned i = 0; i < BYP_STATS_MAX_SOCKS; i++) {
        if (slot_us[i] != NULL) {
            n++;
            sample_udp(&socks[i], slot_us[i]);
            continue;
        }
        struct tsock *ts = slot_ts[i];
        if (ts == NULL)
            continue;
        n++;
        struct byp_stats_sock *s = &socks[i];
        s->state = ts->state == T_LISTEN ? BYP_SS_LISTEN : ts->state == T_CONNECTING ? BYP_SS_CONNECTING
                 : ts->state == T_CONNECTED ? BYP_SS_ESTABLISHED : BYP_SS_CLOSED;
        s->rxq_bytes = ts->rx_bytes;
        if (ts->pcb != NULL && ts->state != T_LISTEN) {
            s->txq_bytes = TCP_SND_BUF - ts->pcb->snd_buf;   /* tcp_sndbuf() caps at 64 KiB */
            uint64_t nrtx = ts->pcb->nrtx;
            if (nrtx > s->last_nrtx)
                s->retrans += nrtx - s->last_nrtx;
            s->last_nrtx = nrtx;
        } else {
            s->txq_bytes = 0;
        }
    }
    byp_stats->socks_in_use = n;
}

int byp_stats_tick(void)
{
    static int64_t last_ms;
    static uint64_t last_pkts;
    if (byp_stats == NULL)
        return 0;
    int64_t now = mono_ms();
    if (now - last_ms < 100)
        return 1;
    last_ms = now;
    struct byp_stats_stack *st = byp_stats;
    /* Under the stack lock: the engine's atexit closes the port and frees the pool holding
     * it (for good), so neither is touched after that. */
    byp_stack_lock();
    uint64_t pkts = st->rx_pkts + st->tx_pkts;   /* counted under the lock */
    int moved = pkts != last_pkts;
    last_pkts = pkts;
    if (nic != NULL && nic->pool != NULL) {
        unsigned avail = rte_mempool_avail_count(nic->pool);
        st->pool_size = nic->pool->size;
        st->pool_in_use = nic->pool->size > avail ? nic->pool->size - avail : 0;
    }
    struct rte_eth_stats es;
    if (nic != NULL && byp_nic_stats(nic, &es) == 0) {
        st->eth_ipackets = es.ipackets;
        st->eth_opackets = es.opackets;
        st->eth_ibytes = es.ibytes;
        st->eth_obytes = es.obytes;
        st->eth_imissed = es.imissed;
        st->eth_ierrors = es.ierrors;
        st->eth_oerrors = es.oerrors;
        st->eth_rx_nombuf = es.rx_nombuf;
        st->rx_drops = es.imissed + es.rx_nombuf;
    }
    /* One queue pair: queue 0 is the stack's own count. */
    st->q[0].rx_pkts = st->rx_pkts;
    st->q[0].tx_pkts = st->tx_pkts;
    st->q[0].rx_drops = st->rx_drops;
    st->q[0].tx_drops = st->tx_drops;
    if (spin_hits != NULL)
        st->spin_hits = __atomic_load_n(spin_hits, __ATOMIC_RELAXED);
    if (spin_misses != NULL)
        st->spin_misses = __atomic_load_n(spin_misses, __ATOMIC_RELAXED);
    byp_wake_waiters(&st->waiters_sleeping, &st->waiters_spinning, &st->late_wakes);
    sample_socks();
#if MIB2_STATS
    st->udp_nosock = lwip_stats.mib2.udpnoports + byp_udp_unwanted;
#else
    st->udp_nosock = byp_udp_unwanted;
#endif
    byp_stack_unlock_nokick();   /* a sample changes nothing lwIP times */
    hdr->sample_unix_ns = real_ns();
    __atomic_add_fetch(&hdr->samples, 1, __ATOMIC_RELEASE);
    return moved;
}
