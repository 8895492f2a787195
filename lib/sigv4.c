/*
 * sigv4: AWS Signature Version 4 for an Authorization header (docs/sigv4.md).
 *
 * The canonical request is built in one growing buffer, in the order AWS
 * defines it: method, canonical URI, canonical query, canonical headers, signed
 * headers, payload hash. SHA-256 and HMAC come from OpenSSL; the signing key
 * chain (kDate, kRegion, kService, kSigning) is wiped once used, and the secret
 * is never copied anywhere but into the first HMAC key, itself wiped.
 *
 * Where the guide and botocore, AWS's own Python signer, differ from a literal
 * reading of RFC 3986, botocore wins, since it is what AWS services accept
 * every day: a trailing slash is kept only when the path as sent had one, and
 * the path of a non-S3 request is URI-encoded as sent, so an escape already in
 * it is encoded again ("%20" becomes "%2520": AWS's "encoded twice").
 */
#include "sgprobe/sigv4.h"
#include "sgprobe/strbuf.h"
#include "sgprobe/json.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>

/* A SHA-256 or HMAC-SHA256 output, in bytes. */
#define DIGEST_LEN 32

/* Longest access key id, region or service accepted (AWS's are far shorter). */
#define NAME_MAX_LEN 128

/* The scope's last element and the key derivation's prefix. */
#define SCOPE_TERMINATOR "aws4_request"
#define KEY_PREFIX       "AWS4"

/* One header being canonicalised: its lower-cased name and its value as sent. */
typedef struct {
	char *name; /* lower-cased copy, owned */
	size_t name_len;
	const char *value;
	size_t value_len;
	size_t order; /* position in the request, to keep repeated headers in order */
} hdr_t;

/* Writes a message into err; never given a secret. Returns -EINVAL. */
static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || errlen == 0)
		return -EINVAL;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static int fail_oom(char *err, size_t errlen)
{
	fail(err, errlen, "out of memory");
	return -ENOMEM;
}

/* OpenSSL's failure, converted here with its own message. Returns -EIO. */
static int fail_openssl(char *err, size_t errlen, const char *what)
{
	char msg[128];
	unsigned long e = ERR_get_error();

	if (e)
		ERR_error_string_n(e, msg, sizeof(msg));
	else
		snprintf(msg, sizeof(msg), "no error queued");
	ERR_clear_error();
	fail(err, errlen, "OpenSSL %s failed: %s", what, msg);
	return -EIO;
}

/* Quotes a user string (never a secret) for a message, as json_quote() does. */
static const char *quote_n(const char *s, size_t len, char *q, size_t qlen)
{
	char tmp[JSON_QUOTE_MAX + 2];
	size_t i;

	if (len > JSON_QUOTE_MAX + 1)
		len = JSON_QUOTE_MAX + 1;
	memcpy(tmp, s, len);
	tmp[len] = '\0';
	/* A NUL inside the string would end it early: made a byte json_quote() shows as '?'. */
	for (i = 0; i < len; i++) {
		if (tmp[i] == '\0')
			tmp[i] = '\x01';
	}
	return json_quote(tmp, q, qlen);
}

static void hex_encode(const unsigned char *in, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * n] = '\0';
}

/* RFC 3986 unreserved characters: the only bytes AWS leaves unencoded. */
static bool unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_' || c == '~';
}

/* RFC 9110 tchar: the characters of a token (a method, a header name). */
static bool tchar(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       (c != '\0' && strchr("!#$%&'*+-.^_`|~", c));
}

static bool is_token(const char *s, size_t len)
{
	size_t i;

	if (len == 0)
		return false;
	for (i = 0; i < len; i++) {
		if (!tchar((unsigned char)s[i]))
			return false;
	}
	return true;
}

/* A control character: anything below 0x20, and DEL; HTAB only when `tab` says so. */
static bool ctl(unsigned char c, bool tab)
{
	return (c < 0x20 && !(tab && c == '\t')) || c == 0x7f;
}

/*
 * Index of the first control character in s, or len when there is none. A tab
 * is allowed in a header value (`tab`), not in a request target.
 */
static size_t find_ctl(const char *s, size_t len, bool tab)
{
	size_t i;

	for (i = 0; i < len; i++) {
		if (ctl((unsigned char)s[i], tab))
			return i;
	}
	return len;
}

static bool space(char c)
{
	return c == ' ' || c == '\t';
}

/* Appends the URI encoding of n bytes: unreserved kept, everything else %XX. */
static void encode(strbuf_t *b, const char *s, size_t n)
{
	static const char digits[] = "0123456789ABCDEF";
	size_t i;

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (unreserved(c)) {
			strbuf_addc(b, (char)c);
		} else {
			char esc[3] = {'%', digits[c >> 4], digits[c & 15]};

			strbuf_add(b, esc, 3);
		}
	}
}

