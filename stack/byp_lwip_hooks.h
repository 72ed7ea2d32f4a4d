/* lwIP hooks implemented by bypass (stack/port.c).  Included by lwIP's sources through
 * LWIP_HOOK_FILENAME, after lwIP's own headers. */
#ifndef BYP_LWIP_HOOKS_H
#define BYP_LWIP_HOOKS_H

#include "lwip/ip_addr.h"

/* The next hop towards @dest (stack/mirror.c): its gateway from the kernel's mirrored
 * routes, or @dest itself when on-link; NULL when no route leaves through the accelerated
 * interface (lwIP then fails the output with ERR_RTE).  Answered from a per-destination
 * cache revalidated by a generation counter: no system call, no lock. */
struct netif;
const ip4_addr_t *byp_lwip_gw(struct netif *netif, const ip4_addr_t *dest);
#define LWIP_HOOK_ETHARP_GET_GW(netif, dest) byp_lwip_gw((netif), (dest))

/* Initial sequence number for a new connection (RFC 6528 shape): a keyed hash of the
 * four-tuple plus a clock.  lwIP's default is a global counter, which is predictable. */
u32_t byp_lwip_isn(const ip_addr_t *local_ip, u16_t local_port,
                   const ip_addr_t *remote_ip, u16_t remote_port);
#define LWIP_HOOK_TCP_ISN(local_ip, local_port, remote_ip, remote_port) \
    byp_lwip_isn((local_ip), (local_port), (remote_ip), (remote_port))

/* Every IPv4 packet entering lwIP: nonzero when it was eaten (freed) instead.  Segments of
 * a connection just handed over to the kernel, still in the NIC ring, are dropped here
 * rather than answered with a reset, and so are those of the kernel's connections on a
 * handed flow (tcp_handover.c); a segment of a connection in TIME_WAIT gets it lent back
 * to lwIP's list, and a SYN a free PCB (tcp_timewait.c). */
struct pbuf;
struct netif;
int byp_lwip_ip4_input(struct pbuf *p, struct netif *inp);
#define LWIP_HOOK_IP4_INPUT(p, inp) byp_lwip_ip4_input((p), (inp))

/* Every TCP segment lwIP matched to a PCB (listening ones too), before it acts on it
 * (tcp_guard.c): SYN-queue cap with eviction of the oldest half-open connection, MSS floor,
 * RFC 5961 ACK check.  ERR_OK to go on; anything else drops the segment. */
struct tcp_pcb;
struct tcp_hdr;
#include "lwip/err.h"
err_t byp_lwip_tcp_inpkt(struct tcp_pcb *pcb, struct tcp_hdr *hdr, u16_t optlen,
                         u16_t opt1len, u8_t *opt2, struct pbuf *p);
#define LWIP_HOOK_TCP_INPACKET_PCB(pcb, hdr, optlen, opt1len, opt2, p) \
    byp_lwip_tcp_inpkt((pcb), (hdr), (optlen), (opt1len), (opt2), (p))

#endif
