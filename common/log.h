/* Logging sink shared by every part of the library.
 *
 * Messages go to stderr (fd 2) through the raw write system call, never through stdio and
 * never through the interposed write(), so logging is safe from any wrapper, before
 * initialisation and inside a signal handler.  Every line is prefixed "bypass: ".
 * The caller's errno is preserved. */
#ifndef BYP_LOG_H
#define BYP_LOG_H

#include <stdarg.h>
#include <stddef.h>

enum byp_log_level {
    BYP_LOG_ERROR = 0,
    BYP_LOG_WARN = 1,
    BYP_LOG_INFO = 2,
    BYP_LOG_DEBUG = 3,
};

/* Current threshold; messages above it are dropped.  Set from BYPASS_LOG. */
extern int byp_log_level;

/* Format one message and write it to stderr if @level passes the threshold.
 * A trailing newline is added when missing. */
void byp_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void byp_vlog(int level, const char *fmt, va_list ap);

/* While capturing (start-up of a component that must report one message), the first
 * error-level message goes into @buf instead of stderr and later ones are dropped; other
 * levels print as usual.  Pass NULL to stop.  Not thread-safe: start-up runs once. */
void byp_log_capture(char *buf, size_t len);

#define byp_err(...) byp_log(BYP_LOG_ERROR, __VA_ARGS__)
#define byp_warn(...) byp_log(BYP_LOG_WARN, __VA_ARGS__)
#define byp_info(...) byp_log(BYP_LOG_INFO, __VA_ARGS__)
#ifdef BYP_DEBUG
#define byp_dbg(...) byp_log(BYP_LOG_DEBUG, __VA_ARGS__)
#else
#define byp_dbg(...) ((void)0)
#endif

#endif
