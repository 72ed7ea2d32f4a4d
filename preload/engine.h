/* The boundary between libbypass.so (this folder: interposition, fd table, config) and
 * libbypass-engine.so (lwIP over DPDK: stack/, nicbackend/, the accelerated fd kinds).
 *
 * The engine is a separate library loaded with dlopen on the first socket a rule
 * accelerates, so that a program that never accelerates anything (a shell, a helper started
 * under LD_PRELOAD) never loads DPDK: linking it costs ~4 ms per process start here.
 * The engine links against the byp_* symbols libbypass.so exports (the fd table, the
 * byp_real_* pointers, the configuration, the wait helpers below). */
#ifndef BYP_ENGINE_H
#define BYP_ENGINE_H

#include <netinet/in.h>

#include "sysheaders.h"

#define BYP_ENGINE_ABI 10
/* Entries in the change log (struct byp_engine changes); a power of two. */
#define BYP_CHANGE_LOG 4096
/* Processes that share one stack (a process and its forked children), at most. */
#define BYP_FAMILY_MAX 256
/* Name of the engine library, looked up next to libbypass.so, then by the loader's path;
 * BYPASS_ENGINE overrides (a path). */
#define BYP_ENGINE_SONAME "libbypass-engine.so"
/* The engine's one exported symbol: const struct byp_engine *byp_engine_entry(void). */
#define BYP_ENGINE_ENTRY "byp_engine_entry"

/* Returned by the take-over calls when the engine declines a socket (no route through the
 * accelerated interface, say): the caller carries on with the kernel socket as it is. */
#define BYP_ENGINE_DECLINE 1

