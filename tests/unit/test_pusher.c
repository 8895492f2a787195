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
#include "sgprobe/report.h"

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

#define T0 "2026-01-01T00:00:00.000Z"

/* ---- a tiny HTTP/1.1 server on the test's loop, for the answers the collector never gives ---- */

#define FAKE_MAX_REQS 64

/* One scripted answer. */
typedef struct {
	int status;
	const char *headers; /* extra header lines, each ending in \r\n; may be NULL */
	const char *body;    /* may be NULL */
	unsigned delay_ms;   /* before answering */
} fake_answer_t;

/* One request as received. */
typedef struct {
	char auth[512];   /* the Authorization header's value, "" when none */
	char cookie[256]; /* the Cookie header's value, "" when none */
	char *body;       /* NUL-terminated copy */
	size_t len;
	uint64_t at; /* uv_now() when it was complete */
} fake_req_t;

typedef struct fake_conn_s fake_conn_t;

typedef struct {
	uv_tcp_t tcp;
	uv_loop_t *loop;
	int port;
	const fake_answer_t *script; /* request i gets script[min(i, n_script - 1)] */
	size_t n_script;
	fake_req_t reqs[FAKE_MAX_REQS];
	int n_reqs;
	unsigned pending;     /* requests received and not answered */
	unsigned max_pending; /* the most at once */
	fake_conn_t *conns;
} fake_t;

struct fake_conn_s {
	uv_tcp_t tcp;
	uv_timer_t timer;
	uv_write_t wr;
	fake_t *f;
	fake_conn_t *next;
	char *in;
	size_t in_len;
	size_t in_cap;
	char *out;
	bool got;      /* a whole request was received */
	bool answered; /* its answer was written */
	bool closing;
	int open_handles;
	size_t answer;
};

static void fake_conn_release(fake_conn_t *c)
{
	if (--c->open_handles > 0)
		return;
	free(c->in);
	free(c->out);
	free(c);
}

static void fake_on_tcp_closed(uv_handle_t *h)
{
	fake_conn_release(container_of((uv_tcp_t *)h, fake_conn_t, tcp));
}

static void fake_on_timer_closed(uv_handle_t *h)
{
	fake_conn_release(container_of((uv_timer_t *)h, fake_conn_t, timer));
}

static void fake_conn_close(fake_conn_t *c)
{
	fake_conn_t **pp;

	if (c->closing)
		return;
	c->closing = true;
	if (c->got && !c->answered)
		c->f->pending--;
	for (pp = &c->f->conns; *pp; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	}
	uv_close((uv_handle_t *)&c->timer, fake_on_timer_closed);
	uv_close((uv_handle_t *)&c->tcp, fake_on_tcp_closed);
}

static void fake_on_written(uv_write_t *wr, int status)
{
	fake_conn_t *c = container_of(wr, fake_conn_t, wr);

	(void)status;
	fake_conn_close(c);
}

static void fake_answer(fake_conn_t *c)
{
	const fake_answer_t *a = &c->f->script[c->answer];
	const char *body = a->body ? a->body : "";
	size_t cap = strlen(body) + (a->headers ? strlen(a->headers) : 0) + 256;
	uv_buf_t buf;

	c->out = malloc(cap);
	assert_non_null(c->out);
	snprintf(c->out, cap,
	         "HTTP/1.1 %d Scripted\r\nContent-Type: application/json\r\n"
	         "Content-Length: %zu\r\nConnection: close\r\n%s\r\n%s",
	         a->status, strlen(body), a->headers ? a->headers : "", body);
	c->answered = true;
	c->f->pending--;
	buf = uv_buf_init(c->out, (unsigned)strlen(c->out));
	if (uv_write(&c->wr, (uv_stream_t *)&c->tcp, &buf, 1, fake_on_written))
		fake_conn_close(c);
}

static void fake_on_delay(uv_timer_t *t)
{
	fake_answer(container_of(t, fake_conn_t, timer));
}

/* Copies a header's value (case-insensitive name) into out; "" when absent. */
static void fake_header(const char *head, const char *name, char *out, size_t outlen)
{
	char pat[64];
	const char *v, *end;

	out[0] = '\0';
	snprintf(pat, sizeof(pat), "\r\n%s:", name);
	v = strcasestr(head, pat);
	if (!v)
		return;
	v += strlen(pat);
	while (*v == ' ')
		v++;
	end = strstr(v, "\r\n");
	if (!end)
		return;
	snprintf(out, outlen, "%.*s", (int)(end - v), v);
}

