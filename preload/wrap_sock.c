/* bind, listen and connect: where the rules decide.  A kernel TCP socket whose listen()
 * (local address) or connect() (remote address) matches an "accelerate" rule is handed to
 * the engine; everything else, and everything the engine declines or cannot start for,
 * stays exactly the kernel's call. */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "addr4.h"
#include "byp.h"
#include "engine.h"
#include "fd_epoll.h"
#include "wrap_udp.h"

/* Whether a rule may send this kernel socket to the engine at all. */
static int candidate(int fd, int kind)
{
    byp_fd_t *e = byp_fd_get(fd);
    return e != NULL && __atomic_load_n(&e->kind, __ATOMIC_RELAXED) == kind &&
           byp_cfg.n_rules > 0 && !byp_engine_forked;
}

/* 127.0.0.0/8 always goes through the kernel. */
static int is_loopback(in_addr_t a)
{
    return (ntohl(a) >> 24) == 127;
}

int byp_ipv4_of(int fd, const struct sockaddr *sa, socklen_t len, struct sockaddr_in *out,
                int any_ok)
{
    int mapped = byp_addr4_get(sa, len, out);
    if (mapped <= 0)
        return mapped == 0;   /* plain IPv4, or none */
    if (!any_ok && out->sin_addr.s_addr == INADDR_ANY)
        return 0;
    int only = 1;
    socklen_t olen = sizeof only;
    return BYP_REAL(getsockopt)(fd, IPPROTO_IPV6, IPV6_V6ONLY, &only, &olen) == 0 && !only;
}

/* Whether @a is the stack's own address on a backend without a kernel interface address
 * (af_packet, tap, memif, pci: the `ip` key), which the kernel does not hold.  A bind to
 * it for a port a rule accelerates succeeds (the stack will serve it); any other stays
 * the kernel's EADDRNOTAVAIL. */
static int is_stack_only_addr(in_addr_t a)
{
    struct in_addr own;
    char buf[32];
    if (byp_cfg.backend == BYP_BACKEND_AF_XDP || byp_cfg.ip == NULL)
        return 0;
    snprintf(buf, sizeof buf, "%s", byp_cfg.ip);
    buf[strcspn(buf, "/")] = '\0';
    return inet_pton(AF_INET, buf, &own) == 1 && own.s_addr == a;
}

BYP_EXPORT int bind(int fd, const struct sockaddr *addr, socklen_t len)
{
    const byp_fd_ops_t *ops = byp_fd_ops(fd);
    if (byp_unlikely(ops != NULL))
        return BYP_OPS_CALL(fd, ops, bind, (fd, addr, len));
    int caller_errno = errno;
    int rc = BYP_REAL(bind)(fd, addr, len);
    struct sockaddr_in sin;
    int kind = candidate(fd, BYP_FD_KTCP) ? BYP_FD_KTCP : candidate(fd, BYP_FD_KUDP) ? BYP_FD_KUDP : 0;
    if (rc < 0 && errno == EADDRNOTAVAIL && kind != 0 &&
        byp_addr4_get(addr, len, &sin) == 0 && is_stack_only_addr(sin.sin_addr.s_addr) &&
        byp_rule_match(&byp_cfg, kind == BYP_FD_KTCP ? BYP_PROTO_TCP : BYP_PROTO_UDP,
                       (struct sockaddr *)&sin, sizeof sin) == BYP_ACT_ACCELERATE) {
        /* The stack's own address on a dedicated link: the kernel socket, which reserves
         * the port and names the socket, binds it without holding it (IP_FREEBIND). */
        int one = 1, saved = errno;
        if (BYP_REAL(setsockopt)(fd, IPPROTO_IP, IP_FREEBIND, &one, sizeof one) == 0)
            rc = BYP_REAL(bind)(fd, addr, len);
        errno = rc < 0 ? saved : caller_errno;
    }
    if (rc == 0 && kind == BYP_FD_KUDP)
        byp_udp_decide_bind(fd);
    return rc;
}

