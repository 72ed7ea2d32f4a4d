/* byp-reflect: the latency floor of the af_xdp backend, without any TCP/IP stack.
 *
 * Opens the backend on an interface, steers UDP port P (any local address) to the AF_XDP
 * socket, and sends every received frame for that port back where it came from: MAC, IP
 * addresses and UDP ports swapped (checksums are unchanged by a swap).  A kernel UDP client
 * on the other side measures the round trip (byp-udp-pingpong), or byp-reflect itself with
 * --ping: raw frames at both ends, no stack and no kernel socket anywhere.
 *
 *   byp-reflect -i IFACE -p PORT [-t SECONDS] [--no-huge] [--fix-csum] [--prog FILE]
 *               [--pmd] [--eal ARG]... [-v]
 *       --pmd: DPDK's af_xdp PMD instead of the library's own AF_XDP socket (xsk.c)
 *   byp-reflect -i IFACE -p PORT --ping IP --peer-mac MAC [-n COUNT] [-s SIZE] [-w WARMUP]
 *       the client: UDP frames of SIZE payload bytes (default 64) from port PORT + 1 to
 *       IP:PORT, one at a time, each waited for by spinning on the ring; prints
 *       "half-RTT us: p50 .. p99 .. p99.9 .. min .." as byp-udp-pingpong does.
 *   byp-reflect -i IFACE -p PORT --feed GROUP -g NGROUPS -n COUNT [-r RATE]
 *       a raw multicast sender: what `udp_feed send` publishes (tests/integration/accel/
 *       udp_feed.c: COUNT sequenced datagrams round robin over NGROUPS groups from GROUP
 *       to PORT, at RATE per second, 0 as fast as the ring takes them, then the end
 *       markers), in bursts of 32 frames through AF_XDP, without a kernel socket.
 *
 * Prints start-up facts (EAL time, memory mode, CPU affinity before and after, kernel view
 * of the interface), "ready" when packets can flow, and counters at the end (after
 * SECONDS, or SIGINT/SIGTERM).  Exit status 0 on a clean run, 1 on a start-up failure. */
#include <arpa/inet.h>
#include <getopt.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <rte_cycles.h>
#include <rte_ether.h>
#include <rte_ip.h>
#include <rte_udp.h>

#include "backend.h"
#include "kstate.h"
#include "log.h"
#include "steer_ctl.h"

#define BURST 32

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static void affinity_str(char *buf, size_t len)
{
    cpu_set_t set;
    size_t off = 0;

    buf[0] = '\0';
    if (pthread_getaffinity_np(pthread_self(), sizeof(set), &set) != 0)
        return;
    for (int c = 0; c < CPU_SETSIZE && off + 8 < len; c++)
        if (CPU_ISSET(c, &set))
            off += (size_t)snprintf(buf + off, len - off, "%s%d", off ? "," : "", c);
}

/* Turn @m around in place if it is IPv4/UDP to @port; 0 if it is, -1 otherwise. */
static int reflect(struct rte_mbuf *m, uint16_t port_be, int fix_csum)
{
    struct rte_ether_hdr *eth = rte_pktmbuf_mtod(m, struct rte_ether_hdr *);
    struct rte_ipv4_hdr *ip;
    struct rte_udp_hdr *udp;
    struct rte_ether_addr mac;
    uint32_t a;
    uint16_t p;

    if (m->data_len < sizeof(*eth) + sizeof(*ip) + sizeof(*udp) ||
        eth->ether_type != rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4))
        return -1;
    ip = (struct rte_ipv4_hdr *)(eth + 1);
    if (ip->next_proto_id != IPPROTO_UDP || rte_ipv4_hdr_len(ip) > m->data_len - sizeof(*eth) - sizeof(*udp))
        return -1;
    udp = (struct rte_udp_hdr *)((char *)ip + rte_ipv4_hdr_len(ip));
    if (udp->dst_port != port_be)
        return -1;
    mac = eth->src_addr;
    eth->src_addr = eth->dst_addr;
    eth->dst_addr = mac;
    a = ip->src_addr;
    ip->src_addr = ip->dst_addr;
    ip->dst_addr = a;
    p = udp->src_port;
    udp->src_port = udp->dst_port;
    udp->dst_port = p;
    if (fix_csum) {
        udp->dgram_cksum = 0;
        udp->dgram_cksum = rte_ipv4_udptcp_cksum(ip, udp);
    }
    return 0;
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- the raw client (--ping) ---- */

static uint64_t mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

