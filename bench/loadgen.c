/*
 * loadgen: the load generator of the ingest and publishing benchmarks (bench/ingest.sh,
 * bench/publish.sh).
 *
 *   loadgen sgprobe URL KEYID SECRET [options]
 *   loadgen pushgateway URLBASE [options]
 *
 *   --connections N  concurrent keep-alive HTTP/1.1 connections (default 32)
 *   --seconds S      how long to send (default 10)
 *   --agents N       simulated agents, rotated over (default 500)
 *   --results N      results per report, 1-20 (default 20)
 *   --violations K   denied cells reported open, 0-5 (default 0)
 *
 * Both modes send the same N results of the same simulated agents: as signed
 * `sgprobe.report/v1` documents POSTed to sgprobe-collector's /v1/reports, or as
 * Prometheus text PUT to Pushgateway's /metrics/job/sgprobe/instance/<agent>.
 * Every request is distinct (each agent's seq grows by one per report) and every
 * sgprobe request is signed afresh with the current time. What does not change
 * between requests is built once: each agent's document is encoded at start and
 * kept as the text before and after its seq, so that a request costs a copy, the
 * seq's digits and, for sgprobe, the signature (SHA-256 of the body and an HMAC).
 *
 * --violations K (bench/publish.sh) reports as `open`, instead of timing out, every
 * target of the first K denied cells of the plan (destination role and port) whose
 * addresses an allowed path of the plan already shows alive: K cells of the matrix
 * are then `violation` and no other cell changes. (A denied path towards an address
 * nothing shows alive is `unverified`; an answer from it would prove the address
 * alive and turn that address's other cells `ok`. api-a and api-b share a cell.)
 * The plan has 5 such cells; both modes send the same results.
 *
 * One thread drives libcurl's multi interface from a libuv loop (epoll, through
 * curl_multi_socket_action), so that the generator's cost per request stays well
 * below the server's. Each of the N easy handles is reused as soon as its answer
 * is in, and keeps one connection from the multi's cache for the whole run.
 * At the end it prints one JSON line:
 *   {"mode", "requests", "ok", "errors", "seconds", "rate", "connects", "cpu_s", "status"}
 * where ok counts 202 (sgprobe) or 200/202 (Pushgateway), rate is ok per second,
 * connects the connections opened (N when keep-alive held), cpu_s this process's
 * user + system CPU time, and status the count of each HTTP status (0: no answer).
 * Exit status: 0 when every request succeeded, 1 when some did not, 2 on usage.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <uv.h>

#include "sgprobe/auth.h"
#include "sgprobe/report.h"
#include "sgprobe/strbuf.h"
#include "sgprobe/container.h"

#define EXIT_USAGE      2
#define MAX_CONNECTIONS 1024
#define MAX_AGENTS      100000
#define MAX_SECONDS     86400
#define MAX_STATUS      600
#define AUTH_HEADER_MAX 512
#define SEQ_DIGITS_MAX  24

/* The latency of a denied path reported open (--violations), in µs. */
#define VIOLATION_LATENCY_US 400

/* The seq written into each agent's template and then cut out of it: REPORT_MAX_SEQ,
 * the largest the encoder takes, whose 16 digits appear nowhere else in a report. */
#define SEQ_PLACEHOLDER REPORT_MAX_SEQ

/* A transfer that takes longer than this has failed (ms). */
#define REQUEST_TIMEOUT_MS 30000

typedef enum {
	MODE_SGPROBE = 0, /* signed JSON reports to sgprobe-collector */
	MODE_PUSHGATEWAY  /* Prometheus text to Pushgateway */
} load_mode_t;

/* One observation of the simulated agents' plan (bench/ingest.sh's matrix, role web). */
typedef struct {
	const char *dst_role;
	const char *target;
	const char *address;
	uint16_t port;
	verdict_expect_t expected;
	verdict_state_t state;
	int64_t latency_us;
} plan_result_t;

/* Role web's 20 targets in the benchmark's matrix: its allowed paths answer, its
 * denied paths time out after the matrix's 1000 ms. */
