/*
 * pusher: the daemon's push pipeline (see pusher.h).
 *
 * One report is on the wire at a time (`current`); the others wait in a FIFO,
 * oldest first. A report whose attempt fails goes back to the front of the
 * queue, so nothing overtakes it and seq keeps arriving in order; while it
 * waits for its backoff it is an ordinary queued report, the oldest, and the
 * first to go when the queue overflows. The backoff grows with the number of
 * consecutive failures, whichever report they hit, and any answer that is not
 * a failure (delivered, or refused for good) resets it.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cJSON.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "pusher.h"
#include "sgprobe/auth.h"
#include "sgprobe/jitter.h"
#include "sgprobe/container.h"

/* A queued report. */
struct pusher_item_s {
	struct pusher_item_s *next;
	uint64_t seq;
	char *body;
	size_t len;
};

typedef struct pusher_item_s item_t;

static void log_line(pusher_t *p, pusher_log_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void log_line(pusher_t *p, pusher_log_level_t level, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (p->log)
		p->log(p->log_arg, level, msg);
	else
		fprintf(stderr, "sgprobe-agent: push: %s\n", msg);
}

static void item_free(item_t *it)
{
	if (!it)
		return;
	free(it->body);
	free(it);
}

static void push_back(pusher_t *p, item_t *it)
{
	it->next = NULL;
	if (p->tail)
		p->tail->next = it;
	else
		p->head = it;
	p->tail = it;
	p->n_queued++;
	p->queued_bytes += it->len;
}

static void push_front(pusher_t *p, item_t *it)
{
	it->next = p->head;
	p->head = it;
	if (!p->tail)
		p->tail = it;
	p->n_queued++;
	p->queued_bytes += it->len;
}

static item_t *pop_front(pusher_t *p)
{
	item_t *it = p->head;

	if (!it)
		return NULL;
	p->head = it->next;
	if (!p->head)
		p->tail = NULL;
	it->next = NULL;
	p->n_queued--;
	p->queued_bytes -= it->len;
	return it;
}

/* Drops the oldest queued reports until the queue is within its bounds. */
static void trim(pusher_t *p)
{
	while (p->head && (p->n_queued > p->max_reports || p->queued_bytes > p->max_bytes)) {
		item_t *it = pop_front(p);

		p->counters.dropped_full++;
		log_line(p, PUSHER_LOG_ERROR,
		         "queue full (%zu reports, %zu bytes at most): dropped report seq %" PRIu64
		         " (%zu bytes)",
		         p->max_reports, p->max_bytes, it->seq, it->len);
		item_free(it);
	}
}

/* Frees every queued report; returns how many there were. */
static uint64_t drop_all(pusher_t *p)
{
	uint64_t n = 0;
	item_t *it;

	while ((it = pop_front(p))) {
		item_free(it);
		n++;
	}
	return n;
}

/*
 * The collector's message: the "error" of its JSON answer, or else the
 * answer's text, cut and with control characters replaced, or "(no message)".
 */
static void collector_message(const pusher_t *p, char *out, size_t outlen)
{
	cJSON *doc = cJSON_ParseWithLength(p->answer.data, p->answer.len);
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(doc, "error");
	size_t i;

	if (cJSON_IsString(e) && e->valuestring) {
		snprintf(out, outlen, "%s", e->valuestring);
	} else if (p->answer.len > 0) {
		snprintf(out, outlen, "%s", p->answer.data);
	} else {
		snprintf(out, outlen, "(no message)");
	}
	cJSON_Delete(doc);
	for (i = 0; out[i]; i++) {
		if ((unsigned char)out[i] < 0x20)
			out[i] = ' ';
	}
}

static bool answer_is_duplicate(const pusher_t *p)
{
	cJSON *doc = cJSON_ParseWithLength(p->answer.data, p->answer.len);
	bool dup = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(doc, "duplicate"));

	cJSON_Delete(doc);
	return dup;
}

/* The next backoff: full jitter under a ceiling that doubles per failure. */
static uint64_t backoff_ms(pusher_t *p)
{
	unsigned shift = p->failures > 0 ? p->failures - 1 : 0;
	uint64_t ceiling = p->backoff_base_ms;

	while (shift-- > 0 && ceiling < p->backoff_cap_ms)
		ceiling *= 2;
	if (ceiling > p->backoff_cap_ms)
		ceiling = p->backoff_cap_ms;
	return jitter_upto(&p->rng, ceiling);
}

static void send_head(pusher_t *p);

