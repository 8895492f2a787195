/*
 * Unit tests of lib/log.c: every line is one JSON object with time, level,
 * component, msg and typed fields; everything is escaped; levels filter.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <cJSON.h>

#include "sgprobe/log.h"

/* A logger writing into memory. */
typedef struct {
	log_t log;
	FILE *f;
	char *buf;
	size_t size;
} sink_t;

static void sink_open(sink_t *s, log_level_t min)
{
	s->buf = NULL;
	s->size = 0;
	s->f = open_memstream(&s->buf, &s->size);
	assert_non_null(s->f);
	log_init(&s->log, s->f, min, "sgprobe-agent");
}

static void sink_close(sink_t *s)
{
	fclose(s->f);
	free(s->buf);
}

/* The number of lines written so far; each must end with a newline. */
static size_t count_lines(const sink_t *s)
{
	size_t n = 0;
	size_t i;

	for (i = 0; i < s->size; i++) {
		if (s->buf[i] == '\n')
			n++;
	}
	if (s->size > 0)
		assert_int_equal(s->buf[s->size - 1], '\n');
	return n;
}

/* Parses line `idx` (0-based) as one JSON object; the caller deletes it. */
static cJSON *line_json(const sink_t *s, size_t idx)
{
	const char *p = s->buf;
	const char *end;
	cJSON *obj;
	size_t i;

	for (i = 0; i < idx; i++) {
		p = memchr(p, '\n', s->size - (size_t)(p - s->buf));
		assert_non_null(p);
		p++;
	}
	end = memchr(p, '\n', s->size - (size_t)(p - s->buf));
	assert_non_null(end);
	obj = cJSON_ParseWithLength(p, (size_t)(end - p));
	if (!obj)
		fail_msg("line %zu is not JSON: %.*s", idx, (int)(end - p), p);
	assert_true(cJSON_IsObject(obj));
	return obj;
}

static const char *get_str(const cJSON *obj, const char *key)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);

	if (!cJSON_IsString(item))
		fail_msg("%s: not a string", key);
	return item->valuestring;
}

static double get_num(const cJSON *obj, const char *key)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);

	if (!cJSON_IsNumber(item))
		fail_msg("%s: not a number", key);
	return item->valuedouble;
}

/* 2026-01-02T03:04:05.678Z */
static void assert_timestamp(const char *t)
{
	static const char shape[] = "dddd-dd-ddTdd:dd:dd.dddZ";
	size_t i;

	assert_int_equal(strlen(t), strlen(shape));
	for (i = 0; shape[i]; i++) {
		if (shape[i] == 'd') {
			if (t[i] < '0' || t[i] > '9')
				fail_msg("time %s: not a digit at %zu", t, i);
		} else if (t[i] != shape[i]) {
			fail_msg("time %s: want %c at %zu", t, shape[i], i);
		}
	}
}

/* One line, one object: the standard keys first, then every field with its type. */
static void test_line_has_fields_typed(void **state)
{
	sink_t s;
	cJSON *o;
	const cJSON *item;

	(void)state;
	sink_open(&s, LOG_LEVEL_DEBUG);
	assert_int_equal(log_info(&s.log, "report sent", LOG_STR("collector", "http://127.0.0.1:1"),
	                          LOG_INT("delta", -42), LOG_UINT("seq", 9007199254740992ull),
	                          LOG_DOUBLE("ratio", 0.25), LOG_BOOL("final", true),
	                          LOG_BOOL("queued", false), LOG_STR("detail", NULL)),
	                 0);
	assert_int_equal(count_lines(&s), 1);
	assert_true(strncmp(s.buf, "{\"time\":\"", 9) == 0);
	o = line_json(&s, 0);
	assert_timestamp(get_str(o, "time"));
	assert_string_equal(get_str(o, "level"), "info");
	assert_string_equal(get_str(o, "component"), "sgprobe-agent");
	assert_string_equal(get_str(o, "msg"), "report sent");
	assert_string_equal(get_str(o, "collector"), "http://127.0.0.1:1");
	assert_true(get_num(o, "delta") == -42);
	assert_true(get_num(o, "seq") == 9007199254740992.0);
	/* Integers are exact in the text, whatever a double could hold. */
	assert_non_null(strstr(s.buf, "\"seq\":9007199254740992,"));
	assert_true(get_num(o, "ratio") == 0.25);
	assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "final")));
	assert_true(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(o, "queued")));
	assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(o, "detail")));
	assert_int_equal(cJSON_GetArraySize(o), 11);
	/* In the order given. */
	item = o->child;
	assert_string_equal(item->string, "time");
	assert_string_equal(item->next->string, "level");
	assert_string_equal(item->next->next->string, "component");
	assert_string_equal(item->next->next->next->string, "msg");
	assert_string_equal(item->next->next->next->next->string, "collector");
	cJSON_Delete(o);
	sink_close(&s);
}

