/*
 * Unit tests of lib/sigv4.c: AWS's 2015 SigV4 test suite (the six cases
 * shipped in ../shared/aws/sigv4, byte for byte: canonical request, string to
 * sign, Authorization, signed request), the other 23 cases written in
 * tests/data/sigv4 with canonical requests derived by hand from the rules (and
 * the suite's Authorization where botocore reproduces it), sgprobe's own cases
 * there, the added X-Amz-Date and X-Amz-Security-Token, S3's path rules, and
 * every kind of bad input refused with a message that names it and never
 * shows the secret.
 *
 * Run from the repository's top: the suite is read from ../shared/aws/sigv4
 * (CI puts shared/ beside the clone) and the written cases from tests/data.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "sgprobe/sigv4.h"

#define SHARED_DIR "../shared/aws/sigv4"
#define DATA_DIR   "tests/data/sigv4"

/* The suite's constants (../shared/aws/sigv4/suite-credentials.json). */
#define AKID   "AKIDEXAMPLE"
#define SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define TOKEN                                                                                      \
	"AQoDYXdzEPT//////////"                                                                    \
	"wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxf"                     \
	"pSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KP" \
	"kyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbq" \
	"BAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA=="
#define DATE   "20150830T123600Z"
#define REGION "us-east-1"
#define SVC    "service"

#define EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

/* A file's bytes with a NUL after them, or NULL when it cannot be read. */
static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t cap = 0;
	size_t n = 0;
	size_t r;

	if (!f)
		return NULL;
	for (;;) {
		if (n + 4096 > cap) {
			cap = cap ? cap * 2 : 8192;
			buf = realloc(buf, cap);
			assert_non_null(buf);
		}
		r = fread(buf + n, 1, cap - n - 1, f);
		if (r == 0)
			break;
		n += r;
	}
	fclose(f);
	buf[n] = '\0';
	*len = n;
	return buf;
}

/* `dir`/`name`/`name`.`ext`, which must exist. */
static char *read_case_file(const char *dir, const char *name, const char *ext, size_t *len)
{
	char path[512];
	char *text;

	snprintf(path, sizeof(path), "%s/%s/%s.%s", dir, name, name, ext);
	text = read_file(path, len);
	if (!text)
		fail_msg("cannot read %s (run from the repository's top, with shared/ beside it)",
		         path);
	return text;
}

/* Like read_case_file(), but NULL when the file does not exist. */
static char *read_case_file_opt(const char *dir, const char *name, const char *ext, size_t *len)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s/%s.%s", dir, name, name, ext);
	return read_file(path, len);
}

/* got must equal the file's bytes exactly; both are shown when they differ. */
static void assert_equals_file(const char *got, const char *dir, const char *name, const char *ext)
{
	size_t len = 0;
	char *want = read_case_file(dir, name, ext, &len);

	if (strlen(got) != len || memcmp(got, want, len))
		fail_msg("%s.%s differs:\n--- got\n%s\n--- want\n%s\n---", name, ext, got, want);
	free(want);
}

static const sigv4_credentials_t suite_cred = {AKID, SECRET, NULL};
static const sigv4_params_t suite_params = {REGION, SVC, NULL, false};

/* A request parsed from a .req file, with the text it points into. */
typedef struct {
	char *text;
	size_t len;
	sigv4_rawreq_t raw;
} parsed_t;

static void parse_case(const char *dir, const char *name, parsed_t *pr)
{
	char err[SIGV4_ERR_MAX] = "";
	int result;

	pr->text = read_case_file(dir, name, "req", &pr->len);
	result = sigv4_rawreq_parse(pr->text, pr->len, &pr->raw, err, sizeof(err));
	if (result)
		fail_msg("%s.req: %s", name, err);
}

static void parsed_dispose(parsed_t *pr)
{
	sigv4_rawreq_dispose(&pr->raw);
	free(pr->text);
}

/* Parses and signs a request given as a string. */
static int sign_text(const char *text, const sigv4_credentials_t *cred, const sigv4_params_t *p,
                     sigv4_signed_t *out, char *err)
{
	char perr[SIGV4_ERR_MAX] = "";
	sigv4_rawreq_t raw;
	int result;

	result = sigv4_rawreq_parse(text, strlen(text), &raw, perr, sizeof(perr));
	if (result)
		fail_msg("parse: %s", perr);
	result = sigv4_sign(&raw.req, cred, p, out, err, SIGV4_ERR_MAX);
	sigv4_rawreq_dispose(&raw);
	return result;
}

/* Signs a request that must be accepted. */
static void sign_ok(const char *text, const sigv4_credentials_t *cred, const sigv4_params_t *p,
                    sigv4_signed_t *out)
{
	char err[SIGV4_ERR_MAX] = "";

	if (sign_text(text, cred, p, out, err))
		fail_msg("refused: %s", err);
}