static void kick(pusher_t *p)
{
	if (!p->current && !p->waiting && !p->stopped && !p->disposing && p->head)
		send_head(p);
}

static void on_retry(uv_timer_t *t)
{
	pusher_t *p = container_of(t, pusher_t, retry_timer);

	p->waiting = false;
	kick(p);
}

/* Ends pusher_stop(): cancels and counts whatever is left, tells the caller. */
static void finish_stop(pusher_t *p, int status)
{
	pusher_stop_cb cb = p->stop_cb;
	uint64_t left = 0;

	if (p->stopped)
		return;
	p->stopped = true;
	p->stop_cb = NULL;
	uv_timer_stop(&p->retry_timer);
	uv_timer_stop(&p->deadline_timer);
	p->waiting = false;
	if (p->current) {
		curluv_remove(p->cu, p->easy);
		item_free(p->current);
		p->current = NULL;
		left++;
	}
	left += drop_all(p);
	p->counters.abandoned += left;
	if (left)
		log_line(p, PUSHER_LOG_ERROR,
		         "stopping: gave up with %" PRIu64 " report%s undelivered", left,
		         left == 1 ? "" : "s");
	if (cb)
		cb(p, status);
}

static void on_deadline(uv_timer_t *t)
{
	pusher_t *p = container_of(t, pusher_t, deadline_timer);

	finish_stop(p, p->current || p->head ? -ETIMEDOUT : 0);
}

/*
 * While stopping: the deadline timer fires at the deadline while there is
 * work, or at once (on the next iteration) when there is none, to end the stop.
 */
static void arm_deadline(pusher_t *p)
{
	uint64_t now = uv_now(p->loop), due = 0;

	if (p->current || p->head)
		due = p->deadline > now ? p->deadline - now : 0;
	uv_timer_start(&p->deadline_timer, on_deadline, due, 0);
}

/* After an answer that settles the current report: the next, or the end of a stop. */
static void settled(pusher_t *p)
{
	if (p->stopping && !p->current && !p->head)
		finish_stop(p, 0);
	else
		kick(p);
}

/*
 * An attempt failed and may succeed later: the report goes back to the front
 * of the queue and the next attempt waits `retry_after_ms` (the collector's
 * Retry-After, plus jitter) or the backoff.
 */
static void retry(pusher_t *p, item_t *it, uint64_t retry_after_ms, const char *why)
{
	uint64_t now = uv_now(p->loop), delay;
	uint64_t seq = it->seq, dropped = p->counters.dropped_full;
	bool gone;

	if (p->failures < UINT32_MAX)
		p->failures++;
	push_front(p, it);
	/* It is now the oldest queued report: the first to go if reports came
	 * meanwhile and the queue overflows. */
	trim(p);
	gone = p->counters.dropped_full != dropped;
	if (retry_after_ms)
		delay = retry_after_ms + jitter_upto(&p->rng, p->backoff_base_ms);
	else
		delay = backoff_ms(p);
	if (!p->head) {
		settled(p);
		return;
	}
	if (p->stopping && now + delay >= p->deadline) {
		log_line(p, PUSHER_LOG_WARN, "report seq %" PRIu64 ": %s; no time left to retry",
		         seq, why);
		finish_stop(p, -ETIMEDOUT);
		return;
	}
	if (gone) {
		/* Not scheduled again: the next one waits the backoff instead. */
		log_line(p, PUSHER_LOG_WARN,
		         "report seq %" PRIu64 ": %s; dropped, the queue is full; seq %" PRIu64
		         " next, in %" PRIu64 " ms",
		         seq, why, p->head->seq, delay);
	} else {
		p->counters.retried++;
		log_line(p, PUSHER_LOG_WARN, "report seq %" PRIu64 ": %s; retry in %" PRIu64 " ms",
		         seq, why, delay);
	}
	p->waiting = true;
	p->retry_due = now + delay;
	uv_timer_start(&p->retry_timer, on_retry, delay, 0);
}

