/*
 * probe: one round of probes over a plan.
 *
 * The pipeline, all on one libuv loop:
 *   1. every distinct target name is resolved once (uv_getaddrinfo);
 *   2. every (address, port) becomes a job, queued behind its address's host;
 *   3. the dispatcher starts jobs round-robin over hosts, within the
 *      concurrency cap, the per-host cap and the token-bucket rate;
 *   4. a job is one new non-blocking TCP connect with IP_RECVERR set, so that
 *      an ICMP error can be told apart from a RST, and who sent it;
 *   5. on a TLS port, an OpenSSL handshake over the same socket through
 *      memory BIOs.
 * A filtered result on an allowed path is queued once more before it counts.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/errqueue.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "probe.h"
#include "sgprobe/timefmt.h"
#include "sgprobe/container.h"

/* Read buffer of a TLS probe: one TLS record at most. Plain probes have none. */
#define PROBE_TLS_BUF 16384

/* An IPv4 or IPv6 address and port: 28 bytes, not sockaddr_storage's 128, since
 * a sweep holds one per job. */
typedef union {
	struct sockaddr sa;
	struct sockaddr_in v4;
	struct sockaddr_in6 v6;
} addr_t;

/* One address to probe: the per-host queue and cap live here. */
typedef struct {
	char name[INET6_ADDRSTRLEN];
	size_t *queue; /* job indices, FIFO from head */
	size_t head;
	size_t len;
	size_t cap;
	unsigned inflight;
} host_t;

/* One (address, port) probe. */
typedef struct {
	size_t target;
	size_t host;
	size_t order; /* resolver order of the address within its target */
	addr_t addr;
	bool retried;
} job_t;

/* One distinct target name being resolved. Allocated on its own: a lookup
 * still running when the round is cancelled outlives the run, and frees itself. */
typedef struct {
	uv_getaddrinfo_t req;
	probe_run_t *run;    /* NULL once orphaned by probe_run_cancel() */
	size_t first_target; /* a target index with this name */
	bool pending;        /* the callback is still to come */
} resolve_t;

typedef struct conn_s conn_t;

struct probe_run_s {
	uv_loop_t *loop;
	probe_config_t cfg;
	char *own_address;
	const matrix_plan_t *plan;
	probe_done_cb done;
	void *arg;

	resolve_t **resolves;
	size_t n_resolves;
	size_t pending_resolves;

	job_t *jobs;
	size_t n_jobs;
	size_t cap_jobs;
	host_t *hosts;
	size_t n_hosts;
	size_t cap_hosts;
	size_t rr; /* round-robin cursor over hosts */
	size_t queued;

	probe_result_t *results;
	size_t n_results;
	size_t cap_results;

	unsigned inflight;
	size_t live_conns; /* connections whose handles are not closed yet */
	conn_t *conns;     /* the connections in flight (not decided yet) */
	bool in_dispatch;
	bool finishing;
	bool cancelled;

	uv_timer_t rate_timer;
	bool rate_timer_armed;
	double tokens;
	uint64_t tokens_at_ns;
};

/*
 * One connection in flight. A plain probe is a raw non-blocking socket: most
 * answers (every one on loopback) are settled before connect() returns, and
 * those never touch the event loop; the others are watched with a uv_poll_t. A
 * TLS probe needs a stream, so it is a uv_tcp_t from the start. The connection
 * is freed when its last handle is closed, or at once when it has none.
 */
struct conn_s {
	probe_run_t *run;
	conn_t *prev; /* in run->conns while in flight */
	conn_t *next;
	size_t job;
	int fd; /* the socket; owned by tcp once HANDLE_TCP is set */
	union {
		uv_tcp_t tcp;   /* TLS probes */
		uv_poll_t poll; /* plain probes still connecting */
	} h;
	uv_timer_t timer;
	uv_connect_t connect_req;
	unsigned handles; /* HANDLE_* bits of the initialised handles */
	int open_handles; /* handles whose close callback is still to come */
	uint64_t start_ns;
	bool connected; /* the TCP handshake completed; the timer now bounds TLS */
	bool decided;   /* the result is recorded; late callbacks are ignored */
	probe_result_t res;
	SSL *ssl;
	BIO *rbio;  /* network → OpenSSL */
	BIO *wbio;  /* OpenSSL → network */
	char *rbuf; /* TLS only: bytes from the network, PROBE_TLS_BUF of them */
};

#define HANDLE_TCP   1u
#define HANDLE_POLL  2u
#define HANDLE_TIMER 4u

/* A write of handshake bytes; the data follows the request. */
typedef struct {
	uv_write_t req;
	char data[];
} write_t;

static void dispatch(probe_run_t *run);
static void maybe_finish(probe_run_t *run);

static int grow(void **v, size_t *cap, size_t need, size_t elem)
{
	size_t ncap;
	void *p;

	if (need <= *cap)
		return 0;
	ncap = *cap ? *cap * 2 : 16;
	while (ncap < need)
		ncap *= 2;
	p = realloc(*v, ncap * elem);
	if (!p)
		return -ENOMEM;
	*v = p;
	*cap = ncap;
	return 0;
}