/* Signs a request that must be refused with -EINVAL and a message holding `want`. */
static void sign_refused(const char *text, const sigv4_credentials_t *cred, const sigv4_params_t *p,
                         const char *want)
{
	char err[SIGV4_ERR_MAX] = "";
	sigv4_signed_t out;

	assert_int_equal(sign_text(text, cred, p, &out, err), -EINVAL);
	if (!strstr(err, want))
		fail_msg("message '%s' does not say '%s'", err, want);
	assert_null(out.canonical_request);
	assert_null(out.string_to_sign);
	assert_null(out.authorization);
	assert_null(strstr(err, SECRET));
	assert_null(strstr(err, "TOKEN-1234"));
	sigv4_signed_dispose(&out);
}

/*
 * A shipped suite case (state: its name): the canonical request, string to
 * sign, Authorization and signed request are AWS's, byte for byte.
 */
static void test_shipped_case(void **state)
{
	const char *name = *state;
	char err[SIGV4_ERR_MAX] = "";
	sigv4_signed_t s;
	parsed_t pr;
	char *sreq;
	size_t len = 0;

	parse_case(SHARED_DIR, name, &pr);
	if (sigv4_sign(&pr.raw.req, &suite_cred, &suite_params, &s, err, sizeof(err)))
		fail_msg("%s: %s", name, err);
	assert_false(s.add_date);
	assert_false(s.add_token);
	assert_string_equal(s.amz_date, DATE);
	assert_equals_file(s.canonical_request, SHARED_DIR, name, "creq");
	assert_equals_file(s.string_to_sign, SHARED_DIR, name, "sts");
	assert_equals_file(s.authorization, SHARED_DIR, name, "authz");
	sreq = sigv4_sreq_format(&pr.raw, &s, NULL, &len);
	assert_non_null(sreq);
	assert_int_equal(strlen(sreq), len);
	assert_equals_file(sreq, SHARED_DIR, name, "sreq");
	free(sreq);
	sigv4_signed_dispose(&s);
	parsed_dispose(&pr);
}

/*
 * A written case (state: its name): the canonical request is the one derived
 * by hand, and the Authorization is the suite's when the case has a .authz.
 */
static void test_written_case(void **state)
{
	const char *name = *state;
	char err[SIGV4_ERR_MAX] = "";
	sigv4_signed_t s;
	parsed_t pr;
	size_t len;
	char *authz;

	parse_case(DATA_DIR, name, &pr);
	if (sigv4_sign(&pr.raw.req, &suite_cred, &suite_params, &s, err, sizeof(err)))
		fail_msg("%s: %s", name, err);
	assert_equals_file(s.canonical_request, DATA_DIR, name, "creq");
	authz = read_case_file_opt(DATA_DIR, name, "authz", &len);
	if (authz)
		assert_equals_file(s.authorization, DATA_DIR, name, "authz");
	free(authz);
	sigv4_signed_dispose(&s);
	parsed_dispose(&pr);
}

/* All 23 suite cases written here have the suite's Authorization to compare with. */
static void test_written_suite_cases_all_have_authz(void **state)
{
	static const char *const names[] = {
	    "get-header-key-duplicate",
	    "get-header-value-order",
	    "get-relative",
	    "get-relative-relative",
	    "get-slash",
	    "get-slash-dot-slash",
	    "get-slash-pointless-dot",
	    "get-slashes",
	    "get-space",
	    "get-unreserved",
	    "get-utf8",
	    "get-vanilla-empty-query-key",
	    "get-vanilla-query",
	    "get-vanilla-query-order-key",
	    "get-vanilla-query-order-value",
	    "get-vanilla-query-unreserved",
	    "get-vanilla-utf8-query",
	    "post-header-key-case",
	    "post-header-key-sort",
	    "post-header-value-case",
	    "post-vanilla-empty-query-value",
	    "post-vanilla-query",
	    "post-x-www-form-urlencoded-parameters",
	};
	size_t i;
	size_t len;

	(void)state;
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		free(read_case_file(DATA_DIR, names[i], "authz", &len));
}

/*
 * A session token and no X-Amz-Security-Token header: the token is signed and
 * must be added. post-vanilla signed so is post-sts-header-before, whose
 * request carries the token itself: same canonical request, same signature.
 */