static void on_done(CURL *easy, CURLcode result, void *arg)
{
	pusher_t *p = arg;
	item_t *it = p->current;
	char msg[PUSHER_MSG_MAX - 16], why[PUSHER_MSG_MAX + 64];
	curl_off_t retry_after = 0;
	long status = 0;

	p->current = NULL;
	curl_slist_free_all(p->headers);
	p->headers = NULL;
	if (!it)
		return;
	if (result == CURLE_ABORTED_BY_CALLBACK) {
		/* curluv_dispose() under us: the report was not sent; keep it first. */
		push_front(p, it);
		return;
	}
	if (result != CURLE_OK) {
		snprintf(why, sizeof(why), "%s",
		         p->errbuf[0] ? p->errbuf : curl_easy_strerror(result));
		retry(p, it, 0, why);
		return;
	}
	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
	p->counters.sent++;
	if (status >= 200 && status < 300) {
		p->counters.delivered++;
		if (answer_is_duplicate(p))
			p->counters.duplicates++;
		if (p->failures > 0)
			log_line(p, PUSHER_LOG_INFO,
			         "report seq %" PRIu64 " delivered after %u failed attempt%s",
			         it->seq, p->failures, p->failures == 1 ? "" : "s");
		p->failures = 0;
		item_free(it);
		settled(p);
		return;
	}
	collector_message(p, msg, sizeof(msg));
	if (status == 429 || status == 408 || status >= 500) {
		if (curl_easy_getinfo(easy, CURLINFO_RETRY_AFTER, &retry_after) != CURLE_OK ||
		    retry_after < 0)
			retry_after = 0;
		if (retry_after > PUSHER_MAX_RETRY_AFTER_S)
			retry_after = PUSHER_MAX_RETRY_AFTER_S;
		snprintf(why, sizeof(why), "the collector answered %ld: %s", status, msg);
		retry(p, it, (uint64_t)retry_after * 1000u, why);
		return;
	}
	/* 413 and the other refusals: sending it again would be refused again. */
	p->counters.dropped_rejected++;
	snprintf(p->last_rejection, sizeof(p->last_rejection), "%d: %s", (int)status, msg);
	log_line(p, PUSHER_LOG_ERROR,
	         "report seq %" PRIu64 " (%zu bytes) refused by the collector: %s", it->seq,
	         it->len, p->last_rejection);
	p->failures = 0;
	item_free(it);
	settled(p);
}

/* Appends to a header list; on failure frees the whole list and returns NULL. */
static struct curl_slist *append(struct curl_slist *list, const char *s)
{
	struct curl_slist *next = curl_slist_append(list, s);

	if (!next)
		curl_slist_free_all(list);
	return next;
}

/* Signs and sends the oldest queued report. */
static void send_head(pusher_t *p)
{
	item_t *it = pop_front(p);
	char auth[512], hdr[600];
	struct curl_slist *h;
	uint64_t timeout = p->timeout_ms, now = uv_now(p->loop);
	int result;

	p->current = it;
	/* Signed now, with the time of this attempt: a retry is never stale. */
	result = auth_header(p->key_id, p->secret, p->secret_len, "POST", p->target,
	                     (int64_t)time(NULL), it->body, it->len, auth, sizeof(auth));
	if (result) {
		p->current = NULL;
		retry(p, it, 0, "cannot sign the report");
		return;
	}
	snprintf(hdr, sizeof(hdr), "Authorization: %s", auth);
	h = append(NULL, hdr);
	h = h ? append(h, "Content-Type: application/json") : NULL;
	/* No 100-continue round trip before a large body. */
	h = h ? append(h, "Expect:") : NULL;
	if (!h) {
		p->current = NULL;
		retry(p, it, 0, "out of memory");
		return;
	}
	p->headers = h;
	if (p->stopping)
		timeout = p->deadline > now ? p->deadline - now : 1;
	if (timeout > p->timeout_ms)
		timeout = p->timeout_ms;
	curluv_body_reset(&p->answer);
	p->errbuf[0] = '\0';
	curl_easy_setopt(p->easy, CURLOPT_HTTPHEADER, p->headers);
	curl_easy_setopt(p->easy, CURLOPT_POSTFIELDS, it->body);
	curl_easy_setopt(p->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)it->len);
	curl_easy_setopt(p->easy, CURLOPT_TIMEOUT_MS, (long)timeout);
	result = curluv_add(p->cu, p->easy, on_done, p);
	if (result) {
		p->current = NULL;
		curl_slist_free_all(p->headers);
		p->headers = NULL;
		if (result == -ECANCELED) {
			/* The transport is going away: keep the report, try nothing. */
			push_front(p, it);
			return;
		}
		retry(p, it, 0, "cannot start the request");
		return;
	}
	p->counters.attempts++;
}

