/* lwIP build options for bypass.
 *
 * lwIP reads this file from its opt.h; anything not set here keeps lwIP's default.  The
 * stack runs in NO_SYS mode inside the application's process: the caller holds the one
 * stack lock (see docs/architecture.md), drives input from the NIC backend's rx bursts and
 * runs the timers itself (sys_check_timeouts), so lwIP needs no threads, semaphores or
 * mailboxes.  Only lwIP's raw API is used; the POSIX sockets are ours (preload/).
 *
 * Options are grouped like lwIP's opt.h.  Each group states why the value was chosen.
 * The #error checks at the end catch combinations that compile but would not work. */
#ifndef BYP_LWIPOPTS_H
#define BYP_LWIPOPTS_H

/* ---------- platform / threading ---------- */

/* No OS layer: bypass serialises all stack calls under its own lock. */
#define NO_SYS                          1
/* Makes lwIP's timeout list and lwip_cyclic_timer visible (nothing else): the repair after
 * a dead lock holder re-arms a cyclic timer the holder had taken off the list (repair.c). */
#define LWIP_TESTMODE                   1
/* Protection is our lock, not lwIP's sys_arch_protect. */
#define SYS_LIGHTWEIGHT_PROT            0
/* lwIP's own timeout list, driven by sys_check_timeouts() from the poll loop. */
#define LWIP_TIMERS                     1
/* Only the raw API. */
#define LWIP_NETCONN                    0
#define LWIP_SOCKET                     0
#define LWIP_NETIF_API                  0
#define LWIP_ALTCP                      0

/* ---------- memory ---------- */

/* Fixed pools (memp) for every control structure: PCBs, segments, pbuf headers, timeouts.
 * Their size is known at build time and allocation is O(1). */
#define MEMP_MEM_MALLOC                 0
/* The variable-size heap (PBUF_RAM: the copy of transmitted data that tcp_write makes, UDP
 * payloads) comes from libc malloc.  lwIP's own heap (mem.c) is a first-fit list under one
 * static array: with a thousand connections each holding up to TCP_SND_BUF of unsent data,
 * its linear search and fragmentation cost more than glibc's per-thread caches.  The total
 * stays bounded by TCP_SND_BUF per connection. */
#define MEM_LIBC_MALLOC                 1
/* ... from the engine's shared arena (shm.h) rather than libc's heap, so that a forked child
 * that inherits a connection sees the same queued data. */
#include "shm.h"
#define mem_clib_malloc                 byp_shm_alloc
#define mem_clib_free                   byp_shm_free
#define mem_clib_calloc                 byp_shm_calloc
#define MEM_USE_POOLS                   0
/* 64-bit host: align to 8 so that pbuf payloads suit any access. */
#define MEM_ALIGNMENT                   8
/* Not used for allocation with MEM_LIBC_MALLOC, but lwIP's checks read it. */
#define MEM_SIZE                        (1024 * 1024)

/* No connection limit below the kernel's on one server (issue 12): 15,000 concurrent
 * connections plus TIME_WAIT and half-open ones (at most 1,024, tcp_guard.c) fit.  lwIP
 * recycles the oldest TIME_WAIT PCB when the pool runs out; past that a SYN is answered
 * with a reset.  About 200 bytes each, in .bss pages touched only when used. */
#define MEMP_NUM_TCP_PCB                32768
#define MEMP_NUM_TCP_PCB_LISTEN         128
#define MEMP_NUM_UDP_PCB                512
/* Queued TCP segments, shared by all connections (unsent + unacked + out-of-sequence). */
#define MEMP_NUM_TCP_SEG                32768
/* PBUF_REF/PBUF_ROM headers (zero-copy tx of application buffers, later). */
#define MEMP_NUM_PBUF                   4096
/* ARP queueing while the kernel resolves a neighbour. */
#define MEMP_NUM_ARP_QUEUE              256
/* IP reassembly of fragmented UDP datagrams: up to 16 datagrams at once, 256 fragments
 * (held rx mbufs) in total, so one 64 KB datagram (45 fragments at MTU 1500) fits. */
