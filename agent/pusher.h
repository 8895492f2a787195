/*
 * pusher: the daemon's reports to the collector (DESIGN.md "Agent", Push).
 *
 * A queue of encoded reports, bounded in reports and in bytes (the oldest is
 * dropped first, and counted), sent one at a time through curluv on the
 * agent's loop, so that `seq` arrives in order. Each attempt is signed when it
 * is sent: a retried report carries a fresh timestamp and signature. Connection
 * errors, timeouts, 408, 429 (after its Retry-After) and 5xx are retried with
 * capped exponential backoff and full jitter; 413 and the other 4xx are logged
 * with the collector's own message and dropped, counted. A 200 duplicate
 * counts as delivered: the collector already holds that report.
 *
 * Durations come from uv_now() (ms); only the signature's timestamp is
 * wall-clock time, because it leaves the process.
 */
#ifndef SGPROBE_PUSHER_H
#define SGPROBE_PUSHER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>
#include <uv.h>

#include "sgprobe/curluv.h"
#include "sgprobe/report.h"

#define PUSHER_DEFAULT_MAX_REPORTS 128                /* reports queued */
#define PUSHER_DEFAULT_MAX_BYTES   (8u * 1024 * 1024) /* bytes of reports queued */
#define PUSHER_DEFAULT_BACKOFF_MS  500                /* first backoff ceiling */
#define PUSHER_DEFAULT_CAP_MS      30000              /* largest backoff ceiling */
#define PUSHER_DEFAULT_TIMEOUT_MS  10000              /* one request, connect included */
#define PUSHER_MAX_RETRY_AFTER_S   3600               /* a larger Retry-After is cut to this */
#define PUSHER_MSG_MAX             256                /* the collector's message kept */
#define PUSHER_ANSWER_MAX          2047               /* bytes of the collector's answer read */

/** How serious a log line is. */
typedef enum {
	PUSHER_LOG_INFO = 0, /* nothing is lost */
	PUSHER_LOG_WARN = 1, /* a retry, a slow collector */
	PUSHER_LOG_ERROR = 2 /* a report is lost: dropped or abandoned */
} pusher_log_level_t;

/**
 * Receives one log line (no secret in it; the string is valid during the call
 * only).
 */
typedef void (*pusher_log_cb)(void *arg, pusher_log_level_t level, const char *msg);

/** The pusher's settings. Strings and the secret are copied by pusher_init(). */
typedef struct {
	const char *url;             /* where reports are POSTed: https://host:port/v1/reports */
	const char *key_id;          /* the signing key's id */
	const unsigned char *secret; /* its secret, secret_len bytes */
	size_t secret_len;
	const char *ca_file;      /* the collector's CA (PEM); NULL: the system store */
	size_t max_reports;       /* queue bound in reports; 0: PUSHER_DEFAULT_MAX_REPORTS */
	size_t max_bytes;         /* queue bound in bytes; 0: PUSHER_DEFAULT_MAX_BYTES */
	uint64_t backoff_base_ms; /* 0: PUSHER_DEFAULT_BACKOFF_MS */
	uint64_t backoff_cap_ms;  /* 0: PUSHER_DEFAULT_CAP_MS (never below the base) */
	uint64_t timeout_ms;      /* one request; 0: PUSHER_DEFAULT_TIMEOUT_MS */
	uint64_t first_seq;       /* seq of the first report pusher_submit() queues; 0: 1 */
	uint64_t seed;            /* the jitter's random seed; 0: from RAND_bytes() */
	pusher_log_cb log;        /* NULL: one plain line per event on stderr */
	void *log_arg;
} pusher_config_t;

/**
 * What happened to the reports. `attempts` = `sent` + attempts that got no
 * answer; every report queued ends up delivered, dropped or abandoned (or is
 * still queued or on the wire).
 */
typedef struct {
	uint64_t attempts;         /* POSTs started, retries included */
	uint64_t sent;             /* POSTs the collector answered, whatever the status: the
	                            * collector's accepted + duplicates when all went well */
	uint64_t delivered;        /* reports answered 202, or 200 duplicate */
	uint64_t duplicates;       /* of those, answered 200 duplicate */
	uint64_t retried;          /* attempts that failed and were scheduled again */
	uint64_t dropped_full;     /* reports dropped, oldest first, to keep the queue's bounds */
	uint64_t dropped_rejected; /* reports refused for good: 413 and other 4xx (not 408, 429) */
	uint64_t abandoned;        /* reports still undelivered when pusher_stop() gave up */
} pusher_counters_t;

typedef struct pusher_s pusher_t;

/**
 * Called once when pusher_stop() ends: `status` is 0 when every report was
 * delivered or refused, -ETIMEDOUT when the deadline came first (the rest is
 * counted in `abandoned`), -ECANCELED when pusher_dispose() came first.
 */
typedef void (*pusher_stop_cb)(pusher_t *p, int status);

/** Called when pusher_dispose() has closed every handle; `p` may then be freed. */
typedef void (*pusher_close_cb)(pusher_t *p);

/* A queued report (private to pusher.c). */
struct pusher_item_s;