/* Integers print exactly, all 64 bits, never in exponent form; non-finite doubles become null. */
static void test_numbers_print_plainly(void **state)
{
	sink_t s;
	cJSON *o;

	(void)state;
	sink_open(&s, LOG_LEVEL_DEBUG);
	log_info(&s.log, "n", LOG_UINT("bytes", 5000000000ull), LOG_INT("latency_us", 123456),
	         LOG_UINT("max", UINT64_MAX), LOG_INT("min", INT64_MIN),
	         LOG_UINT("seq", 9007199254740993ull), LOG_DOUBLE("nan", NAN),
	         LOG_DOUBLE("inf", INFINITY));
	assert_non_null(strstr(s.buf, "\"bytes\":5000000000,"));
	assert_non_null(strstr(s.buf, "\"latency_us\":123456,"));
	assert_non_null(strstr(s.buf, "\"max\":18446744073709551615,"));
	assert_non_null(strstr(s.buf, "\"min\":-9223372036854775808,"));
	assert_non_null(strstr(s.buf, "\"seq\":9007199254740993,"));
	o = line_json(&s, 0);
	assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(o, "nan")));
	assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(o, "inf")));
	cJSON_Delete(o);
	sink_close(&s);
}

/* Quotes, backslashes, newlines and control characters cannot break a line or the object. */
static void test_escaping(void **state)
{
	static const char nasty[] = "say \"hi\"\\ \n{\"level\":\"error\"}\r\t\b\f\x01\x1f\x7f end";
	sink_t s;
	cJSON *o;

	(void)state;
	sink_open(&s, LOG_LEVEL_DEBUG);
	assert_int_equal(log_warn(&s.log, nasty, LOG_STR("detail", nasty), LOG_STR(nasty, "k")), 0);
	assert_int_equal(count_lines(&s), 1);
	/* No raw control character but the final newline. */
	for (size_t i = 0; i + 1 < s.size; i++) {
		if ((unsigned char)s.buf[i] < 0x20)
			fail_msg("raw control byte 0x%02x at %zu", (unsigned char)s.buf[i], i);
	}
	o = line_json(&s, 0);
	assert_string_equal(get_str(o, "msg"), nasty);
	assert_string_equal(get_str(o, "detail"), nasty);
	assert_string_equal(get_str(o, nasty), "k");
	assert_string_equal(get_str(o, "level"), "warn");
	assert_int_equal(cJSON_GetArraySize(o), 6);
	cJSON_Delete(o);
	sink_close(&s);
}

/* Bytes that are not UTF-8 become U+FFFD, so the line stays valid JSON for strict readers. */
static void test_invalid_utf8_replaced(void **state)
{
	static const struct {
		const char *in;
		const char *want;
	} cases[] = {
	    {"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
	     "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"},
	    {"a\xff"
	     "b",
	     "a\xef\xbf\xbd"
	     "b"},
	    {"\xe2\x82", "\xef\xbf\xbd\xef\xbf\xbd"},                 /* truncated sequence */
	    {"\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd"},                 /* overlong '/' */
	    {"\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"}, /* a surrogate */
	    {"\xf4\x90\x80\x80",
	     "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"}, /* > U+10FFFF */
	};
	sink_t s;
	cJSON *o;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		sink_open(&s, LOG_LEVEL_DEBUG);
		assert_int_equal(log_error(&s.log, cases[i].in, LOG_STR("v", cases[i].in)), 0);
		o = line_json(&s, 0);
		if (strcmp(get_str(o, "msg"), cases[i].want) != 0)
			fail_msg("case %zu: msg %s", i, get_str(o, "msg"));
		assert_string_equal(get_str(o, "v"), cases[i].want);
		cJSON_Delete(o);
		sink_close(&s);
	}
}

