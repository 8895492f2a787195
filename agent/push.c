/*
 * push: the smoke test's reports to a collector, signed, over libcurl.
 *
 * A one-shot run sends its reports with libcurl's easy interface, one after the
 * other: there is nothing else for the process to do meanwhile. (The daemon's
 * pipeline drives libcurl's multi interface from the event loop instead.)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cJSON.h>
#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "push.h"
#include "sgprobe/auth.h"
#include "sgprobe/curluv.h"
#include "sgprobe/fileio.h"
#include "sgprobe/report.h"
#include "sgprobe/timefmt.h"

/* The collector's answer is kept for the error message, up to this. */
#define ANSWER_MAX 1023

int push_key_load(const config_t *cfg, push_key_t *key, char *err, size_t errlen)
{
	/* The flag that needs the key, for the messages. */
	const char *who = cfg->push ? "--push" : "--collector";
	char *text = NULL;
	const char *secret;
	size_t len = 0, file_len = 0;
	int result;

	memset(key, 0, sizeof(*key));
	if (!cfg->key_id) {
		snprintf(err, errlen, "%s needs --key-id (or SGPROBE_KEY_ID)", who);
		return -EINVAL;
	}
	if (cfg->key) {
		secret = cfg->key;
		len = strlen(cfg->key);
		if (len > PUSH_KEY_MAX) {
			snprintf(err, errlen, "SGPROBE_KEY: longer than %d bytes", PUSH_KEY_MAX);
			return -EINVAL;
		}
	} else if (cfg->key_file) {
		result = fileio_read(cfg->key_file, PUSH_KEY_MAX, &text, &file_len);
		if (result == -EFBIG) {
			snprintf(err, errlen, "--key-file: %s is longer than %d bytes",
			         cfg->key_file, PUSH_KEY_MAX);
			return -EINVAL;
		}
		if (result) {
			snprintf(err, errlen, "--key-file: cannot open %s: %s", cfg->key_file,
			         strerror(-result));
			return -EINVAL;
		}
		secret = text;
		len = file_len;
		/* As the keys file's secret_file: one trailing newline is not secret. */
		if (len > 0 && secret[len - 1] == '\n')
			len--;
		if (len > 0 && secret[len - 1] == '\r')
			len--;
	} else {
		snprintf(err, errlen, "%s needs --key-file FILE or SGPROBE_KEY", who);
		return -EINVAL;
	}
	result = 0;
	if (len == 0) {
		snprintf(err, errlen, "%s: the secret is empty",
		         cfg->key ? "SGPROBE_KEY" : "--key-file");
		result = -EINVAL;
		goto out;
	}
	key->id = strdup(cfg->key_id);
	key->secret = malloc(len);
	if (!key->id || !key->secret) {
		push_key_dispose(key);
		snprintf(err, errlen, "out of memory");
		result = -ENOMEM;
		goto out;
	}
	memcpy(key->secret, secret, len);
	key->secret_len = len;
out:
	fileio_free(text, file_len);
	return result;
}

void push_key_dispose(push_key_t *key)
{
	if (key->secret)
		OPENSSL_cleanse(key->secret, key->secret_len);
	free(key->secret);
	free(key->id);
	memset(key, 0, sizeof(*key));
}

/* Fills the report's header fields (everything but results and seq). */
static int fill_header(report_t *r, const config_t *cfg, const matrix_plan_t *plan,
                       const char *boot, uint64_t round_ms)
{
	char host[256], id[512], now[32];
	int result = 0;

	if (cfg->agent_id) {
		snprintf(id, sizeof(id), "%s", cfg->agent_id);
	} else {
		if (gethostname(host, sizeof(host)))
			snprintf(host, sizeof(host), "unknown");
		host[sizeof(host) - 1] = '\0';
		snprintf(id, sizeof(id), "%s/%s", host, plan->role);
	}
	result |= report_set_string(&r->agent.id, id);
	result |= report_set_string(&r->agent.role, plan->role);
	result |= report_set_string(&r->agent.cluster, cfg->cluster ? cfg->cluster : "default");
	result |= report_set_string(&r->agent.address, cfg->agent_address);
	result |= report_set_string(&r->agent.version, PUSH_VERSION);
	result |= report_set_string(&r->agent.boot, boot);
	result |=
	    report_set_string(&r->sent_at, report_format_time(timefmt_now_ms(), now, sizeof(now)));
	r->mode = REPORT_MODE_ONCE;
	r->interval_s = plan->interval_s ? plan->interval_s : 60;
	r->round_ms = round_ms;
	r->final = false;
	return result ? -ENOMEM : 0;
}

int push_add_result(report_t *r, const matrix_plan_t *plan, const probe_result_t *pr)
{
	const matrix_target_t *t = &plan->targets[pr->target];
	char at[32], detail[PROBE_DETAIL_MAX + 32];
	report_result_t rr;

	memset(&rr, 0, sizeof(rr));
	rr.dst_role = t->dst_role;
	rr.target = t->target;
	rr.address = pr->address[0] ? (char *)pr->address : NULL;
	rr.port = t->port;
	rr.expected = t->expected;
	rr.state = pr->state;
	rr.latency_us = pr->latency_us;
	rr.at = report_format_time(pr->at_ms, at, sizeof(at));
	if (pr->tls == VERDICT_TLS_FAIL) {
		snprintf(detail, sizeof(detail), "tls handshake failed: %s", pr->detail);
		rr.detail = detail;
	} else {
		rr.detail = pr->detail[0] ? (char *)pr->detail : NULL;
	}
	if (pr->tls != VERDICT_TLS_NONE) {
		rr.tls.present = true;
		rr.tls.ok = pr->tls == VERDICT_TLS_OK;
		rr.tls.error = pr->tls == VERDICT_TLS_FAIL ? (char *)pr->detail : NULL;
		rr.tls.has_expiry = pr->tls_has_expiry;
		rr.tls.expires_in_days = pr->tls_expires_in_days;
	}
	return report_add_result(r, &rr);
}

