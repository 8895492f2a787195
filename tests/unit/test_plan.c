/*
 * Unit tests of lib/plan.c: a plan the collector encodes is the plan the agent
 * decodes, field by field; every known field is validated with a message
 * naming it; unknown fields are ignored; the limits hold. Run from the
 * repository root (relative paths).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "sgprobe/matrix.h"
#include "sgprobe/plan.h"

#define AFIRGEN "examples/afirgen.matrix.json"

/* Decodes JSON written with single quotes: every ' becomes ". */
static matrix_plan_t *decode_q(const char *q, char *err)
{
	char *text = strdup(q);
	matrix_plan_t *plan;
	size_t i;

	assert_non_null(text);
	for (i = 0; text[i]; i++) {
		if (text[i] == '\'')
			text[i] = '"';
	}
	plan = plan_decode(text, strlen(text), err, PLAN_ERR_MAX);
	free(text);
	return plan;
}

static matrix_plan_t *decode_ok(const char *q)
{
	char err[PLAN_ERR_MAX] = "";
	matrix_plan_t *plan = decode_q(q, err);

	if (!plan)
		fail_msg("plan refused: %s", err);
	assert_string_equal(err, "");
	return plan;
}

static void assert_plans_equal(const matrix_plan_t *a, const matrix_plan_t *b)
{
	size_t i;

	assert_string_equal(a->matrix, b->matrix);
	assert_string_equal(a->role, b->role);
	assert_int_equal(a->interval_s, b->interval_s);
	assert_int_equal(a->timeout_ms, b->timeout_ms);
	assert_int_equal(a->n_targets, b->n_targets);
	for (i = 0; i < a->n_targets; i++) {
		const matrix_target_t *x = &a->targets[i];
		const matrix_target_t *y = &b->targets[i];

		assert_string_equal(x->dst_role, y->dst_role);
		assert_string_equal(x->target, y->target);
		assert_int_equal(x->port, y->port);
		assert_int_equal(x->expected, y->expected);
		assert_int_equal(x->tls, y->tls);
		assert_int_equal(x->silent, y->silent);
		assert_int_equal(x->probe, y->probe);
		assert_int_equal(x->interval_s, y->interval_s);
	}
}

/* Encodes and decodes `plan`, asserts every field came back, frees the copy. */
static void assert_round_trip(const matrix_plan_t *plan)
{
	char err[PLAN_ERR_MAX] = "";
	matrix_plan_t *back;
	char *json;

	json = plan_encode(plan);
	assert_non_null(json);
	back = plan_decode(json, strlen(json), err, sizeof(err));
	if (!back)
		fail_msg("%s: %s", plan->role, err);
	assert_plans_equal(plan, back);
	matrix_plan_free(back);
	free(json);
}

/* What a set of plans exercises: so that the round trip is known to cover each value. */
typedef struct {
	size_t allow, deny, tls, silent, no_probe, long_interval;
} coverage_t;

static void count(coverage_t *cov, const matrix_plan_t *plan)
{
	size_t i;

	for (i = 0; i < plan->n_targets; i++) {
		const matrix_target_t *t = &plan->targets[i];

		cov->allow += t->expected == VERDICT_EXPECT_ALLOW;
		cov->deny += t->expected == VERDICT_EXPECT_DENY;
		cov->tls += t->tls;
		cov->silent += t->silent;
		cov->no_probe += !t->probe;
		cov->long_interval += t->interval_s != plan->interval_s;
	}
}

/* The AFIRGen plans of several roles come back field by field. */
static void test_plan_round_trip_afirgen_roles(void **state)
{
	static const char *const roles[] = {"nginx",    "main-backend", "backup",
	                                    "internet", "rds-mysql",    "gguf-model-server"};
	char err[MATRIX_ERR_MAX] = "";
	coverage_t cov = {0};
	matrix_plan_t *plan;
	matrix_t *m;
	size_t i;

	(void)state;
	m = matrix_load(AFIRGEN, err, sizeof(err));
	if (!m)
		fail_msg("%s", err);
	for (i = 0; i < sizeof(roles) / sizeof(roles[0]); i++) {
		plan = matrix_plan_for_role(m, roles[i], NULL, err, sizeof(err));
		if (!plan)
			fail_msg("%s: %s", roles[i], err);
		assert_true(plan->n_targets > 0);
		count(&cov, plan);
		assert_round_trip(plan);
		matrix_plan_free(plan);
	}
	/* An agent's own address skipped: a shorter plan, still the same after the trip. */
	plan = matrix_plan_for_role(m, "nginx", "nginx.afirgen.internal", err, sizeof(err));
	assert_non_null(plan);
	assert_round_trip(plan);
	matrix_plan_free(plan);
	matrix_free(m);

	/* allow and deny, TLS (vpc-endpoints:443), silent (alb, vpc-endpoints), RDS's 900 s. */
	assert_true(cov.allow > 0);
	assert_true(cov.deny > 0);
	assert_true(cov.tls > 0);
	assert_true(cov.silent > 0);
	assert_true(cov.long_interval > 0);
}

