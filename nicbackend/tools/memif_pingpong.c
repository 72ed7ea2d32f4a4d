/* byp-memif-pingpong: the latency floor of the memif backend, without any TCP/IP stack.
 *
 * Two processes on one memif link, both through the backend (nicbackend/memif.c) exactly
 * as the stack opens it: the server reflects every frame it receives (MACs swapped), the
 * client sends one 64-byte Ethernet frame at a time, busy-polls for its return and records
 * the round trip.  Half the round trip is the floor a TCP ping-pong over memif can
 * approach (sockperf's figure is a half round trip too).
 *
 *   byp-memif-pingpong -s SOCKET -r server [-t SECONDS]
 *   byp-memif-pingpong -s SOCKET -r client [-n COUNT | -t SECONDS] [-w WARMUP]
 *
 * The server prints "ready" once its port is up and runs until SIGINT/SIGTERM (or SECONDS).
 * The client makes COUNT round trips, or as many as SECONDS allow (a floor measured over
 * as long as the sockperf run it is set beside meets the machine's stalls as often).
 * The client waits for the link, prints one line
 *   floor: n N half-rtt-us p50 X p99 Y p99.9 Z min W
 * and exits 0; 1 on a start-up failure or a link that never came up. */
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <rte_cycles.h>
#include <rte_ether.h>

#include "backend.h"
#include "log.h"

#define BURST 32
#define FRAME 64
#define BYE_SEQ LONG_MIN   /* the client's last frame: the server stops reflecting */
#define ETHERTYPE_EXPERIMENT 0x88b5     /* IEEE local experimental: no stack takes it */

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int link_up(struct byp_nic *nic)
{
    return byp_nic_link_state(nic) > 0;
}

