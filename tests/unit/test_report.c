/*
 * Unit tests of lib/report.c: what the agent encodes the collector decodes to
 * the same report, every known field is validated with a message naming it,
 * unknown fields are ignored, and the limits answer "too large".
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

#include "sgprobe/report.h"

#define T0 "2026-01-01T00:00:00.000Z"

/* Decodes JSON written with single quotes: every ' becomes ". */
static report_t *decode_q(const char *q, char *err, bool *too_large)
{
	char *text = strdup(q);
	report_t *r;
	size_t i;

	assert_non_null(text);
	for (i = 0; text[i]; i++) {
		if (text[i] == '\'')
			text[i] = '"';
	}
	r = report_decode(text, strlen(text), err, REPORT_ERR_MAX, too_large);
	free(text);
	return r;
}

static report_t *sample_agent(void)
{
	report_t *r = report_new();

	assert_non_null(r);
	assert_int_equal(report_set_string(&r->agent.id, "arn:aws:ecs:us-east-1:1:task/c/abc"), 0);
	assert_int_equal(report_set_string(&r->agent.role, "main-backend"), 0);
	assert_int_equal(report_set_string(&r->agent.cluster, "afirgen-prod"), 0);
	assert_int_equal(report_set_string(&r->agent.version, "0.1.0"), 0);
	assert_int_equal(report_set_string(&r->agent.boot, "b00t"), 0);
	assert_int_equal(report_set_string(&r->sent_at, T0), 0);
	return r;
}

static void assert_str_or_null_equal(const char *a, const char *b)
{
	if (!a || !b)
		assert_ptr_equal(a, b);
	else
		assert_string_equal(a, b);
}

static void assert_reports_equal(const report_t *a, const report_t *b)
{
	size_t i;

	assert_string_equal(a->agent.id, b->agent.id);
	assert_string_equal(a->agent.role, b->agent.role);
	assert_string_equal(a->agent.cluster, b->agent.cluster);
	assert_str_or_null_equal(a->agent.az, b->agent.az);
	assert_str_or_null_equal(a->agent.address, b->agent.address);
	assert_string_equal(a->agent.version, b->agent.version);
	assert_string_equal(a->agent.boot, b->agent.boot);
	assert_true(a->seq == b->seq);
	assert_string_equal(a->sent_at, b->sent_at);
	assert_int_equal(a->mode, b->mode);
	assert_int_equal(a->interval_s, b->interval_s);
	assert_true(a->round_ms == b->round_ms);
	assert_int_equal(a->final, b->final);
	assert_int_equal(a->n_results, b->n_results);
	for (i = 0; i < a->n_results; i++) {
		const report_result_t *x = &a->results[i];
		const report_result_t *y = &b->results[i];

		assert_string_equal(x->dst_role, y->dst_role);
		assert_string_equal(x->target, y->target);
		assert_str_or_null_equal(x->address, y->address);
		assert_int_equal(x->port, y->port);
		assert_int_equal(x->expected, y->expected);
		assert_int_equal(x->state, y->state);
		assert_true(x->latency_us == y->latency_us);
		assert_string_equal(x->at, y->at);
		assert_str_or_null_equal(x->detail, y->detail);
		assert_int_equal(x->tls.present, y->tls.present);
		if (x->tls.present) {
			assert_int_equal(x->tls.ok, y->tls.ok);
			assert_str_or_null_equal(x->tls.error, y->tls.error);
			assert_int_equal(x->tls.has_expiry, y->tls.has_expiry);
			if (x->tls.has_expiry)
				assert_int_equal(x->tls.expires_in_days, y->tls.expires_in_days);
		}
	}
}

