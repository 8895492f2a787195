/*
 * Unit tests of collector/state.c: the collector's view of the fleet. Every
 * verdict a user reads on the dashboard, in /v1/matrix or in /metrics comes
 * from here: worst-of with counts, liveness across agents, silent destinations,
 * the cell states (unobserved, stale, unknown), duplicates, final reports,
 * reloads, bounds and retention.
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

#include "../../collector/state.h"

#define T0   "2026-01-01T00:00:00.000Z"
#define WALL UINT64_C(1767225600000) /* T0 in ms since the epoch */

#define OPEN        VERDICT_STATE_OPEN
#define CLOSED      VERDICT_STATE_CLOSED
#define REJECTED    VERDICT_STATE_REJECTED
#define FILTERED    VERDICT_STATE_FILTERED
#define UNREACHABLE VERDICT_STATE_UNREACHABLE
#define ERROR       VERDICT_STATE_ERROR

/*
 * A small matrix: two agent roles, three destinations without agents, a
 * silent one among them, a 10 s interval (so an agent's period is 10 s and the
 * liveness and staleness window 30 s). Each agent role has 10 cells: five
 * destinations × (its port, probe port 22).
 */
#define M_SMALL                                                                                    \
	"{'version': 1, 'name': 'small', 'probe': {'ports': [22], 'interval_s': 10},"              \
	" 'roles': {"                                                                              \
	"  'web': {'endpoints': ['web.x'], 'ports': [80], 'agent': true},"                         \
	"  'app': {'endpoints': ['app.x', 'app2.x'], 'ports': [8000], 'agent': true},"             \
	"  'db': {'endpoints': ['db.x'], 'ports': [5432], 'agent': false %s},"                     \
	"  'lb': {'endpoints': ['lb.x'], 'ports': [443], 'agent': false, 'silent': true},"         \
	"  'ext': {'endpoints': ['198.18.0.250'], 'ports': [443], 'agent': false}},"               \
	" 'allow': [{'from': 'web', 'to': 'app', 'ports': [8000]},"                                \
	"           {'from': 'app', 'to': 'db', 'ports': [5432]} %s]}"

#define SMALL_CELLS 20

/* Parses a matrix written with single quotes, after printf-style substitution. */
static matrix_t *matrix_q(const char *fmt, const char *a, const char *b)
{
	char text[4096];
	char err[MATRIX_ERR_MAX];
	matrix_t *m;
	size_t i;

	snprintf(text, sizeof(text), fmt, a, b);
	for (i = 0; text[i]; i++) {
		if (text[i] == '\'')
			text[i] = '"';
	}
	m = matrix_parse(text, strlen(text), err, sizeof(err));
	if (!m)
		fail_msg("matrix: %s", err);
	return m;
}

static matrix_t *small(void)
{
	return matrix_q(M_SMALL, "", "");
}

/* A daemon report of agent `id` (cluster c1, boot b1, interval 10 s). */
static report_t *rep(const char *id, const char *role, const char *address, uint64_t seq)
{
	report_t *r = report_new();

	assert_non_null(r);
	assert_int_equal(report_set_string(&r->agent.id, id), 0);
	assert_int_equal(report_set_string(&r->agent.role, role), 0);
	assert_int_equal(report_set_string(&r->agent.cluster, "c1"), 0);
	assert_int_equal(report_set_string(&r->agent.address, address), 0);
	assert_int_equal(report_set_string(&r->agent.version, "0.1.0"), 0);
	assert_int_equal(report_set_string(&r->agent.boot, "b1"), 0);
	assert_int_equal(report_set_string(&r->sent_at, T0), 0);
	r->seq = seq;
	r->mode = REPORT_MODE_DAEMON;
	r->interval_s = 10;
	r->round_ms = 100;
	return r;
}

/*
 * Adds a result. The agent's `expected` is always "allow" here: the collector
 * must judge from its own matrix, so a wrong one must change nothing.
 */
static void add(report_t *r, const char *dst, const char *target, const char *address,
                uint16_t port, verdict_state_t st)
{
	report_result_t res;

	memset(&res, 0, sizeof(res));
	res.dst_role = (char *)dst;
	res.target = (char *)target;
	res.address = (char *)address;
	res.port = port;
	res.expected = VERDICT_EXPECT_ALLOW;
	res.state = st;
	res.latency_us = st == ERROR ? -1 : 500;
	res.at = (char *)T0;
	assert_int_equal(report_add_result(r, &res), 0);
}

/* Ingests `r` at `now` (ms), expects it accepted whole, and frees it. */
static void ingest(state_t *s, report_t *r, uint64_t now)
{
	state_ingest_t out;

	assert_int_equal(state_ingest(s, r, now, WALL + now, &out), 0);
	assert_false(out.duplicate);
	assert_int_equal(out.accepted, r->final ? 0 : r->n_results);
	report_free(r);
}

/* The view's cell (src, dst, port), or NULL. */
static cJSON *find_cell(const cJSON *view, const char *src, const char *dst, int port)
{
	const cJSON *cell;

	cJSON_ArrayForEach(cell, cJSON_GetObjectItemCaseSensitive(view, "cells"))
	{
		if (!strcmp(cJSON_GetObjectItemCaseSensitive(cell, "src_role")->valuestring, src) &&
		    !strcmp(cJSON_GetObjectItemCaseSensitive(cell, "dst_role")->valuestring, dst) &&
		    cJSON_GetObjectItemCaseSensitive(cell, "port")->valueint == port)
			return (cJSON *)cell;
	}
	return NULL;
}

/* The verdict of cell (src, dst, port) at `now`; VERDICT_COUNT when it is not in the view. */
static verdict_t cell_v(const state_t *s, uint64_t now, const char *src, const char *dst, int port)
{
	cJSON *view = state_matrix_view(s, now, WALL + now);
	cJSON *cell;
	verdict_t v = VERDICT_COUNT;

	assert_non_null(view);
	cell = find_cell(view, src, dst, port);
	if (cell)
		assert_int_equal(
		    verdict_parse(cJSON_GetObjectItemCaseSensitive(cell, "verdict")->valuestring,
		                  &v),
		    0);
	cJSON_Delete(view);
	return v;
}

#define assert_cell(s, now, src, dst, port, want)                                                  \
	assert_string_equal(verdict_name(cell_v((s), (now), (src), (dst), (port))),                \
	                    verdict_name(want))