struct byp_engine {
    int abi;                    /* BYP_ENGINE_ABI */
    /* Bring the accelerated path up: DPDK, the NIC, lwIP, the progress thread.  Called once;
     * 0, or -errno with the cause (one line, no "bypass:" prefix) written to @why. */
    int (*start)(char *why, size_t whylen);
    /* Make the kernel TCP socket @fd, bound to @local, an accelerated listener (the kernel
     * socket listens too, as the second path).  0 when done (the fd has the accelerated
     * TCP ops); BYP_ENGINE_DECLINE; or -errno as listen() would fail. */
    int (*tcp_listen)(int fd, const struct sockaddr_in *local, int backlog);
    /* Connect the kernel TCP socket @fd to @remote through the stack.  0 (connected),
     * -EINPROGRESS (non-blocking), -errno as connect() would fail, or BYP_ENGINE_DECLINE. */
    int (*tcp_connect)(int fd, const struct sockaddr_in *remote);
    /* Run the stack once (rx burst, timers, tx); returns how many events it produced. */
    int (*progress)(void);
    /* What every thread sleeping on the stack waits on (poll/epoll, POLLIN): an epoll fd
     * over this process's wake group's eventfd, which the engine writes for a readiness
     * change no wake target reaches (stack/wake.h).  -1 before start. */
    int wake_fd;
    /* Consume the engine's signal after waking on wake_fd (never blocks). */
    void (*wake_drain)(void);
    /* The backend's receive fd while sleepers take the frames (the stack has one member),
     * else -1 (the progress thread takes them): a sleeper waits on it too (an epoll set
     * with EPOLLEXCLUSIVE, so that a frame wakes one set) and, woken by it, calls
     * frames_drain, which runs the stack: one wake-up per packet, not two. */
    const int *frames_fd;
    void (*frames_drain)(void);
    /* What a poll(2) sleeper (byp_wait) polls instead of frames_fd while it is >= 0: a set
     * that frames reach only when no epoll set takes them (stack/wake.c). */
    int (*frames_poll_fd)(void);
    /* Wake slots: eventfds of the family's (one thread at a time in each, its own: nobody
     * else can take its wake-up), made at start; slot_fds, how many, and the mask of those
     * taken (shared by the family, changed with atomics).  A thread in a slot publishes it
     * in the sleep words of the sockets it waits for (byp_wait_on) or in its wake group's
     * mask (byp_group_slots, for what no word names), and the engine writes the slot's
     * eventfd for their changes.  A slot sleeper watching the frames also watches
     * kpath_fd() (the kernel UDP sockets' set, -1 when none) and calls kpath_wake, then
     * runs the stack, when it is readable.  seat_left: the last thread left the frames
     * seats while others sleep blind to the frames on their sockets' words: the progress
     * thread watches the frames until a sleeper sits down again. */
    const int *slot_fds;
    int nslots;
    unsigned *slots_busy;
    int (*kpath_fd)(void);
    void (*kpath_wake)(void);
    void (*seat_left)(void);
    /* A thread ends its spin and goes to sleep where no frame wakes it (frames_fd < 0: the
     * progress thread takes the frames).  While it ran the stack, the progress thread left
     * the frames to it; now it must watch them again, at once rather than at its next
     * interval (nginx's workers: a connection per request waited up to 1 ms for each of
     * its handshake and its request). */
    void (*spin_over)(void);
    /* Wake targets: one per epoll set with accelerated members, so that a readiness change
     * wakes the sets holding the socket, not every sleeper of the process.
     * target_open: a target (index >= 0), or -errno (none free: the set is woken by its
     * group); target_close: give it back; target_fd: its semaphore eventfd, which the set
     * holds (take one count per wake-up: read 8 bytes); target_sleepers: the count of
     * threads sleeping on the set, kept by the sleepers; watch: accelerated @fd went into
     * (@on 1) or out of (0) the set of target @t.  Never with a set's lock held. */
    int (*target_open)(void);
    void (*target_close)(int t);
    int (*target_fd)(int t);
    int *(*target_sleepers)(int t);
    void (*watch)(int fd, int t, int on);
    /* Bumped (release) on every readiness change of any accelerated socket: a reader that
     * saw no ready socket and finds the same value (acquire) has nothing new to look at. */
    const uint64_t *events;
    /* The socket object of each of those changes: entry e % BYP_CHANGE_LOG names the one
     * that moved *events from e to e + 1 (NULL: any may have changed).  Valid for a reader
     * while *events, read again after the entries, is at most e + BYP_CHANGE_LOG. */
    const void *const *changes;
    /* fork, in three steps (atfork handlers and the fork wrapper): before it, reserve the
     * child's place in the stack's family with a reference for every accelerated fd it
     * inherits; in the child, take that place (0), or -errno when the child cannot share
     * the stack (it then keeps only the kernel sockets underneath); when fork failed, give
     * the place back. */
    void (*fork_prepare)(void);
    int (*fork_child)(void);
    void (*fork_failed)(void);
    /* Before exec: hand every accelerated connection that survives the exec (no
     * FD_CLOEXEC) and that no other process holds over to the kernel (TCP_REPAIR), then
     * leave the stack's family.  The caller then treats every fd as the kernel's. */
    void (*exec_prepare)(void);
    /* At exit: this process leaves the stack's family (its references go; the last member
     * delivers what closed connections still queue, then closes the port and keeps the
     * stack's lock for good).  The caller then treats every fd as the kernel's, for the
     * program's exit handlers that run after this one. */
    void (*leave)(void);
    /* Before posix_spawn: the connections the spawned program inherits (no FD_CLOEXEC, or
     * among @extra, the file actions' dup2 sources) that no other process holds go to the
     * kernel, and their fds become kernel fds here too. */
    void (*spawn_prepare)(const int *extra, int nextra);
    /* Before sendmsg passes @fds to another process (SCM_RIGHTS): the accelerated
     * connections among them that no other process holds go to the kernel, and their fds
     * become kernel fds here too; the receiver gets the kernel's connection. */
    void (*pass_prepare)(const int *fds, int nfds);
    /* UDP (stack/fd_udp.h).  The kernel socket has already done the call (its answer is the
     * program's); these make it accelerated.  0 (the fd has the accelerated UDP ops),
     * BYP_ENGINE_DECLINE (it stays the kernel's), or -errno.
     * udp_bind: @fd was bound to @local (the port the kernel chose).
     * udp_connect: @fd was connected to @remote.
     * udp_join: @fd, bound, joined @group (from @source, 0 for any source). */
    int (*udp_bind)(int fd, const struct sockaddr_in *local);
    int (*udp_connect)(int fd, const struct sockaddr_in *remote);
    int (*udp_join)(int fd, in_addr_t group, in_addr_t source);
};

