/* A tiny unit-test harness, header only: include it from exactly one .c per test executable.
 *
 *   UNIT_TEST(name) { ... CHECK(x == 1); CHECK_STR_HAS(msg, "BYPASS_LOG"); ... }
 *   static const struct unit_test tests[] = { UNIT(name), UNIT(other) };
 *   int main(int argc, char **argv) { return unit_run(tests, UNIT_COUNT(tests), argc, argv); }
 *
 * Each test runs in its own forked process with a 10 s alarm and a fresh temporary directory
 * (unit_tmpdir()), which the parent removes afterwards whatever happened.  A failed check
 * prints file:line and the values, then aborts that test's process; the others still run.
 * `./test_x name` runs only the named tests.  Exit status: 0 when every test passed. */
#ifndef BYP_UNIT_H
#define BYP_UNIT_H

#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

typedef void (*unit_fn)(void);

struct unit_test {
    const char *name;
    unit_fn fn;
};

static char unit_dir[64];

/* The temporary directory of the running test; removed after it. */
static inline const char *unit_tmpdir(void)
{
    return unit_dir;
}

static inline void unit_fail(const char *file, int line, const char *what)
{
    fprintf(stderr, "    %s:%d: check failed: %s\n", file, line, what);
    fflush(stderr);
    abort();
}

#define UNIT_TEST(name) static void name(void)

#define CHECK(cond) \
    ((cond) ? (void)0 : unit_fail(__FILE__, __LINE__, #cond))

/* Integers compared with @op; both values are printed on failure. */
#define CHECK_INT(a, op, b)                                                                    \
    do {                                                                                     \
        long long a_ = (long long)(a), b_ = (long long)(b);                                  \
        if (!(a_ op b_)) {                                                                   \
            fprintf(stderr, "    values: %lld vs %lld\n", a_, b_);                           \
            unit_fail(__FILE__, __LINE__, #a " " #op " " #b);                                \
        }                                                                                    \
    } while (0)

/* Two strings are equal (and neither is NULL). */
#define CHECK_STR_EQ(a, b)                                                                     \
    do {                                                                                     \
        const char *a_ = (a), *b_ = (b);                                                     \
        if (!a_ || !b_ || strcmp(a_, b_) != 0) {                                             \
            fprintf(stderr, "    values: \"%s\"\n        vs: \"%s\"\n",                      \
                    a_ ? a_ : "(null)", b_ ? b_ : "(null)");                                 \
            unit_fail(__FILE__, __LINE__, #a " == " #b);                                     \
        }                                                                                    \
    } while (0)

/* @hay contains @needle. */
#define CHECK_STR_HAS(hay, needle)                                                             \
    do {                                                                                     \
        const char *h_ = (hay), *n_ = (needle);                                              \
        if (!h_ || !strstr(h_, n_)) {                                                        \
            fprintf(stderr, "    \"%s\"\n    does not contain \"%s\"\n",                     \
                    h_ ? h_ : "(null)", n_);                                                 \
            unit_fail(__FILE__, __LINE__, #hay " contains " #needle);                        \
        }                                                                                    \
    } while (0)

static inline int unit_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

/* Run one test in a child process; returns 1 when it passed. */
static inline int unit_run_one(const struct unit_test *t)
{
    snprintf(unit_dir, sizeof unit_dir, "/tmp/byp-unit-XXXXXX");
    if (!mkdtemp(unit_dir)) {
        perror("mkdtemp");
        return 0;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        alarm(10);
        t->fn();
        fflush(NULL);
        _exit(0);
    }
    int status = 0;
    int ok = pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
             WEXITSTATUS(status) == 0;
    nftw(unit_dir, unit_rm, 8, FTW_DEPTH | FTW_PHYS);
    if (ok)
        printf("ok   %s\n", t->name);
    else if (pid > 0 && WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM)
        printf("FAIL %s (timed out)\n", t->name);
    else
        printf("FAIL %s\n", t->name);
    return ok;
}

static inline int unit_run(const struct unit_test *tests, size_t n, int argc, char **argv)
{
    int failed = 0, ran = 0;
    for (size_t i = 0; i < n; i++) {
        int wanted = argc < 2;
        for (int a = 1; a < argc; a++)
            wanted |= strcmp(argv[a], tests[i].name) == 0;
        if (!wanted)
            continue;
        ran++;
        failed += !unit_run_one(&tests[i]);
    }
    printf("%d of %d tests passed\n", ran - failed, ran);
    return failed || ran == 0 ? 1 : 0;
}

/* One entry of a file's test list: static const struct unit_test tests[] = { UNIT(a), ... }; */
#define UNIT(fn) { #fn, fn }
#define UNIT_COUNT(list) (sizeof(list) / sizeof((list)[0]))

#endif
