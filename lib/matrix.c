/*
 * matrix: loading, validating and planning from the intended matrix
 * (DESIGN.md "The intended matrix").
 *
 * Validation is strict and field by field: every error names the key path in
 * the notation `allow[3].to`, `roles.<name>.endpoints[2]`, `probe.ports[0]`.
 * cJSON keeps duplicate keys in an object, so every object is also checked
 * for them: a second "ports" must not silently replace the first.
 */
#include "sgprobe/fileio.h"
#include "sgprobe/json.h"
#include "sgprobe/matrix.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

/* Longest key path built while validating: a role name, a key, an index. */
#define PATH_MAX_LEN (MATRIX_MAX_NAME + 64)

/* The default probe settings when "probe" or one of its keys is absent. */
#define DEFAULT_INTERVAL_S 60
#define DEFAULT_TIMEOUT_MS 2000

/* Interval bounds: at least a second, at most a day. */
#define MAX_INTERVAL_S 86400
#define MAX_TIMEOUT_MS 60000

/*
 * The validation context: where the error goes, prefixed with the path given to
 * matrix_load() (NULL for matrix_parse()); a message about the whole document
 * without a file reads `matrix: ...`.
 */
typedef json_ctx_t ctx_t;

/* Joins a key path and a key: `probe` + `ports` = `probe.ports`; "" + `name` = `name`. */
static void join(char *out, size_t outlen, const char *path, const char *key)
{
	char q[JSON_QUOTE_BUF];

	json_quote(key, q, sizeof(q));
	if (path[0])
		json_pathf(out, outlen, "%s.%s", path, q);
	else
		json_pathf(out, outlen, "%s", q);
}

/* True when d is a whole number (every double beyond 2^52 is one). */
static bool is_integral(double d)
{
	if (d > -4503599627370496.0 && d < 4503599627370496.0)
		return (double)(long long)d == d;
	return d == d;
}

/*
 * Checks an object's keys against the known ones: an unknown or repeated key is
 * an error. `seen` gets one bit per known key present. Rules name an unknown key
 * in quotes after their path (`allow[1]: unknown key 'port'`), other objects
 * append it to the path (`roles.nginx.prots: unknown key`).
 */
static int check_keys(ctx_t *c, const cJSON *obj, const char *path, const char *const *keys,
                      size_t n_keys, bool rule_style, unsigned *seen)
{
	const cJSON *item;
	char p[PATH_MAX_LEN];
	char q[JSON_QUOTE_BUF];
	size_t k;

	*seen = 0;
	cJSON_ArrayForEach(item, obj)
	{
		const char *key = item->string ? item->string : "";

		for (k = 0; k < n_keys; k++) {
			if (strcmp(key, keys[k]) == 0)
				break;
		}
		if (k == n_keys) {
			if (rule_style)
				return json_fail(c, "%s: unknown key '%s'", path,
				                 json_quote(key, q, sizeof(q)));
			join(p, sizeof(p), path, key);
			return json_fail(c, "%s: unknown key", p);
		}
		if (*seen & (1u << k)) {
			join(p, sizeof(p), path, key);
			return json_fail(c, "%s: duplicate key", p);
		}
		*seen |= 1u << k;
	}
	return 0;
}

/* Reports the first of `required` (a bit mask over `keys`) missing from `seen`. */
static int check_required(ctx_t *c, const char *path, const char *const *keys, size_t n_keys,
                          unsigned required, unsigned seen)
{
	char p[PATH_MAX_LEN];
	size_t k;

	for (k = 0; k < n_keys; k++) {
		if ((required & (1u << k)) && !(seen & (1u << k))) {
			join(p, sizeof(p), path, keys[k]);
			return json_fail(c, "%s: required", p);
		}
	}
	return 0;
}

static int parse_bool(ctx_t *c, const cJSON *item, const char *path, bool *out)
{
	if (!cJSON_IsBool(item))
		return json_fail(c, "%s: must be true or false", path);
	*out = cJSON_IsTrue(item);
	return 0;
}

/*
 * Parses an integer in lo..hi. Below lo or not an integer: `msg`; above hi: a
 * message giving the bound (or `msg` when `msg` already states it).
 */
