/* Generic part of opening a NIC: EAL, device hot-plug, pool, port and queue setup.  The
 * backend contributes its device string and its attach/detach steps (struct byp_nic_ops). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_bus_vdev.h>
#include <rte_dev.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>

#include "backend.h"
#include "log.h"

#define DEFAULT_MBUFS 16384
#define DEFAULT_DESCS 2048
#define POOL_CACHE 256

static int nic_open_count;

static uint16_t ethdev_rx(struct byp_nic *nic, struct rte_mbuf **pkts, uint16_t n)
{
    return rte_eth_rx_burst(nic->port_id, nic->queue_id, pkts, n);
}

static uint16_t ethdev_tx(struct byp_nic *nic, struct rte_mbuf **pkts, uint16_t n)
{
    return rte_eth_tx_burst(nic->port_id, nic->queue_id, pkts, n);
}

const struct byp_nic_burst_ops byp_nic_ethdev_burst = {
    .rx_burst = ethdev_rx,
    .tx_burst = ethdev_tx,
};

const struct byp_nic_ops *byp_nic_find_backend(const char *name)
{
    if (!name || strcmp(name, "af_xdp") == 0)
        return &byp_nic_af_xdp_ops;
    if (strcmp(name, "af_packet") == 0)
        return &byp_nic_af_packet_ops;
    if (strcmp(name, "tap") == 0)
        return &byp_nic_tap_ops;
    if (strcmp(name, "memif") == 0)
        return &byp_nic_memif_ops;
    if (strcmp(name, "pci") == 0)
        return &byp_nic_pci_ops;
    return NULL;
}

void byp_nic_tick(struct byp_nic *nic)
{
    if (nic != NULL && nic->ops->tick != NULL)
        nic->ops->tick(nic);
}

int byp_nic_link_state(struct byp_nic *nic)
{
    if (nic == NULL || nic->ops->link_state == NULL)
        return 1;
    return nic->ops->link_state(nic);
}

/* DPDK returns negative errnos from ethdev calls, -1 + rte_errno elsewhere. */
static int dpdk_err(int ret)
{
    if (ret < -1)
        return ret;
    return rte_errno > 0 ? -rte_errno : -EIO;
}

/* Configure one rx/tx queue pair on @nic->port_id and start the port. */
static int setup_port(struct byp_nic *nic, const struct byp_nic_conf *conf)
{
    struct rte_eth_conf pconf;
    struct rte_eth_dev_info dinfo;
    uint16_t nb_rxd = conf->nb_rxd ? conf->nb_rxd : DEFAULT_DESCS;
    uint16_t nb_txd = conf->nb_txd ? conf->nb_txd : DEFAULT_DESCS;
    int ret;

    memset(&pconf, 0, sizeof(pconf));
    ret = rte_eth_dev_info_get(nic->port_id, &dinfo);
    if (ret < 0) {
        byp_err("nic %s: cannot read device info: %s", nic->devname, strerror(-ret));
        return ret;
    }
    ret = rte_eth_dev_configure(nic->port_id, 1, 1, &pconf);
    if (ret < 0) {
        byp_err("nic %s: configure failed: %s", nic->devname, strerror(-ret));
        return ret;
    }
    ret = rte_eth_dev_adjust_nb_rx_tx_desc(nic->port_id, &nb_rxd, &nb_txd);
    if (ret < 0)
        return ret;
    /* af_xdp creates the XSK here, loads and attaches the XDP program. */
    ret = rte_eth_rx_queue_setup(nic->port_id, nic->queue_id, nb_rxd,
                                 rte_eth_dev_socket_id(nic->port_id), NULL, nic->pool);
    if (ret < 0) {
        byp_err("nic %s: rx queue setup failed: %s (see the dpdk: lines above)",
                nic->devname, strerror(-ret));
        return ret;
    }
    ret = rte_eth_tx_queue_setup(nic->port_id, nic->queue_id, nb_txd,
                                 rte_eth_dev_socket_id(nic->port_id), NULL);
    if (ret < 0) {
        byp_err("nic %s: tx queue setup failed: %s", nic->devname, strerror(-ret));
        return ret;
    }
    ret = nic->ops->port_start ? nic->ops->port_start(nic) : rte_eth_dev_start(nic->port_id);
    if (ret < 0) {
        byp_err("nic %s: start failed: %s", nic->devname, strerror(-ret));
        return ret;
    }
    return 0;
}

/* Remove a hot-plugged device by name (rte_eal_hotplug_remove wants the bus name apart):
 * a PCI address ("0000:03:00.0") is on the pci bus, anything else a vdev. */
static void remove_vdev(const char *name)
{
    rte_eal_hotplug_remove(strchr(name, ':') != NULL ? "pci" : "vdev", name);
}

/* Undo a (partial) open: the ethdev close is what detaches af_xdp's XDP program. */
static void teardown(struct byp_nic *nic, int port_valid, int started)
{
    if (nic->ops->open != NULL) {
        if (port_valid)
            nic->ops->close(nic);
        port_valid = started = 0;
    }
    if (started)
        rte_eth_dev_stop(nic->port_id);
    if (port_valid) {
        rte_eth_dev_close(nic->port_id);
        remove_vdev(nic->devname);
    }
    if (nic->pool)
        rte_mempool_free(nic->pool);
    free(nic);
}

