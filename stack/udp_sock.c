/* The accelerated UDP socket object over lwIP's raw UDP API: taking over a kernel socket
 * (bind, connect, multicast join), the receive queue of datagrams with what recvmsg reports
 * beside them (source, destination, receive time, drop count), multicast memberships with
 * their steering entries, the loopback of our own multicast sends, and close.
 *
 * The queue is a ring of datagrams bounded like the kernel's: each datagram is charged its
 * length plus U_CHARGE_OVERHEAD against the kernel socket's SO_RCVBUF, and one that does not
 * fit is dropped and counted (SO_RXQ_OVFL reports the count, as the kernel does). */
#include <arpa/inet.h>
#include <net/if.h>
#include <stdlib.h>
#include <string.h>

#include "lwip/igmp.h"
#include "lwip/ip.h"

#include "byp_stack.h"
#include "fd_udp.h"
#include "shm.h"
#include "stats.h"
#include "fd_epoll.h"
#include "udp_sock.h"
#include "repair.h"

struct usock *byp_usocks;
uint64_t byp_udp_unwanted;

void byp_usock_changed(struct usock *us)
{
    us->gen++;
    byp_wake_socket(us, &us->watch, us->refs.groups, 0);
}

int byp_usock_readable(void *arg)
{
    const struct usock *us = arg;
    return __atomic_load_n(&us->qn, __ATOMIC_ACQUIRE) > 0 ||
           __atomic_load_n(&us->kready, __ATOMIC_ACQUIRE) != 0 ||
           __atomic_load_n(&us->shut_rd, __ATOMIC_RELAXED);
}

void byp_usock_rcvbuf(struct usock *us, int fd)
{
    int v = 0;
    socklen_t len = sizeof v;
    if (BYP_REAL(getsockopt)(fd, SOL_SOCKET, SO_RCVBUF, &v, &len) == 0 && v > 0)
        us->rcvbuf = (uint32_t)v;
}

static int is_multicast(in_addr_t a)
{
    return (ntohl(a) >> 28) == 14;
}

/* ---- the receive queue ---- */

void byp_usock_pop(struct usock *us, struct udgram *out)
{
    *out = us->q[us->qhead];
    us->q[us->qhead].p = NULL;
    us->qhead = (us->qhead + 1) % us->qcap;
    us->qcharge -= out->p->tot_len + U_CHARGE_OVERHEAD;
    us->qpayload -= out->p->tot_len;
    __atomic_store_n(&us->qn, us->qn - 1, __ATOMIC_RELEASE);
}

static int ring_grow(struct usock *us)
{
    unsigned cap = us->qcap ? us->qcap * 2 : 64;
    struct udgram *q = byp_shm_alloc(cap * sizeof *q);
    if (q == NULL)
        return -ENOMEM;
    for (unsigned i = 0; i < us->qn; i++)
        q[i] = us->q[(us->qhead + i) % us->qcap];
    byp_shm_free(us->q);
    us->q = q;
    us->qhead = 0;
    us->qcap = cap;
    return 0;
}

/* Queue @p (owned) from @src:@sport to @dst; drops and counts it when the queue is full. */
static void enqueue(struct usock *us, struct pbuf *p, in_addr_t src, in_port_t sport, in_addr_t dst)
{
    if (us->qcharge > us->rcvbuf || (us->qn == us->qcap && ring_grow(us) < 0)) {
        us->drops++;
        pbuf_free(p);
        return;
    }
    if ((p->flags & PBUF_FLAG_IS_CUSTOM) && byp_netif_pool_low()) {
        /* Queues bounded by a large SO_RCVBUF could hold every NIC buffer: copy. */
        struct pbuf *q = pbuf_clone(PBUF_RAW, PBUF_RAM, p);
        if (q != NULL) {
            pbuf_free(p);
            p = q;
        }
    }
    struct udgram *d = &us->q[(us->qhead + us->qn) % us->qcap];
    d->p = p;
    d->ts_ns = byp_rx_realtime_ns;
    d->src = src;
    d->sport = sport;
    d->dst = dst;
    d->drops = us->drops;
    us->qcharge += p->tot_len + U_CHARGE_OVERHEAD;
    us->qpayload += p->tot_len;
    us->rx_pkts++;
    us->rx_bytes += p->tot_len;
    __atomic_store_n(&us->qn, us->qn + 1, __ATOMIC_RELEASE);
    byp_usock_changed(us);
}

