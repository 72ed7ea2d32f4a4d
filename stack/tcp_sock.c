/* The accelerated TCP socket object over lwIP's raw API: the object, lwIP's callbacks on
 * it, and waiting on it.  Taking over a kernel socket (listen, connect) and accept are in
 * tcp_open.c; close, with the connections lwIP still finishes after the program let go of
 * them, and the references across the family are in tcp_close.c.
 *
 * Every accelerated socket is still a kernel socket under the same fd number:
 *  - a listener's kernel socket listens too (the second path: connections arriving through
 *    loopback or another interface), and accept() returns either kind;
 *  - an actively connected socket's kernel socket is bound to the same local port (the
 *    port reservation) and kept, duplicated, until lwIP has finished with the connection;
 *  - an accepted connection's fd is a fresh unconnected kernel socket holding the number. */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "lwip/priv/tcp_priv.h"
#include "lwip/sys.h"

#include "byp_stack.h"
#include "fd_tcp.h"
#include "stats.h"
#include "shm.h"
#include "tcp_sock.h"
#include "fd_epoll.h"
#include "repair.h"

void byp_tsock_changed(struct tsock *ts)
{
    ts->gen++;
    /* EPOLLEXCLUSIVE: one waiter */
    byp_wake_socket(ts, &ts->watch, ts->refs.groups, ts->exclusive && ts->state == T_LISTEN);
}

struct tsock *byp_tsock_new(void)
{
    struct tsock *ts = byp_shm_calloc(1, sizeof *ts);
    if (ts != NULL) {
        ts->rcvtimeo_ms = ts->sndtimeo_ms = -1;
        ts->rcvlowat = 1;
    }
    return ts;
}

/* Each pbuf leaves the queue before it is freed, so that a process killed half-way leaves
 * a queue whose every pbuf is still held (repair.h). */
void byp_tsock_rx_drop(struct tsock *ts)
{
    struct pbuf *p;
    while ((p = ts->rx_head) != NULL) {
        ts->rx_head = p->next;
        if (ts->rx_head == NULL)
            ts->rx_tail = NULL;
        ts->rx_bytes -= p->len - ts->rx_off;
        ts->rx_off = 0;
        p->next = NULL;
        pbuf_free(p);
    }
    ts->rx_head = ts->rx_tail = NULL;
    ts->rx_off = 0;
    ts->rx_bytes = 0;
}

/* Release the steering entry and the port a socket holds. */
void byp_tsock_put_flow(struct tsock *ts)
{
    if (ts->has_flow) {
        byp_flow_unref(IPPROTO_TCP, ts->flow_addr, ts->flow_port);
        ts->has_flow = 0;
    }
}

/* ---- lwIP callbacks (lock held) ---- */

static err_t on_recv(void *arg, struct tcp_pcb *pcb, struct pbuf *p, err_t err)
{
    struct tsock *ts = arg;
    (void)pcb;
    (void)err;
    if (p == NULL) {
        ts->rx_fin = 1;
    } else {
        /* Queue pbuf by pbuf: each is freed on its own once read.  Linked first, then the
         * tail and the count, which a repair can recompute from the chain (repair.h). */
        struct pbuf *q = p;
        while (q->next != NULL)
            q = q->next;
        if (ts->rx_tail != NULL)
            ts->rx_tail->next = p;
        else
            ts->rx_head = p;
        ts->rx_tail = q;
        ts->rx_bytes += p->tot_len;
        byp_stats_sock_rx(ts, p->tot_len);
    }
    if (ts->defer_l != NULL)
        byp_tcp_defer_end(ts);   /* its first data (or FIN): accept() may have it now */
    byp_tsock_changed(ts);
    return ERR_OK;
}

static err_t on_sent(void *arg, struct tcp_pcb *pcb, u16_t len)
{
    struct tsock *ts = arg;
    (void)len;
    u32_t before = ts->sndbuf;
    ts->ut_armed = 0;   /* acknowledged: TCP_USER_TIMEOUT counts again from here */
    ts->sndbuf = tcp_sndbuf(pcb);
    ts->drained = pcb->unsent == NULL && pcb->unacked == NULL;
    if (before < WRITABLE_MIN && ts->sndbuf >= WRITABLE_MIN)
        byp_tsock_changed(ts);
    return ERR_OK;
}

/* The errno a connection aborted by byp_tcp_unreachable gets (0: the usual mapping). */
static int abort_errno;

