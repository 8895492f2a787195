/*
 * daemon: sgprobe-agent's default mode, the sidecar.
 *
 * Everything runs on one libuv loop: a tick timer starts a round over the
 * targets that are due (never while one is running), the plan is fetched
 * through curluv, reports leave through the pusher, and SIGTERM/SIGINT start
 * an orderly stop that closes every handle.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cJSON.h>
#include <curl/curl.h>
#include <openssl/err.h>
#include <openssl/rand.h>

#include "daemon.h"
#include "ecs.h"
#include "probe.h"
#include "push.h"
#include "pusher.h"
#include "sgprobe/auth.h"
#include "sgprobe/curluv.h"
#include "sgprobe/fileio.h"
#include "sgprobe/log.h"
#include "sgprobe/plan.h"
#include "sgprobe/report.h"
#include "sgprobe/timefmt.h"
#include "sgprobe/jitter.h"
#include "sgprobe/container.h"

#define TICK_MS               100                /* how often due targets are looked for */
#define PLAN_RETRY_MS         2000               /* the next plan fetch while there is no plan */
#define PLAN_REFRESH_MIN_MS   30000              /* the plan refresh period's floor */
#define PLAN_TIMEOUT_MS       10000              /* one plan request */
#define DEFAULT_INTERVAL_S    60                 /* when neither the plan nor the flags give one */
#define HEALTH_MAX_BYTES      65536              /* of the health file read back */
#define HEALTH_MAX_MS         9007199254740991.0 /* 2^53 - 1: a time in ms JSON holds exactly */
#define HEALTH_MAX_INTERVAL   604800             /* s: a week, more than any plan asks */
#define HEALTH_CLOCK_SLACK_MS 60000              /* a round this far "ahead" is a clock step */
#define STOP_CLOSE_MARGIN_MS  500                /* left of --stop-timeout-s to close everything */
#define ROUND_WARN_MAX        10                 /* failing paths logged one by one per round */
#define PLAN_REFRESH_ENV      "SGPROBE_TEST_PLAN_REFRESH_MS"

typedef struct {
	uv_loop_t loop;
	const config_t *cfg;
	log_t lg;
	ecs_identity_t id;
	char boot[33];
	push_key_t key;
	SSL_CTX *tls;
	uint64_t rng;

	/* The collector: plan requests and the pusher, both through cu. */
	curluv_t cu;
	bool have_cu;
	pusher_t pusher;
	bool have_pusher;
	CURL *plan_easy;
	struct curl_slist *plan_headers;
	bool plan_busy;
	char *plan_url;
	char *plan_target;       /* the path and query the signature covers */
	curluv_body_t plan_body; /* the answer to the plan request in flight */
	char etag[256];
	char new_etag[256];
	bool cache_tried;
	uint64_t plan_refresh_ms; /* SGPROBE_TEST_PLAN_REFRESH_MS; 0: the default */

	/* The plan and its schedule. */
	matrix_plan_t *plan;
	matrix_plan_t *next_plan; /* arrived during a round: installed after it */
	uint64_t *due;            /* per target of plan: uv_now() ms of its next probe */

	/* The round in progress: a sub-plan of the due targets. */
	probe_run_t *run;
	matrix_plan_t sub;
	uint64_t run_t0; /* uv_hrtime() ns */

	uv_timer_t tick;
	uv_timer_t plan_timer;
	uv_timer_t deadline_timer;
	uv_signal_t sigterm;
	uv_signal_t sigint;

	uint64_t rounds;
	uint64_t probes;           /* results of every round so far */
	uint64_t last_round_at_ms; /* wall clock, ms since the epoch; 0: none yet */
	uint64_t seen_delivered;   /* counters at the last health write */
	uint64_t seen_dropped;
	bool stopping;
	bool closing;
	uint64_t stop_deadline; /* uv_now() ms */
} daemon_t;

static unsigned default_interval_s(const daemon_t *d)
{
	if (d->cfg->interval_s)
		return d->cfg->interval_s;
	if (d->plan && d->plan->interval_s)
		return d->plan->interval_s;
	return DEFAULT_INTERVAL_S;
}

/* A target's own interval (allowed_interval_s) is kept; --interval-s replaces
 * only the plan's default. A plan carries every target's interval, so one
 * equal to the plan's default is taken for the default: an allowed_interval_s
 * equal to the matrix's interval_s follows --interval-s too. */
static unsigned target_interval_s(const daemon_t *d, const matrix_plan_t *plan,
                                  const matrix_target_t *t)
{
	if (d->cfg->interval_s && (!t->interval_s || t->interval_s == plan->interval_s))
		return d->cfg->interval_s;
	if (t->interval_s)
		return t->interval_s;
	return plan->interval_s ? plan->interval_s : DEFAULT_INTERVAL_S;
}

/* 0 to 10% of the interval, in ms: a fleet never probes in step. */
static uint64_t jitter_ms(daemon_t *d, unsigned interval_s)
{
	uint64_t span = (uint64_t)interval_s * 100u;

	return span ? jitter_upto(&d->rng, span) : 0;
}

/* The push pipeline's counters as the reports carry them: dropped counts the
 * reports lost for any reason (queue bounds, refused, abandoned at the stop). */
typedef struct {
	uint64_t sent;
	uint64_t retried;
	uint64_t dropped;
} push_totals_t;

static push_totals_t push_totals(const daemon_t *d)
{
	push_totals_t t = {0, 0, 0};

	if (d->have_pusher) {
		const pusher_counters_t *k = &d->pusher.counters;

		t.sent = k->sent;
		t.retried = k->retried;
		t.dropped = k->dropped_full + k->dropped_rejected + k->abandoned;
	}
	return t;
}

/* --- health ------------------------------------------------------------------------- */

