/* NIC backends: a DPDK ethdev with one rx/tx queue pair, serving the accelerated flows.
 *
 * Slow path (open, close) goes through struct byp_nic_ops, one table per backend
 * (af_xdp.c, later af_packet, tap, memif, pci).  The fast path (rx/tx bursts) goes through
 * struct byp_nic_burst_ops, apart, so that a backend could replace it without touching the
 * slow path; every DPDK backend uses the ethdev one (byp_nic_ethdev_burst).
 *
 * Returns: 0 or a negative errno; burst calls return how many packets they handled and
 * never fail.  Nothing here calls exit() or abort() or prints to stdout: DPDK's log goes
 * through byp_log (see eal.c).  Callers serialise slow-path calls; bursts on one queue must
 * not run concurrently (the caller holds the stack lock). */
#ifndef BYP_BACKEND_H
#define BYP_BACKEND_H

#include <net/if.h>
#include <stddef.h>
#include <stdint.h>

#include <rte_ethdev.h>
#include <rte_mbuf.h>

/* Bytes reserved in every mbuf's private area (between struct rte_mbuf and the headroom)
 * for the stack's per-packet state: the lwIP struct pbuf_custom that wraps the mbuf for
 * zero-copy receive.  A multiple of RTE_MBUF_PRIV_ALIGN. */
#define BYP_MBUF_PRIV_SIZE 64

/* What to open.  Zero / NULL fields take the documented default. */
struct byp_nic_conf {
    const char *ifname;         /* kernel interface (af_xdp, af_packet, tap); for memif and
                                 * pci only a label (NULL: the backend's label) */
    const char *backend;        /* backend name; NULL: "af_xdp" */
    const char *xdp_prog;       /* steering program object; NULL: byp_steer_prog_path() */
    unsigned nb_mbufs;          /* mbufs in the pool; 0: 16384 */
    uint16_t nb_rxd;            /* rx descriptors; 0: 2048 */
    uint16_t nb_txd;            /* tx descriptors; 0: 2048 */
    int nb_eal_args;            /* extra EAL arguments (config dpdk_args), appended */
    char *const *eal_args;
    int force_no_huge;          /* 1: use --no-huge even when hugepages are free */
    /* af_xdp (xsk.c) */
    int af_xdp_pmd;             /* 1: DPDK's net_af_xdp PMD instead of our own socket */
    unsigned rx_ring;           /* our socket's fill and rx rings; 0: 16384 */
    /* memif (memif.c) */
    const char *memif_socket;   /* control socket path; NULL: /run/memif.sock */
    int memif_client;           /* 0: server (creates the socket), 1: client */
    unsigned memif_id;
    uint32_t ip;                /* the stack's IPv4 address, network order: memif derives a
                                 * stable MAC from it, so a restarted peer keeps its MAC */
    /* pci (pci.c): one of the two */
    const char *pci;            /* PCI address, "0000:03:00.0" or "03:00.0" */
    const char *dpdk_port;      /* any rte_dev_probe device string */
};

struct byp_nic;

/* Slow path of one backend. */
struct byp_nic_ops {
    const char *name;           /* as in the config's backend key */
    /* Write the device string for rte_dev_probe (e.g. "net_af_xdp0,iface=eth1,...") into
     * @buf.  Errors: -ENODEV (no such interface), -ENAMETOOLONG, -ENOENT (file missing). */
    int (*devargs)(const struct byp_nic_conf *conf, char *buf, size_t len);
    /* After the port has started: backend-specific attach (af_xdp: find the flow map of
     * the steering program).  Errors as the backend documents; the port is closed then. */
    int (*start)(struct byp_nic *nic, const struct byp_nic_conf *conf);
    /* Before the port is closed: undo start. */
    void (*stop)(struct byp_nic *nic);
    /* The DPDK drivers it needs besides the mempool and vdev bus drivers, by library name
     * without "librte_" (e.g. "net_tap"), space-separated; "" none; NULL every driver of
     * DPDK's plugin directory (pci: any device string).  The EAL loads only these. */
    const char *drivers;
    /* 1: the interface stays the kernel's and only steered flows reach the NIC (af_xdp:
     * byp_steer_*; neighbours come from the kernel).  0: a dedicated interface, every
     * frame reaches the stack, which answers ARP itself. */
    int steers;
    /* Name shown for the NIC when the config names no kernel interface (memif, pci); NULL:
     * the backend needs the `interface` key. */
    const char *label;
    /* Optional: start the configured port instead of rte_eth_dev_start (memif: a client
     * whose server is not there yet starts "unplugged" and connects later).  0 or -errno. */
    int (*port_start)(struct byp_nic *nic);
    /* Optional: called about once a millisecond with the stack lock held (no burst runs
     * meanwhile); memif reconnects a client whose server went away. */
    void (*tick)(struct byp_nic *nic);
    /* Optional: whether the peer is reachable: 1 (link up), 0 (link down but coming up:
     * a handshake under way, worth a short wait), -ENOTCONN (no peer there: a connect()
     * is refused, as by a host without that port).  NULL: always reachable.  Called with
     * or without the stack lock; it only reads. */
    int (*link_state)(struct byp_nic *nic);
    /* Optional fast path; NULL: byp_nic_ethdev_burst. */
    const struct byp_nic_burst_ops *burst;
    /* Optional: open the device without a DPDK ethdev port (af_xdp's own AF_XDP socket,
     * xsk.c), in place of the device probe and the queue setup, once nic->pool exists; it
     * sets nic->burst and nic->priv.  0 or -errno (logged). */
    int (*open)(struct byp_nic *nic, const struct byp_nic_conf *conf);
    /* With open: undo it (the pool is freed afterwards). */
    void (*close)(struct byp_nic *nic);
    /* With open: the device's counters, as rte_eth_stats_get fills them.  0 or -errno. */
    int (*stats)(struct byp_nic *nic, struct rte_eth_stats *st);
    /* With open: mbufs the backend keeps for itself (its fill ring); the pool is made
     * that much larger. */
    unsigned (*reserved_mbufs)(const struct byp_nic_conf *conf);
};

