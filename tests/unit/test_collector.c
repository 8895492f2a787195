/*
 * Unit tests of collector/collector.c: the text of /metrics (the server's
 * counters, the plan refusals apart from the report refusals, the ingest
 * latency histogram) and who may speak for an agent (a key of one role must
 * not take over, or erase with `final`, an agent of another role).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "../../collector/collector.h"

#define T0 "2026-01-01T00:00:00.000Z"

typedef struct {
	char dir[64];
	char matrix[96];
	char keys[96];
	collector_t c;
} fixture_t;

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

/*
 * One collector on a matrix of two agent roles (web → api:8000 allowed) and
 * keys: web-1 for web, api-1 for api, ops-1 for both.
 */
static int setup(void **state)
{
	fixture_t *f = calloc(1, sizeof(*f));
	collector_config_t cfg;
	char err[COLLECTOR_ERR_MAX];

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/sgprobe-test-collector.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->matrix, sizeof(f->matrix), "%s/matrix.json", f->dir);
	snprintf(f->keys, sizeof(f->keys), "%s/keys.json", f->dir);
	write_file(f->matrix,
	           "{\"version\": 1, \"name\": \"t\", \"probe\": {\"interval_s\": 10},"
	           " \"roles\": {"
	           "  \"web\": {\"endpoints\": [\"web.x\"], \"ports\": [80], \"agent\": true},"
	           "  \"api\": {\"endpoints\": [\"api.x\"], \"ports\": [8000], \"agent\": true}},"
	           " \"allow\": [{\"from\": \"web\", \"to\": \"api\", \"ports\": [8000]}]}");
	write_file(f->keys,
	           "{\"keys\": ["
	           " {\"id\": \"web-1\", \"secret\": \"w\", \"roles\": [\"web\"]},"
	           " {\"id\": \"api-1\", \"secret\": \"a\", \"roles\": [\"api\"]},"
	           " {\"id\": \"ops-1\", \"secret\": \"o\", \"roles\": [\"web\", \"api\"]}]}");
	memset(&cfg, 0, sizeof(cfg));
	cfg.matrix_path = f->matrix;
	cfg.keys_path = f->keys;
	if (collector_init(&f->c, NULL, &cfg, err, sizeof(err)))
		fail_msg("collector_init: %s", err);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture_t *f = *state;

	collector_dispose(&f->c);
	unlink(f->matrix);
	unlink(f->keys);
	rmdir(f->dir);
	free(f);
	return 0;
}

static const auth_key_t *key(const fixture_t *f, const char *id)
{
	const auth_key_t *k = auth_keys_find(f->c.keys, id, strlen(id));

	assert_non_null(k);
	return k;
}

/* A daemon report of agent `id` with one result (towards api:8000). */
static report_t *rep(const char *id, const char *role, uint64_t seq, bool final)
{
	report_t *r = report_new();
	report_result_t res;

	assert_non_null(r);
	assert_int_equal(report_set_string(&r->agent.id, id), 0);
	assert_int_equal(report_set_string(&r->agent.role, role), 0);
	assert_int_equal(report_set_string(&r->agent.boot, "b1"), 0);
	assert_int_equal(report_set_string(&r->sent_at, T0), 0);
	r->seq = seq;
	r->mode = REPORT_MODE_DAEMON;
	r->interval_s = 10;
	r->round_ms = 100;
	r->final = final;
	memset(&res, 0, sizeof(res));
	res.dst_role = (char *)"api";
	res.target = (char *)"api.x";
	res.address = (char *)"10.0.0.2";
	res.port = 8000;
	res.expected = VERDICT_EXPECT_ALLOW;
	res.state = VERDICT_STATE_OPEN;
	res.latency_us = 500;
	res.at = (char *)T0;
	assert_int_equal(report_add_result(r, &res), 0);
	return r;
}

/* What the HTTP handler does: check, then ingest. Returns the check's result. */
static int submit(fixture_t *f, const char *key_id, report_t *r, char *msg, size_t msglen)
{
	state_ingest_t out;
	int result = collector_check_report(&f->c, key(f, key_id), r, msg, msglen);

	if (!result)
		assert_int_equal(state_ingest(f->c.state, r, 1000, 1000, &out), 0);
	report_free(r);
	return result;
}

