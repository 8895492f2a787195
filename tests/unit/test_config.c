/* Unit tests of agent/config.c: flags, SGPROBE_* variables, defaults and errors. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "../../agent/config.h"

extern char **environ;

/* getopt_long may permute argv, so every argument lives in writable storage. */
typedef struct {
	char buf[2048];
	char *argv[40];
	int argc;
} args_t;

/* Fills `a` with "sgprobe-agent" followed by the NULL-terminated arguments. */
static char **args_make(args_t *a, ...)
{
	const char *s = "sgprobe-agent";
	size_t used = 0;
	va_list ap;

	a->argc = 0;
	va_start(ap, a);
	while (s) {
		size_t len = strlen(s) + 1;

		assert_true(used + len <= sizeof(a->buf));
		assert_true((size_t)a->argc + 1 < sizeof(a->argv) / sizeof(a->argv[0]));
		memcpy(a->buf + used, s, len);
		a->argv[a->argc++] = a->buf + used;
		used += len;
		s = va_arg(ap, const char *);
	}
	va_end(ap);
	a->argv[a->argc] = NULL;
	return a->argv;
}

/* Unsets every SGPROBE_* variable, so that no test sees another's (or the caller's). */
static int clear_env(void **state)
{
	bool again = true;

	(void)state;
	while (again) {
		char **e;

		again = false;
		for (e = environ; e && *e; e++) {
			char name[256];
			const char *eq = strchr(*e, '=');
			size_t len = eq ? (size_t)(eq - *e) : strlen(*e);

			if (strncmp(*e, "SGPROBE_", 8) || len >= sizeof(name))
				continue;
			memcpy(name, *e, len);
			name[len] = '\0';
			unsetenv(name);
			/* environ changed under us: start over. */
			again = true;
			break;
		}
	}
	return 0;
}

#define BIT(v) (1u << (v))

static void test_config_defaults(void **state)
{
	char err[CONFIG_ERR_MAX] = "";
	config_t cfg;
	args_t a;
	char **argv = args_make(&a, NULL);

	(void)state;
	assert_int_equal(config_parse(&cfg, a.argc, argv, err, sizeof(err)), 0);
	assert_false(cfg.once);
	assert_false(cfg.help);
	assert_null(cfg.matrix);
	assert_null(cfg.role);
	assert_int_equal(cfg.format, OUTPUT_TABLE);
	assert_int_equal(cfg.timeout_ms, 0);
	assert_int_equal(cfg.concurrency, 256);
	assert_int_equal(cfg.rate, 100);
	assert_int_equal(cfg.per_host, 4);
	assert_null(cfg.probe_ca_file);
	assert_null(cfg.agent_address);
	assert_null(cfg.json_file);
	assert_int_equal(cfg.fail_on, config_default_fail_on());
}

/* DESIGN.md: the default --fail-on is every verdict but ok and unverified. */
static void test_config_default_fail_on_is_every_verdict_but_ok_and_unverified(void **state)
{
	uint32_t want = BIT(VERDICT_INCONCLUSIVE) | BIT(VERDICT_NO_LISTENER) |
	                BIT(VERDICT_TLS_FAILED) | BIT(VERDICT_BLOCKED) | BIT(VERDICT_VIOLATION);

	(void)state;
	assert_int_equal(config_default_fail_on(), want);
	assert_false(config_default_fail_on() & BIT(VERDICT_OK));
	assert_false(config_default_fail_on() & BIT(VERDICT_UNVERIFIED));
	/* Cell states are never the verdict of one probe. */
	assert_false(config_default_fail_on() & BIT(VERDICT_UNOBSERVED));
	assert_false(config_default_fail_on() & BIT(VERDICT_STALE));
	assert_false(config_default_fail_on() & BIT(VERDICT_UNKNOWN));
}

static void test_config_each_flag_sets_its_field(void **state)
{
	char err[CONFIG_ERR_MAX] = "";
	config_t cfg;
	args_t a;
	char **argv =
	    args_make(&a, "--once", "--matrix", "m.json", "--role", "main-backend", "--format",
	              "json", "--fail-on", "violation", "--timeout-ms", "750", "--concurrency",
	              "12", "--rate", "34", "--per-host", "2", "--probe-ca-file", "ca.pem",
	              "--agent-address", "10.0.1.5", "--json-file", "out.json", "--help", NULL);

	(void)state;
	assert_int_equal(config_parse(&cfg, a.argc, argv, err, sizeof(err)), 0);
	assert_true(cfg.once);
	assert_true(cfg.help);
	assert_string_equal(cfg.matrix, "m.json");
	assert_string_equal(cfg.role, "main-backend");
	assert_int_equal(cfg.format, OUTPUT_JSON);
	assert_int_equal(cfg.fail_on, BIT(VERDICT_VIOLATION));
	assert_int_equal(cfg.timeout_ms, 750);
	assert_int_equal(cfg.concurrency, 12);
	assert_int_equal(cfg.rate, 34);
	assert_int_equal(cfg.per_host, 2);
	assert_string_equal(cfg.probe_ca_file, "ca.pem");
	assert_string_equal(cfg.agent_address, "10.0.1.5");
	assert_string_equal(cfg.json_file, "out.json");
}

