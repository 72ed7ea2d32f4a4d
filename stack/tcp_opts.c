/* Socket options of the accelerated TCP kind: what lwIP honours is applied to the
 * connection (TCP_NODELAY, TCP_CORK, keepalive, TCP_USER_TIMEOUT, TCP_QUICKACK, timeouts,
 * SO_LINGER) and mirrored onto the kernel socket, which answers what the stack does not
 * track; what was set before the stack took the socket over is read back from it
 * (byp_tcp_opts_inherit); TCP_DEFER_ACCEPT holds a listener's new connections back (tcp_open.c)
 * and TCP_FASTOPEN is kept by the kernel socket; TCP_INFO and TCP_CONGESTION come from lwIP's
 * state; other
 * IPPROTO_TCP options fail with ENOPROTOOPT, never a silent lie. */
#include <string.h>

#include <netinet/tcp.h>
#undef TCP_MSS   /* the socket option; lwIP's TCP_MSS is the segment size */

#include "lwip/priv/tcp_priv.h"

#include "byp_stack.h"
#include "tcp_sock.h"

static int get_int(const void *val, socklen_t len, int *out)
{
    if (val == NULL || len < (socklen_t)sizeof(int))
        return byp_tcp_fail(EINVAL);
    memcpy(out, val, sizeof(int));
    return 0;
}

static int put_opt(void *val, socklen_t *len, const void *v, socklen_t size)
{
    if (val == NULL || len == NULL)
        return byp_tcp_fail(EFAULT);
    socklen_t n = *len < size ? *len : size;
    memcpy(val, v, n);
    *len = n;
    return 0;
}

static int timeo_ms(const void *val, socklen_t len, int *out)
{
    struct timeval tv;
    if (val == NULL || len < (socklen_t)sizeof tv)
        return byp_tcp_fail(EINVAL);
    memcpy(&tv, val, sizeof tv);
    if (tv.tv_usec < 0 || tv.tv_usec >= 1000000)
        return byp_tcp_fail(EDOM);
    long long ms = (long long)tv.tv_sec * 1000 + (tv.tv_usec + 999) / 1000;
    *out = ms == 0 ? -1 : ms > 0x7fffffff ? 0x7fffffff : (int)ms;
    return 0;
}

void byp_tcp_keep_apply(struct tsock *ts)
{
    if (ts->pcb == NULL || ts->state == T_LISTEN)
        return;   /* a listener's PCB is not a connection's: its own keeps no parameters */
    if (ts->keep_idle_ms)
        ts->pcb->keep_idle = ts->keep_idle_ms;
    if (ts->keep_intvl_ms)
        ts->pcb->keep_intvl = ts->keep_intvl_ms;
    if (ts->keep_cnt)
        ts->pcb->keep_cnt = ts->keep_cnt;
}

static int get_kernel_int(int fd, int level, int opt)
{
    int v = 0;
    socklen_t len = sizeof v;
    return BYP_REAL(getsockopt)(fd, level, opt, &v, &len) == 0 ? v : 0;
}

static int kernel_timeo(int fd, int opt)
{
    struct timeval tv;
    socklen_t len = sizeof tv;
    int ms = -1;
    if (BYP_REAL(getsockopt)(fd, SOL_SOCKET, opt, &tv, &len) == 0)
        timeo_ms(&tv, sizeof tv, &ms);
    return ms;
}

void byp_tcp_opts_inherit(struct tsock *ts, int fd)
{
    ts->nodelay = get_kernel_int(fd, IPPROTO_TCP, TCP_NODELAY) != 0;
    ts->cork = get_kernel_int(fd, IPPROTO_TCP, TCP_CORK) != 0;
    ts->keepalive = get_kernel_int(fd, SOL_SOCKET, SO_KEEPALIVE) != 0;
    /* The kernel's values, its defaults (net.ipv4.tcp_keepalive_*) when nobody set them. */
    ts->keep_idle_ms = (u32_t)get_kernel_int(fd, IPPROTO_TCP, TCP_KEEPIDLE) * 1000;
    ts->keep_intvl_ms = (u32_t)get_kernel_int(fd, IPPROTO_TCP, TCP_KEEPINTVL) * 1000;
    ts->keep_cnt = (u32_t)get_kernel_int(fd, IPPROTO_TCP, TCP_KEEPCNT);
    struct linger lg;
    socklen_t len = sizeof lg;
    if (BYP_REAL(getsockopt)(fd, SOL_SOCKET, SO_LINGER, &lg, &len) == 0) {
        ts->linger_on = lg.l_onoff != 0;
        ts->linger_s = lg.l_linger;
    }
    ts->user_timeout_ms = (u32_t)get_kernel_int(fd, IPPROTO_TCP, TCP_USER_TIMEOUT);
    int lowat = get_kernel_int(fd, SOL_SOCKET, SO_RCVLOWAT);
    ts->rcvlowat = lowat > 0 ? lowat : 1;
    ts->rcvtimeo_ms = kernel_timeo(fd, SO_RCVTIMEO);
    ts->sndtimeo_ms = kernel_timeo(fd, SO_SNDTIMEO);
    ts->defer_s = get_kernel_int(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT);
}

