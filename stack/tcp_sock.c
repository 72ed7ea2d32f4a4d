/* The accelerated TCP socket object over lwIP's raw API: lwIP's callbacks, taking over a
 * kernel socket (listen, connect), accept, and close with the connections lwIP still
 * finishes after the program let go of them.
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

/* A connection the program closed that lwIP still finishes (FIN handshake). */
struct zombie {
    struct tcp_pcb *pcb;
    in_addr_t flow_addr;
    in_port_t flow_port;
    int reserve_fd;             /* a dup of the kernel socket, in process reserve_pid */
    pid_t reserve_pid;
    struct zombie *next;
};
static struct zombie *zombies;


void byp_tsock_changed(struct tsock *ts)
{
    ts->gen++;
    byp_engine_event();
}

/* Every socket some fd of the family refers to, for the references of a member that
 * leaves (lock held). */
static struct tsock *all_socks;

static struct tsock *tsock_new(void)
{
    struct tsock *ts = byp_shm_calloc(1, sizeof *ts);
    if (ts != NULL)
        ts->rcvtimeo_ms = ts->sndtimeo_ms = -1;
    return ts;
}

/* An fd of this process refers to the socket now (lock held). */
static void tsock_link(struct tsock *ts)
{
    byp_refs_get(&ts->refs);
    ts->all_prev = NULL;
    ts->all_next = all_socks;
    if (all_socks != NULL)
        all_socks->all_prev = ts;
    all_socks = ts;
}

static void tsock_unlink(struct tsock *ts)
{
    if (ts->all_prev != NULL)
        ts->all_prev->all_next = ts->all_next;
    else if (all_socks == ts)
        all_socks = ts->all_next;
    if (ts->all_next != NULL)
        ts->all_next->all_prev = ts->all_prev;
    ts->all_prev = ts->all_next = NULL;
}

void byp_tsock_rx_drop(struct tsock *ts)
{
    struct pbuf *p = ts->rx_head;
    while (p != NULL) {
        struct pbuf *n = p->next;
        p->next = NULL;
        pbuf_free(p);
        p = n;
    }
    ts->rx_head = ts->rx_tail = NULL;
    ts->rx_off = 0;
    ts->rx_bytes = 0;
}

/* ---- lwIP callbacks (lock held) ---- */

static err_t on_recv(void *arg, struct tcp_pcb *pcb, struct pbuf *p, err_t err)
{
    struct tsock *ts = arg;
    (void)pcb;
    (void)err;
    if (p == NULL) {
        ts->rx_fin = 1;
    } else if (ts->shut_rd) {
        tcp_recved(pcb, p->tot_len);
        pbuf_free(p);
        return ERR_OK;
    } else {
        /* Queue pbuf by pbuf: each is freed on its own once read. */
        ts->rx_bytes += p->tot_len;
        byp_stats_sock_rx(ts, p->tot_len);
        if (ts->rx_tail != NULL)
            ts->rx_tail->next = p;
        else
            ts->rx_head = p;
        struct pbuf *q = p;
        while (q->next != NULL)
            q = q->next;
        ts->rx_tail = q;
    }
    byp_tsock_changed(ts);
    return ERR_OK;
}

