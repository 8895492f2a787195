/*
 * http: the collector's two listeners on libh2o (HTTP/1.1 and HTTP/2, TLS when
 * configured) and their routes. h2o parses every request and buffers bodies
 * up to COLLECTOR_ENTITY_MAX; the report handler refuses those over
 * REPORT_MAX_BODY itself, with a JSON 413 that is counted. Nothing here parses
 * HTTP.
 *
 *   agents: POST /v1/reports, GET /v1/plan?role=R, GET /healthz
 *   admin:  GET /v1/matrix, GET /metrics, GET /, GET /healthz
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cJSON.h>
#include <openssl/crypto.h>
#include <openssl/err.h>

#include "collector.h"
#include "dashboard.h"
#include "sgprobe/report.h"
#include "sgprobe/timefmt.h"
#include "sgprobe/container.h"

/* The listener a request arrived on. */
static collector_listener_t *listener_of(h2o_req_t *req)
{
	return container_of(req->conn->ctx, collector_listener_t, ctx);
}

static void respond(h2o_req_t *req, int status, const char *reason, const char *type,
                    const char *body, size_t len)
{
	req->res.status = status;
	req->res.reason = reason;
	h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, type,
	               strlen(type));
	h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL,
	               H2O_STRLIT("no-store"));
	req->res.content_length = len;
	h2o_send_inline(req, body, len);
}

/* Answers a JSON document; takes ownership of `doc`. */
static void respond_json(h2o_req_t *req, int status, const char *reason, cJSON *doc)
{
	char *text = doc ? cJSON_PrintUnformatted(doc) : NULL;

	cJSON_Delete(doc);
	if (!text) {
		static const char oom[] = "{\"error\":\"out of memory\"}";

		respond(req, 500, "Internal Server Error", "application/json", oom,
		        sizeof(oom) - 1);
		return;
	}
	respond(req, status, reason, "application/json", text, strlen(text));
	free(text);
}

/* Answers {"error": message}: every refusal names what was wrong. */
static void respond_error(h2o_req_t *req, int status, const char *reason, const char *message)
{
	cJSON *doc = cJSON_CreateObject();

	if (doc)
		cJSON_AddStringToObject(doc, "error", message);
	respond_json(req, status, reason, doc);
}

static bool is(h2o_iovec_t v, const char *s)
{
	size_t n = strlen(s);

	return v.len == n && !memcmp(v.base, s, n);
}

/*
 * Finds query parameter `name` in the request's query and percent-decodes it
 * into `out`. Returns its length, or -1 when absent, too long or malformed.
 */
static int query_param(h2o_req_t *req, const char *name, char *out, size_t outlen)
{
	size_t nlen = strlen(name), i, o;
	const char *q, *end;

	if (req->query_at == SIZE_MAX)
		return -1;
	q = req->path.base + req->query_at + 1;
	end = req->path.base + req->path.len;
	while (q < end) {
		const char *amp = memchr(q, '&', (size_t)(end - q));
		const char *stop = amp ? amp : end;

		if ((size_t)(stop - q) > nlen && !memcmp(q, name, nlen) && q[nlen] == '=') {
			for (i = nlen + 1, o = 0; q + i < stop; i++) {
				unsigned int byte;
				char c = q[i];

				if (o + 1 >= outlen)
					return -1;
				if (c == '%') {
					/* Both hex digits must lie within the parameter: the
					 * path is not NUL-terminated. */
					int hi, lo;

					if (q + i + 2 >= stop)
						return -1;
					hi = OPENSSL_hexchar2int((unsigned char)q[i + 1]);
					lo = OPENSSL_hexchar2int((unsigned char)q[i + 2]);
					if (hi < 0 || lo < 0)
						return -1;
					byte = (unsigned)(hi << 4 | lo);
					c = (char)byte;
					i += 2;
				} else if (c == '+') {
					c = ' ';
				}
				out[o++] = c;
			}
			out[o] = '\0';
			return (int)o;
		}
		q = amp ? amp + 1 : end;
	}
	return -1;
}

static const char *header(h2o_req_t *req, const h2o_token_t *token, size_t *len)
{
	ssize_t i = h2o_find_header(&req->headers, token, -1);

	if (i < 0)
		return NULL;
	*len = req->headers.entries[i].value.len;
	return req->headers.entries[i].value.base;
}

