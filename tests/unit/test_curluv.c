/*
 * Unit tests of lib/curluv.c: libcurl's multi interface on a libuv loop,
 * against a real sgprobe-collector (HTTP/1.1 keep-alive, HTTP/2 over TLS) and
 * a tiny scripted server (cookies, slow answers), all on 127.0.0.1. Every
 * test ends with every handle closed: uv_loop_close() returns 0.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
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
#include <unistd.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <uv.h>

#include "sgprobe/curluv.h"

#include "http_fixture.h"
#include "sgprobe/container.h"

/* A self-signed certificate for 127.0.0.1, written as dir/tls.pem and dir/tls.key. */
static void make_cert(const char *dir)
{
	char path[256];
	EVP_PKEY *pkey = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	X509_NAME *name;
	X509V3_CTX ctx;
	X509_EXTENSION *ext;
	FILE *f;

	assert_non_null(pkey);
	assert_non_null(x);
	assert_int_equal(X509_set_version(x, 2), 1);
	assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x), 1), 1);
	assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), -3600));
	assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), 86400));
	assert_int_equal(X509_set_pubkey(x, pkey), 1);
	name = X509_get_subject_name(x);
	assert_int_equal(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
	                                            (const unsigned char *)"localhost", -1, -1, 0),
	                 1);
	assert_int_equal(X509_set_issuer_name(x, name), 1);
	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_alt_name, "IP:127.0.0.1");
	assert_non_null(ext);
	assert_int_equal(X509_add_ext(x, ext, -1), 1);
	X509_EXTENSION_free(ext);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_basic_constraints, "critical,CA:TRUE");
	assert_non_null(ext);
	assert_int_equal(X509_add_ext(x, ext, -1), 1);
	X509_EXTENSION_free(ext);
	assert_true(X509_sign(x, pkey, EVP_sha256()) > 0);
	snprintf(path, sizeof(path), "%s/tls.pem", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(PEM_write_X509(f, x), 1);
	fclose(f);
	snprintf(path, sizeof(path), "%s/tls.key", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(PEM_write_PrivateKey(f, pkey, NULL, NULL, 0, NULL, NULL), 1);
	fclose(f);
	X509_free(x);
	EVP_PKEY_free(pkey);
}

/* ---- the group: one plain collector, one with TLS ---- */

typedef struct {
	coll_t plain;
	coll_t tls;
} group_t;

static int group_setup(void **state)
{
	group_t *g = calloc(1, sizeof(*g));

	assert_non_null(g);
	coll_files(&g->plain);
	coll_start(&g->plain);
	coll_files(&g->tls);
	g->tls.tls = true;
	make_cert(g->tls.dir);
	coll_start(&g->tls);
	*state = g;
	return 0;
}

static int group_teardown(void **state)
{
	group_t *g = *state;

	coll_cleanup(&g->plain);
	coll_cleanup(&g->tls);
	free(g);
	return 0;
}

/* ---- one loop, one curluv, run until enough transfers are done ---- */

typedef struct {
	uv_loop_t loop;
	curluv_t cu;
	uv_timer_t tick;
	int done;        /* transfers whose callback came */
	int want;        /* run until done reaches it ... */
	uint64_t until;  /* ... or until this uv_now() */
	int closed;      /* curluv's close callback */
	const int *cond; /* run until *cond >= want instead, when set */
} env_t;

/* One transfer and what its callback saw. */
typedef struct {
	env_t *env;
	CURL *easy;
	int calls;
	CURLcode result;
	long status;
	long version;
	long connects[8]; /* new connections of each run of this easy */
	int again;        /* add it again from the callback this many times */
	char body[4096];
	size_t len;
} req_t;

static void env_init(env_t *e)
{
	memset(e, 0, sizeof(*e));
	assert_int_equal(uv_loop_init(&e->loop), 0);
	assert_int_equal(uv_timer_init(&e->loop, &e->tick), 0);
	assert_int_equal(curluv_init(&e->cu, &e->loop), 0);
}

static void on_tick(uv_timer_t *t)
{
	env_t *e = container_of(t, env_t, tick);
	int have = e->cond ? *e->cond : e->done;

	if (have >= e->want || uv_now(&e->loop) >= e->until)
		uv_stop(&e->loop);
}

/* Runs the loop until `*cond` (or the done count) reaches `want`, or `ms` pass. */
static void env_run(env_t *e, const int *cond, int want, uint64_t ms)
{
	uv_update_time(&e->loop);
	e->cond = cond;
	e->want = want;
	e->until = uv_now(&e->loop) + ms;
	assert_int_equal(uv_timer_start(&e->tick, on_tick, 5, 5), 0);
	uv_run(&e->loop, UV_RUN_DEFAULT);
	uv_timer_stop(&e->tick);
}

static void on_cu_closed(curluv_t *cu)
{
	env_t *e = container_of(cu, env_t, cu);

	e->closed++;
}

/* Disposes of everything and checks that no handle is left behind. */
static void env_finish(env_t *e)
{
	curluv_dispose(&e->cu, on_cu_closed);
	uv_close((uv_handle_t *)&e->tick, NULL);
	assert_int_equal(uv_run(&e->loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(e->closed, 1);
	assert_int_equal(uv_loop_close(&e->loop), 0);
}

static size_t on_write(char *ptr, size_t size, size_t n, void *arg)
{
	req_t *r = arg;
	size_t len = size * n, room = sizeof(r->body) - 1 - r->len;
	size_t take = len < room ? len : room;

	memcpy(r->body + r->len, ptr, take);
	r->len += take;
	r->body[r->len] = '\0';
	return len;
}

static void on_done(CURL *easy, CURLcode result, void *arg)
{
	req_t *r = arg;
	long connects = 0;

	assert_ptr_equal(easy, r->easy);
	if (r->calls < 8) {
		curl_easy_getinfo(easy, CURLINFO_NUM_CONNECTS, &connects);
		r->connects[r->calls] = connects;
	}
	r->calls++;
	r->result = result;
	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &r->status);
	curl_easy_getinfo(easy, CURLINFO_HTTP_VERSION, &r->version);
	r->env->done++;
	/* The easy handle is ours again: it may go straight back in. */
	if (r->again > 0 && result == CURLE_OK && r->env->cu.multi) {
		r->again--;
		r->len = 0;
		assert_int_equal(curluv_add(&r->env->cu, easy, on_done, r), 0);
	}
}

static void req_init(req_t *r, env_t *e, const char *url, const char *ca_file)
{
	memset(r, 0, sizeof(*r));
	r->env = e;
	r->easy = curl_easy_init();
	assert_non_null(r->easy);
	assert_int_equal(curluv_easy_defaults(r->easy, ca_file), 0);
	assert_int_equal(curl_easy_setopt(r->easy, CURLOPT_URL, url), CURLE_OK);
	assert_int_equal(curl_easy_setopt(r->easy, CURLOPT_WRITEFUNCTION, on_write), CURLE_OK);
	assert_int_equal(curl_easy_setopt(r->easy, CURLOPT_WRITEDATA, r), CURLE_OK);
	assert_int_equal(curl_easy_setopt(r->easy, CURLOPT_TIMEOUT_MS, 10000L), CURLE_OK);
}

static void req_free(req_t *r)
{
	curl_easy_cleanup(r->easy);
	r->easy = NULL;
}

static void url_of(char *out, size_t outlen, const char *scheme, int port, const char *path)
{
	snprintf(out, outlen, "%s://127.0.0.1:%d%s", scheme, port, path);
}

/* ---- the tests ---- */

static void test_curluv_get_completes_once(void **state)
{
	group_t *g = *state;
	env_t e;
	req_t r;
	char url[128];

	env_init(&e);
	url_of(url, sizeof(url), "http", g->plain.port, "/healthz");
	req_init(&r, &e, url, NULL);
	assert_int_equal(curluv_add(&e.cu, r.easy, on_done, &r), 0);
	/* Never from within curluv_add(): only from the loop. */
	assert_int_equal(r.calls, 0);
	assert_int_equal(curluv_active(&e.cu), 1);
	env_run(&e, NULL, 1, 10000);
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.result, CURLE_OK);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.body, "\"ok\""));
	assert_int_equal(curluv_active(&e.cu), 0);
	/* And only once, however long the loop runs on. */
	env_run(&e, &e.closed, 1, 100);
	assert_int_equal(r.calls, 1);
	req_free(&r);
	env_finish(&e);
}

