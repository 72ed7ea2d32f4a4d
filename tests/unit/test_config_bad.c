/* Options and config loading (byp_config_load): one clear message for every kind of bad
 * input, in a file and in the environment, and what a bad value leaves in force. */
#include "cfg_util.h"

#include "log.h"

#include <limits.h>
#include <sys/stat.h>

/* ---- bad files -------------------------------------------------------------------------- */

UNIT_TEST(malformed_file_names_file_line_and_libconfig_text)
{
    const char *err = bad_file("interface = \"eth1\";\n"
                               "spin_usec = 100;\n"
                               "rules = ( { action = \"accelerate\"; port = ; } );\n");
    CHECK_STR_HAS(err, "/test.conf:3: malformed config file: syntax error");
    err = bad_file("interface = \"eth1\";\n\n\nrules = ( { action = \"kernel\"; }\n");
    CHECK_STR_HAS(err, "/test.conf:5: malformed config file: syntax error");
}

UNIT_TEST(duplicate_keys)
{
    /* libconfig rejects them, so the last one never wins silently. */
    const char *err = bad_file("spin_usec = 1;\nspin_usec = 2;\n");
    CHECK_STR_HAS(err, "/test.conf:2: malformed config file: duplicate setting name");
    err = bad_file("rules = ( { action = \"kernel\";\n port = 1;\n port = 2; } );\n");
    CHECK_STR_HAS(err, "/test.conf:3: malformed config file: duplicate setting name");
}

UNIT_TEST(unknown_top_level_key)
{
    const char *err = bad_file("interface = \"eth1\";\nspin_us = 5;\n");
    CHECK_STR_HAS(err, "/test.conf:2: unknown key \"spin_us\"");
    CHECK_STR_HAS(err, "did you mean \"spin_usec\"?");
    CHECK_STR_HAS(err, "known keys: interface, backend, ip, gateway, memif_socket, memif_role, "
                       "memif_id, pci, dpdk_port, xdp_prog, rx_ring, spin_usec, spin_adaptive, progress_usec, shm_mb, log, "
                       "dpdk_args, rules");

    /* Environment-only options are not file keys. */
    err = bad_file("strict = 1;\n");
    CHECK_STR_HAS(err, ":1: unknown key \"strict\"");

    /* Far from every key: no suggestion. */
    err = bad_file("\n\nzzzzzzzz = 1;\n");
    CHECK_STR_HAS(err, ":3: unknown key \"zzzzzzzz\"; known keys: ");
}

UNIT_TEST(unknown_key_in_rule)
{
    const char *err = bad_file("rules = (\n"
                               "  { action = \"accelerate\"; },\n"
                               "  { action = \"accelerate\";\n"
                               "    prot = \"tcp\"; }\n"
                               ");\n");
    CHECK_STR_HAS(err, ":4: rule 2: unknown key \"prot\" (did you mean \"proto\"?)");
    CHECK_STR_HAS(err, "known keys in a rule: action, proto, port, addr");
}

