/* Unit tests of agent/output.c: the table, JSON and JUnit renderings of a --once run. */
#include <ctype.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <cJSON.h>

#include "../../agent/output.h"

#define NROWS 6

/* One run's worth of hand-built rows: every kind of row a user sees. */
typedef struct {
	matrix_target_t targets[NROWS];
	probe_result_t res[NROWS];
	output_row_t rows[NROWS];
	output_summary_t sum;
} fixture_t;

static void set_target(matrix_target_t *t, const char *dst_role, const char *target, uint16_t port,
                       verdict_expect_t expected)
{
	memset(t, 0, sizeof(*t));
	/* The renderers only read these; the casts spare the tests a copy. */
	t->dst_role = (char *)dst_role;
	t->target = (char *)target;
	t->port = port;
	t->expected = expected;
	t->probe = true;
	t->interval_s = 60;
}

static void set_result(probe_result_t *r, size_t target, const char *address, verdict_state_t state,
                       int64_t latency_us, const char *detail)
{
	memset(r, 0, sizeof(*r));
	r->target = target;
	snprintf(r->address, sizeof(r->address), "%s", address);
	r->state = state;
	r->latency_us = latency_us;
	r->at_ms = UINT64_C(1767225600000);
	snprintf(r->detail, sizeof(r->detail), "%s", detail);
}

/* Links the rows to targets and results and adds them up, as once.c does. */
static void finish_fixture(fixture_t *fx, size_t n, const verdict_t *verdicts, const bool *alive,
                           uint32_t fail_on, const char *role)
{
	size_t i;

	memset(&fx->sum, 0, sizeof(fx->sum));
	fx->sum.role = role;
	fx->sum.matrix = "afirgen";
	fx->sum.elapsed_s = 1.25;
	for (i = 0; i < n; i++) {
		output_row_t *r = &fx->rows[i];

		r->target = &fx->targets[i];
		r->res = &fx->res[i];
		r->verdict = verdicts[i];
		r->dst_alive = alive[i];
		r->failing = (fail_on >> verdicts[i]) & 1u;
		fx->sum.counts[verdicts[i]]++;
		fx->sum.failing += r->failing;
	}
}

/*
 * The standard run: an ok path, a violation, a DNS failure, a failed and a good
 * TLS handshake, and an unverified denied path.
 */
static void make_fixture(fixture_t *fx)
{
	static const verdict_t verdicts[NROWS] = {
	    VERDICT_OK,         VERDICT_VIOLATION, VERDICT_INCONCLUSIVE,
	    VERDICT_TLS_FAILED, VERDICT_OK,        VERDICT_UNVERIFIED,
	};
	static const bool alive[NROWS] = {true, true, false, true, true, false};
	uint32_t fail_on = (1u << VERDICT_INCONCLUSIVE) | (1u << VERDICT_NO_LISTENER) |
	                   (1u << VERDICT_TLS_FAILED) | (1u << VERDICT_BLOCKED) |
	                   (1u << VERDICT_VIOLATION);

	memset(fx, 0, sizeof(*fx));
	set_target(&fx->targets[0], "nginx", "nginx.afirgen.internal", 80, VERDICT_EXPECT_ALLOW);
	set_result(&fx->res[0], 0, "10.0.1.10", VERDICT_STATE_OPEN, 812, "");

	set_target(&fx->targets[1], "rds-mysql", "db.afirgen.internal", 3306, VERDICT_EXPECT_DENY);
	set_result(&fx->res[1], 1, "10.0.2.20", VERDICT_STATE_CLOSED, 95,
	           "connection refused (RST)");

	set_target(&fx->targets[2], "asr-ocr", "asr.afirgen.internal", 8002, VERDICT_EXPECT_ALLOW);
	set_result(&fx->res[2], 2, "", VERDICT_STATE_ERROR, -1,
	           "dns: unknown node or service (EAI_NONAME)");

	set_target(&fx->targets[3], "vpce", "vpce.afirgen.internal", 443, VERDICT_EXPECT_ALLOW);
	fx->targets[3].tls = true;
	set_result(&fx->res[3], 3, "10.0.4.40", VERDICT_STATE_OPEN, 1500,
	           "certificate has expired");
	fx->res[3].tls = VERDICT_TLS_FAIL;
	fx->res[3].tls_has_expiry = true;
	fx->res[3].tls_expires_in_days = -3;

	set_target(&fx->targets[4], "vpce", "vpce2.afirgen.internal", 443, VERDICT_EXPECT_ALLOW);
	fx->targets[4].tls = true;
	set_result(&fx->res[4], 4, "10.0.4.41", VERDICT_STATE_OPEN, 2100, "");
	fx->res[4].tls = VERDICT_TLS_OK;
	fx->res[4].tls_has_expiry = true;
	fx->res[4].tls_expires_in_days = 42;

	set_target(&fx->targets[5], "frontend", "10.0.3.4", 22, VERDICT_EXPECT_DENY);
	set_result(&fx->res[5], 5, "10.0.3.4", VERDICT_STATE_FILTERED, 2000000,
	           "no answer within 2000 ms");

	finish_fixture(fx, NROWS, verdicts, alive, fail_on, "main-backend");
}

