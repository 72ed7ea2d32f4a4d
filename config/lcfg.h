/* libconfig, loaded into a link-map namespace of its own (dlmopen) instead of being linked.
 *
 * A program may export functions with libconfig's names: lighttpd exports config_init and
 * config_read.  Linked, libconfig's own internal call (config_read_file calls config_read)
 * and our calls took the program's functions, and lighttpd crashed in our constructor.
 * Debian's libconfig.a is not position-independent (it cannot be linked in with its names
 * hidden), and dlopen(RTLD_DEEPBIND) mixes allocators: libc's strdup took the program's
 * malloc (jemalloc in redis and varnish) and libconfig's free was libc's ("free(): invalid
 * pointer").  In its own namespace libconfig has its own libc: its names, allocations and
 * stdio are all its own; it sees neither the program's symbols nor ours.  Our nine calls go
 * through the pointers below, which the names are defined to; we keep no pointer into its
 * memory past config_destroy. */
#ifndef BYP_LCFG_H
#define BYP_LCFG_H

#include <libconfig.h>

struct byp_lcfg {
    void (*init)(config_t *config);
    void (*destroy)(config_t *config);
    int (*read_file)(config_t *config, const char *filename);
    int (*setting_get_bool)(const config_setting_t *setting);
    config_setting_t *(*setting_get_elem)(const config_setting_t *setting, unsigned int idx);
    long long (*setting_get_int64)(const config_setting_t *setting);
    const char *(*setting_get_string)(const config_setting_t *setting);
    const char *(*setting_get_string_elem)(const config_setting_t *setting, int idx);
    int (*setting_length)(const config_setting_t *setting);
};
extern struct byp_lcfg byp_lcfg;

/* Load libconfig once.  0, or -1 with a message in @err. */
int byp_lcfg_load(char *err, size_t errlen);

#define config_init (byp_lcfg.init)
#define config_destroy (byp_lcfg.destroy)
#define config_read_file (byp_lcfg.read_file)
#define config_setting_get_bool (byp_lcfg.setting_get_bool)
#define config_setting_get_elem (byp_lcfg.setting_get_elem)
#define config_setting_get_int64 (byp_lcfg.setting_get_int64)
#define config_setting_get_string (byp_lcfg.setting_get_string)
#define config_setting_get_string_elem (byp_lcfg.setting_get_string_elem)
#define config_setting_length (byp_lcfg.setting_length)

#endif
