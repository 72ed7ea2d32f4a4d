/* An fd on its way out of an object: closed (close, close_range, closefrom) or replaced by
 * another file (dup2, dup3 onto it).  Between the release of the object and the kernel's
 * own call the number still holds the kernel socket underneath, which for an accelerated
 * connection is an unconnected socket: a call from another thread must not reach it.  A
 * call on a closing fd waits for the close to be over and is made again (the kernel's
 * EBADF, or a file that took the number since: closing_over); a call on a replaced one
 * waits for the new file and is made again on it (BYP_OPS_CALL), as the kernel swaps the
 * file in one step. */
#include <sched.h>
#include <time.h>

#include "byp.h"

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"

/* ---- closing: every call answers EBADF, or is made again once the close is over ---- */

/* A call that finds @fd being closed.  Once the kernel has closed the number, another
 * thread may get it back from a call the library does not see (open, pipe, eventfd, ...)
 * and use it before the closing thread clears the entry: a read of a file just opened
 * answered EBADF (the engine's own read of /proc took a live process for gone that way).
 * So the call waits for the close to be over and is made again: on the new file, or the
 * kernel's EBADF.  0 when @fd is not being closed (replaced: BYP_OPS_CALL waits for that),
 * or after a second (a signal handler of the closing thread itself). */
static const byp_fd_ops_t closed_ops;

/* Step @i of waiting for another thread's close or dup2 of a number: it is a few
 * instructions and a system call away (64 yields), or its thread was preempted (50 us
 * naps); 0 after about a second. */
static int wait_step(unsigned int i)
{
    if (i < 64) {
        sched_yield();
    } else if (i < 64 + 20000) {
        struct timespec ts = {0, 50000};
        nanosleep(&ts, NULL);
    } else {
        return 0;
    }
    return 1;
}

static int closing_over(int fd)
{
    byp_fd_t *e = byp_fd_get(fd);
    for (unsigned int i = 0; e != NULL; i++) {
        /* The close ends by clearing the kind, then the ops (byp_fd_close_end); a socket()
         * that took the number sets its kind, then its ops: over once the ops moved on. */
        uint8_t kind = __atomic_load_n(&e->kind, __ATOMIC_ACQUIRE);
        if (kind == BYP_FD_REPLACING)
            return 0;
        if (kind != BYP_FD_CLOSING && __atomic_load_n(&e->ops, __ATOMIC_ACQUIRE) != &closed_ops)
            return 1;
        if (!wait_step(i))
            return 0;
    }
    return 0;
}

#define CLOSED_CALL(name, args)                                                             \
    do {                                                                                    \
        int saved_ = errno;                                                                 \
        if (closing_over(fd)) {                                                             \
            errno = saved_;                                                                 \
            return name args;                                                               \
        }                                                                                   \
        errno = EBADF;                                                                      \
        return -1;                                                                          \
    } while (0)

#define BYP_FDCALL(ret, name, params, args)                                                 \
    static ret closed_##name params                                                         \
    {                                                                                       \
        CLOSED_CALL(name, args);                                                            \
    }
#include "libc_syms.def"

static int closed_accept(int fd, struct sockaddr *addr, socklen_t *len)
{
    CLOSED_CALL(accept, (fd, addr, len));
}

static int closed_accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
    CLOSED_CALL(accept4, (fd, addr, len, flags));
}

static int closed_fcntl(int fd, int cmd, void *arg)
{
    CLOSED_CALL(fcntl, (fd, cmd, arg));
}

static int closed_ioctl(int fd, unsigned long req, void *arg)
{
    CLOSED_CALL(ioctl, (fd, req, arg));
}

/* Nothing to dup, poll or watch while the number changes hands. */
static void *gone_ref(int fd)
{
    return NULL;   /* a dup made before the kernel closed it is a plain kernel fd */
}

static uint32_t gone_readiness(int fd)
{
    return 0;
}

static uint64_t gone_event_gen(int fd)
{
    return 0;
}

