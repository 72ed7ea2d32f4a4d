/* bypass-stat: live statistics of accelerated processes, read from /dev/shm/bypass.<pid>
 * (layout in stack/stats.h).
 *
 *   bypass-stat                 list the processes
 *   bypass-stat PID             the stack, its sockets, queues, pool, spin counters
 *   bypass-stat [PID] -w SECS   refresh like top until SIGINT
 *   bypass-stat [PID] --json    one JSON object
 *
 * Files whose process is gone (or whose pid now belongs to another process: the start
 * time differs) are removed with a note. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "proc.h"
#include "stats.h"

struct snap {
    struct byp_stats_hdr h;
    struct byp_stats_stack st;
    struct byp_stats_sock *socks;   /* the listed ones, copied */
    unsigned nsocks;
    char comm[64];
};

static volatile sig_atomic_t stop;

static void on_sigint(int sig)
{
    (void)sig;
    stop = 1;
}

static int64_t real_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static void proc_comm(int pid, char *out, size_t len)
{
    char p[64];
    snprintf(p, sizeof p, "/proc/%d/comm", pid);
    snprintf(out, len, "?");
    FILE *f = fopen(p, "r");
    if (f == NULL)
        return;
    if (fgets(out, (int)len, f) != NULL)
        out[strcspn(out, "\n")] = '\0';
    fclose(f);
}

/* Read /dev/shm/bypass.PID into @s.  Returns 0; -ENOENT (no file), -ESRCH (stale: removed
 * here, with a note), -EINVAL (not ours or another version), -errno. */
static int load(int pid, struct snap *s, int want_socks)
{
    char path[64];
    snprintf(path, sizeof path, BYP_STATS_PATH_FMT, pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return -errno;
    struct stat sb;
    uint64_t magic = 0;
    struct byp_stats_hdr fh;
    memset(&fh, 0, sizeof fh);
    if (fstat(fd, &sb) < 0 || pread(fd, &magic, sizeof magic, 0) != (ssize_t)sizeof magic ||
        magic != BYP_STATS_MAGIC) {
        close(fd);
        return -EINVAL;   /* not ours: left alone */
    }
    /* Ours: is its process alive (and the same process, not a reused pid)? */
    uint64_t ticks = byp_proc_start_ticks(pid);
    int full = pread(fd, &fh, sizeof fh, 0) == (ssize_t)sizeof fh;
    int rc = 0;
    void *m = MAP_FAILED;
    if (ticks == 0 || (full && fh.start_ticks != ticks)) {
        rc = -ESRCH;
    } else if (!full || fh.version != BYP_STATS_VERSION || fh.size != sb.st_size ||
               fh.hdr_size != sizeof(struct byp_stats_hdr) ||
               fh.stack_size != sizeof(struct byp_stats_stack) ||
               fh.sock_size != sizeof(struct byp_stats_sock) || fh.max_socks != BYP_STATS_MAX_SOCKS) {
        rc = -EINVAL;
    } else {
        m = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_SHARED, fd, 0);
        if (m == MAP_FAILED)
            rc = -errno;
    }
    close(fd);
    const struct byp_stats_hdr *h = m;
    if (rc == 0) {
        s->h = *h;
        memcpy(&s->st, (const char *)m + sizeof *h, sizeof s->st);
        const struct byp_stats_sock *tab =
            (const void *)((const char *)m + sizeof *h + sizeof(struct byp_stats_stack));
        s->nsocks = 0;
        s->socks = want_socks ? calloc(BYP_STATS_MAX_SOCKS, sizeof *s->socks) : NULL;
        for (unsigned i = 0; i < BYP_STATS_MAX_SOCKS; i++) {
            struct byp_stats_sock c;
            for (int tries = 0; tries < 100; tries++) {
                uint32_t q1 = __atomic_load_n(&tab[i].seq, __ATOMIC_ACQUIRE);
                memcpy(&c, &tab[i], sizeof c);
                __atomic_thread_fence(__ATOMIC_ACQUIRE);
                uint32_t q2 = __atomic_load_n(&tab[i].seq, __ATOMIC_RELAXED);
                if (!(q1 & 1) && q1 == q2)
                    break;
                c.state = BYP_SS_FREE;
            }
            if (c.state == BYP_SS_FREE)
                continue;
            if (s->socks != NULL)
                s->socks[s->nsocks] = c;
            s->nsocks++;
        }
        proc_comm(pid, s->comm, sizeof s->comm);
    }
    if (m != MAP_FAILED)
        munmap(m, (size_t)sb.st_size);
    if (rc == -ESRCH) {
        if (unlink(path) == 0)
            fprintf(stderr, "bypass-stat: removed stale %s (process %d is gone)\n", path, pid);
        else
            fprintf(stderr, "bypass-stat: stale %s (process %d is gone), cannot remove it: %s\n",
                    path, pid, strerror(errno));
    }
    return rc;
}

