/* The exec family.  The new image cannot use the stack (its code and the shared stack's
 * addresses are gone), so before it replaces this one: every accelerated connection whose
 * fd survives the exec (no FD_CLOEXEC) and that no other process holds is handed over to the
 * kernel (TCP_REPAIR: the kernel socket under the fd becomes the same connection), this
 * process leaves the stack's family (its other fds close with the exec), and every fd
 * becomes the kernel's.  glibc's execl/execv/execvp... reach execve through an internal
 * alias, so each is interposed.
 *
 * posix_spawn's child never runs our code (glibc execs from a vfork-like clone) but takes
 * the fds without FD_CLOEXEC and those its file actions dup2: the connections among them go
 * to the kernel before the spawn, and this process keeps them as kernel sockets, sharing
 * them with the child as it would without the library.  The dup2 sources are remembered
 * per file-actions object as the program adds them.  system() and popen() spawn the shell
 * the same way inside glibc (not through the posix_spawn symbol): the same for them.
 *
 * fds sent over a UNIX socket (SCM_RIGHTS) may reach a process that does not run this stack
 * (node's cluster hands each connection its primary accepts to a worker it exec'd): the
 * connections among them go to the kernel before the send, as before a spawn. */
#include <alloca.h>
#include <pthread.h>
#include <stdarg.h>
#include <sys/uio.h>

#include "byp.h"
#include "engine.h"


void byp_before_exec(void)
{
    const struct byp_engine *e = byp_engine;
    if (e == NULL || e->exec_prepare == NULL)
        return;
    int saved = errno;
    e->exec_prepare();
    byp_fd_detach_all();
    /* Should the exec fail, this process carries on with the kernel alone. */
    __atomic_store_n(&byp_engine, NULL, __ATOMIC_RELEASE);
    byp_engine_forked = 1;
    errno = saved;
}

void byp_before_fd_pass(const struct msghdr *msg)
{
    const struct byp_engine *e = byp_engine;
    if (e == NULL || e->pass_prepare == NULL || msg == NULL || msg->msg_control == NULL ||
        msg->msg_controllen < CMSG_LEN(0))
        return;
    /* A copy through the kernel: a bad msg_control must end in sendmsg's EFAULT, not in a
     * fault here.  Where process_vm_readv is not allowed (a seccomp filter), the buffer is
     * read in place. */
    union {
        struct cmsghdr align;
        char buf[4096];
    } ctl;
    size_t len = msg->msg_controllen < sizeof ctl.buf ? msg->msg_controllen : sizeof ctl.buf;
    struct iovec here = {ctl.buf, len}, there = {msg->msg_control, len};
    int saved = errno;
    ssize_t got = process_vm_readv(getpid(), &here, 1, &there, 1, 0);
    int why = errno;
    errno = saved;
    if (got >= 0 ? got != (ssize_t)len : why != EPERM && why != ENOSYS)
        return;   /* not all readable: the kernel answers EFAULT */
    struct msghdr copy = {.msg_control = got >= 0 ? ctl.buf : msg->msg_control,
                          .msg_controllen = got >= 0 ? len : msg->msg_controllen};
    int fds[64], n = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&copy); c != NULL; c = CMSG_NXTHDR(&copy, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS || c->cmsg_len < CMSG_LEN(0))
            continue;
        const int *p = (const int *)CMSG_DATA(c);
        for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int) && n < 64; i++)
            if (byp_fd_ops(p[i]) != NULL)
                fds[n++] = p[i];
    }
    if (n == 0)
        return;
    e->pass_prepare(fds, n);
    errno = saved;
}

BYP_EXPORT int execve(const char *path, char *const argv[], char *const envp[])
{
    byp_before_exec();
    return BYP_REAL(execve)(path, argv, envp);
}

BYP_EXPORT int execveat(int dirfd, const char *path, char *const argv[], char *const envp[],
                        int flags)
{
    byp_before_exec();
    return BYP_REAL(execveat)(dirfd, path, argv, envp, flags);
}

BYP_EXPORT int fexecve(int fd, char *const argv[], char *const envp[])
{
    byp_before_exec();
    return BYP_REAL(fexecve)(fd, argv, envp);
}

BYP_EXPORT int execv(const char *path, char *const argv[])
{
    byp_before_exec();
    return BYP_REAL(execv)(path, argv);
}

BYP_EXPORT int execvp(const char *file, char *const argv[])
{
    byp_before_exec();
    return BYP_REAL(execvp)(file, argv);
}

BYP_EXPORT int execvpe(const char *file, char *const argv[], char *const envp[])
{
    byp_before_exec();
    return BYP_REAL(execvpe)(file, argv, envp);
}

