/*
 * Unit tests of lib/awscreds.c: the AWS credential chain (environment, ECS
 * container credentials, IMDSv2) against a small scripted HTTP server on
 * 127.0.0.1 run on the test's loop. It records every request whole (method,
 * target, header lines), which tests/unit/http_fixture.h does not, so that the
 * tests can check the Authorization and IMDS token headers.
 *
 * Every test saves and clears the AWS variables it may touch and restores them
 * after; it points http_proxy at a dead port (a credential fetch must not use
 * a proxy) and AWS_EC2_METADATA_SERVICE_ENDPOINT at a closed port (no test may
 * reach a real metadata service). Every test logs to a memory stream, checks
 * that no secret appears there, and ends with every handle closed:
 * uv_loop_close() returns 0.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <uv.h>

#include "sgprobe/awscreds.h"
#include "sgprobe/curluv.h"
#include "sgprobe/log.h"

/* Values the tests use. The secrets must never show up in a log line. */
#define AKID1      "ASIAEXAMPLEKEYONE001"
#define AKID2      "ASIAEXAMPLEKEYTWO002"
#define SECRET1    "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzSECRETone"
#define SECRET2    "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbSECRETtwo"
#define TOKEN1     "IQoJb3JpZ2luX2VjEXAMPLEsessionTOKENone//+/=="
#define TOKEN2     "FwoGZXIvYXdzEXAMPLEsessionTOKENtwo+/=="
#define ENV_AKID   "AKIAIOSFODNN7EXAMPLE"
#define ENV_SECRET "xEnvS3cr3tVal/0123456789abcdEFghIJklMNop"
#define ENV_TOKEN  "EnvS3ss10nT0k3nVal/ZYXWVUT987654321=="
#define ECS_TOKEN  "EcsAuthTkVar-6b3f1e0a9c"
#define FILE_TOK1  "EcsAuthTkFile-1st-90ab77"
#define FILE_TOK2  "EcsAuthTkFile-2nd-cd1288"
#define IMDS_TOK1  "AQAEAImdsS3ss10nTk-0ne-7QmZ=="
#define IMDS_TOK2  "AQAEAImdsS3ss10nTk-tw0-4xYw=="
#define ROLE       "sgprobe-collector-role"
#define REL_URI    "/v2/credentials/6e4c2a6b-0c55-4b9d-9f0e-REL"

/* ---- a scripted HTTP/1.1 server on the test's loop ---- */

/* The scripted HTTP server of the unit tests (its collector part is not used here). */
#pragma GCC diagnostic ignored "-Wunused-function"
#include "http_fixture.h"
#include "sgprobe/container.h"

/* ---- the environment of one test ---- */

static const char *const saved_names[] = {
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    "AWS_EC2_METADATA_DISABLED",
    "AWS_EC2_METADATA_SERVICE_ENDPOINT",
    "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE",
    "http_proxy",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
};

#define N_SAVED (sizeof(saved_names) / sizeof(saved_names[0]))
#define N_TRACK 5

typedef struct env_s env_t;

/* One provider under test and what its callbacks saw. */
typedef struct {
	env_t *e;
	aws_creds_t *c;
	int updates;
	int frees;                               /* aws_creds_free() calls */
	int closed;                              /* their close callbacks */
	void (*hook)(aws_creds_t *c, void *arg); /* also called from on_update */
	void *hook_arg;
} tracked_t;

struct env_s {
	char *saved[N_SAVED];
	uv_loop_t loop;
	curluv_t cu;
	uv_timer_t tick;
	int cu_closed;
	bool (*cond)(env_t *e);
	uint64_t until;
	FILE *logf;
	char *logbuf;
	size_t loglen;
	log_t lg;
	fake_t srv;
	bool srv_used;
	tracked_t t[N_TRACK];
	char dir[64]; /* a temporary folder, "" when none */
};

static int env_setup(void **state)
{
	env_t *e = calloc(1, sizeof(*e));
	size_t i;

	if (!e)
		return -1;
	for (i = 0; i < N_SAVED; i++) {
		const char *v = getenv(saved_names[i]);

		e->saved[i] = v ? strdup(v) : NULL;
		unsetenv(saved_names[i]);
	}
	/* A proxy that does not exist: a fetch that used it would fail. */
	setenv("http_proxy", "http://127.0.0.1:9", 1);
	setenv("ALL_PROXY", "http://127.0.0.1:9", 1);
	/* Never the real metadata service from a test. */
	setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:9", 1);
	assert_int_equal(uv_loop_init(&e->loop), 0);
	assert_int_equal(uv_timer_init(&e->loop, &e->tick), 0);
	assert_int_equal(curluv_init(&e->cu, &e->loop), 0);
	e->logf = open_memstream(&e->logbuf, &e->loglen);
	assert_non_null(e->logf);
	log_init(&e->lg, e->logf, LOG_LEVEL_DEBUG, "test");
	for (i = 0; i < N_TRACK; i++)
		e->t[i].e = e;
	*state = e;
	return 0;
}

static void on_update(aws_creds_t *c, void *arg)
{
	tracked_t *t = arg;

	assert_ptr_equal(c, t->c);
	t->updates++;
	if (t->hook)
		t->hook(c, t->hook_arg);
}

static void on_creds_closed(void *arg)
{
	tracked_t *t = arg;

	t->closed++;
}

static void on_cu_closed(curluv_t *cu)
{
	env_t *e = container_of(cu, env_t, cu);

	e->cu_closed++;
}

/* A provider for slot i, with cfg's overrides. */
static aws_creds_t *creds_new(env_t *e, int i, const aws_creds_config_t *cfg)
{
	tracked_t *t = &e->t[i];

	t->c = aws_creds_new(&e->loop, &e->cu, cfg, &e->lg, on_update, t);
	assert_non_null(t->c);
	return t->c;
}

/* Frees slot i's provider and waits for its close callback. */
static void creds_free(env_t *e, int i)
{
	tracked_t *t = &e->t[i];

	if (!t->c)
		return;
	aws_creds_free(t->c, on_creds_closed, t);
	t->frees++;
	t->c = NULL;
}

static void on_tick(uv_timer_t *tm)
{
	env_t *e = container_of(tm, env_t, tick);

	if ((e->cond && e->cond(e)) || uv_now(&e->loop) >= e->until)
		uv_stop(&e->loop);
}

/* Runs the loop until cond(e) holds or `ms` pass; returns whether cond held. */
static bool env_run(env_t *e, bool (*cond)(env_t *e), uint64_t ms)
{
	uv_update_time(&e->loop);
	e->cond = cond;
	e->until = uv_now(&e->loop) + ms;
	assert_int_equal(uv_timer_start(&e->tick, on_tick, 5, 5), 0);
	uv_run(&e->loop, UV_RUN_DEFAULT);
	uv_timer_stop(&e->tick);
	return cond ? cond(e) : true;
}

static const char *log_text(env_t *e)
{
	fflush(e->logf);
	return e->logbuf ? e->logbuf : "";
}

