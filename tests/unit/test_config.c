/* Options and config loading (byp_config_load): lookup order, precedence, every value type.
 * The messages for bad input are in test_config_bad.c. */
#include "cfg_util.h"

#include "log.h"

#include <limits.h>
#include <sys/stat.h>

/* A whole file with every key. */
static const char full_conf[] =
    "interface = \"veth1\";\n"                                        /* 1 */
    "backend = \"af_packet\";\n"                                      /* 2 */
    "dpdk_args = [ \"--log-level=8\", \"-n\", \"4\" ];\n"             /* 3 */
    "spin_usec = 250;\n"                                              /* 4 */
    "progress_usec = 500;\n"                                          /* 5 */
    "log = \"info\";\n"                                               /* 6 */
    "rules = (\n"                                                     /* 7 */
    "  { action = \"accelerate\"; proto = \"tcp\"; port = 6379; },\n" /* 8 */
    "  { action = \"accelerate\"; proto = \"udp\"; port = \"30000-30100\";\n"
    "    addr = \"239.1.1.0/24\"; },\n"                               /* 9-10 */
    "  { action = \"kernel\"; proto = \"udp\"; port = 53; }\n"        /* 11 */
    ");\n";

/* ---- defaults and a good file ----------------------------------------------------------- */

UNIT_TEST(defaults)
{
    byp_config_t cfg;
    memset(&cfg, 0x5a, sizeof cfg);
    byp_config_defaults(&cfg);
    CHECK(cfg.config_path == NULL);
    CHECK(cfg.interface == NULL);
    CHECK_INT(cfg.backend, ==, BYP_BACKEND_AF_XDP);
    CHECK_INT(cfg.spin_usec, ==, 100);
    CHECK_INT(cfg.progress_usec, ==, 1000);
    CHECK_INT(cfg.log_level, ==, BYP_LOG_ERROR);
    CHECK_INT(cfg.disable, ==, 0);
    CHECK_INT(cfg.strict, ==, 0);
    CHECK_INT(cfg.n_rules, ==, 0);
    CHECK(cfg.rules == NULL);
    CHECK_INT(cfg.n_dpdk_args, ==, 0);
    CHECK(cfg.path == NULL);
}

UNIT_TEST(no_file_no_env_is_defaults)
{
    byp_config_t cfg;
    char err[BYP_CONFIG_ERR_MAX] = "junk";
    char *envp[] = { "PATH=/usr/bin", "BYPASSX=1", "NOT_BYPASS_FOO=2", NULL };
    CHECK_INT(load(&cfg, "prog", envp, err), ==, 0);
    CHECK_STR_EQ(err, "");
    CHECK(cfg.path == NULL);
    CHECK_INT(cfg.spin_usec, ==, 100);
    CHECK_INT(cfg.n_rules, ==, 0);
    byp_config_free(&cfg);

    /* A NULL environment is an empty one. */
    CHECK_INT(load(&cfg, "prog", NULL, err), ==, 0);
    byp_config_free(&cfg);
}

UNIT_TEST(full_file)
{
    byp_config_t cfg;
    char err[BYP_CONFIG_ERR_MAX];
    CHECK_INT(load_text(&cfg, full_conf, err), ==, 0);
    CHECK_STR_EQ(err, "");
    CHECK_STR_HAS(cfg.path, "/test.conf");
    CHECK_STR_EQ(cfg.interface, "veth1");
    CHECK_INT(cfg.backend, ==, BYP_BACKEND_AF_PACKET);
    CHECK_INT(cfg.n_dpdk_args, ==, 3);
    CHECK_STR_EQ(cfg.dpdk_args[0], "--log-level=8");
    CHECK_STR_EQ(cfg.dpdk_args[2], "4");
    CHECK(cfg.dpdk_args[3] == NULL);
    CHECK_INT(cfg.spin_usec, ==, 250);
    CHECK_INT(cfg.progress_usec, ==, 500);
    CHECK_INT(cfg.log_level, ==, BYP_LOG_INFO);

    CHECK_INT(cfg.n_rules, ==, 3);
    CHECK_INT(cfg.rules[0].action, ==, BYP_ACT_ACCELERATE);
    CHECK_INT(cfg.rules[0].proto, ==, BYP_PROTO_TCP);
    CHECK_INT(cfg.rules[0].port_lo, ==, 6379);
    CHECK_INT(cfg.rules[0].port_hi, ==, 6379);
    CHECK_INT(cfg.rules[0].has_addr, ==, 0);
    CHECK_INT(cfg.rules[0].line, ==, 8);
    CHECK_INT(cfg.rules[1].proto, ==, BYP_PROTO_UDP);
    CHECK_INT(cfg.rules[1].port_lo, ==, 30000);
    CHECK_INT(cfg.rules[1].port_hi, ==, 30100);
    CHECK_INT(cfg.rules[1].has_addr, ==, 1);
    CHECK_INT(cfg.rules[1].prefix_len, ==, 24);
    CHECK_INT(cfg.rules[1].addr, ==, htonl(0xef010100u));
    CHECK_INT(cfg.rules[1].mask, ==, htonl(0xffffff00u));
    CHECK_INT(cfg.rules[2].action, ==, BYP_ACT_KERNEL);
    CHECK_INT(cfg.rules[2].port_lo, ==, 53);
    CHECK_INT(cfg.rules[2].line, ==, 11);

    byp_config_free(&cfg);
    /* free leaves the defaults. */
    CHECK(cfg.rules == NULL && cfg.n_rules == 0 && cfg.interface == NULL && cfg.path == NULL);
    CHECK_INT(cfg.spin_usec, ==, 100);
}