static void write_health(daemon_t *d)
{
	char now[32], last[32], tmp[4096];
	size_t queued = 0;
	uint64_t delivered = 0, dropped = 0;
	cJSON *o;
	char *text;
	FILE *f;
	bool failed;

	if (!d->cfg->health_file)
		return;
	if (d->have_pusher) {
		const pusher_counters_t *c = &d->pusher.counters;

		pusher_queued(&d->pusher, &queued, NULL);
		delivered = c->delivered;
		dropped = c->dropped_full + c->dropped_rejected + c->abandoned;
	}
	d->seen_delivered = delivered;
	d->seen_dropped = dropped;
	o = cJSON_CreateObject();
	if (!o)
		return;
	cJSON_AddStringToObject(o, "time", report_format_time(timefmt_now_ms(), now, sizeof(now)));
	if (d->last_round_at_ms)
		cJSON_AddStringToObject(
		    o, "last_round_at",
		    report_format_time(d->last_round_at_ms, last, sizeof(last)));
	else
		cJSON_AddNullToObject(o, "last_round_at");
	cJSON_AddNumberToObject(o, "last_round_at_ms", (double)d->last_round_at_ms);
	cJSON_AddNumberToObject(o, "interval_s", default_interval_s(d));
	cJSON_AddNumberToObject(o, "rounds", (double)d->rounds);
	cJSON_AddNumberToObject(o, "queue", (double)queued);
	cJSON_AddNumberToObject(o, "delivered", (double)delivered);
	cJSON_AddNumberToObject(o, "dropped", (double)dropped);
	/* The counters every report carries, under the same names. */
	{
		push_totals_t t = push_totals(d);

		cJSON_AddNumberToObject(o, "probes", (double)d->probes);
		cJSON_AddNumberToObject(o, "reports_sent", (double)t.sent);
		cJSON_AddNumberToObject(o, "reports_retried", (double)t.retried);
		cJSON_AddNumberToObject(o, "reports_dropped", (double)t.dropped);
	}
	cJSON_AddBoolToObject(o, "ok", d->plan && d->rounds > 0 && !d->stopping);
	text = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	if (!text)
		return;
	/* Written aside and renamed: the health check never reads half a file. */
	snprintf(tmp, sizeof(tmp), "%s.tmp", d->cfg->health_file);
	f = fopen(tmp, "w");
	failed = !f;
	if (f) {
		/* fclose() once, whatever fprintf() did. */
		failed = fprintf(f, "%s\n", text) < 0;
		failed |= fclose(f) != 0;
	}
	if (failed || rename(tmp, d->cfg->health_file))
		log_warn(&d->lg, "cannot write the health file",
		         LOG_STR("file", d->cfg->health_file), LOG_STR("error", strerror(errno)));
	free(text);
}

int daemon_health(const config_t *cfg)
{
	char *text = NULL;
	size_t len;
	cJSON *o, *ok, *last, *iv;
	uint64_t interval_s, age_ms, now = timefmt_now_ms();
	int result;

	if (!cfg->health_file) {
		fprintf(stderr, "sgprobe-agent health: needs --health-file FILE "
		                "(or SGPROBE_HEALTH_FILE)\n");
		return 1;
	}
	result = fileio_read(cfg->health_file, HEALTH_MAX_BYTES, &text, &len);
	if (result) {
		fprintf(stderr, "sgprobe-agent health: cannot read %s: %s\n", cfg->health_file,
		        strerror(-result));
		return 1;
	}
	o = cJSON_ParseWithLength(text, len);
	fileio_free(text, len);
	if (!o) {
		fprintf(stderr, "sgprobe-agent health: %s is not JSON\n", cfg->health_file);
		return 1;
	}
	ok = cJSON_GetObjectItemCaseSensitive(o, "ok");
	last = cJSON_GetObjectItemCaseSensitive(o, "last_round_at_ms");
	iv = cJSON_GetObjectItemCaseSensitive(o, "interval_s");
	result = 1;
	if (!cJSON_IsBool(ok))
		fprintf(stderr, "sgprobe-agent health: %s: ok: must be a boolean\n",
		        cfg->health_file);
	else if (!cJSON_IsNumber(last) || last->valuedouble < 0 ||
	         last->valuedouble > HEALTH_MAX_MS)
		fprintf(stderr,
		        "sgprobe-agent health: %s: last_round_at_ms: must be a time in ms\n",
		        cfg->health_file);
	else if (!cJSON_IsNumber(iv) || iv->valuedouble < 1 ||
	         iv->valuedouble > HEALTH_MAX_INTERVAL)
		fprintf(stderr, "sgprobe-agent health: %s: interval_s: must be 1 to %d\n",
		        cfg->health_file, HEALTH_MAX_INTERVAL);
	else if (!cJSON_IsTrue(ok))
		fprintf(stderr,
		        "sgprobe-agent health: not ok (no plan or no round yet, or stopping)\n");
	else {
		interval_s = cfg->interval_s ? cfg->interval_s : (uint64_t)iv->valuedouble;
		age_ms = now - (uint64_t)last->valuedouble;
		if ((uint64_t)last->valuedouble > now + HEALTH_CLOCK_SLACK_MS)
			fprintf(stderr,
			        "sgprobe-agent health: %s: last_round_at_ms is %" PRIu64
			        " s in the future: not a round of this clock\n",
			        cfg->health_file, ((uint64_t)last->valuedouble - now) / 1000);
		else if ((uint64_t)last->valuedouble > now ||
		         age_ms <= (3 * interval_s + 30) * 1000)
			result = 0;
		else
			fprintf(stderr,
			        "sgprobe-agent health: stale: the last round ended %" PRIu64
			        " s ago (limit %" PRIu64 " s)\n",
			        age_ms / 1000, 3 * interval_s + 30);
	}
	cJSON_Delete(o);
	return result;
}

/* --- reports ------------------------------------------------------------------------ */

/* Fills everything but results and seq (the pusher numbers them). */
static int fill_header(const daemon_t *d, report_t *r, uint64_t round_ms, bool final)
{
	char now[32];
	int result = 0;

	result |= report_set_string(&r->agent.id, d->id.id);
	result |= report_set_string(&r->agent.role, d->cfg->role);
	result |= report_set_string(&r->agent.cluster, d->id.cluster);
	result |= report_set_string(&r->agent.az, d->id.az);
	result |= report_set_string(&r->agent.address, d->id.address);
	result |= report_set_string(&r->agent.version, PUSH_VERSION);
	result |= report_set_string(&r->agent.boot, d->boot);
	result |=
	    report_set_string(&r->sent_at, report_format_time(timefmt_now_ms(), now, sizeof(now)));
	r->mode = REPORT_MODE_DAEMON;
	r->interval_s = default_interval_s(d);
	r->round_ms = round_ms;
	r->final = final;
	/* The agent's own counters ride along, so a sidecar that probes but
	 * loses reports shows it at the collector too. */
	r->counters.present = true;
	r->counters.rounds = d->rounds;
	r->counters.probes = d->probes;
	{
		push_totals_t t = push_totals(d);

		r->counters.reports_sent = t.sent;
		r->counters.reports_retried = t.retried;
		r->counters.reports_dropped = t.dropped;
	}
	return result ? -ENOMEM : 0;
}

