#include "fdtab.h"

#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>

#include "log.h"

byp_fd_t *byp_fdtab;
unsigned int byp_fdtab_size;
unsigned int byp_fdtab_hwm;

/* An fd number passes from the thread that closed it to the one the kernel gives it to
 * next: byp_fd_clear runs before close(2), byp_fd_set_kernel after the call that returned
 * the number, and the kernel's own file table orders the two.  ThreadSanitizer cannot see
 * that order (it found the entry's writes "racing" across such a reuse): tell it. */
#if defined(__SANITIZE_THREAD__)
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
#define FD_RECEIVED(e) __tsan_acquire(e)
#define FD_GIVEN_BACK(e) __tsan_release(e)
#else
#define FD_RECEIVED(e) ((void)(e))
#define FD_GIVEN_BACK(e) ((void)(e))
#endif

/* Upper bound on the table: 1M fds is 24 MiB of address space, touched only where used. */
#define BYP_FDTAB_MAX (1u << 20)

int byp_fdtab_init(void)
{
    struct rlimit rl;
    rlim_t n = 65536;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        /* The hard limit: the program may raise its soft limit later (redis does). */
        n = rl.rlim_max;
        if (n == RLIM_INFINITY || n > BYP_FDTAB_MAX)
            n = BYP_FDTAB_MAX;
        if (n < 1024)
            n = 1024;
    }
    size_t bytes = (size_t)n * sizeof(byp_fd_t);
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    if (p == MAP_FAILED) {
        int e = errno;
        byp_warn("cannot map the fd table (%u entries): %s", (unsigned)n, strerror(e));
        return -e;
    }
    byp_fdtab = p;
    __atomic_store_n(&byp_fdtab_size, (unsigned int)n, __ATOMIC_RELEASE);
    return 0;
}