static void test_curluv_many_transfers_at_once(void **state)
{
	group_t *g = *state;
	enum { N = 16 };
	req_t r[N];
	env_t e;
	char url[128];
	int i;

	env_init(&e);
	url_of(url, sizeof(url), "http", g->plain.port, "/healthz");
	for (i = 0; i < N; i++) {
		req_init(&r[i], &e, url, NULL);
		assert_int_equal(curluv_add(&e.cu, r[i].easy, on_done, &r[i]), 0);
	}
	assert_int_equal(curluv_active(&e.cu), N);
	env_run(&e, NULL, N, 10000);
	for (i = 0; i < N; i++) {
		assert_int_equal(r[i].calls, 1);
		assert_int_equal(r[i].result, CURLE_OK);
		assert_int_equal(r[i].status, 200);
		req_free(&r[i]);
	}
	assert_int_equal(curluv_active(&e.cu), 0);
	env_finish(&e);
}

static void test_curluv_keepalive_reuses_the_connection(void **state)
{
	group_t *g = *state;
	env_t e;
	req_t r;
	char url[128];

	env_init(&e);
	url_of(url, sizeof(url), "http", g->plain.port, "/healthz");
	req_init(&r, &e, url, NULL);
	r.again = 2;
	assert_int_equal(curluv_add(&e.cu, r.easy, on_done, &r), 0);
	env_run(&e, NULL, 3, 10000);
	assert_int_equal(r.calls, 3);
	assert_int_equal(r.result, CURLE_OK);
	assert_int_equal(r.status, 200);
	assert_int_equal(r.version, CURL_HTTP_VERSION_1_1);
	/* One connection, opened by the first request and kept for the others. */
	assert_int_equal(r.connects[0], 1);
	assert_int_equal(r.connects[1], 0);
	assert_int_equal(r.connects[2], 0);
	req_free(&r);
	env_finish(&e);
}

