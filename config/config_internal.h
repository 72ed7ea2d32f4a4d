/* Shared between config.c (options, environment, file) and rules.c (rules): the state of one
 * byp_config_load call and its message helpers.  Not part of the module's API. */
#ifndef BYP_CONFIG_INTERNAL_H
#define BYP_CONFIG_INTERNAL_H

#include "config.h"

#include "lcfg.h"   /* libconfig, through deep binding */

/* One byp_config_load call: where its message goes and the first error found. */
typedef struct byp_load_ctx {
    char *err;
    size_t errlen;
    int rc;             /* first error (negative errno), 0 while none */
    const char *path;   /* the config file being parsed */
} byp_load_ctx_t;

/* Record an error: the first one wins, later ones are ignored.  Returns @code. */
int byp_load_fail(byp_load_ctx_t *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The file a setting came from (it may differ from c->path through @include). */
const char *byp_setting_file(const byp_load_ctx_t *c, const config_setting_t *s);

/* "an integer", "a string", ...: what a setting is, for "expected X, got Y" messages. */
const char *byp_setting_kind(const config_setting_t *s);

/* Of @n @names, the one closest to @word by edit distance when it is close enough to be a
 * likely typo (at most 2 edits, and at most a third of the name), else NULL. */
const char *byp_closest_name(const char *word, const char *const *names, size_t n);

/* Parse rule number @index (1-based) of `rules = ( ... )` into @r.  Returns 0 or the error
 * recorded in @c. */
int byp_rule_parse(byp_load_ctx_t *c, const config_setting_t *grp, int index, byp_rule_t *r);

#endif