static void raise_hwm(unsigned int n)
{
    unsigned int cur = __atomic_load_n(&byp_fdtab_hwm, __ATOMIC_RELAXED);
    while (cur < n &&
           !__atomic_compare_exchange_n(&byp_fdtab_hwm, &cur, n, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
        ;
}

void byp_fd_set_kernel(int fd, int kind)
{
    byp_fd_t *e = byp_fd_get(fd);
    if (e == NULL)
        return;
    FD_RECEIVED(e);
    if (kind != BYP_FD_UNKNOWN && (unsigned int)fd >= __atomic_load_n(&byp_fdtab_hwm, __ATOMIC_RELAXED))
        raise_hwm((unsigned int)fd + 1);
    __atomic_store_n(&e->obj, NULL, __ATOMIC_RELAXED);
    __atomic_store_n(&e->kind, (uint8_t)kind, __ATOMIC_RELAXED);
    __atomic_store_n(&e->ops, NULL, __ATOMIC_RELEASE);
}

/* ---- an fd being closed ---- */

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
#define BYP_FDCALL(ret, name, params, args)                                                 \
    static ret closed_##name params                                                         \
    {                                                                                       \
        errno = EBADF;                                                                      \
        return -1;                                                                          \
    }
#include "libc_syms.def"

static int closed_accept(int fd, struct sockaddr *addr, socklen_t *len)
{
    errno = EBADF;
    return -1;
}

static int closed_accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
    errno = EBADF;
    return -1;
}

static int closed_fcntl(int fd, int cmd, void *arg)
{
    errno = EBADF;
    return -1;
}

static int closed_ioctl(int fd, unsigned long req, void *arg)
{
    errno = EBADF;
    return -1;
}

static void *closed_ref(int fd)
{
    return NULL;   /* a dup made before the kernel closed it is a plain kernel fd */
}

static uint32_t closed_readiness(int fd)
{
    return 0;
}

static uint64_t closed_event_gen(int fd)
{
    return 0;
}

static int closed_kernel_fd(int fd)
{
    return -1;
}
#pragma GCC diagnostic pop

static const byp_fd_ops_t closed_ops = {
#define BYP_FDCALL(ret, name, params, args) .name = closed_##name,
#include "libc_syms.def"
    .accept = closed_accept,
    .accept4 = closed_accept4,
    .ref = closed_ref,
    .fcntl = closed_fcntl,
    .ioctl = closed_ioctl,
    .readiness = closed_readiness,
    .event_gen = closed_event_gen,
    .kernel_fd = closed_kernel_fd,
};

void byp_fd_close_begin(int fd)
{
    byp_fd_t *e = byp_fd_get(fd);
    if (e == NULL)
        return;
    const byp_fd_ops_t *ops = __atomic_load_n(&e->ops, __ATOMIC_ACQUIRE);
    if (ops == NULL) {
        byp_fd_set_kernel(fd, BYP_FD_UNKNOWN);
        FD_GIVEN_BACK(e);
        return;
    }
    if (ops->release != NULL) {
        int saved = errno;
        ops->release(fd);
        errno = saved;
    }
    FD_RECEIVED(e);
    __atomic_store_n(&e->obj, NULL, __ATOMIC_RELAXED);
    __atomic_store_n(&e->kind, (uint8_t)BYP_FD_CLOSING, __ATOMIC_RELAXED);
    __atomic_store_n(&e->ops, &closed_ops, __ATOMIC_RELEASE);
    FD_GIVEN_BACK(e);
}

void byp_fd_close_end(int fd)
{
    byp_fd_t *e = byp_fd_get(fd);
    if (e == NULL)
        return;
    /* A socket() in another thread may have got the number and recorded it already (its
     * kind first, then its ops): leave its entry alone. */
    uint8_t closing = BYP_FD_CLOSING;
    if (__atomic_compare_exchange_n(&e->kind, &closing, (uint8_t)BYP_FD_UNKNOWN, false,
                                    __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) {
        const byp_fd_ops_t *c = &closed_ops;
        __atomic_compare_exchange_n(&e->ops, &c, NULL, false, __ATOMIC_ACQ_REL,
                                    __ATOMIC_RELAXED);
    }
}

void byp_fd_clear(int fd)
{
    byp_fd_t *e = byp_fd_get(fd);
    if (e == NULL)
        return;
    const byp_fd_ops_t *ops = e->ops;
    if (ops != NULL && ops->release != NULL) {
        int saved = errno;
        ops->release(fd);
        errno = saved;
    }
    byp_fd_set_kernel(fd, BYP_FD_UNKNOWN);
    FD_GIVEN_BACK(e);
}

void byp_fd_copy(int oldfd, int newfd)
{
    byp_fd_t *o = byp_fd_get(oldfd), *n = byp_fd_get(newfd);
    if (n == NULL || o == n)
        return;
    if (o == NULL) {
        byp_fd_clear(newfd);
        return;
    }
    FD_RECEIVED(n);
    if ((unsigned int)newfd >= __atomic_load_n(&byp_fdtab_hwm, __ATOMIC_RELAXED))
        raise_hwm((unsigned int)newfd + 1);
    const byp_fd_ops_t *ops = __atomic_load_n(&o->ops, __ATOMIC_ACQUIRE);
    void *obj = __atomic_load_n(&o->obj, __ATOMIC_RELAXED);
    uint8_t kind = o->kind;
    if (ops != NULL && ops->ref != NULL) {
        /* The object is looked up again, and pinned, by the kind under its own lock: another
         * thread may be closing @oldfd right now. */
        obj = ops->ref(oldfd);
        if (obj == NULL) {
            ops = NULL;
            kind = BYP_FD_KERNEL;   /* the kernel socket underneath, closed or closing */
        }
    }
    __atomic_store_n(&n->obj, obj, __ATOMIC_RELAXED);
    __atomic_store_n(&n->kind, kind, __ATOMIC_RELAXED);
    __atomic_store_n(&n->ops, ops, __ATOMIC_RELEASE);
}

int byp_fd_kind_for_socket(int domain, int type)
{
    if (domain != AF_INET && domain != AF_INET6)
        return BYP_FD_KERNEL;
    switch (type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC)) {
    case SOCK_STREAM:
        return BYP_FD_KTCP;
    case SOCK_DGRAM:
        return BYP_FD_KUDP;
    default:
        return BYP_FD_KERNEL;
    }
}

void byp_fd_clear_range(unsigned int first, unsigned int last)
{
    unsigned int end = __atomic_load_n(&byp_fdtab_hwm, __ATOMIC_RELAXED);
    if (last < end)
        end = last + 1;
    for (unsigned int fd = first; fd < end; fd++)
        if (byp_fdtab[fd].kind != BYP_FD_UNKNOWN)
            byp_fd_clear((int)fd);
}

void byp_fd_detach_all(void)
{
    unsigned int end = __atomic_load_n(&byp_fdtab_hwm, __ATOMIC_RELAXED);
    for (unsigned int fd = 0; fd < end; fd++)
        if (byp_fdtab[fd].ops != NULL)
            byp_fd_set_kernel((int)fd, BYP_FD_KERNEL);
}