UNIT_TEST(wrong_types)
{
    const char *err = bad_file("\nspin_usec = \"100\";\n");
    CHECK_STR_HAS(err, ":2: spin_usec: expected an integer, got a string; accepted -1..10000000");
    err = bad_file("spin_usec = 1.5;\n");
    CHECK_STR_HAS(err, ":1: spin_usec: expected an integer, got a float");
    err = bad_file("interface = 5;\n");
    CHECK_STR_HAS(err, ":1: interface: expected a string, got an integer");
    err = bad_file("backend = true;\n");
    CHECK_STR_HAS(err, ":1: backend: expected a string, got a boolean; accepted af_xdp, "
                       "af_packet, tap, memif, pci");
    err = bad_file("log = 3;\n");
    CHECK_STR_HAS(err, ":1: log: expected a string, got an integer; accepted error, warn, "
                       "info, debug");
    err = bad_file("dpdk_args = \"--no-pci\";\n");
    CHECK_STR_HAS(err, ":1: dpdk_args: expected a list of strings");
    CHECK_STR_HAS(err, "got a string");
    err = bad_file("dpdk_args = ( \"-n\",\n 4 );\n");
    CHECK_STR_HAS(err, ":2: dpdk_args[1]: expected a string, got an integer");
    err = bad_file("rules = { action = \"kernel\"; };\n");
    CHECK_STR_HAS(err, ":1: rules: expected a list of groups");
    CHECK_STR_HAS(err, "got a group");
    err = bad_file("rules = ( \"accelerate\" );\n");
    CHECK_STR_HAS(err, ":1: rule 1: expected a group");
    CHECK_STR_HAS(err, "got a string");
    err = bad_file("rules = ( { action = 1; } );\n");
    CHECK_STR_HAS(err, ":1: rule 1: action: expected a string, got an integer");
    err = bad_file("rules = ( { action = \"kernel\"; proto = 6; } );\n");
    CHECK_STR_HAS(err, "rule 1: proto: expected a string, got an integer");
    err = bad_file("rules = ( { action = \"kernel\"; port = 1.0; } );\n");
    CHECK_STR_HAS(err, "rule 1: port: expected an integer or a string \"A-B\", got a float");
    err = bad_file("rules = ( { action = \"kernel\"; addr = 10; } );\n");
    CHECK_STR_HAS(err, "rule 1: addr: expected a string, got an integer");
}

UNIT_TEST(out_of_range_in_file)
{
    const char *err = bad_file("spin_usec = 10000001;\n");
    CHECK_STR_HAS(err, ":1: spin_usec = 10000001 is out of range; accepted -1..10000000");
    err = bad_file("spin_usec = -2;\n");
    CHECK_STR_HAS(err, "spin_usec = -2 is out of range");
    /* A 64-bit integer.  (libconfig 1.5 needs the L: without it, it silently truncates a
     * literal that does not fit 32 bits, before we can see it.) */
    err = bad_file("progress_usec = 99999999999L;\n");
    CHECK_STR_HAS(err, "progress_usec = 99999999999 is out of range; accepted 10..1000000");
    err = bad_file("progress_usec = 9;\n");
    CHECK_STR_HAS(err, "progress_usec = 9 is out of range");
    err = bad_file("backend = \"dpdk\";\n");
    CHECK_STR_HAS(err, ":1: backend = \"dpdk\" is not valid; accepted af_xdp, af_packet, tap, "
                       "memif, pci");
    err = bad_file("log = \"verbose\";\n");
    CHECK_STR_HAS(err, "log = \"verbose\" is not valid; accepted error, warn, info, debug");
    err = bad_file("interface = \"abcdefghijklmnop\";\n"); /* 16 characters */
    CHECK_STR_HAS(err, "interface = \"abcdefghijklmnop\" is too long; accepted a string of "
                       "1..15 characters");
    err = bad_file("interface = \"\";\n");
    CHECK_STR_HAS(err, "interface = \"\" is empty");
}