static void submit(daemon_t *d, const matrix_plan_t *plan, const probe_result_t *res, size_t n,
                   uint64_t round_ms, bool final)
{
	report_t *r = report_new();
	int result = r ? fill_header(d, r, round_ms, final) : -ENOMEM;
	size_t i;

	for (i = 0; !result && i < n; i++)
		result = push_add_result(r, plan, &res[i]);
	if (!result)
		result = pusher_submit(&d->pusher, r);
	if (result < 0)
		log_error(&d->lg, "cannot queue the report", LOG_STR("error", strerror(-result)),
		          LOG_BOOL("final", final));
	report_free(r);
}

/* --- the plan ----------------------------------------------------------------------- */

/* A path of the old plan and when it is due, for the next plan to find. */
typedef struct {
	const matrix_target_t *t;
	uint64_t due;
} old_due_t;

static int cmp_path(const matrix_target_t *a, const matrix_target_t *b)
{
	int c = strcmp(a->target, b->target);

	if (c)
		return c;
	if (a->port != b->port)
		return a->port < b->port ? -1 : 1;
	c = strcmp(a->dst_role, b->dst_role);
	if (c)
		return c;
	return (int)a->expected - (int)b->expected;
}

static int cmp_old_due(const void *a, const void *b)
{
	return cmp_path(((const old_due_t *)a)->t, ((const old_due_t *)b)->t);
}

/*
 * Installs `p` (owned from now on). A path the previous plan had too (same
 * destination, port, role and expectation) keeps its due time, so that a new
 * plan (the collector's after the cache's, a matrix change elsewhere) does not
 * probe again what was just probed: a path with a long allowed_interval_s
 * stays rare (DESIGN.md "Probe safety"); a shorter interval brings it forward.
 * A new path is due at once, within the jitter. The very first plan is probed
 * whole in the first round, at a random offset of up to 10% of the interval:
 * a fleet still starts out of step, and the first report holds every path.
 */
static void install_plan(daemon_t *d, matrix_plan_t *p, const char *source)
{
	uint64_t now = uv_now(&d->loop), first = 0;
	old_due_t *old = NULL, key, *hit;
	size_t i, n_old = 0, kept = 0;
	unsigned iv;
	uint64_t *due;

	if (d->run) {
		/* The round in progress borrows the current plan's strings. */
		matrix_plan_free(d->next_plan);
		d->next_plan = p;
		return;
	}
	due = calloc(p->n_targets ? p->n_targets : 1, sizeof(*due));
	if (d->plan && d->plan->n_targets)
		old = calloc(d->plan->n_targets, sizeof(*old));
	if (!due || (d->plan && d->plan->n_targets && !old)) {
		log_error(&d->lg, "out of memory: the plan is not installed");
		free(due);
		free(old);
		matrix_plan_free(p);
		return;
	}
	if (old) {
		n_old = d->plan->n_targets;
		for (i = 0; i < n_old; i++) {
			old[i].t = &d->plan->targets[i];
			old[i].due = d->due[i];
		}
		qsort(old, n_old, sizeof(*old), cmp_old_due);
	} else {
		first = now + jitter_ms(d, d->cfg->interval_s ? d->cfg->interval_s
		                           : p->interval_s    ? p->interval_s
		                                              : DEFAULT_INTERVAL_S);
	}
	for (i = 0; i < p->n_targets; i++) {
		const matrix_target_t *t = &p->targets[i];

		if (!old) {
			due[i] = first;
			continue;
		}
		key.t = t;
		hit = bsearch(&key, old, n_old, sizeof(*old), cmp_old_due);
		iv = target_interval_s(d, p, t);
		due[i] = now + jitter_ms(d, iv);
		if (hit) {
			uint64_t soonest = now + (uint64_t)iv * 1000u;

			due[i] = hit->due < soonest ? hit->due : soonest;
			kept++;
		}
	}
	free(old);
	free(d->due);
	matrix_plan_free(d->plan);
	d->plan = p;
	d->due = due;
	log_info(&d->lg, "plan loaded", LOG_STR("source", source), LOG_STR("matrix", p->matrix),
	         LOG_STR("role", p->role), LOG_UINT("targets", p->n_targets),
	         LOG_UINT("kept_schedule", kept), LOG_UINT("interval_s", default_interval_s(d)));
}

/* Checks that a plan is this agent's: a cache from another role is no plan. */
static matrix_plan_t *decode_plan(daemon_t *d, const char *text, size_t len, const char *source)
{
	char err[PLAN_ERR_MAX];
	matrix_plan_t *p = plan_decode(text, len, err, sizeof(err));

	if (!p) {
		log_warn(&d->lg, "invalid plan", LOG_STR("source", source), LOG_STR("error", err));
		return NULL;
	}
	if (strcmp(p->role, d->cfg->role)) {
		log_warn(&d->lg, "the plan is another role's", LOG_STR("source", source),
		         LOG_STR("role", p->role));
		matrix_plan_free(p);
		return NULL;
	}
	return p;
}

/*
 * The cache is the plan as served, with the ETag it came with added as one
 * more top-level field, CACHE_ETAG_FIELD: the plan decoder ignores unknown
 * fields, so any agent reads the file, and an agent that starts from its cache
 * asks the collector with If-None-Match. A cache without the field (written
 * by an older agent) is read as before.
 */
#define CACHE_ETAG_FIELD "sgprobe_cache_etag"

