/*
 * sgprobe-collector: takes the agents' reports, judges them against the intended
 * matrix, and shows the result. Also the matrix tools for the people who edit
 * the matrix in a pull request.
 *
 *   sgprobe-collector [serve] --matrix FILE --keys FILE [options]
 *   sgprobe-collector check-matrix FILE
 *   sgprobe-collector plan --matrix FILE --role ROLE
 *   sgprobe-collector health [--admin-listen ADDR:PORT]
 *   sgprobe-collector import-sg --groups FILE --roles MAP [--name NAME] [--output FILE]
 *   sgprobe-collector diff-matrix A B
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "collector.h"
#include "importsg.h"
#include "signreq.h"
#include "sgprobe/plan.h"
#include "sgprobe/timefmt.h"
#include "sgprobe/container.h"

#define EXIT_USAGE 2

/* How long the last flush may take to reach CloudWatch at a stop (ECS gives 30 s). */
#define PUBLISH_STOP_DEADLINE_MS 5000

enum {
	OPT_LISTEN = 256,
	OPT_ADMIN_LISTEN,
	OPT_MATRIX,
	OPT_KEYS,
	OPT_TLS_CERT,
	OPT_TLS_KEY,
	OPT_ADMIN_TLS_CERT,
	OPT_ADMIN_TLS_KEY,
	OPT_RETENTION_S,
	OPT_MAX_AGENTS,
	OPT_MAX_OBSERVATIONS,
	OPT_ROLE,
	OPT_METRICS_SINK,
	OPT_NAMESPACE,
	OPT_REGION,
	OPT_CLOUDWATCH_ENDPOINT,
	OPT_FLUSH_INTERVAL,
	OPT_METRICS_BUFFER,
	OPT_CA_FILE,
	OPT_CREDENTIALS_MARGIN,
	OPT_ECS_CREDENTIALS_HOST,
	OPT_IMDS_ENDPOINT,
	OPT_HELP,
	OPT_END
};

