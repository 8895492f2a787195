/*
 * log: JSON lines, one object per line, built with cJSON.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <cJSON.h>

#include "sgprobe/log.h"

#define LINE_STACK 2048 /* lines up to this size are printed without a heap buffer */

static const char *const level_names[] = {"debug", "info", "warn", "error"};

/*
 * The length of the valid UTF-8 sequence at p (at most `avail` bytes), or 0
 * when it is invalid: overlong forms, surrogates and code points past U+10FFFF
 * are invalid (RFC 3629).
 */
static size_t utf8_seq(const unsigned char *p, size_t avail)
{
	unsigned char lo = 0x80;
	unsigned char hi = 0xBF;
	size_t n;
	size_t i;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xC2 && p[0] <= 0xDF) {
		n = 2;
	} else if (p[0] >= 0xE0 && p[0] <= 0xEF) {
		n = 3;
		if (p[0] == 0xE0)
			lo = 0xA0;
		else if (p[0] == 0xED)
			hi = 0x9F;
	} else if (p[0] >= 0xF0 && p[0] <= 0xF4) {
		n = 4;
		if (p[0] == 0xF0)
			lo = 0x90;
		else if (p[0] == 0xF4)
			hi = 0x8F;
	} else {
		return 0;
	}
	if (avail < n)
		return 0;
	if (p[1] < lo || p[1] > hi)
		return 0;
	for (i = 2; i < n; i++) {
		if (p[i] < 0x80 || p[i] > 0xBF)
			return 0;
	}
	return n;
}

/*
 * Returns `s` when it is valid UTF-8 of at most LOG_VALUE_MAX bytes; otherwise
 * a new string (in *copy, to be freed by the caller) with each invalid byte
 * replaced by U+FFFD and, when too long, cut at a character boundary and ended
 * with "...". Returns NULL when out of memory.
 */
static const char *clean(const char *s, char **copy)
{
	static const char replacement[] = "\xEF\xBF\xBD";
	const unsigned char *p = (const unsigned char *)s;
	size_t len = strlen(s);
	size_t out_len = 0;
	size_t limit;
	size_t i = 0;
	size_t o = 0;
	size_t n;
	bool valid = true;
	char *buf;

	*copy = NULL;
	while (i < len) {
		n = utf8_seq(p + i, len - i);
		if (n == 0) {
			valid = false;
			out_len += 3;
			i++;
		} else {
			out_len += n;
			i += n;
		}
	}
	if (valid && out_len <= LOG_VALUE_MAX)
		return s;
	limit = out_len <= LOG_VALUE_MAX ? out_len : LOG_VALUE_MAX - 3;
	buf = malloc((out_len <= LOG_VALUE_MAX ? out_len : LOG_VALUE_MAX) + 1);
	if (!buf)
		return NULL;
	for (i = 0; i < len;) {
		n = utf8_seq(p + i, len - i);
		if (o + (n ? n : 3) > limit)
			break;
		if (n == 0) {
			memcpy(buf + o, replacement, 3);
			o += 3;
			i++;
		} else {
			memcpy(buf + o, s + i, n);
			o += n;
			i += n;
		}
	}
	if (i < len) {
		memcpy(buf + o, "...", 3);
		o += 3;
	}
	buf[o] = '\0';
	*copy = buf;
	return buf;
}

/* Adds `item` (consumed, also on failure) under `key`, cleaned; false when out of memory. */
static bool add_item(cJSON *obj, const char *key, cJSON *item)
{
	char *kcopy;
	const char *k;
	bool ok;

	if (!item)
		return false;
	k = clean(key, &kcopy);
	if (!k) {
		cJSON_Delete(item);
		return false;
	}
	ok = cJSON_AddItemToObject(obj, k, item);
	free(kcopy);
	if (!ok)
		cJSON_Delete(item);
	return ok;
}

static cJSON *make_string(const char *s)
{
	char *copy;
	const char *v;
	cJSON *item;

	if (!s)
		return cJSON_CreateNull();
	v = clean(s, &copy);
	if (!v)
		return NULL;
	item = cJSON_CreateString(v);
	free(copy);
	return item;
}

static bool reserved(const char *key)
{
	return !key[0] || strcmp(key, "time") == 0 || strcmp(key, "level") == 0 ||
	       strcmp(key, "component") == 0 || strcmp(key, "msg") == 0;
}