/* The request target the signature covers, and a scheme check. */
static int url_target(const char *url, char **target)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *path = NULL, *query = NULL;
	int result = -EINVAL;
	size_t len;

	*target = NULL;
	if (!u)
		return -ENOMEM;
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_PATH, &path, 0) != CURLUE_OK)
		goto out;
	if (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)
		goto out;
	if (curl_url_get(u, CURLUPART_QUERY, &query, 0) != CURLUE_OK)
		query = NULL;
	len = strlen(path) + (query ? strlen(query) + 1 : 0) + 1;
	*target = malloc(len);
	if (!*target) {
		result = -ENOMEM;
		goto out;
	}
	snprintf(*target, len, "%s%s%s", path, query ? "?" : "", query ? query : "");
	result = 0;
out:
	curl_free(scheme);
	curl_free(path);
	curl_free(query);
	curl_url_cleanup(u);
	return result;
}

/* Frees what pusher_init() allocated (no uv handle among it). */
static void release(pusher_t *p)
{
	if (p->secret)
		OPENSSL_cleanse(p->secret, p->secret_len);
	free(p->secret);
	p->secret = NULL;
	free(p->key_id);
	p->key_id = NULL;
	free(p->url);
	p->url = NULL;
	free(p->target);
	p->target = NULL;
	curl_slist_free_all(p->headers);
	p->headers = NULL;
	curluv_body_dispose(&p->answer);
	if (p->easy)
		curl_easy_cleanup(p->easy);
	p->easy = NULL;
}

int pusher_init(pusher_t *p, uv_loop_t *loop, curluv_t *cu, const pusher_config_t *cfg)
{
	unsigned char seed[8];
	int result;
	size_t i;

	memset(p, 0, sizeof(*p));
	if (!cfg || !cfg->url || !cfg->key_id || !*cfg->key_id || !cfg->secret || !cfg->secret_len)
		return -EINVAL;
	p->loop = loop;
	p->cu = cu;
	p->answer.max = PUSHER_ANSWER_MAX;
	p->answer.truncate = true;
	p->max_reports = cfg->max_reports ? cfg->max_reports : PUSHER_DEFAULT_MAX_REPORTS;
	p->max_bytes = cfg->max_bytes ? cfg->max_bytes : PUSHER_DEFAULT_MAX_BYTES;
	p->backoff_base_ms =
	    cfg->backoff_base_ms ? cfg->backoff_base_ms : PUSHER_DEFAULT_BACKOFF_MS;
	p->backoff_cap_ms = cfg->backoff_cap_ms ? cfg->backoff_cap_ms : PUSHER_DEFAULT_CAP_MS;
	if (p->backoff_cap_ms < p->backoff_base_ms)
		p->backoff_cap_ms = p->backoff_base_ms;
	p->timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : PUSHER_DEFAULT_TIMEOUT_MS;
	if (p->timeout_ms > LONG_MAX)
		p->timeout_ms = LONG_MAX;
	p->next_seq = cfg->first_seq ? cfg->first_seq : 1;
	p->log = cfg->log;
	p->log_arg = cfg->log_arg;
	if (cfg->seed) {
		p->rng = cfg->seed;
	} else {
		if (RAND_bytes(seed, sizeof(seed)) != 1)
			return -EIO;
		for (i = 0; i < sizeof(seed); i++)
			p->rng = p->rng << 8 | seed[i];
		OPENSSL_cleanse(seed, sizeof(seed));
	}
	result = url_target(cfg->url, &p->target);
	if (result)
		goto fail;
	result = -ENOMEM;
	p->url = strdup(cfg->url);
	p->key_id = strdup(cfg->key_id);
	p->secret = malloc(cfg->secret_len);
	p->easy = curl_easy_init();
	if (!p->url || !p->key_id || !p->secret || !p->easy)
		goto fail;
	memcpy(p->secret, cfg->secret, cfg->secret_len);
	p->secret_len = cfg->secret_len;
	result = curluv_easy_defaults(p->easy, cfg->ca_file);
	if (result)
		goto fail;
	if (curl_easy_setopt(p->easy, CURLOPT_URL, p->url) != CURLE_OK ||
	    curl_easy_setopt(p->easy, CURLOPT_POST, 1L) != CURLE_OK ||
	    curl_easy_setopt(p->easy, CURLOPT_WRITEFUNCTION, curluv_body_write) != CURLE_OK ||
	    curl_easy_setopt(p->easy, CURLOPT_WRITEDATA, &p->answer) != CURLE_OK ||
	    curl_easy_setopt(p->easy, CURLOPT_ERRORBUFFER, p->errbuf) != CURLE_OK) {
		result = -EINVAL;
		goto fail;
	}
	/* Last: neither can fail, and nothing above needs a handle closed. */
	uv_timer_init(loop, &p->retry_timer);
	uv_timer_init(loop, &p->deadline_timer);
	return 0;
fail:
	release(p);
	return result;
}

