/*
 * publisher: CloudWatch PutMetricData and EMF lines from the collector's state
 * (collector/publisher.h).
 *
 * CloudWatch: each flush appends its datums to one queue, bounded by
 * max_buffered (the oldest waiting datums are dropped first, counted). One
 * call is in flight at a time, holding the head of the queue: as many datums
 * as fit in one PutMetricData, gzip-compressed and signed at send time with the
 * credentials of the moment. A throttling answer, a 5xx, a 403 (credentials
 * may be refreshed) or a connection error keeps the datums and retries after a
 * capped exponential backoff with jitter; any other 4xx would fail again, so
 * its datums are dropped (counted) with CloudWatch's code and message logged.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "publisher.h"
#include "sgprobe/curluv.h"
#include "sgprobe/sigv4.h"
#include "sgprobe/timefmt.h"
#include "sgprobe/jitter.h"
#include "sgprobe/container.h"

#define RESPONSE_MAX (64 * 1024) /* bytes of an answer kept for the log */

struct publisher_s {
	uv_loop_t *loop;
	publish_config_t cfg; /* strings below */
	char *ns;
	char *region;
	char *endpoint;
	char *ca_file;
	char *ecs_host;
	char *imds_endpoint;
	char host[300]; /* the Host header: host[:port] as in the endpoint */
	char *path;     /* the endpoint's path, "/" at least */
	const log_t *lg;
	publisher_source_cb source;
	void *source_arg;
	publish_counters_t counters;

	uv_timer_t flush_timer;
	uv_timer_t retry_timer;
	uv_timer_t deadline_timer;
	curluv_t cu;
	bool have_cu;
	aws_creds_t *creds;
	uint64_t rng;

	/* The queue: the oldest first; [0, inflight) are in the call in flight. */
	cw_datum_t *q;
	size_t q_len;
	size_t q_cap;
	size_t inflight;
	CURL *easy;
	struct curl_slist *headers;
	unsigned char *gz;
	curluv_body_t resp; /* CloudWatch's answer to the call in flight, cut */
	unsigned attempt;   /* failed calls in a row */
	bool retry_pending; /* the retry timer runs */
	/* The first bytes of the secret and the token the call in flight was signed
	 * with: an error message that quotes them (AWS's canonical string does) is
	 * cut there before it is logged. Wiped when the call ends. */
	char secret_head[17];
	char token_head[17];
	bool warned_creds; /* "no credentials" logged since the last success */

	bool stopping;
	unsigned closing; /* handles and helpers whose close is still to come */
	publisher_stopped_cb stopped_cb;
	void *stopped_arg;
};

/* --- names ----------------------------------------------------------------------- */

int publisher_sink_parse(const char *s, publish_sink_t *out)
{
	if (!strcmp(s, "cloudwatch"))
		*out = PUBLISH_SINK_CLOUDWATCH;
	else if (!strcmp(s, "emf"))
		*out = PUBLISH_SINK_EMF;
	else if (!strcmp(s, "none"))
		*out = PUBLISH_SINK_NONE;
	else
		return -EINVAL;
	return 0;
}

const char *publisher_sink_name(publish_sink_t sink)
{
	switch (sink) {
	case PUBLISH_SINK_CLOUDWATCH:
		return "cloudwatch";
	case PUBLISH_SINK_EMF:
		return "emf";
	case PUBLISH_SINK_NONE:
		break;
	}
	return "none";
}

/* The per-cluster totals, in DESIGN.md's order, and the verdict each counts. */
static const struct {
	const char *name;
	int verdict; /* -1: an agent count */
} totals[] = {
    {"UnexpectedOpenPaths", VERDICT_VIOLATION},
    {"BlockedPaths", VERDICT_BLOCKED},
    {"NoListenerPaths", VERDICT_NO_LISTENER},
    {"TlsFailedPaths", VERDICT_TLS_FAILED},
    {"InconclusivePaths", VERDICT_INCONCLUSIVE},
    {"UnverifiedPaths", VERDICT_UNVERIFIED},
    {"StaleAgents", -1},
    {"ReportingAgents", -1},
};
#define N_TOTALS (sizeof(totals) / sizeof(totals[0]))

/* The metric of a cell's verdict, or NULL when the verdict has none (ok, stale, ...). */
static const char *cell_metric(verdict_t v)
{
	size_t i;

	for (i = 0; i < N_TOTALS; i++)
		if (totals[i].verdict == (int)v)
			return totals[i].name;
	return NULL;
}

/* --- the datums of a flush ------------------------------------------------------------ */

typedef struct {
	cw_datum_t *v;
	size_t n;
	size_t cap;
} datums_t;