/* Encode then decode gives back every field: nulls, TLS, the largest exact seq. */
static void test_report_round_trip_every_field(void **state)
{
	report_result_t res[4];
	char err[REPORT_ERR_MAX] = "";
	report_t *r = sample_agent();
	report_t *back;
	bool too_large = true;
	char *json;
	size_t i;

	(void)state;
	memset(res, 0, sizeof(res));
	/* An allowed path, open, TLS verified, certificate 42 days from expiry. */
	res[0] = (report_result_t){
	    .dst_role = "vpc-endpoints",
	    .target = "vpce.afirgen.internal",
	    .address = "10.0.9.4",
	    .port = 443,
	    .expected = VERDICT_EXPECT_ALLOW,
	    .state = VERDICT_STATE_OPEN,
	    .latency_us = 812,
	    .at = "2026-01-01T00:00:00.123Z",
	    .tls = {.present = true, .ok = true, .has_expiry = true, .expires_in_days = 42}};
	/* A local error: no address, no latency, a detail. */
	res[1] = (report_result_t){.dst_role = "rds-mysql",
	                           .target = "db.afirgen.internal",
	                           .port = 3306,
	                           .expected = VERDICT_EXPECT_ALLOW,
	                           .state = VERDICT_STATE_ERROR,
	                           .latency_us = -1,
	                           .at = T0,
	                           .detail = "dns: NXDOMAIN"};
	/* TLS failed, certificate expired 3 days ago. */
	res[2] = (report_result_t){.dst_role = "alb",
	                           .target = "alb.afirgen.internal",
	                           .address = "2001:db8::1",
	                           .port = 443,
	                           .expected = VERDICT_EXPECT_DENY,
	                           .state = VERDICT_STATE_OPEN,
	                           .latency_us = 0,
	                           .at = T0,
	                           .detail = "",
	                           .tls = {.present = true,
	                                   .ok = false,
	                                   .error = "certificate has expired",
	                                   .has_expiry = true,
	                                   .expires_in_days = -3}};
	/* TLS present with nulls inside; a filtered denied path. */
	res[3] = (report_result_t){.dst_role = "internet",
	                           .target = "198.18.0.250",
	                           .address = "198.18.0.250",
	                           .port = 65535,
	                           .expected = VERDICT_EXPECT_DENY,
	                           .state = VERDICT_STATE_FILTERED,
	                           .latency_us = 2000000,
	                           .at = T0,
	                           .tls = {.present = true, .ok = false}};
	for (i = 0; i < 4; i++)
		assert_int_equal(report_add_result(r, &res[i]), 0);
	r->seq = REPORT_MAX_SEQ;
	r->mode = REPORT_MODE_ONCE;
	r->interval_s = 60;
	r->round_ms = 850;
	r->final = true;

	json = report_encode(r);
	assert_non_null(json);
	back = report_decode(json, strlen(json), err, sizeof(err), &too_large);
	if (!back)
		fail_msg("%s: %s", err, json);
	assert_false(too_large);
	assert_reports_equal(r, back);
	assert_null(back->agent.az);
	assert_null(back->results[1].address);
	assert_true(back->results[1].latency_us == -1);
	assert_null(back->results[3].tls.error);
	assert_false(back->results[3].tls.has_expiry);
	assert_false(back->results[1].tls.present);
	assert_true(back->seq == (UINT64_C(1) << 53));
	free(json);
	report_free(back);

	/* The optional agent strings set, a daemon report. */
	assert_int_equal(report_set_string(&r->agent.az, "us-east-1a"), 0);
	assert_int_equal(report_set_string(&r->agent.address, "10.0.1.17"), 0);
	r->mode = REPORT_MODE_DAEMON;
	r->final = false;
	r->seq = 0;
	json = report_encode(r);
	assert_non_null(json);
	back = report_decode(json, strlen(json), err, sizeof(err), NULL);
	assert_non_null(back);
	assert_reports_equal(r, back);
	free(json);
	report_free(back);
	report_free(r);
}

/* Large integers survive exactly, up to 2^53 (cJSON alone would round some of them). */
static void test_report_large_integers_exact(void **state)
{
	static const uint64_t values[] = {REPORT_MAX_SEQ,       REPORT_MAX_SEQ - 1,
	                                  REPORT_MAX_SEQ - 3,   UINT64_C(1000000000000001),
	                                  UINT64_C(4294967296), 0};
	char err[REPORT_ERR_MAX] = "";
	report_result_t res = {.dst_role = "d", .target = "t", .address = "a", .port = 1, .at = T0};
	report_t *r = sample_agent();
	size_t i;

	(void)state;
	r->interval_s = 1;
	assert_int_equal(report_add_result(r, &res), 0);
	for (i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		report_t *back;
		char *json;

		r->seq = values[i];
		r->round_ms = values[i];
		r->results[0].latency_us = (int64_t)values[i];
		json = report_encode(r);
		assert_non_null(json);
		back = report_decode(json, strlen(json), err, sizeof(err), NULL);
		if (!back)
			fail_msg("%s: %s", err, json);
		assert_true(back->seq == values[i]);
		assert_true(back->round_ms == values[i]);
		assert_true(back->results[0].latency_us == (int64_t)values[i]);
		report_free(back);
		free(json);
	}
	report_free(r);
}

