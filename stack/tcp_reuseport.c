/* SO_REUSEPORT listeners: several listening sockets on one address and port (nginx's
 * `listen ... reuseport`, one listener per worker; a threaded server's listener per thread),
 * each given its share of the new connections, as the kernel's reuseport group does.
 *
 * lwIP takes one listener per address and port, so the group shares it: the first socket
 * owns the lwIP listener (its callback argument), the others join a ring through rp_next,
 * and each completed handshake goes to the accept queue of one member, chosen by a hash of
 * the four-tuple (the kernel hashes the flow too: which member gets a given client is
 * arbitrary there as here, and the same for every connection of that four-tuple).  A
 * member that closes leaves the ring; the connections waiting in its queue are reset, as
 * the kernel's are (net.ipv4.tcp_migrate_req off, its default).  The kernel decided at
 * bind() who may share the port (both SO_REUSEPORT, the same user): the socket under ours
 * is bound first, so a socket that reaches listen() here may join.  Lock held throughout. */
#include <arpa/inet.h>

#include "lwip/priv/tcp_priv.h"

#include "byp_stack.h"
#include "tcp_sock.h"

/* The accelerated listener on exactly @addr:@port (network order) that @ts may join, or
 * NULL. */
static struct tsock *group_of(const struct tsock *ts, in_addr_t addr, in_port_t port)
{
    for (struct tcp_pcb_listen *l = tcp_listen_pcbs.listen_pcbs; l != NULL; l = l->next) {
        struct tsock *o = l->callback_arg;
        if (l->local_port == ntohs(port) && ip_2_ip4(&l->local_ip)->addr == addr && o != NULL &&
            o->state == T_LISTEN && o->pcb == (struct tcp_pcb *)l && o->reuseport &&
            o->v6 == ts->v6)
            return o;
    }
    return NULL;
}

struct tcp_pcb *byp_reuseport_join(struct tsock *ts, in_addr_t addr, in_port_t port)
{
    if (!ts->reuseport)
        return NULL;
    struct tsock *owner = group_of(ts, addr, port);
    if (owner == NULL)
        return NULL;
    ts->rp_next = owner->rp_next != NULL ? owner->rp_next : owner;
    owner->rp_next = ts;   /* published last: a ring at every step */
    return owner->pcb;
}

struct tsock *byp_reuseport_pick(struct tsock *owner, const struct tcp_pcb *pcb)
{
    if (owner->rp_next == NULL)
        return owner;
    unsigned n = 1;
    for (struct tsock *m = owner->rp_next; m != owner && n < 4096; m = m->rp_next)
        n++;
    uint32_t h = byp_flow_hash(ip_2_ip4(&pcb->remote_ip)->addr, pcb->remote_port, pcb->local_port);
    struct tsock *m = owner;
    for (unsigned k = h % n; k > 0; k--)
        m = m->rp_next;
    return m;
}

int byp_reuseport_leave(struct tsock *ts)
{
    if (ts->rp_next == NULL)
        return 0;
    struct tsock *prev = ts;
    for (unsigned n = 0; prev->rp_next != ts; n++) {
        if (n == 4096 || prev->rp_next == NULL) {
            /* Not a ring (not reached): let go of it, and close the listener only if this
             * socket is the one lwIP calls back. */
            ts->rp_next = NULL;
            return ts->pcb->callback_arg != ts;
        }
        prev = prev->rp_next;
    }
    struct tsock *heir = ts->rp_next;
    prev->rp_next = prev == heir ? NULL : heir;   /* of two, the other is alone now */
    ts->rp_next = NULL;
    struct tcp_pcb *lpcb = ts->pcb;
    if (lpcb->callback_arg == ts) {
        /* The owner goes: the listener, and the handshakes under way (lwIP gave them the
         * listener's argument at their SYN), pass to the next member. */
        tcp_arg(lpcb, heir);
        for (struct tcp_pcb *p = tcp_active_pcbs; p != NULL; p = p->next)
            if (p->state == SYN_RCVD && p->listener == (struct tcp_pcb_listen *)lpcb &&
                p->callback_arg == ts)
                tcp_arg(p, heir);
    }
    return 1;
}