static int addr_to_string(const addr_t *ss, char *buf, size_t len)
{
	const void *src;

	if (ss->sa.sa_family == AF_INET)
		src = &((const struct sockaddr_in *)ss)->sin_addr;
	else
		src = &((const struct sockaddr_in6 *)ss)->sin6_addr;
	return inet_ntop(ss->sa.sa_family, src, buf, (socklen_t)len) ? 0 : -errno;
}

/* True when `a` is the same IP address as the literal `text`. */
static bool same_address(const addr_t *a, const char *text)
{
	struct in_addr v4;
	struct in6_addr v6;

	if (!text)
		return false;
	if (a->sa.sa_family == AF_INET && inet_pton(AF_INET, text, &v4) == 1)
		return !memcmp(&((const struct sockaddr_in *)a)->sin_addr, &v4, sizeof(v4));
	if (a->sa.sa_family == AF_INET6 && inet_pton(AF_INET6, text, &v6) == 1)
		return !memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr, &v6, sizeof(v6));
	return false;
}

/* Parses an IPv4 or IPv6 literal into `ss`. Returns true when `s` is one. */
static bool literal_address(const char *s, addr_t *ss)
{
	struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, s, &v4->sin_addr) == 1) {
		v4->sin_family = AF_INET;
		return true;
	}
	if (inet_pton(AF_INET6, s, &v6->sin6_addr) == 1) {
		v6->sin6_family = AF_INET6;
		return true;
	}
	return false;
}

static bool is_ip_literal(const char *s)
{
	struct in6_addr buf;

	return inet_pton(AF_INET, s, &buf) == 1 || inet_pton(AF_INET6, s, &buf) == 1;
}

static int record(probe_run_t *run, const probe_result_t *res)
{
	if (grow((void **)&run->results, &run->cap_results, run->n_results + 1,
	         sizeof(*run->results)))
		return -ENOMEM;
	run->results[run->n_results++] = *res;
	return 0;
}

/* Records a result that no connection produced (DNS failure, no socket). */
static void record_error(probe_run_t *run, size_t target, size_t order, const char *address,
                         const char *fmt, const char *what)
{
	probe_result_t res;

	memset(&res, 0, sizeof(res));
	res.target = target;
	res.order = order;
	if (address)
		snprintf(res.address, sizeof(res.address), "%s", address);
	res.state = VERDICT_STATE_ERROR;
	res.latency_us = -1;
	res.at_ms = timefmt_now_ms();
	snprintf(res.detail, sizeof(res.detail), fmt, what);
	record(run, &res);
}

/* Every port of every target named like `first` gets an error: a DNS failure is
 * a local fact about this agent, never a closed path. */
static void fail_name(probe_run_t *run, size_t first, int status)
{
	const char *name = run->plan->targets[first].target;
	char what[PROBE_DETAIL_MAX - sizeof("dns: ") + 1]; /* "dns: " + what fits the detail */
	size_t t;

	snprintf(what, sizeof(what), "%s (%s)", uv_strerror(status), uv_err_name(status));
	for (t = first; t < run->plan->n_targets; t++) {
		const matrix_target_t *mt = &run->plan->targets[t];

		if (mt->probe && !strcmp(mt->target, name))
			record_error(run, t, 0, NULL, "dns: %s", what);
	}
}

static int host_for(probe_run_t *run, const char *name, size_t *out)
{
	size_t i;

	for (i = 0; i < run->n_hosts; i++) {
		if (!strcmp(run->hosts[i].name, name)) {
			*out = i;
			return 0;
		}
	}
	if (grow((void **)&run->hosts, &run->cap_hosts, run->n_hosts + 1, sizeof(*run->hosts)))
		return -ENOMEM;
	memset(&run->hosts[run->n_hosts], 0, sizeof(*run->hosts));
	snprintf(run->hosts[run->n_hosts].name, sizeof(run->hosts[0].name), "%s", name);
	*out = run->n_hosts++;
	return 0;
}

static int host_push(probe_run_t *run, size_t hi, size_t job)
{
	host_t *h = &run->hosts[hi];

	if (h->head > 0 && h->head == h->len) {
		h->head = 0;
		h->len = 0;
	}
	if (grow((void **)&h->queue, &h->cap, h->len + 1, sizeof(*h->queue)))
		return -ENOMEM;
	h->queue[h->len++] = job;
	run->queued++;
	return 0;
}