/* Whether a multicast datagram from @src to @group is for @us: a source-specific membership
 * filters by source; without a membership of its own, IP_MULTICAST_ALL decides (Linux: a
 * socket bound to the port gets the groups any socket joined). */
static int mcast_wanted(const struct usock *us, in_addr_t group, in_addr_t src)
{
    int member = 0, ssm = 0;
    for (int i = 0; i < us->ngroups; i++) {
        if (us->groups[i].group != group)
            continue;
        if (us->groups[i].source == 0)
            return 1;
        ssm = 1;
        if (us->groups[i].source == src)
            member = 1;
    }
    if (ssm)
        return member;
    return us->mcast_all;
}

/* The unbound-to-a-peer SO_REUSEPORT socket on @us's address and port that gets unicast
 * from @src:@sport: the kernel's reuseport group hashes the flow over its members (lwIP
 * would give every datagram to one of them).  Multicast goes to each socket, as there. */
static struct usock *reuseport_pick(struct usock *us, in_addr_t src, u16_t sport)
{
    unsigned n = 0, k;
#define RP_MEMBER(o) ((o)->pcb != NULL && (o)->reuseport && !(o)->connected && \
                      (o)->v6 == us->v6 && (o)->local.sin_port == us->local.sin_port && \
                      (o)->local.sin_addr.s_addr == us->local.sin_addr.s_addr)
    for (struct usock *o = byp_usocks; o != NULL; o = o->next)
        n += RP_MEMBER(o);
    if (n < 2)
        return us;
    k = byp_flow_hash(src, sport, ntohs(us->local.sin_port)) % n;
    for (struct usock *o = byp_usocks; o != NULL; o = o->next)
        if (RP_MEMBER(o) && k-- == 0)
            return o;
#undef RP_MEMBER
    return us;
}

static void on_recv(void *arg, struct udp_pcb *pcb, struct pbuf *p, const ip_addr_t *addr, u16_t port)
{
    struct usock *us = arg;
    (void)pcb;
    in_addr_t dst = ip4_addr_get_u32(ip4_current_dest_addr());
    in_addr_t src = ip4_addr_get_u32(ip_2_ip4(addr));
    if (is_multicast(dst) && !mcast_wanted(us, dst, src)) {
        byp_udp_unwanted++;
        pbuf_free(p);
        return;
    }
    if (us->reuseport && !us->connected && !is_multicast(dst))
        us = reuseport_pick(us, src, port);
    enqueue(us, p, src, htons(port), dst);
}

void byp_usock_loop(const struct usock *from, in_addr_t group, in_port_t port, const struct pbuf *p)
{
    for (struct usock *us = byp_usocks; us != NULL; us = us->next) {
        if (us->pcb == NULL || us->local.sin_port != port ||
            (us->local.sin_addr.s_addr != INADDR_ANY && us->local.sin_addr.s_addr != group) ||
            !mcast_wanted(us, group, byp_if_addr))
            continue;
        int joined = 0;
        for (int i = 0; i < us->ngroups && !joined; i++)
            joined = us->groups[i].group == group;
        if (!joined && !us->mcast_all)
            continue;
        struct pbuf *q = pbuf_clone(PBUF_RAW, PBUF_RAM, (struct pbuf *)p);
        if (q == NULL)
            continue;
        int64_t saved = byp_rx_realtime_ns;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        byp_rx_realtime_ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
        enqueue(us, q, byp_if_addr, from->local.sin_port, group);
        byp_rx_realtime_ns = saved;
    }
}

/* ---- memberships ---- */