static const plan_result_t plan_results[] = {
    {"web", "web.bench.internal", "127.0.2.10", 22, VERDICT_EXPECT_DENY, VERDICT_STATE_FILTERED,
     1000000},
    {"web", "web.bench.internal", "127.0.2.10", 80, VERDICT_EXPECT_DENY, VERDICT_STATE_FILTERED,
     1000000},
    {"web", "web.bench.internal", "127.0.2.10", 443, VERDICT_EXPECT_DENY, VERDICT_STATE_FILTERED,
     1000000},
    {"api", "api-a.bench.internal", "127.0.2.20", 8000, VERDICT_EXPECT_ALLOW, VERDICT_STATE_OPEN,
     420},
    {"api", "api-a.bench.internal", "127.0.2.20", 22, VERDICT_EXPECT_DENY, VERDICT_STATE_FILTERED,
     1000000},
    {"api", "api-b.bench.internal", "127.0.2.21", 8000, VERDICT_EXPECT_ALLOW, VERDICT_STATE_OPEN,
     450},
    {"api", "api-b.bench.internal", "127.0.2.21", 22, VERDICT_EXPECT_DENY, VERDICT_STATE_FILTERED,
     1000000},
    {"db", "db.bench.internal", "127.0.2.30", 5432, VERDICT_EXPECT_DENY, VERDICT_STATE_FILTERED,
     1000000},
    {"db", "db.bench.internal", "127.0.2.30", 22, VERDICT_EXPECT_DENY, VERDICT_STATE_FILTERED,
     1000000},
    {"cache", "cache-a.bench.internal", "127.0.2.40", 6379, VERDICT_EXPECT_ALLOW,
     VERDICT_STATE_OPEN, 310},
    {"cache", "cache-a.bench.internal", "127.0.2.40", 22, VERDICT_EXPECT_DENY,
     VERDICT_STATE_FILTERED, 1000000},
    {"cache", "cache-b.bench.internal", "127.0.2.41", 6379, VERDICT_EXPECT_ALLOW,
     VERDICT_STATE_OPEN, 330},
    {"cache", "cache-b.bench.internal", "127.0.2.41", 22, VERDICT_EXPECT_DENY,
     VERDICT_STATE_FILTERED, 1000000},
    {"queue", "queue.bench.internal", "127.0.2.50", 5672, VERDICT_EXPECT_ALLOW, VERDICT_STATE_OPEN,
     510},
    {"queue", "queue.bench.internal", "127.0.2.50", 22, VERDICT_EXPECT_DENY, VERDICT_STATE_FILTERED,
     1000000},
    {"search", "search.bench.internal", "127.0.2.60", 9200, VERDICT_EXPECT_ALLOW,
     VERDICT_STATE_OPEN, 600},
    {"search", "search.bench.internal", "127.0.2.60", 9300, VERDICT_EXPECT_DENY,
     VERDICT_STATE_FILTERED, 1000000},
    {"search", "search.bench.internal", "127.0.2.60", 22, VERDICT_EXPECT_DENY,
     VERDICT_STATE_FILTERED, 1000000},
    {"admin", "admin.bench.internal", "127.0.2.70", 8443, VERDICT_EXPECT_DENY,
     VERDICT_STATE_FILTERED, 1000000},
    {"admin", "admin.bench.internal", "127.0.2.70", 22, VERDICT_EXPECT_DENY, VERDICT_STATE_FILTERED,
     1000000},
};

#define PLAN_RESULTS (sizeof(plan_results) / sizeof(plan_results[0]))
#define AGENT_ROLE   "web"

typedef struct {
	load_mode_t mode;
	const char *url; /* sgprobe: the reports URL; pushgateway: the base URL */
	const char *key_id;
	const char *secret;
	unsigned connections;
	unsigned seconds;
	unsigned agents;
	unsigned results;
	unsigned violations;
} args_t;

/* One simulated agent: its request, pre-built around its seq. */
typedef struct {
	char id[32];
	char *url;    /* pushgateway: its grouping key's URL; NULL for sgprobe (one URL) */
	char *prefix; /* the body up to the seq's digits; owned */
	size_t prefix_len;
	char *suffix; /* the body after them; owned */
	size_t suffix_len;
	uint64_t seq; /* the last seq sent */
	bool busy;    /* a request of this agent is in flight: its next must wait */
} agent_t;

struct loadgen_s;

/* One connection's worth of work: an easy handle reused for every request. */
typedef struct {
	CURL *easy;
	struct curl_slist *headers; /* owned; rebuilt per request (the signature changes) */
	char *body;                 /* owned; body_cap bytes */
	size_t body_cap;
	agent_t *agent; /* whose request is in flight; NULL when idle */
} slot_t;

/* One socket libcurl asked to watch; kept per descriptor for the whole run, so
 * that a kept-alive connection going idle and busy again costs no allocation. */
typedef struct {
	uv_poll_t poll;
	struct loadgen_s *owner;
	curl_socket_t fd;
	bool initialised;
} sock_t;

typedef struct loadgen_s {
	args_t args;
	plan_result_t plan[PLAN_RESULTS]; /* plan_results with --violations applied */
	uv_loop_t loop;
	uv_timer_t timer; /* libcurl's timeout */
	sock_t **socks;   /* by descriptor; owned */
	size_t n_socks;
	uint64_t deadline; /* uv_now() after which no request starts (ms) */
	bool sending;
	bool closing; /* the loop is being torn down: libcurl's callbacks are ignored */
	int error;    /* the first local failure during the run, a negative errno */
	CURLM *multi;
	agent_t *agents;
	slot_t *slots;
	size_t next_agent;
	char *sign_path; /* sgprobe: the request target that is signed (path and query) */
	char boot[48];   /* this run's boot id: reruns against one collector are not duplicates */
	uint64_t in_flight;
	uint64_t requests;
	uint64_t ok;
	uint64_t connects;
	uint64_t status[MAX_STATUS]; /* by HTTP status; 0: no answer */
} loadgen_t;

