/*
 * strbuf: growing strings with a sticky out-of-memory (include/sgprobe/strbuf.h).
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sgprobe/strbuf.h"

/* Room for `add` more bytes and the NUL; false (and b->oom) when there is none. */
static bool grow(strbuf_t *b, size_t add)
{
	size_t ncap;
	char *np;

	if (b->oom)
		return false;
	if (b->len + add + 1 <= b->cap)
		return true;
	ncap = b->cap ? b->cap : 256;
	while (ncap < b->len + add + 1) {
		if (ncap > SIZE_MAX / 2) {
			b->oom = true;
			return false;
		}
		ncap *= 2;
	}
	np = realloc(b->p, ncap);
	if (!np) {
		b->oom = true;
		return false;
	}
	b->p = np;
	b->cap = ncap;
	return true;
}

void strbuf_add(strbuf_t *b, const void *s, size_t n)
{
	if (!grow(b, n))
		return;
	if (n)
		memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

void strbuf_adds(strbuf_t *b, const char *s)
{
	strbuf_add(b, s, strlen(s));
}

void strbuf_addc(strbuf_t *b, char c)
{
	strbuf_add(b, &c, 1);
}

void strbuf_addf(strbuf_t *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->oom = true; /* an encoding error: the text would be incomplete */
		return;
	}
	if (!grow(b, (size_t)n))
		return;
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

char *strbuf_take(strbuf_t *b)
{
	char *p;

	if (b->oom || !grow(b, 0)) {
		strbuf_free(b);
		return NULL;
	}
	/* Nothing may have been appended yet: the terminator is written here too. */
	b->p[b->len] = '\0';
	p = b->p;
	memset(b, 0, sizeof(*b));
	return p;
}

void strbuf_free(strbuf_t *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}
