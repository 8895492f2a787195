/*
 * report: the `sgprobe.report/v1` document an agent sends to the collector
 * (DESIGN.md "Report"). Built by the agent, encoded to JSON, decoded and
 * validated by the collector.
 *
 * The decoder validates every known field strictly (type, enum value, required,
 * `address` null only when `state` is `error`, limits) with a message naming the
 * field (`results[3].port: must be an integer in 1-65535`), and ignores unknown
 * fields so that a newer agent never loses its reports on an older collector.
 */
#ifndef SGPROBE_REPORT_H
#define SGPROBE_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sgprobe/verdict.h"

#define REPORT_SCHEMA      "sgprobe.report/v1"
#define REPORT_MAX_BODY    (1024u * 1024) /* bytes of one encoded report */
#define REPORT_MAX_RESULTS 1000           /* results in one report */
#define REPORT_MAX_STRING  1024           /* bytes of any one string field */
#define REPORT_ERR_MAX     256            /* size of the decoder's error buffer */

/** Largest seq, round_ms and latency_us: JSON numbers are exact integers up to 2^53. */
#define REPORT_MAX_SEQ (UINT64_C(1) << 53)

/** A report's mode. */
typedef enum {
	REPORT_MODE_DAEMON = 0, /* the sidecar's continuous probing */
	REPORT_MODE_ONCE = 1    /* a smoke test's one run (`--once --push`) */
} report_mode_t;

/** The result of a TLS handshake, when one was attempted. */
typedef struct {
	bool present; /* false: the JSON `tls` is null */
	bool ok;
	char *error;         /* owned; NULL when none */
	bool has_expiry;     /* false: `expires_in_days` is null */
	int expires_in_days; /* days until the peer certificate's notAfter; may be negative */
} report_tls_t;

/** One observation. All strings owned by the report that holds it. */
typedef struct {
	char *dst_role;
	char *target;
	char *address; /* NULL only when state is error */
	uint16_t port;
	verdict_expect_t expected;
	verdict_state_t state;
	int64_t latency_us; /* -1 when null (state error) */
	char *at;           /* RFC 3339 UTC timestamp of the probe, with milliseconds */
	char *detail;       /* NULL when none */
	report_tls_t tls;
} report_result_t;

/** Who sent the report. All strings owned; az, address may be NULL. */
typedef struct {
	char *id;
	char *role;
	char *cluster;
	char *az;
	char *address;
	char *version;
	char *boot;
} report_agent_t;

/**
 * The agent's own counters since it started, optional in a report (`counters`):
 * what the operator needs to see a sidecar that probes but cannot deliver.
 */
typedef struct {
	bool present; /* false: no `counters` object */
	uint64_t rounds;
	uint64_t probes;
	uint64_t reports_sent;    /* POSTs the collector answered, whatever the status (a
	                             report answered 503 then 202 counts twice) */
	uint64_t reports_retried; /* attempts that were retried */
	uint64_t reports_dropped; /* reports given up: queue full, refused, abandoned */
} report_counters_t;

/** A report. Owns everything in it; free with report_free(). */
typedef struct {
	report_agent_t agent;
	uint64_t seq;
	char *sent_at; /* RFC 3339 UTC, milliseconds */
	report_mode_t mode;
	unsigned interval_s;
	uint64_t round_ms;
	bool final;
	report_counters_t counters;
	report_result_t *results;
	size_t n_results;
	size_t cap_results;
} report_t;

/** Returns a new empty report (all strings NULL), or NULL when out of memory. */
report_t *report_new(void);

/** Frees a report and everything it owns. report_free(NULL) does nothing. */
void report_free(report_t *r);

/**
 * Sets one of the agent's string fields: frees the old value and copies `value`
 * (NULL clears it). `field` points into r->agent. Returns 0 or -ENOMEM.
 */
int report_set_string(char **field, const char *value);

/**
 * Appends a deep copy of `res` to the report. Returns 0, -E2BIG when the report
 * already holds REPORT_MAX_RESULTS results, or -ENOMEM.
 */
int report_add_result(report_t *r, const report_result_t *res);

/**
 * Encodes the report as compact JSON. Returns a NUL-terminated string owned by
 * the caller (free()), or NULL when out of memory, a required field is unset, an
 * enum is out of range, or seq, round_ms or a latency_us exceeds REPORT_MAX_SEQ.
 */
char *report_encode(const report_t *r);

/**
 * Decodes and validates a report from `len` bytes (not necessarily
 * NUL-terminated). Returns a new report owned by the caller, or NULL with a
 * message naming the field in `err` (at least REPORT_ERR_MAX bytes). Refuses a
 * body over REPORT_MAX_BODY and more than REPORT_MAX_RESULTS results; `*too_large`
 * (when not NULL) is then set true so that a server can answer 413 rather than 400.
 */
report_t *report_decode(const char *body, size_t len, char *err, size_t errlen, bool *too_large);

/**
 * Formats a wall-clock time (milliseconds since the Unix epoch) as RFC 3339 UTC
 * with milliseconds, `2026-01-01T00:00:00.000Z`, into `buf` (at least 25 bytes).
 * Returns buf.
 */
char *report_format_time(uint64_t epoch_ms, char *buf, size_t buflen);

/**
 * True when `s` is an RFC 3339 UTC timestamp of the shape
 * `YYYY-MM-DDTHH:MM:SS[.f]Z`: report_format_time()'s milliseconds, or no
 * fraction, or 1 to 9 fraction digits (agents of other versions may differ).
 * The date must exist (leap years included); seconds may be 60 (a leap second).
 */
bool report_time_valid(const char *s);

#endif
