/*
 * curluv: libcurl's multi interface on a libuv loop (see curluv.h).
 *
 * libcurl owns the sockets; we only watch them. It announces a socket with
 * CURL_POLL_IN/OUT/INOUT and withdraws it with CURL_POLL_REMOVE before closing
 * it, so each uv_poll_t is stopped before its descriptor can be reused. Handles
 * are closed with uv_close() and their memory is released in the close
 * callback only; a count of those still to come tells curluv_dispose() when
 * the caller may release `cu`.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "sgprobe/curluv.h"
#include "sgprobe/container.h"

/* One transfer in progress: whom to tell when it ends. */
struct curluv_xfer_s {
	struct curluv_xfer_s *next;
	struct curluv_xfer_s *prev;
	CURL *easy;
	curluv_done_cb cb;
	void *arg;
};

/* One socket libcurl asked us to watch. */
struct curluv_sock_s {
	uv_poll_t poll;
	curluv_t *cu;
	curl_socket_t fd;
	struct curluv_sock_s *next;
	struct curluv_sock_s *prev;
};

typedef struct curluv_xfer_s xfer_t;
typedef struct curluv_sock_s sock_t;

/* Calls the close callback once every handle of a disposed `cu` is closed. */
static void maybe_closed(curluv_t *cu)
{
	if (cu->disposing && cu->closing == 0 && cu->close_cb)
		cu->close_cb(cu);
}

static void on_sock_close(uv_handle_t *h)
{
	sock_t *s = container_of((uv_poll_t *)h, sock_t, poll);
	curluv_t *cu = s->cu;

	free(s);
	cu->closing--;
	maybe_closed(cu);
}

static void on_timer_close(uv_handle_t *h)
{
	curluv_t *cu = container_of((uv_timer_t *)h, curluv_t, timer);

	cu->closing--;
	maybe_closed(cu);
}

/* Stops watching a socket and closes its handle; it is freed in on_sock_close. */
static void sock_close(sock_t *s)
{
	curluv_t *cu = s->cu;

	if (s->prev)
		s->prev->next = s->next;
	else
		cu->socks = s->next;
	if (s->next)
		s->next->prev = s->prev;
	s->next = s->prev = NULL;
	uv_poll_stop(&s->poll);
	cu->closing++;
	uv_close((uv_handle_t *)&s->poll, on_sock_close);
}

static void xfer_unlink(curluv_t *cu, xfer_t *x)
{
	if (x->prev)
		x->prev->next = x->next;
	else
		cu->xfers = x->next;
	if (x->next)
		x->next->prev = x->prev;
	x->next = x->prev = NULL;
}

static xfer_t *xfer_find(const curluv_t *cu, const CURL *easy)
{
	xfer_t *x;

	for (x = cu->xfers; x; x = x->next) {
		if (x->easy == easy)
			return x;
	}
	return NULL;
}

/*
 * Hands every finished transfer to its owner. A callback may add or remove
 * transfers, or dispose of `cu`; after a dispose the multi handle is gone, so
 * reading stops.
 */
static void check_done(curluv_t *cu)
{
	CURLMsg *msg;
	int left;

	while (!cu->disposing && (msg = curl_multi_info_read(cu->multi, &left))) {
		CURL *easy = msg->easy_handle;
		CURLcode result = msg->data.result;
		xfer_t *x;

		if (msg->msg != CURLMSG_DONE)
			continue;
		x = xfer_find(cu, easy);
		curl_multi_remove_handle(cu->multi, easy);
		if (!x)
			continue;
		xfer_unlink(cu, x);
		x->cb(easy, result, x->arg);
		free(x);
	}
}

static void on_poll(uv_poll_t *h, int status, int events)
{
	sock_t *s = container_of(h, sock_t, poll);
	curluv_t *cu = s->cu;
	int flags = 0, running = 0;

	if (status < 0)
		flags = CURL_CSELECT_ERR;
	if (events & UV_READABLE)
		flags |= CURL_CSELECT_IN;
	if (events & UV_WRITABLE)
		flags |= CURL_CSELECT_OUT;
	/* `s` may be closed by libcurl's socket callback from here on. */
	curl_multi_socket_action(cu->multi, s->fd, flags, &running);
	check_done(cu);
}

