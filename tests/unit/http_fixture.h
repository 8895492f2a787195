/*
 * Shared by the unit tests of lib/curluv.c and agent/pusher.c: a tiny scripted
 * HTTP/1.1 server on the test's loop (for the answers the collector never
 * gives), and a real sgprobe-collector started on 127.0.0.1 free ports. Static
 * functions only: each test binary includes it once.
 */
#ifndef SGPROBE_TEST_HTTP_FIXTURE_H
#define SGPROBE_TEST_HTTP_FIXTURE_H

#include "sgprobe/container.h"

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
	char method[16];
	char target[512];
	char *head;       /* the request line and header lines, each header after "\r\n" */
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
	bool open; /* listening: fake_close() not yet called */
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

/* A header's value in a recorded request (case-insensitive name) into out; "" when absent. */
__attribute__((unused)) static const char *fake_req_header(const fake_req_t *r, const char *name,
                                                           char *out, size_t outlen)
{
	fake_header(r->head, name, out, outlen);
	return out;
}

/* True when a recorded request carries the header `name`, even empty. */
__attribute__((unused)) static bool fake_req_has_header(const fake_req_t *r, const char *name)
{
	char pat[64];

	snprintf(pat, sizeof(pat), "\r\n%s:", name);
	return strcasestr(r->head, pat) != NULL;
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
	r->head = strdup(c->in);
	assert_non_null(r->head);
	assert_int_equal(sscanf(c->in, "%15s %511s ", r->method, r->target), 2);
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
/* Starts the scripted server on 127.0.0.1:`port` (0: a free port, then in f->port). */
static void fake_start_on(fake_t *f, uv_loop_t *loop, const fake_answer_t *script, size_t n,
                          int port)
{
	struct sockaddr_in sin;
	struct sockaddr_storage ss;
	int len = sizeof(ss);

	memset(f, 0, sizeof(*f));
	f->loop = loop;
	f->script = script;
	f->n_script = n;
	assert_int_equal(uv_tcp_init(loop, &f->tcp), 0);
	assert_int_equal(uv_ip4_addr("127.0.0.1", port, &sin), 0);
	assert_int_equal(uv_tcp_bind(&f->tcp, (const struct sockaddr *)&sin, 0), 0);
	assert_int_equal(uv_listen((uv_stream_t *)&f->tcp, 16, fake_on_connection), 0);
	assert_int_equal(uv_tcp_getsockname(&f->tcp, (struct sockaddr *)&ss, &len), 0);
	f->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	f->open = true;
}

static void fake_start(fake_t *f, uv_loop_t *loop, const fake_answer_t *script, size_t n)
{
	fake_start_on(f, loop, script, n, 0);
}

/* Closes the listener and every connection; the requests stay readable. */
static void fake_close(fake_t *f)
{
	if (!f->open)
		return;
	f->open = false;
	while (f->conns)
		fake_conn_close(f->conns);
	uv_close((uv_handle_t *)&f->tcp, NULL);
}

/* Frees the recorded requests (after the loop has run the closes). */
static void fake_free(fake_t *f)
{
	int i;

	for (i = 0; i < f->n_reqs; i++) {
		free(f->reqs[i].body);
		free(f->reqs[i].head);
	}
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

__attribute__((unused)) static void coll_files(coll_t *c)
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
__attribute__((unused)) static void coll_start(coll_t *c)
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
__attribute__((unused)) static void coll_cleanup(coll_t *c)
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

#endif