static void test_curluv_http2_over_tls_multiplexed(void **state)
{
	group_t *g = *state;
	char url[128], ca[128];
	req_t a, b;
	env_t e;

	env_init(&e);
	url_of(url, sizeof(url), "https", g->tls.port, "/healthz");
	snprintf(ca, sizeof(ca), "%s/tls.pem", g->tls.dir);
	req_init(&a, &e, url, ca);
	req_init(&b, &e, url, ca);
	/* The second waits to learn whether the first connection multiplexes. */
	assert_int_equal(curl_easy_setopt(b.easy, CURLOPT_PIPEWAIT, 1L), CURLE_OK);
	assert_int_equal(curluv_add(&e.cu, a.easy, on_done, &a), 0);
	assert_int_equal(curluv_add(&e.cu, b.easy, on_done, &b), 0);
	env_run(&e, NULL, 2, 10000);
	assert_int_equal(a.result, CURLE_OK);
	assert_int_equal(b.result, CURLE_OK);
	assert_int_equal(a.status, 200);
	assert_int_equal(b.status, 200);
	/* HTTP/2 by ALPN, and both transfers on one connection. */
	assert_int_equal(a.version, CURL_HTTP_VERSION_2_0);
	assert_int_equal(b.version, CURL_HTTP_VERSION_2_0);
	assert_int_equal(a.connects[0] + b.connects[0], 1);
	req_free(&a);
	req_free(&b);
	env_finish(&e);
}

static void test_curluv_tls_verification_on_by_default(void **state)
{
	group_t *g = *state;
	char url[128];
	env_t e;
	req_t r;

	env_init(&e);
	url_of(url, sizeof(url), "https", g->tls.port, "/healthz");
	/* The system store does not hold the test's own certificate. */
	req_init(&r, &e, url, NULL);
	assert_int_equal(curluv_add(&e.cu, r.easy, on_done, &r), 0);
	env_run(&e, NULL, 1, 10000);
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.result, CURLE_PEER_FAILED_VERIFICATION);
	assert_int_equal(r.status, 0);
	req_free(&r);
	env_finish(&e);
}

static void test_curluv_cookie_engine_keeps_stickiness(void **state)
{
	static const fake_answer_t script[] = {
	    {200, "Set-Cookie: AWSALB=target-7; Path=/\r\n", "{}", 0},
	    {200, NULL, "{}", 0},
	};
	char url[128];
	fake_t f;
	env_t e;
	req_t r;

	(void)state;
	env_init(&e);
	fake_start(&f, &e.loop, script, 2);
	url_of(url, sizeof(url), "http", f.port, "/v1/reports");
	req_init(&r, &e, url, NULL);
	r.again = 1;
	assert_int_equal(curluv_add(&e.cu, r.easy, on_done, &r), 0);
	env_run(&e, NULL, 2, 10000);
	assert_int_equal(r.calls, 2);
	assert_int_equal(f.n_reqs, 2);
	/* The load balancer's cookie comes back: the next request lands on the same target. */
	assert_string_equal(f.reqs[0].cookie, "");
	assert_non_null(strstr(f.reqs[1].cookie, "AWSALB=target-7"));
	req_free(&r);
	fake_close(&f);
	env_finish(&e);
	fake_free(&f);
}