static const char *state_name(uint32_t st)
{
    switch (st) {
    case BYP_SS_LISTEN: return "listen";
    case BYP_SS_CONNECTING: return "connecting";
    case BYP_SS_ESTABLISHED: return "established";
    case BYP_SS_CLOSED: return "closed";
    default: return "?";
    }
}

static char *addr_port(char *buf, size_t len, uint32_t addr, uint16_t port)
{
    char a[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &addr, a, sizeof a);
    snprintf(buf, len, "%s:%u", a, ntohs(port));
    return buf;
}

static double uptime_s(const struct snap *s)
{
    return (double)(real_ns() - s->h.start_unix_ns) / 1e9;
}

/* The pids with a stats file, ascending. */
static int list_pids(int **out)
{
    DIR *d = opendir("/dev/shm");
    if (d == NULL)
        return -errno;
    int n = 0, cap = 0, *pids = NULL;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t pl = strlen(BYP_STATS_PREFIX);
        if (strncmp(de->d_name, BYP_STATS_PREFIX, pl) != 0)
            continue;
        char *end;
        long pid = strtol(de->d_name + pl, &end, 10);
        if (*end != '\0' || end == de->d_name + pl || pid <= 0)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            int *p = realloc(pids, (size_t)cap * sizeof *p);
            if (p == NULL)
                break;
            pids = p;
        }
        pids[n++] = (int)pid;
    }
    closedir(d);
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && pids[j - 1] > pids[j]; j--) {
            int t = pids[j];
            pids[j] = pids[j - 1];
            pids[j - 1] = t;
        }
    *out = pids;
    return n;
}

static void json_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

static void print_list(int json)
{
    int *pids = NULL;
    int n = list_pids(&pids);
    if (json)
        printf("{\"processes\":[");
    else
        printf("%-8s %-16s %-10s %-12s %10s %8s\n", "PID", "COMMAND", "BACKEND", "INTERFACE",
               "UPTIME(s)", "SOCKETS");
    int first = 1;
    for (int i = 0; i < n; i++) {
        struct snap s;
        memset(&s, 0, sizeof s);
        if (load(pids[i], &s, 0) != 0)
            continue;
        if (json) {
            printf("%s{\"pid\":%d,\"command\":", first ? "" : ",", pids[i]);
            json_str(s.comm);
            printf(",\"backend\":");
            json_str(s.h.backend);
            printf(",\"interface\":");
            json_str(s.h.ifname);
            printf(",\"uptime_s\":%.1f,\"sockets\":%u}", uptime_s(&s), s.nsocks);
        } else {
            printf("%-8d %-16s %-10s %-12s %10.1f %8u\n", pids[i], s.comm, s.h.backend,
                   s.h.ifname, uptime_s(&s), s.nsocks);
        }
        first = 0;
    }
    if (json)
        printf("]}\n");
    else if (first)
        printf("(no accelerated process)\n");
    free(pids);
}

/* One UDP socket of the JSON report. */
static void json_udp(unsigned i, const struct byp_stats_sock *k)
{
    char b[32], g[INET_ADDRSTRLEN];
    printf("%s{\"proto\":\"udp\",\"local\":\"%s\"", i ? "," : "",
           addr_port(b, sizeof b, k->laddr, k->lport));
    printf(",\"remote\":\"%s\",\"groups\":[", addr_port(b, sizeof b, k->raddr, k->rport));
    for (uint32_t j = 0; j < k->ngroups && j < BYP_STATS_GROUPS; j++) {
        inet_ntop(AF_INET, &k->groups[j], g, sizeof g);
        printf("%s\"%s\"", j ? "," : "", g);
    }
    printf("],\"groups_total\":%u,\"rx_bytes\":%llu,\"rx_datagrams\":%llu,\"tx_bytes\":%llu,"
           "\"tx_datagrams\":%llu,\"rx_queue\":%llu,\"rx_queue_datagrams\":%llu,\"drops\":%llu}",
           k->ngroups, (unsigned long long)k->rx_bytes, (unsigned long long)k->rx_pkts,
           (unsigned long long)k->tx_bytes, (unsigned long long)k->tx_pkts,
           (unsigned long long)k->rxq_bytes, (unsigned long long)k->rxq_pkts,
           (unsigned long long)k->drops);
}