static void on_timeout(uv_timer_t *t)
{
	curluv_t *cu = container_of(t, curluv_t, timer);
	int running = 0;

	curl_multi_socket_action(cu->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	check_done(cu);
}

/* CURLMOPT_TIMERFUNCTION: libcurl's one timeout, in ms; -1 removes it. */
static int on_timer_set(CURLM *multi, long timeout_ms, void *userp)
{
	curluv_t *cu = userp;

	(void)multi;
	if (timeout_ms < 0) {
		uv_timer_stop(&cu->timer);
		return 0;
	}
	/* Never call socket_action from here: libcurl forbids the recursion, so
	 * even a zero timeout goes through the loop. */
	if (cu->disposing)
		return 0;
	return uv_timer_start(&cu->timer, on_timeout, (uint64_t)timeout_ms, 0) ? -1 : 0;
}

/* CURLMOPT_SOCKETFUNCTION: what to watch on socket `fd`. */
static int on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
	curluv_t *cu = userp;
	sock_t *s = socketp;
	int events = 0;

	(void)easy;
	if (what == CURL_POLL_REMOVE) {
		if (s) {
			curl_multi_assign(cu->multi, fd, NULL);
			sock_close(s);
		}
		return 0;
	}
	if (!s) {
		if (cu->disposing)
			return -1;
		s = calloc(1, sizeof(*s));
		if (!s)
			return -1;
		if (uv_poll_init_socket(cu->loop, &s->poll, fd)) {
			/* Never initialized: no handle to close. */
			free(s);
			return -1;
		}
		s->cu = cu;
		s->fd = fd;
		s->next = cu->socks;
		if (cu->socks)
			cu->socks->prev = s;
		cu->socks = s;
		curl_multi_assign(cu->multi, fd, s);
	}
	if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
		events |= UV_READABLE;
	if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
		events |= UV_WRITABLE;
	if (uv_poll_start(&s->poll, events, on_poll))
		return -1;
	return 0;
}

int curluv_init(curluv_t *cu, uv_loop_t *loop)
{
	memset(cu, 0, sizeof(*cu));
	cu->loop = loop;
	cu->multi = curl_multi_init();
	if (!cu->multi)
		return -ENOMEM;
	if (curl_multi_setopt(cu->multi, CURLMOPT_SOCKETFUNCTION, on_socket) != CURLM_OK ||
	    curl_multi_setopt(cu->multi, CURLMOPT_SOCKETDATA, cu) != CURLM_OK ||
	    curl_multi_setopt(cu->multi, CURLMOPT_TIMERFUNCTION, on_timer_set) != CURLM_OK ||
	    curl_multi_setopt(cu->multi, CURLMOPT_TIMERDATA, cu) != CURLM_OK ||
	    curl_multi_setopt(cu->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX) !=
	        CURLM_OK) {
		curl_multi_cleanup(cu->multi);
		cu->multi = NULL;
		return -EIO;
	}
	/* Last, so that no handle needs closing when anything above fails (it
	 * cannot fail itself). */
	uv_timer_init(loop, &cu->timer);
	return 0;
}

int curluv_easy_defaults(CURL *easy, const char *ca_file)
{
	CURLcode result = CURLE_OK;

	if (!easy)
		return -EINVAL;
	/* Collect every refusal: the first one is enough to fail. */
	if (result == CURLE_OK)
		result = curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
	if (result == CURLE_OK)
		result = curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
	if (result == CURLE_OK)
		result = curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
	if (result == CURLE_OK)
		result = curl_easy_setopt(easy, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
	if (result == CURLE_OK)
		result = curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 1L);
	if (result == CURLE_OK)
		result = curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 2L);
	if (result == CURLE_OK && ca_file)
		result = curl_easy_setopt(easy, CURLOPT_CAINFO, ca_file);
	if (result == CURLE_OK)
		result = curl_easy_setopt(easy, CURLOPT_COOKIEFILE, "");
	if (result == CURLE_OK)
		result = curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
	return result == CURLE_OK ? 0 : -EINVAL;
}