static void test_curluv_connection_refused_is_reported(void **state)
{
	char url[128];
	env_t e;
	req_t r;

	(void)state;
	env_init(&e);
	url_of(url, sizeof(url), "http", free_port(), "/healthz");
	req_init(&r, &e, url, NULL);
	assert_int_equal(curluv_add(&e.cu, r.easy, on_done, &r), 0);
	env_run(&e, NULL, 1, 10000);
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.result, CURLE_COULDNT_CONNECT);
	req_free(&r);
	env_finish(&e);
}

static void test_curluv_timeout_is_reported(void **state)
{
	static const fake_answer_t script[] = {{200, NULL, "{}", 20000}};
	char url[128];
	uint64_t t0;
	fake_t f;
	env_t e;
	req_t r;

	(void)state;
	env_init(&e);
	fake_start(&f, &e.loop, script, 1);
	url_of(url, sizeof(url), "http", f.port, "/slow");
	req_init(&r, &e, url, NULL);
	assert_int_equal(curl_easy_setopt(r.easy, CURLOPT_TIMEOUT_MS, 200L), CURLE_OK);
	uv_update_time(&e.loop);
	t0 = uv_now(&e.loop);
	assert_int_equal(curluv_add(&e.cu, r.easy, on_done, &r), 0);
	env_run(&e, NULL, 1, 10000);
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.result, CURLE_OPERATION_TIMEDOUT);
	/* libcurl's timer went through the loop: the time was really waited. */
	assert_true(uv_now(&e.loop) - t0 >= 190);
	req_free(&r);
	fake_close(&f);
	env_finish(&e);
	fake_free(&f);
}

static void test_curluv_remove_cancels_without_callback(void **state)
{
	static const fake_answer_t script[] = {{200, NULL, "{}", 20000}};
	char url[128];
	fake_t f;
	env_t e;
	req_t r;

	(void)state;
	env_init(&e);
	fake_start(&f, &e.loop, script, 1);
	url_of(url, sizeof(url), "http", f.port, "/slow");
	req_init(&r, &e, url, NULL);
	assert_int_equal(curluv_add(&e.cu, r.easy, on_done, &r), 0);
	env_run(&e, &f.n_reqs, 1, 10000);
	assert_int_equal(f.n_reqs, 1);
	assert_int_equal(curluv_remove(&e.cu, r.easy), 0);
	assert_int_equal(curluv_active(&e.cu), 0);
	assert_int_equal(curluv_remove(&e.cu, r.easy), -ENOENT);
	/* The connection is closed: the server sees the client leave. */
	env_run(&e, NULL, 1, 300);
	assert_int_equal(r.calls, 0);
	assert_int_equal(f.pending, 0);
	req_free(&r);
	fake_close(&f);
	env_finish(&e);
	fake_free(&f);
}