/* Queues one job for every planned port of every target named like `first`. */
static void add_jobs(probe_run_t *run, size_t first, const addr_t *addr, size_t order)
{
	const char *name = run->plan->targets[first].target;
	char text[INET6_ADDRSTRLEN];
	size_t t, hi;

	if (addr_to_string(addr, text, sizeof(text)) || host_for(run, text, &hi))
		return;
	for (t = first; t < run->plan->n_targets; t++) {
		const matrix_target_t *mt = &run->plan->targets[t];
		job_t *j;

		if (!mt->probe || strcmp(mt->target, name))
			continue;
		if (grow((void **)&run->jobs, &run->cap_jobs, run->n_jobs + 1, sizeof(*run->jobs)))
			return;
		j = &run->jobs[run->n_jobs];
		memset(j, 0, sizeof(*j));
		j->target = t;
		j->host = hi;
		j->order = order;
		j->addr = *addr;
		if (addr->sa.sa_family == AF_INET)
			((struct sockaddr_in *)&j->addr)->sin_port = htons(mt->port);
		else
			((struct sockaddr_in6 *)&j->addr)->sin6_port = htons(mt->port);
		if (host_push(run, hi, run->n_jobs))
			return;
		run->n_jobs++;
	}
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
	resolve_t *rs = container_of(req, resolve_t, req);
	probe_run_t *run = rs->run;
	addr_t seen[PROBE_MAX_ADDRESSES];
	unsigned max;
	size_t n_seen = 0;
	struct addrinfo *ai;

	rs->pending = false;
	if (!run) {
		/* Orphaned by probe_run_cancel(): the round is over without it. */
		uv_freeaddrinfo(res);
		free(rs);
		return;
	}
	max = run->cfg.max_addresses;
	run->pending_resolves--;
	if (status < 0) {
		fail_name(run, rs->first_target, status);
		dispatch(run);
		maybe_finish(run);
		return;
	}
	for (ai = res; ai && n_seen < max; ai = ai->ai_next) {
		addr_t ss;
		size_t i;
		bool dup = false;

		if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
			continue;
		memset(&ss, 0, sizeof(ss));
		memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
		for (i = 0; i < n_seen; i++) {
			if (!memcmp(&seen[i], &ss, sizeof(ss)))
				dup = true;
		}
		/* The agent's own task is not a path through any security group. */
		if (dup || same_address(&ss, run->own_address))
			continue;
		seen[n_seen] = ss;
		add_jobs(run, rs->first_target, &ss, n_seen);
		n_seen++;
	}
	uv_freeaddrinfo(res);
	dispatch(run);
	maybe_finish(run);
}

static void conn_free(conn_t *c)
{
	probe_run_t *run = c->run;

	SSL_free(c->ssl); /* frees both BIOs */
	free(c->rbuf);
	free(c);
	run->live_conns--;
	dispatch(run);
}

static void on_conn_closed(uv_handle_t *h)
{
	conn_t *c = h->data;

	if (--c->open_handles == 0)
		conn_free(c);
}

/* Closes the socket and every handle; the connection is freed after the last. */
static void conn_close(conn_t *c)
{
	if (c->handles & HANDLE_TCP) {
		uv_close((uv_handle_t *)&c->h.tcp, on_conn_closed); /* closes the fd */
		c->open_handles++;
	} else {
		if (c->res.state == VERDICT_STATE_OPEN) {
			/* Close an open plain probe with a reset, as nmap does: no FIN
			 * exchange, and no TIME_WAIT piles up in the task. */
			struct linger lg = {1, 0};

			setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		}
		if (c->handles & HANDLE_POLL) {
			/* uv_close() takes the fd out of epoll at once: only then may
			 * the fd itself be closed. */
			uv_close((uv_handle_t *)&c->h.poll, on_conn_closed);
			c->open_handles++;
		}
		close(c->fd);
	}
	if (c->handles & HANDLE_TIMER) {
		uv_close((uv_handle_t *)&c->timer, on_conn_closed);
		c->open_handles++;
	}
	if (!c->open_handles)
		conn_free(c);
}

/* Takes a connection out of the ones in flight: its result is decided. */
static void conn_settle(conn_t *c)
{
	probe_run_t *run = c->run;

	c->decided = true;
	run->inflight--;
	run->hosts[run->jobs[c->job].host].inflight--;
	if (c->prev)
		c->prev->next = c->next;
	else
		run->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->prev = c->next = NULL;
}

/* Records the connection's result (once), closes it, and lets the next job start. */
static void conn_finish(conn_t *c)
{
	probe_run_t *run = c->run;
	job_t *j = &run->jobs[c->job];
	const matrix_target_t *mt = &run->plan->targets[j->target];

	if (c->decided)
		return;
	conn_settle(c);
	if (c->res.state == VERDICT_STATE_FILTERED && mt->expected == VERDICT_EXPECT_ALLOW &&
	    !j->retried) {
		/* One lost SYN must not raise an alarm: try once more. */
		j->retried = true;
		host_push(run, j->host, c->job);
	} else {
		c->res.retried = j->retried;
		if (j->retried) {
			size_t l = strlen(c->res.detail);

			snprintf(c->res.detail + l, sizeof(c->res.detail) - l, " (retried once)");
		}
		record(run, &c->res);
	}
	/* Last: closing may free the connection and start the next job. */
	conn_close(c);
}

static uint64_t elapsed_us(const conn_t *c)
{
	return (uv_hrtime() - c->start_ns) / 1000u;
}

/*
 * Reads the socket's error queue after a failed connect. Returns true when an
 * ICMP error was queued, with its sender in `offender` and its type and code.
 */