static void write_cache(daemon_t *d, const char *body, size_t len, const char *etag)
{
	char tmp[4096];
	char *field = NULL;
	cJSON *str;
	size_t open_at = 0;
	int fd;
	bool ok;

	while (open_at < len && strchr(" \t\r\n", body[open_at]))
		open_at++;
	if (etag[0] && open_at < len && body[open_at] == '{' &&
	    body[open_at + 1 + strspn(body + open_at + 1, " \t\r\n")] != '}') {
		str = cJSON_CreateString(etag);
		field = str ? cJSON_PrintUnformatted(str) : NULL;
		cJSON_Delete(str);
	}

	snprintf(tmp, sizeof(tmp), "%s.tmp", d->cfg->plan_cache);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		log_warn(&d->lg, "cannot write the plan cache", LOG_STR("file", tmp),
		         LOG_STR("error", strerror(errno)));
		return;
	}
	if (field) {
		/* {"sgprobe_cache_etag":"…", then the plan's own fields. */
		ok = dprintf(fd, "{\"%s\":%s,", CACHE_ETAG_FIELD, field) > 0 &&
		     write(fd, body + open_at + 1, len - open_at - 1) ==
		         (ssize_t)(len - open_at - 1);
		free(field);
	} else {
		ok = write(fd, body, len) == (ssize_t)len;
	}
	ok &= !fsync(fd);
	ok &= !close(fd);
	if (!ok || rename(tmp, d->cfg->plan_cache)) {
		log_warn(&d->lg, "cannot write the plan cache", LOG_STR("file", d->cfg->plan_cache),
		         LOG_STR("error", strerror(errno)));
		unlink(tmp);
	}
}

static void load_cache(daemon_t *d)
{
	char *text = NULL;
	size_t len;
	matrix_plan_t *p;
	int result;

	d->cache_tried = true;
	if (!d->cfg->plan_cache)
		return;
	result = fileio_read(d->cfg->plan_cache, PLAN_MAX_BODY, &text, &len);
	if (result) {
		log_warn(&d->lg, "no plan cache", LOG_STR("file", d->cfg->plan_cache),
		         LOG_STR("error", strerror(-result)));
		return;
	}
	p = decode_plan(d, text, len, d->cfg->plan_cache);
	if (p) {
		cJSON *doc = cJSON_ParseWithLength(text, len);
		const cJSON *etag = cJSON_GetObjectItemCaseSensitive(doc, CACHE_ETAG_FIELD);

		if (cJSON_IsString(etag) && strlen(etag->valuestring) < sizeof(d->etag))
			snprintf(d->etag, sizeof(d->etag), "%s", etag->valuestring);
		cJSON_Delete(doc);
	}
	fileio_free(text, len);
	if (p)
		install_plan(d, p, "cache");
}

static size_t on_plan_header(char *ptr, size_t size, size_t n, void *arg)
{
	daemon_t *d = arg;
	size_t len = size * n, v;

	if (len > 5 && !strncasecmp(ptr, "etag:", 5)) {
		for (v = 5; v < len && (ptr[v] == ' ' || ptr[v] == '\t'); v++)
			;
		while (len > v &&
		       (ptr[len - 1] == '\r' || ptr[len - 1] == '\n' || ptr[len - 1] == ' '))
			len--;
		if (len - v < sizeof(d->new_etag)) {
			memcpy(d->new_etag, ptr + v, len - v);
			d->new_etag[len - v] = '\0';
		}
	}
	return size * n;
}

static void on_plan_timer(uv_timer_t *t);

static void plan_schedule(daemon_t *d)
{
	uint64_t refresh = (uint64_t)default_interval_s(d) * 5000u;

	if (refresh < PLAN_REFRESH_MIN_MS)
		refresh = PLAN_REFRESH_MIN_MS;
	if (d->plan_refresh_ms)
		refresh = d->plan_refresh_ms;
	if (!d->stopping)
		uv_timer_start(&d->plan_timer, on_plan_timer, d->plan ? refresh : PLAN_RETRY_MS, 0);
}

static void plan_failed(daemon_t *d)
{
	if (!d->plan && !d->cache_tried)
		load_cache(d);
	if (!d->plan)
		log_warn(&d->lg, "no plan yet: retrying", LOG_UINT("retry_ms", PLAN_RETRY_MS));
}

static void on_plan_done(CURL *easy, CURLcode code, void *arg)
{
	daemon_t *d = arg;
	long status = 0;
	matrix_plan_t *p;

	d->plan_busy = false;
	curl_slist_free_all(d->plan_headers);
	d->plan_headers = NULL;
	if (d->stopping)
		return;
	if (code != CURLE_OK) {
		log_warn(&d->lg, "cannot fetch the plan", LOG_STR("url", d->plan_url),
		         LOG_STR("error", curl_easy_strerror(code)));
		plan_failed(d);
	} else {
		curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
		if (status == 304) {
			log_debug(&d->lg, "plan unchanged");
		} else if (status == 200) {
			p = decode_plan(d, curluv_body_str(&d->plan_body), d->plan_body.len,
			                d->plan_url);
			if (p) {
				if (d->cfg->plan_cache)
					write_cache(d, curluv_body_str(&d->plan_body),
					            d->plan_body.len, d->new_etag);
				snprintf(d->etag, sizeof(d->etag), "%s", d->new_etag);
				install_plan(d, p, "collector");
			} else {
				plan_failed(d);
			}
		} else {
			log_warn(&d->lg, "the collector refused the plan request",
			         LOG_STR("url", d->plan_url), LOG_INT("status", status),
			         LOG_STR("answer", curluv_body_str(&d->plan_body)));
			plan_failed(d);
		}
	}
	plan_schedule(d);
}

static void start_plan_fetch(daemon_t *d)
{
	char auth[512], hdr[600];
	int result;

	if (d->plan_busy || d->stopping)
		return;
	curluv_body_reset(&d->plan_body);
	d->new_etag[0] = '\0';
	if (auth_header(d->key.id, d->key.secret, d->key.secret_len, "GET", d->plan_target,
	                (int64_t)time(NULL), "", 0, auth, sizeof(auth))) {
		log_error(&d->lg, "cannot sign the plan request");
		plan_schedule(d);
		return;
	}
	snprintf(hdr, sizeof(hdr), "Authorization: %s", auth);
	d->plan_headers = curl_slist_append(NULL, hdr);
	if (d->etag[0] && d->plan_headers) {
		struct curl_slist *more;

		snprintf(hdr, sizeof(hdr), "If-None-Match: %s", d->etag);
		more = curl_slist_append(d->plan_headers, hdr);
		if (more)
			d->plan_headers = more;
	}
	curl_easy_setopt(d->plan_easy, CURLOPT_HTTPHEADER, d->plan_headers);
	result = d->plan_headers ? curluv_add(&d->cu, d->plan_easy, on_plan_done, d) : -ENOMEM;
	if (result) {
		log_error(&d->lg, "cannot start the plan request",
		          LOG_STR("error", strerror(-result)));
		curl_slist_free_all(d->plan_headers);
		d->plan_headers = NULL;
		plan_schedule(d);
		return;
	}
	d->plan_busy = true;
}

