/* bypass: the launcher.  `bypass run [--config FILE] [--profile NAME] [--] COMMAND ...`
 * preloads libbypass.so (the one next to this binary in a build tree, else the one in the
 * installed libdir), sets BYPASS_CONFIG and a profile's BYPASS_* defaults, and execs
 * COMMAND, so the exit status is the command's own.
 *
 * A profile only fills in what nobody chose: a variable already in the environment, or
 * its key in the config file the library will read, wins over the profile's value.
 * Errors: `bypass: ...` on stderr and exit status 2; a command that cannot be executed
 * gives 127 (not found) or 126 (found, not executable), as a shell does. */
#include <errno.h>
#include <libconfig.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bypass.h"

#define EXIT_USAGE 2

/* One BYPASS_* default of a profile, with the config key that also overrides it. */
struct setting {
    const char *var;
    const char *key;
    const char *value;
};

struct profile {
    const char *name;
    const char *doc;
    struct setting set[4];      /* ends at var == NULL */
};

/* Keep in step with the README section "The launcher and installing". */
static const struct profile profiles[] = {
    { "latency", "blocking calls spin forever (one core per waiting thread)",
      { { "BYPASS_SPIN_USEC", "spin_usec", "-1" },
        { "BYPASS_PROGRESS_USEC", "progress_usec", "1000" } } },
    { "throughput", "spin briefly then sleep; the progress thread runs every 200 us",
      { { "BYPASS_SPIN_USEC", "spin_usec", "100" },
        { "BYPASS_PROGRESS_USEC", "progress_usec", "200" } } },
};
#define N_PROFILES (sizeof(profiles) / sizeof(profiles[0]))

static void usage(FILE *f)
{
    fprintf(f,
        "usage: bypass run [--config FILE] [--profile NAME] [--] COMMAND [ARGS...]\n"
        "       bypass version\n"
        "       bypass --help\n"
        "\n"
        "Commands:\n"
        "  run       run COMMAND with libbypass.so preloaded; its exit status is returned\n"
        "  version   print the version and the library `run` would preload\n"
        "Run `bypass run --help` for the options of run.\n");
}

static void run_usage(FILE *f)
{
    fprintf(f,
        "usage: bypass run [--config FILE] [--profile NAME] [--] COMMAND [ARGS...]\n"
        "\n"
        "Runs COMMAND with LD_PRELOAD set to libbypass.so (prepended to any LD_PRELOAD).\n"
        "  --config FILE    set BYPASS_CONFIG to FILE's absolute path\n"
        "  --profile NAME   BYPASS_* defaults; a variable already set in the environment,\n"
        "                   or its key in the config file, wins over the profile\n"
        "  -h, --help       this help\n"
        "Profiles:\n");
    for (size_t i = 0; i < N_PROFILES; i++) {
        fprintf(f, "  %-11s  %s:", profiles[i].name, profiles[i].doc);
        for (const struct setting *s = profiles[i].set; s->var; s++)
            fprintf(f, " %s=%s", s->var, s->value);
        fputc('\n', f);
    }
    fprintf(f, "Exit status: COMMAND's; 2 on a usage or set-up error; 127 if COMMAND\n"
               "is not found, 126 if it cannot be executed.\n");
}

