#include "proc.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Field 22 of /proc/PID/stat, and the state (field 3) into @state when not NULL.
 * Straight to the kernel: read and close are the library's wrappers, and the number open
 * returns may be one another thread is closing this instant, whose table entry still says
 * so (a read there answered EBADF, and a live process read as gone: its sockets were
 * closed for it). */
static uint64_t read_stat(pid_t pid, char *state)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = syscall(SYS_pread64, fd, buf, sizeof buf - 1, (off_t)0);
    syscall(SYS_close, fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    char *p = strrchr(buf, ')');   /* the command name may hold spaces and parentheses */
    if (p == NULL)
        return 0;
    p++;
    if (state != NULL)
        *state = p[0] == ' ' ? p[1] : '?';
    for (int field = 3; field < 22 && p != NULL; field++)   /* ends before field 22 */
        p = strchr(p + 1, ' ');
    return p != NULL ? strtoull(p + 1, NULL, 10) : 0;
}

/* This process's start, read once per process: the periodic checks (the stack's owner
 * records name this process most of the time) open no file then.  A file opened takes the
 * lowest free number, which the program may have just closed and expect back (close(0);
 * open(...) as stdin), or race on. */
static pid_t self_pid;
static uint64_t self_ticks;

uint64_t byp_proc_start_ticks(pid_t pid)
{
    pid_t me = getpid();
    if (pid == me && __atomic_load_n(&self_pid, __ATOMIC_ACQUIRE) == me)
        return __atomic_load_n(&self_ticks, __ATOMIC_RELAXED);
    uint64_t t = read_stat(pid, NULL);
    if (pid == me && t != 0) {
        __atomic_store_n(&self_ticks, t, __ATOMIC_RELAXED);
        __atomic_store_n(&self_pid, me, __ATOMIC_RELEASE);
    }
    return t;
}

int byp_proc_running(pid_t pid, uint64_t start_ticks)
{
    if (pid == getpid())
        return start_ticks != 0 && start_ticks == byp_proc_start_ticks(pid);
    char state = '?';
    uint64_t t = read_stat(pid, &state);
    return t != 0 && t == start_ticks && state != 'Z' && state != 'X';
}