static void usage(FILE *f)
{
	fputs("usage: loadgen sgprobe URL KEYID SECRET [options]\n"
	      "       loadgen pushgateway URLBASE [options]\n"
	      "\n"
	      "  --connections N  keep-alive connections (default 32)\n"
	      "  --seconds S      how long to send (default 10)\n"
	      "  --agents N       simulated agents, rotated over (default 500)\n"
	      "  --results N      results per report, 1-20 (default 20)\n"
	      "  --violations K   denied cells reported open, 0-5 (default 0)\n",
	      f);
}

static int parse_unsigned(const char *flag, const char *s, unsigned lo, unsigned hi, unsigned *out)
{
	char *end = NULL;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (!*s || *s == '-' || *s == '+' || errno || *end || v < lo || v > hi) {
		fprintf(stderr, "loadgen: --%s: '%s' is not an integer in %u-%u\n", flag, s, lo,
		        hi);
		return -EINVAL;
	}
	*out = (unsigned)v;
	return 0;
}

static int parse_args(args_t *a, int argc, char **argv)
{
	static const struct option options[] = {
	    {"connections", required_argument, NULL, 'c'},
	    {"seconds", required_argument, NULL, 's'},
	    {"agents", required_argument, NULL, 'a'},
	    {"results", required_argument, NULL, 'r'},
	    {"violations", required_argument, NULL, 'v'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int opt, result = 0;
	int npos;

	memset(a, 0, sizeof(*a));
	a->connections = 32;
	a->seconds = 10;
	a->agents = 500;
	a->results = PLAN_RESULTS;
	for (;;) {
		opt = getopt_long(argc, argv, "", options, NULL);
		if (opt == -1)
			break;
		switch (opt) {
		case 'c':
			result = parse_unsigned("connections", optarg, 1, MAX_CONNECTIONS,
			                        &a->connections);
			break;
		case 's':
			result = parse_unsigned("seconds", optarg, 1, MAX_SECONDS, &a->seconds);
			break;
		case 'a':
			result = parse_unsigned("agents", optarg, 1, MAX_AGENTS, &a->agents);
			break;
		case 'r':
			result = parse_unsigned("results", optarg, 1, PLAN_RESULTS, &a->results);
			break;
		case 'v':
			result =
			    parse_unsigned("violations", optarg, 0, PLAN_RESULTS, &a->violations);
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			return -EINVAL;
		}
		if (result)
			return result;
	}
	npos = argc - optind;
	if (npos >= 1 && !strcmp(argv[optind], "sgprobe") && npos == 4) {
		a->mode = MODE_SGPROBE;
		a->url = argv[optind + 1];
		a->key_id = argv[optind + 2];
		a->secret = argv[optind + 3];
	} else if (npos >= 1 && !strcmp(argv[optind], "pushgateway") && npos == 2) {
		a->mode = MODE_PUSHGATEWAY;
		a->url = argv[optind + 1];
	} else {
		usage(stderr);
		return -EINVAL;
	}
	if (a->agents < a->connections) {
		/* Each connection carries a different agent's report at any time. */
		fprintf(stderr, "loadgen: --agents must be at least --connections\n");
		return -EINVAL;
	}
	return 0;
}

static uint64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/*
 * Cuts `cut_len` bytes at `at` out of `text` (which `at` points into): what is
 * before becomes the agent's prefix, what is after its suffix. Takes ownership
 * of `text`. Returns 0 or -ENOMEM.
 */
static int split_template(agent_t *ag, char *text, char *at, size_t cut_len)
{
	ag->suffix = strdup(at + cut_len);
	if (!ag->suffix) {
		free(text);
		return -ENOMEM;
	}
	ag->suffix_len = strlen(ag->suffix);
	*at = '\0';
	ag->prefix = text;
	ag->prefix_len = (size_t)(at - text);
	return 0;
}

/* Finds `marker` in `text`; NULL unless it occurs exactly once. */
static char *find_once(char *text, const char *marker)
{
	char *at = strstr(text, marker);

	if (!at || strstr(at + 1, marker))
		return NULL;
	return at;
}

/* Whether results `j` and `k` share a cell (destination role and port). */
static bool same_cell(const plan_result_t *plan, unsigned j, unsigned k)
{
	return plan[j].port == plan[k].port && !strcmp(plan[j].dst_role, plan[k].dst_role);
}

/* Whether an allowed path among the first `n` results answers at `address`. */
static bool address_shown_alive(const plan_result_t *plan, unsigned n, const char *address)
{
	unsigned k;

	for (k = 0; k < n; k++)
		if (plan[k].expected == VERDICT_EXPECT_ALLOW &&
		    plan[k].state == VERDICT_STATE_OPEN && !strcmp(plan[k].address, address))
			return true;
	return false;
}

/*
 * Copies the plan and applies --violations: every target of the first K denied
 * cells whose addresses the plan shows alive answers `open`. Returns 0, or -EINVAL
 * (with a message) when the results sent have fewer such cells than K.
 */
static int build_plan(loadgen_t *lg)
{
	const unsigned n = lg->args.results;
	unsigned j, k, cells = 0;

	memcpy(lg->plan, plan_results, sizeof(lg->plan));
	for (j = 0; j < n && cells < lg->args.violations; j++) {
		bool first = true, eligible = true;

		if (lg->plan[j].expected != VERDICT_EXPECT_DENY)
			continue;
		for (k = 0; k < n; k++) {
			if (lg->plan[k].expected != VERDICT_EXPECT_DENY ||
			    !same_cell(lg->plan, j, k))
				continue;
			if (k < j)
				first = false;
			if (!address_shown_alive(plan_results, n, lg->plan[k].address))
				eligible = false;
		}
		if (!first || !eligible)
			continue;
		for (k = j; k < n; k++) {
			if (lg->plan[k].expected != VERDICT_EXPECT_DENY ||
			    !same_cell(lg->plan, j, k))
				continue;
			lg->plan[k].state = VERDICT_STATE_OPEN;
			lg->plan[k].latency_us = VIOLATION_LATENCY_US;
		}
		cells++;
	}
	if (cells < lg->args.violations) {
		fprintf(
		    stderr,
		    "loadgen: --violations %u: the %u results sent have %u denied cells towards "
		    "addresses shown alive\n",
		    lg->args.violations, n, cells);
		return -EINVAL;
	}
	return 0;
}

/* Encodes agent `i`'s report with the library's own encoder, seq left as a marker. */
static int build_report(const loadgen_t *lg, agent_t *ag, unsigned i, const char *now)
{
	report_t *r = report_new();
	report_result_t res;
	char address[32], marker[48];
	char *text, *at;
	int result = 0;
	unsigned k;

	if (!r)
		return -ENOMEM;
	snprintf(address, sizeof(address), "127.1.%u.%u", i / 250, i % 250 + 1);
	result |= report_set_string(&r->agent.id, ag->id);
	result |= report_set_string(&r->agent.role, AGENT_ROLE);
	result |= report_set_string(&r->agent.cluster, "bench");
	result |= report_set_string(&r->agent.az, i % 2 ? "az-b" : "az-a");
	result |= report_set_string(&r->agent.address, address);
	result |= report_set_string(&r->agent.version, "loadgen");
	result |= report_set_string(&r->agent.boot, lg->boot);
	result |= report_set_string(&r->sent_at, now);
	if (result) {
		result = -ENOMEM;
		goto out;
	}
	r->seq = SEQ_PLACEHOLDER;
	r->mode = REPORT_MODE_DAEMON;
	r->interval_s = 60;
	r->round_ms = 1050;
	r->final = false;
	for (k = 0; k < lg->args.results; k++) {
		const plan_result_t *p = &lg->plan[k];

		memset(&res, 0, sizeof(res));
		res.dst_role = (char *)p->dst_role;
		res.target = (char *)p->target;
		res.address = (char *)p->address;
		res.port = p->port;
		res.expected = p->expected;
		res.state = p->state;
		res.latency_us = p->latency_us;
		res.at = (char *)now;
		result = report_add_result(r, &res);
		if (result)
			goto out;
	}
	text = report_encode(r);
	if (!text) {
		result = -ENOMEM;
		goto out;
	}
	/* The digits of the placeholder, found by their key so that nothing else matches. */
	snprintf(marker, sizeof(marker), "\"seq\":%" PRIu64 ",", (uint64_t)SEQ_PLACEHOLDER);
	at = find_once(text, marker);
	if (!at) {
		free(text);
		result = -EINVAL;
		goto out;
	}
	result =
	    split_template(ag, text, at + strlen("\"seq\":"), strlen(marker) - strlen("\"seq\":,"));
out:
	report_free(r);
	return result;
}

/*
 * The same results as Prometheus text, as an exporter on the agent would push
 * them: a state series and a latency gauge per result, and the report's seq last
 * so that it can be cut out and every push differs.
 */
static int build_text(const loadgen_t *lg, agent_t *ag)
{
	strbuf_t b = {0};
	char *buf;
	unsigned k;

	strbuf_adds(&b, "# TYPE sgprobe_probe_state gauge\n");
	for (k = 0; k < lg->args.results; k++) {
		const plan_result_t *p = &lg->plan[k];

		strbuf_addf(&b,
		            "sgprobe_probe_state{dst_role=\"%s\",target=\"%s\",address=\"%s\","
		            "port=\"%u\",expected=\"%s\",state=\"%s\"} 1\n",
		            p->dst_role, p->target, p->address, (unsigned)p->port,
		            verdict_expect_name(p->expected), verdict_state_name(p->state));
	}
	strbuf_adds(&b, "# TYPE sgprobe_probe_latency_seconds gauge\n");
	for (k = 0; k < lg->args.results; k++) {
		const plan_result_t *p = &lg->plan[k];

		strbuf_addf(&b,
		            "sgprobe_probe_latency_seconds{dst_role=\"%s\",target=\"%s\","
		            "address=\"%s\",port=\"%u\"} %.6f\n",
		            p->dst_role, p->target, p->address, (unsigned)p->port,
		            (double)p->latency_us / 1e6);
	}
	strbuf_adds(&b, "# TYPE sgprobe_report_seq gauge\nsgprobe_report_seq @SEQ@\n");
	buf = strbuf_take(&b);
	if (!buf)
		return -ENOMEM;
	return split_template(ag, buf, strstr(buf, "@SEQ@"), strlen("@SEQ@"));
}

/* Builds every agent's template and, for Pushgateway, its grouping key's URL. */
static int build_agents(loadgen_t *lg)
{
	const char *base = lg->args.url;
	size_t base_len = strlen(base);
	char now[32];
	unsigned i;
	int result;

	while (base_len > 0 && base[base_len - 1] == '/')
		base_len--;
	report_format_time(wall_ms(), now, sizeof(now));
	lg->agents = calloc(lg->args.agents, sizeof(*lg->agents));
	if (!lg->agents)
		return -ENOMEM;
	for (i = 0; i < lg->args.agents; i++) {
		agent_t *ag = &lg->agents[i];

		snprintf(ag->id, sizeof(ag->id), "bench-web-%03u", i);
		if (lg->args.mode == MODE_SGPROBE) {
			result = build_report(lg, ag, i, now);
		} else {
			size_t n = base_len + strlen("/metrics/job/sgprobe/instance/") +
			           strlen(ag->id) + 1;

			ag->url = malloc(n);
			if (!ag->url)
				return -ENOMEM;
			snprintf(ag->url, n, "%.*s/metrics/job/sgprobe/instance/%s", (int)base_len,
			         base, ag->id);
			result = build_text(lg, ag);
		}
		if (result)
			return result;
	}
	return 0;
}

/* The request target of the reports URL, as the collector sees it and verifies it. */
static int sign_path_of(loadgen_t *lg)
{
	CURLU *u = curl_url();
	char *path = NULL, *query = NULL;
	CURLUcode uc;
	int result = -EINVAL;
	size_t n;

	if (!u)
		return -ENOMEM;
	uc = curl_url_set(u, CURLUPART_URL, lg->args.url, 0);
	if (uc) {
		fprintf(stderr, "loadgen: %s: %s\n", lg->args.url, curl_url_strerror(uc));
		goto out;
	}
	uc = curl_url_get(u, CURLUPART_PATH, &path, 0);
	if (uc) {
		fprintf(stderr, "loadgen: %s: %s\n", lg->args.url, curl_url_strerror(uc));
		goto out;
	}
	curl_url_get(u, CURLUPART_QUERY, &query, 0);
	n = strlen(path) + (query ? strlen(query) + 1 : 0) + 1;
	lg->sign_path = malloc(n);
	if (!lg->sign_path) {
		result = -ENOMEM;
		goto out;
	}
	snprintf(lg->sign_path, n, "%s%s%s", path, query ? "?" : "", query ? query : "");
	result = 0;
out:
	curl_free(path);
	curl_free(query);
	curl_url_cleanup(u);
	return result;
}

static size_t on_body(char *ptr, size_t size, size_t n, void *arg)
{
	(void)ptr;
	(void)arg;
	return size * n;
}

/* The next agent with no request in flight, in rotation. */
static agent_t *next_agent(loadgen_t *lg)
{
	size_t tries;

	for (tries = 0; tries < lg->args.agents; tries++) {
		agent_t *ag = &lg->agents[lg->next_agent];

		lg->next_agent = (lg->next_agent + 1) % lg->args.agents;
		if (!ag->busy)
			return ag;
	}
	return NULL;
}

/* Builds the slot's next request (a fresh seq, a fresh signature) and adds it. */
static int start_request(loadgen_t *lg, slot_t *slot)
{
	agent_t *ag = next_agent(lg);
	char seq[SEQ_DIGITS_MAX], auth[AUTH_HEADER_MAX + 16];
	size_t seq_len, len;
	struct curl_slist *h = NULL, *next;
	CURLMcode mc;
	int result, n;

	if (!ag)
		return -EAGAIN;
	n = snprintf(seq, sizeof(seq), "%" PRIu64, ag->seq + 1);
	seq_len = (size_t)n;
	len = ag->prefix_len + seq_len + ag->suffix_len;
	if (len > slot->body_cap) {
		char *p = realloc(slot->body, len);

		if (!p)
			return -ENOMEM;
		slot->body = p;
		slot->body_cap = len;
	}
	memcpy(slot->body, ag->prefix, ag->prefix_len);
	memcpy(slot->body + ag->prefix_len, seq, seq_len);
	memcpy(slot->body + ag->prefix_len + seq_len, ag->suffix, ag->suffix_len);

	curl_slist_free_all(slot->headers);
	slot->headers = NULL;
	if (lg->args.mode == MODE_SGPROBE) {
		memcpy(auth, "Authorization: ", strlen("Authorization: "));
		result =
		    auth_header(lg->args.key_id, (const unsigned char *)lg->args.secret,
		                strlen(lg->args.secret), "POST", lg->sign_path, (int64_t)time(NULL),
		                slot->body, len, auth + strlen("Authorization: "),
		                sizeof(auth) - strlen("Authorization: "));
		if (result)
			return result;
		h = curl_slist_append(h, auth);
		next = h ? curl_slist_append(h, "Content-Type: application/json") : NULL;
	} else {
		next = curl_slist_append(h, "Content-Type: text/plain; version=0.0.4");
		curl_easy_setopt(slot->easy, CURLOPT_URL, ag->url);
	}
	/* No "Expect: 100-continue" round trip for bodies over 1 KiB. */
	h = next ? curl_slist_append(next, "Expect:") : NULL;
	if (!h) {
		curl_slist_free_all(next);
		return -ENOMEM;
	}
	slot->headers = h;
	curl_easy_setopt(slot->easy, CURLOPT_HTTPHEADER, slot->headers);
	curl_easy_setopt(slot->easy, CURLOPT_POSTFIELDS, slot->body);
	curl_easy_setopt(slot->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	mc = curl_multi_add_handle(lg->multi, slot->easy);
	if (mc) {
		fprintf(stderr, "loadgen: curl_multi_add_handle: %s\n", curl_multi_strerror(mc));
		return -EIO;
	}
	ag->seq++;
	ag->busy = true;
	slot->agent = ag;
	lg->in_flight++;
	return 0;
}

/* Counts a finished transfer and frees its slot for the next request. */
static void on_done(loadgen_t *lg, CURL *easy, CURLcode code)
{
	slot_t *slot = NULL;
	long status = 0, connects = 0;

	curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&slot);
	if (code == CURLE_OK)
		curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_getinfo(easy, CURLINFO_NUM_CONNECTS, &connects);
	curl_multi_remove_handle(lg->multi, easy);
	if (status < 0 || status >= MAX_STATUS)
		status = 0;
	lg->status[status]++;
	lg->requests++;
	lg->connects += (uint64_t)connects;
	if (status == 202 || (lg->args.mode == MODE_PUSHGATEWAY && status == 200))
		lg->ok++;
	if (code != CURLE_OK && lg->status[0] <= 3)
		fprintf(stderr, "loadgen: %s\n", curl_easy_strerror(code));
	slot->agent->busy = false;
	slot->agent = NULL;
	lg->in_flight--;
}

static int slots_init(loadgen_t *lg)
{
	unsigned i;

	lg->slots = calloc(lg->args.connections, sizeof(*lg->slots));
	if (!lg->slots)
		return -ENOMEM;
	for (i = 0; i < lg->args.connections; i++) {
		slot_t *slot = &lg->slots[i];
		CURL *e = curl_easy_init();

		if (!e)
			return -ENOMEM;
		slot->easy = e;
		curl_easy_setopt(e, CURLOPT_PRIVATE, slot);
		curl_easy_setopt(e, CURLOPT_URL, lg->args.url);
		curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
		curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
		curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)REQUEST_TIMEOUT_MS);
		curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
		curl_easy_setopt(e, CURLOPT_PROXY, "");
		if (lg->args.mode == MODE_PUSHGATEWAY)
			curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, "PUT");
	}
	return 0;
}

