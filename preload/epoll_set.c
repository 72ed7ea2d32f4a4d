/* The epoll fd's own kind (what a call on the epoll fd itself does: poll readiness,
 * release on close, everything else to the kernel) and the set objects behind epoll fds:
 * found, recycled, attached on first use.  The members, waits and changes of a set are
 * fd_epoll.c's.
 *
 * Set objects are never freed, only recycled, so that a thread still inside epoll_wait when
 * another closes the epoll fd cannot touch freed memory. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "byp.h"
#include "engine.h"
#include "fd_epoll.h"

#include "fd_epoll_priv.h"

static struct byp_epoll *set_of(int fd)
{
    return byp_fd_ops(fd) == &byp_epoll_ops ? byp_fdtab[fd].obj : NULL;
}

static void *ep_ref(int fd)
{
    void *obj = byp_fdtab[fd].obj;
    __atomic_add_fetch(&((struct byp_epoll *)obj)->refs, 1, __ATOMIC_RELAXED);
    return obj;
}

/* The last fd of a set closes: the kernel set goes with it, and the object is recycled. */
static void ep_release(int fd)
{
    struct byp_epoll *ep = byp_fdtab[fd].obj;
    if (ep == NULL)
        return;
    byp_epoll_forget(fd, ep);   /* the set may itself sit in another set */
    if (__atomic_sub_fetch(&ep->refs, 1, __ATOMIC_ACQ_REL) > 0) {
        if (ep->epfd == fd) {
            /* Another number of the set stays open: clean-ups use that one. */
            ep_mutex_lock(&byp_epoll_reg_lock);
            for (unsigned int i = 0; i < __atomic_load_n(&byp_fdtab_hwm, __ATOMIC_RELAXED); i++)
                if ((int)i != fd && byp_fdtab[i].obj == ep && byp_fd_ops((int)i) == &byp_epoll_ops) {
                    ep->epfd = (int)i;
                    break;
                }
            ep_mutex_unlock(&byp_epoll_reg_lock);
        }
        return;
    }
    ep_mutex_lock(&byp_epoll_reg_lock);
    ep_mutex_lock(&ep->lock);
    __atomic_sub_fetch(&byp_epoll_total_members, ep->n, __ATOMIC_RELAXED);
    ep->n = 0;
    ep->nkfd = 0;
    byp_epoll_index_reset(ep);
    __atomic_store_n(&ep->head.nmembers, 0, __ATOMIC_RELEASE);
    ep->wake_fd = -1;
    byp_epoll_target_drop(ep, -1);   /* the kernel set goes with the fd */
    ep->frames_fd = -1;
    ep_mutex_unlock(&ep->lock);
    ep->live = 0;
    ep_mutex_unlock(&byp_epoll_reg_lock);
}

/* An epoll fd in poll(), select() or another epoll: readable when an accelerated member has
 * something to report (the kernel members through kernel_fd, the set's own fd). */
static uint32_t ep_readiness(int fd)
{
    struct byp_epoll *ep = set_of(fd);
    if (ep == NULL)
        return 0;
    uint32_t r = 0;
    ep_mutex_lock(&ep->lock);
    for (int i = 0; i < ep->n && r == 0; i++)
        if (byp_epoll_member_check(&ep->m[i], 0) > 0)
            r = POLLIN;
    ep_mutex_unlock(&ep->lock);
    return r;
}

static uint64_t ep_event_gen(int fd)
{
    struct byp_epoll *ep = set_of(fd);
    if (ep == NULL)
        return 0;
    uint64_t g = 0;
    ep_mutex_lock(&ep->lock);
    for (int i = 0; i < ep->n; i++) {
        const struct member *m = &ep->m[i];
        if (byp_fd_ops(m->fd) == m->ops && m->ops->event_gen != NULL)
            g += m->ops->event_gen(m->fd);
    }
    ep_mutex_unlock(&ep->lock);
    return g;
}

static int ep_kernel_fd(int fd)
{
    return fd;
}

/* Every other call on an epoll fd is the kernel's. */
#define BYP_FDCALL(ret, name, params, args)                                                 \
    static ret ep_##name params                                                             \
    {                                                                                       \
        return BYP_REAL(name) args;                                                         \
    }
