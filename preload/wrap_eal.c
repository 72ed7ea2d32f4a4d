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
 * server (PostgreSQL's backends: page tables and VMAs copied and torn down).
 *
 * access: the EAL looks for every CPU it could drive (RTE_MAX_LCORE, 1,024 in Debian's
 * build) in sysfs, and for each in every NUMA node's directory: 5,000 system calls, each a
 * sysfs path walk.  eal.c publishes in byp_eal_cpu_limit one past the highest CPU number
 * the kernel could ever give (/sys/devices/system/cpu/possible): for a CPU at or past it,
 * that thread's access() says ENOENT at once, as the kernel would (no such directory). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "byp.h"

BYP_SHARED pid_t byp_eal_calibrating;
BYP_SHARED const char *byp_eal_hidden_dir;
BYP_SHARED unsigned byp_eal_cpu_limit;

/* Whether some thread is inside rte_eal_init (one load: every call of these wrappers asks),
 * and then whether it is this one (a system call: asked only of a call the start makes). */
static inline int eal_starting(void)
{
    return __builtin_expect(__atomic_load_n(&byp_eal_calibrating, __ATOMIC_RELAXED) != 0, 0);
}

static int eal_thread(void)
{
    return __atomic_load_n(&byp_eal_calibrating, __ATOMIC_RELAXED) == (pid_t)syscall(SYS_gettid);
}

#define EAL_TSC_SLEEP_NS 100000000L
#define SHORT_SLEEP_NS 10000000L

BYP_EXPORT int nanosleep(const struct timespec *req, struct timespec *rem)
{
    if (eal_starting() && req != NULL && req->tv_sec == 0 && req->tv_nsec == EAL_TSC_SLEEP_NS &&
        eal_thread()) {
        struct timespec shorter = {0, SHORT_SLEEP_NS};
        return BYP_REAL(nanosleep)(&shorter, rem);
    }
    return BYP_REAL(nanosleep)(req, rem);
}

BYP_EXPORT int stat64(const char *path, struct stat64 *st)
{
    if (eal_starting() && byp_eal_hidden_dir != NULL && strcmp(path, byp_eal_hidden_dir) == 0 &&
        eal_thread()) {
        /* Once: the drivers named with -d are in that directory, whose permissions the
         * EAL then checks with stat() before loading each. */
        byp_eal_hidden_dir = NULL;
        errno = ENOENT;
        return -1;
    }
    return BYP_REAL(stat64)(path, st);
}

/* The CPU number a sysfs path of the EAL's CPU probe names (cpu/cpuN/topology/core_id,
 * node/nodeM/cpuN), or -1. */
static long eal_probe_cpu(const char *path)
{
    static const char sys[] = "/sys/devices/system/";
    if (strncmp(path, sys, sizeof sys - 1) != 0)
        return -1;
    path += sizeof sys - 1;
    const char *cpu;
    if (strncmp(path, "cpu/cpu", 7) == 0) {
        cpu = path + 7;
    } else if (strncmp(path, "node/node", 9) == 0) {
        cpu = strchr(path + 9, '/');
        if (cpu == NULL || strncmp(cpu, "/cpu", 4) != 0)
            return -1;
        cpu += 4;
    } else {
        return -1;
    }
    if (*cpu < '0' || *cpu > '9')
        return -1;
    char *end;
    long n = strtol(cpu, &end, 10);
    return *end == '/' || *end == '\0' ? n : -1;
}

BYP_EXPORT int access(const char *path, int mode)
{
    if (eal_starting() && byp_eal_cpu_limit != 0 && eal_probe_cpu(path) >= (long)byp_eal_cpu_limit &&
        eal_thread()) {
        errno = ENOENT;
        return -1;
    }
    return BYP_REAL(access)(path, mode);
}