static void on_handle_closed(uv_handle_t *h)
{
	(void)h;
}

/* Stops everything on the loop, so that uv_run() returns. */
static void stop_loop(loadgen_t *lg)
{
	size_t i;

	if (lg->closing)
		return;
	lg->closing = true;
	uv_close((uv_handle_t *)&lg->timer, on_handle_closed);
	for (i = 0; i < lg->n_socks; i++) {
		if (lg->socks[i] && lg->socks[i]->initialised)
			uv_close((uv_handle_t *)&lg->socks[i]->poll, on_handle_closed);
	}
}

/* Records the run's first local failure (a negative errno) and stops sending. */
static void fail(loadgen_t *lg, int error)
{
	if (!lg->error)
		lg->error = error;
	lg->sending = false;
}

/* Counts what libcurl finished and gives each freed slot its next request. */
static void check_done(loadgen_t *lg)
{
	CURLMsg *msg;
	slot_t *slot;
	int queued, result;

	for (;;) {
		msg = curl_multi_info_read(lg->multi, &queued);
		if (!msg)
			break;
		if (msg->msg != CURLMSG_DONE)
			continue;
		slot = NULL;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&slot);
		on_done(lg, msg->easy_handle, msg->data.result);
		if (lg->sending && uv_now(&lg->loop) >= lg->deadline)
			lg->sending = false;
		if (!lg->sending)
			continue;
		result = start_request(lg, slot);
		if (result)
			fail(lg, result);
	}
	if (lg->in_flight == 0)
		stop_loop(lg);
}