/* Threads sleeping in byp_wait (wait.c); the engine writes wake_fd only when nonzero.  The
 * engine points it at its own counter, shared by the processes that share the stack. */
extern BYP_SHARED int *byp_sleepers;
/* ... of those, the ones no wake target reaches (byp_wait, epoll sets without a target):
 * a readiness change wakes their group. */
extern BYP_SHARED int *byp_plain_sleepers;
/* Threads sleeping with the engine's frames_fd in their wait (the progress thread sleeps
 * on the frames itself while none does): this process's count (the engine sums the
 * members'). */
extern BYP_SHARED int *byp_frame_waiters;
/* ... of those, the ones in byp_wait: their poll(2) on frames_fd wakes them and the progress
 * thread alike, which therefore stops watching the frames while any sleeps.  This
 * process's count (the engine sums the members'). */
extern BYP_SHARED int *byp_frame_pollers;
/* The frames seats (wait.c) taken by each member of the family, BYP_FAMILY_MAX of them,
 * and this process's among them (no more seats than CPUs in the whole family: every seat
 * is a poll(2) that each frame wakes). */
extern BYP_SHARED int *byp_seats;
extern BYP_SHARED int *byp_seats_mine;
/* Bumped after every epoll set that adds frames_fd: the progress thread then adds its own
 * watch again, behind the sets', so that a frame wakes it only when no set sleeps. */
extern BYP_SHARED unsigned *byp_frames_adds;
/* Threads asleep on sleep words (byp_wait_on), of the whole family: not on the frames, not
 * on any wake fd; the engine's progress thread receives for them. */
extern BYP_SHARED int *byp_word_sleepers;
/* The wake slots (struct byp_engine) of threads in byp_wait that a change of any socket of
 * this process's wake group wakes; the engine points it at the group's mask. */
extern BYP_SHARED unsigned *byp_group_slots;
/* Threads spinning in byp_wait and epoll_wait (wait.c): the engine points it at a counter
 * its whole family shares, so that no more threads spin at once than there are CPUs. */
extern BYP_SHARED int *byp_spinners;
/* This process's share of the family's counts above (its threads asleep, spinning, and the
 * wake slots they hold), kept beside them so that the engine can take a share back when
 * its member dies with threads in a wait (SIGKILL) or leaves with them still there: a
 * sleeper counted for ever made every readiness change wake its group, and a spinner
 * counted for ever kept a CPU's worth of the family's threads from spinning.  Counted into
 * the shared count first and here second, taken off here first (byp_held_leave) and there
 * only if the share was still here.  The engine points it at the member's own entry. */
struct byp_held {
    int sleepers;               /* in byp_sleepers */
    int plain;                  /* in byp_plain_sleepers */
    int words;                  /* in byp_word_sleepers */
    int spinners;               /* in byp_spinners */
    unsigned slots;             /* wake slots taken (slots_busy; byp_group_slots if published there) */
};
extern BYP_SHARED struct byp_held *byp_held;

/* Sleeps that ran a whole slice (the bound on a lost wake-up) and then found what they
 * waited for: a wake-up that should have come and did not (wait.c, fd_epoll.c).  The
 * engine points it at a count its whole family shares; bypass-stat shows it. */
extern BYP_SHARED uint64_t *byp_late_wakes;

/* Blocking waits that ended while spinning, and that went to sleep (wait.c, fd_epoll.c). */
extern BYP_SHARED uint64_t byp_spin_hits, byp_spin_misses;

/* The engine once started, else NULL. */
extern BYP_SHARED const struct byp_engine *byp_engine;

