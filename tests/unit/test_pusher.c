/*
 * Unit tests of agent/pusher.c: the daemon's push pipeline, against a real
 * sgprobe-collector (accepted, duplicate, 400, 401, 413, down then up) and a
 * tiny scripted server (5xx, 429 with Retry-After, slow answers), all on
 * 127.0.0.1. Time is only ever bounded from below; every test ends with every
 * handle closed: uv_loop_close() returns 0.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <cJSON.h>
#include <curl/curl.h>
#include <uv.h>

#include "../../agent/pusher.h"
#include "sgprobe/auth.h"
#include "sgprobe/curluv.h"
#include "sgprobe/jitter.h"
#include "sgprobe/report.h"

#define T0 "2026-01-01T00:00:00.000Z"

#include "http_fixture.h"
#include "sgprobe/container.h"

/* ---- the collector's counters ---- */

static size_t on_fetch(char *ptr, size_t size, size_t n, void *arg)
{
	char **buf = arg;
	size_t old = *buf ? strlen(*buf) : 0, len = size * n;
	char *more = realloc(*buf, old + len + 1);

	assert_non_null(more);
	memcpy(more + old, ptr, len);
	more[old + len] = '\0';
	*buf = more;
	return len;
}

/* GETs a page of the admin listener, blocking (the test's loop is not running). */
static char *admin_get(const coll_t *c, const char *path)
{
	CURL *easy = curl_easy_init();
	char url[128], *buf = NULL;
	long status = 0;

	assert_non_null(easy);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", c->admin, path);
	curl_easy_setopt(easy, CURLOPT_URL, url);
	curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_fetch);
	curl_easy_setopt(easy, CURLOPT_WRITEDATA, &buf);
	curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, 10000L);
	assert_int_equal(curl_easy_perform(easy), CURLE_OK);
	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
	assert_int_equal(status, 200);
	curl_easy_cleanup(easy);
	assert_non_null(buf);
	return buf;
}

/* The collector's report counters, from /metrics. */
typedef struct {
	uint64_t accepted;
	uint64_t duplicate;
} coll_counts_t;

static uint64_t metric(const char *text, const char *name)
{
	char pat[128];
	const char *at;

	snprintf(pat, sizeof(pat), "\n%s ", name);
	at = strstr(text, pat);
	assert_non_null(at);
	return strtoull(at + strlen(pat), NULL, 10);
}

static coll_counts_t coll_counts(const coll_t *c)
{
	char *text = admin_get(c, "/metrics");
	coll_counts_t n;

	n.accepted = metric(text, "sgprobe_reports_accepted_total");
	n.duplicate = metric(text, "sgprobe_reports_duplicate_total");
	free(text);
	return n;
}

/* ---- reports ---- */

/* A web agent's report with n results towards api:8000; latency_us numbers them. */
static report_t *make_report(const char *id, size_t n, size_t detail_len, bool final)
{
	report_t *r = report_new();
	char boot[64], *detail = NULL;
	report_result_t res;
	size_t i;

	assert_non_null(r);
	/* A boot per report maker: each test is a new life of its agent. */
	snprintf(boot, sizeof(boot), "%d-%" PRIu64, (int)getpid(), uv_hrtime());
	assert_int_equal(report_set_string(&r->agent.id, id), 0);
	assert_int_equal(report_set_string(&r->agent.role, "web"), 0);
	assert_int_equal(report_set_string(&r->agent.cluster, "test"), 0);
	assert_int_equal(report_set_string(&r->agent.address, "127.0.0.11"), 0);
	assert_int_equal(report_set_string(&r->agent.version, "0.1.0"), 0);
	assert_int_equal(report_set_string(&r->agent.boot, boot), 0);
	assert_int_equal(report_set_string(&r->sent_at, T0), 0);
	r->mode = REPORT_MODE_DAEMON;
	r->interval_s = 60;
	r->round_ms = 12;
	r->final = final;
	if (detail_len) {
		detail = malloc(detail_len + 1);
		assert_non_null(detail);
		memset(detail, 'x', detail_len);
		detail[detail_len] = '\0';
	}
	/* report_add_result() stops at REPORT_MAX_RESULTS; a split needs more. */
	r->results = calloc(n ? n : 1, sizeof(*r->results));
	assert_non_null(r->results);
	r->cap_results = n ? n : 1;
	for (i = 0; i < n; i++) {
		memset(&res, 0, sizeof(res));
		res.dst_role = strdup("api");
		res.target = strdup("127.0.0.12");
		res.address = strdup("127.0.0.12");
		res.at = strdup(T0);
		res.detail = detail ? strdup(detail) : NULL;
		assert_non_null(res.dst_role);
		assert_non_null(res.at);
		res.port = 8000;
		res.expected = VERDICT_EXPECT_ALLOW;
		res.state = VERDICT_STATE_OPEN;
		res.latency_us = (int64_t)i;
		r->results[r->n_results++] = res;
	}
	free(detail);
	return r;
}

/* The encoded report with this seq (malloc()ed, for pusher_enqueue()). */
static char *body_of(report_t *r, uint64_t seq, size_t *len)
{
	char *body;

	r->seq = seq;
	body = report_encode(r);
	assert_non_null(body);
	*len = strlen(body);
	return body;
}

static uint64_t seq_of(const char *body)
{
	cJSON *doc = cJSON_Parse(body);
	const cJSON *seq = cJSON_GetObjectItemCaseSensitive(doc, "seq");
	uint64_t v;

	assert_true(cJSON_IsNumber(seq));
	v = (uint64_t)seq->valuedouble;
	cJSON_Delete(doc);
	return v;
}

/* ---- one loop, one curluv, one pusher ---- */

typedef struct env_s env_t;
typedef bool (*cond_fn)(const env_t *e);

struct env_s {
	uv_loop_t loop;
	curluv_t cu;
	pusher_t p;
	uv_timer_t tick;
	uint64_t until;
	cond_fn cond;
	uint64_t want;
	const fake_t *fake;
	int stop_calls;
	int stop_status;
	uint64_t stop_at; /* uv_now() of the stop callback */
	int p_closed;
	int cu_closed;
	char log[16384];
	size_t log_len;
};

static void on_log(void *arg, pusher_log_level_t level, const char *msg)
{
	env_t *e = arg;
	int n;

	n = snprintf(e->log + e->log_len, sizeof(e->log) - e->log_len, "%d %s\n", (int)level, msg);
	if (n > 0 && (size_t)n < sizeof(e->log) - e->log_len)
		e->log_len += (size_t)n;
}

