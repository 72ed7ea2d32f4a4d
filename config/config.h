/* Configuration: the options table, the config file (libconfig) and the BYPASS_* environment,
 * and the rules that decide which sockets are accelerated.
 *
 * Precedence: built-in defaults < config file < environment.  File lookup order (DESIGN.md):
 * $BYPASS_CONFIG, /etc/bypass/<program>.conf, /etc/bypass/default.conf, none.
 *
 * Nothing here prints: every problem is returned as a message in the caller's buffer, and the
 * caller (preload/) logs it and decides between kernel fallback and BYPASS_STRICT exit. */
#ifndef BYP_CONFIG_H
#define BYP_CONFIG_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

enum byp_backend {
    BYP_BACKEND_AF_XDP = 0,
    BYP_BACKEND_AF_PACKET,
    BYP_BACKEND_TAP,
    BYP_BACKEND_MEMIF,
    BYP_BACKEND_PCI,
};

/* memif_role: which side of a memif link this process is. */
enum byp_role {
    BYP_ROLE_SERVER = 0,    /* creates the control socket, waits for the client */
    BYP_ROLE_CLIENT,        /* connects to the server's socket */
};

enum byp_action {
    BYP_ACT_KERNEL = 0,     /* no match, or an explicit "kernel" rule */
    BYP_ACT_ACCELERATE = 1,
};

enum byp_proto {
    BYP_PROTO_ANY = 0,      /* rule without proto: matches tcp and udp */
    BYP_PROTO_TCP = 1,
    BYP_PROTO_UDP = 2,
};

/* One entry of `rules = ( ... )`.  Ports are inclusive; a rule without a port matches all.
 * Addresses are IPv4 prefixes in network byte order; a rule without addr matches all. */
typedef struct byp_rule {
    int action;             /* enum byp_action */
    int proto;              /* enum byp_proto */
    uint16_t port_lo, port_hi;
    bool has_addr;
    uint32_t addr;          /* network order, already masked */
    uint32_t mask;          /* network order */
    int prefix_len;
    int line;               /* line in the config file, for messages */
} byp_rule_t;

/* Every option, generated from config/options.def (one table also generates the env parsing,
 * the libconfig keys and the README table), plus the file-only lists. */
typedef struct byp_config {
#define BYP_OPT(name, env, key, type, def, min, max, doc) BYP_OPT_FIELD_##type(name)
#define BYP_OPT_FIELD_int(name) long name;
#define BYP_OPT_FIELD_bool(name) bool name;
#define BYP_OPT_FIELD_string(name) char *name;
#define BYP_OPT_FIELD_enum_backend(name) int name;
#define BYP_OPT_FIELD_enum_log(name) int name;
#define BYP_OPT_FIELD_enum_role(name) int name;
#include "options.def"
#undef BYP_OPT
    char **dpdk_args;       /* extra EAL arguments (file only) */
    int n_dpdk_args;
    byp_rule_t *rules;      /* first match wins */
    int n_rules;
    char *path;             /* the config file that was read, or NULL when none */
} byp_config_t;

/* Directory searched for <progname>.conf and default.conf in the product. */
#define BYP_CONFIG_ETC_DIR "/etc/bypass"

/* A buffer of this size always holds a whole byp_config_load message. */
#define BYP_CONFIG_ERR_MAX 1024

/* Number of values of enum byp_backend and of enum byp_log_level (common/log.h). */
#define BYP_BACKEND_COUNT 5
#define BYP_LOG_LEVEL_COUNT 4
#define BYP_ROLE_COUNT 2

/* Fill @cfg with the defaults only (no file, no environment).  Never fails.  Overwrites @cfg
 * without freeing anything it held: use byp_config_free on a loaded config instead. */
void byp_config_defaults(byp_config_t *cfg);

/* Load the configuration: defaults, then the file found by the lookup order (using
 * @progname for /etc/bypass/<progname>.conf), then the environment @envp (NULL-terminated
 * "NAME=value" strings; pass `environ`; NULL means empty).  @etc_dir is the directory searched
 * in steps 2 and 3 (BYP_CONFIG_ETC_DIR in the product, used when @etc_dir is NULL; tests pass
 * a temporary directory).  @cfg need not be initialised; call byp_config_free afterwards,
 * also after an error.
 *
 * Every BYPASS_* variable in @envp must be one of the options table: an unknown one (likely a
 * typo) is an error.  With a valid BYPASS_DISABLE=1 nothing else is looked at (no file is
 * read, no other variable is checked) and 0 is returned: pure passthrough.
 *
 * Returns 0 on success, with @err set to "".  On bad input returns a negative errno and writes
 * one clear message to @err (truncated to @errlen; BYP_CONFIG_ERR_MAX always suffices): it
 * names the file and line, or the variable and its value, and the accepted values.  When
 * several things are wrong, the first one found is reported (variables before the file).
 *   -EINVAL  malformed file, unknown key or variable, wrong type, out-of-range value, bad rule
 *   -ENOENT  $BYPASS_CONFIG names a file that does not exist
 *   -EACCES, -EISDIR, ...  a config file that exists but cannot be read
 *   -ENOMEM  out of memory
 * Even on error @cfg holds usable values: the defaults overlaid with whatever parsed, and
 * BYPASS_DISABLE / BYPASS_STRICT / BYPASS_LOG read from the environment whenever they
 * themselves are valid, so the caller can decide what to do.  On error the rules are dropped
 * (n_rules = 0), so byp_rule_match answers BYP_ACT_KERNEL for every socket. */
int byp_config_load(byp_config_t *cfg, const char *progname, const char *etc_dir,
                    char *const *envp, char *err, size_t errlen);

/* Release what byp_config_load allocated; @cfg is left with defaults. */
void byp_config_free(byp_config_t *cfg);

/* Decide for one socket: @proto is BYP_PROTO_TCP or BYP_PROTO_UDP; @addr is the local address
 * for a listening/receiving socket (the group for multicast) or the remote one for a
 * connecting/sending socket.  Returns the action of the first matching rule, BYP_ACT_KERNEL
 * when none matches.  An AF_INET6 v4-mapped address (::ffff:a.b.c.d) counts as IPv4; any other
 * non-IPv4 address never matches a rule with an address prefix, but may match one without.
 * A NULL @addr (or one too short for its family) has port 0 and no address: it matches only
 * rules with neither port nor addr.  Safe to call concurrently; it does not allocate. */
int byp_rule_match(const byp_config_t *cfg, int proto, const struct sockaddr *addr,
                   socklen_t addrlen);

/* Names, for messages and the stats tool: "af_xdp", ... and "error", "warn", "info", "debug",
 * as accepted in the file and the environment; "?" for a value out of range. */
const char *byp_backend_name(int backend);
const char *byp_log_level_name(int level);
/* "server" / "client" for an enum byp_role value; "?" when out of range. */
const char *byp_role_name(int role);

#endif