/* Build in @m the UDP frame @seq from @src to @dst (full checksums). */
static void build_frame(struct rte_mbuf *m, const struct rte_ether_addr *smac,
                        const struct rte_ether_addr *dmac, uint32_t sip, uint32_t dip,
                        uint16_t sport_be, uint16_t dport_be, int size, uint64_t seq)
{
    uint16_t len = (uint16_t)(sizeof(struct rte_ether_hdr) + sizeof(struct rte_ipv4_hdr) +
                              sizeof(struct rte_udp_hdr) + (size_t)size);
    struct rte_ether_hdr *eth = (struct rte_ether_hdr *)rte_pktmbuf_append(m, len);
    struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)(eth + 1);
    struct rte_udp_hdr *udp = (struct rte_udp_hdr *)(ip + 1);
    char *pl = (char *)(udp + 1);

    eth->src_addr = *smac;
    eth->dst_addr = *dmac;
    eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
    memset(ip, 0, sizeof(*ip));
    ip->version_ihl = RTE_IPV4_VHL_DEF;
    ip->total_length = rte_cpu_to_be_16((uint16_t)(len - sizeof(*eth)));
    ip->time_to_live = 64;
    ip->next_proto_id = IPPROTO_UDP;
    ip->src_addr = sip;
    ip->dst_addr = dip;
    ip->hdr_checksum = rte_ipv4_cksum(ip);
    udp->src_port = sport_be;
    udp->dst_port = dport_be;
    udp->dgram_len = rte_cpu_to_be_16((uint16_t)(sizeof(*udp) + (size_t)size));
    memset(pl, 'x', (size_t)size);
    if (size >= (int)sizeof(seq))
        memcpy(pl, &seq, sizeof(seq));
    udp->dgram_cksum = 0;
    udp->dgram_cksum = rte_ipv4_udptcp_cksum(ip, udp);
}

/* The reply to frame @seq, if @m is one. */
static int is_reply(struct rte_mbuf *m, uint16_t sport_be, int size, uint64_t seq)
{
    const struct rte_ether_hdr *eth = rte_pktmbuf_mtod(m, const struct rte_ether_hdr *);
    const struct rte_ipv4_hdr *ip = (const struct rte_ipv4_hdr *)(eth + 1);
    const struct rte_udp_hdr *udp;
    uint64_t got;

    if (m->data_len < sizeof(*eth) + sizeof(*ip) + sizeof(*udp) + (size_t)size ||
        eth->ether_type != rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4) ||
        ip->next_proto_id != IPPROTO_UDP)
        return 0;
    udp = (const struct rte_udp_hdr *)((const char *)ip + rte_ipv4_hdr_len(ip));
    if (udp->dst_port != sport_be)
        return 0;
    if (size < (int)sizeof(seq))
        return 1;
    memcpy(&got, udp + 1, sizeof(got));
    return got == seq;
}

static int ping(struct byp_nic *nic, const struct byp_kif *kif, const char *dst,
                const char *peer_mac, int port, long count, long warmup, int size)
{
    struct rte_ether_addr dmac;
    struct in_addr dip;
    uint16_t sport_be = htons((uint16_t)(port + 1)), dport_be = htons((uint16_t)port);
    uint64_t *rtt = calloc((size_t)count, sizeof(uint64_t));
    long got = 0, lost = 0;
    struct rte_mbuf *pkts[BURST];

    if (rtt == NULL || inet_pton(AF_INET, dst, &dip) != 1 ||
        rte_ether_unformat_addr(peer_mac, &dmac) != 0 || size < 0 || size > 1400) {
        fprintf(stderr, "byp-reflect: --ping needs an IPv4 address, --peer-mac, -s 0..1400\n");
        return 1;
    }
    int ret = byp_steer_add(IPPROTO_UDP, INADDR_ANY, sport_be);
    if (ret < 0) {
        fprintf(stderr, "byp-reflect: cannot steer udp/%d: %s\n", port + 1, strerror(-ret));
        return 1;
    }
    printf("ready: raw client udp/%d -> %s:%d\n", port + 1, dst, port);
    fflush(stdout);
    for (long i = 0; i < warmup + count && !stop; i++) {
        struct rte_mbuf *m = rte_pktmbuf_alloc(nic->pool);

        if (m == NULL) {
            fprintf(stderr, "byp-reflect: pool empty\n");
            break;
        }
        build_frame(m, (const struct rte_ether_addr *)kif->mac, &dmac, kif->addr, dip.s_addr,
                    sport_be, dport_be, size, (uint64_t)i);
        uint64_t t0 = mono_ns();
        if (byp_nic_tx_burst(nic, &m, 1) != 1) {
            rte_pktmbuf_free(m);
            lost++;
            continue;
        }
        byp_nic_tx_kick(nic);   /* the af_xdp backend sends what its ring holds here */
        int done = 0;
        while (!done && !stop) {
            uint16_t n = byp_nic_rx_burst(nic, pkts, BURST);
            uint64_t t1 = mono_ns();

            for (uint16_t k = 0; k < n; k++) {
                if (!done && is_reply(pkts[k], sport_be, size, (uint64_t)i)) {
                    done = 1;
                    if (i >= warmup)
                        rtt[got++] = t1 - t0;
                }
                rte_pktmbuf_free(pkts[k]);
            }
            if (!done && t1 - t0 > 200000000u) {   /* 200 ms: lost */
                lost++;
                break;
            }
        }
    }
    byp_steer_del(IPPROTO_UDP, INADDR_ANY, sport_be);
    if (got == 0) {
        printf("no replies (%ld lost)\n", lost);
        return 1;
    }
    qsort(rtt, (size_t)got, sizeof(uint64_t), cmp_u64);
    printf("half-RTT us: p50 %.2f p99 %.2f p99.9 %.2f min %.2f (%ld samples, %ld lost, "
           "%d-byte payload, raw af_xdp both ends)\n",
           rtt[got / 2] / 2000.0, rtt[got * 99 / 100] / 2000.0, rtt[got * 999 / 1000] / 2000.0,
           rtt[0] / 2000.0, got, lost, size);
    return lost > count / 100 ? 1 : 0;
}

