/* The kernel's view of an interface, read once over rtnetlink (libnl-3).  The live mirror
 * with change notifications (config/) builds on the same calls. */
#ifndef BYP_KSTATE_H
#define BYP_KSTATE_H

#include <netinet/in.h>
#include <stdint.h>

struct byp_kif {
    unsigned ifindex;
    uint8_t mac[6];
    unsigned mtu;
    int up;                 /* IFF_UP and carrier (IFF_RUNNING) */
    in_addr_t addr;         /* first (primary) IPv4 address, network order; 0 if none */
    uint8_t prefixlen;
};

/* Fill @out for interface @ifname of the current network namespace.
 * Errors: -ENODEV (no such interface), -ENOMEM, -EIO (netlink failure).  An interface
 * without IPv4 address is not an error (addr 0). */
int byp_kstate_get_if(const char *ifname, struct byp_kif *out);

/* The kernel's neighbour entry for IPv4 @addr on @ifindex, if it is usable (REACHABLE,
 * STALE, DELAY, PROBE or PERMANENT).  Errors: -ENOENT (none), -ENOMEM, -EIO. */
int byp_kstate_get_neigh(unsigned ifindex, in_addr_t addr, uint8_t mac[6]);

#endif
