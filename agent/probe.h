/*
 * probe: the agent's probe engine. One round over a plan, on one libuv loop:
 * asynchronous DNS, one new TCP connection per (address, port), a TLS handshake
 * where the plan says so, classification of what came back, and the limits of
 * DESIGN.md "Probe safety" (concurrency, a global rate, a per-address cap).
 */
#ifndef SGPROBE_PROBE_H
#define SGPROBE_PROBE_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>
#include <uv.h>

#include "sgprobe/matrix.h"
#include "sgprobe/verdict.h"

#define PROBE_DEFAULT_CONCURRENCY   256
#define PROBE_DEFAULT_RATE          100 /* new probes per second */
#define PROBE_DEFAULT_PER_HOST      4   /* probes in flight to one address */
#define PROBE_DEFAULT_MAX_ADDRESSES 8   /* resolved addresses probed per target */
#define PROBE_MAX_ADDRESSES         32  /* the cap on max_addresses */
#define PROBE_DETAIL_MAX            96

/** How a round is run. Copied by probe_run_start(). */
typedef struct {
	unsigned timeout_ms;     /* connect timeout, and again TLS handshake timeout */
	unsigned concurrency;    /* probes in flight at most; >= 1 */
	unsigned rate;           /* new probes per second; 0 = no limit */
	unsigned per_host;       /* probes in flight to one address; 0 = no limit */
	unsigned max_addresses;  /* resolved addresses probed per target; 0 = default */
	const char *own_address; /* this task's address, never probed; NULL = none */
	SSL_CTX *tls_ctx;        /* verifies TLS probes; borrowed; required when the plan has TLS */
} probe_config_t;

/** What one probe of one address and port observed. */
typedef struct {
	size_t target;                  /* index into the plan's targets */
	size_t order;                   /* the address's place in the resolver's answer */
	char address[INET6_ADDRSTRLEN]; /* "" when no address was tried (DNS failure) */
	verdict_state_t state;
	int64_t latency_us;            /* connect time, or time waited; -1 for error */
	uint64_t at_ms;                /* wall clock, ms since the epoch, at the start */
	char detail[PROBE_DETAIL_MAX]; /* errno, ICMP or resolver message, or why the TLS
	                                     handshake failed when tls is VERDICT_TLS_FAIL;
	                                     "" for none */
	verdict_tls_t tls;             /* VERDICT_TLS_NONE when no handshake was made */
	bool tls_has_expiry;
	int tls_expires_in_days; /* the peer certificate's notAfter, in days from now */
	bool retried;            /* a filtered allowed path, probed a second time */
} probe_result_t;

typedef struct probe_run_s probe_run_t;

/** Called once when every probe of the round has finished and every handle is closed. */
typedef void (*probe_done_cb)(probe_run_t *run, void *arg);

/**
 * Starts one round over the targets of `plan` whose `probe` flag is set. `plan`
 * is borrowed and must outlive the run. Returns a new run (free with
 * probe_run_free() after `done` was called), or NULL when out of memory or the
 * configuration is invalid; `done` is then never called.
 */
probe_run_t *probe_run_start(uv_loop_t *loop, const probe_config_t *cfg, const matrix_plan_t *plan,
                             probe_done_cb done, void *arg);

/**
 * Cuts a round short (the agent's stop on SIGTERM). No further probe starts;
 * the probes in flight are ended at once (their sockets closed, their timers
 * stopped) and dropped, as are the probes not started yet and the names still
 * being resolved: a probe cut short observed nothing, and counting it filtered
 * would be a false alarm. The results recorded so far are kept. `done` is then
 * called as for a round that ended by itself, on a later loop iteration, with
 * those results. A name lookup already running on libuv's thread pool cannot
 * be interrupted: it no longer holds the round up, and frees itself when it
 * returns (until then it keeps the loop alive). Does nothing when `run` is
 * NULL, already cancelled, or finishing; must not be called after `done`.
 */
void probe_run_cancel(probe_run_t *run);

/** True when probe_run_cancel() cut `run` short. */
bool probe_run_cancelled(const probe_run_t *run);

/**
 * Judges `n` results of a round of `plan`, as the agent can: an address is
 * alive when any probe to it in these results came back open, closed or
 * rejected (the collector judges with every agent's). Fills verdicts[n], and
 * alive[n] unless it is NULL. O(n log n). Returns 0 or -ENOMEM.
 */
int probe_judge(const matrix_plan_t *plan, const probe_result_t *res, size_t n, bool *alive,
                verdict_t *verdicts);

/**
 * The results of a finished round, ordered by target then address in resolver
 * order. Owned by the run. Sets *n.
 */
const probe_result_t *probe_run_results(const probe_run_t *run, size_t *n);

/** Frees a finished run. probe_run_free(NULL) does nothing. */
void probe_run_free(probe_run_t *run);

#endif
