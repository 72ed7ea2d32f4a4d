/* Socket options of the accelerated UDP kind.  Every option is applied to the kernel socket
 * first: it validates it (its errno is the answer on failure), answers getsockopt, and
 * governs the kernel path (loopback, fragments).  What the stack's path needs is then
 * mirrored onto the socket object: timeouts, timestamps, IP_PKTINFO, SO_RXQ_OVFL, SO_RCVBUF,
 * multicast memberships (the kernel keeps IGMP), TTL, TOS, loop. */
#include <linux/net_tstamp.h>
#include <netinet/udp.h>
#include <string.h>

#include "lwip/ip.h"

#include "byp_stack.h"
#include "fd_udp.h"
#include "udp_sock.h"

static int int_of(const void *val, socklen_t len)
{
    int v = 0;
    if (val == NULL)
        return 0;
    if (len >= (socklen_t)sizeof(int))
        memcpy(&v, val, sizeof v);
    else if (len >= 1)
        v = *(const unsigned char *)val;
    return v;
}

static int timeo_ms(const void *val)
{
    struct timeval tv;
    memcpy(&tv, val, sizeof tv);
    long long ms = (long long)tv.tv_sec * 1000 + (tv.tv_usec + 999) / 1000;
    return ms <= 0 ? -1 : ms > 0x7fffffff ? 0x7fffffff : (int)ms;
}

/* The (group, source) of a membership option, 1 when @opt is one (join or leave), with
 * @join set for a join. */
static int membership(int level, int opt, const void *val, socklen_t len, in_addr_t *group,
                      in_addr_t *source, int *join)
{
    *source = INADDR_ANY;
    if (level == IPPROTO_IP && (opt == IP_ADD_MEMBERSHIP || opt == IP_DROP_MEMBERSHIP)) {
        const struct ip_mreq *mr = val;   /* ip_mreqn starts the same way */
        *group = mr->imr_multiaddr.s_addr;
        *join = opt == IP_ADD_MEMBERSHIP;
        return len >= (socklen_t)sizeof *mr;
    }
    if (level == IPPROTO_IP && (opt == IP_ADD_SOURCE_MEMBERSHIP || opt == IP_DROP_SOURCE_MEMBERSHIP)) {
        const struct ip_mreq_source *ms = val;
        *group = ms->imr_multiaddr.s_addr;
        *source = ms->imr_sourceaddr.s_addr;
        *join = opt == IP_ADD_SOURCE_MEMBERSHIP;
        return len >= (socklen_t)sizeof *ms;
    }
    if ((level == IPPROTO_IP || level == SOL_IP) && (opt == MCAST_JOIN_GROUP || opt == MCAST_LEAVE_GROUP)) {
        const struct group_req *gr = val;
        if (len < (socklen_t)sizeof *gr || gr->gr_group.ss_family != AF_INET)
            return 0;
        *group = ((const struct sockaddr_in *)&gr->gr_group)->sin_addr.s_addr;
        *join = opt == MCAST_JOIN_GROUP;
        return 1;
    }
    if (level == IPPROTO_IP && (opt == MCAST_JOIN_SOURCE_GROUP || opt == MCAST_LEAVE_SOURCE_GROUP)) {
        const struct group_source_req *gs = val;
        if (len < (socklen_t)sizeof *gs || gs->gsr_group.ss_family != AF_INET)
            return 0;
        *group = ((const struct sockaddr_in *)&gs->gsr_group)->sin_addr.s_addr;
        *source = ((const struct sockaddr_in *)&gs->gsr_source)->sin_addr.s_addr;
        *join = opt == MCAST_JOIN_SOURCE_GROUP;
        return 1;
    }
    return 0;
}

