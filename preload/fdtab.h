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
    BYP_FD_KIND_MAX
};

/* The per-kind operations: one slot per BYP_FDCALL, same prototype and the same -1 + errno
 * convention as libc, since the wrapper returns the slot's result as it is. */
typedef struct byp_fd_ops {
#define BYP_FDCALL(ret, name, params, args) ret(*name) params;
#include "libc_syms.def"
} byp_fd_ops_t;

typedef struct byp_fd {
    const byp_fd_ops_t *ops;    /* NULL: plain kernel fd, wrappers call libc directly */
    void *obj;                  /* the kind's object (an accelerated socket, ...) */
    uint8_t kind;               /* enum byp_fd_kind */
} byp_fd_t;

extern byp_fd_t *byp_fdtab;
extern unsigned int byp_fdtab_size;
extern unsigned int byp_fdtab_hwm;      /* one past the highest entry ever written */

/* Map the table.  Returns 0 or -errno; without a table every fd is a plain kernel fd. */
int byp_fdtab_init(void);

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

/* Record a freshly created kernel fd of @kind (no ops). */
void byp_fd_set_kernel(int fd, int kind);

/* Forget @fd (before it is closed, so its number cannot be reused under us). */
void byp_fd_clear(int fd);

/* Forget every fd in [@first, @last] (close_range, closefrom); only the part of the table
 * ever written is walked. */
void byp_fd_clear_range(unsigned int first, unsigned int last);

/* Make @newfd describe the same thing as @oldfd (dup, dup2, dup3, F_DUPFD). */
void byp_fd_copy(int oldfd, int newfd);

/* The kind for a socket(@domain, @type) just created. */
int byp_fd_kind_for_socket(int domain, int type);

#endif
