/* ACKs per receive burst.
 *
 * lwIP acknowledges every second in-order segment at once, inside its input (tcp_ack: the
 * first sets TF_ACK_DELAY, the second turns it into TF_ACK_NOW).  Towards a peer on veth
 * every ACK costs this process the peer's whole handling of it, run in the transmit kick's
 * system call, and for a sender in slow start or with a full window, one more send of the
 * peer's (docs/architecture.md, "Deployment performance": iperf3 receiving).  The kernel
 * does the same as lwIP per packet, but its GRO hands TCP a burst as one segment, so it
 * acknowledges once per burst.
 *
 * Here: a segment that lwIP would answer with an immediate ACK only because one was
 * already owed (TF_ACK_DELAY set, a plain in-order data segment) finds the flag cleared, so
 * lwIP only delays again, and its connection is noted; at the end of the burst each noted
 * connection that is still open gets its ACK (TF_ACK_NOW and tcp_output, which also sends
 * what it has queued).  At least every second segment is still acknowledged within the
 * burst it came in (RFC 1122 4.2.3.2, RFC 5681 4.2); anything else lwIP answers at once
 * (out of order, a window update, FIN) is untouched. */
#include "lwip/priv/tcp_priv.h"
#include "lwip/tcp.h"

#include "tcp_ack.h"

#define OWED_MAX 64

/* Connections owed an ACK at the end of this burst (engine data: the stack lock guards it).
 * An entry may outlive its connection within the burst (reset, aborted): the pool keeps
 * the memory and tcp_pcb_remove leaves it CLOSED, which the flush skips. */
static struct tcp_pcb *owed[OWED_MAX];
static int nowed;

void byp_ack_defer(struct tcp_pcb *pcb, const struct tcp_hdr *hdr, const struct pbuf *p)
{
    if (!(pcb->flags & TF_ACK_DELAY) || pcb->state != ESTABLISHED || p->tot_len == 0 ||
        (TCPH_FLAGS(hdr) & (TCP_SYN | TCP_FIN | TCP_RST | TCP_URG)) != 0 ||
        hdr->seqno != pcb->rcv_nxt)
        return;
    int i = 0;
    while (i < nowed && owed[i] != pcb)
        i++;
    if (i == nowed) {
        if (nowed == OWED_MAX)
            return;   /* lwIP acknowledges this one itself */
        owed[nowed++] = pcb;
    }
    tcp_clear_flags(pcb, TF_ACK_DELAY);
}

void byp_ack_flush(void)
{
    int n = nowed;
    nowed = 0;
    for (int i = 0; i < n; i++) {
        struct tcp_pcb *pcb = owed[i];
        if (pcb->state != ESTABLISHED && pcb->state != CLOSE_WAIT)
            continue;
        if (pcb->flags & TF_ACK_DELAY) {
            tcp_ack_now(pcb);
            tcp_output(pcb);
        } else {
            /* No ACK owed by lwIP's count: either it sent one since (for a FIN, a window
             * update, data), or it dropped the segment before counting it (its receiver
             * full), which would lose the ACK the flag held.  The flag goes back: the
             * delayed-ACK timer sends it (at worst a duplicate of one just sent). */
            tcp_set_flags(pcb, TF_ACK_DELAY);
        }
    }
}