static void test_session_token_added_and_signed(void **state)
{
	const sigv4_credentials_t cred = {AKID, SECRET, TOKEN};
	char err[SIGV4_ERR_MAX] = "";
	sigv4_signed_t s;
	parsed_t pr;
	char *sreq;
	char *want;
	size_t len = 0;
	size_t wlen = 0;

	(void)state;
	parse_case(SHARED_DIR, "post-vanilla", &pr);
	if (sigv4_sign(&pr.raw.req, &cred, &suite_params, &s, err, sizeof(err)))
		fail_msg("%s", err);
	assert_true(s.add_token);
	assert_false(s.add_date);
	assert_non_null(strstr(s.canonical_request, "\nx-amz-security-token:" TOKEN "\n"));
	assert_equals_file(s.canonical_request, SHARED_DIR, "post-sts-header-before", "creq");
	assert_equals_file(s.authorization, SHARED_DIR, "post-sts-header-before", "authz");
	/* The signed request carries the token's header before Authorization. */
	sreq = sigv4_sreq_format(&pr.raw, &s, TOKEN, &len);
	assert_non_null(sreq);
	want = read_case_file(SHARED_DIR, "post-sts-header-before", "sreq", &wlen);
	assert_int_equal(len, wlen);
	assert_memory_equal(sreq, want, wlen);
	free(want);
	free(sreq);
	/* add_token without the token to write: no half-signed request. */
	assert_null(sigv4_sreq_format(&pr.raw, &s, NULL, &len));
	sigv4_signed_dispose(&s);
	parsed_dispose(&pr);

	/* The request's own header is signed as it is, and nothing is added. */
	parse_case(SHARED_DIR, "post-sts-header-before", &pr);
	if (sigv4_sign(&pr.raw.req, &cred, &suite_params, &s, err, sizeof(err)))
		fail_msg("%s", err);
	assert_false(s.add_token);
	assert_equals_file(s.authorization, SHARED_DIR, "post-sts-header-before", "authz");
	sigv4_signed_dispose(&s);
	parsed_dispose(&pr);

	/* An empty token is no token. */
	{
		const sigv4_credentials_t empty = {AKID, SECRET, ""};

		parse_case(SHARED_DIR, "post-vanilla", &pr);
		assert_int_equal(
		    sigv4_sign(&pr.raw.req, &empty, &suite_params, &s, err, sizeof(err)), 0);
		assert_false(s.add_token);
		assert_equals_file(s.authorization, SHARED_DIR, "post-vanilla", "authz");
		sigv4_signed_dispose(&s);
		parsed_dispose(&pr);
	}
}

/*
 * No X-Amz-Date in the request: the given date is signed and must be added;
 * the result is get-vanilla's, whose request has that header.
 */
static void test_date_added_when_request_has_none(void **state)
{
	const char *text = "GET / HTTP/1.1\nHost:example.amazonaws.com";
	sigv4_params_t p = suite_params;
	sigv4_rawreq_t raw;
	sigv4_signed_t s;
	char err[SIGV4_ERR_MAX] = "";
	char *sreq;
	size_t len = 0;

	(void)state;
	p.amz_date = DATE;
	assert_int_equal(sigv4_rawreq_parse(text, strlen(text), &raw, err, sizeof(err)), 0);
	assert_int_equal(sigv4_sign(&raw.req, &suite_cred, &p, &s, err, sizeof(err)), 0);
	assert_true(s.add_date);
	assert_false(s.add_token);
	assert_string_equal(s.amz_date, DATE);
	assert_equals_file(s.canonical_request, SHARED_DIR, "get-vanilla", "creq");
	assert_equals_file(s.authorization, SHARED_DIR, "get-vanilla", "authz");
	sreq = sigv4_sreq_format(&raw, &s, NULL, &len);
	assert_non_null(sreq);
	assert_equals_file(sreq, SHARED_DIR, "get-vanilla", "sreq");
	free(sreq);
	sigv4_signed_dispose(&s);
	sigv4_rawreq_dispose(&raw);

	/* Without a date to add, the request is refused. */
	sign_refused(text, &suite_cred, &suite_params, "no X-Amz-Date header");
}

/* The request's own X-Amz-Date wins over the date given for requests without one. */
static void test_request_date_wins(void **state)
{
	sigv4_params_t p = suite_params;
	sigv4_signed_t s;

	(void)state;
	p.amz_date = "20240101T000000Z";
	sign_ok("GET / HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date: " DATE " ", &suite_cred,
	        &p, &s);
	assert_false(s.add_date);
	assert_string_equal(s.amz_date, DATE);
	assert_non_null(strstr(s.authorization, "Credential=" AKID "/20150830/"));
	sigv4_signed_dispose(&s);
}