/*
 * Appends the URI encoding of n bytes after decoding their %XX escapes, so that
 * an escape is neither kept in a non-canonical form (%7e, %41) nor encoded
 * twice. A '%' not followed by two hex digits is an error naming `what` and
 * the byte's position in it (`base` is where `s` starts, counted from 0).
 */
static int decode_encode(strbuf_t *b, const char *s, size_t n, const char *what, size_t base,
                         char *err, size_t errlen)
{
	size_t i;

	for (i = 0; i < n; i++) {
		char c = s[i];

		if (c == '%') {
			int hi = i + 2 < n ? OPENSSL_hexchar2int((unsigned char)s[i + 1]) : -1;
			int lo = i + 2 < n ? OPENSSL_hexchar2int((unsigned char)s[i + 2]) : -1;

			if (hi < 0 || lo < 0)
				return fail(
				    err, errlen,
				    "%s: '%%' at byte %zu is not followed by two hex digits", what,
				    base + i + 1);
			c = (char)(hi << 4 | lo);
			i += 2;
		}
		encode(b, &c, 1);
	}
	return 0;
}

/* A path segment: `len` bytes at `s`. */
typedef struct {
	const char *s;
	size_t len;
} seg_t;

/*
 * Appends the canonical URI of `path`. Without keep_path: dot segments and
 * empty segments (repeated slashes) removed, a trailing slash kept when the
 * path as sent ends with one and something is left, each segment URI-encoded
 * as sent. With keep_path (S3): the segments as they are, each decoded and
 * encoded once.
 */
static int canonical_uri(strbuf_t *b, const char *path, bool keep_path, char *err, size_t errlen)
{
	size_t len = path ? strlen(path) : 0;
	size_t n_max = 1;
	size_t n = 0;
	size_t start;
	size_t i;
	seg_t *segs;
	int result;

	if (len == 0) {
		strbuf_addc(b, '/');
		return 0;
	}
	if (path[0] != '/')
		return fail(err, errlen, "path: must start with '/'");
	i = find_ctl(path, len, false);
	if (i < len)
		return fail(err, errlen, "path: a control character at byte %zu", i + 1);
	if (keep_path) {
		start = 0;
		for (i = 0; i <= len; i++) {
			if (i < len && path[i] != '/')
				continue;
			result =
			    decode_encode(b, path + start, i - start, "path", start, err, errlen);
			if (result)
				return result;
			if (i < len)
				strbuf_addc(b, '/');
			start = i + 1;
		}
		return 0;
	}
	for (i = 0; i < len; i++) {
		if (path[i] == '/')
			n_max++;
	}
	segs = calloc(n_max, sizeof(*segs));
	if (!segs)
		return fail_oom(err, errlen);
	start = 1;
	for (i = 1; i <= len; i++) {
		const char *s = path + start;
		size_t slen = i - start;

		if (i < len && path[i] != '/')
			continue;
		start = i + 1;
		if (slen == 0 || (slen == 1 && s[0] == '.'))
			continue;
		if (slen == 2 && s[0] == '.' && s[1] == '.') {
			/* Above the root there is nothing to remove (RFC 3986 5.2.4). */
			if (n > 0)
				n--;
			continue;
		}
		segs[n].s = s;
		segs[n].len = slen;
		n++;
	}
	strbuf_addc(b, '/');
	for (i = 0; i < n; i++) {
		if (i > 0)
			strbuf_addc(b, '/');
		encode(b, segs[i].s, segs[i].len);
	}
	if (n > 0 && path[len - 1] == '/')
		strbuf_addc(b, '/');
	free(segs);
	return 0;
}

/* A query parameter, both parts in canonical encoding. */
typedef struct {
	char *name;
	char *value;
} param_t;

static int cmp_param(const void *a, const void *b)
{
	const param_t *x = a;
	const param_t *y = b;
	int c = strcmp(x->name, y->name);

	return c ? c : strcmp(x->value, y->value);
}

/* Encodes `n` bytes of the query at `offset` into a new string in *out. */
static int encode_part(const char *query, size_t offset, size_t n, char **out, char *err,
                       size_t errlen)
{
	strbuf_t b = {0};
	int result;

	result = decode_encode(&b, query + offset, n, "query", offset, err, errlen);
	if (result) {
		strbuf_free(&b);
		return result;
	}
	*out = strbuf_take(&b);
	if (!*out)
		return fail_oom(err, errlen);
	return 0;
}

/*
 * Appends the canonical query: the parameters split on '&' (empty ones
 * dropped), each name and value decoded and encoded per RFC 3986 (a missing
 * '=' is an empty value), sorted by name then value, joined with '&'.
 */