/* The cell's count of `verdict` at `now` (0 when absent); -1 when the cell is not in the view. */
static int cell_count(const state_t *s, uint64_t now, const char *src, const char *dst, int port,
                      const char *verdict)
{
	cJSON *view = state_matrix_view(s, now, WALL + now);
	cJSON *cell;
	cJSON *n;
	int count = -1;

	assert_non_null(view);
	cell = find_cell(view, src, dst, port);
	if (cell) {
		n = cJSON_GetObjectItemCaseSensitive(
		    cJSON_GetObjectItemCaseSensitive(cell, "counts"), verdict);
		count = n ? n->valueint : 0;
	}
	cJSON_Delete(view);
	return count;
}

/* The number of keys of a JSON object. */
static int n_keys(const cJSON *obj)
{
	assert_true(cJSON_IsObject(obj));
	return cJSON_GetArraySize(obj);
}

static const char *str_of(const cJSON *obj, const char *key)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);

	if (!cJSON_IsString(item))
		fail_msg("%s: not a string", key);
	return item->valuestring;
}

/* Before any report every agent role's cell is there, unobserved; no other cell is. */
static void test_unobserved_before_any_report(void **unused)
{
	matrix_t *m = small();
	state_t *s = state_new(m, NULL);
	state_counts_t c;

	(void)unused;
	assert_non_null(s);
	state_count(s, 1000, &c);
	assert_int_equal(c.cells[VERDICT_UNOBSERVED], SMALL_CELLS);
	assert_int_equal(c.cells[VERDICT_OK], 0);
	assert_int_equal(c.agents_live + c.agents_stale + c.observations, 0);
	assert_cell(s, 1000, "web", "app", 8000, VERDICT_UNOBSERVED);
	assert_cell(s, 1000, "app", "db", 5432, VERDICT_UNOBSERVED);
	/* A role without agents has no cells until it reports. */
	assert_int_equal(cell_v(s, 1000, "db", "app", 8000), VERDICT_COUNT);
	state_free(s);
	matrix_free(m);
}

/* A cell is the worst of its agents × addresses, with the count of each verdict. */
static void test_worst_of_across_agents_and_addresses(void **unused)
{
	matrix_t *m = small();
	state_t *s = state_new(m, NULL);
	report_t *r;

	(void)unused;
	r = rep("w1", "web", "10.0.0.1", 1);
	add(r, "app", "app.x", "10.0.0.2", 8000, OPEN);
	add(r, "app", "app2.x", "10.0.0.3", 8000, OPEN);
	ingest(s, r, 1000);
	assert_cell(s, 1000, "web", "app", 8000, VERDICT_OK);

	r = rep("w2", "web", "10.0.0.4", 1);
	add(r, "app", "app.x", "10.0.0.2", 8000, CLOSED);
	add(r, "app", "app2.x", "10.0.0.3", 8000, FILTERED);
	ingest(s, r, 1000);
	assert_cell(s, 1000, "web", "app", 8000, VERDICT_BLOCKED);
	assert_int_equal(cell_count(s, 1000, "web", "app", 8000, "ok"), 2);
	assert_int_equal(cell_count(s, 1000, "web", "app", 8000, "no_listener"), 1);
	assert_int_equal(cell_count(s, 1000, "web", "app", 8000, "blocked"), 1);

	/* The latest observation per (agent, address, port) replaces the earlier one. */
	r = rep("w2", "web", "10.0.0.4", 2);
	add(r, "app", "app2.x", "10.0.0.3", 8000, OPEN);
	ingest(s, r, 2000);
	assert_cell(s, 2000, "web", "app", 8000, VERDICT_NO_LISTENER);
	assert_int_equal(cell_count(s, 2000, "web", "app", 8000, "ok"), 3);
	assert_int_equal(cell_count(s, 2000, "web", "app", 8000, "blocked"), 0);

	/* A violation anywhere makes the cell a violation. */
	r = rep("w2", "web", "10.0.0.4", 3);
	add(r, "db", "db.x", "10.0.0.9", 22, OPEN);
	ingest(s, r, 2000);
	assert_cell(s, 2000, "web", "db", 22, VERDICT_VIOLATION);
	state_free(s);
	matrix_free(m);
}

/* A probe that came back open, closed or rejected proves the address alive, for 3 periods. */
static void test_liveness_from_probes(void **unused)
{
	matrix_t *m = small();
	state_t *s = state_new(m, NULL);
	report_t *r;

	(void)unused;
	r = rep("w1", "web", "10.0.0.1", 1);
	add(r, "app", "app.x", "10.0.0.2", 22, FILTERED);
	ingest(s, r, 1000);
	assert_cell(s, 1000, "web", "app", 22, VERDICT_UNVERIFIED);

	/* Another agent's open probe of the address proves it alive. */
	r = rep("w2", "web", "10.0.0.4", 1);
	add(r, "app", "app.x", "10.0.0.2", 8000, OPEN);
	ingest(s, r, 2000);
	assert_cell(s, 2000, "web", "app", 22, VERDICT_OK);

	/* Up to 3 periods (30 s) after the evidence, and not one ms more. */
	r = rep("w1", "web", "10.0.0.1", 2);
	add(r, "app", "app.x", "10.0.0.2", 22, FILTERED);
	ingest(s, r, 32000);
	assert_cell(s, 32000, "web", "app", 22, VERDICT_OK);
	assert_cell(s, 32001, "web", "app", 22, VERDICT_UNVERIFIED);

	/* Unreachable does not prove it; rejected and closed do. */
	r = rep("w1", "web", "10.0.0.1", 3);
	add(r, "db", "db.x", "10.0.0.9", 22, FILTERED);
	add(r, "db", "db.x", "10.0.0.9", 5432, UNREACHABLE);
	ingest(s, r, 40000);
	assert_cell(s, 40000, "web", "db", 22, VERDICT_UNVERIFIED);
	r = rep("w1", "web", "10.0.0.1", 4);
	add(r, "db", "db.x", "10.0.0.9", 5432, REJECTED);
	ingest(s, r, 40000);
	assert_cell(s, 40000, "web", "db", 22, VERDICT_OK);
	assert_cell(s, 40000, "web", "db", 5432, VERDICT_VIOLATION);
	r = rep("w1", "web", "10.0.0.1", 5);
	add(r, "ext", "198.18.0.250", "198.18.0.250", 443, CLOSED);
	add(r, "ext", "198.18.0.250", "198.18.0.250", 22, FILTERED);
	ingest(s, r, 40000);
	assert_cell(s, 40000, "web", "ext", 22, VERDICT_OK);
	state_free(s);
	matrix_free(m);
}