/* Renders into memory. Returns the text (free()) and output_write()'s result. */
static char *render(output_format_t format, const output_row_t *rows, size_t n,
                    const output_summary_t *sum, bool color, int *result)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	assert_non_null(f);
	*result = output_write(f, format, rows, n, sum, color);
	assert_int_equal(fclose(f), 0);
	assert_non_null(buf);
	assert_int_equal(strlen(buf), len);
	return buf;
}

static size_t count(const char *hay, const char *needle)
{
	size_t n = 0;

	for (hay = strstr(hay, needle); hay; hay = strstr(hay + strlen(needle), needle))
		n++;
	return n;
}

/* ---- JSON ---- */

/* True when `obj` has exactly the `n` keys in `keys`, each once. */
static void assert_exact_keys(const cJSON *obj, const char *const *keys, size_t n, const char *what)
{
	const cJSON *it;
	size_t i, seen = 0;

	if (!cJSON_IsObject(obj))
		fail_msg("%s: not an object", what);
	cJSON_ArrayForEach(it, obj)
	{
		bool known = false;

		for (i = 0; i < n && !known; i++)
			known = !strcmp(it->string, keys[i]);
		if (!known)
			fail_msg("%s: unexpected key \"%s\"", what, it->string);
		seen++;
	}
	for (i = 0; i < n; i++) {
		if (!cJSON_GetObjectItemCaseSensitive(obj, keys[i]))
			fail_msg("%s: missing key \"%s\"", what, keys[i]);
	}
	if (seen != n)
		fail_msg("%s: %zu keys, want %zu", what, seen, n);
}

static cJSON *parse_json_output(const fixture_t *fx, size_t n)
{
	int result;
	char *text = render(OUTPUT_JSON, fx->rows, n, &fx->sum, false, &result);
	cJSON *doc;

	assert_int_equal(result, 0);
	/* One document on one line, as a pipeline reads it. */
	assert_int_equal(count(text, "\n"), 1);
	assert_int_equal(text[strlen(text) - 1], '\n');
	doc = cJSON_Parse(text);
	if (!doc)
		fail_msg("output is not JSON: %s", text);
	free(text);
	return doc;
}

static const char *str_of(const cJSON *obj, const char *key)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);

	if (!cJSON_IsString(it))
		fail_msg("\"%s\" is not a string", key);
	return it->valuestring;
}

static double num_of(const cJSON *obj, const char *key)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);

	if (!cJSON_IsNumber(it))
		fail_msg("\"%s\" is not a number", key);
	return it->valuedouble;
}

static bool is_null(const cJSON *obj, const char *key)
{
	return cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(obj, key));
}

static void test_json_has_the_documented_shape(void **state)
{
	static const char *const top[] = {"role",    "matrix",     "results",
	                                  "summary", "not_probed", "passed"};
	static const char *const row[] = {"dst_role",  "target", "address", "port",
	                                  "expected",  "state",  "verdict", "latency_us",
	                                  "dst_alive", "detail", "tls"};
	fixture_t fx;
	cJSON *doc;
	const cJSON *results, *it;
	size_t i = 0;

	(void)state;
	make_fixture(&fx);
	fx.sum.not_probed = 2;
	doc = parse_json_output(&fx, NROWS);
	assert_exact_keys(doc, top, sizeof(top) / sizeof(top[0]), "document");
	assert_string_equal(str_of(doc, "role"), "main-backend");
	assert_string_equal(str_of(doc, "matrix"), "afirgen");
	assert_true(num_of(doc, "not_probed") == 2);
	results = cJSON_GetObjectItemCaseSensitive(doc, "results");
	assert_true(cJSON_IsArray(results));
	assert_int_equal(cJSON_GetArraySize(results), NROWS);
	cJSON_ArrayForEach(it, results)
	{
		char what[32];

		snprintf(what, sizeof(what), "results[%zu]", i);
		assert_exact_keys(it, row, sizeof(row) / sizeof(row[0]), what);
		/* Rows come out in the order they were given. */
		assert_string_equal(str_of(it, "target"), fx.targets[i].target);
		assert_string_equal(str_of(it, "dst_role"), fx.targets[i].dst_role);
		assert_true(num_of(it, "port") == fx.targets[i].port);
		assert_string_equal(str_of(it, "expected"),
		                    verdict_expect_name(fx.targets[i].expected));
		assert_string_equal(str_of(it, "state"), verdict_state_name(fx.res[i].state));
		assert_string_equal(str_of(it, "verdict"), verdict_name(fx.rows[i].verdict));
		assert_true(cJSON_IsBool(cJSON_GetObjectItemCaseSensitive(it, "dst_alive")));
		assert_int_equal(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(it, "dst_alive")),
		                 fx.rows[i].dst_alive);
		i++;
	}
	cJSON_Delete(doc);
}

