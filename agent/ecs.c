/*
 * ecs: the agent's identity from the ECS task metadata endpoint v4, or from the
 * hostname outside ECS, with the flags' overrides.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "ecs.h"
#include "sgprobe/curluv.h"
#include "sgprobe/json.h"

#define AZ_MAX       64
#define REVISION_MAX 10 /* digits */

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

static int fail_oom(char *err, size_t errlen)
{
	fail(err, errlen, "out of memory");
	return -ENOMEM;
}

/* ECS's rule for cluster and family names: 1 to 255 letters, digits, hyphens, underscores. */
static bool name_valid(const char *s, size_t n)
{
	size_t i;

	if (n == 0 || n > ECS_NAME_MAX)
		return false;
	for (i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_'))
			return false;
	}
	return true;
}

/* True when s[0..n) is non-empty and made of letters, digits and hyphens only. */
static bool part_valid(const char *s, size_t n)
{
	return n > 0 &&
	       strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-") >= n;
}

/*
 * Checks that `arn` is arn:PARTITION:ecs:REGION:ACCOUNT:TYPE/REST and returns
 * REST (possibly empty), or NULL.
 */
static const char *ecs_arn_resource(const char *arn, const char *type)
{
	const char *p = arn;
	const char *colon;
	size_t tlen = strlen(type);
	int i;

	if (strncmp(p, "arn:", 4) != 0)
		return NULL;
	p += 4;
	/* PARTITION, SERVICE, REGION, ACCOUNT, each ended by a colon. */
	for (i = 0; i < 4; i++) {
		colon = strchr(p, ':');
		if (!colon || !part_valid(p, (size_t)(colon - p)))
			return NULL;
		if (i == 1 && !(colon - p == 3 && strncmp(p, "ecs", 3) == 0))
			return NULL;
		if (i == 3 && strspn(p, "0123456789") != (size_t)(colon - p))
			return NULL;
		p = colon + 1;
	}
	if (strncmp(p, type, tlen) != 0 || p[tlen] != '/')
		return NULL;
	return p + tlen + 1;
}

/*
 * Reduces a cluster given as a name or an ARN to its short name, a new string
 * in *out. Returns 0, -EINVAL with a message (to be prefixed with the field) in
 * `msg`, or -ENOMEM.
 */
static int cluster_name(const char *value, char **out, char *msg, size_t msglen)
{
	const char *name = value;

	*out = NULL;
	if (strncmp(value, "arn:", 4) == 0) {
		name = ecs_arn_resource(value, "cluster");
		if (!name)
			return fail(msg, msglen,
			            "must be a cluster name or "
			            "arn:PARTITION:ecs:REGION:ACCOUNT:cluster/NAME");
	}
	if (!name_valid(name, strlen(name)))
		return fail(msg, msglen,
		            "the name must be 1 to %d letters, digits, hyphens or underscores",
		            ECS_NAME_MAX);
	*out = strdup(name);
	return *out ? 0 : fail_oom(msg, msglen);
}

/*
 * Finds the string field `key` of `obj`. Absent or null: *out is NULL, an error
 * only when `required`. Present: a non-empty string of at most ECS_STRING_MAX
 * bytes.
 */
static int get_string(const cJSON *obj, const char *key, bool required, const char **out, char *err,
                      size_t errlen)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);

	*out = NULL;
	if (!item || cJSON_IsNull(item)) {
		if (required)
			return fail(err, errlen, "%s: required", key);
		return 0;
	}
	if (!cJSON_IsString(item) || !item->valuestring)
		return fail(err, errlen, "%s: must be a string", key);
	if (!item->valuestring[0])
		return fail(err, errlen, "%s: must not be empty", key);
	if (strlen(item->valuestring) > ECS_STRING_MAX)
		return fail(err, errlen, "%s: longer than %d bytes", key, ECS_STRING_MAX);
	*out = item->valuestring;
	return 0;
}

static int parse_cluster(const cJSON *root, ecs_identity_t *id, char *err, size_t errlen)
{
	char msg[ECS_ERR_MAX];
	const char *s;
	int result;

	result = get_string(root, "Cluster", true, &s, err, errlen);
	if (result)
		return result;
	result = cluster_name(s, &id->cluster, msg, sizeof(msg));
	if (result == -EINVAL)
		fail(err, errlen, "Cluster: %s", msg);
	else if (result)
		fail_oom(err, errlen);
	return result;
}