/* A whole request in c->in? Then record it and answer, now or after the delay. */
static void fake_parse(fake_conn_t *c)
{
	fake_t *f = c->f;
	char *end, value[32];
	size_t head_len, clen;
	fake_req_t *r;

	if (c->got)
		return;
	c->in[c->in_len] = '\0';
	end = strstr(c->in, "\r\n\r\n");
	if (!end)
		return;
	head_len = (size_t)(end - c->in) + 4;
	/* The header lines, each ending in \r\n, as one string. */
	end[2] = '\0';
	fake_header(c->in, "content-length", value, sizeof(value));
	end[2] = '\r';
	clen = value[0] ? (size_t)strtoul(value, NULL, 10) : 0;
	if (c->in_len < head_len + clen)
		return;
	c->got = true;
	assert_true(f->n_reqs < FAKE_MAX_REQS);
	r = &f->reqs[f->n_reqs];
	end[2] = '\0';
	fake_header(c->in, "authorization", r->auth, sizeof(r->auth));
	fake_header(c->in, "cookie", r->cookie, sizeof(r->cookie));
	r->body = malloc(clen + 1);
	assert_non_null(r->body);
	memcpy(r->body, c->in + head_len, clen);
	r->body[clen] = '\0';
	r->len = clen;
	r->at = uv_now(f->loop);
	c->answer = (size_t)f->n_reqs < f->n_script ? (size_t)f->n_reqs : f->n_script - 1;
	f->n_reqs++;
	if (++f->pending > f->max_pending)
		f->max_pending = f->pending;
	if (f->script[c->answer].delay_ms)
		uv_timer_start(&c->timer, fake_on_delay, f->script[c->answer].delay_ms, 0);
	else
		fake_answer(c);
}

static void fake_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	fake_conn_t *c = container_of((uv_tcp_t *)h, fake_conn_t, tcp);

	(void)hint;
	if (c->in_cap - c->in_len < 65536 + 1) {
		c->in_cap = c->in_cap * 2 + 65536 + 1;
		c->in = realloc(c->in, c->in_cap);
		assert_non_null(c->in);
	}
	*buf = uv_buf_init(c->in + c->in_len, (unsigned)(c->in_cap - c->in_len - 1));
}

static void fake_on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	fake_conn_t *c = container_of((uv_tcp_t *)s, fake_conn_t, tcp);

	(void)buf;
	if (n < 0) {
		/* The client went away (a cancelled or timed-out request). */
		fake_conn_close(c);
		return;
	}
	c->in_len += (size_t)n;
	fake_parse(c);
}

static void fake_on_connection(uv_stream_t *server, int status)
{
	fake_t *f = container_of((uv_tcp_t *)server, fake_t, tcp);
	fake_conn_t *c;

	assert_int_equal(status, 0);
	c = calloc(1, sizeof(*c));
	assert_non_null(c);
	c->f = f;
	uv_tcp_init(f->loop, &c->tcp);
	uv_timer_init(f->loop, &c->timer);
	c->open_handles = 2;
	c->next = f->conns;
	f->conns = c;
	assert_int_equal(uv_accept(server, (uv_stream_t *)&c->tcp), 0);
	assert_int_equal(uv_read_start((uv_stream_t *)&c->tcp, fake_alloc, fake_on_read), 0);
}