static int parse_uint(ctx_t *c, const cJSON *item, const char *path, unsigned lo, unsigned hi,
                      bool msg_has_hi, const char *msg, unsigned *out)
{
	double d;

	if (!cJSON_IsNumber(item) || !is_integral(item->valuedouble) || item->valuedouble < lo)
		return json_fail(c, "%s: %s", path, msg);
	d = item->valuedouble;
	if (d > hi) {
		if (msg_has_hi)
			return json_fail(c, "%s: %s", path, msg);
		return json_fail(c, "%s: must be at most %u", path, hi);
	}
	*out = (unsigned)d;
	return 0;
}

static int cmp_u16(const void *a, const void *b)
{
	uint16_t x = *(const uint16_t *)a;
	uint16_t y = *(const uint16_t *)b;

	return (x > y) - (x < y);
}

/* Sorts a port array in place and drops repeats; returns the new count. */
static size_t sort_unique(uint16_t *v, size_t n)
{
	size_t i;
	size_t out = 0;

	if (n == 0)
		return 0;
	qsort(v, n, sizeof(*v), cmp_u16);
	for (i = 0; i < n; i++) {
		if (out == 0 || v[out - 1] != v[i])
			v[out++] = v[i];
	}
	return out;
}

/*
 * Parses an array of ports into a sorted, duplicate-free set. `non_empty`:
 * an empty array is an error (allow rules).
 */
static int parse_ports(ctx_t *c, const cJSON *item, const char *path, bool non_empty,
                       matrix_ports_t *out)
{
	const char *shape =
	    non_empty ? "must be a non-empty array of ports" : "must be an array of ports";
	const cJSON *el;
	char p[PATH_MAX_LEN];
	uint16_t *v;
	int n;
	int i = 0;

	if (!cJSON_IsArray(item))
		return json_fail(c, "%s: %s", path, shape);
	n = cJSON_GetArraySize(item);
	if (n == 0) {
		if (non_empty)
			return json_fail(c, "%s: %s", path, shape);
		out->v = NULL;
		out->n = 0;
		return 0;
	}
	if (n > MATRIX_MAX_PORTS)
		return json_fail(c, "%s: more than %d ports", path, MATRIX_MAX_PORTS);
	v = calloc((size_t)n, sizeof(*v));
	if (!v)
		return json_fail_oom(c);
	cJSON_ArrayForEach(el, item)
	{
		json_pathf(p, sizeof(p), "%s[%d]", path, i);
		if (!cJSON_IsNumber(el) || !is_integral(el->valuedouble)) {
			free(v);
			return json_fail(c, "%s: must be an integer in 1-65535", p);
		}
		if (el->valuedouble < 1 || el->valuedouble > 65535) {
			free(v);
			return json_fail(c, "%s: port %.15g out of range 1-65535", p,
			                 el->valuedouble);
		}
		v[i++] = (uint16_t)el->valuedouble;
	}
	out->v = v;
	out->n = sort_unique(v, (size_t)n);
	return 0;
}

/* True for a character allowed in a role name. */
static bool name_char(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       ch == '.' || ch == '_' || ch == '-';
}

/*
 * True for a character allowed in an endpoint: a DNS name or an IP literal
 * (':' for IPv6, '%' for an IPv6 zone). Anything else is a typo.
 */
static bool endpoint_char(char ch)
{
	return name_char(ch) || ch == ':' || ch == '%';
}

static int check_role_name(ctx_t *c, const char *name)
{
	char q[JSON_QUOTE_BUF];
	size_t len = strlen(name);
	size_t i;

	if (len == 0)
		return json_fail(c, "roles: empty role name");
	if (len > MATRIX_MAX_NAME)
		return json_fail(c, "roles: role name '%s' is longer than %d characters",
		                 json_quote(name, q, sizeof(q)), MATRIX_MAX_NAME);
	for (i = 0; i < len; i++) {
		if (!name_char(name[i]))
			return json_fail(
			    c,
			    "roles: role name '%s' may only contain A-Z, a-z, 0-9, '.', '_' "
			    "and '-'",
			    json_quote(name, q, sizeof(q)));
	}
	return 0;
}