struct byp_nic;

/* Fast path: move up to @n packets; return how many moved.  tx takes ownership of the
 * mbufs it returns as sent; the caller still owns the rest. */
struct byp_nic_burst_ops {
    uint16_t (*rx_burst)(struct byp_nic *nic, struct rte_mbuf **pkts, uint16_t n);
    uint16_t (*tx_burst)(struct byp_nic *nic, struct rte_mbuf **pkts, uint16_t n);
    /* Optional: whether rx_burst has work (1) or not (0), read without the stack lock
     * and without a system call: a hint, the ring may fill at any time.  NULL: unknown. */
    int (*rx_pending)(const struct byp_nic *nic);
    /* Optional: make the device send what tx_burst left in its ring, called without the
     * stack lock once it is released (a system call as long as the device's transmit: on
     * veth in copy mode, the peer's receive too, which other threads and processes of the
     * family would otherwise wait out for the lock).  NULL: tx_burst sends. */
    void (*tx_kick)(struct byp_nic *nic);
    /* Optional: a member of the family died holding the stack lock, perhaps inside a
     * burst: make the device's own state consistent again (stack lock held). */
    void (*repair)(struct byp_nic *nic);
};

/* An open NIC: one ethdev port, queue 0 for rx and tx, one mbuf pool.  Read-only for
 * users. */
struct byp_nic {
    const struct byp_nic_ops *ops;
    const struct byp_nic_burst_ops *burst;
    uint16_t port_id;
    uint16_t queue_id;
    struct rte_mempool *pool;
    unsigned pool_free_max;     /* mbufs the pool can have free: its size less what the
                                 * backend keeps (ops->reserved_mbufs) */
    unsigned ifindex;           /* kernel interface index, 0 if none */
    char ifname[IF_NAMESIZE];
    char devname[64];           /* ethdev name, for rte_dev_remove */
    void *priv;                 /* backend state */
};

extern const struct byp_nic_ops byp_nic_af_xdp_ops;
extern const struct byp_nic_ops byp_nic_af_xdp_pmd_ops;
extern const struct byp_nic_ops byp_nic_af_packet_ops;
extern const struct byp_nic_ops byp_nic_tap_ops;
extern const struct byp_nic_ops byp_nic_memif_ops;
extern const struct byp_nic_ops byp_nic_pci_ops;
extern const struct byp_nic_burst_ops byp_nic_ethdev_burst;

/* Start DPDK in this process (once) and open the configured backend on it.
 * Errors: -EINVAL (bad conf), -ENOENT (unknown backend, missing XDP program file),
 * -ENODEV (no such interface), -EPERM (missing capabilities), -EBUSY (the interface
 * already has an XDP program), -ENOMEM (no memory for EAL or the pool), -EALREADY (a NIC
 * is already open), any error of byp_eal_start; -EIO for a DPDK failure without a better
 * code.  Each failure is logged through byp_log with its cause. */
int byp_nic_open(const struct byp_nic_conf *conf, struct byp_nic **out);

/* Stop and close the port (af_xdp: the PMD detaches the XDP program), free the pool.
 * The EAL itself stays up: DPDK cannot be started twice in one process. */