int byp_usock_join(struct usock *us, in_addr_t group, in_addr_t source)
{
    int have_group = 0;
    for (int i = 0; i < us->ngroups; i++) {
        if (us->groups[i].group == group && us->groups[i].source == source)
            return -EADDRINUSE;
        have_group |= us->groups[i].group == group;
    }
    if (us->ngroups == us->capgroups) {
        int cap = us->capgroups ? us->capgroups * 2 : 8;
        struct ugroup *g = byp_shm_alloc((size_t)cap * sizeof *g);
        if (g == NULL)
            return -ENOMEM;
        if (us->ngroups > 0)
            memcpy(g, us->groups, (size_t)us->ngroups * sizeof *g);
        byp_shm_free(us->groups);
        us->groups = g;
        us->capgroups = cap;
    }
    if (!have_group) {
        /* lwIP only accepts groups it is a member of; its own IGMP messages are not sent
         * (netif.c): the kernel socket's membership does IGMP. */
        ip4_addr_t g4 = {.addr = group};
        if (igmp_joingroup_netif(&byp_netif, &g4) != ERR_OK)
            return -ENOBUFS;
        int rc = byp_flow_ref(IPPROTO_UDP, group, us->local.sin_port);
        if (rc < 0) {
            igmp_leavegroup_netif(&byp_netif, &g4);
            return rc;
        }
    }
    us->groups[us->ngroups++] = (struct ugroup){group, source};
    return 0;
}

int byp_usock_leave(struct usock *us, in_addr_t group, in_addr_t source)
{
    int i, left = 0;
    for (i = 0; i < us->ngroups; i++)
        if (us->groups[i].group == group && (source == INADDR_ANY || us->groups[i].source == source))
            break;
    if (i == us->ngroups)
        return -EADDRNOTAVAIL;
    us->groups[i] = us->groups[--us->ngroups];
    for (int j = 0; j < us->ngroups; j++)
        left |= us->groups[j].group == group;
    if (!left) {
        ip4_addr_t g4 = {.addr = group};
        igmp_leavegroup_netif(&byp_netif, &g4);
        byp_flow_unref(IPPROTO_UDP, group, us->local.sin_port);
    }
    return 0;
}

/* ---- taking over a kernel socket ---- */

static void install(int fd, struct usock *us)
{
    byp_fd_t *e = byp_fd_get(fd);
    if (e == NULL)
        return;   /* not reached: adopt() checked the fd */
    __atomic_store_n(&e->obj, us, __ATOMIC_RELAXED);
    __atomic_store_n(&e->kind, (uint8_t)BYP_FD_UDP, __ATOMIC_RELAXED);
    __atomic_store_n(&e->ops, &byp_udp_ops, __ATOMIC_RELEASE);
}

/* The address a socket bound to @a is steered by: the group for a socket bound to one, the
 * stack's address or the wildcard otherwise. */
static int local_ok(in_addr_t a)
{
    return a == INADDR_ANY || a == byp_if_addr || is_multicast(a);
}