static int parse_task_arn(const cJSON *root, ecs_identity_t *id, char *err, size_t errlen)
{
	const char *s;
	const char *rest;
	int result;

	result = get_string(root, "TaskARN", true, &s, err, errlen);
	if (result)
		return result;
	rest = ecs_arn_resource(s, "task");
	if (!rest || !rest[0] ||
	    strspn(rest, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_/") !=
	        strlen(rest))
		return fail(err, errlen,
		            "TaskARN: must be an ECS task ARN "
		            "(arn:PARTITION:ecs:REGION:ACCOUNT:task/CLUSTER/ID)");
	id->id = strdup(s);
	return id->id ? 0 : fail_oom(err, errlen);
}

static int parse_family(const cJSON *root, ecs_identity_t *id, char *err, size_t errlen)
{
	const char *s;
	int result;

	result = get_string(root, "Family", true, &s, err, errlen);
	if (result)
		return result;
	if (!name_valid(s, strlen(s)))
		return fail(err, errlen,
		            "Family: must be 1 to %d letters, digits, hyphens or underscores",
		            ECS_NAME_MAX);
	id->family = strdup(s);
	return id->family ? 0 : fail_oom(err, errlen);
}

/* The v4 endpoint gives the revision as a string; a number is taken too. */
static int parse_revision(const cJSON *root, ecs_identity_t *id, char *err, size_t errlen)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, "Revision");
	char buf[32];
	const char *s;
	size_t n;

	if (!item || cJSON_IsNull(item))
		return fail(err, errlen, "Revision: required");
	if (cJSON_IsNumber(item)) {
		double d = item->valuedouble;

		if (!(d >= 1 && d <= 2147483647.0) || (double)(long)d != d)
			return fail(err, errlen, "Revision: must be a positive decimal integer");
		snprintf(buf, sizeof(buf), "%ld", (long)d);
		s = buf;
	} else if (cJSON_IsString(item) && item->valuestring) {
		s = item->valuestring;
		n = strlen(s);
		if (n == 0 || n > REVISION_MAX || strspn(s, "0123456789") != n || s[0] == '0')
			return fail(err, errlen, "Revision: must be a positive decimal integer");
	} else {
		return fail(err, errlen, "Revision: must be a positive decimal integer");
	}
	id->revision = strdup(s);
	return id->revision ? 0 : fail_oom(err, errlen);
}