/* probe:false, IPv6 and zone endpoints, odd intervals: every value survives the trip. */
static void test_plan_round_trip_every_value(void **state)
{
	static const char matrix[] =
	    "{\"version\":1,\"name\":\"edge cases \\u00e9\",\"probe\":{\"ports\":[1,65535],"
	    "\"interval_s\":86400,\"timeout_ms\":1},"
	    "\"roles\":{"
	    "\"src\":{\"endpoints\":[\"fe80::1%eth0\",\"10.0.0.1\"],\"ports\":[22],\"agent\":true},"
	    "\"db\":{\"endpoints\":[\"2001:db8::5\"],\"ports\":[3306,1],\"agent\":false,"
	    "\"probe_allowed\":false,\"silent\":true,\"tls_ports\":[3306,1],"
	    "\"allowed_interval_s\":1}},"
	    "\"allow\":[{\"from\":\"src\",\"to\":\"db\",\"ports\":[3306,1]}]}";
	char err[MATRIX_ERR_MAX] = "";
	coverage_t cov = {0};
	matrix_plan_t *plan;
	matrix_t *m;

	(void)state;
	m = matrix_parse(matrix, strlen(matrix), err, sizeof(err));
	if (!m)
		fail_msg("%s", err);
	plan = matrix_plan_for_role(m, "src", NULL, err, sizeof(err));
	assert_non_null(plan);
	count(&cov, plan);
	assert_true(cov.no_probe > 0);
	assert_true(cov.tls > 0);
	assert_true(cov.silent > 0);
	assert_true(cov.long_interval > 0);
	assert_round_trip(plan);
	matrix_plan_free(plan);
	matrix_free(m);
}

/* The wire format: field names, order, compact JSON. */
static void test_plan_encode_exact_json(void **state)
{
	matrix_target_t targets[2] = {
	    {.dst_role = "vpc-endpoints",
	     .target = "vpce.afirgen.internal",
	     .port = 443,
	     .expected = VERDICT_EXPECT_ALLOW,
	     .tls = true,
	     .silent = false,
	     .probe = true,
	     .interval_s = 60},
	    {.dst_role = "rds-mysql",
	     .target = "db.afirgen.internal",
	     .port = 3306,
	     .expected = VERDICT_EXPECT_DENY,
	     .tls = false,
	     .silent = true,
	     .probe = false,
	     .interval_s = 900},
	};
	matrix_plan_t plan = {.matrix = "afirgen-prod",
	                      .role = "main-backend",
	                      .interval_s = 60,
	                      .timeout_ms = 2000,
	                      .targets = targets,
	                      .n_targets = 2};
	char *json;

	(void)state;
	json = plan_encode(&plan);
	assert_non_null(json);
	assert_string_equal(
	    json,
	    "{\"schema\":\"sgprobe.plan/v1\",\"matrix\":\"afirgen-prod\",\"role\":\"main-backend\","
	    "\"interval_s\":60,\"timeout_ms\":2000,\"targets\":["
	    "{\"dst_role\":\"vpc-endpoints\",\"target\":\"vpce.afirgen.internal\",\"port\":443,"
	    "\"expected\":\"allow\",\"tls\":true,\"interval_s\":60,\"silent\":false,"
	    "\"probe\":true},"
	    "{\"dst_role\":\"rds-mysql\",\"target\":\"db.afirgen.internal\",\"port\":3306,"
	    "\"expected\":\"deny\",\"tls\":false,\"interval_s\":900,\"silent\":true,"
	    "\"probe\":false}]}");
	free(json);

	/* No targets: an empty array. */
	plan.n_targets = 0;
	plan.targets = NULL;
	json = plan_encode(&plan);
	assert_non_null(json);
	assert_non_null(strstr(json, "\"targets\":[]"));
	free(json);
}

