/* 8 threads sharing 64 connections to an echo server for SECONDS (issue 12).
 *
 *   threads_stress HOST PORT SECONDS
 *
 * Each round a thread takes a random connection (its mutex), sends a block tagged with a
 * counter and checks that the echo comes back intact; one round in 64 it closes the
 * connection and opens a new one; one round in 128 it shuts down, without the mutex, a
 * connection another thread may be blocked on (that thread sees EOF or an error and
 * reconnects).  Prints "rounds R ok O bad B reconnects C errors E" and exits 0 when no
 * echo was wrong.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define NTHREADS 8
#define NCONN 64

static struct sockaddr_in peer;
static int fds[NCONN];
static pthread_mutex_t locks[NCONN];
static volatile int stop;
static long rounds, ok, bad, reconnects, errors;

static int open_one(void)
{
    for (int tries = 0; tries < 50; tries++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct timeval tv = {5, 0};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        if (connect(fd, (struct sockaddr *)&peer, sizeof peer) == 0)
            return fd;
        close(fd);
        usleep(20000);
    }
    return -1;
}

static int echo(int fd, unsigned seed, size_t len)
{
    char out[8192], in[8192];
    for (size_t i = 0; i < len; i++)
        out[i] = (char)(seed * 31 + i * 7);
    size_t off = 0;
    while (off < len) {
        ssize_t n = send(fd, out + off, len - off, MSG_NOSIGNAL);
        if (n <= 0)
            return -1;
        off += (size_t)n;
    }
    off = 0;
    while (off < len) {
        ssize_t n = recv(fd, in + off, len - off, 0);
        if (n <= 0)
            return -1;
        off += (size_t)n;
    }
    return memcmp(in, out, len) == 0 ? 1 : 0;
}

static void *worker(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg * 7919u + (unsigned)time(NULL);
    while (!stop) {
        int k = rand_r(&seed) % NCONN;
        int op = rand_r(&seed) % 128;
        if (op == 0) {
            /* Shut down a connection someone else may be using: its user reconnects. */
            int fd = __atomic_load_n(&fds[k], __ATOMIC_ACQUIRE);
            if (fd >= 0)
                shutdown(fd, SHUT_RDWR);
            continue;
        }
        pthread_mutex_lock(&locks[k]);
        if (fds[k] < 0 || op < 3) {
            if (fds[k] >= 0)
                close(fds[k]);
            __atomic_store_n(&fds[k], open_one(), __ATOMIC_RELEASE);
            __atomic_add_fetch(&reconnects, 1, __ATOMIC_RELAXED);
        }
        if (fds[k] >= 0) {
            int r = echo(fds[k], rand_r(&seed), 1 + (size_t)(rand_r(&seed) % 8192));
            __atomic_add_fetch(&rounds, 1, __ATOMIC_RELAXED);
            if (r == 1) {
                __atomic_add_fetch(&ok, 1, __ATOMIC_RELAXED);
            } else if (r == 0) {
                __atomic_add_fetch(&bad, 1, __ATOMIC_RELAXED);
            } else {
                /* Shut down under us (or reset): a new connection next time. */
                __atomic_add_fetch(&errors, 1, __ATOMIC_RELAXED);
                close(fds[k]);
                __atomic_store_n(&fds[k], -1, __ATOMIC_RELEASE);
            }
        }
        pthread_mutex_unlock(&locks[k]);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: threads_stress HOST PORT SECONDS\n");
        return 2;
    }
    peer.sin_family = AF_INET;
    peer.sin_port = htons((uint16_t)atoi(argv[2]));
    inet_pton(AF_INET, argv[1], &peer.sin_addr);
    for (int i = 0; i < NCONN; i++) {
        pthread_mutex_init(&locks[i], NULL);
        fds[i] = open_one();
        if (fds[i] < 0) {
            perror("connect");
            return 2;
        }
    }
    printf("ready\n");
    fflush(stdout);
    pthread_t th[NTHREADS];
    for (int i = 0; i < NTHREADS; i++)
        pthread_create(&th[i], NULL, worker, (void *)(uintptr_t)(i + 1));
    sleep((unsigned)atoi(argv[3]));
    stop = 1;
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < NCONN; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    printf("rounds %ld ok %ld bad %ld reconnects %ld errors %ld\n", rounds, ok, bad,
           reconnects, errors);
    return bad == 0 ? 0 : 1;
}