/* The socket is pinned by the caller, the lock not held. */
static int setsockopt_pinned(struct tsock *ts, int fd, int level, int opt, const void *val,
                             socklen_t len)
{
    int v = 0;
    if (level == IPPROTO_TCP) {
        switch (opt) {
        case TCP_NODELAY:
            if (get_int(val, len, &v) < 0)
                return -1;
            byp_stack_lock();
            ts->nodelay = v != 0;
            if (ts->pcb != NULL && ts->state != T_LISTEN) {
                if (v) {
                    tcp_nagle_disable(ts->pcb);
                    tcp_output(ts->pcb);   /* the kernel pushes what is pending, corked too */
                } else {
                    tcp_nagle_enable(ts->pcb);
                }
            }
            byp_stack_unlock();
            break;
        case TCP_CORK:
            /* A send leaves its partial segment queued (send_core); uncorking pushes it. */
            if (get_int(val, len, &v) < 0)
                return -1;
            byp_stack_lock();
            ts->cork = v != 0;
            if (!v && ts->pcb != NULL && ts->state != T_LISTEN)
                tcp_output(ts->pcb);
            byp_stack_unlock();
            break;
        case TCP_USER_TIMEOUT:
            if (get_int(val, len, &v) < 0)
                return -1;
            if (v < 0)
                return byp_tcp_fail(EINVAL);
            byp_stack_lock();
            ts->user_timeout_ms = (u32_t)v;
            ts->ut_armed = 0;
            byp_stack_unlock();
            break;
        case TCP_CONGESTION: {
            /* lwIP's is NewReno's: "reno" is taken, any other is not available (ENOENT,
             * the kernel's answer for an algorithm it does not have). */
            char name[16] = "";
            memcpy(name, val != NULL ? val : "", len < sizeof name - 1 ? len : sizeof name - 1);
            if (strcmp(name, "reno") != 0)
                return byp_tcp_fail(ENOENT);
            break;
        }
        case TCP_QUICKACK:
            /* lwIP acknowledges every second segment at once and the rest within its
             * timer; what is owed now goes now. */
            if (get_int(val, len, &v) < 0)
                return -1;
            byp_stack_lock();
            if (v && ts->pcb != NULL && ts->state != T_LISTEN && (ts->pcb->flags & TF_ACK_DELAY)) {
                tcp_ack_now(ts->pcb);
                tcp_output(ts->pcb);
            }
            byp_stack_unlock();
            break;
        case TCP_KEEPIDLE:
        case TCP_KEEPINTVL:
        case TCP_KEEPCNT:
            if (get_int(val, len, &v) < 0)
                return -1;
            if (v < 1)
                return byp_tcp_fail(EINVAL);
            byp_stack_lock();
            if (opt == TCP_KEEPIDLE)
                ts->keep_idle_ms = (u32_t)v * 1000;
            else if (opt == TCP_KEEPINTVL)
                ts->keep_intvl_ms = (u32_t)v * 1000;
            else
                ts->keep_cnt = (u32_t)v;
            byp_tcp_keep_apply(ts);
            byp_stack_unlock();
            break;
        case TCP_DEFER_ACCEPT:
            /* The kernel socket checks it and rounds it (to its SYN-ACK retransmissions);
             * a listener holds its new connections back by what it reads back. */
            if (BYP_REAL(setsockopt)(fd, level, opt, val, len) < 0)
                return -1;
            v = get_kernel_int(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT);
            byp_stack_lock();
            ts->defer_s = v;
            while (v == 0 && ts->deferred != NULL)
                byp_tcp_defer_end(ts->deferred);   /* no longer deferred: accept them */
            byp_stack_unlock();
            return 0;
        case TCP_FASTOPEN:
            /* Taken, and kept by the kernel socket: a listener of the stack answers a fast
             * open SYN with a plain handshake (the client sends its data again after it),
             * as the kernel does unless net.ipv4.tcp_fastopen enables the server side. */
            return BYP_REAL(setsockopt)(fd, level, opt, val, len);
        default:
            return byp_tcp_fail(ENOPROTOOPT);   /* the stack cannot honour it: say so */
        }
        return BYP_REAL(setsockopt)(fd, level, opt, val, len) < 0 ? 0 : 0;
    }
    if (level == SOL_SOCKET) {
        switch (opt) {
        case SO_KEEPALIVE:
            if (get_int(val, len, &v) < 0)
                return -1;
            byp_stack_lock();
            ts->keepalive = v != 0;
            if (ts->pcb != NULL) {
                if (v)
                    ip_set_option(ts->pcb, SOF_KEEPALIVE);
                else
                    ip_reset_option(ts->pcb, SOF_KEEPALIVE);
            }
            byp_stack_unlock();
            break;
        case SO_RCVTIMEO:
            if (timeo_ms(val, len, &ts->rcvtimeo_ms) < 0)
                return -1;
            break;
        case SO_RCVLOWAT:
            if (get_int(val, len, &v) < 0)
                return -1;
            byp_stack_lock();
            ts->rcvlowat = v < 0 ? 0x7fffffff : v == 0 ? 1 : v;   /* the kernel's reading */
            byp_tsock_changed(ts);
            byp_stack_unlock();
            break;
        case SO_SNDTIMEO:
            if (timeo_ms(val, len, &ts->sndtimeo_ms) < 0)
                return -1;
            break;
        case SO_LINGER: {
            struct linger lg;
            if (val == NULL || len < (socklen_t)sizeof lg)
                return byp_tcp_fail(EINVAL);
            memcpy(&lg, val, sizeof lg);
            ts->linger_on = lg.l_onoff != 0;
            ts->linger_s = lg.l_linger;
            break;
        }
        default:
            break;   /* SO_REUSEADDR, SO_RCVBUF, ...: the kernel socket keeps them */
        }
    }
    /* Mirror onto the kernel socket: it answers getsockopt for what the stack doesn't
     * track, and a listener's kernel path honours it. */
    return BYP_REAL(setsockopt)(fd, level, opt, val, len);
}

