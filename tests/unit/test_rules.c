/* Rule matching (byp_rule_match), with rules written as config files and parsed by the real
 * loader: first match wins, inclusive port ranges, prefixes, proto any, v4-mapped IPv6. */
#include "cfg_util.h"

#include <arpa/inet.h>

static struct sockaddr_in v4(const char *ip, int port)
{
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    CHECK(inet_pton(AF_INET, ip, &sin.sin_addr) == 1);
    return sin;
}

static struct sockaddr_in6 v6(const char *ip, int port)
{
    struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port) };
    CHECK(inet_pton(AF_INET6, ip, &sin6.sin6_addr) == 1);
    return sin6;
}

/* The action for an IPv4 socket. */
static int match4(const byp_config_t *cfg, int proto, const char *ip, int port)
{
    struct sockaddr_in sin = v4(ip, port);
    return byp_rule_match(cfg, proto, (struct sockaddr *)&sin, sizeof sin);
}

static int match6(const byp_config_t *cfg, int proto, const char *ip, int port)
{
    struct sockaddr_in6 sin6 = v6(ip, port);
    return byp_rule_match(cfg, proto, (struct sockaddr *)&sin6, sizeof sin6);
}

/* Load `rules = ( @rules );` and insist it parsed. */
static void load_rules(byp_config_t *cfg, const char *rules)
{
    char text[2048], err[BYP_CONFIG_ERR_MAX];
    snprintf(text, sizeof text, "rules = (\n%s\n);\n", rules);
    int rc = load_text(cfg, text, err);
    CHECK_STR_EQ(err, "");
    CHECK_INT(rc, ==, 0);
}

enum { K = BYP_ACT_KERNEL, A = BYP_ACT_ACCELERATE, TCP = BYP_PROTO_TCP, UDP = BYP_PROTO_UDP };

UNIT_TEST(no_rules_means_kernel)
{
    byp_config_t cfg;
    byp_config_defaults(&cfg);
    CHECK_INT(match4(&cfg, TCP, "10.0.0.1", 80), ==, K);
    CHECK_INT(match4(&cfg, UDP, "239.1.1.1", 30000), ==, K);

    load_rules(&cfg, "");
    CHECK_INT(cfg.n_rules, ==, 0);
    CHECK_INT(match4(&cfg, TCP, "10.0.0.1", 80), ==, K);
    byp_config_free(&cfg);
}

UNIT_TEST(first_match_wins)
{
    byp_config_t cfg;
    load_rules(&cfg, "{ action = \"kernel\"; proto = \"tcp\"; port = 6379; },\n"
                     "{ action = \"accelerate\"; proto = \"tcp\"; }");
    CHECK_INT(match4(&cfg, TCP, "10.0.0.1", 6379), ==, K);
    CHECK_INT(match4(&cfg, TCP, "10.0.0.1", 6380), ==, A);
    byp_config_free(&cfg);

    /* The same two rules the other way round: the catch-all now shadows the kernel rule. */
    load_rules(&cfg, "{ action = \"accelerate\"; proto = \"tcp\"; },\n"
                     "{ action = \"kernel\"; proto = \"tcp\"; port = 6379; }");
    CHECK_INT(match4(&cfg, TCP, "10.0.0.1", 6379), ==, A);
    byp_config_free(&cfg);
}

UNIT_TEST(unmatched_falls_through_to_kernel)
{
    byp_config_t cfg;
    load_rules(&cfg, "{ action = \"accelerate\"; proto = \"tcp\"; port = 6379; }");
    CHECK_INT(match4(&cfg, TCP, "10.0.0.1", 6379), ==, A);
    CHECK_INT(match4(&cfg, TCP, "10.0.0.1", 6378), ==, K);
    CHECK_INT(match4(&cfg, UDP, "10.0.0.1", 6379), ==, K);
    byp_config_free(&cfg);
}

