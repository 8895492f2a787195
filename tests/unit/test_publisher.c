/*
 * Tests of collector/publisher.c: the metrics of a flush (DESIGN.md
 * "CloudWatch": 8 + 2 × agent roles for a clean cluster, whatever its size;
 * one datum per cell in a verdict that has a metric), EMF lines, and
 * PutMetricData against a scripted server: signed and gzipped, retried on
 * throttling, dropped on a refusal, bounded while CloudWatch is away, and
 * delivered by the stop.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <cjson/cJSON.h>
#include <zlib.h>

#include <uv.h>

#include "../../collector/publisher.h"

/* Only the scripted server of the fixture is used here, not its collector. */
#pragma GCC diagnostic ignored "-Wunused-function"
#include "http_fixture.h"
#include "sgprobe/container.h"

#define T0   "2026-01-01T00:00:00.000Z"
#define WALL UINT64_C(1767225600000) /* T0 in ms since the epoch */

/* Three agent roles; db has none. web → app:8000 and app → db:5432 are allowed. */
#define MATRIX                                                                                     \
	"{\"version\": 1, \"name\": \"pub\", \"probe\": {\"ports\": [], \"interval_s\": 10},"      \
	" \"roles\": {"                                                                            \
	"  \"web\": {\"endpoints\": [\"198.18.0.10\"], \"ports\": [80], \"agent\": true},"         \
	"  \"app\": {\"endpoints\": [\"198.18.0.11\"], \"ports\": [8000], \"agent\": true},"       \
	"  \"job\": {\"endpoints\": [\"198.18.0.12\"], \"ports\": [], \"agent\": true},"           \
	"  \"db\": {\"endpoints\": [\"198.18.0.13\"], \"ports\": [5432], \"agent\": false}},"      \
	" \"allow\": [{\"from\": \"web\", \"to\": \"app\", \"ports\": [8000]},"                    \
	"           {\"from\": \"app\", \"to\": \"db\", \"ports\": [5432]}]}"
#define AGENT_ROLES 3
#define CLEAN       (8 + 2 * AGENT_ROLES)

typedef struct {
	uv_loop_t loop;
	matrix_t *m;
	state_t *s;
	log_t lg;
	FILE *log;
	publisher_t *p;
	bool stopped;
} env_t;

static state_clusters_t *source(void *arg, uint64_t *wall_ms)
{
	env_t *e = arg;

	*wall_ms = WALL;
	return state_clusters(e->s, 1000);
}

/* One daemon report of agent `id` in cluster c1 with one result. */
static void ingest_one(env_t *e, const char *id, const char *role, const char *address,
                       const char *dst, const char *dst_addr, uint16_t port, verdict_state_t st)
{
	report_t *r = report_new();
	report_result_t res;
	state_ingest_t out;

	assert_non_null(r);
	assert_int_equal(report_set_string(&r->agent.id, id), 0);
	assert_int_equal(report_set_string(&r->agent.role, role), 0);
	assert_int_equal(report_set_string(&r->agent.cluster, "c1"), 0);
	assert_int_equal(report_set_string(&r->agent.address, address), 0);
	assert_int_equal(report_set_string(&r->agent.version, "0.1.0"), 0);
	assert_int_equal(report_set_string(&r->agent.boot, "b1"), 0);
	assert_int_equal(report_set_string(&r->sent_at, T0), 0);
	r->seq = 1;
	r->mode = REPORT_MODE_DAEMON;
	r->interval_s = 10;
	memset(&res, 0, sizeof(res));
	res.dst_role = (char *)dst;
	res.target = (char *)dst_addr;
	res.address = (char *)dst_addr;
	res.port = port;
	res.state = st;
	res.latency_us = 300;
	res.at = (char *)T0;
	assert_int_equal(report_add_result(r, &res), 0);
	assert_int_equal(state_ingest(e->s, r, 1000, WALL, &out), 0);
	report_free(r);
}

/*
 * A fleet of `n` agents per role, a clean cluster: every intended path open,
 * and job → db (denied) timing out towards an address app has seen alive.
 */
