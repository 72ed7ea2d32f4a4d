/* Defences against what the wire can send, where lwIP 2.1 differs from the kernel
 * (issue 12).  Through lwIP's own hooks and our netif only: lwIP's source is Debian's.
 *
 * - SYN floods: a listener's half-open connections (SYN_RCVD) are capped; a new SYN
 *   beyond the cap evicts the oldest half-open one.  What the handshake needs later is
 *   kept in a 28-byte record (a table of 64 Ki, like the few bits a SYN cookie keeps), so
 *   a client whose half-open connection was evicted and whose ACK then arrives is let in:
 *   the connection is rebuilt from the record (a SYN made from it, with the same ISN),
 *   then the ACK is given to lwIP again.  Legitimate clients get in during a flood, as with
 *   the kernel's SYN cookies.
 * - An ACK for data never sent (RFC 5961 5.2, RFC 793): the segment is dropped and an ACK
 *   sent.  lwIP sends the ACK but then takes the segment's data.
 * - A peer's MSS below the kernel's floor (48, tcp_min_snd_mss) is raised to it: an MSS of
 *   1 would have lwIP send one byte per segment.
 * - No connection left in lwIP's PCB pool: a SYN is answered with a reset and logged
 *   once (lwIP drops it silently, the client then waits out its connect timeout).
 * - Zero-window probes: lwIP probes with one byte of new data past the window; the kernel
 *   sends an old sequence number and no data.  The probe is rewritten on its way out.
 */
#include <stdint.h>
#include <string.h>

#include "lwip/inet_chksum.h"
#include "lwip/ip4.h"
#include "lwip/memp.h"
#include "lwip/priv/memp_priv.h"
#include "lwip/priv/tcp_priv.h"
#include "lwip/prot/ethernet.h"
#include "lwip/prot/ip4.h"
#include "lwip/prot/tcp.h"
#include "lwip/tcp.h"

#include "byp_lwip_hooks.h"
#include "byp_stack.h"
#include "fd_tcp.h"
#include "log.h"
#include "tcp_ack.h"

int byp_rx_timed;

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
    uint32_t irs;       /* the SYN's sequence number: which connection of the four-tuple */
};
static struct halfopen ring[SYN_BACKLOG];
static unsigned ring_head, ring_n;
static int ring_last_pending;     /* the newest entry's PCB is still to be found */
/* SYNs that evicted an older half-open connection (logged once, counted). */
static uint64_t evictions, rebuilt;

/* What an evicted half-open connection needs to be rebuilt when its ACK comes: two ways
 * per four-tuple's set, the older record making way for a newer one.  (Direct mapped, one
 * legitimate handshake in a hundred was overwritten by the flood before its ACK came when
 * that ACK waited 40 ms behind the flood in the receive ring.) */
struct evicted {
    uint32_t raddr, iss, irs;
    uint32_t stamp;     /* order of the records, for the choice of the one to replace */
    uint16_t rport, lport, mss, wnd;
    uint8_t wscale;     /* peer's shift + 1, 0 without the option */
    uint8_t sack;
    uint8_t used;
};
#define EVICTED_N (1 << 18)   /* 8 MB: a flood of 100k+ SYNs/s rarely overwrites a live record */
static struct evicted evicted[EVICTED_N];
static uint32_t evicted_stamp;

static unsigned slot_of(uint32_t raddr, uint16_t rport, uint16_t lport)
{
    uint32_t h = raddr * 0x9E3779B1u ^ ((uint32_t)rport << 16 | lport) * 0x85EBCA77u;
    return (h ^ h >> 15) & (EVICTED_N - 2);   /* the first of a set of two */
}

static void remember(const struct tcp_pcb *p)
{
    uint32_t raddr = ip_2_ip4(&p->remote_ip)->addr;
    struct evicted *e = &evicted[slot_of(raddr, p->remote_port, p->local_port)];
    /* A free way, else the older record's. */
    if (e[0].used && (!e[1].used || (int32_t)(e[0].stamp - e[1].stamp) > 0))
        e++;
    *e = (struct evicted){.raddr = raddr, .iss = p->lastack, .irs = p->rcv_nxt - 1,
                          .stamp = ++evicted_stamp,
                          .rport = p->remote_port, .lport = p->local_port, .mss = p->mss,
                          .wnd = (uint16_t)(p->snd_wnd > 0xffff ? 0xffff : p->snd_wnd),
                          .wscale = (p->flags & TF_WND_SCALE) ? (uint8_t)(p->snd_scale + 1) : 0,
                          .sack = (p->flags & TF_SACK) != 0, .used = 1};
}