/* @us pinned by the caller, the lock not held. */
static int setsockopt_pinned(struct usock *us, int fd, int level, int opt, const void *val,
                             socklen_t len)
{
    if (BYP_REAL(setsockopt)(fd, level, opt, val, len) < 0)
        return -1;
    int v = int_of(val, len);
    in_addr_t group, source;
    int join;
    if (membership(level, opt, val, len, &group, &source, &join)) {
        byp_stack_lock();
        int rc = join ? byp_usock_join(us, group, source) : byp_usock_leave(us, group, source);
        byp_stack_unlock();
        if (rc < 0 && join)
            byp_warn("cannot steer a multicast group to the stack: %s; it arrives through the kernel",
                     strerror(-rc));
        return 0;
    }
    byp_stack_lock();
    if (level == SOL_SOCKET) {
        switch (opt) {
        case SO_RCVBUF:
        case SO_RCVBUFFORCE:
            byp_usock_rcvbuf(us, fd);
            break;
        case SO_RCVTIMEO:
            us->rcvtimeo_ms = timeo_ms(val);
            break;
        case SO_SNDTIMEO:
            us->sndtimeo_ms = timeo_ms(val);
            break;
        /* The _NEW options (64-bit time on 32-bit programs) switch the control messages
         * of all three to the _NEW types when they turn one on, the old ones back. */
        case SO_TIMESTAMP:
        case SO_TIMESTAMP_NEW:
            us->cmsg = (us->cmsg & ~(U_TS | U_TSNS)) | (v ? U_TS : 0);
            if (v)
                us->cmsg = (us->cmsg & ~U_TSNEW) | (opt == SO_TIMESTAMP_NEW ? U_TSNEW : 0);
            break;
        case SO_TIMESTAMPNS:
        case SO_TIMESTAMPNS_NEW:
            us->cmsg = (us->cmsg & ~(U_TS | U_TSNS)) | (v ? U_TSNS : 0);
            if (v)
                us->cmsg = (us->cmsg & ~U_TSNEW) | (opt == SO_TIMESTAMPNS_NEW ? U_TSNEW : 0);
            break;
        case SO_TIMESTAMPING:
        case SO_TIMESTAMPING_NEW: {
            int want = SOF_TIMESTAMPING_SOFTWARE | SOF_TIMESTAMPING_RX_SOFTWARE;
            us->cmsg = (us->cmsg & ~U_TSING) | ((v & want) == want ? U_TSING : 0);
            us->cmsg = (us->cmsg & ~U_TSNEW) | (opt == SO_TIMESTAMPING_NEW ? U_TSNEW : 0);
            break;
        }
        case SO_RXQ_OVFL:
            us->cmsg = (us->cmsg & ~U_OVFL) | (v ? U_OVFL : 0);
            break;
        default:
            break;
        }
    } else if (level == IPPROTO_UDP && opt == UDP_CORK) {
        us->cork = v != 0;
        if (!us->cork)
            us->kpending = 0;   /* the kernel sent what it held */
    } else if (level == IPPROTO_UDP && opt == UDP_SEGMENT) {
        us->gso = v != 0;
    } else if (level == IPPROTO_IPV6 && opt == IPV6_RECVPKTINFO) {
        us->cmsg = (us->cmsg & ~U_PKTINFO6) | (v ? U_PKTINFO6 : 0);
    } else if (level == IPPROTO_IP) {
        switch (opt) {
        case IP_PKTINFO:
            us->cmsg = (us->cmsg & ~U_PKTINFO) | (v ? U_PKTINFO : 0);
            break;
        case IP_MULTICAST_ALL:
            us->mcast_all = v != 0;
            break;
        case IP_MULTICAST_LOOP:
            us->mcast_loop = v != 0;
            break;
        case IP_MULTICAST_IF: {
            /* an in_addr, an ip_mreq or an ip_mreqn: the address, then (mreqn) the index */
            struct ip_mreqn mr;
            memset(&mr, 0, sizeof mr);
            memcpy(&mr, val, len < (socklen_t)sizeof mr ? len : sizeof mr);
            in_addr_t a = len >= (socklen_t)sizeof(struct ip_mreq) ? mr.imr_address.s_addr
                                                                 : mr.imr_multiaddr.s_addr;
            int idx = len >= (socklen_t)sizeof mr ? mr.imr_ifindex : 0;
            us->mcast_kernel = idx != 0 ? (unsigned)idx != byp_if_index
                                        : a != INADDR_ANY && a != byp_if_addr;
            break;
        }
        case IP_MULTICAST_TTL:
            if (us->pcb != NULL)
                udp_set_multicast_ttl(us->pcb, (u8_t)(v < 0 ? 1 : v));
            break;
        case IP_TTL:
            if (us->pcb != NULL)
                us->pcb->ttl = (u8_t)(v < 0 ? 64 : v);
            break;
        case IP_TOS:
            if (us->pcb != NULL)
                us->pcb->tos = (u8_t)(v & 0xfc);
            break;
        default:
            break;
        }
    }
    byp_stack_unlock();
    return 0;
}

