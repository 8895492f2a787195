/*
 * Unit tests of agent/ecs.c: the identity from the ECS task metadata document
 * (AWS's own example response, tests/unit/data/task-metadata-v4.json, a copy of
 * ../shared/aws/ecs/task-metadata-v4.json), fetched from a local HTTP server on
 * 127.0.0.1, and the fallback outside ECS with the flags' overrides.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include <cJSON.h>
#include <curl/curl.h>
#include <uv.h>

#include "../../agent/ecs.h"

#define DOC_COPY   "tests/unit/data/task-metadata-v4.json"
#define DOC_SHARED "../shared/aws/ecs/task-metadata-v4.json"
#define TASK_ARN   "arn:aws:ecs:us-west-2:111122223333:task/default/158d1c8083dd49d6b527399fd6414f5c"

typedef struct {
	char *doc;
	size_t len;
} fixture_t;

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
		r = fread(buf + n, 1, cap - n, f);
		if (r == 0)
			break;
		n += r;
	}
	fclose(f);
	*len = n;
	return buf;
}

static int group_setup(void **state)
{
	fixture_t *fx = calloc(1, sizeof(*fx));

	if (!fx)
		return -1;
	/* The copy in the repository first, so the test does not need shared/ beside the clone. */
	fx->doc = read_file(DOC_COPY, &fx->len);
	if (!fx->doc)
		fx->doc = read_file(DOC_SHARED, &fx->len);
	if (!fx->doc) {
		fprintf(stderr, "cannot read %s or %s (run from the repository's top)\n", DOC_COPY,
		        DOC_SHARED);
		free(fx);
		return -1;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	*state = fx;
	return 0;
}

static int group_teardown(void **state)
{
	fixture_t *fx = *state;

	curl_global_cleanup();
	free(fx->doc);
	free(fx);
	return 0;
}

static void assert_empty(const ecs_identity_t *id)
{
	assert_null(id->id);
	assert_null(id->cluster);
	assert_null(id->family);
	assert_null(id->revision);
	assert_null(id->az);
	assert_null(id->address);
}

static void assert_example(const ecs_identity_t *id)
{
	assert_string_equal(id->id, TASK_ARN);
	assert_string_equal(id->cluster, "default");
	assert_string_equal(id->family, "curltest");
	assert_string_equal(id->revision, "26");
	assert_string_equal(id->az, "us-west-2d");
	assert_string_equal(id->address, "10.0.2.61");
}

/*
 * Parses the example with top-level `key` replaced by the JSON `value` (added
 * when missing), or removed when `value` is NULL.
 */
static int parse_variant(const fixture_t *fx, const char *key, const char *value,
                         ecs_identity_t *out, char *err, size_t errlen)
{
	cJSON *doc = cJSON_ParseWithLength(fx->doc, fx->len);
	char *text;
	int result;

	assert_non_null(doc);
	cJSON_DeleteItemFromObjectCaseSensitive(doc, key);
	if (value) {
		cJSON *item = cJSON_Parse(value);

		assert_non_null(item);
		cJSON_AddItemToObject(doc, key, item);
	}
	text = cJSON_PrintUnformatted(doc);
	assert_non_null(text);
	result = ecs_identity_parse(text, strlen(text), out, err, errlen);
	cJSON_free(text);
	cJSON_Delete(doc);
	return result;
}

/* The copy in tests/unit/data must not drift from the shared example it was taken from. */
static void test_copy_matches_shared_example(void **state)
{
	fixture_t *fx = *state;
	size_t len = 0;
	char *shared = read_file(DOC_SHARED, &len);

	if (!shared)
		skip(); /* shared/ is not beside this clone */
	assert_int_equal(len, fx->len);
	assert_memory_equal(shared, fx->doc, len);
	free(shared);
}

/* Every field of AWS's example response, as the agent will report it. */
static void test_parse_example_every_field(void **state)
{
	fixture_t *fx = *state;
	ecs_identity_t id;
	char err[ECS_ERR_MAX] = "";

	assert_int_equal(ecs_identity_parse(fx->doc, fx->len, &id, err, sizeof(err)), 0);
	assert_string_equal(err, "");
	assert_example(&id);
	ecs_identity_dispose(&id);
	assert_empty(&id);
	ecs_identity_dispose(&id); /* twice is harmless */
}

/* The input need not be NUL-terminated: bytes past `len` are never read as part of it. */
static void test_parse_honours_length(void **state)
{
	fixture_t *fx = *state;
	char *buf = malloc(fx->len + 8);
	ecs_identity_t id;
	char err[ECS_ERR_MAX];

	assert_non_null(buf);
	memcpy(buf, fx->doc, fx->len);
	memcpy(buf + fx->len, "garbage!", 8);
	assert_int_equal(ecs_identity_parse(buf, fx->len, &id, err, sizeof(err)), 0);
	assert_example(&id);
	ecs_identity_dispose(&id);
	/* Within the length, trailing garbage is an error. */
	assert_int_equal(ecs_identity_parse(buf, fx->len + 8, &id, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "task metadata: invalid JSON"));
	assert_empty(&id);
	free(buf);
}

