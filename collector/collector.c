/*
 * collector: loading and reloading the matrix and the keys, the plans it
 * serves, and the text of /metrics.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collector.h"
#include "sgprobe/strbuf.h"
#include "sgprobe/plan.h"

/* Upper bounds of the ingest latency histogram, in seconds. */
static const double latency_le[COLLECTOR_LATENCY_BUCKETS] = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
};

static const char *const reject_names[REJECT_COUNT] = {
    "malformed",
    "unauthorized",
    "too_large",
    "full",
};

static const char *const plan_reject_names[PLAN_REJECT_COUNT] = {
    "malformed",
    "unauthorized",
    "unknown_role",
};

/* FNV-1a: an ETag only has to change when the plan does. */
static uint64_t fnv1a(const char *s, size_t len)
{
	uint64_t h = 1469598103934665603ull;
	size_t i;

	for (i = 0; i < len; i++) {
		h ^= (unsigned char)s[i];
		h *= 1099511628211ull;
	}
	return h;
}

static void plans_free(collector_plan_t *plans, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(plans[i].role);
		free(plans[i].body);
	}
	free(plans);
}

/*
 * Encodes every role's plan once, at load: a plan request is then a lookup,
 * and a matrix that cannot produce some role's plan is refused before it is
 * used. The agent's own address is unknown here, so nothing is skipped; the
 * agent skips its own address itself.
 */
static int build_plans(const matrix_t *m, collector_plan_t **out, size_t *n_out, char *err,
                       size_t errlen)
{
	collector_plan_t *plans = calloc(m->n_roles ? m->n_roles : 1, sizeof(*plans));
	char perr[MATRIX_ERR_MAX];
	size_t i;

	if (!plans) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	for (i = 0; i < m->n_roles; i++) {
		matrix_plan_t *p =
		    matrix_plan_for_role(m, m->roles[i].name, NULL, perr, sizeof(perr));

		if (!p) {
			snprintf(err, errlen, "%s", perr);
			plans_free(plans, i);
			return -EINVAL;
		}
		plans[i].role = strdup(m->roles[i].name);
		plans[i].body = plan_encode(p);
		matrix_plan_free(p);
		if (!plans[i].role || !plans[i].body) {
			snprintf(err, errlen, "out of memory");
			plans_free(plans, i + 1);
			return -ENOMEM;
		}
		plans[i].len = strlen(plans[i].body);
		snprintf(plans[i].etag, sizeof(plans[i].etag), "\"%016" PRIx64 "\"",
		         fnv1a(plans[i].body, plans[i].len));
	}
	*out = plans;
	*n_out = m->n_roles;
	return 0;
}

/* Loads matrix, keys and plans into the out-parameters, or nothing at all. */
static int load_all(const collector_config_t *cfg, matrix_t **m_out, auth_keys_t **k_out,
                    collector_plan_t **p_out, size_t *n_out, char *err, size_t errlen)
{
	char merr[MATRIX_ERR_MAX], kerr[AUTH_ERR_MAX];
	matrix_t *m;
	auth_keys_t *k;
	int result;

	m = matrix_load(cfg->matrix_path, merr, sizeof(merr));
	if (!m) {
		snprintf(err, errlen, "--matrix: %s", merr);
		return -EINVAL;
	}
	k = auth_keys_load(cfg->keys_path, kerr, sizeof(kerr));
	if (!k) {
		snprintf(err, errlen, "--keys: %s", kerr);
		matrix_free(m);
		return -EINVAL;
	}
	result = build_plans(m, p_out, n_out, err, errlen);
	if (result) {
		auth_keys_free(k);
		matrix_free(m);
		return result;
	}
	*m_out = m;
	*k_out = k;
	return 0;
}

int collector_init(collector_t *c, uv_loop_t *loop, const collector_config_t *cfg, char *err,
                   size_t errlen)
{
	int result;

	memset(c, 0, sizeof(*c));
	c->loop = loop;
	c->cfg = *cfg;
	if (!cfg->matrix_path || !cfg->keys_path) {
		snprintf(err, errlen, "--matrix FILE and --keys FILE are required");
		return -EINVAL;
	}
	result = load_all(cfg, &c->matrix, &c->keys, &c->plans, &c->n_plans, err, errlen);
	if (result)
		return result;
	c->state = state_new(c->matrix, &cfg->limits);
	if (!c->state) {
		snprintf(err, errlen, "out of memory");
		collector_dispose(c);
		return -ENOMEM;
	}
	return 0;
}

int collector_reload(collector_t *c, char *err, size_t errlen)
{
	matrix_t *m;
	auth_keys_t *k;
	collector_plan_t *plans;
	size_t n;
	int result;

	result = load_all(&c->cfg, &m, &k, &plans, &n, err, errlen);
	if (result) {
		c->reload_failures++;
		return result;
	}
	/* The state borrows the matrix: hand it the new one before the old goes.
	 * If it cannot take it, everything old stays. */
	result = state_set_matrix(c->state, m);
	if (result) {
		snprintf(err, errlen, "cannot judge with the new matrix: %s",
		         result == -ENOMEM ? "out of memory" : "a role's plan is too large");
		plans_free(plans, n);
		auth_keys_free(k);
		matrix_free(m);
		c->reload_failures++;
		return result;
	}
	matrix_free(c->matrix);
	auth_keys_free(c->keys);
	plans_free(c->plans, c->n_plans);
	c->matrix = m;
	c->keys = k;
	c->plans = plans;
	c->n_plans = n;
	c->reloads++;
	return 0;
}

void collector_dispose(collector_t *c)
{
	state_free(c->state);
	plans_free(c->plans, c->n_plans);
	auth_keys_free(c->keys);
	matrix_free(c->matrix);
	c->state = NULL;
	c->plans = NULL;
	c->n_plans = 0;
	c->keys = NULL;
	c->matrix = NULL;
}