static int n_agents(const fixture_t *f)
{
	state_counts_t n;

	state_count(f->c.state, 1000, &n);
	return (int)(n.agents_live + n.agents_stale);
}

/* A key may report only for its own roles. */
static void test_key_speaks_for_its_roles(void **state)
{
	fixture_t *f = *state;
	char msg[512];

	assert_int_equal(submit(f, "web-1", rep("w1", "web", 1, false), msg, sizeof(msg)), 0);
	assert_int_equal(submit(f, "web-1", rep("a9", "api", 1, false), msg, sizeof(msg)), -EACCES);
	assert_string_equal(msg, "unauthorized: key 'web-1' may not report for role 'api'");
	assert_int_equal(n_agents(f), 1);
}

/*
 * A web key sending a web report under an api agent's id, final or not, is
 * refused: otherwise it erases the api agent's observations (a violation it
 * saw disappears) or rewrites its role and boot.
 */
static void test_agent_id_of_another_role_refused(void **state)
{
	fixture_t *f = *state;
	char msg[512];

	assert_int_equal(submit(f, "api-1", rep("a1", "api", 1, false), msg, sizeof(msg)), 0);
	assert_int_equal(submit(f, "web-1", rep("a1", "web", 50, true), msg, sizeof(msg)), -EACCES);
	assert_string_equal(msg, "unauthorized: agent 'a1' is an agent of role 'api', which key "
	                         "'web-1' may not speak for");
	assert_int_equal(submit(f, "web-1", rep("a1", "web", 51, false), msg, sizeof(msg)),
	                 -EACCES);
	/* The api agent and its observation are still there, still api's. */
	assert_int_equal(n_agents(f), 1);
	assert_string_equal(state_agent_role(f->c.state, "a1"), "api");
	assert_int_equal(submit(f, "api-1", rep("a1", "api", 1, false), msg, sizeof(msg)),
	                 0); /* duplicate */

	/* Its own role's key may still say final; the id is then free for any role. */
	assert_int_equal(submit(f, "api-1", rep("a1", "api", 2, true), msg, sizeof(msg)), 0);
	assert_null(state_agent_role(f->c.state, "a1"));
	assert_int_equal(submit(f, "web-1", rep("a1", "web", 1, false), msg, sizeof(msg)), 0);
	assert_string_equal(state_agent_role(f->c.state, "a1"), "web");
}

/* A key that speaks for both roles may move an agent from one to the other. */
static void test_key_of_both_roles_may_move_an_agent(void **state)
{
	fixture_t *f = *state;
	char msg[512];

	assert_int_equal(submit(f, "api-1", rep("x", "api", 1, false), msg, sizeof(msg)), 0);
	assert_int_equal(submit(f, "ops-1", rep("x", "web", 2, false), msg, sizeof(msg)), 0);
	assert_string_equal(state_agent_role(f->c.state, "x"), "web");
	assert_int_equal(n_agents(f), 1);
}