/* An agent reporting from an address proves it alive, for 3 of that agent's periods. */
static void test_liveness_from_agent_address(void **unused)
{
	matrix_t *m = small();
	state_t *s = state_new(m, NULL);
	report_t *r;

	(void)unused;
	r = rep("w1", "web", "10.0.0.1", 1);
	add(r, "app", "app.x", "10.0.0.2", 22, FILTERED);
	ingest(s, r, 1000);
	assert_cell(s, 1000, "web", "app", 22, VERDICT_UNVERIFIED);

	/* An app task at 10.0.0.2 reports, with no results at all. */
	ingest(s, rep("a1", "app", "10.0.0.2", 1), 1000);
	assert_cell(s, 1000, "web", "app", 22, VERDICT_OK);

	/* The app agent goes quiet; web keeps timing out: alive no longer. */
	r = rep("w1", "web", "10.0.0.1", 2);
	add(r, "app", "app.x", "10.0.0.2", 22, FILTERED);
	ingest(s, r, 31001);
	assert_cell(s, 31001, "web", "app", 22, VERDICT_UNVERIFIED);

	/* Spelled as an IPv4-mapped IPv6 address, it is the same address. */
	ingest(s, rep("a1", "app", "::ffff:10.0.0.2", 2), 31002);
	assert_cell(s, 31002, "web", "app", 22, VERDICT_OK);
	state_free(s);
	matrix_free(m);
}

/* A silent destination's timeouts on ports it does not serve prove nothing, alive or not. */
static void test_silent(void **unused)
{
	matrix_t *m = small();
	state_t *s = state_new(m, NULL);
	report_t *r;

	(void)unused;
	r = rep("w1", "web", "10.0.0.1", 1);
	add(r, "lb", "lb.x", "10.0.0.5", 443, CLOSED); /* proves lb alive */
	add(r, "lb", "lb.x", "10.0.0.5", 22, FILTERED);
	ingest(s, r, 1000);
	assert_cell(s, 1000, "web", "lb", 443, VERDICT_VIOLATION);
	assert_cell(s, 1000, "web", "lb", 22, VERDICT_UNVERIFIED);

	/* On a port it serves, a timeout proves the path closed. */
	r = rep("w2", "web", "10.0.0.4", 1);
	add(r, "lb", "lb.x", "10.0.0.5", 443, FILTERED);
	ingest(s, r, 1000);
	assert_int_equal(cell_count(s, 1000, "web", "lb", 443, "ok"), 1);
	state_free(s);
	matrix_free(m);
}

/* An allowed path towards a probe_allowed:false destination is unobserved, whatever arrives. */
static void test_probe_allowed_false_is_unobserved(void **unused)
{
	matrix_t *m = matrix_q(M_SMALL, ", 'probe_allowed': false", "");
	state_t *s = state_new(m, NULL);
	report_t *r;
	cJSON *view;
	cJSON *cell;

	(void)unused;
	assert_cell(s, 1000, "app", "db", 5432, VERDICT_UNOBSERVED);
	r = rep("a1", "app", "10.0.0.2", 1);
	add(r, "db", "db.x", "10.0.0.9", 5432, FILTERED);
	add(r, "db", "db.x", "10.0.0.9", 22, FILTERED);
	ingest(s, r, 1000);
	view = state_matrix_view(s, 1000, WALL + 1000);
	cell = find_cell(view, "app", "db", 5432);
	assert_non_null(cell);
	assert_string_equal(str_of(cell, "verdict"), "unobserved");
	assert_int_equal(n_keys(cJSON_GetObjectItemCaseSensitive(cell, "counts")), 0);
	/* What arrived is still shown. */
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(cell, "observations")),
	                 1);
	cJSON_Delete(view);
	/* Its denied paths are judged as usual. */
	assert_cell(s, 1000, "app", "db", 22, VERDICT_UNVERIFIED);
	state_free(s);
	matrix_free(m);
}

/* A daemon agent silent for more than 3 of its periods makes its cells and itself stale. */
static void test_stale_by_period(void **unused)
{
	matrix_t *m = small();
	state_t *s = state_new(m, NULL);
	state_counts_t c;
	report_t *r;
	cJSON *view;

	(void)unused;
	r = rep("w1", "web", "10.0.0.1", 1);
	add(r, "app", "app.x", "10.0.0.2", 8000, OPEN);
	ingest(s, r, 1000);
	assert_cell(s, 31000, "web", "app", 8000, VERDICT_OK);
	state_count(s, 31000, &c);
	assert_int_equal(c.agents_live, 1);
	assert_cell(s, 31001, "web", "app", 8000, VERDICT_STALE);
	state_count(s, 31001, &c);
	assert_int_equal(c.agents_live, 0);
	assert_int_equal(c.agents_stale, 1);
	assert_int_equal(c.cells[VERDICT_STALE], 1);
	view = state_matrix_view(s, 31001, WALL + 31001);
	assert_string_equal(
	    str_of(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(view, "agents"), 0),
	           "state"),
	    "stale");
	cJSON_Delete(view);

	/* A fresh observation outweighs a stale one: the stale one is counted, not judged. */
	r = rep("w2", "web", "10.0.0.4", 1);
	add(r, "app", "app.x", "10.0.0.2", 8000, CLOSED);
	ingest(s, r, 20000);
	assert_cell(s, 31001, "web", "app", 8000, VERDICT_NO_LISTENER);
	assert_int_equal(cell_count(s, 31001, "web", "app", 8000, "stale"), 1);

	/* The period is the longer of the interval and the round's duration. */
	r = rep("w3", "web", "10.0.0.6", 1);
	r->round_ms = 20000;
	add(r, "web", "web.x", "10.0.0.1", 22, FILTERED);
	ingest(s, r, 1000);
	assert_cell(s, 61000, "web", "web", 22, VERDICT_UNVERIFIED);
	assert_cell(s, 61001, "web", "web", 22, VERDICT_STALE);
	state_free(s);
	matrix_free(m);
}

/*
 * A path probed less often than the agent's interval (allowed_interval_s) is
 * neither stale nor dead between two of its probes.
 */
static void test_path_interval_counts_for_staleness_and_liveness(void **unused)
{
	matrix_t *m = matrix_q(M_SMALL, ", 'allowed_interval_s': 900", "");
	state_t *s = state_new(m, NULL);
	report_t *r;

	(void)unused;
	r = rep("a1", "app", "10.0.0.2", 1);
	add(r, "db", "db.x", "10.0.0.9", 5432, OPEN);
	ingest(s, r, 1000);
	/* The agent keeps reporting every 10 s, without the rare probe. */
	ingest(s, rep("a1", "app", "10.0.0.2", 2), 500000);
	assert_cell(s, 500000, "app", "db", 5432, VERDICT_OK);
	r = rep("w1", "web", "10.0.0.1", 1);
	add(r, "db", "db.x", "10.0.0.9", 22, FILTERED);
	ingest(s, r, 500000);
	assert_cell(s, 500000, "web", "db", 22, VERDICT_OK);
	assert_cell(s, 2701001, "app", "db", 5432, VERDICT_STALE);
	state_free(s);
	matrix_free(m);
}

