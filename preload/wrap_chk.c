/* The fortified variants glibc's headers call under _FORTIFY_SOURCE when the buffer size is
 * known.  A kernel fd goes to libc's checked version; an accelerated fd gets the same check
 * (a read past the buffer ends the program the way glibc does) and then its kind's call. */
#include "byp.h"

/* glibc's "buffer overflow detected" exit, exported for the _chk functions. */
extern void __chk_fail(void) __attribute__((noreturn));

BYP_EXPORT ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen)
{
    const byp_fd_ops_t *ops = byp_fd_ops(fd);
    if (byp_likely(ops == NULL))
        return BYP_REAL(__read_chk)(fd, buf, n, buflen);
    if (n > buflen)
        __chk_fail();
    return BYP_OPS_CALL(fd, ops, read, (fd, buf, n));
}

BYP_EXPORT ssize_t __recv_chk(int fd, void *buf, size_t n, size_t buflen, int flags)
{
    const byp_fd_ops_t *ops = byp_fd_ops(fd);
    if (byp_likely(ops == NULL))
        return BYP_REAL(__recv_chk)(fd, buf, n, buflen, flags);
    if (n > buflen)
        __chk_fail();
    return BYP_OPS_CALL(fd, ops, recv, (fd, buf, n, flags));
}

BYP_EXPORT ssize_t __recvfrom_chk(int fd, void *buf, size_t n, size_t buflen, int flags,
                                  struct sockaddr *addr, socklen_t *len)
{
    const byp_fd_ops_t *ops = byp_fd_ops(fd);
    if (byp_likely(ops == NULL))
        return BYP_REAL(__recvfrom_chk)(fd, buf, n, buflen, flags, addr, len);
    if (n > buflen)
        __chk_fail();
    return BYP_OPS_CALL(fd, ops, recvfrom, (fd, buf, n, flags, addr, len));
}

BYP_EXPORT int __poll_chk(struct pollfd *fds, nfds_t nfds, int timeout, size_t fdslen)
{
    if (fdslen / sizeof(*fds) < nfds)
        __chk_fail();
    return poll(fds, nfds, timeout);
}

BYP_EXPORT int __ppoll_chk(struct pollfd *fds, nfds_t nfds, const struct timespec *ts,
                           const sigset_t *mask, size_t fdslen)
{
    if (fdslen / sizeof(*fds) < nfds)
        __chk_fail();
    return ppoll(fds, nfds, ts, mask);
}
