#include "real.h"

#include <dlfcn.h>

#include "log.h"

#define BYP_FDCALL(ret, name, params, args) BYP_SHARED ret(*byp_real_##name) params;
#define BYP_SYM(ret, name, params, args) BYP_SHARED ret(*byp_real_##name) params;
#include "libc_syms.def"

/* A symbol this libc lacks (close_range on an old glibc, say) resolves to this, which fails
 * like the kernel would for an unknown system call. */
static long byp_real_missing(void)
{
    errno = ENOSYS;
    return -1;
}

void *byp_real_lookup(const char *name)
{
    int saved = errno;
    void *p = dlsym(RTLD_NEXT, name);
    if (p == NULL) {
        byp_warn("libc has no %s; calls to it fail with ENOSYS", name);
        p = (void *)byp_real_missing;
    }
    errno = saved;
    return p;
}

void byp_real_resolve_all(void)
{
#define BYP_RESOLVE(name)                                                                   \
    if (byp_real_##name == NULL)                                                            \
        byp_real_##name = (__typeof__(byp_real_##name))byp_real_lookup(#name);
#define BYP_FDCALL(ret, name, params, args) BYP_RESOLVE(name)
#define BYP_SYM(ret, name, params, args) BYP_RESOLVE(name)
#include "libc_syms.def"
#undef BYP_RESOLVE
}
