/* fork, vfork, and leaving: exit and _exit.
 *
 * fork: libc's fork; the child side runs byp_after_fork_child through pthread_atfork
 * (registered at init), which also covers forks inside libc such as daemon().
 *
 * vfork: a vfork child shares the parent's memory and stack until it execs or exits, which
 * an interposing library cannot live with (its state, later its stack lock and rings, would
 * be the parent's).  Like Onload's default, vfork becomes fork and the parent is held until
 * the child has exec'd or exited, so the program sees vfork's ordering.  A conforming vfork
 * child only execs or _exits, and behaves the same.
 *
 * exit: libbypass.so's exit handler, registered once the engine has started, runs after the
 * handlers the program registered since and before those it registered earlier (socat's
 * shut its sockets down) and before libc flushes stdio streams.  It hands this process's
 * connections over to the kernel (engine.h, leave), leaves the stack and makes every fd
 * the kernel's: what runs later writes on kernel sockets, not on a stack whose lock the
 * leave keeps (they hung there for good) or on an unconnected socket (EPIPE, the data lost).
 *
 * _exit and _Exit run no exit handler, but what send() took must still leave and the peer
 * must see the end, as the kernel does when it closes a dying process's sockets: the same
 * leave, unless called from a signal handler (what the signal interrupted, malloc, may hold
 * a lock the leave needs): then, as for a process killed, the family's progress thread
 * drops what the process held, or, alone, nothing is done. */
#include "byp.h"
#include "engine.h"

void byp_leave_at_exit(void)
{
    const struct byp_engine *e = __atomic_load_n(&byp_engine, __ATOMIC_ACQUIRE);
    if (e == NULL)
        return;   /* a child that could not share the stack, or after exec_prepare */
    int saved = errno;
    e->leave();
    byp_fd_detach_all();
    __atomic_store_n(&byp_engine, NULL, __ATOMIC_RELEASE);
    byp_engine_forked = 1;   /* no engine again in this process */
    errno = saved;
}

BYP_EXPORT void _exit(int status)
{
    if (!byp_sig_in_handler())
        byp_leave_at_exit();
    BYP_REAL(_exit)(status);
    __builtin_unreachable();
}

BYP_EXPORT void _Exit(int status)
{
    if (!byp_sig_in_handler())
        byp_leave_at_exit();
    BYP_REAL(_Exit)(status);
    __builtin_unreachable();
}

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
