/* Signal handlers, seen from the library (issue 12).
 *
 * A blocking call that spins on the stack makes no system call the kernel could interrupt:
 * a handler runs and the spin goes on.  To behave like the kernel, the library installs
 * the program's handlers behind one trampoline of its own (sigaction, signal, bsd_signal,
 * sysv_signal and siginterrupt are interposed).  The trampoline counts, per thread, the
 * handlers that ran and whether one of them lacked SA_RESTART; a wait (wait.c, fd_epoll.c)
 * compares that count with the one it started with and ends with EINTR, or carries on for a
 * restartable call (recv, send, accept, connect without a socket timeout), as signal(7)
 * says the kernel does.
 *
 * A handler that calls into the library while its thread holds the stack lock would take
 * that lock again and deadlock.  While a thread holds it (byp_sig_hold .. byp_sig_release)
 * the trampoline records the signal and returns; the handler runs when the lock is
 * released, with the signal's mask applied.  Synchronous signals (SIGSEGV, SIGBUS, ...)
 * are never deferred: returning from them would fault again.
 *
 * What the program reads back with sigaction() is what it installed, never the trampoline.
 * Handlers installed without libc (a raw rt_sigaction system call) are not seen: those
 * interrupt a wait only in its sleep phase, as before. */
#include <pthread.h>
#include <string.h>
#include <ucontext.h>

#include "byp.h"
#include "engine.h"

#define TLS __thread __attribute__((tls_model("initial-exec")))

/* The program's handler for each signal, as it installed it. */
struct user_sig {
    void *fn;           /* sa_sigaction or sa_handler; NULL when not behind the trampoline */
    int flags;          /* the program's sa_flags */
    sigset_t mask;      /* the program's sa_mask */
};
static struct user_sig table[_NSIG];

/* Per thread: handlers run (or deferred) so far, the value it had when the last handler
 * without SA_RESTART ran, the depth of stack-lock holds, and deferred signals. */
static TLS unsigned sig_seq, sig_intr_seq;
static TLS int hold_depth;
static TLS int handler_depth;                   /* handlers running on this thread's signal
                                                 * frames (not the deferred ones) */
static TLS uint64_t deferred;                   /* bit s-1 for signal s (1..64) */
static TLS siginfo_t deferred_info[64];

static int synchronous(int sig)
{
    return sig == SIGSEGV || sig == SIGBUS || sig == SIGFPE || sig == SIGILL ||
           sig == SIGTRAP || sig == SIGSYS || sig == SIGABRT;
}

static void call_user(int sig, const struct user_sig *u, siginfo_t *info, void *uc)
{
    if (u->fn == NULL || u->fn == (void *)SIG_DFL || u->fn == (void *)SIG_IGN)
        return;
    if (u->flags & SA_SIGINFO)
        ((void (*)(int, siginfo_t *, void *))u->fn)(sig, info, uc);
    else
        ((void (*)(int))u->fn)(sig);
}

static void trampoline(int sig, siginfo_t *info, void *uc)
{
    if (sig <= 0 || sig >= _NSIG)
        return;
    struct user_sig u = table[sig];
    if (u.flags & SA_RESETHAND)
        table[sig].fn = (void *)SIG_DFL;   /* the kernel reset its side already */
    unsigned seq = ++sig_seq;
    if (!(u.flags & SA_RESTART))
        sig_intr_seq = seq;
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    if (hold_depth > 0 && !synchronous(sig) && sig <= 64) {
        if (info != NULL)
            deferred_info[sig - 1] = *info;
        else
            memset(&deferred_info[sig - 1], 0, sizeof deferred_info[0]);
        deferred |= 1ull << (sig - 1);
        return;
    }
    handler_depth++;
    call_user(sig, &u, info, uc);
    handler_depth--;   /* not reached when the handler jumps out: treated as still inside */
}

int byp_sig_in_handler(void)
{
    return __atomic_load_n(&handler_depth, __ATOMIC_RELAXED) > 0;
}

unsigned byp_sig_seq(void)
{
    return __atomic_load_n(&sig_seq, __ATOMIC_RELAXED);
}

int byp_sig_check(unsigned since, int restartable)
{
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    unsigned now = sig_seq;
    if (now == since)
        return 0;
    /* sig_intr_seq - since in (0, now - since]: a handler without SA_RESTART ran. */
    unsigned intr = sig_intr_seq - since;
    if (!restartable || (intr != 0 && intr <= now - since))
        return -EINTR;
    return -ERESTART;
}

void byp_sig_hold(void)
{
    hold_depth++;
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
}

