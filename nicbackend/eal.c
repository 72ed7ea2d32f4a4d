/* Starting DPDK's EAL inside the host program, lazily and without taking it over.
 *
 * What DPDK would otherwise do to its host, and what we do about it:
 * - it logs to stdout (and syslog): a cookie FILE installed with rte_openlog_stream before
 *   rte_eal_init sends every DPDK message through byp_log (stderr, "bypass:" prefix);
 * - it pins the calling thread to the main lcore's CPU: the affinity is saved before and
 *   restored after;
 * - it keeps files in /var/run/dpdk and hugepage files shared between processes:
 *   --in-memory (or --no-shconf with --no-huge) and a per-process --file-prefix;
 * - it scans the PCI bus and starts a telemetry socket: --no-pci (unless a PCI NIC is
 *   configured: backend pci), --no-telemetry;
 * - it picks physical addresses (IOVA as PA, reading /proc/self/pagemap) when it runs as
 *   root: --iova-mode=va, which af_xdp and the vdevs need no more than;
 * - it fails hard without free hugepages: we look first and fall back to --no-huge;
 * - a device that fails its probe during rte_eal_init leaves the EAL half started and
 *   rte_eal_init cannot be called again: no --vdev here, devices are hot-plugged later
 *   (rte_dev_probe), where a failure is an ordinary error return;
 * - rte_eal_init itself returns -1 with rte_errno on the errors we met (bad argument,
 *   no memory); it prints usage on stdout for a bad argument, so extra arguments from
 *   the config are the one way left to make it print there. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_log.h>

#include "backend.h"
#include "log.h"

/* Below this much free hugepage memory, run on ordinary pages (--no-huge).  The engine's
 * pool is about 120 MB (32,768 mbufs + af_xdp's 16,384-buffer fill ring, 2.4 KB each). */
#define HUGE_MIN_MB 256
/* Memory given to the EAL with --no-huge (-m, in MB). */
#define NO_HUGE_MB 256
#define MAX_ARGS 64

/* libbypass.so's (preload/wrap_time.c): the thread inside rte_eal_init, whose 100 ms TSC
 * calibration sleep is shortened.  Absent when the engine runs without libbypass.so. */
extern pid_t byp_eal_calibrating __attribute__((weak));
/* libbypass.so's (wrap_eal.c): a directory that thread's stat() does not find. */
extern const char *byp_eal_hidden_dir __attribute__((weak));
/* libbypass.so's (wrap_eal.c): one past the highest CPU number possible here; that
 * thread's access() of a higher one's sysfs directory says ENOENT without a system call. */
extern unsigned byp_eal_cpu_limit __attribute__((weak));

/* One past the highest number in /sys/devices/system/cpu/possible ("0-1", "0-3,8-11"); 0
 * when it cannot be read (the probe then asks the kernel for every CPU). */
static unsigned cpu_limit(void)
{
    char buf[256];
    FILE *f = fopen("/sys/devices/system/cpu/possible", "re");
    if (f == NULL)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    unsigned long top = 0;
    int seen = 0;
    for (char *p = buf; *p != '\0';) {
        if (*p >= '0' && *p <= '9') {
            unsigned long v = strtoul(p, &p, 10);
            if (v + 1 > top)
                top = v + 1;
            seen = 1;
        } else {
            p++;
        }
    }
    return seen && top < 1u << 20 ? (unsigned)top : 0;
}

static struct byp_eal_info info;
static int first_error;             /* -errno of a failed start, final */

/* DPDK log levels (RTE_LOG_ERR=4 .. RTE_LOG_DEBUG=8) to ours. */
static int from_rte_level(uint32_t lvl)
{
    if (lvl <= RTE_LOG_ERR)
        return BYP_LOG_ERROR;
    if (lvl == RTE_LOG_WARNING)
        return BYP_LOG_WARN;
    if (lvl <= RTE_LOG_INFO)
        return BYP_LOG_INFO;
    return BYP_LOG_DEBUG;
}