/* The cluster is reported by its short name, whether ECS gives a name or an ARN. */
static void test_parse_cluster_name_or_arn(void **state)
{
	static const struct {
		const char *value;
		const char *want;
	} cases[] = {
	    {"\"default\"", "default"},
	    {"\"prod-afirgen_1\"", "prod-afirgen_1"},
	    {"\"arn:aws:ecs:us-west-2:111122223333:cluster/default\"", "default"},
	    {"\"arn:aws:ecs:eu-west-3:111122223333:cluster/prod-afirgen_1\"", "prod-afirgen_1"},
	    {"\"arn:aws-cn:ecs:cn-north-1:111122223333:cluster/x\"", "x"},
	    {"\"arn:aws-us-gov:ecs:us-gov-west-1:111122223333:cluster/Gov_2\"", "Gov_2"},
	};
	fixture_t *fx = *state;
	ecs_identity_t id;
	char err[ECS_ERR_MAX];
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (parse_variant(fx, "Cluster", cases[i].value, &id, err, sizeof(err)) != 0)
			fail_msg("Cluster %s: %s", cases[i].value, err);
		assert_string_equal(id.cluster, cases[i].want);
		assert_string_equal(id.id, TASK_ARN);
		ecs_identity_dispose(&id);
	}
}

/* Every validation error names the field and what is wrong, and leaves no strings behind. */
static void test_parse_errors_name_the_field(void **state)
{
	static const struct {
		const char *key;
		const char *value; /* NULL: the key is removed */
		const char *want;
	} cases[] = {
	    {"Cluster", NULL, "Cluster: required"},
	    {"Cluster", "null", "Cluster: required"},
	    {"Cluster", "5", "Cluster: must be a string"},
	    {"Cluster", "\"\"", "Cluster: must not be empty"},
	    {"Cluster", "\"has space\"", "Cluster: the name must be 1 to 255 letters"},
	    {"Cluster", "\"a/b\"", "Cluster: the name must be 1 to 255 letters"},
	    {"Cluster", "\"arn:aws:ecs:us-west-2:111122223333:service/x\"",
	     "Cluster: must be a cluster name or arn:PARTITION:ecs:REGION:ACCOUNT:cluster/NAME"},
	    {"Cluster", "\"arn:aws:s3:us-west-2:111122223333:cluster/x\"",
	     "Cluster: must be a cluster name or arn:"},
	    {"Cluster", "\"arn:aws:ecs:us-west-2:acct:cluster/x\"",
	     "Cluster: must be a cluster name or arn:"},
	    {"Cluster", "\"arn:aws:ecs:us-west-2:111122223333\"",
	     "Cluster: must be a cluster name or arn:"},
	    {"Cluster", "\"arn:aws:ecs:us-west-2:111122223333:cluster/\"",
	     "Cluster: the name must be 1 to 255 letters"},
	    {"Cluster", "\"arn:aws:ecs:us-west-2:111122223333:cluster/a/b\"",
	     "Cluster: the name must be 1 to 255 letters"},
	    {"TaskARN", NULL, "TaskARN: required"},
	    {"TaskARN", "[]", "TaskARN: must be a string"},
	    {"TaskARN", "\"158d1c8083dd49d6b527399fd6414f5c\"", "TaskARN: must be an ECS task ARN"},
	    {"TaskARN", "\"arn:aws:ecs:us-west-2:111122223333:task/\"",
	     "TaskARN: must be an ECS task ARN"},
	    {"TaskARN", "\"arn:aws:ecs:us-west-2:111122223333:container/x\"",
	     "TaskARN: must be an ECS task ARN"},
	    {"TaskARN", "\"arn:aws:ecs:us-west-2:111122223333:task/a b\"",
	     "TaskARN: must be an ECS task ARN"},
	    {"Family", NULL, "Family: required"},
	    {"Family", "{}", "Family: must be a string"},
	    {"Family", "\"curl test\"", "Family: must be 1 to 255 letters"},
	    {"Revision", NULL, "Revision: required"},
	    {"Revision", "\"\"", "Revision: must be a positive decimal integer"},
	    {"Revision", "\"0\"", "Revision: must be a positive decimal integer"},
	    {"Revision", "\"026\"", "Revision: must be a positive decimal integer"},
	    {"Revision", "\"2x\"", "Revision: must be a positive decimal integer"},
	    {"Revision", "\"12345678901\"", "Revision: must be a positive decimal integer"},
	    {"Revision", "-1", "Revision: must be a positive decimal integer"},
	    {"Revision", "1.5", "Revision: must be a positive decimal integer"},
	    {"Revision", "true", "Revision: must be a positive decimal integer"},
	    {"AvailabilityZone", "7", "AvailabilityZone: must be a string"},
	    {"AvailabilityZone", "\"\"", "AvailabilityZone: must not be empty"},
	    {"AvailabilityZone", "\"US WEST 2\"",
	     "AvailabilityZone: must be at most 64 lower-case"},
	    {"Containers", "{}", "Containers: must be an array"},
	    {"Containers", "[1]", "Containers[0]: must be an object"},
	    {"Containers", "[{\"Networks\": {}}]", "Containers[0].Networks: must be an array"},
	    {"Containers", "[{\"Networks\": [5]}]", "Containers[0].Networks[0]: must be an object"},
	    {"Containers", "[{\"Networks\": [{}]}]",
	     "Containers[0].Networks[0].NetworkMode: must be a string"},
	    {"Containers",
	     "[{\"Networks\": [{\"NetworkMode\": \"awsvpc\", \"IPv4Addresses\": []}]}]",
	     "Containers[0].Networks[0].IPv4Addresses: must be a non-empty array"},
	    {"Containers",
	     "[{\"Networks\": [{\"NetworkMode\": \"awsvpc\", \"IPv4Addresses\": 1}]}]",
	     "Containers[0].Networks[0].IPv4Addresses: must be a non-empty array"},
	    {"Containers",
	     "[{\"Networks\": [{\"NetworkMode\": \"awsvpc\", \"IPv4Addresses\": [\"10.0.2\"]}]}]",
	     "Containers[0].Networks[0].IPv4Addresses[0]: must be an IPv4 address"},
	    {"Containers",
	     "[{\"Networks\": [{\"NetworkMode\": \"awsvpc\", \"IPv4Addresses\": [\"fd00::1\"]}]}]",
	     "Containers[0].Networks[0].IPv4Addresses[0]: must be an IPv4 address"},
	    {"Containers",
	     "[{\"Name\": \"app\"}, {\"Networks\": [{\"NetworkMode\": \"bridge\"}, "
	     "{\"NetworkMode\": \"awsvpc\", \"IPv4Addresses\": [7]}]}]",
	     "Containers[1].Networks[1].IPv4Addresses[0]: must be an IPv4 address"},
	};
	fixture_t *fx = *state;
	ecs_identity_t id;
	char err[ECS_ERR_MAX];
	size_t i;
	int result;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		err[0] = '\0';
		result = parse_variant(fx, cases[i].key, cases[i].value, &id, err, sizeof(err));
		if (result != -EINVAL)
			fail_msg("%s = %s: got %d, want -EINVAL", cases[i].key,
			         cases[i].value ? cases[i].value : "(removed)", result);
		if (strncmp(err, cases[i].want, strlen(cases[i].want)) != 0)
			fail_msg("%s = %s: message \"%s\", want \"%s...\"", cases[i].key,
			         cases[i].value ? cases[i].value : "(removed)", err, cases[i].want);
		assert_empty(&id);
	}
}