static void clean_fleet(env_t *e, int n)
{
	char id[32], addr[32];
	int i;

	for (i = 0; i < n; i++) {
		snprintf(id, sizeof(id), "web-%d", i);
		snprintf(addr, sizeof(addr), "198.18.1.%d", i % 250);
		ingest_one(e, id, "web", addr, "app", "198.18.0.11", 8000, VERDICT_STATE_OPEN);
		snprintf(id, sizeof(id), "app-%d", i);
		ingest_one(e, id, "app", addr, "db", "198.18.0.13", 5432, VERDICT_STATE_OPEN);
		snprintf(id, sizeof(id), "job-%d", i);
		ingest_one(e, id, "job", addr, "db", "198.18.0.13", 5432, VERDICT_STATE_FILTERED);
	}
}

static void env_init(env_t *e)
{
	char err[MATRIX_ERR_MAX];
	state_limits_t lim = {0};

	memset(e, 0, sizeof(*e));
	assert_int_equal(uv_loop_init(&e->loop), 0);
	e->m = matrix_parse(MATRIX, strlen(MATRIX), err, sizeof(err));
	if (!e->m)
		fail_msg("matrix: %s", err);
	lim.max_agents = 100000;
	lim.max_observations = 1000000;
	lim.retention_ms = 3600000;
	e->s = state_new(e->m, &lim);
	assert_non_null(e->s);
	e->log = tmpfile();
	assert_non_null(e->log);
	log_init(&e->lg, e->log, LOG_LEVEL_DEBUG, "test");
}

static void on_stopped(void *arg)
{
	((env_t *)arg)->stopped = true;
}

static void on_deadline(uv_timer_t *t)
{
	*(bool *)t->data = true;
}

/* Runs the loop until `done(e)` or `ms` have passed. Returns done(e). */
static bool run_until(env_t *e, bool (*done)(env_t *), unsigned ms)
{
	uv_timer_t t;
	bool late = false;

	uv_timer_init(&e->loop, &t);
	t.data = &late;
	uv_timer_start(&t, on_deadline, ms, 0);
	while (!done(e) && !late)
		uv_run(&e->loop, UV_RUN_ONCE);
	uv_close((uv_handle_t *)&t, NULL);
	uv_run(&e->loop, UV_RUN_NOWAIT);
	return done(e);
}

static bool is_stopped(env_t *e)
{
	return e->stopped;
}

/* Stops the publisher (if any), closes the fake, and checks that the loop ends clean. */
static void env_finish(env_t *e, fake_t *f)
{
	if (e->p) {
		publisher_stop(e->p, 2000, on_stopped, e);
		assert_true(run_until(e, is_stopped, 5000));
	}
	if (f)
		fake_close(f);
	uv_run(&e->loop, UV_RUN_DEFAULT);
	if (f)
		fake_free(f);
	assert_int_equal(uv_loop_close(&e->loop), 0);
	state_free(e->s);
	matrix_free(e->m);
	fclose(e->log);
}

/* The whole log, for greps. The caller frees it. */
static char *log_text(env_t *e)
{
	long n;
	char *s;

	fflush(e->log);
	n = ftell(e->log);
	s = calloc(1, (size_t)n + 1);
	assert_non_null(s);
	rewind(e->log);
	assert_int_equal(fread(s, 1, (size_t)n, e->log), (size_t)n);
	return s;
}

/* ---- the metrics of a flush ---- */

static size_t count_datums(env_t *e, cw_datum_t **d)
{
	state_clusters_t *c = state_clusters(e->s, 1000);
	size_t n;

	assert_non_null(c);
	assert_int_equal(publisher_datums(c, WALL, d, &n, NULL), 0);
	state_clusters_free(c);
	return n;
}

static void free_datums(cw_datum_t *d, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		cw_datum_dispose(&d[i]);
	free(d);
}

static const cw_datum_t *find(const cw_datum_t *d, size_t n, const char *name, size_t n_dims,
                              const char *dim1)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!strcmp(d[i].name, name) && d[i].n_dims == n_dims &&
		    (!dim1 || (n_dims > 1 && !strcmp(d[i].dims[1].value, dim1))))
			return &d[i];
	return NULL;
}

