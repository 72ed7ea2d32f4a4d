/* Connections in TIME_WAIT, kept out of lwIP's list (tcp_tw_pcbs) in a hash table of their
 * own.  lwIP finds a segment's connection by walking its lists, and a SYN that matches no
 * connection walks every one in TIME_WAIT before it reaches the listeners.  A server that
 * closes first (HTTP/1.0, one request per connection) keeps one per connection for 60 s, up
 * to the pool's 32,768, and every new connection then paid a walk of them all: nginx served
 * 2,350 short connections a second against the kernel's 6,956, and fewer the longer it ran.
 *
 * lwIP still does all the work of TIME_WAIT: a segment for a connection here is lent back
 * to lwIP's list, alone, for its input (byp_tw_lend, from the IPv4 input hook), so lwIP's
 * answers and the guard's recycling for a new SYN stay as they were; whatever lwIP's list
 * holds after an input is taken back (byp_tw_take).  The table frees what lwIP's slow timer
 * would have freed, at 2 MSL, and the oldest first when the pool runs low, as lwIP's
 * tcp_alloc recycles the oldest TIME_WAIT connection before any other.
 *
 * Engine data (shared by the family); the lock held throughout. */
#include <string.h>

#include "lwip/memp.h"
#include "lwip/priv/memp_priv.h"
#include "lwip/priv/tcp_priv.h"

#include "fd_tcp.h"

#define TW_BUCKETS 65536u               /* a power of 2 */
/* Insertion order, for expiry and eviction: every connection in the table has a slot, and
 * a connection lent and taken back has two (the older one is skipped when it comes up). */
#define TW_ORDER (2u * MEMP_NUM_TCP_PCB)
/* No chain is longer than the pool: a longer one is a loop a dead lock holder left. */
#define TW_CHAIN_MAX MEMP_NUM_TCP_PCB

static struct tcp_pcb *buckets[TW_BUCKETS];
static struct tcp_pcb *order[TW_ORDER];
static unsigned order_head, order_n;
static unsigned tw_n;                   /* connections in the table */

static unsigned bucket(u32_t raddr, u16_t rport, u16_t lport)
{
    u32_t h = raddr * 0x9e3779b1u ^ ((u32_t)rport << 16 | lport) * 0x85ebca6bu;
    return (h ^ h >> 15) & (TW_BUCKETS - 1);
}

static unsigned bucket_of(const struct tcp_pcb *p)
{
    return bucket(ip4_addr_get_u32(ip_2_ip4(&p->remote_ip)), p->remote_port, p->local_port);
}

/* Takes @p out of the table: 1 if it was there. */
static int unlink_pcb(struct tcp_pcb *p)
{
    unsigned n = 0;
    for (struct tcp_pcb **l = &buckets[bucket_of(p)]; *l != NULL && n < TW_CHAIN_MAX;
         l = &(*l)->next, n++)
        if (*l == p) {
            *l = p->next;
            p->next = NULL;
            tw_n--;
            return 1;
        }
    return 0;
}

/* The oldest slot's connection, if it is still in the table (else the slot is dropped). */
static struct tcp_pcb *oldest(void)
{
    while (order_n > 0) {
        struct tcp_pcb *p = order[order_head];
        if (p->state == TIME_WAIT && unlink_pcb(p))
            return p;   /* taken out: the caller frees it or puts it back */
        order_head = (order_head + 1) % TW_ORDER;
        order_n--;
    }
    return NULL;
}

/* Frees @p (out of every list), as lwIP's slow timer frees a TIME_WAIT connection: without
 * a word to anyone (byp_tsock_tw_release and the zombies expect that). */
static void release(struct tcp_pcb *p)
{
    tcp_pcb_purge(p);
    tcp_free(p);
}

/* Into the table, once (a repair may have put it back already): 1 if added. */
static int link_pcb(struct tcp_pcb *p)
{
    unsigned b = bucket_of(p), n = 0;
    for (struct tcp_pcb *q = buckets[b]; q != NULL && n < TW_CHAIN_MAX; q = q->next, n++)
        if (q == p)
            return 0;
    p->next = buckets[b];
    buckets[b] = p;
    tw_n++;
    return 1;
}

/* Frees the oldest connection: 0 when there is none. */
static int evict_oldest(void)
{
    struct tcp_pcb *p = oldest();
    if (p == NULL)
        return 0;
    order_head = (order_head + 1) % TW_ORDER;
    order_n--;
    release(p);
    return 1;
}

static void insert(struct tcp_pcb *p)
{
    if (order_n == TW_ORDER)
        evict_oldest();   /* frees the oldest, or drops stale slots until there is room */
    if (!link_pcb(p))
        return;
    order[(order_head + order_n) % TW_ORDER] = p;
    order_n++;
}