/* Ours to DPDK's, for --log-level: DPDK drops what we would drop anyway. */
static int to_rte_level(int lvl)
{
    switch (lvl) {
    case BYP_LOG_ERROR: return RTE_LOG_ERR;
    case BYP_LOG_WARN: return RTE_LOG_WARNING;
    case BYP_LOG_INFO: return RTE_LOG_INFO;
    default: return RTE_LOG_DEBUG;
    }
}

/* Write function of the cookie stream: one DPDK message (rte_vlog flushes after each). */
static ssize_t log_write(void *cookie, const char *buf, size_t len)
{
    (void)cookie;
    size_t n = len;

    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        n--;
    if (n > 0)
        byp_log(from_rte_level(rte_log_cur_msg_loglevel()), "dpdk: %.*s", (int)n, buf);
    return (ssize_t)len;
}

static int install_log_stream(void)
{
    static FILE *stream;
    cookie_io_functions_t io = { .write = log_write };

    if (!stream) {
        stream = fopencookie(NULL, "w", io);
        if (!stream)
            return -errno;
        setvbuf(stream, NULL, _IOFBF, 4096);
    }
    return rte_openlog_stream(stream) == 0 ? 0 : -EIO;
}

/* Free memory in default-size hugepages, in MB, from /proc/meminfo; 0 if none. */
static long huge_free_mb(void)
{
    FILE *f = fopen("/proc/meminfo", "re");
    char line[128];
    long free_pages = 0, size_kb = 0;

    if (!f)
        return 0;
    while (fgets(line, sizeof(line), f)) {
        sscanf(line, "HugePages_Free: %ld", &free_pages);
        sscanf(line, "Hugepagesize: %ld kB", &size_kb);
    }
    fclose(f);
    return free_pages * size_kb / 1024;
}

/* The first CPU the calling thread may run on: the main lcore, so that EAL's pinning
 * stays inside what the host allowed (a cpuset cgroup would refuse other CPUs). */
static int first_allowed_cpu(const cpu_set_t *set)
{
    for (int c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, set))
            return c;
    return 0;
}