static void test_clean_cluster_metrics_do_not_grow_with_the_fleet(void **unused)
{
	static const int sizes[] = {1, 10, 200};
	cw_datum_t *d;
	size_t n, k;
	env_t e;

	(void)unused;
	for (k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		env_init(&e);
		clean_fleet(&e, sizes[k]);
		n = count_datums(&e, &d);
		assert_int_equal(n, CLEAN);
		/* The totals first, with [Cluster]. */
		assert_string_equal(d[0].name, "UnexpectedOpenPaths");
		assert_int_equal(d[0].n_dims, 1);
		assert_string_equal(d[0].dims[0].name, "Cluster");
		assert_string_equal(d[0].dims[0].value, "c1");
		assert_true(d[0].value == 0);
		assert_string_equal(d[0].unit, "Count");
		assert_int_equal(d[0].timestamp_ms, WALL);
		assert_true(find(d, n, "ReportingAgents", 1, NULL)->value ==
		            (double)(AGENT_ROLES * sizes[k]));
		assert_true(find(d, n, "StaleAgents", 1, NULL)->value == 0);
		/* Then two per agent role, with [Cluster, SourceRole]. */
		assert_non_null(find(d, n, "ReportingAgents", 2, "job"));
		assert_string_equal(find(d, n, "ReportingAgents", 2, "web")->dims[1].name,
		                    "SourceRole");
		assert_true(find(d, n, "ReportingAgents", 2, "web")->value == (double)sizes[k]);
		assert_true(find(d, n, "StaleAgents", 2, "app")->value == 0);
		free_datums(d, n);
		env_finish(&e, NULL);
	}
}

static void test_a_violating_cell_adds_one_metric_with_four_dimensions(void **unused)
{
	const cw_datum_t *cell;
	cw_datum_t *d;
	size_t n;
	env_t e;

	(void)unused;
	env_init(&e);
	clean_fleet(&e, 5);
	/* job → db:5432 answered: denied, yet the SYN crossed. */
	ingest_one(&e, "job-x", "job", "198.18.2.1", "db", "198.18.0.13", 5432, VERDICT_STATE_OPEN);
	/* web → app:8000 filtered for one agent: the cell is blocked (worst of). */
	ingest_one(&e, "web-x", "web", "198.18.2.2", "app", "198.18.0.11", 8000,
	           VERDICT_STATE_FILTERED);
	n = count_datums(&e, &d);
	assert_int_equal(n, CLEAN + 2);
	assert_true(find(d, n, "UnexpectedOpenPaths", 1, NULL)->value == 1);
	assert_true(find(d, n, "BlockedPaths", 1, NULL)->value == 1);
	cell = find(d, n, "UnexpectedOpenPaths", 4, "job");
	assert_non_null(cell);
	assert_true(cell->value == 1);
	assert_string_equal(cell->dims[0].name, "Cluster");
	assert_string_equal(cell->dims[1].name, "SourceRole");
	assert_string_equal(cell->dims[2].name, "DestinationRole");
	assert_string_equal(cell->dims[2].value, "db");
	assert_string_equal(cell->dims[3].name, "Port");
	assert_string_equal(cell->dims[3].value, "5432");
	cell = find(d, n, "BlockedPaths", 4, "web");
	assert_non_null(cell);
	assert_string_equal(cell->dims[2].value, "app");
	assert_string_equal(cell->dims[3].value, "8000");
	free_datums(d, n);
	env_finish(&e, NULL);
}

static void test_no_agents_no_metrics(void **unused)
{
	cw_datum_t *d;
	env_t e;

	(void)unused;
	env_init(&e);
	assert_int_equal(count_datums(&e, &d), 0);
	free(d);
	env_finish(&e, NULL);
}

static void test_a_cluster_cloudwatch_cannot_name_is_left_out_alone(void **unused)
{
	state_clusters_t *c = calloc(1, sizeof(*c));
	cw_datum_t *d;
	size_t n, skipped;

	(void)unused;
	/* Two clusters; the first has a name no dimension value may have (empty). */
	assert_non_null(c);
	c->v = calloc(2, sizeof(*c->v));
	assert_non_null(c->v);
	c->n = 2;
	c->v[0].name = strdup("");
	c->v[1].name = strdup("c2");
	c->v[1].counts.agents_live = 4;
	assert_int_equal(publisher_datums(c, WALL, &d, &n, &skipped), 0);
	assert_int_equal(skipped, 1);
	assert_int_equal(n, 8);
	assert_string_equal(d[7].name, "ReportingAgents");
	assert_string_equal(d[7].dims[0].value, "c2");
	assert_true(d[7].value == 4);
	free_datums(d, n);
	state_clusters_free(c);
}

