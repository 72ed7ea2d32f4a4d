/* One stack for a process and its forked children: sharing the engine's data, the member
 * slots, and noticing members that died (see family.h). */
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <link.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "family.h"
#include "log.h"
#include "proc.h"

struct member {
    pid_t pid;                  /* 0: free slot; -1: reserved for a child being forked */
    uint64_t start_ticks;       /* with the pid, names the process even after pid reuse */
    int64_t reserved_ns;        /* when a slot was reserved (CLOCK_MONOTONIC) */
};

/* A reserved slot whose child never claimed it (the fork failed inside libc) is freed
 * after this long. */
#define RESERVE_TIMEOUT_NS (5LL * 1000000000)

static int64_t mono_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* Engine globals, hence shared between members once byp_family_setup has run. */
static struct member members[BYP_FAMILY_MAX];
static int nmembers;
static uint32_t members_gen;   /* bumped at every change of members[] */

static void changed(void)
{
    __atomic_add_fetch(&members_gen, 1, __ATOMIC_RELEASE);
}
struct byp_local *byp_local;
int byp_family_shared;

/* ---- sharing the engine's writable data ---- */

struct seg_search {
    uintptr_t self;             /* an address inside the engine library */
    uintptr_t start, end;       /* its writable PT_LOAD, page-aligned */
    uintptr_t relro_start, relro_end;
};

static int find_segments(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    struct seg_search *s = arg;
    long page = sysconf(_SC_PAGESIZE);
    int mine = 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uintptr_t a = info->dlpi_addr + ph->p_vaddr;
        if (ph->p_type == PT_LOAD && s->self >= a && s->self < a + ph->p_memsz)
            mine = 1;
    }
    if (!mine)
        return 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uintptr_t a = info->dlpi_addr + ph->p_vaddr;
        if (ph->p_type == PT_LOAD && (ph->p_flags & PF_W)) {
            s->start = a & ~(uintptr_t)(page - 1);
            s->end = (a + ph->p_memsz + page - 1) & ~(uintptr_t)(page - 1);
        } else if (ph->p_type == PT_GNU_RELRO) {
            /* Only whole pages were made read-only by the loader. */
            s->relro_start = a & ~(uintptr_t)(page - 1);
            s->relro_end = (a + ph->p_memsz) & ~(uintptr_t)(page - 1);
        }
    }
    return 1;
}

static int page_zero(const char *p, size_t len)
{
    const uint64_t *w = (const uint64_t *)(const void *)p;
    for (size_t i = 0; i < len / sizeof *w; i++)
        if (w[i] != 0)
            return 0;
    return 1;
}

/* Replace the engine's private data pages by a shared mapping holding the same bytes:
 * children forked from now on write into the same globals as this process. */
static int share_data(void)
{
    struct seg_search s = {.self = (uintptr_t)&nmembers};
    dl_iterate_phdr(find_segments, &s);
    if (s.start == 0 || s.end <= s.start)
        return -ENOENT;
    size_t len = s.end - s.start;
    int fd = memfd_create("bypass-engine-data", MFD_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = 0;
    if (ftruncate(fd, (off_t)len) != 0) {
        rc = -errno;
    } else {
        /* Only the pages holding something: the file reads as zeros elsewhere.  Most of
         * the 20 MB are lwIP's pools, still zero here (lwIP starts after); copying them
         * all took ~18 ms of a short program's start. */
        long page = sysconf(_SC_PAGESIZE);
        for (size_t off = 0; off < len && rc == 0;) {
            size_t run = 0;
            while (off + run < len && !page_zero((const char *)s.start + off + run, (size_t)page))
                run += (size_t)page;
            for (size_t done = 0; done < run && rc == 0;) {
                ssize_t n = pwrite(fd, (const char *)s.start + off + done, run - done,
                                   (off_t)(off + done));
                if (n <= 0)
                    rc = n < 0 ? -errno : -EIO;
                else
                    done += (size_t)n;
            }
            off += run ? run : (size_t)page;
        }
    }
    if (rc == 0 && mmap((void *)s.start, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0)
                       == MAP_FAILED) {
        /* MAP_FIXED failing leaves the old mapping in place: nothing was lost. */
        rc = -errno;
    }
    close(fd);
    if (rc == 0 && s.relro_end > s.relro_start)
        mprotect((void *)s.relro_start, s.relro_end - s.relro_start, PROT_READ);
    return rc;
}

int byp_family_setup(void)
{
    if (byp_local == NULL) {
        void *p = mmap(NULL, sizeof *byp_local, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                       -1, 0);
        if (p == MAP_FAILED)
            return -errno;
        byp_local = p;
        byp_local->pid = getpid();
        byp_local->slot = 0;
        byp_local->forking = -1;
    }
    int rc = share_data();
    if (rc < 0)
        byp_warn("cannot share the stack with forked children (%s): they will use the kernel",
                 strerror(-rc));
    byp_family_shared = rc == 0;
    return rc;
}

/* Is the mapping holding @addr shared?  From /proc/self/maps (the 's' of "rw-s"). */
static int mapping_shared(const void *addr)
{
    FILE *f = fopen("/proc/self/maps", "re");
    if (f == NULL)
        return 0;
    char line[512];
    int shared = 0;
    uintptr_t a = (uintptr_t)addr;
    while (fgets(line, sizeof line, f) != NULL) {
        unsigned long lo, hi;
        char perms[8];
        if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) == 3 && a >= lo && a < hi) {
            shared = perms[3] == 's';
            break;
        }
    }
    fclose(f);
    return shared;
}