/* The summary counts every one of the seven ordered verdicts, zeros included. */
static void test_json_summary_counts_every_verdict(void **state)
{
	static const char *const verdicts[] = {"ok",          "unverified", "inconclusive",
	                                       "no_listener", "tls_failed", "blocked",
	                                       "violation"};
	fixture_t fx;
	cJSON *doc;
	const cJSON *summary;

	(void)state;
	make_fixture(&fx);
	doc = parse_json_output(&fx, NROWS);
	summary = cJSON_GetObjectItemCaseSensitive(doc, "summary");
	assert_exact_keys(summary, verdicts, VERDICT_COUNT_ORDERED, "summary");
	assert_true(num_of(summary, "ok") == 2);
	assert_true(num_of(summary, "unverified") == 1);
	assert_true(num_of(summary, "inconclusive") == 1);
	assert_true(num_of(summary, "no_listener") == 0);
	assert_true(num_of(summary, "tls_failed") == 1);
	assert_true(num_of(summary, "blocked") == 0);
	assert_true(num_of(summary, "violation") == 1);
	cJSON_Delete(doc);
}

static void test_json_passed_follows_failing(void **state)
{
	fixture_t fx;
	cJSON *doc;

	(void)state;
	make_fixture(&fx);
	doc = parse_json_output(&fx, NROWS);
	assert_true(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(doc, "passed")));
	cJSON_Delete(doc);

	/* Only the ok row and the unverified row: nothing fails. */
	fx.sum.failing = 0;
	doc = parse_json_output(&fx, 1);
	assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(doc, "passed")));
	cJSON_Delete(doc);
}

/* A DNS failure has no address and no latency: both null, not "" or -1. */
static void test_json_dns_error_row_has_null_address_and_latency(void **state)
{
	fixture_t fx;
	cJSON *doc;
	const cJSON *r;

	(void)state;
	make_fixture(&fx);
	doc = parse_json_output(&fx, NROWS);
	r = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(doc, "results"), 2);
	assert_true(is_null(r, "address"));
	assert_true(is_null(r, "latency_us"));
	assert_string_equal(str_of(r, "state"), "error");
	assert_string_equal(str_of(r, "verdict"), "inconclusive");
	assert_string_equal(str_of(r, "detail"), "dns: unknown node or service (EAI_NONAME)");
	assert_true(is_null(r, "tls"));

	/* Rows with an answer have both. */
	r = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(doc, "results"), 1);
	assert_string_equal(str_of(r, "address"), "10.0.2.20");
	assert_true(num_of(r, "latency_us") == 95);
	r = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(doc, "results"), 5);
	assert_true(num_of(r, "latency_us") == 2000000);
	cJSON_Delete(doc);
}

/* An empty detail is null; a detail is passed through. */
static void test_json_detail(void **state)
{
	fixture_t fx;
	cJSON *doc;
	const cJSON *results;

	(void)state;
	make_fixture(&fx);
	doc = parse_json_output(&fx, NROWS);
	results = cJSON_GetObjectItemCaseSensitive(doc, "results");
	assert_true(is_null(cJSON_GetArrayItem(results, 0), "detail"));
	assert_string_equal(str_of(cJSON_GetArrayItem(results, 1), "detail"),
	                    "connection refused (RST)");
	assert_string_equal(str_of(cJSON_GetArrayItem(results, 5), "detail"),
	                    "no answer within 2000 ms");
	cJSON_Delete(doc);
}

static void test_json_tls_object(void **state)
{
	fixture_t fx;
	cJSON *doc;
	const cJSON *results, *r, *tls;

	(void)state;
	make_fixture(&fx);
	doc = parse_json_output(&fx, NROWS);
	results = cJSON_GetObjectItemCaseSensitive(doc, "results");

	/* No handshake: null. */
	assert_true(is_null(cJSON_GetArrayItem(results, 0), "tls"));
	assert_true(is_null(cJSON_GetArrayItem(results, 1), "tls"));

	/* A failed handshake: the error in tls.error and in the detail. */
	r = cJSON_GetArrayItem(results, 3);
	tls = cJSON_GetObjectItemCaseSensitive(r, "tls");
	{
		static const char *const keys[] = {"ok", "error", "expires_in_days"};

		assert_exact_keys(tls, keys, 3, "results[3].tls");
	}
	assert_true(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(tls, "ok")));
	assert_string_equal(str_of(tls, "error"), "certificate has expired");
	assert_true(num_of(tls, "expires_in_days") == -3);
	assert_string_equal(str_of(r, "detail"), "tls handshake failed: certificate has expired");
	assert_string_equal(str_of(r, "verdict"), "tls_failed");

	/* A good one: ok, no error, the days left. */
	r = cJSON_GetArrayItem(results, 4);
	tls = cJSON_GetObjectItemCaseSensitive(r, "tls");
	assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(tls, "ok")));
	assert_true(is_null(tls, "error"));
	assert_true(num_of(tls, "expires_in_days") == 42);
	assert_true(is_null(r, "detail"));
	cJSON_Delete(doc);

	/* A failed handshake that never saw a certificate: no expiry. */
	fx.res[3].tls_has_expiry = false;
	snprintf(fx.res[3].detail, sizeof(fx.res[3].detail), "handshake timed out");
	doc = parse_json_output(&fx, NROWS);
	tls = cJSON_GetObjectItemCaseSensitive(
	    cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(doc, "results"), 3), "tls");
	assert_true(is_null(tls, "expires_in_days"));
	assert_string_equal(str_of(tls, "error"), "handshake timed out");
	cJSON_Delete(doc);
}