/* Dates that are not exactly YYYYMMDDTHHMMSSZ, or not a real time, are refused. */
static void test_bad_dates_refused(void **state)
{
	static const char *const bad[] = {
	    "",
	    "2015-08-30T12:36:00Z",
	    "20150830T123600",
	    "20150830T123600ZZ",
	    "20150830 123600Z",
	    "20150830t123600Z",
	    "20151330T123600Z",
	    "20150001T123600Z",
	    "20150800T123600Z",
	    "20150431T123600Z",
	    "20150229T123600Z",
	    "21000229T123600Z",
	    "20150830T243600Z",
	    "20150830T126000Z",
	    "20150830T123660Z",
	    "2015O830T123600Z",
	};
	const char *text = "GET / HTTP/1.1\nHost:example.amazonaws.com";
	sigv4_params_t p = suite_params;
	char req[256];
	size_t i;

	(void)state;
	assert_true(sigv4_date_valid(DATE, strlen(DATE)));
	assert_true(sigv4_date_valid("20160229T235959Z", 16));
	assert_true(sigv4_date_valid("20000229T000000Z", 16));
	assert_true(sigv4_date_valid("20151231T235959Z", 16));
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (sigv4_date_valid(bad[i], strlen(bad[i])))
			fail_msg("'%s' accepted as a date", bad[i]);
		p.amz_date = bad[i];
		sign_refused(text, &suite_cred, &p, "is not YYYYMMDDTHHMMSSZ");
		snprintf(req, sizeof(req),
		         "GET / HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:%s", bad[i]);
		sign_refused(req, &suite_cred, &suite_params, "X-Amz-Date header: '");
	}
	/* sigv4_date_now() writes a date the signer accepts. */
	{
		char now[SIGV4_DATE_LEN + 1];

		assert_int_equal(sigv4_date_now(now), 0);
		assert_true(sigv4_date_valid(now, strlen(now)));
	}
}

/* A header name that is not an HTTP token is refused, and named. */
static void test_bad_header_names_refused(void **state)
{
	static const char *const bad[] = {"My Header",   "",     "Bad:Name",
	                                  "Caf\xc3\xa9", "a\"b", "x(y)"};
	sigv4_header_t h[3] = {
	    {"Host", 4, "example.amazonaws.com", 21},
	    {"X-Amz-Date", 10, DATE, 16},
	    {NULL, 0, "v", 1},
	};
	sigv4_request_t req = {"GET", "/", NULL, h, 3, NULL, 0};
	const char *text = "GET / HTTP/1.1\nHost:x\nMy Header:v";
	char err[SIGV4_ERR_MAX];
	sigv4_rawreq_t raw;
	sigv4_signed_t s;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		h[2].name = bad[i];
		h[2].name_len = strlen(bad[i]);
		assert_int_equal(sigv4_sign(&req, &suite_cred, &suite_params, &s, err, sizeof(err)),
		                 -EINVAL);
		if (!strstr(err, "header 3: name '") || !strstr(err, "is not an HTTP token"))
			fail_msg("'%s' refused with '%s'", bad[i], err);
		assert_null(s.authorization);
	}
	/* The same through the .req parser, with the line number. */
	assert_int_equal(sigv4_rawreq_parse(text, strlen(text), &raw, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "line 3: header name 'My Header' is not an HTTP token");
}