static int parse_az(const cJSON *root, ecs_identity_t *id, char *err, size_t errlen)
{
	const char *s;
	size_t n;
	int result;

	result = get_string(root, "AvailabilityZone", false, &s, err, errlen);
	if (result || !s)
		return result;
	n = strlen(s);
	if (n > AZ_MAX || strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789-") != n)
		return fail(
		    err, errlen,
		    "AvailabilityZone: must be at most %d lower-case letters, digits or hyphens",
		    AZ_MAX);
	id->az = strdup(s);
	return id->az ? 0 : fail_oom(err, errlen);
}

/*
 * One network of Containers[ci].Networks[ni]. Sets *found and the address when
 * it is an awsvpc network with IPv4 addresses.
 */
static int parse_network(const cJSON *net, size_t ci, size_t ni, ecs_identity_t *id, bool *found,
                         char *err, size_t errlen)
{
	const cJSON *mode;
	const cJSON *addrs;
	const cJSON *first;
	struct in_addr a;

	if (!cJSON_IsObject(net))
		return fail(err, errlen, "Containers[%zu].Networks[%zu]: must be an object", ci,
		            ni);
	mode = cJSON_GetObjectItemCaseSensitive(net, "NetworkMode");
	if (!cJSON_IsString(mode) || !mode->valuestring)
		return fail(err, errlen,
		            "Containers[%zu].Networks[%zu].NetworkMode: must be a string", ci, ni);
	if (strcmp(mode->valuestring, "awsvpc") != 0)
		return 0;
	addrs = cJSON_GetObjectItemCaseSensitive(net, "IPv4Addresses");
	if (!addrs || cJSON_IsNull(addrs))
		return 0; /* an IPv6-only task: no IPv4 address to report */
	if (!cJSON_IsArray(addrs) || cJSON_GetArraySize(addrs) == 0)
		return fail(
		    err, errlen,
		    "Containers[%zu].Networks[%zu].IPv4Addresses: must be a non-empty array", ci,
		    ni);
	first = cJSON_GetArrayItem(addrs, 0);
	if (!cJSON_IsString(first) || !first->valuestring ||
	    inet_pton(AF_INET, first->valuestring, &a) != 1)
		return fail(
		    err, errlen,
		    "Containers[%zu].Networks[%zu].IPv4Addresses[0]: must be an IPv4 address", ci,
		    ni);
	id->address = strdup(first->valuestring);
	if (!id->address)
		return fail_oom(err, errlen);
	*found = true;
	return 0;
}

/* The task's address: the first awsvpc network's first IPv4 address, containers in order. */
static int parse_address(const cJSON *root, ecs_identity_t *id, char *err, size_t errlen)
{
	const cJSON *containers = cJSON_GetObjectItemCaseSensitive(root, "Containers");
	const cJSON *c;
	const cJSON *nets;
	const cJSON *net;
	bool found = false;
	size_t ci = 0;
	size_t ni;
	int result;

	if (!containers || cJSON_IsNull(containers))
		return 0;
	if (!cJSON_IsArray(containers))
		return fail(err, errlen, "Containers: must be an array");
	cJSON_ArrayForEach(c, containers)
	{
		if (!cJSON_IsObject(c))
			return fail(err, errlen, "Containers[%zu]: must be an object", ci);
		nets = cJSON_GetObjectItemCaseSensitive(c, "Networks");
		if (nets && !cJSON_IsNull(nets)) {
			if (!cJSON_IsArray(nets))
				return fail(err, errlen,
				            "Containers[%zu].Networks: must be an array", ci);
			ni = 0;
			cJSON_ArrayForEach(net, nets)
			{
				result = parse_network(net, ci, ni, id, &found, err, errlen);
				if (result || found)
					return result;
				ni++;
			}
		}
		ci++;
	}
	return 0;
}

int ecs_identity_parse(const char *json, size_t len, ecs_identity_t *out, char *err, size_t errlen)
{
	ecs_identity_t id = {0};
	unsigned line = 0;
	cJSON *root;
	int result;

	memset(out, 0, sizeof(*out));
	root = json_parse(json ? json : "", json ? len : 0, &line, &result);
	if (!root) {
		if (result == -ENOMEM)
			return fail_oom(err, errlen);
		return fail(err, errlen, "task metadata: invalid JSON at line %u", line);
	}
	if (!cJSON_IsObject(root)) {
		result = fail(err, errlen, "task metadata: must be a JSON object");
		goto out;
	}
	result = parse_cluster(root, &id, err, errlen);
	if (!result)
		result = parse_task_arn(root, &id, err, errlen);
	if (!result)
		result = parse_family(root, &id, err, errlen);
	if (!result)
		result = parse_revision(root, &id, err, errlen);
	if (!result)
		result = parse_az(root, &id, err, errlen);
	if (!result)
		result = parse_address(root, &id, err, errlen);
out:
	cJSON_Delete(root);
	if (result)
		ecs_identity_dispose(&id);
	else
		*out = id;
	return result;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/*
 * One GET. Returns 0 on a 200 with the body in *b, or a negative errno with a
 * message in `msg`; *retry says whether another attempt may succeed.
 */
static int attempt(CURL *h, const char *url, curluv_body_t *b, bool *retry, char *msg,
                   size_t msglen)
{
	char cerr[CURL_ERROR_SIZE];
	CURLcode result;
	long status = 0;

	curluv_body_reset(b);
	cerr[0] = '\0';
	*retry = false;
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, cerr);
	result = curl_easy_perform(h);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
	if (result != CURLE_OK) {
		const char *text = cerr[0] ? cerr : curl_easy_strerror(result);

		if (b->too_big || result == CURLE_FILESIZE_EXCEEDED) {
			fail(msg, msglen, "GET %s: the body exceeds %d bytes", url,
			     ECS_FETCH_MAX_BODY);
			return -EFBIG;
		}
		if (b->oom || result == CURLE_OUT_OF_MEMORY)
			return fail_oom(msg, msglen);
		fail(msg, msglen, "GET %s: %s", url, text);
		if (result == CURLE_URL_MALFORMAT || result == CURLE_UNSUPPORTED_PROTOCOL)
			return -EINVAL;
		*retry = true;
		if (result == CURLE_OPERATION_TIMEDOUT)
			return -ETIMEDOUT;
		if (result == CURLE_COULDNT_CONNECT)
			return -ECONNREFUSED;
		return -EIO;
	}
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	if (status == 200)
		return 0;
	fail(msg, msglen, "GET %s: HTTP %ld", url, status);
	if (status == 404)
		return -ENOENT;
	*retry = status == 429 || status >= 500;
	return -EPROTO;
}

static int setup(CURL *h, const char *url, long timeout_ms, curluv_body_t *b)
{
	CURLcode result = CURLE_OK;

#define SET(opt, val)                                                                              \
	do {                                                                                       \
		if (result == CURLE_OK)                                                            \
			result = curl_easy_setopt(h, opt, val);                                    \
	} while (0)
	SET(CURLOPT_URL, url);
#if LIBCURL_VERSION_NUM >= 0x075500
	SET(CURLOPT_PROTOCOLS_STR, "http");
#else
	SET(CURLOPT_PROTOCOLS, (long)CURLPROTO_HTTP);
#endif
	SET(CURLOPT_PROXY, "");
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_FOLLOWLOCATION, 0L);
	SET(CURLOPT_TIMEOUT_MS, timeout_ms);
	SET(CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
	SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)ECS_FETCH_MAX_BODY);
	SET(CURLOPT_USERAGENT, "sgprobe-agent");
	SET(CURLOPT_WRITEFUNCTION, curluv_body_write);
	SET(CURLOPT_WRITEDATA, b);
