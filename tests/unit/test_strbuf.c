/*
 * Tests of lib/strbuf.c: appends of every kind grow the string and keep it
 * NUL-terminated, embedded NULs are kept, an empty buffer hands over "", and
 * a buffer marked out of memory hands over nothing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sgprobe/strbuf.h"

static void test_appends_grow_and_terminate(void **unused)
{
	strbuf_t b = {0};
	char *s;
	int i;

	(void)unused;
	strbuf_adds(&b, "Action=");
	strbuf_addc(&b, 'P');
	strbuf_add(&b, "ut\0x", 4);
	assert_int_equal(b.len, 12);
	assert_memory_equal(b.p, "Action=Put\0x", 13);
	/* Past the first allocation, printf-style. */
	for (i = 0; i < 1000; i++)
		strbuf_addf(&b, "&m.%d=%s", i, "v");
	assert_false(b.oom);
	assert_int_equal(strlen(b.p + 11), b.len - 11);
	assert_non_null(strstr(b.p + 11, "&m.999=v"));
	s = strbuf_take(&b);
	assert_non_null(s);
	assert_null(b.p);
	assert_int_equal(b.len, 0);
	free(s);
}

static void test_take_of_nothing_and_of_a_failure(void **unused)
{
	strbuf_t b = {0};
	char *s;

	(void)unused;
	s = strbuf_take(&b);
	assert_non_null(s);
	assert_string_equal(s, "");
	free(s);
	/* Out of memory is sticky: later appends do nothing, and nothing is handed over. */
	strbuf_adds(&b, "partial");
	b.oom = true;
	strbuf_adds(&b, " more");
	assert_int_equal(b.len, 7);
	assert_null(strbuf_take(&b));
	assert_null(b.p);
	strbuf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_appends_grow_and_terminate),
	    cmocka_unit_test(test_take_of_nothing_and_of_a_failure),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