/* A once report never goes stale; its observations go with the retention. */
static void test_once_never_stale_aged_out(void **unused)
{
	const state_limits_t limits = {0, 0, 600000};
	matrix_t *m = small();
	state_t *s = state_new(m, &limits);
	state_counts_t c;
	report_t *r;

	(void)unused;
	r = rep("w1", "web", "10.0.0.1", 1);
	r->mode = REPORT_MODE_ONCE;
	add(r, "app", "app.x", "10.0.0.2", 8000, OPEN);
	ingest(s, r, 1000);
	assert_cell(s, 599000, "web", "app", 8000, VERDICT_OK);
	state_count(s, 599000, &c);
	assert_int_equal(c.agents_live, 1);
	assert_int_equal(c.agents_stale, 0);
	state_expire(s, 601000);
	assert_cell(s, 601000, "web", "app", 8000, VERDICT_OK);
	state_expire(s, 601001);
	assert_cell(s, 601001, "web", "app", 8000, VERDICT_UNOBSERVED);
	state_count(s, 601001, &c);
	assert_int_equal(c.agents_live + c.agents_stale + c.observations, 0);
	state_free(s);
	matrix_free(m);
}

/* A seq at or below the highest accepted changes nothing; a new boot starts over. */
static void test_duplicate_and_new_boot(void **unused)
{
	matrix_t *m = small();
	state_t *s = state_new(m, NULL);
	state_ingest_t out;
	report_t *r;
	cJSON *view;
	char t[32];

	(void)unused;
	r = rep("w1", "web", "10.0.0.1", 0);
	add(r, "app", "app.x", "10.0.0.2", 8000, OPEN);
	ingest(s, r, 1000);

	r = rep("w1", "web", "10.0.0.1", 0);
	add(r, "app", "app.x", "10.0.0.2", 8000, FILTERED);
	assert_int_equal(state_ingest(s, r, 5000, WALL + 5000, &out), 0);
	assert_true(out.duplicate);
	assert_int_equal(out.accepted, 0);
	report_free(r);
	assert_cell(s, 5000, "web", "app", 8000, VERDICT_OK);
	/* Not even the agent's last_seen moves. */
	view = state_matrix_view(s, 5000, WALL + 5000);
	assert_string_equal(
	    str_of(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(view, "agents"), 0),
	           "last_seen"),
	    report_format_time(WALL + 1000, t, sizeof(t)));
	cJSON_Delete(view);

	ingest(s, rep("w1", "web", "10.0.0.1", 7), 6000);
	r = rep("w1", "web", "10.0.0.1", 6);
	assert_int_equal(state_ingest(s, r, 6000, WALL + 6000, &out), 0);
	assert_true(out.duplicate);
	report_free(r);

	/* The task restarted: a new boot, seq from 1 again. */
	r = rep("w1", "web", "10.0.0.1", 1);
	assert_int_equal(report_set_string(&r->agent.boot, "b2"), 0);
	add(r, "app", "app.x", "10.0.0.2", 8000, FILTERED);
	ingest(s, r, 7000);
	assert_cell(s, 7000, "web", "app", 8000, VERDICT_BLOCKED);
	r = rep("w1", "web", "10.0.0.1", 1);
	assert_int_equal(report_set_string(&r->agent.boot, "b2"), 0);
	assert_int_equal(state_ingest(s, r, 7000, WALL + 7000, &out), 0);
	assert_true(out.duplicate);
	report_free(r);
	state_free(s);
	matrix_free(m);
}

/* A final report forgets the agent and everything it observed. */
static void test_final_forgets_agent(void **unused)
{
	matrix_t *m = small();
	state_t *s = state_new(m, NULL);
	state_counts_t c;
	report_t *r;

	(void)unused;
	r = rep("w1", "web", "10.0.0.1", 1);
	add(r, "app", "app.x", "10.0.0.2", 8000, OPEN);
	add(r, "cache", "cache.x", "10.0.0.7", 6379, OPEN);
	ingest(s, r, 1000);
	r = rep("w2", "web", "10.0.0.4", 1);
	add(r, "app", "app.x", "10.0.0.2", 22, FILTERED);
	ingest(s, r, 1000);
	assert_cell(s, 1000, "web", "cache", 6379, VERDICT_UNKNOWN);

	r = rep("w1", "web", "10.0.0.1", 2);
	r->final = true;
	add(r, "app", "app.x", "10.0.0.2", 8000, FILTERED);
	ingest(s, r, 2000);
	state_count(s, 2000, &c);
	assert_int_equal(c.agents_live, 1);
	assert_int_equal(c.observations, 1);
	assert_cell(s, 2000, "web", "app", 8000, VERDICT_UNOBSERVED);
	assert_int_equal(cell_v(s, 2000, "web", "cache", 6379), VERDICT_COUNT);
	/* What w1 proved alive (10.0.0.2 answered it) stays proved for its window. */
	assert_cell(s, 2000, "web", "app", 22, VERDICT_OK);
	state_free(s);
	matrix_free(m);
}

