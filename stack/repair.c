/* The repair after a lock holder died (see repair.h): lwIP's pools, PCB lists, segment
 * queues and timers here; the socket objects' queues in tcp_close.c and udp_sock.c.
 *
 * Every walk is bounded by the size of the pool its elements come from and checks that
 * each pointer is an element of that pool; a list that fails is cut at the last good
 * element (what hung after the cut is leaked, never reused twice).  A connection whose
 * state the dead holder may have been changing (lwIP's tcp_input_pcb, the socket its call
 * had pinned) or whose queues fail the check is reset: its peer gets an RST and the
 * program ECONNRESET, rather than a stream with a hole or a repeat in it. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "lwip/memp.h"
#include "lwip/priv/memp_priv.h"
#include "lwip/priv/tcp_priv.h"
#include "lwip/timeouts.h"

#include "byp_stack.h"
#include "log.h"
#include "repair.h"
#include "fd_tcp.h"
#include "tcp_sock.h"

struct byp_holder byp_holder;

/* Whether @e is the start of an element of pool @t. */
static int elem_of(memp_t t, const void *e)
{
    const struct memp_desc *d = memp_pools[t];
    uintptr_t base = (uintptr_t)LWIP_MEM_ALIGN(d->base);
    uintptr_t stride = (uintptr_t)MEMP_SIZE + d->size;
    uintptr_t a = (uintptr_t)e;
    return a >= base && a < base + (uintptr_t)d->num * stride && (a - base) % stride == 0;
}

/* Whether @p is what memp_malloc(@t) returns for one of its elements. */
static int obj_of(memp_t t, const void *p)
{
    return p != NULL && elem_of(t, (const char *)p - MEMP_SIZE);
}

/* The free list of pool @t: cut at the first element that is not one of the pool's (or
 * past the pool's size: a cycle).  1 when cut. */
static int check_free_list(memp_t t)
{
    const struct memp_desc *d = memp_pools[t];
    struct memp **link = d->tab;
    unsigned n = 0;
    for (struct memp *e = *link; e != NULL; e = *link) {
        if (n++ >= d->num || !elem_of(t, e)) {
            *link = NULL;
            return 1;
        }
        link = &e->next;
    }
    return 0;
}

/* A PCB list: cut at the first PCB that is not an element of pool @t.  1 when cut. */
static int check_pcb_list(struct tcp_pcb **head, memp_t t)
{
    struct tcp_pcb **link = head;
    unsigned n = 0, max = memp_pools[t]->num;
    for (struct tcp_pcb *p = *link; p != NULL; p = *link) {
        if (n++ >= max || !obj_of(t, p)) {
            *link = NULL;
            return 1;
        }
        link = &p->next;
    }
    return 0;
}

/* Whether a segment queue is whole: segments of the pool, each with a pbuf still held. */
static int segs_ok(const struct tcp_seg *s)
{
    unsigned n = 0;
    for (; s != NULL; s = s->next)
        if (n++ >= MEMP_NUM_TCP_SEG || !obj_of(MEMP_TCP_SEG, s) || s->p == NULL || s->p->ref == 0)
            return 0;
    return 1;
}

static int pcb_queues_ok(const struct tcp_pcb *p)
{
    return segs_ok(p->unsent) && segs_ok(p->unacked)
#if TCP_QUEUE_OOSEQ
           && segs_ok(p->ooseq)
#endif
        ;
}

/* Reset connection @p: an RST to the peer, ECONNRESET to its socket (through its error
 * callback).  Queues that failed the check are let go of, not freed. */
static void reset_pcb(struct tcp_pcb *p)
{
    if (!pcb_queues_ok(p)) {
        p->unsent = p->unacked = NULL;
#if TCP_QUEUE_OOSEQ
        p->ooseq = NULL;
#endif
        p->refused_data = NULL;
    }
    byp_tcp_abort_untrusted(p);
}

int byp_repair_chain_has(const struct pbuf *chain, const struct pbuf *target)
{
    unsigned n = 0;
    for (const struct pbuf *q = chain; q != NULL && n++ < (1u << 20); q = q->next)
        if (q == target)
            return 1;
    return 0;
}

/* Whether a connection's out-of-order or refused data holds @target (lists repaired). */
static int pcbs_hold(const struct pbuf *target)
{
    unsigned n = 0;
    for (const struct tcp_pcb *p = tcp_active_pcbs; p != NULL && n++ < MEMP_NUM_TCP_PCB; p = p->next) {
        if (byp_repair_chain_has(p->refused_data, target))
            return 1;
#if TCP_QUEUE_OOSEQ
        unsigned k = 0;
        for (const struct tcp_seg *s = p->ooseq; s != NULL && k++ < MEMP_NUM_TCP_SEG; s = s->next)
            if (byp_repair_chain_has(s->p, target))
                return 1;
#endif
    }
    return 0;
}

/* The frame the dead holder was handing to lwIP: lwIP's input keeps it in its own
 * variables until it queues or frees it, and the next input forgets them.  So when no
 * queue holds it and it was not freed, it is freed here (it leaked before: about one
 * frame per takeover in test_dead_holder.py). */
static int free_given_frame(void)
{
    const struct pbuf *given = byp_netif_repair_given();
    int free_it = given != NULL && !pcbs_hold(given) && !byp_tcp_holds_pbuf(given) &&
                  !byp_udp_holds_pbuf(given);
    byp_netif_repair_given_end(free_it);
    return free_it;
}

