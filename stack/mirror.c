/* The stack's side of the live kernel mirror: what the kernel says about the accelerated
 * interface (nicbackend/kstate.c reads it over netlink) applied to lwIP, and the lookups the
 * data path makes in it.
 *
 * Applying (progress thread): a new snapshot is copied into shared memory outside the lock,
 * then, under the stack lock, swapped in and applied: MAC, MTU and carrier to the netif, the
 * primary address to the netif, the neighbours to lwIP's ARP table (netif.c), and the
 * generation counter moves.
 *
 * Routing: the netif's netmask is /32, so lwIP asks LWIP_HOOK_ETHARP_GET_GW for every
 * destination but our own; the hook answers from a small per-destination next-hop cache,
 * filled from the mirrored main table (longest prefix first, then metric) and valid while
 * the generation it was filled at is the current one.  A destination whose route does not
 * leave through our interface (another interface, blackhole, unreachable, prohibit, none)
 * gets no next hop: lwIP's output fails with ERR_RTE and TCP retries as it would after a
 * loss, as the kernel's does while a route is missing.  Connects are checked up front
 * (byp_route_ok) and go to the kernel when the route is not ours.
 *
 * Addresses: lwIP 2.1 has one address per netif, the primary one.  Frames steered to us
 * for another address the kernel has on the interface are accepted by netif.c, which shows
 * lwIP that address as the netif's for the duration of the frame (byp_addr_is_local); an
 * accepted connection then keeps the SYN's destination as its source. */
#include <arpa/inet.h>
#include <errno.h>
#include <string.h>

#include <linux/rtnetlink.h>

#include "lwip/etharp.h"
#include "lwip/ip4_addr.h"
#include "lwip/netif.h"

#include "byp_stack.h"
#include "engine_int.h"
#include "kstate.h"
#include "log.h"
#include "shm.h"

#define MAX_ADDRS 64
#define NH_CACHE 256   /* per-destination next hops, direct mapped */

struct nh_entry {
    in_addr_t dst;
    uint32_t gen;      /* 0: empty */
    ip4_addr_t hop;    /* gateway, or dst itself when on-link */
    int verdict;       /* 0 ours, BYP_ROUTE_ELSEWHERE, or -errno */
};

/* The mirrored state, in shared memory so that forked children see it move. */
struct mirror {
    uint32_t gen;
    unsigned mtu;
    int up;
    uint8_t mac[6];
    int naddrs, nroutes, nneigh;
    struct byp_kaddr addrs[MAX_ADDRS];
    struct byp_kroute *routes;
    struct byp_kneigh *neigh;
    struct nh_entry nh[NH_CACHE];
};
static struct mirror *M;

uint32_t byp_mirror_gen(void)
{
    return M ? M->gen : 0;
}

static in_addr_t mask_of(unsigned plen)
{
    return plen ? htonl(~0u << (32 - plen)) : 0;
}

int byp_addr_is_local(in_addr_t a)
{
    if (M == NULL)
        return a == byp_if_addr;
    for (int i = 0; i < M->naddrs; i++)
        if (M->addrs[i].addr == a)
            return 1;
    return 0;
}

/* The route for @dst: 0 and the next hop in @hop when it leaves through our interface. */
static int route_lookup(in_addr_t dst, in_addr_t *hop)
{
    for (int i = 0; i < M->nroutes; i++) {
        const struct byp_kroute *r = &M->routes[i];
        if ((dst & mask_of(r->plen)) != r->dst)
            continue;
        switch (r->type) {
        case RTN_UNICAST:
            if (!r->ours)
                return BYP_ROUTE_ELSEWHERE;
            *hop = r->gw ? r->gw : dst;
            return 0;
        case RTN_BLACKHOLE:
            return -EINVAL;
        case RTN_UNREACHABLE:
            return -EHOSTUNREACH;
        case RTN_PROHIBIT:
            return -EACCES;
        default:
            return BYP_ROUTE_ELSEWHERE;   /* local, broadcast, throw, nat...: the kernel's */
        }
    }
    return -ENETUNREACH;
}

