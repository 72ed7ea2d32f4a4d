/* The kernel's state of the accelerated interface with libnl-3 (route family): a one-off
 * read at start, then a live mirror.
 *
 * The mirror is libnl's cache manager with four caches (route/link, route/addr, route/route,
 * route/neigh) on one non-blocking netlink socket subscribed to their multicast groups.  The
 * progress thread polls it; libnl applies each notification to its cache (deletes included)
 * and calls our change callback, which only notes whether the change concerns our interface.
 * After a read that did, a fresh snapshot of everything the stack needs is built from the
 * caches and handed to the stack's apply function, which diffs it against what it uses. */
#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>

#include <linux/neighbour.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/neighbour.h>
#include <netlink/route/route.h>
#include <netlink/cache.h>
#include <stdlib.h>
#include <linux/rtnetlink.h>

#include "kstate.h"

static struct nl_sock *connect_route(void)
{
    struct nl_sock *sk = nl_socket_alloc();

    if (!sk)
        return NULL;
    if (nl_connect(sk, NETLINK_ROUTE) < 0) {
        nl_socket_free(sk);
        return NULL;
    }
    return sk;
}

/* First IPv4 address of @ifindex (the kernel lists the primary first). */
static int first_ipv4(struct nl_sock *sk, unsigned ifindex, struct byp_kif *out)
{
    struct nl_cache *cache;
    struct nl_object *obj;

    if (rtnl_addr_alloc_cache(sk, &cache) < 0)
        return -EIO;
    for (obj = nl_cache_get_first(cache); obj; obj = nl_cache_get_next(obj)) {
        struct rtnl_addr *a = (struct rtnl_addr *)obj;
        struct nl_addr *local;

        if (rtnl_addr_get_ifindex(a) != (int)ifindex || rtnl_addr_get_family(a) != AF_INET)
            continue;
        local = rtnl_addr_get_local(a);
        if (!local || nl_addr_get_len(local) != 4)
            continue;
        memcpy(&out->addr, nl_addr_get_binary_addr(local), 4);
        out->prefixlen = (uint8_t)rtnl_addr_get_prefixlen(a);
        break;
    }
    nl_cache_free(cache);
    return 0;
}

int byp_kstate_get_if(const char *ifname, struct byp_kif *out)
{
    struct nl_sock *sk;
    struct rtnl_link *link = NULL;
    struct nl_addr *ll;
    unsigned flags;
    int ret;

    memset(out, 0, sizeof(*out));
    sk = connect_route();
    if (!sk)
        return -EIO;
    ret = rtnl_link_get_kernel(sk, 0, ifname, &link);
    if (ret < 0) {
        nl_socket_free(sk);
        return ret == -NLE_OBJ_NOTFOUND || ret == -NLE_NODEV ? -ENODEV : -EIO;
    }
    out->ifindex = (unsigned)rtnl_link_get_ifindex(link);
    out->mtu = rtnl_link_get_mtu(link);
    flags = rtnl_link_get_flags(link);
    out->up = (flags & IFF_UP) && (flags & IFF_RUNNING);
    ll = rtnl_link_get_addr(link);
    if (ll && nl_addr_get_len(ll) == 6)
        memcpy(out->mac, nl_addr_get_binary_addr(ll), 6);
    if (rtnl_link_get_type(link) != NULL)
        snprintf(out->kind, sizeof out->kind, "%s", rtnl_link_get_type(link));
    rtnl_link_put(link);
    ret = first_ipv4(sk, out->ifindex, out);
    nl_socket_free(sk);
    return ret;
}

int byp_kstate_get_neigh(unsigned ifindex, in_addr_t addr, uint8_t mac[6])
{
    struct nl_sock *sk;
    struct nl_cache *cache;
    struct nl_addr *dst;
    struct rtnl_neigh *n;
    int ret = -ENOENT;

    sk = connect_route();
    if (!sk)
        return -EIO;
    if (rtnl_neigh_alloc_cache(sk, &cache) < 0) {
        nl_socket_free(sk);
        return -EIO;
    }
    dst = nl_addr_build(AF_INET, &addr, 4);
    if (!dst) {
        ret = -ENOMEM;
        goto out;
    }
    n = rtnl_neigh_get(cache, (int)ifindex, dst);
    if (n) {
        int state = rtnl_neigh_get_state(n);
        struct nl_addr *ll = rtnl_neigh_get_lladdr(n);

        if ((state & (NUD_REACHABLE | NUD_STALE | NUD_DELAY | NUD_PROBE | NUD_PERMANENT)) &&
            ll && nl_addr_get_len(ll) == 6) {
            memcpy(mac, nl_addr_get_binary_addr(ll), 6);
            ret = 0;
        }
        rtnl_neigh_put(n);
    }
    nl_addr_put(dst);
out:
    nl_cache_free(cache);
    nl_socket_free(sk);
    return ret;
}

