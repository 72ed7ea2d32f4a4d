/* The send path of an accelerated UDP socket: for each datagram, the stack (destinations
 * through the interface) or the kernel socket underneath (loopback, other interfaces,
 * broadcast, and sends the kernel shapes: UDP_CORK, MSG_MORE, UDP_SEGMENT, control
 * messages).  A batch (sendmmsg; sendmsg is a batch of one) takes the lock once and kicks
 * the NIC once. */
#include <limits.h>
#include <string.h>

#include "lwip/ip.h"

#include "byp_stack.h"
#include "fd_udp.h"
#include "udp_sock.h"

/* The largest UDP payload over IPv4. */
#define UDP_MAX_PAYLOAD 65507

/* Where a datagram to @dst goes: 1 the stack, 0 the kernel socket (loopback, our own
 * address, a destination not reachable through the interface, broadcast). */
static int via_stack(in_addr_t dst)
{
    if (dst == INADDR_BROADCAST || dst == (byp_if_addr | ~byp_if_mask))
        return 0;
    if ((ntohl(dst) >> 28) == 14)
        return 1;
    return byp_route_ok(dst);
}

/* Send one datagram through the stack (lock held).  Bytes sent or -errno. */
static ssize_t stack_send(struct usock *us, const struct msghdr *m, const struct sockaddr_in *to)
{
    size_t total = 0;
    for (size_t i = 0; i < m->msg_iovlen; i++)
        total += m->msg_iov[i].iov_len;
    if (total > UDP_MAX_PAYLOAD)
        return -EMSGSIZE;
    if (us->pcb == NULL)
        return -EBADF;
    struct pbuf *p = pbuf_alloc(PBUF_TRANSPORT, (u16_t)total, PBUF_RAM);
    if (p == NULL)
        return -ENOBUFS;
    size_t off = 0;
    for (size_t i = 0; i < m->msg_iovlen; i++) {
        if (m->msg_iov[i].iov_len == 0)
            continue;
        if (pbuf_take_at(p, m->msg_iov[i].iov_base, (u16_t)m->msg_iov[i].iov_len, (u16_t)off) != ERR_OK) {
            pbuf_free(p);
            return -EFAULT;
        }
        off += m->msg_iov[i].iov_len;
    }
    ip_addr_t dst = IPADDR4_INIT(to->sin_addr.s_addr);
    int mcast = (ntohl(to->sin_addr.s_addr) >> 28) == 14;
    if (mcast && us->mcast_loop)
        byp_usock_loop(us, to->sin_addr.s_addr, to->sin_port, p);
    err_t e = udp_sendto(us->pcb, p, &dst, ntohs(to->sin_port));
    pbuf_free(p);
    if (e != ERR_OK)
        return e == ERR_RTE ? -ENETUNREACH : e == ERR_MEM || e == ERR_BUF ? -ENOBUFS : -EIO;
    us->tx_pkts++;
    us->tx_bytes += total;
    return (ssize_t)total;
}

/* The destination of @m: its own, else the connected peer.  1 found, 0 none (the kernel
 * then answers), -errno. */
static int dest_of(const struct usock *us, const struct msghdr *m, struct sockaddr_in *to)
{
    if (m->msg_name != NULL && m->msg_namelen > 0) {
        /* IPv4, or v4-mapped on a dual-stack socket; "::" and IPv6: the kernel's */
        if (byp_addr4_get(m->msg_name, m->msg_namelen, to) < 0 ||
            to->sin_addr.s_addr == INADDR_ANY)
            return 0;
        return 1;
    }
    if (!us->connected)
        return 0;   /* the kernel says EDESTADDRREQ */
    *to = us->remote;
    return 1;
}

/* Whether the kernel socket must send @m (lock held): a datagram built over several calls
 * (UDP_CORK, MSG_MORE: the kernel keeps the start, so the end goes there too), UDP_SEGMENT,
 * or a control message other than an IP_PKTINFO that names this interface or its address
 * (or nothing): a TTL, a TOS, a source elsewhere, a segment size. */
static int kernel_send(struct usock *us, const struct msghdr *m, int flags)
{
    if (us->cork || us->gso || us->kpending || (flags & MSG_MORE))
        return 1;
    if (m->msg_control == NULL || m->msg_controllen == 0)
        return 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR((struct msghdr *)m); c != NULL;
         c = CMSG_NXTHDR((struct msghdr *)m, c)) {
        if (c->cmsg_level != IPPROTO_IP || c->cmsg_type != IP_PKTINFO ||
            c->cmsg_len < CMSG_LEN(sizeof(struct in_pktinfo)))
            return 1;
        struct in_pktinfo pi;
        memcpy(&pi, CMSG_DATA(c), sizeof pi);
        if ((pi.ipi_ifindex != 0 && (unsigned)pi.ipi_ifindex != byp_if_index) ||
            (pi.ipi_spec_dst.s_addr != INADDR_ANY && pi.ipi_spec_dst.s_addr != byp_if_addr))
            return 1;
    }
    return 0;
}

/* Send the @n messages of @vec (sendmsg is a batch of one): stack sends under one lock
 * hold and one transmit kick; others through the kernel socket.  Count sent, or -1. */
int byp_udp_send_batch(int fd, struct mmsghdr *vec, unsigned n, int flags)
{
    struct usock *us = byp_usock_enter(fd);
    if (us == NULL)
        return -1;
    int locked = 1, kernel = 0, failed_kernel = 0;
    unsigned i;
    ssize_t r = 0;
    for (i = 0; i < n; i++) {
        const struct msghdr *m = &vec[i].msg_hdr;
        struct sockaddr_in to;
        if (m->msg_iovlen > IOV_MAX) {
            r = -EMSGSIZE;
            break;
        }
        if (!locked) {
            byp_stack_lock();
            locked = 1;
        }
        int d = dest_of(us, m, &to);
        int mcast_away = us->mcast_kernel && (ntohl(to.sin_addr.s_addr) >> 28) == 14;
        kernel = kernel_send(us, m, flags);
        if (kernel) {
            us->kpending = us->cork || (flags & MSG_MORE);   /* what the kernel will hold */
            if (!us->kshaped_said) {
                us->kshaped_said = 1;
                byp_info("udp socket on port %u: sends the kernel shapes (UDP_CORK, MSG_MORE, "
                         "UDP_SEGMENT, control messages) go through the kernel socket",
                         ntohs(us->local.sin_port));
            }
        }
        if (d == 1 && !mcast_away && !kernel && via_stack(to.sin_addr.s_addr)) {
            r = us->shut_wr ? -EPIPE : stack_send(us, m, &to);
        } else if (byp_usock_orphan(us, fd)) {
            r = -EBADF;   /* its kernel socket was closed under this call */
        } else {
            byp_stack_unlock_udp();
            locked = 0;
            r = BYP_REAL(sendmsg)(fd, m, flags);
            if (r < 0)
                r = -errno;
        }
        if (r < 0) {
            if (kernel)
                failed_kernel = 1;   /* the kernel dropped what it held */
            break;
        }
        vec[i].msg_len = (unsigned)r;
    }
    if (!locked)
        byp_stack_lock();
    if (failed_kernel)
        us->kpending = 0;
    byp_usock_exit(us);
    if (i == 0 && r < 0)
        return byp_udp_fail((int)-r);
    return (int)i;
}

