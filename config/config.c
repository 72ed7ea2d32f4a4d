/* Options: defaults, the BYPASS_* environment and the libconfig file, all driven by the one
 * table in options.def.  The rules inside the file are parsed by rules.c.
 *
 * byp_config_load works in three passes so that precedence is defaults < file < environment
 * while the environment is read first (BYPASS_CONFIG chooses the file, and BYPASS_DISABLE /
 * BYPASS_STRICT / BYPASS_LOG must be known even when the file is broken):
 *   1. defaults;  2. every BYPASS_* variable, validated and stored;  3. the file, whose values
 *   are validated but only stored for options the environment did not set. */
#include "config_internal.h"

#include "log.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

/* ---- the options table ------------------------------------------------------------------ */

enum opt_type { T_int, T_bool, T_string, T_enum_backend, T_enum_log, T_enum_role };

enum opt_id {
#define BYP_OPT(name, env, key, type, def, min, max, doc) OPT_##name,
#include "options.def"
#undef BYP_OPT
    OPT_COUNT
};

struct opt_desc {
    const char *env;    /* "" when file only */
    const char *key;    /* "" when environment only */
    enum opt_type type;
    long min, max;
    size_t off;         /* of the field in byp_config_t */
};

static const struct opt_desc opts[OPT_COUNT] = {
#define BYP_OPT(name, env, key, type, def, min, max, doc) \
    [OPT_##name] = { env, key, T_##type, min, max, offsetof(byp_config_t, name) },
#include "options.def"
#undef BYP_OPT
};

static const char *const backend_names[BYP_BACKEND_COUNT] = {
    [BYP_BACKEND_AF_XDP] = "af_xdp",     [BYP_BACKEND_AF_PACKET] = "af_packet",
    [BYP_BACKEND_TAP] = "tap",           [BYP_BACKEND_MEMIF] = "memif",
    [BYP_BACKEND_PCI] = "pci",
};

static const char *const log_names[BYP_LOG_LEVEL_COUNT] = {
    [BYP_LOG_ERROR] = "error", [BYP_LOG_WARN] = "warn",
    [BYP_LOG_INFO] = "info",   [BYP_LOG_DEBUG] = "debug",
};

static const char *const role_names[BYP_ROLE_COUNT] = {
    [BYP_ROLE_SERVER] = "server", [BYP_ROLE_CLIENT] = "client",
};

/* Keys of the file that are not in the options table. */
static const char *const list_keys[] = { "dpdk_args", "rules" };

const char *byp_backend_name(int backend)
{
    return backend >= 0 && backend < BYP_BACKEND_COUNT ? backend_names[backend] : "?";
}

const char *byp_role_name(int role)
{
    return role >= 0 && role < BYP_ROLE_COUNT ? role_names[role] : "?";
}

const char *byp_log_level_name(int level)
{
    return level >= 0 && level < BYP_LOG_LEVEL_COUNT ? log_names[level] : "?";
}

/* The names an enum option accepts. */
static const char *const *enum_names(enum opt_type t, int *n)
{
    if (t == T_enum_backend) {
        *n = BYP_BACKEND_COUNT;
        return backend_names;
    }
    if (t == T_enum_role) {
        *n = BYP_ROLE_COUNT;
        return role_names;
    }
    *n = BYP_LOG_LEVEL_COUNT;
    return log_names;
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

void byp_config_defaults(byp_config_t *cfg)
{
    memset(cfg, 0, sizeof *cfg);
#define BYP_OPT(name, env, key, type, def, min, max, doc) DEFAULT_##type(cfg->name, def);
#define DEFAULT_int(f, d) f = (d)
#define DEFAULT_bool(f, d) f = (d)
#define DEFAULT_string(f, d) f = dup_or_null(d)
#define DEFAULT_enum_backend(f, d) f = (d)
#define DEFAULT_enum_log(f, d) f = (d)
#define DEFAULT_enum_role(f, d) f = (d)
#include "options.def"
#undef BYP_OPT
}

void byp_config_free(byp_config_t *cfg)
{
#define BYP_OPT(name, env, key, type, def, min, max, doc) FREE_##type(cfg->name)
#define FREE_int(f)
#define FREE_bool(f)
#define FREE_string(f) free(f);
#define FREE_enum_backend(f)
#define FREE_enum_log(f)
#define FREE_enum_role(f)
#include "options.def"
#undef BYP_OPT
    for (int i = 0; i < cfg->n_dpdk_args; i++)
        free(cfg->dpdk_args[i]);
    free(cfg->dpdk_args);
    free(cfg->rules);
    free(cfg->path);
    byp_config_defaults(cfg);
}

/* Store a validated value in the field of option @o: @num for int/bool/enum, @str for
 * strings. */
static int store(byp_config_t *cfg, const struct opt_desc *o, long num, const char *str)
{
    void *field = (char *)cfg + o->off;
    switch (o->type) {
    case T_int:
        *(long *)field = num;
        break;
    case T_bool:
        *(bool *)field = num != 0;
        break;
    case T_enum_backend:
    case T_enum_log:
    case T_enum_role:
        *(int *)field = (int)num;
        break;
    case T_string: {
        char *copy = strdup(str);
        if (!copy)
            return -ENOMEM;
        free(*(char **)field);
        *(char **)field = copy;
        break;
    }
    }
    return 0;
}

/* ---- messages --------------------------------------------------------------------------- */

int byp_load_fail(byp_load_ctx_t *c, int code, const char *fmt, ...)
{
    if (c->rc != 0)
        return code;
    c->rc = code;
    if (c->err && c->errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->err, c->errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

const char *byp_setting_file(const byp_load_ctx_t *c, const config_setting_t *s)
{
    const char *f = config_setting_source_file(s);
    return f ? f : c->path;
}

const char *byp_setting_kind(const config_setting_t *s)
{
    switch (config_setting_type(s)) {
    case CONFIG_TYPE_GROUP: return "a group { ... }";
    case CONFIG_TYPE_INT:
    case CONFIG_TYPE_INT64: return "an integer";
    case CONFIG_TYPE_FLOAT: return "a float";
    case CONFIG_TYPE_STRING: return "a string";
    case CONFIG_TYPE_BOOL: return "a boolean";
    case CONFIG_TYPE_ARRAY: return "an array [ ... ]";
    case CONFIG_TYPE_LIST: return "a list ( ... )";
    default: return "nothing";
    }
}

/* Levenshtein distance, for "did you mean"; names are short, so quadratic is fine. */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64)
        return (size_t)-1;
    size_t row[65];
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

const char *byp_closest_name(const char *word, const char *const *names, size_t n)
{
    const char *best = NULL;
    size_t best_d = 3;  /* at most two edits away */
    for (size_t i = 0; i < n; i++) {
        if (!names[i] || !names[i][0])
            continue;
        size_t d = edit_distance(word, names[i]);
        if (d < best_d && 3 * d <= strlen(names[i])) {
            best = names[i];
            best_d = d;
        }
    }
    return best;
}

/* Copy @v into @buf for quoting in a message: at most 64 bytes, control characters as '?',
 * so a hostile value can neither break the single line nor flood it. */
static const char *printable(const char *v, char *buf, size_t n)
{
    size_t i = 0;
    for (; v[i] && i + 4 < n && i < 64; i++)
        buf[i] = (unsigned char)v[i] < 0x20 || v[i] == 0x7f ? '?' : v[i];
    if (v[i])
        buf[i++] = '.', buf[i++] = '.', buf[i++] = '.';
    buf[i] = '\0';
    return buf;
}

/* What option @o accepts, e.g. "-1..10000000" or "af_xdp, af_packet, tap, memif, pci". */
static const char *accepted(const struct opt_desc *o, char *buf, size_t n)
{
    switch (o->type) {
    case T_int:
        snprintf(buf, n, "%ld..%ld", o->min, o->max);
        break;
    case T_bool:
        snprintf(buf, n, "0 or 1");
        break;
    case T_string:
        snprintf(buf, n, "a string of %ld..%ld characters", o->min, o->max);
        break;
    case T_enum_backend:
    case T_enum_log:
    case T_enum_role: {
        int cnt;
        const char *const *names = enum_names(o->type, &cnt);
        size_t len = 0;
        buf[0] = '\0';
        for (int i = 0; i < cnt && len < n; i++)
            len += (size_t)snprintf(buf + len, n - len, "%s%s", i ? ", " : "", names[i]);
        break;
    }
    }
    return buf;
}

/* Append the names of all known variables (env) or file keys to @buf. */
static void known_names(bool env, char *buf, size_t n)
{
    size_t len = 0;
    buf[0] = '\0';
    for (int i = 0; i < OPT_COUNT && len < n; i++) {
        const char *name = env ? opts[i].env : opts[i].key;
        if (name[0])
            len += (size_t)snprintf(buf + len, n - len, "%s%s", len ? ", " : "", name);
    }
    for (size_t i = 0; !env && i < sizeof list_keys / sizeof list_keys[0] && len < n; i++)
        len += (size_t)snprintf(buf + len, n - len, ", %s", list_keys[i]);
}

/* ---- values ----------------------------------------------------------------------------- */

/* Parse a strict decimal integer (optional '-', digits, nothing else).
 * Returns 0, -EINVAL if @s is not a number, -ERANGE if it does not fit a long. */
static int parse_long(const char *s, long *out)
{
    const char *p = s + (*s == '-');
    if (*p == '\0')
        return -EINVAL;
    for (const char *q = p; *q; q++)
        if (*q < '0' || *q > '9')
            return -EINVAL;
    errno = 0;
    long v = strtol(s, NULL, 10);
    if (errno == ERANGE)
        return -ERANGE;
    *out = v;
    return 0;
}

/* Index of @name among the values of enum option @o, or -1. */
static int enum_value(const struct opt_desc *o, const char *name)
{
    int cnt;
    const char *const *names = enum_names(o->type, &cnt);
    for (int i = 0; i < cnt; i++)
        if (strcasecmp(name, names[i]) == 0)
            return i;
    return -1;
}

/* ---- environment ------------------------------------------------------------------------ */

/* Validate the value of variable @o->env and store it in @cfg.  Returns 0 or the error. */
static int apply_env(byp_load_ctx_t *c, byp_config_t *cfg, const struct opt_desc *o,
                     const char *v)
{
    char q[80], acc[256];
    long num = 0;

    switch (o->type) {
    case T_int:
    case T_bool: {
        int rc = parse_long(v, &num);
        if (rc == -EINVAL)
            return byp_load_fail(c, -EINVAL, "%s=\"%s\": not a number; accepted %s", o->env,
                                 printable(v, q, sizeof q), accepted(o, acc, sizeof acc));
        if (rc < 0 || num < o->min || num > o->max)
            return byp_load_fail(c, -EINVAL, "%s=\"%s\": out of range; accepted %s", o->env,
                                 printable(v, q, sizeof q), accepted(o, acc, sizeof acc));
        break;
    }
    case T_enum_backend:
    case T_enum_log:
    case T_enum_role:
        num = enum_value(o, v);
        if (num < 0)
            return byp_load_fail(c, -EINVAL, "%s=\"%s\": unknown value; accepted %s", o->env,
                                 printable(v, q, sizeof q), accepted(o, acc, sizeof acc));
        break;
    case T_string: {
        size_t len = strlen(v);
        if (len < (size_t)o->min || len > (size_t)o->max)
            return byp_load_fail(c, -EINVAL, "%s=\"%s\": %s; accepted %s", o->env,
                                 printable(v, q, sizeof q), len ? "too long" : "empty",
                                 accepted(o, acc, sizeof acc));
        break;
    }
    }
    if (store(cfg, o, num, v) < 0)
        return byp_load_fail(c, -ENOMEM, "out of memory reading %s", o->env);
    return 0;
}

/* Read every BYPASS_* variable of @envp (the first occurrence of a name, as getenv does).
 * Unknown names are errors.  @seen[i] tells which options have a variable, @set[i] which
 * ones a valid variable set. */
static void read_env(byp_load_ctx_t *c, byp_config_t *cfg, char *const *envp,
                     bool seen[OPT_COUNT], bool set[OPT_COUNT])
{
    static const char prefix[] = "BYPASS_";

    for (char *const *e = envp; e && *e; e++) {
        const char *eq = strchr(*e, '=');
        if (!eq || strncmp(*e, prefix, sizeof prefix - 1) != 0)
            continue;
        size_t nlen = (size_t)(eq - *e);
        int id = -1;
        for (int i = 0; i < OPT_COUNT; i++)
            if (opts[i].env[0] && strlen(opts[i].env) == nlen &&
                memcmp(opts[i].env, *e, nlen) == 0)
                id = i;
        if (id < 0) {
            char name[80], known[512];
            const char *envs[OPT_COUNT];
            for (int i = 0; i < OPT_COUNT; i++)  /* compare what follows BYPASS_ */
                envs[i] = opts[i].env[0] ? opts[i].env + sizeof prefix - 1 : "";
            snprintf(name, sizeof name, "%.*s", (int)(nlen < 64 ? nlen : 64), *e);
            printable(name, name, sizeof name);
            const char *near = byp_closest_name(name + sizeof prefix - 1, envs, OPT_COUNT);
            known_names(true, known, sizeof known);
            byp_load_fail(c, -EINVAL, "unknown environment variable %s (a typo?)%s%s%s; "
                          "known: %s", name, near ? "; did you mean BYPASS_" : "",
                          near ? near : "", near ? "?" : "", known);
            continue;
        }
        if (seen[id])
            continue;
        seen[id] = true;
        if (apply_env(c, cfg, &opts[id], eq + 1) == 0)
            set[id] = true;
    }
}

/* ---- file ------------------------------------------------------------------------------- */

/* Validate top-level setting @s, which is option @o, and store it unless @env_set. */
static int apply_file(byp_load_ctx_t *c, byp_config_t *cfg, const struct opt_desc *o,
                      const config_setting_t *s, bool env_set)
{
    const char *file = byp_setting_file(c, s);
    int line = config_setting_source_line(s);
    int type = config_setting_type(s);
    char q[80], acc[256];
    long num = 0;
    const char *str = NULL;

    switch (o->type) {
    case T_int:
    case T_bool: {
        if (type == CONFIG_TYPE_BOOL && o->type == T_bool) {
            num = config_setting_get_bool(s);
            break;
        }
        if (type != CONFIG_TYPE_INT && type != CONFIG_TYPE_INT64)
            return byp_load_fail(c, -EINVAL, "%s:%d: %s: expected %s, got %s; accepted %s",
                                 file, line, o->key,
                                 o->type == T_bool ? "true, false, 0 or 1" : "an integer",
                                 byp_setting_kind(s), accepted(o, acc, sizeof acc));
        long long v = config_setting_get_int64(s);
        if (v < o->min || v > o->max)
            return byp_load_fail(c, -EINVAL, "%s:%d: %s = %lld is out of range; accepted %s",
                                 file, line, o->key, v, accepted(o, acc, sizeof acc));
        num = (long)v;
        break;
    }
    case T_enum_backend:
    case T_enum_log:
    case T_enum_role:
        if (type != CONFIG_TYPE_STRING)
            return byp_load_fail(c, -EINVAL, "%s:%d: %s: expected a string, got %s; "
                                 "accepted %s", file, line, o->key, byp_setting_kind(s),
                                 accepted(o, acc, sizeof acc));
        str = config_setting_get_string(s);
        num = enum_value(o, str);
        if (num < 0)
            return byp_load_fail(c, -EINVAL, "%s:%d: %s = \"%s\" is not valid; accepted %s",
                                 file, line, o->key, printable(str, q, sizeof q),
                                 accepted(o, acc, sizeof acc));
        break;
    case T_string: {
        if (type != CONFIG_TYPE_STRING)
            return byp_load_fail(c, -EINVAL, "%s:%d: %s: expected a string, got %s", file,
                                 line, o->key, byp_setting_kind(s));
        str = config_setting_get_string(s);
        size_t len = strlen(str);
        if (len < (size_t)o->min || len > (size_t)o->max)
            return byp_load_fail(c, -EINVAL, "%s:%d: %s = \"%s\" is %s; accepted %s", file,
                                 line, o->key, printable(str, q, sizeof q),
                                 len ? "too long" : "empty", accepted(o, acc, sizeof acc));
        break;
    }
    }
    if (!env_set && store(cfg, o, num, str) < 0)
        return byp_load_fail(c, -ENOMEM, "out of memory reading %s", file);
    return 0;
}

/* dpdk_args = [ "--a", "--b" ];  (an array or a list of strings; replaces the default) */
static int read_dpdk_args(byp_load_ctx_t *c, byp_config_t *cfg, const config_setting_t *s)
{
    const char *file = byp_setting_file(c, s);
    int type = config_setting_type(s);
    if (type != CONFIG_TYPE_ARRAY && type != CONFIG_TYPE_LIST)
        return byp_load_fail(c, -EINVAL, "%s:%d: dpdk_args: expected a list of strings "
                             "[ \"...\", ... ], got %s", file, config_setting_source_line(s),
                             byp_setting_kind(s));
    int n = config_setting_length(s);
    for (int i = 0; i < n; i++) {
        const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
        if (config_setting_type(e) != CONFIG_TYPE_STRING)
            return byp_load_fail(c, -EINVAL, "%s:%d: dpdk_args[%d]: expected a string, got %s",
                                 byp_setting_file(c, e), config_setting_source_line(e), i,
                                 byp_setting_kind(e));
    }
    char **args = calloc((size_t)n + 1, sizeof *args);
    if (!args)
        return byp_load_fail(c, -ENOMEM, "out of memory reading %s", file);
    for (int i = 0; i < n; i++) {
        args[i] = strdup(config_setting_get_string_elem(s, (unsigned)i));
        if (!args[i]) {
            while (i-- > 0)
                free(args[i]);
            free(args);
            return byp_load_fail(c, -ENOMEM, "out of memory reading %s", file);
        }
    }
    cfg->dpdk_args = args;
    cfg->n_dpdk_args = n;
    return 0;
}

/* rules = ( { ... }, ... ); */
static int read_rules(byp_load_ctx_t *c, byp_config_t *cfg, const config_setting_t *s)
{
    if (config_setting_type(s) != CONFIG_TYPE_LIST)
        return byp_load_fail(c, -EINVAL, "%s:%d: rules: expected a list of groups "
                             "( { action = ...; ... }, ... ), got %s", byp_setting_file(c, s),
                             config_setting_source_line(s), byp_setting_kind(s));
    int n = config_setting_length(s);
    byp_rule_t *rules = calloc(n ? (size_t)n : 1, sizeof *rules);
    if (!rules)
        return byp_load_fail(c, -ENOMEM, "out of memory reading %s", c->path);
    for (int i = 0; i < n; i++) {
        int rc = byp_rule_parse(c, config_setting_get_elem(s, (unsigned)i), i + 1, &rules[i]);
        if (rc < 0) {
            free(rules);
            return rc;
        }
    }
    cfg->rules = rules;
    cfg->n_rules = n;
    return 0;
}

/* Parse the config file c->path into @cfg; options set by the environment keep their value. */
static int read_file(byp_load_ctx_t *c, byp_config_t *cfg, const bool env_set[OPT_COUNT])
{
    char why[256];
    if (byp_lcfg_load(why, sizeof why) != 0)
        return byp_load_fail(c, -ENOENT, "config file %s cannot be read: libconfig: %s", c->path,
                             why);
    config_t lc;
    config_init(&lc);
    if (!config_read_file(&lc, c->path)) {
        int rc;
        if (config_error_type(&lc) == CONFIG_ERR_FILE_IO) {
            /* The file existed a moment ago (we checked), so this is permission or the like:
             * re-open it to learn why. */
            FILE *f = fopen(c->path, "r");
            int e = f ? EIO : errno;
            if (f)
                fclose(f);
            char eb[128];
            rc = byp_load_fail(c, -e, "config file %s cannot be read: %s", c->path,
                               strerror_r(e, eb, sizeof eb));
        } else {
            const char *ef = config_error_file(&lc);
            rc = byp_load_fail(c, -EINVAL, "%s:%d: malformed config file: %s",
                               ef ? ef : c->path, config_error_line(&lc),
                               config_error_text(&lc));
        }
        config_destroy(&lc);
        return rc;
    }

    const config_setting_t *root = config_root_setting(&lc);
    int n = config_setting_length(root);
    for (int i = 0; i < n; i++) {
        const config_setting_t *s = config_setting_get_elem(root, (unsigned)i);
        const char *name = config_setting_name(s);
        int id = -1;
        for (int j = 0; j < OPT_COUNT; j++)
            if (opts[j].key[0] && strcmp(opts[j].key, name) == 0)
                id = j;
        int rc;
        if (id >= 0)
            rc = apply_file(c, cfg, &opts[id], s, env_set[id]);
        else if (strcmp(name, "dpdk_args") == 0)
            rc = read_dpdk_args(c, cfg, s);
        else if (strcmp(name, "rules") == 0)
            rc = read_rules(c, cfg, s);
        else {
            const char *keys[OPT_COUNT + 2];
            char known[512];
            for (int j = 0; j < OPT_COUNT; j++)
                keys[j] = opts[j].key;
            keys[OPT_COUNT] = list_keys[0];
            keys[OPT_COUNT + 1] = list_keys[1];
            const char *near = byp_closest_name(name, keys, OPT_COUNT + 2);
            known_names(false, known, sizeof known);
            rc = byp_load_fail(c, -EINVAL, "%s:%d: unknown key \"%s\"%s%s%s; known keys: %s",
                               byp_setting_file(c, s), config_setting_source_line(s), name,
                               near ? " (did you mean \"" : "", near ? near : "",
                               near ? "\"?)" : "", known);
        }
        if (rc < 0)     /* the file's first error; one from the environment does not stop us */
            break;
    }
    config_destroy(&lc);
    return c->rc;
}

/* ---- lookup ----------------------------------------------------------------------------- */

/* Does @path exist?  1 yes, 0 no, or a negative errno when we cannot tell (recorded). */
static int file_exists(byp_load_ctx_t *c, const char *path)
{
    struct stat st;
    if (stat(path, &st) == 0) {
        if (S_ISDIR(st.st_mode))
            return byp_load_fail(c, -EISDIR, "config file %s is a directory", path);
        return 1;
    }
    if (errno == ENOENT || errno == ENOTDIR)
        return 0;
    int e = errno;
    char eb[128];
    return byp_load_fail(c, -e, "config file %s cannot be checked: %s", path,
                         strerror_r(e, eb, sizeof eb));
}

/* Choose the config file: $BYPASS_CONFIG, <etc>/<progname>.conf, <etc>/default.conf, none.
 * Sets cfg->path (NULL for none).  Returns 0, or the error recorded. */
static int find_file(byp_load_ctx_t *c, byp_config_t *cfg, const char *progname,
                     const char *etc_dir, bool from_env)
{
    if (from_env) {
        int rc = file_exists(c, cfg->config_path);
        if (rc == 0)
            return byp_load_fail(c, -ENOENT, "config file %s (from BYPASS_CONFIG) does not "
                                 "exist; nothing will be accelerated", cfg->config_path);
        if (rc < 0)
            return rc;
        cfg->path = strdup(cfg->config_path);
        return cfg->path ? 0 : byp_load_fail(c, -ENOMEM, "out of memory");
    }

    char buf[PATH_MAX];
    const char *names[2] = { progname, "default" };
    for (int i = 0; i < 2; i++) {
        if (!names[i] || !names[i][0] || strchr(names[i], '/'))
            continue;
        int len = snprintf(buf, sizeof buf, "%s/%s.conf", etc_dir, names[i]);
        if (len < 0 || (size_t)len >= sizeof buf)
            continue;
        int rc = file_exists(c, buf);
        if (rc < 0)
            return rc;
        if (rc == 1) {
            cfg->path = strdup(buf);
            return cfg->path ? 0 : byp_load_fail(c, -ENOMEM, "out of memory");
        }
    }
    return 0;
}

int byp_config_load(byp_config_t *cfg, const char *progname, const char *etc_dir,
                    char *const *envp, char *err, size_t errlen)
{
    byp_load_ctx_t c = { .err = err, .errlen = errlen };
    bool env_seen[OPT_COUNT] = { false }, env_set[OPT_COUNT] = { false };

    if (err && errlen)
        err[0] = '\0';
    byp_config_defaults(cfg);
    read_env(&c, cfg, envp, env_seen, env_set);

    if (cfg->disable) {
        /* Pure passthrough: stay silent whatever else is wrong. */
        if (err && errlen)
            err[0] = '\0';
        return 0;
    }

    /* A BYPASS_CONFIG that failed validation must not silently fall back to /etc. */
    bool env_path = env_set[OPT_config_path];
    bool bad_env_path = env_seen[OPT_config_path] && !env_path;
    if (!bad_env_path &&
        find_file(&c, cfg, progname, etc_dir ? etc_dir : BYP_CONFIG_ETC_DIR, env_path) == 0 &&
        cfg->path) {
        c.path = cfg->path;
        read_file(&c, cfg, env_set);
    }

    if (c.rc != 0) {
        free(cfg->rules);
        cfg->rules = NULL;
        cfg->n_rules = 0;
    }
    return c.rc;
}
