/* Live statistics in shared memory: /dev/shm/bypass.<pid>, mode 0600, read by
 * `bypass-stat` (tools/bypass_stat.c).
 *
 * Layout (version 1), fixed size, all integers in host order except addresses and ports
 * (network order, as in struct sockaddr_in):
 *
 *     struct byp_stats_hdr      header: magic, version, sizes, pid, start time, backend,
 *                               interface, address/prefix, sample counter
 *     struct byp_stats_stack    stack-wide counters, queue 0, port (ethdev) counters
 *     struct byp_stats_sock[BYP_STATS_MAX_SOCKS]   the socket table
 *
 * Writers: the thread holding the stack lock (packet, byte and per-socket counters, socket
 * slots) and the progress thread (the sampled fields: pool, ethdev, queue depths, state,
 * retransmits; every ~100 ms).  No locks and no system calls on the data path: plain
 * increments of 64-bit fields, which x86-64 never tears.  A reader may see counters of one
 * instant beside sampled fields of another (small inconsistencies are accepted).  A socket
 * slot's @seq is odd while the slot is being assigned or released; a reader copies the
 * slot and retries when @seq was odd or changed meanwhile.
 *
 * This header is plain C (no lwIP, no DPDK) so the tool can include it. */
#ifndef BYP_STATS_H
#define BYP_STATS_H

#include <stdint.h>
#include <sys/types.h>

#define BYP_STATS_MAGIC 0x3154415453505942ull   /* "BYPSTAT1" little-endian */
#define BYP_STATS_VERSION 2
#define BYP_STATS_MAX_SOCKS 4096
#define BYP_STATS_GROUPS 8
#define BYP_STATS_PATH_FMT "/dev/shm/bypass.%d"
#define BYP_STATS_PREFIX "bypass."

/* Socket states in the table. */
enum { BYP_SS_FREE = 0, BYP_SS_LISTEN = 1, BYP_SS_CONNECTING, BYP_SS_ESTABLISHED, BYP_SS_CLOSED };

struct byp_stats_hdr {
    uint64_t magic;             /* BYP_STATS_MAGIC */
    uint32_t version;           /* BYP_STATS_VERSION */
    uint32_t size;              /* bytes in the whole file */
    uint32_t hdr_size, stack_size, sock_size, max_socks;
    int32_t pid;
    uint32_t prefixlen;
    uint64_t start_ticks;       /* /proc/<pid>/stat field 22 (starttime): pid reuse check */
    int64_t start_unix_ns;      /* CLOCK_REALTIME when the engine started */
    int64_t sample_unix_ns;     /* CLOCK_REALTIME of the last progress-thread sample */
    uint64_t samples;           /* number of samples so far (moves while the process lives) */
    uint32_t addr;              /* stack's IPv4 address, network order */
    uint32_t pad;
    char backend[16];
    char ifname[32];
};

/* One queue (queue 0 today: one rx/tx queue pair). */
struct byp_stats_queue {
    uint64_t rx_pkts, tx_pkts;
    uint64_t rx_drops;          /* the device's imissed (no room in the rx ring) */
    uint64_t tx_drops;          /* frames freed because the tx ring stayed full */
};

struct byp_stats_stack {
    /* counted by the thread holding the stack lock */
    uint64_t rx_pkts, rx_bytes;     /* frames received from the NIC */
    uint64_t tx_pkts, tx_bytes;     /* frames handed to the NIC queue (before the burst) */
    uint64_t tx_drops;              /* frames dropped: tx ring full, or no mbuf to send */
    uint64_t socks_overflow;        /* sockets not listed: the table was full */
    /* sampled by the progress thread (~100 ms) */
    uint64_t rx_drops;              /* ethdev imissed + rx_nombuf */
    uint64_t pool_in_use, pool_size;/* mbufs */
    uint64_t spin_hits, spin_misses;/* waits that ended while spinning / that slept */
    uint64_t socks_in_use;
    uint64_t eth_ipackets, eth_opackets, eth_ibytes, eth_obytes;
    uint64_t eth_imissed, eth_ierrors, eth_oerrors, eth_rx_nombuf;
    uint32_t nb_queues;             /* entries of @q in use */
    uint32_t pad;
    struct byp_stats_queue q[4];
    /* UDP, stack-wide */
    uint64_t udp_nosock;            /* datagrams no socket wanted (no port, unwanted group; sampled) */
    uint64_t rx_nopool;             /* frames dropped: no buffer to copy them into (pool low) */
    /* threads of the whole family in a blocking call (sampled) */
    uint64_t waiters_sleeping, waiters_spinning;
    uint64_t late_wakes;            /* waits a whole sleep slice passed over (a lost wake-up) */
};