static void on_plan_timer(uv_timer_t *t)
{
	start_plan_fetch(container_of(t, daemon_t, plan_timer));
}

/* --- rounds ------------------------------------------------------------------------- */

static void close_all(daemon_t *d);
static void finish_stop(daemon_t *d);

/*
 * The round's line: states, verdicts, and the counters the reports carry.
 * Without a collector the log is all there is: each failing path (by
 * --fail-on) gets a warning of its own, ROUND_WARN_MAX at most per round.
 */
static void log_round(daemon_t *d, const probe_result_t *res, size_t n, uint64_t round_ms,
                      bool cancelled)
{
	uint64_t states[VERDICT_STATE_COUNT] = {0}, verdicts[VERDICT_COUNT] = {0};
	uint64_t failing = 0, warned = 0;
	verdict_t *v = calloc(n ? n : 1, sizeof(*v));
	push_totals_t t = push_totals(d);
	bool judged = v && !probe_judge(&d->sub, res, n, NULL, v);
	size_t i;

	for (i = 0; i < n; i++) {
		states[res[i].state < VERDICT_STATE_COUNT ? res[i].state : VERDICT_STATE_ERROR]++;
		if (!judged)
			continue;
		verdicts[v[i]]++;
		if (!((d->cfg->fail_on >> v[i]) & 1u))
			continue;
		failing++;
		if (d->have_pusher || warned >= ROUND_WARN_MAX)
			continue;
		warned++;
		{
			const matrix_target_t *mt = &d->sub.targets[res[i].target];

			log_warn(&d->lg, "path failing", LOG_STR("verdict", verdict_name(v[i])),
			         LOG_STR("dst_role", mt->dst_role), LOG_STR("target", mt->target),
			         LOG_STR("address", res[i].address), LOG_UINT("port", mt->port),
			         LOG_STR("expected", verdict_expect_name(mt->expected)),
			         LOG_STR("state", verdict_state_name(res[i].state)),
			         LOG_STR("detail", res[i].detail));
		}
	}
	if (failing > warned && !d->have_pusher)
		log_warn(&d->lg, "more paths failing than logged one by one",
		         LOG_UINT("failing", failing), LOG_UINT("logged", warned));
	if (!judged)
		log_error(&d->lg, "out of memory: the round's verdicts are not counted");
	free(v);
	log_info(
	    &d->lg, "round", LOG_UINT("round", d->rounds), LOG_UINT("targets", d->sub.n_targets),
	    LOG_UINT("results", n), LOG_UINT("round_ms", round_ms),
	    LOG_BOOL("cancelled", cancelled), LOG_UINT("open", states[VERDICT_STATE_OPEN]),
	    LOG_UINT("closed", states[VERDICT_STATE_CLOSED]),
	    LOG_UINT("rejected", states[VERDICT_STATE_REJECTED]),
	    LOG_UINT("filtered", states[VERDICT_STATE_FILTERED]),
	    LOG_UINT("unreachable", states[VERDICT_STATE_UNREACHABLE]),
	    LOG_UINT("error", states[VERDICT_STATE_ERROR]), LOG_UINT("ok", verdicts[VERDICT_OK]),
	    LOG_UINT("unverified", verdicts[VERDICT_UNVERIFIED]),
	    LOG_UINT("inconclusive", verdicts[VERDICT_INCONCLUSIVE]),
	    LOG_UINT("no_listener", verdicts[VERDICT_NO_LISTENER]),
	    LOG_UINT("tls_failed", verdicts[VERDICT_TLS_FAILED]),
	    LOG_UINT("blocked", verdicts[VERDICT_BLOCKED]),
	    LOG_UINT("violation", verdicts[VERDICT_VIOLATION]), LOG_UINT("failing", failing),
	    LOG_UINT("probes", d->probes), LOG_UINT("reports_sent", t.sent),
	    LOG_UINT("reports_retried", t.retried), LOG_UINT("reports_dropped", t.dropped));
}

static void on_round_done(probe_run_t *run, void *arg)
{
	daemon_t *d = arg;
	uint64_t round_ms = (uv_hrtime() - d->run_t0) / 1000000u;
	const probe_result_t *res;
	size_t n;

	res = probe_run_results(run, &n);
	d->rounds++;
	d->probes += n;
	d->last_round_at_ms = timefmt_now_ms();
	/* A round cut short by SIGTERM is pushed too, just before the final
	 * report: the collector drops a final report's results (the task is
	 * gone), and what the round saw must still be counted. */
	if (d->have_pusher && (n || !d->stopping))
		submit(d, &d->sub, res, n, round_ms, false);
	log_round(d, res, n, round_ms, probe_run_cancelled(run));
	if (d->stopping)
		finish_stop(d);
	probe_run_free(run);
	d->run = NULL;
	free(d->sub.targets);
	d->sub.targets = NULL;
	d->sub.n_targets = 0;
	if (d->next_plan) {
		matrix_plan_t *p = d->next_plan;

		d->next_plan = NULL;
		install_plan(d, p, "collector");
	}
	if (!d->stopping)
		write_health(d);
}