/* Every ~80 ms on an open connection: a send that failed for want of memory (tcp_write's
 * ERR_MEM, nothing in flight so no ACK will come) marked it unwritable; once lwIP has room
 * again it is writable again, so a connection slowed by a memory shortage recovers when
 * the load falls. */
/* TCP_USER_TIMEOUT: data (or a zero-window probe) unacknowledged for that long ends the
 * connection with ETIMEDOUT and no reset, as the kernel's tcp_write_timeout does.  Checked
 * at each poll (80 ms).  1 when @pcb was let go. */
static int user_timeout(struct tsock *ts, struct tcp_pcb *pcb)
{
    if (ts->user_timeout_ms == 0 || (pcb->unacked == NULL && pcb->persist_backoff == 0)) {
        ts->ut_armed = 0;
        return 0;
    }
    u32_t now = sys_now();
    if (!ts->ut_armed) {
        ts->ut_armed = 1;
        ts->ut_since_ms = now;
        return 0;
    }
    if ((u32_t)(now - ts->ut_since_ms) < ts->user_timeout_ms)
        return 0;
    tcp_abandon(pcb, 0);   /* on_err: ERR_ABRT, ETIMEDOUT */
    return 1;
}

static err_t on_poll(void *arg, struct tcp_pcb *pcb)
{
    struct tsock *ts = arg;
    if (ts != NULL && ts->sndbuf < WRITABLE_MIN && tcp_sndbuf(pcb) >= WRITABLE_MIN) {
        ts->sndbuf = tcp_sndbuf(pcb);
        byp_tsock_changed(ts);
    }
    if (ts != NULL && user_timeout(ts, pcb))
        return ERR_ABRT;
    if (ts != NULL && ts->defer_l != NULL && (int32_t)(sys_now() - ts->defer_until) >= 0)
        byp_tcp_defer_end(ts);   /* TCP_DEFER_ACCEPT's wait is over: accepted without data */
    return ERR_OK;
}

int byp_tsock_wants_poll(const struct tcp_pcb *pcb)
{
    const struct tsock *ts = pcb->callback_arg;
    return pcb->poll == on_poll && ts != NULL && ts->sndbuf < WRITABLE_MIN;
}

uint32_t byp_tsock_defer_wait(const struct tcp_pcb *pcb, uint32_t now)
{
    const struct tsock *ts = pcb->poll == on_poll ? pcb->callback_arg : NULL;
    if (ts == NULL || ts->defer_l == NULL)
        return UINT32_MAX;
    int32_t left = (int32_t)(ts->defer_until - now);
    return left > 0 ? (uint32_t)left : 0;
}

static void on_err(void *arg, err_t err)
{
    struct tsock *ts = arg;
    int e;
    if (ts->defer_l != NULL) {
        /* Held back by TCP_DEFER_ACCEPT and never handed out: gone without a trace, as the
         * kernel's request that had not become a socket yet. */
        byp_tcp_defer_drop(ts);
        return;
    }
    if (err == ERR_CLSD) {
        /* Closed in order after we had shut down writing and the peer's FIN came (lwIP frees
         * the pcb): end of file, not an error. */
        ts->pcb = NULL;
        ts->state = T_CLOSED;
        ts->rx_fin = 1;
        ts->sndbuf = 0;
        byp_tsock_changed(ts);
        return;
    }
    if (abort_errno != 0)
        e = abort_errno;
    else if (ts->state == T_CONNECTING)
        e = err == ERR_RST ? ECONNREFUSED : ETIMEDOUT;
    else if (err == ERR_RST)
        e = ts->rx_fin ? EPIPE : ECONNRESET;   /* a reset after the peer's FIN: the kernel's
                                                * CLOSE_WAIT answers EPIPE (tcp_reset) */
    else
        e = err == ERR_ABRT ? ETIMEDOUT : ECONNABORTED;
    ts->pcb = NULL;
    ts->state = T_CLOSED;
    ts->err = ts->so_error = e;
    ts->sndbuf = 0;
    byp_tsock_changed(ts);
}

/* lwIP's error callback on a connection in TIME_WAIT that an open socket still holds: only
 * a mark (byp_tsock_tw_held), as lwIP never calls it there. */
static void tw_held_err(void *arg, err_t err)
{
    (void)arg;
    (void)err;
}

/* The socket lets go of its connection as it enters TIME_WAIT: lwIP frees a TIME_WAIT
 * without a word (its timer, or a new connection on the four-tuple), and the memory is the
 * next connection's; a socket still pointing at it closed that connection when the program
 * closed it.  The socket is at end of file, as the kernel's is (its socket is closed there
 * and a TIME_WAIT bucket takes over). */