/* A cluster name of 255 characters is ECS's limit: it passes, 256 does not. */
static void test_parse_cluster_name_length(void **state)
{
	fixture_t *fx = *state;
	char value[300];
	ecs_identity_t id;
	char err[ECS_ERR_MAX];

	value[0] = '"';
	memset(value + 1, 'c', 255);
	memcpy(value + 256, "\"", 2);
	assert_int_equal(parse_variant(fx, "Cluster", value, &id, err, sizeof(err)), 0);
	assert_int_equal(strlen(id.cluster), 255);
	ecs_identity_dispose(&id);
	value[256] = 'c';
	memcpy(value + 257, "\"", 2);
	assert_int_equal(parse_variant(fx, "Cluster", value, &id, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "Cluster: the name must be 1 to 255"));
}

/* The document as a whole: JSON, and an object. */
static void test_parse_document_errors(void **state)
{
	static const struct {
		const char *text;
		const char *want;
	} cases[] = {
	    {"", "task metadata: invalid JSON at line 1"},
	    {"{", "task metadata: invalid JSON at line 1"},
	    {"{\n\"Cluster\": \"default\",\n}", "task metadata: invalid JSON at line 3"},
	    {"[]", "task metadata: must be a JSON object"},
	    {"\"default\"", "task metadata: must be a JSON object"},
	    {"{}", "Cluster: required"},
	};
	ecs_identity_t id;
	char err[ECS_ERR_MAX];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(
		    ecs_identity_parse(cases[i].text, strlen(cases[i].text), &id, err, sizeof(err)),
		    -EINVAL);
		assert_string_equal(err, cases[i].want);
		assert_empty(&id);
	}
	/* A NULL error buffer is allowed. */
	assert_int_equal(ecs_identity_parse("[]", 2, &id, NULL, 0), -EINVAL);
}

