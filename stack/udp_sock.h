/* Accelerated UDP sockets: the socket object over lwIP's raw UDP API (udp_sock.c: taking
 * over a kernel socket, the receive queue of datagrams, multicast groups, close) and its POSIX
 * calls (fd_udp.c).  Everything here runs with the stack lock held unless a function says
 * otherwise.
 *
 * The kernel socket under the same fd number stays bound to the same address and port: it
 * is the port reservation, it keeps the multicast memberships (the kernel sends IGMP and
 * programs the NIC's filter), and it is the second receive path (loopback, other
 * interfaces, IP fragments, which the XDP program passes to the kernel). */
#ifndef BYP_UDP_SOCK_H
#define BYP_UDP_SOCK_H

#include <errno.h>
#include <netinet/in.h>

#include "lwip/udp.h"

#include "addr4.h"
#include "byp.h"
#include "engine.h"
#include "family.h"
#include "wake.h"

/* One queued datagram: the payload (a pbuf chain, often the NIC's own buffer) and what
 * recvmsg reports with it. */
struct udgram {
    struct pbuf *p;
    int64_t ts_ns;              /* CLOCK_REALTIME when its frame left the NIC ring */
    in_addr_t src, dst;         /* network order; dst is the IP header's destination */
    in_port_t sport;            /* network order */
    uint32_t drops;             /* the socket's drop count when it was queued (SO_RXQ_OVFL) */
};

/* A multicast membership: (group, source); source 0 for any-source. */
struct ugroup {
    in_addr_t group, source;
};

/* Receive-side options that add control messages. */
enum {
    U_TS = 1,                   /* SO_TIMESTAMP */
    U_TSNS = 2,                 /* SO_TIMESTAMPNS */
    U_TSING = 4,                /* SO_TIMESTAMPING with software receive timestamps */
    U_PKTINFO = 8,              /* IP_PKTINFO */
    U_OVFL = 16,                /* SO_RXQ_OVFL */
    U_PKTINFO6 = 32,            /* IPV6_RECVPKTINFO (a dual-stack socket) */
    U_TSNEW = 64,               /* the timestamps were asked with SO_TIMESTAMP*_NEW: their
                                   control messages have those types */
};

struct usock {
    struct udp_pcb *pcb;        /* NULL once closed */
    struct byp_refs refs;       /* fds referring to it, per process of the family */
    struct byp_watch watch;     /* the epoll sets it is in, to wake (wake.h) */
    int nonblock;               /* the program's O_NONBLOCK */
    int rcvtimeo_ms, sndtimeo_ms;   /* -1: none */
    int cmsg;                   /* U_* */
    int mcast_all;              /* IP_MULTICAST_ALL (Linux default 1) */
    int mcast_loop;             /* IP_MULTICAST_LOOP (default 1) */
    int mcast_kernel;           /* IP_MULTICAST_IF names another interface: multicast sends
                                   go out through the kernel socket */
    int connected;
    int reuseport;              /* SO_REUSEPORT: unicast shared with the port's others */
    int v6;                     /* a dual-stack AF_INET6 socket: addresses are v4-mapped */
    /* Sends the stack cannot shape go through the kernel socket (fd_udp.c, kernel_send):
     * a datagram built over several calls (UDP_CORK, MSG_MORE), segmentation (UDP_SEGMENT) */
    int cork;                   /* UDP_CORK */
    int gso;                    /* UDP_SEGMENT */
    int kpending;               /* the kernel socket holds the start of a corked datagram */
    int kshaped_said;           /* the info line on such sends was written */
    int shut_rd, shut_wr;       /* shutdown(): receives end (0), sends fail (EPIPE) */
    struct sockaddr_in local, remote;
    /* receive queue: a ring of datagrams, bounded in bytes by the kernel socket's SO_RCVBUF */
    struct udgram *q;
    unsigned qhead, qn, qcap;
    size_t qcharge;             /* bytes charged against rcvbuf */
    size_t qpayload;            /* payload bytes queued */
    uint32_t rcvbuf;
    uint32_t drops;             /* datagrams dropped for a full queue */
    unsigned kturn;             /* receives since the kernel path was last looked at */
    int kready;                 /* U_KIN | U_KERR: the kernel socket may have something
                                   (udp_kpath.c); atomic */
    int kwatched;               /* its kernel socket is in the family's kernel-path set */
    /* multicast memberships */
    struct ugroup *groups;
    int ngroups, capgroups;
    /* steering entry of the local address/port */
    in_addr_t flow_addr;
    in_port_t flow_port;
    int has_flow;
    uint64_t gen;               /* bumped on every readiness change */
    /* counters for bypass-stat */
    uint64_t rx_pkts, rx_bytes, tx_pkts, tx_bytes;
    int stat_slot;              /* its slot in the stats' table, -1 if none */
    struct usock *next;         /* all accelerated UDP sockets of the stack */
};

