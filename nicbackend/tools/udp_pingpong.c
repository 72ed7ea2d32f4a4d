/* byp-udp-pingpong: kernel UDP ping-pong, the client that measures byp-reflect and the
 * kernel baseline it is compared with.
 *
 *   byp-udp-pingpong client ADDR PORT [-n COUNT] [-s SIZE] [-w WARMUP] [--spin]
 *   byp-udp-pingpong server PORT [--spin]
 *
 * The client sends one datagram of SIZE bytes (default 64), waits for it to come back,
 * and repeats; it prints half the round trip (p50, p99, p99.9, min, in microseconds).
 * --spin polls with MSG_DONTWAIT instead of sleeping in recv (lower, steadier numbers on
 * both sides, at the cost of a busy CPU).  A reply missing for 200 ms counts as lost. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

/* Receive one datagram, spinning or blocking; -1 on timeout (200 ms). */
static ssize_t recv_one(int fd, char *buf, size_t len, int spin, struct sockaddr_in *from)
{
    socklen_t fl = sizeof(*from);
    uint64_t deadline = now_ns() + 200000000u;
    ssize_t r;

    for (;;) {
        r = recvfrom(fd, buf, len, spin ? MSG_DONTWAIT : 0, (struct sockaddr *)from,
                     from ? &fl : NULL);
        if (r >= 0)
            return r;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return -1;
        if (!spin || now_ns() > deadline)
            return -1;
    }
}

static int server(int port, int spin)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    char buf[65536];
    int fd = socket(AF_INET, SOCK_DGRAM, 0);

    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        perror("bind");
        return 1;
    }
    printf("ready: kernel udp echo on port %d\n", port);
    fflush(stdout);
    for (;;) {
        struct sockaddr_in from;
        socklen_t fl = sizeof(from);
        ssize_t r = recvfrom(fd, buf, sizeof(buf), spin ? MSG_DONTWAIT : 0,
                             (struct sockaddr *)&from, &fl);

        if (r < 0)
            continue;
        sendto(fd, buf, (size_t)r, 0, (struct sockaddr *)&from, fl);
    }
}

static int client(const char *addr, int port, long count, int size, long warmup, int spin)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    struct timeval tv = { .tv_sec = 0, .tv_usec = 200000 };
    char buf[65536], in[65536];
    uint64_t *rtt = calloc((size_t)count, sizeof(uint64_t));
    long got = 0, lost = 0;
    int fd = socket(AF_INET, SOCK_DGRAM, 0);

    if (!rtt || fd < 0 || inet_pton(AF_INET, addr, &a.sin_addr) != 1 ||
        connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        perror("client");
        return 1;
    }
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    memset(buf, 'x', sizeof(buf));
    for (long i = 0; i < warmup + count; i++) {
        uint64_t t0 = now_ns();
        ssize_t r;

        if (send(fd, buf, (size_t)size, 0) != size) {
            perror("send");
            return 1;
        }
        r = recv_one(fd, in, sizeof(in), spin, NULL);
        if (r < 0) {
            lost++;
            continue;
        }
        if (r != size || memcmp(in, buf, (size_t)size) != 0) {
            fprintf(stderr, "reply %ld differs (%zd bytes)\n", i, r);
            return 1;
        }
        if (i >= warmup)
            rtt[got++] = now_ns() - t0;
    }
    if (got == 0) {
        printf("no replies (%ld lost)\n", lost);
        return 1;
    }
    qsort(rtt, (size_t)got, sizeof(uint64_t), cmp_u64);
    printf("half-RTT us: p50 %.2f p99 %.2f p99.9 %.2f min %.2f (%ld samples, %ld lost, "
           "%d-byte payload, %s)\n",
           rtt[got / 2] / 2000.0, rtt[got * 99 / 100] / 2000.0, rtt[got * 999 / 1000] / 2000.0,
           rtt[0] / 2000.0, got, lost, size, spin ? "spinning" : "blocking");
    return lost > count / 100 ? 1 : 0;
}

int main(int argc, char **argv)
{
    long count = 100000, warmup = 1000;
    int size = 64, spin = 0;

    if (argc >= 3 && strcmp(argv[1], "server") == 0) {
        for (int i = 3; i < argc; i++)
            if (strcmp(argv[i], "--spin") == 0)
                spin = 1;
        return server(atoi(argv[2]), spin);
    }
    if (argc >= 4 && strcmp(argv[1], "client") == 0) {
        for (int i = 4; i < argc; i++) {
            if (strcmp(argv[i], "--spin") == 0)
                spin = 1;
            else if (strcmp(argv[i], "-n") == 0 && i + 1 < argc)
                count = atol(argv[++i]);
            else if (strcmp(argv[i], "-s") == 0 && i + 1 < argc)
                size = atoi(argv[++i]);
            else if (strcmp(argv[i], "-w") == 0 && i + 1 < argc)
                warmup = atol(argv[++i]);
        }
        if (count <= 0 || size <= 0 || size > 65000)
            return 2;
        return client(argv[2], atoi(argv[3]), count, size, warmup, spin);
    }
    fprintf(stderr, "usage: byp-udp-pingpong client ADDR PORT [-n N] [-s SIZE] [-w WARMUP] "
                    "[--spin]\n       byp-udp-pingpong server PORT [--spin]\n");
    return 2;
}
