/* Members' deaths, watched with pidfds: the progress thread polls an epoll set of them
 * with its other fds, so that with other members it need not look for the dead every
 * 200 ms (an idle nginx's progress thread woke five times a second for that alone).  The
 * state lives on the progress thread's stack: the fds are this process's, while the
 * engine's globals are shared with the family.  Where pidfds cannot be had, the progress
 * thread looks periodically, as before. */
#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "byp.h"
#include "family.h"
#include "proc.h"

void byp_member_watch_init(struct byp_member_watch *w)
{
    w->ep = -1;
    w->ok = byp_family_shared;
    w->gen = byp_family_gen() - 1;   /* brought up to date at the first update */
    w->n = 0;
    w->ndead = 0;
}

/* The lists only ever name fds that are open: an fd leaves them before it is closed and
 * joins them after it is opened, so that a child forked at any instant closes only fds it
 * did inherit (byp_member_watch_drop_inherited; at worst it keeps one). */
void byp_member_watch_end(struct byp_member_watch *w)
{
    int n = w->n, ep = w->ep;
    w->n = 0;
    w->ep = -1;
    w->ok = 0;
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    for (int i = 0; i < n; i++)
        BYP_REAL(close)(w->fd[i]);
    if (ep >= 0)
        BYP_REAL(close)(ep);
}

int byp_member_watch_fd(const struct byp_member_watch *w)
{
    return w->ok && w->n > 0 ? w->ep : -1;
}

static int watching(const struct byp_member_watch *w, pid_t pid, uint64_t start)
{
    for (int i = 0; i < w->n; i++)
        if (w->pid[i] == pid && w->start[i] == start)
            return 1;
    return 0;
}

int byp_member_watch_update(struct byp_member_watch *w)
{
    uint32_t gen = byp_family_gen();
    if (!w->ok || gen == w->gen)
        return 0;
    int saved = errno;
    pid_t pids[BYP_FAMILY_MAX];
    uint64_t starts[BYP_FAMILY_MAX];
    int n = byp_family_list(pids, starts, BYP_FAMILY_MAX);
    for (int i = 0; i < w->n;) {   /* those who left, or were reaped */
        int member = 0;
        for (int j = 0; j < n && !member; j++)   /* the same process: a pid can be reused */
            member = pids[j] == w->pid[i] && starts[j] == w->start[i];
        if (member) {
            i++;
            continue;
        }
        int fd = w->fd[i];
        w->n--;
        w->pid[i] = w->pid[w->n];
        w->start[i] = w->start[w->n];
        w->fd[i] = w->fd[w->n];
        __atomic_signal_fence(__ATOMIC_SEQ_CST);
        BYP_REAL(close)(fd);   /* leaves the epoll set with it */
    }
    int gone = 0;
    pid_t me = getpid();
    for (int j = 0; j < n; j++) {
        if (pids[j] == me || watching(w, pids[j], starts[j]))
            continue;
        /* The set and the pidfds are made only once there is another member: a process
         * alone opens no fd here.  (This thread's fds appear at any instant, and one could
         * take the number of a socket the program had just closed: a call the program then
         * made on that number by mistake, racing its own close, answered ENOTSOCK, not
         * EBADF: test_close_race.py, 1 run in 6 with a CPU hog.) */
        if (w->ep < 0 && (w->ep = BYP_REAL(epoll_create1)(EPOLL_CLOEXEC)) < 0) {
            byp_member_watch_end(w);
            errno = saved;
            return 0;
        }
        int fd = (int)syscall(SYS_pidfd_open, pids[j], 0);
        if (fd < 0 && errno == ESRCH) {
            gone = 1;
            continue;
        }
        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = (uint64_t)pids[j]};
        if (fd < 0 || BYP_REAL(epoll_ctl)(w->ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
            if (fd >= 0)
                BYP_REAL(close)(fd);
            byp_info("cannot watch the processes sharing the stack (pidfd: %s): dead ones are "
                     "looked for every 200 ms", strerror(errno));
            byp_member_watch_end(w);
            errno = saved;
            return 1;
        }
        /* Opened after the check of the member list: the pid may name another process by
         * now (reused); then the member is gone. */
        if (!byp_proc_running(pids[j], starts[j])) {
            BYP_REAL(close)(fd);
            gone = 1;
            continue;
        }
        w->pid[w->n] = pids[j];
        w->start[w->n] = starts[j];
        w->fd[w->n] = fd;
        __atomic_signal_fence(__ATOMIC_SEQ_CST);
        w->n++;
    }
    w->gen = gen;
    errno = saved;
    return gone;
}

void byp_member_watch_collect(struct byp_member_watch *w)
{
    w->ndead = 0;
    if (!w->ok || w->ep < 0 || w->n == 0)
        return;
    int saved = errno;
    struct epoll_event ev[BYP_FAMILY_MAX];
    int k = BYP_REAL(epoll_wait)(w->ep, ev, BYP_FAMILY_MAX, 0);
    for (int i = 0; i < k; i++)
        w->dead[w->ndead++] = (pid_t)ev[i].data.u64;
    if (k < 0)
        w->ndead = -1;   /* cannot tell: every member is looked up */
    errno = saved;
}

int byp_member_watch_alive(const struct byp_member_watch *w, pid_t pid, uint64_t start)
{
    if (!w->ok || w->ndead < 0 || !watching(w, pid, start))
        return 0;
    for (int i = 0; i < w->ndead; i++)
        if (w->dead[i] == pid)
            return 0;
    return 1;
}

void byp_member_watch_drop_inherited(void)
{
    struct byp_member_watch *w = byp_local->watch;
    byp_local->watch = NULL;
    if (w != NULL) {   /* the parent thread's stack, copied by fork: its fds are ours now */
        int saved = errno;
        byp_member_watch_end(w);
        errno = saved;
    }
}
