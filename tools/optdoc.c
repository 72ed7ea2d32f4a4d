/* optdoc: the markdown table of BYPASS_* variables, generated from config/options.def.
 *
 *   optdoc                 print the table on stdout
 *   optdoc --check FILE    exit 0 when the text between the lines holding
 *                          "<!-- options:begin -->" and "<!-- options:end -->" in FILE is
 *                          exactly the table, else 1 with a message on stderr
 *   optdoc --write FILE    replace that text with the table
 *
 * A build-time host tool: it prints and exits, unlike the library. */
#include "config.h"
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BEGIN_MARK "<!-- options:begin -->"
#define END_MARK "<!-- options:end -->"

/* A growing string. */
struct buf {
    char *p;
    size_t len, cap;
};

static void put(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct buf *b, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            perror("optdoc: vsnprintf");
            exit(2);
        }
        if (b->p && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        b->cap = (b->cap + (size_t)n + 1) * 2;
        b->p = realloc(b->p, b->cap);
        if (!b->p) {
            perror("optdoc: realloc");
            exit(2);
        }
    }
}

/* The "range/values" cell of one option. */
static void put_values(struct buf *b, const char *type, long min, long max)
{
    if (strcmp(type, "int") == 0) {
        put(b, "`%ld`..`%ld`", min, max);
    } else if (strcmp(type, "bool") == 0) {
        put(b, "`0`, `1`");
    } else if (strcmp(type, "string") == 0) {
        put(b, "%ld..%ld characters", min, max);
    } else {
        bool backend = strcmp(type, "enum_backend") == 0;
        bool role = strcmp(type, "enum_role") == 0;
        int n = backend ? BYP_BACKEND_COUNT : role ? BYP_ROLE_COUNT : BYP_LOG_LEVEL_COUNT;
        for (int i = 0; i < n; i++)
            put(b, "%s`%s`", i ? ", " : "", backend ? byp_backend_name(i) :
                role ? byp_role_name(i) : byp_log_level_name(i));
    }
}

/* The "default" cell: @num for numbers and enums, @str for strings. */
static void put_default(struct buf *b, const char *type, long num, const char *str)
{
    if (strcmp(type, "string") == 0)
        put(b, str ? "`%s`" : "(none)", str);
    else if (strcmp(type, "enum_backend") == 0)
        put(b, "`%s`", byp_backend_name((int)num));
    else if (strcmp(type, "enum_log") == 0)
        put(b, "`%s`", byp_log_level_name((int)num));
    else if (strcmp(type, "enum_role") == 0)
        put(b, "`%s`", byp_role_name((int)num));
    else
        put(b, "`%ld`", num);
}

/* Per-type view of a default: a number, or a string for string options. */
#define NUM_int(d) (long)(d)
#define NUM_bool(d) (long)(d)
#define NUM_string(d) 0L
#define NUM_enum_backend(d) (long)(d)
#define NUM_enum_log(d) (long)(d)
#define NUM_enum_role(d) (long)(d)
#define STR_int(d) NULL
#define STR_bool(d) NULL
#define STR_string(d) (d)
#define STR_enum_backend(d) NULL
#define STR_enum_log(d) NULL
#define STR_enum_role(d) NULL

/* One row of the table. */
static void put_row(struct buf *b, const char *name, const char *env, const char *key,
                    const char *type, long num, const char *str, long min, long max,
                    const char *doc)
{
    if (strchr(doc, '|') || strchr(doc, '\n')) {
        fprintf(stderr, "optdoc: the doc of option %s holds '|' or a newline; it must fit one "
                "markdown table cell\n", name);
        exit(2);
    }
    put(b, "| ");
    put(b, env[0] ? "`%s`" : "(file only)", env);
    put(b, " | ");
    put(b, key[0] ? "`%s`" : "(env only)", key);
    put(b, " | ");
    put_default(b, type, num, str);
    put(b, " | ");
    put_values(b, type, min, max);
    put(b, " | %s |\n", doc);
}

static void table(struct buf *b)
{
    put(b, "| variable | config key | default | range/values | meaning |\n");
    put(b, "|---|---|---|---|---|\n");
#define BYP_OPT(name, env, key, type, def, min, max, doc) \
    put_row(b, #name, env, key, #type, NUM_##type(def), STR_##type(def), min, max, doc);
#include "options.def"
#undef BYP_OPT
}

/* Read all of @path; NULL with a message on failure. */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "optdoc: %s: %s\n", path, strerror(errno));
        return NULL;
    }
    struct buf b = { 0 };
    char chunk[4096];
    size_t n;
    put(&b, "%s", "");
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        put(&b, "%.*s", (int)n, chunk);
    fclose(f);
    return b.p;
}

/* Find the region between the marker lines: [*start, *end) in @text. */
static int region(const char *path, const char *text, size_t *start, size_t *end)
{
    const char *b = strstr(text, BEGIN_MARK);
    const char *e = b ? strstr(b, END_MARK) : NULL;
    if (!b || !e) {
        fprintf(stderr, "optdoc: %s: no \"%s\" ... \"%s\" lines\n", path, BEGIN_MARK, END_MARK);
        return -1;
    }
    const char *nl = strchr(b, '\n');
    if (!nl || nl > e) {
        fprintf(stderr, "optdoc: %s: \"%s\" must end its line\n", path, BEGIN_MARK);
        return -1;
    }
    while (e > text && e[-1] != '\n')  /* the end marker's line starts here */
        e--;
    *start = (size_t)(nl + 1 - text);
    *end = (size_t)(e - text);
    return 0;
}

int main(int argc, char **argv)
{
    struct buf t = { 0 };
    table(&t);

    if (argc == 1) {
        fputs(t.p, stdout);
        return 0;
    }
    if (argc != 3 || (strcmp(argv[1], "--check") != 0 && strcmp(argv[1], "--write") != 0)) {
        fprintf(stderr, "usage: optdoc [--check FILE | --write FILE]\n");
        return 2;
    }
    const char *path = argv[2];
    char *text = slurp(path);
    size_t start, end;
    if (!text || region(path, text, &start, &end) < 0)
        return 1;

    if (strcmp(argv[1], "--check") == 0) {
        if (end - start == t.len && memcmp(text + start, t.p, t.len) == 0)
            return 0;
        fprintf(stderr, "optdoc: %s: the options table between \"%s\" and \"%s\" is not the "
                "one config/options.def generates; replace it with the output of optdoc "
                "(also in docs/options.md):\n%s", path, BEGIN_MARK, END_MARK, t.p);
        return 1;
    }

    FILE *f = fopen(path, "w");
    if (!f || fwrite(text, 1, start, f) != start || fwrite(t.p, 1, t.len, f) != t.len ||
        fputs(text + end, f) == EOF || fclose(f) != 0) {
        fprintf(stderr, "optdoc: cannot write %s: %s\n", path, strerror(errno));
        return 1;
    }
    return 0;
}
