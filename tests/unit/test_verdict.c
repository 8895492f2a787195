/* Unit tests of lib/verdict.c: every cell of DESIGN.md's tables. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "sgprobe/verdict.h"

#define A VERDICT_EXPECT_ALLOW
#define D VERDICT_EXPECT_DENY

/* Every expected × state cell, with and without liveness and silence. */
static void test_verdict_table_every_cell(void **state)
{
	static const struct {
		verdict_expect_t expect;
		verdict_state_t st;
		verdict_tls_t tls;
		bool alive;
		bool silent;
		verdict_t want;
	} cases[] = {
	    {A, VERDICT_STATE_OPEN, VERDICT_TLS_NONE, false, false, VERDICT_OK},
	    {A, VERDICT_STATE_OPEN, VERDICT_TLS_OK, false, false, VERDICT_OK},
	    {A, VERDICT_STATE_OPEN, VERDICT_TLS_FAIL, true, false, VERDICT_TLS_FAILED},
	    {A, VERDICT_STATE_CLOSED, VERDICT_TLS_NONE, true, false, VERDICT_NO_LISTENER},
	    {A, VERDICT_STATE_REJECTED, VERDICT_TLS_NONE, true, false, VERDICT_BLOCKED},
	    {A, VERDICT_STATE_FILTERED, VERDICT_TLS_NONE, true, false, VERDICT_BLOCKED},
	    {A, VERDICT_STATE_FILTERED, VERDICT_TLS_NONE, false, true, VERDICT_BLOCKED},
	    {A, VERDICT_STATE_UNREACHABLE, VERDICT_TLS_NONE, false, false, VERDICT_BLOCKED},
	    {A, VERDICT_STATE_ERROR, VERDICT_TLS_NONE, true, false, VERDICT_INCONCLUSIVE},
	    {D, VERDICT_STATE_OPEN, VERDICT_TLS_NONE, true, false, VERDICT_VIOLATION},
	    {D, VERDICT_STATE_OPEN, VERDICT_TLS_FAIL, true, false, VERDICT_VIOLATION},
	    {D, VERDICT_STATE_CLOSED, VERDICT_TLS_NONE, false, false, VERDICT_VIOLATION},
	    {D, VERDICT_STATE_REJECTED, VERDICT_TLS_NONE, false, true, VERDICT_VIOLATION},
	    {D, VERDICT_STATE_FILTERED, VERDICT_TLS_NONE, true, false, VERDICT_OK},
	    {D, VERDICT_STATE_FILTERED, VERDICT_TLS_NONE, false, false, VERDICT_UNVERIFIED},
	    {D, VERDICT_STATE_FILTERED, VERDICT_TLS_NONE, true, true, VERDICT_UNVERIFIED},
	    {D, VERDICT_STATE_UNREACHABLE, VERDICT_TLS_NONE, true, false, VERDICT_OK},
	    {D, VERDICT_STATE_UNREACHABLE, VERDICT_TLS_NONE, false, false, VERDICT_UNVERIFIED},
	    {D, VERDICT_STATE_ERROR, VERDICT_TLS_NONE, true, false, VERDICT_INCONCLUSIVE},
	    {D, VERDICT_STATE_ERROR, VERDICT_TLS_NONE, false, false, VERDICT_INCONCLUSIVE},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		verdict_t got = verdict_of(cases[i].expect, cases[i].st, cases[i].tls,
		                           cases[i].alive, cases[i].silent);
		if (got != cases[i].want)
			fail_msg("case %zu: %s %s → %s, want %s", i,
			         verdict_expect_name(cases[i].expect),
			         verdict_state_name(cases[i].st), verdict_name(got),
			         verdict_name(cases[i].want));
	}
}

/* A local error must never count as a denied path being closed. */
static void test_error_is_never_ok(void **state)
{
	(void)state;
	assert_int_not_equal(verdict_of(D, VERDICT_STATE_ERROR, VERDICT_TLS_NONE, true, false),
	                     VERDICT_OK);
	assert_int_not_equal(verdict_of(D, VERDICT_STATE_ERROR, VERDICT_TLS_NONE, true, false),
	                     VERDICT_UNVERIFIED);
}

static void test_worst_of_order(void **state)
{
	static const verdict_t order[] = {
	    VERDICT_OK,         VERDICT_UNVERIFIED, VERDICT_INCONCLUSIVE, VERDICT_NO_LISTENER,
	    VERDICT_TLS_FAILED, VERDICT_BLOCKED,    VERDICT_VIOLATION,
	};
	size_t i, j, n = sizeof(order) / sizeof(order[0]);

	(void)state;
	for (i = 0; i < n; i++) {
		for (j = 0; j < n; j++) {
			verdict_t want = order[i > j ? i : j];
			assert_int_equal(verdict_worst(order[i], order[j]), want);
		}
	}
	/* Cell states stand outside the order and are kept as they are. */
	assert_int_equal(verdict_worst(VERDICT_STALE, VERDICT_VIOLATION), VERDICT_STALE);
	assert_int_equal(verdict_worst(VERDICT_OK, VERDICT_UNKNOWN), VERDICT_UNKNOWN);
}

static void test_names_round_trip(void **state)
{
	int i;
	verdict_t v;
	verdict_state_t s;
	verdict_expect_t e;

	(void)state;
	for (i = 0; i < VERDICT_COUNT; i++) {
		assert_int_equal(verdict_parse(verdict_name((verdict_t)i), &v), 0);
		assert_int_equal(v, i);
	}
	for (i = 0; i < VERDICT_STATE_COUNT; i++) {
		assert_int_equal(verdict_state_parse(verdict_state_name((verdict_state_t)i), &s),
		                 0);
		assert_int_equal(s, i);
	}
	assert_int_equal(verdict_expect_parse("deny", &e), 0);
	assert_int_equal(e, VERDICT_EXPECT_DENY);
	assert_string_equal(verdict_name(VERDICT_NO_LISTENER), "no_listener");
	assert_string_equal(verdict_state_name(VERDICT_STATE_REJECTED), "rejected");
	assert_int_equal(verdict_parse("Violation", &v), -EINVAL);
	assert_int_equal(verdict_state_parse("", &s), -EINVAL);
	assert_int_equal(verdict_expect_parse(NULL, &e), -EINVAL);
	assert_string_equal(verdict_name((verdict_t)99), "?");
}

static void test_liveness_window(void **state)
{
	(void)state;
	assert_true(verdict_state_proves_alive(VERDICT_STATE_OPEN));
	assert_true(verdict_state_proves_alive(VERDICT_STATE_CLOSED));
	assert_true(verdict_state_proves_alive(VERDICT_STATE_REJECTED));
	assert_false(verdict_state_proves_alive(VERDICT_STATE_FILTERED));
	assert_false(verdict_state_proves_alive(VERDICT_STATE_UNREACHABLE));
	assert_false(verdict_state_proves_alive(VERDICT_STATE_ERROR));
	/* Within three periods of 60 s, and not a millisecond later. */
	assert_true(verdict_alive(1000, 60000, 1000 + 180000));
	assert_false(verdict_alive(1000, 60000, 1000 + 180001));
	assert_true(verdict_alive(5000, 60000, 4000));
	assert_false(verdict_alive(0, 60000, 10));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_verdict_table_every_cell),
	    cmocka_unit_test(test_error_is_never_ok),
	    cmocka_unit_test(test_worst_of_order),
	    cmocka_unit_test(test_names_round_trip),
	    cmocka_unit_test(test_liveness_window),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