/* Optional fields: no zone and no awsvpc network are not errors, the fields are then unknown. */
static void test_parse_optional_fields(void **state)
{
	fixture_t *fx = *state;
	ecs_identity_t id;
	char err[ECS_ERR_MAX];

	assert_int_equal(parse_variant(fx, "AvailabilityZone", NULL, &id, err, sizeof(err)), 0);
	assert_null(id.az);
	assert_string_equal(id.address, "10.0.2.61");
	ecs_identity_dispose(&id);

	assert_int_equal(parse_variant(fx, "Containers", NULL, &id, err, sizeof(err)), 0);
	assert_null(id.address);
	assert_string_equal(id.cluster, "default");
	ecs_identity_dispose(&id);

	/* Bridge networking: the container's docker address is not the task's. */
	assert_int_equal(parse_variant(fx, "Containers",
	                               "[{\"Networks\": [{\"NetworkMode\": \"bridge\", "
	                               "\"IPv4Addresses\": [\"172.17.0.2\"]}]}]",
	                               &id, err, sizeof(err)),
	                 0);
	assert_null(id.address);
	ecs_identity_dispose(&id);

	/* An IPv6-only awsvpc task has no IPv4 address to report. */
	assert_int_equal(parse_variant(fx, "Containers",
	                               "[{\"Networks\": [{\"NetworkMode\": \"awsvpc\", "
	                               "\"IPv6Addresses\": [\"fd00::5\"]}]}]",
	                               &id, err, sizeof(err)),
	                 0);
	assert_null(id.address);
	ecs_identity_dispose(&id);

	/* The revision as a number. */
	assert_int_equal(parse_variant(fx, "Revision", "26", &id, err, sizeof(err)), 0);
	assert_string_equal(id.revision, "26");
	ecs_identity_dispose(&id);
}

/* The address is the first awsvpc network's first IPv4 address, containers in order. */
static void test_parse_address_first_awsvpc_network(void **state)
{
	fixture_t *fx = *state;
	ecs_identity_t id;
	char err[ECS_ERR_MAX];

	assert_int_equal(parse_variant(fx, "Containers",
	                               "[{\"Name\": \"app\"}, {\"Name\": \"x\", \"Networks\": []},"
	                               " {\"Networks\": [{\"NetworkMode\": \"awsvpc\","
	                               " \"IPv4Addresses\": [\"10.1.2.3\", \"10.9.9.9\"]}]},"
	                               " {\"Networks\": [{\"NetworkMode\": \"awsvpc\","
	                               " \"IPv4Addresses\": [\"10.4.4.4\"]}]}]",
	                               &id, err, sizeof(err)),
	                 0);
	assert_string_equal(id.address, "10.1.2.3");
	ecs_identity_dispose(&id);
}