#define MEMP_NUM_REASSDATA              16
#define IP_REASS_MAX_PBUFS              256
#define MEMP_NUM_FRAG_PBUF              64
/* Pool pbufs: only for data lwIP builds itself (reassembly copies, fallbacks when the mbuf
 * pool is low).  Received frames normally enter as custom pbufs wrapping the rte_mbuf. */
#define PBUF_POOL_SIZE                  1024
/* lwIP's default (TCP_MSS + headers) would do; state it so the sanity check below holds. */
#define PBUF_POOL_BUFSIZE               1536

/* ---------- pbuf ---------- */

/* Zero-copy receive: a struct pbuf_custom lives in each rte_mbuf's private area and
 * points at the frame in place; its free function returns the mbuf to its mempool. */
#define LWIP_SUPPORT_CUSTOM_PBUF        1
/* Ethernet header, no padding (ETH_PAD_SIZE 0) and no extra encapsulation. */
#define PBUF_LINK_HLEN                  14
#define ETH_PAD_SIZE                    0
#define PBUF_LINK_ENCAPSULATION_HLEN    0

/* ---------- interface ---------- */

/* One accelerated interface per process (the config names one).  Saves the netif lookups
 * on every received and sent packet. */
#define LWIP_SINGLE_NETIF               1
/* No loopback inside lwIP: 127.0.0.0/8 and the interface's own address go to the kernel. */
#define LWIP_NETIF_LOOPBACK             0
#define LWIP_HAVE_LOOPIF                0
/* The netif mirrors the kernel's link state and addresses. */
#define LWIP_NETIF_STATUS_CALLBACK      1
#define LWIP_NETIF_LINK_CALLBACK        1
/* Remembers the ARP entry per PCB: one lookup less per transmitted segment. */
#define LWIP_NETIF_HWADDRHINT           1
/* A transmitted segment may be a chain (headers + data); the backend gathers it. */
#define LWIP_NETIF_TX_SINGLE_PBUF       0

/* ---------- IPv4 / ARP ---------- */

#define LWIP_IPV4                       1
#define LWIP_IPV6                       0
#define IP_FORWARD                      0
#define IP_REASSEMBLY                   1
#define IP_FRAG                         1
#define IP_DEFAULT_TTL                  64
#define LWIP_ARP                        1
/* Neighbours come from the kernel's table (netlink), entered as static entries: ARP
 * replies are passed to the kernel by the XDP program, so lwIP would never learn them. */
#define ETHARP_SUPPORT_STATIC_ENTRIES   1
#define ARP_TABLE_SIZE                  128
/* Keep packets for a neighbour being resolved rather than dropping them. */
#define ARP_QUEUEING                    1
#define ARP_QUEUE_LEN                   64
#define ETHARP_TRUST_IP_MAC             0
#define LWIP_ICMP                       1
#define LWIP_RAW                        0
#define LWIP_DHCP                       0
#define LWIP_AUTOIP                     0
/* Multicast receive (market data feeds): joins reach the kernel as IGMP too. */
#define LWIP_IGMP                       1
/* Groups the stack may be a member of at once (a feed handler joins dozens). */
#define MEMP_NUM_IGMP_GROUP             1024
#define LWIP_DNS                        0
#define LWIP_UDP                        1
#define LWIP_UDPLITE                    0

/* ---------- TCP ---------- */

#define LWIP_TCP                        1
#define TCP_MSS                         1460
#define TCP_CALCULATE_EFF_SEND_MSS      1
/* Windows sized for 10 Gbit/s at LAN round-trip times: 10 Gbit/s x 1 ms = 1.25 MB, so 2 MB
 * covers a LAN with some queueing.  A window above 64 KB needs scaling (RFC 7323):
 * 2^6 lets the advertised 16-bit field reach 4 MB. */
#define LWIP_WND_SCALE                  1
#define TCP_RCV_SCALE                   6
#define TCP_WND                         (2 * 1024 * 1024)
#define TCP_SND_BUF                     (2 * 1024 * 1024)
/* Segments (pbufs) one connection may queue for sending: lwIP's usual 4x of the MSS count,
 * because a small write makes a segment of its own. */