/* The UDP sockets of the text report, in their own table. */
static void text_udp(const struct snap *s)
{
    char l[32], r[32], g[INET_ADDRSTRLEN];
    unsigned n = 0;
    for (unsigned i = 0; i < s->nsocks; i++)
        n += s->socks[i].proto == IPPROTO_UDP;
    if (n == 0)
        return;
    printf("\nudp sockets: %u\n", n);
    printf("%-21s %-21s %12s %9s %12s %9s %8s %6s %8s  %s\n", "LOCAL", "REMOTE", "RX BYTES",
           "RX DGRAMS", "TX BYTES", "TX DGRAMS", "RX-Q", "RX-QN", "DROPS", "GROUPS");
    for (unsigned i = 0; i < s->nsocks; i++) {
        const struct byp_stats_sock *k = &s->socks[i];
        if (k->proto != IPPROTO_UDP)
            continue;
        printf("%-21s %-21s %12llu %9llu %12llu %9llu %8llu %6llu %8llu  ",
               addr_port(l, sizeof l, k->laddr, k->lport), addr_port(r, sizeof r, k->raddr, k->rport),
               (unsigned long long)k->rx_bytes, (unsigned long long)k->rx_pkts,
               (unsigned long long)k->tx_bytes, (unsigned long long)k->tx_pkts,
               (unsigned long long)k->rxq_bytes, (unsigned long long)k->rxq_pkts,
               (unsigned long long)k->drops);
        for (uint32_t j = 0; j < k->ngroups && j < BYP_STATS_GROUPS; j++) {
            inet_ntop(AF_INET, &k->groups[j], g, sizeof g);
            printf("%s%s", j ? "," : "", g);
        }
        printf("%s\n", k->ngroups > BYP_STATS_GROUPS ? ",..." : k->ngroups ? "" : "-");
    }
}