/*
 * Verifies the signature; on refusal answers 401, counts it in `rejected`
 * and returns false.
 */
static bool authenticate(collector_t *c, h2o_req_t *req, const char *method, const char *role,
                         const auth_key_t **key, uint64_t *rejected)
{
	char *target = h2o_mem_alloc_pool(&req->pool, req->path.len + 1);
	const char *value;
	size_t vlen = 0;
	auth_result_t result;
	char msg[128];

	memcpy(target, req->path.base, req->path.len);
	target[req->path.len] = '\0';
	value = header(req, H2O_TOKEN_AUTHORIZATION, &vlen);
	result =
	    auth_verify(c->keys, value, vlen, method, target, req->entity.base,
	                req->entity.base ? req->entity.len : 0, role, (int64_t)time(NULL), key);
	if (result == AUTH_OK)
		return true;
	(*rejected)++;
	snprintf(msg, sizeof(msg), "unauthorized: %s", auth_result_message(result));
	respond_error(req, 401, "Unauthorized", msg);
	return false;
}

static void handle_report(collector_t *c, h2o_req_t *req)
{
	uint64_t t0 = uv_hrtime();
	const auth_key_t *key = NULL;
	char err[REPORT_ERR_MAX], msg[3 * REPORT_MAX_STRING];
	state_ingest_t out;
	bool too_large = false;
	report_t *r;
	cJSON *doc;
	int result;

	/* Checked before the signature: hashing a body that will be refused
	 * anyway is work an unauthenticated sender should not get for free. */
	if (req->entity.base && req->entity.len > REPORT_MAX_BODY) {
		c->reports_rejected[REJECT_TOO_LARGE]++;
		snprintf(msg, sizeof(msg), "body: %zu bytes exceeds the limit of %u bytes (1 MiB)",
		         req->entity.len, REPORT_MAX_BODY);
		respond_error(req, 413, "Payload Too Large", msg);
		return;
	}
	if (!authenticate(c, req, "POST", NULL, &key, &c->reports_rejected[REJECT_AUTH]))
		return;
	r = report_decode(req->entity.base ? req->entity.base : "",
	                  req->entity.base ? req->entity.len : 0, err, sizeof(err), &too_large);
	if (!r) {
		c->reports_rejected[too_large ? REJECT_TOO_LARGE : REJECT_MALFORMED]++;
		if (too_large)
			respond_error(req, 413, "Payload Too Large", err);
		else
			respond_error(req, 400, "Bad Request", err);
		return;
	}
	if (collector_check_report(c, key, r, msg, sizeof(msg))) {
		c->reports_rejected[REJECT_AUTH]++;
		report_free(r);
		respond_error(req, 401, "Unauthorized", msg);
		return;
	}
	result = state_ingest(c->state, r, uv_now(c->loop), timefmt_now_ms(), &out);
	report_free(r);
	if (result == -ENOSPC) {
		char ra[16];

		c->reports_rejected[REJECT_FULL]++;
		snprintf(ra, sizeof(ra), "%u", c->cfg.retry_after_s);
		h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, ra,
		               strlen(ra));
		respond_error(req, 429, "Too Many Requests",
		              "the collector's state is full; retry later");
		return;
	}
	if (result) {
		respond_error(req, 500, "Internal Server Error", "out of memory");
		return;
	}
	doc = cJSON_CreateObject();
	if (doc)
		cJSON_AddNumberToObject(doc, "accepted", (double)out.accepted);
	if (out.duplicate) {
		c->reports_duplicate++;
		if (doc)
			cJSON_AddBoolToObject(doc, "duplicate", true);
		respond_json(req, 200, "OK", doc);
	} else {
		c->reports_accepted++;
		c->observations_accepted += out.accepted;
		respond_json(req, 202, "Accepted", doc);
	}
	collector_observe_latency(c, (double)(uv_hrtime() - t0) / 1e9);
}