/* Linux's TCP state numbers (tcpi_state) for lwIP's. */
static uint8_t linux_state(const struct tsock *ts)
{
    static const uint8_t map[] = {
        [CLOSED] = 7, [LISTEN] = 10, [SYN_SENT] = 2, [SYN_RCVD] = 3, [ESTABLISHED] = 1,
        [FIN_WAIT_1] = 4, [FIN_WAIT_2] = 5, [CLOSE_WAIT] = 8, [CLOSING] = 11,
        [LAST_ACK] = 9, [TIME_WAIT] = 6,
    };
    if (ts->state == T_LISTEN)
        return 10;
    if (ts->pcb == NULL)
        return 7;
    return ts->pcb->state < sizeof map ? map[ts->pcb->state] : 7;
}

/* TCP_INFO from lwIP's connection state: the fields lwIP keeps are filled in (state,
 * retransmissions, RTO, RTT estimate, MSS, congestion window and threshold, unacked
 * segments, window scales); the others are zero, never invented. */
static int tcp_info_get(struct tsock *ts, void *val, socklen_t *len)
{
    struct tcp_info ti;
    memset(&ti, 0, sizeof ti);
    byp_stack_lock();
    ti.tcpi_state = linux_state(ts);
    struct tcp_pcb *pcb = ts->state == T_LISTEN ? NULL : ts->pcb;
    if (pcb != NULL) {
        const unsigned tick_us = TCP_SLOW_INTERVAL * 1000;
        ti.tcpi_retransmits = pcb->nrtx;
        ti.tcpi_rto = (uint32_t)(pcb->rto > 0 ? pcb->rto : 1) * tick_us;
        ti.tcpi_rtt = (uint32_t)((pcb->sa >> 3) * tick_us);
        ti.tcpi_rttvar = (uint32_t)((pcb->sv >> 2) * tick_us);
        ti.tcpi_snd_mss = ti.tcpi_rcv_mss = ti.tcpi_advmss = pcb->mss;
        ti.tcpi_pmtu = pcb->mss + 40;
        unsigned mss = pcb->mss ? pcb->mss : 1;
        ti.tcpi_snd_cwnd = (uint32_t)(pcb->cwnd / mss);
        ti.tcpi_snd_ssthresh = (uint32_t)(pcb->ssthresh / mss);
        for (struct tcp_seg *sg = pcb->unacked; sg != NULL; sg = sg->next)
            ti.tcpi_unacked++;
#if LWIP_WND_SCALE
        ti.tcpi_snd_wscale = pcb->snd_scale;
        ti.tcpi_rcv_wscale = pcb->rcv_scale;
        ti.tcpi_options |= TCPI_OPT_WSCALE;
#endif
        ti.tcpi_options |= TCPI_OPT_SACK;
        ti.tcpi_rcv_space = pcb->rcv_wnd;
    }
    byp_stack_unlock();
    return put_opt(val, len, &ti, sizeof ti);
}