static err_t on_sent(void *arg, struct tcp_pcb *pcb, u16_t len)
{
    struct tsock *ts = arg;
    (void)len;
    u32_t before = ts->sndbuf;
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
static err_t on_poll(void *arg, struct tcp_pcb *pcb)
{
    struct tsock *ts = arg;
    if (ts != NULL && ts->sndbuf < WRITABLE_MIN && tcp_sndbuf(pcb) >= WRITABLE_MIN) {
        ts->sndbuf = tcp_sndbuf(pcb);
        byp_tsock_changed(ts);
    }
    return ERR_OK;
}

static void on_err(void *arg, err_t err)
{
    struct tsock *ts = arg;
    int e;
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
    else
        e = err == ERR_RST ? ECONNRESET : err == ERR_ABRT ? ETIMEDOUT : ECONNABORTED;
    ts->pcb = NULL;
    ts->state = T_CLOSED;
    ts->err = ts->so_error = e;
    ts->sndbuf = 0;
    byp_tsock_changed(ts);
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

static void zombie_err(void *arg, err_t err)
{
    (void)err;
    ((struct zombie *)arg)->pcb = NULL;
}

int byp_tcp_tw_forget(struct tcp_pcb *pcb)
{
    if (pcb->callback_arg != NULL && pcb->errf != zombie_err)
        return 0;   /* a program's socket still refers to it */
    if (pcb->callback_arg != NULL)
        zombie_err(pcb->callback_arg, ERR_ABRT);   /* byp_tcp_reap drops the zombie */
    tcp_arg(pcb, NULL);
    tcp_err(pcb, NULL);
    return 1;
}

static void attach(struct tsock *ts, struct tcp_pcb *pcb)
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
}

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

static err_t on_accept(void *arg, struct tcp_pcb *pcb, err_t err)
{
    struct tsock *l = arg;
    if (err != ERR_OK || pcb == NULL || l->state != T_LISTEN)
        return ERR_VAL;
    if (l->aq_n == l->aq_cap) {
        unsigned cap = l->aq_cap ? l->aq_cap * 2 : 64;
        struct tsock **q = cap <= 65536 ? byp_shm_alloc(cap * sizeof *q) : NULL;
        if (q == NULL)
            return refuse_nomem(pcb);   /* lwIP resets the connection */
        for (unsigned i = 0; i < l->aq_n; i++)
            q[i] = l->aq[(l->aq_head + i) % l->aq_cap];
        byp_shm_free(l->aq);
        l->aq = q;
        l->aq_head = 0;
        l->aq_cap = cap;
    }
    struct tsock *c = tsock_new();
    if (c == NULL)
        return refuse_nomem(pcb);
    c->state = T_CONNECTED;
    c->nodelay = l->nodelay;       /* options are inherited from the listener */
    c->keepalive = l->keepalive;
    attach(c, pcb);
    c->sndbuf = tcp_sndbuf(pcb);
    c->flow_addr = l->flow_addr;
    c->flow_port = l->flow_port;
    c->has_flow = byp_flow_ref(IPPROTO_TCP, l->flow_addr, l->flow_port) == 0;
    c->local = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons(pcb->local_port),
                                    .sin_addr.s_addr = ip4_addr_get_u32(&pcb->local_ip)};
    c->remote = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons(pcb->remote_port),
                                     .sin_addr.s_addr = ip4_addr_get_u32(&pcb->remote_ip)};
    byp_stats_sock_open(c);
    l->aq[(l->aq_head + l->aq_n++) % l->aq_cap] = c;
    byp_tsock_changed(l);
    return ERR_OK;
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

static int cond_acceptable(void *arg)
{
    struct tsock *ts = arg;
    return ts->aq_n > 0 || ts->state != T_LISTEN;
}

/* byp_wait for a socket call: a handler with SA_RESTART resumes the wait unless a timeout
 * is set on the socket (signal(7)); 1 ready, 2 kernel fd ready, 0 timeout, -EINTR. */
static int wait_restarting(byp_wait_cond_t cond, struct tsock *ts, int timeout_ms,
                           struct pollfd *pfd, nfds_t n)
{
    int r;
    do
        r = byp_wait(cond, ts, timeout_ms, pfd, n);
    while (r == -ERESTART && timeout_ms < 0);
    return r < 0 ? -EINTR : r;
}

/* Drop the lock and wait; 1 ready, 0 timeout, -EINTR. */
int byp_tsock_wait(byp_wait_cond_t cond, struct tsock *ts, int timeout_ms, struct pollfd *pfd,
                         nfds_t n)
{
    byp_stack_unlock();
    int r = wait_restarting(cond, ts, timeout_ms, pfd, n);
    byp_stack_lock();
    return r;
}


/* ---- accept ---- */

