/* Closing an accelerated TCP socket: the references the family's fds hold on it, the
 * protocol close when the last goes (SO_LINGER, reset on unread data), and the connections
 * lwIP still finishes after the program let go of them (zombies, which keep the steering
 * entry and the kernel's port reservation until lwIP is done). */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "lwip/priv/tcp_priv.h"
#include "lwip/sys.h"

#include "byp_stack.h"
#include "engine_int.h"
#include "fd_tcp.h"
#include "stats.h"
#include "shm.h"
#include "tcp_sock.h"
#include "fd_epoll.h"
#include "repair.h"

/* A connection the program closed that lwIP still finishes (FIN handshake). */
struct zombie {
    struct tcp_pcb *pcb;
    in_addr_t flow_addr;
    in_port_t flow_port;
    int reserve_fd;             /* a dup of the kernel socket, in process reserve_pid */
    pid_t reserve_pid;
    struct zombie *next;
};

static struct zombie *zombies;

/* Every socket some fd of the family refers to, for the references of a member that
 * leaves (lock held). */
static struct tsock *all_socks;

/* An fd of this process refers to the socket now (lock held). */
void byp_tsock_link(struct tsock *ts)
{
    byp_refs_get(&ts->refs);
    ts->all_prev = NULL;
    ts->all_next = all_socks;
    if (all_socks != NULL)
        all_socks->all_prev = ts;
    all_socks = ts;
}

void byp_tsock_unlink(struct tsock *ts)
{
    if (ts->all_prev != NULL)
        ts->all_prev->all_next = ts->all_next;
    else if (all_socks == ts)
        all_socks = ts->all_next;
    if (ts->all_next != NULL)
        ts->all_next->all_prev = ts->all_prev;
    ts->all_prev = ts->all_next = NULL;
}

static void zombie_err(void *arg, err_t err)
{
    (void)err;
    ((struct zombie *)arg)->pcb = NULL;
}

int byp_tcp_tw_forget(struct tcp_pcb *pcb)
{
    if (pcb->callback_arg != NULL && byp_tsock_tw_held(pcb)) {
        /* An open socket's: the kernel's TIME_WAIT takes a new SYN whoever holds the socket
         * (its socket is already closed). */
        byp_tsock_tw_release(pcb->callback_arg);
        return 1;
    }
    if (pcb->callback_arg != NULL && pcb->errf != zombie_err)
        return 0;   /* a program's socket still refers to it */
    if (pcb->callback_arg != NULL)
        zombie_err(pcb->callback_arg, ERR_ABRT);   /* byp_tcp_reap drops the zombie */
    tcp_arg(pcb, NULL);
    tcp_err(pcb, NULL);
    return 1;
}

int byp_tcp_is_zombie(const struct tcp_pcb *pcb)
{
    return pcb->errf == zombie_err;
}

unsigned byp_tcp_zombie_count(void)
{
    unsigned n = 0;
    for (const struct zombie *z = zombies; z != NULL; z = z->next)
        n++;
    return n;
}

/* ---- close ---- */

static int drained_or_gone(void *arg)
{
    struct tsock *ts = arg;
    return ts->drained || ts->pcb == NULL;
}

/* SO_LINGER with a timeout: close() returns once everything sent was acknowledged, or
 * when the timeout passes (the close then goes on in the background), as the kernel's
 * does.  Lock held on entry and on return. */
static void linger(struct tsock *ts)
{
    ts->drained = ts->pcb->unsent == NULL && ts->pcb->unacked == NULL;
    if (ts->drained)
        return;
    tcp_output(ts->pcb);
    byp_tsock_wait(drained_or_gone, ts, ts->linger_s * 1000, NULL, 0);
}

/* The kernel socket a closing connection keeps, duplicated, as its port reservation until
 * lwIP is done with it (lock held): a dup of this process's @fd, or the one taken when the
 * last fd went while calls still ran (byp_tcp_release).  -1 when none; *@pid: its process. */
static int reserve_dup(struct tsock *ts, int fd, pid_t *pid)
{
    *pid = getpid();
    if (fd >= 0)
        return BYP_REAL(fcntl)(fd, F_DUPFD_CLOEXEC, 0);
    if (!ts->has_held)
        return -1;
    ts->has_held = 0;
    *pid = ts->held_pid;
    return ts->held_fd;
}

