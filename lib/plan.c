/*
 * plan: encoding and decoding `sgprobe.plan/v1`, a role's plan as the
 * collector serves it and the agent caches it.
 *
 * The encoder writes every field of matrix_plan_t. The decoder checks every
 * known field strictly, names it in its message (`targets[3].port`), and
 * ignores unknown fields so that a newer collector can add some. A plan tells
 * the agent where to connect, so its names are held to the matrix's rules: a
 * role name, a DNS name or an IP literal, a port in 1-65535.
 */
#include "sgprobe/json.h"
#include "sgprobe/plan.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

/* The matrix's bounds on intervals and timeouts (lib/matrix.c). */
#define MAX_INTERVAL_S 86400
#define MAX_TIMEOUT_MS 60000

/* Longest field path built while decoding: `targets[99999].interval_s`. */
#define PATH_LEN 48

static cJSON *encode_target(const matrix_target_t *t)
{
	cJSON *obj;

	if (!t->dst_role || !t->target || t->port == 0 ||
	    (unsigned)t->expected > VERDICT_EXPECT_DENY)
		return NULL;
	obj = cJSON_CreateObject();
	if (!obj)
		return NULL;
	if (!cJSON_AddStringToObject(obj, "dst_role", t->dst_role) ||
	    !cJSON_AddStringToObject(obj, "target", t->target) ||
	    !cJSON_AddNumberToObject(obj, "port", t->port) ||
	    !cJSON_AddStringToObject(obj, "expected", verdict_expect_name(t->expected)) ||
	    !cJSON_AddBoolToObject(obj, "tls", t->tls) ||
	    !cJSON_AddNumberToObject(obj, "interval_s", t->interval_s) ||
	    !cJSON_AddBoolToObject(obj, "silent", t->silent) ||
	    !cJSON_AddBoolToObject(obj, "probe", t->probe)) {
		cJSON_Delete(obj);
		return NULL;
	}
	return obj;
}

char *plan_encode(const matrix_plan_t *plan)
{
	cJSON *root = NULL;
	cJSON *targets;
	cJSON *item;
	char *out = NULL;
	size_t i;

	if (!plan || !plan->matrix || !plan->role || plan->n_targets > MATRIX_MAX_PLAN_TARGETS ||
	    (plan->n_targets > 0 && !plan->targets))
		return NULL;
	root = cJSON_CreateObject();
	if (!root)
		return NULL;
	if (!cJSON_AddStringToObject(root, "schema", PLAN_SCHEMA) ||
	    !cJSON_AddStringToObject(root, "matrix", plan->matrix) ||
	    !cJSON_AddStringToObject(root, "role", plan->role) ||
	    !cJSON_AddNumberToObject(root, "interval_s", plan->interval_s) ||
	    !cJSON_AddNumberToObject(root, "timeout_ms", plan->timeout_ms))
		goto out;
	targets = cJSON_AddArrayToObject(root, "targets");
	if (!targets)
		goto out;
	for (i = 0; i < plan->n_targets; i++) {
		item = encode_target(&plan->targets[i]);
		if (!item)
			goto out;
		if (!cJSON_AddItemToArray(targets, item)) {
			cJSON_Delete(item);
			goto out;
		}
	}
	out = cJSON_PrintUnformatted(root);
	/* A plan the decoder would refuse is not served either. */
	if (out && strlen(out) > PLAN_MAX_BODY) {
		free(out);
		out = NULL;
	}
out:
	cJSON_Delete(root);
	return out;
}

/* True when `item` is a whole number in lo..hi (within unsigned); its value then goes to *out. */
static bool get_uint(const cJSON *item, double lo, double hi, unsigned *out)
{
	int64_t v;

	if (!json_get_int(item, lo, hi, &v))
		return false;
	*out = (unsigned)v;
	return true;
}

/* True for a character allowed in a role name. */
static bool name_char(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       ch == '.' || ch == '_' || ch == '-';
}

/* True for a character allowed in an endpoint: a DNS name or an IP literal. */
static bool endpoint_char(char ch)
{
	return name_char(ch) || ch == ':' || ch == '%';
}