static void socket_action(loadgen_t *lg, curl_socket_t fd, int flags)
{
	int running = 0;
	CURLMcode mc;

	mc = curl_multi_socket_action(lg->multi, fd, flags, &running);
	if (mc) {
		fprintf(stderr, "loadgen: curl_multi_socket_action: %s\n", curl_multi_strerror(mc));
		fail(lg, -EIO);
	}
	check_done(lg);
}

static void on_poll(uv_poll_t *handle, int status, int events)
{
	sock_t *sk = container_of(handle, sock_t, poll);
	int flags = 0;

	if (status < 0)
		flags = CURL_CSELECT_ERR;
	if (events & UV_READABLE)
		flags |= CURL_CSELECT_IN;
	if (events & UV_WRITABLE)
		flags |= CURL_CSELECT_OUT;
	socket_action(sk->owner, sk->fd, flags);
}

static void on_timeout(uv_timer_t *timer)
{
	loadgen_t *lg = container_of(timer, loadgen_t, timer);

	socket_action(lg, CURL_SOCKET_TIMEOUT, 0);
}

/* libcurl's CURLMOPT_TIMERFUNCTION: one timer, restarted whenever it says. */
static int on_timer_set(CURLM *multi, long timeout_ms, void *arg)
{
	loadgen_t *lg = arg;

	(void)multi;
	if (lg->closing)
		return 0;
	if (timeout_ms < 0)
		uv_timer_stop(&lg->timer);
	else
		uv_timer_start(&lg->timer, on_timeout, (uint64_t)timeout_ms, 0);
	return 0;
}

