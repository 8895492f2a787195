/*
 * json: parsing untrusted JSON bytes, shared by the matrix and report decoders.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sgprobe/json.h"

cJSON *json_parse(const char *text, size_t len, unsigned *line, int *result)
{
	const char *end = NULL;
	char *copy;
	cJSON *root;
	size_t off;
	size_t i;

	*line = 1;
	copy = malloc(len + 1);
	if (!copy) {
		*result = -ENOMEM;
		return NULL;
	}
	if (len > 0)
		memcpy(copy, text, len);
	copy[len] = '\0';

	root = cJSON_ParseWithLengthOpts(copy, len, &end, false);
	off = (end && end >= copy && end <= copy + len) ? (size_t)(end - copy) : 0;
	if (root) {
		while (off < len && (copy[off] == ' ' || copy[off] == '\t' || copy[off] == '\n' ||
		                     copy[off] == '\r'))
			off++;
		if (off < len) {
			cJSON_Delete(root);
			root = NULL;
		}
	}
	if (!root) {
		for (i = 0; i < off; i++) {
			if (copy[i] == '\n')
				(*line)++;
		}
	}
	free(copy);
	*result = root ? 0 : -EINVAL;
	return root;
}

const char *json_quote(const char *s, char *buf, size_t buflen)
{
	size_t i;
	size_t n = 0;

	for (i = 0; s[i] && n + 4 < buflen && i < JSON_QUOTE_MAX; i++) {
		unsigned char ch = (unsigned char)s[i];

		buf[n++] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : '?';
	}
	if (s[i] && n + 4 <= buflen) {
		memcpy(buf + n, "...", 3);
		n += 3;
	}
	buf[n] = '\0';
	return buf;
}

void json_pathf(char *out, size_t outlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(out, outlen, fmt, ap);
	va_end(ap);
}

int json_fail(json_ctx_t *c, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	if (!c->err || c->errlen == 0)
		return -EINVAL;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (c->file)
		snprintf(c->err, c->errlen, "%s: %s", c->file, msg);
	else
		snprintf(c->err, c->errlen, "%s", msg);
	return -EINVAL;
}

int json_fail_doc(json_ctx_t *c, const char *msg)
{
	if (!c->file && c->doc)
		return json_fail(c, "%s: %s", c->doc, msg);
	return json_fail(c, "%s", msg);
}

int json_fail_oom(json_ctx_t *c)
{
	json_fail_doc(c, "out of memory");
	return -ENOMEM;
}

bool json_get_int(const cJSON *item, double lo, double hi, int64_t *out)
{
	double d;

	if (!cJSON_IsNumber(item))
		return false;
	d = item->valuedouble;
	/* The bounds all lie within +-2^53, so the cast below is exact and defined. */
	if (!(d >= lo && d <= hi))
		return false;
	if ((double)(int64_t)d != d)
		return false;
	*out = (int64_t)d;
	return true;
}
