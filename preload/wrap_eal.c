/* What DPDK 22.11's rte_eal_init does to the start of every accelerated process, cut short
 * while the engine's thread is inside it (nicbackend/eal.c sets byp_eal_calibrating to its
 * thread id); every other call, and every other thread's, is libc's.
 *
 * nanosleep: it measures the TSC's rate by sleeping 100 ms when the CPU does not report it
 * (every AMD CPU, and most virtual machines): a tenth of a second added to the start of
 * every accelerated process, the largest single part of it.  Its estimate divides the
 * cycles counted by the time measured around that sleep, so a shorter sleep gives the same
 * figure (rounded to 10 MHz by DPDK either way): that thread's 100 ms sleep lasts 10 ms.
 *
 * stat64: a shared build of DPDK loads every driver of its plugin directory (Debian's:
 * 128 drivers and their libraries, 1,060 more mappings in the process), which it looks for
 * with stat().  eal.c names the drivers its backend needs with -d and publishes the
 * directory in byp_eal_hidden_dir: that thread's first stat of it says ENOENT, and the EAL
 * skips it.  The mappings cost 33 ms at every start, and at every fork and exit of a forking
 * server (PostgreSQL's backends: page tables and VMAs copied and torn down). */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "byp.h"

BYP_SHARED pid_t byp_eal_calibrating;
BYP_SHARED const char *byp_eal_hidden_dir;

#define EAL_TSC_SLEEP_NS 100000000L
#define SHORT_SLEEP_NS 10000000L

BYP_EXPORT int nanosleep(const struct timespec *req, struct timespec *rem)
{
    if (__builtin_expect(__atomic_load_n(&byp_eal_calibrating, __ATOMIC_RELAXED) != 0, 0) &&
        req != NULL && req->tv_sec == 0 && req->tv_nsec == EAL_TSC_SLEEP_NS &&
        __atomic_load_n(&byp_eal_calibrating, __ATOMIC_RELAXED) == (pid_t)syscall(SYS_gettid)) {
        struct timespec shorter = {0, SHORT_SLEEP_NS};
        return BYP_REAL(nanosleep)(&shorter, rem);
    }
    return BYP_REAL(nanosleep)(req, rem);
}

BYP_EXPORT int stat64(const char *path, struct stat64 *st)
{
    if (__builtin_expect(__atomic_load_n(&byp_eal_calibrating, __ATOMIC_RELAXED) != 0, 0) &&
        byp_eal_hidden_dir != NULL && strcmp(path, byp_eal_hidden_dir) == 0 &&
        __atomic_load_n(&byp_eal_calibrating, __ATOMIC_RELAXED) == (pid_t)syscall(SYS_gettid)) {
        /* Once: the drivers named with -d are in that directory, whose permissions the
         * EAL then checks with stat() before loading each. */
        byp_eal_hidden_dir = NULL;
        errno = ENOENT;
        return -1;
    }
    return BYP_REAL(stat64)(path, st);
}