/* Allocates the n queue entries of one split at once: all or nothing. */
static int make_items(size_t n, item_t **first)
{
	item_t *head = NULL, **tail = &head;
	size_t i;

	for (i = 0; i < n; i++) {
		item_t *it = calloc(1, sizeof(*it));

		if (!it) {
			while (head) {
				item_t *next = head->next;

				free(head);
				head = next;
			}
			return -ENOMEM;
		}
		*tail = it;
		tail = &it->next;
	}
	*first = head;
	return 0;
}

int pusher_enqueue(pusher_t *p, uint64_t seq, char *body, size_t len)
{
	item_t *it;

	if (p->stopped || p->disposing)
		return -ECANCELED;
	if (!body || len == 0)
		return -EINVAL;
	it = calloc(1, sizeof(*it));
	if (!it)
		return -ENOMEM;
	it->seq = seq;
	it->body = body;
	it->len = len;
	push_back(p, it);
	trim(p);
	kick(p);
	/* A report after pusher_stop() (the final one) gets the time left. */
	if (p->stopping)
		arm_deadline(p);
	return 0;
}

int pusher_submit(pusher_t *p, const report_t *r)
{
	pusher_body_t *bodies = NULL;
	item_t *items = NULL, *it, *next;
	size_t n = 0, i;
	int result;

	if (p->stopped || p->disposing)
		return -ECANCELED;
	result = pusher_split(r, p->next_seq, &bodies, &n);
	if (result)
		return result;
	if (n > INT32_MAX) {
		pusher_bodies_free(bodies, n);
		return -E2BIG;
	}
	result = make_items(n, &items);
	if (result) {
		pusher_bodies_free(bodies, n);
		return result;
	}
	for (i = 0, it = items; it; i++, it = next) {
		next = it->next;
		it->seq = bodies[i].seq;
		it->body = bodies[i].body;
		it->len = bodies[i].len;
		push_back(p, it);
	}
	free(bodies);
	p->next_seq += n;
	trim(p);
	kick(p);
	if (p->stopping)
		arm_deadline(p);
	return (int)n;
}

uint64_t pusher_next_seq(const pusher_t *p)
{
	return p->next_seq;
}

void pusher_queued(const pusher_t *p, size_t *reports, size_t *bytes)
{
	if (reports)
		*reports = p->n_queued + (p->current ? 1 : 0);
	if (bytes)
		*bytes = p->queued_bytes + (p->current ? p->current->len : 0);
}

int pusher_stop(pusher_t *p, uint64_t deadline, pusher_stop_cb cb)
{
	if (p->stopping || p->disposing)
		return -EALREADY;
	p->stopping = true;
	p->deadline = deadline;
	p->stop_cb = cb;
	/* Nothing left, or a deadline already past: the timer ends it at once,
	 * but on a later iteration, as promised. */
	arm_deadline(p);
	/* A backoff that would end after the deadline would never be used:
	 * one attempt now is the last chance. */
	if (p->waiting && p->retry_due >= deadline) {
		uv_timer_stop(&p->retry_timer);
		p->waiting = false;
		kick(p);
	}
	return 0;
}

static void closed_one(pusher_t *p)
{
	if (--p->closing == 0 && p->close_cb)
		p->close_cb(p);
}

static void on_retry_closed(uv_handle_t *h)
{
	closed_one(container_of((uv_timer_t *)h, pusher_t, retry_timer));
}

static void on_deadline_closed(uv_handle_t *h)
{
	closed_one(container_of((uv_timer_t *)h, pusher_t, deadline_timer));
}

void pusher_dispose(pusher_t *p, pusher_close_cb close_cb)
{
	pusher_stop_cb cb = p->stopped ? NULL : p->stop_cb;

	if (p->disposing)
		return;
	p->disposing = true;
	p->close_cb = close_cb;
	if (p->current) {
		curluv_remove(p->cu, p->easy);
		item_free(p->current);
		p->current = NULL;
	}
	drop_all(p);
	p->stop_cb = NULL;
	p->stopped = true;
	if (cb)
		cb(p, -ECANCELED);
	release(p);
	p->closing = 2;
	uv_close((uv_handle_t *)&p->retry_timer, on_retry_closed);
	uv_close((uv_handle_t *)&p->deadline_timer, on_deadline_closed);
}