#undef SET
	if (result == CURLE_OUT_OF_MEMORY)
		return -ENOMEM;
	return result == CURLE_OK ? 0 : -EINVAL;
}

/* Durations by libuv's monotonic clock (STYLE.md: uv_hrtime for durations). */
static uint64_t monotonic_ms(void)
{
	return uv_hrtime() / 1000000u;
}

int ecs_identity_fetch(const char *base_uri, long timeout_ms, ecs_identity_t *out, char *err,
                       size_t errlen)
{
	return ecs_identity_fetch_for(base_uri, timeout_ms, 0, out, err, errlen);
}

int ecs_identity_fetch_for(const char *base_uri, long timeout_ms, long budget_ms,
                           ecs_identity_t *out, char *err, size_t errlen)
{
	uint64_t start = monotonic_ms();
	char msg[ECS_ERR_MAX + 64];
	curluv_body_t body = {.max = ECS_FETCH_MAX_BODY};
	CURL *h = NULL;
	char *url = NULL;
	long delay = ECS_FETCH_RETRY_DELAY_MS;
	bool retry = false;
	size_t n;
	int i;
	int result;

	memset(out, 0, sizeof(*out));
	if (!base_uri || strncasecmp(base_uri, "http://", 7) != 0 || !base_uri[7])
		return fail(err, errlen, "%s: must be an http:// URL", ECS_METADATA_ENV);
	if (timeout_ms <= 0)
		timeout_ms = ECS_FETCH_DEFAULT_TIMEOUT;
	n = strlen(base_uri);
	while (n > 7 && base_uri[n - 1] == '/')
		n--;
	url = malloc(n + sizeof("/task"));
	if (!url)
		return fail_oom(err, errlen);
	memcpy(url, base_uri, n);
	memcpy(url + n, "/task", sizeof("/task"));

	h = curl_easy_init();
	if (!h) {
		result = fail_oom(err, errlen);
		goto out;
	}
	result = setup(h, url, timeout_ms, &body);
	if (result) {
		if (result == -ENOMEM)
			fail_oom(err, errlen);
		else
			fail(err, errlen, "%s: cannot be used as a URL", ECS_METADATA_ENV);
		goto out;
	}
	for (i = 0;; i++) {
		if (i > 0) {
			sleep_ms(delay);
			delay =
			    delay * 2 > ECS_FETCH_RETRY_MAX_MS ? ECS_FETCH_RETRY_MAX_MS : delay * 2;
		}
		result = attempt(h, url, &body, &retry, msg, sizeof(msg));
		if (!result || !retry)
			break;
		/* The attempts owed, then more while the budget allows the pause. */
		if (i + 1 >= ECS_FETCH_ATTEMPTS &&
		    (budget_ms <= 0 ||
		     monotonic_ms() - start + (uint64_t)delay >= (uint64_t)budget_ms))
			break;
	}
	if (result) {
		if (retry && budget_ms > 0)
			fail(err, errlen, "%s (%d attempts in %" PRIu64 " ms)", msg, i + 1,
			     monotonic_ms() - start);
		else if (retry)
			fail(err, errlen, "%s (%d attempts)", msg, i + 1);
		else
			fail(err, errlen, "%s", msg);
		goto out;
	}
	result = ecs_identity_parse(body.data, body.len, out, msg, sizeof(msg));
	if (result)
		fail(err, errlen, "GET %s: %s", url, msg);
out:
	curl_easy_cleanup(h);
	curluv_body_dispose(&body);
	free(url);
	return result;
}

