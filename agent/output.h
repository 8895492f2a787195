/*
 * output: what `sgprobe-agent --once` prints: an aligned table for people, one
 * JSON document for programs, JUnit XML for deploy pipelines.
 */
#ifndef SGPROBE_OUTPUT_H
#define SGPROBE_OUTPUT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "probe.h"
#include "sgprobe/matrix.h"
#include "sgprobe/verdict.h"

typedef enum { OUTPUT_TABLE = 0, OUTPUT_JSON, OUTPUT_JUNIT } output_format_t;

/** One probed path with its judgement. Pointers are borrowed. */
typedef struct {
	const matrix_target_t *target;
	const probe_result_t *res;
	verdict_t verdict;
	bool dst_alive;
	bool failing; /* the verdict is in the --fail-on set */
} output_row_t;

/** What the rows add up to. */
typedef struct {
	const char *role;
	const char *matrix;
	size_t counts[VERDICT_COUNT_ORDERED];
	size_t failing;
	size_t not_probed; /* allowed paths with probe_allowed false */
	double elapsed_s;  /* the round's wall time */
} output_summary_t;

/** Parses "table", "json" or "junit". Returns 0 or -EINVAL. */
int output_parse_format(const char *name, output_format_t *out);

/**
 * Writes the rows and the summary to `f` in `format`. `color` adds ANSI colours
 * to the table (only for a terminal). Returns 0, or a negative errno when the
 * output could not be built or written.
 */
int output_write(FILE *f, output_format_t format, const output_row_t *rows, size_t n,
                 const output_summary_t *sum, bool color);

#endif