UNIT_TEST(empty_file_and_empty_lists)
{
    byp_config_t cfg;
    char err[BYP_CONFIG_ERR_MAX];
    CHECK_INT(load_text(&cfg, "", err), ==, 0);
    CHECK(cfg.path != NULL);
    CHECK_INT(cfg.n_rules, ==, 0);
    byp_config_free(&cfg);
    CHECK_INT(load_text(&cfg, "dpdk_args = [ ];\nrules = ( );\n# comment\n", err), ==, 0);
    CHECK_STR_EQ(err, "");
    CHECK_INT(cfg.n_dpdk_args, ==, 0);
    CHECK_INT(cfg.n_rules, ==, 0);
    byp_config_free(&cfg);
}

UNIT_TEST(enum_values_in_file_and_env)
{
    static const char *const backends[] = { "af_xdp", "af_packet", "tap", "memif", "pci" };
    static const char *const levels[] = { "error", "warn", "info", "debug" };
    byp_config_t cfg;
    char err[BYP_CONFIG_ERR_MAX], text[128];
    for (int i = 0; i < 5; i++) {
        CHECK_STR_EQ(byp_backend_name(i), backends[i]);
        snprintf(text, sizeof text, "backend = \"%s\";\n", backends[i]);
        CHECK_INT(load_text(&cfg, text, err), ==, 0);
        CHECK_INT(cfg.backend, ==, i);
        byp_config_free(&cfg);
        good_env(&cfg, "BYPASS_BACKEND", backends[i]);
        CHECK_INT(cfg.backend, ==, i);
        byp_config_free(&cfg);
    }
    for (int i = 0; i < 4; i++) {
        CHECK_STR_EQ(byp_log_level_name(i), levels[i]);
        snprintf(text, sizeof text, "log = \"%s\";\n", levels[i]);
        CHECK_INT(load_text(&cfg, text, err), ==, 0);
        CHECK_INT(cfg.log_level, ==, i);
        byp_config_free(&cfg);
        good_env(&cfg, "BYPASS_LOG", levels[i]);
        CHECK_INT(cfg.log_level, ==, i);
        byp_config_free(&cfg);
    }
    CHECK_STR_EQ(byp_backend_name(5), "?");
    CHECK_STR_EQ(byp_backend_name(-1), "?");
    CHECK_STR_EQ(byp_log_level_name(4), "?");
}