/* ---- EMF ---- */

static void test_emf_one_line_per_dimension_set_on_its_stream(void **unused)
{
	publish_config_t cfg = {0};
	char err[256], line[4096];
	FILE *out = tmpfile();
	publish_counters_t c;
	int lines = 0, cells = 0;
	env_t e;

	(void)unused;
	assert_non_null(out);
	env_init(&e);
	clean_fleet(&e, 3);
	ingest_one(&e, "job-x", "job", "198.18.2.1", "db", "198.18.0.13", 5432, VERDICT_STATE_OPEN);
	cfg.sink = PUBLISH_SINK_EMF;
	cfg.ns = "Test";
	cfg.flush_interval_s = 3600;
	cfg.emf_out = out;
	e.p = publisher_new(&e.loop, &cfg, &e.lg, source, &e, err, sizeof(err));
	assert_non_null(e.p);
	assert_int_equal(publisher_start(e.p, err, sizeof(err)), 0);
	publisher_flush(e.p);
	rewind(out);
	while (fgets(line, sizeof(line), out)) {
		cJSON *o = cJSON_Parse(line);
		cJSON *dir;

		assert_non_null(o);
		dir = cJSON_GetArrayItem(
		    cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(o, "_aws"),
		                                     "CloudWatchMetrics"),
		    0);
		assert_string_equal(cJSON_GetObjectItemCaseSensitive(dir, "Namespace")->valuestring,
		                    "Test");
		assert_true(cJSON_GetObjectItemCaseSensitive(
		                cJSON_GetObjectItemCaseSensitive(o, "_aws"), "Timestamp")
		                ->valuedouble == (double)WALL);
		if (cJSON_GetObjectItemCaseSensitive(o, "Port")) {
			cells++;
			assert_string_equal(
			    cJSON_GetObjectItemCaseSensitive(o, "DestinationRole")->valuestring,
			    "db");
			assert_true(cJSON_GetObjectItemCaseSensitive(o, "UnexpectedOpenPaths")
			                ->valuedouble == 1);
		}
		lines++;
		cJSON_Delete(o);
	}
	/* The totals, one line per agent role, one per cell. */
	assert_int_equal(lines, 1 + AGENT_ROLES + 1);
	assert_int_equal(cells, 1);
	publisher_counters(e.p, &c);
	assert_int_equal(c.emf_lines, (uint64_t)lines);
	assert_int_equal(c.flushes, 1);
	env_finish(&e, NULL);
	fclose(out);
}

/* ---- CloudWatch against a scripted server ---- */

#define THROTTLED                                                                                  \
	"<ErrorResponse xmlns=\"http://monitoring.amazonaws.com/doc/2010-08-01/\"><Error>"         \
	"<Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error>"       \
	"<RequestId>1</RequestId></ErrorResponse>"
#define INVALID                                                                                    \
	"<ErrorResponse xmlns=\"http://monitoring.amazonaws.com/doc/2010-08-01/\"><Error>"         \
	"<Type>Sender</Type><Code>InvalidParameterValue</Code><Message>The value ß for "          \
	"parameter MetricData.member.1.Value is invalid.</Message></Error></ErrorResponse>"
#define OK_XML "<PutMetricDataResponse><ResponseMetadata/></PutMetricDataResponse>"

/* The session token set_env_credentials() gives; a test may set a longer one. */
static const char *session_token = "pub-session-token";

static void set_env_credentials(void)
{
	unsetenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
	unsetenv("AWS_CONTAINER_CREDENTIALS_FULL_URI");
	setenv("AWS_ACCESS_KEY_ID", "AKIDPUBTEST", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "pub-secret-never-logged", 1);
	setenv("AWS_SESSION_TOKEN", session_token, 1);
}

static void start_cloudwatch(env_t *e, int port, size_t max_buffered)
{
	publish_config_t cfg = {0};
	char err[256], url[64];

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", port);
	cfg.sink = PUBLISH_SINK_CLOUDWATCH;
	cfg.ns = "Test";
	cfg.region = "us-east-1";
	cfg.endpoint = url;
	cfg.flush_interval_s = 3600;
	cfg.max_buffered = max_buffered;
	cfg.retry_base_ms = 20;
	cfg.retry_max_ms = 100;
	cfg.timeout_ms = 2000;
	set_env_credentials();
	e->p = publisher_new(&e->loop, &cfg, &e->lg, source, e, err, sizeof(err));
	if (!e->p)
		fail_msg("publisher_new: %s", err);
	if (publisher_start(e->p, err, sizeof(err)))
		fail_msg("publisher_start: %s", err);
}