void byp_tcp_unlisten(struct tsock *ts)
{
    unsigned pending = ts->handed ? ts->aq_n + (unsigned)byp_tcp_handed_half_open(ts) : 0;
    if (pending > 0)   /* on the kernel, the process it went to takes them */
        byp_info("a listener on port %u passed to another process closed here before it "
                 "accepted %u connection(s) the stack had taken: they are reset",
                 ntohs(ts->local.sin_port), pending);
    ts->handed = 0;
    if (ts->pcb != NULL && !byp_reuseport_leave(ts))
        tcp_close(ts->pcb);   /* not while other SO_REUSEPORT listeners share it */
    ts->state = T_CLOSED;
    ts->pcb = NULL;
    for (unsigned i = 0; i < ts->aq_n; i++) {
        struct tsock *c = ts->aq[(ts->aq_head + i) % ts->aq_cap];
        if (c->pcb != NULL) {
            tcp_arg(c->pcb, NULL);
            tcp_err(c->pcb, NULL);
            tcp_abort(c->pcb);
        }
        byp_tsock_rx_drop(c);
        byp_tsock_put_flow(c);
        byp_stats_sock_close(c);
        byp_shm_free(c);
    }
    while (ts->deferred != NULL) {   /* held back by TCP_DEFER_ACCEPT: reset too */
        struct tsock *c = ts->deferred;
        if (c->pcb != NULL) {
            tcp_arg(c->pcb, NULL);
            tcp_err(c->pcb, NULL);
            tcp_abort(c->pcb);
        }
        byp_tcp_defer_drop(c);
    }
    byp_shm_free(ts->aq);
    ts->aq = NULL;
    ts->aq_n = ts->aq_cap = ts->aq_head = 0;
    byp_tsock_put_flow(ts);
}

/* The last reference of the family is gone: the protocol close (lock held).  @fd is this
 * process's fd for it, or -1 when it closes on behalf of a member that left or of the last
 * call running on it (the fd was closed before the call returned). */
static void tsock_close(struct tsock *ts, int fd)
{
    byp_tsock_unlink(ts);
    int listener = ts->state == T_LISTEN;
    if (listener) {
        byp_tcp_unlisten(ts);
    } else if (ts->pcb != NULL) {
        if (ts->linger_on && ts->linger_s > 0 && ts->rx_bytes == 0)
            linger(ts);
    }
    if (!listener && ts->pcb != NULL) {
        struct tcp_pcb *pcb = ts->pcb;
        tcp_recv(pcb, NULL);
        tcp_sent(pcb, NULL);
        tcp_poll(pcb, NULL, 0);
        if (ts->rx_bytes > 0 || (ts->linger_on && ts->linger_s == 0)) {
            /* Unread data (or SO_LINGER 0): reset, as the kernel does. */
            tcp_arg(pcb, NULL);
            tcp_err(pcb, NULL);
            tcp_abort(pcb);
            byp_tsock_put_flow(ts);
        } else {
            struct zombie *z = byp_shm_calloc(1, sizeof *z);
            if (z == NULL || tcp_close(pcb) != ERR_OK) {
                tcp_arg(pcb, NULL);
                tcp_err(pcb, NULL);
                tcp_abort(pcb);
                byp_tsock_put_flow(ts);
                byp_shm_free(z);
            } else {
                z->pcb = pcb;
                tcp_arg(pcb, z);
                tcp_err(pcb, zombie_err);
                z->flow_addr = ts->flow_addr;
                z->flow_port = ts->flow_port;
                z->reserve_fd = -1;
                if (ts->has_flow) {
                    ts->has_flow = 0;   /* the zombie holds it now */
                    if (ts->reserves_port)
                        z->reserve_fd = reserve_dup(ts, fd, &z->reserve_pid);
                    z->next = zombies;
                    zombies = z;
                } else {
                    tcp_arg(pcb, NULL);   /* no flow to hold: lwIP finishes it alone */
                    tcp_err(pcb, NULL);
                    byp_shm_free(z);
                }
            }
        }
    } else if (!listener) {
        byp_tsock_put_flow(ts);   /* lwIP already let go of the connection */
    }
    if (ts->has_held && ts->held_pid == getpid())
        BYP_REAL(close)(ts->held_fd);   /* not needed: the port goes with the connection */
    ts->has_held = 0;
    byp_tsock_tw_release(ts);   /* lwIP finishes its TIME_WAIT alone */
    byp_stats_sock_close(ts);
    byp_tsock_rx_drop(ts);
}

