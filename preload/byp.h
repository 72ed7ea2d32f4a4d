/* State shared by the preload layer: initialisation, the loaded configuration, and the
 * conventions every wrapper follows. */
#ifndef BYP_PRELOAD_H
#define BYP_PRELOAD_H

#include "config.h"
#include "fdtab.h"
#include "log.h"
#include "real.h"

/* Put on every interposed definition (the version script decides what is exported too). */
#define BYP_EXPORT __attribute__((visibility("default")))

#define byp_likely(x) __builtin_expect(!!(x), 1)
#define byp_unlikely(x) __builtin_expect(!!(x), 0)

/* The configuration in force (defaults, file, environment).  After a config error it holds
 * no rules, so every socket stays on the kernel. */
extern BYP_SHARED byp_config_t byp_cfg;

/* Nonzero once byp_init has finished. */
extern BYP_SHARED int byp_ready;

/* Initialise the library once: resolve libc, read the configuration, map the fd table.
 * Runs from the constructor; safe to call from any wrapper that needs the state earlier
 * (a second caller while the first is still inside returns at once, and its call then goes
 * to the kernel).  Preserves errno.  The only place that may end the program: a config
 * error under BYPASS_STRICT=1. */
void byp_init(void);

/* Parent side of fork, before it (atfork prepare): the child's share of the stack. */
void byp_before_fork(void);

/* Before exec (wrap_exec.c): accelerated connections that survive it go to the kernel. */
void byp_before_exec(void);
/* Before sendmsg on a kernel socket with control data: accelerated fds sent with
 * SCM_RIGHTS go to the kernel first (wrap_exec.c). */
void byp_before_fd_pass(const struct msghdr *msg);

/* The IPv4 address socket @fd's address @sa names (wrap_sock.c): a plain one, or the IPv4
 * part of a dual-stack AF_INET6 socket's (IPV6_V6ONLY off: node, Go and Java listen so by
 * default, Java connects so): ::ffff:a.b.c.d, or "::" (INADDR_ANY) when @any_ok.  0 if
 * none. */
int byp_ipv4_of(int fd, const struct sockaddr *sa, socklen_t len, struct sockaddr_in *out,
                int any_ok);

/* At exit (registered by engine_load.c once the engine started) and _exit (wrap_proc.c):
 * this process's connections go to the kernel and it leaves the stack. */
void byp_leave_at_exit(void);

/* Child side of fork (also of fork() calls inside libc, e.g. daemon()): the child must not
 * touch the parent's accelerated state. */
void byp_after_fork_child(void);

#endif
