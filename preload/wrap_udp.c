/* The decision points of UDP sockets: bind (a receiving socket: its local address, or for
 * multicast the group and port), connect (the remote), a multicast join (the group and the
 * bound port; a join made before bind() takes effect at bind()), and the first sendto,
 * sendmsg or sendmmsg of an unbound socket (the remote).  Every call is first the kernel's
 * own: the engine is told afterwards, and a socket it declines stays as the kernel has it. */
#include <arpa/inet.h>
#include <pthread.h>
#include <sys/stat.h>

#include "addr4.h"
#include "byp.h"
#include "engine.h"
#include "fd_epoll.h"
#include "wrap_udp.h"

static int candidate(int fd)
{
    byp_fd_t *e = byp_fd_get(fd);
    return e != NULL && __atomic_load_n(&e->kind, __ATOMIC_RELAXED) == BYP_FD_KUDP &&
           byp_cfg.n_rules > 0 && !byp_engine_forked;
}

static int accelerates(in_addr_t addr, in_port_t port)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = port, .sin_addr.s_addr = addr};
    return (ntohl(addr) >> 24) != 127 &&
           byp_rule_match(&byp_cfg, BYP_PROTO_UDP, (struct sockaddr *)&sin, sizeof sin) ==
               BYP_ACT_ACCELERATE;
}

/* For a socket bound to INADDR_ANY:@port: the first rule naming UDP and the port decides,
 * whatever its address (such a socket receives for every local address and every group
 * joined on the host, IP_MULTICAST_ALL). */
static int accelerates_any(in_port_t port)
{
    uint16_t p = ntohs(port);
    for (int i = 0; i < byp_cfg.n_rules; i++) {
        const byp_rule_t *r = &byp_cfg.rules[i];
        if ((r->proto == BYP_PROTO_ANY || r->proto == BYP_PROTO_UDP) && p >= r->port_lo &&
            p <= r->port_hi)
            return r->action == BYP_ACT_ACCELERATE;
    }
    return 0;
}

/* The socket's local IPv4 address: plain, or the IPv4 part of a dual-stack AF_INET6
 * socket's; @v6 (may be NULL) tells which.  0 if it has none. */
static int local_of(int fd, struct sockaddr_in *sin, int *v6)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (BYP_REAL(getsockname)(fd, (struct sockaddr *)&ss, &len) != 0)
        return 0;
    if (v6 != NULL)
        *v6 = ss.ss_family == AF_INET6;
    return byp_ipv4_of(fd, (struct sockaddr *)&ss, len, sin, 1);
}

/* ---- joins made before bind ---- */

/* A membership of a socket not bound yet, remembered until its bind decides.  The socket
 * is told apart from a later one with the same number by its inode. */
struct pending {
    int fd;
    ino_t ino;
    in_addr_t group, source;
};
#define PENDING_MAX 256
static struct pending pending[PENDING_MAX];
static int npending;
static pthread_mutex_t pending_lock = PTHREAD_MUTEX_INITIALIZER;

static ino_t ino_of(int fd)
{
    struct stat st;
    return fstat(fd, &st) == 0 ? st.st_ino : 0;
}

static void remember(int fd, in_addr_t group, in_addr_t source)
{
    ino_t ino = ino_of(fd);
    pthread_mutex_lock(&pending_lock);
    for (int i = 0; i < npending; i++)   /* forget entries of closed sockets */
        if (pending[i].fd == fd && pending[i].ino != ino)
            pending[i--] = pending[--npending];
    if (npending < PENDING_MAX)
        pending[npending++] = (struct pending){fd, ino, group, source};
    pthread_mutex_unlock(&pending_lock);
}

/* Take the memberships @fd made before binding (at most @max). */
static int take_pending(int fd, struct pending *out, int max)
{
    int n = 0;
    if (__atomic_load_n(&npending, __ATOMIC_RELAXED) == 0)
        return 0;
    ino_t ino = ino_of(fd);
    pthread_mutex_lock(&pending_lock);
    for (int i = 0; i < npending; i++)
        if (pending[i].fd == fd) {
            if (pending[i].ino == ino && n < max)
                out[n++] = pending[i];
            pending[i--] = pending[--npending];
        }
    pthread_mutex_unlock(&pending_lock);
    return n;
}