/* Reports about roles or ports the matrix does not know become unknown cells, last. */
static void test_unknown_cells(void **unused)
{
	matrix_t *m = small();
	state_t *s = state_new(m, NULL);
	state_counts_t c;
	report_t *r;
	cJSON *view;
	cJSON *cells;
	cJSON *cell;
	int n;

	(void)unused;
	r = rep("w1", "web", "10.0.0.1", 1);
	add(r, "cache", "cache.x", "10.0.0.7", 6379, OPEN); /* unknown destination role */
	add(r, "app", "app.x", "10.0.0.2", 9999, FILTERED); /* a port not in the plan */
	ingest(s, r, 1000);
	r = rep("b1", "batch", "10.0.0.8", 1); /* unknown source role */
	add(r, "app", "app.x", "10.0.0.2", 8000, OPEN);
	ingest(s, r, 1000);
	/* A known role without agents, run with --once: known cells, in matrix order. */
	r = rep("x1", "ext", "198.18.0.250", 1);
	r->mode = REPORT_MODE_ONCE;
	add(r, "web", "web.x", "10.0.0.1", 80, CLOSED);
	ingest(s, r, 1000);

	view = state_matrix_view(s, 1000, WALL + 1000);
	cells = cJSON_GetObjectItemCaseSensitive(view, "cells");
	n = cJSON_GetArraySize(cells);
	assert_int_equal(n, SMALL_CELLS + 1 + 3);
	cell = cJSON_GetArrayItem(cells, SMALL_CELLS);
	assert_string_equal(str_of(cell, "src_role"), "ext");
	assert_string_equal(str_of(cell, "expected"), "deny");
	assert_string_equal(str_of(cell, "verdict"), "violation");
	cell = cJSON_GetArrayItem(cells, SMALL_CELLS + 1);
	assert_string_equal(str_of(cell, "src_role"), "batch");
	assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(cell, "expected")));
	assert_string_equal(str_of(cell, "verdict"), "unknown");
	assert_int_equal(cJSON_GetObjectItemCaseSensitive(
	                     cJSON_GetObjectItemCaseSensitive(cell, "counts"), "unknown")
	                     ->valueint,
	                 1);
	cell = cJSON_GetArrayItem(cells, SMALL_CELLS + 2);
	assert_string_equal(str_of(cell, "dst_role"), "app");
	assert_int_equal(cJSON_GetObjectItemCaseSensitive(cell, "port")->valueint, 9999);
	assert_string_equal(str_of(cell, "verdict"), "unknown");
	cell = cJSON_GetArrayItem(cells, SMALL_CELLS + 3);
	assert_string_equal(str_of(cell, "dst_role"), "cache");
	assert_string_equal(str_of(cell, "verdict"), "unknown");
	cJSON_Delete(view);
	state_count(s, 1000, &c);
	assert_int_equal(c.cells[VERDICT_UNKNOWN], 3);
	assert_int_equal(c.cells[VERDICT_VIOLATION], 1);
	state_free(s);
	matrix_free(m);
}

/* A reload judges the same observations by the new matrix. */
static void test_reload_flips_verdict(void **unused)
{
	matrix_t *m = small();
	matrix_t *m2 = matrix_q(M_SMALL, "", ", {'from': 'web', 'to': 'db', 'ports': [5432]}");
	state_t *s = state_new(m, NULL);
	report_t *r;

	(void)unused;
	r = rep("w1", "web", "10.0.0.1", 1);
	add(r, "db", "db.x", "10.0.0.9", 5432, OPEN);
	add(r, "app", "app.x", "10.0.0.2", 8000, OPEN);
	ingest(s, r, 1000);
	assert_cell(s, 1000, "web", "db", 5432, VERDICT_VIOLATION);
	assert_int_equal(state_set_matrix(s, m2), 0);
	assert_cell(s, 1000, "web", "db", 5432, VERDICT_OK);
	assert_cell(s, 1000, "web", "app", 8000, VERDICT_OK);
	assert_int_equal(state_set_matrix(s, m), 0);
	assert_cell(s, 1000, "web", "db", 5432, VERDICT_VIOLATION);
	state_free(s);
	matrix_free(m2);
	matrix_free(m);
}

/* A reload that drops a role makes its observations unknown rather than losing them. */
static void test_reload_unknown_role(void **unused)
{
	matrix_t *m = small();
	matrix_t *m2 = matrix_q(
	    "{'version': 1, 'name': 'tiny', 'probe': {'interval_s': 10}, 'roles': {"
	    "'web': {'endpoints': ['web.x'], 'ports': [80], 'agent': true}}, 'allow': [] %s%s}",
	    "", "");
	state_t *s = state_new(m, NULL);
	state_counts_t c;
	report_t *r;

	(void)unused;
	r = rep("w1", "web", "10.0.0.1", 1);
	add(r, "app", "app.x", "10.0.0.2", 8000, OPEN);
	ingest(s, r, 1000);
	assert_int_equal(state_set_matrix(s, m2), 0);
	assert_cell(s, 1000, "web", "app", 8000, VERDICT_UNKNOWN);
	state_count(s, 1000, &c);
	assert_int_equal(c.cells[VERDICT_UNOBSERVED], 1); /* web → web:80 */
	assert_int_equal(c.cells[VERDICT_UNKNOWN], 1);
	assert_int_equal(state_set_matrix(s, m), 0);
	assert_cell(s, 1000, "web", "app", 8000, VERDICT_OK);
	state_free(s);
	matrix_free(m2);
	matrix_free(m);
}

/* Beyond the bounds a report is refused whole, and nothing changes. */
static void test_bounds(void **unused)
{
	const state_limits_t limits = {1, 2, 0};
	matrix_t *m = small();
	state_t *s = state_new(m, &limits);
	state_ingest_t out;
	state_counts_t c;
	report_t *r;

	(void)unused;
	r = rep("w1", "web", "10.0.0.1", 1);
	add(r, "app", "app.x", "10.0.0.2", 8000, OPEN);
	add(r, "app", "app2.x", "10.0.0.3", 8000, OPEN);
	ingest(s, r, 1000);

	/* A second agent. */
	r = rep("w2", "web", "10.0.0.4", 1);
	assert_int_equal(state_ingest(s, r, 1000, WALL + 1000, &out), -ENOSPC);
	report_free(r);
	/* A third observation, with an update to an existing one. */
	r = rep("w1", "web", "10.0.0.1", 2);
	add(r, "app", "app.x", "10.0.0.2", 8000, FILTERED);
	add(r, "db", "db.x", "10.0.0.9", 22, OPEN);
	assert_int_equal(state_ingest(s, r, 2000, WALL + 2000, &out), -ENOSPC);
	report_free(r);
	state_count(s, 2000, &c);
	assert_int_equal(c.agents_live, 1);
	assert_int_equal(c.observations, 2);
	assert_cell(s, 2000, "web", "app", 8000, VERDICT_OK);
	assert_cell(s, 2000, "web", "db", 22, VERDICT_UNOBSERVED);
	/* Nor did the refused report's seq count: the agent may send it again. */
	r = rep("w1", "web", "10.0.0.1", 2);
	add(r, "app", "app.x", "10.0.0.2", 8000, FILTERED);
	add(r, "app", "app2.x", "10.0.0.3", 8000, FILTERED);
	ingest(s, r, 2000);
	assert_cell(s, 2000, "web", "app", 8000, VERDICT_BLOCKED);
	state_free(s);
	matrix_free(m);
}