/* Make kernel UDP socket @fd, bound to @local, accelerated.  @remote: connect it too. */
static int adopt(int fd, const struct sockaddr_in *local, const struct sockaddr_in *remote)
{
    if (byp_fd_get(fd) == NULL || !local_ok(local->sin_addr.s_addr) || local->sin_port == 0)
        return BYP_ENGINE_DECLINE;
    struct usock *us = byp_shm_calloc(1, sizeof *us);
    if (us == NULL)
        return BYP_ENGINE_DECLINE;
    int fl = BYP_REAL(fcntl)(fd, F_GETFL);
    us->nonblock = fl >= 0 && (fl & O_NONBLOCK);
    us->rcvtimeo_ms = us->sndtimeo_ms = -1;
    us->mcast_all = us->mcast_loop = 1;
    int domain = AF_INET;
    socklen_t dl = sizeof domain;
    BYP_REAL(getsockopt)(fd, SOL_SOCKET, SO_DOMAIN, &domain, &dl);
    us->v6 = domain == AF_INET6;   /* dual stack: its IPv4 part is ours */
    us->local = *local;
    us->rcvbuf = 212992;
    byp_usock_rcvbuf(us, fd);
    socklen_t rl = sizeof us->reuseport;
    if (BYP_REAL(getsockopt)(fd, SOL_SOCKET, SO_REUSEPORT, &us->reuseport, &rl) != 0)
        us->reuseport = 0;
    byp_stack_lock();
    struct udp_pcb *pcb = udp_new_ip_type(IPADDR_TYPE_V4);
    err_t err = ERR_MEM;
    if (pcb != NULL) {
        ip_set_option(pcb, SOF_REUSEADDR);
        ip_addr_t ip = IPADDR4_INIT(local->sin_addr.s_addr);
        err = udp_bind(pcb, &ip, ntohs(local->sin_port));
    }
    if (err == ERR_OK && remote != NULL) {
        ip_addr_t rip = IPADDR4_INIT(remote->sin_addr.s_addr);
        err = udp_connect(pcb, &rip, ntohs(remote->sin_port));
    }
    /* Unicast to a group-bound socket never happens: it is steered by its memberships. */
    int rc = err != ERR_OK ? -ENOBUFS
             : is_multicast(local->sin_addr.s_addr) ? 0
             : byp_flow_ref(IPPROTO_UDP, local->sin_addr.s_addr, local->sin_port);
    if (rc < 0) {
        if (pcb != NULL)
            udp_remove(pcb);
        byp_stack_unlock();
        byp_shm_free(us);
        byp_warn("cannot accelerate the UDP socket on port %u (lwIP error %d); it stays on the kernel",
                 ntohs(local->sin_port), err);
        return BYP_ENGINE_DECLINE;
    }
    us->has_flow = !is_multicast(local->sin_addr.s_addr);
    us->flow_addr = local->sin_addr.s_addr;
    us->flow_port = local->sin_port;
    if (remote != NULL) {
        us->connected = 1;
        us->remote = *remote;
    }
    us->pcb = pcb;
    byp_udp_opts_inherit(us, fd);
    udp_recv(pcb, on_recv, us);
    us->next = byp_usocks;
    byp_usocks = us;
    byp_refs_get(&us->refs);
    install(fd, us);
    byp_stats_udp_open(us);
    byp_stack_unlock();
    byp_udp_kpath_add(us, fd);
    byp_info("udp socket on port %u accelerated", ntohs(local->sin_port));
    return 0;
}

/* The kernel socket's local address (IPv4, or v4-mapped on a dual-stack socket), 0 or
 * -errno. */
static int local_of(int fd, struct sockaddr_in *local)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (BYP_REAL(getsockname)(fd, (struct sockaddr *)&ss, &len) < 0)
        return -errno;
    return byp_addr4_get((struct sockaddr *)&ss, len, local) >= 0 ? 0 : -EAFNOSUPPORT;
}

int byp_udp_bind(int fd, const struct sockaddr_in *local)
{
    return adopt(fd, local, NULL);
}

int byp_udp_connect(int fd, const struct sockaddr_in *remote)
{
    struct sockaddr_in local;
    if (!byp_route_ok(remote->sin_addr.s_addr) || local_of(fd, &local) < 0)
        return BYP_ENGINE_DECLINE;
    return adopt(fd, &local, remote);
}

/* The accelerated UDP socket @fd refers to, read under the lock (NULL: none). */
static struct usock *fd_sock(int fd)
{
    byp_fd_t *e = byp_fd_get(fd);
    if (e == NULL || __atomic_load_n(&e->ops, __ATOMIC_ACQUIRE) != &byp_udp_ops)
        return NULL;
    return __atomic_load_n(&e->obj, __ATOMIC_RELAXED);
}

