/*
 * plan: the `sgprobe.plan/v1` document, a role's plan as the collector serves it
 * (GET /v1/plan?role=R) and the agent caches it.
 *
 * {"schema": "sgprobe.plan/v1", "matrix", "role", "interval_s", "timeout_ms",
 *  "targets": [{"dst_role", "target", "port", "expected", "tls", "interval_s",
 *               "silent", "probe"}]}
 *
 * `silent` and `probe` go beyond DESIGN.md's list: without them an agent fed by
 * a collector could not tell a silent destination's timeout (unverified) from
 * any other, nor skip a probe_allowed:false path.
 */
#ifndef SGPROBE_PLAN_H
#define SGPROBE_PLAN_H

#include <stddef.h>

#include "sgprobe/matrix.h"

#define PLAN_SCHEMA   "sgprobe.plan/v1"
#define PLAN_ERR_MAX  256
#define PLAN_MAX_BODY (16u * 1024 * 1024) /* an encoded plan */

/** Encodes a plan as compact JSON. Returns a string the caller frees, or NULL. */
char *plan_encode(const matrix_plan_t *plan);

/**
 * Decodes and validates a plan document of `len` bytes (field by field, naming
 * the field in `err`; unknown fields ignored). Returns a new plan
 * (matrix_plan_free()), or NULL.
 */
matrix_plan_t *plan_decode(const char *text, size_t len, char *err, size_t errlen);

#endif