static int push_datum(datums_t *d, const char *name, double value, uint64_t wall_ms,
                      const char *const *dims, size_t n_dims)
{
	int result;

	if (d->n == d->cap) {
		size_t cap = d->cap ? 2 * d->cap : 64;
		cw_datum_t *v = realloc(d->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		d->v = v;
		d->cap = cap;
	}
	result = cw_datum_init(&d->v[d->n], name, "Count", value, wall_ms, dims, n_dims);
	if (result)
		return result;
	d->n++;
	return 0;
}

static double total_value(const state_cluster_t *k, size_t i)
{
	if (totals[i].verdict >= 0)
		return (double)k->counts.cells[totals[i].verdict];
	return !strcmp(totals[i].name, "StaleAgents") ? (double)k->counts.agents_stale
	                                              : (double)k->counts.agents_live;
}

static int cluster_datums(datums_t *d, const state_cluster_t *k, uint64_t wall_ms)
{
	const char *dims[8];
	char port[8];
	size_t i;
	int result = 0;

	dims[0] = "Cluster";
	dims[1] = k->name;
	for (i = 0; !result && i < N_TOTALS; i++)
		result = push_datum(d, totals[i].name, total_value(k, i), wall_ms, dims, 1);
	dims[2] = "SourceRole";
	for (i = 0; !result && i < k->n_roles; i++) {
		dims[3] = k->roles[i].role;
		result =
		    push_datum(d, "ReportingAgents", (double)k->roles[i].live, wall_ms, dims, 2);
		if (!result)
			result = push_datum(d, "StaleAgents", (double)k->roles[i].stale, wall_ms,
			                    dims, 2);
	}
	dims[4] = "DestinationRole";
	dims[6] = "Port";
	for (i = 0; !result && i < k->n_cells; i++) {
		const state_cell_t *cell = &k->cells[i];
		const char *metric = cell_metric(cell->verdict);

		if (!metric)
			continue;
		dims[3] = cell->src_role;
		dims[5] = cell->dst_role;
		snprintf(port, sizeof(port), "%u", (unsigned)cell->port);
		dims[7] = port;
		result = push_datum(d, metric, 1, wall_ms, dims, 4);
	}
	return result;
}

int publisher_datums(const state_clusters_t *c, uint64_t wall_ms, cw_datum_t **out, size_t *n_out,
                     size_t *skipped)
{
	datums_t d = {0};
	size_t k, start;
	int result = 0;

	if (skipped)
		*skipped = 0;
	for (k = 0; !result && c && k < c->n; k++) {
		start = d.n;
		result = cluster_datums(&d, &c->v[k], wall_ms);
		if (result == -EINVAL) {
			/* A name CloudWatch cannot take: this cluster only is left out. */
			while (d.n > start)
				cw_datum_dispose(&d.v[--d.n]);
			if (skipped)
				(*skipped)++;
			result = 0;
		}
	}
	if (result) {
		for (k = 0; k < d.n; k++)
			cw_datum_dispose(&d.v[k]);
		free(d.v);
		d.v = NULL;
		d.n = 0;
	}
	*out = d.v;
	*n_out = d.n;
	return result;
}

/* --- helpers --------------------------------------------------------------------------- */

static char *dup_or_null(const char *s, bool *oom)
{
	char *d;

	if (!s)
		return NULL;
	d = strdup(s);
	if (!d)
		*oom = true;
	return d;
}

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* Fills p->host and p->path from the endpoint URL. */
static int parse_endpoint(publisher_t *p, char *err, size_t errlen)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL;
	int result = -EINVAL;

	if (!u)
		return -ENOMEM;
	if (curl_url_set(u, CURLUPART_URL, p->endpoint, 0) ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0)) {
		set_err(err, errlen, "--cloudwatch-endpoint: '%s' is not a URL", p->endpoint);
		goto done;
	}
	if (strcmp(scheme, "https") && strcmp(scheme, "http")) {
		set_err(err, errlen,
		        "--cloudwatch-endpoint: '%s': the scheme must be https or http",
		        p->endpoint);
		goto done;
	}
	curl_url_get(u, CURLUPART_PORT, &port, 0); /* only when the URL names one */
	curl_url_get(u, CURLUPART_PATH, &path, 0);
	if ((size_t)snprintf(p->host, sizeof(p->host), "%s%s%s", host, port ? ":" : "",
	                     port ? port : "") >= sizeof(p->host)) {
		set_err(err, errlen, "--cloudwatch-endpoint: the host is too long");
		goto done;
	}
	p->path = strdup(path && *path ? path : "/");
	result = p->path ? 0 : -ENOMEM;
done:
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_free(path);
	curl_url_cleanup(u);
	return result;
}

/* --- the queue ------------------------------------------------------------------------- */