UNIT_TEST(spin_minus_one_and_edges)
{
    byp_config_t cfg;
    char err[BYP_CONFIG_ERR_MAX];
    CHECK_INT(load_text(&cfg, "spin_usec = -1;\n", err), ==, 0);
    CHECK_INT(cfg.spin_usec, ==, -1);
    byp_config_free(&cfg);
    good_env(&cfg, "BYPASS_SPIN_USEC", "-1");
    CHECK_INT(cfg.spin_usec, ==, -1);
    byp_config_free(&cfg);
    good_env(&cfg, "BYPASS_SPIN_USEC", "0");
    CHECK_INT(cfg.spin_usec, ==, 0);
    byp_config_free(&cfg);
    good_env(&cfg, "BYPASS_SPIN_USEC", "10000000");
    CHECK_INT(cfg.spin_usec, ==, 10000000);
    byp_config_free(&cfg);
    good_env(&cfg, "BYPASS_PROGRESS_USEC", "10");
    CHECK_INT(cfg.progress_usec, ==, 10);
    byp_config_free(&cfg);
    good_env(&cfg, "BYPASS_PROGRESS_USEC", "1000000");
    CHECK_INT(cfg.progress_usec, ==, 1000000);
    byp_config_free(&cfg);
    good_env(&cfg, "BYPASS_INTERFACE", "abcdefghijklmno"); /* 15 characters */
    CHECK_STR_EQ(cfg.interface, "abcdefghijklmno");
    byp_config_free(&cfg);
    good_env(&cfg, "BYPASS_STRICT", "1");
    CHECK_INT(cfg.strict, ==, 1);
    byp_config_free(&cfg);
    good_env(&cfg, "BYPASS_STRICT", "0");
    CHECK_INT(cfg.strict, ==, 0);
    byp_config_free(&cfg);
}

/* ---- precedence and lookup -------------------------------------------------------------- */

UNIT_TEST(env_overrides_file_overrides_defaults)
{
    char *path = write_file("app.conf", "interface = \"eth1\";\nbackend = \"memif\";\n"
                                        "spin_usec = 50;\n");
    char *envp[] = { env_kv("BYPASS_CONFIG", path), "BYPASS_SPIN_USEC=7",
                     "BYPASS_BACKEND=tap", NULL };
    byp_config_t cfg;
    char err[BYP_CONFIG_ERR_MAX];
    CHECK_INT(load(&cfg, "prog", envp, err), ==, 0);
    CHECK_INT(cfg.spin_usec, ==, 7);                 /* env over file */
    CHECK_INT(cfg.backend, ==, BYP_BACKEND_TAP);     /* env over file */
    CHECK_STR_EQ(cfg.interface, "eth1");             /* file over default */
    CHECK_INT(cfg.progress_usec, ==, 1000);          /* default */
    CHECK_STR_EQ(cfg.config_path, path);
    CHECK_STR_EQ(cfg.path, path);
    byp_config_free(&cfg);

    char *envp2[] = { env_kv("BYPASS_CONFIG", path), "BYPASS_INTERFACE=veth9", NULL };
    CHECK_INT(load(&cfg, "prog", envp2, err), ==, 0);
    CHECK_STR_EQ(cfg.interface, "veth9");
    CHECK_INT(cfg.spin_usec, ==, 50);
    byp_config_free(&cfg);
}

UNIT_TEST(first_occurrence_of_a_variable_wins)
{
    byp_config_t cfg;
    char err[BYP_CONFIG_ERR_MAX];
    char *envp[] = { "BYPASS_SPIN_USEC=5", "BYPASS_SPIN_USEC=6", NULL };
    CHECK_INT(load(&cfg, "prog", envp, err), ==, 0);
    CHECK_INT(cfg.spin_usec, ==, 5);
    byp_config_free(&cfg);
}

UNIT_TEST(lookup_order)
{
    char prog_conf[PATH_MAX], default_conf[PATH_MAX];
    snprintf(prog_conf, sizeof prog_conf, "%s/myapp.conf", unit_tmpdir());
    snprintf(default_conf, sizeof default_conf, "%s/default.conf", unit_tmpdir());
    byp_config_t cfg;
    char err[BYP_CONFIG_ERR_MAX];
    char *noenv[] = { NULL };

    /* 4. nothing: no file. */
    CHECK_INT(load(&cfg, "myapp", noenv, err), ==, 0);
    CHECK(cfg.path == NULL);
    byp_config_free(&cfg);

    /* 3. default.conf. */
    write_file("default.conf", "spin_usec = 3;\n");
    CHECK_INT(load(&cfg, "myapp", noenv, err), ==, 0);
    CHECK_STR_EQ(cfg.path, default_conf);
    CHECK_INT(cfg.spin_usec, ==, 3);
    byp_config_free(&cfg);

    /* 2. <progname>.conf before default.conf. */
    write_file("myapp.conf", "spin_usec = 2;\n");
    CHECK_INT(load(&cfg, "myapp", noenv, err), ==, 0);
    CHECK_STR_EQ(cfg.path, prog_conf);
    CHECK_INT(cfg.spin_usec, ==, 2);
    byp_config_free(&cfg);

    /* Another program, or none, gets default.conf. */
    CHECK_INT(load(&cfg, "other", noenv, err), ==, 0);
    CHECK_STR_EQ(cfg.path, default_conf);
    byp_config_free(&cfg);
    CHECK_INT(load(&cfg, NULL, noenv, err), ==, 0);
    CHECK_STR_EQ(cfg.path, default_conf);
    byp_config_free(&cfg);

    /* 1. $BYPASS_CONFIG before both. */
    char *explicit = write_file("explicit.conf", "spin_usec = 1;\n");
    char *envp[] = { env_kv("BYPASS_CONFIG", explicit), NULL };
    CHECK_INT(load(&cfg, "myapp", envp, err), ==, 0);
    CHECK_STR_EQ(cfg.path, explicit);
    CHECK_INT(cfg.spin_usec, ==, 1);
    byp_config_free(&cfg);
}

