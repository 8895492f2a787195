/*
 * awscreds: the AWS credential chain on a libuv loop (see awscreds.h and
 * docs/credentials.md).
 *
 * One easy handle does every request, one after the other: a fetch is one
 * GET for ECS, and for IMDSv2 a PUT for the session token (skipped while the
 * token is still fresh), a GET for the role name and a GET for the
 * credentials, chained from the transfer's callback. One timer does the rest:
 * it fires at the next fetch (the refresh or the retry after a failure), at
 * the moment the current credentials expire (to log it), and on the iteration
 * after aws_creds_start() to announce environment credentials.
 *
 * Secrets (the secret access key, the session token, the ECS authorization
 * token, the IMDS session token) are never logged and never put into an error
 * message; every buffer that held one is wiped before it is freed.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <cJSON.h>
#include <openssl/crypto.h>

#include "sgprobe/awscreds.h"
#include "sgprobe/fileio.h"
#include "sgprobe/timefmt.h"
#include "sgprobe/json.h"
#include "sgprobe/jitter.h"
#include "sgprobe/container.h"

#define ENV_AKID          "AWS_ACCESS_KEY_ID"
#define ENV_SECRET        "AWS_SECRET_ACCESS_KEY"
#define ENV_SESSION       "AWS_SESSION_TOKEN"
#define ENV_RELATIVE      "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"
#define ENV_FULL          "AWS_CONTAINER_CREDENTIALS_FULL_URI"
#define ENV_AUTH          "AWS_CONTAINER_AUTHORIZATION_TOKEN"
#define ENV_AUTH_FILE     "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"
#define ENV_IMDS_DISABLED "AWS_EC2_METADATA_DISABLED"
#define ENV_IMDS_ENDPOINT "AWS_EC2_METADATA_SERVICE_ENDPOINT"
#define ENV_IMDS_MODE     "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE"

#define IMDS_TOKEN_PATH  "/latest/api/token"
#define IMDS_CREDS_PATH  "/latest/meta-data/iam/security-credentials/"
#define IMDS_TOKEN_MAX   1024  /* bytes of an IMDSv2 session token (they are about 56) */
#define IMDS_TOKEN_SLACK 60    /* s: a token is dropped this long before its TTL ends */
#define ROLE_MAX         64    /* IAM's limit on role names */
#define AUTH_TOKEN_MAX   16384 /* bytes of the ECS authorization token */
#define AKID_MIN         16    /* IAM's limits on access key ids */
#define AKID_MAX         128
#define SECRET_MAX       1024
#define ENV_VALUE_MAX    AWS_CREDS_MAX_BODY

/* Where the credentials come from; indexes source_names. */
typedef enum {
	SRC_NONE = 0, /* not started, or start failed */
	SRC_ENV,      /* the environment: static, never refreshed */
	SRC_ECS,      /* the ECS container credentials endpoint (relative or full URI) */
	SRC_IMDS,     /* the EC2 instance metadata service, IMDSv2 */
} source_t;

static const char *const source_names[] = {"none", "environment", "ecs", "imds"};

/* The transfer in progress. */
typedef enum {
	STEP_IDLE = 0,   /* none */
	STEP_ECS,        /* GET the ECS credentials URL */
	STEP_IMDS_TOKEN, /* PUT /latest/api/token */
	STEP_IMDS_ROLE,  /* GET .../security-credentials/ */
	STEP_IMDS_CREDS, /* GET .../security-credentials/ROLE */
} step_t;

struct aws_creds_s {
	uv_timer_t timer; /* the next fetch, the expiry, the environment's announcement */
	uv_loop_t *loop;
	curluv_t *cu;
	const log_t *lg;
	aws_creds_cb on_update;
	void *arg;

	/* The configuration, copied. */
	char *ecs_host;
	char *imds_endpoint;
	char *ca_file;
	uint64_t margin_ms;
	long timeout_ms;

	/* Chosen by aws_creds_start(). */
	source_t source;
	char *url;       /* ECS: the credentials URL; IMDS: the endpoint, no trailing slash */
	char *shown;     /* the endpoint as logged: never the relative URI's path */
	char *auth_env;  /* the value of AWS_CONTAINER_AUTHORIZATION_TOKEN (secret), or NULL */
	char *auth_file; /* the path in AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE, or NULL */

	/* The fetch in progress. */
	CURL *easy;
	struct curl_slist *headers;
	step_t step;
	curluv_body_t body; /* the answer so far, at most AWS_CREDS_MAX_BODY bytes; a secret */
	char errbuf[CURL_ERROR_SIZE];
	char imds_token[IMDS_TOKEN_MAX + 1]; /* "" when none */
	uint64_t imds_token_until;           /* uv_now() after which it is not used */
	bool fresh_token;                    /* obtained during this fetch */
	char role[ROLE_MAX + 1];

	/* The schedule. */
	uint64_t fetch_due;     /* uv_now() of the next fetch; 0: none */
	bool announce;          /* on_update is owed for environment credentials */
	bool expiry_logged;     /* the current credentials' expiry was logged */
	unsigned failed_in_row; /* failed fetches since the last success */
	uint64_t rng;

	aws_credentials_t creds;
	bool have; /* creds holds credentials */
	char last_error[AWS_CREDS_ERR_MAX];
	uint64_t refreshes;
	uint64_t failures;
	bool started;
	bool transport_gone; /* curluv_dispose() ended a transfer or refused one */
	bool freeing;
	void (*on_closed)(void *arg);
	void *closed_arg;
};

/* log_*() when there is a logger. */
#define LOG(c, fn, ...)                                                                            \
	do {                                                                                       \
		if ((c)->lg)                                                                       \
			fn((c)->lg, __VA_ARGS__);                                                  \
	} while (0)

/* ---- small helpers ---- */

static void wipe_free(char *s)
{
	if (!s)
		return;
	OPENSSL_cleanse(s, strlen(s));
	free(s);
}

