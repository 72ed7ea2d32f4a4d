/* A blocking call interrupted by a signal (issue 12), run once on the kernel and once
 * under the library; the test compares the two result lines.
 *
 *   sigcall OP RESTART SENDS PORT PEER_IP PEER_PORT
 *
 * OP: recv send accept connect epoll poll select storm.  The program listens on PORT
 * (accept, and the peer's connections), or connects to PEER_IP:PEER_PORT (connect).
 * With SENDS=1 the peer first opens connection B, and the SIGALRM handler sends one byte
 * on B (a handler calling into the library).  RESTART=1 installs the handler with
 * SA_RESTART.  The alarm fires 150 ms after "armed"; the peer acts 0.5 s after it.
 * storm: a 1 ms interval timer (SA_RESTART) while recv spins for the peer's byte, the
 * handler sending on B every time: a handler run while the thread holds the stack lock.
 *
 * Prints "armed" then "result op=OP rc=R errno=NAME handled=H sent=S", then exits. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static volatile sig_atomic_t handled, sent;
static int bfd = -1;

static void on_alarm(int sig)
{
    (void)sig;
    int saved = errno;
    handled++;
    if (bfd >= 0 && send(bfd, "s", 1, MSG_DONTWAIT) == 1)
        sent++;
    errno = saved;
}

static const char *ename(int e)
{
    switch (e) {
    case 0: return "0";
    case EINTR: return "EINTR";
    case EAGAIN: return "EAGAIN";
    case ECONNREFUSED: return "ECONNREFUSED";
    case ETIMEDOUT: return "ETIMEDOUT";
    default: return strerror(e);
    }
}

static int accept_one(int lfd)
{
    int fd = accept(lfd, NULL, NULL);
    if (fd < 0) {
        perror("accept");
        exit(2);
    }
    return fd;
}

int main(int argc, char **argv)
{
    if (argc != 7) {
        fprintf(stderr, "usage: sigcall OP RESTART SENDS PORT PEER_IP PEER_PORT\n");
        return 2;
    }
    const char *op = argv[1];
    int restart = atoi(argv[2]), sends = atoi(argv[3]);
    int storm = strcmp(op, "storm") == 0;
    setvbuf(stdout, NULL, _IONBF, 0);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sa.sa_flags = restart || storm ? SA_RESTART : 0;
    if (sigaction(SIGALRM, &sa, NULL) != 0)
        return 2;
    struct sigaction back;
    if (sigaction(SIGALRM, NULL, &back) != 0 || back.sa_handler != on_alarm ||
        (back.sa_flags & SA_RESTART) != (sa.sa_flags & SA_RESTART)) {
        fprintf(stderr, "sigaction does not read back what was installed\n");
        return 3;
    }

    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[4]))};
    if (bind(lfd, (struct sockaddr *)&a, sizeof a) != 0 || listen(lfd, 16) != 0) {
        perror("listen");
        return 2;
    }
    printf("ready\n");
    if (sends || storm)
        bfd = accept_one(lfd);
    int afd = -1;
    if (strcmp(op, "accept") != 0 && strcmp(op, "connect") != 0)
        afd = accept_one(lfd);
    char big[65536];
    memset(big, 'x', sizeof big);
    if (strcmp(op, "send") == 0) {
        /* Fill the peer's window and our buffer: the next send blocks. */
        int fl = fcntl(afd, F_GETFL);
        fcntl(afd, F_SETFL, fl | O_NONBLOCK);
        for (int idle = 0; idle < 50;) {
            if (send(afd, big, sizeof big, 0) < 0) {
                idle++;
                usleep(10000);
            } else {
                idle = 0;
            }
        }
        fcntl(afd, F_SETFL, fl);
    }

    struct itimerval it = {.it_value = {0, 150000}};
    if (storm)
        it = (struct itimerval){.it_value = {0, 1000}, .it_interval = {0, 1000}};
    printf("armed\n");
    setitimer(ITIMER_REAL, &it, NULL);

    long rc;
    char c;
    if (strcmp(op, "recv") == 0 || storm) {
        rc = recv(afd, &c, 1, 0);
    } else if (strcmp(op, "send") == 0) {
        rc = send(afd, big, sizeof big, 0);
    } else if (strcmp(op, "accept") == 0) {
        rc = accept(lfd, NULL, NULL);
        rc = rc >= 0 ? 1 : rc;
    } else if (strcmp(op, "connect") == 0) {
        int cfd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in p = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[6]))};
        inet_pton(AF_INET, argv[5], &p.sin_addr);
        rc = connect(cfd, (struct sockaddr *)&p, sizeof p);
    } else if (strcmp(op, "epoll") == 0) {
        int ep = epoll_create1(0);
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = afd};
        epoll_ctl(ep, EPOLL_CTL_ADD, afd, &ev);
        rc = epoll_wait(ep, &ev, 1, -1);
    } else if (strcmp(op, "poll") == 0) {
        struct pollfd p = {.fd = afd, .events = POLLIN};
        rc = poll(&p, 1, -1);
    } else if (strcmp(op, "select") == 0) {
        fd_set r;
        FD_ZERO(&r);
        FD_SET(afd, &r);
        rc = select(afd + 1, &r, NULL, NULL, NULL);
    } else {
        fprintf(stderr, "unknown op %s\n", op);
        return 2;
    }
    int e = rc < 0 ? errno : 0;
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
    if (storm) {
        /* The storm's count differs from run to run: report that it matched. */
        printf("result op=%s rc=%ld errno=%s handled=%s sent=%s\n", op, rc, ename(e),
               handled > 10 ? "many" : "few", sent == handled ? "all" : "lost");
        fprintf(stderr, "storm handled=%d sent=%d\n", (int)handled, (int)sent);
    } else {
        printf("result op=%s rc=%ld errno=%s handled=%d sent=%d\n", op, rc, ename(e),
               (int)handled, (int)sent);
    }
    if (bfd >= 0)
        shutdown(bfd, SHUT_WR);
    /* Keep the connections until the peer has read everything. */
    if (afd >= 0)
        shutdown(afd, SHUT_WR);
    usleep(200000);
    return 0;
}
