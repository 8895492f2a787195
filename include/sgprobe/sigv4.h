/*
 * sigv4: AWS Signature Version 4 (AWS4-HMAC-SHA256) for requests sent in an
 * Authorization header, as described by AWS's "Create a signed AWS API request"
 * guide and checked against its 2015 test suite (docs/sigv4.md).
 *
 * The signer works on a request as it is sent: the path and query of the
 * request target, the header lines in their order with their values untrimmed,
 * and the body. It builds the canonical request, the string to sign and the
 * Authorization header's value, and says which headers the caller must add
 * (X-Amz-Date, X-Amz-Security-Token) because they were signed. It never sends
 * anything and never shows a secret in a message.
 *
 * Also here: the parser of the test suite's raw `.req` format and the writer of
 * its signed `.sreq` format, for `sgprobe-collector sign-request` and the tests.
 */
#ifndef SGPROBE_SIGV4_H
#define SGPROBE_SIGV4_H

#include <stdbool.h>
#include <stddef.h>

#define SIGV4_ALGORITHM   "AWS4-HMAC-SHA256"
#define SIGV4_DATE_LEN    16   /* YYYYMMDDTHHMMSSZ */
#define SIGV4_ERR_MAX     256  /* a buffer for any message of this module */
#define SIGV4_MAX_HEADERS 1024 /* header lines in one request (sigv4_sign, sigv4_rawreq_parse) */

/** One header line as sent; neither string need be NUL-terminated. */
typedef struct {
	const char *name;
	size_t name_len;
	const char *value;
	size_t value_len;
} sigv4_header_t;

/** The request to sign; nothing here is owned by the signer. */
typedef struct {
	const char *method;
	/* The path of the request target, as sent (raw UTF-8 or percent-encoded). */
	const char *path;
	const char *query; /* the part after '?', without it; NULL or "" when none */
	const sigv4_header_t *headers;
	size_t n_headers; /* as sent, in order, values untrimmed */
	const void *body;
	size_t body_len;
} sigv4_request_t;

/** The caller's credentials; the signer copies none of them. */
typedef struct {
	const char *access_key_id, *secret_access_key, *session_token; /* token may be NULL */
} sigv4_credentials_t;

/** Where and when the request is signed for. */
typedef struct {
	const char *region, *service;
	const char *amz_date; /* YYYYMMDDTHHMMSSZ, used when the request has no X-Amz-Date header */
	bool keep_path;       /* true for S3: no path normalisation, no double encoding */
} sigv4_params_t;

/** What sigv4_sign() produced; the strings are owned, freed by sigv4_signed_dispose(). */
typedef struct {
	char *canonical_request;
	char *string_to_sign;
	char *authorization; /* the Authorization header's value */
	char amz_date[17];   /* the date signed, YYYYMMDDTHHMMSSZ */
	/* The request had no X-Amz-Date: the caller must send "X-Amz-Date: amz_date" (it was signed). */
	bool add_date;
	/* A session token and no X-Amz-Security-Token header: the caller must send it (it was signed). */
	bool add_token;
} sigv4_signed_t;

/**
 * Signs `req` with `cred` for `p->region` and `p->service` into `out`, which
 * needs no initialisation and is all zeros on failure (so that
 * sigv4_signed_dispose() is always safe).
 *
 * The rules (docs/sigv4.md): the canonical URI is the path with dot segments
 * and repeated slashes removed (a trailing slash kept, empty is "/"), each
 * segment URI-encoded once more as sent, so that "%" becomes "%25" (AWS's
 * "encoded twice", which S3 does not do: with `keep_path` the path is neither
 * normalised nor double-encoded, only put in canonical single encoding). Query
 * parameters are split on '&', percent-decoded, re-encoded per RFC 3986 and
 * sorted by name then value. Every header is signed: names lower-cased and
 * sorted, values trimmed with inner runs of spaces and tabs made one space,
 * repeated headers joined with commas in their order. The payload hash is the
 * hex SHA-256 of the body, or the value of an X-Amz-Content-Sha256 header when
 * the request has one (S3's UNSIGNED-PAYLOAD).
 *
 * Returns 0; -EINVAL with `err` (`errlen` bytes, SIGV4_ERR_MAX is enough)
 * naming what was wrong (a header name that is not a token, a date that is not
 * YYYYMMDDTHHMMSSZ, no Host header, ...), never showing a secret or the
 * session token; or -ENOMEM, or -EIO when OpenSSL fails.
 */