/* True when `s` is 1 to MATRIX_MAX_NAME characters, each accepted by `ok`. */
static bool valid_name(const char *s, bool (*ok)(char))
{
	size_t i;

	for (i = 0; s[i]; i++) {
		if (i >= MATRIX_MAX_NAME || !ok(s[i]))
			return false;
	}
	return i > 0;
}

/* What a string field must be, and how the message says so. */
typedef enum {
	TEXT_ANY,      /* any non-empty string of at most MATRIX_MAX_NAME bytes */
	TEXT_ROLE,     /* a role name */
	TEXT_ENDPOINT, /* a DNS name or an IP literal */
} text_kind_t;

/*
 * Copies required string field `key` of `obj` (path prefix `path`, with its
 * trailing dot, or "") into a new string in *out.
 */
static int req_text(json_ctx_t *c, const cJSON *obj, const char *path, const char *key,
                    text_kind_t kind, char **out)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
	const char *s;
	bool ok;

	if (!item || cJSON_IsNull(item))
		return json_fail(c, "%s%s: required", path, key);
	s = cJSON_IsString(item) ? item->valuestring : NULL;
	switch (kind) {
	case TEXT_ROLE:
		if (!s || !valid_name(s, name_char))
			return json_fail(
			    c,
			    "%s%s: must be a role name (at most %d of A-Z, a-z, 0-9, '.', "
			    "'_', '-')",
			    path, key, MATRIX_MAX_NAME);
		break;
	case TEXT_ENDPOINT:
		if (!s || !valid_name(s, endpoint_char))
			return json_fail(
			    c,
			    "%s%s: must be a DNS name or an IP address (at most %d of A-Z, "
			    "a-z, 0-9, '.', '_', '-', ':', '%%')",
			    path, key, MATRIX_MAX_NAME);
		break;
	case TEXT_ANY:
		ok = s && s[0] && strlen(s) <= MATRIX_MAX_NAME;
		if (!ok)
			return json_fail(c, "%s%s: must be a non-empty string of at most %d bytes",
			                 path, key, MATRIX_MAX_NAME);
		break;
	}
	*out = strdup(s);
	if (!*out)
		return json_fail_oom(c);
	return 0;
}

/* Reads a required integer field `key` in lo..hi. */
static int req_uint(json_ctx_t *c, const cJSON *obj, const char *path, const char *key, unsigned lo,
                    unsigned hi, unsigned *out)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);

	if (!item || cJSON_IsNull(item))
		return json_fail(c, "%s%s: required", path, key);
	if (!get_uint(item, lo, hi, out))
		return json_fail(c, "%s%s: must be an integer in %u-%u", path, key, lo, hi);
	return 0;
}

/* Reads boolean field `key`; when absent, *out is `dflt`, or an error when `dflt` < 0. */
static int get_bool(json_ctx_t *c, const cJSON *obj, const char *path, const char *key, int dflt,
                    bool *out)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);

	if (!item) {
		if (dflt < 0)
			return json_fail(c, "%s%s: required", path, key);
		*out = dflt != 0;
		return 0;
	}
	if (!cJSON_IsBool(item))
		return json_fail(c, "%s%s: must be true or false", path, key);
	*out = cJSON_IsTrue(item);
	return 0;
}

/* Decodes target `obj` (path `path`, with its trailing dot) into `t`, freed by the caller. */
static int decode_target(json_ctx_t *c, const cJSON *obj, const char *path, matrix_target_t *t)
{
	const cJSON *item;
	unsigned port;
	int result;

	if (!cJSON_IsObject(obj))
		return json_fail(c, "%.*s: must be an object", (int)strlen(path) - 1, path);
	result = req_text(c, obj, path, "dst_role", TEXT_ROLE, &t->dst_role);
	if (result)
		return result;
	result = req_text(c, obj, path, "target", TEXT_ENDPOINT, &t->target);
	if (result)
		return result;
	result = req_uint(c, obj, path, "port", 1, 65535, &port);
	if (result)
		return result;
	t->port = (uint16_t)port;

	item = cJSON_GetObjectItemCaseSensitive(obj, "expected");
	if (!item)
		return json_fail(c, "%sexpected: required", path);
	if (!cJSON_IsString(item) || verdict_expect_parse(item->valuestring, &t->expected))
		return json_fail(c, "%sexpected: must be \"allow\" or \"deny\"", path);

	result = get_bool(c, obj, path, "tls", -1, &t->tls);
	if (result)
		return result;
	result = req_uint(c, obj, path, "interval_s", 1, MAX_INTERVAL_S, &t->interval_s);
	if (result)
		return result;
	/* Optional: a plan written to DESIGN.md's list has neither. */
	result = get_bool(c, obj, path, "silent", 0, &t->silent);
	if (result)
		return result;
	return get_bool(c, obj, path, "probe", 1, &t->probe);
}

