/* The fd table: what the library knows about each fd number the program holds.
 *
 * Every fd stays a real kernel fd.  Most entries are plain kernel fds with no ops table, and a
 * wrapper seeing `ops == NULL` goes straight to libc.  An fd whose calls the library must see
 * (an accelerated socket, later an epoll set holding one) carries an ops table of its kind
 * (one file per kind: fd_tcp.c, fd_udp.c, fd_epoll.c ...), generated from libc_syms.def.
 *
 * The table is one array indexed by fd, sized from RLIMIT_NOFILE at start and mapped lazily,
 * so untouched pages cost nothing.  fds at or above its size are treated as plain kernel fds. */
#ifndef BYP_FDTAB_H
#define BYP_FDTAB_H

#include "sysheaders.h"

/* What an fd is. */
enum byp_fd_kind {
    BYP_FD_UNKNOWN = 0,     /* never seen created: a file, a pipe, or from before preload */
    BYP_FD_KERNEL,          /* created through us, of no interest (AF_UNIX, raw, ...) */
    BYP_FD_KTCP,            /* kernel AF_INET/AF_INET6 stream socket: a candidate */
    BYP_FD_KUDP,            /* kernel AF_INET/AF_INET6 datagram socket: a candidate */
    BYP_FD_EPOLL,           /* kernel epoll instance */
    BYP_FD_TCP,             /* accelerated TCP socket (the engine's) */
    BYP_FD_UDP,             /* accelerated UDP socket (the engine's) */
    BYP_FD_CLOSING,         /* being closed: every call answers EBADF (byp_fd_close_begin) */
    BYP_FD_REPLACING,       /* a dup2 onto it is under way: calls wait for the new file
                             * (byp_fd_replace_begin, BYP_OPS_CALL) */
    BYP_FD_KIND_MAX
};

/* The per-kind operations: one slot per BYP_FDCALL, same prototype and the same -1 + errno
 * convention as libc, since the wrapper returns the slot's result as it is. */
typedef struct byp_fd_ops {
#define BYP_FDCALL(ret, name, params, args) ret(*name) params;
#include "libc_syms.def"
    /* Calls that have no fd as first argument or no libc counterpart: */
    int (*accept)(int fd, struct sockaddr *addr, socklen_t *len);
    int (*accept4)(int fd, struct sockaddr *addr, socklen_t *len, int flags);
    /* The fd stops referring to its object (close, dup2 onto it, close_range): protocol
     * close when it was the last reference.  The caller then closes the kernel fd. */
    void (*release)(int fd);
    /* A new fd refers to the object @fd refers to (dup, dup2, F_DUPFD): take a reference and
     * return the object, or NULL when @fd no longer refers to one (another thread closed
     * it meanwhile; the new fd is then a plain kernel fd). */
    void *(*ref)(int fd);
    int (*fcntl)(int fd, int cmd, void *arg);
    int (*ioctl)(int fd, unsigned long req, void *arg);
    /* Readiness as poll(2) bits (POLLIN, POLLOUT, POLLRDHUP, POLLHUP, POLLERR). */
    uint32_t (*readiness)(int fd);
    /* Bumped on every new event of the fd (data in, room to send, state change): an
     * edge-triggered epoll reports an fd whose counter moved since it last reported it. */
    uint64_t (*event_gen)(int fd);
    /* A kernel fd that must be watched beside the stack (an accelerated listener's own
     * kernel socket, which accepts connections arriving another way), or -1. */
    int (*kernel_fd)(int fd);
    /* Added to an epoll set with EPOLLEXCLUSIVE: a change wakes one waiting process, not
     * all of them (optional). */
    void (*epoll_exclusive)(int fd);
    /* splice(2) with an fd of this kind at either end (optional: without it, the kernel's
     * splice on the fd). */
    ssize_t (*splice)(int fd_in, loff_t *off_in, int fd_out, loff_t *off_out, size_t len,
                      unsigned int flags);
    /* Wait as byp_wait_on does, on the socket's own sleep word, with the socket pinned: a
     * poll over this one fd and no kernel fd (optional: without it, byp_wait). */
    int (*wait_one)(int fd, int (*cond)(void *), void *arg, int timeout_ms);
} byp_fd_ops_t;

typedef struct byp_fd {
    const byp_fd_ops_t *ops;    /* NULL: plain kernel fd, wrappers call libc directly */
    void *obj;                  /* the kind's object (an accelerated socket, ...) */
    uint8_t kind;               /* enum byp_fd_kind */
    uint32_t replaces;          /* +1 as a dup2/dup3 onto the fd begins, +1 as it ends */
} byp_fd_t;

extern BYP_SHARED byp_fd_t *byp_fdtab;
extern BYP_SHARED unsigned int byp_fdtab_size;
extern BYP_SHARED unsigned int byp_fdtab_hwm;      /* one past the highest entry ever written */

/* Map the table.  Returns 0 or -errno; without a table every fd is a plain kernel fd. */
BYP_SHARED int byp_fdtab_init(void);

/* The entry for @fd, or NULL when out of the table. */
static inline byp_fd_t *byp_fd_get(int fd)
{
    if (__builtin_expect((unsigned int)fd < byp_fdtab_size, 1))
        return &byp_fdtab[fd];
    return NULL;
}