static void queue_drop_front(publisher_t *p, size_t from, size_t n)
{
	size_t i;

	for (i = from; i < from + n; i++)
		cw_datum_dispose(&p->q[i]);
	memmove(&p->q[from], &p->q[from + n], (p->q_len - from - n) * sizeof(*p->q));
	p->q_len -= n;
}

/*
 * Appends a flush's datums (taking them over). Beyond max_buffered, the oldest
 * datums not in flight are dropped first, then the new ones' oldest.
 */
static void queue_append(publisher_t *p, cw_datum_t *d, size_t n)
{
	size_t max = p->cfg.max_buffered, excess, drop, i = 0;

	if (!n)
		return; /* a flush before any agent reported: d may be NULL */
	if (p->q_len + n > max) {
		excess = p->q_len + n - max;
		drop = p->q_len - p->inflight < excess ? p->q_len - p->inflight : excess;
		queue_drop_front(p, p->inflight, drop);
		p->counters.dropped_full += drop;
		excess -= drop;
		/* Still too many: the call in flight stays, the new ones' oldest go. */
		for (; i < excess && i < n; i++)
			cw_datum_dispose(&d[i]);
		p->counters.dropped_full += i;
		log_warn(p->lg, "metrics buffer full: oldest metrics dropped",
		         LOG_UINT("dropped", drop + i), LOG_UINT("max_buffered", max));
	}
	if (p->q_len + (n - i) > p->q_cap) {
		size_t cap = p->q_cap ? p->q_cap : 256;
		cw_datum_t *q;

		while (cap < p->q_len + (n - i))
			cap *= 2;
		q = realloc(p->q, cap * sizeof(*q));
		if (!q) {
			p->counters.dropped_full += n - i;
			for (; i < n; i++)
				cw_datum_dispose(&d[i]);
			log_error(p->lg, "out of memory: metrics of this flush dropped");
			return;
		}
		p->q = q;
		p->q_cap = cap;
	}
	memcpy(&p->q[p->q_len], &d[i], (n - i) * sizeof(*d));
	p->q_len += n - i;
}

/* --- CloudWatch calls ----------------------------------------------------------------- */

static void send_next(publisher_t *p);

static void end_call(publisher_t *p)
{
	explicit_bzero(p->secret_head, sizeof(p->secret_head));
	explicit_bzero(p->token_head, sizeof(p->token_head));
	curl_slist_free_all(p->headers);
	p->headers = NULL;
	free(p->gz);
	p->gz = NULL;
	curluv_body_dispose(&p->resp);
}

static void on_retry(uv_timer_t *t)
{
	publisher_t *p = container_of(t, publisher_t, retry_timer);

	p->retry_pending = false;
	send_next(p);
}

static void schedule_retry(publisher_t *p)
{
	uint64_t delay = p->cfg.retry_base_ms, jittered;
	unsigned i;

	for (i = 1; i < p->attempt && delay < p->cfg.retry_max_ms; i++)
		delay *= 2;
	if (delay > p->cfg.retry_max_ms)
		delay = p->cfg.retry_max_ms;
	/* Half fixed, half random: a fleet of collectors never retries in step. */
	jittered = delay / 2 + jitter_upto(&p->rng, delay / 2);
	p->retry_pending = true;
	uv_timer_start(&p->retry_timer, on_retry, jittered, 0);
}

/* Cuts `msg` where it would show request details that hold credentials. */
static void redact(const publisher_t *p, char *msg)
{
	const char *marks[] = {"The Canonical String", "The String-to-Sign", "x-amz-security-token",
	                       p->secret_head, p->token_head};
	size_t i;
	char *at;

	for (i = 0; i < sizeof(marks) / sizeof(marks[0]); i++) {
		if (strlen(marks[i]) < 8)
			continue;
		at = strcasestr(msg, marks[i]);
		if (at)
			snprintf(at, (size_t)(msg + strlen(msg) - at) + 1, "%s", "[cut]");
	}
}