/* The watcher of descriptor `fd`, made on first use. */
static sock_t *sock_of(loadgen_t *lg, curl_socket_t fd)
{
	size_t i = (size_t)fd;

	if (i >= lg->n_socks) {
		size_t n = i + 64;
		sock_t **p = realloc(lg->socks, n * sizeof(*p));

		if (!p)
			return NULL;
		memset(p + lg->n_socks, 0, (n - lg->n_socks) * sizeof(*p));
		lg->socks = p;
		lg->n_socks = n;
	}
	if (!lg->socks[i]) {
		lg->socks[i] = calloc(1, sizeof(sock_t));
		if (!lg->socks[i])
			return NULL;
		lg->socks[i]->owner = lg;
		lg->socks[i]->fd = fd;
	}
	return lg->socks[i];
}

/* libcurl's CURLMOPT_SOCKETFUNCTION: watch `fd` for what it asks, or stop. */
static int on_socket(CURL *easy, curl_socket_t fd, int what, void *arg, void *socketp)
{
	loadgen_t *lg = arg;
	sock_t *sk;
	int events = 0;

	(void)easy;
	(void)socketp;
	if (lg->closing || fd < 0)
		return 0;
	sk = sock_of(lg, fd);
	if (!sk) {
		fail(lg, -ENOMEM);
		return -1;
	}
	if (what == CURL_POLL_REMOVE) {
		/* The handle stays, stopped: libcurl closes the descriptor or keeps it
		 * idle in its cache, and a descriptor of that number may come back. */
		if (sk->initialised)
			uv_poll_stop(&sk->poll);
		return 0;
	}
	if (!sk->initialised) {
		if (uv_poll_init_socket(&lg->loop, &sk->poll, fd)) {
			fail(lg, -EIO);
			return -1;
		}
		sk->initialised = true;
	}
	if (what & CURL_POLL_IN)
		events |= UV_READABLE;
	if (what & CURL_POLL_OUT)
		events |= UV_WRITABLE;
	uv_poll_start(&sk->poll, events, on_poll);
	return 0;
}

