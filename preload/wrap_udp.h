/* Where the rules decide for UDP sockets (wrap_udp.c): bind, connect, a multicast join, and
 * the first send on an unbound socket. */
#ifndef BYP_WRAP_UDP_H
#define BYP_WRAP_UDP_H

#include "sysheaders.h"

/* Kernel UDP socket @fd was just bound (by the kernel): accelerate it if a rule names its
 * local address and port, or a group it joined before binding and its port.  Preserves
 * errno; the socket stays the kernel's on any failure. */
void byp_udp_decide_bind(int fd);
/* Kernel UDP socket @fd was just connected to @addr: accelerate it if a rule names the
 * remote.  Preserves errno. */
void byp_udp_decide_connect(int fd, const struct sockaddr *addr, socklen_t len);

#endif
