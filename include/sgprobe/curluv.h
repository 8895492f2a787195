/*
 * curluv: libcurl's multi interface driven by a libuv loop.
 *
 * libcurl tells us which sockets to watch (CURLMOPT_SOCKETFUNCTION: one
 * uv_poll_t per socket) and when to wake it up (CURLMOPT_TIMERFUNCTION: one
 * uv_timer_t); we hand the events back with curl_multi_socket_action() and read
 * finished transfers with curl_multi_info_read(). Every HTTP client call of
 * sgprobe that must not block its loop goes through here.
 *
 * Use:
 *
 *   curluv_init(&cu, loop);
 *   easy = curl_easy_init();
 *   curluv_easy_defaults(easy, ca_file);      (HTTP/2, TLS checks, cookies, ...)
 *   curl_easy_setopt(easy, CURLOPT_URL, ...);
 *   curluv_add(&cu, easy, on_done, arg);      on_done(easy, result, arg) once
 *   ...
 *   curluv_dispose(&cu, on_closed);           on_closed(&cu) when every handle is closed
 *
 * The caller calls curl_global_init() once before curluv_init(). Everything
 * runs on the loop's thread.
 */
#ifndef SGPROBE_CURLUV_H
#define SGPROBE_CURLUV_H

#include <stdbool.h>
#include <stddef.h>

#include <curl/curl.h>
#include <uv.h>

typedef struct curluv_s curluv_t;

/**
 * Called once when a transfer added with curluv_add() ends: `result` is
 * libcurl's (CURLE_OK when an HTTP answer came, whatever its status; read it
 * with CURLINFO_RESPONSE_CODE). The easy handle has already left the multi
 * handle and belongs to the caller again: it may be cleaned up, or changed and
 * added again, from inside the callback. CURLE_ABORTED_BY_CALLBACK means that
 * curluv_dispose() ended the transfer.
 */
typedef void (*curluv_done_cb)(CURL *easy, CURLcode result, void *arg);

/** Called when curluv_dispose() has closed every handle; `cu` may then be freed. */
typedef void (*curluv_close_cb)(curluv_t *cu);

/* One transfer in progress (private to curluv.c). */
struct curluv_xfer_s;
/* One watched socket (private to curluv.c). */
struct curluv_sock_s;

/** The glue. Embed it by value; its fields are private. */
struct curluv_s {
	uv_loop_t *loop;
	CURLM *multi;
	uv_timer_t timer;            /* libcurl's single timeout */
	struct curluv_xfer_s *xfers; /* transfers added and not finished */
	struct curluv_sock_s *socks; /* sockets watched now */
	size_t closing;              /* handles whose close callback is still to come */
	bool disposing;              /* curluv_dispose() was called */
	curluv_close_cb close_cb;
};

/**
 * Initializes `cu` on `loop`: a multi handle with HTTP/2 multiplexing
 * (CURLMOPT_PIPELINING CURLPIPE_MULTIPLEX) and the loop's timer. `cu` is owned
 * by the caller and must stay where it is until the close callback of
 * curluv_dispose(). Returns 0, -ENOMEM, or -EIO when libcurl refuses an
 * option; on error nothing needs disposing.
 */
int curluv_init(curluv_t *cu, uv_loop_t *loop);

/**
 * Sets the options every sgprobe client transfer shares on `easy`: HTTP/2
 * over TLS where the server offers it (CURL_HTTP_VERSION_2TLS), HTTP/1.1
 * keep-alive otherwise; http and https only, no redirects; TLS peer and host
 * verification on, against `ca_file` (PEM; copied by libcurl) or the system
 * store when NULL; the cookie engine on (CURLOPT_COOKIEFILE ""), so that an
 * ALB's stickiness cookie comes back on every later request of this easy handle
 * (reuse the handle to stay on one target); TCP keep-alive probes; no signals.
 * CURLOPT_PIPEWAIT stays off: on plain http it would hold a second transfer
 * until the first one's answer; set it on https transfers that should wait to
 * share a connection. Returns 0, or -EINVAL when libcurl refuses an option.
 */
int curluv_easy_defaults(CURL *easy, const char *ca_file);

/**
 * Starts the transfer `easy` (configured by the caller, owned by the caller
 * throughout; it must not be in any multi handle). `cb` is called once, on a
 * later loop iteration, when it ends. Returns 0, -ECANCELED after
 * curluv_dispose(), -EALREADY when `easy` is already added, -ENOMEM, or -EIO
 * when libcurl refuses; when it returns an error `cb` is never called.
 */
int curluv_add(curluv_t *cu, CURL *easy, curluv_done_cb cb, void *arg);

/**
 * Cancels the transfer `easy` at once: it leaves the multi handle, its
 * callback is never called, and it belongs to the caller again. Returns 0, or
 * -ENOENT when `easy` is not a transfer in progress here.
 */
int curluv_remove(curluv_t *cu, CURL *easy);

/** The number of transfers added and not yet finished or removed. */
size_t curluv_active(const curluv_t *cu);

/**
 * Disposes of `cu`: every transfer still in progress ends with its callback
 * called with CURLE_ABORTED_BY_CALLBACK (and curluv_add() refuses new ones from
 * then on), the multi handle and its cached connections are released, and the
 * uv handles are closed. `close_cb` (may be NULL) is called on a later loop
 * iteration when the last of them is closed; only then may the memory of `cu`
 * be released, and uv_loop_close() succeed. Calling it twice does nothing.
 */
void curluv_dispose(curluv_t *cu, curluv_close_cb close_cb);

/**
 * A response body, bounded: pass curluv_body_write as CURLOPT_WRITEFUNCTION and
 * the body as CURLOPT_WRITEDATA. Zero it, then set `max` (the bytes kept at
 * most, > 0) and the flags. `data` is NUL-terminated, or NULL before the first
 * write (curluv_body_str() gives "" then; libcurl does not call for an empty
 * answer, but a write of 0 bytes makes `data` ""); the body owns it.
 */
typedef struct {
	char *data;
	size_t len;
	size_t cap;
	size_t max;    /* bytes kept at most */
	bool truncate; /* past `max`: keep the first `max` bytes and read on (an error
	                  message), rather than end the transfer (a document) */
	bool secret;   /* the body may hold a secret: every block is wiped before it
	                  is freed, on growth, reset and dispose alike */
	bool too_big;  /* more than `max` bytes came */
	bool oom;      /* out of memory: the transfer was ended */
} curluv_body_t;

/**
 * libcurl's write callback for a curluv_body_t. Past `max` it sets `too_big`
 * and either keeps reading without keeping (truncate) or ends the transfer
 * (libcurl then reports CURLE_WRITE_ERROR); out of memory it sets `oom` and
 * ends the transfer.
 */
size_t curluv_body_write(char *ptr, size_t size, size_t n, void *body);

/** `data`, or "" when nothing came. */
const char *curluv_body_str(const curluv_body_t *b);

/** Empties `b` for the next transfer (`len` 0, `too_big` and `oom` cleared), keeping its block. */
void curluv_body_reset(curluv_body_t *b);

/** Frees the block (wiped first when `secret`); `max` and the flags stay. */
void curluv_body_dispose(curluv_body_t *b);

#endif