/* ---- the raw feed sender (--feed) ---- */

/* The payload of tests/integration/accel/udp_feed.c. */
struct feed_msg {
    uint32_t group;
    uint32_t pad;
    uint64_t seq;
    int64_t sent_ns;
};

static int64_t real_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Frame of @msg to group @g (network order) on @dport_be, in a new mbuf; NULL when the pool
 * is empty. */
static struct rte_mbuf *feed_frame(struct byp_nic *nic, const struct byp_kif *kif, uint32_t g,
                                   uint16_t sport_be, uint16_t dport_be, const struct feed_msg *msg)
{
    struct rte_mbuf *m = rte_pktmbuf_alloc(nic->pool);
    uint32_t h = ntohl(g);
    struct rte_ether_addr dmac = {{0x01, 0x00, 0x5e, (uint8_t)((h >> 16) & 0x7f),
                                   (uint8_t)(h >> 8), (uint8_t)h}};

    if (m == NULL)
        return NULL;
    build_frame(m, (const struct rte_ether_addr *)kif->mac, &dmac, kif->addr, g, sport_be,
                dport_be, (int)sizeof(*msg), 0);
    struct rte_ipv4_hdr *ip = rte_pktmbuf_mtod_offset(m, struct rte_ipv4_hdr *,
                                                      sizeof(struct rte_ether_hdr));
    struct rte_udp_hdr *udp = (struct rte_udp_hdr *)(ip + 1);
    memcpy(udp + 1, msg, sizeof(*msg));
    ip->time_to_live = 1;
    ip->hdr_checksum = 0;
    ip->hdr_checksum = rte_ipv4_cksum(ip);
    udp->dgram_cksum = 0;
    udp->dgram_cksum = rte_ipv4_udptcp_cksum(ip, udp);
    return m;
}

/* Publish @count datagrams round robin over @ng groups from @base at @rate per second (0: as
 * fast as the ring takes them), in bursts of BURST, then the end markers: what
 * `udp_feed send` does, without a kernel socket. */