/* A connection to rebuild after the current segment (tcp_input is not re-entrant): the
 * record, the local address, and the segment itself (IP packet) to give lwIP again. */
static struct evicted pending;
static uint32_t pending_laddr;
static uint8_t pending_pkt[1600];
static uint16_t pending_len;
/* pending_pkt holds a SYN that found a connection in TIME_WAIT (recycle_time_wait). */
static int pending_syn;
static uint64_t tw_recycled;
static uint32_t forced_iss;
static int forcing;
/* The connection the last segment went to (byp_guard_after_input looks at it again). */
static struct tcp_pcb *last_pcb;

/* @pcb is still the half-open connection of @h.  The four-tuple is not enough: a client
 * that reuses its port at once (a kernel client whose server closed first keeps no
 * TIME_WAIT) opens the next connection of the same four-tuple, and lwIP's pool hands it the
 * PCB just freed: without the sequence number, every such connection still in its
 * handshake when its predecessor's entry was evicted was taken for a flood (a threaded
 * server closing each connection, 7,000 a second: "SYN flood" in 7 runs of 8). */
static int same(const struct tcp_pcb *pcb, const struct halfopen *h)
{
    return pcb->state == SYN_RCVD && pcb->remote_port == h->rport &&
           pcb->local_port == h->lport && ip_2_ip4(&pcb->remote_ip)->addr == h->raddr &&
           pcb->rcv_nxt == h->irs + 1;
}

/* The PCB lwIP made for the SYN it just took is the head of the active list, if it made
 * one.  Called right after that segment's input (byp_guard_after_input, and after a SYN
 * injected here): any later segment moves its own connection to the head (tcp_input keeps
 * the list in order of use), and a half-open connection looked up only at the next SYN was
 * often taken for refused and never evicted. */
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
                byp_err("SYN flood on port %u: half-open connections above %d, the "
                         "oldest are dropped (logged once)", h->lport, SYN_BACKLOG);
            remember(p);
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
                           .lport = hdr->dest, .irs = hdr->seqno};
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

/* Copies the packet tcp_input is handling into pending_pkt: p->payload is past the TCP
 * header here; the IP header is at ip_current_header(), and the pbuf chain holds the rest.
 * 1 when it fits. */
static int keep_current(const struct tcp_hdr *hdr, const struct pbuf *p)
{
    const struct ip_hdr *iph = ip4_current_header();
    uint16_t tot = lwip_ntohs(IPH_LEN(iph));
    if (tot > sizeof pending_pkt)
        return 0;
    uint16_t hl = (uint16_t)(IPH_HL(iph) * 4);
    uint16_t thl = (uint16_t)(TCPH_HDRLEN(hdr) * 4);
    memcpy(pending_pkt, iph, hl);
    /* The TCP header was turned to host order by tcp_input: rebuild it in network order. */
    struct tcp_hdr *t = (struct tcp_hdr *)(pending_pkt + hl);
    memcpy(t, hdr, thl);
    t->src = lwip_htons(hdr->src);
    t->dest = lwip_htons(hdr->dest);
    t->seqno = lwip_htonl(hdr->seqno);
    t->ackno = lwip_htonl(hdr->ackno);
    t->wnd = lwip_htons(hdr->wnd);
    uint16_t data = (uint16_t)(tot - hl - thl);
    if (data > p->tot_len || pbuf_copy_partial(p, pending_pkt + hl + thl, data, 0) != data)
        return 0;
    pending_len = tot;
    return 1;
}

/* An ACK for a listener without a connection: when it completes a handshake whose
 * half-open connection was evicted, keep it and the record for byp_guard_after_input. */
