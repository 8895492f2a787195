/*
 * verdict: DESIGN.md's tables of observations and verdicts, in one place, so that
 * the agent and the collector can never judge the same observation differently.
 */
#include <errno.h>
#include <string.h>

#include "sgprobe/verdict.h"

static const char *const expect_names[] = {"allow", "deny"};

static const char *const state_names[VERDICT_STATE_COUNT] = {
    "open", "closed", "rejected", "filtered", "unreachable", "error",
};

static const char *const verdict_names[VERDICT_COUNT] = {
    "ok",      "unverified", "inconclusive", "no_listener", "tls_failed",
    "blocked", "violation",  "unobserved",   "stale",       "unknown",
};

static int parse_name(const char *const *names, int n, const char *name)
{
	int i;

	if (!name)
		return -EINVAL;
	for (i = 0; i < n; i++) {
		if (!strcmp(names[i], name))
			return i;
	}
	return -EINVAL;
}

const char *verdict_expect_name(verdict_expect_t expect)
{
	return expect == VERDICT_EXPECT_DENY ? expect_names[1] : expect_names[0];
}

int verdict_expect_parse(const char *name, verdict_expect_t *out)
{
	int i = parse_name(expect_names, 2, name);

	if (i < 0)
		return i;
	*out = (verdict_expect_t)i;
	return 0;
}

const char *verdict_state_name(verdict_state_t state)
{
	if ((unsigned)state >= VERDICT_STATE_COUNT)
		return "?";
	return state_names[state];
}

int verdict_state_parse(const char *name, verdict_state_t *out)
{
	int i = parse_name(state_names, VERDICT_STATE_COUNT, name);

	if (i < 0)
		return i;
	*out = (verdict_state_t)i;
	return 0;
}

const char *verdict_name(verdict_t verdict)
{
	if ((unsigned)verdict >= VERDICT_COUNT)
		return "?";
	return verdict_names[verdict];
}

int verdict_parse(const char *name, verdict_t *out)
{
	int i = parse_name(verdict_names, VERDICT_COUNT, name);

	if (i < 0)
		return i;
	*out = (verdict_t)i;
	return 0;
}

bool verdict_state_proves_alive(verdict_state_t state)
{
	return state == VERDICT_STATE_OPEN || state == VERDICT_STATE_CLOSED ||
	       state == VERDICT_STATE_REJECTED;
}

bool verdict_alive(uint64_t seen_ms, uint64_t period_ms, uint64_t now_ms)
{
	if (seen_ms == 0)
		return false;
	/* Evidence from the future (clock steps, reordering) is as good as now. */
	if (seen_ms >= now_ms)
		return true;
	return now_ms - seen_ms <= VERDICT_ALIVE_PERIODS * period_ms;
}

verdict_t verdict_of(verdict_expect_t expect, verdict_state_t state, verdict_tls_t tls,
                     bool dst_alive, bool silent)
{
	if (expect == VERDICT_EXPECT_ALLOW) {
		switch (state) {
		case VERDICT_STATE_OPEN:
			return tls == VERDICT_TLS_FAIL ? VERDICT_TLS_FAILED : VERDICT_OK;
		case VERDICT_STATE_CLOSED:
			return VERDICT_NO_LISTENER;
		case VERDICT_STATE_REJECTED:
		case VERDICT_STATE_FILTERED:
		case VERDICT_STATE_UNREACHABLE:
			return VERDICT_BLOCKED;
		default:
			return VERDICT_INCONCLUSIVE;
		}
	}
	switch (state) {
	case VERDICT_STATE_OPEN:
	case VERDICT_STATE_CLOSED:
	case VERDICT_STATE_REJECTED:
		/* The security groups let the SYN through, whoever answered it. */
		return VERDICT_VIOLATION;
	case VERDICT_STATE_FILTERED:
	case VERDICT_STATE_UNREACHABLE:
		/* A timeout proves the path closed only when something lives there and
		 * would have answered. */
		return dst_alive && !silent ? VERDICT_OK : VERDICT_UNVERIFIED;
	default:
		return VERDICT_INCONCLUSIVE;
	}
}

verdict_t verdict_worst(verdict_t a, verdict_t b)
{
	if (a >= VERDICT_COUNT_ORDERED)
		return a;
	if (b >= VERDICT_COUNT_ORDERED)
		return b;
	return a > b ? a : b;
}