/* Outside ECS: HOSTNAME/ROLE in the cluster "default", nothing else known. */
static void test_default_identity(void **state)
{
	char host[256];
	char want[300];
	ecs_identity_t id;
	char err[ECS_ERR_MAX];

	(void)state;
	assert_int_equal(gethostname(host, sizeof(host)), 0);
	host[sizeof(host) - 1] = '\0';
	snprintf(want, sizeof(want), "%s/nginx", host);
	assert_int_equal(ecs_identity_default("nginx", &id, err, sizeof(err)), 0);
	assert_string_equal(id.id, want);
	assert_string_equal(id.cluster, "default");
	assert_null(id.family);
	assert_null(id.revision);
	assert_null(id.az);
	assert_null(id.address);
	ecs_identity_dispose(&id);

	assert_int_equal(ecs_identity_default("", &id, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "--role: required for the agent id");
	assert_empty(&id);
	assert_int_equal(ecs_identity_default(NULL, &id, err, sizeof(err)), -EINVAL);
	assert_empty(&id);
}

/* Flags override each field; the cluster flag takes an ARN too; a bad flag changes nothing. */
static void test_override_each_field(void **state)
{
	fixture_t *fx = *state;
	ecs_identity_t id;
	char err[ECS_ERR_MAX];

	assert_int_equal(ecs_identity_parse(fx->doc, fx->len, &id, err, sizeof(err)), 0);

	/* Nothing given: nothing changes. */
	assert_int_equal(ecs_identity_override(&id, NULL, NULL, NULL, err, sizeof(err)), 0);
	assert_example(&id);

	/* Bad values, each naming its flag, leave the identity as it was. */
	assert_int_equal(ecs_identity_override(&id, "", "prod", "10.9.8.7", err, sizeof(err)),
	                 -EINVAL);
	assert_string_equal(err, "--agent-id: must be a non-empty string of at most 1024 bytes");
	assert_int_equal(ecs_identity_override(&id, "a1", "bad name", "10.9.8.7", err, sizeof(err)),
	                 -EINVAL);
	assert_string_equal(
	    err, "--cluster: the name must be 1 to 255 letters, digits, hyphens or underscores");
	assert_int_equal(
	    ecs_identity_override(&id, "a1", "arn:aws:ecs:x:1:service/y", NULL, err, sizeof(err)),
	    -EINVAL);
	assert_non_null(strstr(err, "--cluster: must be a cluster name or arn:"));
	assert_int_equal(ecs_identity_override(&id, "a1", "prod", "host.example", err, sizeof(err)),
	                 -EINVAL);
	assert_string_equal(err, "--agent-address: must be an IPv4 or IPv6 address");
	assert_example(&id);

	/* Each one alone. */
	assert_int_equal(ecs_identity_override(&id, "agent-7", NULL, NULL, err, sizeof(err)), 0);
	assert_string_equal(id.id, "agent-7");
	assert_string_equal(id.cluster, "default");
	assert_string_equal(id.address, "10.0.2.61");
	assert_int_equal(ecs_identity_override(&id, NULL,
	                                       "arn:aws:ecs:us-west-2:111122223333:cluster/prod",
	                                       NULL, err, sizeof(err)),
	                 0);
	assert_string_equal(id.cluster, "prod");
	assert_string_equal(id.id, "agent-7");
	assert_int_equal(ecs_identity_override(&id, NULL, NULL, "fd00::7", err, sizeof(err)), 0);
	assert_string_equal(id.address, "fd00::7");
	assert_string_equal(id.family, "curltest");
	assert_string_equal(id.revision, "26");
	assert_string_equal(id.az, "us-west-2d");
	ecs_identity_dispose(&id);

	/* On the default identity, an address where there was none. */
	assert_int_equal(ecs_identity_default("nginx", &id, err, sizeof(err)), 0);
	assert_int_equal(ecs_identity_override(&id, NULL, "staging", "10.0.0.9", err, sizeof(err)),
	                 0);
	assert_string_equal(id.cluster, "staging");
	assert_string_equal(id.address, "10.0.0.9");
	ecs_identity_dispose(&id);
}

/*
 * A small HTTP server on 127.0.0.1 in a thread: answers request i with step i
 * of its script (the last step repeats), one request per connection. Status 0
 * means: read the request and never answer.
 */
#define SERVER_STEPS 4
#define SERVER_HELD  8

typedef struct {
	int status;
	const char *body;
	size_t body_len; /* 0: strlen(body) */
	bool no_length;  /* no Content-Length: the body ends when the connection closes */
} step_t;

typedef struct {
	int fd;
	int stop[2];
	uint16_t port;
	uv_thread_t thread;
	step_t steps[SERVER_STEPS];
	size_t n_steps;
	int held[SERVER_HELD];
	size_t n_held;
	int requests;   /* read after server_stop() only */
	char path[256]; /* of the last request */
} server_t;

static void send_all(int fd, const char *p, size_t n)
{
	ssize_t w;

	while (n > 0) {
		w = send(fd, p, n, MSG_NOSIGNAL);
		if (w <= 0)
			return; /* the client gave up: that is what some tests want */
		p += w;
		n -= (size_t)w;
	}
}

/* Reads one request's head; false when the server is stopping or the client left. */
static bool read_request(server_t *s, int c, char *req, size_t cap)
{
	size_t n = 0;
	ssize_t r;

	req[0] = '\0';
	while (!strstr(req, "\r\n\r\n")) {
		struct pollfd p[2] = {{.fd = c, .events = POLLIN},
		                      {.fd = s->stop[0], .events = POLLIN}};

		if (poll(p, 2, 5000) <= 0 || p[1].revents || n + 1 >= cap)
			return false;
		r = recv(c, req + n, cap - 1 - n, 0);
		if (r <= 0)
			return false;
		n += (size_t)r;
		req[n] = '\0';
	}
	return true;
}

static void handle(server_t *s, int c)
{
	char req[4096];
	char head[256];
	const step_t *st;
	size_t body_len;
	int n;

	if (!read_request(s, c, req, sizeof(req))) {
		close(c);
		return;
	}
	s->requests++;
	if (sscanf(req, "GET %255s ", s->path) != 1)
		s->path[0] = '\0';
	st = &s->steps[(size_t)s->requests - 1 < s->n_steps ? (size_t)s->requests - 1
	                                                    : s->n_steps - 1];
	body_len = st->body_len ? st->body_len : strlen(st->body);
	if (st->status == 0) {
		if (s->n_held < SERVER_HELD)
			s->held[s->n_held++] = c;
		else
			close(c);
		return;
	}
	if (st->no_length)
		n = snprintf(head, sizeof(head), "HTTP/1.1 %d X\r\nConnection: close\r\n\r\n",
		             st->status);
	else
		n = snprintf(head, sizeof(head),
		             "HTTP/1.1 %d X\r\nContent-Type: application/json\r\n"
		             "Content-Length: %zu\r\nConnection: close\r\n\r\n",
		             st->status, body_len);
	send_all(c, head, (size_t)n);
	send_all(c, st->body, body_len);
	close(c);
}

static void serve(void *arg)
{
	server_t *s = arg;
	int c;

	for (;;) {
		struct pollfd p[2] = {{.fd = s->fd, .events = POLLIN},
		                      {.fd = s->stop[0], .events = POLLIN}};

		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		if (p[1].revents)
			return;
		if (p[0].revents & POLLIN) {
			c = accept(s->fd, NULL, NULL);
			if (c >= 0)
				handle(s, c);
		}
	}
}

static void server_start(server_t *s)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof(sa);

	s->n_held = 0;
	s->requests = 0;
	s->path[0] = '\0';
	assert_int_equal(inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr), 1);
	s->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(s->fd >= 0);
	assert_int_equal(bind(s->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(s->fd, 16), 0);
	assert_int_equal(getsockname(s->fd, (struct sockaddr *)&sa, &len), 0);
	s->port = ntohs(sa.sin_port);
	assert_int_equal(pipe(s->stop), 0);
	assert_int_equal(uv_thread_create(&s->thread, serve, s), 0);
}