void byp_family_start(const void *pool_addr)
{
    if (byp_family_shared && !mapping_shared(pool_addr)) {
        byp_info("DPDK's packet memory is private (no hugepages): forked children will use "
                 "the kernel sockets underneath");
        byp_family_shared = 0;
    }
    members[0] = (struct member){.pid = getpid(), .start_ticks = byp_proc_start_ticks(getpid())};
    nmembers = 1;
    byp_local->slot = 0;
    changed();
}

int byp_family_reserve(void)
{
    if (!byp_family_shared || byp_local->slot < 0)
        return -ENOTSUP;
    for (int i = 0; i < BYP_FAMILY_MAX; i++)
        if (members[i].pid == 0) {
            members[i] = (struct member){.pid = -1, .reserved_ns = mono_ns()};
            nmembers++;
            changed();
            return i;
        }
    byp_warn("more than %d processes share the stack: a forked child uses the kernel",
             BYP_FAMILY_MAX);
    return -EMFILE;
}

void byp_family_claim(int slot)
{
    byp_local->pid = getpid();
    byp_local->slot = slot;
    members[slot].start_ticks = byp_proc_start_ticks(getpid());
    __atomic_store_n(&members[slot].pid, getpid(), __ATOMIC_RELEASE);
    changed();
}

void byp_family_cancel(int slot)
{
    if (members[slot].pid == -1) {
        members[slot].pid = 0;
        nmembers--;
        changed();
    }
}

int byp_family_leave(void)
{
    int s = byp_local->slot;
    if (s >= 0 && members[s].pid == getpid()) {
        members[s].pid = 0;
        nmembers--;
        changed();
    }
    byp_local->slot = -1;
    return nmembers;
}

static int member_alive(const struct member *m)
{
    return byp_proc_running(m->pid, m->start_ticks);
}

void byp_family_reap(void (*drop)(int slot), const struct byp_member_watch *w)
{
    pid_t me = getpid();   /* once: a system call */
    for (int i = 0; i < BYP_FAMILY_MAX; i++) {
        if (members[i].pid == 0 || members[i].pid == me)
            continue;
        /* Said at info: the sockets only that member held are closed here, which a
         * program's peers see (a reset or an end of file). */
        if (members[i].pid == -1) {
            if (mono_ns() - members[i].reserved_ns < RESERVE_TIMEOUT_NS)
                continue;
            byp_info("a forked child did not take its place in the shared stack within 5 s: "
                     "the references it would have inherited are dropped");
        } else if ((w != NULL && byp_member_watch_alive(w, members[i].pid, members[i].start_ticks)) ||
                   member_alive(&members[i])) {
            continue;
        } else {
            byp_info("process %d left the shared stack without closing its sockets; its "
                     "references are dropped", (int)members[i].pid);
        }
        drop(i);
        members[i].pid = 0;
        nmembers--;
        changed();
    }
}

uint32_t byp_family_gen(void)
{
    return __atomic_load_n(&members_gen, __ATOMIC_ACQUIRE);
}

int byp_family_list(pid_t *pids, uint64_t *starts, int max)
{
    int n = 0;
    pid_t me = getpid();
    for (int i = 0; i < BYP_FAMILY_MAX && n < max; i++) {
        pid_t pid = __atomic_load_n(&members[i].pid, __ATOMIC_ACQUIRE);
        if (pid > 0 && pid != me) {
            pids[n] = pid;
            starts[n++] = members[i].start_ticks;
        }
    }
    return n;
}

pid_t byp_family_other(void)
{
    pid_t me = getpid();
    for (int i = 0; i < BYP_FAMILY_MAX; i++)
        if (members[i].pid > 0 && members[i].pid != me && member_alive(&members[i]))
            return members[i].pid;
    return 0;
}

int byp_family_is_member(pid_t pid)
{
    for (int i = 0; i < BYP_FAMILY_MAX; i++)
        if (members[i].pid == pid)
            return 1;
    return 0;
}

int byp_family_pending(void)
{
    int n = 0;
    for (int i = 0; i < BYP_FAMILY_MAX; i++)
        n += members[i].pid == -1 && mono_ns() - members[i].reserved_ns < RESERVE_TIMEOUT_NS;
    return n;
}
