/* Defences against what the wire can send, where lwIP 2.1 differs from the kernel
 * (issue 12).  Through lwIP's own hooks and our netif only: lwIP's source is Debian's.
 *
 * - SYN floods: a listener's half-open connections (SYN_RCVD) are capped; a new SYN
 *   beyond the cap evicts the oldest half-open one, as the kernel's SYN queue does when
 *   it has no cookies.  Legitimate clients, which answer in one round trip, keep getting
 *   in while spoofed SYNs rotate through the queue.
 * - An ACK for data never sent (RFC 5961 5.2, RFC 793): the segment is dropped and an ACK
 *   sent.  lwIP sends the ACK but then takes the segment's data.
 * - A peer's MSS below the kernel's floor (48, tcp_min_snd_mss) is raised to it: an MSS of
 *   1 would have lwIP send one byte per segment.
 * - Zero-window probes: lwIP probes with one byte of new data past the window; the kernel
 *   sends an old sequence number and no data.  The probe is rewritten on its way out.
 */
#include <stdint.h>
#include <string.h>

#include "lwip/inet_chksum.h"
#include "lwip/ip4.h"
#include "lwip/priv/tcp_priv.h"
#include "lwip/prot/ethernet.h"
#include "lwip/prot/ip4.h"
#include "lwip/prot/tcp.h"
#include "lwip/tcp.h"

#include "byp_lwip_hooks.h"
#include "byp_stack.h"
#include "log.h"

/* Half-open connections kept at once (the kernel's tcp_max_syn_backlog is 128 to 4096). */
#define SYN_BACKLOG 1024
/* Smallest peer MSS accepted (the kernel's net.ipv4.tcp_min_snd_mss default). */
#define MIN_PEER_MSS 48

/* The half-open connections, oldest first: the four-tuple of each SYN given to a
 * listener, and its PCB once known (the head of tcp_active_pcbs after lwIP took the SYN).
 * Lives in the engine's globals, shared with forked members. */
struct halfopen {
    struct tcp_pcb *pcb;
    uint32_t raddr;
    uint16_t rport, lport;
};
static struct halfopen ring[SYN_BACKLOG];
static unsigned ring_head, ring_n;
static int ring_last_pending;     /* the newest entry's PCB is still to be found */
/* SYNs that evicted an older half-open connection (logged once, counted). */
static uint64_t evictions;

static int same(const struct tcp_pcb *pcb, const struct halfopen *h)
{
    return pcb->state == SYN_RCVD && pcb->remote_port == h->rport &&
           pcb->local_port == h->lport && ip_2_ip4(&pcb->remote_ip)->addr == h->raddr;
}

/* The PCB lwIP made for the previous SYN is the head of the active list, if it made one. */
static void resolve_last(void)
{
    if (!ring_last_pending)
        return;
    ring_last_pending = 0;
    struct halfopen *h = &ring[(ring_head + ring_n - 1) % SYN_BACKLOG];
    if (tcp_active_pcbs != NULL && same(tcp_active_pcbs, h))
        h->pcb = tcp_active_pcbs;
    else
        ring_n--;   /* refused (no memory, backlog): nothing to track */
}

/* Drops the oldest entry; when it is still half-open, the connection goes (no RST: its
 * source is likely spoofed, and the kernel's SYN queue drops silently too). */
static void evict_oldest(void)
{
    struct halfopen *h = &ring[ring_head];
    ring_head = (ring_head + 1) % SYN_BACKLOG;
    ring_n--;
    if (h->pcb == NULL || !same(h->pcb, h))
        return;   /* established, closed or reused since */
    /* The PCB may have been freed and reused: only a PCB still on the active list. */
    for (struct tcp_pcb *p = tcp_active_pcbs; p != NULL; p = p->next)
        if (p == h->pcb) {
            if (evictions++ == 0)
                byp_warn("SYN flood on port %u: half-open connections above %d, the "
                         "oldest are dropped (logged once)", h->lport, SYN_BACKLOG);
            tcp_abandon(p, 0);
            return;
        }
}

static void on_syn(const struct tcp_hdr *hdr)
{
    resolve_last();
    while (ring_n >= SYN_BACKLOG)
        evict_oldest();
    struct halfopen *h = &ring[(ring_head + ring_n) % SYN_BACKLOG];
    *h = (struct halfopen){.raddr = ip4_current_src_addr()->addr, .rport = hdr->src,
                           .lport = hdr->dest};
    ring_n++;
    ring_last_pending = 1;
}

