/* Readiness calls.  Every fd is a kernel fd for now, so these pass straight through; the
 * accelerated kinds hook in here to poll the stack beside the kernel fds. */
#include "byp.h"

BYP_EXPORT int poll(struct pollfd *fds, nfds_t nfds, int timeout)
{
    return BYP_REAL(poll)(fds, nfds, timeout);
}

BYP_EXPORT int ppoll(struct pollfd *fds, nfds_t nfds, const struct timespec *ts,
                     const sigset_t *mask)
{
    return BYP_REAL(ppoll)(fds, nfds, ts, mask);
}

BYP_EXPORT int select(int nfds, fd_set *r, fd_set *w, fd_set *e, struct timeval *tv)
{
    return BYP_REAL(select)(nfds, r, w, e, tv);
}

BYP_EXPORT int pselect(int nfds, fd_set *r, fd_set *w, fd_set *e, const struct timespec *ts,
                       const sigset_t *mask)
{
    return BYP_REAL(pselect)(nfds, r, w, e, ts, mask);
}

BYP_EXPORT int epoll_create(int size)
{
    int fd = BYP_REAL(epoll_create)(size);
    if (fd >= 0)
        byp_fd_set_kernel(fd, BYP_FD_EPOLL);
    return fd;
}

BYP_EXPORT int epoll_create1(int flags)
{
    int fd = BYP_REAL(epoll_create1)(flags);
    if (fd >= 0)
        byp_fd_set_kernel(fd, BYP_FD_EPOLL);
    return fd;
}

BYP_EXPORT int epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
    return BYP_REAL(epoll_ctl)(epfd, op, fd, ev);
}

BYP_EXPORT int epoll_wait(int epfd, struct epoll_event *evs, int max, int timeout)
{
    return BYP_REAL(epoll_wait)(epfd, evs, max, timeout);
}

BYP_EXPORT int epoll_pwait(int epfd, struct epoll_event *evs, int max, int timeout,
                           const sigset_t *mask)
{
    return BYP_REAL(epoll_pwait)(epfd, evs, max, timeout, mask);
}

BYP_EXPORT int epoll_pwait2(int epfd, struct epoll_event *evs, int max, const struct timespec *ts,
                            const sigset_t *mask)
{
    return BYP_REAL(epoll_pwait2)(epfd, evs, max, ts, mask);
}
