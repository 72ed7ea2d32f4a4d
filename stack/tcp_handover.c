/* Handing an accelerated TCP connection over to the kernel (before exec): the kernel socket
 * under the fd is rebuilt as the same connection with TCP_REPAIR (sequence numbers, MSS,
 * window scale, SACK, windows, the data the program has not read yet and the data not yet
 * acknowledged by the peer), the connection's packets stop being steered to the stack, and
 * lwIP forgets it without a word on the wire.  The order of the TCP_REPAIR steps follows
 * CRIU's soccr library. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#undef TCP_MSS   /* glibc's historical constant; lwIP's option of the same name follows */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lwip/priv/tcp_priv.h"

#include "byp_stack.h"
#include "fd_tcp.h"
#include "shm.h"
#include "stats.h"
#include "steer_ctl.h"
#include "tcp_sock.h"

#ifndef TCPOPT_MSS
#define TCPOPT_MSS 2
#define TCPOPT_WINDOW 3
#define TCPOPT_SACK_PERM 4
#endif

/* Connections handed over lately: their segments already in the NIC's ring reach lwIP,
 * which no longer knows them and would reset them.  Engine data (shared by the family). */
#define RECENT_MAX 64
#define RECENT_NS (5LL * 1000000000)
static struct {
    uint32_t laddr, raddr;
    uint16_t lport, rport;
    int64_t until;
} recent[RECENT_MAX];
static int nrecent;

static int64_t mono_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static void remember(const struct sockaddr_in *l, const struct sockaddr_in *r)
{
    int64_t now = mono_ns();
    int slot = -1;
    for (int i = 0; i < nrecent; i++)
        if (recent[i].until < now) {
            slot = i;
            break;
        }
    if (slot < 0)
        slot = nrecent < RECENT_MAX ? nrecent++ : 0;
    recent[slot].laddr = l->sin_addr.s_addr;
    recent[slot].lport = l->sin_port;
    recent[slot].raddr = r->sin_addr.s_addr;
    recent[slot].rport = r->sin_port;
    recent[slot].until = now + RECENT_NS;
}

static int same_conn(const struct tcp_pcb *pcb, uint32_t src, uint16_t sport, uint32_t dst,
                     uint16_t dport)
{
    return pcb->remote_port == sport && pcb->local_port == dport &&
           ip4_addr_get_u32(ip_2_ip4(&pcb->remote_ip)) == src &&
           ip4_addr_get_u32(ip_2_ip4(&pcb->local_ip)) == dst;
}

/* A segment of a handed flow (a listener passed to another process) that no connection of
 * the stack owns: one of the kernel's connections, whose four-tuple fell out of the XDP
 * program's LRU map of them (32,768 newer connections since), while the stack's own last
 * connections keep the flow steered.  It goes back on the map and the segment is dropped
 * rather than reset; the peer's next segment or retransmission reaches the kernel. */
static int kernel_conn(uint32_t src, uint16_t sport, uint32_t dst, uint16_t dport)
{
    in_addr_t flow_addr;
    if (!byp_flow_handed_tcp(dst, htons(dport), &flow_addr))
        return 0;
    for (struct tcp_pcb *pcb = tcp_active_pcbs; pcb != NULL; pcb = pcb->next)
        if (same_conn(pcb, src, sport, dst, dport))
            return 0;
    for (struct tcp_pcb *pcb = tcp_tw_pcbs; pcb != NULL; pcb = pcb->next)
        if (same_conn(pcb, src, sport, dst, dport))
            return 0;
    static int told;
    int rc = byp_steer_pass_conn(IPPROTO_TCP, flow_addr, dst, htons(dport), src, htons(sport));
    if (!told) {
        told = 1;
        byp_info("a segment of a kernel connection to port %u (a listener passed to another "
                 "process) reached the stack: %s", dport,
                 rc == 0 ? "steered back to the kernel" : strerror(-rc));
    }
    return rc == 0;
}

int byp_lwip_ip4_input(struct pbuf *p, struct netif *inp)
{
    (void)inp;
    byp_tw_segment(p);   /* its connection in TIME_WAIT back in lwIP's list (tcp_timewait.c) */
    if (__builtin_expect(nrecent == 0 && byp_flows_handed == 0, 1))
        return 0;
    struct byp_tcp4 t;
    if (!byp_tcp4_segment(p, &t))
        return 0;
    int64_t now = 0;
    for (int i = 0; i < nrecent; i++)
        if (recent[i].raddr == t.src && recent[i].rport == t.sport && recent[i].laddr == t.dst &&
            recent[i].lport == t.dport) {
            if (now == 0)
                now = mono_ns();
            if (recent[i].until < now)
                break;
            pbuf_free(p);
            return 1;
        }
    if (nrecent > 0 && recent[nrecent - 1].until < mono_ns())
        nrecent--;   /* shrink from the end as entries expire */
    /* Not a SYN: the XDP program gives a handed listener's SYNs to the kernel. */
    if (byp_flows_handed > 0 && !(t.flags & TCP_SYN) &&
        kernel_conn(t.src, ntohs(t.sport), t.dst, ntohs(t.dport))) {
        pbuf_free(p);
        return 1;
    }
    return 0;
}