static uint64_t target;
static bool sent_enough(env_t *e)
{
	publish_counters_t c;

	publisher_counters(e->p, &c);
	return c.metrics_sent >= target;
}

/* The form inside a gzip body. The caller frees it. */
static char *gunzip(const char *body, size_t len)
{
	char *out = calloc(1, CW_MAX_CALL_BYTES + 1);
	z_stream z;

	assert_non_null(out);
	memset(&z, 0, sizeof(z));
	assert_int_equal(inflateInit2(&z, 16 + MAX_WBITS), Z_OK);
	z.next_in = (Bytef *)(uintptr_t)body;
	z.avail_in = (uInt)len;
	z.next_out = (Bytef *)out;
	z.avail_out = CW_MAX_CALL_BYTES;
	assert_int_equal(inflate(&z, Z_FINISH), Z_STREAM_END);
	inflateEnd(&z);
	return out;
}

static void test_cloudwatch_signed_gzip_and_retried_after_throttling(void **unused)
{
	static const fake_answer_t script[] = {
	    {400, "Content-Type: text/xml\r\n", THROTTLED, 0},
	    {200, "Content-Type: text/xml\r\n", OK_XML, 0},
	};
	publish_counters_t c;
	char *form, *log;
	fake_t f;
	env_t e;

	(void)unused;
	env_init(&e);
	clean_fleet(&e, 2);
	fake_start(&f, &e.loop, script, 2);
	start_cloudwatch(&e, f.port, 1000);
	publisher_flush(e.p);
	target = CLEAN;
	assert_true(run_until(&e, sent_enough, 5000));
	publisher_counters(e.p, &c);
	assert_int_equal(c.calls, 2);
	assert_int_equal(c.calls_ok, 1);
	assert_int_equal(c.throttles, 1);
	assert_int_equal(c.retries, 1);
	assert_int_equal(c.metrics_sent, CLEAN);
	assert_int_equal(c.buffered, 0);
	assert_int_equal(f.n_reqs, 2);
	/* SigV4 for monitoring, the session token signed. */
	assert_true(!strncmp(f.reqs[1].auth, "AWS4-HMAC-SHA256 Credential=AKIDPUBTEST/", 40));
	assert_non_null(strstr(f.reqs[1].auth, "/us-east-1/monitoring/aws4_request, "));
	assert_non_null(strstr(f.reqs[1].auth, "SignedHeaders=content-encoding;content-type;host;"
	                                       "x-amz-date;x-amz-security-token, Signature="));
	/* The retry carries the same metrics. */
	form = gunzip(f.reqs[1].body, f.reqs[1].len);
	assert_true(!strncmp(form, "Action=PutMetricData&Version=2010-08-01&Namespace=Test&", 54));
	assert_non_null(strstr(form, "MetricData.member.14.MetricName="));
	assert_null(strstr(form, "MetricData.member.15."));
	free(form);
	/* CloudWatch's code and message are in the log; no secret is. */
	log = log_text(&e);
	assert_non_null(strstr(log, "\"code\":\"Throttling\""));
	assert_non_null(strstr(log, "\"message\":\"Rate exceeded\""));
	assert_null(strstr(log, "pub-secret-never-logged"));
	assert_null(strstr(log, "pub-session-token"));
	free(log);
	env_finish(&e, &f);
}

static bool never(env_t *e)
{
	(void)e;
	return false;
}

static void test_cloudwatch_flush_without_agents_sends_nothing(void **unused)
{
	static const fake_answer_t script[] = {{200, "Content-Type: text/xml\r\n", OK_XML, 0}};
	publish_counters_t c;
	fake_t f;
	env_t e;

	(void)unused;
	env_init(&e);
	fake_start(&f, &e.loop, script, 1);
	start_cloudwatch(&e, f.port, 1000);
	/* Before any agent has reported: nothing to say, and no empty call. */
	publisher_flush(e.p);
	publisher_flush(e.p);
	run_until(&e, never, 200);
	publisher_counters(e.p, &c);
	assert_int_equal(c.flushes, 2);
	assert_int_equal(c.metrics, 0);
	assert_int_equal(c.calls, 0);
	assert_int_equal(c.buffered, 0);
	assert_int_equal(f.n_reqs, 0);
	env_finish(&e, &f);
}

