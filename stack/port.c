/* What lwIP needs from the platform in NO_SYS mode: a millisecond clock, random numbers,
 * initial sequence numbers, and sinks for diagnostics and assertions.
 *
 * All of these are called with the stack lock held, except sys_now which is safe
 * anywhere. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>
#include <time.h>

#include "lwip/opt.h"
#include "lwip/sys.h"
#include "byp_lwip_hooks.h"
#include "log.h"
#include "tcp_guard.h"

/* Milliseconds from CLOCK_MONOTONIC (a vDSO call, no system call).  lwIP only compares
 * differences, so wrap-around after 49 days is fine. */
u32_t sys_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (u32_t)((uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u);
}

static uint64_t rand_state;   /* xorshift64* state, seeded lazily */
static uint64_t isn_secret;   /* key of the ISN hash */

/* Seed both from the kernel's random pool once; fall back to the clock if getrandom is
 * unavailable (seccomp) rather than failing. */
static void seed(void)
{
    uint64_t s[2];
    struct timespec ts;

    if (getrandom(s, sizeof(s), GRND_NONBLOCK) != (ssize_t)sizeof(s)) {
        clock_gettime(CLOCK_MONOTONIC, &ts);
        s[0] = (uint64_t)ts.tv_nsec * 0x9E3779B97F4A7C15ull ^ (uint64_t)ts.tv_sec;
        s[1] = s[0] * 0xBF58476D1CE4E5B9ull + (uint64_t)(uintptr_t)&ts;
    }
    rand_state = s[0] | 1;
    isn_secret = s[1];
}

uint32_t byp_lwip_rand(void)
{
    if (rand_state == 0)
        seed();
    rand_state ^= rand_state >> 12;
    rand_state ^= rand_state << 25;
    rand_state ^= rand_state >> 27;
    return (uint32_t)((rand_state * 0x2545F4914F6CDD1Dull) >> 32);
}

/* One round of a 64-bit mixing function (splitmix64's finaliser). */
static uint64_t mix(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xBF58476D1CE4E5B9ull;
    x ^= x >> 27;
    x *= 0x94D049BB133111EBull;
    x ^= x >> 31;
    return x;
}

/* ISN = keyed hash(four-tuple) + a 4-microsecond clock, as RFC 6528 suggests.  The hash is
 * a mixing function keyed by a random secret, not a cryptographic MAC: it defeats blind
 * guessing from outside, which is what the default global counter does not. */
u32_t byp_lwip_isn(const ip_addr_t *local_ip, u16_t local_port,
                   const ip_addr_t *remote_ip, u16_t remote_port)
{
    struct timespec ts;
    uint64_t h;

    uint32_t forced;
    if (byp_guard_isn(&forced))
        return forced;      /* a connection rebuilt after a SYN flood keeps its ISN */
    if (rand_state == 0)
        seed();
    h = mix(isn_secret ^ ((uint64_t)ip_2_ip4(local_ip)->addr << 32 | ip_2_ip4(remote_ip)->addr));
    h = mix(h ^ ((uint64_t)local_port << 16 | remote_port));
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (u32_t)h + (u32_t)(((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec) >> 12);
}

void byp_lwip_diag(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    byp_vlog(BYP_LOG_DEBUG, fmt, ap);
    va_end(ap);
}

void byp_lwip_assert(const char *msg, const char *file, int line)
{
    byp_log(BYP_LOG_ERROR, "lwIP assertion \"%s\" failed at %s:%d", msg, file, line);
#ifdef BYP_FUZZ
    abort();   /* the fuzzer (tests/fuzz) reports a failed assertion as a finding */
#endif
}
