/* When the stack's timers next matter, so that the progress thread of an idle process
 * sleeps until then instead of waking for every tick of lwIP's 10 ms TCP timer.
 *
 * lwIP keeps its TCP timer running while any connection exists, and counts time in its
 * ticks (tcp_ticks, one per slow timer run): a connection's keepalive, TIME_WAIT and
 * FIN_WAIT_2 deadlines are "so many ticks since its last segment".  Here a connection is
 * quiet when nothing in it waits for a tick (no data unsent or unacknowledged, no delayed
 * ACK, no persist or out-of-order queue, no pending close); quiet connections only have
 * those deadlines, and the progress thread sleeps until the nearest one.  The tick count
 * is kept in step with the clock (byp_tcp_ticks_sync) so that those deadlines stay in real
 * time however rarely the timer ran meanwhile. */
#include <stdint.h>

#include "lwip/igmp.h"
#include "lwip/priv/tcp_priv.h"
#include "lwip/sys.h"
#include "lwip/timeouts.h"

#include "byp_stack.h"
#include "engine_int.h"
#include "fd_tcp.h"
#include "tcp_sock.h"

/* ms since the clock's start at which tcp_ticks was 0, on the clock of byp_tcp_ticks_sync. */
static int64_t ticks_base_ms;
static int ticks_based;

void byp_tcp_ticks_sync(int64_t now_ms)
{
    if (!ticks_based) {
        ticks_base_ms = now_ms - (int64_t)tcp_ticks * TCP_SLOW_INTERVAL;
        ticks_based = 1;
        return;
    }
    u32_t want = (u32_t)((now_ms - ticks_base_ms) / TCP_SLOW_INTERVAL);
    /* One short: the slow timer's next run adds the last one, as it would have. */
    if ((int32_t)(want - tcp_ticks) > 1)
        tcp_ticks = want - 1;
}

/* Nothing in @p waits for a timer tick (lwIP's tcp_fasttmr and tcp_slowtmr would do
 * nothing to it but count). */
static int quiet(const struct tcp_pcb *p)
{
    if (p->state != ESTABLISHED && p->state != CLOSE_WAIT && p->state != FIN_WAIT_2)
        return 0;   /* handshakes and closes retransmit */
    if (p->unsent != NULL || p->unacked != NULL || p->rtime >= 0 || p->persist_backoff != 0 ||
        p->refused_data != NULL || p->ooseq != NULL)
        return 0;
    if (p->flags & (TF_ACK_DELAY | TF_ACK_NOW | TF_CLOSEPEND | TF_NAGLEMEMERR))
        return 0;
    return !byp_tsock_wants_poll(p);
}

/* Milliseconds from @now_ms until tick @tick of tcp_ticks. */
static uint32_t until_tick(u32_t tick, int64_t now_ms)
{
    int64_t at = ticks_base_ms + (int64_t)tick * TCP_SLOW_INTERVAL;
    int32_t left = (int32_t)(tick - tcp_ticks);
    if (left <= 1 || at <= now_ms)
        return TCP_TMR_INTERVAL;
    return (uint32_t)(at - now_ms);
}

static uint32_t min_u32(uint32_t a, uint32_t b)
{
    return a < b ? a : b;
}

/* A walk that found every connection quiet costs a cache miss or two per connection
 * (3 ms for 15,000 of them, under the stack lock).  Made at every wake-up of the progress
 * thread, with frames arriving every millisecond, it took the CPU from the application
 * (test_capacity.py::test_15000_concurrent_connections: the echo server answered nothing
 * for 10 s).  So such walks are spaced by WALK_SPACING times what the last one cost;
 * between them the answer is that of a busy connection (lwIP's next tick), which is never
 * late. */
#define WALK_SPACING 32
static int64_t next_walk_ns;

static void space_walks(int64_t start_ns)
{
    int64_t end_ns = byp_now_ns();
    next_walk_ns = end_ns + WALK_SPACING * (end_ns - start_ns);
}

/* The wait while a connection is busy: lwIP's next timer, at most its TCP tick. */
static uint32_t busy(void)
{
    return min_u32(sys_timeouts_sleeptime(), TCP_TMR_INTERVAL);
}

/* The milliseconds until TCP's timer next has work: TCP_TMR_INTERVAL (or less) while any
 * connection is busy, else until the nearest keepalive, FIN_WAIT_2 or TIME_WAIT deadline;
 * @cap when none. */
static uint32_t tcp_wait(int64_t now_ms, uint32_t cap)
{
    int64_t start_ns = byp_now_ns();
    if (start_ns < next_walk_ns)
        return busy();
    uint32_t wait = cap;
    unsigned zombies_seen = 0, walked = 0;
    for (const struct tcp_pcb *p = tcp_active_pcbs; p != NULL; p = p->next, walked++) {
        if (!quiet(p)) {
            if (walked > 256)   /* a busy one far down the list: that walk was long too */
                space_walks(start_ns);
            return busy();
        }
        zombies_seen += byp_tcp_is_zombie(p);
        /* A connection held back by TCP_DEFER_ACCEPT is handed out at its deadline (its
         * poll callback, within 4 slow ticks of it). */
        uint32_t defer = byp_tsock_defer_wait(p, sys_now());
        if (defer != UINT32_MAX)
            wait = min_u32(wait, defer > TCP_TMR_INTERVAL ? defer : TCP_TMR_INTERVAL);
        if (ip_get_option(p, SOF_KEEPALIVE) && p->state != FIN_WAIT_2)
            wait = min_u32(wait, until_tick(p->tmr + (p->keep_idle + p->keep_cnt_sent *
                                            p->keep_intvl) / TCP_SLOW_INTERVAL + 1, now_ms));
        if (p->state == FIN_WAIT_2 && (p->flags & TF_RXCLOSED))
            wait = min_u32(wait, until_tick(p->tmr + TCP_FIN_WAIT_TIMEOUT / TCP_SLOW_INTERVAL + 1,
                                            now_ms));
    }
    for (const struct tcp_pcb *p = tcp_tw_pcbs; p != NULL; p = p->next)   /* lent */
        wait = min_u32(wait, until_tick(p->tmr + 2 * TCP_MSL / TCP_SLOW_INTERVAL + 1, now_ms));
    if (byp_tw_count() > 0)
        wait = min_u32(wait, until_tick(byp_tw_next_tick(), now_ms));
    /* A closed connection that left lwIP's active list (TIME_WAIT, or freed) is released
     * by byp_tcp_reap, which runs at most every 50 ms. */
    if (byp_tcp_zombie_count() != zombies_seen)
        wait = min_u32(wait, 50);
    space_walks(start_ns);
    return wait;
}

uint32_t byp_timers_wait_ms(int64_t now_ms, uint32_t cap)
{
    byp_tcp_ticks_sync(now_ms);
    if (byp_neigh_pending)
        return TCP_TMR_INTERVAL;
    uint32_t wait = tcp_wait(now_ms, cap);
#if LWIP_IGMP
    /* A membership report lwIP delays (igmp_tmr counts it down every 100 ms). */
    for (struct igmp_group *g = netif_igmp_data(&byp_netif); g != NULL; g = g->next)
        if (g->timer > 0)
            wait = min_u32(wait, IGMP_TMR_INTERVAL);
#endif
    return wait;
}