static int sopt(int fd, int opt, const void *val, socklen_t len)
{
    return BYP_REAL(setsockopt)(fd, IPPROTO_TCP, opt, val, len) == 0 ? 0 : -errno;
}

static int set_queue(int fd, int queue, uint32_t seq, int with_seq)
{
    int rc = sopt(fd, TCP_REPAIR_QUEUE, &queue, sizeof queue);
    if (rc == 0 && with_seq)
        rc = sopt(fd, TCP_QUEUE_SEQ, &seq, sizeof seq);
    return rc;
}

/* Write @len bytes into the queue selected by TCP_REPAIR_QUEUE (blocking fd). */
static int fill_queue(int fd, const uint8_t *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = BYP_REAL(send)(fd, buf, len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? -errno : -EIO;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* The bytes of a segment list after the TCP headers, appended to @buf (lock held). */
static size_t copy_segs(const struct tcp_seg *seg, uint8_t *buf, size_t off)
{
    for (; seg != NULL; seg = seg->next) {
        pbuf_copy_partial(seg->p, buf + off, seg->len, (u16_t)(seg->p->tot_len - seg->len));
        off += seg->len;
    }
    return off;
}

static size_t segs_len(const struct tcp_seg *seg)
{
    size_t n = 0;
    for (; seg != NULL; seg = seg->next)
        n += seg->len;
    return n;
}

int byp_tcp_handover(struct tsock *ts, int fd)
{
    struct tcp_pcb *pcb = ts->pcb;
    /* Established, or the peer has finished (CLOSE_WAIT): the kernel's socket is rebuilt
     * established with the FIN counted in its receive sequence, and shut for reading below,
     * so it acknowledges what lwIP did and reads end of file once the data is read. */
    int fin = pcb != NULL && pcb->state == CLOSE_WAIT && ts->rx_fin;
    if (pcb == NULL || (pcb->state != ESTABLISHED && !fin) || (ts->rx_fin && !fin) ||
        ts->shut_wr || ts->state != T_CONNECTED)
        return -ENOTCONN;
    size_t rxn = ts->rx_bytes, txn = segs_len(pcb->unacked) + segs_len(pcb->unsent);
    uint8_t *buf = malloc(rxn + txn + 1);
    if (buf == NULL)
        return -ENOMEM;
    /* Unread data: the first pbuf is partly read (rx_off). */
    size_t got = 0;
    for (struct pbuf *p = ts->rx_head; p != NULL && got < rxn; p = p->next) {
        size_t skip = p == ts->rx_head ? ts->rx_off : 0;
        size_t n = p->len - skip;
        memcpy(buf + got, (uint8_t *)p->payload + skip, n);
        got += n;
    }
    rxn = got;
    copy_segs(pcb->unsent, buf + rxn, copy_segs(pcb->unacked, buf + rxn, 0));

    int fl = BYP_REAL(fcntl)(fd, F_GETFL);
    if (fl >= 0 && (fl & O_NONBLOCK))
        BYP_REAL(fcntl)(fd, F_SETFL, fl & ~O_NONBLOCK);
    int on = 1, off = 0, rc;
    struct sockaddr_in local = ts->local, remote = ts->remote;
    /* The kernel socket's own family: a dual-stack listener's connections are AF_INET6. */
    struct sockaddr_storage klocal, kremote, cur;
    socklen_t klen = sizeof klocal, len = sizeof cur;
    byp_addr4_put(&local, ts->v6, (struct sockaddr *)&klocal, &klen);
    klen = sizeof kremote;
    byp_addr4_put(&remote, ts->v6, (struct sockaddr *)&kremote, &klen);
    /* Repair mode ends with SO_REUSEADDR cleared: the kernel socket gets back its own, or,
     * accepted, its listener's, else a restarted server could not bind the port while the
     * kernel finishes the connection (FIN_WAIT, TIME_WAIT). */
    int reuse = 0;
    socklen_t rl = sizeof reuse;
    if (BYP_REAL(getsockopt)(fd, SOL_SOCKET, SO_REUSEADDR, &reuse, &rl) != 0)
        reuse = 0;
    reuse = reuse || ts->reuseaddr;
    rc = sopt(fd, TCP_REPAIR, &on, sizeof on);
    if (rc == 0)
        rc = set_queue(fd, TCP_SEND_QUEUE, pcb->lastack, 1);
    if (rc == 0)
        rc = set_queue(fd, TCP_RECV_QUEUE, pcb->rcv_nxt - (uint32_t)rxn, 1);
    if (rc == 0 && (BYP_REAL(getsockname)(fd, (struct sockaddr *)&cur, &len) != 0 ||
                    ((struct sockaddr_in *)&cur)->sin_port == 0) &&   /* sin6_port alike */
        BYP_REAL(bind)(fd, (struct sockaddr *)&klocal, klen) != 0)
        rc = -errno;
    if (rc == 0 && BYP_REAL(connect)(fd, (struct sockaddr *)&kremote, klen) != 0)
        rc = -errno;
    if (rc == 0) {
        struct tcp_repair_opt opts[3];
        int n = 0;
        opts[n++] = (struct tcp_repair_opt){TCPOPT_MSS, pcb->mss};
        if (pcb->flags & TF_WND_SCALE)
            opts[n++] = (struct tcp_repair_opt){TCPOPT_WINDOW,
                                                pcb->snd_scale | ((uint32_t)pcb->rcv_scale << 16)};
        if (pcb->flags & TF_SACK)
            opts[n++] = (struct tcp_repair_opt){TCPOPT_SACK_PERM, 0};
        rc = sopt(fd, TCP_REPAIR_OPTIONS, opts, (socklen_t)(n * sizeof opts[0]));
    }
    if (rc == 0 && rxn > 0 && (rc = set_queue(fd, TCP_RECV_QUEUE, 0, 0)) == 0)
        rc = fill_queue(fd, buf, rxn);
    if (rc == 0 && txn > 0 && (rc = set_queue(fd, TCP_SEND_QUEUE, 0, 0)) == 0)
        rc = fill_queue(fd, buf + rxn, txn);
    if (rc == 0) {
        struct tcp_repair_window w = {
            .snd_wl1 = pcb->snd_wl1,
            .snd_wnd = pcb->snd_wnd,
            .max_window = pcb->snd_wnd_max,
            .rcv_wnd = pcb->rcv_ann_right_edge - pcb->rcv_nxt,
            .rcv_wup = pcb->rcv_nxt,
        };
        rc = sopt(fd, TCP_REPAIR_WINDOW, &w, sizeof w);
    }
    free(buf);
    if (rc == 0)
        rc = byp_steer_pass_conn(IPPROTO_TCP, ts->flow_addr, local.sin_addr.s_addr,
                                 local.sin_port, remote.sin_addr.s_addr, remote.sin_port);
    if (rc < 0) {
        sopt(fd, TCP_REPAIR, &off, sizeof off);
        if (fl >= 0)
            BYP_REAL(fcntl)(fd, F_SETFL, fl);
        return rc;
    }
    /* The kernel owns it now: lwIP lets go silently, and the kernel says hello (repair off
     * sends a window probe, which also acknowledges what it has). */
    remember(&local, &remote);
    tcp_arg(pcb, NULL);
    tcp_err(pcb, NULL);
    tcp_recv(pcb, NULL);
    tcp_sent(pcb, NULL);
    tcp_poll(pcb, NULL, 0);
    tcp_abandon(pcb, 0);
    ts->pcb = NULL;
    ts->state = T_CLOSED;
    byp_tsock_rx_drop(ts);
    sopt(fd, TCP_REPAIR, &off, sizeof off);
    if (reuse)
        BYP_REAL(setsockopt)(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    if (fin || ts->shut_rd)
        BYP_REAL(shutdown)(fd, SHUT_RD);
    if (fl >= 0)
        BYP_REAL(fcntl)(fd, F_SETFL, fl);
    byp_info("tcp connection %s:%u handed over to the kernel", inet_ntoa(remote.sin_addr),
             ntohs(remote.sin_port));
    return 0;
}

/* Before posix_spawn, or before fds are sent over a UNIX socket (lock held): the spawned
 * program inherits every fd without FD_CLOEXEC and the sources of the file actions' dup2s
 * (@extra), the receiver gets @extra only (@listed); neither runs the stack.  Each
 * accelerated connection among them that no other process holds is handed over to the
 * kernel, for them and for this process alike, which then shares a kernel socket with them
 * as it would without the library (@to names them in the log).  The fds that now name a
 * plain kernel socket go to @out (at most @max; the caller clears them after the lock).
 * Their count. */
/* Listener @ts (fd @fd) is now also held by @to, which does not run the stack and may
 * accept on it: new connections go to the kernel (this process's accept takes them from
 * the kernel too), those the stack has stay.  Lock held. */
static void hand_listener(struct tsock *ts, unsigned fd, const char *to)
{
    int rc = ts->has_flow ? byp_flow_hand(IPPROTO_TCP, ts->flow_addr, ts->flow_port) : 0;
    if (rc < 0) {
        byp_warn("fd %u: a listener passed to %s: its new connections keep coming to this "
                 "process (%s)", fd, to, strerror(-rc));
        return;
    }
    byp_info("fd %u: a listener passed to %s: new connections to port %u go to the kernel, "
             "the accelerated ones stay", fd, to, ntohs(ts->local.sin_port));
    ts->handed = 1;
    /* The receiver shares the kernel socket's file status: it sees O_NONBLOCK only if this
     * program set it (this process's accept then blocks in the kernel's, as it would). */
    int fl = BYP_REAL(fcntl)((int)fd, F_GETFL);
    if (fl >= 0 && !ts->nonblock)
        BYP_REAL(fcntl)((int)fd, F_SETFL, fl & ~O_NONBLOCK);
}


int byp_tcp_handed_half_open(const struct tsock *only)
{
    int n = 0;
    for (struct tcp_pcb *p = tcp_active_pcbs; p != NULL; p = p->next) {
        /* Only a SYN_RCVD pcb's listener is sure to be alive (tcp_listen_closed). */
        if (p->state != SYN_RCVD || p->listener == NULL)
            continue;
        const struct tsock *l = p->listener->callback_arg;
        n += l != NULL && l->handed && (only == NULL || l == only);
    }
    return n;
}

/* Before exec (lock held): every listener the new image inherits is handed (nginx's new
 * master in a binary upgrade accepts on it). */
void byp_tcp_exec_hand_listeners(void)
{
    unsigned end = __atomic_load_n(&byp_fdtab_hwm, __ATOMIC_RELAXED);
    for (unsigned fd = 0; fd < end; fd++) {
        struct tsock *ts = byp_fdtab[fd].ops == &byp_tcp_ops ? TS(fd) : NULL;
        if (ts != NULL && ts->state == T_LISTEN && byp_fd_inherited(fd, NULL, 0, 0) != 0)
            hand_listener(ts, fd, "the exec'd program");
    }
}

int byp_tcp_spawn_handover(const int *extra, int nextra, int listed, const char *to, int *out,
                           int max)
{
    int nout = 0;
    unsigned end = __atomic_load_n(&byp_fdtab_hwm, __ATOMIC_RELAXED);
    for (unsigned fd = 0; fd < end && nout < max; fd++) {
        if (byp_fdtab[fd].ops != &byp_tcp_ops)
            continue;
        struct tsock *ts = TS(fd);
        if (ts == NULL)
            continue;   /* being closed */
        int how = byp_fd_inherited(fd, extra, nextra, listed);
        if (how == 0)
            continue;
        if (ts->state == T_LISTEN && how == 1) {
            /* Merely not FD_CLOEXEC: programs leak their listeners into what they run
             * (system(), popen()) far more often than a spawned program accepts on one;
             * handing it over would take every later connection off the stack. */
            byp_info("fd %u: a listener inherited by %s stays on this stack (not FD_CLOEXEC; "
                     "name it in a dup2 file action to share it)", fd, to);
            continue;
        }
        if (ts->state == T_LISTEN) {
            hand_listener(ts, fd, to);   /* sent, or made an fd of the spawned program */
            continue;
        }
        if (ts->pcb == NULL || ts->state != T_CONNECTED)
            continue;
        if (byp_refs_mine(&ts->refs) != ts->refs.total) {
            byp_info("fd %u: a connection other processes share cannot go to %s", fd, to);
            continue;
        }
        int rc = byp_tcp_handover(ts, (int)fd);
        if (rc < 0) {
            byp_warn("fd %u: cannot hand the connection over to the kernel for %s: %s", fd, to,
                     strerror(-rc));
            continue;
        }
        /* Every number of it (dup) now names the kernel's connection. */
        for (unsigned d = 0; d < end && nout < max; d++)
            if (byp_fdtab[d].ops == &byp_tcp_ops && byp_fdtab[d].obj == ts)
                out[nout++] = (int)d;
    }
    return nout;
}