/* A huge value is cut at a character boundary and marked, so one line stays bounded. */
static void test_long_values_cut(void **state)
{
	size_t n = LOG_VALUE_MAX * 3;
	char *ascii = malloc(n + 1);
	char *euro = malloc(n + 1);
	const char *v;
	sink_t s;
	cJSON *o;
	size_t i;

	(void)state;
	assert_non_null(ascii);
	assert_non_null(euro);
	memset(ascii, 'a', n);
	ascii[n] = '\0';
	for (i = 0; i + 3 <= n; i += 3)
		memcpy(euro + i, "\xe2\x82\xac", 3);
	euro[i] = '\0';

	sink_open(&s, LOG_LEVEL_DEBUG);
	log_info(&s.log, ascii, LOG_STR("euro", euro));
	o = line_json(&s, 0);
	v = get_str(o, "msg");
	assert_int_equal(strlen(v), LOG_VALUE_MAX);
	assert_string_equal(v + LOG_VALUE_MAX - 3, "...");
	v = get_str(o, "euro");
	assert_true(strlen(v) <= LOG_VALUE_MAX);
	assert_string_equal(v + strlen(v) - 3, "...");
	/* Whole euro signs only. */
	assert_int_equal((strlen(v) - 3) % 3, 0);
	for (i = 0; i + 3 < strlen(v); i += 3)
		assert_memory_equal(v + i, "\xe2\x82\xac", 3);
	cJSON_Delete(o);
	sink_close(&s);

	/* Exactly LOG_VALUE_MAX bytes are kept whole. */
	ascii[LOG_VALUE_MAX] = '\0';
	sink_open(&s, LOG_LEVEL_DEBUG);
	log_info(&s.log, ascii);
	o = line_json(&s, 0);
	assert_string_equal(get_str(o, "msg"), ascii);
	cJSON_Delete(o);
	sink_close(&s);
	free(ascii);
	free(euro);
}

/* Lines longer than the stack buffer take the heap path and are still one line each. */
static void test_long_line(void **state)
{
	char big[LOG_VALUE_MAX - 10];
	sink_t s;
	cJSON *o;

	(void)state;
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	sink_open(&s, LOG_LEVEL_DEBUG);
	assert_int_equal(
	    log_info(&s.log, big, LOG_STR("a", big), LOG_STR("b", big), LOG_STR("c", big)), 0);
	log_info(&s.log, "next");
	assert_int_equal(count_lines(&s), 2);
	assert_true(s.size > 4 * sizeof(big));
	o = line_json(&s, 0);
	assert_string_equal(get_str(o, "c"), big);
	cJSON_Delete(o);
	o = line_json(&s, 1);
	assert_string_equal(get_str(o, "msg"), "next");
	cJSON_Delete(o);
	sink_close(&s);
}

/* Fields cannot hide the standard keys: theirs get a "_" in front. */
static void test_reserved_keys_prefixed(void **state)
{
	sink_t s;
	cJSON *o;

	(void)state;
	sink_open(&s, LOG_LEVEL_DEBUG);
	log_info(&s.log, "real", LOG_STR("msg", "fake"), LOG_STR("level", "debug"),
	         LOG_STR("time", "then"), LOG_STR("component", "other"), LOG_INT("", 1));
	o = line_json(&s, 0);
	assert_string_equal(get_str(o, "msg"), "real");
	assert_string_equal(get_str(o, "level"), "info");
	assert_string_equal(get_str(o, "component"), "sgprobe-agent");
	assert_timestamp(get_str(o, "time"));
	assert_string_equal(get_str(o, "_msg"), "fake");
	assert_string_equal(get_str(o, "_level"), "debug");
	assert_string_equal(get_str(o, "_time"), "then");
	assert_string_equal(get_str(o, "_component"), "other");
	assert_true(get_num(o, "_") == 1);
	cJSON_Delete(o);
	sink_close(&s);
}

/* Below the minimum level nothing is written; at and above, everything; and the level is named. */
static void test_level_filtering(void **state)
{
	static const char *const names[] = {"debug", "info", "warn", "error"};
	log_level_t min;
	log_level_t l;
	sink_t s;
	cJSON *o;
	size_t line;

	(void)state;
	for (min = LOG_LEVEL_DEBUG; min <= LOG_LEVEL_ERROR; min++) {
		sink_open(&s, min);
		for (l = LOG_LEVEL_DEBUG; l <= LOG_LEVEL_ERROR; l++) {
			assert_int_equal(log_enabled(&s.log, l), l >= min);
			assert_int_equal(log_write(&s.log, l, names[l], LOG_INT("l", l), LOG_END),
			                 0);
		}
		assert_int_equal(count_lines(&s), LOG_LEVEL_ERROR - min + 1);
		for (line = 0, l = min; l <= LOG_LEVEL_ERROR; l++, line++) {
			o = line_json(&s, line);
			assert_string_equal(get_str(o, "level"), names[l]);
			assert_string_equal(get_str(o, "msg"), names[l]);
			cJSON_Delete(o);
		}
		sink_close(&s);
	}
	/* The macros are the same levels. */
	sink_open(&s, LOG_LEVEL_WARN);
	log_debug(&s.log, "d");
	log_info(&s.log, "i", LOG_STR("x", "y"));
	assert_int_equal(s.size, 0);
	log_warn(&s.log, "w");
	log_error(&s.log, "e");
	assert_int_equal(count_lines(&s), 2);
	sink_close(&s);
}

