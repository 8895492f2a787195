/*
 * state: what the collector knows. The latest observation per (agent, destination
 * address, port), the agents themselves, and the evaluation of DESIGN.md's
 * matrix cells from them against the collector's own matrix. In memory, bounded.
 *
 * Time: every *_ms argument named `now_ms` is the collector's monotonic clock in
 * milliseconds (uv_now), used for staleness, liveness and retention; `wall_ms` is
 * the wall clock (ms since the epoch), used only for timestamps that leave the
 * process (`last_seen`, `generated_at`).
 */
#ifndef SGPROBE_STATE_H
#define SGPROBE_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cJSON.h>

#include "sgprobe/matrix.h"
#include "sgprobe/report.h"
#include "sgprobe/verdict.h"

/**
 * Bounds on the state. A report that would exceed them is refused (429). A field
 * of 0 takes its default (STATE_DEFAULT_*).
 */
typedef struct {
	size_t max_agents;       /* default 20000 */
	size_t max_observations; /* default 2,000,000 */
	uint64_t retention_ms;   /* a silent agent, and any observation, is forgotten
	                            after this; default 1 h */
} state_limits_t;

#define STATE_DEFAULT_MAX_AGENTS       20000
#define STATE_DEFAULT_MAX_OBSERVATIONS 2000000
#define STATE_DEFAULT_RETENTION_MS     (3600u * 1000)

/** What one ingested report did. */
typedef struct {
	size_t accepted; /* observations stored */
	bool
	    duplicate; /* seq at or below the highest accepted for (agent id, boot): nothing changed */
} state_ingest_t;

/** Counts for Prometheus and CloudWatch. */
typedef struct {
	size_t cells[VERDICT_COUNT]; /* cells by verdict, cell states included */
	size_t agents_live;
	size_t agents_stale;
	size_t observations;
} state_counts_t;

typedef struct state_s state_t;

/** Returns new empty state judged against `m` (borrowed; see state_set_matrix()), or NULL. */
state_t *state_new(const matrix_t *m, const state_limits_t *limits);

/** Frees the state. state_free(NULL) does nothing. */
void state_free(state_t *s);

/**
 * Replaces the matrix (after a reload); `m` is borrowed and must outlive its use.
 * Observations are kept: every verdict is recomputed from the new matrix.
 * Returns 0, or -ENOMEM, or -EINVAL when a role's plan cannot be derived (more
 * than MATRIX_MAX_PLAN_TARGETS probes); on error the old matrix stays in force.
 */
int state_set_matrix(state_t *s, const matrix_t *m);

/**
 * Ingests a decoded, authenticated report received at `now_ms`. Returns 0 with
 * *out filled (a duplicate is 0 too, with out->duplicate set), or -ENOSPC when
 * the bounds would be exceeded (nothing is changed then), -EINVAL when the
 * agent's id, role or boot is missing, or -ENOMEM. After -ENOMEM the state is
 * consistent but may hold part of the report; its seq is not recorded, so the
 * agent's retry applies it whole.
 * A `final` report removes its agent and the agent's observations (its results
 * are not stored). A report in mode `once` adds observations but never makes
 * an agent stale.
 */
int state_ingest(state_t *s, const report_t *r, uint64_t now_ms, uint64_t wall_ms,
                 state_ingest_t *out);

/**
 * Returns the role of the agent `id` while the state holds it (live or stale,
 * until its `final` report or the retention forgets it), or NULL when it holds
 * no such agent. The string is borrowed: it lives until the next state_ingest(),
 * state_expire() or state_free(). The collector uses it to refuse a report that
 * takes over an agent id of a role its key may not speak for.
 */
const char *state_agent_role(const state_t *s, const char *id);

/**
 * Forgets agents silent for longer than the retention, with their observations,
 * and any observation received longer than the retention ago. O(what expires).
 */
void state_expire(state_t *s, uint64_t now_ms);

/**
 * Builds the matrix view (`sgprobe.matrix-view/v1`, DESIGN.md "Collector") at
 * `now_ms`/`wall_ms`. Returns a new cJSON tree the caller deletes, or NULL.
 */
cJSON *state_matrix_view(const state_t *s, uint64_t now_ms, uint64_t wall_ms);

/** Fills `out` with the counts at `now_ms` (the cells of the matrix view). */
void state_count(const state_t *s, uint64_t now_ms, state_counts_t *out);

/**
 * Renders the state at `now_ms` as Prometheus text exposition (format 0.0.4):
 * sgprobe_cells{verdict}, sgprobe_cell_verdict{src_role,dst_role,port,verdict}
 * (1 for each cell whose verdict is not ok), sgprobe_agents{state},
 * sgprobe_observations, each with # HELP and # TYPE. Ends with a newline, so
 * that a server can append its own families. Returns a NUL-terminated string
 * the caller frees, or NULL when out of memory.
 */
char *state_prometheus(const state_t *s, uint64_t now_ms);

/** A cell of one cluster whose verdict is neither ok nor unobserved. */
typedef struct {
	char *src_role; /* owned */
	char *dst_role; /* owned */
	uint16_t port;
	verdict_t verdict;
} state_cell_t;

/** The agents of one source role in one cluster. */
typedef struct {
	char *role; /* owned */
	size_t live;
	size_t stale;
} state_role_t;

/**
 * One cluster, judged from its own agents' observations only (liveness stays
 * global: an address some agent saw alive is alive for every cluster).
 */
typedef struct {
	char *name;            /* owned */
	state_counts_t counts; /* cells by verdict, its agents, its observations */
	state_role_t *roles;   /* every agent role of the matrix (zeros included), then
	                          any other role with agents here; matrix order, then by name */
	size_t n_roles;
	state_cell_t *cells; /* the cells not ok and not unobserved, in matrix-view order */
	size_t n_cells;
} state_cluster_t;

/** Every cluster that has agents, by name. */
typedef struct {
	state_cluster_t *v;
	size_t n;
} state_clusters_t;

/**
 * Evaluates the state per cluster at `now_ms`, for CloudWatch (DESIGN.md
 * "CloudWatch": per-cluster totals, per-role agents, per-cell verdicts). The
 * result owns copies of every string, so it may outlive changes to the state.
 * Returns it (free with state_clusters_free()), or NULL when out of memory.
 */
state_clusters_t *state_clusters(const state_t *s, uint64_t now_ms);

/** Frees the result of state_clusters(). state_clusters_free(NULL) does nothing. */
void state_clusters_free(state_clusters_t *c);

#endif