/* Tick the backend (a client connects) until the link is up or @secs pass. */
static int wait_link(struct byp_nic *nic, double secs)
{
    double end = now_s() + secs;
    while (!stop && now_s() < end) {
        byp_nic_tick(nic);
        if (link_up(nic))
            return 0;
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
    return -1;
}

static int serve(struct byp_nic *nic, double seconds)
{
    struct rte_mbuf *pkts[BURST];
    uint64_t n_rx = 0;
    double end = seconds > 0 ? now_s() + seconds : 0;
    unsigned spins = 0;

    printf("ready: reflecting frames on memif\n");
    fflush(stdout);
    while (!stop) {
        uint16_t n = byp_nic_rx_burst(nic, pkts, BURST);
        if (n == 0) {
            if ((++spins & 0xfffff) == 0) {
                byp_nic_tick(nic);
                if (end && now_s() > end)
                    break;
            }
            continue;
        }
        n_rx += n;
        int bye = 0;
        for (uint16_t i = 0; i < n; i++) {
            struct rte_ether_hdr *eth = rte_pktmbuf_mtod(pkts[i], struct rte_ether_hdr *);
            struct rte_ether_addr a = eth->src_addr;
            long seq;
            memcpy(&seq, (char *)eth + sizeof *eth, sizeof seq);
            bye |= seq == BYE_SEQ;
            eth->src_addr = eth->dst_addr;
            eth->dst_addr = a;
        }
        if (bye) {
            /* The client is done: stop before it leaves, whose teardown (DPDK's interrupt
             * thread unmapping the shared regions) would meet a burst here mid-copy. */
            rte_pktmbuf_free_bulk(pkts, n);
            break;
        }
        uint16_t sent = byp_nic_tx_burst(nic, pkts, n);
        byp_nic_tx_kick(nic);
        if (sent < n)
            rte_pktmbuf_free_bulk(pkts + sent, n - sent);
    }
    printf("done: reflected %lu frames\n", (unsigned long)n_rx);
    return 0;
}

/* Tell the server this client is done (best effort: one frame, not retried). */
/* A FRAME-byte broadcast frame carrying @seq after its Ethernet header; NULL when the pool
 * is empty. */
static struct rte_mbuf *make_frame(struct byp_nic *nic, long seq)
{
    struct rte_mbuf *m = rte_pktmbuf_alloc(nic->pool);
    char *p = m != NULL ? rte_pktmbuf_append(m, FRAME) : NULL;
    if (p == NULL) {
        rte_pktmbuf_free(m);
        return NULL;
    }
    memset(p, 0, FRAME);
    struct rte_ether_hdr *eth = (struct rte_ether_hdr *)p;
    memset(&eth->dst_addr, 0xff, sizeof eth->dst_addr);
    rte_eth_macaddr_get(nic->port_id, &eth->src_addr);
    eth->ether_type = rte_cpu_to_be_16(ETHERTYPE_EXPERIMENT);
    memcpy(p + sizeof *eth, &seq, sizeof seq);
    return m;
}

static void send_bye(struct byp_nic *nic)
{
    struct rte_mbuf *m = make_frame(nic, BYE_SEQ);
    if (m == NULL)
        return;
    if (byp_nic_tx_burst(nic, &m, 1) == 0)
        rte_pktmbuf_free(m);
    byp_nic_tx_kick(nic);
}

/* Half round trips go into a histogram of HIST_NS-wide bins up to HIST_BINS (the last bin
 * holds everything longer): a run of any length, at a few million round trips a second,
 * in constant memory. */
#define HIST_NS 2
#define HIST_BINS 100000   /* 200 us */

static double hist_pct(const uint32_t *hist, long n, double pct)
{
    long want = (long)((double)n * pct / 100.0), seen = 0;
    for (long b = 0; b < HIST_BINS; b++) {
        seen += hist[b];
        if (seen > want)
            return (double)(b * HIST_NS) / 1000.0;
    }
    return (double)(HIST_BINS * HIST_NS) / 1000.0;
}

/* @count round trips, or as many as fit in @seconds when it is above 0. */
static int ping(struct byp_nic *nic, long count, long warmup, double seconds)
{
    uint32_t *hist = calloc(HIST_BINS, sizeof *hist);
    struct rte_mbuf *pkts[BURST];
    double hz = (double)rte_get_tsc_hz();
    long lost = 0, n_done = 0;
    double min_us = 1e9;
    uint64_t end_tsc = 0;

    if (hist == NULL)
        return 1;
    if (seconds > 0)
        count = -1;   /* set when the warm-up is over */
    for (long i = -warmup; (count < 0 || i < count) && !stop; i++) {
        if (i == 0 && seconds > 0)
            end_tsc = rte_rdtsc() + (uint64_t)(seconds * hz);
        if (end_tsc != 0 && (i & 1023) == 0 && rte_rdtsc() > end_tsc)
            break;
        struct rte_mbuf *m = make_frame(nic, i);
        if (m == NULL) {
            fprintf(stderr, "byp-memif-pingpong: pool empty\n");
            free(hist);
            return 1;
        }
        uint64_t t0 = rte_rdtsc();
        while (byp_nic_tx_burst(nic, &m, 1) == 0 && !stop)
            ;
        byp_nic_tx_kick(nic);
        int got = 0;
        while (!got && !stop) {
            uint16_t n = byp_nic_rx_burst(nic, pkts, BURST);
            for (uint16_t k = 0; k < n; k++) {
                long seq;
                memcpy(&seq, rte_pktmbuf_mtod(pkts[k], char *) + sizeof(struct rte_ether_hdr),
                       sizeof seq);
                got |= seq == i;
            }
            if (n)
                rte_pktmbuf_free_bulk(pkts, n);
            if (!got && (double)(rte_rdtsc() - t0) / hz > 1.0) {
                lost++;
                break;
            }
        }
        if (i < 0)
            continue;
        double us = got ? (double)(rte_rdtsc() - t0) / hz * 1e6 / 2 : 1e6;   /* half RTT */
        long b = (long)(us * 1000.0) / HIST_NS;
        hist[b < HIST_BINS ? b : HIST_BINS - 1]++;
        if (us < min_us)
            min_us = us;
        n_done++;
    }
    send_bye(nic);
    if (n_done == 0) {
        free(hist);
        return 1;
    }
    printf("floor: n %ld half-rtt-us p50 %.3f p99 %.3f p99.9 %.3f min %.3f lost %ld\n", n_done,
           hist_pct(hist, n_done, 50), hist_pct(hist, n_done, 99), hist_pct(hist, n_done, 99.9),
           min_us, lost);
    free(hist);
    return lost > n_done / 100 ? 1 : 0;
}

int main(int argc, char **argv)
{
    struct byp_nic_conf conf = {.backend = "memif"};
    struct byp_nic *nic;
    const char *role = NULL;
    double seconds = 0;
    long count = 100000, warmup = 1000;
    int c;

    byp_log_level = BYP_LOG_WARN;
    while ((c = getopt(argc, argv, "s:r:t:n:w:v")) != -1) {
        switch (c) {
        case 's': conf.memif_socket = optarg; break;
        case 'r': role = optarg; break;
        case 't': seconds = atof(optarg); break;
        case 'n': count = atol(optarg); break;
        case 'w': warmup = atol(optarg); break;
        case 'v': byp_log_level = BYP_LOG_INFO; break;
        default: goto usage;
        }
    }
    if (!conf.memif_socket || !role || count <= 0 || warmup < 0 ||
        (strcmp(role, "server") != 0 && strcmp(role, "client") != 0))
        goto usage;
    conf.memif_client = strcmp(role, "client") == 0;
    conf.ip = conf.memif_client ? 0x0200a8c0 : 0x0100a8c0;   /* MACs 02:fe:c0:a8:00:0x */
    conf.nb_mbufs = 8192;
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    int rc = byp_nic_open(&conf, &nic);
    if (rc < 0) {
        fprintf(stderr, "byp-memif-pingpong: cannot open memif on %s: %s\n", conf.memif_socket,
                strerror(-rc));
        return 1;
    }
    if (!conf.memif_client) {
        rc = serve(nic, seconds);
    } else if (wait_link(nic, 30) < 0) {
        fprintf(stderr, "byp-memif-pingpong: no server on %s after 30 s\n", conf.memif_socket);
        rc = 1;
    } else {
        rc = ping(nic, count, warmup, seconds);
    }
    byp_nic_close(nic);
    return rc;
usage:
    fprintf(stderr, "usage: byp-memif-pingpong -s SOCKET -r server|client [-t SECONDS] "
            "[-n COUNT] [-w WARMUP] [-v]\n");
    return 2;
}