int byp_tcp_accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
    struct tsock *l = TS(fd);
    if (flags & ~(SOCK_NONBLOCK | SOCK_CLOEXEC))
        return byp_tcp_fail(EINVAL);
    byp_stack_lock();
    if (l->state != T_LISTEN) {
        byp_stack_unlock();
        return byp_tcp_fail(EINVAL);
    }
    for (;;) {
        if (l->aq_n > 0) {
            struct tsock *c = l->aq[l->aq_head];
            l->aq_head = (l->aq_head + 1) % l->aq_cap;
            l->aq_n--;
            tsock_link(c);
            byp_stack_unlock();
            int nfd = BYP_REAL(socket)(AF_INET, SOCK_STREAM | flags, 0);
            if (nfd < 0) {
                int e = errno;
                byp_stack_lock();   /* put it back, at the head */
                byp_refs_put(&c->refs);
                tsock_unlink(c);
                l->aq_head = (l->aq_head + l->aq_cap - 1) % l->aq_cap;
                l->aq[l->aq_head] = c;
                l->aq_n++;
                byp_stack_unlock();
                return byp_tcp_fail(e);
            }
            c->nonblock = (flags & SOCK_NONBLOCK) != 0;
            byp_fd_t *e = byp_fd_get(nfd);
            if (e != NULL) {
                e->obj = c;
                e->kind = BYP_FD_TCP;
                __atomic_store_n(&e->ops, &byp_tcp_ops, __ATOMIC_RELEASE);
                if ((unsigned)nfd >= byp_fdtab_hwm)
                    byp_fdtab_hwm = (unsigned)nfd + 1;
            }
            if (addr != NULL && len != NULL) {
                socklen_t n = *len < sizeof c->remote ? *len : sizeof c->remote;
                memcpy(addr, &c->remote, n);
                *len = sizeof c->remote;
            }
            return nfd;
        }
        /* The kernel path: its listening socket is non-blocking under us. */
        byp_stack_unlock();
        int kfd = BYP_REAL(accept4)(fd, addr, len, flags);
        if (kfd >= 0) {
            byp_fd_set_kernel(kfd, BYP_FD_KTCP);
            return kfd;
        }
        if (errno != EAGAIN)
            return -1;
        if (l->nonblock)
            return byp_tcp_fail(EAGAIN);
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int r = wait_restarting(cond_acceptable, l, l->rcvtimeo_ms, &p, 1);
        if (r == 0)
            return byp_tcp_fail(EAGAIN);
        if (r < 0)
            return byp_tcp_fail(EINTR);
        byp_stack_lock();
        if (l->state != T_LISTEN) {
            byp_stack_unlock();
            return byp_tcp_fail(EINVAL);
        }
    }
}

int byp_tcp_accept(int fd, struct sockaddr *addr, socklen_t *len)
{
    return byp_tcp_accept4(fd, addr, len, 0);
}


/* ---- close ---- */

/* Release the steering entry and the port a socket holds. */
static void put_flow(struct tsock *ts)
{
    if (ts->has_flow) {
        byp_flow_unref(IPPROTO_TCP, ts->flow_addr, ts->flow_port);
        ts->has_flow = 0;
    }
}

static int drained_or_gone(void *arg)
{
    struct tsock *ts = arg;
    return ts->drained || ts->pcb == NULL;
}

/* SO_LINGER with a timeout: close() returns once everything sent was acknowledged, or
 * when the timeout passes (the close then goes on in the background), as the kernel's
 * does.  Lock held on entry and on return. */
static void linger(struct tsock *ts)
{
    ts->drained = ts->pcb->unsent == NULL && ts->pcb->unacked == NULL;
    if (ts->drained)
        return;
    tcp_output(ts->pcb);
    byp_tsock_wait(drained_or_gone, ts, ts->linger_s * 1000, NULL, 0);
}

/* The last reference of the family is gone: the protocol close (lock held).  @fd is this
 * process's fd for it, or -1 when it closes on behalf of a member that left. */
