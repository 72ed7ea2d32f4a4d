/* ACKs per receive burst (tcp_ack.c): a connection that gets several in-order segments in
 * one burst from the NIC is acknowledged once, at the burst's end, instead of every second
 * segment inside lwIP's input. */
#ifndef BYP_TCP_ACK_H
#define BYP_TCP_ACK_H

struct tcp_pcb;
struct tcp_hdr;
struct pbuf;

/* A segment lwIP is about to take for @pcb (lwIP's TCP input hook; header fields in host
 * order, @p its payload).  Stack lock held. */
void byp_ack_defer(struct tcp_pcb *pcb, const struct tcp_hdr *hdr, const struct pbuf *p);

/* The receive burst ended: send the ACKs it deferred.  Stack lock held. */
void byp_ack_flush(void);

#endif