static void test_config_flag_with_equals_sign(void **state)
{
	char err[CONFIG_ERR_MAX] = "";
	config_t cfg;
	args_t a;
	char **argv = args_make(&a, "--rate=7", "--format=junit", "--role=backup", NULL);

	(void)state;
	assert_int_equal(config_parse(&cfg, a.argc, argv, err, sizeof(err)), 0);
	assert_int_equal(cfg.rate, 7);
	assert_int_equal(cfg.format, OUTPUT_JUNIT);
	assert_string_equal(cfg.role, "backup");
}

/* The limits accept their bounds: 0 means "no limit" for --rate and --per-host. */
static void test_config_numbers_at_their_bounds(void **state)
{
	char err[CONFIG_ERR_MAX] = "";
	config_t cfg;
	args_t a;
	char **argv = args_make(&a, "--rate", "0", "--per-host", "0", "--concurrency", "1",
	                        "--timeout-ms", "1", NULL);

	(void)state;
	assert_int_equal(config_parse(&cfg, a.argc, argv, err, sizeof(err)), 0);
	assert_int_equal(cfg.rate, 0);
	assert_int_equal(cfg.per_host, 0);
	assert_int_equal(cfg.concurrency, 1);
	assert_int_equal(cfg.timeout_ms, 1);

	argv = args_make(&a, "--rate", "1000000", "--per-host", "65536", "--concurrency", "65536",
	                 "--timeout-ms", "60000", NULL);
	assert_int_equal(config_parse(&cfg, a.argc, argv, err, sizeof(err)), 0);
	assert_int_equal(cfg.rate, 1000000);
	assert_int_equal(cfg.per_host, 65536);
	assert_int_equal(cfg.concurrency, 65536);
	assert_int_equal(cfg.timeout_ms, 60000);
}

static void test_config_environment_sets_each_field(void **state)
{
	char err[CONFIG_ERR_MAX] = "";
	config_t cfg;
	args_t a;
	char **argv = args_make(&a, NULL);

	(void)state;
	setenv("SGPROBE_ONCE", "1", 1);
	setenv("SGPROBE_MATRIX", "/etc/sgprobe/matrix.json", 1);
	setenv("SGPROBE_ROLE", "nginx", 1);
	setenv("SGPROBE_FORMAT", "junit", 1);
	setenv("SGPROBE_FAIL_ON", "blocked", 1);
	setenv("SGPROBE_TIMEOUT_MS", "1500", 1);
	setenv("SGPROBE_CONCURRENCY", "64", 1);
	setenv("SGPROBE_RATE", "0", 1);
	setenv("SGPROBE_PER_HOST", "9", 1);
	setenv("SGPROBE_PROBE_CA_FILE", "/ca.pem", 1);
	setenv("SGPROBE_AGENT_ADDRESS", "10.0.2.7", 1);
	setenv("SGPROBE_JSON_FILE", "/tmp/r.json", 1);
	assert_int_equal(config_parse(&cfg, a.argc, argv, err, sizeof(err)), 0);
	assert_true(cfg.once);
	assert_string_equal(cfg.matrix, "/etc/sgprobe/matrix.json");
	assert_string_equal(cfg.role, "nginx");
	assert_int_equal(cfg.format, OUTPUT_JUNIT);
	assert_int_equal(cfg.fail_on, BIT(VERDICT_BLOCKED));
	assert_int_equal(cfg.timeout_ms, 1500);
	assert_int_equal(cfg.concurrency, 64);
	assert_int_equal(cfg.rate, 0);
	assert_int_equal(cfg.per_host, 9);
	assert_string_equal(cfg.probe_ca_file, "/ca.pem");
	assert_string_equal(cfg.agent_address, "10.0.2.7");
	assert_string_equal(cfg.json_file, "/tmp/r.json");
}

