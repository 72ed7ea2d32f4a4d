/* Processes killed while they hold the shared stack's lock (issue 11): a pre-forked echo
 * server whose parent, meanwhile, forks victims that do nothing but take the lock (run the
 * stack's receive path, read TCP_INFO) and kills each with SIGKILL a few milliseconds
 * after it started.
 *
 *   deadholder PORT WORKERS KILLS GOFILE
 *
 * The parent listens on PORT (accelerated), forks WORKERS echo workers (poll + accept +
 * echo, many connections each), prints "ready", waits for GOFILE to exist, then runs KILLS
 * victims one after the other, prints "kills K" and keeps serving until SIGTERM (the workers
 * end with it). */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAXC 256

static volatile sig_atomic_t stop;

static void on_term(int sig)
{
    (void)sig;
    stop = 1;
}

/* Accept and echo, level-triggered over poll(), until SIGTERM. */
static void worker(int lfd)
{
    struct pollfd p[MAXC + 1];
    int n = 0;
    static char buf[65536];
    p[0] = (struct pollfd){.fd = lfd, .events = POLLIN};
    while (!stop) {
        if (poll(p, (nfds_t)n + 1, 200) <= 0)
            continue;
        if ((p[0].revents & POLLIN) && n < MAXC) {
            int c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
            if (c >= 0)
                p[++n] = (struct pollfd){.fd = c, .events = POLLIN};
        }
        for (int i = 1; i <= n; i++) {
            if (!p[i].revents)
                continue;
            ssize_t r = recv(p[i].fd, buf, sizeof buf, 0);
            if (r > 0) {
                /* Echo all of it (blocking on the way out keeps the order simple). */
                int fl = 0;
                for (ssize_t off = 0; off < r;) {
                    ssize_t w = send(p[i].fd, buf + off, (size_t)(r - off), MSG_NOSIGNAL);
                    if (w > 0) {
                        off += w;
                    } else if (w < 0 && errno == EAGAIN) {
                        struct pollfd o = {.fd = p[i].fd, .events = POLLOUT};
                        poll(&o, 1, 100);
                    } else {
                        fl = 1;
                        break;
                    }
                }
                if (!fl)
                    continue;
            } else if (r < 0 && errno == EAGAIN) {
                continue;
            }
            close(p[i].fd);
            p[i] = p[n--];
            i--;
        }
    }
    _exit(0);
}

/* A victim: take the stack's lock as often as it can (run the receive path, which
 * processes the workers' connections too, and read TCP_INFO). */
static void victim(int lfd, int ready)
{
    struct tcp_info ti;
    socklen_t l = sizeof ti;
    struct pollfd p = {.fd = lfd, .events = POLLIN};
    poll(&p, 1, 0);
    (void)!write(ready, "r", 1);
    for (;;) {
        poll(&p, 1, 0);
        getsockopt(lfd, IPPROTO_TCP, TCP_INFO, &ti, &l);
    }
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: deadholder PORT WORKERS KILLS GOFILE\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    int port = atoi(argv[1]), nw = atoi(argv[2]), kills = atoi(argv[3]);
    struct sigaction sa = {.sa_handler = on_term};
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    if (bind(lfd, (struct sockaddr *)&a, sizeof a) < 0 || listen(lfd, 512) < 0) {
        perror("listen");
        return 2;
    }
    pid_t w[64];
    for (int i = 0; i < nw && i < 64; i++) {
        w[i] = fork();
        if (w[i] == 0) {
            prctl(PR_SET_PDEATHSIG, SIGTERM);   /* never outlive the test's process */
            worker(lfd);
        }
    }
    printf("ready");
    for (int i = 0; i < nw; i++)
        printf(" %d", (int)w[i]);
    printf("\n");
    while (access(argv[4], F_OK) != 0 && !stop)
        usleep(20000);
    unsigned seed = (unsigned)getpid();
    int done = 0;
    for (int k = 0; k < kills && !stop; k++) {
        int pp[2];
        if (pipe(pp) < 0)
            break;
        pid_t v = fork();
        if (v == 0) {
            close(pp[0]);
            victim(lfd, pp[1]);
        }
        close(pp[1]);
        char c;
        (void)!read(pp[0], &c, 1);   /* it is in the stack's loop now */
        close(pp[0]);
        struct timespec d = {0, (long)(rand_r(&seed) % 4000 + 200) * 1000};
        nanosleep(&d, NULL);
        kill(v, SIGKILL);
        waitpid(v, NULL, 0);
        done++;
    }
    printf("kills %d\n", done);
    while (!stop)
        pause();
    for (int i = 0; i < nw; i++)
        kill(w[i], SIGTERM);
    for (int i = 0; i < nw; i++)
        waitpid(w[i], NULL, 0);
    return 0;
}