static void on_call_done(CURL *easy, CURLcode result, void *arg)
{
	publisher_t *p = arg;
	char code[128], msg[512];
	long status = 0;
	size_t n = p->inflight;

	if (result == CURLE_OK)
		curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
	cw_xml_error(p->resp.data, p->resp.len, code, sizeof(code), msg, sizeof(msg));
	redact(p, msg);
	if (result == CURLE_ABORTED_BY_CALLBACK) {
		/* curluv_dispose() at the stop: the datums stay unsent. */
		p->inflight = 0;
		end_call(p);
		return;
	}
	if (result == CURLE_OK && status == 200) {
		p->counters.calls_ok++;
		p->counters.metrics_sent += n;
		p->attempt = 0;
		p->warned_creds = false;
		p->inflight = 0;
		queue_drop_front(p, 0, n);
		end_call(p);
		log_debug(p->lg, "PutMetricData", LOG_UINT("metrics", n),
		          LOG_UINT("buffered", p->q_len));
		send_next(p);
		return;
	}
	p->inflight = 0;
	if (result == CURLE_OK && status >= 400 && status < 500 && status != 403 && status != 429 &&
	    !cw_error_is_throttling(code) && !cw_error_is_auth(code)) {
		/* The request itself is wrong: sending it again would fail again. */
		p->counters.errors++;
		p->counters.dropped_rejected += n;
		queue_drop_front(p, 0, n);
		log_error(p->lg, "PutMetricData refused: metrics dropped",
		          LOG_INT("status", status), LOG_STR("code", code), LOG_STR("message", msg),
		          LOG_UINT("dropped", n));
		end_call(p);
		send_next(p);
		return;
	}
	p->attempt++;
	if (result == CURLE_OK && (status == 429 || cw_error_is_throttling(code))) {
		p->counters.throttles++;
		log_warn(p->lg, "PutMetricData throttled: retrying", LOG_INT("status", status),
		         LOG_STR("code", code), LOG_STR("message", msg),
		         LOG_UINT("attempt", p->attempt), LOG_UINT("buffered", p->q_len));
	} else if (result == CURLE_OK && (status == 403 || cw_error_is_auth(code))) {
		/* Not the data's fault: kept (bounded) until the credentials, the clock
		 * or the IAM policy is put right. */
		p->counters.errors++;
		log_error(p->lg,
		          "PutMetricData refused for its credentials: metrics kept, retrying",
		          LOG_INT("status", status), LOG_STR("code", code), LOG_STR("message", msg),
		          LOG_STR("source", aws_creds_source(p->creds)),
		          LOG_UINT("attempt", p->attempt), LOG_UINT("buffered", p->q_len));
	} else if (result == CURLE_OK) {
		p->counters.errors++;
		log_warn(p->lg, "PutMetricData failed: retrying", LOG_INT("status", status),
		         LOG_STR("code", code), LOG_STR("message", msg),
		         LOG_UINT("attempt", p->attempt), LOG_UINT("buffered", p->q_len));
	} else {
		p->counters.errors++;
		log_warn(p->lg, "PutMetricData failed: retrying", LOG_STR("url", p->endpoint),
		         LOG_STR("error", curl_easy_strerror(result)),
		         LOG_UINT("attempt", p->attempt), LOG_UINT("buffered", p->q_len));
	}
	end_call(p);
	/* Even while stopping: the stop's deadline bounds the wait. */
	schedule_retry(p);
}

static bool add_header(publisher_t *p, const char *name, const char *value)
{
	struct curl_slist *l;
	char *line;

	/* No fixed size: a session token may be several kilobytes. */
	if (asprintf(&line, "%s: %s", name, value) < 0)
		return false;
	l = curl_slist_append(p->headers, line);
	explicit_bzero(line, strlen(line));
	free(line);
	if (!l)
		return false;
	p->headers = l;
	return true;
}

