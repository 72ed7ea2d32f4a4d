/* The af_xdp backend: DPDK's net_af_xdp PMD on a kernel interface, with our steering
 * program (xdp_steer.bpf.o) so that the kernel keeps every flow we do not accelerate.
 *
 * The PMD loads and attaches the program given with xdp_prog= when the rx queue is set up,
 * puts its XSK into the program's xsks_map at the queue's index, and detaches the program
 * when the port is closed.  It refuses an interface that already has an XDP program, so
 * there is one accelerated process per interface queue. */
#include <errno.h>
#include <stdarg.h>
#include <linux/capability.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "backend.h"
#include "log.h"
#include "steer.h"
#include "steer_ctl.h"

#ifndef CAP_PERFMON
#define CAP_PERFMON 38
#endif
#ifndef CAP_BPF
#define CAP_BPF 39
#endif

/* Does the effective set hold @cap?  Unknown (capget failed) counts as yes: the kernel
 * will tell later. */
static int have_cap(int cap)
{
    struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
    struct __user_cap_data_struct data[2];

    memset(data, 0, sizeof(data));
    if (syscall(SYS_capget, &hdr, data) < 0)
        return 1;
    return (data[cap / 32].effective >> (cap % 32)) & 1;
}

/* libbpf (used by the PMD and by steer.c) prints to stderr by default: route it to our
 * log.  This is process-wide libbpf state; a host program that uses libbpf itself would
 * see its messages in our log from then on. */
static int libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
    int lvl = level == LIBBPF_WARN ? BYP_LOG_WARN :
              level == LIBBPF_INFO ? BYP_LOG_INFO : BYP_LOG_DEBUG;
    char msg[512];
    size_t n;

    if (lvl > byp_log_level)
        return 0;
    vsnprintf(msg, sizeof(msg), fmt, ap);
    n = strlen(msg);
    while (n > 0 && msg[n - 1] == '\n')
        msg[--n] = '\0';
    byp_log(lvl, "libbpf: %s", msg);
    return 0;
}

/* An XDP program on @ifindex: if it is our steering program and the process that attached
 * it is gone, that process died without closing the port (SIGKILL, a crash): take it off.
 * (sock_diag for AF_XDP would say whether a socket is still bound, but kernels built
 * without CONFIG_XDP_SOCKETS_DIAG answer nothing, so the owner is recorded in the map.)  Returns 0 when the interface is free now, -EBUSY otherwise. */
static int take_over_stale(unsigned ifindex, uint32_t prog_id, const char *ifname)
{
    struct bpf_prog_info info;
    uint32_t len = sizeof info;
    memset(&info, 0, sizeof info);
    int pfd = bpf_prog_get_fd_by_id(prog_id);
    if (pfd < 0)
        return -EBUSY;
    int rc = bpf_obj_get_info_by_fd(pfd, &info, &len);
    close(pfd);
    if (rc != 0 || strcmp(info.name, BYP_STEER_PROG_NAME) != 0)
        return -EBUSY;
    if (byp_steer_owner_alive(prog_id))
        return -EBUSY;
    if (bpf_xdp_detach((int)ifindex, 0, NULL) != 0)
        return -EBUSY;
    byp_info("af_xdp: %s: removed the steering program (id %u) of a process that exited "
             "without closing it", ifname, prog_id);
    return 0;
}