static bool add_field(cJSON *obj, const log_field_t *f)
{
	char buf[32];
	char *key = NULL;
	cJSON *item = NULL;
	bool ok;

	switch (f->type) {
	case LOG_FIELD_STR:
		item = make_string(f->v.s);
		break;
	/*
	 * Integers are written as their decimal digits: cJSON would print a double with 15
	 * significant digits, losing precision and switching to exponent form past 10^15.
	 */
	case LOG_FIELD_INT:
		snprintf(buf, sizeof(buf), "%lld", (long long)f->v.i);
		item = cJSON_CreateRaw(buf);
		break;
	case LOG_FIELD_UINT:
		snprintf(buf, sizeof(buf), "%llu", (unsigned long long)f->v.u);
		item = cJSON_CreateRaw(buf);
		break;
	case LOG_FIELD_DOUBLE:
		item = isfinite(f->v.d) ? cJSON_CreateNumber(f->v.d) : cJSON_CreateNull();
		break;
	case LOG_FIELD_BOOL:
		item = cJSON_CreateBool(f->v.b);
		break;
	default:
		/* Not made by a LOG_* macro: say so rather than guess at its value. */
		snprintf(buf, sizeof(buf), "<field type %d>", (int)f->type);
		item = cJSON_CreateString(buf);
		break;
	}
	if (!reserved(f->key))
		return add_item(obj, f->key, item);
	key = malloc(strlen(f->key) + 2);
	if (!key) {
		cJSON_Delete(item);
		return false;
	}
	key[0] = '_';
	strcpy(key + 1, f->key);
	ok = add_item(obj, key, item);
	free(key);
	return ok;
}

/* The wall clock as 2026-01-02T03:04:05.678Z: this time leaves the process. */
static void format_time(char *buf, size_t len)
{
	struct timespec ts;
	struct tm tm;
	size_t n;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, len - n, ".%03ldZ", ts.tv_nsec / 1000000L);
}

/* Writes `n` bytes (the line and its newline) with one fwrite(), then flushes. */
static int emit(FILE *out, const char *line, size_t n)
{
	int result = 0;

	flockfile(out);
	if (fwrite(line, 1, n, out) != n)
		result = -EIO;
	if (fflush(out) != 0)
		result = -EIO;
	funlockfile(out);
	return result;
}

void log_init(log_t *lg, FILE *out, log_level_t min_level, const char *component)
{
	lg->out = out ? out : stderr;
	lg->min_level = min_level;
	lg->component = component ? component : "sgprobe";
}

bool log_enabled(const log_t *lg, log_level_t level)
{
	return level >= lg->min_level;
}

int log_write(const log_t *lg, log_level_t level, const char *msg, ...)
{
	char stack[LINE_STACK];
	char when[40];
	const char *lname = log_level_name(level);
	log_field_t f;
	va_list ap;
	cJSON *root;
	char *heap = NULL;
	char *line;
	size_t n;
	bool ok;
	int result;

	if (!log_enabled(lg, level))
		return 0;
	root = cJSON_CreateObject();
	if (!root)
		return -ENOMEM;
	format_time(when, sizeof(when));
	ok = add_item(root, "time", cJSON_CreateString(when)) &&
	     add_item(root, "level", cJSON_CreateString(lname)) &&
	     add_item(root, "component", make_string(lg->component)) &&
	     add_item(root, "msg", make_string(msg ? msg : ""));
	va_start(ap, msg);
	for (;;) {
		f = va_arg(ap, log_field_t);
		if (!f.key || f.type == LOG_FIELD_END)
			break;
		if (ok)
			ok = add_field(root, &f);
	}
	va_end(ap);
	if (!ok) {
		result = -ENOMEM;
		goto out;
	}
	/* One byte is kept for the newline. */
	if (cJSON_PrintPreallocated(root, stack, (int)sizeof(stack) - 1, false)) {
		line = stack;
		n = strlen(line);
	} else {
		char *text = cJSON_PrintUnformatted(root);

		if (!text) {
			result = -ENOMEM;
			goto out;
		}
		n = strlen(text);
		heap = malloc(n + 2);
		if (heap)
			memcpy(heap, text, n);
		cJSON_free(text);
		if (!heap) {
			result = -ENOMEM;
			goto out;
		}
		line = heap;
	}
	line[n++] = '\n';
	result = emit(lg->out, line, n);
out:
	free(heap);
	cJSON_Delete(root);
	return result;
}

int log_level_parse(const char *s, log_level_t *out)
{
	size_t i;

	if (!s)
		return -EINVAL;
	for (i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (strcasecmp(s, level_names[i]) == 0) {
			*out = (log_level_t)i;
			return 0;
		}
	}
	if (strcasecmp(s, "warning") == 0) {
		*out = LOG_LEVEL_WARN;
		return 0;
	}
	return -EINVAL;
}

const char *log_level_name(log_level_t level)
{
	if ((unsigned)level >= sizeof(level_names) / sizeof(level_names[0]))
		return "?";
	return level_names[level];
}
