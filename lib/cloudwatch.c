/*
 * cloudwatch: PutMetricData Query bodies, gzip, EMF lines and XML errors
 * (include/sgprobe/cloudwatch.h).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <zlib.h>

#include "sgprobe/cloudwatch.h"
#include "sgprobe/strbuf.h"

static bool valid_len(const char *s, size_t max)
{
	size_t n = s ? strnlen(s, max + 1) : 0;

	return n > 0 && n <= max;
}

static bool valid_name(const char *s)
{
	return valid_len(s, CW_NAME_MAX);
}

int cw_datum_init(cw_datum_t *d, const char *name, const char *unit, double value,
                  uint64_t timestamp_ms, const char *const *dims, size_t n_dims)
{
	size_t i;

	memset(d, 0, sizeof(*d));
	if (!valid_name(name) || !unit || !isfinite(value) || n_dims > CW_MAX_DIMENSIONS)
		return -EINVAL;
	for (i = 0; i < n_dims; i++)
		if (!valid_name(dims[2 * i]) || !valid_len(dims[2 * i + 1], CW_VALUE_MAX))
			return -EINVAL;
	d->name = strdup(name);
	d->dims = calloc(n_dims ? n_dims : 1, sizeof(*d->dims));
	if (!d->name || !d->dims)
		goto oom;
	for (i = 0; i < n_dims; i++) {
		d->dims[i].name = strdup(dims[2 * i]);
		d->dims[i].value = strdup(dims[2 * i + 1]);
		d->n_dims++;
		if (!d->dims[i].name || !d->dims[i].value)
			goto oom;
	}
	d->unit = unit;
	d->value = value;
	d->timestamp_ms = timestamp_ms;
	return 0;
oom:
	cw_datum_dispose(d);
	return -ENOMEM;
}

void cw_datum_dispose(cw_datum_t *d)
{
	size_t i;

	for (i = 0; i < d->n_dims; i++) {
		free(d->dims[i].name);
		free(d->dims[i].value);
	}
	free(d->dims);
	free(d->name);
	memset(d, 0, sizeof(*d));
}

/* --- the Query body ------------------------------------------------------------------ */

/* "&<key>=<value, percent-encoded as RFC 3986 asks>" */
static void add_param(strbuf_t *b, const char *key, const char *value)
{
	char *esc = curl_easy_escape(NULL, value, 0);

	if (!esc) {
		b->oom = true;
		return;
	}
	strbuf_addc(b, '&');
	strbuf_adds(b, key);
	strbuf_addc(b, '=');
	strbuf_adds(b, esc);
	curl_free(esc);
}

static void format_time(uint64_t ms, char *out, size_t outlen)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	gmtime_r(&t, &tm);
	snprintf(out, outlen, "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ", tm.tm_year + 1900,
	         tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
	         (unsigned)(ms % 1000));
}

/* One datum's members, numbered `k` (from 1). */
static void encode_datum(strbuf_t *b, const cw_datum_t *d, size_t k)
{
	char key[96], val[64];
	size_t i;

	snprintf(key, sizeof(key), "MetricData.member.%zu.MetricName", k);
	add_param(b, key, d->name);
	for (i = 0; i < d->n_dims; i++) {
		snprintf(key, sizeof(key), "MetricData.member.%zu.Dimensions.member.%zu.Name", k,
		         i + 1);
		add_param(b, key, d->dims[i].name);
		snprintf(key, sizeof(key), "MetricData.member.%zu.Dimensions.member.%zu.Value", k,
		         i + 1);
		add_param(b, key, d->dims[i].value);
	}
	snprintf(key, sizeof(key), "MetricData.member.%zu.Value", k);
	snprintf(val, sizeof(val), "%.17g", d->value);
	add_param(b, key, val);
	snprintf(key, sizeof(key), "MetricData.member.%zu.Unit", k);
	add_param(b, key, d->unit);
	snprintf(key, sizeof(key), "MetricData.member.%zu.Timestamp", k);
	format_time(d->timestamp_ms, val, sizeof(val));
	add_param(b, key, val);
}

