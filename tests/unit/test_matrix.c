/*
 * Unit tests of lib/matrix.c: the shipped matrices load, every kind of mistake
 * is refused with a message naming its key, and plans are derived as DESIGN.md
 * "The intended matrix" says. Run from the repository root (relative paths).
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "sgprobe/matrix.h"

#define AFIRGEN        "examples/afirgen.matrix.json"
#define AFIRGEN_STRICT "examples/afirgen-strict.matrix.json"

/*
 * Parses JSON written with single quotes (so that the tables stay readable):
 * every ' becomes ". No test input needs a literal '.
 */
static matrix_t *parse_q(const char *q, char *err)
{
	char *text = strdup(q);
	matrix_t *m;
	size_t i;

	assert_non_null(text);
	for (i = 0; text[i]; i++) {
		if (text[i] == '\'')
			text[i] = '"';
	}
	m = matrix_parse(text, strlen(text), err, MATRIX_ERR_MAX);
	free(text);
	return m;
}

static matrix_t *load_ok(const char *path)
{
	char err[MATRIX_ERR_MAX] = "";
	matrix_t *m = matrix_load(path, err, sizeof(err));

	if (!m)
		fail_msg("%s: %s", path, err);
	return m;
}

static const matrix_role_t *role(const matrix_t *m, const char *name)
{
	int i = matrix_role_index(m, name);

	assert_true(i >= 0);
	return &m->roles[i];
}

static size_t idx(const matrix_t *m, const char *name)
{
	int i = matrix_role_index(m, name);

	assert_true(i >= 0);
	return (size_t)i;
}

static void assert_ports(const matrix_ports_t *p, const uint16_t *want, size_t n)
{
	size_t i;

	assert_int_equal(p->n, n);
	for (i = 0; i < n; i++)
		assert_int_equal(p->v[i], want[i]);
}

/* The shipped AFIRGen matrix loads with every role, rule and setting it states. */
static void test_matrix_loads_afirgen_example(void **state)
{
	static const uint16_t probe_ports[] = {80, 443, 2049, 3306, 8000, 8001, 8002};
	static const uint16_t alb_ports[] = {80, 443};
	static const char *const order[] = {
	    "alb",
	    "nginx",
	    "main-backend",
	    "gguf-model-server",
	    "asr-ocr-server",
	    "frontend",
	    "backup",
	    "rds-mysql",
	    "efs",
	    "vpc-endpoints",
	    "internet",
	    "sgprobe-collector",
	};
	matrix_t *m = load_ok(AFIRGEN);
	size_t i;

	(void)state;
	assert_int_equal(m->version, 1);
	assert_string_equal(m->name, "afirgen-prod");
	assert_int_equal(m->interval_s, 60);
	assert_int_equal(m->timeout_ms, 2000);
	assert_ports(&m->probe_ports, probe_ports, 7);
	assert_int_equal(m->n_roles, 12);
	for (i = 0; i < 12; i++)
		assert_string_equal(m->roles[i].name, order[i]);
	assert_int_equal(m->n_rules, 28);

	assert_true(role(m, "alb")->silent);
	assert_false(role(m, "alb")->agent);
	assert_ports(&role(m, "alb")->ports, alb_ports, 2);
	assert_true(role(m, "nginx")->agent);
	assert_false(role(m, "nginx")->silent);
	assert_true(role(m, "nginx")->probe_allowed);
	assert_int_equal(role(m, "nginx")->allowed_interval_s, 0);
	assert_int_equal(role(m, "backup")->ports.n, 0);
	assert_int_equal(role(m, "rds-mysql")->allowed_interval_s, 900);
	assert_int_equal(role(m, "vpc-endpoints")->tls_ports.n, 1);
	assert_int_equal(role(m, "vpc-endpoints")->tls_ports.v[0], 443);
	assert_int_equal(role(m, "internet")->n_endpoints, 1);
	assert_string_equal(role(m, "internet")->endpoints[0], "198.18.0.250");

	assert_true(matrix_allows(m, idx(m, "internet"), idx(m, "alb"), 80));
	assert_true(matrix_allows(m, idx(m, "internet"), idx(m, "alb"), 443));
	assert_false(matrix_allows(m, idx(m, "internet"), idx(m, "alb"), 8000));
	assert_false(matrix_allows(m, idx(m, "alb"), idx(m, "internet"), 443));
	assert_true(matrix_allows(m, idx(m, "main-backend"), idx(m, "alb"), 443));
	assert_true(matrix_allows(m, idx(m, "main-backend"), idx(m, "rds-mysql"), 3306));
	assert_false(matrix_allows(m, idx(m, "nginx"), idx(m, "rds-mysql"), 3306));
	assert_false(matrix_allows(m, idx(m, "main-backend"), idx(m, "main-backend"), 8000));
	assert_int_equal(matrix_role_index(m, "rds"), -1);
	assert_int_equal(matrix_role_index(m, ""), -1);
	matrix_free(m);
}

/* The strict variant loads and drops exactly the 0.0.0.0/0 egress paths. */
static void test_matrix_loads_afirgen_strict_example(void **state)
{
	matrix_t *m = load_ok(AFIRGEN_STRICT);

	(void)state;
	assert_string_equal(m->name, "afirgen-strict");
	assert_int_equal(m->n_roles, 12);
	assert_int_equal(m->n_rules, 20);
	assert_false(matrix_allows(m, idx(m, "main-backend"), idx(m, "alb"), 443));
	/* The collector's CloudWatch path, through the monitoring interface endpoint. */
	assert_true(matrix_allows(m, idx(m, "sgprobe-collector"), idx(m, "vpc-endpoints"), 443));
	assert_false(matrix_allows(m, idx(m, "backup"), idx(m, "internet"), 443));
	assert_true(matrix_allows(m, idx(m, "main-backend"), idx(m, "vpc-endpoints"), 443));
	assert_true(matrix_allows(m, idx(m, "internet"), idx(m, "alb"), 443));
	matrix_free(m);
}