/* The wire form is exactly DESIGN.md's: compact, every key, null for absent values. */
static void test_report_encode_exact_json(void **state)
{
	report_result_t res = {.dst_role = "rds-mysql",
	                       .target = "db.afirgen.internal",
	                       .address = "10.0.3.7",
	                       .port = 3306,
	                       .expected = VERDICT_EXPECT_ALLOW,
	                       .state = VERDICT_STATE_OPEN,
	                       .latency_us = 812,
	                       .at = T0};
	report_t *r = report_new();
	char *json;

	(void)state;
	assert_non_null(r);
	assert_int_equal(report_set_string(&r->agent.id, "task-1"), 0);
	assert_int_equal(report_set_string(&r->agent.role, "main-backend"), 0);
	assert_int_equal(report_set_string(&r->agent.cluster, "afirgen-prod"), 0);
	assert_int_equal(report_set_string(&r->agent.version, "0.1.0"), 0);
	assert_int_equal(report_set_string(&r->agent.boot, "b00t"), 0);
	assert_int_equal(report_set_string(&r->sent_at, T0), 0);
	r->seq = 42;
	r->interval_s = 60;
	r->round_ms = 850;
	assert_int_equal(report_add_result(r, &res), 0);
	json = report_encode(r);
	assert_non_null(json);
	assert_string_equal(
	    json, "{\"schema\":\"sgprobe.report/v1\",\"agent\":{\"id\":\"task-1\",\"role\":"
	          "\"main-backend\",\"cluster\":\"afirgen-prod\",\"az\":null,\"address\":null,"
	          "\"version\":\"0.1.0\",\"boot\":\"b00t\"},\"seq\":42,\"sent_at\":\"" T0 "\","
	          "\"mode\":\"daemon\",\"interval_s\":60,\"round_ms\":850,\"final\":false,"
	          "\"results\":[{\"dst_role\":\"rds-mysql\",\"target\":\"db.afirgen.internal\","
	          "\"address\":\"10.0.3.7\",\"port\":3306,\"expected\":\"allow\",\"state\":"
	          "\"open\",\"latency_us\":812,\"at\":\"" T0 "\",\"detail\":null,\"tls\":null}]}");
	free(json);
	report_free(r);
}

/* The encoder refuses a report the decoder would refuse: a required field unset, seq too big. */
static void test_report_encode_refuses_incomplete(void **state)
{
	report_result_t res = {.dst_role = "a", .target = "b", .address = "c", .port = 1, .at = T0};
	report_t *r = sample_agent();
	char *json;

	(void)state;
	r->interval_s = 60;
	json = report_encode(r);
	assert_non_null(json);
	free(json);

	r->seq = REPORT_MAX_SEQ + 1;
	assert_null(report_encode(r));
	r->seq = 1;

	assert_int_equal(report_set_string(&r->agent.boot, NULL), 0);
	assert_null(r->agent.boot);
	assert_null(report_encode(r));
	assert_int_equal(report_set_string(&r->agent.boot, "b"), 0);

	res.at = NULL;
	assert_int_equal(report_add_result(r, &res), 0);
	assert_null(report_encode(r));
	report_free(r);
	assert_null(report_encode(NULL));
}

/* Pieces of a valid report, from which the error cases below are built. */
#define AGENT_X(fields) "'agent':{" fields "}"
#define AGENT_FIELDS                                                                               \
	"'id':'task-1','role':'main-backend','cluster':'c','az':null,'address':'10.0.0.5',"        \
	"'version':'0.1.0','boot':'b00t'"
#define META_X(seq, sent_at, mode, interval, round, final)                                         \
	"'seq':" seq ",'sent_at':" sent_at ",'mode':" mode ",'interval_s':" interval               \
	",'round_ms':" round ",'final':" final
#define META META_X("1", "'" T0 "'", "'daemon'", "60", "850", "false")
#define DOC_X(schema, agent, meta, results)                                                        \
	"{'schema':" schema "," agent "," meta ",'results':" results "}"
#define DOC_AGENT(fields) DOC_X("'sgprobe.report/v1'", AGENT_X(fields), META, "[]")
#define DOC_META(meta)    DOC_X("'sgprobe.report/v1'", AGENT_X(AGENT_FIELDS), meta, "[]")
#define DOC_RESULTS(res)  DOC_X("'sgprobe.report/v1'", AGENT_X(AGENT_FIELDS), META, res)
/* One result, its fields given in full. */
#define RES_X(addr, port, expected, state, lat, at, tls)                                           \
	"{'dst_role':'rds-mysql','target':'db.afirgen.internal','address':" addr ",'port':" port   \
	",'expected':" expected ",'state':" state ",'latency_us':" lat ",'at':" at                 \
	",'detail':null,'tls':" tls "}"
