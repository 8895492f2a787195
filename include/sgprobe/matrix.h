/*
 * matrix: the intended least-privilege matrix (DESIGN.md "The intended matrix").
 *
 * Loading is strict: an unknown key, an unknown role in a rule, a port outside
 * 1-65535, a duplicate or empty name or a wrong type is an error whose message
 * names the key (`allow[3].to: unknown role 'rds'`). A typo must never silently
 * deny everything.
 */
#ifndef SGPROBE_MATRIX_H
#define SGPROBE_MATRIX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sgprobe/verdict.h"

/** Size of the error buffers the functions below fill. */
#define MATRIX_ERR_MAX 256

/** Upper bounds on a matrix, so that a hostile or broken file cannot exhaust memory. */
#define MATRIX_MAX_FILE_BYTES   (4u * 1024 * 1024)
#define MATRIX_MAX_ROLES        1024
#define MATRIX_MAX_ENDPOINTS    64    /* per role */
#define MATRIX_MAX_PORTS        65535 /* per list: every TCP port */
#define MATRIX_MAX_RULES        16384
#define MATRIX_MAX_PLAN_TARGETS 100000 /* probes in one role's plan */
#define MATRIX_MAX_NAME         253    /* a role name, an endpoint: DNS's limit */

/** A sorted, duplicate-free set of TCP ports. */
typedef struct {
	uint16_t *v; /* owned; ascending */
	size_t n;
} matrix_ports_t;

/** One role: a service, or a destination with no agent (RDS, the internet). */
typedef struct {
	char *name;       /* owned */
	char **endpoints; /* owned; DNS names or IP literals */
	size_t n_endpoints;
	matrix_ports_t ports;     /* the ports it serves */
	matrix_ports_t tls_ports; /* ports where a TLS handshake follows the connect */
	bool agent;               /* a sidecar is expected in this role */
	bool probe_allowed;       /* allowed paths towards it are connect-probed (default true) */
	bool silent;              /* it drops connections to ports it does not serve */
	unsigned allowed_interval_s; /* interval of allowed probes towards it; 0 = default */
} matrix_role_t;

/** One allow rule: `from` may reach `to` on `ports`. */
typedef struct {
	size_t from; /* index into matrix_t.roles */
	size_t to;   /* index into matrix_t.roles */
	matrix_ports_t ports;
} matrix_rule_t;

/** A loaded matrix. Everything in it is owned by it; free with matrix_free(). */
typedef struct {
	int version;
	char *name;
	matrix_ports_t probe_ports; /* probed towards every destination */
	unsigned interval_s;        /* default probe interval, seconds */
	unsigned timeout_ms;        /* connect timeout, milliseconds */
	matrix_role_t *roles;       /* in the file's order */
	size_t n_roles;
	matrix_rule_t *rules;
	size_t n_rules;
} matrix_t;

/** One path of a role's plan: connect to `target`:`port` and judge it. */
typedef struct {
	char *dst_role; /* owned */
	char *target;   /* owned; DNS name or IP literal */
	uint16_t port;
	verdict_expect_t expected;
	bool tls;            /* complete a TLS handshake after the connect */
	bool silent;         /* a timeout here proves nothing (silent destination, unserved port) */
	bool probe;          /* false: an allowed path with probe_allowed false; not probed */
	unsigned interval_s; /* this path's probe interval, seconds */
} matrix_target_t;

/** What one role probes. Owns all its strings; outlives the matrix it came from. */
typedef struct {
	char *matrix; /* the matrix's name */
	char *role;
	unsigned interval_s;
	unsigned timeout_ms;
	matrix_target_t *targets; /* by destination role (file order), endpoint, port */
	size_t n_targets;
} matrix_plan_t;

/**
 * Parses and validates a matrix from `len` bytes of JSON text.
 * Returns a new matrix owned by the caller (free with matrix_free()), or NULL with
 * a message naming the offending key in `err` (at least MATRIX_ERR_MAX bytes).
 */
matrix_t *matrix_parse(const char *text, size_t len, char *err, size_t errlen);

/**
 * Reads and parses the matrix file at `path` (at most MATRIX_MAX_FILE_BYTES).
 * Returns as matrix_parse(); on error `err` starts with the path.
 */
matrix_t *matrix_load(const char *path, char *err, size_t errlen);

/** Frees a matrix and everything in it. matrix_free(NULL) does nothing. */
void matrix_free(matrix_t *m);

/** Returns the index of the role named `name`, or -1 when there is none. */
int matrix_role_index(const matrix_t *m, const char *name);

/** True when a rule allows role `from` to reach role `to` on `port`. */
bool matrix_allows(const matrix_t *m, size_t from, size_t to, uint16_t port);

/**
 * Derives the plan of role `role`: for every role D (`role` itself included:
 * other tasks of the same service), every endpoint of D, every port in D's ports
 * ∪ probe.ports ∪ the ports allowed from `role` to D, marked allow or deny.
 * An endpoint equal to `own_address` (the agent's own task address; NULL for
 * none) is skipped. Returns a new plan owned by the caller (matrix_plan_free()),
 * or NULL with a message in `err` (an unknown role, a plan of more than
 * MATRIX_MAX_PLAN_TARGETS probes, or out of memory).
 */
matrix_plan_t *matrix_plan_for_role(const matrix_t *m, const char *role, const char *own_address,
                                    char *err, size_t errlen);

/** Frees a plan. matrix_plan_free(NULL) does nothing. */
void matrix_plan_free(matrix_plan_t *plan);

/** True when `ports` holds `port` (binary search). */
bool matrix_ports_has(const matrix_ports_t *ports, uint16_t port);

#endif