/* The argument list of an execl* call as an argv array on the caller's stack; for execle,
 * the environment after the terminating NULL in *@envp. */
#define COLLECT_ARGS(arg, argv, envp)                                                       \
    do {                                                                                    \
        va_list ap;                                                                         \
        size_t n = 1;                                                                       \
        va_start(ap, arg);                                                                  \
        while (va_arg(ap, const char *) != NULL)                                            \
            n++;                                                                            \
        va_end(ap);                                                                         \
        argv = alloca((n + 1) * sizeof *argv);                                              \
        argv[0] = (char *)arg;                                                              \
        va_start(ap, arg);                                                                  \
        for (size_t i = 1; i <= n; i++)                                                     \
            argv[i] = va_arg(ap, char *);                                                   \
        if (envp != NULL)                                                                   \
            *(char ***)envp = va_arg(ap, char **);                                          \
        va_end(ap);                                                                         \
    } while (0)

BYP_EXPORT int execl(const char *path, const char *arg, ...)
{
    char **argv;
    COLLECT_ARGS(arg, argv, (void *)NULL);
    byp_before_exec();
    return BYP_REAL(execv)(path, argv);
}

BYP_EXPORT int execlp(const char *file, const char *arg, ...)
{
    char **argv;
    COLLECT_ARGS(arg, argv, (void *)NULL);
    byp_before_exec();
    return BYP_REAL(execvp)(file, argv);
}

BYP_EXPORT int execle(const char *path, const char *arg, ...)
{
    char **argv, **envp = NULL;
    COLLECT_ARGS(arg, argv, (void *)&envp);
    byp_before_exec();
    return BYP_REAL(execve)(path, argv, envp);
}

/* ---- posix_spawn ---- */

#define DUP2_MAX 64
static pthread_mutex_t dup2_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    const posix_spawn_file_actions_t *fa;
    int fd;
} dup2_src[DUP2_MAX];

BYP_EXPORT int posix_spawn_file_actions_adddup2(posix_spawn_file_actions_t *fa, int fd, int newfd)
{
    int rc = BYP_REAL(posix_spawn_file_actions_adddup2)(fa, fd, newfd);
    if (rc == 0 && byp_fd_ops(fd) != NULL) {
        pthread_mutex_lock(&dup2_lock);
        for (int i = 0; i < DUP2_MAX; i++)
            if (dup2_src[i].fa == NULL) {
                dup2_src[i].fa = fa;
                dup2_src[i].fd = fd;
                break;
            }
        pthread_mutex_unlock(&dup2_lock);
    }
    return rc;
}

BYP_EXPORT int posix_spawn_file_actions_destroy(posix_spawn_file_actions_t *fa)
{
    pthread_mutex_lock(&dup2_lock);
    for (int i = 0; i < DUP2_MAX; i++)
        if (dup2_src[i].fa == fa)
            dup2_src[i].fa = NULL;
    pthread_mutex_unlock(&dup2_lock);
    return BYP_REAL(posix_spawn_file_actions_destroy)(fa);
}

static void before_spawn(const posix_spawn_file_actions_t *fa)
{
    const struct byp_engine *e = byp_engine;
    if (e == NULL || e->spawn_prepare == NULL)
        return;
    int saved = errno;
    int extra[DUP2_MAX] = {0}, n = 0;
    if (fa != NULL) {
        pthread_mutex_lock(&dup2_lock);
        for (int i = 0; i < DUP2_MAX; i++)
            if (dup2_src[i].fa == fa)
                extra[n++] = dup2_src[i].fd;
        pthread_mutex_unlock(&dup2_lock);
    }
    e->spawn_prepare(extra, n);
    errno = saved;
}

BYP_EXPORT int posix_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *fa,
                           const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
    before_spawn(fa);
    return BYP_REAL(posix_spawn)(pid, path, fa, attr, argv, envp);
}

BYP_EXPORT int posix_spawnp(pid_t *pid, const char *file, const posix_spawn_file_actions_t *fa,
                            const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
    before_spawn(fa);
    return BYP_REAL(posix_spawnp)(pid, file, fa, attr, argv, envp);
}

BYP_EXPORT int system(const char *cmd)
{
    if (cmd != NULL)   /* NULL only asks whether there is a shell */
        before_spawn(NULL);
    return BYP_REAL(system)(cmd);
}

BYP_EXPORT FILE *popen(const char *cmd, const char *type)
{
    before_spawn(NULL);
    return BYP_REAL(popen)(cmd, type);
}