/* Sends for the configured time, then lets the requests in flight finish. */
static int run(loadgen_t *lg, double *seconds)
{
	uint64_t start;
	unsigned i;
	int result;

	result = uv_loop_init(&lg->loop);
	if (result) {
		fprintf(stderr, "loadgen: uv_loop_init: %s\n", uv_strerror(result));
		return -EIO;
	}
	uv_timer_init(&lg->loop, &lg->timer);
	curl_multi_setopt(lg->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
	curl_multi_setopt(lg->multi, CURLMOPT_SOCKETDATA, lg);
	curl_multi_setopt(lg->multi, CURLMOPT_TIMERFUNCTION, on_timer_set);
	curl_multi_setopt(lg->multi, CURLMOPT_TIMERDATA, lg);

	start = uv_hrtime();
	lg->deadline = uv_now(&lg->loop) + (uint64_t)lg->args.seconds * 1000u;
	lg->sending = true;
	for (i = 0; i < lg->args.connections && !result; i++)
		result = start_request(lg, &lg->slots[i]);
	if (result) {
		fail(lg, result);
		if (lg->in_flight == 0)
			stop_loop(lg);
	}
	uv_run(&lg->loop, UV_RUN_DEFAULT);
	*seconds = (double)(uv_hrtime() - start) / 1e9;
	/* Connections libcurl still holds are closed without the loop's help. */
	lg->closing = true;
	result = uv_loop_close(&lg->loop);
	if (result)
		fprintf(stderr, "loadgen: uv_loop_close: %s\n", uv_strerror(result));
	return lg->error;
}

static void print_summary(const loadgen_t *lg, double seconds)
{
	struct rusage ru;
	double cpu;
	bool first = true;
	int s;

	getrusage(RUSAGE_SELF, &ru);
	cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	      (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
	printf("{\"mode\":\"%s\",\"requests\":%" PRIu64 ",\"ok\":%" PRIu64 ",\"errors\":%" PRIu64
	       ",\"seconds\":%.3f,\"rate\":%.1f,\"connects\":%" PRIu64 ",\"cpu_s\":%.3f,"
	       "\"status\":{",
	       lg->args.mode == MODE_SGPROBE ? "sgprobe" : "pushgateway", lg->requests, lg->ok,
	       lg->requests - lg->ok, seconds, seconds > 0 ? (double)lg->ok / seconds : 0.0,
	       lg->connects, cpu);
	for (s = 0; s < MAX_STATUS; s++) {
		if (!lg->status[s])
			continue;
		printf("%s\"%d\":%" PRIu64, first ? "" : ",", s, lg->status[s]);
		first = false;
	}
	printf("}}\n");
	fflush(stdout);
}

static void loadgen_dispose(loadgen_t *lg)
{
	unsigned i;

	if (lg->slots) {
		for (i = 0; i < lg->args.connections; i++) {
			if (!lg->slots[i].easy)
				continue;
			if (lg->slots[i].agent)
				curl_multi_remove_handle(lg->multi, lg->slots[i].easy);
			curl_easy_cleanup(lg->slots[i].easy);
			curl_slist_free_all(lg->slots[i].headers);
			free(lg->slots[i].body);
		}
	}
	if (lg->agents) {
		for (i = 0; i < lg->args.agents; i++) {
			free(lg->agents[i].url);
			free(lg->agents[i].prefix);
			free(lg->agents[i].suffix);
		}
	}
	if (lg->multi)
		curl_multi_cleanup(lg->multi);
	for (i = 0; i < lg->n_socks; i++)
		free(lg->socks[i]);
	free(lg->socks);
	free(lg->slots);
	free(lg->agents);
	free(lg->sign_path);
}

int main(int argc, char **argv)
{
	loadgen_t lg;
	double seconds = 0;
	CURLcode code;
	int result, status = 1;

	memset(&lg, 0, sizeof(lg));
	if (parse_args(&lg.args, argc, argv) || build_plan(&lg))
		return EXIT_USAGE;
	code = curl_global_init(CURL_GLOBAL_DEFAULT);
	if (code) {
		fprintf(stderr, "loadgen: curl_global_init: %s\n", curl_easy_strerror(code));
		return 1;
	}
	snprintf(lg.boot, sizeof(lg.boot), "loadgen-%ld-%" PRIu64, (long)getpid(), wall_ms());
	lg.multi = curl_multi_init();
	if (!lg.multi) {
		fprintf(stderr, "loadgen: out of memory\n");
		goto out;
	}
	/* Every handle keeps its own connection: no more connections than handles, and
	 * none closed for want of room in the cache. */
	curl_multi_setopt(lg.multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)lg.args.connections);
	curl_multi_setopt(lg.multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)lg.args.connections);
	curl_multi_setopt(lg.multi, CURLMOPT_MAXCONNECTS, (long)lg.args.connections);
	curl_multi_setopt(lg.multi, CURLMOPT_PIPELINING, (long)CURLPIPE_NOTHING);
	if (lg.args.mode == MODE_SGPROBE) {
		result = sign_path_of(&lg);
		if (result)
			goto out;
	}
	result = build_agents(&lg);
	if (!result)
		result = slots_init(&lg);
	if (result) {
		fprintf(stderr, "loadgen: cannot build the requests: %s\n", strerror(-result));
		goto out;
	}
	result = run(&lg, &seconds);
	if (result) {
		fprintf(stderr, "loadgen: %s\n", strerror(-result));
		goto out;
	}
	print_summary(&lg, seconds);
	status = lg.requests > 0 && lg.ok == lg.requests ? 0 : 1;
out:
	loadgen_dispose(&lg);
	curl_global_cleanup();
	return status;
}
