/* lwIP's network interface over the DPDK NIC.
 *
 * Receive is zero-copy: each rte_mbuf becomes a PBUF_REF custom pbuf whose payload is the
 * frame in the mbuf; the pbuf_custom lives in the mbuf's private area and its free function
 * returns the mbuf to the pool, whenever lwIP (or a socket's receive queue) lets go of it.
 * When the pool runs low (sockets hoarding unread data), frames are copied instead so the
 * NIC never starves.
 *
 * Transmit copies each outgoing pbuf chain into one mbuf and batches the mbufs until the
 * stack lock is released.
 *
 * Neighbours: ARP replies go to the kernel (the XDP program passes ARP), so lwIP cannot
 * learn them.  An ARP request lwIP tries to send is taken as "resolve this address": it is
 * not sent; the address is looked up in the kernel's table, and if absent the kernel is
 * asked to resolve it (a managed neighbour entry); once the kernel knows it (the live
 * mirror, mirror.c, sees it appear), it becomes a static entry in lwIP's ARP table, which
 * also sends the packets lwIP queued for it.  When the kernel's entry changes MAC, it is
 * replaced; when it is deleted or fails, it is removed and resolved again on the next send.
 *
 * Checksums: full verification by lwIP, except that on a veth interface a TCP/UDP frame
 * whose checksum field holds the pseudo-header sum (the local kernel's transmit offload,
 * CHECKSUM_PARTIAL) is accepted, as the kernel itself accepts it from veth. */
#include <arpa/inet.h>
#include <errno.h>
#include <string.h>

#include <rte_mbuf.h>
#include <rte_ring.h>

#include "lwip/etharp.h"
#include "lwip/pbuf.h"
#include "lwip/sys.h"
#include "lwip/prot/etharp.h"
#include "lwip/prot/ethernet.h"
#include "netif/ethernet.h"

#include "backend.h"
#include "byp_stack.h"
#include "fd_tcp.h"
#include "tcp_ack.h"
#include "tcp_guard.h"
#include "kstate.h"
#include "log.h"
#include "stats.h"

struct netif byp_netif;
in_addr_t byp_if_addr, byp_if_mask;
unsigned byp_if_index;
int64_t byp_rx_realtime_ns;
int byp_neigh_pending;

static struct byp_nic *nic;
static uint8_t if_mac[6];

#define RX_BURST 32
#define TX_BATCH 64
static struct rte_mbuf *txq[TX_BATCH];
static unsigned txn;
/* What the lock holder is in the middle of, for the repair after it dies holding the lock
 * (repair.h; these are engine globals, shared by the family): a transmit burst; a receive
 * burst (its frames, and the one being handed to lwIP: those after it are untouched); a
 * frame shown to lwIP with another of the interface's addresses or checksum flags. */
static int flushing;
static struct rte_mbuf *rxq[RX_BURST];
static unsigned rx_n, rx_cur;
static int delivering;
/* The frame a dead holder was handing to lwIP, while the repair looks for it. */
static struct rte_mbuf *given;
static in_addr_t deliver_ip;
static u16_t deliver_csum;

/* The custom pbuf of a received frame, in the mbuf's private area. */
struct rx_pbuf {
    struct pbuf_custom pc;
    struct rte_mbuf *m;
    /* Set when the frame comes off the ring, cleared just before it goes back to the pool:
     * the repair frees a frame whose holder died with it in hand only while this says it
     * was not freed yet (byp_netif_repair_given). */
    int live;
};
_Static_assert(sizeof(struct rx_pbuf) <= BYP_MBUF_PRIV_SIZE, "mbuf private area too small");

/* Every free of a received frame: the flag first (a death between the two leaks it). */
static void rx_frame_free(struct rte_mbuf *m)
{
    ((struct rx_pbuf *)rte_mbuf_to_priv(m))->live = 0;
    rte_pktmbuf_free(m);
}

static void rx_pbuf_free(struct pbuf *p)
{
    rx_frame_free(((struct rx_pbuf *)p)->m);
}

