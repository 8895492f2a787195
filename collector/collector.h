/*
 * collector: the central half of sgprobe. One context, built by main() and
 * passed down: the matrix, the keys, the state, the encoded plans, the HTTP
 * server and its counters, all on one libuv loop.
 */
#ifndef SGPROBE_COLLECTOR_H
#define SGPROBE_COLLECTOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <h2o.h>
#include <uv.h>

#include "sgprobe/auth.h"
#include "sgprobe/matrix.h"
#include "sgprobe/report.h"
#include "publisher.h"
#include "state.h"

#define COLLECTOR_ERR_MAX 512

/** Why a report was refused: sgprobe_reports_rejected_total{reason}. */
typedef enum {
	REJECT_MALFORMED = 0, /* 400: not a report, naming the field */
	REJECT_AUTH,          /* 401: signature, key, or a role the key may not speak for */
	REJECT_TOO_LARGE,     /* 413: body over REPORT_MAX_BODY or over REPORT_MAX_RESULTS */
	REJECT_FULL,          /* 429: the state's bounds */
	REJECT_COUNT
} collector_reject_t;

/** Why a plan request was refused: sgprobe_plan_requests_rejected_total{reason}. */
typedef enum {
	PLAN_REJECT_MALFORMED = 0, /* 400: no role in the query, or a bad escape */
	PLAN_REJECT_AUTH,          /* 401 */
	PLAN_REJECT_UNKNOWN_ROLE,  /* 404: the matrix has no such role */
	PLAN_REJECT_COUNT
} collector_plan_reject_t;

/*
 * What h2o buffers of one request on the agents' listener before it refuses it
 * itself. It is above REPORT_MAX_BODY so that a body between the two reaches
 * the handler, which answers 413 with a JSON error and counts it; beyond it h2o
 * answers on its own (HTTP/1.1: a plain-text 413; HTTP/2: the stream is reset),
 * uncounted. Each request in flight holds at most this much.
 */
#define COLLECTOR_ENTITY_MAX (4 * (size_t)REPORT_MAX_BODY)

/** Ingest latency histogram buckets, in seconds (Prometheus `le`). */
#define COLLECTOR_LATENCY_BUCKETS 10

/** The collector's flags (and their SGPROBE_* environment variables). */
typedef struct {
	const char *listen;       /* agents: reports, plans; default 0.0.0.0:9443 */
	const char *admin_listen; /* people and Prometheus; default 127.0.0.1:9090 */
	const char *matrix_path;
	const char *keys_path;
	const char *tls_cert; /* TLS on the agent listener when set, with tls_key */
	const char *tls_key;
	const char *admin_tls_cert; /* TLS on the admin listener when set */
	const char *admin_tls_key;
	state_limits_t limits;
	unsigned retry_after_s;   /* Retry-After of a 429 */
	publish_config_t publish; /* the metrics sink (DESIGN.md "CloudWatch") */
} collector_config_t;

/** One role's encoded plan, served with an ETag. */
typedef struct {
	char *role;
	char *body;
	size_t len;
	char etag[24]; /* "\"<16 hex>\"" */
} collector_plan_t;

/** One listener: its h2o configuration, context and socket. */
typedef struct {
	struct collector_s *owner;
	bool admin;
	h2o_globalconf_t config;
	h2o_context_t ctx;
	h2o_accept_ctx_t accept_ctx;
	uv_tcp_t tcp;
	SSL_CTX *ssl;
	bool listening;
} collector_listener_t;

typedef struct collector_s {
	uv_loop_t *loop;
	collector_config_t cfg;
	matrix_t *matrix;
	auth_keys_t *keys;
	state_t *state;
	collector_plan_t *plans;
	size_t n_plans;

	collector_listener_t agents;
	collector_listener_t admin;
	uv_timer_t expire_timer;
	uv_signal_t sighup;
	uv_signal_t sigterm;
	uv_signal_t sigint;
	bool stopping;
	publisher_t *publisher; /* NULL until started, and again once stopped */
	log_t lg;               /* JSON lines on stderr, for the publisher */
	bool grace_over;        /* the stop's grace for requests in flight has passed */

	/* Counters for /metrics. */
	uint64_t reports_accepted;
	uint64_t reports_duplicate;
	uint64_t reports_rejected[REJECT_COUNT];
	uint64_t observations_accepted;
	uint64_t plans_served;
	uint64_t plans_rejected[PLAN_REJECT_COUNT];
	uint64_t reloads;
	uint64_t reload_failures;
	uint64_t latency_buckets[COLLECTOR_LATENCY_BUCKETS];
	uint64_t latency_count;
	double latency_sum_s;
} collector_t;

/**
 * Loads the matrix and the keys, derives every role's plan and builds empty
 * state. Returns 0, or -EINVAL with a message naming the file and the field in
 * `err`. On failure nothing needs disposing.
 */
int collector_init(collector_t *c, uv_loop_t *loop, const collector_config_t *cfg, char *err,
                   size_t errlen);

/**
 * Reloads the matrix and the keys from their files (SIGHUP). Everything is
 * validated first: on error the old ones stay, and `err` says why. Returns 0 or
 * a negative errno.
 */
int collector_reload(collector_t *c, char *err, size_t errlen);

/** Frees what collector_init() built (not the listeners: collector_http_close()). */
void collector_dispose(collector_t *c);

/**
 * Decides whether `key` (which signed the request) may speak for report `r`:
 * its role must be one of the key's, and its agent id must not be held by an
 * agent of another role the key may not speak for (else a key of one role
 * could send `final` under another role's agent id and erase its
 * observations, or take it over). Returns 0, or -EACCES with the reason, naming
 * key, role and agent, in `msg`.
 */
int collector_check_report(const collector_t *c, const auth_key_t *key, const report_t *r,
                           char *msg, size_t msglen);

/** Returns the encoded plan of `role`, or NULL when the matrix has no such role. */
const collector_plan_t *collector_plan(const collector_t *c, const char *role, size_t len);

/**
 * Starts both listeners. Returns 0, or a negative errno with `err` naming the
 * address that failed.
 */
int collector_http_start(collector_t *c, char *err, size_t errlen);

/**
 * Stops accepting on both listeners; requests in flight finish, then the
 * handles close and the loop can end.
 */
void collector_http_close(collector_t *c);

/** Records one report's ingest duration (seconds) in the /metrics histogram. */
void collector_observe_latency(collector_t *c, double seconds);

/** Prometheus text for /metrics: the state's gauges and the server's counters. */
char *collector_metrics_text(const collector_t *c, uint64_t now_ms);

#endif