static void tsock_close(struct tsock *ts, int fd)
{
    tsock_unlink(ts);
    int listener = ts->state == T_LISTEN;
    if (listener) {
        ts->state = T_CLOSED;
        if (ts->pcb != NULL)
            tcp_close(ts->pcb);
        ts->pcb = NULL;
        for (unsigned i = 0; i < ts->aq_n; i++) {
            struct tsock *c = ts->aq[(ts->aq_head + i) % ts->aq_cap];
            if (c->pcb != NULL) {
                tcp_arg(c->pcb, NULL);
                tcp_err(c->pcb, NULL);
                tcp_abort(c->pcb);
            }
            byp_tsock_rx_drop(c);
            put_flow(c);
            byp_stats_sock_close(c);
            byp_shm_free(c);
        }
        byp_shm_free(ts->aq);
        put_flow(ts);
    } else if (ts->pcb != NULL) {
        if (ts->linger_on && ts->linger_s > 0 && ts->rx_bytes == 0)
            linger(ts);
    }
    if (!listener && ts->pcb != NULL) {
        struct tcp_pcb *pcb = ts->pcb;
        tcp_recv(pcb, NULL);
        tcp_sent(pcb, NULL);
        tcp_poll(pcb, NULL, 0);
        if (ts->rx_bytes > 0 || (ts->linger_on && ts->linger_s == 0)) {
            /* Unread data (or SO_LINGER 0): reset, as the kernel does. */
            tcp_arg(pcb, NULL);
            tcp_err(pcb, NULL);
            tcp_abort(pcb);
            put_flow(ts);
        } else {
            struct zombie *z = byp_shm_calloc(1, sizeof *z);
            if (z == NULL || tcp_close(pcb) != ERR_OK) {
                tcp_arg(pcb, NULL);
                tcp_err(pcb, NULL);
                tcp_abort(pcb);
                put_flow(ts);
                byp_shm_free(z);
            } else {
                z->pcb = pcb;
                tcp_arg(pcb, z);
                tcp_err(pcb, zombie_err);
                z->flow_addr = ts->flow_addr;
                z->flow_port = ts->flow_port;
                z->reserve_fd = -1;
                if (ts->has_flow) {
                    ts->has_flow = 0;   /* the zombie holds it now */
                    if (ts->reserves_port && fd >= 0) {
                        z->reserve_fd = BYP_REAL(fcntl)(fd, F_DUPFD_CLOEXEC, 0);
                        z->reserve_pid = getpid();
                    }
                    z->next = zombies;
                    zombies = z;
                } else {
                    byp_shm_free(z);
                }
            }
        }
    } else if (!listener) {
        put_flow(ts);   /* lwIP already let go of the connection */
    }
    byp_stats_sock_close(ts);
    byp_tsock_rx_drop(ts);
}

void byp_tcp_release(int fd)
{
    struct tsock *ts = TS(fd);
    byp_stack_lock();
    uint32_t left = byp_refs_put(&ts->refs);
    uint32_t mine = byp_refs_mine(&ts->refs);
    if (left == 0)
        tsock_close(ts, fd);
    byp_stack_unlock();
    /* Out of this process's epoll sets once it holds no fd for it, as the kernel does for
     * the last close of a file. */
    if (mine == 0)
        byp_epoll_forget(fd, ts);
    if (left == 0)
        byp_shm_free(ts);
}

void byp_tcp_fork_refs(int slot)
{
    unsigned end = __atomic_load_n(&byp_fdtab_hwm, __ATOMIC_RELAXED);
    for (unsigned fd = 0; fd < end; fd++)
        if (byp_fdtab[fd].ops == &byp_tcp_ops)
            byp_refs_get_for(&((struct tsock *)byp_fdtab[fd].obj)->refs, slot);
}