/* Silent agents and old observations are forgotten after the retention. */
static void test_retention_expiry(void **unused)
{
	const state_limits_t limits = {0, 0, 60000};
	matrix_t *m = small();
	state_t *s = state_new(m, &limits);
	state_counts_t c;
	report_t *r;

	(void)unused;
	r = rep("w1", "web", "10.0.0.1", 1);
	add(r, "app", "app.x", "10.0.0.2", 8000, OPEN);
	add(r, "app", "app2.x", "10.0.0.3", 8000, OPEN);
	ingest(s, r, 1000);
	r = rep("w1", "web", "10.0.0.1", 2);
	add(r, "app", "app.x", "10.0.0.2", 8000, OPEN);
	ingest(s, r, 40000);

	state_expire(s, 61000);
	state_count(s, 61000, &c);
	assert_int_equal(c.observations, 2);
	/* The observation it stopped making goes; the agent stays. */
	state_expire(s, 61001);
	state_count(s, 61001, &c);
	assert_int_equal(c.observations, 1);
	assert_int_equal(c.agents_live, 1);
	state_expire(s, 100001);
	state_count(s, 100001, &c);
	assert_int_equal(c.agents_live + c.agents_stale + c.observations, 0);
	assert_int_equal(c.cells[VERDICT_UNOBSERVED], SMALL_CELLS);
	state_free(s);
	matrix_free(m);
}

/* Errors with no address are kept per target, and judged inconclusive. */
static void test_error_keyed_by_target(void **unused)
{
	matrix_t *m = small();
	state_t *s = state_new(m, NULL);
	report_t *r;
	cJSON *view;
	cJSON *obs;

	(void)unused;
	r = rep("w1", "web", "10.0.0.1", 1);
	add(r, "app", "app.x", NULL, 8000, ERROR);
	add(r, "app", "app2.x", NULL, 8000, ERROR);
	ingest(s, r, 1000);
	assert_cell(s, 1000, "web", "app", 8000, VERDICT_INCONCLUSIVE);
	assert_int_equal(cell_count(s, 1000, "web", "app", 8000, "inconclusive"), 2);
	view = state_matrix_view(s, 1000, WALL + 1000);
	obs = cJSON_GetArrayItem(
	    cJSON_GetObjectItemCaseSensitive(find_cell(view, "web", "app", 8000), "observations"),
	    0);
	assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(obs, "address")));
	assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(obs, "latency_us")));
	cJSON_Delete(view);
	state_free(s);
	matrix_free(m);
}

/* An agent that changes role takes its observations to its new role's cells. */
static void test_agent_role_change(void **unused)
{
	matrix_t *m = small();
	state_t *s = state_new(m, NULL);
	report_t *r;

	(void)unused;
	r = rep("x", "web", "10.0.0.1", 1);
	add(r, "app", "app.x", "10.0.0.2", 8000, OPEN);
	ingest(s, r, 1000);
	r = rep("x", "app", "10.0.0.1", 2);
	add(r, "app", "app.x", "10.0.0.2", 8000, OPEN);
	ingest(s, r, 2000);
	assert_cell(s, 2000, "web", "app", 8000, VERDICT_UNOBSERVED);
	assert_cell(s, 2000, "app", "app", 8000, VERDICT_VIOLATION);
	state_free(s);
	matrix_free(m);
}

/*
 * The role an agent id is held by, which the collector checks a report's key
 * against: kept while the agent is live and stale, gone after its final report
 * or the retention.
 */
static void test_agent_role_held_until_forgotten(void **unused)
{
	const state_limits_t limits = {0, 0, 60000};
	matrix_t *m = small();
	state_t *s = state_new(m, &limits);
	state_counts_t c;
	report_t *r;

	(void)unused;
	assert_null(state_agent_role(s, "a1"));
	r = rep("a1", "app", "10.0.0.2", 1);
	add(r, "db", "db.x", "10.0.0.5", 5432, OPEN);
	ingest(s, r, 1000);
	r = rep("w1", "web", "10.0.0.1", 1);
	ingest(s, r, 1000);
	assert_string_equal(state_agent_role(s, "a1"), "app");
	assert_string_equal(state_agent_role(s, "w1"), "web");
	assert_null(state_agent_role(s, "A1"));
	/* Stale (silent for more than 3 periods of 10 s): still held. */
	state_count(s, 45000, &c);
	assert_int_equal(c.agents_stale, 2);
	assert_string_equal(state_agent_role(s, "a1"), "app");
	/* Final: forgotten. */
	r = rep("w1", "web", "10.0.0.1", 2);
	r->final = true;
	ingest(s, r, 45000);
	assert_null(state_agent_role(s, "w1"));
	/* Retention: forgotten. */
	state_expire(s, 61001);
	assert_null(state_agent_role(s, "a1"));
	state_free(s);
	matrix_free(m);
}