static pusher_config_t config_for(env_t *e, int port)
{
	static char url[128];
	pusher_config_t cfg;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/reports", port);
	memset(&cfg, 0, sizeof(cfg));
	cfg.url = url;
	cfg.key_id = KEY_ID;
	cfg.secret = (const unsigned char *)KEY_SECRET;
	cfg.secret_len = strlen(KEY_SECRET);
	cfg.backoff_base_ms = 20;
	cfg.backoff_cap_ms = 200;
	cfg.timeout_ms = 10000;
	cfg.seed = 42;
	cfg.log = on_log;
	cfg.log_arg = e;
	return cfg;
}

static void env_init(env_t *e)
{
	memset(e, 0, sizeof(*e));
	assert_int_equal(uv_loop_init(&e->loop), 0);
	assert_int_equal(uv_timer_init(&e->loop, &e->tick), 0);
	assert_int_equal(curluv_init(&e->cu, &e->loop), 0);
}

/* env_init() and a pusher with this configuration. */
static void env_start(env_t *e, const pusher_config_t *cfg)
{
	pusher_config_t copy = *cfg;

	copy.log_arg = e;
	assert_int_equal(pusher_init(&e->p, &e->loop, &e->cu, &copy), 0);
}

static void on_tick(uv_timer_t *t)
{
	env_t *e = container_of(t, env_t, tick);

	if (e->cond(e) || uv_now(&e->loop) >= e->until)
		uv_stop(&e->loop);
}

/* Runs the loop until cond(e) holds or `ms` pass; returns cond(e). */
static bool env_run(env_t *e, cond_fn cond, uint64_t want, uint64_t ms)
{
	uv_update_time(&e->loop);
	e->cond = cond;
	e->want = want;
	e->until = uv_now(&e->loop) + ms;
	assert_int_equal(uv_timer_start(&e->tick, on_tick, 2, 2), 0);
	uv_run(&e->loop, UV_RUN_DEFAULT);
	uv_timer_stop(&e->tick);
	return cond(e);
}

static bool delivered(const env_t *e)
{
	return e->p.counters.delivered >= e->want;
}

static bool settled(const env_t *e)
{
	return e->p.counters.delivered + e->p.counters.dropped_rejected >= e->want;
}

static bool attempted(const env_t *e)
{
	return e->p.counters.attempts >= e->want;
}

static bool stopped(const env_t *e)
{
	return e->stop_calls >= (int)e->want;
}

static bool fake_got(const env_t *e)
{
	return (uint64_t)e->fake->n_reqs >= e->want;
}

static bool never(const env_t *e)
{
	(void)e;
	return false;
}

static void on_stop(pusher_t *p, int status)
{
	env_t *e = container_of(p, env_t, p);

	e->stop_calls++;
	e->stop_status = status;
	e->stop_at = uv_now(&e->loop);
}

static void on_p_closed(pusher_t *p)
{
	env_t *e = container_of(p, env_t, p);

	e->p_closed++;
}

static void on_cu_closed(curluv_t *cu)
{
	env_t *e = container_of(cu, env_t, cu);

	e->cu_closed++;
}

