/* errno_check: calls socket functions with bad arguments and prints one line per
 * call, "name result errno-name", so a run under LD_PRELOAD=libbypass.so can be
 * compared with a kernel-only run.  Also checks that a successful call leaves the
 * caller's errno alone.  Loopback only.  Built by test_errno.py. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/time.h>
#include <sys/socket.h>
#include <unistd.h>

#define SENTINEL 4242 /* not a real errno: shows whether a call touched errno */

static const char *ename(int e)
{
    switch (e) {
#define E(x) case x: return #x;
    E(EBADF) E(ENOTSOCK) E(ECONNREFUSED) E(ENOPROTOOPT) E(EINVAL) E(EADDRINUSE)
    E(EAFNOSUPPORT) E(EEXIST) E(ENOENT) E(EFAULT) E(ENOTCONN) E(EPIPE) E(EAGAIN)
    E(EOPNOTSUPP) E(EISCONN) E(EALREADY) E(EINPROGRESS) E(EPROTONOSUPPORT)
    E(EDESTADDRREQ) E(ESPIPE) E(EPERM) E(EINTR)
#undef E
    case 0: return "0";
    case SENTINEL: return "unchanged";
    default: return "other";
    }
}

/* Print the result of one call together with errno as it left the call. */
#define CHECK(name, call)                                         \
    do {                                                          \
        errno = SENTINEL;                                         \
        long rv_ = (long)(call);                                  \
        int e_ = errno;                                           \
        printf("%-28s %3ld %s\n", name, rv_, ename(e_)); \
    } while (0)

static struct sockaddr_in lo(int port)
{
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
}

/* A listening TCP socket on an ephemeral loopback port; its port in *port. */
static int listener(int *port)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = lo(0);
    socklen_t len = sizeof a;
    bind(s, (struct sockaddr *)&a, sizeof a);
    listen(s, 8);
    getsockname(s, (struct sockaddr *)&a, &len);
    *port = ntohs(a.sin_port);
    return s;
}

static void on_alarm(int sig)
{
    (void)sig;
}

/* Arm SIGALRM in @ms milliseconds with or without SA_RESTART. */
static void alarm_in(int ms, int restart)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sa.sa_flags = restart ? SA_RESTART : 0;
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval it = {.it_value = {.tv_sec = 0, .tv_usec = ms * 1000}};
    setitimer(ITIMER_REAL, &it, NULL);
}

/* Thread: after 150 ms, send 5 bytes on the fd it is given. */
static void *late_sender(void *arg)
{
    usleep(150000);
    send(*(int *)arg, "later", 5, 0);
    return NULL;
}

/* Signal interruption: which calls fail with EINTR and which are restarted
 * (signal(7)): a wrapper that loops or spins must keep the kernel's answer. */
