/*
 * cloudwatch: the encodings of Amazon CloudWatch metrics, with no transport.
 *
 * A datum is one value of one metric with its dimensions. Datums leave the
 * process in one of two encodings:
 *
 *   - the PutMetricData Query protocol (a form-encoded POST body,
 *     Action=PutMetricData&Version=2010-08-01), at most CW_MAX_DATUMS_PER_CALL
 *     datums and CW_MAX_CALL_BYTES bytes a call, gzip-compressed for the wire;
 *   - Embedded Metric Format (EMF), one JSON line per set of dimension values,
 *     which CloudWatch Logs turns into metrics (awslogs reads it from stdout).
 *
 * Also CloudWatch's XML error document, read for the log.
 */
#ifndef SGPROBE_CLOUDWATCH_H
#define SGPROBE_CLOUDWATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CW_MAX_DATUMS_PER_CALL 1000          /* PutMetricData: MetricData members a call */
#define CW_MAX_CALL_BYTES      (1024 * 1024) /* PutMetricData: bytes of an HTTP POST body */
#define CW_MAX_DIMENSIONS      30            /* dimensions of one datum (API and EMF) */
#define CW_EMF_MAX_METRICS     100           /* metrics of one EMF directive */
#define CW_NAME_MAX            255           /* metric and dimension names, the namespace */
#define CW_VALUE_MAX           1024          /* dimension values */

/** One dimension: both strings owned by the datum. */
typedef struct {
	char *name;
	char *value;
} cw_dim_t;

/** One metric value. Initialise with cw_datum_init(), release with cw_datum_dispose(). */
typedef struct {
	char *name;            /* owned */
	const char *unit;      /* static: one of CloudWatch's unit names, e.g. "Count" */
	double value;          /* finite */
	uint64_t timestamp_ms; /* wall clock, ms since the epoch */
	cw_dim_t *dims;        /* owned, n_dims entries */
	size_t n_dims;
} cw_datum_t;

/**
 * Fills `d` with copies of `name` and of the `n_dims` dimension pairs in
 * `dims` (name, value, name, value, ...). `unit` must be a static string.
 * Returns 0, -EINVAL when a name is empty or longer than CW_NAME_MAX, a
 * dimension value empty or longer than CW_VALUE_MAX,
 * there are more than CW_MAX_DIMENSIONS dimensions or `value` is not finite,
 * or -ENOMEM. On error `d` holds nothing to dispose.
 */
int cw_datum_init(cw_datum_t *d, const char *name, const char *unit, double value,
                  uint64_t timestamp_ms, const char *const *dims, size_t n_dims);

/** Releases what `d` owns and zeroes it. */
void cw_datum_dispose(cw_datum_t *d);

/** True when `a` and `b` have the same dimensions: names and values, in the same order. */
bool cw_same_dimensions(const cw_datum_t *a, const cw_datum_t *b);

/**
 * Encodes the PutMetricData Query body for the first datums of `d` (n of
 * them): as many as fit in one call, in order, at most CW_MAX_DATUMS_PER_CALL
 * and CW_MAX_CALL_BYTES bytes. `*body` (NUL-terminated, the caller frees) and
 * `*len` receive the form, `*taken` how many datums it holds. Returns 0,
 * -EINVAL when `n` is 0 or the first datum alone does not fit, or -ENOMEM.
 */
int cw_form_encode(const char *ns, const cw_datum_t *d, size_t n, char **body, size_t *len,
                   size_t *taken);

/**
 * Compresses `len` bytes of `in` as one gzip member (RFC 1952, for
 * Content-Encoding: gzip). `*out` (the caller frees) and `*outlen` receive it.
 * Returns 0, -ENOMEM or -EIO.
 */
int cw_gzip(const void *in, size_t len, unsigned char **out, size_t *outlen);

/**
 * Encodes one EMF line (no newline) for the `n` datums of `d`, which must
 * share one dimension set (the same names, in the same order, and values):
 * {"_aws": {"Timestamp": ms, "CloudWatchMetrics": [{"Namespace": ns,
 * "Dimensions": [[names]], "Metrics": [{"Name", "Unit"}]}]}, "<dim>": "<value>",
 * ..., "<metric>": value, ...}. The timestamp is the first datum's. `*out` is
 * NUL-terminated and the caller frees it. Returns 0, -EINVAL when `n` is 0,
 * the dimension sets differ, a metric repeats or a metric is named like a
 * dimension, -E2BIG beyond CW_EMF_MAX_METRICS metrics, or -ENOMEM.
 */
int cw_emf_encode(const char *ns, const cw_datum_t *d, size_t n, char **out);

/**
 * Reads CloudWatch's XML error document (`<ErrorResponse><Error><Code>...
 * </Code><Message>...</Message>`): the text of the first <Code> and <Message>
 * elements into `code` and `msg` (cut to fit, control characters replaced by
 * spaces; "" when absent). Returns 0 when a Code was found, -ENOENT otherwise.
 */
int cw_xml_error(const char *body, size_t len, char *code, size_t codelen, char *msg,
                 size_t msglen);

/**
 * True when CloudWatch's error `code` means the caller should slow down and
 * try again (Throttling, ThrottlingException, RequestLimitExceeded, ...).
 */
bool cw_error_is_throttling(const char *code);

/**
 * True when CloudWatch's error `code` is about the request's credentials or
 * signature (ExpiredToken, RequestExpired, InvalidClientTokenId,
 * SignatureDoesNotMatch, AccessDenied, ...): the data is not at fault, and the
 * same data may succeed once the credentials, the clock or the IAM policy is
 * put right.
 */
bool cw_error_is_auth(const char *code);

#endif