/* The request target the signature covers: the URL's path and query. */
static int url_target(const char *url, char *out, size_t outlen)
{
	CURLU *u = curl_url();
	char *path = NULL, *query = NULL;
	int result = -EINVAL;

	if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_PATH, &path, 0) == CURLUE_OK) {
		if (curl_url_get(u, CURLUPART_QUERY, &query, 0) != CURLUE_OK)
			query = NULL;
		if ((size_t)snprintf(out, outlen, "%s%s%s", path, query ? "?" : "",
		                     query ? query : "") < outlen)
			result = 0;
	}
	curl_free(path);
	curl_free(query);
	curl_url_cleanup(u);
	return result;
}

/* Posts one encoded report. Returns 0 on 200/202, or -EIO with `err` set. */
static int post(CURL *curl, const config_t *cfg, const push_key_t *key, const char *target,
                const char *body, size_t len, char *err, size_t errlen)
{
	char auth[512], hdr[600];
	struct curl_slist *headers = NULL;
	curluv_body_t answer = {.max = ANSWER_MAX, .truncate = true};
	long status = 0;
	CURLcode result;
	int rc = 0;

	if (auth_header(key->id, key->secret, key->secret_len, "POST", target, (int64_t)time(NULL),
	                body, len, auth, sizeof(auth))) {
		snprintf(err, errlen, "cannot sign the report");
		return -EIO;
	}
	snprintf(hdr, sizeof(hdr), "Authorization: %s", auth);
	headers = curl_slist_append(headers, hdr);
	headers = curl_slist_append(headers, "Content-Type: application/json");
	headers = curl_slist_append(headers, "Expect:");
	curl_easy_setopt(curl, CURLOPT_URL, cfg->push);
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, curluv_body_write);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, &answer);
	result = curl_easy_perform(curl);
	if (result == CURLE_OK)
		curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
	curl_slist_free_all(headers);
	if (result != CURLE_OK) {
		snprintf(err, errlen, "--push %s: %s", cfg->push, curl_easy_strerror(result));
		rc = -EIO;
	} else if (status != 200 && status != 202) {
		snprintf(err, errlen, "--push %s: the collector answered %ld: %s", cfg->push,
		         status, curluv_body_str(&answer));
		rc = -EIO;
	}
	curluv_body_dispose(&answer);
	return rc;
}

int push_once(const config_t *cfg, const push_key_t *key, const matrix_plan_t *plan,
              const probe_result_t *res, size_t n, uint64_t round_ms, char *err, size_t errlen)
{
	unsigned char rnd[8];
	char boot[17], target[2048];
	size_t done = 0, chunk = REPORT_MAX_RESULTS, i;
	uint64_t seq = 0;
	int sent = 0, result = 0;
	CURL *curl;

	if (url_target(cfg->push, target, sizeof(target))) {
		snprintf(err, errlen, "--push: '%s' is not a valid URL", cfg->push);
		return -EINVAL;
	}
	/* A boot id per run: the collector keeps the highest seq per (id, boot). */
	if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
		snprintf(err, errlen, "no randomness for the boot id");
		return -EIO;
	}
	for (i = 0; i < sizeof(rnd); i++)
		snprintf(boot + 2 * i, 3, "%02x", rnd[i]);
	curl = curl_easy_init();
	if (!curl) {
		snprintf(err, errlen, "cannot start libcurl");
		return -ENOMEM;
	}
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 15000L);
	curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
	if (cfg->ca_file)
		curl_easy_setopt(curl, CURLOPT_CAINFO, cfg->ca_file);
	/* Even an empty run is reported: the collector learns the agent exists. */
	while (!result && (done < n || seq == 0)) {
		size_t take = n - done < chunk ? n - done : chunk;
		report_t *r = report_new();
		char *body = NULL;

		result = r ? fill_header(r, cfg, plan, boot, round_ms) : -ENOMEM;
		for (i = 0; !result && i < take; i++)
			result = push_add_result(r, plan, &res[done + i]);
		if (!result) {
			r->seq = seq + 1;
			body = report_encode(r);
			if (!body)
				result = -ENOMEM;
		}
		if (!result && strlen(body) > REPORT_MAX_BODY && take > 1) {
			/* Too big for the collector: the same results in smaller reports. */
			chunk = take / 2;
			free(body);
			report_free(r);
			continue;
		}
		if (!result)
			result = post(curl, cfg, key, target, body, strlen(body), err, errlen);
		if (result == -ENOMEM)
			snprintf(err, errlen, "out of memory");
		free(body);
		report_free(r);
		if (!result) {
			seq++;
			done += take;
			sent++;
		}
	}
	curl_easy_cleanup(curl);
	return result ? result : sent;
}