void byp_tcp_time_wait(struct tcp_pcb *pcb)
{
    if (pcb->state != TIME_WAIT || pcb->errf != on_err || pcb->callback_arg == NULL)
        return;
    struct tsock *ts = pcb->callback_arg;
    tcp_recv(pcb, NULL);
    tcp_sent(pcb, NULL);
    tcp_poll(pcb, NULL, 0);
    tcp_err(pcb, tw_held_err);
    ts->tw_pcb = pcb;
    ts->pcb = NULL;
    ts->state = T_CLOSED;
    ts->rx_fin = 1;
    ts->sndbuf = 0;
    byp_tsock_changed(ts);
}

int byp_tsock_tw_held(const struct tcp_pcb *pcb)
{
    return pcb->errf == tw_held_err;
}

void byp_tsock_tw_release(struct tsock *ts)
{
    struct tcp_pcb *p = ts->tw_pcb;
    ts->tw_pcb = NULL;
    /* Freed by now, perhaps another connection's (tcp_alloc zeroes it): ours only while it
     * still names this socket. */
    if (p != NULL && p->callback_arg == ts && p->errf == tw_held_err) {
        tcp_arg(p, NULL);
        tcp_err(p, NULL);
    }
}

void byp_tcp_abort_untrusted(struct tcp_pcb *pcb)
{
    abort_errno = ECONNRESET;
    tcp_abort(pcb);
    abort_errno = 0;
}

void byp_tcp_unreachable(in_addr_t hop)
{
    struct tcp_pcb *p = tcp_active_pcbs;
    while (p != NULL) {
        in_addr_t h;
        if (p->state != SYN_SENT || p->errf != on_err ||
            byp_nexthop(ip_2_ip4(&p->remote_ip)->addr, &h) != 0 || h != hop) {
            p = p->next;
            continue;
        }
        abort_errno = EHOSTUNREACH;
        tcp_abort(p);
        abort_errno = 0;
        p = tcp_active_pcbs;   /* the list changed */
    }
}

void byp_tsock_attach(struct tsock *ts, struct tcp_pcb *pcb)
{
    ts->pcb = pcb;
    tcp_arg(pcb, ts);
    tcp_recv(pcb, on_recv);
    tcp_sent(pcb, on_sent);
    tcp_poll(pcb, on_poll, 4);
    tcp_err(pcb, on_err);
    if (ts->nodelay)
        tcp_nagle_disable(pcb);
    if (ts->keepalive)
        ip_set_option(pcb, SOF_KEEPALIVE);
    byp_tcp_keep_apply(ts);
}

/* ---- waiting ---- */

int byp_tsock_readable(void *arg)
{
    struct tsock *ts = arg;
    return ts->rx_bytes > 0 || ts->rx_fin || ts->err || ts->state == T_CLOSED || ts->shut_rd;
}

int byp_tsock_writable(void *arg)
{
    struct tsock *ts = arg;
    return ts->sndbuf >= WRITABLE_MIN || ts->err || ts->pcb == NULL || ts->state != T_CONNECTED;
}

int byp_tsock_connected(void *arg)
{
    return ((struct tsock *)arg)->state != T_CONNECTING;
}

/* byp_wait for a socket call: a handler with SA_RESTART resumes the wait unless a timeout
 * is set on the socket (signal(7)); 1 ready, 2 kernel fd ready, 0 timeout, -EINTR. */
int byp_tsock_wait_restarting(byp_wait_cond_t cond, struct tsock *ts, int timeout_ms,
                              struct pollfd *pfd, nfds_t n)
{
    int r;
    do
        r = byp_wait_on_fds(cond, ts, timeout_ms, &ts->watch.sleep, pfd, n);
    while (r == -ERESTART && timeout_ms < 0);
    return r < 0 ? -EINTR : r;
}

/* Drop the lock and wait; 1 ready, 0 timeout, -EINTR. */
int byp_tsock_wait(byp_wait_cond_t cond, struct tsock *ts, int timeout_ms, struct pollfd *pfd,
                         nfds_t n)
{
    byp_stack_unlock();
    int r = byp_tsock_wait_restarting(cond, ts, timeout_ms, pfd, n);
    byp_stack_lock();
    byp_holder.tsock = ts;   /* the call works on it again (repair.h) */
    return r;
}