/* The accelerated TCP socket @fd refers to, read under the lock (NULL: none). */
static struct tsock *fd_sock(int fd)
{
    byp_fd_t *e = byp_fd_get(fd);
    if (e == NULL || __atomic_load_n(&e->ops, __ATOMIC_ACQUIRE) != &byp_tcp_ops)
        return NULL;
    return __atomic_load_n(&e->obj, __ATOMIC_RELAXED);
}

void byp_tcp_release(int fd)
{
    byp_stack_lock();
    struct tsock *ts = fd_sock(fd);
    if (ts == NULL) {
        byp_stack_unlock();   /* another thread's close of the same fd got here first */
        return;
    }
    /* The fd stops referring to the socket under the lock, so that a call entering after
     * this sees it closed (EBADF) rather than a socket about to be freed. */
    __atomic_store_n(&byp_fd_get(fd)->obj, NULL, __ATOMIC_RELAXED);
    uint32_t left = byp_refs_put(&ts->refs);
    uint32_t mine = byp_refs_mine(&ts->refs);
    if (left == 0) {
        tsock_close(ts, fd);
    } else if (byp_refs_fds(&ts->refs) == 0 && ts->reserves_port && ts->has_flow &&
               !ts->has_held) {
        /* Only calls keep it now: the kernel socket goes with this close, so keep its port
         * for the close that the last of them will do. */
        ts->held_fd = BYP_REAL(fcntl)(fd, F_DUPFD_CLOEXEC, 0);
        ts->held_pid = getpid();
        ts->has_held = ts->held_fd >= 0;
    }
    byp_stack_unlock();
    /* Out of this process's epoll sets once it holds no fd for it, as the kernel does for
     * the last close of a file. */
    if (mine == 0)
        byp_epoll_forget(fd, ts);
    if (left == 0)
        byp_shm_free(ts);
}

void *byp_tcp_ref(int fd)
{
    byp_stack_lock();
    struct tsock *ts = fd_sock(fd);
    if (ts != NULL)
        byp_refs_get(&ts->refs);
    byp_stack_unlock();
    return ts;
}

struct tsock *byp_tsock_enter(int fd)
{
    byp_stack_lock();
    struct tsock *ts = fd_sock(fd);
    if (ts == NULL) {
        byp_stack_unlock();
        errno = EBADF;
        return NULL;
    }
    byp_refs_call_get(&ts->refs);
    byp_holder.tsock = ts;
    return ts;
}

void byp_tsock_exit(struct tsock *ts)
{
    int saved = errno;
    uint32_t left = byp_refs_call_put(&ts->refs);
    if (left == 0)
        tsock_close(ts, -1);   /* closed by another thread while this call ran */
    byp_stack_unlock();
    if (left == 0)
        byp_shm_free(ts);
    errno = saved;
}

struct tsock *byp_tsock_pin(int fd)
{
    struct tsock *ts = byp_tsock_enter(fd);
    if (ts != NULL)
        byp_stack_unlock();
    return ts;
}

void byp_tsock_unpin(struct tsock *ts)
{
    byp_stack_lock();
    byp_tsock_exit(ts);
}

/* ---- the family: fork, exec, members that left ---- */

void byp_tcp_fork_refs(int slot)
{
    unsigned end = __atomic_load_n(&byp_fdtab_hwm, __ATOMIC_RELAXED);
    for (unsigned fd = 0; fd < end; fd++)
        if (byp_fdtab[fd].ops == &byp_tcp_ops && TS(fd) != NULL)   /* NULL: being closed */
            byp_refs_get_for(&TS(fd)->refs, slot);
}

void byp_tcp_handover_fds(int at_exit)
{
    int failed = 0, first_err = 0;
    /* A fork-per-connection server's parent closes its copy right after fork, and may not
     * have yet when the child execs or exits: the connections get 200 ms, all together. */
    int64_t until = byp_now_ns() + 200 * 1000000LL;
    unsigned end = __atomic_load_n(&byp_fdtab_hwm, __ATOMIC_RELAXED);
    for (unsigned fd = 0; fd < end; fd++) {
        if (byp_fdtab[fd].ops != &byp_tcp_ops)
            continue;
        struct tsock *ts = TS(fd);
        if (ts == NULL || ts->pcb == NULL || ts->state != T_CONNECTED)
            continue;   /* NULL: being closed */
        if (!at_exit) {
            int fdfl = BYP_REAL(fcntl)((int)fd, F_GETFD);
            if (fdfl < 0 || (fdfl & FD_CLOEXEC))
                continue;
        } else if (ts->refs.calls_per[byp_local->slot] > 0) {
            continue;   /* a thread of ours is inside a call on it: left as it is */
        }
        /* At exit, only for a connection this process used last: a child that never
         * touched what it inherited (redis' BGSAVE) does not wait for its parent. */
        int wait = !at_exit || ts->refs.last_caller == byp_local->slot + 1;
        while (wait && byp_refs_mine(&ts->refs) != ts->refs.total && byp_now_ns() < until) {
            byp_stack_unlock();
            struct timespec ms = {0, 1000000};
            nanosleep(&ms, NULL);
            byp_stack_lock();
        }
        if (byp_refs_mine(&ts->refs) != ts->refs.total) {
            byp_info("fd %u: a connection other processes share stays with them across %s",
                     fd, at_exit ? "exit" : "exec");
            continue;
        }
        int rc = byp_tcp_handover(ts, (int)fd);
        if (rc < 0 && failed++ == 0)
            first_err = -rc;
    }
    if (failed > 0)
        byp_warn("%d connection(s) could not be handed over to the kernel before %s (%s): "
                 "they close now", failed, at_exit ? "exit" : "exec", strerror(first_err));
}