static void start_round(daemon_t *d)
{
	uint64_t now = uv_now(&d->loop);
	probe_config_t pc;
	size_t i, n = 0;

	for (i = 0; i < d->plan->n_targets; i++)
		n += d->plan->targets[i].probe && d->due[i] <= now;
	if (!n)
		return;
	d->sub.targets = calloc(n, sizeof(*d->sub.targets));
	if (!d->sub.targets) {
		log_error(&d->lg, "out of memory");
		return;
	}
	/* Shallow copies: the strings stay the plan's, which outlives the round. */
	d->sub.matrix = d->plan->matrix;
	d->sub.role = d->plan->role;
	d->sub.interval_s = d->plan->interval_s;
	d->sub.timeout_ms = d->plan->timeout_ms;
	d->sub.n_targets = 0;
	for (i = 0; i < d->plan->n_targets; i++) {
		const matrix_target_t *t = &d->plan->targets[i];
		unsigned iv;

		if (!t->probe || d->due[i] > now)
			continue;
		d->sub.targets[d->sub.n_targets++] = *t;
		iv = target_interval_s(d, d->plan, t);
		d->due[i] = now + (uint64_t)iv * 1000u + jitter_ms(d, iv);
	}
	memset(&pc, 0, sizeof(pc));
	pc.timeout_ms = d->cfg->timeout_ms ? d->cfg->timeout_ms : d->plan->timeout_ms;
	pc.concurrency = d->cfg->concurrency;
	pc.rate = d->cfg->rate;
	pc.per_host = d->cfg->per_host;
	pc.own_address = d->id.address;
	pc.tls_ctx = d->tls;
	d->run_t0 = uv_hrtime();
	d->run = probe_run_start(&d->loop, &pc, &d->sub, on_round_done, d);
	if (!d->run) {
		log_error(&d->lg, "cannot start a round: out of memory");
		free(d->sub.targets);
		d->sub.targets = NULL;
		d->sub.n_targets = 0;
	}
}

static void on_tick(uv_timer_t *t)
{
	daemon_t *d = container_of(t, daemon_t, tick);

	if (d->stopping)
		return;
	if (d->plan && !d->run)
		start_round(d);
	/* A push result since the last write: the health file follows. */
	if (d->have_pusher) {
		const pusher_counters_t *c = &d->pusher.counters;

		if (c->delivered != d->seen_delivered ||
		    c->dropped_full + c->dropped_rejected + c->abandoned != d->seen_dropped)
			write_health(d);
	}
}

static void on_pusher_log(void *arg, pusher_log_level_t level, const char *msg)
{
	daemon_t *d = arg;

	if (level == PUSHER_LOG_ERROR)
		log_error(&d->lg, msg);
	else if (level == PUSHER_LOG_WARN)
		log_warn(&d->lg, msg);
	else
		log_info(&d->lg, msg);
}

/* --- stopping ----------------------------------------------------------------------- */

static void on_handle_closed(uv_handle_t *h)
{
	(void)h;
}

static void on_cu_closed(curluv_t *cu)
{
	(void)cu;
}

static void close_all(daemon_t *d)
{
	if (d->closing)
		return;
	d->closing = true;
	if (d->have_pusher) {
		const pusher_counters_t *c = &d->pusher.counters;

		push_totals_t t = push_totals(d);

		log_info(&d->lg, "stopped", LOG_UINT("rounds", d->rounds),
		         LOG_UINT("delivered", c->delivered), LOG_UINT("retried", c->retried),
		         LOG_UINT("dropped", c->dropped_full + c->dropped_rejected),
		         LOG_UINT("abandoned", c->abandoned), LOG_UINT("probes", d->probes),
		         LOG_UINT("reports_sent", t.sent), LOG_UINT("reports_retried", t.retried),
		         LOG_UINT("reports_dropped", t.dropped));
		pusher_dispose(&d->pusher, NULL);
	} else {
		log_info(&d->lg, "stopped", LOG_UINT("rounds", d->rounds),
		         LOG_UINT("probes", d->probes));
	}
	write_health(d);
	if (d->have_cu)
		curluv_dispose(&d->cu, on_cu_closed);
	uv_close((uv_handle_t *)&d->tick, on_handle_closed);
	uv_close((uv_handle_t *)&d->plan_timer, on_handle_closed);
	/* The deadline stays armed but no longer holds the loop: it fires only
	 * when a name lookup does (see on_deadline()). daemon_run() closes it. */
	uv_unref((uv_handle_t *)&d->deadline_timer);
	uv_close((uv_handle_t *)&d->sigterm, on_handle_closed);
	uv_close((uv_handle_t *)&d->sigint, on_handle_closed);
}

static void on_pusher_stopped(pusher_t *p, int status)
{
	daemon_t *d = container_of(p, daemon_t, pusher);

	if (status)
		log_warn(&d->lg, "reports left undelivered at the stop deadline",
		         LOG_UINT("abandoned", p->counters.abandoned));
	close_all(d);
}

/* Pushes the final report after whatever is queued, then closes everything. */
static void finish_stop(daemon_t *d)
{
	if (!d->have_pusher) {
		close_all(d);
		return;
	}
	/* The collector forgets an agent on its final report. */
	submit(d, d->plan, NULL, 0, 0, true);
	if (pusher_stop(&d->pusher, d->stop_deadline, on_pusher_stopped))
		close_all(d);
}

static void on_deadline(uv_timer_t *t)
{
	daemon_t *d = container_of(t, daemon_t, deadline_timer);

	if (!d->closing) {
		/* The pusher's own deadline comes first: this is only a backstop. */
		log_error(&d->lg, "not stopped by the stop deadline: closing");
		close_all(d);
		return;
	}
	/* Everything is closed but a name lookup of the cancelled round, still
	 * on libuv's thread pool: it cannot be interrupted, and ECS kills the
	 * task soon after the stop timeout. The final report is already out. */
	log_warn(&d->lg, "a name lookup outlived the stop: exiting without it");
	fflush(stderr);
	_exit(DAEMON_EXIT_OK);
}

static void on_signal(uv_signal_t *s, int signum)
{
	daemon_t *d = signum == SIGTERM ? container_of(s, daemon_t, sigterm)
	                                : container_of(s, daemon_t, sigint);

	if (d->stopping)
		return;
	d->stopping = true;
	log_info(&d->lg, "stopping", LOG_STR("signal", signum == SIGTERM ? "SIGTERM" : "SIGINT"),
	         LOG_BOOL("round_running", d->run != NULL));
	/* The health check fails from now on: the agent no longer probes. */
	write_health(d);
	uv_timer_stop(&d->tick);
	uv_timer_stop(&d->plan_timer);
	if (d->plan_busy) {
		curluv_remove(&d->cu, d->plan_easy);
		d->plan_busy = false;
		curl_slist_free_all(d->plan_headers);
		d->plan_headers = NULL;
	}
	d->stop_deadline = uv_now(&d->loop) + (uint64_t)d->cfg->stop_timeout_s * 1000u;
	if (d->stop_deadline > uv_now(&d->loop) + STOP_CLOSE_MARGIN_MS)
		d->stop_deadline -= STOP_CLOSE_MARGIN_MS;
	/* The backstop fires a little after the pusher's deadline, inside the margin. */
	uv_timer_start(&d->deadline_timer, on_deadline,
	               d->stop_deadline - uv_now(&d->loop) + STOP_CLOSE_MARGIN_MS / 2, 0);
	if (d->run)
		probe_run_cancel(d->run); /* on_round_done() then finishes the stop */
	else
		finish_stop(d);
}

