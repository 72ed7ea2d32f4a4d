/* The pci backend: a whole DPDK port, named by a PCI address (`pci`, a NIC bound to
 * vfio-pci) or by any device string rte_dev_probe takes (`dpdk_port`: net_tap,
 * net_virtio_user, net_vhost, ...).  DPDK owns the port: the kernel has no interface on it,
 * the stack's address comes from the `ip` key and the stack answers ARP itself.
 *
 * A PCI device is checked in sysfs before DPDK starts, so that the common mistakes (a
 * typo, a NIC still on its kernel driver) cost one clear message and no EAL start.  With a
 * PCI device configured the EAL scans the PCI bus (eal.c drops --no-pci). */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend.h"
#include "log.h"

/* Drivers under which DPDK can drive a PCI NIC: the user-space I/O ones, and the
 * bifurcated Mellanox ones (the kernel driver stays and DPDK works beside it). */
static const char *const dpdk_drivers[] = {
    "vfio-pci", "uio_pci_generic", "igb_uio", "mlx4_core", "mlx5_core",
};

/* "0000:03:00.0" from "0000:03:00.0" or "03:00.0" (lower case); -EINVAL if malformed. */
static int normalize_pci(const char *in, char *out, size_t len)
{
    unsigned dom = 0, bus, dev, fn;
    char tail;
    if (sscanf(in, "%x:%x:%x.%x%c", &dom, &bus, &dev, &fn, &tail) != 4) {
        dom = 0;
        if (sscanf(in, "%x:%x.%x%c", &bus, &dev, &fn, &tail) != 3)
            return -EINVAL;
    }
    for (const char *p = in; *p; p++)
        if (!isxdigit((unsigned char)*p) && *p != ':' && *p != '.')
            return -EINVAL;
    if (dom > 0xffff || bus > 0xff || dev > 0x1f || fn > 7)
        return -EINVAL;
    int n = snprintf(out, len, "%04x:%02x:%02x.%x", dom, bus, dev, fn);
    return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* Check that the PCI device @addr exists and sits on a driver DPDK can use. */
static int check_pci(const char *addr)
{
    char path[PATH_MAX], target[PATH_MAX];
    struct stat st;
    snprintf(path, sizeof path, "/sys/bus/pci/devices/%s", addr);
    if (stat(path, &st) < 0) {
        byp_err("pci: there is no PCI device %s on this host (lspci -D lists them)", addr);
        return -ENODEV;
    }
    snprintf(path, sizeof path, "/sys/bus/pci/devices/%s/driver", addr);
    ssize_t n = readlink(path, target, sizeof target - 1);
    if (n < 0) {
        byp_err("pci: PCI device %s has no driver; bind it to vfio-pci first "
                "(dpdk-devbind.py -b vfio-pci %s)", addr, addr);
        return -ENODEV;
    }
    target[n] = '\0';
    const char *drv = strrchr(target, '/') ? strrchr(target, '/') + 1 : target;
    for (size_t i = 0; i < sizeof dpdk_drivers / sizeof dpdk_drivers[0]; i++)
        if (strcmp(drv, dpdk_drivers[i]) == 0)
            return 0;
    byp_err("pci: PCI device %s is on the kernel's %s driver; bind it to vfio-pci first "
            "(dpdk-devbind.py -b vfio-pci %s; the kernel then loses its interface)",
            addr, drv, addr);
    return -EBUSY;
}

static int pci_devargs(const struct byp_nic_conf *conf, char *buf, size_t len)
{
    if ((conf->pci == NULL) == (conf->dpdk_port == NULL)) {
        byp_err("backend pci needs exactly one of pci = \"0000:03:00.0\" (a NIC bound to "
                "vfio-pci) or dpdk_port = \"<device string>\" (e.g. \"net_tap0,iface=t0\")");
        return -EINVAL;
    }
    if (conf->dpdk_port != NULL) {
        int n = snprintf(buf, len, "%s", conf->dpdk_port);
        return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
    }
    char addr[16];
    if (normalize_pci(conf->pci, addr, sizeof addr) < 0) {
        byp_err("pci: \"%s\" is not a PCI address (accepted: 0000:03:00.0 or 03:00.0)",
                conf->pci);
        return -EINVAL;
    }
    int rc = check_pci(addr);
    if (rc < 0)
        return rc;
    int n = snprintf(buf, len, "%s", addr);
    return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

unsigned byp_nic_pci_eal_flags(const struct byp_nic_conf *conf)
{
    if (conf->pci != NULL)
        return BYP_EAL_PCI;
    if (conf->dpdk_port != NULL && (strncmp(conf->dpdk_port, "net_vhost", 9) == 0 ||
                                    strncmp(conf->dpdk_port, "net_virtio_user", 15) == 0))
        return BYP_EAL_SHARE_MEM;
    return 0;
}

const struct byp_nic_ops byp_nic_pci_ops = {
    .name = "pci",
    .devargs = pci_devargs,
    .steers = 0,
    .label = "pci",
};