static void test_curluv_dispose_ends_transfers_and_closes(void **state)
{
	static const fake_answer_t script[] = {{200, NULL, "{}", 20000}};
	char url[128];
	req_t a, b, c;
	fake_t f;
	env_t e;

	(void)state;
	env_init(&e);
	fake_start(&f, &e.loop, script, 1);
	url_of(url, sizeof(url), "http", f.port, "/slow");
	req_init(&a, &e, url, NULL);
	req_init(&b, &e, url, NULL);
	req_init(&c, &e, url, NULL);
	assert_int_equal(curluv_add(&e.cu, a.easy, on_done, &a), 0);
	assert_int_equal(curluv_add(&e.cu, b.easy, on_done, &b), 0);
	env_run(&e, &f.n_reqs, 2, 10000);
	assert_int_equal(f.n_reqs, 2);
	curluv_dispose(&e.cu, on_cu_closed);
	/* Each owner learns at once that its transfer ended ... */
	assert_int_equal(a.calls, 1);
	assert_int_equal(b.calls, 1);
	assert_int_equal(a.result, CURLE_ABORTED_BY_CALLBACK);
	assert_int_equal(b.result, CURLE_ABORTED_BY_CALLBACK);
	/* ... nothing new starts, and the close callback waits for the loop. */
	assert_int_equal(curluv_add(&e.cu, c.easy, on_done, &c), -ECANCELED);
	curluv_dispose(&e.cu, on_cu_closed);
	assert_int_equal(e.closed, 0);
	req_free(&a);
	req_free(&b);
	req_free(&c);
	fake_close(&f);
	uv_close((uv_handle_t *)&e.tick, NULL);
	assert_int_equal(uv_run(&e.loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(e.closed, 1);
	assert_int_equal(c.calls, 0);
	assert_int_equal(uv_loop_close(&e.loop), 0);
	fake_free(&f);
}

static void test_curluv_add_refusals_never_call_back(void **state)
{
	group_t *g = *state;
	char url[128];
	env_t e;
	req_t r;

	env_init(&e);
	url_of(url, sizeof(url), "http", g->plain.port, "/healthz");
	req_init(&r, &e, url, NULL);
	assert_int_equal(curluv_add(&e.cu, r.easy, NULL, &r), -EINVAL);
	assert_int_equal(curluv_add(&e.cu, NULL, on_done, &r), -EINVAL);
	assert_int_equal(curluv_add(&e.cu, r.easy, on_done, &r), 0);
	assert_int_equal(curluv_add(&e.cu, r.easy, on_done, &r), -EALREADY);
	assert_int_equal(curluv_remove(&e.cu, NULL), -ENOENT);
	env_run(&e, NULL, 1, 10000);
	env_run(&e, &e.closed, 1, 100);
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.result, CURLE_OK);
	req_free(&r);
	env_finish(&e);
}

/* ---- bounded response bodies ---- */

static void test_curluv_body_keeps_a_document_up_to_max(void **state)
{
	curluv_body_t b = {.max = 4000, .secret = true};
	char chunk[1500];
	int i;

	(void)state;
	assert_string_equal(curluv_body_str(&b), "");
	/* A write of nothing still gives a string to parse. */
	assert_int_equal(curluv_body_write("", 1, 0, &b), 0);
	assert_non_null(b.data);
	assert_string_equal(b.data, "");
	/* Grows across blocks (wiping the old ones: secret) and keeps every byte. */
	for (i = 0; i < 2; i++) {
		memset(chunk, 'a' + i, sizeof(chunk));
		assert_int_equal(curluv_body_write(chunk, 1, sizeof(chunk), &b), sizeof(chunk));
	}
	assert_int_equal(b.len, 3000);
	assert_true(b.cap <= b.max + 1);
	assert_int_equal(b.data[0], 'a');
	assert_int_equal(b.data[1499], 'a');
	assert_int_equal(b.data[1500], 'b');
	assert_int_equal(b.data[2999], 'b');
	assert_int_equal(b.data[3000], '\0');
	assert_false(b.too_big);
	/* One byte past max ends the transfer (0 is an error to libcurl), keeping what came. */
	memset(chunk, 'c', sizeof(chunk));
	assert_int_equal(curluv_body_write(chunk, 1, 1001, &b), 0);
	assert_true(b.too_big);
	assert_int_equal(b.len, 3000);
	/* Exactly max is fine. */
	curluv_body_reset(&b);
	assert_false(b.too_big);
	assert_int_equal(b.len, 0);
	assert_string_equal(curluv_body_str(&b), "");
	for (i = 0; i < 4; i++)
		assert_int_equal(curluv_body_write(chunk, 1, 1000, &b), 1000);
	assert_int_equal(b.len, 4000);
	assert_false(b.too_big);
	curluv_body_dispose(&b);
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	curluv_body_dispose(&b);
}

static void test_curluv_body_truncates_a_message_and_reads_on(void **state)
{
	curluv_body_t b = {.max = 8, .truncate = true};

	(void)state;
	/* libcurl is told every byte was taken; the first 8 are kept. */
	assert_int_equal(curluv_body_write("0123456789", 1, 10, &b), 10);
	assert_string_equal(curluv_body_str(&b), "01234567");
	assert_true(b.too_big);
	assert_int_equal(curluv_body_write("abc", 1, 3, &b), 3);
	assert_string_equal(b.data, "01234567");
	assert_int_equal(b.len, 8);
	curluv_body_reset(&b);
	assert_int_equal(curluv_body_write("ok", 1, 2, &b), 2);
	assert_string_equal(b.data, "ok");
	assert_false(b.too_big);
	curluv_body_dispose(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_curluv_get_completes_once),
	    cmocka_unit_test(test_curluv_many_transfers_at_once),
	    cmocka_unit_test(test_curluv_keepalive_reuses_the_connection),
	    cmocka_unit_test(test_curluv_http2_over_tls_multiplexed),
	    cmocka_unit_test(test_curluv_tls_verification_on_by_default),
	    cmocka_unit_test(test_curluv_cookie_engine_keeps_stickiness),
	    cmocka_unit_test(test_curluv_connection_refused_is_reported),
	    cmocka_unit_test(test_curluv_timeout_is_reported),
	    cmocka_unit_test(test_curluv_remove_cancels_without_callback),
	    cmocka_unit_test(test_curluv_dispose_ends_transfers_and_closes),
	    cmocka_unit_test(test_curluv_add_refusals_never_call_back),
	    cmocka_unit_test(test_curluv_body_keeps_a_document_up_to_max),
	    cmocka_unit_test(test_curluv_body_truncates_a_message_and_reads_on),
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
