/* The exec family.  The new image cannot use the stack (its code and the shared stack's
 * addresses are gone), so before it replaces this one: every accelerated connection whose
 * fd survives the exec (no FD_CLOEXEC) and that no other process holds is handed over to the
 * kernel (TCP_REPAIR: the kernel socket under the fd becomes the same connection), this
 * process leaves the stack's family (its other fds close with the exec), and every fd
 * becomes the kernel's.  glibc's execl/execv/execvp... reach execve through an internal
 * alias, so each is interposed.  posix_spawn is not: its child never runs our code. */
#include <alloca.h>
#include <stdarg.h>

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
