/* The kernel's view of an interface over rtnetlink (libnl-3): a one-off read at start
 * (byp_kstate_get_if) and the live mirror (byp_kmirror_*), a libnl cache manager with the
 * link, address, route and neighbour caches whose change notifications rebuild a plain
 * snapshot (struct byp_kview) handed to the stack.  The progress thread owns the mirror. */
#ifndef BYP_KSTATE_H
#define BYP_KSTATE_H

#include <linux/neighbour.h>
#include <netinet/in.h>
#include <stdint.h>

struct byp_kif {
    unsigned ifindex;
    uint8_t mac[6];
    unsigned mtu;
    int up;                 /* IFF_UP and carrier (IFF_RUNNING) */
    in_addr_t addr;         /* first (primary) IPv4 address, network order; 0 if none */
    uint8_t prefixlen;
    char kind[16];          /* the driver's link kind (IFLA_INFO_KIND): "veth", ""... */
};

/* Fill @out for interface @ifname of the current network namespace.
 * Errors: -ENODEV (no such interface), -ENOMEM, -EIO (netlink failure).  An interface
 * without IPv4 address is not an error (addr 0). */
int byp_kstate_get_if(const char *ifname, struct byp_kif *out);

/* The kernel's neighbour entry for IPv4 @addr on @ifindex, if it is usable (REACHABLE,
 * STALE, DELAY, PROBE or PERMANENT), read with a one-off dump (when there is no mirror).
 * Errors: -ENOENT (none), -ENOMEM, -EIO. */
int byp_kstate_get_neigh(unsigned ifindex, in_addr_t addr, uint8_t mac[6]);

/* An IPv4 address of the interface. */
struct byp_kaddr {
    in_addr_t addr;         /* network order */
    uint8_t prefixlen;
};

/* A route of the main table (IPv4). */
struct byp_kroute {
    in_addr_t dst;          /* network order, masked */
    uint8_t plen;
    uint8_t type;           /* RTN_UNICAST, RTN_BLACKHOLE, RTN_UNREACHABLE, RTN_PROHIBIT, ... */
    uint8_t ours;           /* unicast and its (first) next hop leaves through our interface */
    in_addr_t gw;           /* gateway, 0 when on-link */
    in_addr_t prefsrc;      /* preferred source, 0 if none */
    uint32_t prio;          /* metric: lower wins among equal prefixes */
};

/* A neighbour of the interface (IPv4). */
struct byp_kneigh {
    in_addr_t addr;
    uint8_t mac[6];
    uint16_t state;         /* NUD_* */
};

/* What the kernel says about the interface now.  Arrays are malloc'ed by the mirror and
 * valid during the apply callback only; routes are sorted longest prefix first, then by
 * metric. */
struct byp_kview {
    unsigned ifindex;
    uint8_t mac[6];
    unsigned mtu;
    int up;                 /* IFF_UP and IFF_RUNNING (carrier) */
    int naddrs, nroutes, nneigh;
    struct byp_kaddr *addrs;    /* primary first, as the kernel lists them */
    struct byp_kroute *routes;
    struct byp_kneigh *neigh;
};

/* Receives each new snapshot (progress thread, no lock held). */
typedef void (*byp_kview_fn)(const struct byp_kview *view);

/* Start the live mirror of interface @ifindex: caches filled, @apply called once with the
 * first snapshot before returning.  Errors: -ENOMEM, -EIO (netlink). */
int byp_kmirror_start(unsigned ifindex, byp_kview_fn apply);
/* The fd to poll for changes (readable when the kernel sent some); -1 before start. */
int byp_kmirror_fd(void);
/* Read what the kernel sent (never blocks) and, when something about our interface
 * changed, call @apply with a new snapshot.  Returns the number of messages read (0 if
 * none) or -EIO. */
int byp_kmirror_poll(void);
/* Whether a change is still to be applied (its snapshot found no memory): the next poll
 * retries it. */
int byp_kmirror_dirty(void);

/* Refill the caches from the kernel and apply a new snapshot: for a process that takes
 * the mirror over from another (a forked child becoming the progress thread's owner: its
 * inherited caches are as old as the fork).  0 or -EIO. */
int byp_kmirror_resync(void);

/* Whether @state (NUD_*) is a neighbour entry one can send to. */
static inline int byp_kneigh_usable(unsigned state)
{
    return (state & (NUD_REACHABLE | NUD_STALE | NUD_DELAY | NUD_PROBE | NUD_PERMANENT)) != 0;
}

#endif