#define TCP_SND_QUEUELEN                ((4 * TCP_SND_BUF + TCP_MSS - 1) / TCP_MSS)
/* "Writable" once 32 KB are free.  lwIP requires it well below 64 KB (a 16-bit field). */
#define TCP_SNDLOWAT                    (32 * 1024)
#define TCP_SNDQUEUELOWAT               (TCP_SND_QUEUELEN / 2)
/* Fill segments to the MSS when the application writes in small pieces. */
#define TCP_OVERSIZE                    TCP_MSS
/* Receive out-of-order segments (and SACK them) instead of dropping them. */
#define TCP_QUEUE_OOSEQ                 1
#define LWIP_TCP_SACK_OUT               1
#define LWIP_TCP_MAX_SACK_NUM           4
/* Bound what one connection may hold out of order: these are rx mbufs kept from the
 * shared pool, and one lossy connection must not starve the others. */
#define TCP_OOSEQ_MAX_PBUFS             512
#define TCP_OOSEQ_MAX_BYTES             TCP_WND
#define LWIP_TCP_KEEPALIVE              1
/* SO_REUSEADDR: a listener may rebind while old connections sit in TIME_WAIT. */
#define SO_REUSE                        1
/* Several sockets on one multicast group and port (SO_REUSEADDR) each get their copy. */
#define SO_REUSE_RXTOALL                1
/* No lwIP backlog: its counter is 8 bits (255 half-open connections), and a burst of
 * 1,000 connects would lose SYNs to it (1 s retransmits).  The socket layer bounds the
 * queue of established, not yet accepted connections instead (tcp_sock.c). */
#define TCP_LISTEN_BACKLOG              0
/* Timer granularity.  lwIP's default 250 ms tick bounds how late a delayed ACK goes out
 * and how coarse the retransmission timer is; 10 ms (the slow timer then ticks every 20 ms)
 * keeps delayed ACKs below a LAN's patience.  The poll loop only runs the timers when one
 * is due, so a finer tick costs little. */
#define TCP_TMR_INTERVAL                10
/* TIME_WAIT lasts 2 MSL: 60 s, as Linux's (lwIP's default MSL would make it 120 s). */
#define TCP_MSL                         30000UL
#define LWIP_TCP_TIMESTAMPS             0
#define LWIP_EVENT_API                  0
#define LWIP_CALLBACK_API               1

/* ---------- checksums ---------- */

/* Every checksum is compiled in; the netif turns off, per direction and protocol, those its
 * NIC handles (NETIF_SET_CHECKSUM_CTRL).  af_xdp offloads nothing. */
#define LWIP_CHECKSUM_CTRL_PER_NETIF    1
#define CHECKSUM_GEN_IP                 1
#define CHECKSUM_GEN_UDP                1
#define CHECKSUM_GEN_TCP                1
#define CHECKSUM_GEN_ICMP               1
#define CHECKSUM_CHECK_IP               1
#define CHECKSUM_CHECK_UDP              1
#define CHECKSUM_CHECK_TCP              1
#define CHECKSUM_CHECK_ICMP             1
/* Sum the data while tcp_write copies it: one pass over the bytes instead of two. */
#define LWIP_CHECKSUM_ON_COPY           1
/* Our checksum loops (chksum.c), sixteen bytes at a time (lwIP's own sums two), and the
 * copy's in the same pass as the copy. */
#define LWIP_CHKSUM                     byp_chksum
#define LWIP_CHKSUM_COPY(dst, src, len) byp_chksum_copy(dst, src, len)
unsigned short byp_chksum(const void *dataptr, int len);
unsigned short byp_chksum_copy(void *dst, const void *src, unsigned short len);

/* ---------- statistics / debugging ---------- */

