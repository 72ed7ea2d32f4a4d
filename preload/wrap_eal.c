/* nanosleep.  DPDK 22.11's rte_eal_init measures the TSC's rate by sleeping 100 ms when the
 * CPU does not report it (every AMD CPU, and most virtual machines): a tenth of a second
 * added to the start of every accelerated process, the largest single part of it.  Its
 * estimate divides the cycles counted by the time measured around that sleep, so a shorter
 * sleep gives the same figure (rounded to 10 MHz by DPDK either way).  While the engine's
 * thread is inside rte_eal_init (nicbackend/eal.c sets byp_eal_calibrating to its thread
 * id), a 100 ms nanosleep of that thread sleeps 10 ms; every other call is libc's. */
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "byp.h"

BYP_SHARED pid_t byp_eal_calibrating;

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
