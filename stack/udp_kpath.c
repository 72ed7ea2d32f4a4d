/* The second receive path's readiness: which accelerated UDP sockets have something waiting
 * on their kernel socket (datagrams from loopback or another interface, IP fragments the
 * kernel reassembled, a pending error), learnt without a system call per receive.
 *
 * Every accelerated UDP socket's kernel socket sits edge-triggered in one epoll set of the
 * family (kpath_fd), and that set is watched as the frames are: in the wake groups' sleep
 * sets while sleepers take the frames, by the progress thread once the family forked.  A
 * datagram reaching a kernel socket wakes whoever watches.  Whoever runs the stack next
 * reads the set (at once after such a wake-up, else at most every KPATH_CHECK_NS while
 * threads spin) and marks the sockets it names (usock.kready), which makes them readable.  A
 * receive calls the kernel socket only while its mark is set, and clears the mark before
 * the call that may find it empty: a datagram arriving after that call is a new edge, and
 * marks it again at the next check.
 *
 * Before this, a socket drained to EAGAIN asked its kernel socket every time (one recvmsg
 * per drain: about one system call per datagram with 32 groups sent round robin). */
#include <string.h>
#include <sys/epoll.h>

#include "fd_udp.h"

#include "byp_stack.h"
#include "udp_sock.h"

/* How often a spinning thread looks at the set (an epoll_wait system call). */
#define KPATH_CHECK_NS 20000
/* Events taken per look; more stay queued in the set for the next one. */
#define KPATH_BATCH 64

/* Engine globals, shared by the family's members (the set is inherited across fork). */
static int kpath_fd = -1;
static int64_t kpath_last_ns;
static int kpath_due;           /* a sleeper woke: look at the next poll whatever the time */

int byp_udp_kpath_start(void)
{
    kpath_fd = BYP_REAL(epoll_create1)(EPOLL_CLOEXEC);
    return kpath_fd < 0 ? -errno : 0;
}

int byp_udp_kpath_fd(void)
{
    return kpath_fd;
}

void byp_udp_kpath_add(struct usock *us, int fd)
{
    /* Datagrams queued before the take-over: the kernel reports a socket that is ready
     * when it is added, as the first edge. */
    if (kpath_fd < 0)
        return;
    int saved = errno;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.ptr = us};
    if (BYP_REAL(epoll_ctl)(kpath_fd, EPOLL_CTL_ADD, fd, &ev) < 0)
        byp_warn("udp: cannot watch the kernel socket of fd %d: %s; its kernel path is "
                 "looked at on every receive", fd, strerror(errno));
    else
        us->kwatched = 1;
    errno = saved;
}

void byp_udp_kpath_del(struct usock *us, int fd)
{
    if (kpath_fd < 0 || !us->kwatched)
        return;
    int saved = errno;
    /* ENOENT when @fd is a dup of the number registered: the kernel drops the entry with
     * the last reference to the socket, and a stale event names no listed socket. */
    BYP_REAL(epoll_ctl)(kpath_fd, EPOLL_CTL_DEL, fd, NULL);
    us->kwatched = 0;
    errno = saved;
}

void byp_udp_kpath_wake(void)
{
    __atomic_store_n(&kpath_due, 1, __ATOMIC_RELAXED);
}

/* The listed socket @p, or NULL (closed since its event was queued). */
static struct usock *listed(void *p)
{
    for (struct usock *us = byp_usocks; us != NULL; us = us->next)
        if (us == p)
            return us;
    return NULL;
}

void byp_udp_kpath_poll(int64_t now_ns)
{
    if (kpath_fd < 0 || byp_usocks == NULL)
        return;
    if (!__atomic_load_n(&kpath_due, __ATOMIC_RELAXED) && now_ns - kpath_last_ns < KPATH_CHECK_NS)
        return;
    kpath_last_ns = now_ns;
    __atomic_store_n(&kpath_due, 0, __ATOMIC_RELAXED);
    struct epoll_event evs[KPATH_BATCH];
    int saved = errno;
    int n = BYP_REAL(epoll_wait)(kpath_fd, evs, KPATH_BATCH, 0);
    errno = saved;
    for (int i = 0; i < n; i++) {
        struct usock *us = listed(evs[i].data.ptr);
        if (us == NULL)
            continue;
        int mark = U_KIN | ((evs[i].events & EPOLLERR) ? U_KERR : 0);
        __atomic_or_fetch(&us->kready, mark, __ATOMIC_ACQ_REL);
        byp_usock_changed(us);
    }
    if (n == KPATH_BATCH)
        __atomic_store_n(&kpath_due, 1, __ATOMIC_RELAXED);   /* more queued */
}