static int parse_endpoints(ctx_t *c, const cJSON *item, const char *path, matrix_role_t *role)
{
	const cJSON *el;
	char p[PATH_MAX_LEN];
	size_t i;
	size_t j;
	int n;

	if (!cJSON_IsArray(item) || cJSON_GetArraySize(item) == 0)
		return json_fail(c, "%s: must be a non-empty array of strings", path);
	n = cJSON_GetArraySize(item);
	if (n > MATRIX_MAX_ENDPOINTS)
		return json_fail(c, "%s: more than %d endpoints", path, MATRIX_MAX_ENDPOINTS);
	role->endpoints = calloc((size_t)n, sizeof(*role->endpoints));
	if (!role->endpoints)
		return json_fail_oom(c);
	i = 0;
	cJSON_ArrayForEach(el, item)
	{
		const char *s;
		size_t len;

		json_pathf(p, sizeof(p), "%s[%zu]", path, i);
		if (!cJSON_IsString(el) || !el->valuestring || !el->valuestring[0])
			return json_fail(c, "%s: must be a non-empty string", p);
		s = el->valuestring;
		len = strlen(s);
		if (len > MATRIX_MAX_NAME)
			return json_fail(c, "%s: longer than %d characters", p, MATRIX_MAX_NAME);
		for (j = 0; j < len; j++) {
			if (!endpoint_char(s[j]))
				return json_fail(
				    c,
				    "%s: must be a DNS name or an IP address (A-Z, a-z, 0-9, "
				    "'.', '_', '-', ':', '%%')",
				    p);
		}
		for (j = 0; j < i; j++) {
			if (strcmp(role->endpoints[j], s) == 0)
				return json_fail(c, "%s: duplicate endpoint '%s'", p, s);
		}
		role->endpoints[i] = strdup(s);
		if (!role->endpoints[i])
			return json_fail_oom(c);
		role->n_endpoints = ++i;
	}
	return 0;
}

enum {
	ROLE_ENDPOINTS,
	ROLE_PORTS,
	ROLE_AGENT,
	ROLE_TLS_PORTS,
	ROLE_SILENT,
	ROLE_PROBE_ALLOWED,
	ROLE_ALLOWED_INTERVAL_S,
	ROLE_N_KEYS
};

static const char *const role_keys[ROLE_N_KEYS] = {
    "endpoints", "ports", "agent", "tls_ports", "silent", "probe_allowed", "allowed_interval_s",
};

/* Parses role object `obj` into `role`, whose name is already set and checked. */
static int parse_role(ctx_t *c, const cJSON *obj, matrix_role_t *role)
{
	const unsigned required = 1u << ROLE_ENDPOINTS | 1u << ROLE_PORTS | 1u << ROLE_AGENT;
	const cJSON *item;
	char base[PATH_MAX_LEN];
	char p[PATH_MAX_LEN];
	unsigned seen;
	int result;

	json_pathf(base, sizeof(base), "roles.%s", role->name);
	if (!cJSON_IsObject(obj))
		return json_fail(c, "%s: must be an object", base);
	result = check_keys(c, obj, base, role_keys, ROLE_N_KEYS, false, &seen);
	if (result)
		return result;
	result = check_required(c, base, role_keys, ROLE_N_KEYS, required, seen);
	if (result)
		return result;

	role->probe_allowed = true;

	join(p, sizeof(p), base, "endpoints");
	result = parse_endpoints(c, cJSON_GetObjectItemCaseSensitive(obj, "endpoints"), p, role);
	if (result)
		return result;
	join(p, sizeof(p), base, "ports");
	result =
	    parse_ports(c, cJSON_GetObjectItemCaseSensitive(obj, "ports"), p, false, &role->ports);
	if (result)
		return result;
	join(p, sizeof(p), base, "agent");
	result = parse_bool(c, cJSON_GetObjectItemCaseSensitive(obj, "agent"), p, &role->agent);
	if (result)
		return result;

	item = cJSON_GetObjectItemCaseSensitive(obj, "tls_ports");
	if (item) {
		join(p, sizeof(p), base, "tls_ports");
		result = parse_ports(c, item, p, false, &role->tls_ports);
		if (result)
			return result;
		/* A TLS port the role does not serve would never be probed. */
		for (size_t i = 0; i < role->tls_ports.n; i++) {
			if (!matrix_ports_has(&role->ports, role->tls_ports.v[i]))
				return json_fail(c, "%s: port %u is not in %s.ports", p,
				                 (unsigned)role->tls_ports.v[i], base);
		}
	}
	item = cJSON_GetObjectItemCaseSensitive(obj, "silent");
	if (item) {
		join(p, sizeof(p), base, "silent");
		result = parse_bool(c, item, p, &role->silent);
		if (result)
			return result;
	}
	item = cJSON_GetObjectItemCaseSensitive(obj, "probe_allowed");
	if (item) {
		join(p, sizeof(p), base, "probe_allowed");
		result = parse_bool(c, item, p, &role->probe_allowed);
		if (result)
			return result;
	}
	item = cJSON_GetObjectItemCaseSensitive(obj, "allowed_interval_s");
	if (item) {
		join(p, sizeof(p), base, "allowed_interval_s");
		result = parse_uint(c, item, p, 1, MAX_INTERVAL_S, false, "must be an integer >= 1",
		                    &role->allowed_interval_s);
		if (result)
			return result;
	}
	return 0;
}