static int die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Print `bypass: <message>` on stderr; returns the usage exit status. */
static int die(const char *fmt, ...)
{
    va_list ap;
    fputs("bypass: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return EXIT_USAGE;
}

static int readable(const char *path)
{
    return access(path, R_OK) == 0;
}

/* @out = "@dir/@rel/@file" (@rel may be NULL) if it fits and is readable; else 0. */
static int try_path(char *out, size_t len, const char *dir, const char *rel, const char *file)
{
    int n = rel ? snprintf(out, len, "%s/%s/%s", dir, rel, file)
                : snprintf(out, len, "%s/%s", dir, file);
    return n > 0 && (size_t)n < len && readable(out);
}

/* Find libbypass.so for this binary: beside it (build tree), else in the libdir at the
 * same place relative to it as at install time (so the prefix given to `cmake --install`
 * works), else in the configured libdir.  Writes an absolute path; 0 or -ENOENT. */
static int find_library(char *out, size_t len)
{
    char self[PATH_MAX], found[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n > 0) {
        self[n] = '\0';
        char *slash = strrchr(self, '/');
        if (slash) {
            *slash = '\0';
            if (try_path(found, sizeof(found), self, NULL, BYPASS_PRELOAD_LIB) ||
                try_path(found, sizeof(found), self, BYP_BIN_TO_LIBDIR, BYPASS_PRELOAD_LIB)) {
                if (realpath(found, out) == NULL || strlen(out) >= len)
                    return -ENOENT;
                return 0;
            }
        }
    }
    return try_path(out, len, BYP_INSTALL_LIBDIR, NULL, BYPASS_PRELOAD_LIB) ? 0 : -ENOENT;
}

static const struct profile *find_profile(const char *name)
{
    for (size_t i = 0; i < N_PROFILES; i++)
        if (strcmp(profiles[i].name, name) == 0)
            return &profiles[i];
    return NULL;
}

/* The config file the library will read for @command, by the same order it uses:
 * $BYPASS_CONFIG, /etc/bypass/<program>.conf, /etc/bypass/default.conf; NULL if none. */
static const char *config_for(const char *command, char *buf, size_t len)
{
    const char *env = getenv("BYPASS_CONFIG");
    if (env && env[0])
        return env;
    const char *slash = strrchr(command, '/');
    snprintf(buf, len, "/etc/bypass/%s.conf", slash ? slash + 1 : command);
    if (readable(buf))
        return buf;
    snprintf(buf, len, "/etc/bypass/default.conf");
    return readable(buf) ? buf : NULL;
}

/* Set each of @p's variables that neither the environment nor the config file sets.
 * A file that cannot be parsed is left to the library to report. */
static int apply_profile(const struct profile *p, const char *command)
{
    char buf[PATH_MAX];
    const char *file = config_for(command, buf, sizeof(buf));
    config_t cfg;
    int have_file = 0;

    config_init(&cfg);
    if (file && config_read_file(&cfg, file) == CONFIG_TRUE)
        have_file = 1;
    for (const struct setting *s = p->set; s->var; s++) {
        if (getenv(s->var))
            continue;
        if (have_file && config_lookup(&cfg, s->key))
            continue;
        if (setenv(s->var, s->value, 1) < 0) {
            config_destroy(&cfg);
            return die("cannot set %s: %s", s->var, strerror(errno));
        }
    }
    config_destroy(&cfg);
    return 0;
}

/* LD_PRELOAD = @lib, then whatever was there (unless @lib is already in it). */
static int set_preload(const char *lib)
{
    if (strpbrk(lib, " :"))
        return die("%s: LD_PRELOAD cannot hold a path with a space or a colon", lib);
    const char *old = getenv("LD_PRELOAD");
    if (old == NULL || old[0] == '\0')
        return setenv("LD_PRELOAD", lib, 1) < 0 ? die("cannot set LD_PRELOAD") : 0;

    size_t liblen = strlen(lib);
    for (const char *p = old; *p;) {
        size_t w = strcspn(p, " :");
        if (w == liblen && strncmp(p, lib, w) == 0)
            return 0;
        p += w;
        p += strspn(p, " :");
    }
    size_t n = liblen + 1 + strlen(old) + 1;
    char *val = malloc(n);
    if (val == NULL)
        return die("out of memory");
    snprintf(val, n, "%s:%s", lib, old);
    int rc = setenv("LD_PRELOAD", val, 1);
    free(val);
    return rc < 0 ? die("cannot set LD_PRELOAD") : 0;
}

/* An option's value from `--opt VALUE` or `--opt=VALUE`; NULL if @arg is not --@name. */
static const char *opt_value(const char *name, char **argv, int *i, int argc, int *missing)
{
    const char *arg = argv[*i];
    size_t n = strlen(name);
    if (strncmp(arg, name, n) != 0)
        return NULL;
    if (arg[n] == '=')
        return arg + n + 1;
    if (arg[n] != '\0')
        return NULL;
    if (*i + 1 >= argc) {
        *missing = 1;
        return NULL;
    }
    return argv[++*i];
}

static int cmd_run(int argc, char **argv)
{
    const char *config = NULL, *profile_name = NULL;
    int i = 1;

    for (; i < argc; i++) {
        const char *a = argv[i], *v;
        int missing = 0;
        if (strcmp(a, "--") == 0) {
            i++;
            break;
        }
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            run_usage(stdout);
            return 0;
        }
        if ((v = opt_value("--config", argv, &i, argc, &missing)) != NULL) {
            config = v;
            continue;
        }
        if (!missing && (v = opt_value("--profile", argv, &i, argc, &missing)) != NULL) {
            profile_name = v;
            continue;
        }
        if (missing)
            return die("run: %s needs a value (see bypass run --help)", a);
        if (a[0] == '-')
            return die("run: unknown option %s (see bypass run --help)", a);
        break;
    }
    if (i >= argc)
        return die("run: no command given (usage: bypass run [OPTIONS] [--] COMMAND ...)");
    char **command = argv + i;

    const struct profile *prof = NULL;
    if (profile_name && (prof = find_profile(profile_name)) == NULL) {
        fprintf(stderr, "bypass: run: unknown profile '%s'; profiles:", profile_name);
        for (size_t k = 0; k < N_PROFILES; k++)
            fprintf(stderr, " %s", profiles[k].name);
        fputc('\n', stderr);
        return EXIT_USAGE;
    }

    if (config) {
        char abs[PATH_MAX];
        if (config[0] == '\0')
            return die("run: --config needs a file name");
        if (realpath(config, abs) == NULL)
            return die("run: --config %s: %s", config, strerror(errno));
        if (!readable(abs))
            return die("run: --config %s: %s", config, strerror(errno));
        if (setenv("BYPASS_CONFIG", abs, 1) < 0)
            return die("cannot set BYPASS_CONFIG: %s", strerror(errno));
    }

    char lib[PATH_MAX];
    if (find_library(lib, sizeof(lib)) < 0)
        return die("cannot find %s next to this program nor in %s", BYPASS_PRELOAD_LIB,
                   BYP_INSTALL_LIBDIR);
    int rc = set_preload(lib);
    if (rc == 0 && prof)
        rc = apply_profile(prof, command[0]);
    if (rc)
        return rc;

    execvp(command[0], command);
    int err = errno;
    fprintf(stderr, "bypass: %s: %s\n", command[0], strerror(err));
    return err == ENOENT || err == ENOTDIR ? 127 : 126;
}

static int cmd_version(void)
{
    char lib[PATH_MAX];
    printf("bypass %s\n", BYPASS_VERSION_STRING);
    if (find_library(lib, sizeof(lib)) == 0)
        printf("library: %s\n", lib);
    else
        printf("library: not found (looked next to this program and in %s)\n",
               BYP_INSTALL_LIBDIR);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0)
        return cmd_version();
    if (strcmp(cmd, "run") == 0)
        return cmd_run(argc - 1, argv + 1);
    return die("unknown command '%s' (see bypass --help)", cmd);
}
