/* How an accelerated TCP socket comes to be: a kernel socket taken over by listen() or
 * connect(), or a connection lwIP accepted, handed out by accept() (see tcp_sock.c for
 * how each kind stays a kernel socket too). */
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

/* A connection refused for want of memory: lwIP resets it; said once per process. */
static err_t refuse_nomem(const struct tcp_pcb *pcb)
{
    static int said;
    if (!said++)
        byp_err("out of memory for a new connection on port %u (BYPASS_SHM_MB): it was "
                "refused with a reset, and so are the next ones until memory is freed "
                "(logged once)", pcb->local_port);
    return ERR_MEM;
}

/* Room in @l's accept queue for one more connection beyond those queued and those held
 * back (TCP_DEFER_ACCEPT), so that a held-back connection always finds its place; -1 when
 * memory ran out. */
static int aq_reserve(struct tsock *l)
{
    if (l->aq_n + l->defer_n < l->aq_cap)
        return 0;
    unsigned cap = l->aq_cap ? l->aq_cap * 2 : 64;
    struct tsock **q = cap <= 65536 ? byp_shm_alloc(cap * sizeof *q) : NULL;
    if (q == NULL)
        return -1;
    for (unsigned i = 0; i < l->aq_n; i++)
        q[i] = l->aq[(l->aq_head + i) % l->aq_cap];
    byp_shm_free(l->aq);
    l->aq = q;
    l->aq_head = 0;
    l->aq_cap = cap;
    return 0;
}

static void aq_push(struct tsock *l, struct tsock *c)
{
    l->aq[(l->aq_head + l->aq_n++) % l->aq_cap] = c;
    byp_tsock_changed(l);
}

static err_t on_accept(void *arg, struct tcp_pcb *pcb, err_t err)
{
    struct tsock *l = arg;
    if (err != ERR_OK || pcb == NULL || l->state != T_LISTEN)
        return ERR_VAL;
    l = byp_reuseport_pick(l, pcb);
    if (aq_reserve(l) < 0)
        return refuse_nomem(pcb);   /* lwIP resets the connection */
    struct tsock *c = byp_tsock_new();
    if (c == NULL)
        return refuse_nomem(pcb);
    c->state = T_CONNECTED;
    c->nodelay = l->nodelay;       /* options are inherited from the listener */
    c->keepalive = l->keepalive;
    c->keep_idle_ms = l->keep_idle_ms;
    c->keep_intvl_ms = l->keep_intvl_ms;
    c->keep_cnt = l->keep_cnt;
    c->user_timeout_ms = l->user_timeout_ms;
    c->linger_on = l->linger_on;
    c->linger_s = l->linger_s;
    c->rcvtimeo_ms = l->rcvtimeo_ms;
    c->rcvlowat = l->rcvlowat;
    c->sndtimeo_ms = l->sndtimeo_ms;
    c->reuseaddr = l->reuseaddr;
    c->v6 = l->v6;
    byp_tsock_attach(c, pcb);
    c->sndbuf = tcp_sndbuf(pcb);
    c->flow_addr = l->flow_addr;
    c->flow_port = l->flow_port;
    c->has_flow = byp_flow_ref(IPPROTO_TCP, l->flow_addr, l->flow_port) == 0;
    c->local = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons(pcb->local_port),
                                    .sin_addr.s_addr = ip4_addr_get_u32(&pcb->local_ip)};
    c->remote = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons(pcb->remote_port),
                                     .sin_addr.s_addr = ip4_addr_get_u32(&pcb->remote_ip)};
    byp_stats_sock_open(c);
    if (l->defer_s > 0) {
        /* TCP_DEFER_ACCEPT: held back until its first data (or FIN), or until the kernel
         * would have given up waiting (byp_tcp_defer_end). */
        c->defer_l = l;
        c->defer_until = sys_now() + (u32_t)l->defer_s * 1000;
        c->defer_next = l->deferred;
        l->deferred = c;
        l->defer_n++;
        return ERR_OK;
    }
    aq_push(l, c);
    return ERR_OK;
}