int cw_form_encode(const char *ns, const cw_datum_t *d, size_t n, char **body, size_t *len,
                   size_t *taken)
{
	strbuf_t b = {0};
	size_t k;

	*body = NULL;
	*len = 0;
	*taken = 0;
	if (!n || !valid_name(ns))
		return -EINVAL;
	strbuf_adds(&b, "Action=PutMetricData&Version=2010-08-01");
	add_param(&b, "Namespace", ns);
	for (k = 0; k < n && k < CW_MAX_DATUMS_PER_CALL && !b.oom; k++) {
		size_t before = b.len;

		encode_datum(&b, &d[k], k + 1);
		if (b.len > CW_MAX_CALL_BYTES) {
			b.len = before;
			break;
		}
	}
	if (b.oom) {
		strbuf_free(&b);
		return -ENOMEM;
	}
	if (!k) {
		strbuf_free(&b);
		return -EINVAL;
	}
	*len = b.len;
	*body = strbuf_take(&b);
	*taken = k;
	return 0;
}

int cw_gzip(const void *in, size_t len, unsigned char **out, size_t *outlen)
{
	z_stream z;
	unsigned char *p;
	uLong bound;
	int result;

	*out = NULL;
	*outlen = 0;
	memset(&z, 0, sizeof(z));
	/* 16 + MAX_WBITS: a gzip header and trailer around the deflate stream. */
	result = deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 16 + MAX_WBITS, 8,
	                      Z_DEFAULT_STRATEGY);
	if (result != Z_OK)
		return result == Z_MEM_ERROR ? -ENOMEM : -EIO;
	bound = deflateBound(&z, (uLong)len);
	p = malloc(bound);
	if (!p) {
		deflateEnd(&z);
		return -ENOMEM;
	}
	z.next_in = (Bytef *)(uintptr_t)in;
	z.avail_in = (uInt)len;
	z.next_out = p;
	z.avail_out = (uInt)bound;
	result = deflate(&z, Z_FINISH);
	deflateEnd(&z);
	if (result != Z_STREAM_END) {
		free(p);
		return -EIO;
	}
	*out = p;
	*outlen = bound - z.avail_out;
	return 0;
}

/* --- EMF --------------------------------------------------------------------------- */

bool cw_same_dimensions(const cw_datum_t *a, const cw_datum_t *b)
{
	size_t i;

	if (a->n_dims != b->n_dims)
		return false;
	for (i = 0; i < a->n_dims; i++)
		if (strcmp(a->dims[i].name, b->dims[i].name) ||
		    strcmp(a->dims[i].value, b->dims[i].value))
			return false;
	return true;
}

/* A metric's name must not repeat, nor be one of the dimensions' (both are root members). */
static bool emf_names_ok(const cw_datum_t *d, size_t n)
{
	size_t i, j;

	for (i = 0; i < n; i++) {
		for (j = 0; j < i; j++)
			if (!strcmp(d[i].name, d[j].name))
				return false;
		for (j = 0; j < d[0].n_dims; j++)
			if (!strcmp(d[i].name, d[0].dims[j].name))
				return false;
	}
	return true;
}