static int canonical_query(strbuf_t *b, const char *query, char *err, size_t errlen)
{
	size_t len = query ? strlen(query) : 0;
	size_t n_max = 1;
	size_t n = 0;
	size_t start = 0;
	size_t i;
	param_t *params;
	int result = 0;

	if (len == 0)
		return 0;
	i = find_ctl(query, len, false);
	if (i < len)
		return fail(err, errlen, "query: a control character at byte %zu", i + 1);
	for (i = 0; i < len; i++) {
		if (query[i] == '&')
			n_max++;
	}
	params = calloc(n_max, sizeof(*params));
	if (!params)
		return fail_oom(err, errlen);
	for (i = 0; i <= len; i++) {
		const char *eq;
		size_t plen = i - start;
		size_t nlen;

		if (i < len && query[i] != '&')
			continue;
		if (plen > 0) {
			eq = memchr(query + start, '=', plen);
			nlen = eq ? (size_t)(eq - (query + start)) : plen;
			result = encode_part(query, start, nlen, &params[n].name, err, errlen);
			if (!result)
				result = encode_part(query, start + nlen + (eq ? 1 : 0),
				                     eq ? plen - nlen - 1 : 0, &params[n].value,
				                     err, errlen);
			n++;
			if (result)
				goto out;
		}
		start = i + 1;
	}
	qsort(params, n, sizeof(*params), cmp_param);
	for (i = 0; i < n; i++) {
		if (i > 0)
			strbuf_addc(b, '&');
		strbuf_adds(b, params[i].name);
		strbuf_addc(b, '=');
		strbuf_adds(b, params[i].value);
	}
out:
	for (i = 0; i < n; i++) {
		free(params[i].name);
		free(params[i].value);
	}
	free(params);
	return result;
}

static int cmp_hdr(const void *a, const void *b)
{
	const hdr_t *x = a;
	const hdr_t *y = b;
	size_t n = x->name_len < y->name_len ? x->name_len : y->name_len;
	int c = memcmp(x->name, y->name, n);

	if (c)
		return c;
	if (x->name_len != y->name_len)
		return x->name_len < y->name_len ? -1 : 1;
	return x->order < y->order ? -1 : x->order > y->order;
}

/* Appends a header value trimmed, with inner runs of spaces and tabs made one space. */
static void add_trimmed(strbuf_t *b, const char *v, size_t len)
{
	bool pending = false;
	bool any = false;
	size_t i;

	for (i = 0; i < len; i++) {
		if (space(v[i])) {
			pending = any;
			continue;
		}
		if (pending)
			strbuf_addc(b, ' ');
		strbuf_addc(b, v[i]);
		pending = false;
		any = true;
	}
}

/* The value without its leading and trailing spaces and tabs. */
static void trim(const char **v, size_t *len)
{
	while (*len > 0 && space(**v)) {
		(*v)++;
		(*len)--;
	}
	while (*len > 0 && space((*v)[*len - 1]))
		(*len)--;
}

/*
 * Appends the canonical headers (one `name:value\n` line per name, sorted,
 * repeated headers' values joined with ',') to `creq` and the signed headers
 * (`name;name`) to `names`. Sorts `h`.
 */
static void canonical_headers(strbuf_t *creq, strbuf_t *names, hdr_t *h, size_t n)
{
	size_t i;

	qsort(h, n, sizeof(*h), cmp_hdr);
	for (i = 0; i < n; i++) {
		bool same = i > 0 && h[i].name_len == h[i - 1].name_len &&
		            !memcmp(h[i].name, h[i - 1].name, h[i].name_len);

		if (same) {
			strbuf_addc(creq, ',');
		} else {
			if (i > 0) {
				strbuf_addc(creq, '\n');
				strbuf_addc(names, ';');
			}
			strbuf_add(creq, h[i].name, h[i].name_len);
			strbuf_addc(creq, ':');
			strbuf_add(names, h[i].name, h[i].name_len);
		}
		add_trimmed(creq, h[i].value, h[i].value_len);
	}
	strbuf_addc(creq, '\n');
}

static bool eq_lower(const char *lower, size_t len, const char *name)
{
	return strlen(name) == len && !memcmp(lower, name, len);
}