#define RES_OK                      RES_X("'10.0.3.7'", "3306", "'allow'", "'open'", "812", "'" T0 "'", "null")
#define RES_STATE(addr, state, lat) RES_X(addr, "3306", "'allow'", state, lat, "'" T0 "'", "null")
#define RES_TLS(tls)                RES_X("'10.0.3.7'", "443", "'allow'", "'open'", "812", "'" T0 "'", tls)

/* Every kind of mistake is refused with a message that names its field. */
static void test_report_rejects_each_error_with_its_message(void **state)
{
	static const struct {
		const char *json;
		const char *want;
	} cases[] = {
	    {DOC_X("'sgprobe.report/v2'", AGENT_X(AGENT_FIELDS), META, "[]"),
	     "schema: must be \"sgprobe.report/v1\""},
	    {DOC_X("1", AGENT_X(AGENT_FIELDS), META, "[]"),
	     "schema: must be \"sgprobe.report/v1\""},
	    {"{" AGENT_X(AGENT_FIELDS) "," META ",'results':[]}", "schema: required"},
	    {"{'schema':'sgprobe.report/v1'," META ",'results':[]}", "agent: required"},
	    {DOC_X("'sgprobe.report/v1'", "'agent':[]", META, "[]"), "agent: must be an object"},
	    {DOC_AGENT("'role':'r','cluster':'c','version':'v','boot':'b'"), "agent.id: required"},
	    {DOC_AGENT("'id':'','role':'r','cluster':'c','version':'v','boot':'b'"),
	     "agent.id: must be a non-empty string"},
	    {DOC_AGENT("'id':'i','role':'r','cluster':'c','version':'v'"), "agent.boot: required"},
	    {DOC_AGENT("'id':'i','role':'r','cluster':'c','version':'v','boot':'b','az':5"),
	     "agent.az: must be a non-empty string or null"},
	    {DOC_META(META_X("-1", "'" T0 "'", "'daemon'", "60", "850", "false")),
	     "seq: must be an integer in 0-9007199254740992"},
	    {DOC_META(META_X("1.5", "'" T0 "'", "'daemon'", "60", "850", "false")),
	     "seq: must be an integer in 0-9007199254740992"},
	    {DOC_META(META_X("9007199254740994", "'" T0 "'", "'daemon'", "60", "850", "false")),
	     "seq: must be an integer in 0-9007199254740992"},
	    {DOC_META(META_X("1", "'2026-13-01T00:00:00.000Z'", "'daemon'", "60", "850", "false")),
	     "sent_at: must be an RFC 3339 UTC timestamp (2026-01-01T00:00:00.000Z)"},
	    {DOC_META(META_X("1", "null", "'daemon'", "60", "850", "false")), "sent_at: required"},
	    {DOC_META(META_X("1", "'" T0 "'", "'cron'", "60", "850", "false")),
	     "mode: must be \"daemon\" or \"once\""},
	    {DOC_META(META_X("1", "'" T0 "'", "0", "60", "850", "false")),
	     "mode: must be \"daemon\" or \"once\""},
	    {DOC_META(META_X("1", "'" T0 "'", "'once'", "0", "850", "false")),
	     "interval_s: must be an integer >= 1"},
	    {DOC_META(META_X("1", "'" T0 "'", "'once'", "60", "-1", "false")),
	     "round_ms: must be an integer >= 0"},
	    {DOC_META(META_X("1", "'" T0 "'", "'once'", "60", "0", "'no'")),
	     "final: must be true or false"},
	    {DOC_RESULTS("{}"), "results: must be an array"},
	    {DOC_RESULTS("[" RES_OK ",5]"), "results[1]: must be an object"},
	    {DOC_RESULTS("[" RES_OK "," RES_OK "," RES_OK "," RES_X(
	         "'10.0.3.7'", "70000", "'allow'", "'open'", "812", "'" T0 "'", "null") "]"),
	     "results[3].port: must be an integer in 1-65535"},
	    {DOC_RESULTS(
	         "[" RES_X("'10.0.3.7'", "0", "'allow'", "'open'", "812", "'" T0 "'", "null") "]"),
	     "results[0].port: must be an integer in 1-65535"},
	    {DOC_RESULTS("[" RES_X("'10.0.3.7'", "'443'", "'allow'", "'open'", "812", "'" T0 "'",
	                           "null") "]"),
	     "results[0].port: must be an integer in 1-65535"},
	    {DOC_RESULTS("[" RES_X("'10.0.3.7'", "443", "'maybe'", "'open'", "812", "'" T0 "'",
	                           "null") "]"),
	     "results[0].expected: must be \"allow\" or \"deny\""},
	    {DOC_RESULTS("[" RES_STATE("'10.0.3.7'", "'weird'", "812") "]"),
	     "results[0].state: must be one of open, closed, rejected, filtered, unreachable, "
	     "error"},
	    {DOC_RESULTS("[" RES_OK "," RES_OK "," RES_OK "," RES_OK
	                 "," RES_STATE("null", "'open'", "812") "]"),
	     "results[4].address: null is only allowed when state is error"},
	    {DOC_RESULTS("[" RES_STATE("null", "'filtered'", "2000000") "]"),
	     "results[0].address: null is only allowed when state is error"},
	    {DOC_RESULTS("[" RES_STATE("''", "'open'", "812") "]"),
	     "results[0].address: must be a non-empty string or null"},
	    {DOC_RESULTS("[" RES_STATE("'10.0.3.7'", "'open'", "null") "]"),
	     "results[0].latency_us: null is only allowed when state is error"},
	    {DOC_RESULTS("[" RES_STATE("'10.0.3.7'", "'closed'", "-5") "]"),
	     "results[0].latency_us: must be an integer >= 0 or null"},
	    {DOC_RESULTS("[" RES_STATE("'10.0.3.7'", "'closed'", "1.5") "]"),
	     "results[0].latency_us: must be an integer >= 0 or null"},
	    {DOC_RESULTS("[" RES_X("'10.0.3.7'", "443", "'allow'", "'open'", "812",
	                           "'2026-01-01 00:00:00.000Z'", "null") "]"),
	     "results[0].at: must be an RFC 3339 UTC timestamp (2026-01-01T00:00:00.000Z)"},
	    {DOC_RESULTS("[" RES_TLS("5") "]"), "results[0].tls: must be an object or null"},
	    {DOC_RESULTS("[" RES_TLS("{'error':null}") "]"), "results[0].tls.ok: required"},
	    {DOC_RESULTS("[" RES_TLS("{'ok':'yes'}") "]"),
	     "results[0].tls.ok: must be true or false"},
	    {DOC_RESULTS("[" RES_TLS("{'ok':false,'error':7}") "]"),
	     "results[0].tls.error: must be a string or null"},
	    {DOC_RESULTS("[" RES_TLS("{'ok':true,'expires_in_days':1.5}") "]"),
	     "results[0].tls.expires_in_days: must be an integer or null"},
	    {"hello", "body: invalid JSON near line 1"},
	    {"{\n'schema':\n}", "body: invalid JSON near line 3"},
	    {DOC_RESULTS("[]") " {}", "body: invalid JSON near line 1"},
	    {"", "body: invalid JSON near line 1"},
	    {"[]", "body: must be a JSON object"},
	};
	char err[REPORT_ERR_MAX];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		bool too_large = true;
		report_t *r;

		strcpy(err, "(no message)");
		r = decode_q(cases[i].json, err, &too_large);
		if (r) {
			report_free(r);
			fail_msg("case %zu decoded but must fail with '%s'", i, cases[i].want);
		}
		if (strcmp(err, cases[i].want) != 0)
			fail_msg("case %zu: got '%s', want '%s'", i, err, cases[i].want);
		if (too_large)
			fail_msg("case %zu: too_large set for an ordinary error", i);
	}
}