/* Pieces of a valid matrix, from which the error cases below are built. */
#define HEAD   "{'version':1,'name':'t',"
#define ROLE_A "'a':{'endpoints':['a.example'],'ports':[80],'agent':true}"
#define ROLE_B "'b':{'endpoints':['b.example'],'ports':[443],'agent':false}"
#define ROLES  "'roles':{" ROLE_A "," ROLE_B "}"
#define ALLOW  "'allow':[{'from':'a','to':'b','ports':[443]}]"
/* A matrix whose role `a` is `a` (the object's contents). */
#define WITH_A(a)     HEAD "'roles':{'a':{" a "}," ROLE_B "}," ALLOW "}"
#define WITH_RULES(r) HEAD ROLES ",'allow':[" r "]}"
#define WITH_PROBE(p) HEAD "'probe':{" p "}," ROLES "," ALLOW "}"
#define A_BASE        "'endpoints':['a.example'],'ports':[80],'agent':true"

/* Every kind of mistake is refused with a message that names its key. */
static void test_matrix_rejects_each_error_with_its_message(void **state)
{
	static const struct {
		const char *json;
		const char *want;
	} cases[] = {
	    /* Unknown and duplicate keys. */
	    {HEAD ROLES "," ALLOW ",'colour':1}", "colour: unknown key"},
	    {WITH_PROBE("'colour':1"), "probe.colour: unknown key"},
	    {WITH_A(A_BASE ",'prots':[80]"), "roles.a.prots: unknown key"},
	    {WITH_RULES("{'from':'a','to':'b','ports':[443],'port':1}"),
	     "allow[0]: unknown key 'port'"},
	    {WITH_A(A_BASE ",'ports':[81]"), "roles.a.ports: duplicate key"},
	    {"{'version':1,'version':1,'name':'t'," ROLES "," ALLOW "}", "version: duplicate key"},
	    {WITH_RULES("{'from':'a','from':'b','to':'b','ports':[443]}"),
	     "allow[0].from: duplicate key"},
	    {HEAD "'roles':{" ROLE_A "," ROLE_B "," ROLE_A "}," ALLOW "}",
	     "roles: duplicate role 'a'"},
	    /* Unknown roles in rules. */
	    {WITH_RULES("{'from':'a','to':'b','ports':[443]},{'from':'a','to':'rds','ports':[1]}"),
	     "allow[1].to: unknown role 'rds'"},
	    {WITH_RULES("{'from':'A','to':'b','ports':[443]}"), "allow[0].from: unknown role 'A'"},
	    {WITH_RULES("{'from':1,'to':'b','ports':[443]}"), "allow[0].from: must be a role name"},
	    /* Ports. */
	    {WITH_RULES("{'from':'a','to':'b','ports':[0]}"),
	     "allow[0].ports[0]: port 0 out of range 1-65535"},
	    {WITH_RULES("{'from':'a','to':'b','ports':[443,70000]}"),
	     "allow[0].ports[1]: port 70000 out of range 1-65535"},
	    {WITH_A("'endpoints':['a.example'],'ports':[-1],'agent':true"),
	     "roles.a.ports[0]: port -1 out of range 1-65535"},
	    {WITH_PROBE("'ports':[1.5]"), "probe.ports[0]: must be an integer in 1-65535"},
	    {WITH_PROBE("'ports':[80,'443']"), "probe.ports[1]: must be an integer in 1-65535"},
	    {WITH_PROBE("'ports':[1e300]"), "probe.ports[0]: port 1e+300 out of range 1-65535"},
	    {WITH_PROBE("'ports':80"), "probe.ports: must be an array of ports"},
	    {WITH_RULES("{'from':'a','to':'b','ports':[]}"),
	     "allow[0].ports: must be a non-empty array of ports"},
	    {WITH_RULES("{'from':'a','to':'b','ports':443}"),
	     "allow[0].ports: must be a non-empty array of ports"},
	    {WITH_A(A_BASE ",'tls_ports':[65536]"),
	     "roles.a.tls_ports[0]: port 65536 out of range 1-65535"},
	    {WITH_A("'endpoints':['a.example'],'ports':{},'agent':true"),
	     "roles.a.ports: must be an array of ports"},
	    /* Endpoints and names. */
	    {WITH_A("'endpoints':[],'ports':[80],'agent':true"),
	     "roles.a.endpoints: must be a non-empty array of strings"},
	    {WITH_A("'endpoints':'a.example','ports':[80],'agent':true"),
	     "roles.a.endpoints: must be a non-empty array of strings"},
	    {WITH_A("'endpoints':['a.example',''],'ports':[80],'agent':true"),
	     "roles.a.endpoints[1]: must be a non-empty string"},
	    {WITH_A("'endpoints':['a.example',7],'ports':[80],'agent':true"),
	     "roles.a.endpoints[1]: must be a non-empty string"},
	    {WITH_A("'endpoints':['x','y','x'],'ports':[80],'agent':true"),
	     "roles.a.endpoints[2]: duplicate endpoint 'x'"},
	    {WITH_A("'endpoints':['a example'],'ports':[80],'agent':true"),
	     "roles.a.endpoints[0]: must be a DNS name or an IP address (A-Z, a-z, 0-9, '.', "
	     "'_', '-', ':', '%')"},
	    {"{'version':1,'name':''," ROLES "," ALLOW "}", "name: must be a non-empty string"},
	    {"{'version':1,'name':5," ROLES "," ALLOW "}", "name: must be a non-empty string"},
	    {HEAD "'roles':{'':{" A_BASE "}}," ALLOW "}", "roles: empty role name"},
	    {HEAD "'roles':{'a b':{" A_BASE "}}," ALLOW "}",
	     "roles: role name 'a b' may only contain A-Z, a-z, 0-9, '.', '_' and '-'"},
	    {HEAD "'roles':{'a/b':{" A_BASE "}}," ALLOW "}",
	     "roles: role name 'a/b' may only contain A-Z, a-z, 0-9, '.', '_' and '-'"},
	    /* Wrong types and values. */
	    {WITH_PROBE("'interval_s':'60'"), "probe.interval_s: must be an integer >= 1"},
	    {WITH_PROBE("'interval_s':0"), "probe.interval_s: must be an integer >= 1"},
	    {WITH_PROBE("'interval_s':60.5"), "probe.interval_s: must be an integer >= 1"},
	    {WITH_PROBE("'interval_s':86401"), "probe.interval_s: must be at most 86400"},
	    {WITH_PROBE("'timeout_ms':0"), "probe.timeout_ms: must be an integer in 1-60000"},
	    {WITH_PROBE("'timeout_ms':60001"), "probe.timeout_ms: must be an integer in 1-60000"},
	    {WITH_PROBE("'timeout_ms':null"), "probe.timeout_ms: must be an integer in 1-60000"},
	    {HEAD "'probe':[]," ROLES "," ALLOW "}", "probe: must be an object"},
	    {WITH_A("'endpoints':['a.example'],'ports':[80],'agent':'yes'"),
	     "roles.a.agent: must be true or false"},
	    {WITH_A(A_BASE ",'silent':1"), "roles.a.silent: must be true or false"},
	    {WITH_A(A_BASE ",'probe_allowed':null"),
	     "roles.a.probe_allowed: must be true or false"},
	    {WITH_A(A_BASE ",'allowed_interval_s':0"),
	     "roles.a.allowed_interval_s: must be an integer >= 1"},
	    {WITH_A(A_BASE ",'allowed_interval_s':1.5"),
	     "roles.a.allowed_interval_s: must be an integer >= 1"},
	    {HEAD "'roles':[]," ALLOW "}", "roles: must be an object"},
	    {HEAD "'roles':{}," ALLOW "}", "roles: must name at least one role"},
	    {HEAD "'roles':{'a':[]}," ALLOW "}", "roles.a: must be an object"},
	    {HEAD ROLES ",'allow':{}}", "allow: must be an array of rules"},
	    {WITH_RULES("'a'"), "allow[0]: must be an object"},
	    {"{'version':'1','name':'t'," ROLES "," ALLOW "}", "version: must be an integer"},
	    {"{'version':1.5,'name':'t'," ROLES "," ALLOW "}", "version: must be an integer"},
	    {"{'version':2,'name':'t'," ROLES "," ALLOW "}",
	     "version: unsupported version 2 (this program reads version 1)"},
	    /* Missing required keys. */
	    {"{'name':'t'," ROLES "," ALLOW "}", "version: required"},
	    {"{'version':1," ROLES "," ALLOW "}", "name: required"},
	    {HEAD ALLOW "}", "roles: required"},
	    {HEAD ROLES "}", "allow: required"},
	    {WITH_A("'ports':[80],'agent':true"), "roles.a.endpoints: required"},
	    {WITH_A("'endpoints':['a.example'],'agent':true"), "roles.a.ports: required"},
	    {WITH_A("'endpoints':['a.example'],'ports':[80]"), "roles.a.agent: required"},
	    {WITH_RULES("{'to':'b','ports':[443]}"), "allow[0].from: required"},
	    {WITH_RULES("{'from':'a','ports':[443]}"), "allow[0].to: required"},
	    {WITH_RULES("{'from':'a','to':'b'}"), "allow[0].ports: required"},
	    /* Not JSON, or not an object. */
	    {"{\n'version': 1,\n'name': 't',\n}", "matrix: invalid JSON near line 4"},
	    {"{'version':1} trailing", "matrix: invalid JSON near line 1"},
	    {"", "matrix: invalid JSON near line 1"},
	    {"[]", "matrix: must be a JSON object"},
	};
	char err[MATRIX_ERR_MAX];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		matrix_t *m;

		strcpy(err, "(no message)");
		m = parse_q(cases[i].json, err);
		if (m) {
			matrix_free(m);
			fail_msg("case %zu parsed but must fail with '%s'", i, cases[i].want);
		}
		if (strcmp(err, cases[i].want) != 0)
			fail_msg("case %zu: got '%s', want '%s'", i, err, cases[i].want);
	}
}