/* Signs and starts one call with the head of the queue. Returns 0 or a negative errno. */
static int start_call(publisher_t *p, const aws_credentials_t *cred)
{
	static const char content_type[] = "application/x-www-form-urlencoded; charset=utf-8";
	char *form = NULL, err[256], amz_date[SIGV4_DATE_LEN + 1];
	size_t form_len, taken, gz_len;
	sigv4_header_t hdrs[3];
	sigv4_request_t req;
	sigv4_credentials_t sc;
	sigv4_params_t sp;
	sigv4_signed_t sig;
	int result;

	result = cw_form_encode(p->ns, p->q, p->q_len, &form, &form_len, &taken);
	if (result)
		return result;
	result = cw_gzip(form, form_len, &p->gz, &gz_len);
	free(form);
	if (result)
		return result;
	result = sigv4_date_now(amz_date);
	if (result)
		return result;
	hdrs[0] = (sigv4_header_t){"Content-Encoding", 16, "gzip", 4};
	hdrs[1] = (sigv4_header_t){"Content-Type", strlen("Content-Type"), content_type,
	                           strlen(content_type)};
	hdrs[2] = (sigv4_header_t){"Host", 4, p->host, strlen(p->host)};
	memset(&req, 0, sizeof(req));
	req.method = "POST";
	req.path = p->path;
	req.query = "";
	req.headers = hdrs;
	req.n_headers = 3;
	req.body = p->gz;
	req.body_len = gz_len;
	sc.access_key_id = cred->access_key_id;
	sc.secret_access_key = cred->secret_access_key;
	sc.session_token = cred->session_token;
	snprintf(p->secret_head, sizeof(p->secret_head), "%s", cred->secret_access_key);
	snprintf(p->token_head, sizeof(p->token_head), "%s",
	         cred->session_token ? cred->session_token : "");
	memset(&sp, 0, sizeof(sp));
	sp.region = p->region;
	sp.service = "monitoring";
	sp.amz_date = amz_date;
	memset(&sig, 0, sizeof(sig));
	result = sigv4_sign(&req, &sc, &sp, &sig, err, sizeof(err));
	if (result) {
		log_error(p->lg, "cannot sign PutMetricData", LOG_STR("error", err));
		return result;
	}
	result = -ENOMEM;
	if (!add_header(p, "Host", p->host) || !add_header(p, "Content-Type", content_type) ||
	    !add_header(p, "Content-Encoding", "gzip") ||
	    !add_header(p, "X-Amz-Date", sig.amz_date) ||
	    (sig.add_token && !add_header(p, "X-Amz-Security-Token", cred->session_token)) ||
	    !add_header(p, "Authorization", sig.authorization) || !add_header(p, "Expect", "") ||
	    !add_header(p, "Accept", "")) {
		sigv4_signed_dispose(&sig);
		return result;
	}
	sigv4_signed_dispose(&sig);
	curl_easy_setopt(p->easy, CURLOPT_URL, p->endpoint);
	curl_easy_setopt(p->easy, CURLOPT_HTTPHEADER, p->headers);
	curl_easy_setopt(p->easy, CURLOPT_POSTFIELDS, (char *)p->gz);
	curl_easy_setopt(p->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)gz_len);
	curl_easy_setopt(p->easy, CURLOPT_WRITEFUNCTION, curluv_body_write);
	curl_easy_setopt(p->easy, CURLOPT_WRITEDATA, &p->resp);
	curl_easy_setopt(p->easy, CURLOPT_TIMEOUT_MS, (long)p->cfg.timeout_ms);
	result = curluv_add(&p->cu, p->easy, on_call_done, p);
	if (result)
		return result;
	p->inflight = taken;
	p->counters.calls++;
	if (p->attempt)
		p->counters.retries++;
	return 0;
}

static void maybe_finish_stop(publisher_t *p);

static void send_next(publisher_t *p)
{
	const aws_credentials_t *cred;
	int result;

	if (p->inflight || p->retry_pending || !p->q_len || !p->have_cu) {
		maybe_finish_stop(p);
		return;
	}
	cred = aws_creds_get(p->creds, timefmt_now_ms());
	if (!cred) {
		if (!p->warned_creds)
			log_error(p->lg, "no valid AWS credentials: metrics stay buffered",
			          LOG_STR("source", aws_creds_source(p->creds)),
			          LOG_STR("last_error", aws_creds_last_error(p->creds)),
			          LOG_UINT("buffered", p->q_len));
		p->warned_creds = true;
		maybe_finish_stop(p);
		return;
	}
	result = start_call(p, cred);
	if (result) {
		end_call(p);
		p->attempt++;
		p->counters.errors++;
		log_error(p->lg, "cannot start PutMetricData", LOG_INT("error", result),
		          LOG_UINT("buffered", p->q_len));
		schedule_retry(p);
	}
}

static void on_credentials(aws_creds_t *c, void *arg)
{
	publisher_t *p = arg;

	(void)c;
	/* Data held for want of credentials goes now. */
	if (!p->retry_pending)
		send_next(p);
}

/* --- EMF ----------------------------------------------------------------------------- */

/* One line per run of datums sharing their dimension values (the flush's order). */
static void write_emf(publisher_t *p, const cw_datum_t *d, size_t n)
{
	FILE *out = p->cfg.emf_out ? p->cfg.emf_out : stdout;
	size_t i = 0, j;
	char *line;

	while (i < n) {
		for (j = i + 1;
		     j < n && j - i < CW_EMF_MAX_METRICS && cw_same_dimensions(&d[i], &d[j]); j++)
			;
		if (cw_emf_encode(p->ns, &d[i], j - i, &line)) {
			log_error(p->lg, "cannot encode an EMF line", LOG_STR("metric", d[i].name));
		} else {
			fprintf(out, "%s\n", line);
			free(line);
			p->counters.emf_lines++;
		}
		i = j;
	}
	fflush(out);
}

/* --- flushes ------------------------------------------------------------------------- */