enum { PROBE_PORTS, PROBE_INTERVAL_S, PROBE_TIMEOUT_MS, PROBE_N_KEYS };

static const char *const probe_keys[PROBE_N_KEYS] = {"ports", "interval_s", "timeout_ms"};

static int parse_probe(ctx_t *c, const cJSON *obj, matrix_t *m)
{
	const cJSON *item;
	unsigned seen;
	int result;

	if (!cJSON_IsObject(obj))
		return json_fail(c, "probe: must be an object");
	result = check_keys(c, obj, "probe", probe_keys, PROBE_N_KEYS, false, &seen);
	if (result)
		return result;
	item = cJSON_GetObjectItemCaseSensitive(obj, "ports");
	if (item) {
		result = parse_ports(c, item, "probe.ports", false, &m->probe_ports);
		if (result)
			return result;
	}
	item = cJSON_GetObjectItemCaseSensitive(obj, "interval_s");
	if (item) {
		result = parse_uint(c, item, "probe.interval_s", 1, MAX_INTERVAL_S, false,
		                    "must be an integer >= 1", &m->interval_s);
		if (result)
			return result;
	}
	item = cJSON_GetObjectItemCaseSensitive(obj, "timeout_ms");
	if (item) {
		result = parse_uint(c, item, "probe.timeout_ms", 1, MAX_TIMEOUT_MS, true,
		                    "must be an integer in 1-60000", &m->timeout_ms);
		if (result)
			return result;
	}
	return 0;
}

static int parse_roles(ctx_t *c, const cJSON *obj, matrix_t *m)
{
	const cJSON *item;
	size_t i;
	int n;
	int result;

	if (!cJSON_IsObject(obj))
		return json_fail(c, "roles: must be an object");
	n = cJSON_GetArraySize(obj);
	if (n == 0)
		return json_fail(c, "roles: must name at least one role");
	if (n > MATRIX_MAX_ROLES)
		return json_fail(c, "roles: more than %d roles", MATRIX_MAX_ROLES);
	m->roles = calloc((size_t)n, sizeof(*m->roles));
	if (!m->roles)
		return json_fail_oom(c);
	cJSON_ArrayForEach(item, obj)
	{
		const char *name = item->string ? item->string : "";
		matrix_role_t *role;

		result = check_role_name(c, name);
		if (result)
			return result;
		for (i = 0; i < m->n_roles; i++) {
			if (strcmp(m->roles[i].name, name) == 0)
				return json_fail(c, "roles: duplicate role '%s'", name);
		}
		role = &m->roles[m->n_roles];
		role->name = strdup(name);
		if (!role->name)
			return json_fail_oom(c);
		m->n_roles++;
		result = parse_role(c, item, role);
		if (result)
			return result;
	}
	return 0;
}

/* A role index sorted by name, so that rules resolve their roles by binary search. */
typedef struct {
	const char *name;
	size_t idx;
} role_ref_t;

static int cmp_role_ref(const void *a, const void *b)
{
	return strcmp(((const role_ref_t *)a)->name, ((const role_ref_t *)b)->name);
}

enum { RULE_FROM, RULE_TO, RULE_PORTS, RULE_N_KEYS };

static const char *const rule_keys[RULE_N_KEYS] = {"from", "to", "ports"};

static int parse_rule_role(ctx_t *c, const role_ref_t *index, size_t n_roles, const cJSON *item,
                           const char *path, size_t *out)
{
	char q[JSON_QUOTE_BUF];
	role_ref_t key;
	const role_ref_t *found;

	if (!cJSON_IsString(item) || !item->valuestring || !item->valuestring[0])
		return json_fail(c, "%s: must be a role name", path);
	key.name = item->valuestring;
	key.idx = 0;
	found = bsearch(&key, index, n_roles, sizeof(*index), cmp_role_ref);
	if (!found)
		return json_fail(c, "%s: unknown role '%s'", path,
		                 json_quote(item->valuestring, q, sizeof(q)));
	*out = found->idx;
	return 0;
}