int byp_nic_open(const struct byp_nic_conf *conf, struct byp_nic **out)
{
    const struct byp_nic_ops *ops;
    struct byp_nic *nic;
    char devargs[512], poolname[RTE_MEMPOOL_NAMESIZE];
    const char *ifname;
    char *comma;
    unsigned nb_mbufs;
    int ret;

    *out = NULL;
    if (!conf)
        return -EINVAL;
    ops = byp_nic_find_backend(conf->backend);
    if (ops == &byp_nic_af_xdp_ops && conf->af_xdp_pmd)
        ops = &byp_nic_af_xdp_pmd_ops;
    if (!ops) {
        byp_err("nic: backend \"%s\" is not available (accepted: af_xdp, af_packet, tap, "
                "memif, pci)", conf->backend);
        return -ENOENT;
    }
    ifname = conf->ifname ? conf->ifname : ops->label;
    if (!ifname || strlen(ifname) >= IF_NAMESIZE)
        return -EINVAL;
    if (nic_open_count > 0)
        return -EALREADY;

    /* Backend checks that need no DPDK (interface, permission, XDP slot) come first, so
     * that the common failures cost no EAL start. */
    ret = ops->devargs(conf, devargs, sizeof(devargs));
    if (ret < 0)
        return ret;
    ret = byp_eal_start(conf->nb_eal_args, conf->eal_args, conf->force_no_huge,
                        ops == &byp_nic_pci_ops ? byp_nic_pci_eal_flags(conf) : 0, ops->drivers);
    if (ret < 0)
        return ret;

    nic = calloc(1, sizeof(*nic));
    if (!nic)
        return -ENOMEM;
    nic->ops = ops;
    nic->burst = ops->burst ? ops->burst : &byp_nic_ethdev_burst;
    nic->queue_id = 0;
    snprintf(nic->ifname, sizeof(nic->ifname), "%s", ifname);
    nic->ifindex = if_nametoindex(ifname);   /* 0 for tap: created by the probe */
    comma = strchr(devargs, ',');
    snprintf(nic->devname, sizeof(nic->devname), "%.*s",
             (int)(comma ? (size_t)(comma - devargs) : strlen(devargs)), devargs);

    nb_mbufs = conf->nb_mbufs ? conf->nb_mbufs : DEFAULT_MBUFS;
    nic->pool_free_max = nb_mbufs;
    if (ops->reserved_mbufs != NULL)
        nb_mbufs += ops->reserved_mbufs(conf);
    snprintf(poolname, sizeof(poolname), "byp_pool_%s", ifname);
    nic->pool = rte_pktmbuf_pool_create(poolname, nb_mbufs, POOL_CACHE, BYP_MBUF_PRIV_SIZE,
                                        RTE_MBUF_DEFAULT_BUF_SIZE, rte_socket_id());
    if (!nic->pool) {
        ret = -rte_errno;
        byp_err("nic %s: cannot create a pool of %u mbufs: %s", ifname, nb_mbufs,
                rte_strerror(rte_errno));
        teardown(nic, 0, 0);
        return ret ? ret : -ENOMEM;
    }

    if (ops->open != NULL) {
        nic->port_id = RTE_MAX_ETHPORTS;    /* no ethdev port */
        ret = ops->open(nic, conf);
        if (ret < 0) {
            teardown(nic, 0, 0);
            return ret;
        }
        goto started;
    }
    ret = rte_dev_probe(devargs);
    if (ret < 0) {
        byp_err("nic %s: cannot create device \"%s\": %s", ifname, devargs,
                strerror(-ret));
        teardown(nic, 0, 0);
        return ret;
    }
    if (rte_eth_dev_get_port_by_name(nic->devname, &nic->port_id) != 0) {
        byp_err("nic %s: device %s has no ethdev port", ifname, nic->devname);
        remove_vdev(nic->devname);
        teardown(nic, 0, 0);
        return -EIO;
    }
    ret = setup_port(nic, conf);
    if (ret < 0) {
        teardown(nic, 1, 0);
        return dpdk_err(ret);
    }
started:
    if (ops->start) {
        ret = ops->start(nic, conf);
        if (ret < 0) {
            teardown(nic, 1, 1);
            return ret;
        }
    }
    byp_eal_route_async_signals();
    nic_open_count++;
    *out = nic;
    return 0;
}

int byp_nic_stats(struct byp_nic *nic, struct rte_eth_stats *st)
{
    if (nic->ops->stats != NULL)
        return nic->ops->stats(nic, st);
    return rte_eth_stats_get(nic->port_id, st);
}

void byp_nic_close(struct byp_nic *nic)
{
    if (!nic)
        return;
    if (nic->ops->stop)
        nic->ops->stop(nic);
    nic_open_count--;
    teardown(nic, 1, 1);
}