static void handle_plan(collector_t *c, h2o_req_t *req)
{
	char role[MATRIX_MAX_NAME + 1], msg[MATRIX_MAX_NAME + 64];
	const collector_plan_t *plan;
	const char *inm;
	size_t inm_len = 0;
	int len;

	len = query_param(req, "role", role, sizeof(role));
	if (len <= 0) {
		c->plans_rejected[PLAN_REJECT_MALFORMED]++;
		respond_error(req, 400, "Bad Request", "role: required query parameter");
		return;
	}
	if (!authenticate(c, req, "GET", role, NULL, &c->plans_rejected[PLAN_REJECT_AUTH]))
		return;
	plan = collector_plan(c, role, (size_t)len);
	if (!plan) {
		c->plans_rejected[PLAN_REJECT_UNKNOWN_ROLE]++;
		snprintf(msg, sizeof(msg), "role: '%s' is not in matrix '%s'", role,
		         c->matrix->name);
		respond_error(req, 404, "Not Found", msg);
		return;
	}
	c->plans_served++;
	h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ETAG, NULL, plan->etag,
	               strlen(plan->etag));
	inm = header(req, H2O_TOKEN_IF_NONE_MATCH, &inm_len);
	if (inm && inm_len == strlen(plan->etag) && !memcmp(inm, plan->etag, inm_len)) {
		req->res.status = 304;
		req->res.reason = "Not Modified";
		h2o_send_inline(req, "", 0);
		return;
	}
	respond(req, 200, "OK", "application/json", plan->body, plan->len);
}

static void handle_matrix(collector_t *c, h2o_req_t *req)
{
	respond_json(req, 200, "OK",
	             state_matrix_view(c->state, uv_now(c->loop), timefmt_now_ms()));
}

static void handle_metrics(collector_t *c, h2o_req_t *req)
{
	char *text = collector_metrics_text(c, uv_now(c->loop));

	if (!text) {
		respond_error(req, 500, "Internal Server Error", "out of memory");
		return;
	}
	respond(req, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", text, strlen(text));
	free(text);
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
	collector_listener_t *l = listener_of(req);
	collector_t *c = l->owner;
	h2o_iovec_t path = req->path_normalized;
	bool get = is(req->method, "GET") || is(req->method, "HEAD");
	bool post = is(req->method, "POST");

	(void)self;
	if (is(path, "/healthz") && get) {
		respond(req, 200, "OK", "application/json", H2O_STRLIT("{\"status\":\"ok\"}"));
	} else if (!l->admin && is(path, "/v1/reports")) {
		if (post)
			handle_report(c, req);
		else
			respond_error(req, 405, "Method Not Allowed", "/v1/reports takes POST");
	} else if (!l->admin && is(path, "/v1/plan")) {
		if (get)
			handle_plan(c, req);
		else
			respond_error(req, 405, "Method Not Allowed", "/v1/plan takes GET");
	} else if (l->admin && is(path, "/v1/matrix") && get) {
		handle_matrix(c, req);
	} else if (l->admin && is(path, "/metrics") && get) {
		handle_metrics(c, req);
	} else if (l->admin && is(path, "/") && get) {
		respond(req, 200, "OK", "text/html; charset=utf-8", dashboard_html,
		        dashboard_html_len);
	} else {
		respond_error(req, 404, "Not Found", "no such route");
	}
	return 0;
}

static void on_accept(uv_stream_t *server, int status)
{
	collector_listener_t *l = container_of((uv_tcp_t *)server, collector_listener_t, tcp);
	uv_tcp_t *conn;
	h2o_socket_t *sock;

	if (status != 0 || l->owner->stopping)
		return;
	conn = h2o_mem_alloc(sizeof(*conn));
	uv_tcp_init(server->loop, conn);
	if (uv_accept(server, (uv_stream_t *)conn) != 0) {
		uv_close((uv_handle_t *)conn, (uv_close_cb)free);
		return;
	}
	/* h2o owns the stream (and its data field) from here on. */
	sock = h2o_uv_socket_create((uv_stream_t *)conn, (uv_close_cb)free);
	h2o_accept(&l->accept_ctx, sock);
}

/* Splits "host:port" or "[v6]:port" into a socket address. */
static int parse_listen(const char *spec, struct sockaddr_storage *ss)
{
	char host[128];
	const char *colon = strrchr(spec, ':');
	char *end = NULL;
	unsigned long port;
	size_t hlen;

	if (!colon)
		return -EINVAL;
	port = strtoul(colon + 1, &end, 10);
	if (!colon[1] || *end || port > 65535)
		return -EINVAL;
	hlen = (size_t)(colon - spec);
	if (hlen >= 2 && spec[0] == '[' && spec[hlen - 1] == ']') {
		spec++;
		hlen -= 2;
	}
	if (hlen == 0 || hlen >= sizeof(host))
		return -EINVAL;
	memcpy(host, spec, hlen);
	host[hlen] = '\0';
	if (!uv_ip4_addr(host, (int)port, (struct sockaddr_in *)ss))
		return 0;
	if (!uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)ss))
		return 0;
	return -EINVAL;
}