/* The ops table of @fd, NULL for a plain kernel fd: the one check on every wrapped call. */
static inline const byp_fd_ops_t *byp_fd_ops(int fd)
{
    if (__builtin_expect((unsigned int)fd < byp_fdtab_size, 1))
        return __atomic_load_n(&byp_fdtab[fd].ops, __ATOMIC_ACQUIRE);
    return NULL;
}

/* @ops->@name @args, for an fd whose ops table the wrapper found.  A call that a dup2 onto
 * the fd overtook (the object released after the wrapper read the ops: EBADF) runs again
 * through @name's wrapper, on the new file, as the kernel's dup2 swaps files in one step
 * (fd_retire.c).  A close still answers EBADF: only a replacement counts.  The count is read
 * before the ops are looked at again: a whole replacement between the wrapper's look and
 * the count would otherwise go unseen (the old ops then answered EBADF, 1 getsockopt in
 * 600 rounds of closerace's dup2 case). */
#define BYP_OPS_CALL(fd, ops, name, args)                                                   \
    __extension__({                                                                         \
        uint32_t replaces_ = byp_fd_replaces(fd);                                           \
        __typeof__((ops)->name args) r_;                                                    \
        if (__builtin_expect(byp_fd_ops(fd) != (ops), 0))                                   \
            r_ = name args;   /* a whole replacement came between: the new file's call */   \
        else {                                                                              \
            r_ = (ops)->name args;                                                          \
            if (__builtin_expect(r_ < 0, 0) && byp_fd_overtaken(fd, replaces_))            \
                r_ = name args;                                                             \
        }                                                                                   \
        r_;                                                                                 \
    })

/* For BYP_OPS_CALL: the fd's count of replacement steps, odd while a dup2 onto it is under
 * way (its ops were found: it is in the table); and whether a call that failed was
 * overtaken by one: one ended since @before, or one is under way (waited for: the new
 * file is then at the number). */
static inline uint32_t byp_fd_replaces(int fd)
{
    return __atomic_load_n(&byp_fdtab[fd].replaces, __ATOMIC_ACQUIRE);
}

/* Until the replacement under way at @fd is done: 0, or -1 after a second (a signal
 * handler of the thread inside dup2 calling on the same fd: the call keeps its EBADF). */
BYP_SHARED int byp_fd_replace_wait(int fd);

static inline int byp_fd_overtaken(int fd, uint32_t before)
{
    if (errno != EBADF)
        return 0;
    uint32_t now = byp_fd_replaces(fd);
    if (now & 1) {
        int saved = errno;
        int done = byp_fd_replace_wait(fd) == 0;
        errno = saved;
        return done;
    }
    return now != before;
}

/* Record a freshly created kernel fd of @kind (no ops). */
BYP_SHARED void byp_fd_set_kernel(int fd, int kind);

/* In a forked child: every accelerated fd becomes the plain kernel socket it is underneath,
 * so that nothing in the child touches the parent's stack, rings or steering map. */
BYP_SHARED void byp_fd_detach_all(void);

/* Forget @fd, releasing its object if it has one (before it is closed, so its number cannot be reused under us). */
BYP_SHARED void byp_fd_clear(int fd);

/* close(@fd) in two halves around the kernel's close (fd_retire.c).  Begin: the object is released and
 * until the kernel has closed the number every call on it answers EBADF, as a closed fd
 * does (not the kernel socket underneath, which for an accelerated connection is an
 * unconnected socket).  End: the entry becomes a plain unknown fd, unless the number was
 * already given to a new socket by another thread.  errno is kept. */
BYP_SHARED void byp_fd_close_begin(int fd);
BYP_SHARED void byp_fd_close_end(int fd);

/* close_range/closefrom in two halves: byp_fd_close_begin and byp_fd_close_end for every
 * fd in [@first, @last]; only the part of the table ever written is walked. */
BYP_SHARED void byp_fd_close_range_begin(unsigned int first, unsigned int last);
BYP_SHARED void byp_fd_close_range_end(unsigned int first, unsigned int last);

/* dup2/dup3 onto @fd2, which refers to an object, in two halves around the kernel's call
 * (fd_retire.c).  Begin: the object is released, and until the kernel has put the new file
 * at the number, calls on it wait, then run on whatever the number is then: the kernel
 * replaces the file in one step, so no call ever sees the kernel socket underneath (for
 * an accelerated connection, an unconnected socket).  End: @fd2 describes what @fd does
 * (@ok), or is a plain unknown fd.  errno is kept. */
BYP_SHARED void byp_fd_replace_begin(int fd2);
BYP_SHARED void byp_fd_replace_end(int fd, int fd2, int ok);

/* Make @newfd describe the same thing as @oldfd (dup, dup2, dup3, F_DUPFD). */
BYP_SHARED void byp_fd_copy(int oldfd, int newfd);

/* The kind for a socket(@domain, @type) just created. */
BYP_SHARED int byp_fd_kind_for_socket(int domain, int type);

/* An fd number passes from the thread that closed it to the one the kernel gives it to
 * next: the entry is cleared before close(2), byp_fd_set_kernel runs after the call that
 * returned the number, and the kernel's own file table orders the two.  ThreadSanitizer
 * cannot see that order (it found the entry's writes "racing" across such a reuse): tell it. */
#if defined(__SANITIZE_THREAD__)
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
#define FD_RECEIVED(e) __tsan_acquire(e)
#define FD_GIVEN_BACK(e) __tsan_release(e)
#else
#define FD_RECEIVED(e) ((void)(e))
#define FD_GIVEN_BACK(e) ((void)(e))
#endif

#endif