/* Unlink @c from its listener's held-back list. */
static void defer_unlink(struct tsock *c)
{
    struct tsock *l = c->defer_l;
    for (struct tsock **link = &l->deferred; *link != NULL; link = &(*link)->defer_next)
        if (*link == c) {
            *link = c->defer_next;
            l->defer_n--;
            break;
        }
    c->defer_l = c->defer_next = NULL;
}

void byp_tcp_defer_end(struct tsock *c)
{
    struct tsock *l = c->defer_l;
    defer_unlink(c);
    aq_push(l, c);   /* aq_reserve kept its place */
}

void byp_tcp_defer_drop(struct tsock *c)
{
    defer_unlink(c);
    byp_tsock_rx_drop(c);
    byp_tsock_put_flow(c);
    byp_stats_sock_close(c);
    byp_shm_free(c);
}

static err_t on_connected(void *arg, struct tcp_pcb *pcb, err_t err)
{
    struct tsock *ts = arg;
    (void)err;
    ts->state = T_CONNECTED;
    ts->sndbuf = tcp_sndbuf(pcb);
    byp_tsock_changed(ts);
    return ERR_OK;
}

/* ---- accept ---- */

static int cond_acceptable(void *arg)
{
    struct tsock *ts = arg;
    return ts->aq_n > 0 || ts->state != T_LISTEN;
}

/* Lock held on entry and on return; @l pinned by the caller. */
static int accept_core(int fd, struct tsock *l, struct sockaddr *addr, socklen_t *len, int flags)
{
    if (l->state != T_LISTEN)
        return byp_tcp_fail(EINVAL);
    for (;;) {
        if (l->aq_n > 0) {
            struct tsock *c = l->aq[l->aq_head];
            l->aq_head = (l->aq_head + 1) % l->aq_cap;
            l->aq_n--;
            byp_tsock_link(c);
            byp_stack_unlock();
            int nfd = BYP_REAL(socket)(c->v6 ? AF_INET6 : AF_INET, SOCK_STREAM | flags, 0);
            if (nfd < 0) {
                int e = errno;
                byp_stack_lock();   /* put it back, at the head */
                byp_refs_put(&c->refs);
                byp_tsock_unlink(c);
                l->aq_head = (l->aq_head + l->aq_cap - 1) % l->aq_cap;
                l->aq[l->aq_head] = c;
                l->aq_n++;
                return byp_tcp_fail(e);
            }
            c->nonblock = (flags & SOCK_NONBLOCK) != 0;
            byp_fd_t *e = byp_fd_get(nfd);
            if (e != NULL) {
                __atomic_store_n(&e->obj, c, __ATOMIC_RELAXED);
                __atomic_store_n(&e->kind, (uint8_t)BYP_FD_TCP, __ATOMIC_RELAXED);
                __atomic_store_n(&e->ops, &byp_tcp_ops, __ATOMIC_RELEASE);
                if ((unsigned)nfd >= byp_fdtab_hwm)
                    byp_fdtab_hwm = (unsigned)nfd + 1;
            }
            if (addr != NULL && len != NULL)
                byp_addr4_put(&c->remote, c->v6, addr, len);
            byp_stack_lock();
            return nfd;
        }
        /* The kernel path: its listening socket is non-blocking under us.  Not once another
         * thread closed @fd: the number may be someone else's by now. */
        int ours = byp_fd_get(fd)->obj == l;
        /* A blocking listener handed to another process: its kernel socket blocks too (the
         * stack takes no new connections for it), and the kernel's accept is the call. */
        int kernel_blocks = l->handed && !l->nonblock;
        byp_stack_unlock();
        if (ours) {
            int kfd = BYP_REAL(accept4)(fd, addr, len, flags);
            if (kfd >= 0) {
                byp_fd_set_kernel(kfd, BYP_FD_KTCP);
                byp_stack_lock();
                return kfd;
            }
            if (errno != EAGAIN || kernel_blocks) {
                byp_stack_lock();
                return -1;
            }
        }
        byp_stack_lock();
        if (l->nonblock)
            return byp_tcp_fail(EAGAIN);
        byp_stack_unlock();
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int r = byp_tsock_wait_restarting(cond_acceptable, l, l->rcvtimeo_ms, &p, ours ? 1 : 0);
        byp_stack_lock();
        if (r == 0)
            return byp_tcp_fail(EAGAIN);
        if (r < 0)
            return byp_tcp_fail(EINTR);
        if (l->state != T_LISTEN)
            return byp_tcp_fail(EINVAL);
    }
}

