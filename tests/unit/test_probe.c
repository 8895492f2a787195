/*
 * Unit tests of agent/probe.c: the probe engine on loopback.
 *
 * Only 127.0.0.0/8 is ever probed. The only name really resolved is
 * "localhost"; the names under FAKE_DOMAIN are answered by the getaddrinfo()
 * below, which this executable interposes in front of the C library's (so
 * that libuv's resolver threads call it too). That lets the tests give a name
 * several addresses, duplicates, or no address at all, without any DNS.
 */
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <dirent.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/ssl.h>
#include <uv.h>

#include "../../agent/probe.h"
#include "sgprobe/container.h"

#define FAKE_DOMAIN ".sgprobe-test.invalid"
#define FAKE_MULTI  "multi" FAKE_DOMAIN /* 127.0.0.3, .1, .2, .1 again, .4 */
#define FAKE_NONE   "none" FAKE_DOMAIN  /* no such name */
#define FAKE_SLOW   "slow" FAKE_DOMAIN  /* 127.0.0.1, after SLOW_LOOKUP_MS */

#define SLOW_LOOKUP_MS 1500

#define NS_PER_MS UINT64_C(1000000)

/* ---- the fake resolver ---- */

typedef int (*getaddrinfo_fn)(const char *, const char *, const struct addrinfo *,
                              struct addrinfo **);

/*
 * One node as glibc's freeaddrinfo() frees it: the node and its address in one
 * allocation, no canonical name. uv_freeaddrinfo() can then free our answers
 * as it frees the C library's.
 */
static struct addrinfo *fake_node(const char *ip)
{
	struct addrinfo *ai = calloc(1, sizeof(*ai) + sizeof(struct sockaddr_in));
	struct sockaddr_in *sin;

	if (!ai)
		return NULL;
	sin = (struct sockaddr_in *)(ai + 1);
	sin->sin_family = AF_INET;
	if (inet_pton(AF_INET, ip, &sin->sin_addr) != 1) {
		free(ai);
		return NULL;
	}
	ai->ai_family = AF_INET;
	ai->ai_socktype = SOCK_STREAM;
	ai->ai_protocol = IPPROTO_TCP;
	ai->ai_addrlen = sizeof(*sin);
	ai->ai_addr = (struct sockaddr *)sin;
	return ai;
}

/* Lookups of FAKE_SLOW that returned (written by libuv's threads). */
static atomic_uint slow_lookups_done;

int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                struct addrinfo **res)
{
	static const char *const multi[] = {"127.0.0.3", "127.0.0.1", "127.0.0.2", "127.0.0.1",
	                                    "127.0.0.4"};
	size_t len = node ? strlen(node) : 0;
	struct addrinfo *head = NULL, **tail = &head;
	getaddrinfo_fn real;
	size_t i;

	if (len < strlen(FAKE_DOMAIN) || strcmp(node + len - strlen(FAKE_DOMAIN), FAKE_DOMAIN)) {
		real = (getaddrinfo_fn)dlsym(RTLD_NEXT, "getaddrinfo");
		if (!real)
			return EAI_SYSTEM;
		return real(node, service, hints, res);
	}
	if (!strcmp(node, FAKE_SLOW)) {
		/* A resolver that takes its time, on libuv's thread. */
		struct timespec ts = {SLOW_LOOKUP_MS / 1000, (SLOW_LOOKUP_MS % 1000) * 1000000L};

		nanosleep(&ts, NULL);
		*res = fake_node("127.0.0.1");
		atomic_fetch_add(&slow_lookups_done, 1);
		return *res ? 0 : EAI_MEMORY;
	}
	if (strcmp(node, FAKE_MULTI))
		return EAI_NONAME;
	for (i = 0; i < sizeof(multi) / sizeof(multi[0]); i++) {
		*tail = fake_node(multi[i]);
		if (!*tail) {
			freeaddrinfo(head);
			return EAI_MEMORY;
		}
		tail = &(*tail)->ai_next;
	}
	*res = head;
	return 0;
}

/* ---- a slower network ---- */

/*
 * On loopback every answer is in before connect() returns, so the engine
 * settles it at once. Set, this makes TCP_INFO say "still connecting", as on
 * any real network, so that the answer goes through the event loop instead.
 * Test-only state: the tests run one at a time.
 */
static bool pretend_connecting;

typedef int (*getsockopt_fn)(int, int, int, void *, socklen_t *);

int getsockopt(int fd, int level, int name, void *val, socklen_t *len)
{
	getsockopt_fn real = (getsockopt_fn)dlsym(RTLD_NEXT, "getsockopt");
	int result;

	if (!real)
		return -1;
	result = real(fd, level, name, val, len);
	if (!result && pretend_connecting && level == IPPROTO_TCP && name == TCP_INFO)
		((struct tcp_info *)val)->tcpi_state = TCP_SYN_SENT;
	return result;
}

/*
 * The fake names must never reach a real resolver: a test that uses them first
 * checks that the dynamic linker binds "getaddrinfo" to the function above.
 */
static void assert_fake_resolver_in_place(void)
{
	void *bound = dlsym(RTLD_DEFAULT, "getaddrinfo");

	if (bound != (void *)getaddrinfo)
		fail_msg("getaddrinfo() is not interposed: refusing to resolve %s names",
		         FAKE_DOMAIN);
}

/* ---- sockets ---- */

/* A TCP listener on 127.0.0.1 and an ephemeral port. Never accepts: the kernel
 * completes the handshakes. */
typedef struct {
	int fd;
	uint16_t port;
} listener_t;

static int bind_loopback(uint16_t *port)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	*port = ntohs(sin.sin_port);
	return fd;
}

static void listener_open(listener_t *l, int backlog)
{
	l->fd = bind_loopback(&l->port);
	assert_int_equal(listen(l->fd, backlog), 0);
}

static void listener_close(listener_t *l)
{
	close(l->fd);
	l->fd = -1;
}

/* A port of 127.0.0.1 nothing listens on: bound, read, released. */
static uint16_t closed_port(void)
{
	uint16_t port;
	int fd = bind_loopback(&port);

	close(fd);
	return port;
}