static void test_config_flag_overrides_its_variable(void **state)
{
	char err[CONFIG_ERR_MAX] = "";
	config_t cfg;
	args_t a;
	char **argv =
	    args_make(&a, "--once", "--matrix", "flag.json", "--role", "flag-role", "--format",
	              "table", "--fail-on", "violation", "--timeout-ms", "5", "--concurrency", "6",
	              "--rate", "7", "--per-host", "8", "--probe-ca-file", "flag.pem",
	              "--agent-address", "10.9.9.9", "--json-file", "flag-out.json", NULL);

	(void)state;
	setenv("SGPROBE_ONCE", "0", 1);
	setenv("SGPROBE_MATRIX", "env.json", 1);
	setenv("SGPROBE_ROLE", "env-role", 1);
	setenv("SGPROBE_FORMAT", "json", 1);
	setenv("SGPROBE_FAIL_ON", "blocked", 1);
	setenv("SGPROBE_TIMEOUT_MS", "1500", 1);
	setenv("SGPROBE_CONCURRENCY", "64", 1);
	setenv("SGPROBE_RATE", "50", 1);
	setenv("SGPROBE_PER_HOST", "9", 1);
	setenv("SGPROBE_PROBE_CA_FILE", "env.pem", 1);
	setenv("SGPROBE_AGENT_ADDRESS", "10.0.2.7", 1);
	setenv("SGPROBE_JSON_FILE", "env-out.json", 1);
	assert_int_equal(config_parse(&cfg, a.argc, argv, err, sizeof(err)), 0);
	assert_true(cfg.once);
	assert_string_equal(cfg.matrix, "flag.json");
	assert_string_equal(cfg.role, "flag-role");
	assert_int_equal(cfg.format, OUTPUT_TABLE);
	assert_int_equal(cfg.fail_on, BIT(VERDICT_VIOLATION));
	assert_int_equal(cfg.timeout_ms, 5);
	assert_int_equal(cfg.concurrency, 6);
	assert_int_equal(cfg.rate, 7);
	assert_int_equal(cfg.per_host, 8);
	assert_string_equal(cfg.probe_ca_file, "flag.pem");
	assert_string_equal(cfg.agent_address, "10.9.9.9");
	assert_string_equal(cfg.json_file, "flag-out.json");
}

/*
 * The key's secret: --key-file (a flag) wins over SGPROBE_KEY, as every flag
 * wins over its variable; SGPROBE_KEY wins over SGPROBE_KEY_FILE (both variables,
 * and the secret itself is what ECS delivers).
 */
static void test_config_key_file_flag_wins_over_sgprobe_key(void **state)
{
	char err[CONFIG_ERR_MAX] = "";
	config_t cfg;
	args_t a;
	char **argv;

	(void)state;
	setenv("SGPROBE_KEY", "env-secret", 1);
	setenv("SGPROBE_KEY_FILE", "env.key", 1);
	argv = args_make(&a, "--once", "--key-file", "flag.key", NULL);
	assert_int_equal(config_parse(&cfg, a.argc, argv, err, sizeof(err)), 0);
	assert_string_equal(cfg.key_file, "flag.key");
	assert_null(cfg.key);

	argv = args_make(&a, "--once", NULL);
	assert_int_equal(config_parse(&cfg, a.argc, argv, err, sizeof(err)), 0);
	assert_string_equal(cfg.key, "env-secret");
	assert_string_equal(cfg.key_file, "env.key");

	unsetenv("SGPROBE_KEY");
	argv = args_make(&a, "--once", NULL);
	assert_int_equal(config_parse(&cfg, a.argc, argv, err, sizeof(err)), 0);
	assert_null(cfg.key);
	assert_string_equal(cfg.key_file, "env.key");
}

/* A variable set to the empty string is as good as unset: the default stays. */
static void test_config_empty_variable_is_ignored(void **state)
{
	char err[CONFIG_ERR_MAX] = "";
	config_t cfg;
	args_t a;
	char **argv = args_make(&a, NULL);

	(void)state;
	setenv("SGPROBE_RATE", "", 1);
	setenv("SGPROBE_ONCE", "", 1);
	setenv("SGPROBE_FAIL_ON", "", 1);
	assert_int_equal(config_parse(&cfg, a.argc, argv, err, sizeof(err)), 0);
	assert_int_equal(cfg.rate, 100);
	assert_false(cfg.once);
	assert_int_equal(cfg.fail_on, config_default_fail_on());
}