/* The pieces of the error cases make valid reports, so each case fails for its one mistake. */
static void test_report_base_of_error_cases_is_valid(void **state)
{
	char err[REPORT_ERR_MAX] = "";
	report_t *r;

	(void)state;
	r = decode_q(DOC_RESULTS("[" RES_OK "," RES_TLS("{'ok':true,'error':null,"
	                                                "'expires_in_days':30}") "]"),
	             err, NULL);
	if (!r)
		fail_msg("%s", err);
	assert_int_equal(r->n_results, 2);
	assert_string_equal(r->agent.address, "10.0.0.5");
	assert_null(r->agent.az);
	assert_true(r->results[1].tls.present);
	assert_int_equal(r->results[1].tls.expires_in_days, 30);
	report_free(r);
}

/* address and latency_us may be null when, and only when, the state is error. */
static void test_report_error_state_allows_nulls(void **state)
{
	char err[REPORT_ERR_MAX] = "";
	report_t *r;

	(void)state;
	r = decode_q(DOC_RESULTS("[" RES_STATE("null", "'error'", "null") "]"), err, NULL);
	if (!r)
		fail_msg("%s", err);
	assert_int_equal(r->n_results, 1);
	assert_int_equal(r->results[0].state, VERDICT_STATE_ERROR);
	assert_null(r->results[0].address);
	assert_true(r->results[0].latency_us == -1);
	report_free(r);

	/* An error may still carry an address and a latency. */
	r = decode_q(DOC_RESULTS("[" RES_STATE("'10.0.3.7'", "'error'", "3") "]"), err, NULL);
	assert_non_null(r);
	assert_string_equal(r->results[0].address, "10.0.3.7");
	assert_true(r->results[0].latency_us == 3);
	report_free(r);
}

