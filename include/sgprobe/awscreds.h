/*
 * awscreds: AWS credentials found the way the AWS SDKs find them, fetched and
 * refreshed asynchronously on a libuv loop through curluv.
 *
 * The chain, first match wins (docs/credentials.md has the details):
 *   1. environment  AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY (+ AWS_SESSION_TOKEN)
 *   2. ecs          AWS_CONTAINER_CREDENTIALS_RELATIVE_URI, else
 *                   AWS_CONTAINER_CREDENTIALS_FULL_URI (+ AWS_CONTAINER_AUTHORIZATION_TOKEN
 *                   or AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE)
 *   3. imds         IMDSv2 of EC2, unless AWS_EC2_METADATA_DISABLED=true
 * Temporary credentials are fetched again refresh_margin_s before they expire;
 * a failed fetch keeps the old ones while they are valid and is retried with
 * capped exponential backoff.
 *
 * Use:
 *   c = aws_creds_new(loop, &cu, &cfg, &lg, on_update, arg);
 *   aws_creds_start(c);
 *   ...
 *   creds = aws_creds_get(c, now_wall_ms);    NULL: none valid now
 *   ...
 *   aws_creds_free(c, on_closed, arg);        before curluv_dispose(&cu, ...)
 *
 * Nothing here ever logs a secret access key or a token, not even in part.
 * Everything runs on the loop's thread.
 */
#ifndef SGPROBE_AWSCREDS_H
#define SGPROBE_AWSCREDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "sgprobe/curluv.h"
#include "sgprobe/log.h"

#define AWS_CREDS_DEFAULT_ECS_HOST   "169.254.170.2"          /* ECS's credentials endpoint */
#define AWS_CREDS_DEFAULT_IMDS       "http://169.254.169.254" /* EC2's metadata service */
#define AWS_CREDS_IMDS_IPV6          "http://[fd00:ec2::254]" /* ..._ENDPOINT_MODE=IPv6 */
#define AWS_CREDS_DEFAULT_MARGIN_S   300   /* refresh this long before Expiration */
#define AWS_CREDS_DEFAULT_TIMEOUT_MS 2000  /* each HTTP request, connection included */
#define AWS_CREDS_MAX_BODY           65536 /* bytes of any answer; more is a failed fetch */
#define AWS_CREDS_MIN_DELAY_MS       1000  /* fetches are never closer together than this */
#define AWS_CREDS_BACKOFF_CAP_MS     60000 /* the longest wait after failed fetches */
#define AWS_CREDS_IMDS_TOKEN_TTL_S   21600 /* asked for each IMDSv2 session token */
#define AWS_CREDS_ERR_MAX            256   /* bytes of aws_creds_last_error(), NUL included */

/** One set of credentials. */
typedef struct {
	char *access_key_id;     /* owned */
	char *secret_access_key; /* owned */
	char *session_token;     /* owned; NULL when none */
	uint64_t expiration_ms;  /* wall clock, ms since the epoch; 0: never expires */
	const char *source;      /* static: "environment", "ecs" or "imds" */
} aws_credentials_t;

/** What aws_creds_new() needs besides the environment. Every field may be 0/NULL. */
typedef struct {
	const char *ecs_host;      /* host[:port] for AWS_CONTAINER_CREDENTIALS_RELATIVE_URI;
	                              NULL: 169.254.170.2 */
	const char *imds_endpoint; /* NULL: $AWS_EC2_METADATA_SERVICE_ENDPOINT, else
	                              http://169.254.169.254 */
	unsigned
	    refresh_margin_s; /* refresh this long before Expiration; 0 means the default 300 */
	unsigned timeout_ms;  /* each HTTP request; 0 means the default 2000 */
	const char *ca_file;  /* PEM, for https endpoints; NULL: the system store */
} aws_creds_config_t;

typedef struct aws_creds_s aws_creds_t;

/**
 * Called on the loop, never from inside an aws_creds_*() call, each time new
 * credentials were installed (aws_creds_get() returns them). It may call
 * aws_creds_free().
 */
typedef void (*aws_creds_cb)(aws_creds_t *c, void *arg);

/**
 * Creates a provider on `loop` that fetches through `cu` (borrowed: its
 * memory must stay valid until aws_creds_free(); free the provider before
 * curluv_dispose(), or expect a disposed `cu` to end the fetches, which are not
 * retried then) and logs through `lg` (borrowed, must outlive the provider;
 * NULL: no log lines). The strings of `cfg` are copied; `cfg` may be
 * NULL for every default. `on_update` (may be NULL) is called with `arg` when
 * credentials are installed. Nothing is read or fetched before
 * aws_creds_start(). Returns the provider, owned by the caller
 * (aws_creds_free()), or NULL when out of memory.
 */