#define UNAVAILABLE                                                                                \
	"<ErrorResponse><Error><Type>Receiver</Type><Code>ServiceUnavailable</Code>"               \
	"<Message>Service is unavailable</Message></Error></ErrorResponse>"
#define EXPIRED                                                                                    \
	"<ErrorResponse><Error><Type>Sender</Type><Code>ExpiredToken</Code>"                       \
	"<Message>The security token included in the request is expired</Message></Error>"         \
	"</ErrorResponse>"
/* AWS quotes the canonical request it expected, session token included. */
#define MISMATCH                                                                                   \
	"<ErrorResponse><Error><Type>Sender</Type><Code>SignatureDoesNotMatch</Code><Message>The " \
	"request signature we calculated does not match the signature you provided.\n\nThe "       \
	"Canonical String for this request should have been\n'POST\n/\n\nhost:127.0.0.1\n"         \
	"x-amz-security-token:pub-session-token\n'</Message></Error></ErrorResponse>"

/* Flushes a clean fleet once into a server answering `script`; returns the counters once
 * CLEAN values are delivered (or after 5 s). */
static publish_counters_t deliver(env_t *e, fake_t *f, const fake_answer_t *script, size_t n)
{
	publish_counters_t c;

	env_init(e);
	clean_fleet(e, 1);
	fake_start(f, &e->loop, script, n);
	start_cloudwatch(e, f->port, 1000);
	publisher_flush(e->p);
	target = CLEAN;
	run_until(e, sent_enough, 5000);
	publisher_counters(e->p, &c);
	return c;
}

static void test_cloudwatch_5xx_retried(void **unused)
{
	static const fake_answer_t script[] = {
	    {503, "Content-Type: text/xml\r\n", UNAVAILABLE, 0},
	    {200, "Content-Type: text/xml\r\n", OK_XML, 0},
	};
	publish_counters_t c;
	fake_t f;
	env_t e;

	(void)unused;
	c = deliver(&e, &f, script, 2);
	assert_int_equal(c.metrics_sent, CLEAN);
	assert_int_equal(c.calls, 2);
	assert_int_equal(c.errors, 1);
	assert_int_equal(c.retries, 1);
	assert_int_equal(c.dropped_rejected, 0);
	env_finish(&e, &f);
}

static void test_cloudwatch_expired_token_keeps_the_data(void **unused)
{
	static const fake_answer_t script[] = {
	    {400, "Content-Type: text/xml\r\n", EXPIRED, 0},
	    {200, "Content-Type: text/xml\r\n", OK_XML, 0},
	};
	publish_counters_t c;
	char *log;
	fake_t f;
	env_t e;

	(void)unused;
	/* A 400, but about the credentials: the data is not at fault. */
	c = deliver(&e, &f, script, 2);
	assert_int_equal(c.metrics_sent, CLEAN);
	assert_int_equal(c.dropped_rejected, 0);
	assert_int_equal(c.retries, 1);
	log = log_text(&e);
	assert_non_null(strstr(log, "\"code\":\"ExpiredToken\""));
	free(log);
	env_finish(&e, &f);
}

static void test_cloudwatch_error_message_never_shows_credentials(void **unused)
{
	static const fake_answer_t script[] = {
	    {403, "Content-Type: text/xml\r\n", MISMATCH, 0},
	    {200, "Content-Type: text/xml\r\n", OK_XML, 0},
	};
	publish_counters_t c;
	char *log;
	fake_t f;
	env_t e;

	(void)unused;
	c = deliver(&e, &f, script, 2);
	assert_int_equal(c.metrics_sent, CLEAN);
	log = log_text(&e);
	assert_non_null(strstr(log, "\"code\":\"SignatureDoesNotMatch\""));
	assert_non_null(strstr(log, "does not match the signature you provided."));
	assert_null(strstr(log, "pub-session-token"));
	assert_null(strstr(log, "pub-secret"));
	free(log);
	env_finish(&e, &f);
}