static void test_config_sgprobe_once_values(void **state)
{
	static const struct {
		const char *value;
		bool once;
	} good[] = {{"1", true}, {"true", true}, {"0", false}, {"false", false}};
	static const char *const bad[] = {"yes", "2", "TRUE", "on", "1 "};
	char err[CONFIG_ERR_MAX];
	config_t cfg;
	args_t a;
	char **argv;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		setenv("SGPROBE_ONCE", good[i].value, 1);
		argv = args_make(&a, NULL);
		err[0] = '\0';
		if (config_parse(&cfg, a.argc, argv, err, sizeof(err)))
			fail_msg("SGPROBE_ONCE=%s refused: %s", good[i].value, err);
		if (cfg.once != good[i].once)
			fail_msg("SGPROBE_ONCE=%s gave once=%d", good[i].value, cfg.once);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		setenv("SGPROBE_ONCE", bad[i], 1);
		argv = args_make(&a, NULL);
		err[0] = '\0';
		if (config_parse(&cfg, a.argc, argv, err, sizeof(err)) != -EINVAL)
			fail_msg("SGPROBE_ONCE=%s accepted", bad[i]);
		if (!strstr(err, "SGPROBE_ONCE") || !strstr(err, bad[i]))
			fail_msg("SGPROBE_ONCE=%s: message does not name it: %s", bad[i], err);
	}
	/* --once wins over SGPROBE_ONCE=0. */
	setenv("SGPROBE_ONCE", "0", 1);
	argv = args_make(&a, "--once", NULL);
	assert_int_equal(config_parse(&cfg, a.argc, argv, err, sizeof(err)), 0);
	assert_true(cfg.once);
}

/* Every numeric flag refuses what is not a plain integer in its range, naming the flag. */
static void test_config_bad_numbers_name_the_flag(void **state)
{
	static const struct {
		const char *flag;
		const char *value;
		const char *msg;
	} cases[] = {
	    {"--rate", "fast", "--rate: 'fast' is not an integer in 0-1000000"},
	    {"--rate", "-1", "--rate: '-1' is not an integer in 0-1000000"},
	    {"--rate", "+5", "--rate: '+5' is not an integer in 0-1000000"},
	    {"--rate", "10x", "--rate: '10x' is not an integer in 0-1000000"},
	    {"--rate", "1.5", "--rate: '1.5' is not an integer in 0-1000000"},
	    {"--rate", "", "--rate: '' is not an integer in 0-1000000"},
	    {"--rate", "1000001", "--rate: '1000001' is not an integer in 0-1000000"},
	    {"--rate", "99999999999999999999999",
	     "--rate: '99999999999999999999999' is not an integer in 0-1000000"},
	    {"--concurrency", "0", "--concurrency: '0' is not an integer in 1-65536"},
	    {"--concurrency", "65537", "--concurrency: '65537' is not an integer in 1-65536"},
	    {"--concurrency", "-256", "--concurrency: '-256' is not an integer in 1-65536"},
	    {"--per-host", "65537", "--per-host: '65537' is not an integer in 0-65536"},
	    {"--per-host", "4 ", "--per-host: '4 ' is not an integer in 0-65536"},
	    {"--timeout-ms", "0", "--timeout-ms: '0' is not an integer in 1-60000"},
	    {"--timeout-ms", "60001", "--timeout-ms: '60001' is not an integer in 1-60000"},
	    {"--timeout-ms", "2s", "--timeout-ms: '2s' is not an integer in 1-60000"},
	    {"--timeout-ms", "4294967297",
	     "--timeout-ms: '4294967297' is not an integer in 1-60000"},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char err[CONFIG_ERR_MAX] = "";
		config_t cfg;
		args_t a;
		char **argv = args_make(&a, cases[i].flag, cases[i].value, NULL);
		int result = config_parse(&cfg, a.argc, argv, err, sizeof(err));

		if (result != -EINVAL)
			fail_msg("%s '%s': got %d, want -EINVAL", cases[i].flag, cases[i].value,
			         result);
		if (strcmp(err, cases[i].msg))
			fail_msg("%s '%s': message \"%s\", want \"%s\"", cases[i].flag,
			         cases[i].value, err, cases[i].msg);
	}
}