static int parse_rules(ctx_t *c, const cJSON *arr, matrix_t *m)
{
	const unsigned required = 1u << RULE_FROM | 1u << RULE_TO | 1u << RULE_PORTS;
	role_ref_t *index = NULL;
	const cJSON *item;
	char base[PATH_MAX_LEN];
	char p[PATH_MAX_LEN];
	unsigned seen;
	int n;
	int result = 0;

	if (!cJSON_IsArray(arr))
		return json_fail(c, "allow: must be an array of rules");
	n = cJSON_GetArraySize(arr);
	if (n > MATRIX_MAX_RULES)
		return json_fail(c, "allow: more than %d rules", MATRIX_MAX_RULES);
	if (n == 0)
		return 0;
	m->rules = calloc((size_t)n, sizeof(*m->rules));
	index = calloc(m->n_roles, sizeof(*index));
	if (!m->rules || !index) {
		result = json_fail_oom(c);
		goto out;
	}
	for (size_t i = 0; i < m->n_roles; i++) {
		index[i].name = m->roles[i].name;
		index[i].idx = i;
	}
	qsort(index, m->n_roles, sizeof(*index), cmp_role_ref);
	cJSON_ArrayForEach(item, arr)
	{
		matrix_rule_t *rule = &m->rules[m->n_rules];

		json_pathf(base, sizeof(base), "allow[%zu]", m->n_rules);
		if (!cJSON_IsObject(item)) {
			result = json_fail(c, "%s: must be an object", base);
			goto out;
		}
		result = check_keys(c, item, base, rule_keys, RULE_N_KEYS, true, &seen);
		if (result)
			goto out;
		result = check_required(c, base, rule_keys, RULE_N_KEYS, required, seen);
		if (result)
			goto out;
		join(p, sizeof(p), base, "from");
		result =
		    parse_rule_role(c, index, m->n_roles,
		                    cJSON_GetObjectItemCaseSensitive(item, "from"), p, &rule->from);
		if (result)
			goto out;
		join(p, sizeof(p), base, "to");
		result =
		    parse_rule_role(c, index, m->n_roles,
		                    cJSON_GetObjectItemCaseSensitive(item, "to"), p, &rule->to);
		if (result)
			goto out;
		join(p, sizeof(p), base, "ports");
		result = parse_ports(c, cJSON_GetObjectItemCaseSensitive(item, "ports"), p, true,
		                     &rule->ports);
		if (result)
			goto out;
		m->n_rules++;
	}
out:
	free(index);
	return result;
}

enum { TOP_VERSION, TOP_NAME, TOP_PROBE, TOP_ROLES, TOP_ALLOW, TOP_N_KEYS };

static const char *const top_keys[TOP_N_KEYS] = {"version", "name", "probe", "roles", "allow"};

static int parse_matrix(ctx_t *c, const cJSON *root, matrix_t *m)
{
	const unsigned required =
	    1u << TOP_VERSION | 1u << TOP_NAME | 1u << TOP_ROLES | 1u << TOP_ALLOW;
	const cJSON *item;
	unsigned seen;
	int result;

	if (!cJSON_IsObject(root))
		return json_fail_doc(c, "must be a JSON object");
	result = check_keys(c, root, "", top_keys, TOP_N_KEYS, false, &seen);
	if (result)
		return result;
	result = check_required(c, "", top_keys, TOP_N_KEYS, required, seen);
	if (result)
		return result;

	item = cJSON_GetObjectItemCaseSensitive(root, "version");
	if (!cJSON_IsNumber(item) || !is_integral(item->valuedouble))
		return json_fail(c, "version: must be an integer");
	if (item->valuedouble != 1)
		return json_fail(
		    c, "version: unsupported version %.15g (this program reads version 1)",
		    item->valuedouble);
	m->version = 1;

	item = cJSON_GetObjectItemCaseSensitive(root, "name");
	if (!cJSON_IsString(item) || !item->valuestring || !item->valuestring[0])
		return json_fail(c, "name: must be a non-empty string");
	if (strlen(item->valuestring) > MATRIX_MAX_NAME)
		return json_fail(c, "name: longer than %d characters", MATRIX_MAX_NAME);
	m->name = strdup(item->valuestring);
	if (!m->name)
		return json_fail_oom(c);

	m->interval_s = DEFAULT_INTERVAL_S;
	m->timeout_ms = DEFAULT_TIMEOUT_MS;
	item = cJSON_GetObjectItemCaseSensitive(root, "probe");
	if (item) {
		result = parse_probe(c, item, m);
		if (result)
			return result;
	}
	result = parse_roles(c, cJSON_GetObjectItemCaseSensitive(root, "roles"), m);
	if (result)
		return result;
	return parse_rules(c, cJSON_GetObjectItemCaseSensitive(root, "allow"), m);
}

