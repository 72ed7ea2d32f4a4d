#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

int byp_log_level = BYP_LOG_ERROR;

static char *capture_buf;
static size_t capture_len;

void byp_log_capture(char *buf, size_t len)
{
    capture_buf = len > 0 ? buf : NULL;
    capture_len = len;
    if (capture_buf != NULL)
        capture_buf[0] = '\0';
}

void byp_vlog(int level, const char *fmt, va_list ap)
{
    if (level > byp_log_level)
        return;
    int saved = errno;
    if (level == BYP_LOG_ERROR && capture_buf != NULL) {
        if (capture_buf[0] == '\0')
            vsnprintf(capture_buf, capture_len, fmt, ap);
        errno = saved;
        return;
    }
    char buf[1024];
    int n = snprintf(buf, sizeof buf, "bypass: ");
    int m = vsnprintf(buf + n, sizeof buf - (size_t)n - 1, fmt, ap);
    if (m < 0)
        m = 0;
    size_t len = (size_t)n + ((size_t)m < sizeof buf - (size_t)n - 1 ? (size_t)m : sizeof buf - (size_t)n - 2);
    if (len == 0 || buf[len - 1] != '\n')
        buf[len++] = '\n';
    size_t off = 0;
    while (off < len) {
        long w = syscall(SYS_write, 2, buf + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    errno = saved;
}

void byp_log(int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    byp_vlog(level, fmt, ap);
    va_end(ap);
}
