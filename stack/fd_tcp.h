/* The accelerated TCP fd kind: POSIX socket semantics over lwIP's raw TCP API. */
#ifndef BYP_FD_TCP_H
#define BYP_FD_TCP_H

#include <netinet/in.h>
#include <stdint.h>

/* Engine entry points (struct byp_engine): make kernel socket @fd an accelerated listener,
 * or connect it through the stack.  See preload/engine.h for the returns. */
int byp_tcp_listen(int fd, const struct sockaddr_in *local, int backlog);
int byp_tcp_connect(int fd, const struct sockaddr_in *remote);

/* A connection in TIME_WAIT is to make way for a new SYN on its four-tuple: detach it from
 * whatever still names it, the closed socket that lwIP finishes (a zombie) or the open socket
 * that shut down first (byp_tcp_time_wait).  0 only for a connection a program's socket still
 * runs (it stays), 1 when it may be freed (lock held, tcp_close.c). */
struct tcp_pcb;
int byp_tcp_tw_forget(struct tcp_pcb *pcb);

/* After a segment's input: @pcb, if in TIME_WAIT now and a program's socket still holds it
 * (it shut down writing first), is let go of by the socket (lock held, tcp_sock.c). */
void byp_tcp_time_wait(struct tcp_pcb *pcb);

/* Let go of closed connections whose last packets lwIP has finished with (lock held). */
void byp_tcp_reap(void);

/* Nonzero while a connection the program closed still has data to send or to see
 * acknowledged, or its FIN unacknowledged (lock held): an exiting process waits on it. */
int byp_tcp_flushing(void);
/* The kernel failed to resolve neighbour @hop (NUD_FAILED): connections still waiting for
 * their SYN to leave through it fail with EHOSTUNREACH, as the kernel's would (lock held). */
void byp_tcp_unreachable(in_addr_t hop);

/* Sharing across fork (lock held, tcp_sock.c): before fork, the child's slot gets a
 * reference for each accelerated TCP fd it will inherit; a member that leaves or died
 * gives back all of its references (closing what only it held). */
void byp_tcp_fork_refs(int slot);
void byp_tcp_drop_member(int slot);

/* Before exec or at exit (lock held, tcp_close.c): hand over to the kernel (tcp_handover.c)
 * every connection of this process that no other process holds and whose fd survives the
 * exec, or, at exit, that no other thread of this process is inside a call on: what the
 * program writes later (its remaining exit handlers, libc's flush of stdio streams) goes
 * out through the kernel, which also closes it when the process ends. */
void byp_tcp_handover_fds(int at_exit);

/* Before posix_spawn or an SCM_RIGHTS send (lock held, tcp_handover.c): the same for the
 * connections the other program gets (@extra: the file actions' dup2 sources, or the fds
 * sent; unless @listed, also every fd without FD_CLOEXEC); this process goes on with them on
 * the kernel.  Writes the fds to turn into kernel fds to @out. */
int byp_tcp_spawn_handover(const int *extra, int nextra, int listed, const char *to, int *out,
                           int max);
/* Before exec (lock held, tcp_handover.c): the listeners the new image inherits are no
 * longer steered to the stack (byp_flow_hand). */
void byp_tcp_exec_hand_listeners(void);
/* Connections the stack took for a handed listener (@only, or any) before it was handed
 * and that have not finished their handshake yet (lock held). */
struct tsock;
int byp_tcp_handed_half_open(const struct tsock *only);

/* Connections in TIME_WAIT, out of lwIP's list in a table of their own (tcp_timewait.c;
 * lock held).  take: after an input, what lwIP put in TIME_WAIT (or was lent) goes to the
 * table.  lend: the connection of a segment (addresses and ports in network order) goes
 * back to lwIP's list for the segment's input; 1 if there was one.  reserve: the oldest are
 * freed until the pool has @want PCBs free (before lwIP may allocate one).  expire: those
 * past 2 MSL are freed.  next_tick: tcp_ticks at which the oldest is due.  repair: the
 * table made again after a lock holder died. */
void byp_tw_take(void);
struct pbuf;
void byp_tw_segment(const struct pbuf *p);   /* the IPv4 input hook's part: reserve, lend */
/* The four-tuple (network order) and flags of the TCP segment in IPv4 packet @p: 0 when it
 * is not one, or too short. */
struct byp_tcp4 {
    uint32_t src, dst;
    uint16_t sport, dport;
    uint8_t flags;
};
int byp_tcp4_segment(const struct pbuf *p, struct byp_tcp4 *t);
int byp_tw_lend(uint32_t src, uint16_t sport, uint32_t dst, uint16_t dport);
int byp_tw_count(void);
void byp_tw_reserve(int want);
void byp_tw_expire(void);
uint32_t byp_tw_next_tick(void);
void byp_tw_repair(void);
void byp_tw_release_all(void);   /* every one freed (the fuzzer's teardown) */

#endif