#include "libc_syms.def"

static int ep_accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
    return BYP_REAL(accept4)(fd, addr, len, flags);
}

static int ep_fcntl(int fd, int cmd, void *arg)
{
    return BYP_REAL(fcntl)(fd, cmd, arg);
}

static int ep_ioctl(int fd, unsigned long req, void *arg)
{
    return BYP_REAL(ioctl)(fd, req, arg);
}

const byp_fd_ops_t byp_epoll_ops = {
#define BYP_FDCALL(ret, name, params, args) .name = ep_##name,
#include "libc_syms.def"
    .accept4 = ep_accept4,
    .release = ep_release,
    .ref = ep_ref,
    .fcntl = ep_fcntl,
    .ioctl = ep_ioctl,
    .readiness = ep_readiness,
    .event_gen = ep_event_gen,
    .kernel_fd = ep_kernel_fd,
};

/* Whether @epfd is an epoll fd the library did not see created (inherited, or made before
 * the library was ready).  0, -EBADF or -EINVAL, as epoll_ctl would fail. */
static int check_epoll_fd(int epfd)
{
    if (BYP_REAL(fcntl)(epfd, F_GETFD) < 0)
        return -EBADF;
    char path[64], link[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", epfd);
    ssize_t n = readlink(path, link, sizeof link - 1);
    if (n < 0)
        return 0;   /* no /proc: let the kernel set decide later */
    link[n] = '\0';
    return strcmp(link, "anon_inode:[eventpoll]") == 0 ? 0 : -EINVAL;
}

static struct byp_epoll *set_alloc(int epfd)
{
    struct byp_epoll *ep;
    for (ep = byp_epoll_all_sets; ep != NULL; ep = ep->next)
        if (!ep->live)
            break;
    if (ep == NULL) {
        ep = calloc(1, sizeof *ep);
        if (ep == NULL)
            return NULL;
        pthread_mutex_init(&ep->lock, NULL);
        ep->next = byp_epoll_all_sets;
        byp_epoll_all_sets = ep;
    }
    ep_mutex_lock(&ep->lock);
    ep->live = 1;
    ep->refs = 1;
    ep->epfd = epfd;
    ep->wake_fd = -1;
    ep->target = ep->target_efd = ep->frames_fd = -1;
    ep->target_sleepers = NULL;
    ep->nested = 0;
    ep->n = 0;
    ep->cursor = 0;
    byp_epoll_index_reset(ep);
    __atomic_store_n(&ep->head.nmembers, 0, __ATOMIC_RELEASE);
    ep_mutex_unlock(&ep->lock);
    return ep;
}

/* The set object of the epoll fd @epfd, attaching one (and the epoll ops) on first use.
 * 0 or -errno as epoll_ctl would fail (EBADF, EINVAL, ENOMEM). */
int byp_epoll_set_attach(int epfd, struct byp_epoll **out)
{
    const byp_fd_ops_t *ops = byp_fd_ops(epfd);
    if (ops == &byp_epoll_ops) {
        *out = byp_fdtab[epfd].obj;
        return 0;
    }
    if (ops != NULL)
        return -EINVAL;     /* an accelerated socket is no epoll */
    byp_fd_t *e = byp_fd_get(epfd);
    if (e == NULL)
        return epfd < 0 ? -EBADF : -EINVAL;
    if (e->kind != BYP_FD_EPOLL) {
        int rc = check_epoll_fd(epfd);
        if (rc < 0)
            return rc;
    }
    int rc = 0;
    ep_mutex_lock(&byp_epoll_reg_lock);
    if (byp_fd_ops(epfd) == &byp_epoll_ops) {
        *out = e->obj;
    } else {
        struct byp_epoll *ep = set_alloc(epfd);
        if (ep == NULL) {
            rc = -ENOMEM;
        } else {
            if (e->kind != BYP_FD_EPOLL)
                byp_fd_set_kernel(epfd, BYP_FD_EPOLL);
            e->obj = ep;
            __atomic_store_n(&e->ops, &byp_epoll_ops, __ATOMIC_RELEASE);
            *out = ep;
        }
    }
    ep_mutex_unlock(&byp_epoll_reg_lock);
    return rc;
}
