/* The accelerated UDP fd kind: POSIX datagram socket semantics over lwIP's raw UDP API. */
#ifndef BYP_FD_UDP_H
#define BYP_FD_UDP_H

#include <netinet/in.h>
#include <sys/socket.h>
#include <stdint.h>

/* Engine entry points (struct byp_engine; see preload/engine.h for the returns).
 * byp_udp_bind: kernel UDP socket @fd was just bound to @local (the kernel's answer, port
 * chosen): serve it from the stack.  byp_udp_connect: @fd was just connected (by the kernel)
 * to @remote.  byp_udp_join: @fd, bound, just joined (@group, @source) on the kernel. */
int byp_udp_bind(int fd, const struct sockaddr_in *local);
int byp_udp_connect(int fd, const struct sockaddr_in *remote);
int byp_udp_join(int fd, in_addr_t group, in_addr_t source);

/* Sharing across fork (lock held, udp_sock.c), as for TCP (fd_tcp.h): the child's slot
 * gets a reference for each accelerated UDP fd it will inherit; a member that leaves or
 * died gives back all of its references. */
void byp_udp_fork_refs(int slot);
void byp_udp_drop_member(int slot);
/* Before posix_spawn, an SCM_RIGHTS send or exec (lock held), as byp_tcp_spawn_handover:
 * the flows of each accelerated UDP socket the other program gets go to the kernel (at a
 * spawn or send only those named in @extra; at exec, @inherited_too, every one it keeps). */
void byp_udp_spawn_handover(const int *extra, int nextra, int listed, int inherited_too,
                            const char *to);

/* The second receive path's readiness (udp_kpath.c).  byp_udp_kpath_start: create the
 * family's kernel-path epoll set (0 or -errno); byp_udp_kpath_fd: that set, or -1: it is
 * readable when a kernel socket got something, and is watched where the frames are.
 * byp_udp_kpath_wake: a watcher woke (no lock needed): read the set at the next poll.
 * byp_udp_kpath_poll: run by every poll of the stack (lock held): reads the set when due
 * (a wake-up, or every few microseconds) and marks the sockets it names readable. */
int byp_udp_kpath_start(void);
int byp_udp_kpath_fd(void);
void byp_udp_kpath_wake(void);
void byp_udp_kpath_poll(int64_t now_ns);

/* Send the @n messages of @vec (udp_send.c): count sent, or -1 and errno. */
int byp_udp_send_batch(int fd, struct mmsghdr *vec, unsigned n, int flags);

/* Socket options of the UDP kind (udp_opts.c). */
int byp_udp_setsockopt(int fd, int level, int opt, const void *val, socklen_t len);

#endif