static bool read_icmp(uv_os_fd_t fd, char *offender, size_t len, int *type, int *code)
{
	char cbuf[512];
	char dbuf[64];
	struct iovec iov = {dbuf, sizeof(dbuf)};
	struct msghdr msg;
	struct cmsghdr *cm;
	ssize_t r;

	memset(&msg, 0, sizeof(msg));
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = cbuf;
	msg.msg_controllen = sizeof(cbuf);
	r = recvmsg(fd, &msg, MSG_ERRQUEUE | MSG_DONTWAIT);
	if (r < 0)
		return false;
	for (cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
		struct sock_extended_err *ee;
		struct sockaddr *from;
		addr_t ss;

		if (!((cm->cmsg_level == SOL_IP && cm->cmsg_type == IP_RECVERR) ||
		      (cm->cmsg_level == SOL_IPV6 && cm->cmsg_type == IPV6_RECVERR)))
			continue;
		ee = (struct sock_extended_err *)CMSG_DATA(cm);
		if (ee->ee_origin != SO_EE_ORIGIN_ICMP && ee->ee_origin != SO_EE_ORIGIN_ICMP6)
			continue;
		from = SO_EE_OFFENDER(ee);
		memset(&ss, 0, sizeof(ss));
		if (from->sa_family == AF_INET)
			memcpy(&ss, from, sizeof(struct sockaddr_in));
		else if (from->sa_family == AF_INET6)
			memcpy(&ss, from, sizeof(struct sockaddr_in6));
		else
			continue;
		if (addr_to_string(&ss, offender, len))
			continue;
		*type = ee->ee_type;
		*code = ee->ee_code;
		return true;
	}
	return false;
}

static void classify_failure(conn_t *c, int status)
{
	probe_run_t *run = c->run;
	job_t *j = &run->jobs[c->job];
	char offender[INET6_ADDRSTRLEN];
	int type = 0, code = 0;

	c->res.latency_us = (int64_t)elapsed_us(c);
	if (read_icmp(c->fd, offender, sizeof(offender), &type, &code)) {
		/* Who sent the ICMP error decides: the destination's own firewall
		 * answered (the SYN crossed both security groups), or a hop on the
		 * way refused it. */
		bool self = !strcmp(offender, c->res.address);

		c->res.state = self ? VERDICT_STATE_REJECTED : VERDICT_STATE_UNREACHABLE;
		snprintf(c->res.detail, sizeof(c->res.detail),
		         "icmp%s type %d code %d from %s (%s)",
		         j->addr.sa.sa_family == AF_INET6 ? "6" : "", type, code, offender,
		         uv_err_name(status));
		return;
	}
	switch (status) {
	case UV_ECONNREFUSED:
		c->res.state = VERDICT_STATE_CLOSED;
		snprintf(c->res.detail, sizeof(c->res.detail), "connection refused (RST)");
		return;
	case UV_EHOSTUNREACH:
	case UV_ENETUNREACH:
		/* Asynchronous: neighbour discovery gave up, or a route went away. */
		c->res.state = VERDICT_STATE_UNREACHABLE;
		break;
	case UV_ETIMEDOUT:
		c->res.state = VERDICT_STATE_FILTERED;
		break;
	default:
		c->res.state = VERDICT_STATE_ERROR;
		c->res.latency_us = -1;
		break;
	}
	snprintf(c->res.detail, sizeof(c->res.detail), "%s (%s)", uv_strerror(status),
	         uv_err_name(status));
}

static void tls_fail(conn_t *c, const char *why)
{
	c->res.tls = VERDICT_TLS_FAIL;
	snprintf(c->res.detail, sizeof(c->res.detail), "%s", why);
	conn_finish(c);
}

static void on_written(uv_write_t *req, int status)
{
	write_t *w = container_of(req, write_t, req);

	(void)status; /* a failed write surfaces as a failed read */
	free(w);
}

/* Sends whatever OpenSSL has queued for the network. */
static int tls_flush(conn_t *c)
{
	size_t pending;

	while ((pending = BIO_ctrl_pending(c->wbio)) > 0) {
		write_t *w = malloc(sizeof(*w) + pending);
		uv_buf_t buf;
		int n, result;

		if (!w)
			return -ENOMEM;
		n = BIO_read(c->wbio, w->data, (int)pending);
		if (n <= 0) {
			free(w);
			return -EIO;
		}
		buf = uv_buf_init(w->data, (unsigned)n);
		result = uv_write(&w->req, (uv_stream_t *)&c->h.tcp, &buf, 1, on_written);
		if (result) {
			free(w);
			return result;
		}
	}
	return 0;
}

static void tls_record_expiry(conn_t *c)
{
	X509 *cert = SSL_get1_peer_certificate(c->ssl);
	int days = 0, secs = 0;

	if (!cert)
		return;
	if (ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notAfter(cert))) {
		c->res.tls_has_expiry = true;
		c->res.tls_expires_in_days = days;
	}
	X509_free(cert);
}