/* Unknown fields, at the top, in agent, in a result and in tls, are ignored. */
static void test_report_ignores_unknown_fields(void **state)
{
	char err[REPORT_ERR_MAX] = "";
	report_t *r;

	(void)state;
	r = decode_q("{'schema':'sgprobe.report/v1','future':{'x':[1,2]},"
	             "'agent':{'id':'i','role':'r','cluster':'c','version':'v','boot':'b',"
	             "'task_family':'web','revision':7},"
	             "'seq':7,'sent_at':'" T0 "','mode':'once','interval_s':30,'round_ms':0,"
	             "'final':true,'results':[{'dst_role':'d','target':'t','address':'a',"
	             "'port':1,'expected':'deny','state':'closed','latency_us':5,'at':'" T0 "',"
	             "'tls':{'ok':true,'cipher':'TLS_AES_128_GCM_SHA256'},'hops':3}],'extra':null}",
	             err, NULL);
	if (!r)
		fail_msg("%s", err);
	assert_string_equal(r->agent.id, "i");
	assert_null(r->agent.az);
	assert_null(r->agent.address);
	assert_true(r->seq == 7);
	assert_int_equal(r->mode, REPORT_MODE_ONCE);
	assert_int_equal(r->interval_s, 30);
	assert_true(r->final);
	assert_int_equal(r->n_results, 1);
	assert_int_equal(r->results[0].expected, VERDICT_EXPECT_DENY);
	assert_int_equal(r->results[0].state, VERDICT_STATE_CLOSED);
	assert_null(r->results[0].detail); /* an absent detail is none */
	assert_true(r->results[0].tls.present);
	assert_true(r->results[0].tls.ok);
	assert_null(r->results[0].tls.error);
	assert_false(r->results[0].tls.has_expiry);
	report_free(r);
}

/* Builds a valid report body with `n` results and `pad` extra bytes in one detail. */
static char *big_report(size_t n, size_t pad)
{
	static const char res[] =
	    "{\"dst_role\":\"d\",\"target\":\"t\",\"address\":\"a\",\"port\":1,"
	    "\"expected\":\"deny\",\"state\":\"closed\",\"latency_us\":5,"
	    "\"at\":\"" T0 "\",\"detail\":\"";
	size_t cap = 512 + n * (sizeof(res) + 8) + pad;
	char *s = malloc(cap);
	size_t len;
	size_t i;

	assert_non_null(s);
	len =
	    (size_t)snprintf(s, cap,
	                     "{\"schema\":\"sgprobe.report/v1\",\"agent\":{\"id\":\"i\",\"role\":"
	                     "\"r\",\"cluster\":\"c\",\"version\":\"v\",\"boot\":\"b\"},\"seq\":1,"
	                     "\"sent_at\":\"" T0 "\",\"mode\":\"daemon\",\"interval_s\":60,"
	                     "\"round_ms\":1,\"final\":false,\"results\":[");
	for (i = 0; i < n; i++) {
		len += (size_t)snprintf(s + len, cap - len, "%s%s", i ? "," : "", res);
		if (i == 0) {
			memset(s + len, 'x', pad);
			len += pad;
		}
		len += (size_t)snprintf(s + len, cap - len, "\"}");
	}
	snprintf(s + len, cap - len, "]}");
	return s;
}

/* 1000 results decode; 1001 are refused as too large. */
static void test_report_result_limit_is_too_large(void **state)
{
	char err[REPORT_ERR_MAX] = "";
	bool too_large = true;
	report_t *r;
	char *s;

	(void)state;
	s = big_report(REPORT_MAX_RESULTS, 0);
	r = report_decode(s, strlen(s), err, sizeof(err), &too_large);
	if (!r)
		fail_msg("%s", err);
	assert_false(too_large);
	assert_int_equal(r->n_results, REPORT_MAX_RESULTS);
	report_free(r);
	free(s);

	s = big_report(REPORT_MAX_RESULTS + 1, 0);
	r = report_decode(s, strlen(s), err, sizeof(err), &too_large);
	assert_null(r);
	assert_true(too_large);
	assert_string_equal(err, "results: 1001 results exceed the limit of 1000");
	free(s);
}

