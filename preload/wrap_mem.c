/* munmap.  DPDK's memif tears a connection down in its interrupt thread when the peer goes
 * away and unmaps the shared regions at the end.  A burst of ours on another thread may be
 * copying into those regions right then: it checked that the link was up just before, and
 * was preempted mid-copy (by that very interrupt thread, on a 2-CPU machine) while the
 * teardown ran; it then faulted on the unmapped page and killed the host program.  A memif
 * burst counts itself in byp_nic_bursting (nicbackend/memif.c), and munmap waits for the
 * bursts in flight to end before unmapping; any burst that starts later sees the link down
 * and touches nothing.  The wait is bounded (a signal handler that unmaps in the middle of
 * its own thread's burst goes on after 10 ms).  The unmapping is the raw system call: no
 * lookup, so it works before the library's constructor too (jemalloc unmaps that early). */
#include <sched.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#include "byp.h"

BYP_SHARED int byp_nic_bursting;

BYP_EXPORT int munmap(void *addr, size_t len)
{
    if (__builtin_expect(__atomic_load_n(&byp_nic_bursting, __ATOMIC_SEQ_CST) > 0, 0)) {
        struct timespec t0, t;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        while (__atomic_load_n(&byp_nic_bursting, __ATOMIC_SEQ_CST) > 0) {
            sched_yield();
            clock_gettime(CLOCK_MONOTONIC, &t);
            if ((t.tv_sec - t0.tv_sec) * 1000000000L + (t.tv_nsec - t0.tv_nsec) > 10000000L)
                break;
        }
    }
    return (int)syscall(SYS_munmap, addr, len);
}