static void server_stop(server_t *s)
{
	size_t i;

	assert_int_equal(write(s->stop[1], "x", 1), 1);
	assert_int_equal(uv_thread_join(&s->thread), 0);
	for (i = 0; i < s->n_held; i++)
		close(s->held[i]);
	close(s->fd);
	close(s->stop[0]);
	close(s->stop[1]);
}

static void base_uri(const server_t *s, char *buf, size_t len)
{
	snprintf(buf, len, "http://127.0.0.1:%u/v4/0123abcd-task", (unsigned)s->port);
}

static uint64_t elapsed_ms(uint64_t start_ns)
{
	return (uv_hrtime() - start_ns) / 1000000u;
}

/* The identity of the example response, fetched over HTTP from base_uri + "/task". */
static void test_fetch_example(void **state)
{
	fixture_t *fx = *state;
	server_t s = {.steps = {{200, fx->doc, fx->len, false}}, .n_steps = 1};
	ecs_identity_t id;
	char err[ECS_ERR_MAX] = "";
	char uri[128];

	server_start(&s);
	base_uri(&s, uri, sizeof(uri));
	assert_int_equal(ecs_identity_fetch(uri, 2000, &id, err, sizeof(err)), 0);
	server_stop(&s);
	assert_string_equal(err, "");
	assert_int_equal(s.requests, 1);
	assert_string_equal(s.path, "/v4/0123abcd-task/task");
	assert_example(&id);
	ecs_identity_dispose(&id);

	/* A trailing slash on the base does not double. */
	server_start(&s);
	snprintf(uri, sizeof(uri), "http://127.0.0.1:%u/v4/x/", (unsigned)s.port);
	assert_int_equal(ecs_identity_fetch(uri, 0, &id, err, sizeof(err)), 0);
	server_stop(&s);
	assert_string_equal(s.path, "/v4/x/task");
	assert_example(&id);
	ecs_identity_dispose(&id);
}

/* A 404 means a wrong URI: no retry, and the message names the URL and the status. */
static void test_fetch_404(void **state)
{
	server_t s = {.steps = {{404, "not found", 9, false}}, .n_steps = 1};
	ecs_identity_t id;
	char err[ECS_ERR_MAX];
	char uri[128];
	char want[200];

	(void)state;
	server_start(&s);
	base_uri(&s, uri, sizeof(uri));
	assert_int_equal(ecs_identity_fetch(uri, 2000, &id, err, sizeof(err)), -ENOENT);
	server_stop(&s);
	assert_int_equal(s.requests, 1);
	snprintf(want, sizeof(want), "GET %s/task: HTTP 404", uri);
	assert_string_equal(err, want);
	assert_empty(&id);
}

/* 5xx is retried twice: two failures then a success is a success. */
static void test_fetch_retries_5xx(void **state)
{
	fixture_t *fx = *state;
	server_t s = {
	    .steps = {{503, "", 0, false}, {500, "", 0, false}, {200, fx->doc, fx->len, false}},
	    .n_steps = 3};
	ecs_identity_t id;
	char err[ECS_ERR_MAX];
	char uri[128];
	uint64_t start = uv_hrtime();

	server_start(&s);
	base_uri(&s, uri, sizeof(uri));
	assert_int_equal(ecs_identity_fetch(uri, 2000, &id, err, sizeof(err)), 0);
	server_stop(&s);
	assert_int_equal(s.requests, 3);
	/* It waited between the attempts. */
	assert_true(elapsed_ms(start) >= ECS_FETCH_RETRY_DELAY_MS * 3);
	assert_example(&id);
	ecs_identity_dispose(&id);
}

