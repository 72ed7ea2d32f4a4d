/* Helpers shared by the config tests: temporary config files and loading them. */
#ifndef BYP_TEST_CFG_UTIL_H
#define BYP_TEST_CFG_UTIL_H

#include "config.h"
#include "unit.h"

#include <errno.h>

/* Write @text to <test tmpdir>/@name; returns the path (leaked: tests are short processes). */
static inline char *write_file(const char *name, const char *text)
{
    char *path = NULL;
    CHECK(asprintf(&path, "%s/%s", unit_tmpdir(), name) > 0);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    CHECK(fputs(text, f) >= 0);
    CHECK(fclose(f) == 0);
    return path;
}

/* "NAME=value", allocated. */
static inline char *env_kv(const char *name, const char *value)
{
    char *s = NULL;
    CHECK(asprintf(&s, "%s=%s", name, value) > 0);
    return s;
}

/* byp_config_load with the test's tmpdir as etc_dir. */
static inline int load(byp_config_t *cfg, const char *prog, char **envp, char *err)
{
    return byp_config_load(cfg, prog, unit_tmpdir(), envp, err, BYP_CONFIG_ERR_MAX);
}

/* Write @text as a config file and load it through BYPASS_CONFIG; returns the result. */
static inline int load_text(byp_config_t *cfg, const char *text, char *err)
{
    char *path = write_file("test.conf", text);
    char *envp[] = { env_kv("BYPASS_CONFIG", path), NULL };
    return load(cfg, "prog", envp, err);
}

/* Load @text through BYPASS_CONFIG and expect failure with -EINVAL; returns the message. */
static inline const char *bad_file(const char *text)
{
    static char err[BYP_CONFIG_ERR_MAX];
    byp_config_t cfg;
    int rc = load_text(&cfg, text, err);
    CHECK_INT(rc, ==, -EINVAL);
    CHECK(err[0] != '\0');
    CHECK(strchr(err, '\n') == NULL);
    /* The message names the file. */
    CHECK_STR_HAS(err, "/test.conf:");
    /* On error nothing is accelerated. */
    CHECK_INT(cfg.n_rules, ==, 0);
    byp_config_free(&cfg);
    return err;
}

/* Load with the single variable NAME=value (no file) and expect -EINVAL; returns the message. */
static inline const char *bad_env(const char *name, const char *value)
{
    static char err[BYP_CONFIG_ERR_MAX];
    byp_config_t cfg;
    char *envp[] = { env_kv(name, value), NULL };
    int rc = load(&cfg, "prog", envp, err);
    CHECK_INT(rc, ==, -EINVAL);
    CHECK(strchr(err, '\n') == NULL);
    CHECK_STR_HAS(err, name);
    byp_config_free(&cfg);
    return err;
}

/* Load with the single variable NAME=value (no file), expect success; @cfg stays loaded. */
static inline void good_env(byp_config_t *cfg, const char *name, const char *value)
{
    char err[BYP_CONFIG_ERR_MAX];
    char *envp[] = { env_kv(name, value), NULL };
    int rc = load(cfg, "prog", envp, err);
    CHECK_STR_EQ(err, "");
    CHECK_INT(rc, ==, 0);
}

#endif
