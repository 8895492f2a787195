/*
 * config: the agent's flags and their SGPROBE_* environment equivalents.
 * A flag wins over its environment variable; every value is validated and a bad
 * one is an error naming the flag.
 */
#ifndef SGPROBE_CONFIG_H
#define SGPROBE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "output.h"
#include "sgprobe/log.h"

#define CONFIG_ERR_MAX 256

typedef struct {
	bool once;
	bool help;
	const char *matrix;        /* --matrix, SGPROBE_MATRIX */
	const char *role;          /* --role, SGPROBE_ROLE */
	output_format_t format;    /* --format, SGPROBE_FORMAT */
	uint32_t fail_on;          /* --fail-on: bit (1 << verdict) per failing verdict */
	unsigned timeout_ms;       /* --timeout-ms; 0 = the plan's */
	unsigned concurrency;      /* --concurrency */
	unsigned rate;             /* --rate; 0 = no limit */
	unsigned per_host;         /* --per-host; 0 = no limit */
	const char *probe_ca_file; /* --probe-ca-file; NULL = the system store */
	const char *agent_address; /* --agent-address */
	const char *json_file;     /* --json-file: also write the JSON document there */
	const char *push;          /* --push URL: send the report to a collector */
	const char *key_id;        /* --key-id */
	const char *key_file;      /* --key-file; SGPROBE_KEY holds the secret itself */
	const char *key;           /* SGPROBE_KEY: the secret, as ECS secrets deliver it */
	const char *agent_id;      /* --agent-id; default hostname/role */
	const char *cluster;       /* --cluster; default "default" */
	const char *ca_file;       /* --ca-file: the collector's CA; default the system store */
	const char *collector;     /* --collector URL: the collector's base, http(s)://host:port */
	unsigned interval_s;       /* --interval-s; 0 = the plan's */
	const char *plan_cache;    /* --plan-cache FILE: the last good plan */
	unsigned queue_reports;    /* --queue-reports; 0 = the pusher's default */
	unsigned queue_bytes;      /* --queue-bytes; 0 = the pusher's default */
	unsigned stop_timeout_s;   /* --stop-timeout-s; default CONFIG_DEFAULT_STOP_TIMEOUT_S */
	log_level_t log_level;     /* --log-level; default info */
	const char *health_file;   /* --health-file FILE: the daemon's state; NULL = none */
} config_t;

#define CONFIG_DEFAULT_STOP_TIMEOUT_S 10

/** The default --fail-on set: every verdict but ok and unverified. */
uint32_t config_default_fail_on(void);

/**
 * Parses a comma-separated list of verdict names into a bit set. Returns 0, or
 * -EINVAL with the bad name in `err`.
 */
int config_parse_fail_on(const char *list, uint32_t *out, char *err, size_t errlen);

/**
 * Fills `cfg` from the environment, then from argv. Strings point into argv or
 * the environment. Returns 0, or -EINVAL with a message naming the flag in `err`.
 */
int config_parse(config_t *cfg, int argc, char **argv, char *err, size_t errlen);

/** Prints the usage text. */
void config_usage(FILE *f);

#endif