/* No 8-byte piece of `secret` is in the log: not even part of it leaked. */
static void assert_not_logged(env_t *e, const char *secret)
{
	const char *text = log_text(e);
	size_t n = strlen(secret), i;
	char piece[9];

	for (i = 0; i + 8 <= n; i++) {
		memcpy(piece, secret + i, 8);
		piece[8] = '\0';
		if (strstr(text, piece))
			fail_msg("the log holds \"%s\", a piece of a secret:\n%s", piece, text);
	}
}

static void env_teardown_files(env_t *e)
{
	char path[128];

	if (!e->dir[0])
		return;
	snprintf(path, sizeof(path), "%s/token", e->dir);
	unlink(path);
	rmdir(e->dir);
}

static int env_teardown(void **state)
{
	static const char *const secrets[] = {SECRET1,    SECRET2,   TOKEN1,    TOKEN2,
	                                      ENV_SECRET, ENV_TOKEN, ECS_TOKEN, FILE_TOK1,
	                                      FILE_TOK2,  IMDS_TOK1, IMDS_TOK2};
	env_t *e = *state;
	size_t i;

	for (i = 0; i < N_TRACK; i++)
		creds_free(e, (int)i);
	if (e->srv_used)
		fake_close(&e->srv);
	curluv_dispose(&e->cu, on_cu_closed);
	uv_close((uv_handle_t *)&e->tick, NULL);
	assert_int_equal(uv_run(&e->loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(e->cu_closed, 1);
	for (i = 0; i < N_TRACK; i++)
		assert_int_equal(e->t[i].closed, e->t[i].frees);
	assert_int_equal(uv_loop_close(&e->loop), 0);
	for (i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++)
		assert_not_logged(e, secrets[i]);
	fclose(e->logf);
	free(e->logbuf);
	if (e->srv_used)
		fake_free(&e->srv);
	env_teardown_files(e);
	for (i = 0; i < N_SAVED; i++) {
		if (e->saved[i])
			setenv(saved_names[i], e->saved[i], 1);
		else
			unsetenv(saved_names[i]);
		free(e->saved[i]);
	}
	free(e);
	return 0;
}

static void env_server(env_t *e, const fake_answer_t *script, size_t n)
{
	fake_start(&e->srv, &e->loop, script, n);
	e->srv_used = true;
}

static uint64_t now_wall(void)
{
	uv_timeval64_t tv;

	assert_int_equal(uv_gettimeofday(&tv), 0);
	return (uint64_t)tv.tv_sec * 1000u + (uint64_t)tv.tv_usec / 1000u;
}

/* ISO 8601 with milliseconds: "2026-11-29T12:00:00.123Z". */
static void iso_ms(uint64_t ms, char *out, size_t outlen)
{
	time_t t = (time_t)(ms / 1000u);
	struct tm tm;
	char s[32];

	assert_non_null(gmtime_r(&t, &tm));
	assert_true(strftime(s, sizeof(s), "%Y-%m-%dT%H:%M:%S", &tm) > 0);
	snprintf(out, outlen, "%s.%03uZ", s, (unsigned)(ms % 1000u));
}

/* A credentials document as ECS (imds false) or IMDS sends it. */
static void creds_doc(char *out, size_t outlen, bool imds, const char *akid, const char *secret,
                      const char *token, uint64_t exp_ms)
{
	char exp[40];

	iso_ms(exp_ms, exp, sizeof(exp));
	if (imds)
		snprintf(
		    out, outlen,
		    "{\n  \"Code\" : \"Success\",\n  \"LastUpdated\" : \"2026-01-01T00:00:00Z\",\n"
		    "  \"Type\" : \"AWS-HMAC\",\n  \"AccessKeyId\" : \"%s\",\n"
		    "  \"SecretAccessKey\" : \"%s\",\n  \"Token\" : \"%s\",\n"
		    "  \"Expiration\" : \"%s\"\n}",
		    akid, secret, token, exp);
	else
		snprintf(out, outlen,
		         "{\"RoleArn\":\"arn:aws:iam::111122223333:role/x\",\"AccessKeyId\":\"%s\","
		         "\"SecretAccessKey\":\"%s\",\"Token\":\"%s\",\"Expiration\":\"%s\"}",
		         akid, secret, token, exp);
}

static void ecs_host_of(const env_t *e, char *out, size_t outlen)
{
	snprintf(out, outlen, "127.0.0.1:%d", e->srv.port);
}

/* A file in the test's temporary folder; returns its path in `path`. */
static void write_token_file(env_t *e, const char *text, char *path, size_t pathlen)
{
	FILE *f;

	if (!e->dir[0]) {
		snprintf(e->dir, sizeof(e->dir), "/tmp/sgprobe-awscreds.XXXXXX");
		assert_non_null(mkdtemp(e->dir));
	}
	snprintf(path, pathlen, "%s/token", e->dir);
	f = fopen(path, "w");
	assert_non_null(f);
	assert_true(fputs(text, f) >= 0);
	assert_int_equal(fclose(f), 0);
}

/* Conditions for env_run(). */
static bool updated_once(env_t *e)
{
	return e->t[0].updates >= 1;
}

static bool updated_twice(env_t *e)
{
	return e->t[0].updates >= 2;
}

static bool failed_once(env_t *e)
{
	return aws_creds_failures(e->t[0].c) >= 1;
}

static bool expiry_logged(env_t *e)
{
	return strstr(log_text(e), "credentials expired") != NULL;
}

static bool request_arrived(env_t *e)
{
	return e->srv.n_reqs >= 1;
}

static bool never(env_t *e)
{
	(void)e;
	return false;
}

/* ---- environment ---- */

/* Static keys from the environment win over every other source, with no fetch. */
static void test_env_source(void **state)
{
	static const fake_answer_t script[] = {{500, NULL, NULL, 0}};
	env_t *e = *state;
	aws_creds_config_t cfg = {0};
	const aws_credentials_t *cr;
	char host[64];
	aws_creds_t *c;

	env_server(e, script, 1);
	ecs_host_of(e, host, sizeof(host));
	cfg.ecs_host = host;
	setenv("AWS_ACCESS_KEY_ID", ENV_AKID, 1);
	setenv("AWS_SECRET_ACCESS_KEY", ENV_SECRET, 1);
	setenv("AWS_SESSION_TOKEN", ENV_TOKEN, 1);
	setenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", REL_URI, 1);
	c = creds_new(e, 0, &cfg);
	assert_string_equal(aws_creds_source(c), "none");
	assert_null(aws_creds_get(c, now_wall()));
	assert_int_equal(aws_creds_start(c), 0);
	assert_int_equal(aws_creds_start(c), -EALREADY);

	/* Installed at once, announced on a later iteration. */
	cr = aws_creds_get(c, now_wall());
	assert_non_null(cr);
	assert_int_equal(e->t[0].updates, 0);
	assert_string_equal(cr->access_key_id, ENV_AKID);
	assert_string_equal(cr->secret_access_key, ENV_SECRET);
	assert_string_equal(cr->session_token, ENV_TOKEN);
	assert_int_equal(cr->expiration_ms, 0);
	assert_string_equal(cr->source, "environment");
	assert_string_equal(aws_creds_source(c), "environment");
	assert_true(env_run(e, updated_once, 2000));
	/* Once only, and they never expire. */
	env_run(e, never, 100);
	assert_int_equal(e->t[0].updates, 1);
	assert_non_null(aws_creds_get(c, UINT64_MAX - 1));
	assert_int_equal(aws_creds_refreshes(c), 1);
	assert_int_equal(aws_creds_failures(c), 0);
	assert_string_equal(aws_creds_last_error(c), "");
	assert_int_equal(e->srv.n_reqs, 0);
	assert_non_null(strstr(log_text(e), "\"source\":\"environment\""));

	/* Without AWS_SESSION_TOKEN: no session token. */
	unsetenv("AWS_SESSION_TOKEN");
	c = creds_new(e, 1, NULL);
	assert_int_equal(aws_creds_start(c), 0);
	cr = aws_creds_get(c, now_wall());
	assert_non_null(cr);
	assert_null(cr->session_token);
}

/* One of the two keys without the other is an error naming the missing one. */
static void test_env_only_one_key_is_an_error(void **state)
{
	env_t *e = *state;
	aws_creds_t *c;

	setenv("AWS_ACCESS_KEY_ID", ENV_AKID, 1);
	c = creds_new(e, 0, NULL);
	assert_int_equal(aws_creds_start(c), -EINVAL);
	assert_non_null(strstr(aws_creds_last_error(c), "AWS_SECRET_ACCESS_KEY is not set"));
	assert_string_equal(aws_creds_source(c), "none");
	assert_null(aws_creds_get(c, now_wall()));

	unsetenv("AWS_ACCESS_KEY_ID");
	setenv("AWS_SECRET_ACCESS_KEY", ENV_SECRET, 1);
	c = creds_new(e, 1, NULL);
	assert_int_equal(aws_creds_start(c), -EINVAL);
	assert_non_null(strstr(aws_creds_last_error(c), "AWS_ACCESS_KEY_ID is not set"));
	assert_null(aws_creds_get(c, now_wall()));

	/* Logged as errors; on_update never comes. */
	env_run(e, never, 100);
	assert_int_equal(e->t[0].updates + e->t[1].updates, 0);
	assert_non_null(strstr(log_text(e), "\"level\":\"error\""));
	assert_non_null(strstr(log_text(e), "AWS_SECRET_ACCESS_KEY is not set"));
	assert_non_null(strstr(log_text(e), "AWS_ACCESS_KEY_ID is not set"));
}

/* ---- ECS ---- */

/* RELATIVE_URI: GET http://<ecs_host><uri>; every field of the answer parsed. */
static void test_ecs_relative_uri(void **state)
{
	static char doc[1024];
	static const fake_answer_t script[] = {{200, NULL, doc, 0}};
	env_t *e = *state;
	aws_creds_config_t cfg = {0};
	const aws_credentials_t *cr;
	char host[64], v[256];
	aws_creds_t *c;

	snprintf(doc, sizeof(doc),
	         "{\"AccessKeyId\":\"" AKID1 "\",\"SecretAccessKey\":\"" SECRET1
	         "\",\"Token\":\"" TOKEN1 "\",\"Expiration\":\"2036-01-02T03:04:05.678Z\","
	         "\"RoleArn\":\"arn:aws:iam::111122223333:role/x\"}");
	env_server(e, script, 1);
	ecs_host_of(e, host, sizeof(host));
	cfg.ecs_host = host;
	setenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", REL_URI, 1);
	c = creds_new(e, 0, &cfg);
	assert_int_equal(aws_creds_start(c), 0);
	assert_string_equal(aws_creds_source(c), "ecs");
	/* The answer comes on the loop. */
	assert_null(aws_creds_get(c, now_wall()));
	assert_true(env_run(e, updated_once, 3000));

	assert_int_equal(e->srv.n_reqs, 1);
	assert_string_equal(e->srv.reqs[0].method, "GET");
	assert_string_equal(e->srv.reqs[0].target, REL_URI);
	assert_false(fake_req_has_header(&e->srv.reqs[0], "Authorization"));
	assert_string_equal(fake_req_header(&e->srv.reqs[0], "Accept", v, sizeof(v)),
	                    "application/json");
	cr = aws_creds_get(c, now_wall());
	assert_non_null(cr);
	assert_string_equal(cr->access_key_id, AKID1);
	assert_string_equal(cr->secret_access_key, SECRET1);
	assert_string_equal(cr->session_token, TOKEN1);
	assert_int_equal(cr->expiration_ms, UINT64_C(2082855845678));
	assert_string_equal(cr->source, "ecs");
	assert_null(aws_creds_get(c, UINT64_C(2082855845678)));
	assert_non_null(aws_creds_get(c, UINT64_C(2082855845677)));
	assert_int_equal(aws_creds_refreshes(c), 1);
	assert_string_equal(aws_creds_last_error(c), "");
	/* The info line names the source and the expiration, not the relative URI. */
	assert_non_null(strstr(log_text(e), "AWS credentials obtained"));
	assert_non_null(strstr(log_text(e), "\"expiration\":\"2036-01-02T03:04:05Z\""));
	assert_null(strstr(log_text(e), "6e4c2a6b"));
}

/* FULL_URI with AWS_CONTAINER_AUTHORIZATION_TOKEN: trimmed, sent as Authorization. */
static void test_ecs_full_uri_token_from_variable(void **state)
{
	static char doc[1024];
	static const fake_answer_t script[] = {{200, NULL, doc, 0}};
	env_t *e = *state;
	char uri[128], v[256];
	aws_creds_t *c;

	creds_doc(doc, sizeof(doc), false, AKID1, SECRET1, TOKEN1, now_wall() + 3600000);
	env_server(e, script, 1);
	snprintf(uri, sizeof(uri), "http://127.0.0.1:%d/v1/credentials?id=7", e->srv.port);
	setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", uri, 1);
	setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", "  " ECS_TOKEN " \n", 1);
	c = creds_new(e, 0, NULL);
	assert_int_equal(aws_creds_start(c), 0);
	assert_true(env_run(e, updated_once, 3000));
	assert_int_equal(e->srv.n_reqs, 1);
	assert_string_equal(e->srv.reqs[0].target, "/v1/credentials?id=7");
	assert_string_equal(fake_req_header(&e->srv.reqs[0], "Authorization", v, sizeof(v)),
	                    ECS_TOKEN);
	assert_string_equal(aws_creds_get(c, now_wall())->access_key_id, AKID1);
}

/* Rewrites the token file when the first credentials arrive. */
static void rotate_token(aws_creds_t *c, void *arg)
{
	env_t *e = arg;
	char path[128];

	(void)c;
	if (e->t[0].updates == 1)
		write_token_file(e, FILE_TOK2 "\n", path, sizeof(path));
}

/*
 * The token file wins over the variable, is trimmed, and is read again at each
 * fetch (the agent rotates it); the credentials are refreshed margin before
 * they expire.
 */
static void test_ecs_full_uri_token_file_read_at_each_fetch(void **state)
{
	static char doc1[1024], doc2[1024];
	static const fake_answer_t script[] = {{200, NULL, doc1, 0}, {200, NULL, doc2, 0}};
	env_t *e = *state;
	aws_creds_config_t cfg = {.refresh_margin_s = 2};
	char uri[128], path[128], v[256];
	uint64_t exp1 = now_wall() + 2500;
	aws_creds_t *c;

	creds_doc(doc1, sizeof(doc1), false, AKID1, SECRET1, TOKEN1, exp1);
	creds_doc(doc2, sizeof(doc2), false, AKID2, SECRET2, TOKEN2, now_wall() + 3600000);
	env_server(e, script, 2);
	snprintf(uri, sizeof(uri), "http://localhost:%d/creds", e->srv.port);
	setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", uri, 1);
	write_token_file(e, "\t" FILE_TOK1 "\r\n", path, sizeof(path));
	setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", path, 1);
	setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", ECS_TOKEN, 1);
	c = creds_new(e, 0, &cfg);
	e->t[0].hook = rotate_token;
	e->t[0].hook_arg = e;
	assert_int_equal(aws_creds_start(c), 0);
	assert_true(env_run(e, updated_once, 3000));
	assert_string_equal(aws_creds_get(c, now_wall())->access_key_id, AKID1);
	assert_true(env_run(e, updated_twice, 5000));

	assert_int_equal(e->srv.n_reqs, 2);
	assert_string_equal(fake_req_header(&e->srv.reqs[0], "Authorization", v, sizeof(v)),
	                    FILE_TOK1);
	assert_string_equal(fake_req_header(&e->srv.reqs[1], "Authorization", v, sizeof(v)),
	                    FILE_TOK2);
	/* Refreshed before the first ones expired, and not before a second had passed. */
	assert_true(now_wall() < exp1);
	assert_true(e->srv.reqs[1].at - e->srv.reqs[0].at >= 990);
	assert_string_equal(aws_creds_get(c, now_wall())->access_key_id, AKID2);
	assert_int_equal(aws_creds_refreshes(c), 2);
	assert_int_equal(aws_creds_failures(c), 0);
	assert_non_null(strstr(log_text(e), "AWS credentials refreshed"));
}

/* A token with a line break would inject headers: refused, and nothing is sent. */
static void test_ecs_token_with_line_break_refused(void **state)
{
	static const fake_answer_t script[] = {{200, NULL, "{}", 0}};
	env_t *e = *state;
	char uri[128], path[128];
	aws_creds_t *c;

	env_server(e, script, 1);
	snprintf(uri, sizeof(uri), "http://127.0.0.1:%d/creds", e->srv.port);
	setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", uri, 1);

	/* In the file: found at the fetch, which fails and will be retried. */
	write_token_file(e, FILE_TOK1 "\r\nX-Injected: 1\n", path, sizeof(path));
	setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", path, 1);
	c = creds_new(e, 0, NULL);
	assert_int_equal(aws_creds_start(c), 0);
	assert_int_equal(aws_creds_failures(c), 1);
	assert_non_null(strstr(aws_creds_last_error(c), "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"));
	assert_non_null(strstr(aws_creds_last_error(c), "line break"));

	/* An empty file, and a missing one: failed fetches naming the file. */
	write_token_file(e, " \n", path, sizeof(path));
	c = creds_new(e, 1, NULL);
	assert_int_equal(aws_creds_start(c), 0);
	assert_non_null(strstr(aws_creds_last_error(c), "the token is empty"));
	setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", "/nonexistent/sgprobe/token", 1);
	c = creds_new(e, 2, NULL);
	assert_int_equal(aws_creds_start(c), 0);
	assert_non_null(strstr(aws_creds_last_error(c), "/nonexistent/sgprobe/token"));
	assert_non_null(strstr(aws_creds_last_error(c), "No such file"));
	/* A file over its bound is refused whole, its size named. */
	{
		char *big = malloc(16384 + 2);

		assert_non_null(big);
		memset(big, 'a', 16384 + 1);
		big[16384 + 1] = '\0';
		write_token_file(e, big, path, sizeof(path));
		free(big);
		setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", path, 1);
		c = creds_new(e, 4, NULL);
		assert_int_equal(aws_creds_start(c), 0);
		assert_non_null(strstr(aws_creds_last_error(c), "larger than 16384 bytes"));
	}

	/* In the variable: refused at start. */
	unsetenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
	setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", ECS_TOKEN "\nX-Injected: 1", 1);
	c = creds_new(e, 3, NULL);
	assert_int_equal(aws_creds_start(c), -EINVAL);
	assert_non_null(strstr(aws_creds_last_error(c), "AWS_CONTAINER_AUTHORIZATION_TOKEN:"));
	assert_string_equal(aws_creds_source(c), "none");

	env_run(e, never, 100);
	assert_int_equal(e->srv.n_reqs, 0);
	assert_non_null(strstr(log_text(e), "AWS credentials fetch failed"));
}

/* Plain http only to loopback or the ECS / EKS agents' addresses; https anywhere. */
static void test_ecs_full_uri_host_rules(void **state)
{
	static const char *const allowed[] = {
	    "http://127.0.0.1:9/creds",
	    "http://127.1.2.3/creds",
	    "http://localhost:9/creds",
	    "http://LOCALHOST/creds",
	    "http://[::1]:9/creds",
	    "http://169.254.170.2/v2/credentials/x",
	    "http://169.254.170.23/v1/credentials",
	    "http://[fd00:ec2::23]/v1/credentials",
	    "https://credentials.example.com/creds",
	};
	static const char *const forbidden[] = {
	    "http://example.com/creds",       "http://10.0.0.1/creds",
	    "http://169.254.169.254/latest",  "http://169.254.170.3/creds",
	    "http://[fd00:ec2::24]/creds",    "http://[::2]/creds",
	    "http://127.0.0.1.example.com/x", "http://localhost.example.com/x",
	};
	static const char *const not_urls[] = {"ftp://127.0.0.1/creds", "file:///etc/passwd",
	                                       "127.0.0.1:9/creds"};
	env_t *e = *state;
	aws_creds_t *c;
	size_t i;

	/* A missing token file makes an allowed fetch fail before it connects anywhere. */
	setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", "/nonexistent/sgprobe/token", 1);
	for (i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++) {
		setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", allowed[i], 1);
		c = creds_new(e, 0, NULL);
		if (aws_creds_start(c) != 0)
			fail_msg("%s refused: %s", allowed[i], aws_creds_last_error(c));
		assert_string_equal(aws_creds_source(c), "ecs");
		assert_non_null(strstr(aws_creds_last_error(c), "/nonexistent/sgprobe/token"));
		creds_free(e, 0);
	}
	for (i = 0; i < sizeof(forbidden) / sizeof(forbidden[0]); i++) {
		setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", forbidden[i], 1);
		c = creds_new(e, 0, NULL);
		if (aws_creds_start(c) != -EINVAL)
			fail_msg("%s accepted", forbidden[i]);
		assert_non_null(strstr(aws_creds_last_error(c), "is not allowed over plain http"));
		assert_string_equal(aws_creds_source(c), "none");
		assert_int_equal(aws_creds_failures(c), 0);
		creds_free(e, 0);
	}
	for (i = 0; i < sizeof(not_urls) / sizeof(not_urls[0]); i++) {
		setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", not_urls[i], 1);
		c = creds_new(e, 0, NULL);
		if (aws_creds_start(c) != -EINVAL)
			fail_msg("%s accepted", not_urls[i]);
		assert_string_equal(
		    aws_creds_last_error(c),
		    "AWS_CONTAINER_CREDENTIALS_FULL_URI: must be an http or https URL");
		creds_free(e, 0);
	}
	/* The refusal is logged at error level, naming the host. */
	assert_non_null(strstr(log_text(e), "\\\"169.254.169.254\\\" is not allowed"));
	env_run(e, never, 50);
}

/* ---- IMDSv2 ---- */

static void assert_imds_requests(env_t *e, int first, const char *token)
{
	char v[256];

	assert_string_equal(e->srv.reqs[first].method, "GET");
	assert_string_equal(e->srv.reqs[first].target,
	                    "/latest/meta-data/iam/security-credentials/");
	assert_string_equal(
	    fake_req_header(&e->srv.reqs[first], "X-aws-ec2-metadata-token", v, sizeof(v)), token);
	assert_string_equal(e->srv.reqs[first + 1].method, "GET");
	assert_string_equal(e->srv.reqs[first + 1].target,
	                    "/latest/meta-data/iam/security-credentials/" ROLE);
	assert_string_equal(
	    fake_req_header(&e->srv.reqs[first + 1], "X-aws-ec2-metadata-token", v, sizeof(v)),
	    token);
}

static void assert_token_put(env_t *e, int i)
{
	char v[256];

	assert_string_equal(e->srv.reqs[i].method, "PUT");
	assert_string_equal(e->srv.reqs[i].target, "/latest/api/token");
	assert_string_equal(
	    fake_req_header(&e->srv.reqs[i], "X-aws-ec2-metadata-token-ttl-seconds", v, sizeof(v)),
	    "21600");
	assert_false(fake_req_has_header(&e->srv.reqs[i], "X-aws-ec2-metadata-token"));
}

/* PUT the token, GET the role, GET its credentials, the token on both GETs. */
static void test_imds_v2(void **state)
{
	static char doc[2048];
	static const fake_answer_t script[] = {
	    {200, NULL, IMDS_TOK1, 0}, {200, NULL, ROLE "\nsecond-role\n", 0}, {200, NULL, doc, 0}};
	env_t *e = *state;
	aws_creds_config_t cfg = {0};
	const aws_credentials_t *cr;
	char ep[64];
	aws_creds_t *c;

	creds_doc(doc, sizeof(doc), true, AKID1, SECRET1, TOKEN1, now_wall() + 3600000);
	env_server(e, script, 3);
	/* The trailing slash is not doubled. */
	snprintf(ep, sizeof(ep), "http://127.0.0.1:%d/", e->srv.port);
	cfg.imds_endpoint = ep;
	c = creds_new(e, 0, &cfg);
	assert_int_equal(aws_creds_start(c), 0);
	assert_string_equal(aws_creds_source(c), "imds");
	assert_true(env_run(e, updated_once, 3000));

	assert_int_equal(e->srv.n_reqs, 3);
	assert_token_put(e, 0);
	assert_imds_requests(e, 1, IMDS_TOK1);
	cr = aws_creds_get(c, now_wall());
	assert_non_null(cr);
	assert_string_equal(cr->access_key_id, AKID1);
	assert_string_equal(cr->secret_access_key, SECRET1);
	assert_string_equal(cr->session_token, TOKEN1);
	assert_string_equal(cr->source, "imds");
	assert_non_null(strstr(log_text(e), "\"role\":\"" ROLE "\""));
}

/* AWS_EC2_METADATA_SERVICE_ENDPOINT when the config has none; DISABLED=true: no source. */
static void test_imds_endpoint_variable_and_disabled(void **state)
{
	static char doc[2048];
	static const fake_answer_t script[] = {
	    {200, NULL, IMDS_TOK1, 0}, {200, NULL, ROLE, 0}, {200, NULL, doc, 0}};
	env_t *e = *state;
	char ep[64];
	aws_creds_t *c;

	creds_doc(doc, sizeof(doc), true, AKID1, SECRET1, TOKEN1, now_wall() + 3600000);
	env_server(e, script, 3);
	snprintf(ep, sizeof(ep), "http://127.0.0.1:%d", e->srv.port);
	setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", ep, 1);
	setenv("AWS_EC2_METADATA_DISABLED", "false", 1);
	c = creds_new(e, 0, NULL);
	assert_int_equal(aws_creds_start(c), 0);
	assert_true(env_run(e, updated_once, 3000));
	assert_int_equal(e->srv.n_reqs, 3);
	assert_string_equal(aws_creds_get(c, now_wall())->source, "imds");

	setenv("AWS_EC2_METADATA_DISABLED", "TRUE", 1);
	c = creds_new(e, 1, NULL);
	assert_int_equal(aws_creds_start(c), -ENOENT);
	assert_string_equal(aws_creds_source(c), "none");
	assert_non_null(strstr(aws_creds_last_error(c), "AWS_EC2_METADATA_DISABLED=true"));
	assert_non_null(strstr(log_text(e), "AWS_EC2_METADATA_DISABLED=true"));
	env_run(e, never, 50);
	assert_int_equal(e->srv.n_reqs, 3);
	assert_int_equal(e->t[1].updates, 0);

	/* A bad endpoint is refused at start. */
	setenv("AWS_EC2_METADATA_DISABLED", "false", 1);
	setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", "gopher://127.0.0.1", 1);
	c = creds_new(e, 2, NULL);
	assert_int_equal(aws_creds_start(c), -EINVAL);
	assert_non_null(strstr(aws_creds_last_error(c), "AWS_EC2_METADATA_SERVICE_ENDPOINT"));
}

/* The refresh reuses the IMDS session token: no second PUT, on_update twice. */
static void test_imds_refresh_before_expiry(void **state)
{
	static char doc1[2048], doc2[2048];
	static const fake_answer_t script[] = {{200, NULL, IMDS_TOK1, 0},
	                                       {200, NULL, ROLE, 0},
	                                       {200, NULL, doc1, 0},
	                                       {200, NULL, ROLE, 0},
	                                       {200, NULL, doc2, 0}};
	env_t *e = *state;
	aws_creds_config_t cfg = {.refresh_margin_s = 2};
	uint64_t exp1 = now_wall() + 2500;
	char ep[64];
	aws_creds_t *c;

	creds_doc(doc1, sizeof(doc1), true, AKID1, SECRET1, TOKEN1, exp1);
	creds_doc(doc2, sizeof(doc2), true, AKID2, SECRET2, TOKEN2, now_wall() + 3600000);
	env_server(e, script, 5);
	snprintf(ep, sizeof(ep), "http://127.0.0.1:%d", e->srv.port);
	cfg.imds_endpoint = ep;
	c = creds_new(e, 0, &cfg);
	assert_int_equal(aws_creds_start(c), 0);
	assert_true(env_run(e, updated_once, 3000));
	assert_string_equal(aws_creds_get(c, now_wall())->access_key_id, AKID1);
	assert_int_equal(aws_creds_get(c, now_wall())->expiration_ms, exp1);
	assert_true(env_run(e, updated_twice, 5000));
	assert_true(now_wall() < exp1);

	assert_int_equal(e->srv.n_reqs, 5);
	assert_token_put(e, 0);
	assert_imds_requests(e, 1, IMDS_TOK1);
	assert_imds_requests(e, 3, IMDS_TOK1);
	assert_string_equal(aws_creds_get(c, now_wall())->access_key_id, AKID2);
	assert_string_equal(aws_creds_get(c, now_wall())->secret_access_key, SECRET2);
	assert_int_equal(aws_creds_refreshes(c), 2);
	assert_int_equal(e->t[0].updates, 2);
}

/* A 401 on a GET means the session token expired: a new one, within the same fetch. */
static void test_imds_401_gets_a_new_token(void **state)
{
	static char doc1[2048], doc2[2048];
	static const fake_answer_t script[] = {{200, NULL, IMDS_TOK1, 0}, {200, NULL, ROLE, 0},
	                                       {200, NULL, doc1, 0},      {401, NULL, NULL, 0},
	                                       {200, NULL, IMDS_TOK2, 0}, {200, NULL, ROLE, 0},
	                                       {200, NULL, doc2, 0}};
	env_t *e = *state;
	aws_creds_config_t cfg = {.refresh_margin_s = 2};
	char ep[64];
	aws_creds_t *c;

	creds_doc(doc1, sizeof(doc1), true, AKID1, SECRET1, TOKEN1, now_wall() + 2500);
	creds_doc(doc2, sizeof(doc2), true, AKID2, SECRET2, TOKEN2, now_wall() + 3600000);
	env_server(e, script, 7);
	snprintf(ep, sizeof(ep), "http://127.0.0.1:%d", e->srv.port);
	cfg.imds_endpoint = ep;
	c = creds_new(e, 0, &cfg);
	assert_int_equal(aws_creds_start(c), 0);
	assert_true(env_run(e, updated_twice, 5000));
	assert_int_equal(e->srv.n_reqs, 7);
	assert_token_put(e, 4);
	assert_imds_requests(e, 5, IMDS_TOK2);
	assert_string_equal(aws_creds_get(c, now_wall())->access_key_id, AKID2);
	assert_int_equal(aws_creds_failures(c), 0);
}

/* IMDS errors name the step and what was wrong. */
static void test_imds_errors(void **state)
{
	static const fake_answer_t script[] = {{403, NULL, NULL, 0},
	                                       {200, NULL, IMDS_TOK1, 0},
	                                       {404, NULL, NULL, 0},
	                                       {200, NULL, IMDS_TOK1, 0},
	                                       {200, NULL, "../../x", 0}};
	env_t *e = *state;
	aws_creds_config_t cfg = {0};
	char ep[64];
	aws_creds_t *c;

	env_server(e, script, 5);
	snprintf(ep, sizeof(ep), "http://127.0.0.1:%d", e->srv.port);
	cfg.imds_endpoint = ep;
	c = creds_new(e, 0, &cfg);
	assert_int_equal(aws_creds_start(c), 0);
	assert_true(env_run(e, failed_once, 3000));
	assert_non_null(strstr(aws_creds_last_error(c), "PUT http://127.0.0.1:"));
	assert_non_null(strstr(aws_creds_last_error(c), "/latest/api/token: HTTP 403"));
	creds_free(e, 0);

	/* No role attached. */
	c = creds_new(e, 0, &cfg);
	assert_int_equal(aws_creds_start(c), 0);
	assert_true(env_run(e, failed_once, 3000));
	assert_non_null(
	    strstr(aws_creds_last_error(c),
	           "/latest/meta-data/iam/security-credentials/: HTTP 404 (no IAM role"));
	creds_free(e, 0);

	/* A role name that would change the path is refused. */
	c = creds_new(e, 0, &cfg);
	assert_int_equal(aws_creds_start(c), 0);
	assert_true(env_run(e, failed_once, 3000));
	assert_non_null(strstr(aws_creds_last_error(c), "the role name must be"));
	assert_int_equal(e->srv.n_reqs, 5);
	env_run(e, never, 50);
}

/* ---- refresh and failure ---- */

/*
 * A failed refresh keeps the old credentials while they are valid, retries no
 * sooner than a second later, and once they have expired aws_creds_get()
 * returns NULL and the expiry is logged with the last error.
 */
static void test_failed_refresh_keeps_old_then_expires(void **state)
{
	static char doc[1024];
	static const fake_answer_t script[] = {{200, NULL, doc, 0},
	                                       {500, NULL, "{\"message\":\"down\"}", 0}};
	env_t *e = *state;
	aws_creds_config_t cfg = {.refresh_margin_s = 2};
	uint64_t exp1 = now_wall() + 2500;
	const aws_credentials_t *cr;
	char host[64];
	aws_creds_t *c;
	int i;

	creds_doc(doc, sizeof(doc), false, AKID1, SECRET1, TOKEN1, exp1);
	env_server(e, script, 2);
	ecs_host_of(e, host, sizeof(host));
	cfg.ecs_host = host;
	setenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", REL_URI, 1);
	c = creds_new(e, 0, &cfg);
	assert_int_equal(aws_creds_start(c), 0);
	assert_true(env_run(e, updated_once, 3000));
	assert_true(env_run(e, failed_once, 3000));

	/* Still the old ones while they last. */
	assert_true(now_wall() < exp1);
	cr = aws_creds_get(c, now_wall());
	assert_non_null(cr);
	assert_string_equal(cr->access_key_id, AKID1);
	assert_non_null(strstr(aws_creds_last_error(c), "HTTP 500"));
	assert_non_null(strstr(log_text(e), "\"level\":\"warn\""));
	assert_non_null(strstr(log_text(e), "\"http_status\":500"));

	assert_true(env_run(e, expiry_logged, 5000));
	assert_true(now_wall() >= exp1);
	assert_null(aws_creds_get(c, now_wall()));
	assert_non_null(aws_creds_get(c, exp1 - 1));
	assert_non_null(
	    strstr(log_text(e), "credentials expired; last error: GET http://127.0.0.1:"));
	assert_non_null(strstr(log_text(e), "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI: HTTP 500"));
	assert_int_equal(e->t[0].updates, 1);
	assert_int_equal(aws_creds_refreshes(c), 1);
	assert_true(aws_creds_failures(c) >= 1);
	/* Never two fetches less than a second apart. */
	for (i = 1; i < e->srv.n_reqs; i++)
		assert_true(e->srv.reqs[i].at - e->srv.reqs[i - 1].at >= 990);
}

/* A malformed answer or a missing field is a failed fetch whose error names it. */
static void test_bad_documents_fail_naming_the_field(void **state)
{
	static const fake_answer_t script[] = {
	    {200, NULL, "{\"AccessKeyId\": \"" AKID1 "\", oops}", 0},
	    {200, NULL,
	     "{\"AccessKeyId\":\"" AKID1 "\",\"Token\":\"" TOKEN1
	     "\",\"Expiration\":\"2036-01-02T03:04:05Z\"}",
	     0},
	    {200, NULL,
	     "{\"AccessKeyId\":\"" AKID1 "\",\"SecretAccessKey\":\"has space " SECRET1
	     "\",\"Token\":\"" TOKEN1 "\",\"Expiration\":\"2036-01-02T03:04:05Z\"}",
	     0},
	    {200, NULL,
	     "{\"AccessKeyId\":\"" AKID1 "\",\"SecretAccessKey\":\"" SECRET1
	     "\",\"Token\":\"" TOKEN1 "\",\"Expiration\":\"2000-01-02T03:04:05Z\"}",
	     0},
	};
	static const char *const want[] = {
	    "invalid JSON at line 1",
	    "SecretAccessKey: required",
	    "SecretAccessKey: must be 1 to 1024 printable ASCII characters without spaces",
	    "Expiration: 2000-01-02T03:04:05Z is already past",
	};
	env_t *e = *state;
	aws_creds_config_t cfg = {0};
	char host[64];
	aws_creds_t *c;
	size_t i;

	env_server(e, script, 4);
	ecs_host_of(e, host, sizeof(host));
	cfg.ecs_host = host;
	setenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", REL_URI, 1);
	for (i = 0; i < 4; i++) {
		c = creds_new(e, 0, &cfg);
		assert_int_equal(aws_creds_start(c), 0);
		assert_true(env_run(e, failed_once, 3000));
		if (!strstr(aws_creds_last_error(c), want[i]))
			fail_msg("answer %zu: \"%s\" does not say \"%s\"", i,
			         aws_creds_last_error(c), want[i]);
		assert_null(aws_creds_get(c, now_wall()));
		assert_int_equal(aws_creds_refreshes(c), 0);
		assert_int_equal(e->t[0].updates, 0);
		creds_free(e, 0);
	}
	env_run(e, never, 50);
}

/* Answers over 64 KiB and endpoints slower than timeout_ms are failed fetches. */
static void test_body_limit_and_timeout(void **state)
{
	static fake_answer_t script[] = {{200, NULL, NULL, 0}, {200, NULL, "{}", 3000}};
	env_t *e = *state;
	aws_creds_config_t cfg = {.timeout_ms = 300};
	size_t big = AWS_CREDS_MAX_BODY + 100;
	char host[64], *body = malloc(big + 1);
	uint64_t start;
	aws_creds_t *c;

	assert_non_null(body);
	memset(body, ' ', big);
	body[big] = '\0';
	script[0].body = body;
	env_server(e, script, 2);
	ecs_host_of(e, host, sizeof(host));
	cfg.ecs_host = host;
	setenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", REL_URI, 1);
	c = creds_new(e, 0, &cfg);
	assert_int_equal(aws_creds_start(c), 0);
	assert_true(env_run(e, failed_once, 3000));
	assert_non_null(strstr(aws_creds_last_error(c), "larger than 65536 bytes"));
	creds_free(e, 0);

	c = creds_new(e, 0, &cfg);
	start = uv_hrtime();
	assert_int_equal(aws_creds_start(c), 0);
	assert_true(env_run(e, failed_once, 3000));
	assert_true((uv_hrtime() - start) / 1000000u < 2000);
	assert_non_null(strcasestr(aws_creds_last_error(c), "timed out"));
	creds_free(e, 0);
	env_run(e, never, 50);
	free(body);
}

static void free_from_update(aws_creds_t *c, void *arg)
{
	tracked_t *t = arg;

	aws_creds_free(c, on_creds_closed, t);
	t->frees++;
	t->c = NULL;
}

/* Freed during a fetch or from on_update: no callback after, memory released on close. */
static void test_free_while_fetching_and_from_update(void **state)
{
	static const fake_answer_t script[] = {{200, NULL, "{}", 2000}};
	env_t *e = *state;
	aws_creds_config_t cfg = {0};
	char host[64];
	aws_creds_t *c;

	aws_creds_free(NULL, on_creds_closed, NULL);
	env_server(e, script, 1);
	ecs_host_of(e, host, sizeof(host));
	cfg.ecs_host = host;
	setenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", REL_URI, 1);
	c = creds_new(e, 0, &cfg);
	assert_int_equal(aws_creds_start(c), 0);
	assert_true(env_run(e, request_arrived, 3000));
	creds_free(e, 0);
	assert_int_equal(e->t[0].closed, 0);
	env_run(e, never, 50);
	assert_int_equal(e->t[0].closed, 1);
	assert_int_equal(e->t[0].updates, 0);

	/* Never started. */
	creds_new(e, 1, &cfg);
	creds_free(e, 1);

	/* From inside on_update. */
	unsetenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
	setenv("AWS_ACCESS_KEY_ID", ENV_AKID, 1);
	setenv("AWS_SECRET_ACCESS_KEY", ENV_SECRET, 1);
	c = creds_new(e, 2, NULL);
	e->t[2].hook = free_from_update;
	e->t[2].hook_arg = &e->t[2];
	assert_int_equal(aws_creds_start(c), 0);
	env_run(e, never, 50);
	assert_int_equal(e->t[2].updates, 1);
	assert_int_equal(e->t[2].closed, 1);
	assert_int_equal(e->t[1].closed, 1);
}

/* ---- the parsers ---- */

/* Each field is checked, and the message names it without quoting a secret. */
static void test_parse_names_the_field(void **state)
{
	static const struct {
		bool imds;
		const char *doc;
		const char *want;
	} cases[] = {
	    {false, "[]", "the credentials must be a JSON object"},
	    {false, "{\"AccessKeyId\":", "invalid JSON at line 1"},
	    {false, "{}", "AccessKeyId: required"},
	    {false, "{\"AccessKeyId\":5}", "AccessKeyId: must be a string"},
	    {false, "{\"AccessKeyId\":\"\"}", "AccessKeyId: must not be empty"},
	    {false, "{\"AccessKeyId\":\"short\"}",
	     "AccessKeyId: must be 16 to 128 letters, digits or underscores"},
	    {false, "{\"AccessKeyId\":\"" AKID1 "\",\"SecretAccessKey\":null}",
	     "SecretAccessKey: required"},
	    {false, "{\"AccessKeyId\":\"" AKID1 "\",\"SecretAccessKey\":\"a\\nb" SECRET1 "\"}",
	     "SecretAccessKey: must be 1 to 1024 printable ASCII characters without spaces"},
	    {false, "{\"AccessKeyId\":\"" AKID1 "\",\"SecretAccessKey\":\"" SECRET1 "\"}",
	     "Token: required"},
	    {false,
	     "{\"AccessKeyId\":\"" AKID1 "\",\"SecretAccessKey\":\"" SECRET1
	     "\",\"Token\":\"x y" TOKEN1 "\"}",
	     "Token: must be printable ASCII characters without spaces"},
	    {false,
	     "{\"AccessKeyId\":\"" AKID1 "\",\"SecretAccessKey\":\"" SECRET1
	     "\",\"Token\":\"" TOKEN1 "\"}",
	     "Expiration: required"},
	    {false,
	     "{\"AccessKeyId\":\"" AKID1 "\",\"SecretAccessKey\":\"" SECRET1
	     "\",\"Token\":\"" TOKEN1 "\",\"Expiration\":\"tomorrow\"}",
	     "Expiration: \"tomorrow\" is not an ISO 8601 time such as 2026-11-29T12:00:00Z"},
	    {false,
	     "{\"AccessKeyId\":\"" AKID1 "\",\"SecretAccessKey\":\"" SECRET1
	     "\",\"Token\":\"" TOKEN1 "\",\"Expiration\":1800000000}",
	     "Expiration: must be a string"},
	    {true, "{\"AccessKeyId\":\"" AKID1 "\"}", "Code: required"},
	    {true, "{\"Code\":\"AssumeRoleUnauthorizedAccess\",\"Message\":\"no\"}",
	     "Code: \"AssumeRoleUnauthorizedAccess\", not \"Success\""},
	};
	aws_credentials_t cr;
	char err[AWS_CREDS_ERR_MAX];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(&cr, 0x5a, sizeof(cr));
		err[0] = '\0';
		assert_int_equal(aws_creds_parse(cases[i].doc, strlen(cases[i].doc), cases[i].imds,
		                                 &cr, err, sizeof(err)),
		                 -EINVAL);
		if (strcmp(err, cases[i].want) != 0)
			fail_msg("case %zu: \"%s\", wanted \"%s\"", i, err, cases[i].want);
		assert_null(cr.access_key_id);
		assert_null(cr.secret_access_key);
		assert_null(cr.session_token);
		assert_null(strstr(err, "SECRET"));
		assert_null(strstr(err, "sessionTOKEN"));
	}
	/* The length is honoured: a document followed by garbage it was not given. */
	{
		static const char doc[] =
		    "{\"Code\":\"Success\",\"AccessKeyId\":\"" AKID1
		    "\",\"SecretAccessKey\":\"" SECRET1 "\",\"Token\":\"" TOKEN1
		    "\",\"Expiration\":\"2026-11-29T12:00:00+00:00\"}garbage";

		assert_int_equal(aws_creds_parse(doc, strlen(doc) - 7, true, &cr, err, sizeof(err)),
		                 0);
		assert_string_equal(cr.source, "imds");
		assert_int_equal(cr.expiration_ms, UINT64_C(1795953600000));
		aws_credentials_dispose(&cr);
		assert_null(cr.access_key_id);
		assert_int_equal(aws_creds_parse(doc, strlen(doc), true, &cr, err, sizeof(err)),
		                 -EINVAL);
	}
}

/* ISO 8601 as the endpoints write it: Z, +00:00, fractions; everything else refused. */
static void test_parse_time(void **state)
{
	static const struct {
		const char *s;
		uint64_t ms;
	} good[] = {
	    {"2026-11-29T12:00:00Z", UINT64_C(1795953600000)},
	    {"2026-11-29T12:00:00+00:00", UINT64_C(1795953600000)},
	    {"2026-11-29T12:00:00-00:00", UINT64_C(1795953600000)},
	    {"2026-11-29T13:30:00+01:30", UINT64_C(1795953600000)},
	    {"2026-11-29T07:00:00-05:00", UINT64_C(1795953600000)},
	    {"2026-11-29T12:00:00.5Z", UINT64_C(1795953600500)},
	    {"2026-11-29T12:00:00.123456789Z", UINT64_C(1795953600123)},
	    {"2026-11-29t12:00:00.000z", UINT64_C(1795953600000)},
	    {"2036-01-02T03:04:05.678Z", UINT64_C(2082855845678)},
	    {"2024-02-29T23:59:59Z", UINT64_C(1709251199000)},
	    {"1970-01-01T00:00:00Z", 0},
	    {"9999-12-31T23:59:59Z", UINT64_C(253402300799000)},
	};
	static const char *const bad[] = {
	    "",
	    "2026-11-29",
	    "2026-11-29T12:00:00",
	    "2026-11-29 12:00:00Z",
	    "2026-11-29T12:00Z",
	    "2026-13-01T00:00:00Z",
	    "2026-00-01T00:00:00Z",
	    "2025-02-29T00:00:00Z",
	    "2026-04-31T00:00:00Z",
	    "2026-11-29T24:00:00Z",
	    "2026-11-29T12:60:00Z",
	    "2026-11-29T12:00:00.Z",
	    "2026-11-29T12:00:00+0100",
	    "2026-11-29T12:00:00+24:00",
	    "2026-11-29T12:00:00Zjunk",
	    "1969-12-31T23:59:59Z",
	    "1970-01-01T00:00:00+01:00",
	    "+2026-11-29T12:00:00Z",
	    "2026-11-29T12:00:00 Z",
	};
	uint64_t ms;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		ms = 1;
		if (aws_creds_parse_time(good[i].s, &ms) != 0 || ms != good[i].ms)
			fail_msg("%s: %" PRIu64 ", wanted %" PRIu64, good[i].s, ms, good[i].ms);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ms = 7;
		if (aws_creds_parse_time(bad[i], &ms) != -EINVAL || ms != 7)
			fail_msg("%s accepted", bad[i]);
	}
	assert_int_equal(aws_creds_parse_time(NULL, &ms), -EINVAL);
}

#define T(f) cmocka_unit_test_setup_teardown(f, env_setup, env_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_env_source),
	    T(test_env_only_one_key_is_an_error),
	    T(test_ecs_relative_uri),
	    T(test_ecs_full_uri_token_from_variable),
	    T(test_ecs_full_uri_token_file_read_at_each_fetch),
	    T(test_ecs_token_with_line_break_refused),
	    T(test_ecs_full_uri_host_rules),
	    T(test_imds_v2),
	    T(test_imds_endpoint_variable_and_disabled),
	    T(test_imds_refresh_before_expiry),
	    T(test_imds_401_gets_a_new_token),
	    T(test_imds_errors),
	    T(test_failed_refresh_keeps_old_then_expires),
	    T(test_bad_documents_fail_naming_the_field),
	    T(test_body_limit_and_timeout),
	    T(test_free_while_fetching_and_from_update),
	    cmocka_unit_test(test_parse_names_the_field),
	    cmocka_unit_test(test_parse_time),
	};
	int failed;

	curl_global_init(CURL_GLOBAL_DEFAULT);
	failed = cmocka_run_group_tests(tests, NULL, NULL);
	curl_global_cleanup();
	return failed;
}