static int gone_kernel_fd(int fd)
{
    return -1;
}

static const byp_fd_ops_t closed_ops = {
#define BYP_FDCALL(ret, name, params, args) .name = closed_##name,
#include "libc_syms.def"
    .accept = closed_accept,
    .accept4 = closed_accept4,
    .ref = gone_ref,
    .fcntl = closed_fcntl,
    .ioctl = closed_ioctl,
    .readiness = gone_readiness,
    .event_gen = gone_event_gen,
    .kernel_fd = gone_kernel_fd,
};
#pragma GCC diagnostic pop

/* ---- replacing: the closed answers, which BYP_OPS_CALL (fdtab.h) takes for a call the
 * replacement overtook: it waits for the new file and makes the call again ---- */

int byp_fd_replace_wait(int fd)
{
    byp_fd_t *e = byp_fd_get(fd);
    for (unsigned int i = 0; __atomic_load_n(&e->replaces, __ATOMIC_ACQUIRE) & 1; i++)
        if (!wait_step(i))
            return -1;
    return 0;
}

/* The object of @fd is released and its entry takes @ops (kind @kind). */
static void retire(int fd, const byp_fd_ops_t *ops, uint8_t kind)
{
    byp_fd_t *e = byp_fd_get(fd);
    if (e == NULL)
        return;
    const byp_fd_ops_t *cur = __atomic_load_n(&e->ops, __ATOMIC_ACQUIRE);
    if (cur == NULL) {
        byp_fd_set_kernel(fd, BYP_FD_UNKNOWN);
        FD_GIVEN_BACK(e);
        return;
    }
    if (cur->release != NULL) {
        int saved = errno;
        cur->release(fd);
        errno = saved;
    }
    FD_RECEIVED(e);
    __atomic_store_n(&e->obj, NULL, __ATOMIC_RELAXED);
    __atomic_store_n(&e->kind, kind, __ATOMIC_RELAXED);
    __atomic_store_n(&e->ops, ops, __ATOMIC_RELEASE);
    FD_GIVEN_BACK(e);
}

void byp_fd_close_begin(int fd)
{
    retire(fd, &closed_ops, BYP_FD_CLOSING);
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

static unsigned int range_end(unsigned int last)
{
    unsigned int end = __atomic_load_n(&byp_fdtab_hwm, __ATOMIC_RELAXED);
    return last < end ? last + 1 : end;
}

void byp_fd_close_range_begin(unsigned int first, unsigned int last)
{
    for (unsigned int fd = first, end = range_end(last); fd < end; fd++)
        if (__atomic_load_n(&byp_fdtab[fd].kind, __ATOMIC_RELAXED) != BYP_FD_UNKNOWN)
            byp_fd_close_begin((int)fd);
}

void byp_fd_close_range_end(unsigned int first, unsigned int last)
{
    for (unsigned int fd = first, end = range_end(last); fd < end; fd++)
        if (__atomic_load_n(&byp_fdtab[fd].kind, __ATOMIC_RELAXED) == BYP_FD_CLOSING)
            byp_fd_close_end((int)fd);
}

void byp_fd_replace_begin(int fd2)
{
    byp_fd_t *e = byp_fd_get(fd2);
    if (e != NULL)   /* odd, before the release: a call that then finds no object sees it */
        __atomic_add_fetch(&e->replaces, 1, __ATOMIC_RELEASE);
    retire(fd2, &closed_ops, BYP_FD_REPLACING);
}

void byp_fd_replace_end(int fd, int fd2, int ok)
{
    int saved = errno;
    if (ok)
        byp_fd_copy(fd, fd2);   /* the waiting calls go on with what it is now */
    else
        byp_fd_set_kernel(fd2, BYP_FD_UNKNOWN);
    byp_fd_t *e = byp_fd_get(fd2);
    if (e != NULL)
        __atomic_add_fetch(&e->replaces, 1, __ATOMIC_RELEASE);   /* even: done */
    errno = saved;
}