void byp_tcp_exec_handover(void)
{
    unsigned end = __atomic_load_n(&byp_fdtab_hwm, __ATOMIC_RELAXED);
    for (unsigned fd = 0; fd < end; fd++) {
        if (byp_fdtab[fd].ops != &byp_tcp_ops)
            continue;
        struct tsock *ts = byp_fdtab[fd].obj;
        int fdfl = BYP_REAL(fcntl)((int)fd, F_GETFD);
        if (fdfl < 0 || (fdfl & FD_CLOEXEC) || ts->pcb == NULL || ts->state != T_CONNECTED)
            continue;
        /* A fork-then-exec server's parent closes its copy right after fork, and may not
         * have yet: give it a moment. */
        for (int i = 0; i < 200 && byp_refs_mine(&ts->refs) != ts->refs.total; i++) {
            byp_stack_unlock();
            struct timespec ms = {0, 1000000};
            nanosleep(&ms, NULL);
            byp_stack_lock();
        }
        if (byp_refs_mine(&ts->refs) != ts->refs.total) {
            byp_info("fd %u: a connection other processes share stays with them across exec",
                     fd);
            continue;
        }
        int rc = byp_tcp_handover(ts, (int)fd);
        if (rc < 0)
            byp_warn("fd %u: cannot hand the connection over to the kernel before exec: %s",
                     fd, strerror(-rc));
    }
}

void byp_tcp_drop_member(int slot)
{
    for (struct tsock *ts = all_socks, *next; ts != NULL; ts = next) {
        next = ts->all_next;
        if (ts->refs.per[slot] > 0 && byp_refs_drop(&ts->refs, slot) == 0) {
            tsock_close(ts, -1);
            byp_shm_free(ts);
        }
    }
}



static int cmp_ptr(const void *a, const void *b)
{
    uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
    return x < y ? -1 : x > y;
}

int byp_tcp_flushing(void)
{
    /* Only pcbs still on lwIP's active list may be looked at: lwIP frees a connection that
     * completes its close without telling us (this runs once, at exit: the walk is fine). */
    for (struct tcp_pcb *p = tcp_active_pcbs; p != NULL; p = p->next)
        for (struct zombie *z = zombies; z != NULL; z = z->next)
            if (z->pcb == p && (p->unsent != NULL || p->unacked != NULL ||
                                p->state == FIN_WAIT_1 || p->state == CLOSING ||
                                p->state == LAST_ACK))
                return 1;
    return 0;
}

void byp_tcp_reap(void)
{
    static uint32_t last;
    if (zombies == NULL || sys_now() - last < 50)
        return;
    last = sys_now();
    size_t n = 0, cap = 256;
    uintptr_t *act = malloc(cap * sizeof *act);
    if (act == NULL)
        return;
    for (struct tcp_pcb *p = tcp_active_pcbs; p != NULL; p = p->next) {
        if (n == cap) {
            uintptr_t *a = realloc(act, 2 * cap * sizeof *act);
            if (a == NULL)
                break;
            act = a;
            cap *= 2;
        }
        act[n++] = (uintptr_t)p;
    }
    qsort(act, n, sizeof *act, cmp_ptr);
    for (struct zombie **zp = &zombies; *zp != NULL;) {
        struct zombie *z = *zp;
        uintptr_t key = (uintptr_t)z->pcb;
        if (z->pcb != NULL && bsearch(&key, act, n, sizeof *act, cmp_ptr) != NULL) {
            zp = &z->next;
            continue;
        }
        if (z->pcb != NULL) {     /* in TIME_WAIT now: lwIP owns it alone */
            tcp_arg(z->pcb, NULL);
            tcp_err(z->pcb, NULL);
        }
        byp_flow_unref(IPPROTO_TCP, z->flow_addr, z->flow_port);
        if (z->reserve_fd >= 0 && z->reserve_pid == getpid())
            BYP_REAL(close)(z->reserve_fd);
        *zp = z->next;
        byp_shm_free(z);
    }
    free(act);
}

void byp_tcp_ref(void *obj)
{
    byp_stack_lock();
    byp_refs_get(&((struct tsock *)obj)->refs);
    byp_stack_unlock();
}


/* ---- taking over a kernel socket ---- */