/* What cannot be decoded is not encoded either. */
static void test_plan_encode_refuses_incomplete(void **state)
{
	matrix_target_t t = {.dst_role = "a",
	                     .target = "a.example",
	                     .port = 80,
	                     .expected = VERDICT_EXPECT_ALLOW,
	                     .probe = true,
	                     .interval_s = 60};
	matrix_plan_t plan = {.matrix = "m",
	                      .role = "r",
	                      .interval_s = 60,
	                      .timeout_ms = 2000,
	                      .targets = &t,
	                      .n_targets = 1};
	char *json;

	(void)state;
	json = plan_encode(&plan);
	assert_non_null(json);
	free(json);
	assert_null(plan_encode(NULL));
	plan.role = NULL;
	assert_null(plan_encode(&plan));
	plan.role = "r";
	t.port = 0;
	assert_null(plan_encode(&plan));
	t.port = 80;
	t.target = NULL;
	assert_null(plan_encode(&plan));
	t.target = "a.example";
	t.expected = (verdict_expect_t)7;
	assert_null(plan_encode(&plan));
	t.expected = VERDICT_EXPECT_DENY;
	plan.targets = NULL;
	assert_null(plan_encode(&plan));
}

/* A plan written to DESIGN.md's list (no silent, no probe) decodes with the defaults. */
static void test_plan_decode_defaults(void **state)
{
	matrix_plan_t *plan = decode_ok(
	    "{'schema':'sgprobe.plan/v1','matrix':'afirgen-prod','role':'nginx','interval_s':60,"
	    "'timeout_ms':2000,'targets':[{'dst_role':'main-backend','target':"
	    "'backend.afirgen.internal','port':8000,'expected':'allow','tls':false,'interval_s':60}"
	    ","
	    "{'dst_role':'alb','target':'alb.afirgen.internal','port':8000,'expected':'deny',"
	    "'tls':false,'interval_s':60,'silent':true,'probe':false}]}");

	(void)state;
	assert_string_equal(plan->matrix, "afirgen-prod");
	assert_string_equal(plan->role, "nginx");
	assert_int_equal(plan->interval_s, 60);
	assert_int_equal(plan->timeout_ms, 2000);
	assert_int_equal(plan->n_targets, 2);
	assert_string_equal(plan->targets[0].dst_role, "main-backend");
	assert_string_equal(plan->targets[0].target, "backend.afirgen.internal");
	assert_int_equal(plan->targets[0].port, 8000);
	assert_int_equal(plan->targets[0].expected, VERDICT_EXPECT_ALLOW);
	assert_false(plan->targets[0].tls);
	assert_false(plan->targets[0].silent);
	assert_true(plan->targets[0].probe);
	assert_int_equal(plan->targets[1].expected, VERDICT_EXPECT_DENY);
	assert_true(plan->targets[1].silent);
	assert_false(plan->targets[1].probe);
	matrix_plan_free(plan);

	plan = decode_ok("{'schema':'sgprobe.plan/v1','matrix':'m','role':'r','interval_s':1,"
	                 "'timeout_ms':60000,'targets':[]}");
	assert_int_equal(plan->n_targets, 0);
	assert_null(plan->targets);
	matrix_plan_free(plan);
}

/* Pieces of a valid plan, from which the error cases below are built. */
#define HEAD "'schema':'sgprobe.plan/v1','matrix':'m','role':'r','interval_s':60,'timeout_ms':2000"
#define T_OK                                                                                       \
	"{'dst_role':'d','target':'d.example','port':80,'expected':'deny','tls':false,'interval_"  \
	"s':60}"
#define PLAN(targets) "{" HEAD ",'targets':[" T_OK "," targets "]}"
/* A plan whose second target's fields are `f`. */
#define TARGET(f) PLAN("{" f "}")
#define T_DST     "'dst_role':'d'"
#define T_TGT     "'target':'d.example'"
#define T_PORT    "'port':80"
#define T_EXP     "'expected':'deny'"
#define T_TLS     "'tls':false"
#define T_IV      "'interval_s':60"