static int decode_targets(json_ctx_t *c, const cJSON *arr, matrix_plan_t *plan)
{
	const cJSON *item;
	char path[PATH_LEN];
	int n;
	int result;

	if (!arr || cJSON_IsNull(arr))
		return json_fail(c, "targets: required");
	if (!cJSON_IsArray(arr))
		return json_fail(c, "targets: must be an array");
	n = cJSON_GetArraySize(arr);
	if (n > MATRIX_MAX_PLAN_TARGETS)
		return json_fail(c, "targets: %d targets exceed the limit of %d", n,
		                 MATRIX_MAX_PLAN_TARGETS);
	if (n == 0)
		return 0;
	plan->targets = calloc((size_t)n, sizeof(*plan->targets));
	if (!plan->targets)
		return json_fail_oom(c);
	cJSON_ArrayForEach(item, arr)
	{
		snprintf(path, sizeof(path), "targets[%zu].", plan->n_targets);
		/* Counted first, so that matrix_plan_free() frees a half-decoded one. */
		result = decode_target(c, item, path, &plan->targets[plan->n_targets++]);
		if (result)
			return result;
	}
	return 0;
}

static int decode_plan(json_ctx_t *c, const cJSON *root, matrix_plan_t *plan)
{
	const cJSON *item;
	int result;

	if (!cJSON_IsObject(root))
		return json_fail(c, "plan: must be a JSON object");
	item = cJSON_GetObjectItemCaseSensitive(root, "schema");
	if (!item)
		return json_fail(c, "schema: required");
	if (!cJSON_IsString(item) || strcmp(item->valuestring, PLAN_SCHEMA) != 0)
		return json_fail(c, "schema: must be \"" PLAN_SCHEMA "\"");
	result = req_text(c, root, "", "matrix", TEXT_ANY, &plan->matrix);
	if (result)
		return result;
	result = req_text(c, root, "", "role", TEXT_ROLE, &plan->role);
	if (result)
		return result;
	result = req_uint(c, root, "", "interval_s", 1, MAX_INTERVAL_S, &plan->interval_s);
	if (result)
		return result;
	result = req_uint(c, root, "", "timeout_ms", 1, MAX_TIMEOUT_MS, &plan->timeout_ms);
	if (result)
		return result;
	return decode_targets(c, cJSON_GetObjectItemCaseSensitive(root, "targets"), plan);
}

matrix_plan_t *plan_decode(const char *text, size_t len, char *err, size_t errlen)
{
	json_ctx_t c = {err, errlen, NULL, NULL};
	matrix_plan_t *plan = NULL;
	cJSON *root;
	unsigned line;
	int result;

	if (err && errlen > 0)
		err[0] = '\0';
	if (len > PLAN_MAX_BODY) {
		json_fail(&c, "plan: %zu bytes exceeds the limit of %u", len, PLAN_MAX_BODY);
		return NULL;
	}
	root = json_parse(text ? text : "", text ? len : 0, &line, &result);
	if (!root) {
		if (result == -ENOMEM)
			json_fail_oom(&c);
		else
			json_fail(&c, "plan: invalid JSON near line %u", line);
		return NULL;
	}
	plan = calloc(1, sizeof(*plan));
	if (!plan) {
		json_fail_oom(&c);
		goto out;
	}
	result = decode_plan(&c, root, plan);
	if (result) {
		matrix_plan_free(plan);
		plan = NULL;
	}
out:
	cJSON_Delete(root);
	return plan;
}