/* Set in a forked child of a process that had the engine: it must not start another. */
extern BYP_SHARED int byp_engine_forked;

/* Load and start the engine (once per process; a failure is final and logged once, and
 * under BYPASS_STRICT=1 ends the program).  0 or -errno. */
BYP_SHARED int byp_engine_get(void);

/* ---- waiting (wait.c) ---------------------------------------------------------------- */

/* A condition checked by byp_wait with the engine polled in between: return nonzero when
 * the wait is over. */
typedef int (*byp_wait_cond_t)(void *arg);

/* Wait until @cond(@arg) holds, or @timeout_ms passes (-1: forever), busy-polling the stack
 * for BYPASS_SPIN_USEC and then sleeping in a wake slot published in the wake group's mask
 * (or, none free, on the group's eventfd), plus the optional kernel @pfds (poll(2) set,
 * revents filled; may be NULL).  Never the group's semaphore when a slot is free: its
 * counts can be taken by a thread that went to sleep after they were written, from the
 * one they were written for (MariaDB's connection thread lost the wake-up for a query to
 * the main thread's poll on its listeners and slept out its 100 ms slice).
 * Returns 1 when @cond holds, 2 when a kernel fd in @pfds is ready, 0 on timeout, -EINTR
 * when a handler without SA_RESTART ran during the wait (spinning or sleeping), -ERESTART
 * when only handlers with SA_RESTART ran (a restartable call waits again,
 * poll/select/epoll_wait return EINTR). */
BYP_SHARED int byp_wait(byp_wait_cond_t cond, void *arg, int timeout_ms, struct pollfd *pfds,
                        nfds_t npfds);

/* A socket's sleep word, in the stack's shared memory (its struct byp_watch): a thread
 * blocked in a call on that one socket (recv, send, accept, connect) sleeps on it, a futex,
 * so that the socket's readiness changes wake its own waiters, not every thread of the
 * process (varnish: 200 workers each blocked in recv on its own connection). */
struct byp_sleep_word {
    uint32_t seq;               /* bumped (stack lock held) by a change that finds sleepers */
    uint32_t sleepers;          /* threads asleep on it (the futex) */
    uint32_t slots;             /* the wake slots of threads asleep there for it (seated) */
};

/* byp_wait for one socket and no kernel fd: the same spin, then a sleep on @sw, except for
 * as many threads of the process as it has CPUs while sleepers take the frames (the
 * seats), which sleep on the frames and their wake slot's eventfd.  Same returns as
 * byp_wait (never 2). */
BYP_SHARED int byp_wait_on(byp_wait_cond_t cond, void *arg, int timeout_ms,
                           struct byp_sleep_word *sw);
/* ... and kernel @pfds as byp_wait's (2 when one is ready): in a wake slot published in
 * @sw, so that only that socket's changes wake it. */
BYP_SHARED int byp_wait_on_fds(byp_wait_cond_t cond, void *arg, int timeout_ms,
                               struct byp_sleep_word *sw, struct pollfd *pfds, nfds_t npfds);

/* ---- signals (wrap_signal.c) ---------------------------------------------------------- */

/* How many of the program's handlers this thread has run (or deferred) so far. */
BYP_SHARED unsigned byp_sig_seq(void);

/* Whether a handler ran on this thread since byp_sig_seq() returned @since: 0 none,
 * -EINTR when one lacked SA_RESTART or the call is not @restartable, -ERESTART when every
 * one had SA_RESTART and the call may resume. */
BYP_SHARED int byp_sig_check(unsigned since, int restartable);

/* The thread takes / releases the stack lock: handlers of signals arriving in between are
 * deferred to the release, so a handler that calls into the library cannot deadlock. */
BYP_SHARED void byp_sig_hold(void);
BYP_SHARED void byp_sig_release(void);

/* Whether this thread runs a signal handler the signal interrupted it for: whatever it
 * interrupted (malloc) may hold locks, so only async-signal-safe work is done. */
BYP_SHARED int byp_sig_in_handler(void);

#endif
