/* The accelerated UDP fd kind: POSIX datagram socket semantics over lwIP's raw UDP API. */
#ifndef BYP_FD_UDP_H
#define BYP_FD_UDP_H

#include <netinet/in.h>

/* Engine entry points (struct byp_engine; see preload/engine.h for the returns).
 * byp_udp_bind: kernel UDP socket @fd was just bound to @local (the kernel's answer, port
 * chosen): serve it from the stack.  byp_udp_connect: @fd was just connected (by the kernel)
 * to @remote.  byp_udp_join: @fd, bound, just joined (@group, @source) on the kernel. */
int byp_udp_bind(int fd, const struct sockaddr_in *local);
int byp_udp_connect(int fd, const struct sockaddr_in *remote);
int byp_udp_join(int fd, in_addr_t group, in_addr_t source);

/* Socket options of the UDP kind (udp_opts.c). */
int byp_udp_setsockopt(int fd, int level, int opt, const void *val, socklen_t len);

#endif