static void print_json(int pid, const struct snap *s)
{
    char a[INET_ADDRSTRLEN], b[32];
    const struct byp_stats_stack *st = &s->st;
    inet_ntop(AF_INET, &s->h.addr, a, sizeof a);
    printf("{\"pid\":%d,\"command\":", pid);
    json_str(s->comm);
    printf(",\"backend\":");
    json_str(s->h.backend);
    printf(",\"interface\":");
    json_str(s->h.ifname);
    printf(",\"address\":\"%s/%u\",\"uptime_s\":%.3f,\"samples\":%llu", a, s->h.prefixlen,
           uptime_s(s), (unsigned long long)s->h.samples);
    printf(",\"stack\":{\"rx_pkts\":%llu,\"rx_bytes\":%llu,\"tx_pkts\":%llu,\"tx_bytes\":%llu,"
           "\"rx_drops\":%llu,\"tx_drops\":%llu,\"pool_in_use\":%llu,\"pool_size\":%llu,"
           "\"spin_hits\":%llu,\"spin_misses\":%llu,\"sockets_overflow\":%llu,"
           "\"udp_no_socket\":%llu,\"rx_no_pool\":%llu,\"threads_sleeping\":%llu,"
           "\"threads_spinning\":%llu,\"late_wakeups\":%llu}",
           (unsigned long long)st->rx_pkts, (unsigned long long)st->rx_bytes,
           (unsigned long long)st->tx_pkts, (unsigned long long)st->tx_bytes,
           (unsigned long long)st->rx_drops, (unsigned long long)st->tx_drops,
           (unsigned long long)st->pool_in_use, (unsigned long long)st->pool_size,
           (unsigned long long)st->spin_hits, (unsigned long long)st->spin_misses,
           (unsigned long long)st->socks_overflow, (unsigned long long)st->udp_nosock,
           (unsigned long long)st->rx_nopool, (unsigned long long)st->waiters_sleeping,
           (unsigned long long)st->waiters_spinning, (unsigned long long)st->late_wakes);
    printf(",\"port\":{\"ipackets\":%llu,\"opackets\":%llu,\"ibytes\":%llu,\"obytes\":%llu,"
           "\"imissed\":%llu,\"ierrors\":%llu,\"oerrors\":%llu,\"rx_nombuf\":%llu}",
           (unsigned long long)st->eth_ipackets, (unsigned long long)st->eth_opackets,
           (unsigned long long)st->eth_ibytes, (unsigned long long)st->eth_obytes,
           (unsigned long long)st->eth_imissed, (unsigned long long)st->eth_ierrors,
           (unsigned long long)st->eth_oerrors, (unsigned long long)st->eth_rx_nombuf);
    printf(",\"queues\":[");
    unsigned nq = st->nb_queues < 4 ? st->nb_queues : 4;
    for (unsigned q = 0; q < nq; q++)
        printf("%s{\"queue\":%u,\"rx_pkts\":%llu,\"tx_pkts\":%llu,\"rx_drops\":%llu,\"tx_drops\":%llu}",
               q ? "," : "", q, (unsigned long long)st->q[q].rx_pkts,
               (unsigned long long)st->q[q].tx_pkts, (unsigned long long)st->q[q].rx_drops,
               (unsigned long long)st->q[q].tx_drops);
    printf("],\"sockets\":[");
    for (unsigned i = 0; i < s->nsocks; i++) {
        const struct byp_stats_sock *k = &s->socks[i];
        if (k->proto == IPPROTO_UDP) {
            json_udp(i, k);
            continue;
        }
        printf("%s{\"proto\":\"tcp\",\"local\":\"%s\"", i ? "," : "",
               addr_port(b, sizeof b, k->laddr, k->lport));
        printf(",\"remote\":\"%s\",\"state\":\"%s\"", addr_port(b, sizeof b, k->raddr, k->rport),
               state_name(k->state));
        printf(",\"rx_bytes\":%llu,\"rx_pkts\":%llu,\"tx_bytes\":%llu,\"tx_pkts\":%llu,"
               "\"rx_queue\":%llu,\"tx_queue\":%llu,\"retransmits\":%llu}",
               (unsigned long long)k->rx_bytes, (unsigned long long)k->rx_pkts,
               (unsigned long long)k->tx_bytes, (unsigned long long)k->tx_pkts,
               (unsigned long long)k->rxq_bytes, (unsigned long long)k->txq_bytes,
               (unsigned long long)k->retrans);
    }
    printf("]}\n");
}