/* The matrix view, field by field, on the shipped AFIRGen matrix. */
static void test_matrix_view_shape(void **unused)
{
	char err[MATRIX_ERR_MAX];
	matrix_t *m = matrix_load("examples/afirgen.matrix.json", err, sizeof(err));
	state_t *s;
	report_t *r;
	cJSON *view;
	cJSON *parsed;
	cJSON *cells;
	cJSON *cell;
	cJSON *obs;
	cJSON *agent;
	char *text;
	char t[32];
	int prev_src = -1;
	int prev_dst = -1;
	int prev_port = -1;
	int n_nginx = 0;

	(void)unused;
	if (!m)
		fail_msg("%s", err);
	s = state_new(m, NULL);
	assert_non_null(s);
	r = rep("n1", "nginx", "198.18.0.11", 1);
	add(r, "main-backend", "backend.afirgen.internal", "198.18.0.12", 8000, OPEN);
	add(r, "rds-mysql", "db.afirgen.internal", "198.18.0.20", 3306, FILTERED);
	ingest(s, r, 1000);

	/* Through text and back, as a client gets it. */
	view = state_matrix_view(s, 2000, WALL + 2000);
	assert_non_null(view);
	text = cJSON_PrintUnformatted(view);
	cJSON_Delete(view);
	parsed = cJSON_Parse(text);
	free(text);
	assert_non_null(parsed);

	assert_int_equal(n_keys(parsed), 5);
	assert_string_equal(str_of(parsed, "schema"), "sgprobe.matrix-view/v1");
	assert_string_equal(str_of(parsed, "matrix"), "afirgen-prod");
	assert_string_equal(str_of(parsed, "generated_at"),
	                    report_format_time(WALL + 2000, t, sizeof(t)));

	/* Six agent roles, each with 11 destinations × 7 ports, + the collector's 9443. */
	cells = cJSON_GetObjectItemCaseSensitive(parsed, "cells");
	assert_int_equal(cJSON_GetArraySize(cells), 6 * 85);
	cJSON_ArrayForEach(cell, cells)
	{
		int src = matrix_role_index(m, str_of(cell, "src_role"));
		int dst = matrix_role_index(m, str_of(cell, "dst_role"));
		int port = cJSON_GetObjectItemCaseSensitive(cell, "port")->valueint;

		assert_int_equal(n_keys(cell), 8);
		assert_true(m->roles[src].agent);
		assert_true(dst >= 0);
		/* Ordered by source role, destination role (matrix order), port. */
		assert_true(
		    src > prev_src ||
		    (src == prev_src && (dst > prev_dst || (dst == prev_dst && port > prev_port))));
		prev_src = src;
		prev_dst = dst;
		prev_port = port;
		assert_string_equal(
		    str_of(cell, "expected"),
		    matrix_allows(m, (size_t)src, (size_t)dst, (uint16_t)port) ? "allow" : "deny");
		assert_true(cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(cell, "counts")));
		assert_true(cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(cell, "observations")));
		if (!strcmp(str_of(cell, "src_role"), "nginx"))
			n_nginx++;
	}
	assert_int_equal(n_nginx, 85);
	assert_string_equal(str_of(cJSON_GetArrayItem(cells, 0), "src_role"), "nginx");
	assert_string_equal(str_of(cJSON_GetArrayItem(cells, 0), "dst_role"), "alb");

	cell = find_cell(parsed, "nginx", "main-backend", 8000);
	assert_non_null(cell);
	assert_string_equal(str_of(cell, "expected"), "allow");
	assert_string_equal(str_of(cell, "verdict"), "ok");
	assert_int_equal(n_keys(cJSON_GetObjectItemCaseSensitive(cell, "counts")), 1);
	assert_int_equal(
	    cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(cell, "counts"), "ok")
	        ->valueint,
	    1);
	assert_string_equal(str_of(cell, "last_seen"),
	                    report_format_time(WALL + 1000, t, sizeof(t)));
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(cell, "observations")),
	                 1);
	obs = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(cell, "observations"), 0);
	assert_int_equal(n_keys(obs), 6);
	assert_string_equal(str_of(obs, "agent"), "n1");
	assert_string_equal(str_of(obs, "address"), "198.18.0.12");
	assert_string_equal(str_of(obs, "state"), "open");
	assert_string_equal(str_of(obs, "verdict"), "ok");
	assert_int_equal(cJSON_GetObjectItemCaseSensitive(obs, "latency_us")->valueint, 500);
	assert_string_equal(str_of(obs, "at"), T0);

	/* Nothing has proved RDS alive: the denied timeout is unverified. */
	cell = find_cell(parsed, "nginx", "rds-mysql", 3306);
	assert_string_equal(str_of(cell, "expected"), "deny");
	assert_string_equal(str_of(cell, "verdict"), "unverified");

	cell = find_cell(parsed, "main-backend", "rds-mysql", 3306);
	assert_string_equal(str_of(cell, "expected"), "allow");
	assert_string_equal(str_of(cell, "verdict"), "unobserved");
	assert_int_equal(n_keys(cJSON_GetObjectItemCaseSensitive(cell, "counts")), 0);
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(cell, "observations")),
	                 0);
	assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(cell, "last_seen")));

	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(parsed, "agents")), 1);
	agent = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(parsed, "agents"), 0);
	assert_int_equal(n_keys(agent), 7);
	assert_string_equal(str_of(agent, "id"), "n1");
	assert_string_equal(str_of(agent, "role"), "nginx");
	assert_string_equal(str_of(agent, "cluster"), "c1");
	assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(agent, "az")));
	assert_string_equal(str_of(agent, "address"), "198.18.0.11");
	assert_string_equal(str_of(agent, "state"), "live");
	assert_string_equal(str_of(agent, "last_seen"),
	                    report_format_time(WALL + 1000, t, sizeof(t)));
	cJSON_Delete(parsed);
	state_free(s);
	matrix_free(m);
}

/* The Prometheus text, line by line, for a small case (label values escaped). */
static void test_prometheus_text(void **unused)
{
	static const char want[] =
	    "# HELP sgprobe_cells Matrix cells by verdict, cell states included.\n"
	    "# TYPE sgprobe_cells gauge\n"
	    "sgprobe_cells{verdict=\"ok\"} 1\n"
	    "sgprobe_cells{verdict=\"unverified\"} 0\n"
	    "sgprobe_cells{verdict=\"inconclusive\"} 0\n"
	    "sgprobe_cells{verdict=\"no_listener\"} 0\n"
	    "sgprobe_cells{verdict=\"tls_failed\"} 0\n"
	    "sgprobe_cells{verdict=\"blocked\"} 0\n"
	    "sgprobe_cells{verdict=\"violation\"} 0\n"
	    "sgprobe_cells{verdict=\"unobserved\"} 1\n"
	    "sgprobe_cells{verdict=\"stale\"} 0\n"
	    "sgprobe_cells{verdict=\"unknown\"} 1\n"
	    "# HELP sgprobe_cell_verdict Each cell whose verdict is not ok, labelled with it; "
	    "always 1.\n"
	    "# TYPE sgprobe_cell_verdict gauge\n"
	    "sgprobe_cell_verdict{src_role=\"a\",dst_role=\"a\",port=\"80\",verdict=\"unobserved\"}"
	    " "
	    "1\n"
	    "sgprobe_cell_verdict{src_role=\"a\",dst_role=\"q\\\"x\\\\y\\nz\",port=\"7\","
	    "verdict=\"unknown\"} 1\n"
	    "# HELP sgprobe_agents Agents by state.\n"
	    "# TYPE sgprobe_agents gauge\n"
	    "sgprobe_agents{state=\"live\"} 1\n"
	    "sgprobe_agents{state=\"stale\"} 0\n"
	    "# HELP sgprobe_observations Observations held: the latest per agent, address and "
	    "port.\n"
	    "# TYPE sgprobe_observations gauge\n"
	    "sgprobe_observations 2\n";
	matrix_t *m = matrix_q("{'version': 1, 'name': 'p', 'probe': {'interval_s': 10}, 'roles': {"
	                       "'a': {'endpoints': ['a.x'], 'ports': [80], 'agent': true},"
	                       "'b': {'endpoints': ['b.x'], 'ports': [443], 'agent': false}},"
	                       "'allow': [{'from': 'a', 'to': 'b', 'ports': [443]}] %s%s}",
	                       "", "");
	state_t *s = state_new(m, NULL);
	report_t *r;
	char *text;

	(void)unused;
	r = rep("a1", "a", "10.0.0.1", 1);
	add(r, "b", "b.x", "10.0.0.2", 443, OPEN);
	add(r, "q\"x\\y\nz", "weird", "10.0.0.3", 7, FILTERED);
	ingest(s, r, 1000);
	text = state_prometheus(s, 1000);
	assert_non_null(text);
	assert_string_equal(text, want);
	free(text);
	state_free(s);
	matrix_free(m);
}