void publisher_flush(publisher_t *p)
{
	uint64_t wall_ms = 0;
	state_clusters_t *c = p->source(p->source_arg, &wall_ms);
	cw_datum_t *d = NULL;
	size_t n = 0, i, skipped = 0;

	if (!c || publisher_datums(c, wall_ms, &d, &n, &skipped)) {
		state_clusters_free(c);
		log_error(p->lg, "out of memory: flush skipped");
		return;
	}
	state_clusters_free(c);
	if (skipped)
		log_warn(p->lg,
		         "clusters left out of the flush: a role or cluster name CloudWatch cannot "
		         "take as a dimension (empty, or longer than 1024 bytes)",
		         LOG_UINT("clusters", skipped));
	p->counters.flushes++;
	p->counters.metrics += n;
	switch (p->cfg.sink) {
	case PUBLISH_SINK_EMF:
		write_emf(p, d, n);
		break;
	case PUBLISH_SINK_CLOUDWATCH:
		queue_append(p, d, n);
		free(d);
		send_next(p);
		return;
	case PUBLISH_SINK_NONE:
		break;
	}
	for (i = 0; i < n; i++)
		cw_datum_dispose(&d[i]);
	free(d);
}

static void on_flush(uv_timer_t *t)
{
	publisher_flush(container_of(t, publisher_t, flush_timer));
}

/* --- life ------------------------------------------------------------------------------ */

