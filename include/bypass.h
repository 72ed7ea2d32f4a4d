/* bypass — public header.
 *
 * libbypass.so has no API to call: programs stay unmodified and are run under
 * LD_PRELOAD (or the `bypass run` launcher).  This header gives what code and build
 * scripts around it may want to check: the release version and the names of the
 * files the launcher and the library look for.  Installed as <bypass/bypass.h>. */
#ifndef BYPASS_H
#define BYPASS_H

#define BYPASS_VERSION_MAJOR 0
#define BYPASS_VERSION_MINOR 1
#define BYPASS_VERSION_PATCH 0
/* "MAJOR.MINOR.PATCH". */
#define BYPASS_VERSION_STRING "0.1.0"
/* MAJOR * 10000 + MINOR * 100 + PATCH, for #if comparisons. */
#define BYPASS_VERSION_NUMBER \
    (BYPASS_VERSION_MAJOR * 10000 + BYPASS_VERSION_MINOR * 100 + BYPASS_VERSION_PATCH)

/* The preloaded library; the engine it loads on demand from its own folder; the XDP
 * steering program, found next to either or in the installed libdir. */
#define BYPASS_PRELOAD_LIB "libbypass.so"
#define BYPASS_ENGINE_LIB "libbypass-engine.so"
#define BYPASS_XDP_PROG_FILE "xdp_steer.bpf.o"

#endif /* BYPASS_H */