int collector_check_report(const collector_t *c, const auth_key_t *key, const report_t *r,
                           char *msg, size_t msglen)
{
	const char *held;

	if (!auth_key_allows(key, r->agent.role)) {
		snprintf(msg, msglen, "unauthorized: key '%s' may not report for role '%s'",
		         key ? key->id : "", r->agent.role ? r->agent.role : "");
		return -EACCES;
	}
	/* Agent ids are unique across roles (task ARNs, host/role), so an id held
	 * by another role is a misconfiguration or a takeover: refused unless the
	 * key may speak for both roles, until the holder is forgotten. */
	held = state_agent_role(c->state, r->agent.id);
	if (held && r->agent.role && strcmp(held, r->agent.role) && !auth_key_allows(key, held)) {
		snprintf(msg, msglen,
		         "unauthorized: agent '%s' is an agent of role '%s', which key '%s' "
		         "may not speak for",
		         r->agent.id, held, key ? key->id : "");
		return -EACCES;
	}
	return 0;
}

const collector_plan_t *collector_plan(const collector_t *c, const char *role, size_t len)
{
	size_t i;

	for (i = 0; i < c->n_plans; i++) {
		if (strlen(c->plans[i].role) == len && !memcmp(c->plans[i].role, role, len))
			return &c->plans[i];
	}
	return NULL;
}

char *collector_metrics_text(const collector_t *c, uint64_t now_ms)
{
	char *state_text = state_prometheus(c->state, now_ms);
	uint64_t cumulative = 0;
	strbuf_t b = {0};
	int i;

	if (!state_text)
		return NULL;
	strbuf_adds(&b, state_text);
	free(state_text);
	strbuf_addf(&b,
	            "# HELP sgprobe_reports_accepted_total Reports accepted.\n"
	            "# TYPE sgprobe_reports_accepted_total counter\n"
	            "sgprobe_reports_accepted_total %" PRIu64 "\n"
	            "# HELP sgprobe_reports_duplicate_total Reports already accepted "
	            "(replays, retries after a lost reply).\n"
	            "# TYPE sgprobe_reports_duplicate_total counter\n"
	            "sgprobe_reports_duplicate_total %" PRIu64 "\n"
	            "# HELP sgprobe_observations_accepted_total Observations stored.\n"
	            "# TYPE sgprobe_observations_accepted_total counter\n"
	            "sgprobe_observations_accepted_total %" PRIu64 "\n"
	            "# HELP sgprobe_reports_rejected_total Reports refused, by reason.\n"
	            "# TYPE sgprobe_reports_rejected_total counter\n",
	            c->reports_accepted, c->reports_duplicate, c->observations_accepted);
	for (i = 0; i < REJECT_COUNT; i++)
		strbuf_addf(&b, "sgprobe_reports_rejected_total{reason=\"%s\"} %" PRIu64 "\n",
		            reject_names[i], c->reports_rejected[i]);
	strbuf_addf(&b,
	            "# HELP sgprobe_plans_served_total Plans served (304s included).\n"
	            "# TYPE sgprobe_plans_served_total counter\n"
	            "sgprobe_plans_served_total %" PRIu64 "\n"
	            "# HELP sgprobe_plan_requests_rejected_total Plan requests refused, by "
	            "reason.\n"
	            "# TYPE sgprobe_plan_requests_rejected_total counter\n",
	            c->plans_served);
	for (i = 0; i < PLAN_REJECT_COUNT; i++)
		strbuf_addf(&b, "sgprobe_plan_requests_rejected_total{reason=\"%s\"} %" PRIu64 "\n",
		            plan_reject_names[i], c->plans_rejected[i]);
	strbuf_addf(&b,
	            "# HELP sgprobe_reloads_total Matrix and keys reloads, by result.\n"
	            "# TYPE sgprobe_reloads_total counter\n"
	            "sgprobe_reloads_total{result=\"ok\"} %" PRIu64 "\n"
	            "sgprobe_reloads_total{result=\"error\"} %" PRIu64 "\n"
	            "# HELP sgprobe_ingest_duration_seconds Time to authenticate, decode "
	            "and store one report.\n"
	            "# TYPE sgprobe_ingest_duration_seconds histogram\n",
	            c->reloads, c->reload_failures);
	for (i = 0; i < COLLECTOR_LATENCY_BUCKETS; i++) {
		cumulative += c->latency_buckets[i];
		strbuf_addf(&b, "sgprobe_ingest_duration_seconds_bucket{le=\"%g\"} %" PRIu64 "\n",
		            latency_le[i], cumulative);
	}
	strbuf_addf(&b,
	            "sgprobe_ingest_duration_seconds_bucket{le=\"+Inf\"} %" PRIu64 "\n"
	            "sgprobe_ingest_duration_seconds_sum %.9f\n"
	            "sgprobe_ingest_duration_seconds_count %" PRIu64 "\n",
	            c->latency_count, c->latency_sum_s, c->latency_count);
	if (c->publisher) {
		char *pub = publisher_prometheus(c->publisher);

		if (pub)
			strbuf_adds(&b, pub);
		else
			b.oom = true;
		free(pub);
	}
	return strbuf_take(&b);
}

/** Records one ingest's duration in the histogram. */
void collector_observe_latency(collector_t *c, double seconds)
{
	int i;

	for (i = 0; i < COLLECTOR_LATENCY_BUCKETS; i++) {
		if (seconds <= latency_le[i]) {
			c->latency_buckets[i]++;
			break;
		}
	}
	c->latency_count++;
	c->latency_sum_s += seconds;
}