static void test_cloudwatch_long_session_token(void **unused)
{
	static const fake_answer_t script[] = {{200, "Content-Type: text/xml\r\n", OK_XML, 0}};
	static char token[6001];
	publish_counters_t c;
	fake_t f;
	env_t e;

	(void)unused;
	/* STS sets no size for a token: a few kilobytes must go out like any other. */
	memset(token, 'T', sizeof(token) - 1);
	session_token = token;
	c = deliver(&e, &f, script, 1);
	session_token = "pub-session-token";
	assert_int_equal(c.metrics_sent, CLEAN);
	assert_int_equal(c.errors, 0);
	assert_int_equal(f.n_reqs, 1);
	env_finish(&e, &f);
}

static bool dropped_some(env_t *e)
{
	publish_counters_t c;

	publisher_counters(e->p, &c);
	return c.dropped_rejected > 0;
}

static void test_cloudwatch_refusal_drops_and_logs(void **unused)
{
	static const fake_answer_t script[] = {{400, "Content-Type: text/xml\r\n", INVALID, 0}};
	publish_counters_t c;
	fake_t f;
	env_t e;
	char *log;

	(void)unused;
	env_init(&e);
	clean_fleet(&e, 1);
	fake_start(&f, &e.loop, script, 1);
	start_cloudwatch(&e, f.port, 1000);
	publisher_flush(e.p);
	assert_true(run_until(&e, dropped_some, 5000));
	publisher_counters(e.p, &c);
	assert_int_equal(c.calls, 1);
	assert_int_equal(c.dropped_rejected, CLEAN);
	assert_int_equal(c.retries, 0);
	assert_int_equal(c.buffered, 0);
	log = log_text(&e);
	assert_non_null(strstr(log, "\"code\":\"InvalidParameterValue\""));
	free(log);
	env_finish(&e, &f);
}

static void test_cloudwatch_away_buffer_bounded_then_delivered_at_stop(void **unused)
{
	size_t delivered;
	char *log;
	static const fake_answer_t script[] = {{200, "Content-Type: text/xml\r\n", OK_XML, 0}};
	publish_counters_t c;
	int port = free_port();
	fake_t f;
	env_t e;
	int i;

	(void)unused;
	env_init(&e);
	clean_fleet(&e, 1);
	/* Nothing listens on the port: every call fails to connect. */
	start_cloudwatch(&e, port, 2 * CLEAN + 3);
	for (i = 0; i < 4; i++) {
		publisher_flush(e.p);
		uv_run(&e.loop, UV_RUN_NOWAIT);
	}
	publisher_counters(e.p, &c);
	assert_int_equal(c.metrics, 4 * CLEAN);
	assert_true(c.buffered <= 2 * CLEAN + 3);
	assert_int_equal(c.buffered + c.dropped_full, 4 * CLEAN);
	assert_true(c.errors >= 1);
	assert_int_equal(c.metrics_sent, 0);
	/* CloudWatch comes back on that port: the stop's last flush delivers everything. */
	fake_start_on(&f, &e.loop, script, 1, port);
	publisher_stop(e.p, 3000, on_stopped, &e);
	assert_true(run_until(&e, is_stopped, 6000));
	e.p = NULL;
	/* Everything the bounded buffer held, the stop's own flush included (the
	 * oldest beyond the bound dropped), reached CloudWatch before the deadline. */
	delivered = 0;
	for (i = 0; i < f.n_reqs; i++) {
		char *form = gunzip(f.reqs[i].body, f.reqs[i].len);
		const char *at;

		for (at = strstr(form, ".MetricName="); at; at = strstr(at + 1, ".MetricName="))
			delivered++;
		free(form);
	}
	assert_int_equal(delivered, 2 * CLEAN + 3);
	log = log_text(&e);
	assert_null(strstr(log, "stop deadline"));
	free(log);
	env_finish(&e, &f);
}

static void test_stop_deadline_when_cloudwatch_stays_away(void **unused)
{
	char *log;
	env_t e;

	(void)unused;
	env_init(&e);
	clean_fleet(&e, 1);
	start_cloudwatch(&e, free_port(), 1000);
	publisher_stop(e.p, 300, on_stopped, &e);
	assert_true(run_until(&e, is_stopped, 3000));
	e.p = NULL;
	log = log_text(&e);
	assert_non_null(strstr(log, "\"msg\":\"stop deadline: metrics left unsent\""));
	free(log);
	env_finish(&e, NULL);
}

