/*
 * report: building, encoding and decoding `sgprobe.report/v1` (DESIGN.md "Report").
 *
 * The encoder writes every known field, null where a value is absent. The
 * decoder checks every known field strictly, names the field in its message,
 * and ignores unknown fields anywhere so that a newer agent never loses its
 * reports on an older collector.
 */
#include "sgprobe/json.h"
#include "sgprobe/report.h"
#include "sgprobe/timefmt.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cJSON.h>

/* Longest field path built while decoding: `results[999].tls.expires_in_days`. */
#define PATH_LEN 64

/* The first allocation of a report's results; it doubles from there. */
#define INITIAL_RESULTS 16

report_t *report_new(void)
{
	return calloc(1, sizeof(report_t));
}

static void tls_dispose(report_tls_t *tls)
{
	free(tls->error);
	tls->error = NULL;
}

static void result_dispose(report_result_t *res)
{
	free(res->dst_role);
	free(res->target);
	free(res->address);
	free(res->at);
	free(res->detail);
	tls_dispose(&res->tls);
}

void report_free(report_t *r)
{
	size_t i;

	if (!r)
		return;
	free(r->agent.id);
	free(r->agent.role);
	free(r->agent.cluster);
	free(r->agent.az);
	free(r->agent.address);
	free(r->agent.version);
	free(r->agent.boot);
	free(r->sent_at);
	for (i = 0; i < r->n_results; i++)
		result_dispose(&r->results[i]);
	free(r->results);
	free(r);
}

int report_set_string(char **field, const char *value)
{
	char *copy = NULL;

	if (value) {
		copy = strdup(value);
		if (!copy)
			return -ENOMEM;
	}
	free(*field);
	*field = copy;
	return 0;
}

/* Copies `src` into *dst, NULL staying NULL. Returns false when out of memory. */
static bool copy_string(char **dst, const char *src)
{
	*dst = NULL;
	if (!src)
		return true;
	*dst = strdup(src);
	return *dst != NULL;
}