static void tls_step(conn_t *c)
{
	int r, err;
	long vr;
	unsigned long e;
	char why[PROBE_DETAIL_MAX];

	ERR_clear_error();
	r = SSL_do_handshake(c->ssl);
	if (tls_flush(c)) {
		tls_fail(c, "cannot send handshake");
		return;
	}
	if (r == 1) {
		c->res.tls = VERDICT_TLS_OK;
		tls_record_expiry(c);
		conn_finish(c);
		return;
	}
	err = SSL_get_error(c->ssl, r);
	if (err == SSL_ERROR_WANT_READ)
		return;
	tls_record_expiry(c);
	vr = SSL_get_verify_result(c->ssl);
	if (vr != X509_V_OK) {
		tls_fail(c, X509_verify_cert_error_string(vr));
		return;
	}
	e = ERR_get_error();
	if (e) {
		ERR_error_string_n(e, why, sizeof(why));
		tls_fail(c, why);
		return;
	}
	tls_fail(c, "handshake failed");
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	conn_t *c = h->data;

	(void)suggested;
	*buf = uv_buf_init(c->rbuf, PROBE_TLS_BUF);
}

static void on_tls_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	conn_t *c = s->data;

	if (c->decided || nread == 0)
		return;
	if (nread < 0) {
		char why[PROBE_DETAIL_MAX];

		snprintf(why, sizeof(why), "connection closed during handshake (%s)",
		         uv_err_name((int)nread));
		tls_fail(c, why);
		return;
	}
	BIO_write(c->rbio, buf->base, (int)nread);
	tls_step(c);
}

static void tls_start(conn_t *c)
{
	probe_run_t *run = c->run;
	const matrix_target_t *mt = &run->plan->targets[run->jobs[c->job].target];
	int result;

	if (!run->cfg.tls_ctx) {
		tls_fail(c, "no TLS context");
		return;
	}
	c->ssl = SSL_new(run->cfg.tls_ctx);
	c->rbio = BIO_new(BIO_s_mem());
	c->wbio = BIO_new(BIO_s_mem());
	c->rbuf = malloc(PROBE_TLS_BUF);
	if (!c->ssl || !c->rbio || !c->wbio || !c->rbuf) {
		BIO_free(c->rbio);
		BIO_free(c->wbio);
		c->rbio = c->wbio = NULL;
		tls_fail(c, "out of memory");
		return;
	}
	SSL_set_bio(c->ssl, c->rbio, c->wbio);
	SSL_set_connect_state(c->ssl);
	SSL_set_verify(c->ssl, SSL_VERIFY_PEER, NULL);
	if (is_ip_literal(mt->target)) {
		X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), mt->target);
	} else {
		SSL_set_tlsext_host_name(c->ssl, mt->target);
		SSL_set1_host(c->ssl, mt->target);
	}
	/* The handshake gets a timeout of its own, as long as the connect's. */
	uv_timer_again(&c->timer);
	result = uv_read_start((uv_stream_t *)&c->h.tcp, on_alloc, on_tls_read);
	if (result) {
		tls_fail(c, uv_strerror(result));
		return;
	}
	tls_step(c);
}

static void on_connect(uv_connect_t *req, int status)
{
	conn_t *c = container_of(req, conn_t, connect_req);
	probe_run_t *run = c->run;
	const matrix_target_t *mt = &run->plan->targets[run->jobs[c->job].target];

	if (c->decided || status == UV_ECANCELED)
		return;
	if (status < 0) {
		classify_failure(c, status);
		conn_finish(c);
		return;
	}
	c->connected = true;
	c->res.state = VERDICT_STATE_OPEN;
	c->res.latency_us = (int64_t)elapsed_us(c);
	if (mt->tls) {
		tls_start(c);
		return;
	}
	conn_finish(c);
}

static void on_timeout(uv_timer_t *t)
{
	conn_t *c = container_of(t, conn_t, timer);

	if (c->decided)
		return;
	if (c->connected) {
		tls_fail(c, "handshake timed out");
		return;
	}
	c->res.state = VERDICT_STATE_FILTERED;
	c->res.latency_us = (int64_t)elapsed_us(c);
	snprintf(c->res.detail, sizeof(c->res.detail), "no answer within %u ms",
	         c->run->cfg.timeout_ms);
	conn_finish(c);
}

/*
 * On loopback and other fast paths the answer (SYN-ACK or RST) is processed
 * before connect() even returns. Classifying it at once spares the event loop
 * registering the socket at all, which is most of a sweep's cost. Returns true
 * when the probe was decided.
 */
static bool settled_at_once(conn_t *c)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);
	int err = 0;

	if (getsockopt(c->fd, IPPROTO_TCP, TCP_INFO, &ti, &len))
		return false;
	if (ti.tcpi_state == TCP_ESTABLISHED) {
		c->res.state = VERDICT_STATE_OPEN;
		c->res.latency_us = (int64_t)elapsed_us(c);
		conn_finish(c);
		return true;
	}
	if (ti.tcpi_state != TCP_CLOSE)
		return false;
	len = sizeof(err);
	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) || !err)
		return false;
	classify_failure(c, -err);
	conn_finish(c);
	return true;
}