int byp_tcp_accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
    if (flags & ~(SOCK_NONBLOCK | SOCK_CLOEXEC))
        return byp_tcp_fail(EINVAL);
    struct tsock *l = byp_tsock_enter(fd);
    if (l == NULL)
        return -1;
    int r = accept_core(fd, l, addr, len, flags);
    byp_tsock_exit(l);
    return r;
}

int byp_tcp_accept(int fd, struct sockaddr *addr, socklen_t *len)
{
    return byp_tcp_accept4(fd, addr, len, 0);
}

/* ---- taking over a kernel socket ---- */

static void install(int fd, struct tsock *ts)
{
    byp_tsock_link(ts);
    byp_fd_t *e = byp_fd_get(fd);
    if (e == NULL)
        return;   /* not reached: the callers checked the fd */
    __atomic_store_n(&e->obj, ts, __ATOMIC_RELAXED);
    __atomic_store_n(&e->kind, (uint8_t)BYP_FD_TCP, __ATOMIC_RELAXED);
    __atomic_store_n(&e->ops, &byp_tcp_ops, __ATOMIC_RELEASE);
}

/* A new lwIP listener on @a:@port (host order), or NULL with @err set (lock held). */
static struct tcp_pcb *new_listener(in_addr_t a, u16_t port, err_t *err)
{
    byp_tw_reserve(2);   /* lwIP recycles only what is in its own TIME_WAIT list */
    struct tcp_pcb *pcb = tcp_new_ip_type(IPADDR_TYPE_V4);
    if (pcb == NULL)
        return NULL;
    ip_set_option(pcb, SOF_REUSEADDR);
    ip_addr_t ip = IPADDR4_INIT(a);
    *err = tcp_bind(pcb, &ip, port);
    struct tcp_pcb *lpcb = NULL;
    if (*err == ERR_OK)
        lpcb = tcp_listen_with_backlog_and_err(pcb, 255, err);
    if (lpcb == NULL)
        tcp_abort(pcb);
    return lpcb;
}

int byp_tcp_listen(int fd, const struct sockaddr_in *local, int backlog)
{
    in_addr_t a = local->sin_addr.s_addr;
    byp_stack_lock();
    int ours = a == INADDR_ANY || byp_addr_is_local(a);
    byp_stack_unlock_noflush();
    if (byp_fd_get(fd) == NULL || !ours)
        return BYP_ENGINE_DECLINE;   /* bound to another interface's address */
    int fl = BYP_REAL(fcntl)(fd, F_GETFL);
    if (BYP_REAL(listen)(fd, backlog) < 0)
        return -errno;
    struct tsock *ts = byp_tsock_new();
    if (ts == NULL)
        return BYP_ENGINE_DECLINE;
    ts->state = T_LISTEN;
    ts->nonblock = fl >= 0 && (fl & O_NONBLOCK);
    byp_tcp_opts_inherit(ts, fd);
    socklen_t rl = sizeof ts->reuseaddr;
    if (BYP_REAL(getsockopt)(fd, SOL_SOCKET, SO_REUSEADDR, &ts->reuseaddr, &rl) != 0)
        ts->reuseaddr = 0;
    int domain = AF_INET;
    rl = sizeof domain;
    BYP_REAL(getsockopt)(fd, SOL_SOCKET, SO_DOMAIN, &domain, &rl);
    ts->v6 = domain == AF_INET6;   /* dual stack: its IPv4 part is ours */
    rl = sizeof ts->reuseport;
    if (BYP_REAL(getsockopt)(fd, SOL_SOCKET, SO_REUSEPORT, &ts->reuseport, &rl) != 0)
        ts->reuseport = 0;
    ts->flow_addr = a;
    ts->flow_port = local->sin_port;
    ts->local = *local;
    byp_stack_lock();
    err_t err = ERR_MEM;
    struct tcp_pcb *lpcb = NULL;
    int joined = 0;
    if (byp_flow_ref(IPPROTO_TCP, a, local->sin_port) == 0) {
        lpcb = byp_reuseport_join(ts, a, local->sin_port);
        joined = lpcb != NULL;
        if (!joined)
            lpcb = new_listener(a, ntohs(local->sin_port), &err);
        if (lpcb == NULL)
            byp_flow_unref(IPPROTO_TCP, a, local->sin_port);
    }
    if (lpcb == NULL) {
        byp_stack_unlock();
        byp_shm_free(ts);
        byp_warn("cannot accelerate the listener on port %u (lwIP error %d); it stays on the kernel",
                 ntohs(local->sin_port), err);
        return BYP_ENGINE_DECLINE;
    }
    ts->has_flow = 1;
    ts->pcb = lpcb;
    if (!joined) {
        tcp_arg(lpcb, ts);
        tcp_accept(lpcb, on_accept);
    }
    install(fd, ts);
    byp_stats_sock_open(ts);
    byp_stack_unlock();
    /* The kernel path is polled beside the stack: never let it block us. */
    BYP_REAL(fcntl)(fd, F_SETFL, (fl < 0 ? 0 : fl) | O_NONBLOCK);
    byp_info("tcp listener on port %u accelerated%s", ntohs(local->sin_port),
             joined ? " (SO_REUSEPORT: it shares the port's connections with the others)" : "");
    return 0;
}