int curluv_add(curluv_t *cu, CURL *easy, curluv_done_cb cb, void *arg)
{
	CURLMcode result;
	xfer_t *x;

	if (cu->disposing)
		return -ECANCELED;
	if (!easy || !cb)
		return -EINVAL;
	if (xfer_find(cu, easy))
		return -EALREADY;
	x = calloc(1, sizeof(*x));
	if (!x)
		return -ENOMEM;
	x->easy = easy;
	x->cb = cb;
	x->arg = arg;
	result = curl_multi_add_handle(cu->multi, easy);
	if (result != CURLM_OK) {
		free(x);
		if (result == CURLM_OUT_OF_MEMORY)
			return -ENOMEM;
		return result == CURLM_ADDED_ALREADY ? -EALREADY : -EIO;
	}
	x->next = cu->xfers;
	if (cu->xfers)
		cu->xfers->prev = x;
	cu->xfers = x;
	return 0;
}

int curluv_remove(curluv_t *cu, CURL *easy)
{
	xfer_t *x = easy ? xfer_find(cu, easy) : NULL;

	if (!x)
		return -ENOENT;
	xfer_unlink(cu, x);
	curl_multi_remove_handle(cu->multi, easy);
	free(x);
	return 0;
}

size_t curluv_active(const curluv_t *cu)
{
	const xfer_t *x;
	size_t n = 0;

	for (x = cu->xfers; x; x = x->next)
		n++;
	return n;
}

void curluv_dispose(curluv_t *cu, curluv_close_cb close_cb)
{
	if (cu->disposing)
		return;
	cu->disposing = true;
	cu->close_cb = close_cb;
	/* Each owner learns that its transfer ended; a callback may remove others. */
	while (cu->xfers) {
		xfer_t *x = cu->xfers;

		xfer_unlink(cu, x);
		curl_multi_remove_handle(cu->multi, x->easy);
		x->cb(x->easy, CURLE_ABORTED_BY_CALLBACK, x->arg);
		free(x);
	}
	/* Closing the cached connections withdraws their sockets through
	 * on_socket(); whatever libcurl did not withdraw is closed after. */
	curl_multi_cleanup(cu->multi);
	cu->multi = NULL;
	while (cu->socks)
		sock_close(cu->socks);
	uv_timer_stop(&cu->timer);
	cu->closing++;
	uv_close((uv_handle_t *)&cu->timer, on_timer_close);
}

/* ---- bounded response bodies ---- */

size_t curluv_body_write(char *ptr, size_t size, size_t n, void *body)
{
	curluv_body_t *b = body;
	size_t len = size * n, take = len, cap;
	char *p;

	if (take > b->max - b->len) {
		b->too_big = true;
		if (!b->truncate)
			return 0;
		take = b->max - b->len;
	}
	if (!take && b->data)
		return len;
	if (b->len + take + 1 > b->cap) {
		cap = b->cap ? b->cap : 1024;
		while (cap < b->len + take + 1)
			cap *= 2;
		if (cap > b->max + 1)
			cap = b->max + 1;
		/* Not realloc(): a secret's old block is wiped before it is freed. */
		p = malloc(cap);
		if (!p) {
			b->oom = true;
			return 0;
		}
		if (b->data) {
			memcpy(p, b->data, b->len);
			if (b->secret)
				OPENSSL_cleanse(b->data, b->cap);
			free(b->data);
		}
		b->data = p;
		b->cap = cap;
	}
	memcpy(b->data + b->len, ptr, take);
	b->len += take;
	b->data[b->len] = '\0';
	return len;
}

const char *curluv_body_str(const curluv_body_t *b)
{
	return b->data ? b->data : "";
}

void curluv_body_reset(curluv_body_t *b)
{
	if (b->data) {
		if (b->secret)
			OPENSSL_cleanse(b->data, b->cap);
		b->data[0] = '\0';
	}
	b->len = 0;
	b->too_big = false;
	b->oom = false;
}

void curluv_body_dispose(curluv_body_t *b)
{
	if (b->data && b->secret)
		OPENSSL_cleanse(b->data, b->cap);
	free(b->data);
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}
