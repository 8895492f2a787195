/*
 * sgprobe-agent: the sidecar that probes the paths a task must and must not reach.
 */
#include <signal.h>
#include <stdio.h>

#include "config.h"
#include "once.h"

int main(int argc, char **argv)
{
	char err[CONFIG_ERR_MAX];
	config_t cfg;

	/* A peer that closes during a TLS handshake must not kill the agent. */
	signal(SIGPIPE, SIG_IGN);
	if (config_parse(&cfg, argc, argv, err, sizeof(err))) {
		fprintf(stderr, "sgprobe-agent: %s\n", err);
		config_usage(stderr);
		return ONCE_EXIT_USAGE;
	}
	if (cfg.help) {
		config_usage(stdout);
		return 0;
	}
	if (!cfg.once) {
		fprintf(stderr, "sgprobe-agent: only --once is available in this version: the "
		                "daemon mode comes with the collector\n");
		return ONCE_EXIT_USAGE;
	}
	return once_run(&cfg, stdout);
}
