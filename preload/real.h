/* Pointers to the next definition (libc's) of every interposed symbol, generated from
 * libc_syms.def, and the macro that calls one, resolving it on first use so that a call that
 * arrives before the library's constructor (another library's constructor, an early thread)
 * still works. */
#ifndef BYP_REAL_H
#define BYP_REAL_H

#include "sysheaders.h"

#define BYP_FDCALL(ret, name, params, args) extern BYP_SHARED ret(*byp_real_##name) params;
#define BYP_SYM(ret, name, params, args) extern BYP_SHARED ret(*byp_real_##name) params;
#include "libc_syms.def"

/* Look up @name with dlsym(RTLD_NEXT); never returns NULL for a symbol libc has. */
BYP_SHARED void *byp_real_lookup(const char *name);

/* Resolve every pointer at once (called from the library's initialiser). */
BYP_SHARED void byp_real_resolve_all(void);

/* Return the pointer in @slot, looking @name up first when it is still empty. */
static inline void *byp_real_get(void **slot, const char *name)
{
    void *p = __atomic_load_n(slot, __ATOMIC_RELAXED);
    if (__builtin_expect(p != NULL, 1))
        return p;
    p = byp_real_lookup(name);
    __atomic_store_n(slot, p, __ATOMIC_RELAXED);
    return p;
}

/* The libc function behind interposed @name, resolved on first use. */
#define BYP_REAL(name)                                                                      \
    ((__typeof__(byp_real_##name))byp_real_get((void **)&byp_real_##name, #name))

#endif
