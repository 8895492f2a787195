/*
 * Tests of lib/jitter.c and timefmt_now_ms(): what the fleet's timers rely on.
 * Values stay within their bound, a sequence depends on its seed only, two
 * seeds (two processes) give different sequences, and the wall clock is the
 * system's.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <cmocka.h>

#include "sgprobe/jitter.h"
#include "sgprobe/timefmt.h"

static void test_upto_stays_within_its_bound_and_spreads(void **unused)
{
	uint64_t state = 42, seen[11] = {0};
	int i;

	(void)unused;
	for (i = 0; i < 11000; i++) {
		uint64_t v = jitter_upto(&state, 10);

		assert_true(v <= 10);
		seen[v]++;
	}
	/* Every value of [0, 10] comes up, none hugely more than its share (1000). */
	for (i = 0; i <= 10; i++)
		assert_in_range(seen[i], 800, 1200);
	assert_true(jitter_upto(&state, 0) == 0);
	(void)jitter_upto(&state, UINT64_MAX);
}

static void test_a_sequence_is_its_seeds(void **unused)
{
	uint64_t a = 7, b = 7, c = 8, zero = 0;
	int i, differ = 0;

	(void)unused;
	for (i = 0; i < 100; i++) {
		uint64_t x = jitter_next(&a);

		assert_true(x == jitter_next(&b));
		differ += x != jitter_next(&c);
	}
	assert_int_equal(differ, 100);
	/* A zero seed works too. */
	assert_true(jitter_next(&zero) != jitter_next(&zero));
}

static void test_now_is_the_wall_clock(void **unused)
{
	uint64_t before = (uint64_t)time(NULL) * 1000u, now = timefmt_now_ms();

	(void)unused;
	assert_true(now >= before && now < before + 2000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_upto_stays_within_its_bound_and_spreads),
	    cmocka_unit_test(test_a_sequence_is_its_seeds),
	    cmocka_unit_test(test_now_is_the_wall_clock),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