/* The pieces themselves make a valid matrix, so each case above fails for its one mistake. */
static void test_matrix_base_of_error_cases_is_valid(void **state)
{
	char err[MATRIX_ERR_MAX] = "";
	matrix_t *m;

	(void)state;
	m = parse_q(HEAD ROLES "," ALLOW "}", err);
	assert_non_null(m);
	matrix_free(m);
	m = parse_q(WITH_PROBE("'ports':[80],'interval_s':86400,'timeout_ms':60000"), err);
	assert_non_null(m);
	assert_int_equal(m->interval_s, 86400);
	assert_int_equal(m->timeout_ms, 60000);
	matrix_free(m);
	m = parse_q(WITH_A(A_BASE ",'tls_ports':[],'silent':false,'probe_allowed':false,"
	                          "'allowed_interval_s':900"),
	            err);
	assert_non_null(m);
	assert_false(m->roles[0].probe_allowed);
	assert_int_equal(m->roles[0].allowed_interval_s, 900);
	matrix_free(m);
}

/* Without "probe" (or some of its keys) the documented defaults apply. */
static void test_matrix_defaults(void **state)
{
	char err[MATRIX_ERR_MAX] = "";
	matrix_t *m;

	(void)state;
	m = parse_q(HEAD ROLES ",'allow':[]}", err);
	assert_non_null(m);
	assert_int_equal(m->probe_ports.n, 0);
	assert_int_equal(m->interval_s, 60);
	assert_int_equal(m->timeout_ms, 2000);
	assert_int_equal(m->n_rules, 0);
	assert_false(m->roles[0].silent);
	assert_true(m->roles[0].probe_allowed);
	assert_int_equal(m->roles[0].allowed_interval_s, 0);
	assert_int_equal(m->roles[0].tls_ports.n, 0);
	matrix_free(m);

	m = parse_q(WITH_PROBE("'interval_s':30"), err);
	assert_non_null(m);
	assert_int_equal(m->interval_s, 30);
	assert_int_equal(m->timeout_ms, 2000);
	assert_int_equal(m->probe_ports.n, 0);
	matrix_free(m);
}

