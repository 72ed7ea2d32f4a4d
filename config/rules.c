/* Rules: parsing one `{ action = ...; proto = ...; port = ...; addr = ...; }` group of the
 * config file, and matching a socket against the rule list (first match wins). */
#include "config_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const rule_keys[] = { "action", "proto", "port", "addr" };
#define N_RULE_KEYS (sizeof rule_keys / sizeof rule_keys[0])

#define PORT_ACCEPTED "accepted an integer 1..65535, or a string \"A-B\" with 1 <= A <= B <= 65535"
#define ADDR_ACCEPTED "accepted an IPv4 prefix \"a.b.c.d/len\" with len 0..32, or \"a.b.c.d\" (= /32)"

/* Parse a decimal number of 1..5 digits with nothing around it; -1 if @s is not one. */
static long parse_port_number(const char *s, size_t len)
{
    if (len == 0 || len > 5)
        return -1;
    long v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

/* port = 6379 | "30000-30100" (inclusive) | "6379". */
static int parse_port(byp_load_ctx_t *c, const config_setting_t *s, int index, byp_rule_t *r)
{
    const char *file = byp_setting_file(c, s);
    int line = config_setting_source_line(s);
    int type = config_setting_type(s);

    if (type == CONFIG_TYPE_INT || type == CONFIG_TYPE_INT64) {
        long long v = config_setting_get_int64(s);
        if (v < 1 || v > 65535)
            return byp_load_fail(c, -EINVAL, "%s:%d: rule %d: port = %lld is out of range; "
                                 PORT_ACCEPTED, file, line, index, v);
        r->port_lo = r->port_hi = (uint16_t)v;
        return 0;
    }
    if (type != CONFIG_TYPE_STRING)
        return byp_load_fail(c, -EINVAL, "%s:%d: rule %d: port: expected an integer or a "
                             "string \"A-B\", got %s", file, line, index, byp_setting_kind(s));

    const char *str = config_setting_get_string(s);
    const char *dash = strchr(str, '-');
    long lo, hi;
    if (dash) {
        lo = parse_port_number(str, (size_t)(dash - str));
        hi = parse_port_number(dash + 1, strlen(dash + 1));
    } else {
        lo = hi = parse_port_number(str, strlen(str));
    }
    if (lo < 0 || hi < 0)
        return byp_load_fail(c, -EINVAL, "%s:%d: rule %d: port = \"%.40s\" is not a port or "
                             "port range; " PORT_ACCEPTED, file, line, index, str);
    if (lo < 1 || hi > 65535 || hi < 1 || lo > 65535)
        return byp_load_fail(c, -EINVAL, "%s:%d: rule %d: port = \"%s\" is out of range; "
                             PORT_ACCEPTED, file, line, index, str);
    if (lo > hi)
        return byp_load_fail(c, -EINVAL, "%s:%d: rule %d: port = \"%s\" is reversed (A > B); "
                             PORT_ACCEPTED, file, line, index, str);
    r->port_lo = (uint16_t)lo;
    r->port_hi = (uint16_t)hi;
    return 0;
}

/* addr = "a.b.c.d/len" | "a.b.c.d".  Host bits beyond the prefix are masked off. */
static int parse_addr(byp_load_ctx_t *c, const config_setting_t *s, int index, byp_rule_t *r)
{
    const char *file = byp_setting_file(c, s);
    int line = config_setting_source_line(s);

    if (config_setting_type(s) != CONFIG_TYPE_STRING)
        return byp_load_fail(c, -EINVAL, "%s:%d: rule %d: addr: expected a string, got %s; "
                             ADDR_ACCEPTED, file, line, index, byp_setting_kind(s));

    const char *str = config_setting_get_string(s);
    char ip[INET_ADDRSTRLEN];
    const char *slash = strchr(str, '/');
    size_t iplen = slash ? (size_t)(slash - str) : strlen(str);
    long len = 32;
    struct in_addr a;
    bool ok = iplen < sizeof ip;
    if (ok) {
        memcpy(ip, str, iplen);
        ip[iplen] = '\0';
        ok = inet_pton(AF_INET, ip, &a) == 1;
    }
    if (ok && slash) {
        /* Reuse the strict digit parser: 1..2 digits, 0..32. */
        size_t n = strlen(slash + 1);
        len = n <= 2 ? parse_port_number(slash + 1, n) : -1;
        ok = len >= 0 && len <= 32;
    }
    if (!ok)
        return byp_load_fail(c, -EINVAL, "%s:%d: rule %d: addr = \"%.60s\" is not a valid IPv4 "
                             "prefix; " ADDR_ACCEPTED, file, line, index, str);

    uint32_t mask = len == 0 ? 0 : htonl(0xffffffffu << (32 - len));
    r->has_addr = true;
    r->prefix_len = (int)len;
    r->mask = mask;
    r->addr = a.s_addr & mask;
    return 0;
}

/* action = "accelerate" | "kernel" (required). */
static int parse_action(byp_load_ctx_t *c, const config_setting_t *s, int index, byp_rule_t *r)
{
    const char *file = byp_setting_file(c, s);
    int line = config_setting_source_line(s);

    if (config_setting_type(s) != CONFIG_TYPE_STRING)
        return byp_load_fail(c, -EINVAL, "%s:%d: rule %d: action: expected a string, got %s; "
                             "accepted \"accelerate\", \"kernel\"", file, line, index,
                             byp_setting_kind(s));
    const char *v = config_setting_get_string(s);
    if (strcasecmp(v, "accelerate") == 0)
        r->action = BYP_ACT_ACCELERATE;
    else if (strcasecmp(v, "kernel") == 0)
        r->action = BYP_ACT_KERNEL;
    else
        return byp_load_fail(c, -EINVAL, "%s:%d: rule %d: action = \"%.40s\" is not valid; "
                             "accepted \"accelerate\", \"kernel\"", file, line, index, v);
    return 0;
}

/* proto = "tcp" | "udp" (optional: both). */
static int parse_proto(byp_load_ctx_t *c, const config_setting_t *s, int index, byp_rule_t *r)
{
    const char *file = byp_setting_file(c, s);
    int line = config_setting_source_line(s);

    if (config_setting_type(s) != CONFIG_TYPE_STRING)
        return byp_load_fail(c, -EINVAL, "%s:%d: rule %d: proto: expected a string, got %s; "
                             "accepted \"tcp\", \"udp\" (no proto: both)", file, line, index,
                             byp_setting_kind(s));
    const char *v = config_setting_get_string(s);
    if (strcasecmp(v, "tcp") == 0)
        r->proto = BYP_PROTO_TCP;
    else if (strcasecmp(v, "udp") == 0)
        r->proto = BYP_PROTO_UDP;
    else
        return byp_load_fail(c, -EINVAL, "%s:%d: rule %d: proto = \"%.40s\" is not valid; "
                             "accepted \"tcp\", \"udp\" (no proto: both)", file, line, index, v);
    return 0;
}

int byp_rule_parse(byp_load_ctx_t *c, const config_setting_t *grp, int index, byp_rule_t *r)
{
    const char *file = byp_setting_file(c, grp);
    int line = config_setting_source_line(grp);

    memset(r, 0, sizeof *r);
    r->action = BYP_ACT_KERNEL;
    r->proto = BYP_PROTO_ANY;
    r->port_lo = 0;
    r->port_hi = 65535;
    r->line = line;

    if (config_setting_type(grp) != CONFIG_TYPE_GROUP)
        return byp_load_fail(c, -EINVAL, "%s:%d: rule %d: expected a group "
                             "{ action = ...; proto = ...; port = ...; addr = ...; }, got %s",
                             file, line, index, byp_setting_kind(grp));

    bool have_action = false;
    int n = config_setting_length(grp);
    for (int i = 0; i < n; i++) {
        const config_setting_t *s = config_setting_get_elem(grp, (unsigned)i);
        const char *name = config_setting_name(s);
        int rc;
        if (strcmp(name, "action") == 0) {
            rc = parse_action(c, s, index, r);
            have_action = true;
        } else if (strcmp(name, "proto") == 0) {
            rc = parse_proto(c, s, index, r);
        } else if (strcmp(name, "port") == 0) {
            rc = parse_port(c, s, index, r);
        } else if (strcmp(name, "addr") == 0) {
            rc = parse_addr(c, s, index, r);
        } else {
            const char *near = byp_closest_name(name, rule_keys, N_RULE_KEYS);
            return byp_load_fail(c, -EINVAL, "%s:%d: rule %d: unknown key \"%s\"%s%s%s; "
                                 "known keys in a rule: action, proto, port, addr",
                                 byp_setting_file(c, s), config_setting_source_line(s), index,
                                 name, near ? " (did you mean \"" : "", near ? near : "",
                                 near ? "\"?)" : "");
        }
        if (rc < 0)
            return rc;
    }
    if (!have_action)
        return byp_load_fail(c, -EINVAL, "%s:%d: rule %d has no action; accepted "
                             "action = \"accelerate\" or \"kernel\"", file, line, index);
    return 0;
}

/* Decide for one socket: see config.h. */
int byp_rule_match(const byp_config_t *cfg, int proto, const struct sockaddr *addr,
                   socklen_t addrlen)
{
    uint16_t port = 0;
    bool is_v4 = false;
    uint32_t ip = 0;    /* network order */

    if (addr && addrlen >= sizeof(sa_family_t)) {
        if (addr->sa_family == AF_INET && addrlen >= sizeof(struct sockaddr_in)) {
            struct sockaddr_in sin;
            memcpy(&sin, addr, sizeof sin);
            port = ntohs(sin.sin_port);
            ip = sin.sin_addr.s_addr;
            is_v4 = true;
        } else if (addr->sa_family == AF_INET6 && addrlen >= sizeof(struct sockaddr_in6)) {
            struct sockaddr_in6 sin6;
            memcpy(&sin6, addr, sizeof sin6);
            port = ntohs(sin6.sin6_port);
            if (IN6_IS_ADDR_V4MAPPED(&sin6.sin6_addr)) {
                memcpy(&ip, &sin6.sin6_addr.s6_addr[12], sizeof ip);
                is_v4 = true;
            }
        }
    }

    for (int i = 0; i < cfg->n_rules; i++) {
        const byp_rule_t *r = &cfg->rules[i];
        if (r->proto != BYP_PROTO_ANY && r->proto != proto)
            continue;
        if (port < r->port_lo || port > r->port_hi)
            continue;
        if (r->has_addr && (!is_v4 || (ip & r->mask) != r->addr))
            continue;
        return r->action;
    }
    return BYP_ACT_KERNEL;
}
