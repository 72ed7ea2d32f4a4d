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
 * asked to resolve it (a managed neighbour entry); once the kernel knows it, it becomes a
 * static entry in lwIP's ARP table, which also sends the packets lwIP queued for it. */
#include <arpa/inet.h>
#include <errno.h>
#include <string.h>

#include <rte_mbuf.h>

#include "lwip/etharp.h"
#include "lwip/pbuf.h"
#include "lwip/sys.h"
#include "lwip/prot/etharp.h"
#include "lwip/prot/ethernet.h"
#include "netif/ethernet.h"

#include "backend.h"
#include "byp_stack.h"
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

/* The custom pbuf of a received frame, in the mbuf's private area. */
struct rx_pbuf {
    struct pbuf_custom pc;
    struct rte_mbuf *m;
};
_Static_assert(sizeof(struct rx_pbuf) <= BYP_MBUF_PRIV_SIZE, "mbuf private area too small");

static void rx_pbuf_free(struct pbuf *p)
{
    struct rx_pbuf *rp = (struct rx_pbuf *)p;
    rte_pktmbuf_free(rp->m);
}

/* Neighbours lwIP is waiting for. */
#define NEIGH_MAX 64
static struct {
    in_addr_t addr;
    int asked;          /* the kernel was asked to resolve it */
    uint32_t since_ms;
} pending[NEIGH_MAX];

static void neigh_want(in_addr_t addr)
{
    int free_slot = -1;
    for (int i = 0; i < NEIGH_MAX; i++) {
        if (pending[i].addr == addr)
            return;
        if (pending[i].addr == 0 && free_slot < 0)
            free_slot = i;
    }
    if (free_slot < 0)
        return;   /* lwIP retries its request; we will see it again */
    pending[free_slot].addr = addr;
    pending[free_slot].asked = 0;
    pending[free_slot].since_ms = sys_now();
    byp_neigh_pending++;
}

void byp_neigh_poll(void)
{
    for (int i = 0; i < NEIGH_MAX && byp_neigh_pending > 0; i++) {
        if (pending[i].addr == 0)
            continue;
        uint8_t mac[6];
        int rc = byp_kstate_get_neigh(nic->ifindex, pending[i].addr, mac);
        if (rc == 0) {
            ip4_addr_t ip = {.addr = pending[i].addr};
            struct eth_addr ea;
            memcpy(ea.addr, mac, 6);
            etharp_add_static_entry(&ip, &ea);
            pending[i].addr = 0;
            byp_neigh_pending--;
            continue;
        }
        if (!pending[i].asked) {
            pending[i].asked = 1;
            rc = byp_kstate_resolve_neigh(nic->ifindex, pending[i].addr);
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

void byp_netif_flush(void)
{
    unsigned off = 0;
    int tries = 0;
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

int byp_netif_pool_low(void)
{
    return rte_mempool_avail_count(nic->pool) < nic->pool->size / 2;
}

int byp_netif_rx(void)
{
    struct rte_mbuf *pkts[RX_BURST];
    uint16_t n = byp_nic_rx_burst(nic, pkts, RX_BURST);
    if (n == 0)
        return 0;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    byp_rx_realtime_ns = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
    BYP_STATS_ADD(rx_pkts, n);
    /* Copy instead of holding mbufs when fewer than a quarter of the pool is free. */
    int copy = rte_mempool_avail_count(nic->pool) < nic->pool->size / 4;
    for (uint16_t i = 0; i < n; i++) {
        struct rte_mbuf *m = pkts[i];
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
            rte_pktmbuf_free(m);
            BYP_STATS_ADD(rx_nopool, p == NULL);
        } else {
            struct rx_pbuf *rp = rte_mbuf_to_priv(m);
            rp->m = m;
            rp->pc.custom_free_function = rx_pbuf_free;
            p = pbuf_alloced_custom(PBUF_RAW, len, PBUF_REF, &rp->pc,
                                    rte_pktmbuf_mtod(m, void *), len);
            if (p == NULL)
                rte_pktmbuf_free(m);
        }
        if (p != NULL && byp_netif.input(p, &byp_netif) != ERR_OK)
            pbuf_free(p);
    }
    return n;
}
