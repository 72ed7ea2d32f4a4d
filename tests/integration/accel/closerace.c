/* close() of an fd racing calls on the same fd in other threads (issue 12), run once on
 * the kernel and once under the library; the test compares the two.
 *
 *   closerace serve PORT                       the peer: TCP and UDP echo on PORT (kernel)
 *   closerace race tcp|udp HOST PORT ROUNDS [close|dup2|close_range]
 *                                              the race; the fd goes by close() (default),
 *                                              by dup2() of another socket onto it (a
 *                                              socketpair end whose peer is closed: EOF,
 *                                              EPIPE) or by close_range()
 *   closerace blocked tcp|udp HOST PORT        recv blocked while another thread closes
 *   closerace reuse udp HOST PORT SECONDS      sockets closed while another thread opens,
 *                                              reads and closes a file: "rounds=R reads=N
 *                                              ebadf=E" (E: reads of that file that failed)
 *
 * race: each round opens a socket connected to the peer (TCP, or UDP with connect) and
 * releases five threads on it at once: one closes it after a random few microseconds, the
 * others shutdown, send then recv (the echo), getsockopt, and recv with a 2 ms
 * SO_RCVTIMEO.  Prints one line per operation, "op=NAME CLASS=COUNT ..." (CLASS: ok, eof
 * for a recv that returned 0, or the errno's name), then "done ROUNDS".
 *
 * blocked: sends "D" (the peer answers "hello" 1 s later), a thread blocks in recv, the
 * main thread closes the fd 200 ms later and looks 300 ms after that whether the recv is
 * still blocked.  On Linux the call keeps its socket (fdget): it stays blocked and gets
 * "hello".  Prints "result close=R blocked=B recv=N data=D errno=E".
 *
 * serve: echoes; a connection (or datagram) starting with "D" is answered "hello" after
 * 1 s instead, and for TCP the peer then prints "tcp eof" when the other side's close
 * arrives. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static struct sockaddr_in peer;
static int udp;

static int64_t now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000 + t.tv_nsec / 1000;
}

/* ---- the peer ---- */

static void *tcp_conn(void *arg)
{
    int c = (int)(intptr_t)arg;
    char buf[4096];
    ssize_t n = recv(c, buf, sizeof buf, 0);
    if (n > 0 && buf[0] == 'D') {
        sleep(1);
        send(c, "hello", 5, MSG_NOSIGNAL);
        while ((n = recv(c, buf, sizeof buf, 0)) > 0)
            ;
        if (n == 0)
            printf("tcp eof\n");
        close(c);
        return NULL;
    }
    while (n > 0) {
        if (send(c, buf, (size_t)n, MSG_NOSIGNAL) < 0)
            break;
        n = recv(c, buf, sizeof buf, 0);
    }
    close(c);
    return NULL;
}

static void *tcp_serve(void *arg)
{
    int l = (int)(intptr_t)arg;
    for (;;) {
        int c = accept(l, NULL, NULL);
        if (c < 0)
            continue;
        pthread_t t;
        pthread_attr_t a;
        pthread_attr_init(&a);
        pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&a, 64 << 10);
        if (pthread_create(&t, &a, tcp_conn, (void *)(intptr_t)c) != 0)
            close(c);
        pthread_attr_destroy(&a);
    }
    return NULL;
}

static int serve(int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    int l = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    int u = socket(AF_INET, SOCK_DGRAM, 0);
    if (bind(l, (struct sockaddr *)&a, sizeof a) < 0 || listen(l, 512) < 0 ||
        bind(u, (struct sockaddr *)&a, sizeof a) < 0) {
        perror("serve");
        return 2;
    }
    pthread_t t;
    pthread_create(&t, NULL, tcp_serve, (void *)(intptr_t)l);
    printf("ready\n");
    for (;;) {
        char buf[2048];
        struct sockaddr_in from;
        socklen_t fl = sizeof from;
        ssize_t n = recvfrom(u, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl);
        if (n <= 0)
            continue;
        if (n == 1 && buf[0] == 'D') {
            sleep(1);
            sendto(u, "hello", 5, 0, (struct sockaddr *)&from, fl);
        } else {
            sendto(u, buf, (size_t)n, 0, (struct sockaddr *)&from, fl);
        }
    }
}

/* ---- the program under test ---- */