struct byp_stats_sock {
    uint32_t seq;               /* odd while (re)assigned; see above */
    uint32_t state;             /* BYP_SS_*; BYP_SS_FREE: slot unused */
    uint32_t laddr, raddr;      /* network order */
    uint16_t lport, rport;      /* network order */
    uint32_t proto;             /* 0 or IPPROTO_TCP: TCP; IPPROTO_UDP: UDP (state is then
                                   BYP_SS_ESTABLISHED when connected, else BYP_SS_LISTEN) */
    uint64_t rx_bytes, rx_pkts; /* payload bytes / segments delivered to the socket */
    uint64_t tx_bytes, tx_pkts; /* payload bytes accepted by send calls / send calls */
    uint64_t rxq_bytes;         /* unread bytes queued (sampled) */
    uint64_t txq_bytes;         /* bytes in lwIP's send buffer not yet acked (sampled) */
    uint64_t retrans;           /* retransmission timeouts seen (sampled from pcb->nrtx) */
    uint64_t last_nrtx;         /* writer's bookkeeping */
    /* UDP (sampled) */
    uint64_t rxq_pkts;          /* datagrams queued unread */
    uint64_t drops;             /* datagrams dropped for a full queue (SO_RCVBUF) */
    uint32_t ngroups;           /* multicast memberships (the first BYP_STATS_GROUPS listed) */
    uint32_t groups[BYP_STATS_GROUPS];  /* network order */
};

#define BYP_STATS_SIZE (sizeof(struct byp_stats_hdr) + sizeof(struct byp_stats_stack) + \
                        BYP_STATS_MAX_SOCKS * sizeof(struct byp_stats_sock))

/* ---- engine side (stack/stats.c) ---- */

struct byp_nic;
struct tsock;

/* The published stack-wide counters; NULL when stats are off (never started or failed). */
extern struct byp_stats_stack *byp_stats;

/* Create and publish /dev/shm/bypass.<pid> (at the end of engine start).  On failure, one
 * warning; the engine runs on without stats. */
void byp_stats_start(struct byp_nic *nic, const char *backend, const char *ifname,
                     uint32_t addr, unsigned prefixlen);
/* From the progress thread's loop: sample the pool, the device counters and the sockets
 * (takes the stack lock for the socket walk), at most every 100 ms.  Returns nonzero when
 * packets moved since the last sample (or it was too early to take one): the caller
 * samples again in 100 ms, else in a second. */
int byp_stats_tick(void);

/* The stack is shared by a family of processes (family.h) and its file is named after one
 * of them (lock held for all three): the member leaving hands it to @pid; a member finding
 * the named one dead takes it; the last member out removes it. */
void byp_stats_handoff(pid_t pid);
void byp_stats_claim_live(void);
void byp_stats_end(void);

/* Sockets (stack lock held): take a slot when a socket exists for lwIP (listen, connect,
 * accept), release it at its last close. */
void byp_stats_sock_open(struct tsock *ts);
void byp_stats_sock_close(struct tsock *ts);
/* UDP sockets (stack lock held): a slot from creation to last close; the progress thread
 * samples their queues, drops and groups. */
struct usock;
void byp_stats_udp_open(struct usock *us);
void byp_stats_udp_close(struct usock *us);

/* The slot of @ts, or NULL (stats off, table full). */
struct byp_stats_sock *byp_stats_sock_of(const struct tsock *ts);

/* Data-path hooks (stack lock held): a few instructions, nothing when stats are off. */
#define BYP_STATS_ADD(field, n) do { if (byp_stats != NULL) byp_stats->field += (n); } while (0)
static inline void byp_stats_sock_rx(const struct tsock *ts, uint64_t bytes)
{
    struct byp_stats_sock *s = byp_stats != NULL ? byp_stats_sock_of(ts) : (void *)0;
    if (s != (void *)0) {
        s->rx_bytes += bytes;
        s->rx_pkts++;
    }
}
static inline void byp_stats_sock_tx(const struct tsock *ts, uint64_t bytes)
{
    struct byp_stats_sock *s = byp_stats != NULL && bytes > 0 ? byp_stats_sock_of(ts) : (void *)0;
    if (s != (void *)0) {
        s->tx_bytes += bytes;
        s->tx_pkts++;
    }
}

#endif
