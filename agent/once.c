/*
 * once: sgprobe-agent --once.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/err.h>

#include "once.h"
#include "probe.h"
#include "push.h"

typedef struct {
	bool done;
} once_state_t;

static void on_round_done(probe_run_t *run, void *arg)
{
	once_state_t *st = arg;

	(void)run;
	st->done = true;
}

static SSL_CTX *make_tls_ctx(const config_t *cfg)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	char buf[256];
	int ok;

	if (!ctx) {
		ERR_error_string_n(ERR_get_error(), buf, sizeof(buf));
		fprintf(stderr, "sgprobe-agent: cannot create a TLS context: %s\n", buf);
		return NULL;
	}
	if (cfg->probe_ca_file)
		ok = SSL_CTX_load_verify_locations(ctx, cfg->probe_ca_file, NULL);
	else
		ok = SSL_CTX_set_default_verify_paths(ctx);
	if (!ok) {
		ERR_error_string_n(ERR_get_error(), buf, sizeof(buf));
		fprintf(stderr, "sgprobe-agent: --probe-ca-file: cannot load %s: %s\n",
		        cfg->probe_ca_file ? cfg->probe_ca_file : "the system store", buf);
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

/* Judges every result (probe_judge()) into the output's rows and summary.
 * Returns 0 or -ENOMEM. */
static int judge(const matrix_plan_t *plan, const probe_result_t *res, size_t n, uint32_t fail_on,
                 output_row_t *rows, output_summary_t *sum)
{
	bool *alive = calloc(n ? n : 1, sizeof(*alive));
	verdict_t *verdicts = calloc(n ? n : 1, sizeof(*verdicts));
	size_t i;
	int result = -ENOMEM;

	if (!alive || !verdicts || probe_judge(plan, res, n, alive, verdicts))
		goto out;
	for (i = 0; i < n; i++) {
		rows[i].target = &plan->targets[res[i].target];
		rows[i].res = &res[i];
		rows[i].dst_alive = alive[i];
		rows[i].verdict = verdicts[i];
		rows[i].failing = (fail_on >> rows[i].verdict) & 1u;
		sum->counts[rows[i].verdict]++;
		sum->failing += rows[i].failing;
	}
	result = 0;
out:
	free(alive);
	free(verdicts);
	return result;
}

/* Writes the JSON document to `path` too: a pipeline keeps it as an artifact
 * while the log shows the table. */
static int write_json_file(const char *path, const output_row_t *rows, size_t n,
                           const output_summary_t *sum)
{
	FILE *f = fopen(path, "w");
	int result;

	if (!f) {
		fprintf(stderr, "sgprobe-agent: --json-file: cannot open %s: %s\n", path,
		        strerror(errno));
		return -errno;
	}
	result = output_write(f, OUTPUT_JSON, rows, n, sum, false);
	if (fclose(f) || result) {
		fprintf(stderr, "sgprobe-agent: --json-file: cannot write %s\n", path);
		return result ? result : -EIO;
	}
	return 0;
}