/* A body over 1 MiB is refused as too large before it is parsed. */
static void test_report_body_limit_is_too_large(void **state)
{
	char err[REPORT_ERR_MAX] = "";
	bool too_large = false;
	report_t *r;
	char *s;

	(void)state;
	s = big_report(1, REPORT_MAX_BODY);
	assert_true(strlen(s) > REPORT_MAX_BODY);
	r = report_decode(s, REPORT_MAX_BODY + 1, err, sizeof(err), &too_large);
	assert_null(r);
	assert_true(too_large);
	assert_string_equal(err, "body: 1048577 bytes exceeds the limit of 1048576");
	/* Within the body limit, a string over REPORT_MAX_STRING is refused by name. */
	free(s);
	s = big_report(1, REPORT_MAX_STRING + 1);
	r = report_decode(s, strlen(s), err, sizeof(err), &too_large);
	assert_null(r);
	assert_false(too_large);
	assert_string_equal(err, "results[0].detail: longer than 1024 bytes");
	free(s);
	s = big_report(1, REPORT_MAX_STRING);
	r = report_decode(s, strlen(s), err, sizeof(err), &too_large);
	assert_non_null(r);
	assert_int_equal(strlen(r->results[0].detail), REPORT_MAX_STRING);
	report_free(r);
	free(s);
}

/* report_decode() reads exactly `len` bytes: the body need not be NUL-terminated. */
static void test_report_decode_uses_length_not_nul(void **state)
{
	char err[REPORT_ERR_MAX] = "";
	char *s = big_report(2, 0);
	size_t len = strlen(s);
	char *exact = malloc(len);
	report_t *r;

	(void)state;
	assert_non_null(exact);
	memcpy(exact, s, len); /* no terminator: AddressSanitizer catches a read past it */
	r = report_decode(exact, len, err, sizeof(err), NULL);
	if (!r)
		fail_msg("%s", err);
	assert_int_equal(r->n_results, 2);
	report_free(r);
	/* Cut short by one byte: the closing brace is not part of the body. */
	r = report_decode(exact, len - 1, err, sizeof(err), NULL);
	assert_null(r);
	assert_string_equal(err, "body: invalid JSON near line 1");
	free(exact);
	free(s);
}

/* report_add_result() copies: the caller's strings may change or go afterwards. */
static void test_report_add_result_deep_copies_and_limits(void **state)
{
	char dst[] = "rds-mysql";
	char detail[] = "refused";
	char tls_error[] = "bad certificate";
	report_result_t res = {.dst_role = dst,
	                       .target = "db",
	                       .address = "10.0.3.7",
	                       .port = 3306,
	                       .state = VERDICT_STATE_CLOSED,
	                       .latency_us = 10,
	                       .at = T0,
	                       .detail = detail,
	                       .tls = {.present = true, .error = tls_error}};
	report_t *r = report_new();
	size_t i;

	(void)state;
	assert_non_null(r);
	assert_int_equal(report_add_result(r, &res), 0);
	dst[0] = 'X';
	detail[0] = 'X';
	tls_error[0] = 'X';
	assert_string_equal(r->results[0].dst_role, "rds-mysql");
	assert_string_equal(r->results[0].detail, "refused");
	assert_string_equal(r->results[0].tls.error, "bad certificate");
	assert_ptr_not_equal(r->results[0].target, res.target);
	assert_int_equal(r->results[0].port, 3306);
	assert_int_equal(r->results[0].state, VERDICT_STATE_CLOSED);

	for (i = 1; i < REPORT_MAX_RESULTS; i++)
		assert_int_equal(report_add_result(r, &res), 0);
	assert_int_equal(r->n_results, REPORT_MAX_RESULTS);
	assert_int_equal(report_add_result(r, &res), -E2BIG);
	assert_int_equal(r->n_results, REPORT_MAX_RESULTS);
	report_free(r);
	report_free(NULL);
}

/* report_set_string() replaces and clears. */
static void test_report_set_string(void **state)
{
	char *field = NULL;

	(void)state;
	assert_int_equal(report_set_string(&field, "a"), 0);
	assert_string_equal(field, "a");
	assert_int_equal(report_set_string(&field, "bc"), 0);
	assert_string_equal(field, "bc");
	assert_int_equal(report_set_string(&field, NULL), 0);
	assert_null(field);
}