publisher_t *publisher_new(uv_loop_t *loop, const publish_config_t *cfg, const log_t *lg,
                           publisher_source_cb source, void *arg, char *err, size_t errlen)
{
	publisher_t *p = calloc(1, sizeof(*p));
	bool oom = false;

	if (!p) {
		set_err(err, errlen, "out of memory");
		return NULL;
	}
	p->loop = loop;
	p->cfg = *cfg;
	p->lg = lg;
	/* A SignatureDoesNotMatch answer quotes the canonical request, token included. */
	p->resp = (curluv_body_t){.max = RESPONSE_MAX, .truncate = true, .secret = true};
	p->source = source;
	p->source_arg = arg;
	p->rng = (uint64_t)uv_hrtime() | 1;
	if (!p->cfg.flush_interval_s)
		p->cfg.flush_interval_s = PUBLISH_DEFAULT_FLUSH_S;
	if (!p->cfg.max_buffered)
		p->cfg.max_buffered = PUBLISH_DEFAULT_MAX_BUFFERED;
	if (!p->cfg.retry_base_ms)
		p->cfg.retry_base_ms = PUBLISH_DEFAULT_RETRY_MS;
	if (!p->cfg.retry_max_ms)
		p->cfg.retry_max_ms = PUBLISH_DEFAULT_RETRY_MAX_MS;
	if (p->cfg.retry_max_ms < p->cfg.retry_base_ms)
		p->cfg.retry_max_ms = p->cfg.retry_base_ms;
	if (!p->cfg.timeout_ms)
		p->cfg.timeout_ms = PUBLISH_DEFAULT_TIMEOUT_MS;
	p->ns = strdup(cfg->ns ? cfg->ns : PUBLISH_DEFAULT_NAMESPACE);
	p->region = dup_or_null(cfg->region, &oom);
	p->ca_file = dup_or_null(cfg->ca_file, &oom);
	p->ecs_host = dup_or_null(cfg->creds.ecs_host, &oom);
	p->imds_endpoint = dup_or_null(cfg->creds.imds_endpoint, &oom);
	if (!p->ns || oom)
		goto oom;
	p->cfg.ns = p->ns;
	p->cfg.region = p->region;
	p->cfg.ca_file = p->ca_file;
	p->cfg.creds.ecs_host = p->ecs_host;
	p->cfg.creds.imds_endpoint = p->imds_endpoint;
	p->cfg.creds.ca_file = p->ca_file;
	/* CloudWatch's rules: every call would be refused otherwise. */
	if (!p->ns[0] || strlen(p->ns) > CW_NAME_MAX) {
		set_err(err, errlen, "--namespace: '%s' must be 1 to %d characters", p->ns,
		        CW_NAME_MAX);
		goto fail;
	}
	if (!strncmp(p->ns, "AWS/", 4)) {
		set_err(err, errlen, "--namespace: '%s': AWS/ is reserved for AWS's own metrics",
		        p->ns);
		goto fail;
	}
	uv_timer_init(loop, &p->flush_timer);
	uv_timer_init(loop, &p->retry_timer);
	uv_timer_init(loop, &p->deadline_timer);
	if (p->cfg.sink != PUBLISH_SINK_CLOUDWATCH)
		return p;
	if (!p->region || !*p->region) {
		set_err(err, errlen, "--metrics-sink cloudwatch needs --region (or AWS_REGION)");
		goto fail_timers;
	}
	/* The region names the default host: letters, digits and dashes only. */
	if (strlen(p->region) > 32 ||
	    strspn(p->region, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(p->region)) {
		set_err(err, errlen, "--region: '%.40s' is not an AWS region name (like us-east-1)",
		        p->region);
		goto fail_timers;
	}
	if (cfg->endpoint)
		p->endpoint = strdup(cfg->endpoint);
	else if (asprintf(&p->endpoint, "https://monitoring.%s.amazonaws.com/", p->region) < 0)
		p->endpoint = NULL;
	if (!p->endpoint)
		goto oom_timers;
	p->cfg.endpoint = p->endpoint;
	if (parse_endpoint(p, err, errlen))
		goto fail_timers;
	if (curluv_init(&p->cu, loop))
		goto oom_timers;
	p->have_cu = true;
	p->easy = curl_easy_init();
	if (!p->easy || curluv_easy_defaults(p->easy, p->ca_file))
		goto oom_timers;
	p->creds = aws_creds_new(loop, &p->cu, &p->cfg.creds, lg, on_credentials, p);
	if (!p->creds)
		goto oom_timers;
	return p;

oom_timers:
	set_err(err, errlen, "out of memory");
fail_timers:
	/* Nothing ran on the loop yet: the handles close with the loop's next turn. */
	p->stopping = true;
	publisher_stop(p, 0, NULL, NULL);
	return NULL;
oom:
	set_err(err, errlen, "out of memory");
fail:
	free(p->ns);
	free(p->region);
	free(p->ca_file);
	free(p->ecs_host);
	free(p->imds_endpoint);
	free(p);
	return NULL;
}

int publisher_start(publisher_t *p, char *err, size_t errlen)
{
	uint64_t ms = (uint64_t)p->cfg.flush_interval_s * 1000u;
	int result;

	if (p->creds) {
		result = aws_creds_start(p->creds);
		if (result) {
			set_err(err, errlen, "no AWS credentials: %s",
			        *aws_creds_last_error(p->creds) ? aws_creds_last_error(p->creds)
			                                        : "no source in the chain");
			return result;
		}
	}
	uv_timer_start(&p->flush_timer, on_flush, ms, ms);
	log_info(p->lg, "metrics publisher started",
	         LOG_STR("sink", publisher_sink_name(p->cfg.sink)), LOG_STR("namespace", p->ns),
	         LOG_STR("endpoint", p->endpoint),
	         LOG_UINT("flush_interval_s", p->cfg.flush_interval_s));
	return 0;
}

void publisher_counters(const publisher_t *p, publish_counters_t *out)
{
	*out = p->counters;
	out->buffered = p->q_len;
}

char *publisher_prometheus(const publisher_t *p)
{
	const char *sink = publisher_sink_name(p->cfg.sink);
	publish_counters_t counters;
	const publish_counters_t *c = &counters;
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);

	publisher_counters(p, &counters);
	if (!f)
		return NULL;
	fprintf(f,
	        "# HELP sgprobe_publish_flushes_total Flushes of the metrics sink.\n"
	        "# TYPE sgprobe_publish_flushes_total counter\n"
	        "sgprobe_publish_flushes_total{sink=\"%s\"} %" PRIu64 "\n"
	        "# HELP sgprobe_publish_metrics_total Metric values produced by the flushes.\n"
	        "# TYPE sgprobe_publish_metrics_total counter\n"
	        "sgprobe_publish_metrics_total{sink=\"%s\"} %" PRIu64 "\n"
	        "# HELP sgprobe_publish_calls_total PutMetricData calls, by result.\n"
	        "# TYPE sgprobe_publish_calls_total counter\n"
	        "sgprobe_publish_calls_total{result=\"ok\"} %" PRIu64 "\n"
	        "sgprobe_publish_calls_total{result=\"throttled\"} %" PRIu64 "\n"
	        "sgprobe_publish_calls_total{result=\"error\"} %" PRIu64 "\n"
	        "# HELP sgprobe_publish_retries_total PutMetricData calls that repeated a failed "
	        "one.\n"
	        "# TYPE sgprobe_publish_retries_total counter\n"
	        "sgprobe_publish_retries_total %" PRIu64 "\n"
	        "# HELP sgprobe_publish_throttles_total Throttling answers from CloudWatch.\n"
	        "# TYPE sgprobe_publish_throttles_total counter\n"
	        "sgprobe_publish_throttles_total %" PRIu64 "\n"
	        "# HELP sgprobe_publish_sent_metrics_total Metric values CloudWatch accepted.\n"
	        "# TYPE sgprobe_publish_sent_metrics_total counter\n"
	        "sgprobe_publish_sent_metrics_total %" PRIu64 "\n"
	        "# HELP sgprobe_publish_dropped_metrics_total Metric values dropped, by reason.\n"
	        "# TYPE sgprobe_publish_dropped_metrics_total counter\n"
	        "sgprobe_publish_dropped_metrics_total{reason=\"buffer_full\"} %" PRIu64 "\n"
	        "sgprobe_publish_dropped_metrics_total{reason=\"rejected\"} %" PRIu64 "\n"
	        "# HELP sgprobe_publish_buffered_metrics Metric values waiting for CloudWatch.\n"
	        "# TYPE sgprobe_publish_buffered_metrics gauge\n"
	        "sgprobe_publish_buffered_metrics %zu\n"
	        "# HELP sgprobe_publish_emf_lines_total EMF lines written on stdout.\n"
	        "# TYPE sgprobe_publish_emf_lines_total counter\n"
	        "sgprobe_publish_emf_lines_total %" PRIu64 "\n",
	        sink, c->flushes, sink, c->metrics, c->calls_ok, c->throttles, c->errors,
	        c->retries, c->throttles, c->metrics_sent, c->dropped_full, c->dropped_rejected,
	        c->buffered, c->emf_lines);
	if (p->creds)
		fprintf(
		    f,
		    "# HELP sgprobe_aws_credentials_fetches_total Credential fetches, by result.\n"
		    "# TYPE sgprobe_aws_credentials_fetches_total counter\n"
		    "sgprobe_aws_credentials_fetches_total{result=\"ok\"} %" PRIu64 "\n"
		    "sgprobe_aws_credentials_fetches_total{result=\"error\"} %" PRIu64 "\n",
		    aws_creds_refreshes(p->creds), aws_creds_failures(p->creds));
	if (fclose(f)) {
		free(out);
		return NULL;
	}
	return out;
}

