/* Loader side of the XDP steering program (steer.c): where its object file is, and the
 * flow map that decides which packets the AF_XDP socket gets.
 *
 * The flow map is found through the program attached to the interface (attached program
 * id -> its map ids -> the map named BYP_FLOW_MAP_NAME), never through a bpffs pin:
 * inside `ip netns exec` /sys is remounted and bpffs is absent.  One interface per process:
 * the map is kept in module state between byp_steer_open and byp_steer_close.
 * Address and port are in network byte order, as in struct sockaddr_in.
 * All functions return 0 or a negative errno. */
#ifndef BYP_STEER_CTL_H
#define BYP_STEER_CTL_H

#include <netinet/in.h>
#include <stdint.h>
#include <sys/types.h>

/* Path of xdp_steer.bpf.o: $BYPASS_XDP_PROG if set; else next to the shared object or
 * executable holding this code, or in its nicbackend/ subfolder (the build tree); else
 * the installed and the build-time paths.  Returns NULL if none exists (errno ENOENT). */
const char *byp_steer_prog_path(void);

/* Find the flow map of the steering program attached to @ifindex.
 * Errors: -ENOENT (no XDP program attached, or it has no flow map: not ours),
 * -EPERM (no CAP_BPF/CAP_SYS_ADMIN), other errnos from bpf(2). */
int byp_steer_open(unsigned ifindex);

/* Whether the process that attached steering program @prog_id (it records its pid and
 * start time in the flow map) still runs.  1 when alive or when it cannot tell. */
int byp_steer_owner_alive(uint32_t prog_id);

/* Record @pid as the owner of the steering program (a shared stack's member that outlives
 * the process that attached it), so the next process does not take the interface over
 * while @pid runs. */
void byp_steer_claim(pid_t pid);
/* Pass the connection (@laddr:@lport <- @raddr:@rport) to the kernel although its flow
 * (@proto, @flow_addr, @lport) steers the port to the stack: a connection handed over. */
int byp_steer_pass_conn(int proto, in_addr_t flow_addr, in_addr_t laddr, in_port_t lport,
                        in_addr_t raddr, in_port_t rport);
/* The socket of flow (@proto, @addr, @port) went to a process that does not run the stack:
 * from now on its new TCP connections, or all its UDP datagrams, go to the kernel
 * (BYP_FLOW_F_HANDED, until the entry goes). */
int byp_steer_hand(int proto, in_addr_t addr, in_port_t port);
/* When the recorded owner no longer runs (a member killed), record this process. */
void byp_steer_claim_live(void);

/* Forget the flow map (closes our file descriptor; the map lives on with the program). */
void byp_steer_close(void);

/* Steer packets of @proto (IPPROTO_TCP/UDP) to local @addr:@port (addr INADDR_ANY: any
 * local address) to the AF_XDP socket.  Adding an existing entry keeps its counter.
 * Errors: -EBADF (byp_steer_open not called), -EINVAL (protocol), -E2BIG (map full). */
int byp_steer_add(int proto, in_addr_t addr, in_port_t port);

/* Stop steering that flow: its packets go to the kernel again.  -ENOENT if absent. */
int byp_steer_del(int proto, in_addr_t addr, in_port_t port);

/* Packets the program redirected through that entry so far.  -ENOENT if absent. */
int byp_steer_packets(int proto, in_addr_t addr, in_port_t port, uint64_t *packets);

#endif