/* Every other bad input is refused with a message naming it. */
static void test_bad_inputs_refused(void **state)
{
	const sigv4_credentials_t no_key = {"", SECRET, NULL};
	const sigv4_credentials_t slash_key = {"AKID/X", SECRET, NULL};
	const sigv4_credentials_t no_secret = {AKID, "", NULL};
	const sigv4_credentials_t bad_token = {AKID, SECRET, "TOKEN-1234\nX: y"};
	const sigv4_params_t no_region = {"", SVC, NULL, false};
	const sigv4_params_t bad_region = {"us east 1", SVC, NULL, false};
	const sigv4_params_t bad_service = {REGION, "a/b", NULL, false};
	const char *hx = "Host:example.amazonaws.com\nX-Amz-Date:" DATE;
	char req[512];

	(void)state;
	snprintf(req, sizeof(req), "GET / HTTP/1.1\n%s", hx);
	sign_refused(req, &no_key, &suite_params, "access key id: must be");
	sign_refused(req, &slash_key, &suite_params, "access key id: must be");
	sign_refused(req, &no_secret, &suite_params, "secret access key: empty");
	sign_refused(req, &bad_token, &suite_params, "session token: holds a control character");
	sign_refused(req, &suite_cred, &no_region, "region: '' is not");
	sign_refused(req, &suite_cred, &bad_region, "region: 'us east 1' is not");
	sign_refused(req, &suite_cred, &bad_service, "service: 'a/b' is not");

	sign_refused("GET / HTTP/1.1\nX-Amz-Date:" DATE, &suite_cred, &suite_params,
	             "no Host header");
	snprintf(req, sizeof(req), "GET / HTTP/1.1\n%s\nx-amz-date:" DATE, hx);
	sign_refused(req, &suite_cred, &suite_params, "header 3: a second x-amz-date header");
	snprintf(req, sizeof(req), "GET / HTTP/1.1\n%s\nAuthorization: AWS4-HMAC-SHA256 x", hx);
	sign_refused(req, &suite_cred, &suite_params,
	             "the request already has an Authorization header");
	snprintf(req, sizeof(req), "GET /?a=%%4&b=1 HTTP/1.1\n%s", hx);
	sign_refused(req, &suite_cred, &suite_params,
	             "query: '%' at byte 3 is not followed by two hex digits");
	snprintf(req, sizeof(req), "GET /?a=1&b=%%zz HTTP/1.1\n%s", hx);
	sign_refused(req, &suite_cred, &suite_params,
	             "query: '%' at byte 7 is not followed by two hex digits");
	snprintf(req, sizeof(req), "GET / HTTP/1.1\n%s\nX-Amz-Content-Sha256:", hx);
	sign_refused(req, &suite_cred, &suite_params, "X-Amz-Content-Sha256 header: must be");

	/* Through the API only: what the parser would never produce. */
	{
		sigv4_header_t h[2] = {{"Host", 4, "example.amazonaws.com", 21},
		                       {"X-Amz-Date", 10, DATE, 16}};
		sigv4_header_t ctl[3] = {{"Host", 4, "example.amazonaws.com", 21},
		                         {"X-Amz-Date", 10, DATE, 16},
		                         {"My-Header", 9, "a\r\nb", 4}};
		sigv4_request_t r = {"GET", "/", NULL, h, 2, NULL, 0};
		sigv4_params_t s3 = suite_params;
		char err[SIGV4_ERR_MAX];
		sigv4_signed_t s;

		r.path = "example";
		assert_int_equal(sigv4_sign(&r, &suite_cred, &suite_params, &s, err, sizeof(err)),
		                 -EINVAL);
		assert_string_equal(err, "path: must start with '/'");
		r.path = "/a\tb";
		assert_int_equal(sigv4_sign(&r, &suite_cred, &suite_params, &s, err, sizeof(err)),
		                 -EINVAL);
		assert_string_equal(err, "path: a control character at byte 3");
		r.path = "/a%2";
		s3.keep_path = true;
		assert_int_equal(sigv4_sign(&r, &suite_cred, &s3, &s, err, sizeof(err)), -EINVAL);
		assert_string_equal(err, "path: '%' at byte 3 is not followed by two hex digits");
		r.path = "/";
		r.method = "GE T";
		assert_int_equal(sigv4_sign(&r, &suite_cred, &suite_params, &s, err, sizeof(err)),
		                 -EINVAL);
		assert_string_equal(err, "method: 'GE T' is not an HTTP token");
		r.method = "GET";
		r.body_len = 3;
		assert_int_equal(sigv4_sign(&r, &suite_cred, &suite_params, &s, err, sizeof(err)),
		                 -EINVAL);
		assert_string_equal(err, "body: 3 bytes but no data");
		r.body_len = 0;
		r.headers = ctl;
		r.n_headers = 3;
		assert_int_equal(sigv4_sign(&r, &suite_cred, &suite_params, &s, err, sizeof(err)),
		                 -EINVAL);
		assert_string_equal(err, "header 3 (My-Header): a control character in the value");
		r.n_headers = SIGV4_MAX_HEADERS + 1;
		assert_int_equal(sigv4_sign(&r, &suite_cred, &suite_params, &s, err, sizeof(err)),
		                 -EINVAL);
		assert_non_null(strstr(err, "more than the limit of 1024"));
		assert_int_equal(sigv4_sign(NULL, &suite_cred, &suite_params, &s, err, sizeof(err)),
		                 -EINVAL);
		/* No error buffer: still refused, nothing written. */
		assert_int_equal(sigv4_sign(&r, &suite_cred, &suite_params, &s, NULL, 0), -EINVAL);
		sigv4_signed_dispose(&s);
		sigv4_signed_dispose(NULL);
	}
}

/* No message, whatever was wrong, holds the secret access key or the session token. */
static void test_errors_never_show_the_secret(void **state)
{
	const sigv4_credentials_t cred = {AKID, SECRET, "TOKEN-1234"};
	/* A secret pasted where the key id goes is not shown either. */
	const sigv4_credentials_t swapped = {SECRET, SECRET, NULL};
	const char *reqs[] = {
	    "GET / HTTP/1.1\nX-Amz-Date:" DATE,
	    "GET / HTTP/1.1\nHost:h\nX-Amz-Date:2015",
	    "GET /?%g HTTP/1.1\nHost:h\nX-Amz-Date:" DATE,
	    "GET / HTTP/1.1\nHost:h",
	    "GET / HTTP/1.1\nHost:h\nX-Amz-Date:" DATE "\nAuthorization: x",
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++)
		sign_refused(reqs[i], &cred, &suite_params, "");
	sign_refused("GET / HTTP/1.1\nHost:h\nX-Amz-Date:" DATE, &swapped, &suite_params,
	             "access key id");
}