static matrix_t *parse_with(ctx_t *c, const char *text, size_t len)
{
	matrix_t *m = NULL;
	cJSON *root = NULL;
	unsigned line;
	int result;

	if (len > MATRIX_MAX_FILE_BYTES) {
		char msg[MATRIX_ERR_MAX];

		json_pathf(msg, sizeof(msg), "%zu bytes exceeds the limit of %u", len,
		           MATRIX_MAX_FILE_BYTES);
		json_fail_doc(c, msg);
		return NULL;
	}
	root = json_parse(text ? text : "", text ? len : 0, &line, &result);
	if (!root) {
		char msg[MATRIX_ERR_MAX];

		if (result == -ENOMEM) {
			json_fail_oom(c);
			return NULL;
		}
		json_pathf(msg, sizeof(msg), "invalid JSON near line %u", line);
		json_fail_doc(c, msg);
		return NULL;
	}
	m = calloc(1, sizeof(*m));
	if (!m) {
		json_fail_oom(c);
		goto out;
	}
	result = parse_matrix(c, root, m);
	if (result) {
		matrix_free(m);
		m = NULL;
	}
out:
	cJSON_Delete(root);
	return m;
}

matrix_t *matrix_parse(const char *text, size_t len, char *err, size_t errlen)
{
	ctx_t c = {err, errlen, NULL, "matrix"};

	if (err && errlen > 0)
		err[0] = '\0';
	return parse_with(&c, text, len);
}

matrix_t *matrix_load(const char *path, char *err, size_t errlen)
{
	ctx_t c = {err, errlen, path, "matrix"};
	matrix_t *m;
	char *text = NULL;
	size_t len = 0;
	int result;

	if (err && errlen > 0)
		err[0] = '\0';
	result = fileio_read(path, MATRIX_MAX_FILE_BYTES, &text, &len);
	if (result == -EFBIG) {
		json_fail(&c, "larger than the limit of %u bytes", MATRIX_MAX_FILE_BYTES);
		return NULL;
	}
	if (result) {
		json_fail(&c, "cannot read: %s", strerror(-result));
		return NULL;
	}
	m = parse_with(&c, text, len);
	fileio_free(text, len);
	return m;
}

static void ports_dispose(matrix_ports_t *p)
{
	free(p->v);
	p->v = NULL;
	p->n = 0;
}

void matrix_free(matrix_t *m)
{
	size_t i;
	size_t j;

	if (!m)
		return;
	for (i = 0; i < m->n_roles; i++) {
		matrix_role_t *r = &m->roles[i];

		free(r->name);
		for (j = 0; j < r->n_endpoints; j++)
			free(r->endpoints[j]);
		free(r->endpoints);
		ports_dispose(&r->ports);
		ports_dispose(&r->tls_ports);
	}
	free(m->roles);
	for (i = 0; i < m->n_rules; i++)
		ports_dispose(&m->rules[i].ports);
	free(m->rules);
	ports_dispose(&m->probe_ports);
	free(m->name);
	free(m);
}

int matrix_role_index(const matrix_t *m, const char *name)
{
	size_t i;

	if (!m || !name)
		return -1;
	for (i = 0; i < m->n_roles; i++) {
		if (strcmp(m->roles[i].name, name) == 0)
			return (int)i;
	}
	return -1;
}