/* ---- the live mirror ---- */

static struct nl_cache_mngr *mngr;
static struct nl_cache *c_link, *c_addr, *c_route, *c_neigh;
static unsigned m_ifindex;
static byp_kview_fn m_apply;
static int m_dirty;
static int m_ready;   /* set once started: the progress thread may already be polling */

static int ipv4_of(struct nl_addr *a, in_addr_t *out)
{
    if (a == NULL || nl_addr_get_family(a) != AF_INET || nl_addr_get_len(a) != 4)
        return 0;
    memcpy(out, nl_addr_get_binary_addr(a), 4);
    return 1;
}

/* Change callback of every cache: note changes that may concern our interface.  Routes of
 * other interfaces matter too (a more specific route through another interface takes a
 * destination away from us), so any IPv4 main-table route counts. */
static void on_change(struct nl_cache *cache, struct nl_object *obj, int action, void *arg)
{
    (void)cache;
    (void)action;
    (void)arg;
    const char *type = nl_object_get_type(obj);
    if (strcmp(type, "route/link") == 0)
        m_dirty |= rtnl_link_get_ifindex((struct rtnl_link *)obj) == (int)m_ifindex;
    else if (strcmp(type, "route/addr") == 0)
        m_dirty |= rtnl_addr_get_ifindex((struct rtnl_addr *)obj) == (int)m_ifindex;
    else if (strcmp(type, "route/neigh") == 0)
        m_dirty |= rtnl_neigh_get_ifindex((struct rtnl_neigh *)obj) == (int)m_ifindex;
    else if (strcmp(type, "route/route") == 0)
        m_dirty |= rtnl_route_get_family((struct rtnl_route *)obj) == AF_INET;
    else
        m_dirty = 1;
}

static int route_cmp(const void *a, const void *b)
{
    const struct byp_kroute *x = a, *y = b;
    if (x->plen != y->plen)
        return x->plen > y->plen ? -1 : 1;
    return x->prio < y->prio ? -1 : x->prio > y->prio;
}

/* Grow-as-needed append; returns the new slot or NULL. */
static void *push(void **arr, int *n, int *cap, size_t size)
{
    if (*n == *cap) {
        int nc = *cap ? *cap * 2 : 16;
        void *p = realloc(*arr, (size_t)nc * size);
        if (p == NULL)
            return NULL;
        *arr = p;
        *cap = nc;
    }
    return (char *)*arr + (size_t)(*n)++ * size;
}

static int snapshot(struct byp_kview *v)
{
    int cap_a = 0, cap_r = 0, cap_n = 0;
    memset(v, 0, sizeof *v);
    v->ifindex = m_ifindex;
    struct rtnl_link *link = rtnl_link_get(c_link, (int)m_ifindex);
    if (link != NULL) {
        unsigned flags = rtnl_link_get_flags(link);
        struct nl_addr *ll = rtnl_link_get_addr(link);
        v->mtu = rtnl_link_get_mtu(link);
        v->up = (flags & IFF_UP) && (flags & IFF_RUNNING);
        if (ll && nl_addr_get_len(ll) == 6)
            memcpy(v->mac, nl_addr_get_binary_addr(ll), 6);
        rtnl_link_put(link);
    }
    for (struct nl_object *o = nl_cache_get_first(c_addr); o; o = nl_cache_get_next(o)) {
        struct rtnl_addr *a = (struct rtnl_addr *)o;
        in_addr_t ip;
        if (rtnl_addr_get_ifindex(a) != (int)m_ifindex || !ipv4_of(rtnl_addr_get_local(a), &ip))
            continue;
        struct byp_kaddr *ka = push((void **)&v->addrs, &v->naddrs, &cap_a, sizeof *ka);
        if (ka == NULL)
            return -ENOMEM;
        ka->addr = ip;
        ka->prefixlen = (uint8_t)rtnl_addr_get_prefixlen(a);
        /* The kernel lists a secondary after its primary; keep primaries first anyway. */
        if (!(rtnl_addr_get_flags(a) & IFA_F_SECONDARY) && v->naddrs > 1) {
            struct byp_kaddr t = *ka;
            memmove(v->addrs + 1, v->addrs, (size_t)(v->naddrs - 1) * sizeof t);
            v->addrs[0] = t;
        }
    }
    for (struct nl_object *o = nl_cache_get_first(c_route); o; o = nl_cache_get_next(o)) {
        struct rtnl_route *r = (struct rtnl_route *)o;
        if (rtnl_route_get_family(r) != AF_INET || rtnl_route_get_table(r) != RT_TABLE_MAIN)
            continue;
        struct nl_addr *d = rtnl_route_get_dst(r);
        in_addr_t dst = 0;
        if (d != NULL && nl_addr_get_len(d) == 4)
            memcpy(&dst, nl_addr_get_binary_addr(d), 4);
        struct byp_kroute *kr = push((void **)&v->routes, &v->nroutes, &cap_r, sizeof *kr);
        if (kr == NULL)
            return -ENOMEM;
        memset(kr, 0, sizeof *kr);
        kr->plen = d ? (uint8_t)nl_addr_get_prefixlen(d) : 0;
        kr->dst = kr->plen ? dst & htonl(~0u << (32 - kr->plen)) : 0;
        kr->type = (uint8_t)rtnl_route_get_type(r);
        kr->prio = rtnl_route_get_priority(r);
        ipv4_of(rtnl_route_get_pref_src(r), &kr->prefsrc);
        if (kr->type == RTN_UNICAST && rtnl_route_get_nnexthops(r) > 0) {
            struct rtnl_nexthop *nh = rtnl_route_nexthop_n(r, 0);
            kr->ours = rtnl_route_nh_get_ifindex(nh) == (int)m_ifindex;
            ipv4_of(rtnl_route_nh_get_gateway(nh), &kr->gw);
        }
    }
    if (v->nroutes > 1)
        qsort(v->routes, (size_t)v->nroutes, sizeof *v->routes, route_cmp);
    for (struct nl_object *o = nl_cache_get_first(c_neigh); o; o = nl_cache_get_next(o)) {
        struct rtnl_neigh *n = (struct rtnl_neigh *)o;
        in_addr_t ip;
        if (rtnl_neigh_get_ifindex(n) != (int)m_ifindex || !ipv4_of(rtnl_neigh_get_dst(n), &ip))
            continue;
        struct byp_kneigh *kn = push((void **)&v->neigh, &v->nneigh, &cap_n, sizeof *kn);
        if (kn == NULL)
            return -ENOMEM;
        memset(kn, 0, sizeof *kn);
        kn->addr = ip;
        kn->state = (uint16_t)rtnl_neigh_get_state(n);
        struct nl_addr *ll = rtnl_neigh_get_lladdr(n);
        if (ll && nl_addr_get_len(ll) == 6)
            memcpy(kn->mac, nl_addr_get_binary_addr(ll), 6);
    }
    return 0;
}

