/* The memif backend: DPDK's net_memif PMD, a packet link through shared memory between two
 * processes on one host (DPDK, VPP and libmemif speak it).  The stack has no kernel
 * interface here: its address comes from the `ip` key and it answers ARP itself.
 *
 * The two sides meet on a control socket (memif_socket): the server creates it and waits,
 * the client connects; the client then creates the shared memory and hands it over.  Either
 * side may start first and either may go away and come back:
 * - a server that finds a socket file nobody listens on (its predecessor was killed)
 *   removes it and listens again; one that finds a live server refuses to start;
 * - the PMD's client connects once, when its port starts, and never again after its server
 *   left.  So a client whose server is absent starts "unplugged" (port not started), and
 *   the tick (every ~100 ms) starts the port when the socket appears, and stops and
 *   restarts it when the link went down (200 ms later: DPDK's control thread tears the
 *   connection down meanwhile) or a handshake did not finish;
 * - while the link is down the stack cannot reach its peer: link_wait tells the engine,
 *   which refuses connect() as a host without that port would (ECONNREFUSED).  An
 *   established connection lives on through a restart of the peer and then gets the peer's
 *   RST (the new process does not know it): the errors a dead TCP peer gives.
 *
 * The client's reconnection attempts run with the PMD's log muted: a server that is not
 * there is the normal case, not an error worth a line every 100 ms. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <rte_ethdev.h>
#include <rte_log.h>

#include "backend.h"
#include "log.h"

#define DEFAULT_SOCKET "/run/memif.sock"
#define RETRY_NS 100000000LL        /* between two connection attempts of a client */
#define HANDSHAKE_NS 1000000000LL   /* a started client whose link is not up by then retries */
#define SETTLE_NS 200000000LL       /* after the link went down, before the port is stopped */

enum client_state {
    C_UNPLUGGED,    /* port stopped; waiting for the server's socket */
    C_CONNECTING,   /* port started, handshake under way */
    C_UP,           /* link up */
    C_DOWN,         /* link went down: DPDK's control thread is still tearing the
                     * connection down; the port is stopped once that is surely over */
};

/* One memif port per process (byp_nic_open opens one NIC). */
static struct {
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    int client;
    enum client_state state;
    int started;            /* the port is started: bursts may run */
    int refused;            /* the last attempt found no server listening */
    int64_t since_ns;       /* when @state was entered */
    int64_t last_try_ns;
    pid_t owner;            /* the process that opened the port: only it may stop/start
                             * it (DPDK's control thread lives there, not in a child) */
} mif;

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* 1 if something listens on the socket file @path, 0 if nothing does (or no file), -errno
 * for a path that is not a socket or cannot be probed. */
static int socket_live(const char *path)
{
    struct stat st;
    if (stat(path, &st) < 0)
        return errno == ENOENT ? 0 : -errno;
    if (!S_ISSOCK(st.st_mode))
        return -ENOTSOCK;
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    snprintf(sun.sun_path, sizeof sun.sun_path, "%s", path);
    int rc = connect(fd, (struct sockaddr *)&sun, sizeof sun);
    int err = errno;
    close(fd);
    if (rc == 0)
        return 1;
    return err == ECONNREFUSED || err == ENOENT ? 0 : -err;
}

static int memif_devargs(const struct byp_nic_conf *conf, char *buf, size_t len)
{
    const char *path = conf->memif_socket ? conf->memif_socket : DEFAULT_SOCKET;
    if (strlen(path) >= sizeof mif.path) {
        byp_err("memif: socket path too long (at most %zu characters): %s",
                sizeof mif.path - 1, path);
        return -ENAMETOOLONG;
    }
    if (path[0] != '/') {
        byp_err("memif: memif_socket must be an absolute path: %s", path);
        return -EINVAL;
    }
    snprintf(mif.path, sizeof mif.path, "%s", path);
    mif.client = conf->memif_client;

    char dir[sizeof mif.path];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == dir)
        slash[1] = '\0';
    else
        *slash = '\0';
    struct stat st;
    if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
        byp_err("memif: the folder of memif_socket does not exist: %s", dir);
        return -ENOENT;
    }
    if (!mif.client) {
        int live = socket_live(path);
        if (live == 1) {
            byp_err("memif: a server already listens on %s (memif_role = \"server\" is taken; "
                    "the other side must be the client)", path);
            return -EADDRINUSE;
        }
        if (live < 0) {
            byp_err("memif: %s exists and is not a memif socket (%s)", path, strerror(-live));
            return live;
        }
        /* A socket file left by a server that died: the PMD cannot bind over it. */
        if (unlink(path) == 0)
            byp_info("memif: removed the stale socket %s of a server that is gone", path);
    }
    /* A stable, locally administered MAC from the stack's address: a peer that restarts
     * keeps its MAC, so the other side's ARP entry stays right. */
    const uint8_t *ip = (const uint8_t *)&conf->ip;
    int n = snprintf(buf, len,
                     "net_memif0,role=%s,id=%u,socket=%s,socket-abstract=no,"
                     "mac=02:fe:%02x:%02x:%02x:%02x",
                     mif.client ? "client" : "server", conf->memif_id, path, ip[0], ip[1], ip[2],
                     ip[3]);
    return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* rte_eth_dev_start with the memif PMD's log muted (a missing server is expected). */
static int quiet_start(uint16_t port)
{
    int type = rte_log_register("pmd.net.memif");
    int saved = type >= 0 ? rte_log_get_level((uint32_t)type) : -1;
    if (saved >= 0)
        rte_log_set_level((uint32_t)type, RTE_LOG_EMERG);
    int rc = rte_eth_dev_start(port);
    if (saved >= 0)
        rte_log_set_level((uint32_t)type, (uint32_t)saved);
    return rc;
}

