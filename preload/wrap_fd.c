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
        return ops->accept(fd, addr, len);
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
        return ops->accept4(fd, addr, len, flags);
    int nfd = BYP_REAL(accept4)(fd, addr, len, flags);
    if (nfd >= 0)
        note_accepted(fd, nfd);
    return nfd;
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
    /* Release accelerated objects while their fd numbers still hold their kernel sockets
     * (a closing connection keeps its port reservation by duplicating it), as close()
     * does; only for a call the kernel will accept. */
    int known = CLOSE_RANGE_CLOEXEC | CLOSE_RANGE_UNSHARE;
    if (first <= last && !(flags & ~known) && !(flags & CLOSE_RANGE_CLOEXEC)) {
        int saved = errno;
        byp_fd_clear_range(first, last);
        errno = saved;
    }
    return BYP_REAL(close_range)(first, last, flags);
}

BYP_EXPORT void closefrom(int lowfd)
{
    if (lowfd >= 0)
        byp_fd_clear_range((unsigned int)lowfd, ~0u);
    BYP_REAL(closefrom)(lowfd);
}

BYP_EXPORT int dup(int fd)
{
    int nfd = BYP_REAL(dup)(fd);
    if (nfd >= 0)
        byp_fd_copy(fd, nfd);
    return nfd;
}

/* dup2/dup3 onto an accelerated fd closes it: release its object first, while the fd
 * number still holds its kernel socket. */
static void release_target(int fd, int fd2)
{
    /* Only when @fd is valid: dup2 fails without touching @fd2 otherwise. */
    if (fd != fd2 && byp_fd_ops(fd2) != NULL && BYP_REAL(fcntl)(fd, F_GETFD) >= 0)
        byp_fd_clear(fd2);
}

BYP_EXPORT int dup2(int fd, int fd2)
{
    release_target(fd, fd2);
    int rc = BYP_REAL(dup2)(fd, fd2);
    if (rc >= 0 && fd != fd2)
        byp_fd_copy(fd, rc);
    return rc;
}

BYP_EXPORT int dup3(int fd, int fd2, int flags)
{
    release_target(fd, fd2);
    int rc = BYP_REAL(dup3)(fd, fd2, flags);
    if (rc >= 0)
        byp_fd_copy(fd, rc);
    return rc;
}

/* fcntl's third argument is an int, a pointer or absent; like glibc, carry it as a pointer
 * (the same register either way). */
static int fcntl_common(int (*real)(int, int, ...), int fd, int cmd, void *arg)
{
    const byp_fd_ops_t *ops = byp_fd_ops(fd);
    int rc = byp_unlikely(ops != NULL) ? ops->fcntl(fd, cmd, arg) : real(fd, cmd, arg);
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
        return ops->ioctl(fd, req, arg);
    return BYP_REAL(ioctl)(fd, req, arg);
}