/* Neighbours lwIP is waiting for. */
#define NEIGH_MAX 64
static struct {
    in_addr_t addr;
    int asked;          /* the kernel was asked to resolve it */
    uint32_t since_ms;
    uint32_t next_ms, step_ms;   /* next look at the kernel's table, doubling the gap */
} pending[NEIGH_MAX];

/* The static entries we put in lwIP's ARP table, with the MAC each has there. */
static struct {
    in_addr_t addr;
    uint8_t mac[6];
} installed[ARP_TABLE_SIZE];
static int ninstalled;

/* Put (or replace) @addr -> @mac in lwIP's table; lwIP sends what it queued for it. */
static void install(in_addr_t addr, const uint8_t mac[6])
{
    ip4_addr_t ip = {.addr = addr};
    struct eth_addr ea;
    memcpy(ea.addr, mac, 6);
    int i;
    for (i = 0; i < ninstalled && installed[i].addr != addr; i++)
        ;
    if (i == ninstalled) {
        if (ninstalled == ARP_TABLE_SIZE)
            return;   /* lwIP's table is full as well; its own request will bring it back */
        ninstalled++;
    }
    installed[i].addr = addr;
    memcpy(installed[i].mac, mac, 6);
    etharp_add_static_entry(&ip, &ea);
}

static void neigh_want(in_addr_t addr)
{
    int free_slot = -1;
    /* Our own addresses are the kernel's to answer for, never a neighbour to resolve (lwIP
     * "requests" its own address to announce it on link up). */
    if (byp_addr_is_local(addr))
        return;
    for (int i = 0; i < NEIGH_MAX; i++) {
        if (pending[i].addr == addr)
            return;
        if (pending[i].addr == 0 && free_slot < 0)
            free_slot = i;
    }
    if (free_slot < 0)
        return;   /* lwIP retries its request; we will see it again */
    /* The kernel knows it already, nearly always: installed now, from inside lwIP's
     * request, lwIP sends the packet that asked at once.  Waiting for the next look
     * (a poll round or the progress thread, later) left a UDP sender's burst to lwIP's
     * queue of ARP_QUEUE_LEN, which keeps the newest and drops the rest. */
    uint8_t mac[6];
    int state = byp_kneigh_find(addr, mac);
    if (state >= 0 && byp_kneigh_usable((unsigned)state)) {
        install(addr, mac);
        return;
    }
    pending[free_slot].addr = addr;
    pending[free_slot].asked = 0;
    pending[free_slot].since_ms = pending[free_slot].next_ms = sys_now();
    pending[free_slot].step_ms = 1;
    byp_neigh_pending++;
}

void byp_neigh_poll(void)
{
    for (int i = 0; i < NEIGH_MAX && byp_neigh_pending > 0; i++) {
        if (pending[i].addr == 0)
            continue;
        /* Each look dumps the kernel's neighbour table: 1, 2, 4 ... 256 ms apart, so that
         * addresses nobody answers for (spoofed SYNs) cost nothing like a core. */
        uint32_t now = sys_now();
        if ((int32_t)(now - pending[i].next_ms) < 0)
            continue;
        if (pending[i].step_ms < 256)
            pending[i].step_ms *= 2;
        pending[i].next_ms = now + pending[i].step_ms;
        uint8_t mac[6];
        int state = byp_kneigh_find(pending[i].addr, mac);
        if (state >= 0 && byp_kneigh_usable((unsigned)state)) {
            install(pending[i].addr, mac);
            pending[i].addr = 0;
            byp_neigh_pending--;
            continue;
        }
        if (state == NUD_FAILED && pending[i].asked) {
            /* The kernel tried and gave up: what waits for this neighbour fails as the
             * kernel's own connections would. */
            byp_info("neighbour %s unreachable (kernel entry FAILED)",
                     inet_ntoa((struct in_addr){pending[i].addr}));
            byp_tcp_unreachable(pending[i].addr);
            pending[i].addr = 0;
            byp_neigh_pending--;
            continue;
        }
        if (!pending[i].asked) {
            pending[i].asked = 1;
            int rc = byp_kstate_resolve_neigh(nic->ifindex, pending[i].addr);
            if (rc < 0 && rc != -EEXIST)
                byp_warn("cannot ask the kernel to resolve %s: %s",
                         inet_ntoa((struct in_addr){pending[i].addr}), strerror(-rc));
        }
        if (sys_now() - pending[i].since_ms > 5000) {
            /* Give up; lwIP's own ARP retries will bring it back. */
            pending[i].addr = 0;
            byp_neigh_pending--;
        }
    }
}

