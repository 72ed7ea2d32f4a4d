/* The engine's insides (libbypass-engine.so): the stack lock, the lwIP netif over the DPDK
 * NIC, neighbours from the kernel, flow steering with reference counts, and the wake-ups of
 * sleeping threads.  preload/engine.h is its face towards libbypass.so. */
#ifndef BYP_STACK_ENGINE_H
#define BYP_STACK_ENGINE_H

#include <netinet/in.h>
#include <stdint.h>

#include "lwip/netif.h"

struct byp_nic;

/* The one lwIP interface, over the accelerated NIC. */
extern struct netif byp_netif;
/* Its IPv4 address and mask, network order. */
extern in_addr_t byp_if_addr, byp_if_mask;
/* The kernel's index of the interface (IP_PKTINFO). */
extern unsigned byp_if_index;
/* CLOCK_REALTIME (ns) when the burst being processed left the NIC ring: the receive
 * timestamp of the datagrams lwIP delivers meanwhile. */
extern int64_t byp_rx_realtime_ns;
/* 1: the backend steers flows on an interface the kernel keeps (af_xdp): kernel sockets
 * reserve the stack's ports on its address, neighbours come from the kernel.  0: a
 * dedicated interface (af_packet, tap): the stack answers ARP, reservations bind to any. */
extern int byp_steering;

/* Take / release the stack lock.  Releasing sends what lwIP queued for transmission and,
 * when sockets changed readiness while threads sleep, wakes them. */
void byp_stack_lock(void);
void byp_stack_unlock(void);
/* Release without sending: what a send queued leaves with the next flush, which every
 * receive, wait, poll and progress run does (and a full batch).  Several sends between two
 * waits (a server answering every ready client, then calling epoll_wait) thus cost one
 * transmit kick, the one system call of the AF_XDP data path. */
void byp_stack_unlock_noflush(void);
/* Release after a UDP call: datagrams give lwIP nothing to time, so a napping progress
 * thread is woken only while a neighbour is being resolved (engine_int.h). */
void byp_stack_unlock_udp(void);
/* Set when a receive round passed a TCP segment to lwIP (tcp_guard.c): its unlock then
 * tells the progress thread that lwIP may have something new to time. */
extern int byp_rx_timed;

/* Called (lock held) whenever a socket's readiness changed: with the wake groups of the
 * members that hold it (struct byp_refs' groups), or every group. */
void byp_engine_event_groups(unsigned groups);
/* ... that one group among @groups with sleepers is to be woken for (EPOLLEXCLUSIVE). */
void byp_engine_event_one(unsigned groups);
void byp_engine_event(void);

/* Run the stack once if nobody else is: rx burst, timers, neighbours.  Returns the number
 * of packets received.  @from_app: an application thread (so the progress thread may rest). */
int byp_engine_poll(int from_app);

/* ---- timers.c ---- */

/* Keep lwIP's TCP tick count (tcp_ticks) in step with @now_ms (CLOCK_MONOTONIC ms), however
 * long its timer did not run (lock held; before lwIP sees input or runs its timers). */
void byp_tcp_ticks_sync(int64_t now_ms);
/* Milliseconds until one of the stack's timers next has work to do, at most @cap: lwIP's
 * tick while a connection is busy or a neighbour or an IGMP report is pending, else the
 * nearest keepalive or close deadline (lock held). */
uint32_t byp_timers_wait_ms(int64_t now_ms, uint32_t cap);

/* ---- netif.c ---- */

/* Bring up byp_netif on @nic with the kernel interface's @mac, @mtu, @addr/@prefixlen. */
int byp_netif_setup(struct byp_nic *nic, const uint8_t mac[6], unsigned mtu, in_addr_t addr,
                    unsigned prefixlen);

/* Accept frames whose TCP/UDP checksum is the sender's partial one (veth only). */
void byp_netif_trust_partial_csum(int on);
/* Receive one burst into lwIP (lock held).  Returns packets received. */
int byp_netif_rx(void);
/* Nonzero when fewer than half of the NIC's buffers are free: a socket about to hold a
 * received frame for long (a UDP queue) copies it and frees the NIC's buffer instead. */
int byp_netif_pool_low(void);
/* Send what is queued (lock held). */
void byp_netif_flush(void);
/* After the lock is released: make the NIC send what the last flush left in its ring
 * (the AF_XDP kick, a system call, then holds nobody up). */
void byp_netif_kick(void);
/* Nothing to receive and nothing queued to send, as far as a look without the stack lock
 * can tell (the backend's rx_pending); 0 when the backend cannot tell. */
int byp_netif_quiet(void);
/* After a lock holder died (repair.c): a transmit burst it cut short is not sent again,
 * the frames of its receive burst that lwIP never saw go back to the pool, the interface's
 * address and checksum flags are restored. */
