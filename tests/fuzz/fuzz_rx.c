/* libFuzzer target: arbitrary Ethernet frames into the stack's receive entry (issue 12).
 *
 * The stack is lwIP (Debian's source) with our options and our hooks: stack/port.c (ISN,
 * clock), stack/tcp_guard.c (SYN queue, RFC 5961 ACK check, MSS floor, zero-window probe
 * rewrite, rebuild of evicted half-open connections), stack/shm.c (lwIP's heap).  Every
 * input runs against a listener on port 80 that echoes, an accepted connection and an
 * active (connected) one, both set up by real handshakes, then everything is aborted
 * so the next input starts alike.
 *
 * A UDP socket bound to port 5000 (it echoes) and a multicast member (239.1.2.3, port
 * 5001, joined through lwIP's IGMP as udp_sock.c joins) stay open throughout.
 *
 * Input: frames, each [len hi][len lo][mode][frame bytes].  mode bit 0: aim the TCP segment
 * at the accepted connection, bit 1: at the active one (ports and addresses set, the
 * sequence and acknowledgement numbers taken as offsets from the connection's rcv_nxt and
 * lastack, so the fuzzer reaches in-window paths); bit 2: fix the IP and TCP/UDP
 * checksums; bit 3: run lwIP's TCP timers after the frame; bit 4: aim the frame at the UDP
 * socket as a datagram, bit 5 with it: at the multicast member (group address and MAC).
 *
 * Built by CMake with -DBYPASS_FUZZ=ON (clang, -fsanitize=fuzzer,address,undefined):
 *   build/tests/fuzz/fuzz_rx -max_total_time=60 tests/fuzz/corpus_rx
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lwip/etharp.h"
#include "lwip/igmp.h"
#include "lwip/init.h"
#include "lwip/ip4_frag.h"
#include "lwip/netif.h"
#include "lwip/priv/tcp_priv.h"
#include "lwip/tcp.h"
#include "lwip/udp.h"
#include "netif/ethernet.h"

#include "byp_lwip_hooks.h"
#include "tcp_ack.h"
#include "shm.h"
#include "tcp_guard.h"
#include "fd_tcp.h"

static struct netif nif;
static const uint8_t our_mac[6] = {0x02, 0, 0, 0, 0, 0x01};
static const uint8_t peer_mac[6] = {0x02, 0, 0, 0, 0, 0x02};
static ip4_addr_t our_ip, peer_ip;
static struct tcp_pcb *acc, *act;   /* accepted and active connections */
static uint16_t next_port = 1024;

/* The IPv4 input hook of tcp_handover.c drops segments of connections handed over to the
 * kernel at exec (nothing is ever handed over here), and lends a connection in TIME_WAIT
 * back to lwIP for its segment, as there (tcp_timewait.c). */
int byp_lwip_ip4_input(struct pbuf *p, struct netif *inp)
{
    (void)inp;
    byp_tw_segment(p);
    return 0;
}

/* The next-hop hook of the kernel mirror (stack/mirror.c): every destination on-link here,
 * so that replies still reach linkoutput. */
const ip4_addr_t *byp_lwip_gw(struct netif *netif, const ip4_addr_t *dest)
{
    (void)netif;
    return dest;
}

/* tcp_close.c's side of tcp_guard.c's TIME_WAIT recycling: the harness's connections in
 * TIME_WAIT belong to lwIP alone once their socket let go (no argument left). */
int byp_tcp_tw_forget(struct tcp_pcb *pcb)
{
    return pcb->callback_arg == NULL;
}

/* tcp_sock.c's: the harness has no socket objects to let go of a connection in TIME_WAIT. */
void byp_tcp_time_wait(struct tcp_pcb *pcb)
{
    (void)pcb;
}