/* Port lists are stored sorted and without repeats, and rules for one pair add up. */
static void test_matrix_ports_sorted_unique_and_rules_union(void **state)
{
	static const uint16_t want[] = {22, 80, 443};
	char err[MATRIX_ERR_MAX] = "";
	matrix_t *m;

	(void)state;
	m = parse_q(HEAD
	            "'probe':{'ports':[443,80,443,22,80]}," ROLES
	            ",'allow':[{'from':'a','to':'b','ports':[80]},"
	            "{'from':'a','to':'b','ports':[443,443]},{'from':'b','to':'b','ports':[1]}]}",
	            err);
	assert_non_null(m);
	assert_ports(&m->probe_ports, want, 3);
	assert_int_equal(m->rules[1].ports.n, 1);
	assert_true(matrix_ports_has(&m->probe_ports, 22));
	assert_true(matrix_ports_has(&m->probe_ports, 443));
	assert_false(matrix_ports_has(&m->probe_ports, 23));
	assert_false(matrix_ports_has(&m->roles[1].tls_ports, 443));
	assert_true(matrix_allows(m, 0, 1, 80));
	assert_true(matrix_allows(m, 0, 1, 443));
	assert_false(matrix_allows(m, 0, 1, 22));
	assert_false(matrix_allows(m, 1, 0, 80));
	assert_true(matrix_allows(m, 1, 1, 1));
	matrix_free(m);
}

/* Builds a matrix whose role `a` has `n` endpoints, ports or a name of `n` characters. */
static char *big_matrix(const char *what, size_t n)
{
	size_t cap = n * 80 + 512;
	char *s = malloc(cap);
	size_t len = 0;
	size_t i;

	assert_non_null(s);
	len += (size_t)snprintf(s + len, cap - len, "{\"version\":1,\"name\":\"t\",\"roles\":{");
	if (strcmp(what, "name") == 0) {
		s[len++] = '"';
		for (i = 0; i < n; i++)
			s[len++] = 'r';
		len += (size_t)snprintf(s + len, cap - len,
		                        "\":{\"endpoints\":[\"e\"],\"ports\":[],\"agent\":true}");
	} else if (strcmp(what, "endpoint") == 0) {
		len += (size_t)snprintf(s + len, cap - len, "\"a\":{\"endpoints\":[\"");
		for (i = 0; i < n; i++)
			s[len++] = 'e';
		len += (size_t)snprintf(s + len, cap - len, "\"],\"ports\":[],\"agent\":true}");
	} else if (strcmp(what, "endpoints") == 0) {
		len += (size_t)snprintf(s + len, cap - len, "\"a\":{\"endpoints\":[");
		for (i = 0; i < n; i++)
			len += (size_t)snprintf(s + len, cap - len, "%s\"e%zu\"", i ? "," : "", i);
		len += (size_t)snprintf(s + len, cap - len, "],\"ports\":[],\"agent\":true}");
	} else if (strcmp(what, "ports") == 0) {
		len += (size_t)snprintf(s + len, cap - len,
		                        "\"a\":{\"endpoints\":[\"e\"],\"ports\":[");
		for (i = 0; i < n; i++)
			len += (size_t)snprintf(s + len, cap - len, "%s%zu", i ? "," : "",
			                        i % 65535 + 1);
		len += (size_t)snprintf(s + len, cap - len, "],\"agent\":true}");
	} else if (strcmp(what, "roles") == 0) {
		for (i = 0; i < n; i++)
			len += (size_t)snprintf(s + len, cap - len,
			                        "%s\"r%zu\":{\"endpoints\":[\"e\"],\"ports\":[],"
			                        "\"agent\":true}",
			                        i ? "," : "", i);
	}
	snprintf(s + len, cap - len, "},\"allow\":[]}");
	return s;
}

static void expect_big(const char *what, size_t n, const char *want)
{
	char err[MATRIX_ERR_MAX] = "";
	char *text = big_matrix(what, n);
	matrix_t *m = matrix_parse(text, strlen(text), err, sizeof(err));

	free(text);
	if (!want) {
		if (!m)
			fail_msg("%s %zu: %s", what, n, err);
		matrix_free(m);
		return;
	}
	assert_null(m);
	assert_string_equal(err, want);
}

/* The MATRIX_MAX_* limits hold, exactly at the bound. */
static void test_matrix_limits(void **state)
{
	(void)state;
	expect_big("name", MATRIX_MAX_NAME, NULL);
	expect_big(
	    "name", MATRIX_MAX_NAME + 1,
	    "roles: role name "
	    "'rrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrr...' is longer "
	    "than 253 characters");
	expect_big("endpoint", MATRIX_MAX_NAME, NULL);
	expect_big("endpoint", MATRIX_MAX_NAME + 1,
	           "roles.a.endpoints[0]: longer than 253 characters");
	expect_big("endpoints", MATRIX_MAX_ENDPOINTS, NULL);
	expect_big("endpoints", MATRIX_MAX_ENDPOINTS + 1,
	           "roles.a.endpoints: more than 64 endpoints");
	expect_big("ports", MATRIX_MAX_PORTS, NULL);
	expect_big("ports", MATRIX_MAX_PORTS + 1, "roles.a.ports: more than 65535 ports");
	expect_big("roles", MATRIX_MAX_ROLES, NULL);
	expect_big("roles", MATRIX_MAX_ROLES + 1, "roles: more than 1024 roles");
}