static const struct option options[] = {
    {"listen", required_argument, NULL, OPT_LISTEN},
    {"admin-listen", required_argument, NULL, OPT_ADMIN_LISTEN},
    {"matrix", required_argument, NULL, OPT_MATRIX},
    {"keys", required_argument, NULL, OPT_KEYS},
    {"tls-cert", required_argument, NULL, OPT_TLS_CERT},
    {"tls-key", required_argument, NULL, OPT_TLS_KEY},
    {"admin-tls-cert", required_argument, NULL, OPT_ADMIN_TLS_CERT},
    {"admin-tls-key", required_argument, NULL, OPT_ADMIN_TLS_KEY},
    {"retention-s", required_argument, NULL, OPT_RETENTION_S},
    {"max-agents", required_argument, NULL, OPT_MAX_AGENTS},
    {"max-observations", required_argument, NULL, OPT_MAX_OBSERVATIONS},
    {"role", required_argument, NULL, OPT_ROLE},
    {"metrics-sink", required_argument, NULL, OPT_METRICS_SINK},
    {"namespace", required_argument, NULL, OPT_NAMESPACE},
    {"region", required_argument, NULL, OPT_REGION},
    {"cloudwatch-endpoint", required_argument, NULL, OPT_CLOUDWATCH_ENDPOINT},
    {"flush-interval", required_argument, NULL, OPT_FLUSH_INTERVAL},
    {"metrics-buffer", required_argument, NULL, OPT_METRICS_BUFFER},
    {"ca-file", required_argument, NULL, OPT_CA_FILE},
    {"credentials-refresh-margin-s", required_argument, NULL, OPT_CREDENTIALS_MARGIN},
    {"ecs-credentials-host", required_argument, NULL, OPT_ECS_CREDENTIALS_HOST},
    {"imds-endpoint", required_argument, NULL, OPT_IMDS_ENDPOINT},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

/* The environment variable of each option, in the enum's order. */
static const char *const env_names[OPT_END - OPT_LISTEN] = {
    "SGPROBE_LISTEN",
    "SGPROBE_ADMIN_LISTEN",
    "SGPROBE_MATRIX",
    "SGPROBE_KEYS",
    "SGPROBE_TLS_CERT",
    "SGPROBE_TLS_KEY",
    "SGPROBE_ADMIN_TLS_CERT",
    "SGPROBE_ADMIN_TLS_KEY",
    "SGPROBE_RETENTION_S",
    "SGPROBE_MAX_AGENTS",
    "SGPROBE_MAX_OBSERVATIONS",
    "SGPROBE_ROLE",
    "SGPROBE_METRICS_SINK",
    "SGPROBE_NAMESPACE",
    "SGPROBE_REGION",
    "SGPROBE_CLOUDWATCH_ENDPOINT",
    "SGPROBE_FLUSH_INTERVAL",
    "SGPROBE_METRICS_BUFFER",
    "SGPROBE_CA_FILE",
    "SGPROBE_CREDENTIALS_REFRESH_MARGIN_S",
    "SGPROBE_ECS_CREDENTIALS_HOST",
    "SGPROBE_IMDS_ENDPOINT",
    NULL,
};

typedef struct {
	collector_config_t cfg;
	const char *role;
	bool help;
} args_t;

static void usage(FILE *f)
{
	fputs(
	    "usage: sgprobe-collector [serve] --matrix FILE --keys FILE [options]\n"
	    "       sgprobe-collector check-matrix FILE\n"
	    "       sgprobe-collector plan --matrix FILE --role ROLE\n"
	    "       sgprobe-collector health [--admin-listen ADDR:PORT]\n"
	    "       sgprobe-collector sign-request --region R --service S [--date D] < REQUEST\n"
	    "       sgprobe-collector import-sg --groups FILE --roles MAP [--name NAME]\n"
	    "                         [--output FILE]\n"
	    "       sgprobe-collector diff-matrix A B\n"
	    "\n"
	    "  --matrix FILE            the intended matrix (SGPROBE_MATRIX)\n"
	    "  --keys FILE              the agents' keys (SGPROBE_KEYS)\n"
	    "  --listen ADDR:PORT       agents' listener; default 0.0.0.0:9443 (SGPROBE_LISTEN)\n"
	    "  --admin-listen ADDR:PORT dashboard, matrix, metrics; default 127.0.0.1:9090\n"
	    "                           (SGPROBE_ADMIN_LISTEN)\n"
	    "  --tls-cert FILE, --tls-key FILE\n"
	    "                           TLS on the agents' listener (SGPROBE_TLS_CERT, _KEY)\n"
	    "  --admin-tls-cert FILE, --admin-tls-key FILE\n"
	    "                           TLS on the admin listener (SGPROBE_ADMIN_TLS_CERT, _KEY)\n"
	    "  --retention-s N          forget a silent agent after N s; default 3600\n"
	    "                           (SGPROBE_RETENTION_S)\n"
	    "  --max-agents N           default 20000 (SGPROBE_MAX_AGENTS)\n"
	    "  --max-observations N     default 2000000 (SGPROBE_MAX_OBSERVATIONS)\n"
	    "\n"
	    "Metrics (docs/metrics.md):\n"
	    "  --metrics-sink S         cloudwatch, emf (lines on stdout) or none; default none\n"
	    "                           (SGPROBE_METRICS_SINK)\n"
	    "  --namespace NS           default SGProbe (SGPROBE_NAMESPACE)\n"
	    "  --region R               CloudWatch's region (SGPROBE_REGION, else AWS_REGION,\n"
	    "                           AWS_DEFAULT_REGION)\n"
	    "  --cloudwatch-endpoint URL  default https://monitoring.R.amazonaws.com/\n"
	    "                           (SGPROBE_CLOUDWATCH_ENDPOINT)\n"
	    "  --flush-interval N       seconds between flushes; default 60 "
	    "(SGPROBE_FLUSH_INTERVAL)\n"
	    "  --metrics-buffer N       metric values held while CloudWatch is away; default\n"
	    "                           100000 (SGPROBE_METRICS_BUFFER)\n"
	    "  --ca-file FILE           CA bundle for the CloudWatch endpoint (SGPROBE_CA_FILE)\n"
	    "  --credentials-refresh-margin-s N  refresh AWS credentials N s before they\n"
	    "                           expire; default 300 "
	    "(SGPROBE_CREDENTIALS_REFRESH_MARGIN_S)\n"
	    "  --ecs-credentials-host H[:P]  default 169.254.170.2 (SGPROBE_ECS_CREDENTIALS_HOST)\n"
	    "  --imds-endpoint URL      default http://169.254.169.254 (SGPROBE_IMDS_ENDPOINT)\n"
	    "\n"
	    "SIGHUP reloads the matrix and the keys (the old ones stay if the new ones are\n"
	    "invalid); SIGTERM and SIGINT stop accepting, finish, and exit 0.\n",
	    f);
}

static int parse_count(const char *flag, const char *s, unsigned long long max,
                       unsigned long long *out)
{
	char *end = NULL;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (!*s || *s == '-' || *s == '+' || errno || *end || v < 1 || v > max) {
		fprintf(stderr, "sgprobe-collector: --%s: '%s' is not an integer in 1-%llu\n", flag,
		        s, max);
		return -EINVAL;
	}
	*out = v;
	return 0;
}

static int apply(args_t *a, int opt, const char *val)
{
	const char *flag = options[opt - OPT_LISTEN].name;
	unsigned long long v;

	switch (opt) {
	case OPT_LISTEN:
		a->cfg.listen = val;
		return 0;
	case OPT_ADMIN_LISTEN:
		a->cfg.admin_listen = val;
		return 0;
	case OPT_MATRIX:
		a->cfg.matrix_path = val;
		return 0;
	case OPT_KEYS:
		a->cfg.keys_path = val;
		return 0;
	case OPT_TLS_CERT:
		a->cfg.tls_cert = val;
		return 0;
	case OPT_TLS_KEY:
		a->cfg.tls_key = val;
		return 0;
	case OPT_ADMIN_TLS_CERT:
		a->cfg.admin_tls_cert = val;
		return 0;
	case OPT_ADMIN_TLS_KEY:
		a->cfg.admin_tls_key = val;
		return 0;
	case OPT_RETENTION_S:
		if (parse_count(flag, val, 30ull * 86400, &v))
			return -EINVAL;
		a->cfg.limits.retention_ms = v * 1000;
		return 0;
	case OPT_MAX_AGENTS:
		if (parse_count(flag, val, 10000000, &v))
			return -EINVAL;
		a->cfg.limits.max_agents = (size_t)v;
		return 0;
	case OPT_MAX_OBSERVATIONS:
		if (parse_count(flag, val, 1000000000, &v))
			return -EINVAL;
		a->cfg.limits.max_observations = (size_t)v;
		return 0;
	case OPT_ROLE:
		a->role = val;
		return 0;
	case OPT_METRICS_SINK:
		if (publisher_sink_parse(val, &a->cfg.publish.sink)) {
			fprintf(stderr,
			        "sgprobe-collector: --metrics-sink: '%s' is not cloudwatch, emf or "
			        "none\n",
			        val);
			return -EINVAL;
		}
		return 0;
	case OPT_NAMESPACE:
		a->cfg.publish.ns = val;
		return 0;
	case OPT_REGION:
		a->cfg.publish.region = val;
		return 0;
	case OPT_CLOUDWATCH_ENDPOINT:
		a->cfg.publish.endpoint = val;
		return 0;
	case OPT_FLUSH_INTERVAL:
		if (parse_count(flag, val, 86400, &v))
			return -EINVAL;
		a->cfg.publish.flush_interval_s = (unsigned)v;
		return 0;
	case OPT_METRICS_BUFFER:
		if (parse_count(flag, val, 100000000, &v))
			return -EINVAL;
		a->cfg.publish.max_buffered = (size_t)v;
		return 0;
	case OPT_CA_FILE:
		a->cfg.publish.ca_file = val;
		return 0;
	case OPT_CREDENTIALS_MARGIN:
		if (parse_count(flag, val, 43200, &v))
			return -EINVAL;
		a->cfg.publish.creds.refresh_margin_s = (unsigned)v;
		return 0;
	case OPT_ECS_CREDENTIALS_HOST:
		a->cfg.publish.creds.ecs_host = val;
		return 0;
	case OPT_IMDS_ENDPOINT:
		a->cfg.publish.creds.imds_endpoint = val;
		return 0;
	case OPT_HELP:
		a->help = true;
		return 0;
	}
	return -EINVAL;
}

/* The environment first, then the flags, which win. */
static int parse_args(args_t *a, int argc, char **argv)
{
	int opt, i;

	memset(a, 0, sizeof(*a));
	a->cfg.listen = "0.0.0.0:9443";
	a->cfg.admin_listen = "127.0.0.1:9090";
	a->cfg.limits.max_agents = 20000;
	a->cfg.limits.max_observations = 2000000;
	a->cfg.limits.retention_ms = 3600u * 1000u;
	a->cfg.retry_after_s = 30;
	/* The AWS SDKs' region variables, below SGPROBE_REGION and --region. */
	a->cfg.publish.region = getenv("AWS_REGION");
	if (!a->cfg.publish.region || !*a->cfg.publish.region)
		a->cfg.publish.region = getenv("AWS_DEFAULT_REGION");
	for (i = 0; env_names[i]; i++) {
		const char *val = getenv(env_names[i]);

		if (val && *val && apply(a, OPT_LISTEN + i, val)) {
			fprintf(stderr, "sgprobe-collector: (from %s)\n", env_names[i]);
			return -EINVAL;
		}
	}
	optind = 0;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
		if (opt == '?' || opt == ':') {
			fprintf(stderr, "sgprobe-collector: unknown option or missing value: %s\n",
			        argv[optind - 1]);
			return -EINVAL;
		}
		if (apply(a, opt, optarg))
			return -EINVAL;
	}
	if (optind < argc) {
		fprintf(stderr, "sgprobe-collector: unexpected argument: %s\n", argv[optind]);
		return -EINVAL;
	}
	return 0;
}