/*
 * A listener whose accept queue is full, so that the kernel drops every new
 * SYN: a connect to it times out, as through a security group that drops.
 * `filler` holds the one connection that fills the queue. It is not waited for
 * long: a kernel that counts a backlog of 0 as full already drops every SYN.
 */
static void listener_open_saturated(listener_t *l, int *filler)
{
	struct sockaddr_in sin;
	struct pollfd pfd;

	listener_open(l, 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons(l->port);
	*filler = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	assert_true(*filler >= 0);
	if (connect(*filler, (struct sockaddr *)&sin, sizeof(sin)) && errno != EINPROGRESS)
		fail_msg("cannot fill the accept queue: %s", strerror(errno));
	pfd.fd = *filler;
	pfd.events = POLLOUT;
	poll(&pfd, 1, 500);
}

/* ---- plans ---- */

static matrix_plan_t *plan_new(size_t n)
{
	matrix_plan_t *p = calloc(1, sizeof(*p));

	assert_non_null(p);
	p->matrix = strdup("test");
	p->role = strdup("self");
	assert_non_null(p->matrix);
	assert_non_null(p->role);
	p->interval_s = 60;
	p->timeout_ms = 2000;
	if (n) {
		p->targets = calloc(n, sizeof(*p->targets));
		assert_non_null(p->targets);
	}
	return p;
}

/* Sets target `i` (the next one: targets are filled in order). */
static matrix_target_t *plan_set(matrix_plan_t *p, size_t i, const char *target, uint16_t port,
                                 verdict_expect_t expected)
{
	matrix_target_t *t = &p->targets[i];

	assert_int_equal(i, p->n_targets);
	t->dst_role = strdup("dst");
	t->target = strdup(target);
	assert_non_null(t->dst_role);
	assert_non_null(t->target);
	t->port = port;
	t->expected = expected;
	t->probe = true;
	t->interval_s = 60;
	p->n_targets++;
	return t;
}

static probe_config_t config_default(void)
{
	probe_config_t cfg;

	memset(&cfg, 0, sizeof(cfg));
	cfg.timeout_ms = 2000;
	cfg.concurrency = PROBE_DEFAULT_CONCURRENCY;
	cfg.rate = 0;
	cfg.per_host = PROBE_DEFAULT_PER_HOST;
	return cfg;
}

/* ---- running a round ---- */

typedef struct {
	unsigned done_calls;
	probe_run_t *run_seen;
	uint64_t start_ns;
	uint64_t done_ns;
	uint64_t wall_before_ms;
	uint64_t wall_after_ms;
} round_t;

static void on_done(probe_run_t *run, void *arg)
{
	round_t *r = arg;

	r->done_calls++;
	r->run_seen = run;
	r->done_ns = uv_hrtime();
}

static uint64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/*
 * Runs one round on a fresh loop, as the agent does: `done` is called exactly
 * once, with the run, and every handle is closed by then (uv_loop_close()
 * succeeds). Returns the run, to be freed by the caller.
 */
static probe_run_t *run_round(const probe_config_t *cfg, const matrix_plan_t *plan, round_t *r)
{
	uv_loop_t loop;
	probe_run_t *run;

	memset(r, 0, sizeof(*r));
	assert_int_equal(uv_loop_init(&loop), 0);
	r->wall_before_ms = wall_ms();
	r->start_ns = uv_hrtime();
	run = probe_run_start(&loop, cfg, plan, on_done, r);
	assert_non_null(run);
	/* done comes from the loop, never from within probe_run_start(). */
	assert_int_equal(r->done_calls, 0);
	assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
	r->wall_after_ms = wall_ms();
	assert_int_equal(r->done_calls, 1);
	assert_ptr_equal(r->run_seen, run);
	assert_int_equal(uv_loop_close(&loop), 0);
	return run;
}

static bool is_loopback(const char *address)
{
	struct in_addr v4;
	struct in6_addr v6;

	if (inet_pton(AF_INET, address, &v4) == 1)
		return (ntohl(v4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, address, &v6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&v6);
	return false;
}

/* ---- tests ---- */

static void test_probe_open_and_closed_ports(void **state)
{
	listener_t l;
	uint16_t closed = closed_port();
	matrix_plan_t *plan;
	probe_config_t cfg = config_default();
	probe_run_t *run;
	const probe_result_t *res;
	round_t r;
	size_t n, i;

	(void)state;
	listener_open(&l, 64);
	plan = plan_new(4);
	plan_set(plan, 0, "127.0.0.1", l.port, VERDICT_EXPECT_ALLOW);
	plan_set(plan, 1, "127.0.0.1", closed, VERDICT_EXPECT_DENY);
	plan_set(plan, 2, "127.0.0.1", closed, VERDICT_EXPECT_ALLOW);
	plan_set(plan, 3, "127.0.0.1", l.port, VERDICT_EXPECT_DENY);
	run = run_round(&cfg, plan, &r);
	res = probe_run_results(run, &n);
	assert_int_equal(n, 4);
	for (i = 0; i < n; i++) {
		assert_int_equal(res[i].target, i);
		assert_int_equal(res[i].order, 0);
		assert_string_equal(res[i].address, "127.0.0.1");
		assert_true(res[i].latency_us >= 0);
		/* Wall clock at the start of the probe, within the round. */
		assert_true(res[i].at_ms >= r.wall_before_ms);
		assert_true(res[i].at_ms <= r.wall_after_ms);
		assert_int_equal(res[i].tls, VERDICT_TLS_NONE);
		assert_false(res[i].retried);
	}
	assert_int_equal(res[0].state, VERDICT_STATE_OPEN);
	assert_int_equal(res[1].state, VERDICT_STATE_CLOSED);
	assert_int_equal(res[2].state, VERDICT_STATE_CLOSED);
	assert_int_equal(res[3].state, VERDICT_STATE_OPEN);
	assert_string_equal(res[1].detail, "connection refused (RST)");
	probe_run_free(run);
	matrix_plan_free(plan);
	listener_close(&l);
}

/*
 * Results are ordered by target whatever order the probes ran in: here the
 * dispatcher takes the three hosts in turn and runs targets 3 and 4 before 1.
 */
static void test_probe_results_ordered_by_target(void **state)
{
	listener_t l;
	uint16_t closed = closed_port();
	matrix_plan_t *plan;
	probe_config_t cfg = config_default();
	probe_run_t *run;
	const probe_result_t *res;
	round_t r;
	size_t n, i;

	(void)state;
	listener_open(&l, 64);
	plan = plan_new(6);
	plan_set(plan, 0, "127.0.0.1", l.port, VERDICT_EXPECT_ALLOW);
	plan_set(plan, 1, "127.0.0.1", closed, VERDICT_EXPECT_DENY);
	plan_set(plan, 2, "127.0.0.1", closed, VERDICT_EXPECT_ALLOW);
	plan_set(plan, 3, "127.0.0.2", closed, VERDICT_EXPECT_DENY);
	plan_set(plan, 4, "127.0.0.3", closed, VERDICT_EXPECT_DENY);
	plan_set(plan, 5, "127.0.0.2", l.port, VERDICT_EXPECT_DENY);
	run = run_round(&cfg, plan, &r);
	res = probe_run_results(run, &n);
	assert_int_equal(n, 6);
	for (i = 0; i < n; i++) {
		if (res[i].target != i)
			fail_msg("result %zu is for target %zu", i, res[i].target);
		assert_string_equal(res[i].address, plan->targets[i].target);
	}
	assert_int_equal(res[0].state, VERDICT_STATE_OPEN);
	/* The listener is on 127.0.0.1 only: 127.0.0.2 answers with a RST. */
	assert_int_equal(res[5].state, VERDICT_STATE_CLOSED);
	for (i = 1; i < 5; i++)
		assert_int_equal(res[i].state, VERDICT_STATE_CLOSED);
	probe_run_free(run);
	matrix_plan_free(plan);
	listener_close(&l);
}

/* The agent's own address is not a path through any security group. */
static void test_probe_skips_own_address(void **state)
{
	listener_t l;
	uint16_t closed = closed_port();
	matrix_plan_t *plan;
	probe_config_t cfg = config_default();
	probe_run_t *run;
	const probe_result_t *res;
	round_t r;
	size_t n, i;

	(void)state;
	listener_open(&l, 64);
	plan = plan_new(3);
	plan_set(plan, 0, "127.0.0.1", l.port, VERDICT_EXPECT_ALLOW);
	plan_set(plan, 1, "127.0.0.1", closed, VERDICT_EXPECT_DENY);
	cfg.own_address = "127.0.0.1";
	run = run_round(&cfg, plan, &r);
	probe_run_results(run, &n);
	assert_int_equal(n, 0);
	probe_run_free(run);

	/* A name that resolves to the own address: skipped too (localhost may also
	 * be ::1, which is another address and is probed). */
	plan_set(plan, 2, "localhost", closed, VERDICT_EXPECT_DENY);
	run = run_round(&cfg, plan, &r);
	res = probe_run_results(run, &n);
	for (i = 0; i < n; i++) {
		if (!strcmp(res[i].address, "127.0.0.1"))
			fail_msg("own address probed for target %zu", res[i].target);
		assert_int_equal(res[i].target, 2);
	}
	probe_run_free(run);
	matrix_plan_free(plan);
	listener_close(&l);
}

static void test_probe_own_address_only_that_address(void **state)
{
	uint16_t closed = closed_port();
	matrix_plan_t *plan;
	probe_config_t cfg = config_default();
	probe_run_t *run;
	const probe_result_t *res;
	round_t r;
	size_t n;

	(void)state;
	plan = plan_new(3);
	plan_set(plan, 0, "127.0.0.2", closed, VERDICT_EXPECT_DENY);
	plan_set(plan, 1, "127.0.0.1", closed, VERDICT_EXPECT_DENY);
	plan_set(plan, 2, "127.0.0.3", closed, VERDICT_EXPECT_DENY);
	cfg.own_address = "127.0.0.1";
	run = run_round(&cfg, plan, &r);
	res = probe_run_results(run, &n);
	assert_int_equal(n, 2);
	assert_int_equal(res[0].target, 0);
	assert_string_equal(res[0].address, "127.0.0.2");
	assert_int_equal(res[1].target, 2);
	assert_string_equal(res[1].address, "127.0.0.3");
	probe_run_free(run);
	matrix_plan_free(plan);
}

/* probe_allowed false: the path is in the plan, but never connected to. */
static void test_probe_skips_targets_not_to_probe(void **state)
{
	listener_t l;
	uint16_t closed = closed_port();
	matrix_plan_t *plan;
	probe_config_t cfg = config_default();
	probe_run_t *run;
	const probe_result_t *res;
	round_t r;
	size_t n;

	(void)state;
	listener_open(&l, 64);
	plan = plan_new(4);
	plan_set(plan, 0, "127.0.0.1", l.port, VERDICT_EXPECT_ALLOW)->probe = false;
	plan_set(plan, 1, "127.0.0.1", closed, VERDICT_EXPECT_DENY);
	plan_set(plan, 2, "127.0.0.2", closed, VERDICT_EXPECT_ALLOW)->probe = false;
	plan_set(plan, 3, "127.0.0.1", l.port, VERDICT_EXPECT_DENY);
	run = run_round(&cfg, plan, &r);
	res = probe_run_results(run, &n);
	assert_int_equal(n, 2);
	assert_int_equal(res[0].target, 1);
	assert_int_equal(res[0].state, VERDICT_STATE_CLOSED);
	assert_int_equal(res[1].target, 3);
	assert_int_equal(res[1].state, VERDICT_STATE_OPEN);
	probe_run_free(run);

	/* A plan where nothing is to be probed finishes like an empty one. */
	plan->targets[1].probe = false;
	plan->targets[3].probe = false;
	run = run_round(&cfg, plan, &r);
	probe_run_results(run, &n);
	assert_int_equal(n, 0);
	probe_run_free(run);
	matrix_plan_free(plan);
	listener_close(&l);
}

static void test_probe_localhost_resolves_to_loopback(void **state)
{
	listener_t l;
	uint16_t closed = closed_port();
	matrix_plan_t *plan;
	probe_config_t cfg = config_default();
	probe_run_t *run;
	const probe_result_t *res;
	round_t r;
	size_t n, i, per_target[2] = {0, 0};

	(void)state;
	listener_open(&l, 64);
	plan = plan_new(2);
	plan_set(plan, 0, "localhost", l.port, VERDICT_EXPECT_ALLOW);
	plan_set(plan, 1, "localhost", closed, VERDICT_EXPECT_DENY);
	run = run_round(&cfg, plan, &r);
	res = probe_run_results(run, &n);
	assert_true(n >= 2);
	for (i = 0; i < n; i++) {
		if (!is_loopback(res[i].address))
			fail_msg("localhost probed at '%s' (%s)", res[i].address, res[i].detail);
		assert_true(res[i].target < 2);
		per_target[res[i].target]++;
		if (i > 0)
			assert_true(res[i - 1].target < res[i].target ||
			            (res[i - 1].target == res[i].target &&
			             res[i - 1].order < res[i].order));
		if (!strcmp(res[i].address, "127.0.0.1"))
			assert_int_equal(res[i].state, res[i].target == 0 ? VERDICT_STATE_OPEN
			                                                  : VERDICT_STATE_CLOSED);
	}
	/* Every address of the name is probed on every port. */
	assert_int_equal(per_target[0], per_target[1]);
	probe_run_free(run);
	matrix_plan_free(plan);
	listener_close(&l);
}

static void test_probe_empty_plan_finishes(void **state)
{
	matrix_plan_t *plan = plan_new(0);
	probe_config_t cfg = config_default();
	probe_run_t *run;
	round_t r;
	size_t n = 99;

	(void)state;
	run = run_round(&cfg, plan, &r);
	probe_run_results(run, &n);
	assert_int_equal(n, 0);
	probe_run_free(run);
	probe_run_free(NULL);
	matrix_plan_free(plan);
}

/* An invalid configuration is refused at once, and done is then never called. */
static void test_probe_start_refuses_invalid_config(void **state)
{
	matrix_plan_t *plan = plan_new(1);
	probe_config_t cfg;
	uv_loop_t loop;
	round_t r;

	(void)state;
	memset(&r, 0, sizeof(r));
	plan_set(plan, 0, "127.0.0.1", closed_port(), VERDICT_EXPECT_DENY);
	assert_int_equal(uv_loop_init(&loop), 0);

	cfg = config_default();
	cfg.concurrency = 0;
	assert_null(probe_run_start(&loop, &cfg, plan, on_done, &r));
	cfg = config_default();
	cfg.timeout_ms = 0;
	assert_null(probe_run_start(&loop, &cfg, plan, on_done, &r));
	cfg = config_default();
	assert_null(probe_run_start(NULL, &cfg, plan, on_done, &r));
	assert_null(probe_run_start(&loop, NULL, plan, on_done, &r));
	assert_null(probe_run_start(&loop, &cfg, NULL, on_done, &r));
	assert_null(probe_run_start(&loop, &cfg, plan, NULL, &r));

	/* Nothing was left on the loop, and done never came. */
	assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(r.done_calls, 0);
	assert_int_equal(uv_loop_close(&loop), 0);
	matrix_plan_free(plan);
}

/* 30 probes at 100 per second (a burst of 1) take at least 0.29 s: asserted >= 0.2 s. */
static void test_probe_rate_limit(void **state)
{
	uint16_t closed = closed_port();
	matrix_plan_t *plan = plan_new(30);
	probe_config_t cfg = config_default();
	probe_run_t *run;
	const probe_result_t *res;
	round_t r;
	size_t n, i;

	(void)state;
	for (i = 0; i < 30; i++)
		plan_set(plan, i, "127.0.0.1", closed, VERDICT_EXPECT_DENY);
	cfg.rate = 100;
	cfg.per_host = 0;
	run = run_round(&cfg, plan, &r);
	if (r.done_ns - r.start_ns < 200 * NS_PER_MS)
		fail_msg("30 probes at rate 100 took %.3f s",
		         (double)(r.done_ns - r.start_ns) / 1e9);
	res = probe_run_results(run, &n);
	assert_int_equal(n, 30);
	for (i = 0; i < n; i++) {
		assert_int_equal(res[i].target, i);
		assert_int_equal(res[i].state, VERDICT_STATE_CLOSED);
	}
	/* The starts are spread too, not only the end delayed. */
	assert_true(res[29].at_ms - res[0].at_ms >= 200);
	probe_run_free(run);
	matrix_plan_free(plan);
}

/* Concurrency 1 runs every probe, one after the other. */
static void test_probe_concurrency_one(void **state)
{
	listener_t l, sat;
	uint16_t closed = closed_port();
	matrix_plan_t *plan = plan_new(10);
	probe_config_t cfg = config_default();
	probe_run_t *run;
	const probe_result_t *res;
	round_t r;
	size_t n, i;
	int filler;

	(void)state;
	listener_open(&l, 64);
	listener_open_saturated(&sat, &filler);
	for (i = 0; i < 8; i++)
		plan_set(plan, i, i % 2 ? "127.0.0.2" : "127.0.0.1", i % 4 ? closed : l.port,
		         VERDICT_EXPECT_DENY);
	/* Two probes that wait for their timeout: one after the other, not together. */
	plan_set(plan, 8, "127.0.0.1", sat.port, VERDICT_EXPECT_DENY);
	plan_set(plan, 9, "127.0.0.1", sat.port, VERDICT_EXPECT_DENY);
	cfg.concurrency = 1;
	cfg.timeout_ms = 100;
	run = run_round(&cfg, plan, &r);
	res = probe_run_results(run, &n);
	assert_int_equal(n, 10);
	for (i = 0; i < 8; i++) {
		assert_int_equal(res[i].target, i);
		assert_int_equal(res[i].state,
		                 i % 4 == 0 ? VERDICT_STATE_OPEN : VERDICT_STATE_CLOSED);
	}
	assert_int_equal(res[8].state, VERDICT_STATE_FILTERED);
	assert_int_equal(res[9].state, VERDICT_STATE_FILTERED);
	if (r.done_ns - r.start_ns < 200 * NS_PER_MS)
		fail_msg("two 100 ms timeouts at concurrency 1 took %.3f s",
		         (double)(r.done_ns - r.start_ns) / 1e9);
	probe_run_free(run);
	matrix_plan_free(plan);
	close(filler);
	listener_close(&sat);
	listener_close(&l);
}

/* One probe in flight per address: two timeouts to one address do not overlap. */
static void test_probe_per_host_one(void **state)
{
	listener_t sat;
	uint16_t closed = closed_port();
	matrix_plan_t *plan = plan_new(4);
	probe_config_t cfg = config_default();
	probe_run_t *run;
	const probe_result_t *res;
	round_t r;
	size_t n;
	int filler;

	(void)state;
	listener_open_saturated(&sat, &filler);
	plan_set(plan, 0, "127.0.0.1", sat.port, VERDICT_EXPECT_DENY);
	plan_set(plan, 1, "127.0.0.1", sat.port, VERDICT_EXPECT_DENY);
	plan_set(plan, 2, "127.0.0.2", closed, VERDICT_EXPECT_DENY);
	plan_set(plan, 3, "127.0.0.1", closed, VERDICT_EXPECT_DENY);
	cfg.per_host = 1;
	cfg.timeout_ms = 100;
	run = run_round(&cfg, plan, &r);
	res = probe_run_results(run, &n);
	assert_int_equal(n, 4);
	assert_int_equal(res[0].state, VERDICT_STATE_FILTERED);
	assert_int_equal(res[1].state, VERDICT_STATE_FILTERED);
	assert_int_equal(res[2].state, VERDICT_STATE_CLOSED);
	assert_int_equal(res[3].state, VERDICT_STATE_CLOSED);
	if (r.done_ns - r.start_ns < 200 * NS_PER_MS)
		fail_msg("two 100 ms timeouts to one host at per-host 1 took %.3f s",
		         (double)(r.done_ns - r.start_ns) / 1e9);
	probe_run_free(run);
	matrix_plan_free(plan);
	close(filler);
	listener_close(&sat);
}

/* A RST is an answer: an allowed path that is closed is not probed again. */
static void test_probe_closed_allowed_path_not_retried(void **state)
{
	uint16_t closed = closed_port();
	matrix_plan_t *plan = plan_new(1);
	probe_config_t cfg = config_default();
	probe_run_t *run;
	const probe_result_t *res;
	round_t r;
	size_t n;

	(void)state;
	plan_set(plan, 0, "127.0.0.1", closed, VERDICT_EXPECT_ALLOW);
	run = run_round(&cfg, plan, &r);
	res = probe_run_results(run, &n);
	assert_int_equal(n, 1);
	assert_int_equal(res[0].state, VERDICT_STATE_CLOSED);
	assert_false(res[0].retried);
	assert_null(strstr(res[0].detail, "retried"));
	probe_run_free(run);
	matrix_plan_free(plan);
}

/*
 * A timeout on an allowed path is tried once more before it counts (one lost
 * SYN must not raise an alarm); on a denied path it counts at once.
 */
static void test_probe_filtered_allowed_path_retried_once(void **state)
{
	listener_t sat;
	matrix_plan_t *plan = plan_new(2);
	probe_config_t cfg = config_default();
	probe_run_t *run;
	const probe_result_t *res;
	round_t r;
	size_t n;
	int filler;

	(void)state;
	listener_open_saturated(&sat, &filler);
	plan_set(plan, 0, "127.0.0.1", sat.port, VERDICT_EXPECT_ALLOW);
	plan_set(plan, 1, "127.0.0.1", sat.port, VERDICT_EXPECT_DENY);
	cfg.timeout_ms = 100;
	run = run_round(&cfg, plan, &r);
	res = probe_run_results(run, &n);
	assert_int_equal(n, 2);

	assert_int_equal(res[0].state, VERDICT_STATE_FILTERED);
	assert_true(res[0].retried);
	assert_non_null(strstr(res[0].detail, "no answer within 100 ms"));
	assert_non_null(strstr(res[0].detail, "(retried once)"));
	/* latency_us of a timeout is the time waited: at least the timeout. */
	assert_true(res[0].latency_us >= 100000);

	assert_int_equal(res[1].state, VERDICT_STATE_FILTERED);
	assert_false(res[1].retried);
	assert_string_equal(res[1].detail, "no answer within 100 ms");
	assert_true(res[1].latency_us >= 100000);

	/* Two timeouts in a row for the allowed path. */
	assert_true(r.done_ns - r.start_ns >= 200 * NS_PER_MS);
	probe_run_free(run);
	matrix_plan_free(plan);
	close(filler);
	listener_close(&sat);
}

/* A TLS port where the connect succeeds but no TLS comes back: open, TLS failed. */
static void test_probe_tls_handshake_timeout(void **state)
{
	listener_t l;
	uint16_t closed = closed_port();
	matrix_plan_t *plan = plan_new(3);
	probe_config_t cfg = config_default();
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	probe_run_t *run;
	const probe_result_t *res;
	round_t r;
	size_t n;

	(void)state;
	assert_non_null(ctx);
	listener_open(&l, 64);
	plan_set(plan, 0, "127.0.0.1", l.port, VERDICT_EXPECT_ALLOW)->tls = true;
	plan_set(plan, 1, "127.0.0.1", closed, VERDICT_EXPECT_ALLOW)->tls = true;
	plan_set(plan, 2, "127.0.0.1", l.port, VERDICT_EXPECT_ALLOW);
	cfg.timeout_ms = 100;
	cfg.tls_ctx = ctx;
	run = run_round(&cfg, plan, &r);
	res = probe_run_results(run, &n);
	assert_int_equal(n, 3);
	assert_int_equal(res[0].state, VERDICT_STATE_OPEN);
	assert_int_equal(res[0].tls, VERDICT_TLS_FAIL);
	assert_string_equal(res[0].detail, "handshake timed out");
	assert_true(res[0].latency_us >= 0);
	assert_false(res[0].tls_has_expiry);
	/* No connection, no handshake. */
	assert_int_equal(res[1].state, VERDICT_STATE_CLOSED);
	assert_int_equal(res[1].tls, VERDICT_TLS_NONE);
	/* Not a TLS port: no handshake either. */
	assert_int_equal(res[2].state, VERDICT_STATE_OPEN);
	assert_int_equal(res[2].tls, VERDICT_TLS_NONE);
	probe_run_free(run);

	/* Without a TLS context the handshake fails, and says why. */
	cfg.tls_ctx = NULL;
	run = run_round(&cfg, plan, &r);
	res = probe_run_results(run, &n);
	assert_int_equal(n, 3);
	assert_int_equal(res[0].state, VERDICT_STATE_OPEN);
	assert_int_equal(res[0].tls, VERDICT_TLS_FAIL);
	assert_string_equal(res[0].detail, "no TLS context");
	probe_run_free(run);

	matrix_plan_free(plan);
	SSL_CTX_free(ctx);
	listener_close(&l);
}

/* A plan derived from an inline matrix, as --once derives it. */
static void test_probe_plan_from_matrix(void **state)
{
	listener_t l;
	uint16_t closed = closed_port();
	char text[1024], err[MATRIX_ERR_MAX] = "";
	matrix_t *m;
	matrix_plan_t *plan;
	probe_config_t cfg = config_default();
	probe_run_t *run;
	const probe_result_t *res;
	round_t r;
	size_t n, i;

	(void)state;
	listener_open(&l, 64);
	snprintf(text, sizeof(text),
	         "{\"version\": 1, \"name\": \"loop\","
	         " \"probe\": {\"ports\": [%u], \"interval_s\": 60, \"timeout_ms\": 500},"
	         " \"roles\": {"
	         "  \"self\": {\"endpoints\": [\"127.0.0.9\"], \"ports\": [], \"agent\": true},"
	         "  \"svc\": {\"endpoints\": [\"127.0.0.1\"], \"ports\": [%u], \"agent\": false}},"
	         " \"allow\": [{\"from\": \"self\", \"to\": \"svc\", \"ports\": [%u]}]}",
	         closed, l.port, l.port);
	m = matrix_parse(text, strlen(text), err, sizeof(err));
	if (!m)
		fail_msg("matrix: %s", err);
	plan = matrix_plan_for_role(m, "self", "127.0.0.9", err, sizeof(err));
	if (!plan)
		fail_msg("plan: %s", err);
	cfg.timeout_ms = plan->timeout_ms;
	cfg.own_address = "127.0.0.9";
	run = run_round(&cfg, plan, &r);
	res = probe_run_results(run, &n);
	/* svc on both ports; self's own endpoint skipped. */
	assert_int_equal(n, 2);
	for (i = 0; i < n; i++) {
		const matrix_target_t *t = &plan->targets[res[i].target];

		assert_string_equal(t->dst_role, "svc");
		assert_string_equal(res[i].address, "127.0.0.1");
		if (t->port == l.port) {
			assert_int_equal(t->expected, VERDICT_EXPECT_ALLOW);
			assert_int_equal(res[i].state, VERDICT_STATE_OPEN);
		} else {
			assert_int_equal(t->port, closed);
			assert_int_equal(t->expected, VERDICT_EXPECT_DENY);
			assert_int_equal(res[i].state, VERDICT_STATE_CLOSED);
		}
	}
	probe_run_free(run);
	matrix_plan_free(plan);
	matrix_free(m);
	listener_close(&l);
}

/* Every address of a name is probed, once each, in the resolver's order, up to the cap. */
static void test_probe_resolved_addresses_and_cap(void **state)
{
	static const char *const want[] = {"127.0.0.3", "127.0.0.1", "127.0.0.2", "127.0.0.4"};
	uint16_t closed = closed_port();
	matrix_plan_t *plan = plan_new(1);
	probe_config_t cfg = config_default();
	probe_run_t *run;
	const probe_result_t *res;
	round_t r;
	size_t n, i;

	(void)state;
	assert_fake_resolver_in_place();
	plan_set(plan, 0, FAKE_MULTI, closed, VERDICT_EXPECT_DENY);

	/* The default cap is above the four distinct addresses; the duplicate is dropped. */
	run = run_round(&cfg, plan, &r);
	res = probe_run_results(run, &n);
	assert_int_equal(n, 4);
	for (i = 0; i < n; i++) {
		assert_int_equal(res[i].target, 0);
		assert_int_equal(res[i].order, i);
		assert_string_equal(res[i].address, want[i]);
		assert_int_equal(res[i].state, VERDICT_STATE_CLOSED);
	}
	probe_run_free(run);

	cfg.max_addresses = 2;
	run = run_round(&cfg, plan, &r);
	res = probe_run_results(run, &n);
	assert_int_equal(n, 2);
	assert_string_equal(res[0].address, "127.0.0.3");
	assert_string_equal(res[1].address, "127.0.0.1");
	probe_run_free(run);

	/* The own address is skipped without using up the cap. */
	cfg.own_address = "127.0.0.1";
	run = run_round(&cfg, plan, &r);
	res = probe_run_results(run, &n);
	assert_int_equal(n, 2);
	assert_string_equal(res[0].address, "127.0.0.3");
	assert_string_equal(res[1].address, "127.0.0.2");
	probe_run_free(run);
	matrix_plan_free(plan);
}

/* A name that does not resolve is an error on each of its ports, never a closed path. */
static void test_probe_dns_failure_is_an_error(void **state)
{
	uint16_t closed = closed_port();
	matrix_plan_t *plan = plan_new(3);
	probe_config_t cfg = config_default();
	probe_run_t *run;
	const probe_result_t *res;
	round_t r;
	size_t n, i;

	(void)state;
	assert_fake_resolver_in_place();
	plan_set(plan, 0, FAKE_NONE, 443, VERDICT_EXPECT_ALLOW);
	plan_set(plan, 1, "127.0.0.1", closed, VERDICT_EXPECT_DENY);
	plan_set(plan, 2, FAKE_NONE, 3306, VERDICT_EXPECT_DENY);
	run = run_round(&cfg, plan, &r);
	res = probe_run_results(run, &n);
	assert_int_equal(n, 3);
	for (i = 0; i < n; i++)
		assert_int_equal(res[i].target, i);
	for (i = 0; i < n; i += 2) {
		assert_int_equal(res[i].state, VERDICT_STATE_ERROR);
		assert_string_equal(res[i].address, "");
		assert_int_equal(res[i].latency_us, -1);
		if (strncmp(res[i].detail, "dns: ", 5))
			fail_msg("detail of a DNS failure: \"%s\"", res[i].detail);
		assert_true(res[i].at_ms >= r.wall_before_ms);
		assert_true(res[i].at_ms <= r.wall_after_ms);
	}
	assert_int_equal(res[1].state, VERDICT_STATE_CLOSED);
	probe_run_free(run);
	matrix_plan_free(plan);
}

/*
 * An answer that arrives after connect() returned goes through the event loop:
 * a RST there is still closed (not a local error), and a handshake still open.
 */
static void test_probe_late_answers_through_the_loop(void **state)
{
	listener_t l;
	uint16_t closed = closed_port();
	matrix_plan_t *plan;
	probe_config_t cfg = config_default();
	probe_run_t *run;
	const probe_result_t *res;
	round_t r;
	size_t n;

	(void)state;
	listener_open(&l, 64);
	plan = plan_new(2);
	plan_set(plan, 0, "127.0.0.1", l.port, VERDICT_EXPECT_ALLOW);
	plan_set(plan, 1, "127.0.0.1", closed, VERDICT_EXPECT_DENY);
	pretend_connecting = true;
	run = run_round(&cfg, plan, &r);
	pretend_connecting = false;
	res = probe_run_results(run, &n);
	assert_int_equal(n, 2);
	assert_int_equal(res[0].state, VERDICT_STATE_OPEN);
	assert_int_equal(res[1].state, VERDICT_STATE_CLOSED);
	assert_string_equal(res[1].detail, "connection refused (RST)");
	probe_run_free(run);
	matrix_plan_free(plan);
	listener_close(&l);
}

/* The descriptors this process holds. */
static unsigned open_fds(void)
{
	DIR *dir = opendir("/proc/self/fd");
	struct dirent *e;
	unsigned n = 0;

	assert_non_null(dir);
	while ((e = readdir(dir)))
		n += e->d_name[0] != '.';
	closedir(dir);
	return n - 1; /* the directory's own */
}

typedef struct {
	uv_timer_t timer;
	probe_run_t *run;
	round_t *round;
	uint64_t cancel_ns;
	unsigned slow_done_at_done; /* slow lookups returned when done came */
} canceller_t;

static void on_cancel_timer(uv_timer_t *t)
{
	canceller_t *c = container_of(t, canceller_t, timer);

	c->cancel_ns = uv_hrtime();
	probe_run_cancel(c->run);
	/* A second cancel changes nothing. */
	probe_run_cancel(c->run);
	uv_close((uv_handle_t *)t, NULL);
}

static void on_cancelled_done(probe_run_t *run, void *arg)
{
	canceller_t *c = arg;

	on_done(run, c->round);
	c->slow_done_at_done = atomic_load(&slow_lookups_done);
}

/*
 * SIGTERM in the middle of a round: probe_run_cancel() ends the probes in
 * flight (a connect waiting for its timeout, a TLS handshake waiting for the
 * server), drops the ones not started and the name still being resolved, and
 * completes the round with the results recorded so far, without waiting for
 * any timeout or for the resolver. Every socket is closed.
 */
static void test_probe_cancel_ends_the_round_at_once(void **state)
{
	listener_t sat, tls;
	uint16_t closed = closed_port();
	matrix_plan_t *plan = plan_new(5);
	probe_config_t cfg = config_default();
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	canceller_t c;
	round_t r;
	uv_loop_t loop;
	const probe_result_t *res;
	size_t n;
	unsigned fds_before, slow_before;
	int filler, peer;
	char byte;

	(void)state;
	assert_fake_resolver_in_place();
	assert_non_null(ctx);
	listener_open_saturated(&sat, &filler);
	listener_open(&tls, 64);
	plan_set(plan, 0, "127.0.0.1", closed, VERDICT_EXPECT_DENY);    /* settled at once */
	plan_set(plan, 1, "127.0.0.1", sat.port, VERDICT_EXPECT_ALLOW); /* waits 30 s */
	plan_set(plan, 2, "127.0.0.1", tls.port, VERDICT_EXPECT_ALLOW)->tls = true;
	plan_set(plan, 3, "127.0.0.1", closed, VERDICT_EXPECT_DENY); /* queued */
	plan_set(plan, 4, FAKE_SLOW, closed, VERDICT_EXPECT_DENY);   /* still resolving */
	cfg.timeout_ms = 30000;
	cfg.concurrency = 2;
	cfg.per_host = 0;
	cfg.tls_ctx = ctx;
	fds_before = open_fds();
	slow_before = atomic_load(&slow_lookups_done);

	memset(&r, 0, sizeof(r));
	memset(&c, 0, sizeof(c));
	c.round = &r;
	assert_int_equal(uv_loop_init(&loop), 0);
	r.start_ns = uv_hrtime();
	c.run = probe_run_start(&loop, &cfg, plan, on_cancelled_done, &c);
	assert_non_null(c.run);
	assert_false(probe_run_cancelled(c.run));
	uv_timer_init(&loop, &c.timer);
	uv_timer_start(&c.timer, on_cancel_timer, 200, 0);
	assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(r.done_calls, 1);
	assert_ptr_equal(r.run_seen, c.run);
	assert_int_equal(uv_loop_close(&loop), 0);

	/* The round ended without waiting for the resolver (nor the 30 s timeouts). */
	assert_int_equal(c.slow_done_at_done, slow_before);
	assert_int_equal(atomic_load(&slow_lookups_done), slow_before + 1);
	assert_true(c.cancel_ns > 0 && r.done_ns >= c.cancel_ns);
	assert_true(probe_run_cancelled(c.run));
	/* Only what was observed before the cancel: the first closed port. */
	res = probe_run_results(c.run, &n);
	assert_int_equal(n, 1);
	assert_int_equal(res[0].target, 0);
	assert_int_equal(res[0].state, VERDICT_STATE_CLOSED);
	/* Every probe's socket is closed: the TLS server sees the end of its stream. */
	assert_int_equal(open_fds(), fds_before);
	peer = accept(tls.fd, NULL, NULL);
	assert_true(peer >= 0);
	while (read(peer, &byte, 1) > 0)
		; /* the ClientHello */
	close(peer);

	/* Cancelling a finished run, or none, does nothing. */
	probe_run_cancel(c.run);
	probe_run_cancel(NULL);
	probe_run_free(c.run);
	matrix_plan_free(plan);
	SSL_CTX_free(ctx);
	close(filler);
	listener_close(&sat);
	listener_close(&tls);
}

/* A cancel straight after the start still completes the round, from the loop. */
static void test_probe_cancel_before_the_loop_runs(void **state)
{
	listener_t sat;
	matrix_plan_t *plan = plan_new(1);
	probe_config_t cfg = config_default();
	probe_run_t *run;
	uv_loop_t loop;
	round_t r;
	size_t n;
	int filler;

	(void)state;
	listener_open_saturated(&sat, &filler);
	plan_set(plan, 0, "127.0.0.1", sat.port, VERDICT_EXPECT_DENY);
	cfg.timeout_ms = 30000;
	memset(&r, 0, sizeof(r));
	assert_int_equal(uv_loop_init(&loop), 0);
	run = probe_run_start(&loop, &cfg, plan, on_done, &r);
	assert_non_null(run);
	probe_run_cancel(run);
	assert_int_equal(r.done_calls, 0);
	assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(r.done_calls, 1);
	assert_int_equal(uv_loop_close(&loop), 0);
	probe_run_results(run, &n);
	assert_int_equal(n, 0);
	probe_run_free(run);
	matrix_plan_free(plan);
	close(filler);
	listener_close(&sat);
}

/* What `--once` and the daemon's round line report: liveness within the round. */
static void test_probe_judge_liveness_within_the_results(void **state)
{
	matrix_plan_t *plan = plan_new(4);
	probe_result_t res[5];
	verdict_t v[5];
	bool alive[5];

	(void)state;
	plan_set(plan, 0, "a.test", 80, VERDICT_EXPECT_ALLOW);
	plan_set(plan, 1, "a.test", 22, VERDICT_EXPECT_DENY);
	plan_set(plan, 2, "b.test", 22, VERDICT_EXPECT_DENY);
	plan_set(plan, 3, "gone.test", 22, VERDICT_EXPECT_DENY);
	memset(res, 0, sizeof(res));
	/* 10.0.0.1 answered on 80, so its timeout on 22 proves the deny: ok. */
	res[0] = (probe_result_t){.target = 0, .address = "10.0.0.1", .state = VERDICT_STATE_OPEN};
	res[1] =
	    (probe_result_t){.target = 1, .address = "10.0.0.1", .state = VERDICT_STATE_FILTERED};
	/* Nothing shows 10.0.0.2 alive: its timeout proves nothing. */
	res[2] =
	    (probe_result_t){.target = 2, .address = "10.0.0.2", .state = VERDICT_STATE_FILTERED};
	/* A failed lookup has no address, and proves no other one alive. */
	res[3] = (probe_result_t){.target = 3, .address = "", .state = VERDICT_STATE_ERROR};
	/* A denied path answered by RST: open to the packet, a violation. */
	res[4] =
	    (probe_result_t){.target = 2, .address = "10.0.0.3", .state = VERDICT_STATE_CLOSED};
	assert_int_equal(probe_judge(plan, res, 5, alive, v), 0);
	assert_int_equal(v[0], VERDICT_OK);
	assert_int_equal(v[1], VERDICT_OK);
	assert_true(alive[1]);
	assert_int_equal(v[2], VERDICT_UNVERIFIED);
	assert_false(alive[2]);
	assert_int_equal(v[3], VERDICT_INCONCLUSIVE);
	assert_false(alive[3]);
	assert_int_equal(v[4], VERDICT_VIOLATION);
	/* alive may be left out. */
	memset(v, 0xff, sizeof(v));
	assert_int_equal(probe_judge(plan, res, 5, NULL, v), 0);
	assert_int_equal(v[1], VERDICT_OK);
	assert_int_equal(v[2], VERDICT_UNVERIFIED);
	assert_int_equal(probe_judge(plan, res, 0, NULL, v), 0);
	matrix_plan_free(plan);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_probe_open_and_closed_ports),
	    cmocka_unit_test(test_probe_late_answers_through_the_loop),
	    cmocka_unit_test(test_probe_results_ordered_by_target),
	    cmocka_unit_test(test_probe_skips_own_address),
	    cmocka_unit_test(test_probe_own_address_only_that_address),
	    cmocka_unit_test(test_probe_skips_targets_not_to_probe),
	    cmocka_unit_test(test_probe_localhost_resolves_to_loopback),
	    cmocka_unit_test(test_probe_empty_plan_finishes),
	    cmocka_unit_test(test_probe_start_refuses_invalid_config),
	    cmocka_unit_test(test_probe_rate_limit),
	    cmocka_unit_test(test_probe_concurrency_one),
	    cmocka_unit_test(test_probe_per_host_one),
	    cmocka_unit_test(test_probe_closed_allowed_path_not_retried),
	    cmocka_unit_test(test_probe_filtered_allowed_path_retried_once),
	    cmocka_unit_test(test_probe_tls_handshake_timeout),
	    cmocka_unit_test(test_probe_plan_from_matrix),
	    cmocka_unit_test(test_probe_resolved_addresses_and_cap),
	    cmocka_unit_test(test_probe_dns_failure_is_an_error),
	    cmocka_unit_test(test_probe_cancel_ends_the_round_at_once),
	    cmocka_unit_test(test_probe_cancel_before_the_loop_runs),
	    cmocka_unit_test(test_probe_judge_liveness_within_the_results),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
