/*
 * sgprobe-agent: the sidecar that probes the paths a task must and must not reach.
 */
#include <signal.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>

#include <string.h>

#include "config.h"
#include "daemon.h"
#include "once.h"

int main(int argc, char **argv)
{
	char err[CONFIG_ERR_MAX];
	config_t cfg;

	struct rlimit rl;

	/* Name lookups run on libuv's thread pool: four threads by default, so a
	 * slow resolver would hold a plan of many names for long. */
	setenv("UV_THREADPOOL_SIZE", "16", 0);
	/* A peer that closes during a TLS handshake must not kill the agent. */
	signal(SIGPIPE, SIG_IGN);
	/* Every probe in flight holds a descriptor: allow as many as the hard
	 * limit does, so that --concurrency is not silently capped at 1024. */
	if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	/* `sgprobe-agent health`: the container's health check reads the daemon's
	 * file. It exits 0 or 1 only, a usage error included: Docker reserves 2. */
	if (argc > 1 && !strcmp(argv[1], "health")) {
		if (config_parse(&cfg, argc - 1, argv + 1, err, sizeof(err))) {
			fprintf(stderr, "sgprobe-agent health: %s\n", err);
			return 1;
		}
		return daemon_health(&cfg);
	}
	if (config_parse(&cfg, argc, argv, err, sizeof(err))) {
		fprintf(stderr, "sgprobe-agent: %s\n", err);
		config_usage(stderr);
		return ONCE_EXIT_USAGE;
	}
	if (cfg.help) {
		config_usage(stdout);
		return 0;
	}
	if (!cfg.once)
		return daemon_run(&cfg);
	return once_run(&cfg, stdout);
}
