/* pingpong: TCP ping-pong over 127.0.0.1.
 *
 *   pingpong [N [SIZE [MODE]]]     MODE: threads (default) | inline
 *
 * threads: an echo thread and the main thread; N messages of SIZE bytes, each
 *          waited for.  Dominated by the kernel's wake-up latency.
 * inline:  one thread drives both ends of the connection (send, recv on the
 *          peer, send back, recv), so nothing ever blocks: the time is the
 *          socket calls themselves, which is where a preload adds its cost.
 * Prints "N SIZE total_ns ns_per_roundtrip".  Used by run.sh to time the same
 * kernel-only program with and without LD_PRELOAD=libbypass.so. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static long n_msgs = 200000;
static size_t msg_size = 64;

/* Read exactly len bytes; 0 on success, -1 on EOF or error. */
static int read_full(int fd, char *buf, size_t len)
{
    while (len > 0) {
        ssize_t r = recv(fd, buf, len, 0);
        if (r <= 0)
            return -1;
        buf += r;
        len -= (size_t)r;
    }
    return 0;
}

static int write_full(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t w = send(fd, buf, len, MSG_NOSIGNAL);
        if (w <= 0)
            return -1;
        buf += w;
        len -= (size_t)w;
    }
    return 0;
}

static void *echo_thread(void *arg)
{
    int lst = *(int *)arg;
    int c = accept(lst, NULL, NULL);
    char *buf = malloc(msg_size);
    if (c < 0 || !buf)
        return NULL;
    while (read_full(c, buf, msg_size) == 0)
        if (write_full(c, buf, msg_size) < 0)
            break;
    close(c);
    free(buf);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc > 1)
        n_msgs = atol(argv[1]);
    if (argc > 2)
        msg_size = (size_t)atol(argv[2]);
    int inline_mode = argc > 3 && strcmp(argv[3], "inline") == 0;
    int one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    int lst = socket(AF_INET, SOCK_STREAM, 0);
    if (lst < 0 || bind(lst, (struct sockaddr *)&a, sizeof a) < 0 || listen(lst, 1) < 0 ||
        getsockname(lst, (struct sockaddr *)&a, &alen) < 0) {
        perror("listener");
        return 1;
    }
    pthread_t th;
    int srv = -1;
    if (!inline_mode)
        pthread_create(&th, NULL, echo_thread, &lst);
    int c = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(c, (struct sockaddr *)&a, sizeof a) < 0) {
        perror("connect");
        return 1;
    }
    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (inline_mode) {
        srv = accept(lst, NULL, NULL);
        setsockopt(srv, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    char *buf = calloc(1, msg_size);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long i = 0; i < n_msgs; i++) {
        memcpy(buf, &i, sizeof i < msg_size ? sizeof i : msg_size);
        if (inline_mode &&
            (write_full(c, buf, msg_size) < 0 || read_full(srv, buf, msg_size) < 0 ||
             write_full(srv, buf, msg_size) < 0 || read_full(c, buf, msg_size) < 0)) {
            fprintf(stderr, "pingpong: connection failed at %ld\n", i);
            return 1;
        }
        if (!inline_mode &&
            (write_full(c, buf, msg_size) < 0 || read_full(c, buf, msg_size) < 0)) {
            fprintf(stderr, "pingpong: connection failed at %ld\n", i);
            return 1;
        }
        if (msg_size >= sizeof i && memcmp(buf, &i, sizeof i) != 0) {
            fprintf(stderr, "pingpong: corrupt echo at %ld\n", i);
            return 1;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    close(c);
    if (inline_mode)
        close(srv);
    else
        pthread_join(th, NULL);
    long long ns = (t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec);
    printf("%ld %zu %lld %.1f\n", n_msgs, msg_size, ns, (double)ns / n_msgs);
    return 0;
}
