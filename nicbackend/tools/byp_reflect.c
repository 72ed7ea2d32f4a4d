/* byp-reflect: the latency floor of the af_xdp backend, without any TCP/IP stack.
 *
 * Opens the backend on an interface, steers UDP port P (any local address) to the AF_XDP
 * socket, and sends every received frame for that port back where it came from: MAC, IP
 * addresses and UDP ports swapped (checksums are unchanged by a swap).  A kernel UDP client
 * on the other side measures the round trip (byp-udp-pingpong).
 *
 *   byp-reflect -i IFACE -p PORT [-t SECONDS] [--no-huge] [--fix-csum] [--prog FILE]
 *               [--eal ARG]... [-v]
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

static void usage(void)
{
    fprintf(stderr, "usage: byp-reflect -i IFACE -p PORT [-t SECONDS] [--no-huge] "
                    "[--fix-csum] [--prog FILE] [--eal ARG]... [-v]\n");
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "iface", required_argument, NULL, 'i' },
        { "port", required_argument, NULL, 'p' },
        { "time", required_argument, NULL, 't' },
        { "no-huge", no_argument, NULL, 'H' },
        { "fix-csum", no_argument, NULL, 'C' },
        { "prog", required_argument, NULL, 'P' },
        { "verbose", no_argument, NULL, 'v' },
        { "eal", required_argument, NULL, 'E' },
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

    byp_log_level = BYP_LOG_WARN;
    while ((c = getopt_long(argc, argv, "i:p:t:v", opts, NULL)) != -1) {
        switch (c) {
        case 'i': conf.ifname = optarg; break;
        case 'p': port = atoi(optarg); break;
        case 't': seconds = atof(optarg); break;
        case 'H': conf.force_no_huge = 1; break;
        case 'C': fix_csum = 1; break;
        case 'P': conf.xdp_prog = optarg; break;
        case 'v': byp_log_level = BYP_LOG_INFO; break;
        case 'E':
            if (nb_eal < 16)
                eal_args[nb_eal++] = optarg;
            break;
        default: usage(); return 2;
        }
    }
    if (!conf.ifname || port <= 0 || port > 65535) {
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
