/* The tap backend: DPDK's net_tap PMD creates a tap interface of the given name; the
 * kernel side of it is the stack's peer (give it an address on the stack's subnet and
 * route through it).  The stack answers ARP itself; its address comes from `ip`. */
#include <errno.h>
#include <net/if.h>
#include <stdio.h>

#include "backend.h"
#include "log.h"

static int tap_devargs(const struct byp_nic_conf *conf, char *buf, size_t len)
{
    if (if_nametoindex(conf->ifname) != 0) {
        byp_err("tap: an interface \"%s\" exists already; the tap backend creates its own",
                conf->ifname);
        return -EEXIST;
    }
    int n = snprintf(buf, len, "net_tap0,iface=%s", conf->ifname);
    return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

const struct byp_nic_ops byp_nic_tap_ops = {
    .name = "tap",
    .drivers = "net_tap",
    .devargs = tap_devargs,
    .steers = 0,
};