/* A plain probe's socket became writable: the handshake completed or failed. */
static void on_writable(uv_poll_t *p, int status, int events)
{
	conn_t *c = container_of(p, conn_t, h.poll);
	socklen_t len = sizeof(int);
	int err = 0;

	(void)events;
	if (c->decided)
		return;
	/* The socket's own error first: libuv reports any error on a polled
	 * socket as UV_EBADF, which would turn a late RST into a local error. */
	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len))
		err = errno;
	else if (!err && status < 0)
		err = -status;
	if (err) {
		classify_failure(c, -err);
	} else {
		c->res.state = VERDICT_STATE_OPEN;
		c->res.latency_us = (int64_t)elapsed_us(c);
	}
	conn_finish(c);
}

/* Arms the probe's timeout. */
static void start_timer(conn_t *c)
{
	probe_run_t *run = c->run;

	uv_timer_init(run->loop, &c->timer);
	c->timer.data = c;
	c->handles |= HANDLE_TIMER;
	/* The loop's clock is cached and counts whole milliseconds: refresh it and
	 * round up, so that filtered is never reported before the timeout. */
	uv_update_time(run->loop);
	uv_timer_start(&c->timer, on_timeout, run->cfg.timeout_ms + 1, run->cfg.timeout_ms);
}

/* A connect that fails at once (no route, no source address) never left this
 * host: a local error, not a network answer. */
static void local_error(conn_t *c, const char *what, int uverr)
{
	c->res.state = VERDICT_STATE_ERROR;
	c->res.latency_us = -1;
	snprintf(c->res.detail, sizeof(c->res.detail), "%s: %s (%s)", what, uv_strerror(uverr),
	         uv_err_name(uverr));
	conn_finish(c);
}

/* A plain probe: connect() on the raw socket, and the loop only if it must wait. */
static void connect_plain(conn_t *c, const addr_t *addr)
{
	socklen_t len = addr->sa.sa_family == AF_INET ? sizeof(addr->v4) : sizeof(addr->v6);
	int result;

	if (connect(c->fd, &addr->sa, len) && errno != EINPROGRESS) {
		if (errno == ECONNREFUSED) {
			classify_failure(c, UV_ECONNREFUSED);
			conn_finish(c);
			return;
		}
		local_error(c, "connect", -errno);
		return;
	}
	if (settled_at_once(c))
		return;
	result = uv_poll_init_socket(c->run->loop, &c->h.poll, c->fd);
	if (result) {
		local_error(c, "poll", result);
		return;
	}
	c->h.poll.data = c;
	c->handles |= HANDLE_POLL;
	result = uv_poll_start(&c->h.poll, UV_WRITABLE, on_writable);
	if (result) {
		local_error(c, "poll", result);
		return;
	}
	start_timer(c);
}

/* A TLS probe: the socket becomes a libuv stream, for the handshake's reads and
 * writes. */
static void connect_tls(conn_t *c, const addr_t *addr)
{
	int result;

	uv_tcp_init(c->run->loop, &c->h.tcp);
	c->h.tcp.data = c;
	result = uv_tcp_open(&c->h.tcp, c->fd);
	c->handles |= HANDLE_TCP; /* the handle owns the fd from now on */
	if (result) {
		local_error(c, "socket", result);
		return;
	}
	result = uv_tcp_connect(&c->connect_req, &c->h.tcp, &addr->sa, on_connect);
	if (result) {
		local_error(c, "connect", result);
		return;
	}
	start_timer(c);
}

/* Starts job `ji`. Any failure is recorded as the job's result. */
static void start_job(probe_run_t *run, size_t ji)
{
	job_t *j = &run->jobs[ji];
	host_t *h = &run->hosts[j->host];
	const matrix_target_t *mt = &run->plan->targets[j->target];
	conn_t *c;
	int one = 1, fd;

	fd = socket(j->addr.sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		/* Out of descriptors is a local fact: never a filtered path. */
		char what[PROBE_DETAIL_MAX];
		int e = -errno;

		snprintf(what, sizeof(what), "%s (%s)", uv_strerror(e), uv_err_name(e));
		record_error(run, j->target, j->order, h->name, "socket: %s", what);
		return;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		record_error(run, j->target, j->order, h->name, "%s", "out of memory");
		return;
	}
	c->run = run;
	c->job = ji;
	c->fd = fd;
	c->next = run->conns;
	if (run->conns)
		run->conns->prev = c;
	run->conns = c;
	c->res.target = j->target;
	c->res.order = j->order;
	snprintf(c->res.address, sizeof(c->res.address), "%s", h->name);
	c->res.at_ms = timefmt_now_ms();
	c->start_ns = uv_hrtime();
	run->live_conns++;
	run->inflight++;
	h->inflight++;

	/* ICMP errors are queued on the socket, with their sender: that is how
	 * rejected (the destination answered) differs from unreachable. */
	if (j->addr.sa.sa_family == AF_INET)
		setsockopt(fd, SOL_IP, IP_RECVERR, &one, sizeof(one));
	else
		setsockopt(fd, SOL_IPV6, IPV6_RECVERR, &one, sizeof(one));
	if (mt->tls)
		connect_tls(c, &j->addr);
	else
		connect_plain(c, &j->addr);
}