void byp_tcp_drop_member(int slot)
{
    for (struct tsock *ts = all_socks, *next; ts != NULL; ts = next) {
        next = ts->all_next;
        int calls = ts->refs.calls_per[slot];
        if (byp_refs_held(&ts->refs, slot) && byp_refs_drop(&ts->refs, slot) == 0) {
            tsock_close(ts, -1);
            /* This process leaving (exit) while its other threads are still inside calls on
             * the socket: closed, but left to them rather than freed (a leak at exit). */
            if (!(slot == byp_local->slot && calls > 0))
                byp_shm_free(ts);
        }
    }
}

/* ---- after a lock holder died (repair.h) ---- */

/* Whether the receive queue is whole: pbufs still held, within bounds; the tail and the
 * count are recomputed from the chain when they lag it (the holder died between linking
 * a pbuf and updating them).  0 broken, 1 whole, 2 fixed. */
static int rxq_check(struct tsock *ts)
{
    size_t sum = 0;
    unsigned n = 0;
    struct pbuf *last = NULL;
    for (struct pbuf *p = ts->rx_head; p != NULL; p = p->next) {
        if (n++ >= (1u << 20) || p->ref == 0 || p->len == 0)
            return 0;
        sum += p->len;
        last = p;
    }
    if (ts->rx_head != NULL && ts->rx_off >= ts->rx_head->len)
        return 0;
    size_t bytes = ts->rx_head != NULL ? sum - ts->rx_off : 0;
    if (last == ts->rx_tail && bytes == ts->rx_bytes)
        return 1;
    ts->rx_tail = last;
    ts->rx_bytes = bytes;
    if (ts->rx_head == NULL)
        ts->rx_off = 0;
    return 2;
}

/* Reset @ts: its connection gets an RST, the program ECONNRESET; a queue that failed the
 * check is let go of, not freed. */
static void untrust(struct tsock *ts, int queue_ok)
{
    if (!queue_ok) {
        ts->rx_head = ts->rx_tail = NULL;
        ts->rx_bytes = 0;
        ts->rx_off = 0;
    }
    if (ts->pcb != NULL && ts->state != T_LISTEN && byp_repair_pcb_active(ts->pcb)) {
        byp_repair_reset_pcb(ts->pcb);   /* on_err: closed, ECONNRESET */
    } else if (ts->state != T_LISTEN) {
        ts->pcb = NULL;
        ts->state = T_CLOSED;
        ts->err = ts->so_error = ECONNRESET;
        ts->sndbuf = 0;
    }
    byp_tsock_rx_drop(ts);
    byp_tsock_changed(ts);
}

static int repair_one(struct tsock *ts, int suspect)
{
    int q = rxq_check(ts);
    if (q == 2)
        byp_info("repair: a socket's receive queue tail and count recomputed");
    if (q != 0 && !suspect)
        return 0;
    untrust(ts, q != 0);
    return 1;
}

/* Every socket object after a death: those on all_socks (@top set), the connections in
 * their accept queues and those held back (TCP_DEFER_ACCEPT); the sum of @fn's answers.
 * A cycle in all_socks is cut there, an accept queue whose indices are out of range is
 * emptied (what it held is leaked). */