static int check_evicted(const struct tcp_hdr *hdr, const struct pbuf *p)
{
    uint32_t raddr = ip4_current_src_addr()->addr;
    struct evicted *e = &evicted[slot_of(raddr, hdr->src, hdr->dest)];
    if (!e->used || e->raddr != raddr || e->rport != hdr->src || e->lport != hdr->dest)
        e++;   /* the other way of the set */
    /* The ACK must acknowledge our SYN-ACK exactly; its sequence number may be past the
     * client's first byte when the segments that carried the handshake's ACK and its first
     * data were lost (dropped at the receive ring by the flood itself): the client, which
     * thinks itself connected, then acknowledges our SYN-ACK's retransmission from further
     * on, at most our SYN-ACK's window (16 bits, never scaled) past its first byte.  A
     * half-open connection still in lwIP takes such an ACK too (the data is sent again);
     * refused, the client got a reset. */
    if (!e->used || e->raddr != raddr || e->rport != hdr->src || e->lport != hdr->dest ||
        hdr->ackno != e->iss + 1 || (u32_t)(hdr->seqno - (e->irs + 1)) > 0xffff)
        return 0;
    if (!keep_current(hdr, p))
        return 0;
    pending = *e;
    pending_laddr = ip4_current_dest_addr()->addr;
    e->used = 0;
    return 1;
}

/* A new SYN for the four-tuple of a connection in TIME_WAIT, beyond its last sequence
 * number: the peer (a kernel client that closed second keeps no TIME_WAIT of its own and
 * reuses the port at once) opens a new connection.  As Linux does (RFC 6191 without
 * timestamps), the old one makes way and the SYN goes to the listener, after this input;
 * lwIP alone would answer with an old ACK for the 2 MSL of TIME_WAIT, and the client's
 * connect would hang that long.  1 when the SYN is kept for byp_guard_after_input. */
static int recycle_time_wait(struct tcp_pcb *pcb, const struct tcp_hdr *hdr, const struct pbuf *p)
{
    if (pending.used || pending_syn || !TCP_SEQ_GT(hdr->seqno, pcb->rcv_nxt) ||
        !byp_tcp_tw_forget(pcb) || !keep_current(hdr, p))
        return 0;
    tcp_abort(pcb);   /* a TIME_WAIT PCB is freed without a reset */
    pending_syn = 1;
    tw_recycled++;
    return 1;
}

/* Gives lwIP an IP packet built here (tcp_input's checksum check included). */
static void inject(struct netif *ni, const uint8_t *pkt, uint16_t len)
{
    struct pbuf *q = pbuf_alloc(PBUF_RAW, len, PBUF_RAM);
    if (q == NULL)
        return;
    pbuf_take(q, pkt, len);
    if (ip4_input(q, ni) != ERR_OK)
        pbuf_free(q);
}

static void tcp_csum(uint8_t *ip, uint16_t hl, uint16_t tot)
{
    uint8_t *th = ip + hl;
    th[16] = th[17] = 0;
    uint32_t acc = 0;
    for (int i = 12; i < 20; i += 2)
        acc += (uint32_t)(ip[i] << 8 | ip[i + 1]);
    acc += IP_PROTO_TCP + (uint32_t)(tot - hl);
    for (uint16_t i = 0; i + 1 < tot - hl; i += 2)
        acc += (uint32_t)(th[i] << 8 | th[i + 1]);
    if ((tot - hl) & 1)
        acc += (uint32_t)(th[tot - hl - 1] << 8);
    while (acc >> 16)
        acc = (acc & 0xffff) + (acc >> 16);
    th[16] = (uint8_t)(~acc >> 8);
    th[17] = (uint8_t)~acc;
}