void byp_nic_close(struct byp_nic *nic);

/* Look up a backend by name; NULL if unknown. */
const struct byp_nic_ops *byp_nic_find_backend(const char *name);

/* EAL flags the pci backend needs for @conf (pci.c): BYP_EAL_PCI for a PCI address,
 * BYP_EAL_SHARE_MEM for a vhost-user device (net_vhost, net_virtio_user). */
unsigned byp_nic_pci_eal_flags(const struct byp_nic_conf *conf);

/* The device's counters (rte_eth_stats_get, or the backend's own).  0 or -errno. */
int byp_nic_stats(struct byp_nic *nic, struct rte_eth_stats *st);

/* ---- the af_xdp backend's own AF_XDP socket (xsk.c) ---- */

/* Open it on nic->ifname queue 0 with the steering program @prog; see byp_nic_ops.open. */
int byp_xsk_open(struct byp_nic *nic, const struct byp_nic_conf *conf, const char *prog);
void byp_xsk_close(struct byp_nic *nic);
int byp_xsk_stats(struct byp_nic *nic, struct rte_eth_stats *st);
/* Buffers its fill ring holds for @conf: rx_ring rounded up to a power of two within
 * 512..65536; 16384 for 0. */
unsigned byp_xsk_fill_depth(const struct byp_nic_conf *conf);

/* Run the backend's periodic work (ops->tick), if any.  Stack lock held. */
void byp_nic_tick(struct byp_nic *nic);

/* Whether peers are reachable through @nic now (ops->link_state): 1, 0 (coming up) or
 * -ENOTCONN; 1 for backends without a link notion. */
int byp_nic_link_state(struct byp_nic *nic);

static inline uint16_t byp_nic_rx_burst(struct byp_nic *nic, struct rte_mbuf **pkts, uint16_t n)
{
    return nic->burst->rx_burst(nic, pkts, n);
}

static inline uint16_t byp_nic_tx_burst(struct byp_nic *nic, struct rte_mbuf **pkts, uint16_t n)
{
    return nic->burst->tx_burst(nic, pkts, n);
}

/* After the stack lock is released: what tx_burst left to send (burst->tx_kick). */
static inline void byp_nic_tx_kick(struct byp_nic *nic)
{
    if (nic->burst->tx_kick != NULL)
        nic->burst->tx_kick(nic);
}

static inline void byp_nic_repair(struct byp_nic *nic)
{
    if (nic->burst->repair != NULL)
        nic->burst->repair(nic);
}

/* ---- EAL (eal.c) ---- */

/* How the EAL was started. */
struct byp_eal_info {
    int started;                /* 1 once rte_eal_init has succeeded */
    int no_huge;                /* 1: running on --no-huge memory */
    double init_ms;             /* time spent in rte_eal_init */
    int affinity_restored;      /* 1: the caller's CPU affinity was put back */
};

/* Flags of byp_eal_start. */
#define BYP_EAL_PCI 1u          /* a PCI device will be probed: no --no-pci */
#define BYP_EAL_SHARE_MEM 2u    /* memory is shared with a vhost-user peer: one file per
                                 * memseg list (--single-file-segments), so the memory
                                 * table fits vhost-user's 8 regions */

/* Start the EAL in this process, once: --in-memory (or --no-huge --no-shconf -m when no
 * hugepages are free or @force_no_huge), a per-process --file-prefix, --no-pci (unless
 * @flags has BYP_EAL_PCI), --single-file-segments with BYP_EAL_SHARE_MEM,
 * --no-telemetry, a log level following BYPASS_LOG, -d for each of @drivers (struct
 * byp_nic_ops.drivers; NULL: DPDK's whole plugin directory) then @extra args.  No device is
 * probed here (devices are hot-plugged by byp_nic_open, so a bad device cannot leave the
 * EAL half started).  The calling thread's CPU affinity is restored afterwards.
 * Returns 0 (also when already started), or the negative errno of the first attempt:
 * DPDK cannot be initialised twice, so a failure is final for the process.
 * Errors: -ENOMEM (memory), -EPERM (permission), -EINVAL (bad extra arguments), -EIO. */
int byp_eal_start(int nb_extra, char *const *extra, int force_no_huge, unsigned flags,
                  const char *drivers);

/* Route net_tap's receive signal (O_ASYNC on its tun fds) to DPDK's interrupt thread
 * instead of the program's threads (eal.c); after the port started. */
void byp_eal_route_async_signals(void);

/* The state of the EAL; never NULL. */
const struct byp_eal_info *byp_eal_info(void);

#endif