/* Per cluster: each judged from its own agents, every agent role listed. */
static void test_clusters(void **unused)
{
	matrix_t *m = small();
	state_t *s = state_new(m, NULL);
	state_clusters_t *cl;
	report_t *r;

	(void)unused;
	r = rep("w1", "web", "10.0.0.1", 1);
	add(r, "app", "app.x", "10.0.0.2", 8000, FILTERED);
	ingest(s, r, 1000);
	r = rep("w2", "web", "10.1.0.1", 1);
	assert_int_equal(report_set_string(&r->agent.cluster, "c0"), 0);
	add(r, "app", "app.x", "10.1.0.2", 8000, OPEN);
	ingest(s, r, 1000);
	r = rep("b1", "batch", "10.1.0.8", 1);
	assert_int_equal(report_set_string(&r->agent.cluster, "c0"), 0);
	ingest(s, r, 1000);

	cl = state_clusters(s, 1000);
	assert_non_null(cl);
	assert_int_equal(cl->n, 2);
	assert_string_equal(cl->v[0].name, "c0");
	assert_int_equal(cl->v[0].counts.cells[VERDICT_OK], 1);
	assert_int_equal(cl->v[0].counts.cells[VERDICT_UNOBSERVED], SMALL_CELLS - 1);
	assert_int_equal(cl->v[0].counts.agents_live, 2);
	assert_int_equal(cl->v[0].counts.observations, 1);
	assert_int_equal(cl->v[0].n_cells, 0);
	assert_int_equal(cl->v[0].n_roles, 3);
	assert_string_equal(cl->v[0].roles[0].role, "web");
	assert_int_equal(cl->v[0].roles[0].live, 1);
	assert_string_equal(cl->v[0].roles[1].role, "app");
	assert_int_equal(cl->v[0].roles[1].live + cl->v[0].roles[1].stale, 0);
	assert_string_equal(cl->v[0].roles[2].role, "batch");
	assert_int_equal(cl->v[0].roles[2].live, 1);

	assert_string_equal(cl->v[1].name, "c1");
	assert_int_equal(cl->v[1].counts.cells[VERDICT_BLOCKED], 1);
	assert_int_equal(cl->v[1].counts.cells[VERDICT_UNOBSERVED], SMALL_CELLS - 1);
	assert_int_equal(cl->v[1].n_cells, 1);
	assert_string_equal(cl->v[1].cells[0].src_role, "web");
	assert_string_equal(cl->v[1].cells[0].dst_role, "app");
	assert_int_equal(cl->v[1].cells[0].port, 8000);
	assert_int_equal(cl->v[1].cells[0].verdict, VERDICT_BLOCKED);
	assert_int_equal(cl->v[1].n_roles, 2);
	state_clusters_free(cl);

	/* Stale agents are counted as such, per role. */
	cl = state_clusters(s, 40000);
	assert_non_null(cl);
	assert_int_equal(cl->v[1].roles[0].stale, 1);
	assert_int_equal(cl->v[1].counts.agents_stale, 1);
	assert_int_equal(cl->v[1].counts.cells[VERDICT_STALE], 1);
	state_clusters_free(cl);
	state_free(s);
	matrix_free(m);
}

/* Many agents: the tables grow, counts stay exact, and final reports empty the state. */
static void test_many_agents(void **unused)
{
	enum { AGENTS = 2000, RESULTS = 20 };
	matrix_t *m = small();
	state_t *s = state_new(m, NULL);
	state_counts_t c;
	char id[32];
	char addr[32];
	report_t *r;
	int i;
	int j;

	(void)unused;
	for (i = 0; i < AGENTS; i++) {
		snprintf(id, sizeof(id), "w%d", i);
		snprintf(addr, sizeof(addr), "10.1.%d.%d", i / 250, i % 250);
		r = rep(id, "web", addr, 1);
		for (j = 0; j < RESULTS; j++) {
			char dst[32];

			snprintf(dst, sizeof(dst), "10.2.0.%d", j);
			add(r, "app", "app.x", dst, 8000, OPEN);
		}
		ingest(s, r, 1000);
	}
	state_count(s, 1000, &c);
	assert_int_equal(c.agents_live, AGENTS);
	assert_int_equal(c.observations, AGENTS * RESULTS);
	assert_int_equal(cell_count(s, 1000, "web", "app", 8000, "ok"), AGENTS * RESULTS);
	for (i = 0; i < AGENTS; i++) {
		snprintf(id, sizeof(id), "w%d", i);
		r = rep(id, "web", NULL, 2);
		r->final = true;
		ingest(s, r, 2000);
	}
	state_count(s, 2000, &c);
	assert_int_equal(c.agents_live + c.agents_stale + c.observations, 0);
	assert_int_equal(c.cells[VERDICT_UNOBSERVED], SMALL_CELLS);
	state_free(s);
	matrix_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_unobserved_before_any_report),
	    cmocka_unit_test(test_worst_of_across_agents_and_addresses),
	    cmocka_unit_test(test_liveness_from_probes),
	    cmocka_unit_test(test_liveness_from_agent_address),
	    cmocka_unit_test(test_silent),
	    cmocka_unit_test(test_probe_allowed_false_is_unobserved),
	    cmocka_unit_test(test_stale_by_period),
	    cmocka_unit_test(test_path_interval_counts_for_staleness_and_liveness),
	    cmocka_unit_test(test_once_never_stale_aged_out),
	    cmocka_unit_test(test_duplicate_and_new_boot),
	    cmocka_unit_test(test_final_forgets_agent),
	    cmocka_unit_test(test_unknown_cells),
	    cmocka_unit_test(test_reload_flips_verdict),
	    cmocka_unit_test(test_reload_unknown_role),
	    cmocka_unit_test(test_bounds),
	    cmocka_unit_test(test_retention_expiry),
	    cmocka_unit_test(test_error_keyed_by_target),
	    cmocka_unit_test(test_agent_role_change),
	    cmocka_unit_test(test_agent_role_held_until_forgotten),
	    cmocka_unit_test(test_matrix_view_shape),
	    cmocka_unit_test(test_prometheus_text),
	    cmocka_unit_test(test_clusters),
	    cmocka_unit_test(test_many_agents),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