/* Three 5xx: the fetch fails after exactly three attempts, saying so. */
static void test_fetch_5xx_gives_up_after_three(void **state)
{
	server_t s = {.steps = {{503, "", 0, false}}, .n_steps = 1};
	ecs_identity_t id;
	char err[ECS_ERR_MAX];
	char uri[128];

	(void)state;
	server_start(&s);
	base_uri(&s, uri, sizeof(uri));
	assert_int_equal(ecs_identity_fetch(uri, 2000, &id, err, sizeof(err)), -EPROTO);
	server_stop(&s);
	assert_int_equal(s.requests, ECS_FETCH_ATTEMPTS);
	assert_non_null(strstr(err, "HTTP 503 (3 attempts)"));
	assert_empty(&id);
}

/* A server that accepts and never answers: each attempt times out, three in all. */
static void test_fetch_timeout(void **state)
{
	server_t s = {.steps = {{0, "", 0, false}}, .n_steps = 1};
	ecs_identity_t id;
	char err[ECS_ERR_MAX];
	char uri[128];
	uint64_t start;
	uint64_t took;

	(void)state;
	server_start(&s);
	base_uri(&s, uri, sizeof(uri));
	start = uv_hrtime();
	assert_int_equal(ecs_identity_fetch(uri, 200, &id, err, sizeof(err)), -ETIMEDOUT);
	took = elapsed_ms(start);
	server_stop(&s);
	/* Three attempts of 200 ms and the pauses of 200 and 400 ms between them. */
	if (took < 3 * 200 + ECS_FETCH_RETRY_DELAY_MS * 3)
		fail_msg("gave up after %llu ms", (unsigned long long)took);
	assert_int_equal(s.requests, ECS_FETCH_ATTEMPTS);
	assert_non_null(strstr(err, uri));
	assert_non_null(strstr(err, "(3 attempts)"));
	assert_empty(&id);
}

/* Nobody listening: connection refused, retried, then reported. */
static void test_fetch_connection_refused(void **state)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof(sa);
	ecs_identity_t id;
	char err[ECS_ERR_MAX];
	char uri[128];
	uint64_t start;
	int fd;

	(void)state;
	/* A port that was free a moment ago and has no listener. */
	assert_int_equal(inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr), 1);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	close(fd);
	snprintf(uri, sizeof(uri), "http://127.0.0.1:%u/v4/x", (unsigned)ntohs(sa.sin_port));
	start = uv_hrtime();
	assert_int_equal(ecs_identity_fetch(uri, 1000, &id, err, sizeof(err)), -ECONNREFUSED);
	assert_true(elapsed_ms(start) >= ECS_FETCH_RETRY_DELAY_MS * 3);
	assert_non_null(strstr(err, "(3 attempts)"));
	assert_empty(&id);
}

/* A body over 1 MiB is refused, with or without a Content-Length, and not retried. */
static void test_fetch_body_limit(void **state)
{
	size_t big = ECS_FETCH_MAX_BODY + 4096;
	char *body = malloc(big);
	server_t s = {.n_steps = 1};
	ecs_identity_t id;
	char err[ECS_ERR_MAX];
	char uri[128];
	int i;

	(void)state;
	assert_non_null(body);
	memset(body, ' ', big);
	for (i = 0; i < 2; i++) {
		s.steps[0] = (step_t){200, body, big, i == 1};
		server_start(&s);
		base_uri(&s, uri, sizeof(uri));
		assert_int_equal(ecs_identity_fetch(uri, 5000, &id, err, sizeof(err)), -EFBIG);
		server_stop(&s);
		assert_int_equal(s.requests, 1);
		assert_non_null(strstr(err, "the body exceeds 1048576 bytes"));
		assert_empty(&id);
	}
	free(body);
}

/* A bad document is not retried: the message names the field. */
static void test_fetch_invalid_document(void **state)
{
	server_t s = {.steps = {{200, "{\"Cluster\": \"default\"}", 0, false}}, .n_steps = 1};
	ecs_identity_t id;
	char err[ECS_ERR_MAX];
	char uri[128];
	char want[200];

	(void)state;
	server_start(&s);
	base_uri(&s, uri, sizeof(uri));
	assert_int_equal(ecs_identity_fetch(uri, 2000, &id, err, sizeof(err)), -EINVAL);
	server_stop(&s);
	assert_int_equal(s.requests, 1);
	snprintf(want, sizeof(want), "GET %s/task: TaskARN: required", uri);
	assert_string_equal(err, want);
	assert_empty(&id);
}

/* Only plain http URLs are used; nothing is contacted for the others. */
static void test_fetch_bad_base_uri(void **state)
{
	static const char *const bad[] = {
	    "", "http://", "https://127.0.0.1:1/v4/x", "file:///etc/passwd", "127.0.0.1:1/v4/x",
	};
	ecs_identity_t id;
	char err[ECS_ERR_MAX];
	size_t i;

	(void)state;
	assert_int_equal(ecs_identity_fetch(NULL, 100, &id, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "ECS_CONTAINER_METADATA_URI_V4: must be an http:// URL");
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_int_equal(ecs_identity_fetch(bad[i], 100, &id, err, sizeof(err)), -EINVAL);
		assert_string_equal(err, "ECS_CONTAINER_METADATA_URI_V4: must be an http:// URL");
		assert_empty(&id);
	}
}

