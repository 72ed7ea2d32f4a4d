/* A non-blocking epoll echo server for the accelerated suite.
 *
 *   epoll_server PORT lt|et
 *
 * Listens on 0.0.0.0:PORT, accepts with accept4(SOCK_NONBLOCK) and echoes every byte back,
 * level- or edge-triggered.  Prints "ready" once listening; on SIGTERM prints
 * "accepted A closed C max_open M errors E" and exits 0.  Raises its fd limit to the hard
 * limit so that thousands of connections fit.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUFSZ 16384

/* Bytes read but not yet written back on one connection. */
struct conn {
    int fd;
    size_t len;
    char buf[BUFSZ];
};

static volatile sig_atomic_t stop;
static int edge;
static long accepted, closed, open_now, max_open, errors;

static void on_term(int sig)
{
    (void)sig;
    stop = 1;
}

static void drop(int ep, struct conn *c)
{
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c);
    closed++;
    if (--open_now == 0) {
        printf("drained after %ld\n", closed);   /* every connection so far has closed */
        fflush(stdout);
    }
}

static int watch(int ep, int op, struct conn *c, int want_out)
{
    struct epoll_event ev = {.data.ptr = c};
    ev.events = (want_out ? EPOLLOUT : EPOLLIN) | EPOLLRDHUP | (edge ? EPOLLET : 0);
    return epoll_ctl(ep, op, c->fd, &ev);
}

/* Writes what is pending; 1 if all went, 0 if the socket is full, -1 on error. */
static int flush(struct conn *c)
{
    size_t off = 0;
    while (off < c->len) {
        ssize_t n = send(c->fd, c->buf + off, c->len - off, MSG_NOSIGNAL);
        if (n > 0) {
            off += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            memmove(c->buf, c->buf + off, c->len - off);
            c->len -= off;
            return 0;
        } else {
            return -1;
        }
    }
    c->len = 0;
    return 1;
}

/* Reads and echoes until the socket is drained (edge) or once (level). */
static void serve(int ep, struct conn *c, unsigned events)
{
    if (c->len > 0) { /* waiting for room to write */
        int r = flush(c);
        if (r < 0) {
            errors++;
            drop(ep, c);
            return;
        }
        if (r == 0)
            return;
        watch(ep, EPOLL_CTL_MOD, c, 0);
    }
    for (;;) {
        ssize_t n = recv(c->fd, c->buf, sizeof c->buf, 0);
        if (n == 0) {
            drop(ep, c);
            return;
        }
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                if (events & (EPOLLHUP | EPOLLERR))
                    drop(ep, c);
                return;
            }
            errors++;
            drop(ep, c);
            return;
        }
        c->len = (size_t)n;
        int r = flush(c);
        if (r < 0) {
            errors++;
            drop(ep, c);
            return;
        }
        if (r == 0) {
            watch(ep, EPOLL_CTL_MOD, c, 1);
            return;
        }
        if (!edge)
            return;
    }
}

int main(int argc, char **argv)
{
    if (argc != 3 || (strcmp(argv[2], "lt") && strcmp(argv[2], "et"))) {
        fprintf(stderr, "usage: %s PORT lt|et\n", argv[0]);
        return 2;
    }
    edge = !strcmp(argv[2], "et");
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    struct sigaction sa = {.sa_handler = on_term};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[1]))};
    if (ls < 0 || bind(ls, (struct sockaddr *)&sin, sizeof sin) || listen(ls, 4096)) {
        perror("epoll_server: listen");
        return 1;
    }
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event lev = {.events = EPOLLIN | (edge ? EPOLLET : 0), .data.ptr = NULL};
    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, ls, &lev)) {
        perror("epoll_server: epoll");
        return 1;
    }
    printf("ready\n");
    fflush(stdout);

    struct epoll_event evs[256];
    while (!stop) {
        int n = epoll_wait(ep, evs, 256, 100);
        if (n < 0 && errno != EINTR) {
            perror("epoll_server: epoll_wait");
            return 1;
        }
        for (int i = 0; i < n; i++) {
            if (evs[i].data.ptr != NULL) {
                serve(ep, evs[i].data.ptr, evs[i].events);
                continue;
            }
            for (;;) { /* drain the accept queue, in both modes */
                int fd = accept4(ls, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (fd < 0) {
                    if (errno == EINTR || errno == ECONNABORTED)
                        continue;
                    if (errno != EAGAIN && errno != EWOULDBLOCK) {
                        errors++;
                        perror("epoll_server: accept4");
                    }
                    break;
                }
                struct conn *c = malloc(sizeof *c);
                if (c == NULL) {
                    close(fd);
                    errors++;
                    continue;
                }
                c->fd = fd;
                c->len = 0;
                setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                if (watch(ep, EPOLL_CTL_ADD, c, 0)) {
                    perror("epoll_server: epoll_ctl");
                    close(fd);
                    free(c);
                    errors++;
                    continue;
                }
                accepted++;
                if (++open_now > max_open)
                    max_open = open_now;
            }
        }
    }
    printf("accepted %ld closed %ld max_open %ld errors %ld\n", accepted, closed, max_open,
           errors);
    return 0;
}
