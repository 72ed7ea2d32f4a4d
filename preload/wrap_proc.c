/* fork and vfork.
 *
 * fork: libc's fork; the child side runs byp_after_fork_child through pthread_atfork
 * (registered at init), which also covers forks inside libc such as daemon().
 *
 * vfork: a vfork child shares the parent's memory and stack until it execs or exits, which
 * an interposing library cannot live with (its state, later its stack lock and rings, would
 * be the parent's).  Like Onload's default, vfork becomes fork and the parent is held until
 * the child has exec'd or exited, so the program sees vfork's ordering.  A conforming vfork
 * child only execs or _exits, and behaves the same. */
#include "byp.h"
#include "engine.h"

BYP_EXPORT pid_t fork(void)
{
    pid_t pid = BYP_REAL(fork)();
    if (pid < 0 && byp_engine != NULL && byp_engine->fork_failed != NULL) {
        int saved = errno;
        byp_engine->fork_failed();
        errno = saved;
    }
    return pid;
}

BYP_EXPORT pid_t vfork(void)
{
    int saved = errno;
    int p[2];
    /* The child keeps the write end until exec (close-on-exec) or exit: EOF on the read end
     * releases the parent. */
    if (pipe2(p, O_CLOEXEC) != 0) {
        errno = saved;
        return BYP_REAL(fork)();
    }
    pid_t pid = fork();
    if (pid == 0) {
        BYP_REAL(close)(p[0]);
        errno = saved;
        return 0;
    }
    int fork_errno = errno;
    BYP_REAL(close)(p[1]);
    if (pid > 0) {
        char c;
        while (BYP_REAL(read)(p[0], &c, 1) < 0 && errno == EINTR)
            ;
    }
    BYP_REAL(close)(p[0]);
    errno = pid < 0 ? fork_errno : saved;
    return pid;
}
