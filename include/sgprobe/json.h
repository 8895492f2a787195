/*
 * json: the one way sgprobe turns untrusted bytes into a cJSON tree.
 */
#ifndef SGPROBE_JSON_H
#define SGPROBE_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cJSON.h>

/**
 * Parses `len` bytes of JSON that need not be NUL-terminated: they are copied
 * with a terminator (cJSON reads one byte ahead in places), and anything but
 * whitespace after the value is an error. Returns the tree, owned by the caller
 * (cJSON_Delete()), and 0 in *result; or NULL with -ENOMEM or -EINVAL in *result
 * and, for -EINVAL, the 1-based line of the error in *line.
 */
cJSON *json_parse(const char *text, size_t len, unsigned *line, int *result);

/** Longest user string quoted in a message; the rest is elided with "...". */
#define JSON_QUOTE_MAX 64
/** Size of a buffer for json_quote(). */
#define JSON_QUOTE_BUF (JSON_QUOTE_MAX + 4)

/**
 * Copies a user-supplied string (a name, a key, a path; never a secret) into
 * `buf` (`buflen` bytes, JSON_QUOTE_BUF is enough) for quoting in an error
 * message: non-printable bytes become '?', a long string is cut short with
 * "...". Returns buf.
 */
const char *json_quote(const char *s, char *buf, size_t buflen);

/**
 * snprintf() for field paths in messages (`roles.nginx.ports[2]`), where cutting
 * a very long path short is intended.
 */
void json_pathf(char *out, size_t outlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/**
 * Where a decoder's error message goes: `errlen` bytes at `err` (NULL for
 * none). `file` (may be NULL) prefixes every message ("keys.json: ..."), and
 * `doc` (may be NULL) names the document in json_fail_doc()'s messages when
 * there is no file ("matrix: ...").
 */
typedef struct {
	char *err;
	size_t errlen;
	const char *file;
	const char *doc;
} json_ctx_t;

/** Writes a message naming the field into c->err, after "file: ". Returns -EINVAL. */
int json_fail(json_ctx_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/**
 * Writes a message about the whole document: "file: msg", else "doc: msg",
 * else "msg". Returns -EINVAL.
 */
int json_fail_doc(json_ctx_t *c, const char *msg);

/** json_fail_doc(c, "out of memory"). Returns -ENOMEM. */
int json_fail_oom(json_ctx_t *c);

/**
 * True when `item` is a number with a whole value in lo..hi (bounds within
 * ±2^53, so the conversion is exact); the value then goes to *out.
 */
bool json_get_int(const cJSON *item, double lo, double hi, int64_t *out);

#endif