UNIT_TEST(port_range_is_inclusive)
{
    byp_config_t cfg;
    load_rules(&cfg, "{ action = \"accelerate\"; proto = \"udp\"; port = \"30000-30100\"; }");
    CHECK_INT(cfg.rules[0].port_lo, ==, 30000);
    CHECK_INT(cfg.rules[0].port_hi, ==, 30100);
    CHECK_INT(match4(&cfg, UDP, "10.0.0.1", 29999), ==, K);
    CHECK_INT(match4(&cfg, UDP, "10.0.0.1", 30000), ==, A);
    CHECK_INT(match4(&cfg, UDP, "10.0.0.1", 30050), ==, A);
    CHECK_INT(match4(&cfg, UDP, "10.0.0.1", 30100), ==, A);
    CHECK_INT(match4(&cfg, UDP, "10.0.0.1", 30101), ==, K);
    byp_config_free(&cfg);

    /* A one-port range, and the extreme ports. */
    load_rules(&cfg, "{ action = \"accelerate\"; port = \"7-7\"; },\n"
                     "{ action = \"accelerate\"; port = \"65535-65535\"; },\n"
                     "{ action = \"accelerate\"; port = 1; }");
    CHECK_INT(match4(&cfg, TCP, "10.0.0.1", 6), ==, K);
    CHECK_INT(match4(&cfg, TCP, "10.0.0.1", 7), ==, A);
    CHECK_INT(match4(&cfg, TCP, "10.0.0.1", 8), ==, K);
    CHECK_INT(match4(&cfg, TCP, "10.0.0.1", 65535), ==, A);
    CHECK_INT(match4(&cfg, TCP, "10.0.0.1", 65534), ==, K);
    CHECK_INT(match4(&cfg, TCP, "10.0.0.1", 1), ==, A);
    CHECK_INT(match4(&cfg, TCP, "10.0.0.1", 2), ==, K);
    byp_config_free(&cfg);
}

UNIT_TEST(no_port_matches_every_port_including_0)
{
    byp_config_t cfg;
    load_rules(&cfg, "{ action = \"accelerate\"; proto = \"udp\"; }");
    CHECK_INT(match4(&cfg, UDP, "10.0.0.1", 0), ==, A);
    CHECK_INT(match4(&cfg, UDP, "10.0.0.1", 1), ==, A);
    CHECK_INT(match4(&cfg, UDP, "10.0.0.1", 65535), ==, A);
    byp_config_free(&cfg);

    /* A rule with a port never matches port 0 (bind to an ephemeral port). */
    load_rules(&cfg, "{ action = \"accelerate\"; port = \"1-65535\"; }");
    CHECK_INT(match4(&cfg, UDP, "10.0.0.1", 0), ==, K);
    CHECK_INT(match4(&cfg, UDP, "10.0.0.1", 1), ==, A);
    byp_config_free(&cfg);
}

UNIT_TEST(proto_any_matches_tcp_and_udp)
{
    byp_config_t cfg;
    load_rules(&cfg, "{ action = \"accelerate\"; port = 9000; },\n"
                     "{ action = \"accelerate\"; proto = \"udp\"; port = 9001; },\n"
                     "{ action = \"accelerate\"; proto = \"tcp\"; port = 9002; }");
    CHECK_INT(cfg.rules[0].proto, ==, BYP_PROTO_ANY);
    CHECK_INT(match4(&cfg, TCP, "10.0.0.1", 9000), ==, A);
    CHECK_INT(match4(&cfg, UDP, "10.0.0.1", 9000), ==, A);
    CHECK_INT(match4(&cfg, TCP, "10.0.0.1", 9001), ==, K);
    CHECK_INT(match4(&cfg, UDP, "10.0.0.1", 9001), ==, A);
    CHECK_INT(match4(&cfg, TCP, "10.0.0.1", 9002), ==, A);
    CHECK_INT(match4(&cfg, UDP, "10.0.0.1", 9002), ==, K);
    byp_config_free(&cfg);
}

