/*
 * once: the post-deploy smoke test, `sgprobe-agent --once`: probe the role's whole
 * plan once, judge every result, print, and turn the verdicts into an exit status.
 */
#ifndef SGPROBE_ONCE_H
#define SGPROBE_ONCE_H

#include <stdio.h>

#include "config.h"

/** Exit statuses of --once (DESIGN.md). */
#define ONCE_EXIT_PASS  0 /* every verdict outside the --fail-on set */
#define ONCE_EXIT_FAIL  1 /* at least one verdict in the --fail-on set */
#define ONCE_EXIT_USAGE 2 /* a usage or configuration error */

/**
 * Runs the smoke test described by `cfg`, printing the results to `out` and
 * errors to stderr. Returns one of the ONCE_EXIT_* statuses.
 */
int once_run(const config_t *cfg, FILE *out);

#endif
