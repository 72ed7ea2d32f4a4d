/* The af_packet backend: DPDK's net_af_packet PMD (a PACKET_MMAP socket) on a kernel
 * interface dedicated to the stack.  Nothing is steered: the socket sees every frame of
 * the interface, so the kernel must not hold the stack's address on it (it would answer
 * and reset our flows); the stack answers ARP itself and its address comes from the
 * config's `ip` key. */
#include <errno.h>
#include <net/if.h>
#include <stdio.h>

#include "backend.h"
#include "log.h"

static int af_packet_devargs(const struct byp_nic_conf *conf, char *buf, size_t len)
{
    if (if_nametoindex(conf->ifname) == 0) {
        byp_err("af_packet: no interface \"%s\" in this network namespace", conf->ifname);
        return -ENODEV;
    }
    int n = snprintf(buf, len, "net_af_packet0,iface=%s,qpairs=1", conf->ifname);
    return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

const struct byp_nic_ops byp_nic_af_packet_ops = {
    .name = "af_packet",
    .drivers = "net_af_packet",
    .devargs = af_packet_devargs,
    .steers = 0,
};
