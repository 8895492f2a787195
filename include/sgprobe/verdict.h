/*
 * verdict: what a probe observed, what the matrix expected, and what that means.
 *
 * DESIGN.md "Observations, liveness and verdicts" in code. The agent and the
 * collector both call these functions so that the two halves can never judge the
 * same observation differently.
 */
#ifndef SGPROBE_VERDICT_H
#define SGPROBE_VERDICT_H

#include <stdbool.h>
#include <stdint.h>

/** What the matrix says a path must be. */
typedef enum {
	VERDICT_EXPECT_ALLOW = 0, /* the path must be open */
	VERDICT_EXPECT_DENY = 1   /* the path must be closed */
} verdict_expect_t;

/** What one probe (one new TCP connection) observed. */
typedef enum {
	VERDICT_STATE_OPEN = 0,    /* handshake completed: path open, service listening */
	VERDICT_STATE_CLOSED,      /* TCP RST: the SYN crossed both security groups */
	VERDICT_STATE_REJECTED,    /* ICMP unreachable sent by the destination itself */
	VERDICT_STATE_FILTERED,    /* no answer before the timeout */
	VERDICT_STATE_UNREACHABLE, /* ICMP from another hop, or neighbour discovery gave up */
	VERDICT_STATE_ERROR,       /* a local failure: nothing can be concluded */
	VERDICT_STATE_COUNT
} verdict_state_t;

/*
 * Verdicts, in the order of DESIGN.md's worst-of rule. The values below
 * VERDICT_COUNT_ORDERED are ordered: a larger value is worse. The three cell
 * states after it stand outside the order and are never the result of
 * verdict_of().
 */
typedef enum {
	VERDICT_OK = 0,       /* the path is as the matrix intends */
	VERDICT_UNVERIFIED,   /* denied path timed out, but nothing proves the address alive */
	VERDICT_INCONCLUSIVE, /* a local error: nothing can be concluded */
	VERDICT_NO_LISTENER,  /* allowed path is open, but nothing listens */
	VERDICT_TLS_FAILED,   /* allowed path is open, the TLS handshake failed */
	VERDICT_BLOCKED,      /* allowed path is closed by a firewall or the network */
	VERDICT_VIOLATION,    /* denied path let the packet through */
	VERDICT_COUNT_ORDERED,
	VERDICT_UNOBSERVED = VERDICT_COUNT_ORDERED, /* cell never observed */
	VERDICT_STALE,                              /* every observation is too old */
	VERDICT_UNKNOWN, /* a report about a role or port the matrix lacks */
	VERDICT_COUNT
} verdict_t;

/** Liveness window: evidence counts for this many periods (DESIGN.md). */
#define VERDICT_ALIVE_PERIODS 3

/** Returns "allow" or "deny"; never NULL. */
const char *verdict_expect_name(verdict_expect_t expect);

/** Parses "allow"/"deny" into *out. Returns 0, or -EINVAL for anything else. */
int verdict_expect_parse(const char *name, verdict_expect_t *out);

/** Returns the state's report name ("open", "closed", ...); "?" when out of range. */
const char *verdict_state_name(verdict_state_t state);

/** Parses a state name into *out. Returns 0, or -EINVAL for an unknown name. */
int verdict_state_parse(const char *name, verdict_state_t *out);

/** Returns the verdict's name ("ok", "no_listener", ...); "?" when out of range. */
const char *verdict_name(verdict_t verdict);

/** Parses a verdict name into *out. Returns 0, or -EINVAL for an unknown name. */
int verdict_parse(const char *name, verdict_t *out);

/**
 * True when a probe in this state proves that something lives at the address:
 * open, closed and rejected all mean the destination host answered.
 */
bool verdict_state_proves_alive(verdict_state_t state);

/**
 * True when evidence seen at `seen_ms` still proves an address alive at `now_ms`,
 * given the period of that evidence (`period_ms`, an agent's period or a probe's
 * interval): within VERDICT_ALIVE_PERIODS periods. All three in milliseconds on
 * the same clock. A `seen_ms` of 0 means "never seen" and is never alive.
 */
bool verdict_alive(uint64_t seen_ms, uint64_t period_ms, uint64_t now_ms);

/** How a probe's TLS handshake went. */
typedef enum {
	VERDICT_TLS_NONE = 0, /* no TLS handshake was attempted */
	VERDICT_TLS_OK,       /* the handshake completed and the certificate verified */
	VERDICT_TLS_FAIL      /* the handshake or the verification failed */
} verdict_tls_t;

/**
 * The verdict of one observation (DESIGN.md's expected × state table).
 *
 * `tls` only matters for an allowed, open path. `dst_alive` says whether the
 * destination address is known alive; `silent` whether the destination drops
 * connections to this port whatever the security groups say (a `silent`
 * destination, on a port it does not serve). Both only matter for a denied path
 * that timed out: `ok` when alive and not silent, else `unverified`.
 */
verdict_t verdict_of(verdict_expect_t expect, verdict_state_t state, verdict_tls_t tls,
                     bool dst_alive, bool silent);

/**
 * Returns the worse of two verdicts by DESIGN.md's order. Only for the ordered
 * verdicts (below VERDICT_COUNT_ORDERED); a cell state on either side is returned
 * as it is, the first one winning, since those stand outside the order.
 */
verdict_t verdict_worst(verdict_t a, verdict_t b);

#endif