/* ---- decisions ---- */

static void adopted(int fd, int rc)
{
    if (rc == 0)
        byp_epoll_adopt(fd);
}

void byp_udp_decide_bind(int fd)
{
    int saved = errno;
    struct sockaddr_in sin;
    struct pending joins[32];
    int nj = take_pending(fd, joins, 32);
    int v6 = 0;
    if (!local_of(fd, &sin, &v6)) {
        struct sockaddr_in6 s6;
        socklen_t len = sizeof s6;
        /* IPv6 only (IPV6_V6ONLY, or an IPv6 address) on a port a rule names: say why. */
        if (v6 && BYP_REAL(getsockname)(fd, (struct sockaddr *)&s6, &len) == 0 &&
            s6.sin6_family == AF_INET6 && s6.sin6_port != 0 && accelerates_any(s6.sin6_port))
            byp_info("udp socket on port %u is IPv6 only: it stays on the kernel",
                     ntohs(s6.sin6_port));
    } else if (sin.sin_port != 0) {
        int want = sin.sin_addr.s_addr == INADDR_ANY ? accelerates_any(sin.sin_port)
                                                     : accelerates(sin.sin_addr.s_addr, sin.sin_port);
        for (int i = 0; i < nj && !want; i++)
            want = accelerates(joins[i].group, sin.sin_port);
        if (want && byp_engine_get() == 0) {
            int rc = byp_engine->udp_bind(fd, &sin);
            for (int i = 0; i < nj && rc == 0; i++)
                byp_engine->udp_join(fd, joins[i].group, joins[i].source);
            adopted(fd, rc);
        }
    }
    errno = saved;
}

void byp_udp_decide_connect(int fd, const struct sockaddr *addr, socklen_t len)
{
    int saved = errno;
    struct sockaddr_in r;
    if (byp_ipv4_of(fd, addr, len, &r, 0) && accelerates(r.sin_addr.s_addr, r.sin_port) &&
        byp_engine_get() == 0)
        adopted(fd, byp_engine->udp_connect(fd, &r));
    errno = saved;
}

/* The group and source of a join option; 0 when @opt is not a join. */
static int join_of(int level, int opt, const void *val, socklen_t len, in_addr_t *group,
                   in_addr_t *source)
{
    *source = INADDR_ANY;
    if (val == NULL || level != IPPROTO_IP)
        return 0;
    switch (opt) {
    case IP_ADD_MEMBERSHIP:
        if (len < (socklen_t)sizeof(struct ip_mreq))
            return 0;
        *group = ((const struct ip_mreq *)val)->imr_multiaddr.s_addr;
        return 1;
    case IP_ADD_SOURCE_MEMBERSHIP:
        if (len < (socklen_t)sizeof(struct ip_mreq_source))
            return 0;
        *group = ((const struct ip_mreq_source *)val)->imr_multiaddr.s_addr;
        *source = ((const struct ip_mreq_source *)val)->imr_sourceaddr.s_addr;
        return 1;
    case MCAST_JOIN_GROUP: {
        const struct group_req *g = val;
        if (len < (socklen_t)sizeof *g || g->gr_group.ss_family != AF_INET)
            return 0;
        *group = ((const struct sockaddr_in *)&g->gr_group)->sin_addr.s_addr;
        return 1;
    }
    case MCAST_JOIN_SOURCE_GROUP: {
        const struct group_source_req *g = val;
        if (len < (socklen_t)sizeof *g || g->gsr_group.ss_family != AF_INET)
            return 0;
        *group = ((const struct sockaddr_in *)&g->gsr_group)->sin_addr.s_addr;
        *source = ((const struct sockaddr_in *)&g->gsr_source)->sin_addr.s_addr;
        return 1;
    }
    default:
        return 0;
    }
}

