/* Shared between the XDP steering program (xdp_steer.bpf.c) and its loader side (steer.c).
 *
 * The program redirects to the AF_XDP socket of the receiving queue those IPv4 TCP/UDP
 * packets whose (protocol, destination address, destination port) has an entry in the flow
 * map, or whose (protocol, 0.0.0.0, destination port) has one (a socket bound to
 * INADDR_ANY).  Everything else goes to the kernel (XDP_PASS). */
#ifndef BYP_STEER_H
#define BYP_STEER_H

#include <linux/types.h>

/* Names of the two maps as the kernel reports them (at most 15 characters).  DPDK's af_xdp
 * PMD looks up "xsks_map" in a program given with xdp_prog=. */
#define BYP_XSKS_MAP_NAME  "xsks_map"
#define BYP_FLOW_MAP_NAME  "byp_flows"
/* Name of the XDP program (function name; the kernel keeps 15 characters). */
#define BYP_STEER_PROG_NAME "byp_steer"

/* Capacity of the flow map: listeners, bound UDP sockets and connected TCP sockets. */
#define BYP_STEER_MAX_FLOWS 65536
/* Capacity of the XSKMAP: one slot per receive queue. */
#define BYP_STEER_MAX_QUEUES 64

/* Key of the flow map.  Address and port in network byte order, as in sockaddr_in;
 * addr 0 is the wildcard (INADDR_ANY).  The padding byte must be zero. */
struct byp_flow_key {
    __u32 addr;
    __u16 port;
    __u8 proto;     /* IPPROTO_TCP or IPPROTO_UDP */
    __u8 pad;
};

/* Value of the flow map. */
#define BYP_FLOW_F_PASS 1u  /* some connections of this flow are the kernel's: see byp_kpass */
/* The socket of this flow was handed to a process that does not run the stack (sent over
 * a UNIX socket, inherited by a spawned program): UDP goes to the kernel; for TCP, each new
 * connection (its SYN) goes to the kernel and is added to byp_kpass, while the
 * connections the stack already has stay. */
#define BYP_FLOW_F_HANDED 2u
struct byp_flow_val {
    __u32 flags;    /* BYP_FLOW_F_* (the owner entry, proto 0, keeps a pid here) */
    __u32 pad;
    __u64 packets;  /* packets redirected through this entry (updated by the program) */
};

/* Connections handed over to the kernel (before exec) whose flow entry still steers the
 * rest of its port to the stack (a listener's), and those a handed listener's SYNs began:
 * looked up only for flows flagged BYP_FLOW_F_PASS or BYP_FLOW_F_HANDED.  Addresses and ports of the packet, network byte order. */
#define BYP_KPASS_MAP_NAME "byp_kpass"
#define BYP_STEER_MAX_KPASS 32768
struct byp_conn_key {
    __u32 saddr, daddr;
    __u16 sport, dport;
    __u8 proto;
    __u8 pad[3];
};

#endif