int byp_tcp_setsockopt(int fd, int level, int opt, const void *val, socklen_t len)
{
    struct tsock *ts = byp_tsock_pin(fd);
    if (ts == NULL)
        return -1;
    int r = setsockopt_pinned(ts, fd, level, opt, val, len);
    byp_tsock_unpin(ts);
    return r;
}

/* The socket is pinned by the caller, the lock not held. */
static int getsockopt_pinned(struct tsock *ts, int fd, int level, int opt, void *val,
                             socklen_t *len)
{
    int v;
    if (level == IPPROTO_TCP && opt == TCP_INFO)
        return tcp_info_get(ts, val, len);
    if (level == IPPROTO_TCP && opt == TCP_CONGESTION) {
        /* lwIP's congestion control is NewReno's (slow start, fast retransmit/recovery). */
        static const char name[] = "reno";
        return put_opt(val, len, name, sizeof name);
    }
    if (level == SOL_SOCKET && opt == SO_ERROR) {
        byp_stack_lock();
        v = ts->so_error;
        ts->so_error = 0;
        if (ts->err == v)
            ts->err = 0;
        byp_stack_unlock();
    } else if (level == SOL_SOCKET && opt == SO_ACCEPTCONN) {
        v = ts->state == T_LISTEN;
    } else if (level == SOL_SOCKET && opt == SO_KEEPALIVE) {
        v = ts->keepalive;
    } else if (level == IPPROTO_TCP && opt == TCP_NODELAY) {
        v = ts->nodelay;
    } else if (level == IPPROTO_TCP && opt == TCP_CORK) {
        v = ts->cork;
    } else if (level == IPPROTO_TCP && opt == TCP_USER_TIMEOUT) {
        v = (int)ts->user_timeout_ms;
    } else if (level == IPPROTO_TCP && opt == TCP_QUICKACK) {
        v = 1;   /* lwIP never enters the kernel's delayed-ACK "pingpong" mode */
    } else if (level == IPPROTO_TCP && opt == TCP_KEEPIDLE && ts->keep_idle_ms) {
        v = (int)(ts->keep_idle_ms / 1000);   /* an accepted socket's, from its listener */
    } else if (level == IPPROTO_TCP && opt == TCP_KEEPINTVL && ts->keep_intvl_ms) {
        v = (int)(ts->keep_intvl_ms / 1000);
    } else if (level == IPPROTO_TCP && opt == TCP_KEEPCNT && ts->keep_cnt) {
        v = (int)ts->keep_cnt;
    } else if (level == IPPROTO_TCP && opt == TCP_MAXSEG && ts->state == T_CONNECTED &&
               ts->pcb != NULL) {
        byp_stack_lock();
        v = ts->pcb != NULL ? ts->pcb->mss : 536;   /* what lwIP sends: no timestamps */
        byp_stack_unlock();
    } else if (level == IPPROTO_TCP &&
               (opt == TCP_KEEPIDLE || opt == TCP_KEEPINTVL || opt == TCP_KEEPCNT ||
                opt == TCP_MAXSEG || opt == TCP_DEFER_ACCEPT || opt == TCP_FASTOPEN)) {
        return BYP_REAL(getsockopt)(fd, level, opt, val, len);
    } else if (level == SOL_SOCKET && (opt == SO_RCVTIMEO || opt == SO_SNDTIMEO)) {
        /* The stack's, which an accepted socket inherited (its kernel socket is new). */
        int ms = opt == SO_RCVTIMEO ? ts->rcvtimeo_ms : ts->sndtimeo_ms;
        struct timeval tv = {0, 0};
        if (ms > 0)
            tv = (struct timeval){ms / 1000, (ms % 1000) * 1000};
        return put_opt(val, len, &tv, sizeof tv);
    } else if (level == SOL_SOCKET && opt == SO_LINGER) {
        struct linger lg = {ts->linger_on, ts->linger_s};
        return put_opt(val, len, &lg, sizeof lg);
    } else if (level == IPPROTO_TCP) {
        return byp_tcp_fail(ENOPROTOOPT);
    } else {
        return BYP_REAL(getsockopt)(fd, level, opt, val, len);
    }
    return put_opt(val, len, &v, sizeof v);
}

int byp_tcp_getsockopt(int fd, int level, int opt, void *val, socklen_t *len)
{
    struct tsock *ts = byp_tsock_pin(fd);
    if (ts == NULL)
        return -1;
    int r = getsockopt_pinned(ts, fd, level, opt, val, len);
    byp_tsock_unpin(ts);
    return r;
}