int byp_nexthop(in_addr_t dst, in_addr_t *hop)
{
    if (M == NULL) {
        /* Not mirrored (a dedicated interface): on-link, else the netif's gateway if any. */
        in_addr_t gw = ip4_addr_get_u32(netif_ip4_gw(&byp_netif));
        *hop = (dst & byp_if_mask) == (byp_if_addr & byp_if_mask) ? dst : gw;
        return *hop != 0 ? 0 : -ENETUNREACH;
    }
    struct nh_entry *e = &M->nh[(ntohl(dst) * 2654435761u) >> 24];
    if (e->gen != M->gen || e->dst != dst) {
        in_addr_t h = 0;
        e->verdict = route_lookup(dst, &h);
        e->hop.addr = h;
        e->dst = dst;
        e->gen = M->gen;
    }
    *hop = e->hop.addr;
    return e->verdict;
}

const ip4_addr_t *byp_lwip_gw(struct netif *ni, const ip4_addr_t *dst)
{
    (void)ni;
    if (M == NULL)
        return NULL;
    in_addr_t hop;
    if (byp_nexthop(dst->addr, &hop) != 0)
        return NULL;
    return &M->nh[(ntohl(dst->addr) * 2654435761u) >> 24].hop;
}

int byp_mirror_route_ok(in_addr_t addr)
{
    in_addr_t hop;
    if (M == NULL)
        return -ENOENT;
    byp_stack_lock();
    int ok = !byp_addr_is_local(addr) && byp_nexthop(addr, &hop) == 0;
    byp_stack_unlock_noflush();
    return ok;
}

in_addr_t byp_route_src(in_addr_t dst)
{
    if (M == NULL || M->naddrs == 0)
        return byp_if_addr;
    in_addr_t hop = dst;
    for (int i = 0; i < M->nroutes; i++) {
        const struct byp_kroute *r = &M->routes[i];
        if ((dst & mask_of(r->plen)) == r->dst) {
            if (r->prefsrc && byp_addr_is_local(r->prefsrc))
                return r->prefsrc;
            if (r->gw)
                hop = r->gw;
            break;
        }
    }
    /* As the kernel: a primary address whose subnet holds the next hop, else the first. */
    for (int i = 0; i < M->naddrs; i++)
        if ((hop & mask_of(M->addrs[i].prefixlen)) == (M->addrs[i].addr & mask_of(M->addrs[i].prefixlen)))
            return M->addrs[i].addr;
    return M->addrs[0].addr;
}

static unsigned m_ifindex;   /* the interface mirrored (or that failed to be) */

int byp_kneigh_find(in_addr_t addr, uint8_t mac[6])
{
    if (M == NULL) {
        /* Not mirrored (the mirror failed to start): ask the kernel with a dump, as before
         * the mirror existed; only while lwIP waits for this neighbour. */
        uint8_t tmp[6];
        if (byp_kstate_get_neigh(m_ifindex, addr, mac ? mac : tmp) == 0)
            return NUD_REACHABLE;
        return -ENOENT;
    }
    for (int i = 0; i < M->nneigh; i++)
        if (M->neigh[i].addr == addr) {
            if (mac != NULL)
                memcpy(mac, M->neigh[i].mac, 6);
            return M->neigh[i].state;
        }
    return -ENOENT;
}

/* ---- applying a snapshot (progress thread) ---- */

static void *shm_copy(const void *src, size_t bytes)
{
    void *p = byp_shm_alloc(bytes ? bytes : 1);
    if (p != NULL && bytes)
        memcpy(p, src, bytes);
    return p;
}