int sigv4_sign(const sigv4_request_t *req, const sigv4_credentials_t *cred, const sigv4_params_t *p,
               sigv4_signed_t *out, char *err, size_t errlen);

/** Frees what sigv4_sign() produced and zeroes `s`; safe on a zeroed or disposed struct. */
void sigv4_signed_dispose(sigv4_signed_t *s);

/**
 * True when `s` is exactly YYYYMMDDTHHMMSSZ (SIGV4_DATE_LEN bytes) and a real
 * UTC date and time (month 01-12, the month's days, 00-23, 00-59, 00-59).
 */
bool sigv4_date_valid(const char *s, size_t len);

/**
 * Writes the current UTC time as YYYYMMDDTHHMMSSZ into `out` (SIGV4_DATE_LEN
 * + 1 bytes). Returns 0, or -EIO when the clock cannot be read.
 */
int sigv4_date_now(char out[SIGV4_DATE_LEN + 1]);

/**
 * A request in the test suite's raw `.req` format: a request line
 * `METHOD TARGET HTTP/x.y` (the target may hold raw spaces and UTF-8), header
 * lines `Name:value`, then optionally an empty line and the body. Lines end in
 * "\n" or "\r\n"; the last need not end at all.
 *
 * `req` points into `text` and into the owned strings below; `text` must
 * outlive it. Initialised by sigv4_rawreq_parse(), freed by
 * sigv4_rawreq_dispose().
 */
typedef struct {
	sigv4_request_t req;
	const char *text; /* the parsed bytes (not owned) */
	size_t head_len;  /* the request line and header lines, without the last line's end */
	bool head_ended;  /* the last header line had a line end (before the body or EOF) */
	const char *eol;  /* "\n" or "\r\n", as the request line ended ("\n" if it did not) */
	char *method;     /* owned, NUL-terminated */
	char *path;       /* owned, NUL-terminated */
	char *query;      /* owned, NUL-terminated; NULL when the target has no '?' */
	sigv4_header_t *headers; /* owned array; names and values point into `text` */
} sigv4_rawreq_t;

/**
 * Parses `len` bytes at `text` (need not be NUL-terminated) into `out`, which
 * needs no initialisation and is all zeros on failure. Returns 0; -EINVAL with
 * `err` naming the line and what was wrong with it (no request line, a header
 * line without ':', a folded header line, more than SIGV4_MAX_HEADERS
 * headers, ...); or -ENOMEM.
 */
int sigv4_rawreq_parse(const char *text, size_t len, sigv4_rawreq_t *out, char *err, size_t errlen);

/** Frees what sigv4_rawreq_parse() allocated and zeroes `r`; safe on a zeroed struct. */
void sigv4_rawreq_dispose(sigv4_rawreq_t *r);

/**
 * Formats the signed request in the suite's `.sreq` format: the request line
 * and header lines of `r` exactly as given, then `X-Amz-Date:<date>` when
 * s->add_date, `X-Amz-Security-Token:<session_token>` when s->add_token, then
 * `Authorization: <value>`, then, when the request has a body, an empty line
 * and the body. The output ends with a line end only when the input's last
 * header line had one, and uses the request line's line end throughout.
 *
 * Returns a new buffer (free(); it holds the session token when one was added)
 * of *len bytes plus a NUL, or NULL when out of memory or when s->add_token is
 * set without a `session_token`.
 */
char *sigv4_sreq_format(const sigv4_rawreq_t *r, const sigv4_signed_t *s, const char *session_token,
                        size_t *len);

#endif