/*
 * Inside ECS the daemon needs the task's identity: with a budget, an endpoint
 * that fails for longer than the three attempts is still waited for.
 */
static void test_fetch_for_waits_for_a_late_endpoint(void **state)
{
	fixture_t *fx = *state;
	server_t s = {.steps = {{503, "", 0, false},
	                        {503, "", 0, false},
	                        {503, "", 0, false},
	                        {200, fx->doc, fx->len, false}},
	              .n_steps = 4};
	ecs_identity_t id;
	char err[ECS_ERR_MAX];
	char uri[128];

	server_start(&s);
	base_uri(&s, uri, sizeof(uri));
	assert_int_equal(ecs_identity_fetch_for(uri, 2000, 10000, &id, err, sizeof(err)), 0);
	server_stop(&s);
	assert_int_equal(s.requests, 4);
	assert_example(&id);
	ecs_identity_dispose(&id);

	/* Without a budget, the same endpoint is given up on after three. */
	server_start(&s);
	base_uri(&s, uri, sizeof(uri));
	assert_int_equal(ecs_identity_fetch_for(uri, 2000, 0, &id, err, sizeof(err)), -EPROTO);
	server_stop(&s);
	assert_int_equal(s.requests, ECS_FETCH_ATTEMPTS);
	assert_empty(&id);
}

/* The budget bounds the wait: a failing endpoint is given up on, and the message says so. */
static void test_fetch_for_gives_up_at_the_budget(void **state)
{
	server_t s = {.steps = {{503, "", 0, false}}, .n_steps = 1};
	ecs_identity_t id;
	char err[ECS_ERR_MAX];
	char uri[128];
	uint64_t start, took;

	(void)state;
	server_start(&s);
	base_uri(&s, uri, sizeof(uri));
	start = uv_hrtime();
	assert_int_equal(ecs_identity_fetch_for(uri, 500, 1500, &id, err, sizeof(err)), -EPROTO);
	took = elapsed_ms(start);
	server_stop(&s);
	/* 200, 400 and 800 ms pauses fit in 1.5 s: a fourth attempt, and no pause past it. */
	assert_int_equal(s.requests, 4);
	if (took >= 1500 + 500)
		fail_msg("gave up after %llu ms, past the 1500 ms budget",
		         (unsigned long long)took);
	assert_non_null(strstr(err, "HTTP 503 (4 attempts in "));
	assert_non_null(strstr(err, uri));
	assert_empty(&id);
}

/* A wrong URI (404) or a bad document is not retried, whatever the budget. */
static void test_fetch_for_does_not_retry_what_will_not_pass(void **state)
{
	server_t s = {.steps = {{404, "not found", 9, false}}, .n_steps = 1};
	ecs_identity_t id;
	char err[ECS_ERR_MAX];
	char uri[128];

	(void)state;
	server_start(&s);
	base_uri(&s, uri, sizeof(uri));
	assert_int_equal(ecs_identity_fetch_for(uri, 2000, 10000, &id, err, sizeof(err)), -ENOENT);
	server_stop(&s);
	assert_int_equal(s.requests, 1);
	assert_non_null(strstr(err, "HTTP 404"));
	assert_empty(&id);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_copy_matches_shared_example),
	    cmocka_unit_test(test_parse_example_every_field),
	    cmocka_unit_test(test_parse_honours_length),
	    cmocka_unit_test(test_parse_cluster_name_or_arn),
	    cmocka_unit_test(test_parse_errors_name_the_field),
	    cmocka_unit_test(test_parse_cluster_name_length),
	    cmocka_unit_test(test_parse_document_errors),
	    cmocka_unit_test(test_parse_optional_fields),
	    cmocka_unit_test(test_parse_address_first_awsvpc_network),
	    cmocka_unit_test(test_default_identity),
	    cmocka_unit_test(test_override_each_field),
	    cmocka_unit_test(test_fetch_example),
	    cmocka_unit_test(test_fetch_404),
	    cmocka_unit_test(test_fetch_retries_5xx),
	    cmocka_unit_test(test_fetch_5xx_gives_up_after_three),
	    cmocka_unit_test(test_fetch_timeout),
	    cmocka_unit_test(test_fetch_connection_refused),
	    cmocka_unit_test(test_fetch_body_limit),
	    cmocka_unit_test(test_fetch_invalid_document),
	    cmocka_unit_test(test_fetch_bad_base_uri),
	    cmocka_unit_test(test_fetch_for_waits_for_a_late_endpoint),
	    cmocka_unit_test(test_fetch_for_gives_up_at_the_budget),
	    cmocka_unit_test(test_fetch_for_does_not_retry_what_will_not_pass),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
