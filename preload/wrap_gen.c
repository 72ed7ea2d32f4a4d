/* The generated wrappers: one per BYP_FDCALL in libc_syms.def.  A plain kernel fd (no ops
 * table) goes straight to libc, so passthrough costs one table load and one branch; an fd
 * with an ops table goes to its kind's slot. */
#include "byp.h"

#define BYP_FDCALL(ret, name, params, args)                                                 \
    BYP_EXPORT ret name params                                                              \
    {                                                                                       \
        const byp_fd_ops_t *ops = byp_fd_ops(fd);                                           \
        if (byp_likely(ops == NULL))                                                        \
            return BYP_REAL(name) args;                                                     \
        return BYP_OPS_CALL(fd, ops, name, args);                                           \
    }
#define BYP_FDHOOK(ret, name, params, args)
#include "libc_syms.def"
