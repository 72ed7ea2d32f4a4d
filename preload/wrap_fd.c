/* Hand-written wrappers for the calls that create, copy or destroy fds, and the variadic
 * ones.  Each keeps the fd table in step with the kernel and otherwise returns exactly what
 * libc returns, errno included. */
#include <stdarg.h>

#include "byp.h"

BYP_EXPORT int socket(int domain, int type, int protocol)
{
    int fd = BYP_REAL(socket)(domain, type, protocol);
    if (fd >= 0)
        byp_fd_set_kernel(fd, byp_fd_kind_for_socket(domain, type));
    return fd;
}

BYP_EXPORT int socketpair(int domain, int type, int protocol, int sv[2])
{
    int rc = BYP_REAL(socketpair)(domain, type, protocol, sv);
    if (rc == 0) {
        byp_fd_set_kernel(sv[0], BYP_FD_KERNEL);
        byp_fd_set_kernel(sv[1], BYP_FD_KERNEL);
    }
    return rc;
}

/* The kind of a connection accepted on @lfd: TCP for an inet listener, else plain kernel. */
static void note_accepted(int lfd, int fd)
{
    byp_fd_t *l = byp_fd_get(lfd);
    byp_fd_set_kernel(fd, l != NULL && l->kind == BYP_FD_KTCP ? BYP_FD_KTCP : BYP_FD_KERNEL);
}

BYP_EXPORT int accept(int fd, struct sockaddr *addr, socklen_t *len)
{
    const byp_fd_ops_t *ops = byp_fd_ops(fd);
    if (byp_unlikely(ops != NULL))
        return BYP_OPS_CALL(fd, ops, accept, (fd, addr, len));
    int nfd = BYP_REAL(accept)(fd, addr, len);
    if (nfd >= 0) {
        int saved = errno;
        note_accepted(fd, nfd);
        errno = saved;
    }
    return nfd;
}

BYP_EXPORT int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
    const byp_fd_ops_t *ops = byp_fd_ops(fd);
    if (byp_unlikely(ops != NULL))
        return BYP_OPS_CALL(fd, ops, accept4, (fd, addr, len, flags));
    int nfd = BYP_REAL(accept4)(fd, addr, len, flags);
    if (nfd >= 0)
        note_accepted(fd, nfd);
    return nfd;
}

BYP_EXPORT ssize_t splice(int fd_in, loff_t *off_in, int fd_out, loff_t *off_out, size_t len,
                          unsigned int flags)
{
    const byp_fd_ops_t *in = byp_fd_ops(fd_in), *out = byp_fd_ops(fd_out);
    if (byp_likely(in == NULL && out == NULL))
        return BYP_REAL(splice)(fd_in, off_in, fd_out, off_out, len, flags);
    int fd = in != NULL && in->splice != NULL ? fd_in : fd_out;
    const byp_fd_ops_t *ops = fd == fd_in ? in : out;
    if (ops == NULL || ops->splice == NULL)
        return BYP_REAL(splice)(fd_in, off_in, fd_out, off_out, len, flags);
    return BYP_OPS_CALL(fd, ops, splice, (fd_in, off_in, fd_out, off_out, len, flags));
}

BYP_EXPORT int close(int fd)
{
    /* Forget first: once the kernel closes the number, another thread may get it back.
     * Until then, calls on it from other threads answer EBADF. */
    byp_fd_close_begin(fd);
    int rc = BYP_REAL(close)(fd);
    int saved = errno;
    byp_fd_close_end(fd);
    errno = saved;
    return rc;
}