void byp_neigh_sync(void)
{
    for (int i = 0; i < ninstalled;) {
        uint8_t mac[6];
        int state = byp_kneigh_find(installed[i].addr, mac);
        ip4_addr_t ip = {.addr = installed[i].addr};
        if (state >= 0 && byp_kneigh_usable((unsigned)state)) {
            if (memcmp(mac, installed[i].mac, 6) != 0) {
                byp_info("neighbour %s moved to %02x:%02x:%02x:%02x:%02x:%02x",
                         inet_ntoa((struct in_addr){ip.addr}), mac[0], mac[1], mac[2],
                         mac[3], mac[4], mac[5]);
                install(installed[i].addr, mac);
            }
            i++;
            continue;
        }
        /* Deleted or failed in the kernel: forget it; lwIP asks again when it next sends. */
        etharp_remove_static_entry(&ip);
        installed[i] = installed[--ninstalled];
    }
    if (byp_neigh_pending)
        byp_neigh_poll();
}

/* An ARP request from lwIP for one of our own addresses' neighbours: hand it to the
 * kernel instead of sending it.  Returns 1 when @p was such a request. */
static int intercept_arp(struct pbuf *p)
{
    if (p->len < SIZEOF_ETH_HDR + SIZEOF_ETHARP_HDR)
        return 0;
    const struct eth_hdr *eh = p->payload;
    if (eh->type != PP_HTONS(ETHTYPE_ARP))
        return 0;
    const struct etharp_hdr *ah = (const struct etharp_hdr *)((const uint8_t *)p->payload + SIZEOF_ETH_HDR);
    if (ah->opcode != PP_HTONS(ARP_REQUEST))
        return 1;   /* lwIP answering an ARP: the kernel answers those */
    ip4_addr_t target;
    IPADDR_WORDALIGNED_COPY_TO_IP4_ADDR_T(&target, &ah->dipaddr);
    neigh_want(target.addr);
    return 1;
}

/* An IGMP message from lwIP (its membership of a group a socket joined): not sent, since
 * the kernel socket underneath joined too and the kernel does IGMP for the interface. */
static int is_igmp(const struct pbuf *p)
{
    const uint8_t *f = p->payload;
    return p->len >= SIZEOF_ETH_HDR + 20 && ((const struct eth_hdr *)f)->type == PP_HTONS(ETHTYPE_IP) &&
           f[SIZEOF_ETH_HDR + 9] == 2 /* IPPROTO_IGMP */;
}

int byp_netif_quiet(void)
{
    const struct byp_nic *n = nic;
    return n != NULL && n->burst->rx_pending != NULL &&
           __atomic_load_n(&txn, __ATOMIC_RELAXED) == 0 && !n->burst->rx_pending(n);
}

void byp_netif_kick(void)
{
    struct byp_nic *n = __atomic_load_n(&nic, __ATOMIC_ACQUIRE);
    if (n != NULL)
        byp_nic_tx_kick(n);
}

void byp_netif_flush(void)
{
    unsigned off = 0;
    int tries = 0;
    flushing = 1;
    while (off < txn) {
        uint16_t n = byp_nic_tx_burst(nic, txq + off, (uint16_t)(txn - off));
        off += n;
        if (n == 0 && ++tries > 64) {
            BYP_STATS_ADD(tx_drops, txn - off);
            rte_pktmbuf_free_bulk(txq + off, txn - off);   /* ring full: drop, TCP resends */
            break;
        }
    }
    txn = 0;
    flushing = 0;
}