/* Names and details with JSON's special characters still give valid JSON, and
 * the same strings come back out. */
static void test_json_escapes_strings(void **state)
{
	static const char role[] = "ro\"le\\x";
	static const char target[] = "we\"ird\\name\x01\x1f\ttab\nline";
	static const char dst[] = "dst\"\\\b\f\r";
	static const char detail[] = "said \"no\" \\ \x02 done";
	fixture_t fx;
	cJSON *doc;
	const cJSON *r;

	(void)state;
	make_fixture(&fx);
	set_target(&fx.targets[0], dst, target, 80, VERDICT_EXPECT_ALLOW);
	snprintf(fx.res[0].detail, sizeof(fx.res[0].detail), "%s", detail);
	fx.sum.role = role;
	fx.sum.matrix = "m\"x";
	doc = parse_json_output(&fx, NROWS);
	assert_string_equal(str_of(doc, "role"), role);
	assert_string_equal(str_of(doc, "matrix"), "m\"x");
	r = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(doc, "results"), 0);
	assert_string_equal(str_of(r, "target"), target);
	assert_string_equal(str_of(r, "dst_role"), dst);
	assert_string_equal(str_of(r, "detail"), detail);
	cJSON_Delete(doc);
}

static void test_json_no_rows(void **state)
{
	fixture_t fx;
	cJSON *doc;
	const cJSON *summary, *it;

	(void)state;
	make_fixture(&fx);
	memset(fx.sum.counts, 0, sizeof(fx.sum.counts));
	fx.sum.failing = 0;
	doc = parse_json_output(&fx, 0);
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(doc, "results")), 0);
	assert_true(cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(doc, "results")));
	summary = cJSON_GetObjectItemCaseSensitive(doc, "summary");
	assert_int_equal(cJSON_GetArraySize(summary), VERDICT_COUNT_ORDERED);
	cJSON_ArrayForEach(it, summary)
	{
		assert_true(cJSON_IsNumber(it) && it->valuedouble == 0);
	}
	assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(doc, "passed")));
	cJSON_Delete(doc);
}

/* ---- JUnit ---- */

/* Checks one entity reference at `s` (just after '&'); returns its length or 0. */
static size_t xml_entity(const char *s)
{
	static const char *const names[] = {"amp;", "lt;", "gt;", "quot;", "apos;"};
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (!strncmp(s, names[i], strlen(names[i])))
			return strlen(names[i]);
	}
	return 0;
}

static bool xml_name_char(char c)
{
	return isalnum((unsigned char)c) || c == '_' || c == '-' || c == '.' || c == ':';
}

/*
 * A small well-formedness check of what output.c writes (elements, attributes
 * in double quotes, text, one XML declaration; no comments, no CDATA): tags
 * nest and match, there is one root, no raw '<' or bad '&' in text or
 * attribute values, no raw '"' in them, no control characters. Fails the test
 * with the offset of the first problem.
 */