/* The stack's TIME_WAIT for the four-tuple @local - @remote, if any, is let go (lock held).
 * A connection the program closed first keeps its port reservation only until lwIP is done
 * with the close (tcp_close.c); its TIME_WAIT then stays in lwIP alone, and the kernel may
 * hand the port out again.  The kernel would not, as its own TIME_WAIT keeps the port: a
 * new connection on the same four-tuple takes the TIME_WAIT's place, as tcp_tw_reuse does.
 * Not one an open socket still holds (it shut down first and kept its port): lwIP then
 * refuses the four-tuple, EADDRNOTAVAIL as from the kernel. */
static void time_wait_reuse(const struct sockaddr_in *local, const struct sockaddr_in *remote)
{
    /* Out of the stack's table into lwIP's list (tcp_timewait.c): found there by the walk
     * below, and by tcp_connect's own check if it stays. */
    byp_tw_lend(remote->sin_addr.s_addr, remote->sin_port, local->sin_addr.s_addr,
                local->sin_port);
    for (struct tcp_pcb *p = tcp_tw_pcbs; p != NULL; p = p->next)
        if (!byp_tsock_tw_held(p) && p->local_port == ntohs(local->sin_port) &&
            p->remote_port == ntohs(remote->sin_port) &&
            ip_2_ip4(&p->local_ip)->addr == local->sin_addr.s_addr &&
            ip_2_ip4(&p->remote_ip)->addr == remote->sin_addr.s_addr) {
            tcp_abort(p);   /* a TIME_WAIT pcb is freed, with no reset */
            return;
        }
}