void byp_guard_after_input(struct netif *ni)
{
    resolve_last();
    if (last_pcb != NULL) {
        /* lwIP stops the persist timer only when it sends; an ACK that empties the queue
         * (data sent before a retransmission timeout put it back in the unsent queue)
         * leaves it ticking on nothing (fuzz_rx: "persist ticking with empty send
         * buffer").  A PCB freed meanwhile is pool memory that tcp_alloc clears. */
        if (last_pcb->persist_backoff > 0 && last_pcb->unsent == NULL)
            last_pcb->persist_backoff = 0;
        if (last_pcb->state == TIME_WAIT)
            byp_tcp_time_wait(last_pcb);
        last_pcb = NULL;
    }
    if (__builtin_expect(pending_syn, 0)) {
        pending_syn = 0;
        /* The checksum again: a veth frame may carry a partial one, trusted only there. */
        tcp_csum(pending_pkt, (uint16_t)((pending_pkt[0] & 0x0f) * 4), pending_len);
        inject(ni, pending_pkt, pending_len);
        resolve_last();
    }
    if (__builtin_expect(!pending.used, 1))
        return;
    struct evicted e = pending;
    pending.used = 0;
    /* The client's SYN again, from the record: IP header + TCP header + MSS, window
     * scale, SACK permitted. */
    uint8_t syn[20 + 20 + 12];
    memset(syn, 0, sizeof syn);
    uint16_t olen = 4 + (e.wscale ? 4 : 0) + (e.sack ? 4 : 0);
    uint16_t tot = (uint16_t)(20 + 20 + olen);
    syn[0] = 0x45;
    syn[2] = (uint8_t)(tot >> 8);
    syn[3] = (uint8_t)tot;
    syn[8] = 64;
    syn[9] = IP_PROTO_TCP;
    memcpy(syn + 12, &e.raddr, 4);
    memcpy(syn + 16, &pending_laddr, 4);
    uint16_t c = 0;
    {
        uint32_t acc = 0;
        for (int i = 0; i < 20; i += 2)
            acc += (uint32_t)(syn[i] << 8 | syn[i + 1]);
        while (acc >> 16)
            acc = (acc & 0xffff) + (acc >> 16);
        c = (uint16_t)~acc;
    }
    syn[10] = (uint8_t)(c >> 8);
    syn[11] = (uint8_t)c;
    uint8_t *t = syn + 20;
    t[0] = (uint8_t)(e.rport >> 8);
    t[1] = (uint8_t)e.rport;
    t[2] = (uint8_t)(e.lport >> 8);
    t[3] = (uint8_t)e.lport;
    t[4] = (uint8_t)(e.irs >> 24);
    t[5] = (uint8_t)(e.irs >> 16);
    t[6] = (uint8_t)(e.irs >> 8);
    t[7] = (uint8_t)e.irs;
    t[12] = (uint8_t)((20 + olen) / 4 << 4);
    t[13] = TCP_SYN;
    t[14] = (uint8_t)(e.wnd >> 8);
    t[15] = (uint8_t)e.wnd;
    uint8_t *o = t + 20;
    *o++ = LWIP_TCP_OPT_MSS;
    *o++ = LWIP_TCP_OPT_LEN_MSS;
    *o++ = (uint8_t)(e.mss >> 8);
    *o++ = (uint8_t)e.mss;
    if (e.wscale) {
        *o++ = LWIP_TCP_OPT_NOP;
        *o++ = LWIP_TCP_OPT_WS;
        *o++ = LWIP_TCP_OPT_LEN_WS;
        *o++ = (uint8_t)(e.wscale - 1);
    }
    if (e.sack) {
        *o++ = LWIP_TCP_OPT_NOP;
        *o++ = LWIP_TCP_OPT_NOP;
        *o++ = LWIP_TCP_OPT_SACK_PERM;
        *o++ = LWIP_TCP_OPT_LEN_SACK_PERM;
    }
    tcp_csum(syn, 20, tot);
    forced_iss = e.iss;
    forcing = 1;
    inject(ni, syn, tot);
    forcing = 0;
    resolve_last();
    /* The SYN-ACK lwIP just sent repeats the first one; the client's ACK completes it. */
    rebuilt++;
    inject(ni, pending_pkt, pending_len);
}

int byp_guard_isn(uint32_t *isn)
{
    if (!forcing)
        return 0;
    *isn = forced_iss;
    return 1;
}

/* A segment starting more than a quarter of the sequence space from rcv_nxt, either way:
 * no window or retransmission reaches that far. */
static int far_outside(const struct tcp_hdr *hdr, const struct tcp_pcb *pcb)
{
    s32_t d = (s32_t)(hdr->seqno - pcb->rcv_nxt);
    return d > (1 << 30) || d < -(1 << 30);
}

