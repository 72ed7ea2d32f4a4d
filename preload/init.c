#include "byp.h"
#include "engine.h"

#include <pthread.h>
#include <stdlib.h>

extern char **environ;

BYP_SHARED byp_config_t byp_cfg;
BYP_SHARED int byp_ready;

/* 0: not started, 1: running, 2: done. */
static int init_state;

/* Directory of the per-program and default config files (DESIGN.md: /etc/bypass). */
#define BYP_ETC_DIR "/etc/bypass"

void byp_before_fork(void)
{
    const struct byp_engine *e = byp_engine;
    if (e != NULL && e->fork_prepare != NULL) {
        int saved = errno;
        e->fork_prepare();
        errno = saved;
    }
}

void byp_after_fork_child(void)
{
    /* The child shares the parent's stack (one stack per family, as Onload's).  When it
     * cannot, the stack, its rings and its steering map stay the parent's: the child keeps
     * only the kernel sockets underneath its accelerated fds, and never starts an engine of
     * its own on the parent's interface queue. */
    if (byp_engine != NULL) {
        if (byp_engine->fork_child != NULL && byp_engine->fork_child() == 0)
            return;
        byp_fd_detach_all();
        __atomic_store_n(&byp_engine, NULL, __ATOMIC_RELEASE);
        byp_engine_forked = 1;
    }
}

/* Read the configuration and report a problem once.  Returns false when the library must
 * stay pure passthrough (BYPASS_DISABLE=1). */
static bool load_config(void)
{
    char err[1024] = "";
    const char *prog = program_invocation_short_name;
    int rc = byp_config_load(&byp_cfg, prog ? prog : "", BYP_ETC_DIR, environ, err, sizeof err);
    byp_log_level = (int)byp_cfg.log_level;
    if (byp_cfg.disable)
        return false;
    if (rc < 0) {
        if (byp_cfg.strict) {
            byp_err("%s; BYPASS_STRICT=1: exiting", err);
            _exit(1);
        }
        byp_err("%s; every socket stays on the kernel", err);
        /* Keep the valid knobs (log level, spin) but drop every rule. */
        byp_cfg.n_rules = 0;
    }
    return true;
}

void byp_init(void)
{
    int expected = 0;
    if (!__atomic_compare_exchange_n(&init_state, &expected, 1, false, __ATOMIC_ACQ_REL,
                                     __ATOMIC_ACQUIRE))
        return;
    int saved = errno;
    byp_real_resolve_all();
    if (load_config()) {
        byp_fdtab_init();
        pthread_atfork(byp_before_fork, NULL, byp_after_fork_child);
        byp_info("ready: config %s, %d rule(s)", byp_cfg.path ? byp_cfg.path : "(none)",
                 byp_cfg.n_rules);
    }
    __atomic_store_n(&byp_ready, 1, __ATOMIC_RELEASE);
    __atomic_store_n(&init_state, 2, __ATOMIC_RELEASE);
    errno = saved;
}

__attribute__((constructor)) static void byp_constructor(void)
{
    byp_init();
}
