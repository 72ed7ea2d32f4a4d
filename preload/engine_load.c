/* Loading the engine (libbypass-engine.so) on the first accelerated socket. */
#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "byp.h"
#include "engine.h"

BYP_SHARED const struct byp_engine *byp_engine;
BYP_SHARED int byp_engine_forked;

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static int load_result = -EAGAIN;

/* dlopen the engine from the folder libbypass.so was loaded from, else by soname. */
static void *open_engine(char *why, size_t whylen)
{
    Dl_info info;
    char path[PATH_MAX];
    if (dladdr((void *)open_engine, &info) && info.dli_fname != NULL) {
        const char *slash = strrchr(info.dli_fname, '/');
        int dirlen = slash ? (int)(slash - info.dli_fname) : 1;
        const char *dir = slash ? info.dli_fname : ".";
        snprintf(path, sizeof path, "%.*s/%s", dirlen, dir, BYP_ENGINE_SONAME);
        void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        if (h != NULL)
            return h;
        snprintf(why, whylen, "%s", dlerror());
    }
    void *h = dlopen(BYP_ENGINE_SONAME, RTLD_NOW | RTLD_LOCAL);
    if (h == NULL && why[0] == '\0')
        snprintf(why, whylen, "%s", dlerror());
    return h;
}

/* Fail once, loudly, and fall back to the kernel (or exit under BYPASS_STRICT=1). */
static int fail(int err, const char *what, const char *detail)
{
    if (byp_cfg.strict) {
        byp_err("cannot start the accelerated path: %s%s%s; BYPASS_STRICT=1: exiting", what,
                detail[0] ? ": " : "", detail);
        _exit(1);
    }
    byp_err("cannot start the accelerated path: %s%s%s; every socket stays on the kernel",
            what, detail[0] ? ": " : "", detail);
    return err;
}

static void load(void)
{
    char why[512] = "";
    void *h = open_engine(why, sizeof why);
    if (h == NULL) {
        load_result = fail(-ENOENT, "cannot load " BYP_ENGINE_SONAME, why);
        return;
    }
    const struct byp_engine *(*entry)(void) =
        (const struct byp_engine *(*)(void))dlsym(h, BYP_ENGINE_ENTRY);
    const struct byp_engine *e = entry ? entry() : NULL;
    if (e == NULL || e->abi != BYP_ENGINE_ABI) {
        load_result = fail(-ENOEXEC, BYP_ENGINE_SONAME " does not match this libbypass.so", "");
        return;
    }
    char cause[512] = "";
    int rc = e->start(cause, sizeof cause);
    if (rc < 0) {
        load_result = fail(rc, cause[0] ? cause : strerror(-rc), "");
        return;
    }
    __atomic_store_n(&byp_engine, e, __ATOMIC_RELEASE);
    atexit(byp_leave_at_exit);   /* inherited across fork, as the engine is */
    load_result = 0;
}

int byp_engine_get(void)
{
    if (byp_engine_forked)
        return -ECHILD;
    int saved = errno;
    pthread_once(&load_once, load);
    errno = saved;
    return load_result;
}