/* check-matrix FILE: 0 when valid (every role's plan can be derived), 2 otherwise. */
static int cmd_check_matrix(int argc, char **argv)
{
	char err[MATRIX_ERR_MAX];
	size_t i, agents = 0;
	matrix_t *m;

	if (argc != 2) {
		fprintf(stderr, "usage: sgprobe-collector check-matrix FILE\n");
		return EXIT_USAGE;
	}
	m = matrix_load(argv[1], err, sizeof(err));
	if (!m) {
		fprintf(stderr, "sgprobe-collector: %s\n", err);
		return EXIT_USAGE;
	}
	for (i = 0; i < m->n_roles; i++) {
		matrix_plan_t *p =
		    matrix_plan_for_role(m, m->roles[i].name, NULL, err, sizeof(err));

		if (!p) {
			fprintf(stderr, "sgprobe-collector: %s: %s\n", argv[1], err);
			matrix_free(m);
			return EXIT_USAGE;
		}
		matrix_plan_free(p);
		agents += m->roles[i].agent;
	}
	printf("%s: matrix '%s' is valid: %zu roles (%zu with agents), %zu allow rules\n", argv[1],
	       m->name, m->n_roles, agents, m->n_rules);
	matrix_free(m);
	return 0;
}

/* plan --matrix FILE --role ROLE: the plan document the collector would serve. */
static int cmd_plan(int argc, char **argv)
{
	char err[MATRIX_ERR_MAX];
	matrix_plan_t *p;
	matrix_t *m;
	char *text;
	args_t a;

	if (parse_args(&a, argc, argv))
		return EXIT_USAGE;
	if (!a.cfg.matrix_path || !a.role) {
		fprintf(stderr, "usage: sgprobe-collector plan --matrix FILE --role ROLE\n");
		return EXIT_USAGE;
	}
	m = matrix_load(a.cfg.matrix_path, err, sizeof(err));
	if (!m) {
		fprintf(stderr, "sgprobe-collector: %s\n", err);
		return EXIT_USAGE;
	}
	p = matrix_plan_for_role(m, a.role, NULL, err, sizeof(err));
	matrix_free(m);
	if (!p) {
		fprintf(stderr, "sgprobe-collector: --role: %s\n", err);
		return EXIT_USAGE;
	}
	text = plan_encode(p);
	matrix_plan_free(p);
	if (!text) {
		fprintf(stderr, "sgprobe-collector: out of memory\n");
		return 1;
	}
	printf("%s\n", text);
	free(text);
	return 0;
}