/* Header values: trimmed, inner spaces and tabs one space, repeated names joined in order. */
static void test_header_canonical_form(void **state)
{
	sigv4_signed_t s;

	(void)state;
	sign_ok("GET / HTTP/1.1\nHost: example.amazonaws.com \nB:  x  \t y\nA:2\nb:z\nA:1\nC:\n"
	        "X-Amz-Date:" DATE,
	        &suite_cred, &suite_params, &s);
	assert_string_equal(s.canonical_request,
	                    "GET\n/\n\na:2,1\nb:x y,z\nc:\nhost:example.amazonaws.com\n"
	                    "x-amz-date:" DATE "\n\na;b;c;host;x-amz-date\n" EMPTY_SHA256);
	assert_non_null(strstr(s.authorization, ", SignedHeaders=a;b;c;host;x-amz-date, "));
	sigv4_signed_dispose(&s);
}

/*
 * Paths: a non-S3 path is normalised and encoded once more as sent ("%"
 * becomes "%25"); an S3 path is kept as it is, in canonical single encoding.
 */
static void test_path_rules_s3_and_others(void **state)
{
	static const struct {
		const char *path;
		const char *other; /* canonical URI, non-S3 */
		const char *s3;    /* canonical URI, S3 */
	} cases[] = {
	    {"", "/", "/"},
	    {"/", "/", "/"},
	    {"/a//b/../c%7e%20d", "/a/c%257e%2520d", "/a//b/../c~%20d"},
	    {"/photos/my photo.jpg", "/photos/my%20photo.jpg", "/photos/my%20photo.jpg"},
	    {"/a/b/./", "/a/b/", "/a/b/./"},
	    {"/..", "/", "/.."},
	    {"/a%2Fb", "/a%252Fb", "/a%2Fb"},
	    {"/\xe1\x88\xb4/x", "/%E1%88%B4/x", "/%E1%88%B4/x"},
	    {"/a+b=c", "/a%2Bb%3Dc", "/a%2Bb%3Dc"},
	};
	sigv4_header_t h[2] = {{"Host", 4, "example.amazonaws.com", 21},
	                       {"X-Amz-Date", 10, DATE, 16}};
	sigv4_request_t req = {"GET", NULL, NULL, h, 2, NULL, 0};
	sigv4_params_t s3 = {REGION, "s3", NULL, true};
	sigv4_params_t other = {REGION, "execute-api", NULL, false};
	char err[SIGV4_ERR_MAX];
	char want[256];
	sigv4_signed_t s;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		req.path = cases[i].path;
		if (sigv4_sign(&req, &suite_cred, &other, &s, err, sizeof(err)))
			fail_msg("%s: %s", cases[i].path, err);
		snprintf(want, sizeof(want), "GET\n%s\n\n", cases[i].other);
		if (strncmp(s.canonical_request, want, strlen(want)))
			fail_msg("'%s' (non-S3): got %s", cases[i].path, s.canonical_request);
		sigv4_signed_dispose(&s);
		if (sigv4_sign(&req, &suite_cred, &s3, &s, err, sizeof(err)))
			fail_msg("%s: %s", cases[i].path, err);
		snprintf(want, sizeof(want), "GET\n%s\n\n", cases[i].s3);
		if (strncmp(s.canonical_request, want, strlen(want)))
			fail_msg("'%s' (S3): got %s", cases[i].path, s.canonical_request);
		sigv4_signed_dispose(&s);
	}
}

/* X-Amz-Content-Sha256 (S3's UNSIGNED-PAYLOAD) replaces the body's hash. */
static void test_content_sha256_header_is_the_payload_hash(void **state)
{
	sigv4_signed_t s;

	(void)state;
	sign_ok("PUT /bucket/key HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:" DATE
	        "\nX-Amz-Content-Sha256: UNSIGNED-PAYLOAD\n\nbody",
	        &suite_cred, &suite_params, &s);
	assert_non_null(strstr(s.canonical_request, "\nx-amz-content-sha256:UNSIGNED-PAYLOAD\n"));
	assert_non_null(strstr(s.canonical_request, "x-amz-date\nUNSIGNED-PAYLOAD"));
	sigv4_signed_dispose(&s);
}