BYP_EXPORT int close_range(unsigned int first, unsigned int last, int flags)
{
    /* As close() does for each accelerated fd, only for a call the kernel will accept:
     * objects released while their numbers still hold their kernel sockets (a closing
     * connection keeps its port reservation by duplicating it), calls on them EBADF. */
    int known = CLOSE_RANGE_CLOEXEC | CLOSE_RANGE_UNSHARE;
    int ours = first <= last && !(flags & ~known) && !(flags & CLOSE_RANGE_CLOEXEC);
    if (ours) {
        int saved = errno;
        byp_fd_close_range_begin(first, last);
        errno = saved;
    }
    int rc = BYP_REAL(close_range)(first, last, flags);
    if (ours) {
        int saved = errno;
        byp_fd_close_range_end(first, last);
        errno = saved;
    }
    return rc;
}

BYP_EXPORT void closefrom(int lowfd)
{
    if (lowfd >= 0)
        byp_fd_close_range_begin((unsigned int)lowfd, ~0u);
    BYP_REAL(closefrom)(lowfd);
    if (lowfd >= 0)
        byp_fd_close_range_end((unsigned int)lowfd, ~0u);
}

BYP_EXPORT int dup(int fd)
{
    int nfd = BYP_REAL(dup)(fd);
    if (nfd >= 0)
        byp_fd_copy(fd, nfd);
    return nfd;
}

/* dup2/dup3 onto an accelerated fd closes it: its object is released first, while the fd
 * number still holds its kernel socket, and calls on it wait for the new file meanwhile.
 * Only when @fd is valid: dup2 fails without touching @fd2 otherwise.  Returns whether
 * byp_fd_replace_end must follow. */
static int replace_begin(int fd, int fd2)
{
    if (fd == fd2 || byp_fd_ops(fd2) == NULL || BYP_REAL(fcntl)(fd, F_GETFD) < 0)
        return 0;
    byp_fd_replace_begin(fd2);
    return 1;
}

BYP_EXPORT int dup2(int fd, int fd2)
{
    int replacing = replace_begin(fd, fd2);
    int rc = BYP_REAL(dup2)(fd, fd2);
    if (replacing)
        byp_fd_replace_end(fd, fd2, rc >= 0);
    else if (rc >= 0 && fd != fd2)
        byp_fd_copy(fd, rc);
    return rc;
}

BYP_EXPORT int dup3(int fd, int fd2, int flags)
{
    int replacing = replace_begin(fd, fd2);
    int rc = BYP_REAL(dup3)(fd, fd2, flags);
    if (replacing)
        byp_fd_replace_end(fd, fd2, rc >= 0);
    else if (rc >= 0)
        byp_fd_copy(fd, rc);
    return rc;
}

/* fcntl's third argument is an int, a pointer or absent; like glibc, carry it as a pointer
 * (the same register either way). */
static int fcntl_common(int (*real)(int, int, ...), int fd, int cmd, void *arg)
{
    const byp_fd_ops_t *ops = byp_fd_ops(fd);
    int rc;
    if (byp_unlikely(ops != NULL)) {
        uint32_t replaces = byp_fd_replaces(fd);
        rc = ops->fcntl(fd, cmd, arg);
        if (rc < 0 && byp_fd_overtaken(fd, replaces))
            return fcntl(fd, cmd, arg);   /* see BYP_OPS_CALL; it records a dup itself */
    } else {
        rc = real(fd, cmd, arg);
    }
    if (rc >= 0 && (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC))
        byp_fd_copy(fd, rc);
    return rc;
}

BYP_EXPORT int fcntl(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    return fcntl_common(BYP_REAL(fcntl), fd, cmd, arg);
}

BYP_EXPORT int fcntl64(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    return fcntl_common(BYP_REAL(fcntl64), fd, cmd, arg);
}

BYP_EXPORT int ioctl(int fd, unsigned long req, ...)
{
    va_list ap;
    va_start(ap, req);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    const byp_fd_ops_t *ops = byp_fd_ops(fd);
    if (byp_unlikely(ops != NULL))
        return BYP_OPS_CALL(fd, ops, ioctl, (fd, req, arg));
    return BYP_REAL(ioctl)(fd, req, arg);
}