BYP_EXPORT int setsockopt(int fd, int level, int opt, const void *val, socklen_t len)
{
    const byp_fd_ops_t *ops = byp_fd_ops(fd);
    if (byp_unlikely(ops != NULL))
        return BYP_OPS_CALL(fd, ops, setsockopt, (fd, level, opt, val, len));
    int rc = BYP_REAL(setsockopt)(fd, level, opt, val, len);
    in_addr_t group, source;
    if (rc == 0 && candidate(fd) && join_of(level, opt, val, len, &group, &source)) {
        int saved = errno;
        struct sockaddr_in sin;
        if (!local_of(fd, &sin, NULL))
            ;   /* IPv6 only: the kernel's */
        else if (sin.sin_port == 0)
            remember(fd, group, source);
        else if (accelerates(group, sin.sin_port) && byp_engine_get() == 0)
            adopted(fd, byp_engine->udp_join(fd, group, source));
        errno = saved;
    }
    return rc;
}

/* First send of an unbound socket to a remote a rule accelerates: bind it as the kernel
 * would (wildcard address, a port of the kernel's choosing), and accelerate it.  Returns
 * the fd's ops afterwards (NULL: it stays the kernel's). */
static const byp_fd_ops_t *decide_send(int fd, const struct sockaddr *to, socklen_t tolen)
{
    int saved = errno;
    struct sockaddr_in r;
    if (!byp_ipv4_of(fd, to, tolen, &r, 0) || !accelerates(r.sin_addr.s_addr, r.sin_port)) {
        errno = saved;
        return NULL;
    }
    struct sockaddr_in sin;
    int v6 = 0;
    if (local_of(fd, &sin, &v6) && sin.sin_port == 0 && byp_engine_get() == 0) {
        struct sockaddr_in any4 = {.sin_family = AF_INET};
        struct sockaddr_storage any;
        socklen_t alen = sizeof any;
        byp_addr4_put(&any4, v6, (struct sockaddr *)&any, &alen);   /* 0.0.0.0 or "::" */
        if (BYP_REAL(bind)(fd, (struct sockaddr *)&any, alen) == 0 && local_of(fd, &sin, NULL))
            adopted(fd, byp_engine->udp_bind(fd, &sin));
    }
    errno = saved;
    return byp_fd_ops(fd);
}

BYP_EXPORT ssize_t sendto(int fd, const void *buf, size_t n, int flags, const struct sockaddr *addr,
                          socklen_t len)
{
    const byp_fd_ops_t *ops = byp_fd_ops(fd);
    if (byp_unlikely(ops == NULL && candidate(fd)))
        ops = decide_send(fd, addr, len);
    if (byp_unlikely(ops != NULL))
        return BYP_OPS_CALL(fd, ops, sendto, (fd, buf, n, flags, addr, len));
    return BYP_REAL(sendto)(fd, buf, n, flags, addr, len);
}

BYP_EXPORT ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
    const byp_fd_ops_t *ops = byp_fd_ops(fd);
    if (byp_unlikely(ops == NULL && candidate(fd) && msg != NULL))
        ops = decide_send(fd, msg->msg_name, msg->msg_namelen);
    if (byp_unlikely(ops != NULL))
        return BYP_OPS_CALL(fd, ops, sendmsg, (fd, msg, flags));
    if (byp_unlikely(msg != NULL && msg->msg_controllen != 0))
        byp_before_fd_pass(msg);
    return BYP_REAL(sendmsg)(fd, msg, flags);
}

BYP_EXPORT int sendmmsg(int fd, struct mmsghdr *vec, unsigned int vlen, int flags)
{
    const byp_fd_ops_t *ops = byp_fd_ops(fd);
    if (byp_unlikely(ops == NULL && candidate(fd) && vec != NULL && vlen > 0))
        ops = decide_send(fd, vec[0].msg_hdr.msg_name, vec[0].msg_hdr.msg_namelen);
    if (byp_unlikely(ops != NULL))
        return BYP_OPS_CALL(fd, ops, sendmmsg, (fd, vec, vlen, flags));
    for (unsigned int i = 0; vec != NULL && i < vlen; i++)
        if (byp_unlikely(vec[i].msg_hdr.msg_controllen != 0))
            byp_before_fd_pass(&vec[i].msg_hdr);
    return BYP_REAL(sendmmsg)(fd, vec, vlen, flags);
}
