/* Loader side of the steering program: locating its object file and editing its flow map. */
#include <dlfcn.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>

#include "log.h"
#include "steer.h"
#include "steer_ctl.h"
#include "proc.h"

#ifndef BYP_XDP_PROG_BUILD
#define BYP_XDP_PROG_BUILD ""
#endif
#ifndef BYP_XDP_PROG_INSTALL
#define BYP_XDP_PROG_INSTALL ""
#endif
#define PROG_FILE "xdp_steer.bpf.o"

static int flow_fd = -1;
static int kpass_fd = -1;

static int readable(const char *path)
{
    return path[0] != '\0' && access(path, R_OK) == 0;
}

const char *byp_steer_prog_path(void)
{
    static char path[PATH_MAX];
    const char *env = getenv("BYPASS_XDP_PROG");
    Dl_info dl;

    if (env && env[0]) {
        if (readable(env))
            return env;
        byp_err("BYPASS_XDP_PROG=%s: cannot read it", env);
        errno = ENOENT;
        return NULL;
    }
    if (dladdr((void *)byp_steer_prog_path, &dl) && dl.dli_fname && dl.dli_fname[0]) {
        char obj[PATH_MAX], *dir;

        /* The executable reports its name as given (maybe relative): resolve it. */
        if (!realpath(dl.dli_fname, obj))
            snprintf(obj, sizeof(obj), "%s", dl.dli_fname);
        dir = dirname(obj);
        snprintf(path, sizeof(path), "%s/%s", dir, PROG_FILE);
        if (readable(path))
            return path;
        snprintf(path, sizeof(path), "%s/nicbackend/%s", dir, PROG_FILE);
        if (readable(path))
            return path;
    }
    if (readable(BYP_XDP_PROG_INSTALL))
        return BYP_XDP_PROG_INSTALL;
    if (readable(BYP_XDP_PROG_BUILD))
        return BYP_XDP_PROG_BUILD;
    errno = ENOENT;
    return NULL;
}