aws_creds_t *aws_creds_new(uv_loop_t *loop, curluv_t *cu, const aws_creds_config_t *cfg,
                           const log_t *lg, aws_creds_cb on_update, void *arg);

/**
 * Reads the environment, picks the source and starts the first fetch.
 *
 * Environment credentials are installed at once, before this returns, so that
 * aws_creds_get() has them right away; on_update is called once for them, on
 * a later loop iteration, never from inside this call. For ecs and imds the
 * first fetch is started and on_update comes when it succeeds; a failure of
 * that fetch (endpoint down, token file missing, bad answer) is not an error
 * here: it is logged, counted and retried with backoff.
 *
 * Returns 0; or, with the reason logged at error level and kept in
 * aws_creds_last_error(): -EINVAL when the environment is unusable (only one of
 * AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY set, a bad URI or endpoint, a
 * FULL_URI over http to a host other than loopback or ECS's, a token with a
 * line break), -ENOENT when no source is available (IMDS disabled with
 * AWS_EC2_METADATA_DISABLED=true), -EALREADY when called twice, -ECANCELED when
 * `cu` has been disposed, -ENOMEM. After an error on_update is never called.
 */
int aws_creds_start(aws_creds_t *c);

/**
 * The current credentials if they have not expired at `now_wall_ms` (wall
 * clock, ms since the epoch), else NULL (also before the first fetch
 * succeeded). The pointer and its strings belong to `c` and stay valid until
 * control returns to the loop: they are replaced only in loop callbacks.
 * Copy what must be kept longer.
 */
const aws_credentials_t *aws_creds_get(const aws_creds_t *c, uint64_t now_wall_ms);

/** "environment", "ecs", "imds", or "none" before a successful aws_creds_start(). */
const char *aws_creds_source(const aws_creds_t *c);

/**
 * Why the last fetch (or aws_creds_start()) failed, naming the variable, the
 * endpoint, the HTTP status or the JSON field; "" when it succeeded. Never
 * holds a secret. Owned by `c`, valid until its next fetch ends.
 */
const char *aws_creds_last_error(const aws_creds_t *c);

/** Successful fetches so far (environment credentials count as one). */
uint64_t aws_creds_refreshes(const aws_creds_t *c);

/** Failed fetches so far (each whole attempt counts once, whatever step failed). */
uint64_t aws_creds_failures(const aws_creds_t *c);

/**
 * Cancels the transfer in progress and the timer; on_update is never called
 * again. The memory (secrets wiped first) is released in the timer's close
 * callback, on a later loop iteration, which then calls on_closed(arg) (may be
 * NULL). May be called from on_update. aws_creds_free(NULL, ...) does nothing.
 */
void aws_creds_free(aws_creds_t *c, void (*on_closed)(void *arg), void *arg);

/**
 * Parses and validates a credentials document (`len` bytes, not necessarily
 * NUL-terminated) as the ECS endpoint (`imds` false) or IMDS (`imds` true)
 * sends it, field by field:
 *   Code             IMDS only: required, "Success"
 *   AccessKeyId      required; 16 to 128 letters, digits or underscores
 *   SecretAccessKey  required; 1 to 1024 printable ASCII characters, no space
 *   Token            required; 1 to AWS_CREDS_MAX_BODY printable ASCII characters, no space
 *   Expiration       required; ISO 8601 UTC (aws_creds_parse_time())
 * Other fields are ignored. Values of the secret fields never appear in `err`.
 * Fills *out (previous contents overwritten, not freed; source set to "ecs"
 * or "imds") and returns 0; or returns -EINVAL with a message naming the field
 * in `err` (may be NULL), or -ENOMEM; *out then holds no strings.
 */
int aws_creds_parse(const char *json, size_t len, bool imds, aws_credentials_t *out, char *err,
                    size_t errlen);

/**
 * Parses an ISO 8601 date and time as the credential endpoints write it:
 * YYYY-MM-DDTHH:MM:SS, optional fractional seconds (kept to the ms, the rest
 * truncated), then Z or an offset +HH:MM / -HH:MM; years 1970 to 9999.
 * Returns 0 with ms since the epoch in *ms, or -EINVAL (*ms unchanged).
 */
int aws_creds_parse_time(const char *s, uint64_t *ms);

/** Wipes and frees the strings of `cr` and zeroes it. Safe on a zeroed struct. */
void aws_credentials_dispose(aws_credentials_t *cr);

#endif