static void install(int fd, struct tsock *ts)
{
    tsock_link(ts);
    byp_fd_t *e = byp_fd_get(fd);
    e->obj = ts;
    e->kind = BYP_FD_TCP;
    __atomic_store_n(&e->ops, &byp_tcp_ops, __ATOMIC_RELEASE);
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
    struct tsock *ts = tsock_new();
    if (ts == NULL)
        return BYP_ENGINE_DECLINE;
    ts->state = T_LISTEN;
    ts->nonblock = fl >= 0 && (fl & O_NONBLOCK);
    ts->flow_addr = a;
    ts->flow_port = local->sin_port;
    ts->local = *local;
    byp_stack_lock();
    struct tcp_pcb *pcb = tcp_new_ip_type(IPADDR_TYPE_V4);
    err_t err = ERR_MEM;
    if (pcb != NULL) {
        ip_set_option(pcb, SOF_REUSEADDR);
        ip_addr_t ip = IPADDR4_INIT(a);
        err = tcp_bind(pcb, &ip, ntohs(local->sin_port));
    }
    struct tcp_pcb *lpcb = NULL;
    if (err == ERR_OK)
        lpcb = tcp_listen_with_backlog_and_err(pcb, 255, &err);
    if (lpcb == NULL || byp_flow_ref(IPPROTO_TCP, a, local->sin_port) < 0) {
        if (lpcb != NULL)
            tcp_close(lpcb);
        else if (pcb != NULL)
            tcp_abort(pcb);
        byp_stack_unlock();
        byp_shm_free(ts);
        byp_warn("cannot accelerate the listener on port %u (lwIP error %d); it stays on the kernel",
                 ntohs(local->sin_port), err);
        return BYP_ENGINE_DECLINE;
    }
    ts->has_flow = 1;
    ts->pcb = lpcb;
    tcp_arg(lpcb, ts);
    tcp_accept(lpcb, on_accept);
    install(fd, ts);
    byp_stats_sock_open(ts);
    byp_stack_unlock();
    /* The kernel path is polled beside the stack: never let it block us. */
    BYP_REAL(fcntl)(fd, F_SETFL, (fl < 0 ? 0 : fl) | O_NONBLOCK);
    byp_info("tcp listener on port %u accelerated", ntohs(local->sin_port));
    return 0;
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
    /* The local port: the kernel socket's, reserving it; bind it first if needed. */
    struct sockaddr_in local;
    socklen_t len = sizeof local;
    if (BYP_REAL(getsockname)(fd, (struct sockaddr *)&local, &len) < 0 || local.sin_family != AF_INET)
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
        if (BYP_REAL(bind)(fd, (struct sockaddr *)&local, sizeof local) < 0)
            return -errno;
        len = sizeof local;
        BYP_REAL(getsockname)(fd, (struct sockaddr *)&local, &len);
    } else if (!bound_ours) {
        return BYP_ENGINE_DECLINE;
    }
    if (local.sin_addr.s_addr == INADDR_ANY || !byp_steering)
        local.sin_addr.s_addr = src;
    int fl = BYP_REAL(fcntl)(fd, F_GETFL);
    struct tsock *ts = tsock_new();
    if (ts == NULL)
        return BYP_ENGINE_DECLINE;
    ts->nonblock = fl >= 0 && (fl & O_NONBLOCK);
    ts->local = local;
    ts->remote = *remote;
    ts->flow_addr = local.sin_addr.s_addr;
    ts->flow_port = local.sin_port;
    ts->reserves_port = 1;
    ts->state = T_CONNECTING;
    byp_stack_lock();
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
    attach(ts, pcb);
    err = tcp_connect(pcb, &rip, ntohs(remote->sin_port), on_connected);
    if (err != ERR_OK) {
        tcp_arg(pcb, NULL);
        tcp_err(pcb, NULL);
        tcp_abort(pcb);
        put_flow(ts);
        byp_stack_unlock();
        byp_shm_free(ts);
        return err == ERR_RTE ? -ENETUNREACH : -ENOBUFS;
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

