/* A market-data feed, both ends (issue 9, test 3 and the multicast bench).
 *
 *   udp_feed send GROUP_BASE NGROUPS PORT COUNT RATE IFADDR [BATCH [gso]]
 *       publishes COUNT datagrams round-robin over NGROUPS groups (GROUP_BASE, +1, ...) on
 *       PORT at RATE datagrams/s (0: as fast as it can), through the interface of IFADDR;
 *       each carries (group index, sequence in its group, CLOCK_REALTIME at send).  BATCH
 *       (default 1, at most 64) datagrams go in one sendmmsg.  With "gso", a batch is BATCH
 *       datagrams of one group in one send (UDP_SEGMENT: the kernel cuts them apart, far
 *       cheaper per datagram), the groups taking turns by batch.  Then, after a pause, one
 *       end marker per group.  Prints the rate it achieved.
 *   udp_feed recv GROUP_BASE NGROUPS PORT COUNT RCVBUF SLOW_US IFADDR [et] [hold]
 *       one socket per group (bound to the group and port, SO_RXQ_OVFL on, SO_RCVBUF if
 *       nonzero), one epoll set over them and a pipe holding one byte (a kernel fd, reported
 *       once: it is edge-triggered) (the sockets edge-triggered with "et"); reads until every end
 *       marker came or 5 s pass without traffic; SLOW_US sleeps after every 64 datagrams (a
 *       slow consumer).  Prints "ready" once joined, then one JSON line: received, lost (gaps
 *       in the sequences), reordered, the drops the sockets reported (SO_RXQ_OVFL on the
 *       end markers), and one-way latency percentiles in ns.  With "hold" it then waits to
 *       be killed (so that its live counters can be read).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/udp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAXG 256
#define END_SEQ UINT64_MAX
#define MAXBATCH 64

struct msg {
    uint32_t group;
    uint32_t pad;
    uint64_t seq;
    int64_t sent_ns;
};

static int64_t now_ns(clockid_t c)
{
    struct timespec ts;
    clock_gettime(c, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif

/* One send of @n datagrams @m to @to, cut apart by the kernel (UDP_SEGMENT). */
static int send_gso(int s, const struct msg *m, int n, const struct sockaddr_in *to)
{
    char ctl[CMSG_SPACE(sizeof(uint16_t))] = {0};
    struct iovec iov = {(void *)m, (size_t)n * sizeof *m};
    struct msghdr h = {.msg_name = (void *)to, .msg_namelen = sizeof *to, .msg_iov = &iov,
                       .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof ctl};
    struct cmsghdr *c = CMSG_FIRSTHDR(&h);
    c->cmsg_level = SOL_UDP;
    c->cmsg_type = UDP_SEGMENT;
    c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
    uint16_t seg = sizeof *m;
    memcpy(CMSG_DATA(c), &seg, sizeof seg);
    return sendmsg(s, &h, 0) < 0 ? -1 : n;
}

