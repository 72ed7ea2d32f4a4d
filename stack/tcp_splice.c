/* splice(2) between an accelerated TCP connection and a pipe (HAProxy's "option splice-*",
 * any proxy that moves bytes socket -> pipe -> socket).  The kernel socket underneath is not
 * connected, so the kernel's splice answered ENOTCONN and HAProxy cut the response short.
 *
 * The bytes go through a buffer, and only what the far end takes is moved, so none is lost
 * or read twice:
 *   socket -> pipe: as much as the pipe has room for is peeked from the connection, written
 *     to the pipe, and what the pipe took is then consumed;
 *   pipe -> socket: as much as the send queue has room for is read from the pipe and
 *     queued.
 * Blocking follows the kernel's (splice(2)): SPLICE_F_NONBLOCK, or the pipe's own
 * O_NONBLOCK, for the pipe; the socket's O_NONBLOCK (and its timeouts) for the socket. */
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

#include "lwip/priv/tcp_priv.h"

#include "byp_stack.h"
#include "tcp_sock.h"

#define SPLICE_CHUNK 65536

static int pipe_nonblock(int pfd, unsigned int flags)
{
    return (flags & SPLICE_F_NONBLOCK) || (BYP_REAL(fcntl)(pfd, F_GETFL) & O_NONBLOCK);
}

/* Wait for @events on the pipe: 1 ready, 0 never (its other end is gone), -1 with errno
 * (EAGAIN when @nonblock, EINTR). */
static int pipe_wait(int pfd, short events, int nonblock)
{
    struct pollfd p = {.fd = pfd, .events = events};
    int r = BYP_REAL(poll)(&p, 1, nonblock ? 0 : -1);
    if (r < 0)
        return -1;
    if (p.revents & events)
        return 1;
    if (p.revents & (POLLHUP | POLLERR))
        return 0;
    errno = EAGAIN;
    return -1;
}

/* Bytes the pipe can take now: its size less what it holds. */
static size_t pipe_room(int pfd)
{
    int size = BYP_REAL(fcntl)(pfd, F_GETPIPE_SZ);
    int held = 0;
    if (size <= 0 || BYP_REAL(ioctl)(pfd, FIONREAD, &held) != 0 || held >= size)
        return 0;
    return (size_t)(size - held);
}

static ssize_t to_pipe(int fd, int pfd, size_t len, unsigned int flags)
{
    char buf[SPLICE_CHUNK];
    size_t room = pipe_room(pfd);
    if (room == 0) {
        /* A pipe nobody reads: the write below answers EPIPE (and SIGPIPE), as splice. */
        int r = pipe_wait(pfd, POLLOUT, pipe_nonblock(pfd, flags));
        if (r < 0)
            return -1;
        room = pipe_room(pfd);
        if (room == 0)
            room = 1;
    }
    size_t n = len < room ? len : room;
    if (n > sizeof buf)
        n = sizeof buf;
    ssize_t got = byp_tcp_ops.recv(fd, buf, n, MSG_PEEK);
    if (got <= 0)
        return got;
    ssize_t put = BYP_REAL(write)(pfd, buf, (size_t)got);
    if (put <= 0)
        return put;
    int saved = errno;
    byp_tcp_ops.recv(fd, NULL, (size_t)put, MSG_TRUNC | MSG_DONTWAIT);
    errno = saved;
    return put;
}

/* The bytes the connection's send queue takes now (send_core's measure), 0 when full;
 * -1 with errno for a connection that cannot send (as send would answer).  Lock held. */
static ssize_t send_room(struct tsock *ts)
{
    if (ts->err)
        return byp_tcp_fail(byp_tsock_take_err(ts));
    if (ts->state == T_LISTEN || ts->state == T_CONNECTING)
        return byp_tcp_fail(ts->state == T_LISTEN ? EPIPE : EAGAIN);
    if (ts->shut_wr || ts->pcb == NULL)
        return byp_tcp_fail(EPIPE);
    return byp_tcp_send_room(ts->pcb);
}

static ssize_t from_pipe(int pfd, int fd, size_t len, unsigned int flags)
{
    char buf[SPLICE_CHUNK];
    int r = pipe_wait(pfd, POLLIN, pipe_nonblock(pfd, flags));
    if (r <= 0)
        return r;   /* 0: empty and no writer left */
    struct tsock *ts = byp_tsock_enter(fd);
    if (ts == NULL)
        return -1;
    ssize_t room;
    while ((room = send_room(ts)) == 0) {
        tcp_output(ts->pcb);
        ts->sndbuf = 0;
        if (ts->nonblock) {
            byp_tsock_exit(ts);
            return byp_tcp_fail(EAGAIN);
        }
        int w = byp_tsock_wait(byp_tsock_writable, ts, ts->sndtimeo_ms, NULL, 0);
        if (w <= 0 && !byp_tsock_writable(ts)) {
            byp_tsock_exit(ts);
            return byp_tcp_fail(w == 0 ? EAGAIN : EINTR);
        }
    }
    byp_tsock_exit(ts);
    if (room < 0) {
        if (errno == EPIPE)
            pthread_kill(pthread_self(), SIGPIPE);
        return -1;
    }
    size_t n = len < (size_t)room ? len : (size_t)room;
    if (n > sizeof buf)
        n = sizeof buf;
    ssize_t got = BYP_REAL(read)(pfd, buf, n);
    if (got <= 0)
        return got;
    /* It fits the room just measured; a send by another thread meanwhile may have taken
     * some, and then the rest waits for room rather than leaving the pipe's bytes behind. */
    int mf = (flags & SPLICE_F_MORE) ? MSG_MORE : 0;
    size_t done = 0;
    while (done < (size_t)got) {
        ssize_t w = byp_tcp_ops.send(fd, buf + done, (size_t)got - done,
                                     (done == 0 ? MSG_DONTWAIT : 0) | mf);
        if (w < 0) {
            if (done == 0 && errno != EAGAIN)
                return -1;
            if (errno != EAGAIN && errno != EINTR)
                break;
            continue;
        }
        done += (size_t)w;
    }
    return (ssize_t)done;
}

ssize_t byp_tcp_splice(int fd_in, loff_t *off_in, int fd_out, loff_t *off_out, size_t len,
                       unsigned int flags)
{
    int in_sock = byp_fd_ops(fd_in) == &byp_tcp_ops;
    int out_sock = byp_fd_ops(fd_out) == &byp_tcp_ops;
    int pfd = in_sock ? fd_out : fd_in;
    struct stat st;
    if (fstat(pfd, &st) != 0)
        return -1;   /* EBADF */
    int mode = BYP_REAL(fcntl)(pfd, F_GETFL) & O_ACCMODE;
    if (in_sock ? mode == O_RDONLY : mode == O_WRONLY)
        return byp_tcp_fail(EBADF);
    if (!S_ISFIFO(st.st_mode) || (in_sock && out_sock))
        return byp_tcp_fail(EINVAL);   /* neither end a pipe */
    /* The pipe's offset: ESPIPE; the socket's (it cannot pread or pwrite): EINVAL. */
    if ((in_sock ? off_out : off_in) != NULL)
        return byp_tcp_fail(ESPIPE);
    if ((in_sock ? off_in : off_out) != NULL)
        return byp_tcp_fail(EINVAL);
    if (len == 0)
        return 0;
    return in_sock ? to_pipe(fd_in, pfd, len, flags) : from_pipe(pfd, fd_out, len, flags);
}