static void apply(const struct byp_kview *v)
{
    struct byp_kroute *routes = shm_copy(v->routes, (size_t)v->nroutes * sizeof *routes);
    struct byp_kneigh *neigh = shm_copy(v->neigh, (size_t)v->nneigh * sizeof *neigh);
    if (routes == NULL || neigh == NULL) {
        byp_shm_free(routes);
        byp_shm_free(neigh);
        byp_warn("kernel mirror: out of shared memory; the stack keeps the previous routes and neighbours");
        return;
    }
    byp_stack_lock();
    struct byp_kroute *old_routes = M->routes;
    struct byp_kneigh *old_neigh = M->neigh;
    M->routes = routes;
    M->nroutes = v->nroutes;
    M->neigh = neigh;
    M->nneigh = v->nneigh;
    M->naddrs = v->naddrs < MAX_ADDRS ? v->naddrs : MAX_ADDRS;
    memcpy(M->addrs, v->addrs, (size_t)M->naddrs * sizeof M->addrs[0]);

    if (memcmp(M->mac, v->mac, 6) != 0) {
        memcpy(M->mac, v->mac, 6);
        memcpy(byp_netif.hwaddr, v->mac, 6);
        byp_info("interface MAC address is now %02x:%02x:%02x:%02x:%02x:%02x", v->mac[0],
                 v->mac[1], v->mac[2], v->mac[3], v->mac[4], v->mac[5]);
    }
    if (v->mtu != M->mtu && v->mtu >= 576) {
        M->mtu = v->mtu;
        byp_netif.mtu = (u16_t)(v->mtu > 1500 ? 1500 : v->mtu);
        byp_info("interface MTU is now %u: new connections' MSS follows", v->mtu);
    }
    if (v->up != M->up) {
        M->up = v->up;
        if (v->up)
            netif_set_link_up(&byp_netif);
        else
            netif_set_link_down(&byp_netif);
        byp_info("interface link %s", v->up ? "up: transmission resumes" : "down: transmission held");
    }
    if (M->naddrs > 0 && M->addrs[0].addr != byp_if_addr) {
        /* The primary address changed: lwIP's netif takes the new one (connections bound to
         * the old primary are ended by lwIP; the kernel's would stall). */
        ip4_addr_t ip = {.addr = M->addrs[0].addr};
        byp_info("primary address is now %s/%u", inet_ntoa((struct in_addr){ip.addr}),
                 M->addrs[0].prefixlen);
        byp_if_addr = ip.addr;
        byp_if_mask = mask_of(M->addrs[0].prefixlen);
        netif_set_ipaddr(&byp_netif, &ip);
    }
    if (M->naddrs == 0 && byp_if_addr != 0) {
        /* No address left: claim none (lwIP drops what arrives, sends nothing). */
        byp_info("the interface has no IPv4 address any more");
        byp_if_addr = 0;
        netif_set_ipaddr(&byp_netif, IP4_ADDR_ANY4);
    }
    M->gen++;
    if (M->gen == 0)
        M->gen = 1;   /* 0 marks an empty next-hop slot */
    byp_neigh_sync();
    byp_stack_unlock_stale();
    byp_shm_free(old_routes);
    byp_shm_free(old_neigh);
}

int byp_mirror_start(unsigned ifindex)
{
    m_ifindex = ifindex;
    M = byp_shm_calloc(1, sizeof *M);
    if (M == NULL)
        return -ENOMEM;
    M->gen = 1;
    M->up = 1;                 /* as byp_netif_setup left the netif */
    M->mtu = byp_netif.mtu;
    memcpy(M->mac, byp_netif.hwaddr, 6);
    byp_stack_lock();
    /* Every destination but our own address goes through the next-hop hook. */
    ip4_addr_t host = {.addr = 0xffffffffu};
    netif_set_netmask(&byp_netif, &host);
    byp_stack_unlock();
    int rc = byp_kmirror_start(ifindex, apply);
    if (rc < 0) {
        byp_shm_free(M);
        M = NULL;
        byp_stack_lock();
        ip4_addr_t mask = {.addr = byp_if_mask};
        netif_set_netmask(&byp_netif, &mask);
        byp_stack_unlock();
    }
    return rc;
}