/* The kind of BPF object fd @fd is: "bpf-prog", "bpf-map", or "" for anything else. */
static const char *bpf_fd_kind(int fd)
{
    char path[64], target[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(path, target, sizeof target - 1);
    if (n <= 0)
        return "";
    target[n] = '\0';
    if (strcmp(target, "anon_inode:bpf-prog") == 0)
        return "bpf-prog";
    if (strcmp(target, "anon_inode:bpf-map") == 0)
        return "bpf-map";
    return "";
}

/* The map called @name of program @prog_id among the fds this process already holds (the
 * PMD keeps the program's object open): reading an fd's info needs no privilege, where
 * opening a program or map by id needs CAP_SYS_ADMIN.  A new fd, or -ENOENT. */
static int find_own_map(uint32_t prog_id, const char *name)
{
    uint32_t map_ids[32], nmaps = 0;
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return -errno;
    struct dirent *de;
    while ((de = readdir(d)) != NULL && nmaps == 0) {
        int fd = atoi(de->d_name);
        if (fd <= 2 || fd == dirfd(d) || strcmp(bpf_fd_kind(fd), "bpf-prog") != 0)
            continue;
        struct bpf_prog_info pinfo;
        uint32_t len = sizeof pinfo;
        memset(&pinfo, 0, sizeof pinfo);
        pinfo.nr_map_ids = 32;
        pinfo.map_ids = (uint64_t)(uintptr_t)map_ids;
        if (bpf_obj_get_info_by_fd(fd, &pinfo, &len) == 0 && pinfo.id == prog_id)
            nmaps = pinfo.nr_map_ids < 32 ? pinfo.nr_map_ids : 32;
    }
    int found = -ENOENT;
    rewinddir(d);
    while (nmaps > 0 && found < 0 && (de = readdir(d)) != NULL) {
        int fd = atoi(de->d_name);
        if (fd <= 2 || fd == dirfd(d) || strcmp(bpf_fd_kind(fd), "bpf-map") != 0)
            continue;
        struct bpf_map_info minfo;
        uint32_t mlen = sizeof minfo;
        memset(&minfo, 0, sizeof minfo);
        if (bpf_obj_get_info_by_fd(fd, &minfo, &mlen) != 0 || strcmp(minfo.name, name) != 0)
            continue;
        for (uint32_t i = 0; i < nmaps; i++)
            if (map_ids[i] == minfo.id)
                found = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    }
    closedir(d);
    return found;
}

/* Open the map called @name among the maps of program @prog_id; -ENOENT if none. */
static int find_prog_map(uint32_t prog_id, const char *name)
{
    struct bpf_prog_info pinfo;
    uint32_t len = sizeof(pinfo), map_ids[32];
    int prog_fd, ret = -ENOENT;

    prog_fd = bpf_prog_get_fd_by_id(prog_id);
    if (prog_fd < 0)
        return -errno;
    memset(&pinfo, 0, sizeof(pinfo));
    pinfo.nr_map_ids = 32;
    pinfo.map_ids = (uint64_t)(uintptr_t)map_ids;
    if (bpf_obj_get_info_by_fd(prog_fd, &pinfo, &len) < 0) {
        ret = -errno;
        close(prog_fd);
        return ret;
    }
    close(prog_fd);
    for (uint32_t i = 0; i < pinfo.nr_map_ids && i < 32; i++) {
        struct bpf_map_info minfo;
        uint32_t mlen = sizeof(minfo);
        int fd = bpf_map_get_fd_by_id(map_ids[i]);

        if (fd < 0)
            continue;
        memset(&minfo, 0, sizeof(minfo));
        if (bpf_obj_get_info_by_fd(fd, &minfo, &mlen) == 0 && strcmp(minfo.name, name) == 0 &&
            minfo.key_size == sizeof(struct byp_flow_key) &&
            minfo.value_size == sizeof(struct byp_flow_val))
            return fd;
        close(fd);
    }
    return ret;
}

/* The owner entry: key proto 0 (never a packet's), value flags = pid and packets = the
 * process start time (clock ticks since boot, /proc/PID/stat field 22), so that a reused
 * pid is not taken for the owner. */
static const struct byp_flow_key owner_key = {0, 0, 0, 0};

static void claim(int fd, pid_t pid)
{
    struct byp_flow_val v = {.flags = (uint32_t)pid, .packets = byp_proc_start_ticks(pid)};
    bpf_map_update_elem(fd, &owner_key, &v, BPF_ANY);
}

void byp_steer_claim(pid_t pid)
{
    if (flow_fd >= 0)
        claim(flow_fd, pid);
}

void byp_steer_claim_live(void)
{
    struct byp_flow_val v;
    if (flow_fd >= 0 && bpf_map_lookup_elem(flow_fd, &owner_key, &v) == 0 &&
        !byp_proc_running((pid_t)v.flags, v.packets))
        claim(flow_fd, getpid());
}

int byp_steer_owner_alive(uint32_t prog_id)
{
    int fd = find_prog_map(prog_id, BYP_FLOW_MAP_NAME);
    if (fd < 0)
        return 1;   /* not ours, or cannot tell: treat as alive */
    struct byp_flow_val v;
    int alive = 1;
    if (bpf_map_lookup_elem(fd, &owner_key, &v) == 0)
        alive = v.flags != 0 && byp_proc_start_ticks((pid_t)v.flags) == v.packets && v.packets != 0;
    close(fd);
    return alive;
}

int byp_steer_open(unsigned ifindex)
{
    uint32_t prog_id = 0;
    int fd;

    if (bpf_xdp_query_id((int)ifindex, 0, &prog_id) < 0) {
        int err = -errno;

        byp_err("steer: cannot query the XDP program of ifindex %u: %s", ifindex,
                strerror(-err));
        return err;
    }
    if (prog_id == 0) {
        byp_err("steer: no XDP program attached to ifindex %u", ifindex);
        return -ENOENT;
    }
    fd = find_own_map(prog_id, BYP_FLOW_MAP_NAME);
    if (fd < 0)
        fd = find_prog_map(prog_id, BYP_FLOW_MAP_NAME);
    if (fd < 0) {
        byp_err("steer: the XDP program (id %u) on ifindex %u has no map \"%s\": %s",
                prog_id, ifindex, BYP_FLOW_MAP_NAME, strerror(-fd));
        return fd;
    }
    byp_steer_close();
    flow_fd = fd;
    kpass_fd = find_own_map(prog_id, BYP_KPASS_MAP_NAME);
    if (kpass_fd < 0)
        kpass_fd = find_prog_map(prog_id, BYP_KPASS_MAP_NAME);
    claim(fd, getpid());
    return 0;
}

void byp_steer_close(void)
{
    if (flow_fd >= 0)
        close(flow_fd);
    if (kpass_fd >= 0)
        close(kpass_fd);
    flow_fd = kpass_fd = -1;
}


static int make_key(struct byp_flow_key *key, int proto, in_addr_t addr, in_port_t port)
{
    if (proto != IPPROTO_TCP && proto != IPPROTO_UDP)
        return -EINVAL;
    memset(key, 0, sizeof(*key));
    key->addr = addr;
    key->port = port;
    key->proto = (uint8_t)proto;
    return flow_fd < 0 ? -EBADF : 0;
}

int byp_steer_add(int proto, in_addr_t addr, in_port_t port)
{
    struct byp_flow_key key;
    struct byp_flow_val val;
    int ret = make_key(&key, proto, addr, port);

    if (ret < 0)
        return ret;
    memset(&val, 0, sizeof(val));
    if (bpf_map_update_elem(flow_fd, &key, &val, BPF_NOEXIST) == 0)
        return 0;
    if (errno == EEXIST)
        return 0;
    return errno == ENOSPC ? -E2BIG : -errno;
}

int byp_steer_del(int proto, in_addr_t addr, in_port_t port)
{
    struct byp_flow_key key;
    int ret = make_key(&key, proto, addr, port);

    if (ret < 0)
        return ret;
    return bpf_map_delete_elem(flow_fd, &key) == 0 ? 0 : -errno;
}

int byp_steer_packets(int proto, in_addr_t addr, in_port_t port, uint64_t *packets)
{
    struct byp_flow_key key;
    struct byp_flow_val val;
    int ret = make_key(&key, proto, addr, port);

    if (ret < 0)
        return ret;
    if (bpf_map_lookup_elem(flow_fd, &key, &val) < 0)
        return -errno;
    *packets = val.packets;
    return 0;
}

/* Set @flag on the flow entry @key (its packet count kept). */
static int flag_flow(const struct byp_flow_key *key, uint32_t flag)
{
    struct byp_flow_val val;
    if (bpf_map_lookup_elem(flow_fd, key, &val) != 0)
        return -errno;
    if (val.flags & flag)
        return 0;
    val.flags |= flag;
    return bpf_map_update_elem(flow_fd, key, &val, BPF_EXIST) == 0 ? 0 : -errno;
}

int byp_steer_hand(int proto, in_addr_t addr, in_port_t port)
{
    struct byp_flow_key key;
    int ret = make_key(&key, proto, addr, port);
    return ret < 0 ? ret : flag_flow(&key, BYP_FLOW_F_HANDED);
}

int byp_steer_pass_conn(int proto, in_addr_t flow_addr, in_addr_t laddr, in_port_t lport,
                        in_addr_t raddr, in_port_t rport)
{
    struct byp_flow_key key;
    int ret = make_key(&key, proto, flow_addr, lport);
    if (ret < 0)
        return ret;
    if (kpass_fd < 0)
        return -ENOENT;
    struct byp_conn_key ck;
    memset(&ck, 0, sizeof ck);
    ck.saddr = raddr;
    ck.daddr = laddr;
    ck.sport = rport;
    ck.dport = lport;
    ck.proto = (uint8_t)proto;
    uint32_t one = 1;
    if (bpf_map_update_elem(kpass_fd, &ck, &one, BPF_ANY) != 0)
        return -errno;
    flag_flow(&key, BYP_FLOW_F_PASS);
    return 0;
}