static void assert_well_formed_xml(const char *doc)
{
	const char *stack[16];
	size_t lens[16], depth = 0, roots = 0;
	const char *s = doc;

	for (s = doc; *s; s++) {
		if ((unsigned char)*s < 0x20 && *s != '\n' && *s != '\t' && *s != '\r')
			fail_msg("control character 0x%02x at %zu", *s, (size_t)(s - doc));
	}
	s = doc;
	if (strncmp(s, "<?xml ", 6) || !strstr(s, "?>"))
		fail_msg("no XML declaration");
	s = strstr(s, "?>") + 2;
	while (*s) {
		if (*s == '&') {
			size_t l = xml_entity(s + 1);

			if (!l)
				fail_msg("bad '&' in text at %zu", (size_t)(s - doc));
			s += l + 1;
		} else if (*s != '<') {
			if (!depth && !isspace((unsigned char)*s))
				fail_msg("text outside the root at %zu", (size_t)(s - doc));
			s++;
		} else if (s[1] == '/') {
			const char *name = s + 2;
			size_t l = 0;

			while (xml_name_char(name[l]))
				l++;
			if (!depth || lens[depth - 1] != l || strncmp(stack[depth - 1], name, l))
				fail_msg("unmatched </%.*s> at %zu", (int)l, name,
				         (size_t)(s - doc));
			depth--;
			s = name + l;
			while (isspace((unsigned char)*s))
				s++;
			if (*s != '>')
				fail_msg("bad closing tag at %zu", (size_t)(s - doc));
			s++;
		} else {
			const char *name = s + 1;
			size_t l = 0;

			while (xml_name_char(name[l]))
				l++;
			if (!l)
				fail_msg("bad tag at %zu", (size_t)(s - doc));
			if (!depth && ++roots > 1)
				fail_msg("a second root at %zu", (size_t)(s - doc));
			s = name + l;
			for (;;) {
				while (isspace((unsigned char)*s))
					s++;
				if (*s == '>' || (s[0] == '/' && s[1] == '>'))
					break;
				if (!xml_name_char(*s))
					fail_msg("bad attribute at %zu", (size_t)(s - doc));
				while (xml_name_char(*s))
					s++;
				if (s[0] != '=' || s[1] != '"')
					fail_msg("attribute without a quoted value at %zu",
					         (size_t)(s - doc));
				for (s += 2; *s != '"'; s++) {
					if (!*s || *s == '<')
						fail_msg("bad attribute value at %zu",
						         (size_t)(s - doc));
					if (*s == '&') {
						size_t e = xml_entity(s + 1);

						if (!e)
							fail_msg("bad '&' in an attribute at %zu",
							         (size_t)(s - doc));
						s += e;
					}
				}
				s++;
			}
			if (*s == '/') {
				s += 2;
				continue;
			}
			if (depth == sizeof(stack) / sizeof(stack[0]))
				fail_msg("nested too deep");
			stack[depth] = name;
			lens[depth++] = l;
			s++;
		}
	}
	if (depth)
		fail_msg("<%.*s> not closed", (int)lens[depth - 1], stack[depth - 1]);
	if (roots != 1)
		fail_msg("%zu roots", roots);
}

/* The value of attribute `attr` of the first element starting at `from`, unescaped. */
static void xml_attr(const char *from, const char *attr, char *out, size_t outlen)
{
	char key[64];
	const char *s, *end = strchr(from, '>');
	size_t n = 0;

	snprintf(key, sizeof(key), " %s=\"", attr);
	s = strstr(from, key);
	if (!s || !end || s > end)
		fail_msg("no attribute %s", attr);
	for (s += strlen(key); *s != '"' && n + 1 < outlen; s++) {
		if (*s == '&') {
			static const struct {
				const char *ent;
				char c;
			} ents[] = {{"&amp;", '&'},
			            {"&lt;", '<'},
			            {"&gt;", '>'},
			            {"&quot;", '"'},
			            {"&apos;", '\''}};
			size_t i;

			for (i = 0; i < sizeof(ents) / sizeof(ents[0]); i++) {
				if (!strncmp(s, ents[i].ent, strlen(ents[i].ent))) {
					out[n++] = ents[i].c;
					s += strlen(ents[i].ent) - 1;
					break;
				}
			}
			assert_true(i < sizeof(ents) / sizeof(ents[0]));
		} else {
			out[n++] = *s;
		}
	}
	out[n] = '\0';
}

static void test_junit_is_well_formed_with_one_testcase_per_row(void **state)
{
	fixture_t fx;
	char *text, want[128];
	int result;

	(void)state;
	make_fixture(&fx);
	text = render(OUTPUT_JUNIT, fx.rows, NROWS, &fx.sum, false, &result);
	assert_int_equal(result, 0);
	assert_well_formed_xml(text);
	assert_int_equal(count(text, "<testsuites>"), 1);
	assert_int_equal(count(text, "</testsuites>"), 1);
	assert_int_equal(count(text, "<testsuite "), 1);
	assert_int_equal(count(text, "</testsuite>"), 1);
	assert_int_equal(count(text, "<testcase "), NROWS);
	assert_int_equal(count(text, "</testcase>"), NROWS);
	/* violation, inconclusive and tls_failed fail; unverified does not, and is skipped. */
	assert_int_equal(count(text, "<failure "), 3);
	assert_int_equal(count(text, "</failure>"), 3);
	assert_int_equal(count(text, "<skipped "), 1);
	assert_int_equal(count(text, "</skipped>"), 1);
	snprintf(want, sizeof(want), " tests=\"%d\" failures=\"3\" skipped=\"1\" ", NROWS);
	assert_non_null(strstr(text, want));
	assert_non_null(strstr(text, "<testsuite name=\"sgprobe.main-backend\""));
	free(text);
}