/* ISO 8601 UTC, to the second, for log lines. */
static void format_time(uint64_t ms, char *out, size_t outlen)
{
	time_t t = (time_t)(ms / 1000u);
	struct tm tm;

	if (!gmtime_r(&t, &tm) || !strftime(out, outlen, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(out, outlen, "?");
}

/* getenv(), with an empty value taken as unset, as the SDKs do. */
static const char *env(const char *name)
{
	const char *v = getenv(name);

	return v && v[0] ? v : NULL;
}

/* True when s is 1 to max bytes of printable ASCII without spaces: safe in a header. */
static bool header_safe(const char *s, size_t max)
{
	size_t i;

	for (i = 0; s[i]; i++) {
		if (i >= max || (unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
			return false;
	}
	return i > 0;
}

/* Strips leading and trailing spaces, tabs and line ends in place; returns the start. */
static char *trim(char *s)
{
	size_t n;

	while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
		s++;
	n = strlen(s);
	while (n > 0 &&
	       (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
		s[--n] = '\0';
	return s;
}

/* True when s holds a control character (CR and LF included) or DEL. */
static bool has_control(const char *s)
{
	for (; *s; s++) {
		if ((unsigned char)*s < 0x20 || (unsigned char)*s == 0x7f)
			return true;
	}
	return false;
}

/* A new string: a then b (then c); NULL when out of memory. */
static char *concat(const char *a, const char *b, const char *c)
{
	size_t na = strlen(a), nb = strlen(b), nc = c ? strlen(c) : 0;
	char *s = malloc(na + nb + nc + 1);

	if (!s)
		return NULL;
	memcpy(s, a, na);
	memcpy(s + na, b, nb);
	if (nc)
		memcpy(s + na + nb, c, nc);
	s[na + nb + nc] = '\0';
	return s;
}

/* ---- time ---- */

int aws_creds_parse_time(const char *s, uint64_t *ms)
{
	int64_t v;

	if (timefmt_parse(s, TIMEFMT_LENIENT, &v) || v < 0)
		return -EINVAL;
	*ms = (uint64_t)v;
	return 0;
}

/* ---- the credentials document ---- */

void aws_credentials_dispose(aws_credentials_t *cr)
{
	wipe_free(cr->access_key_id);
	wipe_free(cr->secret_access_key);
	wipe_free(cr->session_token);
	memset(cr, 0, sizeof(*cr));
}

/* The string field `key`: required, a non-empty string. */
static int get_string(json_ctx_t *ctx, const cJSON *root, const char *key, const char **out)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, key);

	*out = NULL;
	if (!item || cJSON_IsNull(item))
		return json_fail(ctx, "%s: required", key);
	if (!cJSON_IsString(item) || !item->valuestring)
		return json_fail(ctx, "%s: must be a string", key);
	if (!item->valuestring[0])
		return json_fail(ctx, "%s: must not be empty", key);
	*out = item->valuestring;
	return 0;
}

static bool akid_valid(const char *s)
{
	size_t n = strlen(s);

	return n >= AKID_MIN && n <= AKID_MAX &&
	       strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_") == n;
}

/* Validates every field into *cr (strings allocated); the caller disposes of it on error. */
static int parse_fields(json_ctx_t *ctx, const cJSON *root, bool imds, aws_credentials_t *cr)
{
	char q[JSON_QUOTE_BUF];
	const char *s;
	int result;

	if (imds) {
		result = get_string(ctx, root, "Code", &s);
		if (result)
			return result;
		if (strcmp(s, "Success") != 0)
			return json_fail(ctx, "Code: \"%s\", not \"Success\"",
			                 json_quote(s, q, sizeof(q)));
	}
	result = get_string(ctx, root, "AccessKeyId", &s);
	if (result)
		return result;
	if (!akid_valid(s))
		return json_fail(ctx,
		                 "AccessKeyId: must be %d to %d letters, digits or underscores",
		                 AKID_MIN, AKID_MAX);
	cr->access_key_id = strdup(s);
	if (!cr->access_key_id)
		return json_fail_oom(ctx);
	/* The secrets' values never go into a message, not even quoted. */
	result = get_string(ctx, root, "SecretAccessKey", &s);
	if (result)
		return result;
	if (!header_safe(s, SECRET_MAX))
		return json_fail(ctx,
		                 "SecretAccessKey: must be 1 to %d printable ASCII characters "
		                 "without spaces",
		                 SECRET_MAX);
	cr->secret_access_key = strdup(s);
	if (!cr->secret_access_key)
		return json_fail_oom(ctx);
	result = get_string(ctx, root, "Token", &s);
	if (result)
		return result;
	if (!header_safe(s, AWS_CREDS_MAX_BODY))
		return json_fail(ctx, "Token: must be printable ASCII characters without spaces");
	cr->session_token = strdup(s);
	if (!cr->session_token)
		return json_fail_oom(ctx);
	result = get_string(ctx, root, "Expiration", &s);
	if (result)
		return result;
	if (aws_creds_parse_time(s, &cr->expiration_ms))
		return json_fail(ctx,
		                 "Expiration: \"%s\" is not an ISO 8601 time such as "
		                 "2026-11-29T12:00:00Z",
		                 json_quote(s, q, sizeof(q)));
	return 0;
}

/* Wipes the secret values cJSON copied, before the tree is freed. */
static void wipe_tree(cJSON *root)
{
	static const char *const keys[] = {"SecretAccessKey", "Token"};
	cJSON *item;
	size_t i;

	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		item = cJSON_GetObjectItemCaseSensitive(root, keys[i]);
		if (cJSON_IsString(item) && item->valuestring)
			OPENSSL_cleanse(item->valuestring, strlen(item->valuestring));
	}
}

int aws_creds_parse(const char *json, size_t len, bool imds, aws_credentials_t *out, char *err,
                    size_t errlen)
{
	json_ctx_t ctx = {err, errlen, NULL, NULL};
	aws_credentials_t cr = {0};
	unsigned line = 0;
	cJSON *root;
	int result;

	memset(out, 0, sizeof(*out));
	root = json_parse(json ? json : "", json ? len : 0, &line, &result);
	if (!root) {
		if (result == -ENOMEM)
			return json_fail_oom(&ctx);
		return json_fail(&ctx, "invalid JSON at line %u", line);
	}
	if (!cJSON_IsObject(root))
		result = json_fail(&ctx, "the credentials must be a JSON object");
	else
		result = parse_fields(&ctx, root, imds, &cr);
	if (cJSON_IsObject(root))
		wipe_tree(root);
	cJSON_Delete(root);
	if (result) {
		aws_credentials_dispose(&cr);
		return result;
	}
	cr.source = source_names[imds ? SRC_IMDS : SRC_ECS];
	*out = cr;
	return 0;
}

/* ---- the schedule ---- */

static void on_timer(uv_timer_t *t);

/* Starts the timer for whatever comes first: announcement, fetch, expiry. */
static void arm(aws_creds_t *c)
{
	uint64_t now = uv_now(c->loop), next = UINT64_MAX, wall;

	if (c->freeing)
		return;
	if (c->announce)
		next = now;
	if (c->fetch_due && c->fetch_due < next)
		next = c->fetch_due;
	if (c->have && c->creds.expiration_ms && !c->expiry_logged) {
		wall = timefmt_now_ms();
		/* One ms late rather than early: the check compares wall clocks. */
		if (c->creds.expiration_ms >= wall &&
		    now + (c->creds.expiration_ms - wall) + 1 < next)
			next = now + (c->creds.expiration_ms - wall) + 1;
		else if (c->creds.expiration_ms < wall)
			next = now;
	}
	if (next == UINT64_MAX)
		uv_timer_stop(&c->timer);
	else
		uv_timer_start(&c->timer, on_timer, next > now ? next - now : 0, 0);
}

/* Logs, once, that the current credentials have expired without a replacement. */
static void check_expiry(aws_creds_t *c, uint64_t now_wall)
{
	char msg[AWS_CREDS_ERR_MAX + 64], exp[32];

	if (!c->have || !c->creds.expiration_ms || c->expiry_logged ||
	    now_wall < c->creds.expiration_ms)
		return;
	c->expiry_logged = true;
	format_time(c->creds.expiration_ms, exp, sizeof(exp));
	snprintf(msg, sizeof(msg), "credentials expired; last error: %s",
	         c->last_error[0] ? c->last_error : "none");
	LOG(c, log_error, msg, LOG_STR("source", source_names[c->source]),
	    LOG_STR("expiration", exp));
}

/*
 * The wait before the next fetch after `failed_in_row` failures: 1 s doubling
 * to 60 s, up to a quarter less at random (a fleet does not retry in step),
 * never under 1 s.
 */
static uint64_t backoff_ms(aws_creds_t *c)
{
	uint64_t ceiling = AWS_CREDS_MIN_DELAY_MS, delay;
	unsigned n = c->failed_in_row > 0 ? c->failed_in_row - 1 : 0;

	while (n-- > 0 && ceiling < AWS_CREDS_BACKOFF_CAP_MS)
		ceiling *= 2;
	if (ceiling > AWS_CREDS_BACKOFF_CAP_MS)
		ceiling = AWS_CREDS_BACKOFF_CAP_MS;
	delay = ceiling - jitter_upto(&c->rng, ceiling / 4);
	return delay < AWS_CREDS_MIN_DELAY_MS ? AWS_CREDS_MIN_DELAY_MS : delay;
}

/*
 * The wait before refreshing credentials just installed: until Expiration -
 * margin; when that is past already (short-lived credentials), half the time
 * they have left, so that a source handing out such credentials is not asked
 * in a loop; never under 1 s. 0: they never expire.
 */
static uint64_t refresh_delay_ms(const aws_creds_t *c, uint64_t now_wall)
{
	uint64_t exp = c->creds.expiration_ms, due, delay;

	if (!exp)
		return 0;
	due = exp > c->margin_ms ? exp - c->margin_ms : 0;
	if (due > now_wall)
		delay = due - now_wall;
	else
		delay = exp > now_wall ? (exp - now_wall) / 2 : 0;
	return delay < AWS_CREDS_MIN_DELAY_MS ? AWS_CREDS_MIN_DELAY_MS : delay;
}

/* A fetch failed: keep the credentials, log, and retry after the backoff. */
static void fetch_failed(aws_creds_t *c, long status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fetch_failed(aws_creds_t *c, long status, const char *fmt, ...)
{
	uint64_t delay;
	va_list ap;

	c->step = STEP_IDLE;
	va_start(ap, fmt);
	vsnprintf(c->last_error, sizeof(c->last_error), fmt, ap);
	va_end(ap);
	c->failures++;
	if (c->failed_in_row < UINT32_MAX)
		c->failed_in_row++;
	delay = backoff_ms(c);
	c->fetch_due = uv_now(c->loop) + delay;
	if (!c->fetch_due)
		c->fetch_due = 1;
	LOG(c, log_warn, "AWS credentials fetch failed", LOG_STR("source", source_names[c->source]),
	    LOG_STR("error", c->last_error), LOG_INT("http_status", status),
	    LOG_UINT("retry_in_ms", delay), LOG_UINT("failures_in_row", c->failed_in_row));
	check_expiry(c, timefmt_now_ms());
	arm(c);
}

/* The HTTP transport went away (curluv_dispose()): nothing more can be fetched. */
static void transport_closed(aws_creds_t *c)
{
	c->step = STEP_IDLE;
	c->fetch_due = 0;
	c->transport_gone = true;
	snprintf(c->last_error, sizeof(c->last_error), "the HTTP transport was closed");
	LOG(c, log_warn, "AWS credentials: no more fetches, the HTTP transport was closed",
	    LOG_STR("source", source_names[c->source]));
	arm(c);
}

/* New credentials: install them, schedule their refresh, tell the owner. */
static void install(aws_creds_t *c, aws_credentials_t *cr)
{
	uint64_t now_wall = timefmt_now_ms(), delay;
	char exp[32];
	bool first = c->refreshes == 0;

	if (cr->expiration_ms && cr->expiration_ms <= now_wall) {
		format_time(cr->expiration_ms, exp, sizeof(exp));
		aws_credentials_dispose(cr);
		fetch_failed(c, 200, "%s: Expiration: %s is already past", c->shown, exp);
		return;
	}
	aws_credentials_dispose(&c->creds);
	c->creds = *cr;
	memset(cr, 0, sizeof(*cr));
	c->have = true;
	c->refreshes++;
	c->failed_in_row = 0;
	c->last_error[0] = '\0';
	c->expiry_logged = false;
	delay = refresh_delay_ms(c, now_wall);
	c->fetch_due = delay ? uv_now(c->loop) + delay : 0;
	format_time(c->creds.expiration_ms, exp, sizeof(exp));
	if (c->source == SRC_IMDS)
		LOG(c, log_info, first ? "AWS credentials obtained" : "AWS credentials refreshed",
		    LOG_STR("source", source_names[c->source]),
		    LOG_STR("access_key_id", c->creds.access_key_id), LOG_STR("role", c->role),
		    LOG_STR("expiration", exp), LOG_UINT("refresh_in_s", delay / 1000u));
	else
		LOG(c, log_info, first ? "AWS credentials obtained" : "AWS credentials refreshed",
		    LOG_STR("source", source_names[c->source]),
		    LOG_STR("access_key_id", c->creds.access_key_id), LOG_STR("expiration", exp),
		    LOG_UINT("refresh_in_s", delay / 1000u));
	arm(c);
	if (c->on_update)
		c->on_update(c, c->arg); /* last: it may free c */
}

/* ---- HTTP ---- */

/* The PUT for the IMDS token has an empty body. */
static size_t on_read(char *buf, size_t size, size_t nmemb, void *arg)
{
	(void)buf;
	(void)size;
	(void)nmemb;
	(void)arg;
	return 0;
}

/* Frees the request's headers, wiping them: they may carry a token. */
static void headers_free(aws_creds_t *c)
{
	struct curl_slist *h;

	for (h = c->headers; h; h = h->next)
		OPENSSL_cleanse(h->data, strlen(h->data));
	curl_slist_free_all(c->headers);
	c->headers = NULL;
}

/* Appends a header line to the request's headers. */
static int add_line(aws_creds_t *c, const char *line)
{
	struct curl_slist *next = curl_slist_append(c->headers, line);

	if (!next)
		return -ENOMEM;
	c->headers = next;
	return 0;
}

/* Appends "name: value" to the request's headers; the copy made here is wiped. */
static int add_header(aws_creds_t *c, const char *name, const char *value)
{
	char *line = concat(name, ": ", value);
	int result;

	if (!line)
		return -ENOMEM;
	result = add_line(c, line);
	wipe_free(line);
	return result;
}

static void on_done(CURL *easy, CURLcode result, void *arg);

/*
 * Starts one request of the fetch. The headers were added by the caller.
 * Returns 0, -ECANCELED when the transport is closed, or another negative
 * errno (the headers are freed then).
 */
static int request(aws_creds_t *c, step_t step, const char *url, bool put)
{
	CURLcode cr = CURLE_OK;
	int result;

	curluv_body_reset(&c->body);
	c->errbuf[0] = '\0';
	if (put) {
		cr = curl_easy_setopt(c->easy, CURLOPT_UPLOAD, 1L);
		if (cr == CURLE_OK)
			cr = curl_easy_setopt(c->easy, CURLOPT_INFILESIZE_LARGE, (curl_off_t)0);
	} else {
		cr = curl_easy_setopt(c->easy, CURLOPT_HTTPGET, 1L);
	}
	if (cr == CURLE_OK)
		cr = curl_easy_setopt(c->easy, CURLOPT_URL, url);
	if (cr == CURLE_OK)
		cr = curl_easy_setopt(c->easy, CURLOPT_HTTPHEADER, c->headers);
	if (cr != CURLE_OK) {
		headers_free(c);
		return cr == CURLE_OUT_OF_MEMORY ? -ENOMEM : -EINVAL;
	}
	c->step = step;
	result = curluv_add(c->cu, c->easy, on_done, c);
	if (result) {
		c->step = STEP_IDLE;
		headers_free(c);
	}
	return result;
}

/* After request() failed: the transport is gone, or this fetch failed. */
static void request_failed(aws_creds_t *c, int result, const char *what)
{
	if (result == -ECANCELED)
		transport_closed(c);
	else
		fetch_failed(c, 0, "%s: cannot start the request (%s)", what, strerror(-result));
}

/* Reads the ECS authorization token file: at most AUTH_TOKEN_MAX bytes. */
static int read_token_file(const char *path, char **out, char *msg, size_t msglen)
{
	char q[JSON_QUOTE_BUF];
	size_t len;
	int result;

	*out = NULL;
	result = fileio_read(path, AUTH_TOKEN_MAX, out, &len);
	if (result == -EFBIG)
		snprintf(msg, msglen, ENV_AUTH_FILE " \"%s\": larger than %d bytes",
		         json_quote(path, q, sizeof(q)), AUTH_TOKEN_MAX);
	else if (result && result != -ENOMEM)
		snprintf(msg, msglen, ENV_AUTH_FILE " \"%s\": %s", json_quote(path, q, sizeof(q)),
		         strerror(-result));
	return result;
}

/*
 * The Authorization header's value for the ECS endpoint, read now: the token
 * file's content (which the agent rotates) or the token variable, trimmed. A
 * new string in *out, NULL when there is none. Returns 0, or a negative errno
 * with the reason in msg (never the token).
 */
static int ecs_auth_token(aws_creds_t *c, char **out, char *msg, size_t msglen)
{
	char q[JSON_QUOTE_BUF];
	char *buf = NULL, *t;
	int result;

	*out = NULL;
	if (!c->auth_file && !c->auth_env)
		return 0;
	if (c->auth_file) {
		result = read_token_file(c->auth_file, &buf, msg, msglen);
		if (result == -ENOMEM)
			snprintf(msg, msglen, "out of memory");
		if (result)
			return result;
	} else {
		buf = strdup(c->auth_env);
		if (!buf) {
			snprintf(msg, msglen, "out of memory");
			return -ENOMEM;
		}
	}
	t = trim(buf);
	result = 0;
	if (!t[0] || has_control(t)) {
		if (c->auth_file)
			snprintf(
			    msg, msglen, ENV_AUTH_FILE " \"%s\": %s",
			    json_quote(c->auth_file, q, sizeof(q)),
			    t[0] ? "the token contains a line break or another control character"
			         : "the token is empty");
		else
			snprintf(msg, msglen, ENV_AUTH ": the token contains a control character");
		result = -EINVAL;
	} else if (t != buf) {
		memmove(buf, t, strlen(t) + 1);
	}
	if (result) {
		wipe_free(buf);
		return result;
	}
	*out = buf;
	return 0;
}

static void fetch_ecs(aws_creds_t *c)
{
	char msg[AWS_CREDS_ERR_MAX];
	char *token = NULL;
	int result;

	result = ecs_auth_token(c, &token, msg, sizeof(msg));
	if (result) {
		fetch_failed(c, 0, "%s", msg);
		return;
	}
	result = add_header(c, "Accept", "application/json");
	if (!result && token)
		result = add_header(c, "Authorization", token);
	wipe_free(token);
	if (!result)
		result = request(c, STEP_ECS, c->url, false);
	else
		headers_free(c);
	if (result)
		request_failed(c, result, c->shown);
}

/* IMDS step 1: a session token. */
static void imds_token(aws_creds_t *c)
{
	char ttl[16], *url = concat(c->url, IMDS_TOKEN_PATH, NULL);
	int result;

	snprintf(ttl, sizeof(ttl), "%d", AWS_CREDS_IMDS_TOKEN_TTL_S);
	result = url ? add_header(c, "X-aws-ec2-metadata-token-ttl-seconds", ttl) : -ENOMEM;
	/* No 100-continue round trip. */
	if (!result)
		result = add_line(c, "Expect:");
	if (!result)
		result = request(c, STEP_IMDS_TOKEN, url, true);
	else
		headers_free(c);
	if (result)
		request_failed(c, result, "PUT " IMDS_TOKEN_PATH);
	free(url);
}

/* IMDS steps 2 and 3: the role's name, then its credentials. */
static void imds_get(aws_creds_t *c, step_t step)
{
	char *url = concat(c->url, IMDS_CREDS_PATH, step == STEP_IMDS_CREDS ? c->role : NULL);
	int result;

	result = url ? add_header(c, "X-aws-ec2-metadata-token", c->imds_token) : -ENOMEM;
	if (!result)
		result = request(c, step, url, false);
	else
		headers_free(c);
	if (result)
		request_failed(c, result, "GET " IMDS_CREDS_PATH);
	free(url);
}

static void drop_imds_token(aws_creds_t *c)
{
	OPENSSL_cleanse(c->imds_token, sizeof(c->imds_token));
	c->imds_token[0] = '\0';
	c->imds_token_until = 0;
}

static void fetch_imds(aws_creds_t *c)
{
	c->fresh_token = false;
	if (c->imds_token[0] && uv_now(c->loop) < c->imds_token_until)
		imds_get(c, STEP_IMDS_ROLE);
	else
		imds_token(c);
}

static void start_fetch(aws_creds_t *c)
{
	c->fetch_due = 0;
	if (c->source == SRC_ECS)
		fetch_ecs(c);
	else if (c->source == SRC_IMDS)
		fetch_imds(c);
}

/* The answer of the token PUT: keep the token, ask for the role. */
static void on_imds_token(aws_creds_t *c)
{
	char *t = trim(c->body.data);

	if (!header_safe(t, IMDS_TOKEN_MAX)) {
		curluv_body_reset(&c->body);
		fetch_failed(c, 200,
		             "PUT %s" IMDS_TOKEN_PATH ": the token must be 1 to %d printable "
		             "ASCII characters without spaces",
		             c->url, IMDS_TOKEN_MAX);
		return;
	}
	memcpy(c->imds_token, t, strlen(t) + 1);
	curluv_body_reset(&c->body);
	c->imds_token_until =
	    uv_now(c->loop) + (uint64_t)(AWS_CREDS_IMDS_TOKEN_TTL_S - IMDS_TOKEN_SLACK) * 1000u;
	c->fresh_token = true;
	imds_get(c, STEP_IMDS_ROLE);
}

/* The answer of the role GET: the first line is the role's name. */
static void on_imds_role(aws_creds_t *c)
{
	char *line = c->body.data, *end = strpbrk(line, "\r\n");
	size_t n;

	if (end)
		*end = '\0';
	line = trim(line);
	n = strlen(line);
	if (n == 0 || n > ROLE_MAX ||
	    strspn(line, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+=,.@_-") !=
	        n) {
		fetch_failed(c, 200, "GET %s" IMDS_CREDS_PATH ": %s", c->url,
		             n == 0 ? "no IAM role (is an instance profile attached?)"
		                    : "the role name must be 1 to 64 letters, digits or +=,.@_-");
		return;
	}
	memcpy(c->role, line, n + 1);
	imds_get(c, STEP_IMDS_CREDS);
}

static void on_document(aws_creds_t *c, bool imds)
{
	char err[AWS_CREDS_ERR_MAX - 64];
	aws_credentials_t cr;
	int result;

	result = aws_creds_parse(c->body.data, c->body.len, imds, &cr, err, sizeof(err));
	curluv_body_reset(&c->body);
	if (result) {
		if (imds)
			fetch_failed(c, 200, "GET %s" IMDS_CREDS_PATH "%s: %s", c->url, c->role,
			             err);
		else
			fetch_failed(c, 200, "GET %s: %s", c->shown, err);
		return;
	}
	install(c, &cr);
}

/* How each step is named in messages. */
static void step_name(const aws_creds_t *c, step_t step, char *out, size_t outlen)
{
	if (step == STEP_ECS)
		snprintf(out, outlen, "GET %s", c->shown);
	else if (step == STEP_IMDS_TOKEN)
		snprintf(out, outlen, "PUT %s" IMDS_TOKEN_PATH, c->url);
	else if (step == STEP_IMDS_ROLE)
		snprintf(out, outlen, "GET %s" IMDS_CREDS_PATH, c->url);
	else
		snprintf(out, outlen, "GET %s" IMDS_CREDS_PATH "%s", c->url, c->role);
}

static void on_done(CURL *easy, CURLcode result, void *arg)
{
	aws_creds_t *c = arg;
	step_t step = c->step;
	char what[160];
	long status = 0;

	c->step = STEP_IDLE;
	headers_free(c);
	if (result == CURLE_ABORTED_BY_CALLBACK) {
		curluv_body_reset(&c->body);
		transport_closed(c);
		return;
	}
	step_name(c, step, what, sizeof(what));
	if (result != CURLE_OK) {
		bool too_big = c->body.too_big || result == CURLE_FILESIZE_EXCEEDED;
		bool oom = c->body.oom || result == CURLE_OUT_OF_MEMORY;

		curluv_body_reset(&c->body);
		if (too_big)
			fetch_failed(c, 0, "%s: the answer is larger than %d bytes", what,
			             AWS_CREDS_MAX_BODY);
		else if (oom)
			fetch_failed(c, 0, "%s: out of memory", what);
		else
			fetch_failed(c, 0, "%s: %s", what,
			             c->errbuf[0] ? c->errbuf : curl_easy_strerror(result));
		return;
	}
	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
	if (!c->body.data) {
		/* An empty answer: give the parsers an empty string. */
		curluv_body_write("", 1, 0, &c->body);
		if (!c->body.data) {
			fetch_failed(c, status, "%s: out of memory", what);
			return;
		}
	}
	/* An expired IMDS session token: get a new one, once per fetch. */
	if (status == 401 && (step == STEP_IMDS_ROLE || step == STEP_IMDS_CREDS) &&
	    !c->fresh_token) {
		curluv_body_reset(&c->body);
		drop_imds_token(c);
		imds_token(c);
		return;
	}
	if (status != 200) {
		curluv_body_reset(&c->body);
		fetch_failed(c, status, "%s: HTTP %ld%s", what, status,
		             status == 404 && step == STEP_IMDS_ROLE
		                 ? " (no IAM role: is an instance profile attached?)"
		                 : "");
		return;
	}
	if (step == STEP_ECS) {
		on_document(c, false);
	} else if (step == STEP_IMDS_TOKEN) {
		on_imds_token(c);
	} else if (step == STEP_IMDS_ROLE) {
		on_imds_role(c);
	} else {
		on_document(c, true);
	}
}

static void on_timer(uv_timer_t *t)
{
	aws_creds_t *c = container_of(t, aws_creds_t, timer);

	if (c->announce) {
		c->announce = false;
		if (c->on_update) {
			c->on_update(c, c->arg);
			if (c->freeing)
				return;
		}
	}
	check_expiry(c, timefmt_now_ms());
	if (c->fetch_due && uv_now(c->loop) >= c->fetch_due && c->step == STEP_IDLE)
		start_fetch(c);
	arm(c);
}

/* ---- choosing the source ---- */

/* aws_creds_start() fails: keep and log the reason. */
static int start_failed(aws_creds_t *c, int result, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int start_failed(aws_creds_t *c, int result, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->last_error, sizeof(c->last_error), fmt, ap);
	va_end(ap);
	c->source = SRC_NONE;
	LOG(c, log_error, "no usable AWS credentials", LOG_STR("error", c->last_error));
	return result;
}

static int use_env(aws_creds_t *c, const char *akid, const char *secret, const char *session)
{
	aws_credentials_t *cr = &c->creds;

	if (!header_safe(akid, ENV_VALUE_MAX))
		return start_failed(c, -EINVAL,
		                    ENV_AKID ": must be printable ASCII without spaces");
	if (!header_safe(secret, ENV_VALUE_MAX))
		return start_failed(c, -EINVAL,
		                    ENV_SECRET ": must be printable ASCII without spaces");
	if (session && !header_safe(session, ENV_VALUE_MAX))
		return start_failed(c, -EINVAL,
		                    ENV_SESSION ": must be printable ASCII without spaces");
	cr->access_key_id = strdup(akid);
	cr->secret_access_key = strdup(secret);
	cr->session_token = session ? strdup(session) : NULL;
	if (!cr->access_key_id || !cr->secret_access_key || (session && !cr->session_token)) {
		aws_credentials_dispose(cr);
		return start_failed(c, -ENOMEM, "out of memory");
	}
	cr->expiration_ms = 0;
	cr->source = source_names[SRC_ENV];
	c->source = SRC_ENV;
	c->have = true;
	c->refreshes = 1;
	c->announce = true;
	LOG(c, log_info, "AWS credentials obtained", LOG_STR("source", source_names[SRC_ENV]),
	    LOG_STR("access_key_id", cr->access_key_id),
	    LOG_BOOL("session_token", session != NULL));
	arm(c);
	return 0;
}

/* The parts of a URL we check: scheme and host (IPv6 in brackets), lower case by curl. */
typedef struct {
	char *scheme;
	char *host;
	char *port;
	char *path;
} url_parts_t;

static void url_parts_free(url_parts_t *u)
{
	curl_free(u->scheme);
	curl_free(u->host);
	curl_free(u->port);
	curl_free(u->path);
	memset(u, 0, sizeof(*u));
}

/* Splits an http or https URL. Returns 0, -EINVAL, or -ENOMEM. */
static int url_split(const char *url, url_parts_t *u)
{
	CURLU *h = curl_url();
	int result = -EINVAL;

	memset(u, 0, sizeof(*u));
	if (!h)
		return -ENOMEM;
	if (curl_url_set(h, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(h, CURLUPART_SCHEME, &u->scheme, 0) != CURLUE_OK ||
	    curl_url_get(h, CURLUPART_HOST, &u->host, 0) != CURLUE_OK ||
	    curl_url_get(h, CURLUPART_PATH, &u->path, 0) != CURLUE_OK)
		goto out;
	if (curl_url_get(h, CURLUPART_PORT, &u->port, 0) != CURLUE_OK)
		u->port = NULL;
	if (strcasecmp(u->scheme, "http") != 0 && strcasecmp(u->scheme, "https") != 0)
		goto out;
	result = 0;
out:
	curl_url_cleanup(h);
	if (result)
		url_parts_free(u);
	return result;
}

/*
 * The hosts a FULL_URI may name over plain http, as the SDKs allow them:
 * loopback (localhost, 127.0.0.0/8, ::1) and the ECS and EKS Pod Identity
 * agents (169.254.170.2, 169.254.170.23, fd00:ec2::23). Names other than
 * localhost are refused: resolving them here would block the loop.
 */
static bool plain_http_host_allowed(const char *host)
{
	static const unsigned char eks6[16] = {0xfd, 0x00, 0x0e, 0xc2, 0, 0, 0,    0,
	                                       0,    0,    0,    0,    0, 0, 0x00, 0x23};
	struct in6_addr a6;
	struct in_addr a4;
	char inner[64];
	size_t n = strlen(host);
	uint32_t ip;

	if (strcasecmp(host, "localhost") == 0)
		return true;
	if (inet_pton(AF_INET, host, &a4) == 1) {
		ip = ntohl(a4.s_addr);
		return (ip >> 24) == 127 || ip == 0xA9FEAA02u || ip == 0xA9FEAA17u;
	}
	if (n < 3 || n - 2 >= sizeof(inner) || host[0] != '[' || host[n - 1] != ']')
		return false;
	memcpy(inner, host + 1, n - 2);
	inner[n - 2] = '\0';
	if (inet_pton(AF_INET6, inner, &a6) != 1)
		return false;
	return IN6_IS_ADDR_LOOPBACK(&a6) || memcmp(&a6, eks6, sizeof(eks6)) == 0;
}

/* "scheme://host[:port]": for logs. */
static char *origin(const url_parts_t *u)
{
	size_t n = strlen(u->scheme) + strlen(u->host) + (u->port ? strlen(u->port) : 0) + 8;
	char *s = malloc(n);

	if (s)
		snprintf(s, n, "%s://%s%s%s", u->scheme, u->host, u->port ? ":" : "",
		         u->port ? u->port : "");
	return s;
}

static int use_ecs_relative(aws_creds_t *c, const char *rel)
{
	const char *host = c->ecs_host ? c->ecs_host : AWS_CREDS_DEFAULT_ECS_HOST;
	url_parts_t u;
	int result;

	if (rel[0] != '/' || has_control(rel) || strchr(rel, ' '))
		return start_failed(c, -EINVAL, ENV_RELATIVE ": must be a path starting with /");
	if (has_control(host) || strpbrk(host, "/?#@ "))
		return start_failed(c, -EINVAL, "the ECS host must be host[:port]");
	c->url = concat("http://", host, rel);
	c->shown = concat("http://", host, "$" ENV_RELATIVE);
	if (!c->url || !c->shown)
		return start_failed(c, -ENOMEM, "out of memory");
	result = url_split(c->url, &u);
	if (result == -ENOMEM)
		return start_failed(c, -ENOMEM, "out of memory");
	if (result)
		return start_failed(c, -EINVAL, ENV_RELATIVE ": http://%s + its value is not a URL",
		                    host);
	url_parts_free(&u);
	return 0;
}

static int use_ecs_full(aws_creds_t *c, const char *full)
{
	char q[JSON_QUOTE_BUF];
	url_parts_t u;
	int result;

	result = url_split(full, &u);
	if (result == -ENOMEM)
		return start_failed(c, -ENOMEM, "out of memory");
	if (result)
		return start_failed(c, -EINVAL, ENV_FULL ": must be an http or https URL");
	if (strcasecmp(u.scheme, "http") == 0 && !plain_http_host_allowed(u.host)) {
		result = start_failed(c, -EINVAL,
		                      ENV_FULL ": the host \"%s\" is not allowed over plain http "
		                               "(only loopback, 169.254.170.2, 169.254.170.23 and "
		                               "[fd00:ec2::23]; use https for other hosts)",
		                      json_quote(u.host, q, sizeof(q)));
		url_parts_free(&u);
		return result;
	}
	c->url = strdup(full);
	c->shown = origin(&u);
	url_parts_free(&u);
	if (!c->url || !c->shown)
		return start_failed(c, -ENOMEM, "out of memory");
	return 0;
}

static int use_ecs(aws_creds_t *c, const char *rel, const char *full)
{
	const char *file = env(ENV_AUTH_FILE), *tok = env(ENV_AUTH);
	char *copy;
	int result;

	/* RELATIVE_URI first, as in the SDKs. */
	result = rel ? use_ecs_relative(c, rel) : use_ecs_full(c, full);
	if (result)
		return result;
	/* The file first, as in the SDKs; it is read at each fetch. */
	if (file) {
		c->auth_file = strdup(file);
		if (!c->auth_file)
			return start_failed(c, -ENOMEM, "out of memory");
	} else if (tok) {
		copy = strdup(tok);
		if (!copy)
			return start_failed(c, -ENOMEM, "out of memory");
		if (has_control(trim(copy))) {
			wipe_free(copy);
			return start_failed(c, -EINVAL,
			                    ENV_AUTH ": the token contains a line break or another "
			                             "control character");
		}
		c->auth_env = copy;
	}
	c->source = SRC_ECS;
	return 0;
}

static int use_imds(aws_creds_t *c)
{
	const char *ep = c->imds_endpoint, *from = "the IMDS endpoint", *mode;
	char q[JSON_QUOTE_BUF];
	url_parts_t u;
	size_t n;
	int result;

	if (!ep) {
		ep = env(ENV_IMDS_ENDPOINT);
		from = ENV_IMDS_ENDPOINT;
	}
	if (!ep) {
		mode = env(ENV_IMDS_MODE);
		if (mode && strcasecmp(mode, "IPv6") != 0 && strcasecmp(mode, "IPv4") != 0)
			return start_failed(c, -EINVAL,
			                    ENV_IMDS_MODE ": \"%s\" is not IPv4 or IPv6",
			                    json_quote(mode, q, sizeof(q)));
		ep = mode && strcasecmp(mode, "IPv6") == 0 ? AWS_CREDS_IMDS_IPV6
		                                           : AWS_CREDS_DEFAULT_IMDS;
	}
	result = url_split(ep, &u);
	if (result == -ENOMEM)
		return start_failed(c, -ENOMEM, "out of memory");
	if (result)
		return start_failed(c, -EINVAL, "%s: \"%s\" is not an http or https URL", from,
		                    json_quote(ep, q, sizeof(q)));
	url_parts_free(&u);
	if (strpbrk(ep, "?#"))
		return start_failed(c, -EINVAL, "%s: \"%s\" must not have a query", from,
		                    json_quote(ep, q, sizeof(q)));
	c->url = strdup(ep);
	if (!c->url)
		return start_failed(c, -ENOMEM, "out of memory");
	n = strlen(c->url);
	while (n > 0 && c->url[n - 1] == '/')
		c->url[--n] = '\0';
	c->shown = strdup(c->url);
	if (!c->shown)
		return start_failed(c, -ENOMEM, "out of memory");
	c->source = SRC_IMDS;
	return 0;
}

/* The easy handle's options for the chosen endpoint. */
static int easy_setup(aws_creds_t *c)
{
	bool https = strncasecmp(c->url, "https:", 6) == 0;
	CURLcode result = CURLE_OK;

	/* TLS checks where there is TLS; for the plain http metadata endpoints
	 * only what is needed (no cookies, no HTTP/2). */
	if (https && curluv_easy_defaults(c->easy, c->ca_file))
		return -EINVAL;
#define SET(opt, val)                                                                              \
	do {                                                                                       \
		if (result == CURLE_OK)                                                            \
			result = curl_easy_setopt(c->easy, opt, val);                              \
	} while (0)
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_PROTOCOLS_STR, https ? "https" : "http");
	SET(CURLOPT_FOLLOWLOCATION, 0L);
	/* Credentials never go through a proxy. */
	SET(CURLOPT_NOPROXY, "*");
	SET(CURLOPT_TIMEOUT_MS, c->timeout_ms);
	SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)AWS_CREDS_MAX_BODY);
	SET(CURLOPT_USERAGENT, "sgprobe");
	SET(CURLOPT_WRITEFUNCTION, curluv_body_write);
	SET(CURLOPT_WRITEDATA, &c->body);
	SET(CURLOPT_READFUNCTION, on_read);
	SET(CURLOPT_READDATA, c);
	SET(CURLOPT_ERRORBUFFER, c->errbuf);
#undef SET
	if (result == CURLE_OUT_OF_MEMORY)
		return -ENOMEM;
	return result == CURLE_OK ? 0 : -EINVAL;
}

/* Reads the environment and picks the source, SDK order. */
static int pick_source(aws_creds_t *c)
{
	const char *akid = env(ENV_AKID), *secret = env(ENV_SECRET);
	const char *rel = env(ENV_RELATIVE), *full = env(ENV_FULL), *off;

	if (akid && !secret)
		return start_failed(c, -EINVAL, ENV_SECRET " is not set but " ENV_AKID " is");
	if (secret && !akid)
		return start_failed(c, -EINVAL, ENV_AKID " is not set but " ENV_SECRET " is");
	if (akid)
		return use_env(c, akid, secret, env(ENV_SESSION));
	if (rel || full)
		return use_ecs(c, rel, full);
	off = env(ENV_IMDS_DISABLED);
	if (off && strcasecmp(off, "true") == 0)
		return start_failed(
		    c, -ENOENT,
		    "no credentials in the environment, no ECS container credentials, "
		    "and IMDS is disabled (" ENV_IMDS_DISABLED "=true)");
	return use_imds(c);
}

int aws_creds_start(aws_creds_t *c)
{
	int result;

	if (c->started)
		return -EALREADY;
	c->started = true;
	result = pick_source(c);
	if (result || c->source == SRC_ENV)
		return result;
	result = easy_setup(c);
	if (result) {
		c->source = SRC_NONE;
		return start_failed(c, result, "libcurl refused an option");
	}
	LOG(c, log_info, "AWS credentials source", LOG_STR("source", source_names[c->source]),
	    LOG_STR("endpoint", c->shown));
	start_fetch(c);
	if (c->transport_gone)
		return start_failed(c, -ECANCELED, "the HTTP transport was closed");
	return 0;
}

/* ---- the object ---- */

aws_creds_t *aws_creds_new(uv_loop_t *loop, curluv_t *cu, const aws_creds_config_t *cfg,
                           const log_t *lg, aws_creds_cb on_update, void *arg)
{
	static const aws_creds_config_t defaults = {0};
	aws_creds_t *c;

	if (!loop || !cu)
		return NULL;
	if (!cfg)
		cfg = &defaults;
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->loop = loop;
	c->cu = cu;
	c->lg = lg;
	c->body = (curluv_body_t){.max = AWS_CREDS_MAX_BODY, .secret = true};
	c->on_update = on_update;
	c->arg = arg;
	c->margin_ms =
	    (uint64_t)(cfg->refresh_margin_s ? cfg->refresh_margin_s : AWS_CREDS_DEFAULT_MARGIN_S) *
	    1000u;
	c->timeout_ms = cfg->timeout_ms ? (long)cfg->timeout_ms : AWS_CREDS_DEFAULT_TIMEOUT_MS;
	c->rng = uv_hrtime() ^ (uint64_t)(uintptr_t)c;
	c->ecs_host = cfg->ecs_host ? strdup(cfg->ecs_host) : NULL;
	c->imds_endpoint = cfg->imds_endpoint ? strdup(cfg->imds_endpoint) : NULL;
	c->ca_file = cfg->ca_file ? strdup(cfg->ca_file) : NULL;
	c->easy = curl_easy_init();
	if ((cfg->ecs_host && !c->ecs_host) || (cfg->imds_endpoint && !c->imds_endpoint) ||
	    (cfg->ca_file && !c->ca_file) || !c->easy) {
		curl_easy_cleanup(c->easy);
		free(c->ecs_host);
		free(c->imds_endpoint);
		free(c->ca_file);
		free(c);
		return NULL;
	}
	/* Last: it cannot fail, and nothing above needs a handle closed. */
	uv_timer_init(loop, &c->timer);
	return c;
}

const aws_credentials_t *aws_creds_get(const aws_creds_t *c, uint64_t now_wall_ms)
{
	if (!c || !c->have)
		return NULL;
	if (c->creds.expiration_ms && now_wall_ms >= c->creds.expiration_ms)
		return NULL;
	return &c->creds;
}

const char *aws_creds_source(const aws_creds_t *c)
{
	return source_names[c->source];
}

const char *aws_creds_last_error(const aws_creds_t *c)
{
	return c->last_error;
}

uint64_t aws_creds_refreshes(const aws_creds_t *c)
{
	return c->refreshes;
}

uint64_t aws_creds_failures(const aws_creds_t *c)
{
	return c->failures;
}

static void on_timer_closed(uv_handle_t *h)
{
	aws_creds_t *c = container_of((uv_timer_t *)h, aws_creds_t, timer);
	void (*cb)(void *) = c->on_closed;
	void *arg = c->closed_arg;

	headers_free(c);
	curluv_body_dispose(&c->body);
	curl_easy_cleanup(c->easy);
	drop_imds_token(c);
	aws_credentials_dispose(&c->creds);
	wipe_free(c->auth_env);
	free(c->auth_file);
	free(c->url);
	free(c->shown);
	free(c->ecs_host);
	free(c->imds_endpoint);
	free(c->ca_file);
	free(c);
	if (cb)
		cb(arg);
}

void aws_creds_free(aws_creds_t *c, void (*on_closed)(void *arg), void *arg)
{
	if (!c || c->freeing)
		return;
	c->freeing = true;
	c->on_closed = on_closed;
	c->closed_arg = arg;
	c->announce = false;
	if (c->step != STEP_IDLE) {
		curluv_remove(c->cu, c->easy);
		c->step = STEP_IDLE;
	}
	uv_timer_stop(&c->timer);
	uv_close((uv_handle_t *)&c->timer, on_timer_closed);
}