int byp_repair_pcb_active(const void *pcb)
{
    unsigned n = 0;
    for (const struct tcp_pcb *p = tcp_active_pcbs; p != NULL && n++ < MEMP_NUM_TCP_PCB; p = p->next)
        if (p == pcb)
            return 1;
    return 0;
}

/* lwIP's TCP timer is not one of its cyclic timers: it runs while there are connections,
 * through a handler of timeouts.c's own (tcpip_tcp_timer, static) that re-arms itself and
 * keeps a flag that it is armed.  Its address is learnt from the list while it is armed
 * (the only timeout whose handler is not lwip_cyclic_timer). */
static sys_timeout_handler tcp_timer_fn;

void byp_repair_learn(void)
{
    if (tcp_timer_fn != NULL)
        return;
    for (struct sys_timeo *t = *sys_timeouts_get_next_timeout(); t != NULL; t = t->next)
        if (t->h != lwip_cyclic_timer && t->arg == NULL) {
            tcp_timer_fn = t->h;
            return;
        }
}

/* lwIP's timers (TCP, ARP, IP reassembly, IGMP): the dead holder may have taken one off
 * the list to run it and died before it put it back (its handler re-arms it); without it
 * the stack's TCP timers would stop for good (lwIP believes it armed).  The list is
 * checked, then each missing timer armed again.  Returns the timers re-armed, -1 when the
 * list was cut. */
static int check_timers(void)
{
    struct sys_timeo **link = sys_timeouts_get_next_timeout();
    unsigned n = 0;
    int cut = 0;
    for (struct sys_timeo *t = *link; t != NULL; t = *link) {
        if (n++ >= memp_pools[MEMP_SYS_TIMEOUT]->num || !obj_of(MEMP_SYS_TIMEOUT, t)) {
            *link = NULL;
            cut = 1;
            break;
        }
        link = &t->next;
    }
    int armed = 0, tcp = 0;
    for (struct sys_timeo *t = *sys_timeouts_get_next_timeout(); t != NULL; t = t->next)
        tcp |= tcp_timer_fn != NULL && t->h == tcp_timer_fn;
    if (!tcp && tcp_timer_fn != NULL && (tcp_active_pcbs != NULL || tcp_tw_pcbs != NULL)) {
        sys_timeout(TCP_TMR_INTERVAL, tcp_timer_fn, NULL);
        armed++;
    }
    /* Index 0 is tcp_tmr, which runs through the TCP timer above, not as a cyclic one. */
    for (int i = LWIP_TCP ? 1 : 0; i < lwip_num_cyclic_timers; i++) {
        const void *arg = &lwip_cyclic_timers[i];
        int found = 0;
        for (struct sys_timeo *t = *sys_timeouts_get_next_timeout(); t != NULL && !found; t = t->next)
            found = t->h == lwip_cyclic_timer && t->arg == arg;
        if (!found) {
            sys_timeout(lwip_cyclic_timers[i].interval_ms, lwip_cyclic_timer, (void *)arg);
            armed++;
        }
    }
    return cut ? -1 : armed;
}

void byp_repair_dead_holder(void)
{
    struct byp_holder dead = byp_holder;
    int cut = 0, reset = 0;
    byp_netif_repair();
    /* The pools first: everything below may free into them. */
    for (int t = 0; t < MEMP_MAX; t++)
        cut += check_free_list((memp_t)t);
    cut += check_pcb_list(&tcp_bound_pcbs, MEMP_TCP_PCB);
    cut += check_pcb_list(&tcp_listen_pcbs.pcbs, MEMP_TCP_PCB_LISTEN);
    cut += check_pcb_list(&tcp_active_pcbs, MEMP_TCP_PCB);
    cut += check_pcb_list(&tcp_tw_pcbs, MEMP_TCP_PCB);
    byp_tw_repair();
    int timers = check_timers();
    if (timers < 0)
        cut++;
    /* The connection lwIP's input was in the middle of: its sequence numbers, queues and
     * socket may disagree (a segment counted as received but never queued, say). */
    struct tcp_pcb *input = tcp_input_pcb;
    tcp_input_pcb = NULL;
    /* Socket objects: every queue checked (and fixed where it can be recomputed), the dead
     * call's own socket reset. */
    reset += byp_tcp_repair_socks(dead.tsock);
    reset += byp_udp_repair_socks(dead.usock);
    if (input != NULL && byp_repair_pcb_active(input)) {
        reset_pcb(input);
        reset++;
    }
    /* Connections with broken queues that no socket holds any more (closing ones). */
    for (struct tcp_pcb *p = tcp_active_pcbs; p != NULL;) {
        struct tcp_pcb *next = p->next;
        if (!pcb_queues_ok(p)) {
            reset_pcb(p);
            reset++;
        }
        p = next;
    }
    int given = free_given_frame();
    byp_holder = (struct byp_holder){0};
    /* No pid: it died between taking the lock and saying so, or between saying it was done
     * and releasing it. */
    char who[40] = "a process";
    if (dead.pid != 0)
        snprintf(who, sizeof who, "process %d", (int)dead.pid);
    byp_warn("repaired the stack after %s died holding its lock%s: %d connection(s) "
             "reset, %d list(s) cut, %d timer(s) re-armed%s", who,
             dead.in_timers ? " (in lwIP's timers)" : "", reset, cut, timers < 0 ? 0 : timers,
             given ? ", the frame it was receiving freed" : "");
}

void byp_repair_reset_pcb(void *pcb)
{
    reset_pcb(pcb);
}