/* Each testcase carries its own outcome: the failure sits in the failing path's case. */
static void test_junit_failure_is_in_the_failing_testcase(void **state)
{
	fixture_t fx;
	char *text, *tc, *next;
	int result;
	size_t i;

	(void)state;
	make_fixture(&fx);
	text = render(OUTPUT_JUNIT, fx.rows, NROWS, &fx.sum, false, &result);
	assert_int_equal(result, 0);
	tc = strstr(text, "<testcase ");
	for (i = 0; i < NROWS; i++) {
		char port[16];
		size_t len;

		assert_non_null(tc);
		next = strstr(tc + 1, "<testcase ");
		len = next ? (size_t)(next - tc) : strlen(tc);
		{
			char *one = strndup(tc, len);
			bool failure = strstr(one, "<failure ") != NULL;
			bool skipped = strstr(one, "<skipped ") != NULL;

			assert_non_null(one);
			snprintf(port, sizeof(port), ":%u ", fx.targets[i].port);
			/* The name says the path. */
			if (!strstr(one, fx.targets[i].target) || !strstr(one, port))
				fail_msg("testcase %zu does not name its path: %s", i, one);
			if (failure != fx.rows[i].failing)
				fail_msg("testcase %zu: failure %d, want %d", i, failure,
				         fx.rows[i].failing);
			if (skipped != (!fx.rows[i].failing && fx.rows[i].verdict != VERDICT_OK))
				fail_msg("testcase %zu: skipped %d", i, skipped);
			if (failure || skipped) {
				char msg[64];

				snprintf(msg, sizeof(msg), "message=\"%s: %s\"",
				         verdict_name(fx.rows[i].verdict),
				         verdict_state_name(fx.res[i].state));
				if (!strstr(one, msg))
					fail_msg("testcase %zu lacks %s: %s", i, msg, one);
			}
			free(one);
		}
		tc = next;
	}
	assert_null(tc);
	free(text);
}

/* XML's five special characters in a role or a target are escaped, and come back. */
static void test_junit_escapes_xml_special_characters(void **state)
{
	static const char role[] = "back&end<\"x\">'y'";
	static const char dst[] = "d&st<'\">";
	static const char target[] = "t&g<t>\"'";
	fixture_t fx;
	char *text, value[512], want[512];
	const char *tc;
	int result;

	(void)state;
	make_fixture(&fx);
	set_target(&fx.targets[1], dst, target, 3306, VERDICT_EXPECT_DENY);
	snprintf(fx.res[1].detail, sizeof(fx.res[1].detail), "a<b & c>\"d\" 'e' \x01 end");
	fx.sum.role = role;
	text = render(OUTPUT_JUNIT, fx.rows, NROWS, &fx.sum, false, &result);
	assert_int_equal(result, 0);
	assert_well_formed_xml(text);
	/* The raw strings never appear; their escaped forms do. */
	assert_null(strstr(text, role));
	assert_null(strstr(text, target));
	assert_non_null(strstr(text, "sgprobe.back&amp;end&lt;&quot;x&quot;&gt;&apos;y&apos;"));
	assert_non_null(strstr(text, "t&amp;g&lt;t&gt;&quot;&apos;"));
	assert_non_null(strstr(text, "d&amp;st&lt;&apos;&quot;&gt;"));

	xml_attr(strstr(text, "<testsuite "), "name", value, sizeof(value));
	snprintf(want, sizeof(want), "sgprobe.%s", role);
	assert_string_equal(value, want);
	tc = strstr(text, "<testcase ");
	tc = strstr(tc + 1, "<testcase ");
	xml_attr(tc, "classname", value, sizeof(value));
	snprintf(want, sizeof(want), "sgprobe.%s.%s", role, dst);
	assert_string_equal(value, want);
	xml_attr(tc, "name", value, sizeof(value));
	assert_non_null(strstr(value, target));
	free(text);
}

static void test_junit_no_rows(void **state)
{
	fixture_t fx;
	char *text;
	int result;

	(void)state;
	make_fixture(&fx);
	fx.sum.failing = 0;
	text = render(OUTPUT_JUNIT, fx.rows, 0, &fx.sum, false, &result);
	assert_int_equal(result, 0);
	assert_well_formed_xml(text);
	assert_non_null(strstr(text, " tests=\"0\" failures=\"0\" skipped=\"0\" "));
	assert_int_equal(count(text, "<testcase"), 0);
	free(text);
}

/* ---- table ---- */

/* Splits `text` into lines (in place); returns the number of lines. */
static size_t split_lines(char *text, char **lines, size_t max)
{
	size_t n = 0;
	char *s = text, *nl;

	while (*s && n < max) {
		lines[n++] = s;
		nl = strchr(s, '\n');
		if (!nl)
			break;
		*nl = '\0';
		s = nl + 1;
	}
	return n;
}