int byp_udp_join(int fd, in_addr_t group, in_addr_t source)
{
    struct sockaddr_in local;
    if (local_of(fd, &local) < 0)
        return BYP_ENGINE_DECLINE;
    int rc = byp_fd_ops(fd) == &byp_udp_ops ? 0 : adopt(fd, &local, NULL);
    if (rc != 0)
        return rc;
    byp_stack_lock();
    struct usock *us = fd_sock(fd);
    rc = us != NULL ? byp_usock_join(us, group, source) : -EBADF;
    byp_stack_unlock();
    if (rc < 0)
        byp_warn("cannot steer group %s port %u to the stack: %s; it arrives through the kernel",
                 inet_ntoa((struct in_addr){group}), ntohs(local.sin_port), strerror(-rc));
    return 0;
}

/* ---- close ---- */

/* The last reference of the family is gone: leave the groups, stop steering, drop the queue,
 * free (lock held). */
static void usock_close(struct usock *us)
{
    while (us->ngroups > 0)
        byp_usock_leave(us, us->groups[0].group, us->groups[0].source);
    if (us->has_flow)
        byp_flow_unref(IPPROTO_UDP, us->flow_addr, us->flow_port);
    if (us->pcb != NULL)
        udp_remove(us->pcb);
    us->pcb = NULL;
    while (us->qn > 0) {
        struct udgram d;
        byp_usock_pop(us, &d);
        pbuf_free(d.p);
    }
    for (struct usock **pp = &byp_usocks; *pp != NULL; pp = &(*pp)->next)
        if (*pp == us) {
            *pp = us->next;
            break;
        }
    byp_stats_udp_close(us);
    byp_usock_changed(us);
}

static void usock_free(struct usock *us)
{
    byp_shm_free(us->q);
    byp_shm_free(us->groups);
    byp_shm_free(us);
}

void byp_udp_release(int fd)
{
    byp_stack_lock();
    struct usock *us = fd_sock(fd);
    if (us == NULL) {
        byp_stack_unlock();   /* another thread's close of the same fd got here first */
        return;
    }
    /* The fd stops referring to the socket under the lock: a call entering after this sees
     * it closed (EBADF), not a socket about to be freed. */
    __atomic_store_n(&byp_fd_get(fd)->obj, NULL, __ATOMIC_RELAXED);
    uint32_t left = byp_refs_put(&us->refs);
    uint32_t mine = byp_refs_mine(&us->refs);
    /* The kernel socket goes with the family's last fd (calls may still run on the stack's
     * side): out of the kernel-path set while the number is still this socket's. */
    if (byp_refs_fds(&us->refs) == 0)
        byp_udp_kpath_del(us, fd);
    if (left == 0)
        usock_close(us);
    byp_stack_unlock();
    /* Out of this process's epoll sets once it holds no fd for it. */
    if (mine == 0)
        byp_epoll_forget(fd, us);
    if (left == 0)
        usock_free(us);
}

void *byp_udp_ref(int fd)
{
    byp_stack_lock();
    struct usock *us = fd_sock(fd);
    if (us != NULL)
        byp_refs_get(&us->refs);
    byp_stack_unlock();
    return us;
}

struct usock *byp_usock_enter(int fd)
{
    byp_stack_lock();
    struct usock *us = fd_sock(fd);
    if (us == NULL) {
        byp_stack_unlock();
        errno = EBADF;
        return NULL;
    }
    byp_refs_call_get(&us->refs);
    byp_holder.usock = us;
    return us;
}

void byp_usock_exit(struct usock *us)
{
    int saved = errno;
    uint32_t left = byp_refs_call_put(&us->refs);
    if (left == 0)
        usock_close(us);   /* closed by another thread while this call ran */
    byp_stack_unlock_udp();
    if (left == 0)
        usock_free(us);
    errno = saved;
}

struct usock *byp_usock_pin(int fd)
{
    struct usock *us = byp_usock_enter(fd);
    if (us != NULL)
        byp_stack_unlock_udp();
    return us;
}

void byp_usock_unpin(struct usock *us)
{
    byp_stack_lock();
    byp_usock_exit(us);
}

/* After a lock holder died (repair.h): each queue's indices in range, its counted slots
 * holding a datagram (a pop cut short leaves its slot empty at the head: skipped).  The
 * dead call's own socket keeps its queue: a datagram lost or seen twice is UDP's lot. */