/* More than MATRIX_MAX_RULES rules are refused; exactly that many load. */
static void test_matrix_rule_limit(void **state)
{
	const char *rule = "{\"from\":\"a\",\"to\":\"a\",\"ports\":[1]}";
	size_t cap = (MATRIX_MAX_RULES + 1) * (strlen(rule) + 1) + 256;
	char err[MATRIX_ERR_MAX] = "";
	char *s = malloc(cap);
	matrix_t *m;
	size_t len;
	size_t i;

	(void)state;
	assert_non_null(s);
	for (int extra = 0; extra <= 1; extra++) {
		len = (size_t)snprintf(
		    s, cap,
		    "{\"version\":1,\"name\":\"t\",\"roles\":{\"a\":{\"endpoints\":"
		    "[\"e\"],\"ports\":[],\"agent\":true}},\"allow\":[");
		for (i = 0; i < (size_t)MATRIX_MAX_RULES + (size_t)extra; i++)
			len += (size_t)snprintf(s + len, cap - len, "%s%s", i ? "," : "", rule);
		snprintf(s + len, cap - len, "]}");
		m = matrix_parse(s, strlen(s), err, sizeof(err));
		if (extra) {
			assert_null(m);
			assert_string_equal(err, "allow: more than 16384 rules");
		} else {
			assert_non_null(m);
			assert_int_equal(m->n_rules, MATRIX_MAX_RULES);
			matrix_free(m);
		}
	}
	free(s);
}

/* matrix_parse() reads exactly `len` bytes: the text need not be NUL-terminated. */
static void test_matrix_parse_uses_length_not_nul(void **state)
{
	const char *doc = "{\"version\":1,\"name\":\"t\",\"roles\":{\"a\":{\"endpoints\":[\"e\"],"
	                  "\"ports\":[],\"agent\":true}},\"allow\":[]}";
	char err[MATRIX_ERR_MAX] = "";
	size_t len = strlen(doc);
	char *buf = malloc(len + 8);
	matrix_t *m;

	(void)state;
	assert_non_null(buf);
	memcpy(buf, doc, len);
	memcpy(buf + len, " garbage", 8); /* beyond len: must not be read */
	m = matrix_parse(buf, len, err, sizeof(err));
	assert_non_null(m);
	matrix_free(m);
	/* Truncated: the text ends inside the document. */
	m = matrix_parse(buf, len - 1, err, sizeof(err));
	assert_null(m);
	assert_string_equal(err, "matrix: invalid JSON near line 1");
	free(buf);
}

static char *write_temp(const char *content, size_t len)
{
	char *path = strdup("/tmp/sgprobe-test-matrix-XXXXXX");
	int fd;

	assert_non_null(path);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, content, len), (ssize_t)len);
	close(fd);
	return path;
}

/* matrix_load() prefixes every message with the path and refuses unreadable or huge files. */
static void test_matrix_load_errors_name_the_file(void **state)
{
	char err[MATRIX_ERR_MAX];
	char want[MATRIX_ERR_MAX + 64];
	char *big;
	char *path;

	(void)state;
	assert_null(matrix_load("examples/no-such.matrix.json", err, sizeof(err)));
	assert_string_equal(err, "examples/no-such.matrix.json: cannot read: No such file or "
	                         "directory");
	assert_null(matrix_load("examples", err, sizeof(err)));
	assert_string_equal(err, "examples: cannot read: Is a directory");

	path = write_temp("{\"version\":1,\n\"name\":", 21);
	assert_null(matrix_load(path, err, sizeof(err)));
	snprintf(want, sizeof(want), "%s: invalid JSON near line 2", path);
	assert_string_equal(err, want);
	unlink(path);
	free(path);

	path = write_temp("{\"version\":1,\"name\":\"t\",\"roles\":{},\"allow\":[]}",
	                  strlen("{\"version\":1,\"name\":\"t\",\"roles\":{},\"allow\":[]}"));
	assert_null(matrix_load(path, err, sizeof(err)));
	snprintf(want, sizeof(want), "%s: roles: must name at least one role", path);
	assert_string_equal(err, want);
	unlink(path);
	free(path);

	/* One byte over the limit, of valid JSON whitespace before a valid document. */
	big = malloc(MATRIX_MAX_FILE_BYTES + 1);
	assert_non_null(big);
	memset(big, ' ', MATRIX_MAX_FILE_BYTES + 1);
	big[MATRIX_MAX_FILE_BYTES - 1] = '{';
	big[MATRIX_MAX_FILE_BYTES] = '}';
	path = write_temp(big, MATRIX_MAX_FILE_BYTES + 1);
	assert_null(matrix_load(path, err, sizeof(err)));
	snprintf(want, sizeof(want), "%s: larger than the limit of 4194304 bytes", path);
	assert_string_equal(err, want);
	unlink(path);
	free(path);

	assert_null(matrix_parse(big, MATRIX_MAX_FILE_BYTES + 1, err, sizeof(err)));
	assert_string_equal(err, "matrix: 4194305 bytes exceeds the limit of 4194304");
	free(big);
}

static const matrix_target_t *find(const matrix_plan_t *p, const char *dst, const char *target,
                                   uint16_t port)
{
	size_t i;

	for (i = 0; i < p->n_targets; i++) {
		const matrix_target_t *t = &p->targets[i];

		if (strcmp(t->dst_role, dst) == 0 && strcmp(t->target, target) == 0 &&
		    t->port == port)
			return t;
	}
	fail_msg("no target %s %s:%u", dst, target, port);
	return NULL;
}

static size_t count_expected(const matrix_plan_t *p, verdict_expect_t e)
{
	size_t i;
	size_t n = 0;

	for (i = 0; i < p->n_targets; i++)
		n += p->targets[i].expected == e;
	return n;
}