UNIT_TEST(bad_rules)
{
    static const struct {
        const char *rule, *want;
    } cases[] = {
        { "action = \"accel\";",
          "rule 1: action = \"accel\" is not valid; accepted \"accelerate\", \"kernel\"" },
        { "proto = \"tcp\";",
          "rule 1 has no action; accepted action = \"accelerate\" or \"kernel\"" },
        { "action = \"kernel\"; proto = \"sctp\";",
          "rule 1: proto = \"sctp\" is not valid; accepted \"tcp\", \"udp\"" },
        { "action = \"kernel\"; port = 0;",
          "rule 1: port = 0 is out of range; accepted an integer 1..65535, or a string "
          "\"A-B\" with 1 <= A <= B <= 65535" },
        { "action = \"kernel\"; port = 65536;", "rule 1: port = 65536 is out of range" },
        { "action = \"kernel\"; port = -1;", "rule 1: port = -1 is out of range" },
        { "action = \"kernel\"; port = \"0-10\";", "rule 1: port = \"0-10\" is out of range" },
        { "action = \"kernel\"; port = \"10-65536\";",
          "rule 1: port = \"10-65536\" is out of range" },
        { "action = \"kernel\"; port = \"100-50\";",
          "rule 1: port = \"100-50\" is reversed (A > B); accepted" },
        { "action = \"kernel\"; port = \"abc\";",
          "rule 1: port = \"abc\" is not a port or port range; accepted" },
        { "action = \"kernel\"; port = \"10 - 20\";", "port = \"10 - 20\" is not a port" },
        { "action = \"kernel\"; port = \"10-\";", "port = \"10-\" is not a port" },
        { "action = \"kernel\"; port = \"1-2-3\";", "port = \"1-2-3\" is not a port" },
        { "action = \"kernel\"; addr = \"10.0.0.0/33\";",
          "rule 1: addr = \"10.0.0.0/33\" is not a valid IPv4 prefix; accepted an IPv4 prefix "
          "\"a.b.c.d/len\" with len 0..32, or \"a.b.c.d\" (= /32)" },
        { "action = \"kernel\"; addr = \"10.0.0/8\";", "addr = \"10.0.0/8\" is not a valid" },
        { "action = \"kernel\"; addr = \"300.1.1.1\";", "addr = \"300.1.1.1\" is not a valid" },
        { "action = \"kernel\"; addr = \"10.0.0.1/\";", "addr = \"10.0.0.1/\" is not a valid" },
        { "action = \"kernel\"; addr = \"10.0.0.1/-1\";", "addr = \"10.0.0.1/-1\" is not" },
        { "action = \"kernel\"; addr = \"::1/128\";", "addr = \"::1/128\" is not a valid" },
        { "action = \"kernel\"; addr = \"eth0\";", "addr = \"eth0\" is not a valid" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[512];
        snprintf(text, sizeof text, "\nrules = (\n  { %s }\n);\n", cases[i].rule);
        const char *err = bad_file(text);
        CHECK_STR_HAS(err, ":3: ");
        CHECK_STR_HAS(err, cases[i].want);
    }

    /* The rule number counts from 1, and a good rule before a bad one is dropped too. */
    const char *err = bad_file("rules = (\n { action = \"accelerate\"; port = 80; },\n"
                               " { action = \"kernel\"; port = 70000; }\n);\n");
    CHECK_STR_HAS(err, ":3: rule 2: port = 70000 is out of range");
}

/* ---- bad environment -------------------------------------------------------------------- */

UNIT_TEST(env_not_a_number)
{
    CHECK_STR_EQ(bad_env("BYPASS_SPIN_USEC", "abc"),
                 "BYPASS_SPIN_USEC=\"abc\": not a number; accepted -1..10000000");
    CHECK_STR_EQ(bad_env("BYPASS_SPIN_USEC", ""),
                 "BYPASS_SPIN_USEC=\"\": not a number; accepted -1..10000000");
    CHECK_STR_EQ(bad_env("BYPASS_SPIN_USEC", "100us"),
                 "BYPASS_SPIN_USEC=\"100us\": not a number; accepted -1..10000000");
    CHECK_STR_EQ(bad_env("BYPASS_SPIN_USEC", " 100"),
                 "BYPASS_SPIN_USEC=\" 100\": not a number; accepted -1..10000000");
    CHECK_STR_EQ(bad_env("BYPASS_PROGRESS_USEC", "1e3"),
                 "BYPASS_PROGRESS_USEC=\"1e3\": not a number; accepted 10..1000000");
    /* Control characters do not reach the message. */
    CHECK_STR_EQ(bad_env("BYPASS_SPIN_USEC", "1\n2"),
                 "BYPASS_SPIN_USEC=\"1?2\": not a number; accepted -1..10000000");
}

UNIT_TEST(env_out_of_range)
{
    CHECK_STR_EQ(bad_env("BYPASS_SPIN_USEC", "10000001"),
                 "BYPASS_SPIN_USEC=\"10000001\": out of range; accepted -1..10000000");
    CHECK_STR_EQ(bad_env("BYPASS_SPIN_USEC", "-2"),
                 "BYPASS_SPIN_USEC=\"-2\": out of range; accepted -1..10000000");
    CHECK_STR_EQ(bad_env("BYPASS_SPIN_USEC", "99999999999999999999999"),
                 "BYPASS_SPIN_USEC=\"99999999999999999999999\": out of range; "
                 "accepted -1..10000000");
    CHECK_STR_EQ(bad_env("BYPASS_PROGRESS_USEC", "9"),
                 "BYPASS_PROGRESS_USEC=\"9\": out of range; accepted 10..1000000");
    CHECK_STR_EQ(bad_env("BYPASS_PROGRESS_USEC", "1000001"),
                 "BYPASS_PROGRESS_USEC=\"1000001\": out of range; accepted 10..1000000");
}

UNIT_TEST(env_bad_enum_bool_string)
{
    CHECK_STR_EQ(bad_env("BYPASS_BACKEND", "dpdk"),
                 "BYPASS_BACKEND=\"dpdk\": unknown value; accepted af_xdp, af_packet, tap, "
                 "memif, pci");
    CHECK_STR_EQ(bad_env("BYPASS_LOG", "verbose"),
                 "BYPASS_LOG=\"verbose\": unknown value; accepted error, warn, info, debug");
    CHECK_STR_EQ(bad_env("BYPASS_STRICT", "yes"),
                 "BYPASS_STRICT=\"yes\": not a number; accepted 0 or 1");
    CHECK_STR_EQ(bad_env("BYPASS_DISABLE", "2"),
                 "BYPASS_DISABLE=\"2\": out of range; accepted 0 or 1");
    CHECK_STR_EQ(bad_env("BYPASS_INTERFACE", "abcdefghijklmnop"),
                 "BYPASS_INTERFACE=\"abcdefghijklmnop\": too long; accepted a string of "
                 "1..15 characters");
    CHECK_STR_EQ(bad_env("BYPASS_INTERFACE", ""),
                 "BYPASS_INTERFACE=\"\": empty; accepted a string of 1..15 characters");
}

UNIT_TEST(env_unknown_variable)
{
    const char *err = bad_env("BYPASS_SPIN_US", "5");
    CHECK_STR_EQ(err, "unknown environment variable BYPASS_SPIN_US (a typo?); did you mean "
                      "BYPASS_SPIN_USEC?; known: BYPASS_CONFIG, BYPASS_INTERFACE, "
                      "BYPASS_BACKEND, BYPASS_IP, BYPASS_GATEWAY, BYPASS_MEMIF_SOCKET, "
                      "BYPASS_MEMIF_ROLE, BYPASS_MEMIF_ID, BYPASS_PCI, BYPASS_DPDK_PORT, "
                      "BYPASS_XDP_PROG, BYPASS_RX_RING, BYPASS_SPIN_USEC, BYPASS_SPIN_ADAPTIVE, BYPASS_PROGRESS_USEC, BYPASS_SHM_MB, BYPASS_LOG, "
                      "BYPASS_DISABLE, BYPASS_STRICT");
    err = bad_env("BYPASS_TURBO", "1");
    CHECK_STR_HAS(err, "unknown environment variable BYPASS_TURBO (a typo?); known: ");
    /* Suggestions only for near misses: FOO is two edits from LOG, too far for 3 letters. */
    err = bad_env("BYPASS_FOO", "1");
    CHECK_STR_HAS(err, "unknown environment variable BYPASS_FOO (a typo?); known: ");
    err = bad_env("BYPASS_STICT", "1");
    CHECK_STR_HAS(err, "(a typo?); did you mean BYPASS_STRICT?; known: ");
    /* A variable with no value is still a variable. */
    err = bad_env("BYPASS_", "");
    CHECK_STR_HAS(err, "unknown environment variable BYPASS_ ");
}

UNIT_TEST(bad_env_keeps_file_value)
{
    char *path = write_file("app.conf", "spin_usec = 50;\nprogress_usec = 60;\n"
                                        "interface = \"eth3\";\n");
    char *envp[] = { env_kv("BYPASS_CONFIG", path), "BYPASS_SPIN_USEC=abc", NULL };
    byp_config_t cfg;
    char err[BYP_CONFIG_ERR_MAX];
    CHECK_INT(load(&cfg, "prog", envp, err), ==, -EINVAL);
    CHECK_STR_HAS(err, "BYPASS_SPIN_USEC=\"abc\"");
    /* The whole file is still read. */
    CHECK_INT(cfg.spin_usec, ==, 50);
    CHECK_INT(cfg.progress_usec, ==, 60);
    CHECK_STR_EQ(cfg.interface, "eth3");
    byp_config_free(&cfg);
}

UNIT_TEST(error_still_carries_strict_disable_log)
{
    char *path = write_file("broken.conf", "spin_usec = ;\n");
    char *envp[] = { "BYPASS_STRICT=1", "BYPASS_LOG=debug", env_kv("BYPASS_CONFIG", path),
                     "BYPASS_DISABLE=0", NULL };
    byp_config_t cfg;
    char err[BYP_CONFIG_ERR_MAX];
    CHECK_INT(load(&cfg, "prog", envp, err), ==, -EINVAL);
    CHECK_STR_HAS(err, "broken.conf:1: malformed config file");
    CHECK_INT(cfg.strict, ==, 1);
    CHECK_INT(cfg.log_level, ==, BYP_LOG_DEBUG);
    CHECK_INT(cfg.disable, ==, 0);
    byp_config_free(&cfg);

    /* Also when the error is another variable, before or after them. */
    char *envp2[] = { "BYPASS_SPIN_USEC=x", "BYPASS_STRICT=1", "BYPASS_LOG=warn",
                      "BYPASS_TYPO=1", NULL };
    CHECK_INT(load(&cfg, "prog", envp2, err), ==, -EINVAL);
    CHECK_STR_HAS(err, "BYPASS_SPIN_USEC=\"x\""); /* the first problem is reported */
    CHECK_INT(cfg.strict, ==, 1);
    CHECK_INT(cfg.log_level, ==, BYP_LOG_WARN);
    byp_config_free(&cfg);
}

UNIT_TEST(error_drops_rules)
{
    /* Rules that parsed are dropped when something else is wrong, so nothing accelerates. */
    static const char text[] = "rules = ( { action = \"accelerate\"; } );\nspin_usec = \"x\";\n";
    byp_config_t cfg;
    char err[BYP_CONFIG_ERR_MAX];
    CHECK_INT(load_text(&cfg, text, err), ==, -EINVAL);
    CHECK_STR_HAS(err, ":2: spin_usec: expected an integer");
    CHECK_INT(cfg.n_rules, ==, 0);
    CHECK_INT(byp_rule_match(&cfg, BYP_PROTO_TCP, NULL, 0), ==, BYP_ACT_KERNEL);
    byp_config_free(&cfg);

    char *path = write_file("good.conf", "rules = ( { action = \"accelerate\"; } );\n");
    char *envp[] = { env_kv("BYPASS_CONFIG", path), "BYPASS_LOG=loud", NULL };
    CHECK_INT(load(&cfg, "prog", envp, err), ==, -EINVAL);
    CHECK_INT(cfg.n_rules, ==, 0);
    byp_config_free(&cfg);
    /* Without the bad variable the same file does accelerate. */
    char *envp2[] = { env_kv("BYPASS_CONFIG", path), NULL };
    CHECK_INT(load(&cfg, "prog", envp2, err), ==, 0);
    CHECK_INT(cfg.n_rules, ==, 1);
    CHECK_INT(byp_rule_match(&cfg, BYP_PROTO_TCP, NULL, 0), ==, BYP_ACT_ACCELERATE);
    byp_config_free(&cfg);
}

UNIT_TEST(disable_skips_everything)
{
    char *path = write_file("broken.conf", "this is not libconfig\n");
    char *envp[] = { env_kv("BYPASS_CONFIG", path), "BYPASS_TYPO=1", "BYPASS_DISABLE=1",
                     "BYPASS_STRICT=1", NULL };
    byp_config_t cfg;
    char err[BYP_CONFIG_ERR_MAX];
    CHECK_INT(load(&cfg, "prog", envp, err), ==, 0);
    CHECK_STR_EQ(err, "");
    CHECK_INT(cfg.disable, ==, 1);
    CHECK_INT(cfg.strict, ==, 1);
    CHECK(cfg.path == NULL);
    CHECK_INT(cfg.n_rules, ==, 0);
    byp_config_free(&cfg);
}

UNIT_TEST(message_is_truncated_safely)
{
    byp_config_t cfg;
    char err[17];
    memset(err, 'x', sizeof err);
    char *envp[] = { "BYPASS_SPIN_USEC=abc", NULL };
    CHECK_INT(byp_config_load(&cfg, "prog", unit_tmpdir(), envp, err, 16), ==, -EINVAL);
    CHECK_INT(strlen(err), ==, 15);
    CHECK_INT(err[16], ==, 'x');
    byp_config_free(&cfg);
    /* No buffer at all. */
    CHECK_INT(byp_config_load(&cfg, "prog", unit_tmpdir(), envp, NULL, 0), ==, -EINVAL);
    byp_config_free(&cfg);
}

UNIT_TEST(backend_keys_memif_pci)
{
    byp_config_t cfg;
    char err[BYP_CONFIG_ERR_MAX];
    /* Defaults: a server on DPDK's and VPP's usual socket, id 0. */
    byp_config_defaults(&cfg);
    CHECK_STR_EQ(cfg.memif_socket, "/run/memif.sock");
    CHECK_INT(cfg.memif_role, ==, BYP_ROLE_SERVER);
    CHECK_INT(cfg.memif_id, ==, 0);
    byp_config_free(&cfg);
    CHECK_INT(load_text(&cfg, "backend = \"memif\";\nmemif_socket = \"/tmp/x.sock\";\n"
                        "memif_role = \"client\";\nmemif_id = 7;\nip = \"10.9.0.2/24\";\n"
                        "gateway = \"10.9.0.254\";\n", err), ==, 0);
    CHECK_INT(cfg.backend, ==, BYP_BACKEND_MEMIF);
    CHECK_STR_EQ(cfg.memif_socket, "/tmp/x.sock");
    CHECK_INT(cfg.memif_role, ==, BYP_ROLE_CLIENT);
    CHECK_INT(cfg.memif_id, ==, 7);
    CHECK_STR_EQ(cfg.gateway, "10.9.0.254");
    byp_config_free(&cfg);
    good_env(&cfg, "BYPASS_MEMIF_ROLE", "server");
    CHECK_INT(cfg.memif_role, ==, BYP_ROLE_SERVER);
    byp_config_free(&cfg);
    CHECK_INT(load_text(&cfg, "backend = \"pci\";\npci = \"0000:03:00.0\";\n", err), ==, 0);
    CHECK_STR_EQ(cfg.pci, "0000:03:00.0");
    byp_config_free(&cfg);
    CHECK_STR_EQ(bad_env("BYPASS_MEMIF_ROLE", "master"),
                 "BYPASS_MEMIF_ROLE=\"master\": unknown value; accepted server, client");
    CHECK_STR_EQ(bad_env("BYPASS_MEMIF_ID", "65536"),
                 "BYPASS_MEMIF_ID=\"65536\": out of range; accepted 0..65535");
    CHECK_STR_HAS(bad_file("memif_role = \"slave\";\n"), ":1:");
    CHECK_STR_HAS(bad_file("memif_role = \"slave\";\n"), "server, client");
}

static const struct unit_test tests[] = {
    UNIT(malformed_file_names_file_line_and_libconfig_text),
    UNIT(duplicate_keys),
    UNIT(unknown_top_level_key),
    UNIT(unknown_key_in_rule),
    UNIT(wrong_types),
    UNIT(out_of_range_in_file),
    UNIT(bad_rules),
    UNIT(env_not_a_number),
    UNIT(env_out_of_range),
    UNIT(env_bad_enum_bool_string),
    UNIT(env_unknown_variable),
    UNIT(bad_env_keeps_file_value),
    UNIT(error_still_carries_strict_disable_log),
    UNIT(error_drops_rules),
    UNIT(disable_skips_everything),
    UNIT(message_is_truncated_safely),
    UNIT(backend_keys_memif_pci),
};

int main(int argc, char **argv)
{
    return unit_run(tests, UNIT_COUNT(tests), argc, argv);
}