/* --- start -------------------------------------------------------------------------- */

static int setup_identity(daemon_t *d)
{
	const config_t *cfg = d->cfg;
	const char *uri = getenv(ECS_METADATA_ENV);
	char err[ECS_ERR_MAX];
	unsigned char rnd[16];
	size_t i;
	int result = -1;

	if (uri && *uri) {
		/* Inside ECS the identity must be the task's: with the hostname's the
		 * agent would not know its own address, probe its own task and report
		 * violations that are not. Better exit, and let ECS start the task
		 * again. */
		result = ecs_identity_fetch_for(uri, 0, ECS_IDENTITY_BUDGET_MS, &d->id, err,
		                                sizeof(err));
		if (result) {
			log_error(&d->lg,
			          "no ECS identity: the task metadata endpoint failed; exiting so "
			          "that ECS starts the task again",
			          LOG_STR("env", ECS_METADATA_ENV), LOG_STR("error", err));
			return result;
		}
	} else {
		result = ecs_identity_default(cfg->role, &d->id, err, sizeof(err));
		if (result) {
			log_error(&d->lg, "no identity", LOG_STR("error", err));
			return result;
		}
	}
	result = ecs_identity_override(&d->id, cfg->agent_id, cfg->cluster, cfg->agent_address, err,
	                               sizeof(err));
	if (result) {
		log_error(&d->lg, "bad identity flag", LOG_STR("error", err));
		return result;
	}
	/* A boot id per start: the collector keeps the highest seq per (id, boot). */
	if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
		log_error(&d->lg, "no randomness for the boot id");
		return -EIO;
	}
	for (i = 0; i < sizeof(rnd); i++)
		snprintf(d->boot + 2 * i, 3, "%02x", rnd[i]);
	memcpy(&d->rng, rnd, sizeof(d->rng));
	d->rng |= 1;
	return 0;
}

static int setup_collector(daemon_t *d)
{
	const config_t *cfg = d->cfg;
	pusher_config_t pc;
	char *role, *url = NULL;
	size_t base_len = strlen(cfg->collector);
	uint64_t cap;
	int result;

	while (base_len && cfg->collector[base_len - 1] == '/')
		base_len--;
	result = curluv_init(&d->cu, &d->loop);
	if (result) {
		log_error(&d->lg, "cannot start libcurl", LOG_STR("error", strerror(-result)));
		return result;
	}
	d->have_cu = true;
	url = malloc(base_len + sizeof("/v1/reports"));
	if (!url)
		return -ENOMEM;
	snprintf(url, base_len + sizeof("/v1/reports"), "%.*s/v1/reports", (int)base_len,
	         cfg->collector);
	/* The backoff's ceiling follows the interval: a collector back after a
	 * short absence gets the queue within an interval or so. */
	cap = (uint64_t)default_interval_s(d) * 1000u;
	cap = cap < 5000 ? 5000 : cap > PUSHER_DEFAULT_CAP_MS ? PUSHER_DEFAULT_CAP_MS : cap;
	memset(&pc, 0, sizeof(pc));
	pc.url = url;
	pc.key_id = d->key.id;
	pc.secret = d->key.secret;
	pc.secret_len = d->key.secret_len;
	pc.ca_file = cfg->ca_file;
	pc.max_reports = cfg->queue_reports;
	pc.max_bytes = cfg->queue_bytes;
	pc.backoff_cap_ms = cap;
	pc.log = on_pusher_log;
	pc.log_arg = d;
	result = pusher_init(&d->pusher, &d->loop, &d->cu, &pc);
	free(url);
	if (result) {
		log_error(&d->lg, "cannot start the push pipeline",
		          LOG_STR("collector", cfg->collector),
		          LOG_STR("error", strerror(-result)));
		return result;
	}
	d->have_pusher = true;

	d->plan_easy = curl_easy_init();
	if (!d->plan_easy)
		return -ENOMEM;
	role = curl_easy_escape(d->plan_easy, cfg->role, 0);
	if (!role)
		return -ENOMEM;
	d->plan_target = malloc(strlen(role) + sizeof("/v1/plan?role="));
	d->plan_url = malloc(base_len + strlen(role) + sizeof("/v1/plan?role="));
	if (d->plan_target && d->plan_url) {
		sprintf(d->plan_target, "/v1/plan?role=%s", role);
		sprintf(d->plan_url, "%.*s%s", (int)base_len, cfg->collector, d->plan_target);
	}
	curl_free(role);
	if (!d->plan_target || !d->plan_url)
		return -ENOMEM;
	if (curluv_easy_defaults(d->plan_easy, cfg->ca_file))
		return -EINVAL;
	curl_easy_setopt(d->plan_easy, CURLOPT_URL, d->plan_url);
	curl_easy_setopt(d->plan_easy, CURLOPT_HTTPGET, 1L);
	curl_easy_setopt(d->plan_easy, CURLOPT_TIMEOUT_MS, (long)PLAN_TIMEOUT_MS);
	curl_easy_setopt(d->plan_easy, CURLOPT_WRITEFUNCTION, curluv_body_write);
	curl_easy_setopt(d->plan_easy, CURLOPT_WRITEDATA, &d->plan_body);
	curl_easy_setopt(d->plan_easy, CURLOPT_HEADERFUNCTION, on_plan_header);
	curl_easy_setopt(d->plan_easy, CURLOPT_HEADERDATA, d);
	return 0;
}