static void print_text(int pid, const struct snap *s)
{
    char a[INET_ADDRSTRLEN], l[32], r[32];
    const struct byp_stats_stack *st = &s->st;
    inet_ntop(AF_INET, &s->h.addr, a, sizeof a);
    printf("pid %d (%s)  backend %s  interface %s  address %s/%u  uptime %.1f s\n", pid, s->comm,
           s->h.backend, s->h.ifname, a, s->h.prefixlen, uptime_s(s));
    printf("stack   rx %llu pkts %llu bytes  tx %llu pkts %llu bytes  rx drops %llu  tx drops %llu\n",
           (unsigned long long)st->rx_pkts, (unsigned long long)st->rx_bytes,
           (unsigned long long)st->tx_pkts, (unsigned long long)st->tx_bytes,
           (unsigned long long)st->rx_drops, (unsigned long long)st->tx_drops);
    printf("pool    %llu / %llu mbufs in use   spin hits %llu  misses %llu\n",
           (unsigned long long)st->pool_in_use, (unsigned long long)st->pool_size,
           (unsigned long long)st->spin_hits, (unsigned long long)st->spin_misses);
    printf("threads %llu sleeping  %llu spinning in blocking calls (the whole family)  late wake-ups %llu\n",
           (unsigned long long)st->waiters_sleeping, (unsigned long long)st->waiters_spinning,
           (unsigned long long)st->late_wakes);
    printf("port    ipackets %llu  opackets %llu  imissed %llu  ierrors %llu  oerrors %llu  rx_nombuf %llu\n",
           (unsigned long long)st->eth_ipackets, (unsigned long long)st->eth_opackets,
           (unsigned long long)st->eth_imissed, (unsigned long long)st->eth_ierrors,
           (unsigned long long)st->eth_oerrors, (unsigned long long)st->eth_rx_nombuf);
    unsigned nq = st->nb_queues < 4 ? st->nb_queues : 4;
    for (unsigned q = 0; q < nq; q++)
        printf("queue %u rx %llu  tx %llu  rx drops %llu  tx drops %llu\n", q,
               (unsigned long long)st->q[q].rx_pkts, (unsigned long long)st->q[q].tx_pkts,
               (unsigned long long)st->q[q].rx_drops, (unsigned long long)st->q[q].tx_drops);
    printf("udp     no socket %llu datagrams   rx no pool %llu frames\n",
           (unsigned long long)st->udp_nosock, (unsigned long long)st->rx_nopool);
    unsigned ntcp = 0;
    for (unsigned i = 0; i < s->nsocks; i++)
        ntcp += s->socks[i].proto != IPPROTO_UDP;
    printf("\ntcp sockets: %u%s\n", ntcp,
           st->socks_overflow ? " (table full: some not listed)" : "");
    printf("%-21s %-21s %-11s %12s %9s %12s %9s %8s %8s %6s\n", "LOCAL", "REMOTE", "STATE",
           "RX BYTES", "RX PKTS", "TX BYTES", "TX SENDS", "RX-Q", "TX-Q", "RETX");
    for (unsigned i = 0; i < s->nsocks; i++) {
        const struct byp_stats_sock *k = &s->socks[i];
        if (k->proto == IPPROTO_UDP)
            continue;
        printf("%-21s %-21s %-11s %12llu %9llu %12llu %9llu %8llu %8llu %6llu\n",
               addr_port(l, sizeof l, k->laddr, k->lport), addr_port(r, sizeof r, k->raddr, k->rport),
               state_name(k->state), (unsigned long long)k->rx_bytes, (unsigned long long)k->rx_pkts,
               (unsigned long long)k->tx_bytes, (unsigned long long)k->tx_pkts,
               (unsigned long long)k->rxq_bytes, (unsigned long long)k->txq_bytes,
               (unsigned long long)k->retrans);
    }
    text_udp(s);
}

/* One report of @pid; 0, or 1 with a message when it cannot be shown. */
static int show_pid(int pid, int json)
{
    struct snap s;
    memset(&s, 0, sizeof s);
    int rc = load(pid, &s, 1);
    if (rc != 0) {
        if (rc == -ENOENT || rc == -ESRCH)
            fprintf(stderr, "bypass-stat: no accelerated process with pid %d\n", pid);
        else if (rc == -EINVAL)
            fprintf(stderr, "bypass-stat: " BYP_STATS_PATH_FMT " is not a stats file of this version\n", pid);
        else
            fprintf(stderr, "bypass-stat: cannot read " BYP_STATS_PATH_FMT ": %s\n", pid, strerror(-rc));
        return 1;
    }
    if (json)
        print_json(pid, &s);
    else
        print_text(pid, &s);
    free(s.socks);
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: bypass-stat [PID] [-w SECONDS] [--json]\n"
               "  without PID: list the accelerated processes\n"
               "  PID: its stack, sockets, queues, mbuf pool and spin counters\n"
               "  -w SECONDS: refresh every SECONDS until interrupted\n"
               "  --json: one JSON object\n");
}

int main(int argc, char **argv)
{
    int pid = 0, json = 0;
    double every = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else if (strcmp(argv[i], "-w") == 0 && i + 1 < argc) {
            char *end;
            every = strtod(argv[++i], &end);
            if (*end != '\0' || every <= 0) {
                usage(stderr);
                return 2;
            }
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (pid == 0 && argv[i][0] >= '0' && argv[i][0] <= '9') {
            char *end;
            long v = strtol(argv[i], &end, 10);
            if (*end != '\0' || v <= 0 || v > 0x7fffffff) {
                usage(stderr);
                return 2;
            }
            pid = (int)v;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (every <= 0) {
        if (pid == 0) {
            print_list(json);
            return 0;
        }
        return show_pid(pid, json);
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    int rc = 0;
    while (!stop) {
        if (!json)
            printf("\033[H\033[2J");
        if (pid == 0)
            print_list(json);
        else if ((rc = show_pid(pid, json)) != 0)
            break;
        fflush(stdout);
        struct timespec t = {.tv_sec = (time_t)every, .tv_nsec = (long)((every - (time_t)every) * 1e9)};
        nanosleep(&t, NULL);
    }
    return rc;
}