static int link_is_up(uint16_t port)
{
    struct rte_eth_link link;
    return rte_eth_link_get_nowait(port, &link) == 0 && link.link_status == RTE_ETH_LINK_UP;
}

/* One connection attempt of a client: start the port if the server's socket is there. */
static void client_try(struct byp_nic *nic, int64_t now)
{
    struct stat st;
    mif.last_try_ns = now;
    /* Only look at the file: probing it with a connect would cost the server a control
     * connection that says nothing. */
    if (stat(mif.path, &st) < 0 || !S_ISSOCK(st.st_mode)) {
        mif.refused = 1;
        return;
    }
    if (quiet_start(nic->port_id) < 0) {
        mif.refused = 1;
        return;
    }
    mif.refused = 0;
    mif.started = 1;
    mif.state = C_CONNECTING;
    mif.since_ns = now;
}

static int memif_port_start(struct byp_nic *nic)
{
    mif.owner = getpid();
    if (!mif.client) {
        int rc = rte_eth_dev_start(nic->port_id);
        mif.started = rc == 0;
        if (rc == 0)
            byp_info("memif: server on %s, waiting for a client", mif.path);
        return rc;
    }
    mif.state = C_UNPLUGGED;
    client_try(nic, mono_ns());
    if (mif.state == C_UNPLUGGED)
        byp_info("memif: no server on %s yet; connecting when one comes", mif.path);
    return 0;
}

static void memif_tick(struct byp_nic *nic)
{
    if (!mif.client || getpid() != mif.owner)
        return;
    int64_t now = mono_ns();
    int up = link_is_up(nic->port_id);
    switch (mif.state) {
    case C_UP:
        if (up)
            return;
        /* The server went away: the PMD will not reconnect by itself. */
        byp_info("memif: link to the server on %s is down; reconnecting", mif.path);
        mif.state = C_DOWN;
        mif.since_ns = now;
        return;
    case C_DOWN:
        if (now - mif.since_ns < SETTLE_NS)
            return;
        mif.started = 0;
        rte_eth_dev_stop(nic->port_id);
        mif.state = C_UNPLUGGED;
        mif.since_ns = now;
        mif.last_try_ns = 0;
        mif.refused = 0;
        return;
    case C_CONNECTING:
        if (up) {
            mif.state = C_UP;
            mif.since_ns = now;
            byp_info("memif: connected to the server on %s", mif.path);
        } else if (now - mif.since_ns > HANDSHAKE_NS) {
            mif.started = 0;
            rte_eth_dev_stop(nic->port_id);   /* a handshake that died half way */
            mif.state = C_UNPLUGGED;
            mif.since_ns = now;
        }
        return;
    case C_UNPLUGGED:
        if (now - mif.last_try_ns >= RETRY_NS)
            client_try(nic, now);
        return;
    }
}

/* 1 up; 0 coming up (a handshake under way, or a client about to try a socket that
 * appeared); -ENOTCONN when no peer is there to come. */
static int memif_link_state(struct byp_nic *nic)
{
    if (link_is_up(nic->port_id))
        return 1;
    if (!mif.client)
        return 0;   /* a client may be connecting right now */
    if (mif.state == C_CONNECTING || mif.state == C_UP || mif.state == C_DOWN)
        return 0;
    return mif.refused ? -ENOTCONN : 0;
}

/* The ethdev bursts, skipped while the port is stopped (ethdev would complain) and while
 * the link is down.  DPDK's memif tears a connection down in its interrupt thread: it marks
 * the link down first, then talks to the peer, closes fds, and unmaps the shared regions; a
 * burst after that computes its ring's address from the freed regions, and one preempted
 * mid-copy while the teardown ran faults on the unmapped page.  So a burst counts itself in
 * libbypass.so's byp_nic_bursting before it reads the link, and libbypass.so's munmap waits
 * for the count to fall (preload/wrap_mem.c).  Weak: byp-memif-pingpong has no libbypass. */
extern int byp_nic_bursting __attribute__((weak));

static inline int burst_enter(struct byp_nic *nic)
{
    if (!mif.started)
        return 0;
    if (&byp_nic_bursting != NULL)
        __atomic_add_fetch(&byp_nic_bursting, 1, __ATOMIC_SEQ_CST);
    if (link_is_up(nic->port_id))
        return 1;
    if (&byp_nic_bursting != NULL)
        __atomic_sub_fetch(&byp_nic_bursting, 1, __ATOMIC_RELEASE);
    return 0;
}

static inline void burst_leave(void)
{
    if (&byp_nic_bursting != NULL)
        __atomic_sub_fetch(&byp_nic_bursting, 1, __ATOMIC_RELEASE);
}

static uint16_t memif_rx(struct byp_nic *nic, struct rte_mbuf **pkts, uint16_t n)
{
    if (!burst_enter(nic))
        return 0;
    uint16_t got = rte_eth_rx_burst(nic->port_id, nic->queue_id, pkts, n);
    burst_leave();
    return got;
}

static uint16_t memif_tx(struct byp_nic *nic, struct rte_mbuf **pkts, uint16_t n)
{
    if (!burst_enter(nic))
        return 0;
    uint16_t sent = rte_eth_tx_burst(nic->port_id, nic->queue_id, pkts, n);
    burst_leave();
    return sent;
}

static const struct byp_nic_burst_ops memif_burst = {
    .rx_burst = memif_rx,
    .tx_burst = memif_tx,
};

const struct byp_nic_ops byp_nic_memif_ops = {
    .name = "memif",
    .drivers = "net_memif",
    .devargs = memif_devargs,
    .steers = 0,
    .label = "memif",
    .port_start = memif_port_start,
    .tick = memif_tick,
    .link_state = memif_link_state,
    .burst = &memif_burst,
};