/* The .req parser: CRLF or LF, with or without a final line end, with or without a body. */
static void test_rawreq_parse_forms(void **state)
{
	static const struct {
		const char *text;
		size_t n_headers;
		const char *body;
		bool head_ended;
		const char *eol;
	} cases[] = {
	    {"GET / HTTP/1.1", 0, "", false, "\n"},
	    {"GET / HTTP/1.1\n", 0, "", true, "\n"},
	    {"GET / HTTP/1.1\nA:1", 1, "", false, "\n"},
	    {"GET / HTTP/1.1\nA:1\n", 1, "", true, "\n"},
	    {"GET / HTTP/1.1\nA:1\n\n", 1, "", true, "\n"},
	    {"GET / HTTP/1.1\nA:1\n\nbody\n\nmore", 1, "body\n\nmore", true, "\n"},
	    {"GET / HTTP/1.1\r\nA:1\r\nB: 2 \r\n\r\nx\r\n", 2, "x\r\n", true, "\r\n"},
	    {"POST /a b?c d HTTP/1.1\nA:", 1, "", false, "\n"},
	};
	char err[SIGV4_ERR_MAX];
	sigv4_rawreq_t r;
	const char *t0;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *t = cases[i].text;

		if (sigv4_rawreq_parse(t, strlen(t), &r, err, sizeof(err)))
			fail_msg("'%s': %s", t, err);
		assert_int_equal(r.req.n_headers, cases[i].n_headers);
		assert_int_equal(r.req.body_len, strlen(cases[i].body));
		if (r.req.body_len)
			assert_memory_equal(r.req.body, cases[i].body, r.req.body_len);
		assert_int_equal(r.head_ended, cases[i].head_ended);
		assert_string_equal(r.eol, cases[i].eol);
		sigv4_rawreq_dispose(&r);
	}
	t0 = "POST /a b?c d HTTP/1.1\nB: 2 ";
	assert_int_equal(sigv4_rawreq_parse(t0, strlen(t0), &r, err, sizeof(err)), 0);
	assert_string_equal(r.req.method, "POST");
	assert_string_equal(r.req.path, "/a b");
	assert_string_equal(r.req.query, "c d");
	assert_int_equal(r.req.headers[0].value_len, 3);
	assert_memory_equal(r.req.headers[0].value, " 2 ", 3);
	sigv4_rawreq_dispose(&r);
	assert_int_equal(sigv4_rawreq_parse("GET /x HTTP/1.1", 15, &r, err, sizeof(err)), 0);
	assert_null(r.req.query);
	sigv4_rawreq_dispose(&r);
}

/* The .req parser refuses what is not a request, naming the line. */
static void test_rawreq_parse_errors(void **state)
{
	static const struct {
		const char *text;
		const char *err;
	} cases[] = {
	    {"", "empty request: no request line"},
	    {"GET", "line 1: 'GET' is not 'METHOD TARGET HTTP/x.y'"},
	    {"GET /", "line 1: 'GET /' is not 'METHOD TARGET HTTP/x.y'"},
	    {"GET / HTTP", "line 1: 'HTTP' is not an HTTP version (HTTP/x.y)"},
	    {"G(T / HTTP/1.1", "line 1: method 'G(T' is not an HTTP token"},
	    {"GET x HTTP/1.1", "line 1: the target 'x' does not start with '/'"},
	    {"GET  HTTP/1.1 HTTP/1.1", "line 1: the target ' HTTP/1.1' does not start with '/'"},
	    {"GET /\x01 HTTP/1.1", "line 1: a control character at byte 6"},
	    {"GET / HTTP/1.1\nHost", "line 2: 'Host' is a header line without ':'"},
	    {"GET / HTTP/1.1\nA:1\n b", "line 3: a folded header line (starting with a space or "
	                                "tab) is not supported"},
	    {"GET / HTTP/1.1\n:x", "line 2: header name '' is not an HTTP token"},
	    {"GET / HTTP/1.1\nA:1\rB:2", "line 2: a control character at byte 4"},
	};
	char err[SIGV4_ERR_MAX];
	sigv4_rawreq_t r;
	char *many;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *t = cases[i].text;

		assert_int_equal(sigv4_rawreq_parse(t, strlen(t), &r, err, sizeof(err)), -EINVAL);
		assert_string_equal(err, cases[i].err);
		assert_null(r.method);
		assert_null(r.headers);
	}
	/* One header more than the limit. */
	many = malloc(16 + 4 * (SIGV4_MAX_HEADERS + 1));
	assert_non_null(many);
	strcpy(many, "GET / HTTP/1.1");
	for (i = 0; i <= SIGV4_MAX_HEADERS; i++)
		strcat(many, "\nA:1");
	assert_int_equal(sigv4_rawreq_parse(many, strlen(many), &r, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "line 1026: more than 1024 headers");
	free(many);
}

/*
 * The signed request: the lines as given, the added headers, Authorization,
 * the body after an empty line; it ends with a line end when the input's
 * headers did, and keeps CRLF.
 */