void pusher_bodies_free(pusher_body_t *bodies, size_t n)
{
	size_t i;

	if (!bodies)
		return;
	for (i = 0; i < n; i++)
		free(bodies[i].body);
	free(bodies);
}

/* Encodes `sub` (a view of part of a report) with this seq and final flag. */
static char *encode_part(report_t *sub, uint64_t seq, bool final, size_t *len)
{
	char *body;

	sub->seq = seq;
	sub->final = final;
	body = report_encode(sub);
	if (body)
		*len = strlen(body);
	return body;
}

/*
 * Each result's share of an encoded report: the report with it alone, less the
 * report with no result. cJSON prints an array element the same wherever it
 * stands, so a part holding results i..j weighs base + their shares + (j - i)
 * commas, exactly, at the same seq. The shares are measured at the largest seq
 * the split may use and with `"final":false`, the longer spelling, so that a
 * real part never weighs more than its estimate.
 */
static int measure(const report_t *r, uint64_t max_seq, size_t *base, size_t **shares)
{
	report_t sub = *r;
	size_t len = 0, i;
	char *body;

	*shares = NULL;
	sub.results = NULL;
	sub.n_results = 0;
	body = encode_part(&sub, max_seq, false, &len);
	if (!body)
		return -EINVAL;
	free(body);
	*base = len;
	if (r->n_results == 0)
		return 0;
	*shares = calloc(r->n_results, sizeof(**shares));
	if (!*shares)
		return -ENOMEM;
	for (i = 0; i < r->n_results; i++) {
		sub.results = &r->results[i];
		sub.n_results = 1;
		body = encode_part(&sub, max_seq, false, &len);
		if (!body) {
			free(*shares);
			*shares = NULL;
			return -EINVAL;
		}
		free(body);
		(*shares)[i] = len - *base;
	}
	return 0;
}

int pusher_split(const report_t *r, uint64_t first_seq, pusher_body_t **out, size_t *n_out)
{
	pusher_body_t *parts = NULL;
	size_t *shares = NULL, base = 0, n = 0, cap, start = 0;
	uint64_t max_seq;
	report_t sub;
	int result;

	*out = NULL;
	*n_out = 0;
	if (!r)
		return -EINVAL;
	/* At most one part per result (and one for an empty report). */
	max_seq = first_seq + (r->n_results ? r->n_results - 1 : 0);
	if (first_seq > REPORT_MAX_SEQ || max_seq < first_seq)
		return -ERANGE;
	result = measure(r, max_seq > REPORT_MAX_SEQ ? REPORT_MAX_SEQ : max_seq, &base, &shares);
	if (result)
		return result;
	cap = r->n_results / REPORT_MAX_RESULTS + 1;
	parts = calloc(cap, sizeof(*parts));
	if (!parts) {
		result = -ENOMEM;
		goto fail;
	}
	sub = *r;
	do {
		size_t k = 0, weight = base, len = 0;
		uint64_t seq = first_seq + n;
		char *body;

		/* As many results as fit, in order. */
		while (start + k < r->n_results && k < REPORT_MAX_RESULTS) {
			size_t add = shares[start + k] + (k ? 1 : 0);

			if (weight + add > REPORT_MAX_BODY)
				break;
			weight += add;
			k++;
		}
		if (k == 0 && start < r->n_results) {
			result = -EMSGSIZE;
			goto fail;
		}
		if (seq > REPORT_MAX_SEQ) {
			result = -ERANGE;
			goto fail;
		}
		if (n == cap) {
			pusher_body_t *more = realloc(parts, 2 * cap * sizeof(*parts));

			if (!more) {
				result = -ENOMEM;
				goto fail;
			}
			memset(more + cap, 0, cap * sizeof(*parts));
			parts = more;
			cap *= 2;
		}
		sub.results = r->n_results ? &r->results[start] : NULL;
		sub.n_results = k;
		/* Only the last part ends the agent's life at the collector. */
		body = encode_part(&sub, seq, r->final && start + k == r->n_results, &len);
		if (!body) {
			result = -ENOMEM;
			goto fail;
		}
		parts[n].seq = seq;
		parts[n].body = body;
		parts[n].len = len;
		n++;
		start += k;
	} while (start < r->n_results);
	free(shares);
	*out = parts;
	*n_out = n;
	return 0;
fail:
	free(shares);
	pusher_bodies_free(parts, n);
	return result;
}