UNIT_TEST(prefix_24)
{
    byp_config_t cfg;
    load_rules(&cfg, "{ action = \"accelerate\"; proto = \"udp\"; addr = \"239.1.1.0/24\"; }");
    CHECK_INT(match4(&cfg, UDP, "239.1.1.0", 5000), ==, A);
    CHECK_INT(match4(&cfg, UDP, "239.1.1.255", 5000), ==, A);
    CHECK_INT(match4(&cfg, UDP, "239.1.0.255", 5000), ==, K);
    CHECK_INT(match4(&cfg, UDP, "239.1.2.0", 5000), ==, K);
    CHECK_INT(match4(&cfg, UDP, "0.0.0.0", 5000), ==, K);
    byp_config_free(&cfg);
}

UNIT_TEST(prefix_host_bits_are_masked)
{
    byp_config_t cfg;
    load_rules(&cfg, "{ action = \"accelerate\"; addr = \"10.1.2.3/16\"; }");
    struct in_addr want;
    inet_pton(AF_INET, "10.1.0.0", &want);
    CHECK_INT(cfg.rules[0].addr, ==, want.s_addr);
    CHECK_INT(cfg.rules[0].prefix_len, ==, 16);
    CHECK_INT(match4(&cfg, TCP, "10.1.200.9", 1), ==, A);
    CHECK_INT(match4(&cfg, TCP, "10.2.0.0", 1), ==, K);
    byp_config_free(&cfg);
}

UNIT_TEST(prefix_32_and_plain_address)
{
    byp_config_t cfg;
    load_rules(&cfg, "{ action = \"accelerate\"; addr = \"192.168.5.7/32\"; port = 80; },\n"
                     "{ action = \"accelerate\"; addr = \"192.168.5.9\"; port = 81; }");
    CHECK_INT(cfg.rules[1].prefix_len, ==, 32);
    CHECK_INT(match4(&cfg, TCP, "192.168.5.7", 80), ==, A);
    CHECK_INT(match4(&cfg, TCP, "192.168.5.6", 80), ==, K);
    CHECK_INT(match4(&cfg, TCP, "192.168.5.8", 80), ==, K);
    CHECK_INT(match4(&cfg, TCP, "192.168.5.9", 81), ==, A);
    CHECK_INT(match4(&cfg, TCP, "192.168.5.8", 81), ==, K);
    CHECK_INT(match4(&cfg, TCP, "192.168.5.10", 81), ==, K);
    byp_config_free(&cfg);
}

UNIT_TEST(prefix_0_matches_every_ipv4)
{
    byp_config_t cfg;
    load_rules(&cfg, "{ action = \"accelerate\"; proto = \"tcp\"; addr = \"0.0.0.0/0\"; }");
    CHECK_INT(cfg.rules[0].has_addr, ==, 1);
    CHECK_INT(match4(&cfg, TCP, "0.0.0.0", 1), ==, A);
    CHECK_INT(match4(&cfg, TCP, "255.255.255.255", 1), ==, A);
    CHECK_INT(match4(&cfg, TCP, "10.9.8.7", 1), ==, A);
    /* ... but still only IPv4: a native IPv6 address has no IPv4 address to match. */
    CHECK_INT(match6(&cfg, TCP, "2001:db8::1", 1), ==, K);
    byp_config_free(&cfg);
}

UNIT_TEST(v4_mapped_ipv6_counts_as_ipv4)
{
    byp_config_t cfg;
    load_rules(&cfg, "{ action = \"accelerate\"; proto = \"udp\"; port = \"30000-30100\"; "
                     "addr = \"239.1.1.0/24\"; }");
    CHECK_INT(match6(&cfg, UDP, "::ffff:239.1.1.5", 30000), ==, A);
    CHECK_INT(match6(&cfg, UDP, "::ffff:239.1.2.5", 30000), ==, K);
    /* The port comes from sin6_port. */
    CHECK_INT(match6(&cfg, UDP, "::ffff:239.1.1.5", 30101), ==, K);
    /* Not v4-mapped: ::239.1.1.5 (v4-compatible, deprecated) and native IPv6. */
    CHECK_INT(match6(&cfg, UDP, "::239.1.1.5", 30000), ==, K);
    CHECK_INT(match6(&cfg, UDP, "ff02::1", 30000), ==, K);
    byp_config_free(&cfg);
}