static const char *const role_msg =
    ": must be a role name (at most 253 of A-Z, a-z, 0-9, '.', '_', '-')";

/* Every wrong field is refused with a message naming it. */
static void test_plan_rejects_each_error_with_its_message(void **state)
{
	static const struct {
		const char *json;
		const char *want;
	} cases[] = {
	    /* The document. */
	    {"", "plan: invalid JSON near line 1"},
	    {"{'schema':\n'sgprobe.plan/v1',\n}", "plan: invalid JSON near line 3"},
	    {"[]", "plan: must be a JSON object"},
	    {"{'matrix':'m'}", "schema: required"},
	    {"{'schema':'sgprobe.plan/v2'}", "schema: must be \"sgprobe.plan/v1\""},
	    {"{'schema':'sgprobe.report/v1'}", "schema: must be \"sgprobe.plan/v1\""},
	    {"{'schema':1}", "schema: must be \"sgprobe.plan/v1\""},
	    {"{'schema':'sgprobe.plan/v1','role':'r'}", "matrix: required"},
	    {"{'schema':'sgprobe.plan/v1','matrix':'','role':'r'}",
	     "matrix: must be a non-empty string of at most 253 bytes"},
	    {"{'schema':'sgprobe.plan/v1','matrix':3,'role':'r'}",
	     "matrix: must be a non-empty string of at most 253 bytes"},
	    {"{'schema':'sgprobe.plan/v1','matrix':'m'}", "role: required"},
	    {"{'schema':'sgprobe.plan/v1','matrix':'m','role':null}", "role: required"},
	    {"{'schema':'sgprobe.plan/v1','matrix':'m','role':'a b'}", "role"},
	    {"{'schema':'sgprobe.plan/v1','matrix':'m','role':'r','timeout_ms':1}",
	     "interval_s: required"},
	    {"{'schema':'sgprobe.plan/v1','matrix':'m','role':'r','interval_s':0}",
	     "interval_s: must be an integer in 1-86400"},
	    {"{'schema':'sgprobe.plan/v1','matrix':'m','role':'r','interval_s':86401}",
	     "interval_s: must be an integer in 1-86400"},
	    {"{'schema':'sgprobe.plan/v1','matrix':'m','role':'r','interval_s':'60'}",
	     "interval_s: must be an integer in 1-86400"},
	    {"{'schema':'sgprobe.plan/v1','matrix':'m','role':'r','interval_s':60}",
	     "timeout_ms: required"},
	    {"{'schema':'sgprobe.plan/v1','matrix':'m','role':'r','interval_s':60,'timeout_ms':0}",
	     "timeout_ms: must be an integer in 1-60000"},
	    {"{'schema':'sgprobe.plan/v1','matrix':'m','role':'r','interval_s':60,"
	     "'timeout_ms':60001}",
	     "timeout_ms: must be an integer in 1-60000"},
	    {"{'schema':'sgprobe.plan/v1','matrix':'m','role':'r','interval_s':60,"
	     "'timeout_ms':2.5}",
	     "timeout_ms: must be an integer in 1-60000"},
	    {"{" HEAD "}", "targets: required"},
	    {"{" HEAD ",'targets':null}", "targets: required"},
	    {"{" HEAD ",'targets':{}}", "targets: must be an array"},
	    /* A target. */
	    {PLAN("7"), "targets[1]: must be an object"},
	    {TARGET(T_TGT "," T_PORT "," T_EXP "," T_TLS "," T_IV),
	     "targets[1].dst_role: required"},
	    {TARGET("'dst_role':''," T_TGT "," T_PORT "," T_EXP "," T_TLS "," T_IV),
	     "targets[1].dst_role"},
	    {TARGET("'dst_role':'d/e'," T_TGT "," T_PORT "," T_EXP "," T_TLS "," T_IV),
	     "targets[1].dst_role"},
	    {TARGET(T_DST "," T_PORT "," T_EXP "," T_TLS "," T_IV), "targets[1].target: required"},
	    {TARGET(T_DST ",'target':'a b'," T_PORT "," T_EXP "," T_TLS "," T_IV),
	     "targets[1].target: must be a DNS name or an IP address (at most 253 of A-Z, a-z, "
	     "0-9, '.', '_', '-', ':', '%')"},
	    {TARGET(T_DST ",'target':''," T_PORT "," T_EXP "," T_TLS "," T_IV),
	     "targets[1].target: must be a DNS name or an IP address (at most 253 of A-Z, a-z, "
	     "0-9, '.', '_', '-', ':', '%')"},
	    {TARGET(T_DST "," T_TGT "," T_EXP "," T_TLS "," T_IV), "targets[1].port: required"},
	    {TARGET(T_DST "," T_TGT ",'port':0," T_EXP "," T_TLS "," T_IV),
	     "targets[1].port: must be an integer in 1-65535"},
	    {TARGET(T_DST "," T_TGT ",'port':65536," T_EXP "," T_TLS "," T_IV),
	     "targets[1].port: must be an integer in 1-65535"},
	    {TARGET(T_DST "," T_TGT ",'port':80.5," T_EXP "," T_TLS "," T_IV),
	     "targets[1].port: must be an integer in 1-65535"},
	    {TARGET(T_DST "," T_TGT ",'port':'80'," T_EXP "," T_TLS "," T_IV),
	     "targets[1].port: must be an integer in 1-65535"},
	    {TARGET(T_DST "," T_TGT "," T_PORT "," T_TLS "," T_IV),
	     "targets[1].expected: required"},
	    {TARGET(T_DST "," T_TGT "," T_PORT ",'expected':'ok'," T_TLS "," T_IV),
	     "targets[1].expected: must be \"allow\" or \"deny\""},
	    {TARGET(T_DST "," T_TGT "," T_PORT ",'expected':true," T_TLS "," T_IV),
	     "targets[1].expected: must be \"allow\" or \"deny\""},
	    {TARGET(T_DST "," T_TGT "," T_PORT "," T_EXP "," T_IV), "targets[1].tls: required"},
	    {TARGET(T_DST "," T_TGT "," T_PORT "," T_EXP ",'tls':0," T_IV),
	     "targets[1].tls: must be true or false"},
	    {TARGET(T_DST "," T_TGT "," T_PORT "," T_EXP "," T_TLS),
	     "targets[1].interval_s: required"},
	    {TARGET(T_DST "," T_TGT "," T_PORT "," T_EXP "," T_TLS ",'interval_s':0"),
	     "targets[1].interval_s: must be an integer in 1-86400"},
	    {TARGET(T_DST "," T_TGT "," T_PORT "," T_EXP "," T_TLS "," T_IV ",'silent':'yes'"),
	     "targets[1].silent: must be true or false"},
	    {TARGET(T_DST "," T_TGT "," T_PORT "," T_EXP "," T_TLS "," T_IV ",'silent':null"),
	     "targets[1].silent: must be true or false"},
	    {TARGET(T_DST "," T_TGT "," T_PORT "," T_EXP "," T_TLS "," T_IV ",'probe':1"),
	     "targets[1].probe: must be true or false"},
	};
	char err[PLAN_ERR_MAX];
	char want[PLAN_ERR_MAX];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		matrix_plan_t *plan;

		strcpy(err, "untouched");
		plan = decode_q(cases[i].json, err);
		if (plan) {
			matrix_plan_free(plan);
			fail_msg("case %zu accepted: %s", i, cases[i].json);
		}
		/* A bare field name stands for that field's role-name message. */
		if (!strchr(cases[i].want, ':'))
			snprintf(want, sizeof(want), "%s%s", cases[i].want, role_msg);
		else
			snprintf(want, sizeof(want), "%s", cases[i].want);
		if (strcmp(err, want) != 0)
			fail_msg("case %zu: got '%s', want '%s'", i, err, want);
	}
}