int byp_udp_repair_socks(void *suspect)
{
    (void)suspect;
    unsigned n = 0;
    for (struct usock **link = &byp_usocks; *link != NULL; link = &(*link)->next) {
        struct usock *us = *link;
        if (n++ >= MEMP_NUM_UDP_PCB) {
            *link = NULL;
            break;
        }
        if (us->qcap == 0 || us->qhead >= us->qcap || us->qn > us->qcap) {
            us->qn = 0;   /* what it held is leaked */
            us->qhead = 0;
            us->qcharge = us->qpayload = 0;
            continue;
        }
        while (us->qn > 0 && us->q[us->qhead].p == NULL) {
            us->qhead = (us->qhead + 1) % us->qcap;
            us->qn--;
        }
        for (unsigned i = 0; i < us->qn; i++)
            if (us->q[(us->qhead + i) % us->qcap].p == NULL) {
                us->qn = i;   /* the rest is leaked */
                break;
            }
    }
    return 0;
}

int byp_udp_holds_pbuf(const struct pbuf *target)
{
    unsigned n = 0;
    for (const struct usock *us = byp_usocks; us != NULL && n++ < MEMP_NUM_UDP_PCB; us = us->next)
        for (unsigned i = 0; us->qcap > 0 && i < us->qn; i++)
            if (byp_repair_chain_has(us->q[(us->qhead + i) % us->qcap].p, target))
                return 1;
    return 0;
}

void byp_udp_fork_refs(int slot)
{
    unsigned end = __atomic_load_n(&byp_fdtab_hwm, __ATOMIC_RELAXED);
    for (unsigned fd = 0; fd < end; fd++)
        if (byp_fdtab[fd].ops == &byp_udp_ops)
            if (US(fd) != NULL)   /* NULL: being closed */
                byp_refs_get_for(&US(fd)->refs, slot);
}

void byp_udp_spawn_handover(const int *extra, int nextra, int listed, int inherited_too,
                            const char *to)
{
    unsigned end = __atomic_load_n(&byp_fdtab_hwm, __ATOMIC_RELAXED);
    for (unsigned fd = 0; fd < end; fd++) {
        struct usock *us = byp_fdtab[fd].ops == &byp_udp_ops ? US(fd) : NULL;
        /* A socket sent or named by a dup2 file action, or any that survives an exec
         * (@inherited_too); one merely not FD_CLOEXEC at a spawn stays, as a listener does
         * (tcp_handover.c). */
        int how = us != NULL ? byp_fd_inherited(fd, extra, nextra, listed) : 0;
        if (how == 0 || (how == 1 && !inherited_too))
            continue;
        /* Both processes now read the kernel socket, this one through its second path:
         * its datagrams stop coming to the stack (those queued here stay here). */
        int rc = us->has_flow ? byp_flow_hand(IPPROTO_UDP, us->flow_addr, us->flow_port) : 0;
        for (int i = 0; i < us->ngroups && rc == 0; i++)
            rc = byp_flow_hand(IPPROTO_UDP, us->groups[i].group, us->local.sin_port);
        if (rc < 0)
            byp_warn("fd %u: a UDP socket passed to %s: its datagrams keep coming to this "
                     "process (%s)", fd, to, strerror(-rc));
        else
            byp_info("fd %u: a UDP socket passed to %s: its datagrams to port %u go to the "
                     "kernel", fd, to, ntohs(us->local.sin_port));
    }
}

void byp_udp_drop_member(int slot)
{
    for (struct usock *us = byp_usocks, *next; us != NULL; us = next) {
        next = us->next;
        int calls = us->refs.calls_per[slot];
        if (byp_refs_held(&us->refs, slot) && byp_refs_drop(&us->refs, slot) == 0) {
            usock_close(us);
            /* This process leaving while its other threads are inside calls on it: closed,
             * left to them rather than freed (a leak at exit). */
            if (!(slot == byp_local->slot && calls > 0))
                usock_free(us);
        }
    }
}
