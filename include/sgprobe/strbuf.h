/*
 * strbuf: a growing NUL-terminated string whose out-of-memory is sticky, so that
 * a run of appends is checked once, at the end (b.oom, or strbuf_take()).
 *
 *   strbuf_t b = {0};
 *   strbuf_adds(&b, "Action=");
 *   strbuf_addf(&b, "%u", n);
 *   text = strbuf_take(&b);          NULL when any append ran out of memory
 */
#ifndef SGPROBE_STRBUF_H
#define SGPROBE_STRBUF_H

#include <stdbool.h>
#include <stddef.h>

/** The buffer, embedded by value and zero-initialised. Its fields may be read. */
typedef struct {
	char *p;    /* NUL-terminated once anything was appended; NULL before */
	size_t len; /* bytes, the NUL excluded */
	size_t cap;
	bool oom; /* an append ran out of memory: the content is incomplete */
} strbuf_t;

/** Appends `n` bytes at `s` (may hold NULs). Does nothing once b->oom is set. */
void strbuf_add(strbuf_t *b, const void *s, size_t n);

/** Appends the string `s`. */
void strbuf_adds(strbuf_t *b, const char *s);

/** Appends one character. */
void strbuf_addc(strbuf_t *b, char c);

/** Appends printf-style text. */
void strbuf_addf(strbuf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/**
 * Hands the string over (the caller frees it), "" when nothing was appended,
 * leaving `b` empty. NULL, with `b` freed, when an append ran out of memory.
 */
char *strbuf_take(strbuf_t *b);

/** Frees the string and zeroes `b`. */
void strbuf_free(strbuf_t *b);

#endif