bool matrix_ports_has(const matrix_ports_t *ports, uint16_t port)
{
	size_t lo = 0;
	size_t hi;

	if (!ports || !ports->v)
		return false;
	hi = ports->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (ports->v[mid] == port)
			return true;
		if (ports->v[mid] < port)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

bool matrix_allows(const matrix_t *m, size_t from, size_t to, uint16_t port)
{
	size_t i;

	if (!m)
		return false;
	for (i = 0; i < m->n_rules; i++) {
		const matrix_rule_t *r = &m->rules[i];

		if (r->from == from && r->to == to && matrix_ports_has(&r->ports, port))
			return true;
	}
	return false;
}

/* An address parsed for comparison: IPv4 is kept as IPv4-mapped IPv6. */
typedef struct {
	bool ok;
	unsigned char b[16];
} addr_t;

static addr_t parse_addr(const char *s)
{
	addr_t a = {false, {0}};
	struct in_addr v4;

	if (inet_pton(AF_INET, s, &v4) == 1) {
		a.b[10] = 0xff;
		a.b[11] = 0xff;
		memcpy(a.b + 12, &v4, 4);
		a.ok = true;
	} else if (inet_pton(AF_INET6, s, a.b) == 1) {
		a.ok = true;
	}
	return a;
}

/* True when endpoint `ep` is the agent's own address (as a string or as an IP). */
static bool is_own(const char *ep, const char *own, const addr_t *own_addr)
{
	addr_t a;

	if (!own)
		return false;
	if (strcmp(ep, own) == 0)
		return true;
	if (!own_addr->ok)
		return false;
	a = parse_addr(ep);
	return a.ok && memcmp(a.b, own_addr->b, sizeof(a.b)) == 0;
}

/* What one destination role contributes to a plan. */
typedef struct {
	matrix_ports_t allowed; /* the ports the rules allow from the source to it */
	matrix_ports_t all;     /* its ports ∪ probe.ports ∪ allowed */
} dest_t;

static void dest_dispose(dest_t *dst)
{
	ports_dispose(&dst->allowed);
	ports_dispose(&dst->all);
}

/* Copies `n` ports to the end of `v` at *len. */
static void append_ports(uint16_t *v, size_t *len, const uint16_t *src, size_t n)
{
	if (n > 0)
		memcpy(v + *len, src, n * sizeof(*src));
	*len += n;
}

/*
 * Computes the port sets of destination role `d` in the plan of role `src`.
 * Returns 0 or -ENOMEM (with nothing to dispose of).
 */
static int dest_init(dest_t *dst, const matrix_t *m, size_t src, size_t d)
{
	const matrix_role_t *dr = &m->roles[d];
	size_t n_allowed = 0;
	size_t len = 0;
	size_t i;

	memset(dst, 0, sizeof(*dst));
	for (i = 0; i < m->n_rules; i++) {
		if (m->rules[i].from == src && m->rules[i].to == d)
			n_allowed += m->rules[i].ports.n;
	}
	if (n_allowed > 0) {
		dst->allowed.v = malloc(n_allowed * sizeof(*dst->allowed.v));
		if (!dst->allowed.v)
			return -ENOMEM;
		for (i = 0; i < m->n_rules; i++) {
			const matrix_rule_t *r = &m->rules[i];

			if (r->from == src && r->to == d)
				append_ports(dst->allowed.v, &len, r->ports.v, r->ports.n);
		}
		dst->allowed.n = sort_unique(dst->allowed.v, len);
	}

	len = 0;
	if (dst->allowed.n + dr->ports.n + m->probe_ports.n > 0) {
		dst->all.v =
		    malloc((dst->allowed.n + dr->ports.n + m->probe_ports.n) * sizeof(*dst->all.v));
		if (!dst->all.v) {
			dest_dispose(dst);
			return -ENOMEM;
		}
		append_ports(dst->all.v, &len, dst->allowed.v, dst->allowed.n);
		append_ports(dst->all.v, &len, dr->ports.v, dr->ports.n);
		append_ports(dst->all.v, &len, m->probe_ports.v, m->probe_ports.n);
		dst->all.n = sort_unique(dst->all.v, len);
	}
	return 0;
}

/* Fills target `t` for `port` of endpoint `endpoint` of destination `d`. Returns 0 or -ENOMEM. */
static int target_init(matrix_target_t *t, const matrix_t *m, size_t d, const dest_t *dst,
                       const char *endpoint, uint16_t port)
{
	const matrix_role_t *dr = &m->roles[d];
	bool allow = matrix_ports_has(&dst->allowed, port);

	t->dst_role = strdup(dr->name);
	t->target = strdup(endpoint);
	if (!t->dst_role || !t->target)
		return -ENOMEM;
	t->port = port;
	t->expected = allow ? VERDICT_EXPECT_ALLOW : VERDICT_EXPECT_DENY;
	t->tls = matrix_ports_has(&dr->tls_ports, port);
	t->silent = dr->silent && !matrix_ports_has(&dr->ports, port);
	t->probe = !(allow && !dr->probe_allowed);
	t->interval_s = (allow && dr->allowed_interval_s) ? dr->allowed_interval_s : m->interval_s;
	return 0;
}

matrix_plan_t *matrix_plan_for_role(const matrix_t *m, const char *role, const char *own_address,
                                    char *err, size_t errlen)
{
	ctx_t c = {err, errlen, NULL, "matrix"};
	matrix_plan_t *plan = NULL;
	dest_t *dests = NULL;
	addr_t own_addr = {false, {0}};
	size_t n_dests = 0;
	size_t total = 0;
	size_t d;
	size_t e;
	size_t i;
	int src;

	if (err && errlen > 0)
		err[0] = '\0';
	if (!m || !role) {
		json_fail(&c, "no matrix or no role");
		return NULL;
	}
	src = matrix_role_index(m, role);
	if (src < 0) {
		char q[JSON_QUOTE_BUF];

		json_fail(&c, "role '%s' is not in matrix '%s'", json_quote(role, q, sizeof(q)),
		          m->name);
		return NULL;
	}
	if (own_address)
		own_addr = parse_addr(own_address);

	plan = calloc(1, sizeof(*plan));
	dests = calloc(m->n_roles, sizeof(*dests));
	if (!plan || !dests)
		goto oom;
	plan->matrix = strdup(m->name);
	plan->role = strdup(m->roles[src].name);
	if (!plan->matrix || !plan->role)
		goto oom;
	plan->interval_s = m->interval_s;
	plan->timeout_ms = m->timeout_ms;

	/* First the port sets and the count, so that the targets are one allocation. */
	for (d = 0; d < m->n_roles; d++) {
		if (dest_init(&dests[d], m, (size_t)src, d))
			goto oom;
		n_dests++;
		for (e = 0; e < m->roles[d].n_endpoints; e++) {
			if (!is_own(m->roles[d].endpoints[e], own_address, &own_addr))
				total += dests[d].all.n;
		}
		/* Checked as it grows: a destination's port set is never larger
		 * than its share of the total, so memory stays within the limit. */
		if (total > MATRIX_MAX_PLAN_TARGETS)
			break;
	}
	if (total > MATRIX_MAX_PLAN_TARGETS) {
		/* A small file can multiply into a huge plan (roles × endpoints ×
		 * ports): refuse it rather than exhaust memory. */
		json_fail(
		    &c,
		    "role '%s': its plan would hold at least %zu probes, more than the limit of %d",
		    m->roles[src].name, total, MATRIX_MAX_PLAN_TARGETS);
		goto out;
	}
	if (total > 0) {
		plan->targets = calloc(total, sizeof(*plan->targets));
		if (!plan->targets)
			goto oom;
	}
	for (d = 0; d < m->n_roles; d++) {
		const matrix_role_t *dr = &m->roles[d];

		for (e = 0; e < dr->n_endpoints; e++) {
			if (is_own(dr->endpoints[e], own_address, &own_addr))
				continue;
			for (i = 0; i < dests[d].all.n; i++) {
				matrix_target_t *t = &plan->targets[plan->n_targets];

				/* Counted first, so that matrix_plan_free() frees a half-filled one. */
				plan->n_targets++;
				if (target_init(t, m, d, &dests[d], dr->endpoints[e],
				                dests[d].all.v[i]))
					goto oom;
			}
		}
	}
	for (d = 0; d < n_dests; d++)
		dest_dispose(&dests[d]);
	free(dests);
	return plan;

oom:
	json_fail(&c, "out of memory");
out:
	for (d = 0; d < n_dests; d++)
		dest_dispose(&dests[d]);
	free(dests);
	matrix_plan_free(plan);
	return NULL;
}

void matrix_plan_free(matrix_plan_t *plan)
{
	size_t i;

	if (!plan)
		return;
	for (i = 0; i < plan->n_targets; i++) {
		free(plan->targets[i].dst_role);
		free(plan->targets[i].target);
	}
	free(plan->targets);
	free(plan->matrix);
	free(plan->role);
	free(plan);
}