static int setup_matrix(daemon_t *d)
{
	char err[MATRIX_ERR_MAX];
	matrix_t *m = matrix_load(d->cfg->matrix, err, sizeof(err));
	matrix_plan_t *p;

	if (!m) {
		log_error(&d->lg, "cannot load the matrix", LOG_STR("error", err));
		return -EINVAL;
	}
	p = matrix_plan_for_role(m, d->cfg->role, d->id.address, err, sizeof(err));
	matrix_free(m);
	if (!p) {
		log_error(&d->lg, "--role: no plan", LOG_STR("error", err));
		return -EINVAL;
	}
	install_plan(d, p, d->cfg->matrix);
	return d->plan ? 0 : -ENOMEM;
}

static SSL_CTX *make_tls_ctx(daemon_t *d)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	char buf[256];
	int ok;

	if (!ctx)
		return NULL;
	if (d->cfg->probe_ca_file)
		ok = SSL_CTX_load_verify_locations(ctx, d->cfg->probe_ca_file, NULL);
	else
		ok = SSL_CTX_set_default_verify_paths(ctx);
	if (!ok) {
		ERR_error_string_n(ERR_get_error(), buf, sizeof(buf));
		log_error(&d->lg, "--probe-ca-file: cannot load the CA certificates",
		          LOG_STR("file", d->cfg->probe_ca_file), LOG_STR("error", buf));
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

int daemon_run(const config_t *cfg)
{
	daemon_t *d;
	char kerr[PUSH_ERR_MAX];
	int status = DAEMON_EXIT_FAIL, result;

	if (!cfg->role || (!cfg->collector && !cfg->matrix)) {
		fprintf(stderr, "sgprobe-agent: the daemon needs --role ROLE and --collector URL "
		                "or --matrix FILE\n");
		return DAEMON_EXIT_USAGE;
	}
	if (cfg->collector && !cfg->key_id) {
		fprintf(stderr, "sgprobe-agent: --collector needs --key-id (or SGPROBE_KEY_ID)\n");
		return DAEMON_EXIT_USAGE;
	}
	d = calloc(1, sizeof(*d));
	if (!d)
		return DAEMON_EXIT_FAIL;
	d->cfg = cfg;
	d->plan_body.max = PLAN_MAX_BODY;
	log_init(&d->lg, stderr, cfg->log_level, "sgprobe-agent");
	/* For the tests only (docs/operations.md): a plan refresh period below the floor. */
	if (getenv(PLAN_REFRESH_ENV)) {
		const char *v = getenv(PLAN_REFRESH_ENV);
		char *end = NULL;
		unsigned long long ms = strtoull(v, &end, 10);

		if (*v < '0' || *v > '9' || *end || ms < 1 || ms > 3600000)
			log_warn(&d->lg, "ignored: not a number of ms from 1 to 3600000",
			         LOG_STR("env", PLAN_REFRESH_ENV), LOG_STR("value", v));
		else
			d->plan_refresh_ms = ms;
	}
	if (cfg->collector && push_key_load(cfg, &d->key, kerr, sizeof(kerr))) {
		fprintf(stderr, "sgprobe-agent: %s\n", kerr);
		free(d);
		return DAEMON_EXIT_USAGE;
	}
	result = curl_global_init(CURL_GLOBAL_DEFAULT);
	if (result != CURLE_OK) {
		log_error(&d->lg, "cannot start libcurl",
		          LOG_STR("error", curl_easy_strerror((CURLcode)result)));
		goto out;
	}
	if (setup_identity(d))
		goto out;
	d->tls = make_tls_ctx(d);
	if (!d->tls)
		goto out;
	if (uv_loop_init(&d->loop)) {
		log_error(&d->lg, "cannot start the event loop");
		goto out;
	}
	uv_timer_init(&d->loop, &d->tick);
	uv_timer_init(&d->loop, &d->plan_timer);
	uv_timer_init(&d->loop, &d->deadline_timer);
	uv_signal_init(&d->loop, &d->sigterm);
	uv_signal_init(&d->loop, &d->sigint);
	uv_signal_start(&d->sigterm, on_signal, SIGTERM);
	uv_signal_start(&d->sigint, on_signal, SIGINT);
	log_info(&d->lg, "starting", LOG_STR("id", d->id.id), LOG_STR("role", cfg->role),
	         LOG_STR("cluster", d->id.cluster), LOG_STR("family", d->id.family),
	         LOG_STR("revision", d->id.revision), LOG_STR("az", d->id.az),
	         LOG_STR("address", d->id.address), LOG_STR("boot", d->boot),
	         LOG_STR("collector", cfg->collector), LOG_STR("key_id", d->key.id));
	result = cfg->collector ? setup_collector(d) : setup_matrix(d);
	if (result) {
		log_error(&d->lg, "cannot start", LOG_STR("error", strerror(-result)));
		/* Close what was opened, so that the loop can be closed too. */
		d->stopping = true;
		close_all(d);
		uv_close((uv_handle_t *)&d->deadline_timer, on_handle_closed);
		uv_run(&d->loop, UV_RUN_DEFAULT);
		uv_loop_close(&d->loop);
		goto out;
	}
	if (cfg->collector)
		start_plan_fetch(d);
	uv_timer_start(&d->tick, on_tick, TICK_MS, TICK_MS);
	uv_run(&d->loop, UV_RUN_DEFAULT);
	uv_close((uv_handle_t *)&d->deadline_timer, on_handle_closed);
	uv_run(&d->loop, UV_RUN_DEFAULT);
	result = uv_loop_close(&d->loop);
	if (result)
		log_error(&d->lg, "the event loop did not close",
		          LOG_STR("error", uv_strerror(result)));
	status = result ? DAEMON_EXIT_FAIL : DAEMON_EXIT_OK;
out:
	if (d->plan_easy)
		curl_easy_cleanup(d->plan_easy);
	curl_slist_free_all(d->plan_headers);
	curluv_body_dispose(&d->plan_body);
	free(d->plan_url);
	free(d->plan_target);
	free(d->sub.targets);
	probe_run_free(d->run);
	free(d->due);
	matrix_plan_free(d->plan);
	matrix_plan_free(d->next_plan);
	SSL_CTX_free(d->tls);
	ecs_identity_dispose(&d->id);
	push_key_dispose(&d->key);
	curl_global_cleanup();
	free(d);
	return status;
}