UNIT_TEST(ipv6_matches_rules_without_addr)
{
    byp_config_t cfg;
    load_rules(&cfg, "{ action = \"kernel\"; addr = \"10.0.0.0/8\"; },\n"
                     "{ action = \"accelerate\"; proto = \"tcp\"; port = 443; }");
    /* The addr rule is skipped for IPv6, the port-only rule applies. */
    CHECK_INT(match6(&cfg, TCP, "2001:db8::1", 443), ==, A);
    CHECK_INT(match6(&cfg, TCP, "::", 443), ==, A);
    CHECK_INT(match6(&cfg, TCP, "2001:db8::1", 444), ==, K);
    /* A v4-mapped address in 10/8 does hit the kernel rule first. */
    CHECK_INT(match6(&cfg, TCP, "::ffff:10.0.0.1", 443), ==, K);
    byp_config_free(&cfg);
}

UNIT_TEST(missing_or_short_address)
{
    byp_config_t cfg;
    load_rules(&cfg, "{ action = \"accelerate\"; proto = \"tcp\"; port = 80; },\n"
                     "{ action = \"accelerate\"; proto = \"tcp\"; addr = \"0.0.0.0/0\"; },\n"
                     "{ action = \"kernel\"; proto = \"tcp\"; },\n"
                     "{ action = \"accelerate\"; proto = \"udp\"; }");
    /* No address: port 0 and no IPv4, so only the rules with neither port nor addr. */
    CHECK_INT(byp_rule_match(&cfg, TCP, NULL, 0), ==, K);
    CHECK_INT(byp_rule_match(&cfg, UDP, NULL, 0), ==, A);
    /* An AF_INET address cut short is ignored the same way. */
    struct sockaddr_in sin = v4("10.0.0.1", 80);
    CHECK_INT(byp_rule_match(&cfg, TCP, (struct sockaddr *)&sin, sizeof sin), ==, A);
    CHECK_INT(byp_rule_match(&cfg, TCP, (struct sockaddr *)&sin, 4), ==, K);
    byp_config_free(&cfg);
}

UNIT_TEST(address_family_other_than_inet)
{
    byp_config_t cfg;
    load_rules(&cfg, "{ action = \"accelerate\"; addr = \"0.0.0.0/0\"; },\n"
                     "{ action = \"kernel\"; }");
    struct sockaddr_storage ss = { .ss_family = AF_UNIX };
    CHECK_INT(byp_rule_match(&cfg, TCP, (struct sockaddr *)&ss, sizeof ss), ==, K);
    byp_config_free(&cfg);
}

static const struct unit_test tests[] = {
    UNIT(no_rules_means_kernel),
    UNIT(first_match_wins),
    UNIT(unmatched_falls_through_to_kernel),
    UNIT(port_range_is_inclusive),
    UNIT(no_port_matches_every_port_including_0),
    UNIT(proto_any_matches_tcp_and_udp),
    UNIT(prefix_24),
    UNIT(prefix_host_bits_are_masked),
    UNIT(prefix_32_and_plain_address),
    UNIT(prefix_0_matches_every_ipv4),
    UNIT(v4_mapped_ipv6_counts_as_ipv4),
    UNIT(ipv6_matches_rules_without_addr),
    UNIT(missing_or_short_address),
    UNIT(address_family_other_than_inet),
};

int main(int argc, char **argv)
{
    return unit_run(tests, UNIT_COUNT(tests), argc, argv);
}