int ecs_identity_default(const char *role, ecs_identity_t *out, char *err, size_t errlen)
{
	char host[256];
	size_t hn;
	size_t rn;

	memset(out, 0, sizeof(*out));
	if (!role || !role[0])
		return fail(err, errlen, "--role: required for the agent id");
	if (gethostname(host, sizeof(host)) != 0) {
		int e = errno;

		fail(err, errlen, "gethostname: %s", strerror(e));
		return -e;
	}
	host[sizeof(host) - 1] = '\0';
	hn = strlen(host);
	rn = strlen(role);
	if (hn == 0)
		return fail(err, errlen, "the hostname is empty: set --agent-id");
	if (hn + 1 + rn > ECS_STRING_MAX)
		return fail(err, errlen, "--role: the agent id HOSTNAME/ROLE would exceed %d bytes",
		            ECS_STRING_MAX);
	out->id = malloc(hn + 1 + rn + 1);
	out->cluster = strdup(ECS_DEFAULT_CLUSTER);
	if (!out->id || !out->cluster) {
		ecs_identity_dispose(out);
		return fail_oom(err, errlen);
	}
	memcpy(out->id, host, hn);
	out->id[hn] = '/';
	memcpy(out->id + hn + 1, role, rn + 1);
	return 0;
}

int ecs_identity_override(ecs_identity_t *id, const char *agent_id, const char *cluster,
                          const char *address, char *err, size_t errlen)
{
	unsigned char buf[sizeof(struct in6_addr)];
	char msg[ECS_ERR_MAX];
	char *new_id = NULL;
	char *new_cluster = NULL;
	char *new_address = NULL;
	int result = 0;

	if (agent_id && (!agent_id[0] || strlen(agent_id) > ECS_STRING_MAX))
		return fail(err, errlen,
		            "--agent-id: must be a non-empty string of at most %d bytes",
		            ECS_STRING_MAX);
	if (address && inet_pton(AF_INET, address, buf) != 1 &&
	    inet_pton(AF_INET6, address, buf) != 1)
		return fail(err, errlen, "--agent-address: must be an IPv4 or IPv6 address");
	if (cluster) {
		result = cluster_name(cluster, &new_cluster, msg, sizeof(msg));
		if (result == -ENOMEM)
			return fail_oom(err, errlen);
		if (result)
			return fail(err, errlen, "--cluster: %s", msg);
	}
	if (agent_id) {
		new_id = strdup(agent_id);
		if (!new_id)
			goto oom;
	}
	if (address) {
		new_address = strdup(address);
		if (!new_address)
			goto oom;
	}
	if (new_id) {
		free(id->id);
		id->id = new_id;
	}
	if (new_cluster) {
		free(id->cluster);
		id->cluster = new_cluster;
	}
	if (new_address) {
		free(id->address);
		id->address = new_address;
	}
	return 0;
oom:
	free(new_id);
	free(new_cluster);
	free(new_address);
	return fail_oom(err, errlen);
}

void ecs_identity_dispose(ecs_identity_t *id)
{
	free(id->id);
	free(id->cluster);
	free(id->family);
	free(id->revision);
	free(id->az);
	free(id->address);
	memset(id, 0, sizeof(*id));
}