/* True for 1-NAME_MAX_LEN of A-Z, a-z, 0-9, '-', '_', '.': an access key id, region, service. */
static bool valid_name(const char *s)
{
	size_t i;

	if (!s || !s[0])
		return false;
	for (i = 0; s[i]; i++) {
		unsigned char c = (unsigned char)s[i];

		if (i >= NAME_MAX_LEN ||
		    !((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_' || c == '.'))
			return false;
	}
	return true;
}

bool sigv4_date_valid(const char *s, size_t len)
{
	static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int d[SIGV4_DATE_LEN];
	int year, month, day, leap;
	size_t i;

	if (!s || len != SIGV4_DATE_LEN || s[8] != 'T' || s[15] != 'Z')
		return false;
	for (i = 0; i < SIGV4_DATE_LEN; i++) {
		if (i == 8 || i == 15)
			continue;
		if (s[i] < '0' || s[i] > '9')
			return false;
		d[i] = s[i] - '0';
	}
	year = d[0] * 1000 + d[1] * 100 + d[2] * 10 + d[3];
	month = d[4] * 10 + d[5];
	day = d[6] * 10 + d[7];
	if (month < 1 || month > 12 || day < 1)
		return false;
	leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
	if (day > mdays[month - 1] + (month == 2 && leap))
		return false;
	return d[9] * 10 + d[10] <= 23 && d[11] * 10 + d[12] <= 59 && d[13] * 10 + d[14] <= 59;
}

int sigv4_date_now(char out[SIGV4_DATE_LEN + 1])
{
	struct tm tm;
	time_t now = time(NULL);

	if (now == (time_t)-1 || !gmtime_r(&now, &tm))
		return -EIO;
	if (strftime(out, SIGV4_DATE_LEN + 1, "%Y%m%dT%H%M%SZ", &tm) != SIGV4_DATE_LEN)
		return -EIO;
	return 0;
}

/* HMAC-SHA256 of msg under key into out. Returns 0 or -EIO. */
static int hmac(const void *key, size_t key_len, const void *msg, size_t msg_len,
                unsigned char out[DIGEST_LEN])
{
	size_t out_len = 0;

	if (!EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key, key_len, msg, msg_len, out,
	               DIGEST_LEN, &out_len) ||
	    out_len != DIGEST_LEN)
		return -EIO;
	return 0;
}

/* Hex SHA-256 of n bytes into hex (2 * DIGEST_LEN + 1 bytes). Returns 0 or -EIO. */
static int sha256_hex(const void *data, size_t n, char *hex)
{
	static const unsigned char empty[1];
	unsigned char md[DIGEST_LEN];
	size_t md_len = 0;

	if (!EVP_Q_digest(NULL, "SHA256", NULL, n ? data : empty, n, md, &md_len) ||
	    md_len != DIGEST_LEN)
		return -EIO;
	hex_encode(md, DIGEST_LEN, hex);
	return 0;
}

/*
 * The signature: HMAC(kSigning, string to sign) in hex, where kSigning comes
 * from the secret through the date, region and service. Every intermediate key
 * is wiped. Returns 0 or -EIO.
 */
static int signature(const char *secret, const char *date8, const sigv4_params_t *p,
                     const char *sts, char *hex)
{
	size_t klen = sizeof(KEY_PREFIX) - 1 + strlen(secret);
	unsigned char k1[DIGEST_LEN];
	unsigned char k2[DIGEST_LEN];
	unsigned char sig[DIGEST_LEN];
	char *ksecret;
	int result;

	ksecret = malloc(klen);
	if (!ksecret)
		return -ENOMEM;
	memcpy(ksecret, KEY_PREFIX, sizeof(KEY_PREFIX) - 1);
	memcpy(ksecret + sizeof(KEY_PREFIX) - 1, secret, klen - (sizeof(KEY_PREFIX) - 1));
	/* kDate, kRegion, kService, kSigning: never computed in place. */
	result = hmac(ksecret, klen, date8, 8, k1);
	OPENSSL_cleanse(ksecret, klen);
	free(ksecret);
	if (!result)
		result = hmac(k1, DIGEST_LEN, p->region, strlen(p->region), k2);
	if (!result)
		result = hmac(k2, DIGEST_LEN, p->service, strlen(p->service), k1);
	if (!result)
		result = hmac(k1, DIGEST_LEN, SCOPE_TERMINATOR, strlen(SCOPE_TERMINATOR), k2);
	if (!result)
		result = hmac(k2, DIGEST_LEN, sts, strlen(sts), sig);
	OPENSSL_cleanse(k1, sizeof(k1));
	OPENSSL_cleanse(k2, sizeof(k2));
	if (!result)
		hex_encode(sig, DIGEST_LEN, hex);
	return result;
}

/* Checks the credentials and parameters; the messages never show a secret. */
static int check_inputs(const sigv4_request_t *req, const sigv4_credentials_t *cred,
                        const sigv4_params_t *p, char *err, size_t errlen)
{
	char q[JSON_QUOTE_BUF];
	size_t n;

	if (!req || !cred || !p)
		return fail(err, errlen, "no request, credentials or parameters");
	if (!req->method || !is_token(req->method, strlen(req->method)))
		return fail(err, errlen, "method: '%s' is not an HTTP token",
		            json_quote(req->method ? req->method : "", q, sizeof(q)));
	if (req->n_headers > 0 && !req->headers)
		return fail(err, errlen, "headers: %zu headers but no array", req->n_headers);
	if (req->n_headers > SIGV4_MAX_HEADERS)
		return fail(err, errlen, "headers: %zu headers, more than the limit of %d",
		            req->n_headers, SIGV4_MAX_HEADERS);
	if (req->body_len > 0 && !req->body)
		return fail(err, errlen, "body: %zu bytes but no data", req->body_len);
	/* The key id is not secret, but is not shown either: it may be a pasted secret. */
	if (!valid_name(cred->access_key_id))
		return fail(err, errlen,
		            "access key id: must be 1-%d of A-Z, a-z, 0-9, '-', '_', '.'",
		            NAME_MAX_LEN);
	if (!cred->secret_access_key || !cred->secret_access_key[0])
		return fail(err, errlen, "secret access key: empty");
	if (cred->session_token) {
		n = strlen(cred->session_token);
		if (find_ctl(cred->session_token, n, false) < n)
			return fail(err, errlen, "session token: holds a control character");
	}
	if (!valid_name(p->region))
		return fail(err, errlen, "region: '%s' is not 1-%d of A-Z, a-z, 0-9, '-', '_', '.'",
		            json_quote(p->region ? p->region : "", q, sizeof(q)), NAME_MAX_LEN);
	if (!valid_name(p->service))
		return fail(err, errlen,
		            "service: '%s' is not 1-%d of A-Z, a-z, 0-9, '-', '_', '.'",
		            json_quote(p->service ? p->service : "", q, sizeof(q)), NAME_MAX_LEN);
	return 0;
}

/* What sigv4_sign() learns from the request's headers. */
typedef struct {
	const hdr_t *date;    /* X-Amz-Date */
	const hdr_t *token;   /* X-Amz-Security-Token */
	const hdr_t *content; /* X-Amz-Content-Sha256 */
	bool host;
} seen_t;

/*
 * Copies the request's headers into h (names lower-cased), checking each, and
 * notes the ones the signer cares about in *seen.
 */
static int collect_headers(const sigv4_request_t *req, hdr_t *h, seen_t *seen, char *err,
                           size_t errlen)
{
	char q[JSON_QUOTE_BUF];
	size_t i, j;

	for (i = 0; i < req->n_headers; i++) {
		const sigv4_header_t *in = &req->headers[i];
		hdr_t *o = &h[i];
		const hdr_t **slot = NULL;

		if (!in->name || !is_token(in->name, in->name_len))
			return fail(err, errlen, "header %zu: name '%s' is not an HTTP token",
			            i + 1,
			            quote_n(in->name ? in->name : "", in->name ? in->name_len : 0,
			                    q, sizeof(q)));
		if (in->value_len > 0 && !in->value)
			return fail(err, errlen, "header %zu (%s): no value", i + 1,
			            quote_n(in->name, in->name_len, q, sizeof(q)));
		j = find_ctl(in->value, in->value_len, true);
		if (j < in->value_len)
			return fail(err, errlen,
			            "header %zu (%s): a control character in the value", i + 1,
			            quote_n(in->name, in->name_len, q, sizeof(q)));
		o->name = malloc(in->name_len);
		if (!o->name)
			return fail_oom(err, errlen);
		for (j = 0; j < in->name_len; j++) {
			char c = in->name[j];

			o->name[j] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
		}
		o->name_len = in->name_len;
		o->value = in->value ? in->value : "";
		o->value_len = in->value_len;
		o->order = i;
		if (eq_lower(o->name, o->name_len, "authorization"))
			return fail(err, errlen, "the request already has an Authorization header");
		if (eq_lower(o->name, o->name_len, "host"))
			seen->host = true;
		else if (eq_lower(o->name, o->name_len, "x-amz-date"))
			slot = &seen->date;
		else if (eq_lower(o->name, o->name_len, "x-amz-security-token"))
			slot = &seen->token;
		else if (eq_lower(o->name, o->name_len, "x-amz-content-sha256"))
			slot = &seen->content;
		if (slot && *slot)
			return fail(err, errlen, "header %zu: a second %s header", i + 1,
			            quote_n(in->name, in->name_len, q, sizeof(q)));
		if (slot)
			*slot = o;
	}
	if (!seen->host)
		return fail(err, errlen, "no Host header (SigV4 always signs the host)");
	return 0;
}

/* Chooses the date: the X-Amz-Date header's, else p->amz_date. */
static int choose_date(const seen_t *seen, const sigv4_params_t *p, sigv4_signed_t *out, char *err,
                       size_t errlen)
{
	char q[JSON_QUOTE_BUF];
	const char *v;
	size_t len;

	if (seen->date) {
		v = seen->date->value;
		len = seen->date->value_len;
		trim(&v, &len);
		if (!sigv4_date_valid(v, len))
			return fail(err, errlen, "X-Amz-Date header: '%s' is not YYYYMMDDTHHMMSSZ",
			            quote_n(v, len, q, sizeof(q)));
	} else {
		if (!p->amz_date)
			return fail(err, errlen, "no X-Amz-Date header and no date to add");
		v = p->amz_date;
		len = strlen(v);
		if (!sigv4_date_valid(v, len))
			return fail(err, errlen, "date: '%s' is not YYYYMMDDTHHMMSSZ",
			            json_quote(v, q, sizeof(q)));
		out->add_date = true;
	}
	memcpy(out->amz_date, v, SIGV4_DATE_LEN);
	out->amz_date[SIGV4_DATE_LEN] = '\0';
	return 0;
}

/* Appends a header the caller will add to the list being signed. */
static int add_header(hdr_t *h, size_t *n, const char *name, const char *value, char *err,
                      size_t errlen)
{
	h[*n].name = strdup(name);
	if (!h[*n].name)
		return fail_oom(err, errlen);
	h[*n].name_len = strlen(name);
	h[*n].value = value;
	h[*n].value_len = strlen(value);
	h[*n].order = *n;
	(*n)++;
	return 0;
}

int sigv4_sign(const sigv4_request_t *req, const sigv4_credentials_t *cred, const sigv4_params_t *p,
               sigv4_signed_t *out, char *err, size_t errlen)
{
	char payload[2 * DIGEST_LEN + 1];
	char creq_hash[2 * DIGEST_LEN + 1];
	char sig[2 * DIGEST_LEN + 1];
	strbuf_t creq = {0};
	strbuf_t names = {0};
	strbuf_t sts = {0};
	strbuf_t scope = {0};
	strbuf_t authz = {0};
	seen_t seen = {0};
	hdr_t *h = NULL;
	size_t n = 0;
	size_t i;
	int result;

	if (err && errlen > 0)
		err[0] = '\0';
	if (!out)
		return fail(err, errlen, "no output");
	memset(out, 0, sizeof(*out));
	result = check_inputs(req, cred, p, err, errlen);
	if (result)
		return result;
	h = calloc(req->n_headers + 2, sizeof(*h));
	if (!h)
		return fail_oom(err, errlen);
	n = req->n_headers;
	result = collect_headers(req, h, &seen, err, errlen);
	if (result)
		goto out;
	result = choose_date(&seen, p, out, err, errlen);
	if (result)
		goto out;
	if (out->add_date) {
		result = add_header(h, &n, "x-amz-date", out->amz_date, err, errlen);
		if (result)
			goto out;
	}
	if (cred->session_token && cred->session_token[0] && !seen.token) {
		result =
		    add_header(h, &n, "x-amz-security-token", cred->session_token, err, errlen);
		if (result)
			goto out;
		out->add_token = true;
	}
	if (seen.content) {
		const char *v = seen.content->value;
		size_t len = seen.content->value_len;

		trim(&v, &len);
		if (len == 0 || len >= sizeof(payload)) {
			result = fail(err, errlen,
			              "X-Amz-Content-Sha256 header: must be a SHA-256 in hex or a "
			              "keyword such as UNSIGNED-PAYLOAD");
			goto out;
		}
		memcpy(payload, v, len);
		payload[len] = '\0';
	} else if (sha256_hex(req->body, req->body_len, payload)) {
		result = fail_openssl(err, errlen, "SHA-256");
		goto out;
	}

	strbuf_adds(&creq, req->method);
	strbuf_addc(&creq, '\n');
	result = canonical_uri(&creq, req->path, p->keep_path, err, errlen);
	if (result)
		goto out;
	strbuf_addc(&creq, '\n');
	result = canonical_query(&creq, req->query, err, errlen);
	if (result)
		goto out;
	strbuf_addc(&creq, '\n');
	canonical_headers(&creq, &names, h, n);
	strbuf_addc(&creq, '\n');
	strbuf_add(&creq, names.p ? names.p : "", names.len);
	strbuf_addc(&creq, '\n');
	strbuf_adds(&creq, payload);
	if (creq.oom || names.oom) {
		result = fail_oom(err, errlen);
		goto out;
	}
	if (sha256_hex(creq.p, creq.len, creq_hash)) {
		result = fail_openssl(err, errlen, "SHA-256");
		goto out;
	}

	/* The scope, date/region/service/aws4_request, in the string to sign and the header. */
	strbuf_add(&scope, out->amz_date, 8);
	strbuf_addc(&scope, '/');
	strbuf_adds(&scope, p->region);
	strbuf_addc(&scope, '/');
	strbuf_adds(&scope, p->service);
	strbuf_adds(&scope, "/" SCOPE_TERMINATOR);
	strbuf_adds(&sts, SIGV4_ALGORITHM "\n");
	strbuf_adds(&sts, out->amz_date);
	strbuf_addc(&sts, '\n');
	strbuf_add(&sts, scope.p ? scope.p : "", scope.len);
	strbuf_addc(&sts, '\n');
	strbuf_adds(&sts, creq_hash);
	if (sts.oom || scope.oom) {
		result = fail_oom(err, errlen);
		goto out;
	}
	result = signature(cred->secret_access_key, out->amz_date, p, sts.p, sig);
	if (result == -ENOMEM) {
		fail_oom(err, errlen);
		goto out;
	}
	if (result) {
		result = fail_openssl(err, errlen, "HMAC-SHA256");
		goto out;
	}

	strbuf_adds(&authz, SIGV4_ALGORITHM " Credential=");
	strbuf_adds(&authz, cred->access_key_id);
	strbuf_addc(&authz, '/');
	strbuf_add(&authz, scope.p, scope.len);
	strbuf_adds(&authz, ", SignedHeaders=");
	strbuf_add(&authz, names.p, names.len);
	strbuf_adds(&authz, ", Signature=");
	strbuf_adds(&authz, sig);

	out->canonical_request = strbuf_take(&creq);
	out->string_to_sign = strbuf_take(&sts);
	out->authorization = strbuf_take(&authz);
	if (!out->canonical_request || !out->string_to_sign || !out->authorization)
		result = fail_oom(err, errlen);
out:
	for (i = 0; i < n; i++)
		free(h[i].name);
	free(h);
	strbuf_free(&creq);
	strbuf_free(&names);
	strbuf_free(&sts);
	strbuf_free(&scope);
	strbuf_free(&authz);
	if (result)
		sigv4_signed_dispose(out);
	return result;
}

void sigv4_signed_dispose(sigv4_signed_t *s)
{
	if (!s)
		return;
	free(s->canonical_request);
	free(s->string_to_sign);
	free(s->authorization);
	memset(s, 0, sizeof(*s));
}

/* A new NUL-terminated copy of n bytes, or NULL. */
static char *dup_n(const char *s, size_t n)
{
	char *p = malloc(n + 1);

	if (!p)
		return NULL;
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

/* One line of a raw request: [start, end) without its line end; `next` is the next line's start. */
typedef struct {
	size_t start;
	size_t end;
	size_t next;
	bool ended; /* a "\n" ended it */
	bool crlf;  /* and a '\r' came before it */
} line_t;

static void next_line(const char *text, size_t len, size_t pos, line_t *l)
{
	const char *nl = memchr(text + pos, '\n', len - pos);

	l->start = pos;
	if (!nl) {
		l->end = len;
		l->next = len;
		l->ended = false;
		l->crlf = false;
		return;
	}
	l->end = (size_t)(nl - text);
	l->next = l->end + 1;
	l->ended = true;
	l->crlf = l->end > pos && text[l->end - 1] == '\r';
	if (l->crlf)
		l->end--;
}

/* Parses the request line `METHOD TARGET HTTP/x.y` into r. */
static int parse_request_line(const char *s, size_t n, sigv4_rawreq_t *r, char *err, size_t errlen)
{
	char q[JSON_QUOTE_BUF];
	const char *sp1;
	const char *sp2;
	const char *target;
	const char *qmark;
	size_t tlen;
	size_t i;

	i = find_ctl(s, n, false);
	if (i < n)
		return fail(err, errlen, "line 1: a control character at byte %zu", i + 1);
	sp1 = memchr(s, ' ', n);
	sp2 = memrchr(s, ' ', n);
	if (!sp1 || sp1 == sp2)
		return fail(err, errlen, "line 1: '%s' is not 'METHOD TARGET HTTP/x.y'",
		            quote_n(s, n, q, sizeof(q)));
	if (!is_token(s, (size_t)(sp1 - s)))
		return fail(err, errlen, "line 1: method '%s' is not an HTTP token",
		            quote_n(s, (size_t)(sp1 - s), q, sizeof(q)));
	if ((size_t)(s + n - (sp2 + 1)) < 6 || memcmp(sp2 + 1, "HTTP/", 5))
		return fail(err, errlen, "line 1: '%s' is not an HTTP version (HTTP/x.y)",
		            quote_n(sp2 + 1, (size_t)(s + n - (sp2 + 1)), q, sizeof(q)));
	target = sp1 + 1;
	tlen = (size_t)(sp2 - target);
	if (tlen == 0 || target[0] != '/')
		return fail(err, errlen, "line 1: the target '%s' does not start with '/'",
		            quote_n(target, tlen, q, sizeof(q)));
	qmark = memchr(target, '?', tlen);
	r->method = dup_n(s, (size_t)(sp1 - s));
	r->path = dup_n(target, qmark ? (size_t)(qmark - target) : tlen);
	if (qmark)
		r->query = dup_n(qmark + 1, (size_t)(target + tlen - (qmark + 1)));
	if (!r->method || !r->path || (qmark && !r->query))
		return fail_oom(err, errlen);
	return 0;
}

/* Parses one header line (line number `no`) and appends it to r->headers. */
static int parse_header_line(const char *s, size_t n, size_t no, size_t *cap, sigv4_rawreq_t *r,
                             char *err, size_t errlen)
{
	char q[JSON_QUOTE_BUF];
	sigv4_header_t *h;
	const char *colon;
	size_t i;

	if (space(s[0]))
		return fail(err, errlen,
		            "line %zu: a folded header line (starting with a space or tab) is not "
		            "supported",
		            no);
	i = find_ctl(s, n, true);
	if (i < n)
		return fail(err, errlen, "line %zu: a control character at byte %zu", no, i + 1);
	colon = memchr(s, ':', n);
	if (!colon)
		return fail(err, errlen, "line %zu: '%s' is a header line without ':'", no,
		            quote_n(s, n, q, sizeof(q)));
	if (!is_token(s, (size_t)(colon - s)))
		return fail(err, errlen, "line %zu: header name '%s' is not an HTTP token", no,
		            quote_n(s, (size_t)(colon - s), q, sizeof(q)));
	if (r->req.n_headers == SIGV4_MAX_HEADERS)
		return fail(err, errlen, "line %zu: more than %d headers", no, SIGV4_MAX_HEADERS);
	if (r->req.n_headers == *cap) {
		size_t ncap = *cap ? *cap * 2 : 16;

		h = realloc(r->headers, ncap * sizeof(*h));
		if (!h)
			return fail_oom(err, errlen);
		r->headers = h;
		*cap = ncap;
	}
	h = &r->headers[r->req.n_headers++];
	h->name = s;
	h->name_len = (size_t)(colon - s);
	h->value = colon + 1;
	h->value_len = (size_t)(s + n - (colon + 1));
	return 0;
}

int sigv4_rawreq_parse(const char *text, size_t len, sigv4_rawreq_t *out, char *err, size_t errlen)
{
	size_t cap = 0;
	size_t no = 1;
	line_t l;
	int result;

	if (err && errlen > 0)
		err[0] = '\0';
	if (!out)
		return fail(err, errlen, "no output");
	memset(out, 0, sizeof(*out));
	if (len == 0 || !text)
		return fail(err, errlen, "empty request: no request line");
	out->text = text;
	next_line(text, len, 0, &l);
	out->eol = l.crlf ? "\r\n" : "\n";
	result = parse_request_line(text + l.start, l.end - l.start, out, err, errlen);
	if (result)
		goto out;
	out->head_len = l.end;
	out->head_ended = l.ended;
	while (l.ended && l.next < len) {
		next_line(text, len, l.next, &l);
		no++;
		if (l.end == l.start) {
			/* The empty line: the rest is the body. */
			out->req.body = l.next < len ? text + l.next : NULL;
			out->req.body_len = len - l.next;
			break;
		}
		result =
		    parse_header_line(text + l.start, l.end - l.start, no, &cap, out, err, errlen);
		if (result)
			goto out;
		out->head_len = l.end;
		out->head_ended = l.ended;
	}
	out->req.method = out->method;
	out->req.path = out->path;
	out->req.query = out->query;
	out->req.headers = out->headers;
out:
	if (result)
		sigv4_rawreq_dispose(out);
	return result;
}

void sigv4_rawreq_dispose(sigv4_rawreq_t *r)
{
	if (!r)
		return;
	free(r->method);
	free(r->path);
	free(r->query);
	free(r->headers);
	memset(r, 0, sizeof(*r));
}

char *sigv4_sreq_format(const sigv4_rawreq_t *r, const sigv4_signed_t *s, const char *session_token,
                        size_t *len)
{
	strbuf_t b = {0};
	const char *eol;
	size_t n;
	char *p;

	if (!r || !r->text || !s || !s->authorization || (s->add_token && !session_token))
		return NULL;
	eol = r->eol ? r->eol : "\n";
	strbuf_add(&b, r->text, r->head_len);
	if (s->add_date) {
		strbuf_adds(&b, eol);
		strbuf_adds(&b, "X-Amz-Date:");
		strbuf_adds(&b, s->amz_date);
	}
	if (s->add_token) {
		strbuf_adds(&b, eol);
		strbuf_adds(&b, "X-Amz-Security-Token:");
		strbuf_adds(&b, session_token);
	}
	strbuf_adds(&b, eol);
	strbuf_adds(&b, "Authorization: ");
	strbuf_adds(&b, s->authorization);
	if (r->req.body_len > 0) {
		strbuf_adds(&b, eol);
		strbuf_adds(&b, eol);
		strbuf_add(&b, r->req.body, r->req.body_len);
	} else if (r->head_ended) {
		strbuf_adds(&b, eol);
	}
	n = b.len;
	p = strbuf_take(&b);
	if (p && len)
		*len = n;
	return p;
}