static size_t discard(char *ptr, size_t size, size_t n, void *arg)
{
	(void)ptr;
	(void)arg;
	return size * n;
}

/* health: asks the admin listener's /healthz; exit 0 when it answers 200. */
static int cmd_health(int argc, char **argv)
{
	char url[300];
	long status = 0;
	CURLcode result;
	CURL *curl;
	args_t a;

	if (parse_args(&a, argc, argv))
		return EXIT_USAGE;
	/* A wildcard listener is reached on loopback. */
	if (!strncmp(a.cfg.admin_listen, "0.0.0.0:", 8))
		snprintf(url, sizeof(url), "http%s://127.0.0.1:%s/healthz",
		         a.cfg.admin_tls_cert ? "s" : "", a.cfg.admin_listen + 8);
	else
		snprintf(url, sizeof(url), "http%s://%s/healthz", a.cfg.admin_tls_cert ? "s" : "",
		         a.cfg.admin_listen);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	curl = curl_easy_init();
	if (!curl) {
		curl_global_cleanup();
		return 1;
	}
	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 3000L);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	/* A self-signed admin certificate must not fail the local health check. */
	curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 0L);
	curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 0L);
	result = curl_easy_perform(curl);
	if (result == CURLE_OK)
		curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(curl);
	curl_global_cleanup();
	if (result != CURLE_OK) {
		fprintf(stderr, "sgprobe-collector: health: %s: %s\n", url,
		        curl_easy_strerror(result));
		return 1;
	}
	if (status != 200) {
		fprintf(stderr, "sgprobe-collector: health: %s answered %ld\n", url, status);
		return 1;
	}
	return 0;
}