int byp_udp_setsockopt(int fd, int level, int opt, const void *val, socklen_t len)
{
    struct usock *us = byp_usock_pin(fd);
    if (us == NULL)
        return -1;
    int r = setsockopt_pinned(us, fd, level, opt, val, len);
    byp_usock_unpin(us);
    return r;
}

/* Options the program set on the kernel socket before it was accelerated. */
void byp_udp_opts_inherit(struct usock *us, int fd)
{
    int v;
    socklen_t len = sizeof v;
    if (BYP_REAL(getsockopt)(fd, IPPROTO_IP, IP_TTL, &v, &len) == 0)
        us->pcb->ttl = (u8_t)v;
    len = sizeof v;
    if (BYP_REAL(getsockopt)(fd, IPPROTO_IP, IP_MULTICAST_TTL, &v, &len) == 0)
        udp_set_multicast_ttl(us->pcb, (u8_t)v);
    len = sizeof v;
    if (BYP_REAL(getsockopt)(fd, IPPROTO_IP, IP_TOS, &v, &len) == 0)
        us->pcb->tos = (u8_t)v;
    len = sizeof v;
    if (BYP_REAL(getsockopt)(fd, IPPROTO_IP, IP_MULTICAST_LOOP, &v, &len) == 0)
        us->mcast_loop = v != 0;
    len = sizeof v;
    if (BYP_REAL(getsockopt)(fd, IPPROTO_IP, IP_MULTICAST_ALL, &v, &len) == 0)
        us->mcast_all = v != 0;
    struct in_addr mif = {0};
    len = sizeof mif;
    if (BYP_REAL(getsockopt)(fd, IPPROTO_IP, IP_MULTICAST_IF, &mif, &len) == 0)
        us->mcast_kernel = mif.s_addr != INADDR_ANY && mif.s_addr != byp_if_addr;
    len = sizeof v;
    if (BYP_REAL(getsockopt)(fd, IPPROTO_IP, IP_PKTINFO, &v, &len) == 0 && v)
        us->cmsg |= U_PKTINFO;
    len = sizeof v;
    if (BYP_REAL(getsockopt)(fd, IPPROTO_UDP, UDP_CORK, &v, &len) == 0 && v)
        us->cork = 1;
    len = sizeof v;
    if (BYP_REAL(getsockopt)(fd, IPPROTO_UDP, UDP_SEGMENT, &v, &len) == 0 && v)
        us->gso = 1;
    len = sizeof v;
    if (us->v6 && BYP_REAL(getsockopt)(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &v, &len) == 0 && v)
        us->cmsg |= U_PKTINFO6;
    len = sizeof v;
    if (BYP_REAL(getsockopt)(fd, SOL_SOCKET, SO_RXQ_OVFL, &v, &len) == 0 && v)
        us->cmsg |= U_OVFL;
    len = sizeof v;
    if (BYP_REAL(getsockopt)(fd, SOL_SOCKET, SO_TIMESTAMPNS, &v, &len) == 0 && v)
        us->cmsg |= U_TSNS;
    else if (len = sizeof v, BYP_REAL(getsockopt)(fd, SOL_SOCKET, SO_TIMESTAMP, &v, &len) == 0 && v)
        us->cmsg |= U_TS;
    len = sizeof v;
    if (BYP_REAL(getsockopt)(fd, SOL_SOCKET, SO_TIMESTAMPNS_NEW, &v, &len) == 0 && v)
        us->cmsg |= U_TSNEW;   /* on when the flag is: any of the three */
    len = sizeof v;
    int want = SOF_TIMESTAMPING_SOFTWARE | SOF_TIMESTAMPING_RX_SOFTWARE;
    if (BYP_REAL(getsockopt)(fd, SOL_SOCKET, SO_TIMESTAMPING, &v, &len) == 0 && (v & want) == want)
        us->cmsg |= U_TSING;
    struct timeval tv;
    len = sizeof tv;
    if (BYP_REAL(getsockopt)(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, &len) == 0)
        us->rcvtimeo_ms = timeo_ms(&tv);
    len = sizeof tv;
    if (BYP_REAL(getsockopt)(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, &len) == 0)
        us->sndtimeo_ms = timeo_ms(&tv);
}
