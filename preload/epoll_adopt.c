/* Kernel TCP/UDP sockets added to an epoll set and later made accelerated (listen or
 * connect taken over by the engine): their registration moves from the kernel set to the
 * set's accelerated list, with the same events and data, found in /proc/self/fdinfo. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "byp.h"
#include "fd_epoll_priv.h"

/* One bit per fd number: set when a kernel TCP/UDP socket (a candidate for acceleration) is
 * added to an epoll set, so that byp_epoll_adopt has work only then.  Allocated on first
 * use; a stale bit (the number closed and reused) costs one needless scan. */
static unsigned long *cand_bits;
#define CAND_WORD_BITS (8 * sizeof(unsigned long))

void byp_epoll_note_kernel(int fd)
{
    if ((unsigned int)fd >= byp_fdtab_size)
        return;
    unsigned long *bits = __atomic_load_n(&cand_bits, __ATOMIC_ACQUIRE);
    if (bits == NULL) {
        unsigned long *fresh = calloc(byp_fdtab_size / CAND_WORD_BITS + 1, sizeof *fresh);
        if (fresh == NULL)
            return;
        if (!__atomic_compare_exchange_n(&cand_bits, &bits, fresh, false, __ATOMIC_ACQ_REL,
                                         __ATOMIC_ACQUIRE))
            free(fresh);
        else
            bits = fresh;
    }
    unsigned long bit = 1ul << ((unsigned int)fd % CAND_WORD_BITS);
    unsigned long *w = &bits[(unsigned int)fd / CAND_WORD_BITS];
    if (!(__atomic_load_n(w, __ATOMIC_RELAXED) & bit))
        __atomic_fetch_or(w, bit, __ATOMIC_RELAXED);
}

/* Find @fd (inode @ino) among the kernel set @epfd's items in /proc/self/fdinfo: 1 with
 * its events and data, else 0. */
static int fdinfo_item(int epfd, int fd, unsigned long ino, uint32_t *events, uint64_t *data)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/self/fdinfo/%d", epfd);
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return 0;
    int found = 0;
    while (!found && fgets(line, sizeof line, f) != NULL) {
        int tfd;
        unsigned int ev;
        unsigned long long d;
        long long pos;
        unsigned long i;
        if (sscanf(line, "tfd: %d events: %x data: %llx pos:%lld ino:%lx", &tfd, &ev, &d, &pos,
                   &i) == 5 &&
            tfd == fd && i == ino) {
            *events = ev;
            *data = d;
            found = 1;
        }
    }
    fclose(f);
    return found;
}

/* Move @fd's registration in the kernel set @epfd, if it has one, to the accelerated list.
 * Returns 1 when it did. */
int byp_epoll_adopt_in(int epfd, int fd, const byp_fd_ops_t *ops, unsigned long ino)
{
    uint32_t events;
    uint64_t data;
    if (!fdinfo_item(epfd, fd, ino, &events, &data))
        return 0;
    struct byp_epoll *ep;
    if (byp_epoll_set_attach(epfd, &ep) < 0)
        return 0;
    int done = 0, target = -1;
    void *obj = byp_fdtab[fd].obj;
    ep_mutex_lock(&ep->lock);
    if (byp_epoll_member_find(ep, fd, obj) < 0) {
        int kfd = ops->kernel_fd != NULL ? ops->kernel_fd(fd) : -1;
        struct epoll_event ev = {.events = events, .data.u64 = data};
        /* The placeholder socket must leave the kernel set; a listener's own socket stays. */
        if (kfd != fd)
            BYP_REAL(epoll_ctl)(epfd, EPOLL_CTL_DEL, fd, NULL);
        if (kfd >= 0 && kfd != fd && BYP_REAL(epoll_ctl)(epfd, EPOLL_CTL_ADD, kfd, &ev) != 0)
            kfd = -1;
        /* A disarmed one-shot item shows only its flags. */
        int armed = (events & EV_REPORTABLE & ~(uint32_t)(EPOLLERR | EPOLLHUP)) != 0 ||
                    !(events & EPOLLONESHOT);
        struct member m = {
            .fd = fd, .kfd = kfd, .obj = obj, .ops = ops,
            .events = events | EPOLLERR | EPOLLHUP, .data.u64 = data,
            .armed = (uint8_t)armed, .fresh = 1,
        };
        if (byp_epoll_wake_add(ep, epfd) == 0)
            done = byp_epoll_member_append(ep, &m) == 0;
        if (done && kfd < 0)
            byp_epoll_frames_add(ep, epfd);
        target = ep->target;
    }
    ep_mutex_unlock(&ep->lock);
    if (done)
        byp_epoll_watch(fd, target, 1);
    return done;
}

void byp_epoll_adopt(int fd)
{
    unsigned long *bits = __atomic_load_n(&cand_bits, __ATOMIC_ACQUIRE);
    if (bits == NULL || (unsigned int)fd >= byp_fdtab_size)
        return;
    unsigned long bit = 1ul << ((unsigned int)fd % CAND_WORD_BITS);
    if (!(__atomic_fetch_and(&bits[(unsigned int)fd / CAND_WORD_BITS], ~bit, __ATOMIC_RELAXED) &
          bit))
        return;
    const byp_fd_ops_t *ops = byp_fd_ops(fd);
    struct stat st;
    if (ops == NULL || ops == &byp_epoll_ops || fstat(fd, &st) != 0)
        return;
    int saved = errno;
    unsigned int end = __atomic_load_n(&byp_fdtab_hwm, __ATOMIC_RELAXED);
    for (unsigned int epfd = 0; epfd < end; epfd++)
        if (byp_fdtab[epfd].kind == BYP_FD_EPOLL)
            byp_epoll_adopt_in((int)epfd, fd, ops, (unsigned long)st.st_ino);
    errno = saved;
}