int once_run(const config_t *cfg, FILE *out)
{
	char err[MATRIX_ERR_MAX];
	matrix_t *m = NULL;
	matrix_plan_t *plan = NULL;
	SSL_CTX *tls = NULL;
	probe_run_t *run = NULL;
	output_row_t *rows = NULL;
	output_summary_t sum;
	once_state_t st = {false};
	probe_config_t pc;
	push_key_t key = {NULL, NULL, 0};
	const probe_result_t *res;
	uv_loop_t loop;
	uint64_t t0;
	size_t n, i;
	int status = ONCE_EXIT_USAGE;
	bool need_tls = false;

	if (!cfg->matrix || !cfg->role) {
		fprintf(stderr, "sgprobe-agent: --once needs --matrix FILE and --role ROLE\n");
		return ONCE_EXIT_USAGE;
	}
	/* A push that cannot be signed is a configuration error: found before
	 * a single probe is sent. */
	if (cfg->push) {
		char kerr[PUSH_ERR_MAX];

		if (push_key_load(cfg, &key, kerr, sizeof(kerr))) {
			fprintf(stderr, "sgprobe-agent: %s\n", kerr);
			return ONCE_EXIT_USAGE;
		}
	}
	m = matrix_load(cfg->matrix, err, sizeof(err));
	if (!m) {
		fprintf(stderr, "sgprobe-agent: %s\n", err);
		goto out;
	}
	plan = matrix_plan_for_role(m, cfg->role, cfg->agent_address, err, sizeof(err));
	if (!plan) {
		fprintf(stderr, "sgprobe-agent: --role: %s\n", err);
		goto out;
	}
	memset(&sum, 0, sizeof(sum));
	sum.role = plan->role;
	sum.matrix = plan->matrix;
	for (i = 0; i < plan->n_targets; i++) {
		need_tls |= plan->targets[i].probe && plan->targets[i].tls;
		sum.not_probed += !plan->targets[i].probe;
	}
	if (need_tls || cfg->probe_ca_file) {
		tls = make_tls_ctx(cfg);
		if (!tls)
			goto out;
	}

	/* From here on a failure is the run's, not the configuration's: exit 1. */
	status = ONCE_EXIT_FAIL;
	memset(&pc, 0, sizeof(pc));
	pc.timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : plan->timeout_ms;
	pc.concurrency = cfg->concurrency;
	pc.rate = cfg->rate;
	pc.per_host = cfg->per_host;
	pc.own_address = cfg->agent_address;
	pc.tls_ctx = tls;

	if (uv_loop_init(&loop)) {
		fprintf(stderr, "sgprobe-agent: cannot start the event loop\n");
		goto out;
	}
	t0 = uv_hrtime();
	run = probe_run_start(&loop, &pc, plan, on_round_done, &st);
	if (!run) {
		fprintf(stderr, "sgprobe-agent: cannot start the probes: out of memory\n");
		uv_loop_close(&loop);
		goto out;
	}
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
	sum.elapsed_s = (double)(uv_hrtime() - t0) / 1e9;
	if (!st.done) {
		fprintf(stderr, "sgprobe-agent: the probe round did not finish\n");
		goto out;
	}

	res = probe_run_results(run, &n);
	rows = calloc(n ? n : 1, sizeof(*rows));
	if (!rows) {
		fprintf(stderr, "sgprobe-agent: out of memory\n");
		goto out;
	}
	if (judge(plan, res, n, cfg->fail_on, rows, &sum)) {
		fprintf(stderr, "sgprobe-agent: out of memory\n");
		goto out;
	}
	if (output_write(out, cfg->format, rows, n, &sum,
	                 cfg->format == OUTPUT_TABLE && out == stdout && isatty(STDOUT_FILENO))) {
		fprintf(stderr, "sgprobe-agent: cannot write the results\n");
		goto out;
	}
	fflush(out);
	if (cfg->json_file && write_json_file(cfg->json_file, rows, n, &sum))
		goto out;
	status = sum.failing ? ONCE_EXIT_FAIL : ONCE_EXIT_PASS;
	if (cfg->push) {
		char perr[PUSH_ERR_MAX];
		int sent;

		CURLcode result = curl_global_init(CURL_GLOBAL_DEFAULT);

		if (result == CURLE_OK) {
			sent = push_once(cfg, &key, plan, res, n, (uint64_t)(sum.elapsed_s * 1000),
			                 perr, sizeof(perr));
		} else {
			snprintf(perr, sizeof(perr), "--push: %s", curl_easy_strerror(result));
			sent = -1;
		}
		curl_global_cleanup();
		if (sent < 0) {
			/* The smoke test did not do all it was asked: it fails. */
			fprintf(stderr, "sgprobe-agent: %s\n", perr);
			status = ONCE_EXIT_FAIL;
		} else {
			fprintf(stderr, "sgprobe-agent: pushed %d report%s to %s\n", sent,
			        sent == 1 ? "" : "s", cfg->push);
		}
	}
out:
	push_key_dispose(&key);
	free(rows);
	probe_run_free(run);
	SSL_CTX_free(tls);
	matrix_plan_free(plan);
	matrix_free(m);
	return status;
}