void byp_tw_take(void)
{
    while (tcp_tw_pcbs != NULL) {
        struct tcp_pcb *p = tcp_tw_pcbs;
        tcp_tw_pcbs = p->next;
        insert(p);
    }
}

int byp_tw_lend(uint32_t src, uint16_t sport, uint32_t dst, uint16_t dport)
{
    if (tw_n == 0)
        return 0;
    sport = lwip_ntohs(sport);
    dport = lwip_ntohs(dport);
    unsigned n = 0;
    for (struct tcp_pcb **l = &buckets[bucket(src, sport, dport)]; *l != NULL &&
         n < TW_CHAIN_MAX; l = &(*l)->next, n++) {
        struct tcp_pcb *p = *l;
        if (p->remote_port == sport && p->local_port == dport &&
            ip4_addr_get_u32(ip_2_ip4(&p->remote_ip)) == src &&
            ip4_addr_get_u32(ip_2_ip4(&p->local_ip)) == dst) {
            *l = p->next;
            tw_n--;
            p->next = tcp_tw_pcbs;
            tcp_tw_pcbs = p;
            return 1;
        }
    }
    return 0;
}

int byp_tcp4_segment(const struct pbuf *p, struct byp_tcp4 *t)
{
    const uint8_t *ip = p->payload;
    size_t hl = (size_t)(ip[0] & 0x0f) * 4;
    if (p->len < 20 || hl < 20 || p->len < hl + 14 || ip[9] != IP_PROTO_TCP)
        return 0;
    memcpy(&t->src, ip + 12, 4);
    memcpy(&t->dst, ip + 16, 4);
    memcpy(&t->sport, ip + hl, 2);
    memcpy(&t->dport, ip + hl + 2, 2);
    t->flags = ip[hl + 13];
    return 1;
}

void byp_tw_segment(const struct pbuf *p)
{
    struct byp_tcp4 t;
    if (tw_n == 0 || !byp_tcp4_segment(p, &t))
        return;
    if ((t.flags & (TCP_SYN | TCP_ACK)) == TCP_SYN)
        byp_tw_reserve(4);   /* a PCB for it, if it opens a connection */
    byp_tw_lend(t.src, t.sport, t.dst, t.dport);
}

int byp_tw_count(void)
{
    return (int)tw_n;
}

/* At least @want PCBs free in the pool (a walk of @want entries of its free list). */
static int pool_has(int want)
{
    const struct memp *m = *memp_pools[MEMP_TCP_PCB]->tab;
    for (int i = 0; i < want; i++, m = m->next)
        if (m == NULL)
            return 0;
    return 1;
}

void byp_tw_reserve(int want)
{
    while (tw_n > 0 && !pool_has(want) && evict_oldest())
        ;
}

void byp_tw_release_all(void)
{
    while (evict_oldest())
        ;
    order_head = order_n = 0;
}

void byp_tw_expire(void)
{
    struct tcp_pcb *p;
    while ((p = oldest()) != NULL) {
        if ((u32_t)(tcp_ticks - p->tmr) <= 2 * TCP_MSL / TCP_SLOW_INTERVAL) {
            /* Not due, nor most likely anything after it (a FIN again restarts a timer:
             * those behind such a one wait for it). */
            link_pcb(p);
            return;
        }
        order_head = (order_head + 1) % TW_ORDER;
        order_n--;
        release(p);
    }
}

uint32_t byp_tw_next_tick(void)
{
    for (unsigned i = 0; i < order_n; i++) {
        const struct tcp_pcb *p = order[(order_head + i) % TW_ORDER];
        if (p->state == TIME_WAIT)
            return p->tmr + 2 * TCP_MSL / TCP_SLOW_INTERVAL + 1;
    }
    return tcp_ticks + 0x7fffffff;
}

void byp_tw_repair(void)
{
    /* After a lock holder died, chains may be half updated: they are made again from the
     * order slots (a plain array), each connection still in TIME_WAIT once. */
    memset(buckets, 0, sizeof buckets);
    tw_n = 0;
    if (order_head >= TW_ORDER || order_n > TW_ORDER)
        order_head = order_n = 0;   /* their connections are lost to the pool */
    for (unsigned i = 0; i < order_n; i++) {
        struct tcp_pcb *p = order[(order_head + i) % TW_ORDER];
        if (p == NULL || p->state != TIME_WAIT)
            continue;
        int lent = 0;   /* in lwIP's list (checked just before): it comes back with take */
        for (struct tcp_pcb *q = tcp_tw_pcbs; q != NULL && !lent; q = q->next)
            lent = q == p;
        if (!lent)
            link_pcb(p);
    }
}