/* Every plan is ordered by role (file order), endpoint, port, and agrees with matrix_allows(). */
static void assert_plan_consistent(const matrix_t *m, const matrix_plan_t *p)
{
	size_t src = idx(m, p->role);
	size_t i;

	for (i = 0; i < p->n_targets; i++) {
		const matrix_target_t *t = &p->targets[i];
		size_t d = idx(m, t->dst_role);

		assert_int_equal(t->expected, matrix_allows(m, src, d, t->port)
		                                  ? VERDICT_EXPECT_ALLOW
		                                  : VERDICT_EXPECT_DENY);
		if (i > 0) {
			const matrix_target_t *prev = &p->targets[i - 1];
			size_t pd = idx(m, prev->dst_role);

			assert_true(pd <= d);
			if (pd == d && strcmp(prev->target, t->target) == 0)
				assert_true(prev->port < t->port);
		}
	}
}

/* main-backend's plan, counted by hand from examples/afirgen.matrix.json. */
static void test_matrix_plan_main_backend(void **state)
{
	static const uint16_t own_ports[] = {80, 443, 2049, 3306, 8000, 8001, 8002};
	char err[MATRIX_ERR_MAX] = "";
	matrix_t *m = load_ok(AFIRGEN);
	matrix_plan_t *p;
	const matrix_target_t *t;
	size_t i;

	(void)state;
	p = matrix_plan_for_role(m, "main-backend", NULL, err, sizeof(err));
	assert_non_null(p);
	assert_string_equal(p->matrix, "afirgen-prod");
	assert_string_equal(p->role, "main-backend");
	assert_int_equal(p->interval_s, 60);
	assert_int_equal(p->timeout_ms, 2000);
	/* 11 roles × the 7 probe ports (each role's ports are among them), plus the
	 * collector's 7 + 9443. */
	assert_int_equal(p->n_targets, 85);
	/* alb:443, gguf:8001, asr:8002, rds:3306, efs:2049, vpce:443, internet:443, collector:9443. */
	assert_int_equal(count_expected(p, VERDICT_EXPECT_ALLOW), 8);
	assert_int_equal(count_expected(p, VERDICT_EXPECT_DENY), 77);
	assert_plan_consistent(m, p);

	/* The first destination in file order is alb, ports ascending. */
	assert_string_equal(p->targets[0].dst_role, "alb");
	assert_int_equal(p->targets[0].port, 80);
	assert_string_equal(p->targets[84].dst_role, "sgprobe-collector");
	assert_int_equal(p->targets[84].port, 9443);

	t = find(p, "rds-mysql", "db.afirgen.internal", 3306);
	assert_int_equal(t->expected, VERDICT_EXPECT_ALLOW);
	assert_int_equal(t->interval_s, 900);
	assert_true(t->probe);
	assert_false(t->tls);
	assert_false(t->silent);
	t = find(p, "rds-mysql", "db.afirgen.internal", 8000);
	assert_int_equal(t->expected, VERDICT_EXPECT_DENY);
	assert_int_equal(t->interval_s, 60); /* denied paths keep the default */

	t = find(p, "vpc-endpoints", "vpce.afirgen.internal", 443);
	assert_int_equal(t->expected, VERDICT_EXPECT_ALLOW);
	assert_true(t->tls);
	assert_false(t->silent);
	assert_int_equal(t->interval_s, 60);
	t = find(p, "vpc-endpoints", "vpce.afirgen.internal", 80);
	assert_int_equal(t->expected, VERDICT_EXPECT_DENY);
	assert_false(t->tls);
	assert_true(t->silent);

	t = find(p, "alb", "alb.afirgen.internal", 8000);
	assert_int_equal(t->expected, VERDICT_EXPECT_DENY);
	assert_true(t->silent);
	t = find(p, "alb", "alb.afirgen.internal", 443);
	assert_int_equal(t->expected, VERDICT_EXPECT_ALLOW);
	assert_false(t->silent);
	t = find(p, "alb", "alb.afirgen.internal", 80);
	assert_int_equal(t->expected, VERDICT_EXPECT_DENY);
	assert_false(t->silent); /* alb serves 80: a timeout there is meaningful */

	t = find(p, "sgprobe-collector", "collector.afirgen.internal", 9443);
	assert_int_equal(t->expected, VERDICT_EXPECT_ALLOW);

	/* Its own role: other tasks of main-backend, every probe port denied. */
	for (i = 0; i < 7; i++) {
		t = find(p, "main-backend", "backend.afirgen.internal", own_ports[i]);
		assert_int_equal(t->expected, VERDICT_EXPECT_DENY);
		assert_true(t->probe);
	}
	matrix_plan_free(p);

	/* Its own address is skipped: the 7 main-backend targets go. */
	p = matrix_plan_for_role(m, "main-backend", "backend.afirgen.internal", err, sizeof(err));
	assert_non_null(p);
	assert_int_equal(p->n_targets, 78);
	for (i = 0; i < p->n_targets; i++)
		assert_string_not_equal(p->targets[i].dst_role, "main-backend");
	matrix_plan_free(p);

	/* The strict variant denies the 0.0.0.0/0 paths. */
	matrix_free(m);
	m = load_ok(AFIRGEN_STRICT);
	p = matrix_plan_for_role(m, "main-backend", NULL, err, sizeof(err));
	assert_non_null(p);
	assert_int_equal(p->n_targets, 85);
	assert_int_equal(count_expected(p, VERDICT_EXPECT_ALLOW), 6);
	assert_int_equal(find(p, "alb", "alb.afirgen.internal", 443)->expected,
	                 VERDICT_EXPECT_DENY);
	assert_int_equal(find(p, "internet", "198.18.0.250", 443)->expected, VERDICT_EXPECT_DENY);
	assert_plan_consistent(m, p);
	matrix_plan_free(p);
	matrix_free(m);
}