int report_add_result(report_t *r, const report_result_t *res)
{
	report_result_t copy;

	if (r->n_results >= REPORT_MAX_RESULTS)
		return -E2BIG;
	if (r->n_results == r->cap_results) {
		size_t cap = r->cap_results ? r->cap_results * 2 : INITIAL_RESULTS;
		report_result_t *v;

		if (cap > REPORT_MAX_RESULTS)
			cap = REPORT_MAX_RESULTS;
		v = realloc(r->results, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		r->results = v;
		r->cap_results = cap;
	}

	/* The scalars from `res`, the strings copied below; none borrowed even on failure. */
	copy = *res;
	copy.dst_role = NULL;
	copy.target = NULL;
	copy.address = NULL;
	copy.at = NULL;
	copy.detail = NULL;
	copy.tls.error = NULL;
	if (!copy_string(&copy.dst_role, res->dst_role) ||
	    !copy_string(&copy.target, res->target) || !copy_string(&copy.address, res->address) ||
	    !copy_string(&copy.at, res->at) || !copy_string(&copy.detail, res->detail) ||
	    !copy_string(&copy.tls.error, res->tls.present ? res->tls.error : NULL)) {
		result_dispose(&copy);
		return -ENOMEM;
	}
	r->results[r->n_results++] = copy;
	return 0;
}

/* Adds a string, or null for NULL. Returns false when out of memory. */
static bool add_string_or_null(cJSON *obj, const char *key, const char *value)
{
	if (value)
		return cJSON_AddStringToObject(obj, key, value) != NULL;
	return cJSON_AddNullToObject(obj, key) != NULL;
}

/*
 * Adds an integer up to REPORT_MAX_SEQ exactly. cJSON prints a number beyond
 * INT_MAX with 15 significant digits whenever that comes within one ulp of the
 * value (its compare_double), which loses the last digits of a seq near 2^53;
 * the decimal digits are therefore written here and added as a raw value.
 */
static bool add_u64(cJSON *obj, const char *key, uint64_t value)
{
	char buf[24];

	snprintf(buf, sizeof(buf), "%" PRIu64, value);
	return cJSON_AddRawToObject(obj, key, buf) != NULL;
}

static cJSON *encode_tls(const report_tls_t *tls)
{
	cJSON *obj;

	if (!tls->present)
		return cJSON_CreateNull();
	obj = cJSON_CreateObject();
	if (!obj)
		return NULL;
	if (!cJSON_AddBoolToObject(obj, "ok", tls->ok) ||
	    !add_string_or_null(obj, "error", tls->error) ||
	    !(tls->has_expiry
	          ? cJSON_AddNumberToObject(obj, "expires_in_days", tls->expires_in_days) != NULL
	          : cJSON_AddNullToObject(obj, "expires_in_days") != NULL)) {
		cJSON_Delete(obj);
		return NULL;
	}
	return obj;
}

static cJSON *encode_result(const report_result_t *res)
{
	cJSON *obj;
	cJSON *tls;

	if (!res->dst_role || !res->target || !res->at || res->port == 0 ||
	    (unsigned)res->expected > VERDICT_EXPECT_DENY ||
	    (unsigned)res->state >= VERDICT_STATE_COUNT ||
	    (res->latency_us >= 0 && (uint64_t)res->latency_us > REPORT_MAX_SEQ))
		return NULL;
	/* What the decoder refuses, the encoder never writes. */
	if (res->state != VERDICT_STATE_ERROR && (!res->address || res->latency_us < 0))
		return NULL;
	obj = cJSON_CreateObject();
	if (!obj)
		return NULL;
	if (!cJSON_AddStringToObject(obj, "dst_role", res->dst_role) ||
	    !cJSON_AddStringToObject(obj, "target", res->target) ||
	    !add_string_or_null(obj, "address", res->address) ||
	    !cJSON_AddNumberToObject(obj, "port", res->port) ||
	    !cJSON_AddStringToObject(obj, "expected", verdict_expect_name(res->expected)) ||
	    !cJSON_AddStringToObject(obj, "state", verdict_state_name(res->state)) ||
	    !(res->latency_us >= 0 ? add_u64(obj, "latency_us", (uint64_t)res->latency_us)
	                           : cJSON_AddNullToObject(obj, "latency_us") != NULL) ||
	    !cJSON_AddStringToObject(obj, "at", res->at) ||
	    !add_string_or_null(obj, "detail", res->detail))
		goto fail;
	tls = encode_tls(&res->tls);
	if (!tls)
		goto fail;
	if (!cJSON_AddItemToObject(obj, "tls", tls)) {
		cJSON_Delete(tls);
		goto fail;
	}
	return obj;

fail:
	cJSON_Delete(obj);
	return NULL;
}

static cJSON *encode_agent(const report_agent_t *a)
{
	cJSON *obj;

	if (!a->id || !a->role || !a->cluster || !a->version || !a->boot)
		return NULL;
	obj = cJSON_CreateObject();
	if (!obj)
		return NULL;
	if (!cJSON_AddStringToObject(obj, "id", a->id) ||
	    !cJSON_AddStringToObject(obj, "role", a->role) ||
	    !cJSON_AddStringToObject(obj, "cluster", a->cluster) ||
	    !add_string_or_null(obj, "az", a->az) ||
	    !add_string_or_null(obj, "address", a->address) ||
	    !cJSON_AddStringToObject(obj, "version", a->version) ||
	    !cJSON_AddStringToObject(obj, "boot", a->boot)) {
		cJSON_Delete(obj);
		return NULL;
	}
	return obj;
}

char *report_encode(const report_t *r)
{
	cJSON *root = NULL;
	cJSON *item;
	cJSON *results;
	char *out = NULL;
	size_t i;

	if (!r || !r->sent_at || r->seq > REPORT_MAX_SEQ || r->round_ms > REPORT_MAX_SEQ ||
	    (r->mode != REPORT_MODE_DAEMON && r->mode != REPORT_MODE_ONCE))
		return NULL;
	root = cJSON_CreateObject();
	if (!root)
		return NULL;
	if (!cJSON_AddStringToObject(root, "schema", REPORT_SCHEMA))
		goto out;
	item = encode_agent(&r->agent);
	if (!item)
		goto out;
	if (!cJSON_AddItemToObject(root, "agent", item)) {
		cJSON_Delete(item);
		goto out;
	}
	if (!add_u64(root, "seq", r->seq) ||
	    !cJSON_AddStringToObject(root, "sent_at", r->sent_at) ||
	    !cJSON_AddStringToObject(root, "mode",
	                             r->mode == REPORT_MODE_ONCE ? "once" : "daemon") ||
	    !cJSON_AddNumberToObject(root, "interval_s", r->interval_s) ||
	    !add_u64(root, "round_ms", r->round_ms) ||
	    !cJSON_AddBoolToObject(root, "final", r->final))
		goto out;
	if (r->counters.present) {
		const report_counters_t *k = &r->counters;

		item = cJSON_AddObjectToObject(root, "counters");
		if (!item || !add_u64(item, "rounds", k->rounds) ||
		    !add_u64(item, "probes", k->probes) ||
		    !add_u64(item, "reports_sent", k->reports_sent) ||
		    !add_u64(item, "reports_retried", k->reports_retried) ||
		    !add_u64(item, "reports_dropped", k->reports_dropped))
			goto out;
	}
	results = cJSON_AddArrayToObject(root, "results");
	if (!results)
		goto out;
	for (i = 0; i < r->n_results; i++) {
		item = encode_result(&r->results[i]);
		if (!item)
			goto out;
		if (!cJSON_AddItemToArray(results, item)) {
			cJSON_Delete(item);
			goto out;
		}
	}
	out = cJSON_PrintUnformatted(root);
out:
	cJSON_Delete(root);
	return out;
}

/*
 * Copies a required, non-empty string field `key` of `obj` (path `path`) into
 * a new string in *out.
 */
static int req_string(json_ctx_t *c, const cJSON *obj, const char *path, const char *key,
                      char **out)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);

	if (!item || cJSON_IsNull(item))
		return json_fail(c, "%s%s: required", path, key);
	if (!cJSON_IsString(item) || !item->valuestring || !item->valuestring[0])
		return json_fail(c, "%s%s: must be a non-empty string", path, key);
	if (strlen(item->valuestring) > REPORT_MAX_STRING)
		return json_fail(c, "%s%s: longer than %d bytes", path, key, REPORT_MAX_STRING);
	*out = strdup(item->valuestring);
	if (!*out)
		return json_fail_oom(c);
	return 0;
}

