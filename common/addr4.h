/* IPv4 socket addresses as a program's socket names them: a plain sockaddr_in, or, for a
 * dual-stack AF_INET6 socket (IPV6_V6ONLY off), ::ffff:a.b.c.d ("::" for INADDR_ANY). */
#ifndef BYP_ADDR4_H
#define BYP_ADDR4_H

#include <netinet/in.h>
#include <sys/socket.h>

/* Writes @sin to @addr / @len (truncated to *@len, which becomes the full size): plain, or
 * v4-mapped when @v6. */
void byp_addr4_put(const struct sockaddr_in *sin, int v6, struct sockaddr *addr, socklen_t *len);

/* Reads @sa: 0 a plain IPv4 address, 1 a v4-mapped one or "::" (INADDR_ANY), -1 anything
 * else (an IPv6 address, another family, too short). */
int byp_addr4_get(const struct sockaddr *sa, socklen_t len, struct sockaddr_in *out);

#endif