static int do_send(in_addr_t base, int ng, int port, long count, long rate, const char *ifaddr,
                   int batch, int gso)
{
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct in_addr ifa;
    inet_pton(AF_INET, ifaddr, &ifa);
    if (setsockopt(s, IPPROTO_IP, IP_MULTICAST_IF, &ifa, sizeof ifa) < 0) {
        perror("IP_MULTICAST_IF");
        return 1;
    }
    int sndbuf = 4 << 20;
    setsockopt(s, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    struct sockaddr_in to[MAXG];
    for (int g = 0; g < ng; g++)
        to[g] = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons(port),
                                     .sin_addr.s_addr = htonl(ntohl(base) + g)};
    if (batch < 1)
        batch = 1;
    if (batch > MAXBATCH)
        batch = MAXBATCH;
    struct msg m[MAXBATCH];
    struct iovec iov[MAXBATCH];
    struct mmsghdr mm[MAXBATCH];
    uint64_t seq[MAXG] = {0};
    int64_t start = now_ns(CLOCK_MONOTONIC);
    long stalls = 0;
    for (long i = 0; i < count;) {
        if (rate > 0 && (i & 15) < batch) {
            /* Paced by sleeping, not spinning: the receiver needs the other CPU. */
            int64_t ahead = start + (int64_t)((double)i * 1e9 / rate) - now_ns(CLOCK_MONOTONIC);
            if (ahead > 50000) {
                struct timespec ts = {.tv_sec = ahead / 1000000000, .tv_nsec = ahead % 1000000000};
                nanosleep(&ts, NULL);
            }
        }
        /* A batch of up to @batch datagrams in one sendmmsg (1: plain sendto). */
        int n = count - i < batch ? (int)(count - i) : batch;
        int64_t t = now_ns(CLOCK_REALTIME);
        for (int k = 0; k < n; k++) {
            int g = gso ? (int)((i / batch) % ng) : (int)((i + k) % ng);
            m[k] = (struct msg){.group = (uint32_t)g, .seq = seq[g]++, .sent_ns = t};
            iov[k] = (struct iovec){&m[k], sizeof m[k]};
            mm[k] = (struct mmsghdr){.msg_hdr = {.msg_name = &to[g], .msg_namelen = sizeof to[g],
                                                 .msg_iov = &iov[k], .msg_iovlen = 1}};
        }
        int done = 0;
        while (done < n) {
            int r = gso && n > 1 ? send_gso(s, m, n, &to[m[0].group])
                    : n == 1 ? (int)(sendto(s, &m[0], sizeof m[0], 0, (struct sockaddr *)&to[m[0].group],
                                            sizeof to[0]) < 0 ? -1 : 1)
                             : sendmmsg(s, mm + done, (unsigned)(n - done), 0);
            if (r > 0) {
                done += r;
                continue;
            }
            if (errno != ENOBUFS && errno != EAGAIN) {
                perror("sendmmsg");
                return 1;
            }
            stalls++;
            usleep(50);
        }
        i += n;
    }
    double secs = (now_ns(CLOCK_MONOTONIC) - start) / 1e9;
    usleep(500000);
    for (int rep = 0; rep < 3; rep++)
        for (int g = 0; g < ng; g++) {
            struct msg e = {.group = (uint32_t)g, .seq = END_SEQ};
            sendto(s, &e, sizeof e, 0, (struct sockaddr *)&to[g], sizeof to[g]);
        }
    printf("sent %ld in %.3f s (%.0f/s, %ld stalls)\n", count, secs, count / secs, stalls);
    return 0;
}