int cw_emf_encode(const char *ns, const cw_datum_t *d, size_t n, char **out)
{
	cJSON *root, *aws, *directives, *dir, *dimsets, *dimset, *metrics, *m;
	size_t i;
	bool ok = true;

	*out = NULL;
	if (!n || !valid_name(ns))
		return -EINVAL;
	if (n > CW_EMF_MAX_METRICS || d[0].n_dims > CW_MAX_DIMENSIONS)
		return -E2BIG;
	for (i = 1; i < n; i++)
		if (!cw_same_dimensions(&d[0], &d[i]))
			return -EINVAL;
	if (!emf_names_ok(d, n))
		return -EINVAL;
	root = cJSON_CreateObject();
	aws = cJSON_AddObjectToObject(root, "_aws");
	ok = aws && cJSON_AddNumberToObject(aws, "Timestamp", (double)d[0].timestamp_ms);
	directives = ok ? cJSON_AddArrayToObject(aws, "CloudWatchMetrics") : NULL;
	dir = cJSON_CreateObject();
	ok = directives && dir && cJSON_AddItemToArray(directives, dir);
	if (!ok)
		cJSON_Delete(dir);
	ok = ok && cJSON_AddStringToObject(dir, "Namespace", ns);
	dimsets = ok ? cJSON_AddArrayToObject(dir, "Dimensions") : NULL;
	dimset = cJSON_CreateArray();
	ok = dimsets && dimset && cJSON_AddItemToArray(dimsets, dimset);
	if (!ok)
		cJSON_Delete(dimset);
	for (i = 0; ok && i < d[0].n_dims; i++) {
		cJSON *s = cJSON_CreateString(d[0].dims[i].name);

		ok = s && cJSON_AddItemToArray(dimset, s);
		if (!ok)
			cJSON_Delete(s);
	}
	metrics = ok ? cJSON_AddArrayToObject(dir, "Metrics") : NULL;
	ok = ok && metrics;
	for (i = 0; ok && i < n; i++) {
		m = cJSON_CreateObject();
		ok = m && cJSON_AddItemToArray(metrics, m);
		if (!ok) {
			cJSON_Delete(m);
			break;
		}
		ok = cJSON_AddStringToObject(m, "Name", d[i].name) &&
		     cJSON_AddStringToObject(m, "Unit", d[i].unit);
	}
	for (i = 0; ok && i < d[0].n_dims; i++)
		ok = cJSON_AddStringToObject(root, d[0].dims[i].name, d[0].dims[i].value) != NULL;
	for (i = 0; ok && i < n; i++)
		ok = cJSON_AddNumberToObject(root, d[i].name, d[i].value) != NULL;
	if (ok)
		*out = cJSON_PrintUnformatted(root);
	cJSON_Delete(root);
	return *out ? 0 : -ENOMEM;
}

/* --- errors ------------------------------------------------------------------------ */

/* Copies the text of the first <tag>...</tag> in [body, body + len) into out. */
static bool xml_text(const char *body, size_t len, const char *tag, char *out, size_t outlen)
{
	char open[32], close[32];
	const char *s, *e;
	size_t n, i;

	if (outlen)
		out[0] = '\0';
	snprintf(open, sizeof(open), "<%s>", tag);
	snprintf(close, sizeof(close), "</%s>", tag);
	s = memmem(body, len, open, strlen(open));
	if (!s)
		return false;
	s += strlen(open);
	e = memmem(s, len - (size_t)(s - body), close, strlen(close));
	if (!e || !outlen)
		return false;
	n = (size_t)(e - s);
	if (n >= outlen)
		n = outlen - 1;
	for (i = 0; i < n; i++)
		out[i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? ' ' : s[i];
	out[n] = '\0';
	return true;
}

int cw_xml_error(const char *body, size_t len, char *code, size_t codelen, char *msg, size_t msglen)
{
	bool found;

	if (!body)
		len = 0;
	found = len && xml_text(body, len, "Code", code, codelen);
	if (!found && codelen)
		code[0] = '\0';
	if (!len || !xml_text(body, len, "Message", msg, msglen)) {
		if (msglen)
			msg[0] = '\0';
	}
	return found ? 0 : -ENOENT;
}

bool cw_error_is_throttling(const char *code)
{
	static const char *const codes[] = {
	    "Throttling",
	    "ThrottlingException",
	    "ThrottledException",
	    "RequestLimitExceeded",
	    "RequestThrottled",
	    "RequestThrottledException",
	    "TooManyRequestsException",
	    "SlowDown",
	    "PriorRequestNotComplete",
	    "TransactionInProgressException",
	    "ProvisionedThroughputExceededException",
	    "LimitExceededException",
	    "BandwidthLimitExceeded",
	    "EC2ThrottledException",
	};
	size_t i;

	for (i = 0; code && i < sizeof(codes) / sizeof(codes[0]); i++)
		if (!strcmp(code, codes[i]))
			return true;
	return false;
}

bool cw_error_is_auth(const char *code)
{
	static const char *const codes[] = {
	    "ExpiredToken",
	    "ExpiredTokenException",
	    "RequestExpired",
	    "InvalidClientTokenId",
	    "SignatureDoesNotMatch",
	    "UnrecognizedClientException",
	    "MissingAuthenticationToken",
	    "IncompleteSignature",
	    "InvalidSignatureException",
	    "AccessDenied",
	    "AccessDeniedException",
	    "NotAuthorized",
	    "AuthFailure",
	    "OptInRequired",
	};
	size_t i;

	for (i = 0; code && i < sizeof(codes) / sizeof(codes[0]); i++)
		if (!strcmp(code, codes[i]))
			return true;
	return false;
}
