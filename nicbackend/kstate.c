/* Reading interface state from the kernel with libnl-3 (route family). */
#include <errno.h>
#include <net/if.h>
#include <string.h>

#include <linux/neighbour.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/neighbour.h>

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