/* Everything that can be checked before DPDK starts, in the order a user would fix it. */
static int af_xdp_devargs(const struct byp_nic_conf *conf, char *buf, size_t len)
{
    unsigned ifindex = if_nametoindex(conf->ifname);
    const char *prog = conf->xdp_prog;
    uint32_t prog_id = 0;
    int n;

    libbpf_set_print(libbpf_print);
    if (ifindex == 0) {
        byp_err("af_xdp: no interface \"%s\" in this network namespace", conf->ifname);
        return -ENODEV;
    }
    /* NET_ADMIN attaches XDP, NET_RAW opens the AF_XDP socket, IPC_LOCK registers its
     * packet memory (umem), BPF and PERFMON load the steering program (the verifier
     * refuses its packet-pointer arithmetic without PERFMON); SYS_ADMIN covers the last two. */
    if (!have_cap(CAP_NET_ADMIN) || !have_cap(CAP_NET_RAW) || !have_cap(CAP_IPC_LOCK) ||
        !((have_cap(CAP_BPF) && have_cap(CAP_PERFMON)) || have_cap(CAP_SYS_ADMIN))) {
        byp_err("af_xdp: %s: the accelerated path needs CAP_NET_ADMIN, CAP_NET_RAW, "
                "CAP_IPC_LOCK, CAP_BPF and CAP_PERFMON (or root)", conf->ifname);
        return -EPERM;
    }
    if (bpf_xdp_query_id((int)ifindex, 0, &prog_id) == 0 && prog_id != 0 &&
        take_over_stale(ifindex, prog_id, conf->ifname) != 0) {
        byp_err("af_xdp: %s already has an XDP program (id %u): another accelerated "
                "process, or a leftover (xdp-loader unload %s --all)", conf->ifname,
                prog_id, conf->ifname);
        return -EBUSY;
    }
    if (!prog)
        prog = byp_steer_prog_path();
    if (!prog) {
        byp_err("af_xdp: steering program xdp_steer.bpf.o not found (set BYPASS_XDP_PROG)");
        return -ENOENT;
    }
    if (access(prog, R_OK) != 0 || strchr(prog, ',')) {
        byp_err("af_xdp: steering program \"%s\" is unreadable or has a comma in its path",
                prog);
        return -ENOENT;
    }
    /* busy_budget=0: no "preferred busy polling", which makes the PMD issue a recvfrom or
     * sendto system call on every burst to drive the driver's NAPI.  The stack polls the
     * rings itself (and sleeps on the socket); on copy-mode interfaces (veth) that call
     * buys nothing and costs a third of a busy server's time. */
    n = snprintf(buf, len, "net_af_xdp0,iface=%s,start_queue=0,queue_count=1,busy_budget=0,"
                 "xdp_prog=%s",
                 conf->ifname, prog);
    if (n < 0 || (size_t)n >= len)
        return -ENAMETOOLONG;
    return 0;
}

/* The own AF_XDP socket (xsk.c) in place of the PMD. */
static int af_xdp_open(struct byp_nic *nic, const struct byp_nic_conf *conf)
{
    const char *prog = conf->xdp_prog ? conf->xdp_prog : byp_steer_prog_path();
    if (prog == NULL)
        return -ENOENT;
    return byp_xsk_open(nic, conf, prog);
}

static int af_xdp_start(struct byp_nic *nic, const struct byp_nic_conf *conf)
{
    (void)conf;
    return byp_steer_open(nic->ifindex);
}

static void af_xdp_stop(struct byp_nic *nic)
{
    (void)nic;
    byp_steer_close();
}

/* The default: our own AF_XDP socket, with a deep fill ring (xsk.c). */
const struct byp_nic_ops byp_nic_af_xdp_ops = {
    .name = "af_xdp",
    .drivers = "",
    .devargs = af_xdp_devargs,
    .start = af_xdp_start,
    .stop = af_xdp_stop,
    .steers = 1,
    .open = af_xdp_open,
    .close = byp_xsk_close,
    .stats = byp_xsk_stats,
    .reserved_mbufs = byp_xsk_fill_depth,
};

/* DPDK's net_af_xdp PMD (config rx_ring = 0; struct byp_nic_conf.af_xdp_pmd): 2,048
 * receive buffers at most. */
const struct byp_nic_ops byp_nic_af_xdp_pmd_ops = {
    .name = "af_xdp",
    .drivers = "net_af_xdp",
    .devargs = af_xdp_devargs,
    .start = af_xdp_start,
    .stop = af_xdp_stop,
    .steers = 1,
};