static err_t linkoutput(struct netif *n, struct pbuf *p)
{
    (void)n;
    uint8_t buf[2048];
    if (p->tot_len <= sizeof buf) {
        pbuf_copy_partial(p, buf, p->tot_len, 0);
        byp_guard_tx(buf, p->tot_len);   /* what netif.c runs on every frame out */
    }
    return ERR_OK;
}

static err_t nif_init(struct netif *n)
{
    n->linkoutput = linkoutput;
    n->output = etharp_output;
    n->mtu = 1500;
    n->hwaddr_len = 6;
    memcpy(n->hwaddr, our_mac, 6);
    n->flags = NETIF_FLAG_BROADCAST | NETIF_FLAG_ETHARP | NETIF_FLAG_ETHERNET | NETIF_FLAG_IGMP;
    return ERR_OK;
}

static err_t echo_recv(void *arg, struct tcp_pcb *pcb, struct pbuf *p, err_t err)
{
    (void)arg;
    (void)err;
    if (p == NULL)
        return ERR_OK;
    for (struct pbuf *q = p; q != NULL; q = q->next)
        if (q->len > 0 && tcp_sndbuf(pcb) >= q->len)
            tcp_write(pcb, q->payload, q->len, TCP_WRITE_FLAG_COPY);
    tcp_recved(pcb, p->tot_len);
    pbuf_free(p);
    return ERR_OK;
}

static ip4_addr_t group;

/* The UDP socket echoes each datagram back to its sender; the member keeps nothing. */
static void udp_echo(void *arg, struct udp_pcb *pcb, struct pbuf *p, const ip_addr_t *addr,
                     u16_t port)
{
    (void)arg;
    udp_sendto(pcb, p, addr, port);
    pbuf_free(p);
}

static void udp_sink(void *arg, struct udp_pcb *pcb, struct pbuf *p, const ip_addr_t *addr,
                     u16_t port)
{
    (void)arg;
    (void)pcb;
    (void)addr;
    (void)port;
    pbuf_free(p);
}

static err_t on_accept(void *arg, struct tcp_pcb *pcb, err_t err)
{
    (void)arg;
    if (err != ERR_OK || pcb == NULL)
        return ERR_VAL;
    tcp_recv(pcb, echo_recv);
    if (acc == NULL)
        acc = pcb;
    return ERR_OK;
}

static uint16_t csum(const uint8_t *b, size_t len, uint32_t acc0)
{
    uint32_t a = acc0;
    for (size_t i = 0; i + 1 < len; i += 2)
        a += (uint32_t)(b[i] << 8 | b[i + 1]);
    if (len & 1)
        a += (uint32_t)(b[len - 1] << 8);
    while (a >> 16)
        a = (a & 0xffff) + (a >> 16);
    return (uint16_t)~a;
}