void byp_netif_repair(void)
{
    /* A burst cut short: how much of it the NIC took is unknown, so none of it is sent
     * again (an mbuf sent twice would be freed twice); what it had not taken is lost
     * (TCP sends it again) and leaked. */
    if (nic != NULL)
        byp_nic_repair(nic);
    unsigned dropped = flushing ? txn : 0, freed = 0;
    if (flushing)
        txn = 0;
    flushing = 0;
    if (txn > TX_BATCH)
        txn = 0;
    /* Frames of the receive burst lwIP never saw go back to the pool; the one it was
     * given may be held by lwIP or freed: kept for byp_netif_repair_given. */
    if (rx_n > RX_BURST)
        rx_n = 0;
    given = rx_cur < rx_n ? rxq[rx_cur] : NULL;
    for (unsigned i = rx_cur + 1; i < rx_n; i++, freed++)
        rte_pktmbuf_free(rxq[i]);
    if (dropped > 0 || rx_n > 0)
        byp_warn("repair: %u frame(s) of a cut transmit burst let go of, %u received frame(s) "
                 "lwIP never saw freed", dropped, freed);
    rx_n = rx_cur = 0;
    if (delivering) {
        ip_2_ip4(&byp_netif.ip_addr)->addr = deliver_ip;
        byp_netif.chksum_flags = deliver_csum;
        delivering = 0;
    }
}

struct pbuf *byp_netif_repair_given(void)
{
    struct rte_mbuf *m = given;
    if (m == NULL)
        return NULL;
    struct rx_pbuf *rp = rte_mbuf_to_priv(m);
    if (!rp->live || rte_pktmbuf_data_len(m) < SIZEOF_ETH_HDR + 20) {
        given = NULL;   /* freed (or a frame lwIP cannot have kept) */
        return NULL;
    }
    /* Only an IPv4 frame that is not a fragment: lwIP's reassembly keeps fragments where
     * the repair cannot look (a leak, never a double free). */
    const uint8_t *f = rte_pktmbuf_mtod(m, const uint8_t *);
    if (f[12] != 0x08 || f[13] != 0x00 || (f[SIZEOF_ETH_HDR + 6] & 0x3f) != 0 ||
        f[SIZEOF_ETH_HDR + 7] != 0) {
        given = NULL;
        return NULL;
    }
    return &rp->pc.pbuf;
}

void byp_netif_repair_given_end(int free_it)
{
    struct rte_mbuf *m = given;
    given = NULL;
    if (m != NULL && free_it)
        rx_frame_free(m);
}

static err_t linkoutput(struct netif *ni, struct pbuf *p)
{
    (void)ni;
    if (byp_steering && (intercept_arp(p) || is_igmp(p)))
        return ERR_OK;
    struct rte_mbuf *m = rte_pktmbuf_alloc(nic->pool);
    BYP_STATS_ADD(tx_drops, m == NULL);
    if (m == NULL)
        return ERR_MEM;
    char *dst = rte_pktmbuf_append(m, p->tot_len);
    if (dst == NULL) {
        rte_pktmbuf_free(m);
        return ERR_BUF;
    }
    pbuf_copy_partial(p, dst, p->tot_len, 0);
    if (p->tot_len < 80 && byp_guard_tx((uint8_t *)dst, p->tot_len))
        rte_pktmbuf_trim(m, 1);   /* a zero-window probe lost its byte (tcp_guard.c) */
    txq[txn++] = m;
    BYP_STATS_ADD(tx_pkts, 1);
    BYP_STATS_ADD(tx_bytes, p->tot_len);
    if (txn == TX_BATCH)
        byp_netif_flush();
    return ERR_OK;
}

static err_t netif_init_cb(struct netif *ni)
{
    ni->name[0] = 'b';
    ni->name[1] = 'p';
    ni->hwaddr_len = 6;
    memcpy(ni->hwaddr, if_mac, 6);
    ni->flags = NETIF_FLAG_BROADCAST | NETIF_FLAG_ETHARP | NETIF_FLAG_ETHERNET | NETIF_FLAG_IGMP;
    ni->output = etharp_output;
    ni->linkoutput = linkoutput;
    return ERR_OK;
}