static void test_table_header_rows_and_summary(void **state)
{
	fixture_t fx;
	char *text, *lines[64];
	size_t n, i;
	int result;

	(void)state;
	make_fixture(&fx);
	text = render(OUTPUT_TABLE, fx.rows, NROWS, &fx.sum, false, &result);
	assert_int_equal(result, 0);
	n = split_lines(text, lines, 64);
	assert_true(n > 3 + NROWS);
	assert_string_equal(lines[0], "sgprobe main-backend → matrix afirgen");
	assert_string_equal(lines[1], "");
	/* The header names every column. */
	assert_non_null(strstr(lines[2], "VERDICT"));
	assert_non_null(strstr(lines[2], "EXPECT"));
	assert_non_null(strstr(lines[2], "DESTINATION"));
	assert_non_null(strstr(lines[2], "TARGET:PORT"));
	assert_non_null(strstr(lines[2], "ADDRESS"));
	assert_non_null(strstr(lines[2], "STATE"));
	assert_non_null(strstr(lines[2], "LATENCY"));
	assert_non_null(strstr(lines[2], "DETAIL"));
	/* One line per row, in order, then a blank line. */
	for (i = 0; i < NROWS; i++) {
		const char *l = lines[3 + i];
		char tp[300];

		snprintf(tp, sizeof(tp), "%s:%u", fx.targets[i].target, fx.targets[i].port);
		if (!strstr(l, tp) || !strstr(l, verdict_name(fx.rows[i].verdict)) ||
		    !strstr(l, fx.targets[i].dst_role))
			fail_msg("row %zu: \"%s\"", i, l);
		/* Failing rows are marked in the margin. */
		if (fx.rows[i].failing != !strncmp(l, "✗", strlen("✗")))
			fail_msg("row %zu: failing %d but \"%s\"", i, fx.rows[i].failing, l);
		if (!fx.rows[i].failing && l[0] != ' ')
			fail_msg("row %zu does not start with a space: \"%s\"", i, l);
	}
	assert_string_equal(lines[3 + NROWS], "");
	/* The last line adds it up, worst first. */
	assert_string_equal(lines[n - 1], "main-backend: 6 probes in 1.2 s: 1 violation "
	                                  "1 tls_failed 1 inconclusive 1 unverified 2 ok "
	                                  "→ FAIL (3 failing)");
	free(text);
}

/* Cells of a row: the address or "-", the latency in ms or "-", the detail. */
static void test_table_row_cells(void **state)
{
	fixture_t fx;
	char *text, *lines[64];
	int result;

	(void)state;
	make_fixture(&fx);
	text = render(OUTPUT_TABLE, fx.rows, NROWS, &fx.sum, false, &result);
	assert_int_equal(result, 0);
	split_lines(text, lines, 64);
	assert_non_null(strstr(lines[3], " 10.0.1.10 "));
	assert_non_null(strstr(lines[3], " 0.812 ms"));
	assert_non_null(strstr(lines[3], " open "));
	assert_non_null(strstr(lines[4], "connection refused (RST)"));
	assert_non_null(strstr(lines[4], " closed "));
	/* The DNS failure: no address, no latency. */
	assert_non_null(strstr(lines[5], " - "));
	assert_non_null(strstr(lines[5], " -  dns: unknown node or service"));
	assert_non_null(strstr(lines[6], "tls: certificate has expired"));
	assert_non_null(strstr(lines[7], "certificate expires in 42 days"));
	assert_non_null(strstr(lines[8], "2000.000 ms"));
	assert_non_null(strstr(lines[8], "nothing proves 10.0.3.4 alive"));
	free(text);
}

/* The failing paths are listed again under the table, and only they. */
static void test_table_lists_failing_paths(void **state)
{
	fixture_t fx;
	char *text, *list;
	int result;

	(void)state;
	make_fixture(&fx);
	text = render(OUTPUT_TABLE, fx.rows, NROWS, &fx.sum, false, &result);
	assert_int_equal(result, 0);
	list = strstr(text, "\nfailing paths:\n");
	assert_non_null(list);
	assert_non_null(strstr(list, "deny main-backend -> rds-mysql db.afirgen.internal:3306"));
	assert_non_null(strstr(list, "allow main-backend -> asr-ocr asr.afirgen.internal:8002 "
	                             "(unresolved)"));
	assert_non_null(strstr(list, "vpce.afirgen.internal:443"));
	assert_null(strstr(list, "nginx.afirgen.internal"));
	assert_null(strstr(list, "vpce2.afirgen.internal"));
	assert_null(strstr(list, "10.0.3.4:22"));
	free(text);
}

static void test_table_pass_summary(void **state)
{
	fixture_t fx;
	char *text, *lines[64];
	size_t n;
	int result;
	static const verdict_t verdicts[2] = {VERDICT_OK, VERDICT_UNVERIFIED};
	static const bool alive[2] = {true, false};

	(void)state;
	make_fixture(&fx);
	/* The ok row and the unverified row, which fail nothing by default. */
	fx.targets[1] = fx.targets[5];
	fx.res[1] = fx.res[5];
	finish_fixture(&fx, 2, verdicts, alive, 1u << VERDICT_VIOLATION, "backup");
	fx.sum.not_probed = 3;
	fx.sum.elapsed_s = 0.04;
	text = render(OUTPUT_TABLE, fx.rows, 2, &fx.sum, false, &result);
	assert_int_equal(result, 0);
	assert_null(strstr(text, "✗"));
	assert_null(strstr(text, "failing paths"));
	n = split_lines(text, lines, 64);
	assert_string_equal(lines[n - 1],
	                    "backup: 2 probes in 0.0 s: 1 unverified 1 ok; 3 allowed paths not "
	                    "probed (probe_allowed false) → PASS");
	free(text);
}