/*
 * Copies an optional string field: absent or null leaves *out NULL. `non_empty`:
 * an empty string is an error.
 */
static int opt_string(json_ctx_t *c, const cJSON *obj, const char *path, const char *key,
                      bool non_empty, char **out)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);

	*out = NULL;
	if (!item || cJSON_IsNull(item))
		return 0;
	if (!cJSON_IsString(item) || !item->valuestring || (non_empty && !item->valuestring[0]))
		return json_fail(c, "%s%s: must be a %sstring or null", path, key,
		                 non_empty ? "non-empty " : "");
	if (strlen(item->valuestring) > REPORT_MAX_STRING)
		return json_fail(c, "%s%s: longer than %d bytes", path, key, REPORT_MAX_STRING);
	*out = strdup(item->valuestring);
	if (!*out)
		return json_fail_oom(c);
	return 0;
}

/* Reads a required timestamp field into a new string in *out. */
static int req_time(json_ctx_t *c, const cJSON *obj, const char *path, const char *key, char **out)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);

	if (!item || cJSON_IsNull(item))
		return json_fail(c, "%s%s: required", path, key);
	if (!cJSON_IsString(item) || !report_time_valid(item->valuestring))
		return json_fail(
		    c, "%s%s: must be an RFC 3339 UTC timestamp (2026-01-01T00:00:00.000Z)", path,
		    key);
	*out = strdup(item->valuestring);
	if (!*out)
		return json_fail_oom(c);
	return 0;
}