static int do_recv(in_addr_t base, int ng, int port, long count, int rcvbuf, int slow_us,
                   const char *ifaddr, int et, int hold)
{
    struct in_addr ifa;
    inet_pton(AF_INET, ifaddr, &ifa);
    int ep = epoll_create1(0);
    int fds[MAXG];
    for (int g = 0; g < ng; g++) {
        int s = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
        int one = 1;
        setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        setsockopt(s, SOL_SOCKET, SO_RXQ_OVFL, &one, sizeof one);
        if (rcvbuf > 0)
            setsockopt(s, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port),
                                .sin_addr.s_addr = htonl(ntohl(base) + g)};
        if (bind(s, (struct sockaddr *)&a, sizeof a) < 0) {
            perror("bind");
            return 1;
        }
        struct ip_mreqn mr = {.imr_multiaddr = a.sin_addr, .imr_address = ifa};
        if (setsockopt(s, IPPROTO_IP, IP_ADD_MEMBERSHIP, &mr, sizeof mr) < 0) {
            perror("IP_ADD_MEMBERSHIP");
            return 1;
        }
        struct epoll_event ev = {.events = EPOLLIN | (et ? EPOLLET : 0), .data.u32 = (uint32_t)g};
        epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev);
        fds[g] = s;
    }
    /* A kernel fd in the same set: a pipe with one byte, reported once (edge or level). */
    int pp[2];
    if (pipe(pp) < 0) {
        perror("pipe");
        return 1;
    }
    struct epoll_event pev = {.events = EPOLLIN | EPOLLET, .data.u32 = UINT32_MAX};
    epoll_ctl(ep, EPOLL_CTL_ADD, pp[0], &pev);
    if (write(pp[1], "x", 1) != 1)
        return 1;
    int pipe_events = 0;
    printf("ready\n");
    fflush(stdout);
    uint64_t next[MAXG] = {0};
    int ended[MAXG] = {0}, nended = 0;
    uint32_t drops[MAXG] = {0};
    long received = 0, lost = 0, reordered = 0, batch = 0;
    int64_t *lat = malloc(sizeof(int64_t) * (size_t)(count > 0 ? count : 1));
    long nlat = 0;
    int64_t last_traffic = now_ns(CLOCK_MONOTONIC);
    while (nended < ng && now_ns(CLOCK_MONOTONIC) - last_traffic < 5000000000LL) {
        struct epoll_event evs[64];
        int n = epoll_wait(ep, evs, 64, 200);
        for (int i = 0; i < n; i++) {
            if (evs[i].data.u32 == UINT32_MAX) {
                pipe_events++;
                continue;
            }
            int g = (int)evs[i].data.u32;
            for (;;) {
                struct msg m;
                char ctl[64];
                struct iovec iov = {&m, sizeof m};
                struct msghdr h = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl,
                                   .msg_controllen = sizeof ctl};
                ssize_t r = recvmsg(fds[g], &h, 0);
                if (r < 0)
                    break;
                int64_t t = now_ns(CLOCK_REALTIME);
                last_traffic = now_ns(CLOCK_MONOTONIC);
                for (struct cmsghdr *c = CMSG_FIRSTHDR(&h); c; c = CMSG_NXTHDR(&h, c))
                    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_RXQ_OVFL)
                        memcpy(&drops[g], CMSG_DATA(c), sizeof drops[g]);
                if (r != sizeof m || m.group != (uint32_t)g)
                    continue;
                if (m.seq == END_SEQ) {
                    if (!ended[g]) {
                        ended[g] = 1;
                        nended++;
                    }
                    continue;
                }
                received++;
                if (m.seq > next[g])
                    lost += (long)(m.seq - next[g]);
                else if (m.seq < next[g])
                    reordered++;
                if (m.seq >= next[g])
                    next[g] = m.seq + 1;
                if (nlat < count)
                    lat[nlat++] = t - m.sent_ns;
                if (slow_us > 0 && ++batch % 64 == 0)
                    usleep((useconds_t)slow_us);
            }
        }
    }
    /* Datagrams lost at the tail of a group show up as the sender's count not reached. */
    long expect_total = count;
    long tail = expect_total - received - lost;
    if (tail > 0)
        lost += tail;
    uint64_t reported = 0;
    for (int g = 0; g < ng; g++)
        reported += drops[g];
    qsort(lat, (size_t)nlat, sizeof *lat, cmp64);
    int64_t p50 = nlat ? lat[nlat / 2] : -1, p99 = nlat ? lat[(long)(nlat * 0.99)] : -1,
            p999 = nlat ? lat[(long)(nlat * 0.999)] : -1;
    printf("{\"received\": %ld, \"lost\": %ld, \"reordered\": %ld, \"reported_drops\": %llu, "
           "\"ended\": %d, \"pipe_events\": %d, \"lat_p50_ns\": %lld, \"lat_p99_ns\": %lld, "
           "\"lat_p999_ns\": %lld}\n",
           received, lost, reordered, (unsigned long long)reported, nended, pipe_events, (long long)p50,
           (long long)p99, (long long)p999);
    fflush(stdout);
    while (hold)
        pause();
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 8 && strcmp(argv[1], "send") == 0) {
        struct in_addr b;
        inet_pton(AF_INET, argv[2], &b);
        return do_send(b.s_addr, atoi(argv[3]), atoi(argv[4]), atol(argv[5]), atol(argv[6]), argv[7],
                       argc > 8 ? atoi(argv[8]) : 1, argc > 9 && strcmp(argv[9], "gso") == 0);
    }
    if (argc >= 9 && strcmp(argv[1], "recv") == 0) {
        struct in_addr b;
        inet_pton(AF_INET, argv[2], &b);
        return do_recv(b.s_addr, atoi(argv[3]), atoi(argv[4]), atol(argv[5]), atoi(argv[6]),
                       atoi(argv[7]), argv[8], argc > 9 && strcmp(argv[9], "et") == 0,
                       strcmp(argv[argc - 1], "hold") == 0);
    }
    fprintf(stderr, "usage: udp_feed send BASE NGROUPS PORT COUNT RATE IFADDR [BATCH [gso]]\n"
                    "       udp_feed recv BASE NGROUPS PORT COUNT RCVBUF SLOW_US IFADDR [et] [hold]\n");
    return 2;
}