static void test_config_errors_name_the_flag(void **unused)
{
	publish_config_t cfg = {0};
	char err[256];
	publish_sink_t sink;
	env_t e;

	(void)unused;
	env_init(&e);
	cfg.sink = PUBLISH_SINK_CLOUDWATCH;
	assert_null(publisher_new(&e.loop, &cfg, &e.lg, source, &e, err, sizeof(err)));
	assert_non_null(strstr(err, "--region"));
	cfg.region = "us-east-1";
	cfg.endpoint = "ftp://127.0.0.1/";
	assert_null(publisher_new(&e.loop, &cfg, &e.lg, source, &e, err, sizeof(err)));
	assert_non_null(strstr(err, "--cloudwatch-endpoint"));
	/* A namespace CloudWatch would refuse on every call is refused at start. */
	cfg.sink = PUBLISH_SINK_EMF;
	cfg.endpoint = NULL;
	cfg.ns = "";
	assert_null(publisher_new(&e.loop, &cfg, &e.lg, source, &e, err, sizeof(err)));
	assert_string_equal(err, "--namespace: '' must be 1 to 255 characters");
	cfg.ns = "AWS/EC2";
	assert_null(publisher_new(&e.loop, &cfg, &e.lg, source, &e, err, sizeof(err)));
	assert_string_equal(err, "--namespace: 'AWS/EC2': AWS/ is reserved for AWS's own metrics");
	assert_int_equal(publisher_sink_parse("cloudwatch", &sink), 0);
	assert_int_equal(sink, PUBLISH_SINK_CLOUDWATCH);
	assert_int_equal(publisher_sink_parse("emf", &sink), 0);
	assert_int_equal(sink, PUBLISH_SINK_EMF);
	assert_int_equal(publisher_sink_parse("stdout", &sink), -EINVAL);
	env_finish(&e, NULL);
}

static void test_prometheus_counters(void **unused)
{
	publish_config_t cfg = {0};
	char err[256];
	char *text;
	env_t e;

	(void)unused;
	env_init(&e);
	cfg.sink = PUBLISH_SINK_NONE;
	e.p = publisher_new(&e.loop, &cfg, &e.lg, source, &e, err, sizeof(err));
	assert_non_null(e.p);
	publisher_flush(e.p);
	text = publisher_prometheus(e.p);
	assert_non_null(text);
	assert_non_null(strstr(text, "sgprobe_publish_flushes_total{sink=\"none\"} 1\n"));
	assert_non_null(strstr(text, "# TYPE sgprobe_publish_buffered_metrics gauge\n"));
	assert_non_null(strstr(text, "sgprobe_publish_calls_total{result=\"throttled\"} 0\n"));
	assert_non_null(
	    strstr(text, "sgprobe_publish_dropped_metrics_total{reason=\"buffer_full\"}"));
	free(text);
	env_finish(&e, NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_clean_cluster_metrics_do_not_grow_with_the_fleet),
	    cmocka_unit_test(test_a_violating_cell_adds_one_metric_with_four_dimensions),
	    cmocka_unit_test(test_no_agents_no_metrics),
	    cmocka_unit_test(test_a_cluster_cloudwatch_cannot_name_is_left_out_alone),
	    cmocka_unit_test(test_emf_one_line_per_dimension_set_on_its_stream),
	    cmocka_unit_test(test_cloudwatch_signed_gzip_and_retried_after_throttling),
	    cmocka_unit_test(test_cloudwatch_flush_without_agents_sends_nothing),
	    cmocka_unit_test(test_cloudwatch_refusal_drops_and_logs),
	    cmocka_unit_test(test_cloudwatch_5xx_retried),
	    cmocka_unit_test(test_cloudwatch_expired_token_keeps_the_data),
	    cmocka_unit_test(test_cloudwatch_error_message_never_shows_credentials),
	    cmocka_unit_test(test_cloudwatch_long_session_token),
	    cmocka_unit_test(test_cloudwatch_away_buffer_bounded_then_delivered_at_stop),
	    cmocka_unit_test(test_stop_deadline_when_cloudwatch_stays_away),
	    cmocka_unit_test(test_config_errors_name_the_flag),
	    cmocka_unit_test(test_prometheus_counters),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
