/* The machine's own stalls: a loop that only reads the TSC, alone on its CPU, counts the
 * gaps between two reads longer than 1, 5, 10 and 25 us for SECONDS (default 3).  What a
 * spinning thread loses to the host and the scheduler tick whatever it runs; it bounds
 * the p99.9 of any ping-pong whose 0.1 % is fewer round trips a second than these gaps.
 *
 *   cc -O2 -o /tmp/stalls bench/memif/stalls.c && taskset -c 1 /tmp/stalls 3 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <x86intrin.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    double secs = argc > 1 ? atof(argv[1]) : 3;
    double t0 = now_s();
    uint64_t c0 = __rdtsc();
    while (now_s() - t0 < 0.2)
        ;
    double per_us = (double)(__rdtsc() - c0) / ((now_s() - t0) * 1e6);   /* TSC ticks per us */
    const double edges[] = {1, 5, 10, 25};
    long n[4] = {0};
    double longest = 0, lost = 0;
    uint64_t end = __rdtsc() + (uint64_t)(secs * 1e6 * per_us), last = __rdtsc();
    for (;;) {
        uint64_t t = __rdtsc();
        double gap = (double)(t - last) / per_us;
        if (gap > 1) {
            lost += gap;
            for (int i = 0; i < 4; i++)
                n[i] += gap > edges[i];
            if (gap > longest)
                longest = gap;
        }
        last = t;
        if (t > end)
            break;
    }
    printf("stalls per second over 1/5/10/25 us: %.0f %.0f %.0f %.0f; longest %.1f us; "
           "%.2f %% of the time lost\n", n[0] / secs, n[1] / secs, n[2] / secs, n[3] / secs,
           longest, lost / (secs * 1e4));
    return 0;
}