static void on_expire(uv_timer_t *t)
{
	collector_t *c = container_of(t, collector_t, expire_timer);

	state_expire(c->state, uv_now(c->loop));
}

static void on_sighup(uv_signal_t *s, int signum)
{
	collector_t *c = container_of(s, collector_t, sighup);
	char err[COLLECTOR_ERR_MAX];

	(void)signum;
	if (collector_reload(c, err, sizeof(err)))
		fprintf(stderr,
		        "sgprobe-collector: reload refused, keeping the old matrix and "
		        "keys: %s\n",
		        err);
	else
		fprintf(stderr, "sgprobe-collector: reloaded matrix '%s' and %zu keys\n",
		        c->matrix->name, c->keys->n_keys);
}

/* The loop ends once requests in flight had their moment and the metrics are out. */
static void on_grace_over(uv_timer_t *t)
{
	collector_t *c = container_of(t, collector_t, expire_timer);

	c->grace_over = true;
	if (!c->publisher)
		uv_stop(t->loop);
}

static void on_published(void *arg)
{
	collector_t *c = arg;

	c->publisher = NULL;
	if (c->grace_over)
		uv_stop(c->loop);
}

static state_clusters_t *publish_source(void *arg, uint64_t *wall_ms)
{
	collector_t *c = arg;

	*wall_ms = timefmt_now_ms();
	return state_clusters(c->state, uv_now(c->loop));
}

static void on_stop_signal(uv_signal_t *s, int signum)
{
	collector_t *c = s->data;

	if (c->stopping)
		return;
	fprintf(stderr, "sgprobe-collector: %s: stopping\n",
	        signum == SIGTERM ? "SIGTERM" : "SIGINT");
	collector_http_close(c);
	uv_timer_stop(&c->expire_timer);
	/* Requests in flight get a moment to finish; keep-alive connections are
	 * told to close. The last flush gets a few seconds to reach CloudWatch.
	 * Then the loop ends whatever is left. */
	uv_timer_start(&c->expire_timer, on_grace_over, 1000, 0);
	if (c->publisher)
		publisher_stop(c->publisher, PUBLISH_STOP_DEADLINE_MS, on_published, c);
}

