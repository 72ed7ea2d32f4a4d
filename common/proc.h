/* Facts about processes read from /proc, shared by the library, the engine and the tools. */
#ifndef BYP_PROC_H
#define BYP_PROC_H

#include <stdint.h>
#include <sys/types.h>

/* Field 22 of /proc/PID/stat: when the process started, in clock ticks since boot; with
 * the pid it names one process even after the pid is reused.  0 if there is no such
 * process (or /proc cannot be read). */
uint64_t byp_proc_start_ticks(pid_t pid);

/* Whether process @pid that started at @start_ticks still runs (not gone, not a pid reused
 * by another process, not a zombie waiting for its parent). */
int byp_proc_running(pid_t pid, uint64_t start_ticks);

#endif
