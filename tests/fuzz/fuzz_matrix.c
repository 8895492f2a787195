/*
 * libFuzzer target of matrix_parse(): any bytes either give a matrix from which
 * every role's plan can be derived (as an agent with no known address, and as
 * the agent at the role's first endpoint), or a failure with a non-empty message
 * that is NUL-terminated within MATRIX_ERR_MAX bytes; anything else abort()s.
 * Memory errors, leaks and undefined behaviour are caught by the sanitizers the
 * target is built with (tests/fuzz/run.sh).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sgprobe/matrix.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Aborts unless `err` holds a non-empty message terminated within MATRIX_ERR_MAX bytes. */
static void check_err(const char *what, const char *err)
{
	if (!memchr(err, '\0', MATRIX_ERR_MAX) || !err[0]) {
		fprintf(stderr, "fuzz_matrix: %s failed without a message\n", what);
		abort();
	}
}

/* Derives and frees the plan of role `r` as the agent at `own` (NULL: none) would. */
static void plan_role(const matrix_t *m, const matrix_role_t *r, const char *own)
{
	char err[MATRIX_ERR_MAX];
	matrix_plan_t *plan;

	memset(err, 'X', sizeof(err));
	plan = matrix_plan_for_role(m, r->name, own, err, sizeof(err));
	if (!plan) {
		/* The role exists: only running out of memory may fail, and must say so. */
		check_err("matrix_plan_for_role", err);
		return;
	}
	if (strcmp(plan->role, r->name) != 0 || strcmp(plan->matrix, m->name) != 0) {
		fprintf(stderr, "fuzz_matrix: the plan of '%s' names another role or matrix\n",
		        r->name);
		abort();
	}
	matrix_plan_free(plan);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[MATRIX_ERR_MAX];
	matrix_t *m;
	size_t i;

	/* Not '\0': a message left unterminated shows. */
	memset(err, 'X', sizeof(err));
	m = matrix_parse((const char *)data, size, err, sizeof(err));
	if (!m) {
		check_err("matrix_parse", err);
		return 0;
	}
	for (i = 0; i < m->n_roles; i++) {
		plan_role(m, &m->roles[i], NULL);
		plan_role(m, &m->roles[i], m->roles[i].endpoints[0]);
	}
	matrix_free(m);
	return 0;
}