/* --- the stop ------------------------------------------------------------------------- */

static void on_closed_one(publisher_t *p)
{
	size_t i;

	if (--p->closing)
		return;
	for (i = 0; i < p->q_len; i++)
		cw_datum_dispose(&p->q[i]);
	free(p->q);
	end_call(p);
	free(p->ns);
	free(p->region);
	free(p->endpoint);
	free(p->path);
	free(p->ca_file);
	free(p->ecs_host);
	free(p->imds_endpoint);
	if (p->stopped_cb)
		p->stopped_cb(p->stopped_arg);
	free(p);
}

static void on_timer_closed(uv_handle_t *h)
{
	publisher_t *p = h->data;

	on_closed_one(p);
}

static void on_cu_closed(curluv_t *cu)
{
	on_closed_one(container_of(cu, publisher_t, cu));
}

static void on_creds_closed(void *arg)
{
	on_closed_one(arg);
}

static void close_all(publisher_t *p)
{
	uv_timer_t *timers[] = {&p->flush_timer, &p->retry_timer, &p->deadline_timer};
	size_t i;

	/* One extra count, dropped at the end, so no callback frees p under us. */
	p->closing = 1;
	for (i = 0; i < 3; i++) {
		p->closing++;
		timers[i]->data = p;
		uv_close((uv_handle_t *)timers[i], on_timer_closed);
	}
	if (p->creds) {
		p->closing++;
		aws_creds_free(p->creds, on_creds_closed, p);
		p->creds = NULL;
	}
	if (p->have_cu) {
		if (p->easy && p->inflight)
			curluv_remove(&p->cu, p->easy);
		p->inflight = 0;
		p->closing++;
		p->have_cu = false;
		curluv_dispose(&p->cu, on_cu_closed);
	}
	if (p->easy)
		curl_easy_cleanup(p->easy);
	p->easy = NULL;
	on_closed_one(p);
}

static void on_deadline(uv_timer_t *t)
{
	publisher_t *p = container_of(t, publisher_t, deadline_timer);

	if (p->q_len)
		log_error(p->lg, "stop deadline: metrics left unsent",
		          LOG_UINT("unsent", p->q_len));
	close_all(p);
}

static void maybe_finish_stop(publisher_t *p)
{
	/* Everything delivered ends the stop early; otherwise the deadline does. */
	if (!p->stopping || !p->stopped_cb || p->q_len || p->inflight || p->closing)
		return;
	uv_timer_stop(&p->deadline_timer);
	close_all(p);
}

void publisher_stop(publisher_t *p, unsigned deadline_ms, publisher_stopped_cb cb, void *arg)
{
	bool was_stopping = p->stopping;

	p->stopping = true;
	uv_timer_stop(&p->flush_timer);
	if (was_stopping || !cb) {
		/* publisher_new() failing: nothing to flush. */
		p->stopped_cb = cb;
		p->stopped_arg = arg;
		close_all(p);
		return;
	}
	p->stopped_cb = cb;
	p->stopped_arg = arg;
	publisher_flush(p);
	if (p->closing)
		return; /* nothing was left to send: the flush ended the stop */
	if (p->cfg.sink != PUBLISH_SINK_CLOUDWATCH) {
		close_all(p);
		return;
	}
	/* A retry waiting for its backoff goes at once: the deadline bounds it. */
	if (p->retry_pending) {
		uv_timer_stop(&p->retry_timer);
		p->retry_pending = false;
	}
	uv_timer_start(&p->deadline_timer, on_deadline, deadline_ms, 0);
	send_next(p);
}
