/* libconfig in a namespace of its own (dlmopen): see lcfg.h. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>

#include "lcfg.h"

#ifndef BYP_LIBCONFIG_SONAME
#define BYP_LIBCONFIG_SONAME "libconfig.so.9"
#endif

struct byp_lcfg byp_lcfg;

static pthread_once_t once = PTHREAD_ONCE_INIT;
static char why[256];

#define SYM(field, name)                                                                    \
    do {                                                                                    \
        *(void **)&byp_lcfg.field = dlsym(h, name);                                         \
        if (byp_lcfg.field == NULL) {                                                       \
            snprintf(why, sizeof why, "%s has no %s", BYP_LIBCONFIG_SONAME, name);          \
            return;                                                                         \
        }                                                                                   \
    } while (0)

static void load(void)
{
    void *h = dlmopen(LM_ID_NEWLM, BYP_LIBCONFIG_SONAME, RTLD_NOW | RTLD_LOCAL);
    if (h == NULL) {
        const char *e = dlerror();
        snprintf(why, sizeof why, "%s", e != NULL ? e : "cannot load " BYP_LIBCONFIG_SONAME);
        return;
    }
    SYM(setting_get_bool, "config_setting_get_bool");
    SYM(setting_get_elem, "config_setting_get_elem");
    SYM(setting_get_int64, "config_setting_get_int64");
    SYM(setting_get_string, "config_setting_get_string");
    SYM(setting_get_string_elem, "config_setting_get_string_elem");
    SYM(setting_length, "config_setting_length");
    SYM(read_file, "config_read_file");
    SYM(destroy, "config_destroy");
    SYM(init, "config_init");   /* last: byp_lcfg.init set means all are */
}

int byp_lcfg_load(char *err, size_t errlen)
{
    pthread_once(&once, load);
    if (byp_lcfg.init != NULL)
        return 0;
    if (err != NULL && errlen > 0)
        snprintf(err, errlen, "%s", why);
    return -1;
}