/* Sets the IP checksum and the TCP or UDP one of a frame, when its headers allow. */
static void fix_csums(uint8_t *f, size_t len)
{
    if (len < 34 || f[12] != 0x08 || f[13] != 0)
        return;
    uint8_t *ip = f + 14;
    size_t hl = (size_t)(ip[0] & 15) * 4, tot = (size_t)(ip[2] << 8 | ip[3]);
    if (hl < 20 || 14 + hl > len)
        return;
    ip[10] = ip[11] = 0;
    uint16_t c = csum(ip, hl, 0);
    ip[10] = (uint8_t)(c >> 8);
    ip[11] = (uint8_t)c;
    if (tot < hl || 14 + tot > len)
        return;
    size_t l4 = tot - hl;
    uint8_t *t = ip + hl;
    int off = ip[9] == 6 ? 16 : ip[9] == 17 ? 6 : -1;
    if (off < 0 || l4 < (size_t)off + 2)
        return;
    t[off] = t[off + 1] = 0;
    uint32_t ps = 0;
    for (int i = 12; i < 20; i += 2)
        ps += (uint32_t)(ip[i] << 8 | ip[i + 1]);
    ps += ip[9] + (uint32_t)l4;
    c = csum(t, l4, ps);
    t[off] = (uint8_t)(c >> 8);
    t[off + 1] = (uint8_t)c;
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void input(const uint8_t *f, size_t len)
{
    struct pbuf *p = pbuf_alloc(PBUF_RAW, (u16_t)len, PBUF_POOL);
    if (p == NULL)
        return;
    pbuf_take(p, f, (u16_t)len);
    if (nif.input(p, &nif) != ERR_OK)
        pbuf_free(p);
    byp_guard_after_input(&nif);   /* as netif.c does after each frame */
    byp_tw_take();
}

/* A TCP segment from the peer: Ethernet + IPv4 + TCP (with an MSS option on SYNs). */
static void segment(uint16_t sport, uint16_t dport, uint32_t seq, uint32_t ack, uint8_t flags)
{
    uint8_t f[14 + 20 + 24];
    size_t tl = (flags & TCP_SYN) ? 24 : 20, len = 14 + 20 + tl;
    memset(f, 0, sizeof f);
    memcpy(f, our_mac, 6);
    memcpy(f + 6, peer_mac, 6);
    f[12] = 0x08;
    uint8_t *ip = f + 14, *t = ip + 20;
    ip[0] = 0x45;
    ip[2] = (uint8_t)((20 + tl) >> 8);
    ip[3] = (uint8_t)(20 + tl);
    ip[8] = 64;
    ip[9] = 6;
    memcpy(ip + 12, &peer_ip.addr, 4);
    memcpy(ip + 16, &our_ip.addr, 4);
    t[0] = (uint8_t)(sport >> 8);
    t[1] = (uint8_t)sport;
    t[2] = (uint8_t)(dport >> 8);
    t[3] = (uint8_t)dport;
    put32(t + 4, seq);
    put32(t + 8, ack);
    t[12] = (uint8_t)(tl / 4 << 4);
    t[13] = flags;
    t[14] = 0xff;
    t[15] = 0xff;
    if (tl == 24) {
        t[20] = 2;
        t[21] = 4;
        t[22] = 0x05;
        t[23] = 0xb4;
    }
    fix_csums(f, len);
    input(f, len);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    byp_shm_setup((size_t)256 << 20);
    lwip_init();
    IP4_ADDR(&our_ip, 10, 0, 0, 1);
    IP4_ADDR(&peer_ip, 10, 0, 0, 2);
    ip4_addr_t mask, gw;
    IP4_ADDR(&mask, 255, 255, 255, 0);
    ip4_addr_set_zero(&gw);
    netif_add(&nif, &our_ip, &mask, &gw, NULL, nif_init, ethernet_input);
    netif_set_default(&nif);
    netif_set_up(&nif);
    netif_set_link_up(&nif);
    struct eth_addr pm;
    memcpy(pm.addr, peer_mac, 6);
    etharp_add_static_entry(&peer_ip, &pm);
    struct tcp_pcb *l = tcp_new();
    tcp_bind(l, IP_ANY_TYPE, 80);
    l = tcp_listen(l);
    tcp_accept(l, on_accept);
    struct udp_pcb *u = udp_new();
    udp_bind(u, IP_ANY_TYPE, 5000);
    udp_recv(u, udp_echo, NULL);
    struct udp_pcb *m = udp_new();
    IP4_ADDR(&group, 239, 1, 2, 3);
    udp_bind(m, IP_ANY_TYPE, 5001);
    udp_recv(m, udp_sink, NULL);
    igmp_joingroup_netif(&nif, &group);
    return 0;
}

static void connections_up(void)
{
    /* Accepted: SYN, then the ACK of lwIP's SYN-ACK. */
    uint16_t sport = next_port++;
    if (next_port == 0)
        next_port = 1024;
    acc = NULL;
    segment(sport, 80, 1000, 0, TCP_SYN);
    struct tcp_pcb *half = tcp_active_pcbs;
    if (half != NULL && half->state == SYN_RCVD && half->remote_port == sport)
        segment(sport, 80, 1001, half->snd_nxt, TCP_ACK);
    /* Active: lwIP's SYN, our SYN-ACK. */
    act = tcp_new();
    if (act != NULL) {
        tcp_recv(act, echo_recv);
        if (tcp_connect(act, &peer_ip, 9000, NULL) == ERR_OK)
            segment(9000, act->local_port, 5000, act->snd_nxt, TCP_SYN | TCP_ACK);
    }
}

static void connections_down(void)
{
    while (tcp_active_pcbs != NULL)
        tcp_abort(tcp_active_pcbs);
    while (tcp_tw_pcbs != NULL)
        tcp_abort(tcp_tw_pcbs);
    byp_tw_release_all();
    acc = act = NULL;
}

/* Aims a TCP frame at @pcb: its four-tuple, and seq/ack as offsets from its state. */
static void aim(uint8_t *f, size_t len, const struct tcp_pcb *pcb)
{
    if (pcb == NULL || len < 14 + 20 + 20 || f[12] != 0x08 || f[13] != 0)
        return;
    uint8_t *ip = f + 14;
    size_t hl = (size_t)(ip[0] & 15) * 4;
    if (hl < 20 || 14 + hl + 20 > len)
        return;
    ip[9] = 6;
    memcpy(ip + 12, &peer_ip.addr, 4);
    memcpy(ip + 16, &our_ip.addr, 4);
    uint8_t *t = ip + hl;
    t[0] = (uint8_t)(pcb->remote_port >> 8);
    t[1] = (uint8_t)pcb->remote_port;
    t[2] = (uint8_t)(pcb->local_port >> 8);
    t[3] = (uint8_t)pcb->local_port;
    put32(t + 4, get32(t + 4) + pcb->rcv_nxt);
    put32(t + 8, get32(t + 8) + pcb->lastack);
}

/* Aims a frame at the UDP socket (@mcast: at the multicast member) as a datagram. */
static void aim_udp(uint8_t *f, size_t len, int mcast)
{
    if (len < 14 + 20 + 8 || f[12] != 0x08 || f[13] != 0)
        return;
    uint8_t *ip = f + 14;
    size_t hl = (size_t)(ip[0] & 15) * 4;
    if (hl < 20 || 14 + hl + 8 > len)
        return;
    ip[9] = 17;
    memcpy(ip + 12, &peer_ip.addr, 4);
    memcpy(ip + 16, mcast ? &group.addr : &our_ip.addr, 4);
    if (mcast) {
        const uint8_t mac[6] = {0x01, 0x00, 0x5e, 0x01, 0x02, 0x03};
        memcpy(f, mac, 6);
    }
    uint8_t *u = ip + hl;
    uint16_t dport = mcast ? 5001 : 5000;
    u[2] = (uint8_t)(dport >> 8);
    u[3] = (uint8_t)dport;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    connections_up();
    uint8_t f[2048];
    while (size >= 3) {
        size_t len = (size_t)(data[0] << 8 | data[1]) % sizeof f;
        uint8_t mode = data[2];
        data += 3;
        size -= 3;
        if (len > size)
            len = size;
        memcpy(f, data, len);
        data += len;
        size -= len;
        if (len < 14)
            continue;
        if (mode & 16)
            aim_udp(f, len, mode & 32);
        else if (mode & 1)
            aim(f, len, acc);
        else if (mode & 2)
            aim(f, len, act);
        if (mode & 4)
            fix_csums(f, len);
        input(f, len);
        if (mode & 64)
            byp_ack_flush();   /* a receive burst ends here (netif.c) */
        if (mode & 8) {
            tcp_tmr();
            byp_tw_take();   /* as engine.c does after the timers */
            byp_tw_expire();
        }
    }
    byp_ack_flush();
    connections_down();
    return 0;
}