void byp_netif_repair(void);
/* Then, once the queues are repaired: the frame the dead holder was handing to lwIP, as
 * a pbuf, when it was not freed (NULL otherwise); and the end of the repair's look at it,
 * freeing it when @free_it (no queue holds it: lwIP dropped it or was about to, and it
 * would leak). */
struct pbuf *byp_netif_repair_given(void);
void byp_netif_repair_given_end(int free_it);
/* Resolve neighbours lwIP asked for through the kernel's table (lock held). */
void byp_neigh_poll(void);
/* Nonzero while a neighbour lookup is pending. */
extern int byp_neigh_pending;

/* ---- steering with reference counts (engine.c) ---- */

/* Steer (proto, local addr, local port) to the stack; counted, so a listener's entry lives
 * as long as it or any connection it accepted does.  0 or -errno. */
int byp_flow_ref(int proto, in_addr_t addr, in_port_t port);
void byp_flow_unref(int proto, in_addr_t addr, in_port_t port);
/* The flow's socket went to a process without the stack: new TCP connections, or all UDP
 * datagrams, of the flow go to the kernel from now on (steer_ctl.h byp_steer_hand).
 * -ENOTSUP on a backend that does not steer. */
int byp_flow_hand(int proto, in_addr_t addr, in_port_t port);
/* Flows handed so far and still steered; whether TCP to @dst:@port (network order) is one
 * of them, and its entry's address (@dst, or 0 for the wildcard). */
extern int byp_flows_handed;
int byp_flow_handed_tcp(in_addr_t dst, in_port_t port, in_addr_t *flow_addr);
/* Whether fd @fd goes to the other process of a spawn or a send (engine_fork.c): 2 when
 * named (one of @extra: sent, or a spawn's dup2 source), 1 when merely inherited (unless
 * @listed, any fd without FD_CLOEXEC), else 0. */
int byp_fd_inherited(unsigned fd, const int *extra, int nextra, int listed);

/* Whether @addr (network order) is reachable through the accelerated interface. */
int byp_route_ok(in_addr_t addr);

/* Whether the NIC's link lets the stack reach its peer now, waiting up to a second for a
 * link that is coming up (memif: the peer process connecting).  Without the stack lock.
 * 0: the peer is not there, and a connect() is refused as by a host without the port. */
int byp_link_ready(void);



/* Ask the kernel to resolve neighbour @addr on @ifindex (kresolve.c).  0, -EEXIST (it has
 * an entry already), or -errno. */
int byp_kstate_resolve_neigh(unsigned ifindex, in_addr_t addr);

/* ---- the live kernel mirror (mirror.c) ---- */

/* Start mirroring interface @ifindex (after byp_netif_setup; steering backends only).
 * 0, -ENOMEM or -EIO; on failure the stack keeps its start-time view (on-link only). */
int byp_mirror_start(unsigned ifindex);
/* The mirror's generation: moves whenever routes, addresses, link or neighbours change. */
uint32_t byp_mirror_gen(void);
/* The mirror's answer for byp_route_ok: 1 when the kernel's main table routes @addr
 * through the interface and it is not one of our addresses, 0 when not, -ENOENT when
 * the interface is not mirrored.  Takes the stack lock. */
int byp_mirror_route_ok(in_addr_t addr);
/* A route that leaves through another interface or is not unicast (byp_nexthop). */
#define BYP_ROUTE_ELSEWHERE 1
/* The next hop towards @dst (lock held): 0 with @hop set (gateway, or @dst on-link),
 * BYP_ROUTE_ELSEWHERE, or the kernel's errno for the route as -errno (-ENETUNREACH none,
 * -EHOSTUNREACH unreachable, -EACCES prohibit, -EINVAL blackhole).  Cached per destination
 * until the mirror's generation moves. */
int byp_nexthop(in_addr_t dst, in_addr_t *hop);
/* The source address the kernel would pick for a connection to @dst (lock held). */
in_addr_t byp_route_src(in_addr_t dst);
/* Whether @addr is one of the interface's IPv4 addresses now (lock held). */
int byp_addr_is_local(in_addr_t addr);
/* The kernel's neighbour entry for @addr (lock held): its NUD_* state, with its MAC in @mac
 * (may be NULL), or -ENOENT. */
int byp_kneigh_find(in_addr_t addr, uint8_t mac[6]);
/* Bring lwIP's ARP table in line with the mirrored neighbours (netif.c, lock held): MACs
 * replaced, entries the kernel deleted or failed removed (lwIP resolves them again),
 * pending ones filled. */
void byp_neigh_sync(void);

/* Which SO_REUSEPORT member gets a flow: a hash of the peer's address and port and the
 * local port (values as they come), spread over the 32 bits. */
static inline uint32_t byp_flow_hash(uint32_t raddr, uint32_t rport, uint32_t lport)
{
    uint32_t h = raddr ^ (rport << 16 | (lport & 0xffff)) * 0x9e3779b1u;
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    h *= 0xc2b2ae35u;
    h ^= h >> 16;
    return h;
}
#endif