static int open_one(void)
{
    for (int tries = 0; tries < 100; tries++) {
        int fd = socket(AF_INET, udp ? SOCK_DGRAM : SOCK_STREAM, 0);
        if (fd < 0) {
            perror("socket");
            exit(2);
        }
        if (connect(fd, (struct sockaddr *)&peer, sizeof peer) == 0)
            return fd;
        close(fd);
        usleep(10000);
    }
    perror("connect");
    exit(2);
}

enum { W_CLOSE, W_SHUTDOWN, W_SENDRECV, W_GETSOCKOPT, W_RECV, NW };
static const char *const opname[NW] = {"close", "shutdown", "sendrecv", "getsockopt", "recv"};
#define NCLASS 160              /* 0 ok, 1 eof, 2 + errno */
static long counts[NW][NCLASS];
static pthread_barrier_t start, finish;
static int rounds;
static volatile int cur_fd;
static enum { BY_CLOSE, BY_DUP2, BY_CLOSE_RANGE } closer;
static int spare = -1;   /* BY_DUP2: what replaces the fd */

static void count(int w, long rc)
{
    int c = rc > 0 || (rc == 0 && w != W_RECV && w != W_SENDRECV) ? 0 : rc == 0 ? 1 : 2 + errno;
    if (c >= NCLASS)
        c = NCLASS - 1;
    counts[w][c]++;
}

/* A few microseconds, different each round, so that the close lands anywhere in the
 * others' calls: before them, inside them, while they wait, after them. */
static void jitter(unsigned *seed)
{
    int r = rand_r(seed) % 8;
    if (r == 0)
        return;
    if (r == 1) {
        sched_yield();
        return;
    }
    int64_t until = now_us() + rand_r(seed) % 150;
    while (now_us() < until)
        ;
}

static void *worker(void *arg)
{
    int w = (int)(intptr_t)arg;
    unsigned seed = (unsigned)w * 7919u + (unsigned)getpid();
    char buf[256];
    for (int r = 0; r < rounds; r++) {
        pthread_barrier_wait(&start);
        int fd = cur_fd;
        jitter(&seed);
        long rc;
        switch (w) {
        case W_CLOSE:
            if (closer == BY_DUP2)
                rc = dup2(spare, fd) == fd ? 0 : -1;
            else if (closer == BY_CLOSE_RANGE)
                rc = close_range((unsigned)fd, (unsigned)fd, 0);
            else
                rc = close(fd);
            break;
        case W_SHUTDOWN:
            rc = shutdown(fd, SHUT_RDWR);
            break;
        case W_SENDRECV:
            rc = send(fd, "0123456789abcdef", 16, MSG_NOSIGNAL);
            if (rc > 0)
                rc = recv(fd, buf, sizeof buf, 0);
            break;
        case W_GETSOCKOPT: {
            int v;
            socklen_t l = sizeof v;
            rc = getsockopt(fd, SOL_SOCKET, SO_ERROR, &v, &l);
            if (rc == 0)
                rc = getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, &l);
            break;
        }
        default:
            rc = recv(fd, buf, sizeof buf, 0);
        }
        count(w, rc);
        pthread_barrier_wait(&finish);
    }
    return NULL;
}

static const char *cname(int c)
{
    static char b[32];
    if (c == 0)
        return "ok";
    if (c == 1)
        return "eof";
    const char *n = strerrorname_np(c - 2);
    if (n == NULL) {
        snprintf(b, sizeof b, "E%d", c - 2);
        return b;
    }
    return n;
}

static int race(void)
{
    pthread_t t[NW];
    pthread_barrier_init(&start, NULL, NW + 1);
    pthread_barrier_init(&finish, NULL, NW + 1);
    for (int w = 0; w < NW; w++)
        pthread_create(&t[w], NULL, worker, (void *)(intptr_t)w);
    struct timeval tv = {0, 2000};
    if (closer == BY_DUP2) {
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0) {
            perror("socketpair");
            return 2;
        }
        close(sv[1]);
        spare = sv[0];
    }
    for (int r = 0; r < rounds; r++) {
        int fd = open_one();
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        cur_fd = fd;
        pthread_barrier_wait(&start);
        pthread_barrier_wait(&finish);
        if (closer == BY_DUP2)
            close(fd);   /* the socketpair end's copy */
    }
    for (int w = 0; w < NW; w++)
        pthread_join(t[w], NULL);
    for (int w = 0; w < NW; w++) {
        printf("op=%s", opname[w]);
        for (int c = 0; c < NCLASS; c++)
            if (counts[w][c] > 0)
                printf(" %s=%ld", cname(c), counts[w][c]);
        printf("\n");
    }
    printf("done %d\n", rounds);
    return counts[W_CLOSE][0] == rounds ? 0 : 1;
}