/* Runs the handlers deferred while the lock was held, lowest signal first, each with its
 * sa_mask (and itself, unless SA_NODEFER) blocked, as the kernel would. */
static void run_deferred(void)
{
    while (deferred != 0) {
        int sig = __builtin_ctzll(deferred) + 1;
        siginfo_t info = deferred_info[sig - 1];
        __atomic_signal_fence(__ATOMIC_SEQ_CST);
        deferred &= ~(1ull << (sig - 1));
        __atomic_signal_fence(__ATOMIC_SEQ_CST);
        struct user_sig u = table[sig];
        sigset_t block = u.mask, old;
        if (!(u.flags & SA_NODEFER))
            sigaddset(&block, sig);
        ucontext_t uc;
        getcontext(&uc);
        int saved = errno;
        pthread_sigmask(SIG_BLOCK, &block, &old);
        call_user(sig, &u, &info, &uc);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        errno = saved;
    }
}

void byp_sig_release(void)
{
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    if (--hold_depth == 0 && deferred != 0)
        run_deferred();
}

/* sigaction(2) with the program's handlers kept in the table and the trampoline given to
 * the kernel.  @old reports what the program installed. */
static int do_sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
    if (sig <= 0 || sig >= _NSIG || sig == SIGKILL || sig == SIGSTOP ||
        (act == NULL && old == NULL))
        return BYP_REAL(sigaction)(sig, act, old);
    struct user_sig prev = table[sig];
    struct sigaction kold;
    int rc;
    if (act == NULL) {
        rc = BYP_REAL(sigaction)(sig, NULL, &kold);
    } else if (act->sa_handler == SIG_DFL || act->sa_handler == SIG_IGN) {
        rc = BYP_REAL(sigaction)(sig, act, &kold);
        if (rc == 0)
            table[sig].fn = NULL;
    } else {
        struct user_sig u = {.fn = (act->sa_flags & SA_SIGINFO) ? (void *)act->sa_sigaction
                                                                : (void *)act->sa_handler,
                             .flags = act->sa_flags, .mask = act->sa_mask};
        struct sigaction k = *act;
        k.sa_sigaction = trampoline;
        k.sa_flags |= SA_SIGINFO;
        /* Between these two stores a delivery sees either handler: both are the program's. */
        table[sig] = u;
        rc = BYP_REAL(sigaction)(sig, &k, &kold);
        if (rc != 0)
            table[sig] = prev;
    }
    if (rc == 0 && old != NULL) {
        *old = kold;
        if (kold.sa_sigaction == trampoline && prev.fn != NULL) {
            old->sa_flags = prev.flags;
            old->sa_mask = prev.mask;
            if (prev.flags & SA_SIGINFO)
                old->sa_sigaction = (void (*)(int, siginfo_t *, void *))prev.fn;
            else
                old->sa_handler = (void (*)(int))prev.fn;
        }
    }
    return rc;
}

BYP_EXPORT int sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
    return do_sigaction(sig, act, old);
}

/* signal() with glibc's semantics: BSD (SA_RESTART, the signal blocked in its handler). */
static sighandler_t set_handler(int sig, sighandler_t fn, int flags)
{
    struct sigaction sa, old;
    if (fn == SIG_ERR || sig <= 0 || sig >= _NSIG) {
        errno = EINVAL;
        return SIG_ERR;
    }
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = fn;
    sigemptyset(&sa.sa_mask);
    if (!(flags & SA_NODEFER))
        sigaddset(&sa.sa_mask, sig);
    sa.sa_flags = flags;
    if (do_sigaction(sig, &sa, &old) < 0)
        return SIG_ERR;
    return old.sa_handler;
}

BYP_EXPORT sighandler_t signal(int sig, sighandler_t fn)
{
    return set_handler(sig, fn, SA_RESTART);
}

BYP_EXPORT sighandler_t bsd_signal(int sig, sighandler_t fn)
{
    return set_handler(sig, fn, SA_RESTART);
}

BYP_EXPORT sighandler_t sysv_signal(int sig, sighandler_t fn)
{
    return set_handler(sig, fn, SA_RESETHAND | SA_NODEFER);
}

BYP_EXPORT int siginterrupt(int sig, int flag)
{
    struct sigaction sa;
    if (do_sigaction(sig, NULL, &sa) < 0)
        return -1;
    if (flag)
        sa.sa_flags &= ~SA_RESTART;
    else
        sa.sa_flags |= SA_RESTART;
    return do_sigaction(sig, &sa, NULL);
}