static void check_eintr(int lst, struct sockaddr_in *here)
{
    char buf[16];
    int c = socket(AF_INET, SOCK_STREAM, 0);
    connect(c, (struct sockaddr *)here, sizeof *here);
    int a = accept(lst, NULL, NULL);
    struct pollfd pfd = {.fd = c, .events = POLLIN};
    int ep = epoll_create1(0);
    epoll_ctl(ep, EPOLL_CTL_ADD, c, &(struct epoll_event){.events = EPOLLIN});
    struct epoll_event ev;
    fd_set rd;

    alarm_in(50, 0);
    CHECK("recv(EINTR, no restart)", recv(c, buf, sizeof buf, 0));
    alarm_in(50, 0);
    CHECK("accept(EINTR, no restart)", accept(lst, NULL, NULL));

    pthread_t th;
    pthread_create(&th, NULL, late_sender, &a);
    alarm_in(50, 1);
    CHECK("recv(SA_RESTART, restarted)", recv(c, buf, sizeof buf, 0));
    pthread_join(th, NULL);

    struct timeval tv = {.tv_sec = 0, .tv_usec = 400000};
    setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    alarm_in(50, 1);
    CHECK("recv(SA_RESTART, RCVTIMEO)", recv(c, buf, sizeof buf, 0));
    CHECK("recv(RCVTIMEO expires)", recv(c, buf, sizeof buf, 0));
    alarm_in(50, 1);
    CHECK("poll(SA_RESTART)", poll(&pfd, 1, 2000));
    alarm_in(50, 1);
    CHECK("epoll_wait(SA_RESTART)", epoll_wait(ep, &ev, 1, 2000));
    FD_ZERO(&rd);
    FD_SET(c, &rd);
    alarm_in(50, 1);
    CHECK("select(SA_RESTART)", select(c + 1, &rd, NULL, NULL, &(struct timeval){2, 0}));
    signal(SIGALRM, SIG_IGN);
    close(ep);
    close(a);
    close(c);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);
    char buf[64];
    int pfd[2];
    pipe(pfd);
    int port;
    int lst = listener(&port);
    struct sockaddr_in here = lo(port);

    /* EBADF */
    CHECK("close(-1)", close(-1));
    CHECK("recv(badfd)", recv(999, buf, sizeof buf, 0));
    CHECK("send(badfd)", send(999, "x", 1, 0));
    CHECK("connect(badfd)", connect(999, (struct sockaddr *)&here, sizeof here));
    CHECK("fcntl(badfd,GETFL)", fcntl(999, F_GETFL));
    CHECK("dup2(badfd,100)", dup2(999, 100));
    CHECK("epoll_ctl(badfd)", epoll_ctl(999, EPOLL_CTL_ADD, 0, &(struct epoll_event){.events = EPOLLIN}));

    /* ENOTSOCK */
    CHECK("recv(pipe)", recv(pfd[0], buf, sizeof buf, MSG_DONTWAIT));
    CHECK("send(pipe)", send(pfd[1], "x", 1, 0));
    CHECK("accept(pipe)", accept(pfd[0], NULL, NULL));
    CHECK("getsockopt(pipe)", getsockopt(pfd[0], SOL_SOCKET, SO_TYPE, buf, &(socklen_t){4}));
    CHECK("setsockopt(pipe)", setsockopt(pfd[0], SOL_SOCKET, SO_REUSEADDR, &(int){1}, 4));
    CHECK("bind(pipe)", bind(pfd[0], (struct sockaddr *)&here, sizeof here));
    CHECK("shutdown(pipe)", shutdown(pfd[0], SHUT_RDWR));
    CHECK("getpeername(pipe)", getpeername(pfd[0], (struct sockaddr *)buf, &(socklen_t){16}));

    /* ECONNREFUSED */
    int tmpport;
    int tmp = listener(&tmpport);
    close(tmp);
    struct sockaddr_in closed = lo(tmpport);
    int c = socket(AF_INET, SOCK_STREAM, 0);
    CHECK("connect(closed port)", connect(c, (struct sockaddr *)&closed, sizeof closed));
    close(c);

    /* EADDRINUSE */
    c = socket(AF_INET, SOCK_STREAM, 0);
    CHECK("bind(in use)", bind(c, (struct sockaddr *)&here, sizeof here));
    close(c);

    /* getsockopt / setsockopt */
    c = socket(AF_INET, SOCK_STREAM, 0);
    int v;
    socklen_t vl = sizeof v;
    CHECK("getsockopt(bad level)", getsockopt(c, 0x7777, 1, &v, &vl));
    CHECK("getsockopt(bad opt)", getsockopt(c, SOL_SOCKET, 0x7777, &v, &vl));
    CHECK("setsockopt(short optlen)", setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &v, 1));
    CHECK("getsockopt(SO_ERROR)", getsockopt(c, SOL_SOCKET, SO_ERROR, &v, &vl));
    printf("%-28s %d\n", "SO_ERROR value", v);

    /* argument errors */
    CHECK("connect(short addrlen)", connect(c, (struct sockaddr *)&here, 4));
    CHECK("bind(AF_UNIX addr)", bind(c, (struct sockaddr *)&(struct sockaddr){.sa_family = AF_UNIX}, sizeof(struct sockaddr)));
    CHECK("socket(bad family)", socket(12345, SOCK_STREAM, 0));
    CHECK("socket(bad proto)", socket(AF_INET, SOCK_STREAM, IPPROTO_UDP));
    CHECK("accept4(bad flags)", accept4(lst, NULL, NULL, 0x7fff0000));
    CHECK("listen(udp)", listen(socket(AF_INET, SOCK_DGRAM, 0), 1));
    CHECK("recv(unconnected)", recv(c, buf, sizeof buf, 0));
    CHECK("sendto(udp no dest)", sendto(socket(AF_INET, SOCK_DGRAM, 0), "x", 1, 0, NULL, 0));
    CHECK("lseek(socket)", lseek(c, 0, SEEK_SET));
    volatile nfds_t huge = 1u << 30;
    CHECK("poll(nfds huge)", poll(NULL, huge, 0));
    CHECK("select(nfds -1)", select(-1, NULL, NULL, NULL, &(struct timeval){0, 0}));
    int ep = epoll_create1(0);
    CHECK("epoll_wait(maxevents 0)", epoll_wait(ep, NULL, 0, 0));
    CHECK("epoll_ctl(ADD)", epoll_ctl(ep, EPOLL_CTL_ADD, c, &(struct epoll_event){.events = EPOLLIN}));
    CHECK("epoll_ctl(ADD again)", epoll_ctl(ep, EPOLL_CTL_ADD, c, &(struct epoll_event){.events = EPOLLIN}));
    CHECK("epoll_ctl(DEL missing)", epoll_ctl(ep, EPOLL_CTL_DEL, pfd[0], NULL));
    CHECK("epoll_ctl(ADD self)", epoll_ctl(ep, EPOLL_CTL_ADD, ep, &(struct epoll_event){.events = EPOLLIN}));
    close(c);

    /* connected-socket errors: EISCONN, EPIPE, EFAULT */
    c = socket(AF_INET, SOCK_STREAM, 0);
    CHECK("connect(ok)", connect(c, (struct sockaddr *)&here, sizeof here));
    CHECK("connect(again)", connect(c, (struct sockaddr *)&here, sizeof here));
    int a = accept(lst, NULL, NULL);
    CHECK("accept(ok)", a >= 0 ? 0 : -1);
    CHECK("send(ok)", send(a, "hello", 5, 0));
    CHECK("recv(NULL buf)", recv(c, NULL, 5, 0));
    CHECK("recv(ok)", recv(c, buf, sizeof buf, 0));
    CHECK("recv(DONTWAIT empty)", recv(c, buf, sizeof buf, MSG_DONTWAIT));
    close(a);
    usleep(20000);
    CHECK("recv(after peer close)", recv(c, buf, sizeof buf, 0));
    send(c, "x", 1, 0); /* provokes the RST */
    usleep(20000);
    CHECK("send(after RST)", send(c, "x", 1, MSG_NOSIGNAL));
    CHECK("write(after RST)", write(c, "x", 1));
    close(c);

    check_eintr(lst, &here);

    /* success leaves the caller's errno alone */
    errno = SENTINEL;
    c = socket(AF_INET, SOCK_DGRAM, 0);
    printf("%-28s %s\n", "errno after socket() ok", ename(errno));
    errno = SENTINEL;
    close(c);
    printf("%-28s %s\n", "errno after close() ok", ename(errno));
    errno = SENTINEL;
    poll(NULL, 0, 0);
    printf("%-28s %s\n", "errno after poll() ok", ename(errno));
    return 0;
}