/* The internet role's own IP-literal endpoint is skipped, in any equivalent notation. */
static void test_matrix_plan_skips_own_ip_address(void **state)
{
	static const char *const own[] = {"198.18.0.250", "::ffff:198.18.0.250",
	                                  "0:0:0:0:0:ffff:c612:00fa"};
	char err[MATRIX_ERR_MAX] = "";
	matrix_t *m = load_ok(AFIRGEN);
	matrix_plan_t *p;
	size_t i;
	size_t j;

	(void)state;
	p = matrix_plan_for_role(m, "internet", NULL, err, sizeof(err));
	assert_non_null(p);
	assert_int_equal(p->n_targets, 85);
	/* internet → alb on 80 and 443, nothing else. */
	assert_int_equal(count_expected(p, VERDICT_EXPECT_ALLOW), 2);
	assert_int_equal(find(p, "alb", "alb.afirgen.internal", 80)->expected,
	                 VERDICT_EXPECT_ALLOW);
	assert_plan_consistent(m, p);
	matrix_plan_free(p);

	for (i = 0; i < sizeof(own) / sizeof(own[0]); i++) {
		p = matrix_plan_for_role(m, "internet", own[i], err, sizeof(err));
		assert_non_null(p);
		assert_int_equal(p->n_targets, 78);
		for (j = 0; j < p->n_targets; j++)
			assert_string_not_equal(p->targets[j].target, "198.18.0.250");
		matrix_plan_free(p);
	}

	/* A different address skips nothing. */
	p = matrix_plan_for_role(m, "internet", "198.18.0.251", err, sizeof(err));
	assert_non_null(p);
	assert_int_equal(p->n_targets, 85);
	matrix_plan_free(p);
	matrix_free(m);
}

/* probe_allowed false: allowed paths towards it are not probed, denied ones still are. */
static void test_matrix_plan_probe_allowed_false(void **state)
{
	char err[MATRIX_ERR_MAX] = "";
	matrix_t *m;
	matrix_plan_t *p;
	const matrix_target_t *t;

	(void)state;
	m = parse_q("{'version':1,'name':'pa','probe':{'ports':[22],'interval_s':30},'roles':{"
	            "'app':{'endpoints':['app.example','10.0.0.1'],'ports':[8080],'agent':true},"
	            "'db':{'endpoints':['db.example','2001:db8::7'],'ports':[3306,3307],"
	            "'agent':false,'probe_allowed':false,'allowed_interval_s':600,"
	            "'tls_ports':[3307]}},"
	            "'allow':[{'from':'app','to':'db','ports':[3306,3307]}]}",
	            err);
	if (!m)
		fail_msg("%s", err);
	p = matrix_plan_for_role(m, "app", "10.0.0.1", err, sizeof(err));
	assert_non_null(p);
	/* app.example × {22, 8080}, then 2 db endpoints × {22, 3306, 3307}. */
	assert_int_equal(p->n_targets, 2 + 6);
	assert_plan_consistent(m, p);
	t = find(p, "db", "db.example", 3306);
	assert_int_equal(t->expected, VERDICT_EXPECT_ALLOW);
	assert_false(t->probe);
	assert_int_equal(t->interval_s, 600);
	t = find(p, "db", "2001:db8::7", 3307);
	assert_false(t->probe);
	assert_true(t->tls);
	t = find(p, "db", "db.example", 22);
	assert_int_equal(t->expected, VERDICT_EXPECT_DENY);
	assert_true(t->probe);
	assert_int_equal(t->interval_s, 30);
	t = find(p, "app", "app.example", 8080);
	assert_int_equal(t->expected, VERDICT_EXPECT_DENY);
	assert_true(t->probe);
	matrix_plan_free(p);

	/* An IPv6 endpoint written differently is still the agent's own address. */
	p = matrix_plan_for_role(m, "db", "2001:DB8:0:0::7", err, sizeof(err));
	assert_non_null(p);
	assert_int_equal(p->n_targets, 2 * 2 + 3);
	assert_string_equal(p->targets[p->n_targets - 1].target, "db.example");
	matrix_plan_free(p);
	matrix_free(m);
}

/*
 * Allowed ports are always planned: a rule's port is probed towards its
 * destination even when neither that role's ports nor probe.ports list it,
 * and only towards that destination.
 */
static void test_matrix_plan_allowed_ports_always_planned(void **state)
{
	char err[MATRIX_ERR_MAX] = "";
	matrix_t *m;
	matrix_plan_t *p;
	const matrix_target_t *t;

	(void)state;
	m = parse_q("{'version':1,'name':'ap','probe':{'ports':[22]},'roles':{"
	            "'a':{'endpoints':['a.example'],'ports':[],'agent':true},"
	            "'b':{'endpoints':['b.example'],'ports':[],'agent':false},"
	            "'c':{'endpoints':['c.example'],'ports':[],'agent':false}},"
	            "'allow':[{'from':'a','to':'b','ports':[9999]}]}",
	            err);
	if (!m)
		fail_msg("%s", err);
	p = matrix_plan_for_role(m, "a", NULL, err, sizeof(err));
	assert_non_null(p);
	/* a, b and c on 22; b also on 9999. */
	assert_int_equal(p->n_targets, 4);
	assert_plan_consistent(m, p);
	t = find(p, "b", "b.example", 9999);
	assert_int_equal(t->expected, VERDICT_EXPECT_ALLOW);
	assert_true(t->probe);
	assert_int_equal(find(p, "b", "b.example", 22)->expected, VERDICT_EXPECT_DENY);
	assert_int_equal(find(p, "c", "c.example", 22)->expected, VERDICT_EXPECT_DENY);
	matrix_plan_free(p);

	/* Another source, which no rule allows to b, does not probe 9999. */
	p = matrix_plan_for_role(m, "b", NULL, err, sizeof(err));
	assert_non_null(p);
	assert_int_equal(p->n_targets, 3);
	assert_int_equal(count_expected(p, VERDICT_EXPECT_ALLOW), 0);
	matrix_plan_free(p);
	matrix_free(m);

	/* With no probe ports and no role ports, the allowed port is the whole plan. */
	m = parse_q("{'version':1,'name':'ap','probe':{'ports':[]},'roles':{"
	            "'a':{'endpoints':['a.example'],'ports':[],'agent':true},"
	            "'b':{'endpoints':['b.example','198.18.0.9'],'ports':[],'agent':false}},"
	            "'allow':[{'from':'a','to':'b','ports':[9999]}]}",
	            err);
	if (!m)
		fail_msg("%s", err);
	p = matrix_plan_for_role(m, "a", NULL, err, sizeof(err));
	assert_non_null(p);
	assert_int_equal(p->n_targets, 2);
	assert_int_equal(find(p, "b", "b.example", 9999)->expected, VERDICT_EXPECT_ALLOW);
	assert_int_equal(find(p, "b", "198.18.0.9", 9999)->expected, VERDICT_EXPECT_ALLOW);
	matrix_plan_free(p);
	matrix_free(m);
}

