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

#endif