static void on_rate_timer(uv_timer_t *t)
{
	probe_run_t *run = container_of(t, probe_run_t, rate_timer);

	run->rate_timer_armed = false;
	dispatch(run);
}

/* Token bucket: true when a probe may start now; otherwise arms the timer. */
static bool take_token(probe_run_t *run)
{
	uint64_t now = uv_hrtime();
	double burst = run->cfg.rate / 100.0; /* 10 ms worth of probes */
	double wait_ms;

	if (!run->cfg.rate)
		return true;
	if (burst < 1)
		burst = 1;
	run->tokens += (double)(now - run->tokens_at_ns) * run->cfg.rate / 1e9;
	run->tokens_at_ns = now;
	if (run->tokens > burst)
		run->tokens = burst;
	if (run->tokens >= 1) {
		run->tokens -= 1;
		return true;
	}
	if (!run->rate_timer_armed) {
		wait_ms = (1 - run->tokens) * 1000.0 / run->cfg.rate;
		uv_timer_start(&run->rate_timer, on_rate_timer, (uint64_t)wait_ms + 1, 0);
		run->rate_timer_armed = true;
	}
	return false;
}

/* Picks the next host, round-robin, with a queued job and room under its cap. */
static host_t *next_host(probe_run_t *run)
{
	size_t i;

	for (i = 0; i < run->n_hosts; i++) {
		host_t *h = &run->hosts[(run->rr + i) % run->n_hosts];

		if (h->head == h->len)
			continue;
		if (run->cfg.per_host && h->inflight >= run->cfg.per_host)
			continue;
		run->rr = (run->rr + i + 1) % run->n_hosts;
		return h;
	}
	return NULL;
}

static void dispatch(probe_run_t *run)
{
	/* Results recorded while starting jobs call back into dispatch(); the
	 * loop below picks up whatever they freed. */
	if (run->in_dispatch)
		return;
	run->in_dispatch = true;
	/* Connections still closing count too: probes settled at once would
	 * otherwise pile up in memory until the loop runs their close callbacks. */
	while (run->queued > 0 && run->inflight < run->cfg.concurrency &&
	       run->live_conns < run->cfg.concurrency) {
		host_t *h = next_host(run);

		if (!h || !take_token(run))
			break;
		run->queued--;
		start_job(run, h->queue[h->head++]);
	}
	run->in_dispatch = false;
	/* The last jobs may have failed at once, with nothing left to call back. */
	maybe_finish(run);
}

static int cmp_results(const void *a, const void *b)
{
	const probe_result_t *x = a, *y = b;

	if (x->target != y->target)
		return x->target < y->target ? -1 : 1;
	if (x->order != y->order)
		return x->order < y->order ? -1 : 1;
	return 0;
}

static void on_run_closed(uv_handle_t *h)
{
	probe_run_t *run = container_of((uv_timer_t *)h, probe_run_t, rate_timer);

	/* A round may have no result at all (and no array): qsort() must not get NULL. */
	if (run->n_results)
		qsort(run->results, run->n_results, sizeof(*run->results), cmp_results);
	run->done(run, run->arg);
}

static void maybe_finish(probe_run_t *run)
{
	if (run->finishing || run->pending_resolves || run->queued || run->inflight ||
	    run->live_conns)
		return;
	run->finishing = true;
	uv_close((uv_handle_t *)&run->rate_timer, on_run_closed);
}