static int decode_agent(json_ctx_t *c, const cJSON *obj, report_agent_t *a)
{
	int result;

	if (!obj || cJSON_IsNull(obj))
		return json_fail(c, "agent: required");
	if (!cJSON_IsObject(obj))
		return json_fail(c, "agent: must be an object");
	result = req_string(c, obj, "agent.", "id", &a->id);
	if (!result)
		result = req_string(c, obj, "agent.", "role", &a->role);
	if (!result)
		result = req_string(c, obj, "agent.", "cluster", &a->cluster);
	if (!result)
		result = opt_string(c, obj, "agent.", "az", true, &a->az);
	if (!result)
		result = opt_string(c, obj, "agent.", "address", true, &a->address);
	if (!result)
		result = req_string(c, obj, "agent.", "version", &a->version);
	if (!result)
		result = req_string(c, obj, "agent.", "boot", &a->boot);
	return result;
}

static int decode_tls(json_ctx_t *c, const cJSON *obj, const char *path, report_tls_t *tls)
{
	char p[PATH_LEN + 8];
	const cJSON *item;
	int64_t v;
	int result;

	memset(tls, 0, sizeof(*tls));
	if (!obj || cJSON_IsNull(obj))
		return 0;
	if (!cJSON_IsObject(obj))
		return json_fail(c, "%stls: must be an object or null", path);
	item = cJSON_GetObjectItemCaseSensitive(obj, "ok");
	if (!item)
		return json_fail(c, "%stls.ok: required", path);
	if (!cJSON_IsBool(item))
		return json_fail(c, "%stls.ok: must be true or false", path);
	tls->ok = cJSON_IsTrue(item);
	item = cJSON_GetObjectItemCaseSensitive(obj, "expires_in_days");
	if (item && !cJSON_IsNull(item)) {
		if (!json_get_int(item, INT_MIN, INT_MAX, &v))
			return json_fail(c, "%stls.expires_in_days: must be an integer or null",
			                 path);
		tls->has_expiry = true;
		tls->expires_in_days = (int)v;
	}
	snprintf(p, sizeof(p), "%stls.", path);
	result = opt_string(c, obj, p, "error", false, &tls->error);
	if (result)
		return result;
	tls->present = true;
	return 0;
}

/*
 * Decodes result `obj` (path `path`, with its trailing dot) into `res`, which
 * the caller disposes of, whatever the outcome.
 */
static int decode_result(json_ctx_t *c, const cJSON *obj, const char *path, report_result_t *res)
{
	const cJSON *item;
	int64_t v;
	int result;

	if (!cJSON_IsObject(obj))
		return json_fail(c, "%.*s: must be an object", (int)strlen(path) - 1, path);

	/* state first: what address and latency_us may be depends on it. */
	item = cJSON_GetObjectItemCaseSensitive(obj, "state");
	if (!item)
		return json_fail(c, "%sstate: required", path);
	if (!cJSON_IsString(item) || verdict_state_parse(item->valuestring, &res->state))
		return json_fail(c,
		                 "%sstate: must be one of open, closed, rejected, filtered, "
		                 "unreachable, error",
		                 path);
	item = cJSON_GetObjectItemCaseSensitive(obj, "expected");
	if (!item)
		return json_fail(c, "%sexpected: required", path);
	if (!cJSON_IsString(item) || verdict_expect_parse(item->valuestring, &res->expected))
		return json_fail(c, "%sexpected: must be \"allow\" or \"deny\"", path);

	result = req_string(c, obj, path, "dst_role", &res->dst_role);
	if (result)
		return result;
	result = req_string(c, obj, path, "target", &res->target);
	if (result)
		return result;

	item = cJSON_GetObjectItemCaseSensitive(obj, "address");
	if (!item)
		return json_fail(c, "%saddress: required", path);
	if (cJSON_IsNull(item) && res->state != VERDICT_STATE_ERROR)
		return json_fail(c, "%saddress: null is only allowed when state is error", path);
	result = opt_string(c, obj, path, "address", true, &res->address);
	if (result)
		return result;

	item = cJSON_GetObjectItemCaseSensitive(obj, "port");
	if (!item)
		return json_fail(c, "%sport: required", path);
	if (!json_get_int(item, 1, 65535, &v))
		return json_fail(c, "%sport: must be an integer in 1-65535", path);
	res->port = (uint16_t)v;

	item = cJSON_GetObjectItemCaseSensitive(obj, "latency_us");
	if (!item)
		return json_fail(c, "%slatency_us: required", path);
	if (cJSON_IsNull(item)) {
		if (res->state != VERDICT_STATE_ERROR)
			return json_fail(
			    c, "%slatency_us: null is only allowed when state is error", path);
		res->latency_us = -1;
	} else {
		if (!json_get_int(item, 0, (double)REPORT_MAX_SEQ, &v))
			return json_fail(c, "%slatency_us: must be an integer >= 0 or null", path);
		res->latency_us = v;
	}

	result = req_time(c, obj, path, "at", &res->at);
	if (result)
		return result;
	result = opt_string(c, obj, path, "detail", false, &res->detail);
	if (result)
		return result;
	return decode_tls(c, cJSON_GetObjectItemCaseSensitive(obj, "tls"), path, &res->tls);
}