static int feed(struct byp_nic *nic, const struct byp_kif *kif, const char *base, int ng,
                int port, long count, long rate)
{
    struct in_addr b;
    uint16_t sport_be = htons((uint16_t)(port + 1)), dport_be = htons((uint16_t)port);
    uint64_t *seq = calloc((size_t)(ng > 0 ? ng : 1), sizeof(uint64_t));
    struct rte_mbuf *pkts[BURST];
    long stalls = 0;

    if (seq == NULL || inet_pton(AF_INET, base, &b) != 1 || ng < 1 || ng > 4096 || rate < 0) {
        fprintf(stderr, "byp-reflect: --feed needs a group address, -g 1..4096, -r >= 0\n");
        return 1;
    }
    printf("ready: raw feed of %ld datagrams over %d groups from %s port %d\n", count, ng, base,
           port);
    fflush(stdout);
    uint64_t start = mono_ns();
    for (long i = 0; i < count && !stop;) {
        if (rate > 0) {
            int64_t ahead = (int64_t)(start + (uint64_t)((double)i * 1e9 / (double)rate)) -
                            (int64_t)mono_ns();
            if (ahead > 50000) {
                struct timespec ts = {.tv_sec = ahead / 1000000000, .tv_nsec = ahead % 1000000000};
                nanosleep(&ts, NULL);
            }
        }
        int n = count - i < BURST ? (int)(count - i) : BURST, k = 0;
        int64_t t = real_ns();
        for (; k < n; k++) {
            uint32_t g = (uint32_t)((i + k) % ng);
            struct feed_msg msg = {.group = g, .seq = seq[g], .sent_ns = t};
            pkts[k] = feed_frame(nic, kif, htonl(ntohl(b.s_addr) + g), sport_be, dport_be, &msg);
            if (pkts[k] == NULL)
                break;
            seq[g]++;
        }
        int sent = 0;
        while (sent < k && !stop) {
            uint16_t r = byp_nic_tx_burst(nic, pkts + sent, (uint16_t)(k - sent));
            byp_nic_tx_kick(nic);
            sent += r;
            if (sent < k) {
                stalls++;
                rte_delay_us_block(20);
            }
        }
        for (int j = sent; j < k; j++)
            rte_pktmbuf_free(pkts[j]);
        i += sent;
        if (k == 0) {
            stalls++;
            rte_delay_us_block(50);   /* pool empty: the ring gives buffers back */
        }
    }
    double secs = (double)(mono_ns() - start) / 1e9;
    struct timespec pause = {0, 500000000};
    nanosleep(&pause, NULL);
    for (int rep = 0; rep < 3; rep++)
        for (int g = 0; g < ng; g++) {
            struct feed_msg msg = {.group = (uint32_t)g, .seq = UINT64_MAX};
            struct rte_mbuf *m = feed_frame(nic, kif, htonl(ntohl(b.s_addr) + (uint32_t)g),
                                            sport_be, dport_be, &msg);
            if (m != NULL && byp_nic_tx_burst(nic, &m, 1) != 1)
                rte_pktmbuf_free(m);
            byp_nic_tx_kick(nic);
        }
    printf("sent %ld in %.3f s (%.0f/s, %ld stalls)\n", count, secs, (double)count / secs, stalls);
    free(seq);
    return 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: byp-reflect -i IFACE -p PORT [-t SECONDS] [--no-huge] "
                    "[--fix-csum] [--prog FILE] [--pmd] [--eal ARG]... [-v]\n"
                    "       byp-reflect -i IFACE -p PORT --ping IP --peer-mac MAC [-n COUNT] "
                    "[-s SIZE] [-w WARMUP] [--no-huge] [--eal ARG]...\n"
                    "       byp-reflect -i IFACE -p PORT --feed GROUP -g NGROUPS -n COUNT "
                    "[-r RATE]\n");
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "iface", required_argument, NULL, 'i' },
        { "port", required_argument, NULL, 'p' },
        { "time", required_argument, NULL, 't' },
        { "no-huge", no_argument, NULL, 'H' },
        { "pmd", no_argument, NULL, 'X' },
        { "fix-csum", no_argument, NULL, 'C' },
        { "prog", required_argument, NULL, 'P' },
        { "verbose", no_argument, NULL, 'v' },
        { "eal", required_argument, NULL, 'E' },
        { "ping", required_argument, NULL, 'G' },
        { "peer-mac", required_argument, NULL, 'M' },
        { "feed", required_argument, NULL, 'F' },
        { NULL, 0, NULL, 0 },
    };
    struct byp_nic_conf conf = { 0 };
    struct byp_nic *nic;
    struct byp_kif kif;
    struct rte_mbuf *pkts[BURST];
    uint64_t rx = 0, tx = 0, other = 0, dropped = 0, steered = 0;
    char aff_before[256], aff_after[256], ip[INET_ADDRSTRLEN];
    double seconds = 0, t_end, t0;
    int port = 0, fix_csum = 0, c, ret;
    uint16_t port_be;
    const struct byp_eal_info *ei;
    char *eal_args[16];
    int nb_eal = 0;
    const char *ping_ip = NULL, *peer_mac = NULL, *feed_base = NULL;
    long count = 100000, warmup = 1000, rate = 0;
    int size = 64, ngroups = 1;

    byp_log_level = BYP_LOG_WARN;
    while ((c = getopt_long(argc, argv, "i:p:t:n:s:w:g:r:v", opts, NULL)) != -1) {
        switch (c) {
        case 'i': conf.ifname = optarg; break;
        case 'p': port = atoi(optarg); break;
        case 't': seconds = atof(optarg); break;
        case 'H': conf.force_no_huge = 1; break;
        case 'X': conf.af_xdp_pmd = 1; break;
        case 'C': fix_csum = 1; break;
        case 'P': conf.xdp_prog = optarg; break;
        case 'v': byp_log_level = BYP_LOG_INFO; break;
        case 'G': ping_ip = optarg; break;
        case 'M': peer_mac = optarg; break;
        case 'n': count = atol(optarg); break;
        case 's': size = atoi(optarg); break;
        case 'w': warmup = atol(optarg); break;
        case 'F': feed_base = optarg; break;
        case 'g': ngroups = atoi(optarg); break;
        case 'r': rate = atol(optarg); break;
        case 'E':
            if (nb_eal < 16)
                eal_args[nb_eal++] = optarg;
            break;
        default: usage(); return 2;
        }
    }
    if (!conf.ifname || port <= 0 || port > 65534 || count <= 0 || warmup < 0 ||
        (ping_ip != NULL && peer_mac == NULL)) {
        usage();
        return 2;
    }
    conf.nb_eal_args = nb_eal;
    conf.eal_args = eal_args;
    port_be = htons((uint16_t)port);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);

    ret = byp_kstate_get_if(conf.ifname, &kif);
    if (ret < 0)
        fprintf(stderr, "byp-reflect: kernel state of %s: %s\n", conf.ifname, strerror(-ret));
    inet_ntop(AF_INET, &kif.addr, ip, sizeof(ip));
    printf("kernel: %s ifindex %u mac %02x:%02x:%02x:%02x:%02x:%02x mtu %u %s/%u %s\n",
           conf.ifname, kif.ifindex, kif.mac[0], kif.mac[1], kif.mac[2], kif.mac[3],
           kif.mac[4], kif.mac[5], kif.mtu, ip, kif.prefixlen, kif.up ? "up" : "down");

    affinity_str(aff_before, sizeof(aff_before));
    t0 = now_s();
    ret = byp_nic_open(&conf, &nic);
    if (ret < 0) {
        fprintf(stderr, "byp-reflect: cannot open %s: %s\n", conf.ifname, strerror(-ret));
        return 1;
    }
    ei = byp_eal_info();
    affinity_str(aff_after, sizeof(aff_after));
    printf("eal: rte_eal_init %.1f ms, open total %.1f ms, memory %s, "
           "affinity before [%s] after [%s]\n", ei->init_ms, (now_s() - t0) * 1e3,
           ei->no_huge ? "no-huge" : "hugepages", aff_before, aff_after);
    printf("xdp program: %s\n", conf.xdp_prog ? conf.xdp_prog : byp_steer_prog_path());
    if (feed_base != NULL) {
        ret = feed(nic, &kif, feed_base, ngroups, port, count, rate);
        byp_nic_close(nic);
        return ret;
    }
    if (ping_ip != NULL) {
        ret = ping(nic, &kif, ping_ip, peer_mac, port, count, warmup, size);
        byp_nic_close(nic);
        return ret;
    }

    ret = byp_steer_add(IPPROTO_UDP, INADDR_ANY, port_be);
    if (ret < 0) {
        fprintf(stderr, "byp-reflect: cannot steer udp/%d: %s\n", port, strerror(-ret));
        byp_nic_close(nic);
        return 1;
    }
    printf("ready: steering udp/%d on %s to the AF_XDP socket\n", port, conf.ifname);
    fflush(stdout);

    t_end = seconds > 0 ? now_s() + seconds : 0;
    while (!stop) {
        uint16_t n = byp_nic_rx_burst(nic, pkts, BURST), k = 0, sent;

        if (n == 0) {
            if (t_end && now_s() > t_end)
                break;
            continue;
        }
        rx += n;
        for (uint16_t i = 0; i < n; i++) {
            if (reflect(pkts[i], port_be, fix_csum) == 0) {
                pkts[k++] = pkts[i];
            } else {
                other++;
                rte_pktmbuf_free(pkts[i]);
            }
        }
        sent = byp_nic_tx_burst(nic, pkts, k);
        byp_nic_tx_kick(nic);
        tx += sent;
        for (uint16_t i = sent; i < k; i++) {
            dropped++;
            rte_pktmbuf_free(pkts[i]);
        }
    }

    byp_steer_packets(IPPROTO_UDP, INADDR_ANY, port_be, &steered);
    byp_steer_del(IPPROTO_UDP, INADDR_ANY, port_be);
    byp_nic_close(nic);
    printf("done: rx %lu reflected %lu other %lu tx-dropped %lu steered-by-xdp %lu\n",
           (unsigned long)rx, (unsigned long)tx, (unsigned long)other,
           (unsigned long)dropped, (unsigned long)steered);
    return 0;
}