/* Listens on a free port of 127.0.0.1. */
static void fake_start(fake_t *f, uv_loop_t *loop, const fake_answer_t *script, size_t n)
{
	struct sockaddr_in sin;
	struct sockaddr_storage ss;
	int len = sizeof(ss);

	memset(f, 0, sizeof(*f));
	f->loop = loop;
	f->script = script;
	f->n_script = n;
	assert_int_equal(uv_tcp_init(loop, &f->tcp), 0);
	assert_int_equal(uv_ip4_addr("127.0.0.1", 0, &sin), 0);
	assert_int_equal(uv_tcp_bind(&f->tcp, (const struct sockaddr *)&sin, 0), 0);
	assert_int_equal(uv_listen((uv_stream_t *)&f->tcp, 16, fake_on_connection), 0);
	assert_int_equal(uv_tcp_getsockname(&f->tcp, (struct sockaddr *)&ss, &len), 0);
	f->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

/* Closes the listener and every connection; the requests stay readable. */
static void fake_close(fake_t *f)
{
	while (f->conns)
		fake_conn_close(f->conns);
	uv_close((uv_handle_t *)&f->tcp, NULL);
}

/* Frees the recorded requests (after the loop has run the closes). */
static void fake_free(fake_t *f)
{
	int i;

	for (i = 0; i < f->n_reqs; i++)
		free(f->reqs[i].body);
	f->n_reqs = 0;
}
/* ---- a real sgprobe-collector on loopback ---- */

/* A small matrix and the web agents' key, written to the test's folder. */
#define MATRIX_JSON                                                                                \
	"{ \"version\": 1, \"name\": \"loop\",\n"                                                  \
	"  \"probe\": { \"ports\": [5432], \"interval_s\": 60, \"timeout_ms\": 300 },\n"           \
	"  \"roles\": {\n"                                                                         \
	"    \"web\": { \"endpoints\": [\"127.0.0.11\"], \"ports\": [80], \"agent\": true },\n"    \
	"    \"api\": { \"endpoints\": [\"127.0.0.12\"], \"ports\": [8000], \"agent\": true } "    \
	"},\n"                                                                                     \
	"  \"allow\": [ { \"from\": \"web\", \"to\": \"api\", \"ports\": [8000] } ] }\n"
#define KEY_ID     "web-1"
#define KEY_SECRET "web-secret"
#define KEYS_JSON                                                                                  \
	"{ \"keys\": [ { \"id\": \"" KEY_ID "\", \"secret\": \"" KEY_SECRET                        \
	"\", \"roles\": [\"web\"] } ] }\n"

typedef struct {
	char dir[64];   /* the test's temporary folder */
	char exe[1024]; /* build/sgprobe-collector */
	pid_t pid;
	int port;  /* agents' listener */
	int admin; /* admin listener */
	bool tls;  /* serve the agents' listener with dir/tls.pem */
} coll_t;

/* A port of 127.0.0.1 that was free a moment ago. */
static int free_port(void)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	assert_true(fd >= 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	port = ntohs(sin.sin_port);
	close(fd);
	return port;
}

static void write_file(const char *dir, const char *name, const char *text)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

/* The build folder: $SGPROBE_BUILD, or the parent of this binary's folder. */
static void collector_exe(char *out, size_t outlen)
{
	const char *build = getenv("SGPROBE_BUILD");
	char self[900];
	ssize_t n;
	char *slash;

	if (build && *build) {
		snprintf(out, outlen, "%s/sgprobe-collector", build);
		return;
	}
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	assert_true(n > 0);
	self[n] = '\0';
	/* build/tests/test_x -> build */
	slash = strrchr(self, '/');
	assert_non_null(slash);
	*slash = '\0';
	slash = strrchr(self, '/');
	assert_non_null(slash);
	*slash = '\0';
	snprintf(out, outlen, "%s/sgprobe-collector", self);
}

static void coll_files(coll_t *c)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->dir, sizeof(c->dir), "/tmp/sgprobe-test.XXXXXX");
	assert_non_null(mkdtemp(c->dir));
	write_file(c->dir, "matrix.json", MATRIX_JSON);
	write_file(c->dir, "keys.json", KEYS_JSON);
	collector_exe(c->exe, sizeof(c->exe));
	assert_int_equal(access(c->exe, X_OK), 0);
	c->port = free_port();
	c->admin = free_port();
}

static bool port_open(int port)
{
	struct sockaddr_in sin;
	int fd = socket(AF_INET, SOCK_STREAM, 0), rc;

	assert_true(fd >= 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons((uint16_t)port);
	rc = connect(fd, (struct sockaddr *)&sin, sizeof(sin));
	close(fd);
	return rc == 0;
}

/* Starts the collector on c's ports and waits until both listeners accept. */
static void coll_start(coll_t *c)
{
	char matrix[128], keys[128], listen[64], admin[64], log[128], cert[128], key[128];
	int i, status;

	snprintf(matrix, sizeof(matrix), "%s/matrix.json", c->dir);
	snprintf(keys, sizeof(keys), "%s/keys.json", c->dir);
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", c->port);
	snprintf(admin, sizeof(admin), "127.0.0.1:%d", c->admin);
	snprintf(log, sizeof(log), "%s/collector.log", c->dir);
	snprintf(cert, sizeof(cert), "%s/tls.pem", c->dir);
	snprintf(key, sizeof(key), "%s/tls.key", c->dir);
	c->pid = fork();
	assert_true(c->pid >= 0);
	if (c->pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);

		if (fd >= 0) {
			dup2(fd, 2);
			dup2(fd, 1);
			close(fd);
		}
		if (c->tls)
			execl(c->exe, c->exe, "--matrix", matrix, "--keys", keys, "--listen",
			      listen, "--admin-listen", admin, "--tls-cert", cert, "--tls-key", key,
			      (char *)NULL);
		else
			execl(c->exe, c->exe, "--matrix", matrix, "--keys", keys, "--listen",
			      listen, "--admin-listen", admin, (char *)NULL);
		_exit(127);
	}
	for (i = 0; i < 1000; i++) {
		if (port_open(c->port) && port_open(c->admin))
			return;
		if (waitpid(c->pid, &status, WNOHANG) == c->pid) {
			c->pid = 0;
			fail_msg("the collector exited at start; see %s", log);
		}
		usleep(10000);
	}
	fail_msg("the collector did not listen on 127.0.0.1:%d", c->port);
}

static void coll_stop(coll_t *c)
{
	int status;

	if (c->pid > 0) {
		kill(c->pid, SIGTERM);
		waitpid(c->pid, &status, 0);
	}
	c->pid = 0;
}

/* Stops the collector and removes the folder and what the test put there. */
static void coll_cleanup(coll_t *c)
{
	const char *names[] = {"matrix.json", "keys.json", "collector.log", "tls.pem", "tls.key"};
	char path[256];
	size_t i;

	coll_stop(c);
	if (!c->dir[0])
		return;
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", c->dir, names[i]);
		unlink(path);
	}
	rmdir(c->dir);
	c->dir[0] = '\0';
}

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