/* A bad variable names the variable, so that the user finds it in the task definition. */
static void test_config_bad_variable_names_the_variable(void **state)
{
	static const struct {
		const char *name;
		const char *value;
		const char *msg;
	} cases[] = {
	    {"SGPROBE_RATE", "fast",
	     "--rate: 'fast' is not an integer in 0-1000000 (from SGPROBE_RATE)"},
	    {"SGPROBE_CONCURRENCY", "0",
	     "--concurrency: '0' is not an integer in 1-65536 (from SGPROBE_CONCURRENCY)"},
	    {"SGPROBE_PER_HOST", "-4",
	     "--per-host: '-4' is not an integer in 0-65536 (from SGPROBE_PER_HOST)"},
	    {"SGPROBE_TIMEOUT_MS", "2000ms",
	     "--timeout-ms: '2000ms' is not an integer in 1-60000 (from SGPROBE_TIMEOUT_MS)"},
	    {"SGPROBE_FORMAT", "xml",
	     "--format: 'xml' is not table, json or junit (from SGPROBE_FORMAT)"},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char err[CONFIG_ERR_MAX] = "";
		config_t cfg;
		args_t a;
		char **argv = args_make(&a, NULL);
		int result;

		clear_env(NULL);
		setenv(cases[i].name, cases[i].value, 1);
		result = config_parse(&cfg, a.argc, argv, err, sizeof(err));
		if (result != -EINVAL)
			fail_msg("%s=%s: got %d, want -EINVAL", cases[i].name, cases[i].value,
			         result);
		if (strcmp(err, cases[i].msg))
			fail_msg("%s=%s: message \"%s\", want \"%s\"", cases[i].name,
			         cases[i].value, err, cases[i].msg);
	}
}

/* A bad variable is an error even when its flag would override it. */
static void test_config_bad_variable_fails_even_with_its_flag(void **state)
{
	char err[CONFIG_ERR_MAX] = "";
	config_t cfg;
	args_t a;
	char **argv = args_make(&a, "--rate", "5", NULL);

	(void)state;
	setenv("SGPROBE_RATE", "fast", 1);
	assert_int_equal(config_parse(&cfg, a.argc, argv, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "SGPROBE_RATE"));
}

