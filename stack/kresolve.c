/* Asking the kernel to resolve a neighbour: a "managed" neighbour entry (Linux 5.16+,
 * NTF_EXT_MANAGED), which the kernel resolves at once and keeps resolved, exactly what an
 * accelerated path sharing the interface with the kernel needs.  On an older kernel, a
 * zero-length UDP datagram to the discard port through a kernel socket makes it resolve. */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/neighbour.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "byp_stack.h"
#include "real.h"

#ifndef NTF_EXT_MANAGED
#define NTF_EXT_MANAGED (1 << 0)
#endif
#ifndef NDA_FLAGS_EXT
#define NDA_FLAGS_EXT 15
#endif

static int managed_add(unsigned ifindex, in_addr_t addr)
{
    struct {
        struct nlmsghdr nh;
        struct ndmsg ndm;
        char attrs[64];
    } req;
    memset(&req, 0, sizeof req);
    req.nh.nlmsg_type = RTM_NEWNEIGH;
    req.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
    req.nh.nlmsg_seq = 1;
    req.ndm.ndm_family = AF_INET;
    req.ndm.ndm_ifindex = (int)ifindex;
    req.ndm.ndm_state = NUD_NONE;
    size_t len = NLMSG_LENGTH(sizeof(struct ndmsg));
    struct rtattr *a = (struct rtattr *)((char *)&req + NLMSG_ALIGN(len));
    a->rta_type = NDA_DST;
    a->rta_len = RTA_LENGTH(4);
    memcpy(RTA_DATA(a), &addr, 4);
    len = NLMSG_ALIGN(len) + RTA_ALIGN(a->rta_len);
    a = (struct rtattr *)((char *)&req + len);
    a->rta_type = NDA_FLAGS_EXT;
    a->rta_len = RTA_LENGTH(4);
    uint32_t fl = NTF_EXT_MANAGED;
    memcpy(RTA_DATA(a), &fl, 4);
    len += RTA_ALIGN(a->rta_len);
    req.nh.nlmsg_len = (uint32_t)len;

    int fd = BYP_REAL(socket)(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (fd < 0)
        return -errno;
    struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
    int rc = 0;
    if (BYP_REAL(sendto)(fd, &req, len, 0, (struct sockaddr *)&sa, sizeof sa) < 0) {
        rc = -errno;
    } else {
        char buf[512];
        ssize_t n = BYP_REAL(recv)(fd, buf, sizeof buf, 0);
        if (n < 0) {
            rc = -errno;
        } else if ((size_t)n >= sizeof(struct nlmsghdr)) {
            struct nlmsghdr *nh = (struct nlmsghdr *)buf;
            if (nh->nlmsg_type == NLMSG_ERROR)
                rc = ((struct nlmsgerr *)NLMSG_DATA(nh))->error;
        }
    }
    BYP_REAL(close)(fd);
    return rc;
}

static int udp_nudge(in_addr_t addr)
{
    int fd = BYP_REAL(socket)(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(9), .sin_addr.s_addr = addr};
    int rc = BYP_REAL(sendto)(fd, "", 0, MSG_DONTWAIT, (struct sockaddr *)&sin, sizeof sin) < 0 ? -errno : 0;
    BYP_REAL(close)(fd);
    return rc;
}

int byp_kstate_resolve_neigh(unsigned ifindex, in_addr_t addr)
{
    int rc = managed_add(ifindex, addr);
    if (rc == 0 || rc == -EEXIST)
        return rc;
    return udp_nudge(addr);
}