static int each_sock(int (*fn)(struct tsock *ts, int top, const void *arg), const void *arg)
{
    int sum = 0;
    unsigned n = 0;
    for (struct tsock **link = &all_socks; *link != NULL;) {
        struct tsock *ts = *link;
        if (n++ >= MEMP_NUM_TCP_PCB + MEMP_NUM_TCP_PCB_LISTEN) {
            *link = NULL;   /* a cycle: the rest is leaked */
            break;
        }
        sum += fn(ts, 1, arg);
        if (ts->state == T_LISTEN && ts->aq != NULL) {
            if (ts->aq_cap == 0 || ts->aq_head >= ts->aq_cap || ts->aq_n > ts->aq_cap) {
                ts->aq_n = 0;   /* connections waiting in it are leaked */
                ts->aq_head = 0;
            }
            for (unsigned i = 0; i < ts->aq_n; i++)
                sum += fn(ts->aq[(ts->aq_head + i) % ts->aq_cap], 0, arg);
        }
        unsigned d = 0;   /* bounded: a cycle is left as it is */
        for (struct tsock *c = ts->deferred, *next; c != NULL && d++ < MEMP_NUM_TCP_PCB; c = next) {
            next = c->defer_next;   /* a reset drops @c (on_err) */
            sum += fn(c, 0, arg);
        }
        link = &ts->all_next;
    }
    return sum;
}

/* A socket on all_socks that is @suspect is reset whatever its queue says. */
static int repair_visit(struct tsock *ts, int top, const void *suspect)
{
    return repair_one(ts, top && ts == suspect);
}

int byp_tcp_repair_socks(void *suspect)
{
    return each_sock(repair_visit, suspect);
}

static int holds_visit(struct tsock *ts, int top, const void *target)
{
    (void)top;
    return byp_repair_chain_has(ts->rx_head, target);
}

int byp_tcp_holds_pbuf(const struct pbuf *target)
{
    return each_sock(holds_visit, target) != 0;
}

/* ---- connections lwIP finishes alone ---- */

static int cmp_ptr(const void *a, const void *b)
{
    uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
    return x < y ? -1 : x > y;
}

int byp_tcp_flushing(void)
{
    /* Only pcbs still on lwIP's active list may be looked at: lwIP frees a connection that
     * completes its close without telling us.  A zombie's pcb is known by its error
     * callback (one walk: thousands of connections closed at exit took 2 ms a round). */
    for (struct tcp_pcb *p = tcp_active_pcbs; p != NULL; p = p->next)
        if (p->errf == zombie_err &&
            (p->unsent != NULL || p->unacked != NULL || p->state == FIN_WAIT_1 ||
             p->state == CLOSING || p->state == LAST_ACK))
            return 1;
    return 0;
}

void byp_tcp_reap(void)
{
    static uint32_t last;
    if (zombies == NULL || sys_now() - last < 50)
        return;
    last = sys_now();
    size_t n = 0, cap = 256;
    uintptr_t *act = malloc(cap * sizeof *act);
    if (act == NULL)
        return;
    for (struct tcp_pcb *p = tcp_active_pcbs; p != NULL; p = p->next) {
        if (n == cap) {
            uintptr_t *a = realloc(act, 2 * cap * sizeof *act);
            if (a == NULL)
                break;
            act = a;
            cap *= 2;
        }
        act[n++] = (uintptr_t)p;
    }
    qsort(act, n, sizeof *act, cmp_ptr);
    for (struct zombie **zp = &zombies; *zp != NULL;) {
        struct zombie *z = *zp;
        /* lwIP frees a connection whose close completes (the last ACK in LAST_ACK) without
         * a word, and the next SYN may take the same memory before this runs: a pcb that
         * no longer names this zombie is another connection's (tcp_alloc zeroes it), and
         * the zombie's own is gone.  (Mistaken for it, the zombie stayed as long as the
         * newcomer lived, and the timers' plan woke every 50 ms for it.) */
        if (z->pcb != NULL && (z->pcb->callback_arg != z || z->pcb->errf != zombie_err))
            z->pcb = NULL;
        uintptr_t key = (uintptr_t)z->pcb;
        if (z->pcb != NULL && bsearch(&key, act, n, sizeof *act, cmp_ptr) != NULL) {
            zp = &z->next;
            continue;
        }
        if (z->pcb != NULL) {     /* in TIME_WAIT now: lwIP owns it alone */
            tcp_arg(z->pcb, NULL);
            tcp_err(z->pcb, NULL);
        }
        byp_flow_unref(IPPROTO_TCP, z->flow_addr, z->flow_port);
        if (z->reserve_fd >= 0 && z->reserve_pid == getpid())
            BYP_REAL(close)(z->reserve_fd);
        *zp = z->next;
        byp_shm_free(z);
    }
    free(act);
}
