/* What a process killed while it held the stack's lock left behind, and its repair.
 *
 * The lock is a robust mutex: the next taker gets EOWNERDEAD.  Before it goes on, it looks
 * at what the dead holder may have been half-way through (the record below, written under
 * the lock, and lwIP's own tcp_input_pcb), checks every shared structure that a death can
 * leave inconsistent with walks of bounded length, rebuilds what it can, cuts what it
 * cannot (a leak, never a cycle or a dangling pointer) and resets (RST) the connections
 * that cannot be trusted any more.  docs/architecture.md, "A lock holder that dies". */
#ifndef BYP_REPAIR_H
#define BYP_REPAIR_H

#include <sys/types.h>

/* The lock holder's record, in the shared engine data: written by whoever holds the lock,
 * read by whoever takes it over from a dead holder. */
struct byp_holder {
    pid_t pid;                  /* the process holding the lock, 0 when free */
    int in_timers;              /* inside lwIP's timers (sys_check_timeouts) */
    void *tsock;                /* the TCP socket object the holder's call works on */
    void *usock;                /* the UDP socket object the holder's call works on */
};
extern struct byp_holder byp_holder;

/* Learn what the repair needs to know of lwIP's timers (lock held; cheap once learnt). */
void byp_repair_learn(void);

/* The lock was just taken over from a dead holder (lock held): check and repair.  Logs one
 * line saying what was done. */
void byp_repair_dead_holder(void);

/* Socket-level parts (tcp_close.c, udp_sock.c), lock held: check every socket object's
 * queues, fix what can be recomputed, reset what cannot be trusted.  @suspect: the socket
 * the dead holder was working on (always reset).  Return the connections reset. */
int byp_tcp_repair_socks(void *suspect);
int byp_udp_repair_socks(void *suspect);

/* Reset connection @pcb (an lwIP struct tcp_pcb on the active list) that cannot be trusted:
 * queues that fail the check are let go of rather than freed; lock held. */
void byp_repair_reset_pcb(void *pcb);
/* Whether pbuf chain @chain (bounded walk) holds @target. */
struct pbuf;
int byp_repair_chain_has(const struct pbuf *chain, const struct pbuf *target);
/* Whether a socket object's receive queue holds @target (tcp_close.c, udp_sock.c). */
int byp_tcp_holds_pbuf(const struct pbuf *target);
int byp_udp_holds_pbuf(const struct pbuf *target);

/* Whether @pcb is on lwIP's list of active connections (lock held). */
int byp_repair_pcb_active(const void *pcb);

#endif