int byp_tcp_connect(int fd, const struct sockaddr_in *remote)
{
    int routed = byp_mirror_route_ok(remote->sin_addr.s_addr);   /* <0: not mirrored */
    if (routed < 0)
        routed = byp_route_ok(remote->sin_addr.s_addr);
    if (!routed || byp_fd_get(fd) == NULL)
        return BYP_ENGINE_DECLINE;
    if (!byp_link_ready())
        return -ECONNREFUSED;   /* memif peer process absent: as a host without the port */
    /* The local port: the kernel socket's, reserving it; bind it first if needed.  A
     * dual-stack AF_INET6 socket (@v6) names it v4-mapped. */
    struct sockaddr_storage ss;
    struct sockaddr_in local;
    socklen_t len = sizeof ss;
    if (BYP_REAL(getsockname)(fd, (struct sockaddr *)&ss, &len) < 0)
        return BYP_ENGINE_DECLINE;
    int v6 = byp_addr4_get((struct sockaddr *)&ss, len, &local);
    if (v6 < 0)
        return BYP_ENGINE_DECLINE;
    /* The source address: the one the program bound, else the kernel's choice for the
     * route (its preferred source, else the address whose subnet holds the next hop). */
    byp_stack_lock();
    in_addr_t src = byp_route_src(remote->sin_addr.s_addr);
    int bound_ours = local.sin_addr.s_addr == INADDR_ANY || byp_addr_is_local(local.sin_addr.s_addr);
    byp_stack_unlock_noflush();
    if (local.sin_port == 0) {
        /* On a dedicated interface the kernel does not own the stack's address. */
        local.sin_addr.s_addr = byp_steering ? src : INADDR_ANY;
        len = sizeof ss;
        byp_addr4_put(&local, v6, (struct sockaddr *)&ss, &len);
        if (BYP_REAL(bind)(fd, (struct sockaddr *)&ss, len) < 0)
            return -errno;
        len = sizeof ss;
        BYP_REAL(getsockname)(fd, (struct sockaddr *)&ss, &len);
        byp_addr4_get((struct sockaddr *)&ss, len, &local);
    } else if (!bound_ours) {
        return BYP_ENGINE_DECLINE;
    }
    if (local.sin_addr.s_addr == INADDR_ANY || !byp_steering)
        local.sin_addr.s_addr = src;
    int fl = BYP_REAL(fcntl)(fd, F_GETFL);
    struct tsock *ts = byp_tsock_new();
    if (ts == NULL)
        return BYP_ENGINE_DECLINE;
    ts->nonblock = fl >= 0 && (fl & O_NONBLOCK);
    byp_tcp_opts_inherit(ts, fd);
    ts->v6 = v6;
    ts->local = local;
    ts->remote = *remote;
    ts->flow_addr = local.sin_addr.s_addr;
    ts->flow_port = local.sin_port;
    ts->reserves_port = 1;
    ts->state = T_CONNECTING;
    byp_stack_lock();
    byp_tw_reserve(2);   /* lwIP recycles only what is in its own TIME_WAIT list */
    struct tcp_pcb *pcb = tcp_new_ip_type(IPADDR_TYPE_V4);
    if (pcb == NULL) {
        byp_stack_unlock();
        byp_shm_free(ts);
        return -ENOBUFS;
    }
    ip_set_option(pcb, SOF_REUSEADDR);
    ip_addr_t lip = IPADDR4_INIT(local.sin_addr.s_addr), rip = IPADDR4_INIT(remote->sin_addr.s_addr);
    err_t err = tcp_bind(pcb, &lip, ntohs(local.sin_port));
    if (err != ERR_OK || byp_flow_ref(IPPROTO_TCP, local.sin_addr.s_addr, local.sin_port) < 0) {
        tcp_abort(pcb);
        byp_stack_unlock();
        byp_shm_free(ts);
        return err == ERR_USE ? -EADDRINUSE : BYP_ENGINE_DECLINE;
    }
    ts->has_flow = 1;
    byp_tsock_attach(ts, pcb);
    time_wait_reuse(&local, remote);
    err = tcp_connect(pcb, &rip, ntohs(remote->sin_port), on_connected);
    if (err != ERR_OK) {
        tcp_arg(pcb, NULL);
        tcp_err(pcb, NULL);
        tcp_abort(pcb);
        byp_tsock_put_flow(ts);
        byp_stack_unlock();
        byp_shm_free(ts);
        /* ERR_USE: a connection the stack still finishes holds the four-tuple. */
        return err == ERR_RTE ? -ENETUNREACH : err == ERR_USE ? -EADDRNOTAVAIL : -ENOBUFS;
    }
    install(fd, ts);
    byp_stats_sock_open(ts);
    byp_stack_unlock();
    if (ts->nonblock)
        return -EINPROGRESS;
    byp_stack_lock();
    while (ts->state == T_CONNECTING) {
        int r = byp_tsock_wait(byp_tsock_connected, ts, ts->sndtimeo_ms, NULL, 0);
        if (r <= 0 && ts->state == T_CONNECTING) {
            byp_stack_unlock();
            return r == 0 ? -EINPROGRESS : -EINTR;
        }
    }
    int e = ts->state == T_CONNECTED ? 0 : ts->so_error;
    if (e) {
        ts->so_error = 0;
        ts->err = 0;
    }
    byp_stack_unlock();
    return -e;
}
