/*
 * publisher: what the collector concludes, published every flush interval
 * (DESIGN.md "CloudWatch") to one sink:
 *
 *   - cloudwatch: PutMetricData (Query protocol, SigV4, gzip) through libcurl
 *     on the collector's loop, with a bounded buffer, retries and backoff;
 *   - emf: Embedded Metric Format lines on stdout, for awslogs;
 *   - none: nothing (the Prometheus counters still count flushes).
 *
 * Per flush and cluster: the eight totals with [Cluster]; ReportingAgents and
 * StaleAgents with [Cluster, SourceRole] for each agent role; one datum of
 * value 1 for each cell in a verdict that has a metric, with [Cluster,
 * SourceRole, DestinationRole, Port]. A clean cluster is 8 + 2 × (agent roles)
 * datums whatever its number of agents.
 */
#ifndef SGPROBE_PUBLISHER_H
#define SGPROBE_PUBLISHER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <uv.h>

#include "sgprobe/awscreds.h"
#include "sgprobe/cloudwatch.h"
#include "sgprobe/log.h"
#include "state.h"

#define PUBLISH_DEFAULT_NAMESPACE    "SGProbe"
#define PUBLISH_DEFAULT_FLUSH_S      60
#define PUBLISH_DEFAULT_MAX_BUFFERED 100000
#define PUBLISH_DEFAULT_RETRY_MS     1000
#define PUBLISH_DEFAULT_RETRY_MAX_MS 60000
#define PUBLISH_DEFAULT_TIMEOUT_MS   10000

/** Where the metrics go. */
typedef enum {
	PUBLISH_SINK_NONE = 0,   /* nowhere */
	PUBLISH_SINK_CLOUDWATCH, /* PutMetricData */
	PUBLISH_SINK_EMF,        /* EMF lines on stdout */
} publish_sink_t;

/** The publisher's settings. Strings are copied by publisher_new(). */
typedef struct {
	publish_sink_t sink;
	const char *ns;            /* namespace; NULL: PUBLISH_DEFAULT_NAMESPACE */
	const char *region;        /* cloudwatch: required */
	const char *endpoint;      /* NULL: https://monitoring.<region>.amazonaws.com/ */
	unsigned flush_interval_s; /* 0: PUBLISH_DEFAULT_FLUSH_S */
	size_t max_buffered;       /* datums held for CloudWatch; 0: the default */
	unsigned retry_base_ms;    /* first backoff; 0: the default */
	unsigned retry_max_ms;     /* backoff cap; 0: the default */
	unsigned timeout_ms;       /* one PutMetricData call; 0: the default */
	const char *ca_file;       /* PEM bundle for the endpoint; NULL: the system's */
	aws_creds_config_t creds;  /* the credential chain's overrides */
	FILE *emf_out;             /* borrowed; NULL: stdout */
} publish_config_t;

/** What the publisher did, for /metrics and the log. */
typedef struct {
	uint64_t flushes;          /* flush intervals done */
	uint64_t metrics;          /* datums produced by the flushes */
	uint64_t calls;            /* PutMetricData calls made */
	uint64_t calls_ok;         /* calls answered 200 */
	uint64_t retries;          /* calls that repeated a failed one */
	uint64_t throttles;        /* calls answered with a throttling error */
	uint64_t errors;           /* other failed calls (5xx, 4xx, connection), and calls
	                              that could not be started (encoding, signing) */
	uint64_t metrics_sent;     /* datums CloudWatch accepted */
	uint64_t dropped_full;     /* datums dropped because the buffer was full */
	uint64_t dropped_rejected; /* datums CloudWatch refused for good (a 4xx) */
	uint64_t emf_lines;        /* EMF lines written */
	size_t buffered;           /* datums waiting, the call in flight included */
} publish_counters_t;

typedef struct publisher_s publisher_t;

/**
 * Returns the clusters to publish now (from state_clusters(); the publisher
 * frees them) and sets `*wall_ms` to the wall clock of the evaluation.
 */
typedef state_clusters_t *(*publisher_source_cb)(void *arg, uint64_t *wall_ms);

/** Called once publisher_stop() has finished and every handle is closed. */
typedef void (*publisher_stopped_cb)(void *arg);

/**
 * Parses a sink name ("cloudwatch", "emf", "none"). Returns 0, or -EINVAL.
 */
int publisher_sink_parse(const char *s, publish_sink_t *out);

/** The sink's name. */
const char *publisher_sink_name(publish_sink_t sink);

/**
 * Builds the datums of one flush from `c` at `wall_ms` (DESIGN.md
 * "CloudWatch"): per cluster the totals, then the agents per role, then the
 * cells. `*out` (n_out entries; free each with cw_datum_dispose(), then the
 * array) may be NULL when there is nothing. A cluster with a name CloudWatch
 * cannot take as a dimension value is left out, counted in `*skipped` (may be
 * NULL). Returns 0 or -ENOMEM.
 */
int publisher_datums(const state_clusters_t *c, uint64_t wall_ms, cw_datum_t **out, size_t *n_out,
                     size_t *skipped);

/**
 * Creates a publisher on `loop`. `lg` is borrowed and must outlive it. For the
 * cloudwatch sink `cfg->region` is required and the endpoint must be an http
 * or https URL. Returns the publisher, or NULL with `err` saying what was wrong.
 */
publisher_t *publisher_new(uv_loop_t *loop, const publish_config_t *cfg, const log_t *lg,
                           publisher_source_cb source, void *arg, char *err, size_t errlen);

/**
 * Starts the flush timer and, for CloudWatch, the credential chain. Returns
 * 0, or a negative errno with `err` set (no credential source, say).
 */
int publisher_start(publisher_t *p, char *err, size_t errlen);

/** Flushes now, outside the timer (the stop, the tests). */
void publisher_flush(publisher_t *p);

/** Copies the counters so far into `out`. */
void publisher_counters(const publisher_t *p, publish_counters_t *out);

/**
 * Prometheus text for the publisher's counters (sgprobe_publish_*), ending
 * with a newline. Returns a string the caller frees, or NULL.
 */
char *publisher_prometheus(const publisher_t *p);

/**
 * Stops: one last flush, then waits until CloudWatch has taken everything
 * buffered or `deadline_ms` has passed, logs what is left unsent, releases
 * everything and calls `cb(arg)` from the loop. After this call the
 * publisher must not be used; it is freed before `cb` runs.
 */
void publisher_stop(publisher_t *p, unsigned deadline_ms, publisher_stopped_cb cb, void *arg);

#endif