static void test_table_colour_only_when_asked(void **state)
{
	fixture_t fx;
	char *text, *lines[64];
	int result;

	(void)state;
	make_fixture(&fx);
	text = render(OUTPUT_TABLE, fx.rows, NROWS, &fx.sum, false, &result);
	assert_int_equal(result, 0);
	assert_null(strchr(text, '\033'));
	free(text);

	text = render(OUTPUT_TABLE, fx.rows, NROWS, &fx.sum, true, &result);
	assert_int_equal(result, 0);
	assert_non_null(strstr(text, "\033[1;31mFAIL\033[0m (3 failing)"));
	split_lines(text, lines, 64);
	/* Each row's verdict: red when failing, yellow when unverified, else green. */
	assert_non_null(strstr(lines[3], " \033[32mok          \033[0m "));
	assert_non_null(strstr(lines[4], "✗ \033[1;31mviolation   \033[0m "));
	assert_non_null(strstr(lines[5], "✗ \033[1;31minconclusive\033[0m "));
	assert_non_null(strstr(lines[8], " \033[33munverified  \033[0m "));
	free(text);

	/* JSON and JUnit never carry colour. */
	text = render(OUTPUT_JSON, fx.rows, NROWS, &fx.sum, true, &result);
	assert_null(strchr(text, '\033'));
	free(text);
	text = render(OUTPUT_JUNIT, fx.rows, NROWS, &fx.sum, true, &result);
	assert_null(strchr(text, '\033'));
	free(text);
}

static void test_table_no_rows(void **state)
{
	fixture_t fx;
	char *text, *lines[16];
	size_t n;
	int result;

	(void)state;
	make_fixture(&fx);
	memset(fx.sum.counts, 0, sizeof(fx.sum.counts));
	fx.sum.failing = 0;
	text = render(OUTPUT_TABLE, fx.rows, 0, &fx.sum, false, &result);
	assert_int_equal(result, 0);
	n = split_lines(text, lines, 16);
	assert_string_equal(lines[n - 1], "main-backend: 0 probes in 1.2 s: → PASS");
	free(text);
}

/* ---- every format ---- */

/* A stream that cannot be written is an error, not a silent success. */
static void test_write_error_is_reported(void **state)
{
	static const output_format_t formats[] = {OUTPUT_TABLE, OUTPUT_JSON, OUTPUT_JUNIT};
	fixture_t fx;
	size_t i;

	(void)state;
	make_fixture(&fx);
	for (i = 0; i < sizeof(formats) / sizeof(formats[0]); i++) {
		FILE *f = fopen("/dev/null", "r"); /* open for reading only */
		int result;

		assert_non_null(f);
		result = output_write(f, formats[i], fx.rows, NROWS, &fx.sum, false);
		if (result >= 0)
			fail_msg("format %d: writing to a read-only stream gave %d", formats[i],
			         result);
		fclose(f);
	}
}

static void test_parse_format(void **state)
{
	static const char *const bad[] = {"", "Table", "JSON", "json ", " junit", "xml", "tap"};
	output_format_t out;
	size_t i;

	(void)state;
	assert_int_equal(output_parse_format("table", &out), 0);
	assert_int_equal(out, OUTPUT_TABLE);
	assert_int_equal(output_parse_format("json", &out), 0);
	assert_int_equal(out, OUTPUT_JSON);
	assert_int_equal(output_parse_format("junit", &out), 0);
	assert_int_equal(out, OUTPUT_JUNIT);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		out = OUTPUT_JUNIT;
		if (output_parse_format(bad[i], &out) != -EINVAL)
			fail_msg("format '%s' accepted", bad[i]);
		assert_int_equal(out, OUTPUT_JUNIT);
	}
	assert_int_equal(output_parse_format(NULL, &out), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_json_has_the_documented_shape),
	    cmocka_unit_test(test_json_summary_counts_every_verdict),
	    cmocka_unit_test(test_json_passed_follows_failing),
	    cmocka_unit_test(test_json_dns_error_row_has_null_address_and_latency),
	    cmocka_unit_test(test_json_detail),
	    cmocka_unit_test(test_json_tls_object),
	    cmocka_unit_test(test_json_escapes_strings),
	    cmocka_unit_test(test_json_no_rows),
	    cmocka_unit_test(test_junit_is_well_formed_with_one_testcase_per_row),
	    cmocka_unit_test(test_junit_failure_is_in_the_failing_testcase),
	    cmocka_unit_test(test_junit_escapes_xml_special_characters),
	    cmocka_unit_test(test_junit_no_rows),
	    cmocka_unit_test(test_table_header_rows_and_summary),
	    cmocka_unit_test(test_table_row_cells),
	    cmocka_unit_test(test_table_lists_failing_paths),
	    cmocka_unit_test(test_table_pass_summary),
	    cmocka_unit_test(test_table_colour_only_when_asked),
	    cmocka_unit_test(test_table_no_rows),
	    cmocka_unit_test(test_write_error_is_reported),
	    cmocka_unit_test(test_parse_format),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