probe_run_t *probe_run_start(uv_loop_t *loop, const probe_config_t *cfg, const matrix_plan_t *plan,
                             probe_done_cb done, void *arg)
{
	probe_run_t *run;
	struct addrinfo hints;
	addr_t lit;
	size_t t, u;

	if (!loop || !cfg || !plan || !done || !cfg->concurrency || !cfg->timeout_ms)
		return NULL;
	run = calloc(1, sizeof(*run));
	if (!run)
		return NULL;
	run->loop = loop;
	run->cfg = *cfg;
	if (!run->cfg.max_addresses)
		run->cfg.max_addresses = PROBE_DEFAULT_MAX_ADDRESSES;
	if (run->cfg.max_addresses > PROBE_MAX_ADDRESSES)
		run->cfg.max_addresses = PROBE_MAX_ADDRESSES;
	run->plan = plan;
	run->done = done;
	run->arg = arg;
	if (cfg->own_address) {
		run->own_address = strdup(cfg->own_address);
		if (!run->own_address)
			goto fail;
	}
	run->cfg.own_address = run->own_address;
	run->resolves = calloc(plan->n_targets ? plan->n_targets : 1, sizeof(*run->resolves));
	if (!run->resolves)
		goto fail;
	uv_timer_init(loop, &run->rate_timer);
	run->tokens = 1;
	run->tokens_at_ns = uv_hrtime();

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_ADDRCONFIG;
	/* Resolve each distinct name once, whatever number of ports it has. */
	run->in_dispatch = true; /* synchronous callbacks must not dispatch yet */
	for (t = 0; t < plan->n_targets; t++) {
		bool seen = false;
		resolve_t *rs;
		int result;

		if (!plan->targets[t].probe)
			continue;
		/* Ports of one endpoint are consecutive in a plan: check the previous
		 * target first, so that a plan of thousands of ports stays linear. */
		u = t;
		while (u > 0 && !plan->targets[u - 1].probe)
			u--;
		if (u > 0 && !strcmp(plan->targets[u - 1].target, plan->targets[t].target))
			continue;
		for (u = 0; u < t && !seen; u++)
			seen = plan->targets[u].probe &&
			       !strcmp(plan->targets[u].target, plan->targets[t].target);
		if (seen)
			continue;
		if (literal_address(plan->targets[t].target, &lit)) {
			/* An IP literal needs no resolver (nor its descriptors). */
			if (!same_address(&lit, run->own_address))
				add_jobs(run, t, &lit, 0);
			continue;
		}
		rs = calloc(1, sizeof(*rs));
		if (!rs) {
			fail_name(run, t, UV_ENOMEM);
			continue;
		}
		run->resolves[run->n_resolves++] = rs;
		rs->run = run;
		rs->first_target = t;
		rs->pending = true;
		run->pending_resolves++;
		result = uv_getaddrinfo(loop, &rs->req, on_resolved, plan->targets[t].target, NULL,
		                        &hints);
		if (result) {
			rs->pending = false;
			run->pending_resolves--;
			fail_name(run, t, result);
		}
	}
	run->in_dispatch = false;
	dispatch(run);
	return run;
fail:
	free(run->own_address);
	free(run);
	return NULL;
}

void probe_run_cancel(probe_run_t *run)
{
	size_t i;

	if (!run || run->cancelled || run->finishing)
		return;
	run->cancelled = true;
	/* No new probe starts: dispatch() finds nothing queued. */
	for (i = 0; i < run->n_hosts; i++)
		run->hosts[i].head = run->hosts[i].len;
	run->queued = 0;
	uv_timer_stop(&run->rate_timer);
	run->rate_timer_armed = false;
	/* Lookups in flight are orphaned: each frees itself when its thread
	 * returns (a lookup already running cannot be interrupted), and adds no
	 * probe. */
	for (i = 0; i < run->n_resolves; i++) {
		resolve_t *rs = run->resolves[i];

		if (!rs || !rs->pending)
			continue;
		uv_cancel((uv_req_t *)&rs->req);
		rs->run = NULL;
		run->resolves[i] = NULL;
	}
	run->pending_resolves = 0;
	/* Connections in flight are closed, their result unrecorded. */
	run->in_dispatch = true;
	while (run->conns) {
		conn_t *c = run->conns;

		conn_settle(c);
		conn_close(c);
	}
	run->in_dispatch = false;
	maybe_finish(run);
}

bool probe_run_cancelled(const probe_run_t *run)
{
	return run->cancelled;
}

static int cmp_by_address(const void *a, const void *b)
{
	const probe_result_t *const *x = a, *const *y = b;

	return strcmp((*x)->address, (*y)->address);
}

int probe_judge(const matrix_plan_t *plan, const probe_result_t *res, size_t n, bool *alive,
                verdict_t *verdicts)
{
	const probe_result_t **by = calloc(n ? n : 1, sizeof(*by));
	size_t i, g, k;

	if (!by)
		return -ENOMEM;
	for (i = 0; i < n; i++)
		by[i] = &res[i];
	/* Grouped by address (sorted pointers): a sweep of thousands stays fast. */
	qsort(by, n, sizeof(*by), cmp_by_address);
	for (g = 0; g < n; g = k) {
		bool any = false;

		for (k = g; k < n && !strcmp(by[k]->address, by[g]->address); k++)
			any |= verdict_state_proves_alive(by[k]->state);
		/* A result with no address (a DNS failure) proves nothing about any. */
		any &= by[g]->address[0] != '\0';
		for (i = g; i < k; i++) {
			const matrix_target_t *t = &plan->targets[by[i]->target];
			size_t at = (size_t)(by[i] - res);

			if (alive)
				alive[at] = any;
			verdicts[at] =
			    verdict_of(t->expected, by[i]->state, by[i]->tls, any, t->silent);
		}
	}
	free(by);
	return 0;
}

const probe_result_t *probe_run_results(const probe_run_t *run, size_t *n)
{
	*n = run->n_results;
	return run->results;
}

void probe_run_free(probe_run_t *run)
{
	size_t i;

	if (!run)
		return;
	for (i = 0; i < run->n_hosts; i++)
		free(run->hosts[i].queue);
	for (i = 0; i < run->n_resolves; i++)
		free(run->resolves[i]); /* NULL when orphaned: the lookup frees itself */
	free(run->hosts);
	free(run->jobs);
	free(run->results);
	free(run->resolves);
	free(run->own_address);
	free(run);
}
