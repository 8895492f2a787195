/*
 * importsg: the matrix tools that hold the intended matrix against the
 * deployment (docs/operations.md "A matrix from the real security groups").
 *
 *   sgprobe-collector import-sg --groups FILE --roles MAP [--name NAME] [--output FILE]
 *   sgprobe-collector diff-matrix A B
 *
 * import-sg derives the intended matrix from `aws ec2 describe-security-groups`
 * output and a map of roles to groups: a path src -> dst:port is allowed when
 * one of src's groups lets it out and one of dst's groups lets it in.
 * diff-matrix prints the allowed paths one matrix has and the other has not.
 */
#ifndef SGPROBE_IMPORTSG_H
#define SGPROBE_IMPORTSG_H

#include <stddef.h>
#include <stdio.h>

#include "sgprobe/matrix.h"

/** Size of the error buffers the functions below fill. */
#define IMPORTSG_ERR_MAX 512

/** Largest groups file or map read, in bytes. */
#define IMPORTSG_MAX_FILE_BYTES (32u * 1024 * 1024)

/** Most security groups in one groups file. */
#define IMPORTSG_MAX_GROUPS 10000

/**
 * Called once per warning, in a fixed order (the groups file's order, then the
 * port ranges), with a message that names the file, the group and the rule but
 * carries no prefix of the program. The message is only valid during the call.
 */
typedef void importsg_warn_cb(void *arg, const char *msg);

/** What importsg_convert() reads. Nothing in it is owned by the conversion. */
typedef struct {
	const char *groups_path; /* named in messages */
	const char *groups_text; /* `aws ec2 describe-security-groups` output */
	size_t groups_len;       /* bytes at groups_text */
	const char *map_path;    /* named in messages */
	const char *map_text;    /* the role map */
	size_t map_len;          /* bytes at map_text */
	const char *name;        /* the matrix's name (--name); NULL: the map's "name" */
	importsg_warn_cb *warn;  /* NULL: warnings are dropped (tests only) */
	void *warn_arg;          /* passed to warn */
} importsg_input_t;

/**
 * Derives the intended matrix from security groups and a role map, as
 * docs/operations.md "A matrix from the real security groups" describes, and
 * checks it with matrix_parse() and matrix_plan_for_role() for every role.
 * Returns the matrix as NUL-terminated JSON text ending in a newline, owned by
 * the caller (free()); or NULL with -EINVAL (bad input: `err`, at least
 * IMPORTSG_ERR_MAX bytes, names the file and the field) or -ENOMEM in *result.
 */
char *importsg_convert(const importsg_input_t *in, char *err, size_t errlen, int *result);

/**
 * Compares the allowed paths of two matrices and writes to `out`, in this
 * order: informational lines starting with "# " about the roles and settings
 * that differ (a role added or removed, a role's endpoints, ports or flags, the
 * name, the probe settings), then one line per allowed path only in `b`
 * ("+ src -> dst:port") or only in `a` ("- src -> dst:port"), sorted by source,
 * destination and port. Roles are matched by name. Returns 0 when the allowed
 * paths are the same, 1 when they differ, -ENOMEM when memory ran out.
 */
int importsg_diff(const matrix_t *a, const matrix_t *b, FILE *out);

/**
 * Runs `import-sg` with argv[0] "import-sg". Warnings go to standard error.
 * Returns the exit status: 0 written, 1 out of memory or an output error, 2 a
 * usage error or bad input (with a message naming the file and the field).
 */
int importsg_main(int argc, char **argv);

/**
 * Runs `diff-matrix A B` with argv[0] "diff-matrix": the differences on standard
 * output (see importsg_diff()). Returns the exit status: 0 the same allowed
 * paths, 1 different ones, 2 a usage or load error (a message naming the file
 * and the field on standard error), out of memory or an output error.
 */
int importsg_diff_main(int argc, char **argv);

#endif