/* Disposes of everything and checks that no handle is left behind. */
static void env_finish(env_t *e, fake_t *f)
{
	pusher_dispose(&e->p, on_p_closed);
	curluv_dispose(&e->cu, on_cu_closed);
	if (f)
		fake_close(f);
	uv_close((uv_handle_t *)&e->tick, NULL);
	assert_int_equal(uv_run(&e->loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(e->p_closed, 1);
	assert_int_equal(e->cu_closed, 1);
	assert_int_equal(uv_loop_close(&e->loop), 0);
	if (f)
		fake_free(f);
}

/* ---- the group: one collector for the tests that need one running ---- */

static int group_setup(void **state)
{
	coll_t *c = calloc(1, sizeof(*c));

	assert_non_null(c);
	coll_files(c);
	coll_start(c);
	*state = c;
	return 0;
}

static int group_teardown(void **state)
{
	coll_t *c = *state;

	coll_cleanup(c);
	free(c);
	return 0;
}

/* ---- delivery ---- */

static void test_pusher_delivers_several_reports_in_order(void **state)
{
	coll_t *c = *state;
	coll_counts_t before = coll_counts(c), after;
	pusher_config_t cfg;
	report_t *r;
	env_t e;
	int i;

	env_init(&e);
	cfg = config_for(&e, c->port);
	env_start(&e, &cfg);
	r = make_report("in-order", 3, 0, false);
	for (i = 0; i < 5; i++)
		assert_int_equal(pusher_submit(&e.p, r), 1);
	assert_int_equal(pusher_next_seq(&e.p), 6);
	assert_true(env_run(&e, delivered, 5, 20000));
	after = coll_counts(c);
	assert_int_equal(e.p.counters.attempts, 5);
	assert_int_equal(e.p.counters.sent, 5);
	assert_int_equal(e.p.counters.delivered, 5);
	assert_int_equal(e.p.counters.duplicates, 0);
	assert_int_equal(e.p.counters.retried, 0);
	assert_int_equal(e.p.counters.dropped_full + e.p.counters.dropped_rejected, 0);
	/* The collector takes a seq at or below the last one as a duplicate: five
	 * accepted and none duplicate means they arrived in order. */
	assert_int_equal(after.accepted - before.accepted, 5);
	assert_int_equal(after.duplicate - before.duplicate, 0);
	report_free(r);
	env_finish(&e, NULL);
}

static void test_pusher_one_push_in_flight_seq_in_order(void **state)
{
	static const fake_answer_t script[] = {{202, NULL, "{\"accepted\":1}", 30}};
	pusher_config_t cfg;
	report_t *r;
	fake_t f;
	env_t e;
	int i;

	(void)state;
	env_init(&e);
	fake_start(&f, &e.loop, script, 1);
	cfg = config_for(&e, f.port);
	env_start(&e, &cfg);
	r = make_report("one-at-a-time", 1, 0, false);
	for (i = 0; i < 6; i++)
		assert_int_equal(pusher_submit(&e.p, r), 1);
	assert_true(env_run(&e, delivered, 6, 20000));
	assert_int_equal(f.n_reqs, 6);
	for (i = 0; i < 6; i++)
		assert_int_equal(seq_of(f.reqs[i].body), (uint64_t)i + 1);
	/* Each answer took 30 ms, and no second request came meanwhile. */
	assert_int_equal(f.max_pending, 1);
	report_free(r);
	env_finish(&e, &f);
}

static void test_pusher_duplicate_counts_as_delivered(void **state)
{
	coll_t *c = *state;
	coll_counts_t before = coll_counts(c), after;
	pusher_config_t cfg;
	report_t *r;
	char *body;
	size_t len;
	env_t e;

	env_init(&e);
	cfg = config_for(&e, c->port);
	env_start(&e, &cfg);
	r = make_report("duplicate", 2, 0, false);
	/* The same report twice: as after a lost answer. */
	body = body_of(r, 1, &len);
	assert_int_equal(pusher_enqueue(&e.p, 1, strdup(body), len), 0);
	assert_int_equal(pusher_enqueue(&e.p, 1, body, len), 0);
	assert_true(env_run(&e, delivered, 2, 20000));
	after = coll_counts(c);
	assert_int_equal(e.p.counters.delivered, 2);
	assert_int_equal(e.p.counters.duplicates, 1);
	assert_int_equal(e.p.counters.retried, 0);
	assert_int_equal(after.accepted - before.accepted, 1);
	assert_int_equal(after.duplicate - before.duplicate, 1);
	/* Counted on both sides alike. */
	assert_int_equal(e.p.counters.sent,
	                 (after.accepted - before.accepted) + (after.duplicate - before.duplicate));
	report_free(r);
	env_finish(&e, NULL);
}

/* ---- retries ---- */

static void test_pusher_5xx_retried_then_delivered(void **state)
{
	static const fake_answer_t script[] = {
	    {503, NULL, "{\"error\":\"warming up\"}", 0},
	    {500, NULL, "{\"error\":\"out of memory\"}", 0},
	    {202, NULL, "{\"accepted\":1}", 0},
	};
	pusher_config_t cfg;
	report_t *r;
	fake_t f;
	env_t e;

	(void)state;
	env_init(&e);
	fake_start(&f, &e.loop, script, 3);
	cfg = config_for(&e, f.port);
	env_start(&e, &cfg);
	r = make_report("retry-5xx", 2, 0, false);
	assert_int_equal(pusher_submit(&e.p, r), 1);
	assert_true(env_run(&e, delivered, 1, 20000));
	assert_int_equal(f.n_reqs, 3);
	assert_string_equal(f.reqs[0].body, f.reqs[2].body);
	assert_int_equal(e.p.counters.attempts, 3);
	assert_int_equal(e.p.counters.sent, 3);
	assert_int_equal(e.p.counters.retried, 2);
	assert_int_equal(e.p.counters.delivered, 1);
	assert_int_equal(e.p.counters.dropped_rejected, 0);
	assert_non_null(strstr(e.log, "503: warming up"));
	assert_non_null(strstr(e.log, "500: out of memory"));
	report_free(r);
	env_finish(&e, &f);
}

static void test_pusher_timeout_retried(void **state)
{
	static const fake_answer_t script[] = {
	    {202, NULL, "{\"accepted\":1}", 5000},
	    {202, NULL, "{\"accepted\":1}", 0},
	};
	pusher_config_t cfg;
	report_t *r;
	fake_t f;
	env_t e;

	(void)state;
	env_init(&e);
	fake_start(&f, &e.loop, script, 2);
	cfg = config_for(&e, f.port);
	/* The first answer comes too late: a timeout, retried. */
	cfg.timeout_ms = 200;
	env_start(&e, &cfg);
	r = make_report("retry-timeout", 1, 0, false);
	assert_int_equal(pusher_submit(&e.p, r), 1);
	assert_true(env_run(&e, delivered, 1, 20000));
	assert_int_equal(f.n_reqs, 2);
	assert_int_equal(e.p.counters.retried, 1);
	assert_int_equal(e.p.counters.sent, 1);
	assert_int_equal(e.p.counters.attempts, 2);
	assert_non_null(strstr(e.log, "timed out"));
	report_free(r);
	env_finish(&e, &f);
}

static void test_pusher_429_retry_after_honoured(void **state)
{
	static const fake_answer_t script[] = {
	    {429, "Retry-After: 1\r\n",
	     "{\"error\":\"the collector's state is full; retry later\"}", 0},
	    {202, NULL, "{\"accepted\":1}", 0},
	};
	pusher_config_t cfg;
	report_t *r;
	fake_t f;
	env_t e;

	(void)state;
	env_init(&e);
	fake_start(&f, &e.loop, script, 2);
	cfg = config_for(&e, f.port);
	env_start(&e, &cfg);
	r = make_report("retry-429", 1, 0, false);
	assert_int_equal(pusher_submit(&e.p, r), 1);
	assert_true(env_run(&e, delivered, 1, 20000));
	assert_int_equal(f.n_reqs, 2);
	/* The backoff alone would have retried within 20 ms. */
	assert_true(f.reqs[1].at - f.reqs[0].at >= 1000);
	assert_int_equal(e.p.counters.retried, 1);
	assert_int_equal(e.p.counters.delivered, 1);
	assert_non_null(strstr(e.log, "429: the collector's state is full"));
	report_free(r);
	env_finish(&e, &f);
}

/* Reads Timestamp=<n> from an Authorization header. */
static int64_t timestamp_of(const char *auth)
{
	const char *t = strstr(auth, "Timestamp=");

	assert_non_null(t);
	return strtoll(t + strlen("Timestamp="), NULL, 10);
}

static void test_pusher_signature_fresh_on_retry(void **state)
{
	/* Retry-After: 1 puts the retry in a later second of the clock. */
	static const fake_answer_t script[] = {
	    {429, "Retry-After: 1\r\n", "{\"error\":\"full\"}", 0},
	    {202, NULL, "{\"accepted\":1}", 0},
	};
	char err[AUTH_ERR_MAX];
	pusher_config_t cfg;
	auth_keys_t *keys;
	report_t *r;
	fake_t f;
	env_t e;
	int i;

	(void)state;
	keys = auth_keys_parse(KEYS_JSON, strlen(KEYS_JSON), "/", err, sizeof(err));
	assert_non_null(keys);
	env_init(&e);
	fake_start(&f, &e.loop, script, 2);
	cfg = config_for(&e, f.port);
	env_start(&e, &cfg);
	r = make_report("fresh-signature", 1, 0, false);
	assert_int_equal(pusher_submit(&e.p, r), 1);
	assert_true(env_run(&e, delivered, 1, 20000));
	assert_int_equal(f.n_reqs, 2);
	assert_string_equal(f.reqs[0].body, f.reqs[1].body);
	/* Same body, later timestamp, another signature ... */
	assert_true(timestamp_of(f.reqs[1].auth) > timestamp_of(f.reqs[0].auth));
	assert_string_not_equal(f.reqs[0].auth, f.reqs[1].auth);
	/* ... and each one valid for what it signs. */
	for (i = 0; i < 2; i++)
		assert_int_equal(auth_verify(keys, f.reqs[i].auth, strlen(f.reqs[i].auth), "POST",
		                             "/v1/reports", f.reqs[i].body, f.reqs[i].len, "web",
		                             timestamp_of(f.reqs[i].auth), NULL),
		                 AUTH_OK);
	auth_keys_free(keys);
	report_free(r);
	env_finish(&e, &f);
}

/* ---- refusals ---- */

static void test_pusher_413_dropped_with_collectors_message(void **state)
{
	coll_t *c = *state;
	pusher_config_t cfg;
	report_t *big, *r;
	cJSON *doc, *results;
	char *body;
	size_t len;
	env_t e;

	/* 1001 results: one more than a report may hold, in well under 1 MiB. */
	big = make_report("too-large", 1000, 0, false);
	body = body_of(big, 1, &len);
	doc = cJSON_Parse(body);
	free(body);
	results = cJSON_GetObjectItemCaseSensitive(doc, "results");
	assert_true(
	    cJSON_AddItemToArray(results, cJSON_Duplicate(cJSON_GetArrayItem(results, 0), true)));
	body = cJSON_PrintUnformatted(doc);
	cJSON_Delete(doc);
	env_init(&e);
	cfg = config_for(&e, c->port);
	env_start(&e, &cfg);
	assert_int_equal(pusher_enqueue(&e.p, 1, body, strlen(body)), 0);
	r = make_report("too-large", 1, 0, false);
	assert_int_equal(report_set_string(&r->agent.boot, big->agent.boot), 0);
	body = body_of(r, 2, &len);
	assert_int_equal(pusher_enqueue(&e.p, 2, body, len), 0);
	assert_true(env_run(&e, settled, 2, 20000));
	assert_int_equal(e.p.counters.dropped_rejected, 1);
	assert_int_equal(e.p.counters.delivered, 1);
	assert_int_equal(e.p.counters.retried, 0);
	assert_int_equal(e.p.counters.sent, 2);
	/* Dropped with the collector's own words, in the log and kept. */
	assert_non_null(strstr(e.p.last_rejection, "413: results: 1001 results exceed the limit"));
	assert_non_null(strstr(e.log, "1001 results exceed the limit of 1000"));
	report_free(big);
	report_free(r);
	env_finish(&e, NULL);
}

static void test_pusher_400_dropped_with_collectors_message(void **state)
{
	coll_t *c = *state;
	pusher_config_t cfg;
	const char *bad = "{\"schema\": \"sgprobe.report/v1\", \"seq\": \"one\"}";
	env_t e;

	env_init(&e);
	cfg = config_for(&e, c->port);
	env_start(&e, &cfg);
	assert_int_equal(pusher_enqueue(&e.p, 1, strdup(bad), strlen(bad)), 0);
	assert_true(env_run(&e, settled, 1, 20000));
	assert_int_equal(e.p.counters.dropped_rejected, 1);
	assert_int_equal(e.p.counters.retried, 0);
	assert_int_equal(e.p.counters.delivered, 0);
	assert_int_equal(strncmp(e.p.last_rejection, "400: ", 5), 0);
	/* The collector names the field; the pusher passes it on. */
	assert_true(strlen(e.p.last_rejection) > 5);
	assert_non_null(strstr(e.log, e.p.last_rejection + 5));
	env_finish(&e, NULL);
}

static void test_pusher_401_dropped_with_collectors_message(void **state)
{
	coll_t *c = *state;
	pusher_config_t cfg;
	report_t *r;
	env_t e;

	env_init(&e);
	cfg = config_for(&e, c->port);
	cfg.secret = (const unsigned char *)"not-the-secret";
	cfg.secret_len = strlen("not-the-secret");
	env_start(&e, &cfg);
	r = make_report("wrong-key", 1, 0, false);
	assert_int_equal(pusher_submit(&e.p, r), 1);
	assert_int_equal(pusher_submit(&e.p, r), 1);
	assert_true(env_run(&e, settled, 2, 20000));
	assert_int_equal(e.p.counters.dropped_rejected, 2);
	assert_int_equal(e.p.counters.retried, 0);
	assert_string_equal(e.p.last_rejection, "401: unauthorized: bad signature");
	/* The secret never appears in a log line. */
	assert_null(strstr(e.log, "not-the-secret"));
	report_free(r);
	env_finish(&e, NULL);
}

/* ---- the queue's bounds ---- */

static void test_pusher_queue_bound_drops_oldest_first(void **state)
{
	static const fake_answer_t script[] = {{202, NULL, "{\"accepted\":1}", 50}};
	pusher_config_t cfg;
	report_t *r;
	size_t n = 0, len;
	fake_t f;
	env_t e;
	int i;

	(void)state;
	env_init(&e);
	fake_start(&f, &e.loop, script, 1);
	cfg = config_for(&e, f.port);
	cfg.max_reports = 3;
	env_start(&e, &cfg);
	r = make_report("bounded", 1, 0, false);
	/* 1 goes on the wire at once; 2..6 wait in a queue of 3: 2 and 3 go. */
	for (i = 1; i <= 6; i++) {
		char *body = body_of(r, (uint64_t)i, &len);

		assert_int_equal(pusher_enqueue(&e.p, (uint64_t)i, body, len), 0);
	}
	assert_int_equal(e.p.counters.dropped_full, 2);
	pusher_queued(&e.p, &n, NULL);
	assert_int_equal(n, 4);
	assert_true(env_run(&e, delivered, 4, 20000));
	assert_int_equal(f.n_reqs, 4);
	assert_int_equal(seq_of(f.reqs[0].body), 1);
	assert_int_equal(seq_of(f.reqs[1].body), 4);
	assert_int_equal(seq_of(f.reqs[2].body), 5);
	assert_int_equal(seq_of(f.reqs[3].body), 6);
	assert_int_equal(e.p.counters.dropped_full, 2);
	assert_non_null(strstr(e.log, "dropped report seq 2"));
	assert_non_null(strstr(e.log, "dropped report seq 3"));
	report_free(r);
	env_finish(&e, &f);
}

static void test_pusher_queue_byte_bound_drops_oldest_first(void **state)
{
	static const fake_answer_t script[] = {{202, NULL, "{\"accepted\":1}", 50}};
	pusher_config_t cfg;
	report_t *r;
	size_t n = 0, bytes = 0, len;
	char *bodies[5];
	fake_t f;
	env_t e;
	int i;

	(void)state;
	env_init(&e);
	fake_start(&f, &e.loop, script, 1);
	r = make_report("bounded-bytes", 2, 0, false);
	/* Seqs 1 to 5 encode to the same length. */
	for (i = 0; i < 5; i++)
		bodies[i] = body_of(r, (uint64_t)i + 1, &len);
	cfg = config_for(&e, f.port);
	cfg.max_bytes = 2 * len;
	env_start(&e, &cfg);
	for (i = 0; i < 5; i++)
		assert_int_equal(pusher_enqueue(&e.p, (uint64_t)i + 1, bodies[i], len), 0);
	/* 1 on the wire, room for two more: 2 and 3 made way for 4 and 5. */
	assert_int_equal(e.p.counters.dropped_full, 2);
	pusher_queued(&e.p, &n, &bytes);
	assert_int_equal(n, 3);
	assert_int_equal(bytes, 3 * len);
	assert_true(env_run(&e, delivered, 3, 20000));
	assert_int_equal(f.n_reqs, 3);
	assert_int_equal(seq_of(f.reqs[0].body), 1);
	assert_int_equal(seq_of(f.reqs[1].body), 4);
	assert_int_equal(seq_of(f.reqs[2].body), 5);
	report_free(r);
	env_finish(&e, &f);
}

/* ---- the backoff ---- */

/* The delays the pusher chose ("retry in N ms" in its log), in order; returns how many. */
static size_t logged_delays(const env_t *e, uint64_t *out, size_t max)
{
	static const char pat[] = "; retry in ";
	const char *at = e->log;
	size_t n = 0;

	while ((at = strstr(at, pat)) != NULL) {
		assert_true(n < max);
		at += strlen(pat);
		out[n++] = strtoull(at, NULL, 10);
	}
	return n;
}

static bool retried(const env_t *e)
{
	return e->p.counters.retried >= e->want;
}

/* Slack for a request's own round trip on loopback, sanitizers included. */
#define GAP_SLACK_MS 1000

static void test_pusher_backoff_ceiling_doubles_to_cap_and_resets(void **state)
{
	/* seq 1: eight failures in a row, then delivered (requests 0 to 8);
	 * seq 2: two failures, then refused for good (9 to 11);
	 * seq 3: one failure, then delivered (12, 13). */
#define BUSY  503, NULL, "{\"error\":\"busy\"}", 0
#define TAKEN 202, NULL, "{\"accepted\":1}", 0
#define BAD   400, NULL, "{\"error\":\"seq: not a number\"}", 0
	static const fake_answer_t script[] = {{BUSY}, {BUSY}, {BUSY}, {BUSY},  {BUSY},
	                                       {BUSY}, {BUSY}, {BUSY}, {TAKEN}, {BUSY},
	                                       {BUSY}, {BAD},  {BUSY}, {TAKEN}};
#undef BUSY
#undef TAKEN
#undef BAD
	/* The request each failure was the answer to, and the ceiling of its
	 * backoff: base 20 ms doubled per consecutive failure up to the 200 ms
	 * cap (config_for()), back to the base after a delivery (request 8) and
	 * after a refusal (request 11). */
	static const int failed_req[] = {0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 12};
	static const uint64_t ceiling[] = {20, 40, 80, 160, 200, 200, 200, 200, 20, 40, 20};
	const size_t n_fail = sizeof(ceiling) / sizeof(ceiling[0]);
	uint64_t delay[16], rng, gap;
	pusher_config_t cfg;
	report_t *r;
	fake_t f;
	env_t e;
	size_t i;

	(void)state;
	env_init(&e);
	fake_start(&f, &e.loop, script, sizeof(script) / sizeof(script[0]));
	cfg = config_for(&e, f.port);
	assert_int_equal(cfg.backoff_base_ms, 20);
	assert_int_equal(cfg.backoff_cap_ms, 200);
	env_start(&e, &cfg);
	r = make_report("backoff", 1, 0, false);
	for (i = 0; i < 3; i++)
		assert_int_equal(pusher_submit(&e.p, r), 1);
	assert_true(env_run(&e, settled, 3, 30000));
	assert_int_equal(f.n_reqs, 14);
	assert_int_equal(e.p.counters.attempts, 14);
	assert_int_equal(e.p.counters.sent, 14);
	assert_int_equal(e.p.counters.retried, n_fail);
	assert_int_equal(e.p.counters.delivered, 2);
	assert_int_equal(e.p.counters.dropped_rejected, 1);
	assert_non_null(strstr(e.log, "report seq 1 delivered after 8 failed attempts"));
	assert_int_equal(logged_delays(&e, delay, 16), n_fail);
	/* Full jitter: each delay is drawn from [0, ceiling], never above the cap.
	 * The seed makes the draws the jitter sequence's own (lib/jitter.c), so
	 * the ceiling each one was drawn under is checked exactly. */
	rng = cfg.seed;
	for (i = 0; i < n_fail; i++) {
		assert_true(delay[i] <= ceiling[i]);
		assert_true(delay[i] <= cfg.backoff_cap_ms);
		assert_int_equal(delay[i], jitter_upto(&rng, ceiling[i]));
	}
	/* And the next attempt came no sooner than the delay, and not much later:
	 * uv_now() of the server's reception, on the same loop. */
	for (i = 0; i < n_fail; i++) {
		gap = f.reqs[failed_req[i] + 1].at - f.reqs[failed_req[i]].at;
		assert_true(gap >= delay[i]);
		assert_true(gap <= ceiling[i] + GAP_SLACK_MS);
	}
	/* After a delivery or a refusal the next report goes at once. */
	assert_true(f.reqs[9].at - f.reqs[8].at <= GAP_SLACK_MS);
	assert_true(f.reqs[12].at - f.reqs[11].at <= GAP_SLACK_MS);
	/* The same report each time, and in order. */
	for (i = 0; i < 14; i++)
		assert_int_equal(seq_of(f.reqs[i].body), i <= 8 ? 1 : i <= 11 ? 2 : 3);
	report_free(r);
	env_finish(&e, &f);
}

/* ---- a retry meeting a full queue ---- */

static void test_pusher_overflow_while_retrying_drops_the_retried_report_first(void **state)
{
	static const fake_answer_t script[] = {
	    /* seq 1: refused for now, and to be retried no sooner than in 1 s */
	    {503, "Retry-After: 1\r\n", "{\"error\":\"busy\"}", 0},
	    /* seq 3: refused after a second on the wire */
	    {503, NULL, "{\"error\":\"still busy\"}", 1000},
	    {202, NULL, "{\"accepted\":1}", 0},
	};
	const uint64_t want[] = {1, 3, 4, 5, 6};
	pusher_config_t cfg;
	report_t *r;
	size_t n = 0, bytes = 0, len, one;
	char *body;
	fake_t f;
	env_t e;
	uint64_t seq;
	int i;

	(void)state;
	env_init(&e);
	fake_start(&f, &e.loop, script, 3);
	cfg = config_for(&e, f.port);
	cfg.max_reports = 3;
	env_start(&e, &cfg);
	e.fake = &f;
	r = make_report("overflow-retry", 1, 0, false);
	body = body_of(r, 1, &one);
	assert_int_equal(pusher_enqueue(&e.p, 1, body, one), 0);
	/* seq 1 failed and waits for its retry, queued again. */
	assert_true(env_run(&e, retried, 1, 20000));
	assert_int_equal(f.n_reqs, 1);
	pusher_queued(&e.p, &n, &bytes);
	assert_int_equal(n, 1);
	assert_int_equal(bytes, one);
	/* 2 and 3 fit beside it; 4 and 5 overflow the queue of 3: the oldest go
	 * first, the waiting seq 1, then 2. */
	for (seq = 2; seq <= 5; seq++) {
		body = body_of(r, seq, &len);
		assert_int_equal(len, one);
		assert_int_equal(pusher_enqueue(&e.p, seq, body, len), 0);
	}
	assert_int_equal(e.p.counters.dropped_full, 2);
	assert_non_null(strstr(e.log, "dropped report seq 1 "));
	assert_non_null(strstr(e.log, "dropped report seq 2 "));
	pusher_queued(&e.p, &n, &bytes);
	assert_int_equal(n, 3);
	assert_int_equal(bytes, 3 * one);
	/* When the retry comes, it sends the oldest left: seq 3. */
	assert_true(env_run(&e, fake_got, 2, 20000));
	assert_int_equal(seq_of(f.reqs[1].body), 3);
	assert_true(f.reqs[1].at - f.reqs[0].at >= 1000);
	/* seq 6 while 3 is on the wire: the queue holds 4, 5, 6, and 3 on the
	 * wire is not counted, so nothing goes. */
	assert_int_equal(f.pending, 1);
	body = body_of(r, 6, &len);
	assert_int_equal(pusher_enqueue(&e.p, 6, body, len), 0);
	assert_int_equal(e.p.counters.dropped_full, 2);
	pusher_queued(&e.p, &n, NULL);
	assert_int_equal(n, 4);
	/* seq 3 fails: back at the front it overflows the queue, and being the
	 * oldest it goes; 4, 5 and 6 follow, in order, once the collector is back. */
	assert_true(env_run(&e, delivered, 3, 20000));
	assert_int_equal(f.n_reqs, 5);
	for (i = 0; i < 5; i++)
		assert_int_equal(seq_of(f.reqs[i].body), want[i]);
	assert_int_equal(e.p.counters.dropped_full, 3);
	assert_non_null(strstr(e.log, "dropped report seq 3 "));
	/* The log says so, and promises no retry of a report that is gone. */
	assert_non_null(strstr(e.log, "report seq 3: the collector answered 503: still busy; "
	                              "dropped, the queue is full; seq 4 next, in "));
	assert_null(strstr(e.log, "report seq 3: the collector answered 503: still busy; retry"));
	/* Every report counted once: 6 queued = 3 delivered + 3 dropped. */
	assert_int_equal(e.p.counters.delivered, 3);
	assert_int_equal(e.p.counters.delivered + e.p.counters.dropped_full +
	                     e.p.counters.dropped_rejected + e.p.counters.abandoned,
	                 6);
	assert_int_equal(e.p.counters.attempts, 5);
	assert_int_equal(e.p.counters.sent, 5);
	/* Only seq 1 was scheduled again; seq 3 was dropped instead. */
	assert_int_equal(e.p.counters.retried, 1);
	pusher_queued(&e.p, &n, &bytes);
	assert_int_equal(n, 0);
	assert_int_equal(bytes, 0);
	report_free(r);
	env_finish(&e, &f);
}

/* ---- the collector away, then back ---- */

static void test_pusher_collector_down_then_up_delivers_all_in_order(void **state)
{
	pusher_config_t cfg;
	coll_t c;
	coll_counts_t counts;
	report_t *r;
	env_t e;
	int i;

	(void)state;
	/* Its own collector, not started yet: its port refuses connections. */
	coll_files(&c);
	env_init(&e);
	cfg = config_for(&e, c.port);
	env_start(&e, &cfg);
	r = make_report("down-then-up", 2, 0, false);
	for (i = 0; i < 5; i++)
		assert_int_equal(pusher_submit(&e.p, r), 1);
	/* Several attempts fail while it is away. */
	assert_true(env_run(&e, attempted, 4, 20000));
	assert_int_equal(e.p.counters.delivered, 0);
	assert_int_equal(e.p.counters.sent, 0);
	assert_true(e.p.counters.retried >= 3);
	coll_start(&c);
	assert_true(env_run(&e, delivered, 5, 20000));
	counts = coll_counts(&c);
	/* Everything queued arrived, in order (no duplicate), counted alike on both sides. */
	assert_int_equal(e.p.counters.delivered, 5);
	assert_int_equal(counts.accepted, 5);
	assert_int_equal(counts.duplicate, 0);
	assert_int_equal(e.p.counters.sent, counts.accepted + counts.duplicate);
	assert_int_equal(e.p.counters.dropped_full + e.p.counters.dropped_rejected, 0);
	assert_int_equal(e.p.counters.attempts, e.p.counters.sent + e.p.counters.retried);
	report_free(r);
	env_finish(&e, NULL);
	coll_cleanup(&c);
}

/* ---- splitting ---- */

/* Decodes a part and checks it against the collector's limits. */
static report_t *decode_part(const pusher_body_t *b)
{
	char err[REPORT_ERR_MAX];
	bool too_large = false;
	report_t *r;

	assert_true(b->len <= REPORT_MAX_BODY);
	assert_int_equal(strlen(b->body), b->len);
	r = report_decode(b->body, b->len, err, sizeof(err), &too_large);
	if (!r)
		fail_msg("part seq %" PRIu64 ": %s", b->seq, err);
	assert_int_equal(r->seq, b->seq);
	return r;
}

static void test_pusher_split_at_1000_results(void **state)
{
	report_t *r = make_report("split-count", 2500, 0, true);
	pusher_body_t *parts = NULL;
	size_t n = 0, i, j, k = 0;
	const size_t want[] = {1000, 1000, 500};

	(void)state;
	assert_int_equal(pusher_split(r, 7, &parts, &n), 0);
	assert_int_equal(n, 3);
	for (i = 0; i < n; i++) {
		report_t *d = decode_part(&parts[i]);

		assert_int_equal(parts[i].seq, 7 + i);
		assert_int_equal(d->n_results, want[i]);
		/* Only the last part says the agent is leaving. */
		assert_int_equal(d->final, i == n - 1);
		assert_string_equal(d->agent.id, "split-count");
		for (j = 0; j < d->n_results; j++)
			assert_int_equal(d->results[j].latency_us, (int64_t)k++);
		report_free(d);
	}
	assert_int_equal(k, 2500);
	pusher_bodies_free(parts, n);

	/* Exactly 1000 results fit in one; an empty report is still one report. */
	r->n_results = 1000;
	assert_int_equal(pusher_split(r, 1, &parts, &n), 0);
	assert_int_equal(n, 1);
	pusher_bodies_free(parts, n);
	r->n_results = 0;
	assert_int_equal(pusher_split(r, 1, &parts, &n), 0);
	assert_int_equal(n, 1);
	assert_non_null(strstr(parts[0].body, "\"final\":true"));
	pusher_bodies_free(parts, n);
	r->n_results = 2500;
	report_free(r);
}

static void test_pusher_split_at_1_mib(void **state)
{
	coll_t *c = *state;
	coll_counts_t before = coll_counts(c), after;
	/* 1000 results of about 1.2 KiB each: more bytes than one report may have. */
	report_t *r = make_report("split-bytes", 1000, 1000, false);
	pusher_body_t *parts = NULL;
	pusher_config_t cfg;
	size_t n = 0, i, j, k = 0, first = 0;
	report_t view;
	char *body;
	env_t e;

	assert_int_equal(pusher_split(r, 1, &parts, &n), 0);
	assert_int_equal(n, 2);
	for (i = 0; i < n; i++) {
		report_t *d = decode_part(&parts[i]);

		if (i == 0)
			first = d->n_results;
		for (j = 0; j < d->n_results; j++)
			assert_int_equal(d->results[j].latency_us, (int64_t)k++);
		report_free(d);
	}
	assert_int_equal(k, 1000);
	/* The first part is as full as it can be: one result more would not fit. */
	assert_true(first < 1000);
	view = *r;
	view.n_results = first + 1;
	view.seq = 1;
	body = report_encode(&view);
	assert_non_null(body);
	assert_true(strlen(body) > REPORT_MAX_BODY);
	free(body);
	pusher_bodies_free(parts, n);

	/* And the collector takes both parts. */
	env_init(&e);
	cfg = config_for(&e, c->port);
	env_start(&e, &cfg);
	assert_int_equal(pusher_submit(&e.p, r), 2);
	assert_true(env_run(&e, settled, 2, 20000));
	after = coll_counts(c);
	assert_int_equal(e.p.counters.delivered, 2);
	assert_int_equal(e.p.counters.dropped_rejected, 0);
	assert_int_equal(after.accepted - before.accepted, 2);
	report_free(r);
	env_finish(&e, NULL);
}

static void test_pusher_split_refuses_what_cannot_fit(void **state)
{
	report_t *r = make_report("split-huge", 1, REPORT_MAX_BODY + 10, false);
	pusher_body_t *parts = NULL;
	size_t n = 0;

	(void)state;
	assert_int_equal(pusher_split(r, 1, &parts, &n), -EMSGSIZE);
	assert_null(parts);
	assert_int_equal(n, 0);
	report_free(r);
	r = make_report("split-seq", 3, 0, false);
	assert_int_equal(pusher_split(r, REPORT_MAX_SEQ + 1, &parts, &n), -ERANGE);
	report_free(r);
}

/* ---- stopping ---- */

static void test_pusher_stop_delivers_the_final_report(void **state)
{
	coll_t *c = *state;
	pusher_config_t cfg;
	report_t *r, *fin;
	char *view;
	env_t e;

	env_init(&e);
	cfg = config_for(&e, c->port);
	env_start(&e, &cfg);
	r = make_report("leaving", 2, 0, false);
	fin = make_report("leaving", 0, 0, true);
	assert_int_equal(report_set_string(&fin->agent.boot, r->agent.boot), 0);
	assert_int_equal(pusher_submit(&e.p, r), 1);
	assert_true(env_run(&e, delivered, 1, 20000));
	/* As on SIGTERM: stop (nothing is queued), then the final report. */
	assert_int_equal(pusher_stop(&e.p, uv_now(&e.loop) + 15000, on_stop), 0);
	assert_int_equal(pusher_stop(&e.p, uv_now(&e.loop) + 15000, on_stop), -EALREADY);
	assert_int_equal(pusher_submit(&e.p, fin), 1);
	assert_int_equal(e.stop_calls, 0);
	assert_true(env_run(&e, stopped, 1, 20000));
	assert_int_equal(e.stop_status, 0);
	assert_int_equal(e.p.counters.delivered, 2);
	assert_int_equal(e.p.counters.abandoned, 0);
	/* The collector forgot the agent: the final report came, and came last. */
	view = admin_get(c, "/v1/matrix");
	assert_null(strstr(view, "\"leaving\""));
	free(view);
	/* Stopped: nothing more is taken. */
	assert_int_equal(pusher_submit(&e.p, r), -ECANCELED);
	report_free(r);
	report_free(fin);
	env_finish(&e, NULL);
}

static void test_pusher_stop_gives_up_at_deadline_when_down(void **state)
{
	pusher_config_t cfg;
	uint64_t deadline;
	report_t *r;
	env_t e;

	(void)state;
	env_init(&e);
	cfg = config_for(&e, free_port());
	env_start(&e, &cfg);
	r = make_report("never-delivered", 1, 0, true);
	assert_int_equal(pusher_submit(&e.p, r), 1);
	assert_int_equal(pusher_submit(&e.p, r), 1);
	uv_update_time(&e.loop);
	deadline = uv_now(&e.loop) + 300;
	assert_int_equal(pusher_stop(&e.p, deadline, on_stop), 0);
	assert_true(env_run(&e, stopped, 1, 20000));
	assert_int_equal(e.stop_calls, 1);
	assert_int_equal(e.stop_status, -ETIMEDOUT);
	assert_int_equal(e.p.counters.delivered, 0);
	assert_int_equal(e.p.counters.abandoned, 2);
	assert_true(e.p.counters.attempts >= 1);
	assert_non_null(strstr(e.log, "2 reports undelivered"));
	report_free(r);
	env_finish(&e, NULL);
	assert_int_equal(e.stop_calls, 1);
}

static void test_pusher_stop_cancels_a_slow_request_at_deadline(void **state)
{
	static const fake_answer_t script[] = {{202, NULL, "{\"accepted\":1}", 20000}};
	pusher_config_t cfg;
	uint64_t deadline;
	report_t *r;
	fake_t f;
	env_t e;

	(void)state;
	env_init(&e);
	fake_start(&f, &e.loop, script, 1);
	cfg = config_for(&e, f.port);
	env_start(&e, &cfg);
	e.fake = &f;
	r = make_report("slow-collector", 1, 0, true);
	assert_int_equal(pusher_submit(&e.p, r), 1);
	assert_true(env_run(&e, fake_got, 1, 20000));
	uv_update_time(&e.loop);
	deadline = uv_now(&e.loop) + 200;
	assert_int_equal(pusher_stop(&e.p, deadline, on_stop), 0);
	assert_true(env_run(&e, stopped, 1, 20000));
	assert_int_equal(e.stop_status, -ETIMEDOUT);
	assert_true(e.stop_at >= deadline);
	assert_int_equal(e.p.counters.abandoned, 1);
	assert_int_equal(e.p.counters.delivered, 0);
	/* The request was cancelled: the server saw the client go. */
	env_run(&e, never, 0, 100);
	assert_int_equal(f.pending, 0);
	report_free(r);
	env_finish(&e, &f);
}

static void test_pusher_stop_with_nothing_queued(void **state)
{
	pusher_config_t cfg;
	env_t e;

	(void)state;
	env_init(&e);
	cfg = config_for(&e, free_port());
	env_start(&e, &cfg);
	assert_int_equal(pusher_stop(&e.p, uv_now(&e.loop) + 10000, on_stop), 0);
	/* Never from within pusher_stop(): only from the loop. */
	assert_int_equal(e.stop_calls, 0);
	assert_true(env_run(&e, stopped, 1, 20000));
	assert_int_equal(e.stop_status, 0);
	assert_int_equal(e.p.counters.attempts, 0);
	env_finish(&e, NULL);
}

static void test_pusher_dispose_cancels_pending_stop(void **state)
{
	pusher_config_t cfg;
	report_t *r;
	env_t e;

	(void)state;
	env_init(&e);
	cfg = config_for(&e, free_port());
	env_start(&e, &cfg);
	r = make_report("disposed", 1, 0, false);
	assert_int_equal(pusher_submit(&e.p, r), 1);
	assert_int_equal(pusher_stop(&e.p, uv_now(&e.loop) + 60000, on_stop), 0);
	pusher_dispose(&e.p, on_p_closed);
	assert_int_equal(e.stop_calls, 1);
	assert_int_equal(e.stop_status, -ECANCELED);
	assert_int_equal(pusher_submit(&e.p, r), -ECANCELED);
	report_free(r);
	/* A second dispose does nothing; env_finish() makes it. */
	env_finish(&e, NULL);
}

static void test_pusher_init_refuses_bad_configuration(void **state)
{
	pusher_config_t cfg;
	env_t e;

	(void)state;
	env_init(&e);
	cfg = config_for(&e, 9);
	cfg.url = NULL;
	assert_int_equal(pusher_init(&e.p, &e.loop, &e.cu, &cfg), -EINVAL);
	cfg = config_for(&e, 9);
	cfg.url = "ftp://127.0.0.1:9/v1/reports";
	assert_int_equal(pusher_init(&e.p, &e.loop, &e.cu, &cfg), -EINVAL);
	cfg = config_for(&e, 9);
	cfg.key_id = NULL;
	assert_int_equal(pusher_init(&e.p, &e.loop, &e.cu, &cfg), -EINVAL);
	cfg = config_for(&e, 9);
	cfg.secret_len = 0;
	assert_int_equal(pusher_init(&e.p, &e.loop, &e.cu, &cfg), -EINVAL);
	/* Nothing to dispose after a refusal: only curluv remains. */
	curluv_dispose(&e.cu, on_cu_closed);
	uv_close((uv_handle_t *)&e.tick, NULL);
	assert_int_equal(uv_run(&e.loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(e.cu_closed, 1);
	assert_int_equal(uv_loop_close(&e.loop), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_pusher_delivers_several_reports_in_order),
	    cmocka_unit_test(test_pusher_one_push_in_flight_seq_in_order),
	    cmocka_unit_test(test_pusher_duplicate_counts_as_delivered),
	    cmocka_unit_test(test_pusher_5xx_retried_then_delivered),
	    cmocka_unit_test(test_pusher_timeout_retried),
	    cmocka_unit_test(test_pusher_429_retry_after_honoured),
	    cmocka_unit_test(test_pusher_signature_fresh_on_retry),
	    cmocka_unit_test(test_pusher_413_dropped_with_collectors_message),
	    cmocka_unit_test(test_pusher_400_dropped_with_collectors_message),
	    cmocka_unit_test(test_pusher_401_dropped_with_collectors_message),
	    cmocka_unit_test(test_pusher_queue_bound_drops_oldest_first),
	    cmocka_unit_test(test_pusher_queue_byte_bound_drops_oldest_first),
	    cmocka_unit_test(test_pusher_backoff_ceiling_doubles_to_cap_and_resets),
	    cmocka_unit_test(test_pusher_overflow_while_retrying_drops_the_retried_report_first),
	    cmocka_unit_test(test_pusher_collector_down_then_up_delivers_all_in_order),
	    cmocka_unit_test(test_pusher_split_at_1000_results),
	    cmocka_unit_test(test_pusher_split_at_1_mib),
	    cmocka_unit_test(test_pusher_split_refuses_what_cannot_fit),
	    cmocka_unit_test(test_pusher_stop_delivers_the_final_report),
	    cmocka_unit_test(test_pusher_stop_gives_up_at_deadline_when_down),
	    cmocka_unit_test(test_pusher_stop_cancels_a_slow_request_at_deadline),
	    cmocka_unit_test(test_pusher_stop_with_nothing_queued),
	    cmocka_unit_test(test_pusher_dispose_cancels_pending_stop),
	    cmocka_unit_test(test_pusher_init_refuses_bad_configuration),
	};
	int failed;

	/* Loopback only, never through a proxy. */
	unsetenv("http_proxy");
	unsetenv("https_proxy");
	unsetenv("HTTPS_PROXY");
	unsetenv("ALL_PROXY");
	unsetenv("all_proxy");
	signal(SIGPIPE, SIG_IGN);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	failed = cmocka_run_group_tests(tests, group_setup, group_teardown);
	curl_global_cleanup();
	return failed;
}