/* Timestamps: milliseconds, UTC, and a strict check of the shape. */
static void test_report_time_format_and_validity(void **state)
{
	static const char *const valid[] = {
	    "1970-01-01T00:00:00.000Z",       "2026-01-01T00:00:00Z",     "2026-01-01T00:00:00.1Z",
	    "2026-01-01T00:00:00.123456789Z", "2024-02-29T23:59:59.999Z", "2000-02-29T12:00:00Z",
	    "2016-12-31T23:59:60Z",
	};
	static const char *const invalid[] = {
	    "",
	    "2026-01-01",
	    "2026-01-01T00:00:00.000",
	    "2026-01-01T00:00:00.000z",
	    "2026-01-01t00:00:00.000Z",
	    "2026-01-01 00:00:00.000Z",
	    "2026-01-01T00:00:00.000+00:00",
	    "2026-01-01T00:00:00.Z",
	    "2026-01-01T00:00:00.1234567890Z",
	    "2026-01-01T00:00:00.000Zx",
	    "2026-13-01T00:00:00.000Z",
	    "2026-00-01T00:00:00.000Z",
	    "2026-01-00T00:00:00.000Z",
	    "2026-04-31T00:00:00.000Z",
	    "2023-02-29T00:00:00.000Z",
	    "1900-02-29T00:00:00.000Z",
	    "2026-01-01T24:00:00.000Z",
	    "2026-01-01T00:60:00.000Z",
	    "2026-01-01T00:00:61.000Z",
	    "2026-1-01T00:00:00.000Z",
	    "+026-01-01T00:00:00.000Z",
	};
	char buf[32];
	size_t i;

	(void)state;
	assert_string_equal(report_format_time(0, buf, sizeof(buf)), "1970-01-01T00:00:00.000Z");
	assert_string_equal(report_format_time(UINT64_C(1767225600123), buf, sizeof(buf)),
	                    "2026-01-01T00:00:00.123Z");
	assert_string_equal(report_format_time(UINT64_C(1709251199999), buf, sizeof(buf)),
	                    "2024-02-29T23:59:59.999Z");
	assert_ptr_equal(report_format_time(5, buf, sizeof(buf)), buf);
	assert_true(report_time_valid(buf));
	for (i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
		if (!report_time_valid(valid[i]))
			fail_msg("'%s' must be valid", valid[i]);
	}
	for (i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
		if (report_time_valid(invalid[i]))
			fail_msg("'%s' must be invalid", invalid[i]);
	}
	assert_false(report_time_valid(NULL));
}

/* The agent's counters: optional, decoded when present, written back. */
static void test_report_counters(void **state)
{
	char err[REPORT_ERR_MAX] = "";
	bool big = false;
	report_t *r;
	char *text;

	(void)state;
	r = decode_q(DOC_META(META ",'counters':{'rounds':7,'probes':540,'reports_sent':6,"
	                           "'reports_retried':2,'reports_dropped':1,'later':true}"),
	             err, &big);
	if (!r)
		fail_msg("%s", err);
	assert_true(r->counters.present);
	assert_int_equal(r->counters.rounds, 7);
	assert_int_equal(r->counters.probes, 540);
	assert_int_equal(r->counters.reports_sent, 6);
	assert_int_equal(r->counters.reports_retried, 2);
	assert_int_equal(r->counters.reports_dropped, 1);
	text = report_encode(r);
	assert_non_null(text);
	assert_non_null(strstr(text, "\"counters\":{\"rounds\":7,\"probes\":540,\"reports_sent\":6,"
	                             "\"reports_retried\":2,\"reports_dropped\":1}"));
	free(text);
	report_free(r);

	r = decode_q(DOC_META(META), err, &big);
	assert_non_null(r);
	assert_false(r->counters.present);
	text = report_encode(r);
	assert_null(strstr(text, "counters"));
	free(text);
	report_free(r);

	assert_null(decode_q(DOC_META(META ",'counters':{'probes':-1}"), err, &big));
	assert_string_equal(err, "counters.probes: must be an integer >= 0");
	assert_null(decode_q(DOC_META(META ",'counters':[1]"), err, &big));
	assert_string_equal(err, "counters: must be an object");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_report_round_trip_every_field),
	    cmocka_unit_test(test_report_large_integers_exact),
	    cmocka_unit_test(test_report_encode_exact_json),
	    cmocka_unit_test(test_report_encode_refuses_incomplete),
	    cmocka_unit_test(test_report_rejects_each_error_with_its_message),
	    cmocka_unit_test(test_report_base_of_error_cases_is_valid),
	    cmocka_unit_test(test_report_error_state_allows_nulls),
	    cmocka_unit_test(test_report_ignores_unknown_fields),
	    cmocka_unit_test(test_report_counters),
	    cmocka_unit_test(test_report_result_limit_is_too_large),
	    cmocka_unit_test(test_report_body_limit_is_too_large),
	    cmocka_unit_test(test_report_decode_uses_length_not_nul),
	    cmocka_unit_test(test_report_add_result_deep_copies_and_limits),
	    cmocka_unit_test(test_report_set_string),
	    cmocka_unit_test(test_report_time_format_and_validity),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