/* The base of the error cases is itself valid, so each case fails for its own reason. */
static void test_plan_base_of_error_cases_is_valid(void **state)
{
	matrix_plan_t *plan;

	(void)state;
	plan = decode_ok(TARGET(T_DST "," T_TGT "," T_PORT "," T_EXP "," T_TLS "," T_IV));
	assert_int_equal(plan->n_targets, 2);
	matrix_plan_free(plan);
}

/* Fields this version does not know are ignored, at the top and in targets. */
static void test_plan_ignores_unknown_fields(void **state)
{
	matrix_plan_t *plan = decode_ok(
	    "{'schema':'sgprobe.plan/v1','generated_at':'2026-01-01T00:00:00.000Z','matrix':'m',"
	    "'role':'r','interval_s':60,'timeout_ms':2000,'extra':{'nested':[1,2,{'x':null}]},"
	    "'targets':[{'dst_role':'d','target':'d.example','port':80,'expected':'allow',"
	    "'tls':true,'interval_s':30,'weight':3,'notes':null,'silent':true,'probe':true,"
	    "'future':[]}]}");

	(void)state;
	assert_string_equal(plan->matrix, "m");
	assert_int_equal(plan->n_targets, 1);
	assert_string_equal(plan->targets[0].dst_role, "d");
	assert_int_equal(plan->targets[0].port, 80);
	assert_int_equal(plan->targets[0].expected, VERDICT_EXPECT_ALLOW);
	assert_true(plan->targets[0].tls);
	assert_true(plan->targets[0].silent);
	assert_true(plan->targets[0].probe);
	assert_int_equal(plan->targets[0].interval_s, 30);
	matrix_plan_free(plan);
}

