/* What the engine's own files share (engine.c: the lock, the clock, polling, start;
 * progress.c: the progress thread; engine_fork.c: fork, exec, exit and dead members).
 * Not for the socket files: they use byp_stack.h. */
#ifndef BYP_ENGINE_INT_H
#define BYP_ENGINE_INT_H

#include <stdint.h>
#include <sys/types.h>

struct byp_nic;

/* Waking sleepers, wake groups and targets, frame sleepers: wake.h. */

/* The accelerated NIC (NULL before start and after the last member left). */
extern struct byp_nic *byp_engine_nic;
/* One round of the stack (rx burst, timers, tx); @wait_lock: take the lock even when
 * another thread holds it.  Returns the packets received. */
int byp_engine_run(int from_app, int wait_lock);
/* The backend's receive fd (AF_XDP or AF_PACKET socket, tap device), -1 when none. */
extern int byp_xsk_fd;
/* When an application thread last ran the stack (byp_now_ns); 0 when the last one to run
 * it went to sleep without the frames (byp_app_spin_over). */
extern int64_t byp_last_app_poll_ns;
/* The progress thread sleeps trusting the application thread that just ran the stack to
 * go on running it (the frames are left to that thread): an application thread that stops
 * (byp_app_spin_over) clears this and kicks it. */
extern int byp_progress_beside;
/* An application thread ends its spin and sleeps where no frame wakes it. */
void byp_app_spin_over(void);
/* The progress thread sleeps past lwIP's next tick (nothing to time) and no application
 * thread sleeps on the frames, set under the lock; whoever next releases the lock clears
 * it and writes byp_progress_kick_fd (an eventfd the progress thread polls) so that it
 * looks again. */
extern int byp_progress_napping;
extern int byp_progress_kick_fd;
/* Wake the progress thread (whichever member runs it: the eventfd is inherited) to look
 * again; errno kept. */
void byp_progress_kick(void);
/* Some thread gave lwIP something since the progress thread last looked at its timers
 * (set on every kicking unlock, napping or not; cleared by the progress thread). */
extern int byp_progress_stale;
/* Receive rounds that found frames (lock held to change): the progress thread naps beside
 * sleeping threads only after a sleep in which none came. */
extern uint64_t byp_rx_rounds;
/* The process running the family's progress thread; 0: none (the next user starts one). */
extern pid_t byp_progress_pid;
/* The process whose progress thread reads the kernel mirror (0: no mirror). */
extern pid_t byp_kmirror_pid;

/* CLOCK_MONOTONIC in ns, read cheaply (the TSC when it is invariant). */
int64_t byp_now_ns(void);

/* Take the stack lock without starting a progress thread; try to take it (0 or EBUSY).
 * Both defer signal handlers until byp_stack_unlock*. */
void byp_stack_lock_raw(void);
int byp_stack_trylock(void);
/* Release the lock without waking a napping progress thread: for a caller that gave lwIP
 * nothing new (a poll that received nothing, the progress thread itself). */
void byp_stack_unlock_nokick(void);
/* Release the lock after the progress thread's own change (the kernel mirror's): its plan
 * is stale, so it looks again before it sleeps, but it does not kick itself (a kick reads
 * as packets moving: the stats went back to sampling every 100 ms, and an idle process
 * woke five more times for every neighbour state the kernel aged). */
void byp_stack_unlock_stale(void);

/* ---- progress.c ---- */

/* Start the family's progress thread in this process when no process runs one. */
void byp_progress_start(void);
/* Stop this process's progress thread (lock not held). */
void byp_progress_stop(void);

/* ---- engine_fork.c ---- */

/* Drop what member @slot held (lock held). */
void byp_drop_member(int slot);
/* Drop what dead members held, and forget a dead progress thread (lock held).  @w: the
 * progress thread's member watch, which tells the living without /proc (or NULL). */
struct byp_member_watch;
void byp_reap_members(const struct byp_member_watch *w);
/* This process stops using the stack (exit, exec).  Returns the members left, or -1. */
int byp_engine_leave(void);
/* The atexit handler of every member. */
void byp_engine_atexit(void);
/* The fork and exec entry points of struct byp_engine (preload/engine.h). */
void byp_engine_fork_prepare(void);
int byp_engine_fork_child(void);
void byp_engine_fork_failed(void);
void byp_engine_exec_prepare(void);
/* Threads of the family sleeping on the stack, over every wake group. */
int byp_engine_sleeping(void);
void byp_engine_spawn_prepare(const int *extra, int nextra);
void byp_engine_pass_prepare(const int *fds, int nfds);

#endif