/* Raises a too small MSS option in place (options in one piece only). */
static void clamp_mss(struct tcp_hdr *hdr, u16_t optlen, u16_t opt1len)
{
    if (optlen != opt1len)
        return;
    uint8_t *o = (uint8_t *)(hdr + 1);
    for (u16_t i = 0; i < optlen;) {
        if (o[i] == LWIP_TCP_OPT_EOL)
            return;
        if (o[i] == LWIP_TCP_OPT_NOP) {
            i++;
            continue;
        }
        if (i + 1 >= optlen || o[i + 1] < 2 || i + o[i + 1] > optlen)
            return;
        if (o[i] == LWIP_TCP_OPT_MSS && o[i + 1] == LWIP_TCP_OPT_LEN_MSS) {
            u16_t mss = (u16_t)(o[i + 2] << 8 | o[i + 3]);
            if (mss != 0 && mss < MIN_PEER_MSS) {
                o[i + 2] = MIN_PEER_MSS >> 8;
                o[i + 3] = MIN_PEER_MSS & 0xff;
            }
        }
        i += o[i + 1];
    }
}

err_t byp_lwip_tcp_inpkt(struct tcp_pcb *pcb, struct tcp_hdr *hdr, u16_t optlen,
                         u16_t opt1len, u8_t *opt2, struct pbuf *p)
{
    (void)opt2;
    (void)p;
    u8_t flags = TCPH_FLAGS(hdr);
    if (flags & TCP_SYN)
        clamp_mss(hdr, optlen, opt1len);
    if (pcb->state == LISTEN) {
        if ((flags & (TCP_SYN | TCP_ACK | TCP_RST)) == TCP_SYN)
            on_syn(hdr);
        return ERR_OK;
    }
    /* Header fields are in host order here (tcp_input converted them). */
    if ((flags & TCP_ACK) && !(flags & TCP_RST) && pcb->state >= ESTABLISHED &&
        pcb->state != TIME_WAIT && TCP_SEQ_GT(hdr->ackno, pcb->snd_nxt)) {
        tcp_ack(pcb);   /* "send an ACK, drop the segment, and return" */
        return ERR_ABRT;
    }
    return ERR_OK;
}

uint64_t byp_guard_syn_evictions(void)
{
    return evictions;
}

/* One's-complement sum of @len bytes. */
static uint32_t sum16(const uint8_t *b, size_t len, uint32_t acc)
{
    for (size_t i = 0; i + 1 < len; i += 2)
        acc += (uint32_t)(b[i] << 8 | b[i + 1]);
    if (len & 1)
        acc += (uint32_t)(b[len - 1] << 8);
    return acc;
}

static uint16_t fold(uint32_t acc)
{
    while (acc >> 16)
        acc = (acc & 0xffff) + (acc >> 16);
    return (uint16_t)~acc;
}

int byp_guard_tx(uint8_t *frame, size_t len)
{
    if (len < SIZEOF_ETH_HDR + IP_HLEN + TCP_HLEN + 1)
        return 0;
    uint8_t *ip = frame + SIZEOF_ETH_HDR;
    if (frame[12] != 0x08 || frame[13] != 0x00 || (ip[0] >> 4) != 4 || ip[9] != IP_PROTO_TCP)
        return 0;
    size_t ihl = (size_t)(ip[0] & 0x0f) * 4, tot = (size_t)(ip[2] << 8 | ip[3]);
    if (ihl < IP_HLEN || tot > len - SIZEOF_ETH_HDR || tot < ihl + TCP_HLEN)
        return 0;
    uint8_t *th = ip + ihl;
    size_t thl = (size_t)(th[12] >> 4) * 4;
    if (thl < TCP_HLEN || ihl + thl + 1 != tot)
        return 0;   /* only segments carrying exactly one byte */
    uint32_t seq = (uint32_t)th[4] << 24 | (uint32_t)th[5] << 16 | (uint32_t)th[6] << 8 | th[7];
    uint16_t sport = (uint16_t)(th[0] << 8 | th[1]), dport = (uint16_t)(th[2] << 8 | th[3]);
    uint32_t raddr;
    memcpy(&raddr, ip + 16, 4);
    struct tcp_pcb *pcb;
    for (pcb = tcp_active_pcbs; pcb != NULL; pcb = pcb->next)
        if (pcb->local_port == sport && pcb->remote_port == dport &&
            ip_2_ip4(&pcb->remote_ip)->addr == raddr)
            break;
    if (pcb == NULL || pcb->snd_wnd != 0 || pcb->persist_backoff == 0 || seq != pcb->lastack)
        return 0;
    /* A zero-window probe: make it the kernel's, an old sequence number without data. */
    seq--;
    th[4] = seq >> 24;
    th[5] = seq >> 16;
    th[6] = seq >> 8;
    th[7] = seq;
    tot--;
    ip[2] = tot >> 8;
    ip[3] = tot & 0xff;
    ip[10] = ip[11] = 0;
    uint16_t c = fold(sum16(ip, ihl, 0));
    ip[10] = c >> 8;
    ip[11] = c & 0xff;
    th[16] = th[17] = 0;
    uint32_t acc = sum16(ip + 12, 8, 0) + IP_PROTO_TCP + (uint32_t)thl;
    c = fold(sum16(th, thl, acc));
    th[16] = c >> 8;
    th[17] = c & 0xff;
    return 1;
}