static double now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* The drivers mempool ring (the pool's default ops) and the vdev bus, then @drivers
 * (struct byp_nic_ops), as -d arguments into @argv from @argc, their paths in @paths;
 * publishes DPDK's plugin directory for libbypass.so to hide from rte_eal_init.  Leaves
 * argv as it is (every driver loaded, as DPDK does) with @drivers NULL, without the
 * directory or libbypass.so, or when a library is missing.  Returns the new argc. */
#define MAX_DRIVERS 8
static int driver_args(const char *drivers, char **argv, int argc,
                       char paths[MAX_DRIVERS][PATH_MAX])
{
#ifdef BYP_DPDK_PMD_DIR
    if (drivers == NULL || &byp_eal_hidden_dir == NULL)
        return argc;
    char list[256];
    int n = snprintf(list, sizeof list, "mempool_ring bus_vdev %s", drivers);
    if (n < 0 || (size_t)n >= sizeof list)
        return argc;
    int k = 0;
    for (char *save = NULL, *name = strtok_r(list, " ", &save); name != NULL;
         name = strtok_r(NULL, " ", &save)) {
        struct stat st;
        if (k == MAX_DRIVERS ||
            snprintf(paths[k], PATH_MAX, "%s/librte_%s%s", BYP_DPDK_PMD_DIR, name,
                     BYP_DPDK_PMD_SUFFIX) >= PATH_MAX ||
            stat(paths[k], &st) != 0)
            return argc;   /* not where the build found it: every driver */
        k++;
    }
    for (int i = 0; i < k; i++) {
        argv[argc++] = "-d";
        argv[argc++] = paths[i];
    }
    byp_eal_hidden_dir = BYP_DPDK_PMD_DIR;
#else
    (void)drivers;
    (void)argv;
    (void)paths;
#endif
    return argc;
}

int byp_eal_start(int nb_extra, char *const *extra, int force_no_huge, unsigned flags,
                  const char *drivers)
{
    char prefix[64], lcores[32], mem[16], loglevel[32];
    static char driver_paths[MAX_DRIVERS][PATH_MAX];
    char *argv[MAX_ARGS];
    int argc = 0, ret, have_affinity;
    cpu_set_t saved;
    long huge_mb;
    double t0;

    if (info.started)
        return 0;
    if (first_error)
        return first_error;
    if (nb_extra < 0 || nb_extra > MAX_ARGS - 16 - 2 * MAX_DRIVERS)
        return -EINVAL;

    ret = install_log_stream();
    if (ret < 0)
        byp_warn("dpdk: cannot route DPDK's log through bypass (%s)", strerror(-ret));

    have_affinity = pthread_getaffinity_np(pthread_self(), sizeof(saved), &saved) == 0;
    if (!have_affinity)
        CPU_ZERO(&saved);

    snprintf(prefix, sizeof(prefix), "--file-prefix=bypass%d", (int)getpid());
    snprintf(lcores, sizeof(lcores), "%d", have_affinity ? first_allowed_cpu(&saved) : 0);
    snprintf(loglevel, sizeof(loglevel), "--log-level=%d", to_rte_level(byp_log_level));
    argv[argc++] = "bypass";
    argv[argc++] = "-l";
    argv[argc++] = lcores;
    argv[argc++] = prefix;
    if (!(flags & BYP_EAL_PCI)) {
        argv[argc++] = "--no-pci";   /* no PCI scan: nothing of the host's is touched */
    } else {
        /* The bus is scanned, but an allow-list naming the host bridge (never a NIC DPDK
         * drives) keeps rte_eal_init from probing every DPDK-bound NIC of the host; the
         * configured one is hot-plugged by byp_nic_open like every device. */
        argv[argc++] = "-a";
        argv[argc++] = "0000:00:00.0";
    }
    argv[argc++] = "--no-telemetry";
    argv[argc++] = "--iova-mode=va";
    argv[argc++] = loglevel;

    huge_mb = huge_free_mb();
    info.no_huge = force_no_huge || huge_mb < HUGE_MIN_MB;
    if (info.no_huge) {
        /* EAL refuses --in-memory with --no-huge; --no-shconf gives the same "no files". */
        snprintf(mem, sizeof(mem), "%d", NO_HUGE_MB);
        argv[argc++] = "--no-huge";
        argv[argc++] = "--no-shconf";
        argv[argc++] = "-m";
        argv[argc++] = mem;
        if (!force_no_huge)
            byp_info("dpdk: %ld MB of free hugepages (< %d): starting with --no-huge",
                     huge_mb, HUGE_MIN_MB);
    } else {
        argv[argc++] = "--in-memory";
        if (flags & BYP_EAL_SHARE_MEM)
            argv[argc++] = "--single-file-segments";
    }
    argc = driver_args(drivers, argv, argc, driver_paths);
    for (int i = 0; i < nb_extra; i++)
        argv[argc++] = extra[i];
    argv[argc] = NULL;

    /* The EAL's threads (interrupts, telemetry) inherit this thread's signal mask: with
     * the standard signals blocked they never run the program's handlers.  Otherwise a signal the
     * program blocks outside sigsuspend() (nginx's master and its SIGCHLD) was delivered
     * to one of them: the handler ran there, and sigsuspend() in the main thread waited
     * for ever. */
    sigset_t all, old_mask;
    sigfillset(&all);
    /* Except the real-time signals: DPDK's own drivers take one (net_tap's receive trigger)
     * and its interrupt thread must stay able to receive it, or it interrupts the program's
     * calls instead (redis-cli's connect failed with "poll(2): Interrupted system call"). */
    for (int s = SIGRTMIN; s <= SIGRTMAX; s++)
        sigdelset(&all, s);
    pthread_sigmask(SIG_SETMASK, &all, &old_mask);
    t0 = now_ms();
    if (&byp_eal_cpu_limit != NULL)
        byp_eal_cpu_limit = cpu_limit();
    if (&byp_eal_calibrating != NULL)
        __atomic_store_n(&byp_eal_calibrating, (pid_t)syscall(SYS_gettid), __ATOMIC_RELAXED);
    ret = rte_eal_init(argc, argv);
    if (&byp_eal_calibrating != NULL)
        __atomic_store_n(&byp_eal_calibrating, 0, __ATOMIC_RELAXED);
    if (&byp_eal_hidden_dir != NULL)
        byp_eal_hidden_dir = NULL;
    info.init_ms = now_ms() - t0;
    pthread_sigmask(SIG_SETMASK, &old_mask, NULL);

    if (have_affinity)
        info.affinity_restored =
            pthread_setaffinity_np(pthread_self(), sizeof(saved), &saved) == 0;

    if (ret < 0) {
        int err = rte_errno;

        switch (err) {
        case ENOMEM: first_error = -ENOMEM; break;
        case EACCES: case EPERM: first_error = -EPERM; break;
        case EINVAL: first_error = -EINVAL; break;
        case EALREADY: first_error = -EALREADY; break;
        default: first_error = -EIO; break;
        }
        byp_err("dpdk: rte_eal_init failed: %s (rte_errno %d); DPDK cannot be retried "
                "in this process", rte_strerror(err), err);
        return first_error;
    }
    info.started = 1;
    byp_info("dpdk: EAL up in %.1f ms (%s)", info.init_ms,
             info.no_huge ? "--no-huge" : "hugepages, --in-memory");
    return 0;
}

const struct byp_eal_info *byp_eal_info(void)
{
    return &info;
}

/* net_tap asks for a real-time signal on its queues' fds (O_ASYNC, F_SETSIG), owned by the
 * process: the kernel then gives it to the program's main thread, whose poll() or
 * epoll_wait() ends with EINTR though the program installed no handler (redis-cli failed
 * to connect over the pci backend with net_tap).  The signal only bumps the PMD's receive
 * trigger; any thread may take it.  So each such fd is handed to DPDK's interrupt thread
 * (F_SETOWN_EX, F_OWNER_TID), whose mask leaves the real-time signals open. */
void byp_eal_route_async_signals(void)
{
    pid_t tid = 0;
    DIR *d = opendir("/proc/self/task");
    if (d == NULL)
        return;
    struct dirent *e;
    while (tid == 0 && (e = readdir(d)) != NULL) {
        char path[64], comm[32] = "";
        snprintf(path, sizeof path, "/proc/self/task/%.20s/comm", e->d_name);
        FILE *f = fopen(path, "re");
        if (f == NULL)
            continue;
        if (fgets(comm, sizeof comm, f) != NULL && strncmp(comm, "eal-intr-thread", 15) == 0)
            tid = (pid_t)atoi(e->d_name);
        fclose(f);
    }
    closedir(d);
    if (tid == 0)
        return;
    d = opendir("/proc/self/fd");
    if (d == NULL)
        return;
    int moved = 0;
    while ((e = readdir(d)) != NULL) {
        int fd = atoi(e->d_name);
        if (fd <= 2 || fd == dirfd(d))
            continue;
        int fl = fcntl(fd, F_GETFL);
        struct f_owner_ex own;
        if (fl < 0 || !(fl & O_ASYNC) || fcntl(fd, F_GETOWN_EX, &own) != 0 ||
            own.type != F_OWNER_PID || own.pid != getpid())
            continue;
        char path[64], target[64];
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        ssize_t n = readlink(path, target, sizeof target - 1);
        if (n <= 0 || (target[n] = '\0', strcmp(target, "/dev/net/tun") != 0))
            continue;
        own = (struct f_owner_ex){.type = F_OWNER_TID, .pid = tid};
        if (fcntl(fd, F_SETOWN_EX, &own) == 0)
            moved++;
    }
    closedir(d);
    if (moved > 0)
        byp_dbg("net_tap's receive signal goes to DPDK's interrupt thread (%d fds)", moved);
}