UNIT_TEST(bypass_config_missing_is_enoent)
{
    char *envp[] = { env_kv("BYPASS_CONFIG", "/nonexistent/dir/app.conf"), NULL };
    write_file("default.conf", "rules = ( { action = \"accelerate\"; } );\n");
    byp_config_t cfg;
    char err[BYP_CONFIG_ERR_MAX];
    CHECK_INT(load(&cfg, "prog", envp, err), ==, -ENOENT);
    CHECK_STR_HAS(err, "/nonexistent/dir/app.conf");
    CHECK_STR_HAS(err, "does not exist");
    CHECK_STR_HAS(err, "nothing will be accelerated");
    /* default.conf is not a fallback for a named file. */
    CHECK(cfg.path == NULL);
    CHECK_INT(cfg.n_rules, ==, 0);
    byp_config_free(&cfg);
}

UNIT_TEST(bypass_config_empty_is_an_error)
{
    write_file("default.conf", "rules = ( { action = \"accelerate\"; } );\n");
    char *envp[] = { "BYPASS_CONFIG=", NULL };
    byp_config_t cfg;
    char err[BYP_CONFIG_ERR_MAX];
    CHECK_INT(load(&cfg, "prog", envp, err), ==, -EINVAL);
    CHECK_STR_EQ(err, "BYPASS_CONFIG=\"\": empty; accepted a string of 1..4095 characters");
    /* default.conf is not a fallback for a bad BYPASS_CONFIG. */
    CHECK(cfg.path == NULL);
    CHECK_INT(cfg.n_rules, ==, 0);
    byp_config_free(&cfg);
}

UNIT_TEST(bypass_config_directory)
{
    char *envp[] = { env_kv("BYPASS_CONFIG", unit_tmpdir()), NULL };
    byp_config_t cfg;
    char err[BYP_CONFIG_ERR_MAX];
    CHECK_INT(load(&cfg, "prog", envp, err), ==, -EISDIR);
    CHECK_STR_HAS(err, unit_tmpdir());
    CHECK_STR_HAS(err, "is a directory");
    byp_config_free(&cfg);
}

UNIT_TEST(unreadable_file)
{
    char *path = write_file("secret.conf", "spin_usec = 1;\n");
    CHECK(chmod(path, 0) == 0);
    if (geteuid() == 0) {
        /* Root reads any file: become nobody (this is the test's own process), with the
         * directory searchable so that only the file itself is refused. */
        CHECK(chmod(unit_tmpdir(), 0711) == 0);
        CHECK(setgid(65534) == 0);
        CHECK(setuid(65534) == 0);
    }
    char *envp[] = { env_kv("BYPASS_CONFIG", path), NULL };
    byp_config_t cfg;
    char err[BYP_CONFIG_ERR_MAX];
    CHECK_INT(load(&cfg, "prog", envp, err), ==, -EACCES);
    CHECK_STR_HAS(err, path);
    CHECK_STR_HAS(err, "cannot be read");
    byp_config_free(&cfg);
}

static const struct unit_test tests[] = {
    UNIT(defaults),
    UNIT(no_file_no_env_is_defaults),
    UNIT(full_file),
    UNIT(empty_file_and_empty_lists),
    UNIT(enum_values_in_file_and_env),
    UNIT(spin_minus_one_and_edges),
    UNIT(env_overrides_file_overrides_defaults),
    UNIT(first_occurrence_of_a_variable_wins),
    UNIT(lookup_order),
    UNIT(bypass_config_missing_is_enoent),
    UNIT(bypass_config_empty_is_an_error),
    UNIT(bypass_config_directory),
    UNIT(unreadable_file),
};

int main(int argc, char **argv)
{
    return unit_run(tests, UNIT_COUNT(tests), argc, argv);
}