static void test_sreq_format(void **state)
{
	const sigv4_credentials_t cred = {AKID, SECRET, "TOK"};
	sigv4_params_t p = suite_params;
	char err[SIGV4_ERR_MAX];
	sigv4_rawreq_t r;
	sigv4_signed_t s;
	const char *t;
	char *out;
	char want[1024];
	size_t len;

	(void)state;
	p.amz_date = DATE;
	t = "PUT /x HTTP/1.1\r\nHost: h \r\n\r\nbody\r\n";
	assert_int_equal(sigv4_rawreq_parse(t, strlen(t), &r, err, sizeof(err)), 0);
	assert_int_equal(sigv4_sign(&r.req, &cred, &p, &s, err, sizeof(err)), 0);
	out = sigv4_sreq_format(&r, &s, "TOK", &len);
	assert_non_null(out);
	snprintf(want, sizeof(want),
	         "PUT /x HTTP/1.1\r\nHost: h \r\nX-Amz-Date:" DATE
	         "\r\nX-Amz-Security-Token:TOK\r\nAuthorization: %s\r\n\r\nbody\r\n",
	         s.authorization);
	assert_string_equal(out, want);
	assert_int_equal(len, strlen(want));
	free(out);
	sigv4_signed_dispose(&s);
	sigv4_rawreq_dispose(&r);

	t = "GET / HTTP/1.1\nHost:h\nX-Amz-Date:" DATE "\n";
	assert_int_equal(sigv4_rawreq_parse(t, strlen(t), &r, err, sizeof(err)), 0);
	assert_int_equal(sigv4_sign(&r.req, &suite_cred, &p, &s, err, sizeof(err)), 0);
	out = sigv4_sreq_format(&r, &s, NULL, &len);
	snprintf(want, sizeof(want), "%sAuthorization: %s\n", t, s.authorization);
	assert_string_equal(out, want);
	free(out);
	sigv4_signed_dispose(&s);
	sigv4_rawreq_dispose(&r);
}

#define SHIPPED(name)                                                                              \
	{                                                                                          \
		"suite " name                                                                      \
		": canonical request, string to sign, Authorization, signed request as AWS's",     \
		    test_shipped_case, NULL, NULL, (void *)name                                    \
	}
#define WRITTEN(name)                                                                              \
	{                                                                                          \
		"suite " name ": canonical request derived by hand, Authorization as AWS's",       \
		    test_written_case, NULL, NULL, (void *)name                                    \
	}
#define OWN(name)                                                                                  \
	{                                                                                          \
		"own case " name ": canonical request derived by hand", test_written_case, NULL,   \
		    NULL, (void *)name                                                             \
	}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    SHIPPED("get-header-value-trim"),
	    SHIPPED("get-vanilla"),
	    SHIPPED("get-vanilla-query-order-key-case"),
	    SHIPPED("post-sts-header-before"),
	    SHIPPED("post-vanilla"),
	    SHIPPED("post-x-www-form-urlencoded"),
	    WRITTEN("get-header-key-duplicate"),
	    WRITTEN("get-header-value-order"),
	    WRITTEN("get-relative"),
	    WRITTEN("get-relative-relative"),
	    WRITTEN("get-slash"),
	    WRITTEN("get-slash-dot-slash"),
	    WRITTEN("get-slash-pointless-dot"),
	    WRITTEN("get-slashes"),
	    WRITTEN("get-space"),
	    WRITTEN("get-unreserved"),
	    WRITTEN("get-utf8"),
	    WRITTEN("get-vanilla-empty-query-key"),
	    WRITTEN("get-vanilla-query"),
	    WRITTEN("get-vanilla-query-order-key"),
	    WRITTEN("get-vanilla-query-order-value"),
	    WRITTEN("get-vanilla-query-unreserved"),
	    WRITTEN("get-vanilla-utf8-query"),
	    WRITTEN("post-header-key-case"),
	    WRITTEN("post-header-key-sort"),
	    WRITTEN("post-header-value-case"),
	    WRITTEN("post-vanilla-empty-query-value"),
	    WRITTEN("post-vanilla-query"),
	    WRITTEN("post-x-www-form-urlencoded-parameters"),
	    OWN("sgprobe-get-header-value-tabs"),
	    OWN("sgprobe-get-path-encoded"),
	    OWN("sgprobe-get-query-encoded"),
	    OWN("sgprobe-get-query-no-value"),
	    OWN("sgprobe-get-relative-above-root"),
	    OWN("sgprobe-post-crlf-body"),
	    OWN("sgprobe-post-header-key-mixed-case"),
	    cmocka_unit_test(test_written_suite_cases_all_have_authz),
	    cmocka_unit_test(test_session_token_added_and_signed),
	    cmocka_unit_test(test_date_added_when_request_has_none),
	    cmocka_unit_test(test_request_date_wins),
	    cmocka_unit_test(test_bad_dates_refused),
	    cmocka_unit_test(test_bad_header_names_refused),
	    cmocka_unit_test(test_bad_inputs_refused),
	    cmocka_unit_test(test_errors_never_show_the_secret),
	    cmocka_unit_test(test_header_canonical_form),
	    cmocka_unit_test(test_path_rules_s3_and_others),
	    cmocka_unit_test(test_content_sha256_header_is_the_payload_hash),
	    cmocka_unit_test(test_rawreq_parse_forms),
	    cmocka_unit_test(test_rawreq_parse_errors),
	    cmocka_unit_test(test_sreq_format),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