/* Try to make @fd an accelerated listener.  Returns 0 (done), -errno (listen failed as the
 * kernel would fail), or BYP_ENGINE_DECLINE (carry on on the kernel). */
static int accel_listen(int fd, int backlog)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    struct sockaddr_in sin;
    int saved = errno;
    int named = BYP_REAL(getsockname)(fd, (struct sockaddr *)&ss, &len) == 0;
    int ok = named && byp_ipv4_of(fd, (struct sockaddr *)&ss, len, &sin, 1) &&
             sin.sin_port != 0 && !is_loopback(sin.sin_addr.s_addr) &&
             byp_rule_match(&byp_cfg, BYP_PROTO_TCP, (struct sockaddr *)&sin, sizeof sin) ==
                 BYP_ACT_ACCELERATE;
    if (!ok && named && ss.ss_family == AF_INET6) {
        /* IPv6 only (IPV6_V6ONLY, or an IPv6 address) on a port a rule names: say why. */
        struct sockaddr_in any = {.sin_family = AF_INET,
                                  .sin_port = ((struct sockaddr_in6 *)&ss)->sin6_port};
        if (byp_rule_match(&byp_cfg, BYP_PROTO_TCP, (struct sockaddr *)&any, sizeof any) ==
            BYP_ACT_ACCELERATE)
            byp_info("tcp listener on port %u is IPv6 only: it stays on the kernel",
                     ntohs(any.sin_port));
    }
    errno = saved;
    if (!ok || byp_engine_get() < 0)
        return BYP_ENGINE_DECLINE;
    return byp_engine->tcp_listen(fd, &sin, backlog);
}

BYP_EXPORT int listen(int fd, int backlog)
{
    const byp_fd_ops_t *ops = byp_fd_ops(fd);
    if (byp_unlikely(ops != NULL))
        return BYP_OPS_CALL(fd, ops, listen, (fd, backlog));
    if (candidate(fd, BYP_FD_KTCP)) {
        int rc = accel_listen(fd, backlog);
        if (rc == 0) {
            byp_epoll_adopt(fd);
            return 0;
        }
        if (rc < 0) {
            errno = -rc;
            return -1;
        }
    }
    return BYP_REAL(listen)(fd, backlog);
}

static int accel_connect(int fd, const struct sockaddr *addr, socklen_t len)
{
    struct sockaddr_in sin;
    if (!byp_ipv4_of(fd, addr, len, &sin, 0) ||
        is_loopback(sin.sin_addr.s_addr) ||
        byp_rule_match(&byp_cfg, BYP_PROTO_TCP, (const struct sockaddr *)&sin, sizeof sin) !=
            BYP_ACT_ACCELERATE)
        return BYP_ENGINE_DECLINE;
    if (byp_engine_get() < 0)
        return BYP_ENGINE_DECLINE;
    return byp_engine->tcp_connect(fd, &sin);
}

BYP_EXPORT int connect(int fd, const struct sockaddr *addr, socklen_t len)
{
    const byp_fd_ops_t *ops = byp_fd_ops(fd);
    if (byp_unlikely(ops != NULL))
        return BYP_OPS_CALL(fd, ops, connect, (fd, addr, len));
    if (candidate(fd, BYP_FD_KUDP)) {
        int rc = BYP_REAL(connect)(fd, addr, len);
        if (rc == 0)
            byp_udp_decide_connect(fd, addr, len);
        return rc;
    }
    if (candidate(fd, BYP_FD_KTCP)) {
        int rc = accel_connect(fd, addr, len);
        if (rc == 0 || rc == -EINPROGRESS || (rc < 0 && byp_fd_ops(fd) != NULL))
            byp_epoll_adopt(fd);
        if (rc == 0)
            return 0;
        if (rc < 0) {
            errno = -rc;
            return -1;
        }
    }
    return BYP_REAL(connect)(fd, addr, len);
}
