/*
 * daemon: the sidecar (DESIGN.md "Agent"): probes the role's plan on one libuv
 * loop, each target at its own interval with jitter, rounds never overlapping;
 * fetches the plan from the collector (signed, If-None-Match, cached) or derives
 * it from --matrix; pushes each round as a report through the pusher; on
 * SIGTERM or SIGINT pushes a last report marked final and exits within
 * --stop-timeout-s. Writes its state to --health-file, which
 * `sgprobe-agent health` reads.
 */
#ifndef SGPROBE_DAEMON_H
#define SGPROBE_DAEMON_H

#include "config.h"

#define DAEMON_EXIT_OK    0 /* stopped by a signal, everything closed */
#define DAEMON_EXIT_FAIL  1 /* a failure at start */
#define DAEMON_EXIT_USAGE 2 /* a usage or configuration error */

/**
 * Runs the daemon described by `cfg` until SIGTERM or SIGINT. Logs JSON lines
 * on stderr. Returns one of the DAEMON_EXIT_* statuses.
 */
int daemon_run(const config_t *cfg);

/**
 * `sgprobe-agent health`: reads cfg->health_file and returns 0 when it exists,
 * says ok and its last round is at most 3 intervals + 30 s old; otherwise
 * prints why on stderr and returns 1, also without --health-file: a container
 * health check exits 0 or 1 only (Docker reserves 2).
 */
int daemon_health(const config_t *cfg);

#endif