/* --log-level: the four names, in any case, and "warning"; anything else is refused. */
static void test_level_parse(void **state)
{
	static const struct {
		const char *s;
		log_level_t want;
	} good[] = {
	    {"debug", LOG_LEVEL_DEBUG}, {"info", LOG_LEVEL_INFO},    {"warn", LOG_LEVEL_WARN},
	    {"error", LOG_LEVEL_ERROR}, {"WARNING", LOG_LEVEL_WARN}, {"Info", LOG_LEVEL_INFO},
	    {"ERROR", LOG_LEVEL_ERROR}, {"warning", LOG_LEVEL_WARN},
	};
	static const char *const bad[] = {"", "inf", "verbose", "debug ", "err", "0", "trace"};
	log_level_t l;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		l = LOG_LEVEL_ERROR;
		assert_int_equal(log_level_parse(good[i].s, &l), 0);
		assert_int_equal(l, good[i].want);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		l = LOG_LEVEL_INFO;
		assert_int_equal(log_level_parse(bad[i], &l), -EINVAL);
		assert_int_equal(l, LOG_LEVEL_INFO);
	}
	assert_int_equal(log_level_parse(NULL, &l), -EINVAL);
	for (l = LOG_LEVEL_DEBUG; l <= LOG_LEVEL_ERROR; l++) {
		log_level_t back;

		assert_int_equal(log_level_parse(log_level_name(l), &back), 0);
		assert_int_equal(back, l);
	}
	assert_string_equal(log_level_name((log_level_t)42), "?");
}

/* The collector's component; a NULL message is an empty one; NULL stream means stderr. */
static void test_component_and_defaults(void **state)
{
	sink_t s;
	log_t lg;
	cJSON *o;

	(void)state;
	sink_open(&s, LOG_LEVEL_INFO);
	log_init(&s.log, s.f, LOG_LEVEL_INFO, "sgprobe-collector");
	log_info(&s.log, NULL);
	o = line_json(&s, 0);
	assert_string_equal(get_str(o, "component"), "sgprobe-collector");
	assert_string_equal(get_str(o, "msg"), "");
	cJSON_Delete(o);
	sink_close(&s);

	log_init(&lg, NULL, LOG_LEVEL_ERROR, NULL);
	assert_ptr_equal(lg.out, stderr);
	assert_string_equal(lg.component, "sgprobe");
}

/* On an unbuffered stream (stderr), a line arrives in one write: readers never see half a line. */
static void test_one_write_per_line(void **state)
{
	char buf[8192];
	log_t lg;
	FILE *w;
	int fds[2];
	ssize_t n;

	(void)state;
	assert_int_equal(pipe(fds), 0);
	w = fdopen(fds[1], "w");
	assert_non_null(w);
	assert_int_equal(setvbuf(w, NULL, _IONBF, 0), 0);
	log_init(&lg, w, LOG_LEVEL_INFO, "sgprobe-agent");
	assert_int_equal(log_info(&lg, "a line of some length", LOG_STR("k", "value value value"),
	                          LOG_INT("n", 12345)),
	                 0);
	n = read(fds[0], buf, sizeof(buf));
	assert_true(n > 0);
	assert_int_equal(buf[n - 1], '\n');
	assert_null(memchr(buf, '\n', (size_t)n - 1));
	fclose(w);
	close(fds[0]);
}

/* A stream that refuses the line: -EIO, not silence. */
static void test_write_error(void **state)
{
	FILE *f = fopen("/dev/null", "r"); /* open for reading only */
	log_t lg;

	(void)state;
	assert_non_null(f);
	log_init(&lg, f, LOG_LEVEL_DEBUG, "sgprobe-agent");
	assert_int_equal(log_error(&lg, "lost"), -EIO);
	/* Filtered lines are not errors. */
	lg.min_level = LOG_LEVEL_ERROR;
	assert_int_equal(log_info(&lg, "filtered"), 0);
	fclose(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_line_has_fields_typed),
	    cmocka_unit_test(test_numbers_print_plainly),
	    cmocka_unit_test(test_escaping),
	    cmocka_unit_test(test_invalid_utf8_replaced),
	    cmocka_unit_test(test_long_values_cut),
	    cmocka_unit_test(test_long_line),
	    cmocka_unit_test(test_reserved_keys_prefixed),
	    cmocka_unit_test(test_level_filtering),
	    cmocka_unit_test(test_level_parse),
	    cmocka_unit_test(test_component_and_defaults),
	    cmocka_unit_test(test_one_write_per_line),
	    cmocka_unit_test(test_write_error),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