static int decode_results(json_ctx_t *c, const cJSON *arr, report_t *r, bool *too_large)
{
	const cJSON *item;
	char path[PATH_LEN];
	int n;
	int result;

	if (!arr)
		return json_fail(c, "results: required");
	if (!cJSON_IsArray(arr))
		return json_fail(c, "results: must be an array");
	n = cJSON_GetArraySize(arr);
	if (n > REPORT_MAX_RESULTS) {
		*too_large = true;
		return json_fail(c, "results: %d results exceed the limit of %d", n,
		                 REPORT_MAX_RESULTS);
	}
	if (n == 0)
		return 0;
	r->results = calloc((size_t)n, sizeof(*r->results));
	if (!r->results)
		return json_fail_oom(c);
	r->cap_results = (size_t)n;
	cJSON_ArrayForEach(item, arr)
	{
		snprintf(path, sizeof(path), "results[%zu].", r->n_results);
		/* Counted first, so that report_free() disposes of a half-decoded one. */
		result = decode_result(c, item, path, &r->results[r->n_results++]);
		if (result)
			return result;
	}
	return 0;
}

static int decode_report(json_ctx_t *c, const cJSON *root, report_t *r, bool *too_large)
{
	const cJSON *item;
	int64_t v;
	int result;

	if (!cJSON_IsObject(root))
		return json_fail(c, "body: must be a JSON object");

	item = cJSON_GetObjectItemCaseSensitive(root, "schema");
	if (!item)
		return json_fail(c, "schema: required");
	if (!cJSON_IsString(item) || strcmp(item->valuestring, REPORT_SCHEMA) != 0)
		return json_fail(c, "schema: must be \"" REPORT_SCHEMA "\"");

	result = decode_agent(c, cJSON_GetObjectItemCaseSensitive(root, "agent"), &r->agent);
	if (result)
		return result;

	item = cJSON_GetObjectItemCaseSensitive(root, "seq");
	if (!item)
		return json_fail(c, "seq: required");
	if (!json_get_int(item, 0, (double)REPORT_MAX_SEQ, &v))
		return json_fail(c, "seq: must be an integer in 0-%llu",
		                 (unsigned long long)REPORT_MAX_SEQ);
	r->seq = (uint64_t)v;

	result = req_time(c, root, "", "sent_at", &r->sent_at);
	if (result)
		return result;

	item = cJSON_GetObjectItemCaseSensitive(root, "mode");
	if (!item)
		return json_fail(c, "mode: required");
	if (cJSON_IsString(item) && strcmp(item->valuestring, "daemon") == 0)
		r->mode = REPORT_MODE_DAEMON;
	else if (cJSON_IsString(item) && strcmp(item->valuestring, "once") == 0)
		r->mode = REPORT_MODE_ONCE;
	else
		return json_fail(c, "mode: must be \"daemon\" or \"once\"");

	item = cJSON_GetObjectItemCaseSensitive(root, "interval_s");
	if (!item)
		return json_fail(c, "interval_s: required");
	if (!json_get_int(item, 1, UINT_MAX, &v))
		return json_fail(c, "interval_s: must be an integer >= 1");
	r->interval_s = (unsigned)v;

	item = cJSON_GetObjectItemCaseSensitive(root, "round_ms");
	if (!item)
		return json_fail(c, "round_ms: required");
	if (!json_get_int(item, 0, (double)REPORT_MAX_SEQ, &v))
		return json_fail(c, "round_ms: must be an integer >= 0");
	r->round_ms = (uint64_t)v;

	item = cJSON_GetObjectItemCaseSensitive(root, "final");
	if (!item)
		return json_fail(c, "final: required");
	if (!cJSON_IsBool(item))
		return json_fail(c, "final: must be true or false");
	r->final = cJSON_IsTrue(item);

	item = cJSON_GetObjectItemCaseSensitive(root, "counters");
	if (item && !cJSON_IsNull(item)) {
		static const char *const names[] = {"rounds", "probes", "reports_sent",
		                                    "reports_retried", "reports_dropped"};
		uint64_t *fields[] = {&r->counters.rounds, &r->counters.probes,
		                      &r->counters.reports_sent, &r->counters.reports_retried,
		                      &r->counters.reports_dropped};
		size_t i;

		if (!cJSON_IsObject(item))
			return json_fail(c, "counters: must be an object");
		for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
			const cJSON *f = cJSON_GetObjectItemCaseSensitive(item, names[i]);

			if (!f)
				continue;
			if (!json_get_int(f, 0, (double)REPORT_MAX_SEQ, &v))
				return json_fail(c, "counters.%s: must be an integer >= 0",
				                 names[i]);
			*fields[i] = (uint64_t)v;
		}
		r->counters.present = true;
	}

	return decode_results(c, cJSON_GetObjectItemCaseSensitive(root, "results"), r, too_large);
}