static SSL_CTX *make_ssl(const char *cert, const char *key, char *err, size_t errlen)
{
	SSL_CTX *ssl = SSL_CTX_new(TLS_server_method());
	char buf[256];

	if (!ssl || SSL_CTX_use_certificate_chain_file(ssl, cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ssl, key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ssl) != 1) {
		ERR_error_string_n(ERR_get_error(), buf, sizeof(buf));
		snprintf(err, errlen, "TLS certificate %s / key %s: %s", cert, key, buf);
		SSL_CTX_free(ssl);
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ssl, TLS1_2_VERSION);
	h2o_ssl_register_alpn_protocols(ssl, h2o_http2_alpn_protocols);
	return ssl;
}

static int listener_start(collector_t *c, collector_listener_t *l, bool admin, const char *spec,
                          const char *cert, const char *key, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	h2o_hostconf_t *host;
	h2o_pathconf_t *path;
	h2o_handler_t *handler;
	int result;

	l->owner = c;
	l->admin = admin;
	if (parse_listen(spec, &ss)) {
		snprintf(err, errlen, "%s: '%s' is not ADDRESS:PORT",
		         admin ? "--admin-listen" : "--listen", spec);
		return -EINVAL;
	}
	if (cert || key) {
		if (!cert || !key) {
			snprintf(err, errlen,
			         "%s: a TLS certificate needs its key, and a key its "
			         "certificate",
			         admin ? "--admin-tls-cert/--admin-tls-key"
			               : "--tls-cert/--tls-key");
			return -EINVAL;
		}
		l->ssl = make_ssl(cert, key, err, errlen);
		if (!l->ssl)
			return -EINVAL;
	}
	h2o_config_init(&l->config);
	/* h2o refuses bodies above this before buffering them whole, in its own
	 * words (collector.h says how); the report handler refuses the ones
	 * between REPORT_MAX_BODY and this in ours. */
	l->config.max_request_entity_size = admin ? 4096 : COLLECTOR_ENTITY_MAX;
	host = h2o_config_register_host(&l->config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
	path = h2o_config_register_path(host, "/", 0);
	handler = h2o_create_handler(path, sizeof(*handler));
	handler->on_req = on_req;
	h2o_context_init(&l->ctx, c->loop, &l->config);
	l->accept_ctx.ctx = &l->ctx;
	l->accept_ctx.hosts = l->config.hosts;
	l->accept_ctx.ssl_ctx = l->ssl;

	uv_tcp_init(c->loop, &l->tcp);
	l->listening = true;
	result = uv_tcp_bind(&l->tcp, (struct sockaddr *)&ss, 0);
	if (!result)
		result = uv_listen((uv_stream_t *)&l->tcp, 1024, on_accept);
	if (result) {
		snprintf(err, errlen, "%s %s: %s", admin ? "--admin-listen" : "--listen", spec,
		         uv_strerror(result));
		return result;
	}
	return 0;
}

int collector_http_start(collector_t *c, char *err, size_t errlen)
{
	int result;

	result = listener_start(c, &c->agents, false, c->cfg.listen, c->cfg.tls_cert,
	                        c->cfg.tls_key, err, errlen);
	if (!result)
		result = listener_start(c, &c->admin, true, c->cfg.admin_listen,
		                        c->cfg.admin_tls_cert, c->cfg.admin_tls_key, err, errlen);
	return result;
}

void collector_http_close(collector_t *c)
{
	collector_listener_t *ls[2] = {&c->agents, &c->admin};
	int i;

	c->stopping = true;
	for (i = 0; i < 2; i++) {
		if (!ls[i]->listening)
			continue;
		ls[i]->listening = false;
		/* Open connections are told to finish what they have and close. The
		 * contexts stay: connections may still use them until the process
		 * exits. */
		h2o_context_request_shutdown(&ls[i]->ctx);
		uv_close((uv_handle_t *)&ls[i]->tcp, NULL);
	}
}