/* ---- reuse: a number closed in one thread, opened in another ---- */

static volatile int reuse_stop;
static long reuse_reads, reuse_ebadf;

/* Opens a file (a call the library does not see), reads it, closes it, over and over: the
 * number is often the one the main thread has just closed. */
static void *reuse_reader(void *arg)
{
    char b[8];
    while (!__atomic_load_n(&reuse_stop, __ATOMIC_ACQUIRE)) {
        int fd = open("/dev/zero", O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        if (read(fd, b, 1) < 0 && errno == EBADF)
            reuse_ebadf++;
        reuse_reads++;
        close(fd);
    }
    return arg;
}

/* Accelerated sockets (UDP, connected: no handshake) opened and closed for @secs while
 * another thread opens, reads and closes a file. */
static int reuse(double secs)
{
    pthread_t t;
    pthread_create(&t, NULL, reuse_reader, NULL);
    long n = 0;
    int64_t end = now_us() + (int64_t)(secs * 1e6);
    while (now_us() < end) {
        int s = socket(AF_INET, SOCK_DGRAM, 0);
        connect(s, (struct sockaddr *)&peer, sizeof peer);
        close(s);
        n++;
    }
    __atomic_store_n(&reuse_stop, 1, __ATOMIC_RELEASE);
    pthread_join(t, NULL);
    printf("rounds=%ld reads=%ld ebadf=%ld\n", n, reuse_reads, reuse_ebadf);
    return 0;
}

static volatile int recv_done;
static long recv_rc;
static int recv_errno;
static char recv_buf[64];

static void *blocked_recv(void *arg)
{
    int fd = (int)(intptr_t)arg;
    recv_rc = recv(fd, recv_buf, sizeof recv_buf - 1, 0);
    recv_errno = recv_rc < 0 ? errno : 0;
    __atomic_store_n(&recv_done, 1, __ATOMIC_RELEASE);
    return NULL;
}

static int blocked(void)
{
    int fd = open_one();
    if (send(fd, "D", 1, 0) != 1) {
        perror("send");
        return 2;
    }
    pthread_t t;
    pthread_create(&t, NULL, blocked_recv, (void *)(intptr_t)fd);
    usleep(200000);
    int rc = close(fd);
    usleep(300000);
    int still = !__atomic_load_n(&recv_done, __ATOMIC_ACQUIRE);
    pthread_join(t, NULL);
    const char *e = recv_errno ? strerrorname_np(recv_errno) : "0";
    printf("result close=%d blocked=%d recv=%ld data=%s errno=%s\n", rc, still, recv_rc,
           recv_rc > 0 ? recv_buf : "-", e);
    /* The deferred close: the peer sees it once the call returned (TCP). */
    usleep(300000);
    return 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc == 3 && strcmp(argv[1], "serve") == 0)
        return serve(atoi(argv[2]));
    if (argc < 5) {
        fprintf(stderr, "usage: closerace serve PORT | race tcp|udp HOST PORT ROUNDS "
                        "[close|dup2|close_range] | "
                        "blocked tcp|udp HOST PORT | reuse udp HOST PORT SECONDS\n");
        return 2;
    }
    udp = strcmp(argv[2], "udp") == 0;
    peer.sin_family = AF_INET;
    peer.sin_port = htons(atoi(argv[4]));
    inet_pton(AF_INET, argv[3], &peer.sin_addr);
    if (strcmp(argv[1], "race") == 0 && (argc == 6 || argc == 7)) {
        rounds = atoi(argv[5]);
        if (argc == 7)
            closer = strcmp(argv[6], "dup2") == 0          ? BY_DUP2
                     : strcmp(argv[6], "close_range") == 0 ? BY_CLOSE_RANGE
                                                           : BY_CLOSE;
        return race();
    }
    if (strcmp(argv[1], "blocked") == 0)
        return blocked();
    if (strcmp(argv[1], "reuse") == 0 && argc == 6)
        return reuse(atof(argv[5]));
    return 2;
}