int byp_netif_setup(struct byp_nic *n, const uint8_t mac[6], unsigned mtu, in_addr_t addr,
                    unsigned prefixlen)
{
    nic = n;
    byp_if_index = n->ifindex;
    memcpy(if_mac, mac, 6);
    byp_if_addr = addr;
    byp_if_mask = prefixlen ? htonl(~0u << (32 - prefixlen)) : 0;
    ip4_addr_t ip = {.addr = addr}, mask = {.addr = byp_if_mask}, gw = {.addr = 0};
    if (netif_add(&byp_netif, &ip, &mask, &gw, NULL, netif_init_cb, ethernet_input) == NULL)
        return -EIO;
    byp_netif.mtu = (u16_t)(mtu > 1500 ? 1500 : mtu);
    netif_set_default(&byp_netif);
    netif_set_link_up(&byp_netif);
    netif_set_up(&byp_netif);
    return 0;
}

/* Frames of the veth driver may carry a partial checksum (below). */
static int trust_partial;

void byp_netif_trust_partial_csum(int on)
{
    trust_partial = on;
}

/* Whether the TCP/UDP checksum field of IPv4 packet @ip (@len bytes) holds exactly the
 * pseudo-header sum: a CHECKSUM_PARTIAL frame, which the sending kernel left for the
 * (virtual) NIC to finish.  Over veth nothing finishes it; the receiving kernel trusts such
 * a frame as a NIC's checksum offload would have vouched for it, and so do we.  Any other
 * value is verified in full by lwIP. */
static int partial_csum(const uint8_t *ip, unsigned len)
{
    unsigned ihl = (ip[0] & 0x0fu) * 4;
    if ((ip[0] >> 4) != 4 || ihl < 20 || len < ihl + 8 || ((ip[6] & 0x3f) | ip[7]) != 0)
        return 0;   /* not plain IPv4, or a fragment */
    unsigned off = ip[9] == 6 ? 16 : ip[9] == 17 ? 6 : 0;
    if (off == 0 || len < ihl + (ip[9] == 6 ? 20u : 8u))
        return 0;   /* not TCP or UDP, or shorter than its header */
    unsigned l4len = (((unsigned)ip[2] << 8) | ip[3]) - ihl;
    uint32_t sum = ip[9] + l4len;
    for (int i = 12; i < 20; i += 2)
        sum += ((uint32_t)ip[i] << 8) | ip[i + 1];
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    return (((uint32_t)ip[ihl + off] << 8) | ip[ihl + off + 1]) == sum;
}

/* One's-complement checksum of @n bytes at @p, added to @sum (host-order words). */
static uint16_t csum16(const uint8_t *p, unsigned n, uint32_t sum)
{
    for (unsigned i = 0; i + 1 < n; i += 2)
        sum += ((uint32_t)p[i] << 8) | p[i + 1];
    if (n & 1)
        sum += (uint32_t)p[n - 1] << 8;
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}

