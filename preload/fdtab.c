#include "fdtab.h"

#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>

#include "log.h"

byp_fd_t *byp_fdtab;
unsigned int byp_fdtab_size;
unsigned int byp_fdtab_hwm;

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

void byp_fd_detach_all(void)
{
    unsigned int end = __atomic_load_n(&byp_fdtab_hwm, __ATOMIC_RELAXED);
    for (unsigned int fd = 0; fd < end; fd++)
        if (byp_fdtab[fd].ops != NULL)
            byp_fd_set_kernel((int)fd, BYP_FD_KERNEL);
}
