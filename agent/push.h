/*
 * push: `sgprobe-agent --once --push URL` sends its run to a collector as signed
 * `sgprobe.report/v1` documents in mode `once`.
 */
#ifndef SGPROBE_PUSH_H
#define SGPROBE_PUSH_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "probe.h"
#include "sgprobe/matrix.h"
#include "sgprobe/report.h"

#define PUSH_ERR_MAX 512
#define PUSH_KEY_MAX 4096 /* bytes of a key's secret */
#define PUSH_VERSION "0.1.0"

/** The signing key, read once before any probe. */
typedef struct {
	char *id;
	unsigned char *secret;
	size_t secret_len;
} push_key_t;

/**
 * Reads the key named by the configuration (--key-id with --key-file or
 * SGPROBE_KEY). Returns 0, or -EINVAL with a message in `err` (which never holds
 * the secret). Dispose with push_key_dispose().
 */
int push_key_load(const config_t *cfg, push_key_t *key, char *err, size_t errlen);

/** Wipes and frees the key. */
void push_key_dispose(push_key_t *key);

/**
 * Appends one probe's result to a report as a `sgprobe.report/v1` result (the
 * TLS error as `tls.error`, and in `detail`). Used by the smoke test's push and
 * by the daemon. Returns 0 or a negative errno from report_add_result().
 */
int push_add_result(report_t *r, const matrix_plan_t *plan, const probe_result_t *pr);

/**
 * Sends the results as reports of at most REPORT_MAX_RESULTS results and
 * REPORT_MAX_BODY bytes each, in order, one at a time. `round_ms` is the run's
 * duration. Returns the number of reports the collector accepted (200 and 202),
 * or a negative errno with the first failure (with the collector's own message)
 * in `err`.
 */
int push_once(const config_t *cfg, const push_key_t *key, const matrix_plan_t *plan,
              const probe_result_t *res, size_t n, uint64_t round_ms, char *err, size_t errlen);

#endif
