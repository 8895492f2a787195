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

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

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