/* Only `len` bytes are read: the text need not be NUL-terminated, and what follows is ignored. */
static void test_plan_decode_uses_length_not_nul(void **state)
{
	static const char text[] =
	    "{\"schema\":\"sgprobe.plan/v1\",\"matrix\":\"m\",\"role\":\"r\","
	    "\"interval_s\":60,\"timeout_ms\":2000,\"targets\":[]}garbage";
	char err[PLAN_ERR_MAX];
	matrix_plan_t *plan;

	(void)state;
	plan = plan_decode(text, strlen(text) - strlen("garbage"), err, sizeof(err));
	assert_non_null(plan);
	matrix_plan_free(plan);
	assert_null(plan_decode(text, strlen(text), err, sizeof(err)));
	assert_string_equal(err, "plan: invalid JSON near line 1");
	assert_null(plan_decode(NULL, 0, err, sizeof(err)));
	assert_string_equal(err, "plan: invalid JSON near line 1");
}

/* A body over PLAN_MAX_BODY and a plan of more than MATRIX_MAX_PLAN_TARGETS are refused. */
static void test_plan_limits(void **state)
{
	const size_t n = MATRIX_MAX_PLAN_TARGETS + 1;
	char err[PLAN_ERR_MAX];
	char want[PLAN_ERR_MAX];
	char *doc;
	size_t len;
	size_t i;

	(void)state;
	doc = malloc((size_t)PLAN_MAX_BODY + 1);
	assert_non_null(doc);
	memset(doc, ' ', (size_t)PLAN_MAX_BODY + 1);
	memcpy(doc, "{}", 2);
	assert_null(plan_decode(doc, (size_t)PLAN_MAX_BODY + 1, err, sizeof(err)));
	snprintf(want, sizeof(want), "plan: %zu bytes exceeds the limit of %u",
	         (size_t)PLAN_MAX_BODY + 1, PLAN_MAX_BODY);
	assert_string_equal(err, want);

	/* The count is checked before any target is read. */
	len =
	    (size_t)sprintf(doc, "{\"schema\":\"sgprobe.plan/v1\",\"matrix\":\"m\",\"role\":\"r\","
	                         "\"interval_s\":60,\"timeout_ms\":2000,\"targets\":[");
	for (i = 0; i < n; i++) {
		memcpy(doc + len, "{},", 3);
		len += 3;
	}
	len--;
	memcpy(doc + len, "]}", 2);
	len += 2;
	assert_null(plan_decode(doc, len, err, sizeof(err)));
	snprintf(want, sizeof(want), "targets: %zu targets exceed the limit of %d", n,
	         MATRIX_MAX_PLAN_TARGETS);
	assert_string_equal(err, want);
	free(doc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_plan_round_trip_afirgen_roles),
	    cmocka_unit_test(test_plan_round_trip_every_value),
	    cmocka_unit_test(test_plan_encode_exact_json),
	    cmocka_unit_test(test_plan_encode_refuses_incomplete),
	    cmocka_unit_test(test_plan_decode_defaults),
	    cmocka_unit_test(test_plan_rejects_each_error_with_its_message),
	    cmocka_unit_test(test_plan_base_of_error_cases_is_valid),
	    cmocka_unit_test(test_plan_ignores_unknown_fields),
	    cmocka_unit_test(test_plan_decode_uses_length_not_nul),
	    cmocka_unit_test(test_plan_limits),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