/* bypass keeps its own counters (shared memory, bypass-stat). */
/* Counters: only the MIB-II ones (UDP datagrams to no port, for bypass-stat). */
#define LWIP_STATS                      1
#define MIB2_STATS                      1
#define LINK_STATS                      0
#define ETHARP_STATS                    0
#define IP_STATS                        0
#define IPFRAG_STATS                    0
#define ICMP_STATS                      0
#define IGMP_STATS                      0
#define UDP_STATS                       0
#define TCP_STATS                       0
#define MEM_STATS                       0
#define MEMP_STATS                      0
#define SYS_STATS                       0
#define LWIP_STATS_DISPLAY              0
#define MEMP_OVERFLOW_CHECK             0
#define MEMP_SANITY_CHECK               0
/* LWIP_DEBUG stays undefined: no debug messages are compiled in. */

/* ---------- hooks provided by bypass (stack/port.c) ---------- */

/* LWIP_RAND (initial sequence numbers, ports) and sys_now are declared in arch/cc.h. */

/* ---------- consistency checks ---------- */

#if !NO_SYS
#error "bypass drives lwIP in NO_SYS mode: NO_SYS must be 1"
#endif
#if LWIP_SOCKET || LWIP_NETCONN
#error "LWIP_SOCKET and LWIP_NETCONN need NO_SYS=0 threads; bypass provides its own sockets"
#endif
#if LWIP_IPV6
#error "IPv6 is not supported yet (the XDP steering program and the netif are IPv4 only)"
#endif
#if MEMP_MEM_MALLOC
#error "control structures come from fixed pools: MEMP_MEM_MALLOC must be 0"
#endif
#if MEM_LIBC_MALLOC && MEM_USE_POOLS
#error "MEM_LIBC_MALLOC and MEM_USE_POOLS exclude each other"
#endif
#if !LWIP_SUPPORT_CUSTOM_PBUF
#error "zero-copy receive wraps rte_mbufs in custom pbufs: LWIP_SUPPORT_CUSTOM_PBUF must be 1"
#endif
#if TCP_WND > 0xFFFF && !LWIP_WND_SCALE
#error "a TCP_WND above 64 KB needs LWIP_WND_SCALE=1"
#endif
#if LWIP_WND_SCALE && (TCP_WND > (0xFFFF << TCP_RCV_SCALE))
#error "TCP_WND does not fit the 16-bit window field shifted by TCP_RCV_SCALE: raise TCP_RCV_SCALE"
#endif
#if LWIP_WND_SCALE && (TCP_RCV_SCALE > 14)
#error "RFC 7323 allows a window scale of at most 14"
#endif
#if MEMP_NUM_TCP_PCB < 2048
#error "MEMP_NUM_TCP_PCB must leave room for 1,000 concurrent connections plus TIME_WAIT"
#endif
#if TCP_SND_QUEUELEN > 0xFFFF
#error "TCP_SND_QUEUELEN is a 16-bit counter in lwIP's PCB"
#endif
#if MEMP_NUM_TCP_SEG < TCP_SND_QUEUELEN
#error "MEMP_NUM_TCP_SEG must hold at least one full send queue (TCP_SND_QUEUELEN)"
#endif
#if ETHARP_SUPPORT_STATIC_ENTRIES == 0 && LWIP_ARP
#error "neighbours are mirrored from the kernel as static ARP entries"
#endif
#if LWIP_SINGLE_NETIF && LWIP_HAVE_LOOPIF
#error "LWIP_SINGLE_NETIF leaves no room for lwIP's loopback netif"
#endif
#if TCP_TMR_INTERVAL > 100
#error "a coarse TCP timer delays ACKs and retransmissions: keep TCP_TMR_INTERVAL <= 100 ms"
#endif
#if defined(LWIP_DEBUG)
#error "LWIP_DEBUG prints through LWIP_PLATFORM_DIAG on the data path; keep it off"
#endif

/* lwIP's own TCP sanity checks measure TCP_WND against PBUF_POOL_SIZE, which does not hold
 * the receive window here (rx mbufs do).  The checks that matter are above; the mbuf pool
 * size is checked at run time by the backend. */
#define LWIP_DISABLE_TCP_SANITY_CHECKS  1

/* The C library provides htons and friends; lwIP must not redefine them as macros (the
 * engine includes both). */
#define LWIP_DONT_PROVIDE_BYTEORDER_FUNCTIONS 1

#endif /* BYP_LWIPOPTS_H */