/* Every counter of /metrics, with its HELP and TYPE, and the histogram. */
static void test_metrics_text(void **state)
{
	fixture_t *f = *state;
	static const char want[] =
	    "# HELP sgprobe_reports_accepted_total Reports accepted.\n"
	    "# TYPE sgprobe_reports_accepted_total counter\n"
	    "sgprobe_reports_accepted_total 3\n"
	    "# HELP sgprobe_reports_duplicate_total Reports already accepted (replays, retries "
	    "after a lost reply).\n"
	    "# TYPE sgprobe_reports_duplicate_total counter\n"
	    "sgprobe_reports_duplicate_total 1\n"
	    "# HELP sgprobe_observations_accepted_total Observations stored.\n"
	    "# TYPE sgprobe_observations_accepted_total counter\n"
	    "sgprobe_observations_accepted_total 60\n"
	    "# HELP sgprobe_reports_rejected_total Reports refused, by reason.\n"
	    "# TYPE sgprobe_reports_rejected_total counter\n"
	    "sgprobe_reports_rejected_total{reason=\"malformed\"} 1\n"
	    "sgprobe_reports_rejected_total{reason=\"unauthorized\"} 2\n"
	    "sgprobe_reports_rejected_total{reason=\"too_large\"} 3\n"
	    "sgprobe_reports_rejected_total{reason=\"full\"} 4\n"
	    "# HELP sgprobe_plans_served_total Plans served (304s included).\n"
	    "# TYPE sgprobe_plans_served_total counter\n"
	    "sgprobe_plans_served_total 7\n"
	    "# HELP sgprobe_plan_requests_rejected_total Plan requests refused, by reason.\n"
	    "# TYPE sgprobe_plan_requests_rejected_total counter\n"
	    "sgprobe_plan_requests_rejected_total{reason=\"malformed\"} 5\n"
	    "sgprobe_plan_requests_rejected_total{reason=\"unauthorized\"} 6\n"
	    "sgprobe_plan_requests_rejected_total{reason=\"unknown_role\"} 8\n"
	    "# HELP sgprobe_reloads_total Matrix and keys reloads, by result.\n"
	    "# TYPE sgprobe_reloads_total counter\n"
	    "sgprobe_reloads_total{result=\"ok\"} 1\n"
	    "sgprobe_reloads_total{result=\"error\"} 1\n"
	    "# HELP sgprobe_ingest_duration_seconds Time to authenticate, decode and store one "
	    "report.\n"
	    "# TYPE sgprobe_ingest_duration_seconds histogram\n"
	    "sgprobe_ingest_duration_seconds_bucket{le=\"0.0001\"} 1\n"
	    "sgprobe_ingest_duration_seconds_bucket{le=\"0.00025\"} 1\n"
	    "sgprobe_ingest_duration_seconds_bucket{le=\"0.0005\"} 1\n"
	    "sgprobe_ingest_duration_seconds_bucket{le=\"0.001\"} 2\n"
	    "sgprobe_ingest_duration_seconds_bucket{le=\"0.0025\"} 2\n"
	    "sgprobe_ingest_duration_seconds_bucket{le=\"0.005\"} 2\n"
	    "sgprobe_ingest_duration_seconds_bucket{le=\"0.01\"} 2\n"
	    "sgprobe_ingest_duration_seconds_bucket{le=\"0.025\"} 2\n"
	    "sgprobe_ingest_duration_seconds_bucket{le=\"0.05\"} 3\n"
	    "sgprobe_ingest_duration_seconds_bucket{le=\"0.1\"} 3\n"
	    "sgprobe_ingest_duration_seconds_bucket{le=\"+Inf\"} 4\n"
	    "sgprobe_ingest_duration_seconds_sum 2.051050000\n"
	    "sgprobe_ingest_duration_seconds_count 4\n";
	char err[COLLECTOR_ERR_MAX];
	char *text, *ours;
	FILE *keys;

	f->c.reports_accepted = 3;
	f->c.reports_duplicate = 1;
	f->c.observations_accepted = 60;
	f->c.reports_rejected[REJECT_MALFORMED] = 1;
	f->c.reports_rejected[REJECT_AUTH] = 2;
	f->c.reports_rejected[REJECT_TOO_LARGE] = 3;
	f->c.reports_rejected[REJECT_FULL] = 4;
	f->c.plans_served = 7;
	f->c.plans_rejected[PLAN_REJECT_MALFORMED] = 5;
	f->c.plans_rejected[PLAN_REJECT_AUTH] = 6;
	f->c.plans_rejected[PLAN_REJECT_UNKNOWN_ROLE] = 8;
	/* One good reload, then one refused (the keys file broken). */
	assert_int_equal(collector_reload(&f->c, err, sizeof(err)), 0);
	keys = fopen(f->keys, "w");
	assert_non_null(keys);
	fputs("{\"keys\": [", keys);
	fclose(keys);
	assert_int_not_equal(collector_reload(&f->c, err, sizeof(err)), 0);
	assert_non_null(strstr(err, "--keys"));
	/* On a bucket's bound (le is inclusive), inside one, and above the last. */
	collector_observe_latency(&f->c, 0.00005);
	collector_observe_latency(&f->c, 0.001);
	collector_observe_latency(&f->c, 0.05);
	collector_observe_latency(&f->c, 2.0);

	text = collector_metrics_text(&f->c, 1000);
	assert_non_null(text);
	/* The state's families come first (test_state.c checks them), then ours. */
	assert_true(!strncmp(text, "# HELP sgprobe_cells ", 21));
	ours = strstr(text, "# HELP sgprobe_reports_accepted_total");
	assert_non_null(ours);
	assert_string_equal(ours, want);
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_key_speaks_for_its_roles, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_agent_id_of_another_role_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_key_of_both_roles_may_move_an_agent, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_metrics_text, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