static void publish(void)
{
    struct byp_kview v;
    m_dirty = 0;
    if (snapshot(&v) == 0)
        m_apply(&v);
    else
        m_dirty = 1;   /* out of memory: try again on the next poll */
    free(v.addrs);
    free(v.routes);
    free(v.neigh);
}

int byp_kmirror_start(unsigned ifindex, byp_kview_fn apply)
{
    static const char *const names[] = {"route/link", "route/addr", "route/route", "route/neigh"};
    struct nl_cache **caches[] = {&c_link, &c_addr, &c_route, &c_neigh};
    m_ifindex = ifindex;
    m_apply = apply;
    if (nl_cache_mngr_alloc(NULL, NETLINK_ROUTE, 0, &mngr) < 0)
        return -EIO;
    for (int i = 0; i < 4; i++) {
        int rc = nl_cache_mngr_add(mngr, names[i], on_change, NULL, caches[i]);
        if (rc < 0) {
            nl_cache_mngr_free(mngr);
            mngr = NULL;
            return -EIO;
        }
    }
    publish();
    __atomic_store_n(&m_ready, 1, __ATOMIC_RELEASE);
    return 0;
}

int byp_kmirror_fd(void)
{
    return __atomic_load_n(&m_ready, __ATOMIC_ACQUIRE) ? nl_cache_mngr_get_fd(mngr) : -1;
}

/* Refill every cache from a dump over a socket of its own. */
static int refill(void)
{
    struct nl_sock *sk = connect_route();
    int bad = sk == NULL;
    struct nl_cache *all[] = {c_link, c_addr, c_route, c_neigh};
    for (int i = 0; i < 4 && !bad; i++)
        bad = nl_cache_refill(sk, all[i]) < 0;
    if (sk != NULL)
        nl_socket_free(sk);
    if (bad)
        return -EIO;
    m_dirty = 1;
    return 0;
}

int byp_kmirror_resync(void)
{
    if (!__atomic_load_n(&m_ready, __ATOMIC_ACQUIRE))
        return 0;
    (void)nl_cache_mngr_data_ready(mngr);   /* drain what is queued: the dump supersedes it */
    int rc = refill();
    if (rc == 0)
        publish();
    return rc;
}

int byp_kmirror_dirty(void)
{
    return m_dirty;
}

int byp_kmirror_poll(void)
{
    if (!__atomic_load_n(&m_ready, __ATOMIC_ACQUIRE))
        return 0;
    int n = nl_cache_mngr_data_ready(mngr);
    if (n < 0 && refill() < 0)   /* lost messages (ENOBUFS on a burst): caches may be stale */
        return -EIO;
    if (m_dirty)
        publish();
    return n < 0 ? 0 : n;
}