/* lwIP could not make a PCB for a SYN: its pool is empty and nothing in TIME_WAIT (or
 * closing) could be recycled.  Listeners have the normal priority, so tcp_alloc never
 * kills a live connection for a new one. */
static int pool_exhausted(void)
{
    if (*memp_pools[MEMP_TCP_PCB]->tab != NULL || tcp_tw_pcbs != NULL || byp_tw_count() > 0)
        return 0;
    for (struct tcp_pcb *p = tcp_active_pcbs; p != NULL; p = p->next)
        if (p->state == LAST_ACK || p->state == CLOSING)
            return 0;
    return 1;
}

err_t byp_lwip_tcp_inpkt(struct tcp_pcb *pcb, struct tcp_hdr *hdr, u16_t optlen,
                         u16_t opt1len, u8_t *opt2, struct pbuf *p)
{
    (void)opt2;
    (void)p;
    byp_rx_timed = 1;   /* a segment for a connection or listener: lwIP may time it */
    u8_t flags = TCPH_FLAGS(hdr);
    if (flags & TCP_SYN)
        clamp_mss(hdr, optlen, opt1len);
    if (pcb->state == LISTEN) {
        if ((flags & (TCP_SYN | TCP_ACK | TCP_RST)) == TCP_SYN && pool_exhausted()) {
            static int said;
            if (!said++)
                byp_err("no connection left in the stack's pool (%d): new connections to "
                        "port %u are refused with a reset (logged once)", MEMP_NUM_TCP_PCB,
                        hdr->dest);
            tcp_rst(NULL, 0, hdr->seqno + 1, ip_current_dest_addr(), ip_current_src_addr(),
                    hdr->dest, hdr->src);
            return ERR_ABRT;
        }
        if ((flags & (TCP_SYN | TCP_ACK | TCP_RST)) == TCP_SYN)
            on_syn(hdr);
        else if ((flags & (TCP_SYN | TCP_ACK | TCP_RST)) == TCP_ACK && evictions > 0 &&
                 !pending.used && check_evicted(hdr, p))
            return ERR_ABRT;   /* rebuilt after this segment (byp_guard_after_input) */
        return ERR_OK;
    }
    if (pcb->state == TIME_WAIT) {
        if ((flags & (TCP_SYN | TCP_ACK | TCP_RST)) == TCP_SYN && recycle_time_wait(pcb, hdr, p))
            return ERR_ABRT;
        return ERR_OK;
    }
    /* Header fields are in host order here (tcp_input converted them). */
    if (pcb->state >= ESTABLISHED && pcb->state != TIME_WAIT && far_outside(hdr, pcb)) {
        /* Half the sequence space away: lwIP's trimming takes such a segment for one at
         * rcv_nxt (found by fuzz_rx: "insane offset!" in tcp_receive).  Out of window:
         * an ACK, and the segment goes (RFC 793). */
        if (!(flags & TCP_RST))
            tcp_ack(pcb);
        return ERR_ABRT;
    }
    if ((flags & TCP_ACK) && pcb->persist_backoff > 0 && pcb->unacked == NULL &&
        pcb->unsent != NULL && hdr->ackno == pcb->lastack + 1 && pcb->snd_nxt == pcb->lastack + 1 &&
        lwip_ntohl(pcb->unsent->tcphdr->seqno) == pcb->lastack) {
        /* An ACK of exactly the byte of a zero-window probe, which byp_guard_tx never let
         * out: the peer cannot have it, so it acknowledges nothing (taken as is, lwIP would
         * drop a byte the peer never got). */
        hdr->ackno = pcb->lastack;
    }
    last_pcb = pcb;
    if ((flags & TCP_ACK) && !(flags & TCP_RST) && pcb->state >= ESTABLISHED &&
        pcb->state != TIME_WAIT && TCP_SEQ_GT(hdr->ackno, pcb->snd_nxt)) {
        tcp_ack(pcb);   /* "send an ACK, drop the segment, and return" */
        return ERR_ABRT;
    }
    byp_ack_defer(pcb, hdr, p);
    return ERR_OK;
}

uint64_t byp_guard_tw_recycled(void)
{
    return tw_recycled;
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