report_t *report_decode(const char *body, size_t len, char *err, size_t errlen, bool *too_large)
{
	json_ctx_t c = {err, errlen, NULL, NULL};
	report_t *r = NULL;
	cJSON *root;
	bool big = false;
	unsigned line;
	int result;

	if (err && errlen > 0)
		err[0] = '\0';
	if (too_large)
		*too_large = false;
	if (len > REPORT_MAX_BODY) {
		if (too_large)
			*too_large = true;
		json_fail(&c, "body: %zu bytes exceeds the limit of %u", len, REPORT_MAX_BODY);
		return NULL;
	}
	root = json_parse(body ? body : "", body ? len : 0, &line, &result);
	if (!root) {
		if (result == -ENOMEM)
			json_fail_oom(&c);
		else
			json_fail(&c, "body: invalid JSON near line %u", line);
		return NULL;
	}
	r = report_new();
	if (!r) {
		json_fail_oom(&c);
		goto out;
	}
	result = decode_report(&c, root, r, &big);
	if (result) {
		report_free(r);
		r = NULL;
		if (too_large)
			*too_large = big;
	}
out:
	cJSON_Delete(root);
	return r;
}

char *report_format_time(uint64_t epoch_ms, char *buf, size_t buflen)
{
	time_t secs = (time_t)(epoch_ms / 1000);
	struct tm tm;

	if (!buf || buflen == 0)
		return buf;
	if (!gmtime_r(&secs, &tm)) {
		buf[0] = '\0';
		return buf;
	}
	snprintf(buf, buflen, "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ", tm.tm_year + 1900,
	         tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
	         (unsigned)(epoch_ms % 1000));
	return buf;
}

bool report_time_valid(const char *s)
{
	return timefmt_parse(s, 0, NULL) == 0;
}