/* usock.kready bits: the kernel socket may hold a datagram / has reported an error. */
enum {
    U_KIN = 1,
    U_KERR = 2,
};

/* Bytes a queued datagram costs against SO_RCVBUF beyond its payload: about what the kernel
 * charges per small datagram (the skb's truesize), so a given SO_RCVBUF holds about as many
 * datagrams on both. */
#define U_CHARGE_OVERHEAD 768

/* The object an fd refers to, read without the lock: only for hints (readiness), which
 * must cope with NULL (the fd is being closed).  Calls pin their object instead. */
#define US(fd) ((struct usock *)__atomic_load_n(&byp_fdtab[(fd)].obj, __ATOMIC_RELAXED))

/* The accelerated UDP ops table (fd_udp.c). */
extern const byp_fd_ops_t byp_udp_ops;
/* Every accelerated UDP socket (for multicast loopback and the stats). */
extern struct usock *byp_usocks;
/* Multicast datagrams the stack received for a group no socket on their port wanted. */
extern uint64_t byp_udp_unwanted;

/* Set errno, return -1: the libc convention of the ops. */
static inline int byp_udp_fail(int err)
{
    errno = err;
    return -1;
}

/* The socket's readiness changed: bump its counter, tell the engine. */
void byp_usock_changed(struct usock *us);
/* Wait condition for byp_wait: a datagram is queued (read without the lock). */
int byp_usock_readable(void *us);
/* Pop the head datagram (its pbuf is the caller's to free). */
void byp_usock_pop(struct usock *us, struct udgram *out);
/* Re-read SO_RCVBUF from the kernel socket @fd. */
void byp_usock_rcvbuf(struct usock *us, int fd);

/* Join / leave (@group, @source) on the stack side (the kernel socket already did).  0 or
 * -errno (-EADDRNOTAVAIL: not a member, on leave). */
int byp_usock_join(struct usock *us, in_addr_t group, in_addr_t source);
int byp_usock_leave(struct usock *us, in_addr_t group, in_addr_t source);

/* Deliver a copy of a datagram we send to @group:@port to our own sockets on it
 * (IP_MULTICAST_LOOP). */
void byp_usock_loop(const struct usock *from, in_addr_t group, in_port_t port,
                    const struct pbuf *p);

/* The second path's readiness (udp_kpath.c; the engine's entry points are in fd_udp.h):
 * watch / stop watching @us's kernel socket @fd in the family's kernel-path set (add marks
 * it to be looked at once). */
void byp_udp_kpath_add(struct usock *us, int fd);
void byp_udp_kpath_del(struct usock *us, int fd);

/* Take over the options the program set on kernel socket @fd before (udp_opts.c). */
void byp_udp_opts_inherit(struct usock *us, int fd);

/* The ops implemented in udp_sock.c. */
void byp_udp_release(int fd);
void *byp_udp_ref(int fd);

/* A call on @fd begins: the stack lock and a reference for the call on the socket @fd refers
 * to (see byp_tsock_enter).  The socket with the lock held, or NULL with errno EBADF. */
struct usock *byp_usock_enter(int fd);
/* The call returns: drop its reference (closing and freeing the socket when it was the
 * last) and the lock.  errno is kept. */
void byp_usock_exit(struct usock *us);
/* The same for a call that mostly runs without the lock: pinned, lock not held. */
struct usock *byp_usock_pin(int fd);
void byp_usock_unpin(struct usock *us);
/* Whether @fd, the number a call on @us came in by, was closed while the call ran (lock
 * held): the number may be someone else's by now, so the call no longer touches the
 * kernel socket through it. */
static inline int byp_usock_orphan(const struct usock *us, int fd)
{
    return __atomic_load_n(&byp_fdtab[fd].obj, __ATOMIC_RELAXED) != us;
}

#endif