/* An unknown role has no plan, and the message says which matrix was asked. */
static void test_matrix_plan_unknown_role(void **state)
{
	char err[MATRIX_ERR_MAX] = "";
	matrix_t *m = load_ok(AFIRGEN);

	(void)state;
	assert_null(matrix_plan_for_role(m, "rds", NULL, err, sizeof(err)));
	assert_string_equal(err, "role 'rds' is not in matrix 'afirgen-prod'");
	matrix_free(m);
}

/* The plan owns its strings: it outlives the matrix it came from. */
static void test_matrix_plan_outlives_matrix(void **state)
{
	char err[MATRIX_ERR_MAX] = "";
	matrix_t *m = load_ok(AFIRGEN);
	matrix_plan_t *p = matrix_plan_for_role(m, "backup", NULL, err, sizeof(err));

	(void)state;
	assert_non_null(p);
	matrix_free(m);
	assert_string_equal(p->matrix, "afirgen-prod");
	assert_string_equal(p->role, "backup");
	assert_string_equal(p->targets[0].dst_role, "alb");
	assert_string_equal(p->targets[0].target, "alb.afirgen.internal");
	matrix_plan_free(p);
	matrix_plan_free(NULL);
	matrix_free(NULL);
}

/* A small file must not multiply into a plan that exhausts memory: 3 roles × 64
 * endpoints × 600 ports is 115,200 probes, over the limit of 100,000. */
static void test_matrix_plan_size_is_bounded(void **state)
{
	char err[MATRIX_ERR_MAX] = "";
	size_t cap = 1u << 20, len = 0, r, e, p;
	char *text = malloc(cap);
	matrix_plan_t *plan;
	matrix_t *m;

	(void)state;
	assert_non_null(text);
	len += (size_t)snprintf(text + len, cap - len,
	                        "{\"version\":1,\"name\":\"big\",\"probe\":{\"ports\":[");
	for (p = 0; p < 600; p++)
		len += (size_t)snprintf(text + len, cap - len, "%s%zu", p ? "," : "", p + 1);
	len += (size_t)snprintf(text + len, cap - len, "]},\"roles\":{");
	for (r = 0; r < 3; r++) {
		len += (size_t)snprintf(text + len, cap - len, "%s\"r%zu\":{\"endpoints\":[",
		                        r ? "," : "", r);
		for (e = 0; e < 64; e++)
			len += (size_t)snprintf(text + len, cap - len, "%s\"h%zu.r%zu\"",
			                        e ? "," : "", e, r);
		len += (size_t)snprintf(text + len, cap - len, "],\"ports\":[],\"agent\":true}");
	}
	len += (size_t)snprintf(text + len, cap - len, "},\"allow\":[]}");
	m = matrix_parse(text, len, err, sizeof(err));
	free(text);
	if (!m)
		fail_msg("%s", err);
	plan = matrix_plan_for_role(m, "r0", NULL, err, sizeof(err));
	assert_null(plan);
	assert_string_equal(err,
	                    "role 'r0': its plan would hold at least 115200 probes, more than the "
	                    "limit of 100000");
	/* Skipping the agent's own endpoint leaves 114,600: still refused. */
	plan = matrix_plan_for_role(m, "r0", "h0.r0", err, sizeof(err));
	assert_null(plan);
	assert_string_equal(err,
	                    "role 'r0': its plan would hold at least 114600 probes, more than the "
	                    "limit of 100000");
	matrix_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_matrix_loads_afirgen_example),
	    cmocka_unit_test(test_matrix_loads_afirgen_strict_example),
	    cmocka_unit_test(test_matrix_rejects_each_error_with_its_message),
	    cmocka_unit_test(test_matrix_base_of_error_cases_is_valid),
	    cmocka_unit_test(test_matrix_defaults),
	    cmocka_unit_test(test_matrix_ports_sorted_unique_and_rules_union),
	    cmocka_unit_test(test_matrix_limits),
	    cmocka_unit_test(test_matrix_rule_limit),
	    cmocka_unit_test(test_matrix_parse_uses_length_not_nul),
	    cmocka_unit_test(test_matrix_load_errors_name_the_file),
	    cmocka_unit_test(test_matrix_plan_main_backend),
	    cmocka_unit_test(test_matrix_plan_skips_own_ip_address),
	    cmocka_unit_test(test_matrix_plan_probe_allowed_false),
	    cmocka_unit_test(test_matrix_plan_allowed_ports_always_planned),
	    cmocka_unit_test(test_matrix_plan_unknown_role),
	    cmocka_unit_test(test_matrix_plan_outlives_matrix),
	    cmocka_unit_test(test_matrix_plan_size_is_bounded),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