static int cmd_serve(int argc, char **argv)
{
	char err[COLLECTOR_ERR_MAX];
	collector_t c;
	uv_loop_t loop;
	args_t a;
	int result;

	if (parse_args(&a, argc, argv))
		return EXIT_USAGE;
	if (a.help) {
		usage(stdout);
		return 0;
	}
	if (uv_loop_init(&loop))
		return 1;
	if (collector_init(&c, &loop, &a.cfg, err, sizeof(err))) {
		fprintf(stderr, "sgprobe-collector: %s\n", err);
		uv_loop_close(&loop);
		return EXIT_USAGE;
	}
	/* The metrics sink's settings are checked before any port is taken. */
	log_init(&c.lg, stderr, LOG_LEVEL_INFO, "sgprobe-collector");
	c.publisher =
	    publisher_new(&loop, &a.cfg.publish, &c.lg, publish_source, &c, err, sizeof(err));
	if (!c.publisher) {
		fprintf(stderr, "sgprobe-collector: %s\n", err);
		collector_dispose(&c);
		uv_run(&loop, UV_RUN_DEFAULT); /* the publisher's handles close */
		uv_loop_close(&loop);
		return EXIT_USAGE;
	}
	result = collector_http_start(&c, err, sizeof(err));
	if (result) {
		fprintf(stderr, "sgprobe-collector: %s\n", err);
		collector_dispose(&c);
		/* A bad address or certificate is the configuration's fault; a port
		 * already taken is the machine's. As at the end of a run, the process
		 * ends here, with the loop, the publisher and any listener still
		 * reachable. */
		exit(result == -EINVAL ? EXIT_USAGE : 1);
	}
	if (publisher_start(c.publisher, err, sizeof(err))) {
		fprintf(stderr, "sgprobe-collector: %s\n", err);
		collector_dispose(&c);
		exit(EXIT_USAGE);
	}
	uv_timer_init(&loop, &c.expire_timer);
	uv_timer_start(&c.expire_timer, on_expire, 10000, 10000);
	uv_signal_init(&loop, &c.sighup);
	uv_signal_start(&c.sighup, on_sighup, SIGHUP);
	uv_signal_init(&loop, &c.sigterm);
	c.sigterm.data = &c;
	uv_signal_start(&c.sigterm, on_stop_signal, SIGTERM);
	uv_signal_init(&loop, &c.sigint);
	c.sigint.data = &c;
	uv_signal_start(&c.sigint, on_stop_signal, SIGINT);
	fprintf(stderr,
	        "sgprobe-collector: matrix '%s' (%zu roles), %zu keys; agents on %s%s, admin on "
	        "%s%s\n",
	        c.matrix->name, c.matrix->n_roles, c.keys->n_keys, c.cfg.listen,
	        c.cfg.tls_cert ? " (TLS)" : "", c.cfg.admin_listen,
	        c.cfg.admin_tls_cert ? " (TLS)" : "");
	uv_run(&loop, UV_RUN_DEFAULT);
	fprintf(stderr, "sgprobe-collector: stopped\n");
	/* h2o's connections may outlive the loop's last turn: the process ends
	 * here, while the loop and the contexts are still reachable from this
	 * frame, with the state freed and everything else reclaimed by exit. */
	collector_dispose(&c);
	fflush(stdout);
	exit(0);
}

int main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	if (argc > 1 && !strcmp(argv[1], "sign-request"))
		return signreq_main(argc - 1, argv + 1);
	if (argc > 1 && !strcmp(argv[1], "import-sg"))
		return importsg_main(argc - 1, argv + 1);
	if (argc > 1 && !strcmp(argv[1], "diff-matrix"))
		return importsg_diff_main(argc - 1, argv + 1);
	if (argc > 1 && !strcmp(argv[1], "check-matrix"))
		return cmd_check_matrix(argc - 1, argv + 1);
	if (argc > 1 && !strcmp(argv[1], "plan"))
		return cmd_plan(argc - 1, argv + 1);
	if (argc > 1 && !strcmp(argv[1], "health"))
		return cmd_health(argc - 1, argv + 1);
	if (argc > 1 && !strcmp(argv[1], "serve"))
		return cmd_serve(argc - 1, argv + 1);
	if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		usage(stdout);
		return 0;
	}
	if (argc > 1 && argv[1][0] != '-') {
		fprintf(stderr, "sgprobe-collector: unknown command '%s'\n", argv[1]);
		usage(stderr);
		return EXIT_USAGE;
	}
	return cmd_serve(argc, argv);
}
