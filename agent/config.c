/*
 * config: flags and SGPROBE_* environment variables.
 */
#include <errno.h>
#include <arpa/inet.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "probe.h"

enum {
	OPT_ONCE = 256,
	OPT_MATRIX,
	OPT_ROLE,
	OPT_FORMAT,
	OPT_FAIL_ON,
	OPT_TIMEOUT_MS,
	OPT_CONCURRENCY,
	OPT_RATE,
	OPT_PER_HOST,
	OPT_PROBE_CA_FILE,
	OPT_AGENT_ADDRESS,
	OPT_JSON_FILE,
	OPT_PUSH,
	OPT_KEY_ID,
	OPT_KEY_FILE,
	OPT_AGENT_ID,
	OPT_CLUSTER,
	OPT_CA_FILE,
	OPT_COLLECTOR,
	OPT_INTERVAL_S,
	OPT_PLAN_CACHE,
	OPT_QUEUE_REPORTS,
	OPT_QUEUE_BYTES,
	OPT_STOP_TIMEOUT_S,
	OPT_LOG_LEVEL,
	OPT_HEALTH_FILE,
	OPT_HELP,
};

/* Each option: its flag, its environment variable. */
static const struct option options[] = {
    {"once", no_argument, NULL, OPT_ONCE},
    {"matrix", required_argument, NULL, OPT_MATRIX},
    {"role", required_argument, NULL, OPT_ROLE},
    {"format", required_argument, NULL, OPT_FORMAT},
    {"fail-on", required_argument, NULL, OPT_FAIL_ON},
    {"timeout-ms", required_argument, NULL, OPT_TIMEOUT_MS},
    {"concurrency", required_argument, NULL, OPT_CONCURRENCY},
    {"rate", required_argument, NULL, OPT_RATE},
    {"per-host", required_argument, NULL, OPT_PER_HOST},
    {"probe-ca-file", required_argument, NULL, OPT_PROBE_CA_FILE},
    {"agent-address", required_argument, NULL, OPT_AGENT_ADDRESS},
    {"json-file", required_argument, NULL, OPT_JSON_FILE},
    {"push", required_argument, NULL, OPT_PUSH},
    {"key-id", required_argument, NULL, OPT_KEY_ID},
    {"key-file", required_argument, NULL, OPT_KEY_FILE},
    {"agent-id", required_argument, NULL, OPT_AGENT_ID},
    {"cluster", required_argument, NULL, OPT_CLUSTER},
    {"ca-file", required_argument, NULL, OPT_CA_FILE},
    {"collector", required_argument, NULL, OPT_COLLECTOR},
    {"interval-s", required_argument, NULL, OPT_INTERVAL_S},
    {"plan-cache", required_argument, NULL, OPT_PLAN_CACHE},
    {"queue-reports", required_argument, NULL, OPT_QUEUE_REPORTS},
    {"queue-bytes", required_argument, NULL, OPT_QUEUE_BYTES},
    {"stop-timeout-s", required_argument, NULL, OPT_STOP_TIMEOUT_S},
    {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
    {"health-file", required_argument, NULL, OPT_HEALTH_FILE},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

static const char *const env_names[] = {
    [OPT_ONCE - OPT_ONCE] = "SGPROBE_ONCE",
    [OPT_MATRIX - OPT_ONCE] = "SGPROBE_MATRIX",
    [OPT_ROLE - OPT_ONCE] = "SGPROBE_ROLE",
    [OPT_FORMAT - OPT_ONCE] = "SGPROBE_FORMAT",
    [OPT_FAIL_ON - OPT_ONCE] = "SGPROBE_FAIL_ON",
    [OPT_TIMEOUT_MS - OPT_ONCE] = "SGPROBE_TIMEOUT_MS",
    [OPT_CONCURRENCY - OPT_ONCE] = "SGPROBE_CONCURRENCY",
    [OPT_RATE - OPT_ONCE] = "SGPROBE_RATE",
    [OPT_PER_HOST - OPT_ONCE] = "SGPROBE_PER_HOST",
    [OPT_PROBE_CA_FILE - OPT_ONCE] = "SGPROBE_PROBE_CA_FILE",
    [OPT_AGENT_ADDRESS - OPT_ONCE] = "SGPROBE_AGENT_ADDRESS",
    [OPT_JSON_FILE - OPT_ONCE] = "SGPROBE_JSON_FILE",
    [OPT_PUSH - OPT_ONCE] = "SGPROBE_PUSH",
    [OPT_KEY_ID - OPT_ONCE] = "SGPROBE_KEY_ID",
    [OPT_KEY_FILE - OPT_ONCE] = "SGPROBE_KEY_FILE",
    [OPT_AGENT_ID - OPT_ONCE] = "SGPROBE_AGENT_ID",
    [OPT_CLUSTER - OPT_ONCE] = "SGPROBE_CLUSTER",
    [OPT_CA_FILE - OPT_ONCE] = "SGPROBE_CA_FILE",
    [OPT_COLLECTOR - OPT_ONCE] = "SGPROBE_COLLECTOR",
    [OPT_INTERVAL_S - OPT_ONCE] = "SGPROBE_INTERVAL_S",
    [OPT_PLAN_CACHE - OPT_ONCE] = "SGPROBE_PLAN_CACHE",
    [OPT_QUEUE_REPORTS - OPT_ONCE] = "SGPROBE_QUEUE_REPORTS",
    [OPT_QUEUE_BYTES - OPT_ONCE] = "SGPROBE_QUEUE_BYTES",
    [OPT_STOP_TIMEOUT_S - OPT_ONCE] = "SGPROBE_STOP_TIMEOUT_S",
    [OPT_LOG_LEVEL - OPT_ONCE] = "SGPROBE_LOG_LEVEL",
    [OPT_HEALTH_FILE - OPT_ONCE] = "SGPROBE_HEALTH_FILE",
};

void config_usage(FILE *f)
{
	fputs("usage: sgprobe-agent --role ROLE (--collector URL | --matrix FILE) [options]\n"
	      "       sgprobe-agent --once --matrix FILE --role ROLE [options]\n"
	      "       sgprobe-agent health [--health-file FILE]\n"
	      "\n"
	      "By default a daemon: probes ROLE's plan every interval and pushes the\n"
	      "results to the collector (or logs them, with --matrix and no collector).\n"
	      "With --once: probes every path once, prints the verdicts, and exits 0 when\n"
	      "all are ok or unverified, 1 otherwise, 2 on a usage or configuration error.\n"
	      "`health` exits 0 when the daemon's health file is fresh and ok, else 1.\n"
	      "\n"
	      "  --once                 probe the plan once and exit (SGPROBE_ONCE=1)\n"
	      "  --matrix FILE          the intended matrix (SGPROBE_MATRIX)\n"
	      "  --role ROLE            this task's role in the matrix (SGPROBE_ROLE)\n"
	      "  --format F             table, json or junit; default table (SGPROBE_FORMAT)\n"
	      "  --fail-on LIST         verdicts that fail the run (a daemon with no\n"
	      "                         collector warns of them), comma-separated; default\n"
	      "                         violation,blocked,tls_failed,no_listener,inconclusive\n"
	      "                         (SGPROBE_FAIL_ON)\n"
	      "  --timeout-ms N         connect and TLS timeout; default the matrix's\n"
	      "                         probe.timeout_ms (SGPROBE_TIMEOUT_MS)\n"
	      "  --concurrency N        probes in flight at most; default 256\n"
	      "                         (SGPROBE_CONCURRENCY)\n"
	      "  --rate N               new probes per second; 0 = no limit; default 100\n"
	      "                         (SGPROBE_RATE)\n"
	      "  --per-host N           probes in flight to one address; 0 = no limit;\n"
	      "                         default 4 (SGPROBE_PER_HOST)\n"
	      "  --probe-ca-file FILE   CA certificates for TLS probes; default the system\n"
	      "                         store (SGPROBE_PROBE_CA_FILE)\n"
	      "  --agent-address ADDR   this task's own address, never probed\n"
	      "                         (SGPROBE_AGENT_ADDRESS)\n"
	      "  --json-file FILE       also write the JSON document to FILE, whatever\n"
	      "                         --format prints (SGPROBE_JSON_FILE)\n"
	      "  --push URL             also send the run as one signed report (mode once)\n"
	      "                         to the collector at URL (SGPROBE_PUSH)\n"
	      "  --key-id ID            the report's signing key (SGPROBE_KEY_ID)\n"
	      "  --key-file FILE        its secret, trailing newline stripped\n"
	      "                         (SGPROBE_KEY_FILE; or SGPROBE_KEY, the secret itself;\n"
	      "                         the flag wins over SGPROBE_KEY, SGPROBE_KEY over\n"
	      "                         SGPROBE_KEY_FILE)\n"
	      "  --agent-id ID          default HOSTNAME/ROLE (SGPROBE_AGENT_ID)\n"
	      "  --cluster NAME         default \"default\" (SGPROBE_CLUSTER)\n"
	      "  --ca-file FILE         the collector's CA; default the system store\n"
	      "                         (SGPROBE_CA_FILE)\n"
	      "  --collector URL        the collector's base URL, http(s)://host:port\n"
	      "                         (SGPROBE_COLLECTOR)\n"
	      "  --interval-s N         probe interval, overriding the plan's default\n"
	      "                         (SGPROBE_INTERVAL_S)\n"
	      "  --plan-cache FILE      keep the last good plan there, used when the\n"
	      "                         collector is away (SGPROBE_PLAN_CACHE)\n"
	      "  --queue-reports N      reports queued at most; default 128\n"
	      "                         (SGPROBE_QUEUE_REPORTS)\n"
	      "  --queue-bytes N        bytes of reports queued at most; default 8 MiB\n"
	      "                         (SGPROBE_QUEUE_BYTES)\n"
	      "  --stop-timeout-s N     on SIGTERM, exit within N s; default 10\n"
	      "                         (SGPROBE_STOP_TIMEOUT_S)\n"
	      "  --log-level L          debug, info, warn or error; default info\n"
	      "                         (SGPROBE_LOG_LEVEL)\n"
	      "  --health-file FILE     the daemon writes its state there; `health` reads\n"
	      "                         it (SGPROBE_HEALTH_FILE)\n"
	      "  --help                 this text\n",
	      f);
}

uint32_t config_default_fail_on(void)
{
	uint32_t set = 0;
	int v;

	for (v = 0; v < VERDICT_COUNT_ORDERED; v++) {
		if (v != VERDICT_OK && v != VERDICT_UNVERIFIED)
			set |= 1u << v;
	}
	return set;
}

int config_parse_fail_on(const char *list, uint32_t *out, char *err, size_t errlen)
{
	char *copy, *tok, *save = NULL;
	uint32_t set = 0;
	int result = 0;

	copy = strdup(list);
	if (!copy)
		return -ENOMEM;
	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		verdict_t v;

		while (*tok == ' ')
			tok++;
		if (verdict_parse(tok, &v) || v >= VERDICT_COUNT_ORDERED) {
			snprintf(err, errlen,
			         "--fail-on: unknown verdict '%s' (one of ok, unverified, "
			         "inconclusive, no_listener, tls_failed, blocked, violation)",
			         tok);
			result = -EINVAL;
			break;
		}
		set |= 1u << v;
	}
	free(copy);
	if (!result && !set) {
		/* An empty set would pass every run: surely not what was meant. */
		snprintf(err, errlen, "--fail-on: '%s' names no verdict", list);
		result = -EINVAL;
	}
	if (!result)
		*out = set;
	return result;
}

static int parse_uint(const char *flag, const char *s, unsigned min, unsigned max, unsigned *out,
                      char *err, size_t errlen)
{
	char *end = NULL;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (!*s || *s == '-' || *s == '+' || errno || *end || v < min || v > max) {
		snprintf(err, errlen, "--%s: '%s' is not an integer in %u-%u", flag, s, min, max);
		return -EINVAL;
	}
	*out = (unsigned)v;
	return 0;
}

static int apply(config_t *cfg, int opt, const char *val, char *err, size_t errlen)
{
	const char *flag = options[opt - OPT_ONCE].name;

	switch (opt) {
	case OPT_ONCE:
		if (val && strcmp(val, "1") && strcmp(val, "true") && strcmp(val, "0") &&
		    strcmp(val, "false")) {
			snprintf(err, errlen, "SGPROBE_ONCE: '%s' is not 1, true, 0 or false", val);
			return -EINVAL;
		}
		cfg->once = !val || !strcmp(val, "1") || !strcmp(val, "true");
		return 0;
	case OPT_MATRIX:
		cfg->matrix = val;
		return 0;
	case OPT_ROLE:
		cfg->role = val;
		return 0;
	case OPT_FORMAT:
		if (output_parse_format(val, &cfg->format)) {
			snprintf(err, errlen, "--format: '%s' is not table, json or junit", val);
			return -EINVAL;
		}
		return 0;
	case OPT_FAIL_ON:
		return config_parse_fail_on(val, &cfg->fail_on, err, errlen);
	case OPT_TIMEOUT_MS:
		return parse_uint(flag, val, 1, 60000, &cfg->timeout_ms, err, errlen);
	case OPT_CONCURRENCY:
		return parse_uint(flag, val, 1, 65536, &cfg->concurrency, err, errlen);
	case OPT_RATE:
		return parse_uint(flag, val, 0, 1000000, &cfg->rate, err, errlen);
	case OPT_PER_HOST:
		return parse_uint(flag, val, 0, 65536, &cfg->per_host, err, errlen);
	case OPT_PROBE_CA_FILE:
		cfg->probe_ca_file = val;
		return 0;
	case OPT_AGENT_ADDRESS: {
		/* A typo here would make the agent probe itself: a false violation. */
		struct in6_addr buf;

		if (inet_pton(AF_INET, val, &buf) != 1 && inet_pton(AF_INET6, val, &buf) != 1) {
			snprintf(err, errlen, "--agent-address: '%s' is not an IP address", val);
			return -EINVAL;
		}
		cfg->agent_address = val;
		return 0;
	}
	case OPT_JSON_FILE:
		cfg->json_file = val;
		return 0;
	case OPT_PUSH:
		if (strncmp(val, "http://", 7) && strncmp(val, "https://", 8)) {
			snprintf(err, errlen, "--push: '%s' is not an http:// or https:// URL",
			         val);
			return -EINVAL;
		}
		cfg->push = val;
		return 0;
	case OPT_KEY_ID:
		cfg->key_id = val;
		return 0;
	case OPT_KEY_FILE:
		cfg->key_file = val;
		return 0;
	case OPT_AGENT_ID:
		cfg->agent_id = val;
		return 0;
	case OPT_CLUSTER:
		cfg->cluster = val;
		return 0;
	case OPT_CA_FILE:
		cfg->ca_file = val;
		return 0;
	case OPT_COLLECTOR:
		if (strncmp(val, "http://", 7) && strncmp(val, "https://", 8)) {
			snprintf(err, errlen, "--collector: '%s' is not an http:// or https:// URL",
			         val);
			return -EINVAL;
		}
		cfg->collector = val;
		return 0;
	case OPT_INTERVAL_S:
		return parse_uint(flag, val, 1, 86400, &cfg->interval_s, err, errlen);
	case OPT_PLAN_CACHE:
		cfg->plan_cache = val;
		return 0;
	case OPT_QUEUE_REPORTS:
		return parse_uint(flag, val, 1, 1000000, &cfg->queue_reports, err, errlen);
	case OPT_QUEUE_BYTES:
		/* At least one report of the collector's largest size must fit. */
		return parse_uint(flag, val, 1048576, 1073741824, &cfg->queue_bytes, err, errlen);
	case OPT_STOP_TIMEOUT_S:
		return parse_uint(flag, val, 1, 3600, &cfg->stop_timeout_s, err, errlen);
	case OPT_LOG_LEVEL:
		if (log_level_parse(val, &cfg->log_level)) {
			snprintf(err, errlen, "--log-level: '%s' is not debug, info, warn or error",
			         val);
			return -EINVAL;
		}
		return 0;
	case OPT_HEALTH_FILE:
		cfg->health_file = val;
		return 0;
	case OPT_HELP:
		cfg->help = true;
		return 0;
	}
	return -EINVAL;
}

int config_parse(config_t *cfg, int argc, char **argv, char *err, size_t errlen)
{
	bool key_file_flag = false;
	int opt, result;
	size_t i;

	memset(cfg, 0, sizeof(*cfg));
	cfg->format = OUTPUT_TABLE;
	cfg->fail_on = config_default_fail_on();
	cfg->concurrency = PROBE_DEFAULT_CONCURRENCY;
	cfg->rate = PROBE_DEFAULT_RATE;
	cfg->per_host = PROBE_DEFAULT_PER_HOST;
	cfg->stop_timeout_s = CONFIG_DEFAULT_STOP_TIMEOUT_S;
	cfg->log_level = LOG_LEVEL_INFO;

	for (i = 0; i < sizeof(env_names) / sizeof(env_names[0]); i++) {
		const char *val = getenv(env_names[i]);

		if (!val || !*val)
			continue;
		result = apply(cfg, (int)i + OPT_ONCE, val, err, errlen);
		if (result) {
			/* Name the variable, not the flag, so the user finds it. */
			char msg[CONFIG_ERR_MAX];

			snprintf(msg, sizeof(msg), "%s", err);
			snprintf(err, errlen, "%s (from %s)", msg, env_names[i]);
			return result;
		}
	}
	/* The secret itself has no flag: a flag would show it in `ps`. */
	cfg->key = getenv("SGPROBE_KEY");
	if (cfg->key && !*cfg->key)
		cfg->key = NULL;
	/* 0, not 1: only then does glibc reset all of getopt's state. With 1, a
	 * second parse resumes from a pointer into the previous argv (left behind by
	 * a short option such as "-x"), which may be gone. */
	optind = 0;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
		if (opt == '?') {
			/* A short option (there are none) sets optopt to its letter, and
			 * optind need not move past it: "-xy" would name argv[0]. */
			if (optopt > 0 && optopt < OPT_ONCE)
				snprintf(err, errlen, "unknown option: -%c", optopt);
			else if (optopt)
				snprintf(err, errlen, "unknown option or missing value: %s",
				         argv[optind - 1]);
			else
				snprintf(err, errlen, "unknown option: %s", argv[optind - 1]);
			return -EINVAL;
		}
		if (opt == ':') {
			snprintf(err, errlen, "%s needs a value", argv[optind - 1]);
			return -EINVAL;
		}
		result = apply(cfg, opt, opt == OPT_ONCE ? NULL : optarg, err, errlen);
		if (result)
			return result;
		if (opt == OPT_KEY_FILE)
			key_file_flag = true;
	}
	if (optind < argc) {
		snprintf(err, errlen, "unexpected argument: %s", argv[optind]);
		return -EINVAL;
	}
	/* A flag wins over the environment: --key-file over SGPROBE_KEY (which in
	 * turn wins over SGPROBE_KEY_FILE, both being variables of the task). */
	if (key_file_flag)
		cfg->key = NULL;
	return 0;
}