static void test_config_unknown_option(void **state)
{
	char err[CONFIG_ERR_MAX] = "";
	config_t cfg;
	args_t a;
	char **argv = args_make(&a, "--once", "--bogus", NULL);

	(void)state;
	assert_int_equal(config_parse(&cfg, a.argc, argv, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "unknown option"));
	assert_non_null(strstr(err, "--bogus"));

	argv = args_make(&a, "-x", NULL);
	err[0] = '\0';
	assert_int_equal(config_parse(&cfg, a.argc, argv, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "unknown option: -x");
}

/* In a group of short options the message names the option, not a neighbour. */
static void test_config_unknown_short_option_in_a_group(void **state)
{
	char err[CONFIG_ERR_MAX] = "";
	config_t cfg;
	args_t a;
	char **argv = args_make(&a, "--role", "nginx", "-qz", NULL);

	(void)state;
	assert_int_equal(config_parse(&cfg, a.argc, argv, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "unknown option: -q");
}

/* A flag without its value is refused and named, not taken as set. */
static void test_config_missing_value(void **state)
{
	char err[CONFIG_ERR_MAX] = "";
	config_t cfg;
	args_t a;
	char **argv = args_make(&a, "--once", "--matrix", NULL);

	(void)state;
	assert_int_equal(config_parse(&cfg, a.argc, argv, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "--matrix"));
}

/* --once takes no value: `--once=0` must not silently enable it. */
static void test_config_once_refuses_a_value(void **state)
{
	char err[CONFIG_ERR_MAX] = "";
	config_t cfg;
	args_t a;
	char **argv = args_make(&a, "--once=0", NULL);

	(void)state;
	assert_int_equal(config_parse(&cfg, a.argc, argv, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "--once=0"));
}

static void test_config_unexpected_positional_argument(void **state)
{
	char err[CONFIG_ERR_MAX] = "";
	config_t cfg;
	args_t a;
	char **argv = args_make(&a, "--once", "matrix.json", NULL);

	(void)state;
	assert_int_equal(config_parse(&cfg, a.argc, argv, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "unexpected argument: matrix.json");

	/* Before the flags too: getopt_long permutes it to the end. */
	argv = args_make(&a, "stray", "--role", "nginx", NULL);
	err[0] = '\0';
	assert_int_equal(config_parse(&cfg, a.argc, argv, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "unexpected argument: stray");

	/* After "--" a flag is an argument like any other. */
	argv = args_make(&a, "--", "--once", NULL);
	err[0] = '\0';
	assert_int_equal(config_parse(&cfg, a.argc, argv, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "unexpected argument: --once");
}

static void test_config_format_values(void **state)
{
	static const struct {
		const char *name;
		output_format_t format;
	} good[] = {{"table", OUTPUT_TABLE}, {"json", OUTPUT_JSON}, {"junit", OUTPUT_JUNIT}};
	static const char *const bad[] = {"xml", "JSON", "", "tables", "json "};
	char err[CONFIG_ERR_MAX];
	config_t cfg;
	args_t a;
	char **argv;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		argv = args_make(&a, "--format", good[i].name, NULL);
		err[0] = '\0';
		if (config_parse(&cfg, a.argc, argv, err, sizeof(err)))
			fail_msg("--format %s refused: %s", good[i].name, err);
		assert_int_equal(cfg.format, good[i].format);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char want[CONFIG_ERR_MAX];

		argv = args_make(&a, "--format", bad[i], NULL);
		err[0] = '\0';
		if (config_parse(&cfg, a.argc, argv, err, sizeof(err)) != -EINVAL)
			fail_msg("--format '%s' accepted", bad[i]);
		snprintf(want, sizeof(want), "--format: '%s' is not table, json or junit", bad[i]);
		assert_string_equal(err, want);
	}
}

static void test_config_fail_on_sets_exactly_the_listed_verdicts(void **state)
{
	char err[CONFIG_ERR_MAX] = "";
	config_t cfg;
	args_t a;
	char **argv = args_make(&a, "--fail-on", "violation,blocked", NULL);

	(void)state;
	assert_int_equal(config_parse(&cfg, a.argc, argv, err, sizeof(err)), 0);
	assert_int_equal(cfg.fail_on, BIT(VERDICT_VIOLATION) | BIT(VERDICT_BLOCKED));

	/* Every ordered verdict can be named, ok and unverified included. */
	argv =
	    args_make(&a, "--fail-on",
	              "ok,unverified,inconclusive,no_listener,tls_failed,blocked,violation", NULL);
	assert_int_equal(config_parse(&cfg, a.argc, argv, err, sizeof(err)), 0);
	assert_int_equal(cfg.fail_on, BIT(VERDICT_COUNT_ORDERED) - 1);

	/* A space after a comma is forgiven. */
	argv = args_make(&a, "--fail-on", "unverified, no_listener", NULL);
	assert_int_equal(config_parse(&cfg, a.argc, argv, err, sizeof(err)), 0);
	assert_int_equal(cfg.fail_on, BIT(VERDICT_UNVERIFIED) | BIT(VERDICT_NO_LISTENER));

	/* The variable works the same way. */
	setenv("SGPROBE_FAIL_ON", "tls_failed,inconclusive", 1);
	argv = args_make(&a, NULL);
	assert_int_equal(config_parse(&cfg, a.argc, argv, err, sizeof(err)), 0);
	assert_int_equal(cfg.fail_on, BIT(VERDICT_TLS_FAILED) | BIT(VERDICT_INCONCLUSIVE));
}

/* An unknown verdict, or a cell state, is refused and named: a typo must not pass a run. */
static void test_config_fail_on_refuses_unknown_verdicts_and_cell_states(void **state)
{
	static const struct {
		const char *list;
		const char *bad;
	} cases[] = {
	    {"violation,blockd", "'blockd'"}, {"stale", "'stale'"},
	    {"unobserved", "'unobserved'"},   {"blocked,unknown", "'unknown'"},
	    {"VIOLATION", "'VIOLATION'"},     {"violation;blocked", "'violation;blocked'"},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char err[CONFIG_ERR_MAX] = "";
		config_t cfg;
		args_t a;
		char **argv = args_make(&a, "--fail-on", cases[i].list, NULL);

		if (config_parse(&cfg, a.argc, argv, err, sizeof(err)) != -EINVAL)
			fail_msg("--fail-on %s accepted", cases[i].list);
		if (!strstr(err, "--fail-on") || !strstr(err, cases[i].bad))
			fail_msg("--fail-on %s: message does not name %s: %s", cases[i].list,
			         cases[i].bad, err);
	}
}

static void test_config_fail_on_variable_error_names_the_variable(void **state)
{
	char err[CONFIG_ERR_MAX] = "";
	config_t cfg;
	args_t a;
	char **argv = args_make(&a, NULL);

	(void)state;
	setenv("SGPROBE_FAIL_ON", "violation,stale", 1);
	assert_int_equal(config_parse(&cfg, a.argc, argv, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "'stale'"));
	assert_non_null(strstr(err, "(from SGPROBE_FAIL_ON)"));
}

/* On an error the caller's set is left as it was. */
static void test_config_parse_fail_on_leaves_output_on_error(void **state)
{
	char err[CONFIG_ERR_MAX] = "";
	uint32_t set = 0x5a;

	(void)state;
	assert_int_equal(config_parse_fail_on("blocked,nope", &set, err, sizeof(err)), -EINVAL);
	assert_int_equal(set, 0x5a);
	assert_non_null(strstr(err, "'nope'"));
	assert_int_equal(config_parse_fail_on("violation", &set, err, sizeof(err)), 0);
	assert_int_equal(set, BIT(VERDICT_VIOLATION));
}

/* A message longer than the caller's buffer is cut, never written past it. */
static void test_config_error_fits_a_small_buffer(void **state)
{
	char err[24];
	config_t cfg;
	args_t a;
	char **argv = args_make(&a, NULL);

	(void)state;
	memset(err, 'x', sizeof(err));
	setenv("SGPROBE_RATE", "a-very-long-and-wrong-rate-value", 1);
	assert_int_equal(config_parse(&cfg, a.argc, argv, err, sizeof(err)), -EINVAL);
	/* Cut to the buffer: 23 characters and the NUL. */
	assert_non_null(memchr(err, '\0', sizeof(err)));
	assert_int_equal(strlen(err), sizeof(err) - 1);
	assert_memory_equal(err, "--rate: 'a-very-long-an", sizeof(err) - 1);
}

/*
 * config_parse() can be called again (tests, a reload): the state getopt_long
 * keeps between calls must not leak from one parse into the next, even when the
 * first stopped in the middle of a group of short options.
 */
static void test_config_parses_again_after_an_error(void **state)
{
	char err[CONFIG_ERR_MAX] = "";
	config_t cfg;
	args_t a, b;
	char **argv = args_make(&a, "-qz", NULL);

	(void)state;
	assert_int_equal(config_parse(&cfg, a.argc, argv, err, sizeof(err)), -EINVAL);
	argv = args_make(&b, "--once", "--rate", "3", NULL);
	err[0] = '\0';
	if (config_parse(&cfg, b.argc, argv, err, sizeof(err)))
		fail_msg("second parse failed: %s", err);
	assert_true(cfg.once);
	assert_int_equal(cfg.rate, 3);
}

/* The daemon's flags: defaults, each flag, each variable, and the bad values. */
static void test_config_daemon_flags(void **state)
{
	char err[CONFIG_ERR_MAX] = "";
	config_t cfg;
	args_t a;
	char **argv = args_make(&a, NULL);

	(void)state;
	assert_int_equal(config_parse(&cfg, a.argc, argv, err, sizeof(err)), 0);
	assert_null(cfg.collector);
	assert_int_equal(cfg.interval_s, 0);
	assert_null(cfg.plan_cache);
	assert_int_equal(cfg.queue_reports, 0);
	assert_int_equal(cfg.queue_bytes, 0);
	assert_int_equal(cfg.stop_timeout_s, 10);
	assert_int_equal(cfg.log_level, LOG_LEVEL_INFO);
	assert_null(cfg.health_file);

	argv = args_make(&a, "--collector", "http://127.0.0.1:9443", "--interval-s", "5",
	                 "--plan-cache", "/tmp/plan.json", "--queue-reports", "7", "--queue-bytes",
	                 "2097152", "--stop-timeout-s", "3", "--log-level", "warn", "--health-file",
	                 "/tmp/health.json", NULL);
	assert_int_equal(config_parse(&cfg, a.argc, argv, err, sizeof(err)), 0);
	assert_string_equal(cfg.collector, "http://127.0.0.1:9443");
	assert_int_equal(cfg.interval_s, 5);
	assert_string_equal(cfg.plan_cache, "/tmp/plan.json");
	assert_int_equal(cfg.queue_reports, 7);
	assert_int_equal(cfg.queue_bytes, 2097152);
	assert_int_equal(cfg.stop_timeout_s, 3);
	assert_int_equal(cfg.log_level, LOG_LEVEL_WARN);
	assert_string_equal(cfg.health_file, "/tmp/health.json");

	setenv("SGPROBE_COLLECTOR", "https://collector.internal:9443", 1);
	setenv("SGPROBE_INTERVAL_S", "30", 1);
	setenv("SGPROBE_PLAN_CACHE", "/var/plan.json", 1);
	setenv("SGPROBE_QUEUE_REPORTS", "9", 1);
	setenv("SGPROBE_QUEUE_BYTES", "1048576", 1);
	setenv("SGPROBE_STOP_TIMEOUT_S", "20", 1);
	setenv("SGPROBE_LOG_LEVEL", "debug", 1);
	setenv("SGPROBE_HEALTH_FILE", "/var/health.json", 1);
	argv = args_make(&a, NULL);
	assert_int_equal(config_parse(&cfg, a.argc, argv, err, sizeof(err)), 0);
	assert_string_equal(cfg.collector, "https://collector.internal:9443");
	assert_int_equal(cfg.interval_s, 30);
	assert_string_equal(cfg.plan_cache, "/var/plan.json");
	assert_int_equal(cfg.queue_reports, 9);
	assert_int_equal(cfg.queue_bytes, 1048576);
	assert_int_equal(cfg.stop_timeout_s, 20);
	assert_int_equal(cfg.log_level, LOG_LEVEL_DEBUG);
	assert_string_equal(cfg.health_file, "/var/health.json");
}

static void test_config_daemon_flags_refuse_bad_values(void **state)
{
	static const struct {
		const char *flag;
		const char *value;
		const char *msg;
	} cases[] = {
	    {"--collector", "127.0.0.1:9443",
	     "--collector: '127.0.0.1:9443' is not an http:// or https:// URL"},
	    {"--interval-s", "0", "--interval-s: '0' is not an integer in 1-86400"},
	    {"--queue-reports", "0", "--queue-reports: '0' is not an integer in 1-1000000"},
	    {"--queue-bytes", "1000",
	     "--queue-bytes: '1000' is not an integer in 1048576-1073741824"},
	    {"--stop-timeout-s", "0", "--stop-timeout-s: '0' is not an integer in 1-3600"},
	    {"--log-level", "loud", "--log-level: 'loud' is not debug, info, warn or error"},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char err[CONFIG_ERR_MAX] = "";
		config_t cfg;
		args_t a;
		char **argv = args_make(&a, cases[i].flag, cases[i].value, NULL);

		assert_int_equal(config_parse(&cfg, a.argc, argv, err, sizeof(err)), -EINVAL);
		assert_string_equal(err, cases[i].msg);
	}
	setenv("SGPROBE_STOP_TIMEOUT_S", "never", 1);
	{
		char err[CONFIG_ERR_MAX] = "";
		config_t cfg;
		args_t a;
		char **argv = args_make(&a, NULL);

		assert_int_equal(config_parse(&cfg, a.argc, argv, err, sizeof(err)), -EINVAL);
		assert_non_null(strstr(err, "(from SGPROBE_STOP_TIMEOUT_S)"));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup(test_config_defaults, clear_env),
	    cmocka_unit_test_setup(
	        test_config_default_fail_on_is_every_verdict_but_ok_and_unverified, clear_env),
	    cmocka_unit_test_setup(test_config_each_flag_sets_its_field, clear_env),
	    cmocka_unit_test_setup(test_config_flag_with_equals_sign, clear_env),
	    cmocka_unit_test_setup(test_config_numbers_at_their_bounds, clear_env),
	    cmocka_unit_test_setup(test_config_environment_sets_each_field, clear_env),
	    cmocka_unit_test_setup(test_config_flag_overrides_its_variable, clear_env),
	    cmocka_unit_test_setup(test_config_key_file_flag_wins_over_sgprobe_key, clear_env),
	    cmocka_unit_test_setup(test_config_empty_variable_is_ignored, clear_env),
	    cmocka_unit_test_setup(test_config_sgprobe_once_values, clear_env),
	    cmocka_unit_test_setup(test_config_bad_numbers_name_the_flag, clear_env),
	    cmocka_unit_test_setup(test_config_bad_variable_names_the_variable, clear_env),
	    cmocka_unit_test_setup(test_config_bad_variable_fails_even_with_its_flag, clear_env),
	    cmocka_unit_test_setup(test_config_unknown_option, clear_env),
	    cmocka_unit_test_setup(test_config_unknown_short_option_in_a_group, clear_env),
	    cmocka_unit_test_setup(test_config_missing_value, clear_env),
	    cmocka_unit_test_setup(test_config_once_refuses_a_value, clear_env),
	    cmocka_unit_test_setup(test_config_unexpected_positional_argument, clear_env),
	    cmocka_unit_test_setup(test_config_format_values, clear_env),
	    cmocka_unit_test_setup(test_config_fail_on_sets_exactly_the_listed_verdicts, clear_env),
	    cmocka_unit_test_setup(test_config_fail_on_refuses_unknown_verdicts_and_cell_states,
	                           clear_env),
	    cmocka_unit_test_setup(test_config_fail_on_variable_error_names_the_variable,
	                           clear_env),
	    cmocka_unit_test_setup(test_config_parse_fail_on_leaves_output_on_error, clear_env),
	    cmocka_unit_test_setup(test_config_error_fits_a_small_buffer, clear_env),
	    cmocka_unit_test_setup(test_config_parses_again_after_an_error, clear_env),
	    cmocka_unit_test_setup(test_config_daemon_flags, clear_env),
	    cmocka_unit_test_setup(test_config_daemon_flags_refuse_bad_values, clear_env),
	};

	return cmocka_run_group_tests(tests, clear_env, clear_env);
}