/** The pusher. Embed it by value; read `counters`, leave the rest alone. */
struct pusher_s {
	pusher_counters_t counters;
	char last_rejection[PUSHER_MSG_MAX]; /* the last refusal: status and the collector's
	                                      * "error"; empty when none */
	/* private */
	uv_loop_t *loop;
	curluv_t *cu;
	CURL *easy;
	struct curl_slist *headers;
	uv_timer_t retry_timer;    /* the backoff before the next attempt */
	uv_timer_t deadline_timer; /* pusher_stop()'s deadline */
	char *url;
	char *target; /* the URL's path and query: what the signature covers */
	char *key_id;
	unsigned char *secret;
	size_t secret_len;
	size_t max_reports;
	size_t max_bytes;
	uint64_t backoff_base_ms;
	uint64_t backoff_cap_ms;
	uint64_t timeout_ms;
	uint64_t next_seq;
	uint64_t rng;
	pusher_log_cb log;
	void *log_arg;
	struct pusher_item_s *head; /* queued, oldest first; not the one on the wire */
	struct pusher_item_s *tail;
	size_t n_queued;
	size_t queued_bytes;
	struct pusher_item_s *current; /* on the wire */
	unsigned failures;             /* consecutive failed attempts */
	bool waiting;                  /* retry_timer runs */
	uint64_t retry_due;            /* uv_now() of the next attempt while waiting */
	bool stopping;
	bool stopped;
	bool disposing;
	uint64_t deadline;
	pusher_stop_cb stop_cb;
	pusher_close_cb close_cb;
	unsigned closing;
	curluv_body_t answer; /* the collector's answer to the attempt on the wire, cut */
	char errbuf[CURL_ERROR_SIZE];
};

/** One encoded report: its seq and its JSON body. */
typedef struct {
	uint64_t seq;
	char *body; /* NUL-terminated, owned */
	size_t len; /* bytes, without the NUL */
} pusher_body_t;

/**
 * Initializes `p` (owned by the caller; it must stay in place until the close
 * callback of pusher_dispose()) on `loop`, sending through `cu`, which must
 * outlive it. Copies what `cfg` points to. Returns 0, -EINVAL (no URL, no key,
 * a URL libcurl cannot parse, an option libcurl refuses), -ENOMEM, or -EIO
 * when no randomness is available; on error nothing needs disposing.
 */
int pusher_init(pusher_t *p, uv_loop_t *loop, curluv_t *cu, const pusher_config_t *cfg);

/**
 * Encodes `r` as reports that each fit the collector's limits
 * (REPORT_MAX_RESULTS results, REPORT_MAX_BODY bytes), in the order of its
 * results, numbered first_seq, first_seq + 1, ... Every report copies r's
 * header; only the last keeps r's `final` (the collector forgets an agent on
 * it). A report without results gives one report. r's own `seq` is ignored.
 * On success *out (an array of *n_out bodies) is owned by the caller:
 * pusher_bodies_free(). Returns 0, -EMSGSIZE when one result alone is too
 * large, -ERANGE when a seq would pass REPORT_MAX_SEQ, -EINVAL when r cannot be
 * encoded (a required field unset), or -ENOMEM.
 */
int pusher_split(const report_t *r, uint64_t first_seq, pusher_body_t **out, size_t *n_out);

/** Frees what pusher_split() returned. pusher_bodies_free(NULL, 0) does nothing. */
void pusher_bodies_free(pusher_body_t *bodies, size_t n);

/**
 * Queues one encoded report (`body`, `len` bytes, malloc()ed) to be sent after
 * those already queued; on success the pusher owns `body`. When the queue
 * then holds more than its bounds allow (the report on the wire is not
 * counted), the oldest reports are dropped, this one last, and counted in
 * `dropped_full`. Returns 0, or (and then `body` stays the caller's)
 * -EINVAL when empty, -ENOMEM, or -ECANCELED once pusher_stop() has ended or
 * pusher_dispose() was called.
 */
int pusher_enqueue(pusher_t *p, uint64_t seq, char *body, size_t len);

/**
 * Splits `r` (pusher_split()) and queues the parts with the pusher's next
 * seqs. `r` stays the caller's. Returns the number of reports queued, or an
 * error of pusher_split() or pusher_enqueue(), in which case nothing is queued
 * and no seq is used.
 */
int pusher_submit(pusher_t *p, const report_t *r);

/** The seq the next pusher_submit() starts from. */
uint64_t pusher_next_seq(const pusher_t *p);

/** The reports queued (the one on the wire included) and their bytes; either may be NULL. */
void pusher_queued(const pusher_t *p, size_t *reports, size_t *bytes);

/**
 * Delivers what is queued, reports queued meanwhile (a final one) included,
 * until `deadline` (uv_now() time, ms), then gives up: the request on the
 * wire is cancelled and every report left is counted in `abandoned`. A
 * retry that could only come at or after the deadline (a long Retry-After)
 * ends it at once. Requests sent meanwhile time out at the deadline. `cb` is
 * called once, on a later loop iteration; the pusher then refuses new
 * reports. Returns 0, or -EALREADY when already stopping.
 */
int pusher_stop(pusher_t *p, uint64_t deadline, pusher_stop_cb cb);

/**
 * Disposes of `p`: the request on the wire is cancelled (through `cu`, so
 * call it before curluv_dispose()), the queue freed, the secret wiped, and
 * the timers closed; a pending pusher_stop() callback is called with
 * -ECANCELED. `close_cb` (may be NULL) runs on a later loop iteration, when
 * `p` may be freed. Calling it twice does nothing.
 */
void pusher_dispose(pusher_t *p, pusher_close_cb close_cb);

#endif