static void put16(uint8_t *p, unsigned v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static uint32_t offroute_logged_ms;

/* A SYN (frame @f, @len bytes) from a peer that the kernel routes through another interface,
 * or through a blackhole/unreachable/prohibit route, or not at all: the stack cannot
 * answer it through this interface.  Rather than leave the peer to time out, reset it
 * straight back to the MAC it came from, and say so (info, at most once a second).
 * Returns 1 when the frame was such a SYN (and is consumed). */
static int offroute_syn(const uint8_t *f, unsigned len)
{
    const uint8_t *ip = f + SIZEOF_ETH_HDR;
    unsigned ihl = (ip[0] & 0x0fu) * 4;
    if (ip[9] != 6 || ihl < 20 || len < SIZEOF_ETH_HDR + ihl + 20 || ((ip[6] & 0x3f) | ip[7]))
        return 0;
    const uint8_t *th = ip + ihl;
    if ((th[13] & 0x17) != 0x02)   /* SYN alone: no ACK, RST or FIN */
        return 0;
    in_addr_t src, dst, hop;
    memcpy(&src, ip + 12, 4);
    memcpy(&dst, ip + 16, 4);
    if (!byp_addr_is_local(dst))
        return 0;   /* not ours at all (an address removed): lwIP drops it, as the kernel does */
    int verdict = byp_nexthop(src, &hop);
    if (verdict == 0)
        return 0;
    uint32_t now = sys_now();
    if (now - offroute_logged_ms >= 1000) {
        offroute_logged_ms = now;
        byp_info("connection from %s reset: the kernel routes it %s, not through the "
                 "accelerated interface", inet_ntoa((struct in_addr){src}),
                 verdict == BYP_ROUTE_ELSEWHERE ? "through another interface" : "nowhere (no usable route)");
    }
    unsigned tot = ((unsigned)ip[2] << 8) | ip[3];
    unsigned seglen = tot - ihl - (unsigned)(th[12] >> 4) * 4 + 1;   /* payload + SYN */
    uint32_t seq = ((uint32_t)th[4] << 24) | ((uint32_t)th[5] << 16) | ((uint32_t)th[6] << 8) | th[7];
    uint8_t r[60];
    memset(r, 0, sizeof r);
    memcpy(r, f + 6, 6);                         /* back to the sender's MAC */
    memcpy(r + 6, byp_netif.hwaddr, 6);
    put16(r + 12, 0x0800);
    uint8_t *rip = r + SIZEOF_ETH_HDR, *rth = rip + 20;
    rip[0] = 0x45;
    put16(rip + 2, 40);
    put16(rip + 6, 0x4000);                      /* DF */
    rip[8] = 64;
    rip[9] = 6;
    memcpy(rip + 12, ip + 16, 4);
    memcpy(rip + 16, ip + 12, 4);
    put16(rip + 10, csum16(rip, 20, 0));
    memcpy(rth, th + 2, 2);
    memcpy(rth + 2, th, 2);
    uint32_t ack = seq + seglen;
    rth[8] = (uint8_t)(ack >> 24);
    rth[9] = (uint8_t)(ack >> 16);
    rth[10] = (uint8_t)(ack >> 8);
    rth[11] = (uint8_t)ack;
    rth[12] = 5 << 4;
    rth[13] = 0x14;                              /* RST, ACK */
    uint32_t pseudo = 6 + 20;
    for (int i = 12; i < 20; i += 2)
        pseudo += ((uint32_t)rip[i] << 8) | rip[i + 1];
    put16(rth + 16, csum16(rth, 20, pseudo));
    struct rte_mbuf *m = rte_pktmbuf_alloc(nic->pool);
    char *out = m ? rte_pktmbuf_append(m, sizeof r) : NULL;
    if (out == NULL) {
        rte_pktmbuf_free(m);
        return 1;
    }
    memcpy(out, r, sizeof r);
    txq[txn++] = m;
    if (txn == TX_BATCH)
        byp_netif_flush();
    return 1;
}

/* Hand one frame to lwIP.  A frame for another of the interface's addresses is shown to
 * lwIP with that address as the netif's (lwIP 2.1 has one per netif), so a listener on
 * INADDR_ANY accepts on it and the connection keeps it as its source. */
static void deliver(struct pbuf *p)
{
    const uint8_t *f = p->payload;
    ip4_addr_t *own = ip_2_ip4(&byp_netif.ip_addr);
    in_addr_t saved_ip = own->addr;
    u16_t saved_csum = byp_netif.chksum_flags;
    int swapped = 0, relaxed = 0;
    deliver_ip = saved_ip;
    deliver_csum = saved_csum;
    delivering = 1;
    if (p->len >= SIZEOF_ETH_HDR + 20 && f[12] == 0x08 && f[13] == 0x00) {
        const uint8_t *ip = f + SIZEOF_ETH_HDR;
        if ((ip[0] >> 4) == 4 && ip[9] == 6 && offroute_syn(f, p->len)) {
            pbuf_free(p);
            return;
        }
        in_addr_t dst;
        memcpy(&dst, ip + 16, 4);
        if (dst != saved_ip && byp_addr_is_local(dst)) {
            own->addr = dst;
            swapped = 1;
        }
        if (trust_partial && partial_csum(ip, p->len - SIZEOF_ETH_HDR)) {
            byp_netif.chksum_flags &= (u16_t)~(NETIF_CHECKSUM_CHECK_TCP | NETIF_CHECKSUM_CHECK_UDP);
            relaxed = 1;
        }
    }
    if (byp_netif.input(p, &byp_netif) != ERR_OK)
        pbuf_free(p);
    if (swapped)
        own->addr = saved_ip;
    if (relaxed)
        byp_netif.chksum_flags = saved_csum;
    delivering = 0;
}

/* Free mbufs in the pool, read once per receive burst.  rte_mempool_avail_count walks
 * every lcore's cache (RTE_MAX_LCORE of them), as long as a datagram's way through lwIP;
 * the pool's ring count alone is one read, and the stack's threads are not EAL lcores (no
 * cache), so it misses at most the EAL thread's cache: nothing against these thresholds.
 * They are fractions of what the pool can have free (a backend keeps some: af_xdp's fill
 * ring). */
static unsigned pool_avail;

static unsigned pool_free_count(struct rte_mempool *mp)
{
    static int ring = -1;   /* the pool's handler is a ring (DPDK's default, ring_mp_mc) */
    if (__builtin_expect(ring < 0, 0))
        ring = strncmp(rte_mempool_get_ops(mp->ops_index)->name, "ring_", 5) == 0;
    return ring ? rte_ring_count((const struct rte_ring *)mp->pool_data)
                : rte_mempool_avail_count(mp);
}

int byp_netif_pool_low(void)
{
    return pool_avail < nic->pool_free_max / 2;
}

int byp_netif_rx(void)
{
    struct rte_mbuf **pkts = rxq;
    uint16_t n = byp_nic_rx_burst(nic, pkts, RX_BURST);
    if (n == 0)
        return 0;
    rx_cur = 0;
    rx_n = n;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    byp_rx_realtime_ns = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
    BYP_STATS_ADD(rx_pkts, n);
    /* Copy instead of holding mbufs when fewer than a quarter of the pool is free. */
    pool_avail = pool_free_count(nic->pool);
    int copy = pool_avail < nic->pool_free_max / 4;
    for (uint16_t i = 0; i < n; i++) {
        rx_cur = i;
        struct rte_mbuf *m = pkts[i];
        struct rx_pbuf *rp = rte_mbuf_to_priv(m);
        rp->live = 1;
        uint16_t len = rte_pktmbuf_data_len(m);
        BYP_STATS_ADD(rx_bytes, rte_pktmbuf_pkt_len(m));
        struct pbuf *p;
        if (copy || m->nb_segs > 1) {
            p = pbuf_alloc(PBUF_RAW, (u16_t)rte_pktmbuf_pkt_len(m), PBUF_POOL);
            if (p != NULL) {
                struct rte_mbuf *s = m;
                u16_t off = 0;
                for (; s != NULL; s = s->next) {
                    pbuf_take_at(p, rte_pktmbuf_mtod(s, void *), s->data_len, off);
                    off = (u16_t)(off + s->data_len);
                }
            }
            rx_frame_free(m);
            BYP_STATS_ADD(rx_nopool, p == NULL);
        } else {
            rp->m = m;
            rp->pc.custom_free_function = rx_pbuf_free;
            p = pbuf_alloced_custom(PBUF_RAW, len, PBUF_REF, &rp->pc,
                                    rte_pktmbuf_mtod(m, void *), len);
            if (p == NULL)
                rx_frame_free(m);
        }
        if (p != NULL)
            deliver(p);
        byp_guard_after_input(&byp_netif);
        byp_tw_take();
    }
    rx_n = 0;
    byp_ack_flush();
    return n;
}
