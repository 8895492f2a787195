// SPDX-License-Identifier: MIT
/*
 * labd — the lab's stand-in for a service: it listens on the given TCP ports,
 * accepts every connection and closes it at once. On a TLS port it first
 * completes a TLS server handshake (so a prober can check the certificate),
 * then closes.
 *
 *   labd [--bind ADDR] --port P [--port P ...]
 *        [--tls-port P ... --cert FILE --key FILE] [--pidfile FILE]
 *
 * One process, one poll() loop: listening sockets and TLS handshakes in
 * progress are all non-blocking, each handshake has its own 2 s deadline, so a
 * client that stalls never holds up the others. SIGTERM or SIGINT end it
 * cleanly (exit 0, pidfile removed). It is test scaffolding for tests/lab/
 * (lab.sh), not part of sgprobe.
 */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#define MAX_LISTENERS   256
#define MAX_CONNS       1024 /* TLS handshakes in flight; beyond that, close at once */
#define BACKLOG         1024
#define TLS_DEADLINE_MS 2000

struct listener {
	int fd;
	int port;
	int tls;
};

struct conn {
	int fd; /* -1: free slot */
	SSL *ssl;
	uint64_t deadline_ms;
	short events; /* what the handshake waits for: POLLIN or POLLOUT */
};

static struct listener listeners[MAX_LISTENERS];
static int nlisteners;
static struct conn conns[MAX_CONNS];
static volatile sig_atomic_t stop_requested;

static void usage(void)
{
	fprintf(stderr,
	        "usage: labd [--bind ADDR] --port P [--port P ...] [--tls-port P ... --cert "
	        "FILE --key FILE] [--pidfile FILE]\n");
	exit(2);
}

static void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int parse_port(const char *s)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < 1 || v > 65535) {
		fprintf(stderr, "labd: bad port '%s'\n", s);
		exit(2);
	}
	return (int)v;
}

/* Adds a port to listen on; a port given both plain and TLS is TLS. */
static void add_port(int port, int tls)
{
	for (int i = 0; i < nlisteners; i++) {
		if (listeners[i].port == port) {
			listeners[i].tls |= tls;
			return;
		}
	}
	if (nlisteners == MAX_LISTENERS) {
		fprintf(stderr, "labd: more than %d ports\n", MAX_LISTENERS);
		exit(2);
	}
	listeners[nlisteners].fd = -1;
	listeners[nlisteners].port = port;
	listeners[nlisteners].tls = tls;
	nlisteners++;
}

/* A non-blocking listening socket on addr:port (addr NULL: 0.0.0.0); exits on error. */
static int listen_on(const char *addr, int port)
{
	struct addrinfo hints, *ai;
	char service[8];
	int fd, one = 1, rc;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = addr ? AF_UNSPEC : AF_INET;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV;
	snprintf(service, sizeof(service), "%d", port);
	rc = getaddrinfo(addr, service, &hints, &ai);
	if (rc != 0) {
		fprintf(stderr, "labd: --bind %s: %s\n", addr ? addr : "", gai_strerror(rc));
		exit(2);
	}
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, BACKLOG) < 0) {
		fprintf(stderr, "labd: listen on %s port %d: %s\n", addr ? addr : "*", port,
		        strerror(errno));
		exit(1);
	}
	freeaddrinfo(ai);
	return fd;
}

static SSL_CTX *tls_context(const char *cert, const char *key)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	if (!ctx || !SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) ||
	    SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		fprintf(stderr, "labd: TLS setup with cert %s, key %s failed:\n", cert, key);
		ERR_print_errors_fp(stderr);
		exit(1);
	}
	return ctx;
}

static void conn_close(struct conn *c)
{
	SSL_free(c->ssl);
	close(c->fd);
	c->ssl = NULL;
	c->fd = -1;
}

/* Advances a TLS handshake as far as it goes without blocking; closes the connection when the
 * handshake is over, successful or not. */
static void conn_step(struct conn *c)
{
	int rc, err;

	ERR_clear_error();
	rc = SSL_accept(c->ssl);
	if (rc == 1) {
		SSL_shutdown(c->ssl); /* one close_notify, best effort; no wait for the peer's */
		conn_close(c);
		return;
	}
	err = SSL_get_error(c->ssl, rc);
	if (err == SSL_ERROR_WANT_READ) {
		c->events = POLLIN;
	} else if (err == SSL_ERROR_WANT_WRITE) {
		c->events = POLLOUT;
	} else {
		ERR_clear_error(); /* the client left or did not speak TLS: not our problem */
		conn_close(c);
	}
}

/* Accepts every pending connection on a listener: plain ones are closed at once, TLS ones start
 * their handshake. */
static void accept_all(struct listener *l, SSL_CTX *ctx)
{
	for (;;) {
		int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct conn *c = NULL;

		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE)
				fprintf(stderr, "labd: accept on port %d: %s\n", l->port,
				        strerror(errno));
			return; /* EAGAIN: drained; anything else: try again on the next poll */
		}
		if (!l->tls) {
			close(fd);
			continue;
		}
		for (int i = 0; i < MAX_CONNS && !c; i++)
			if (conns[i].fd < 0)
				c = &conns[i];
		if (!c || !(c->ssl = SSL_new(ctx))) {
			close(fd); /* too many handshakes in flight */
			continue;
		}
		SSL_set_fd(c->ssl, fd);
		c->fd = fd;
		c->deadline_ms = now_ms() + TLS_DEADLINE_MS;
		conn_step(c);
	}
}

/* Lets the process hold as many descriptors as its hard limit allows. */
static void raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static void write_pidfile(const char *path)
{
	FILE *f = fopen(path, "w");

	if (!f || fprintf(f, "%ld\n", (long)getpid()) < 0 || fclose(f) != 0) {
		fprintf(stderr, "labd: pidfile %s: %s\n", path, strerror(errno));
		exit(1);
	}
}

int main(int argc, char **argv)
{
	const char *bind_addr = NULL, *cert = NULL, *key = NULL, *pidfile = NULL;
	static struct pollfd pfds[MAX_LISTENERS + MAX_CONNS];
	static struct conn *pconn[MAX_LISTENERS + MAX_CONNS];
	SSL_CTX *ctx = NULL;
	int any_tls = 0;
	struct sigaction sa;
	sigset_t block, unblocked;

	for (int i = 1; i < argc; i++) {
		const char *opt = argv[i];

		if (i + 1 >= argc)
			usage();
		if (strcmp(opt, "--bind") == 0)
			bind_addr = argv[++i];
		else if (strcmp(opt, "--port") == 0)
			add_port(parse_port(argv[++i]), 0);
		else if (strcmp(opt, "--tls-port") == 0)
			add_port(parse_port(argv[++i]), 1);
		else if (strcmp(opt, "--cert") == 0)
			cert = argv[++i];
		else if (strcmp(opt, "--key") == 0)
			key = argv[++i];
		else if (strcmp(opt, "--pidfile") == 0)
			pidfile = argv[++i];
		else
			usage();
	}
	for (int i = 0; i < nlisteners; i++)
		any_tls |= listeners[i].tls;
	if (nlisteners == 0 || (any_tls && (!cert || !key)))
		usage();

	/* SIGTERM/SIGINT are blocked except inside ppoll(), so a stop is never missed between
	 * the check of stop_requested and the wait. SIGPIPE would kill us on a write to a
	 * client that has gone. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigprocmask(SIG_BLOCK, &block, &unblocked);
	sigdelset(&unblocked, SIGTERM);
	sigdelset(&unblocked, SIGINT);

	raise_nofile();
	if (any_tls)
		ctx = tls_context(cert, key);
	for (int i = 0; i < nlisteners; i++)
		listeners[i].fd = listen_on(bind_addr, listeners[i].port);
	for (int i = 0; i < MAX_CONNS; i++)
		conns[i].fd = -1;
	if (pidfile)
		write_pidfile(pidfile);

	while (!stop_requested) {
		uint64_t now = now_ms(), next = UINT64_MAX;
		struct timespec ts, *tsp = NULL;
		nfds_t n = 0;
		int rc;

		/* Listeners first, then the handshakes in progress; expired handshakes are
		 * dropped here. */
		for (int i = 0; i < nlisteners; i++) {
			pfds[n].fd = listeners[i].fd;
			pfds[n].events = POLLIN;
			pconn[n++] = NULL;
		}
		for (int i = 0; i < MAX_CONNS; i++) {
			struct conn *c = &conns[i];

			if (c->fd < 0)
				continue;
			if (c->deadline_ms <= now) {
				conn_close(c);
				continue;
			}
			if (c->deadline_ms < next)
				next = c->deadline_ms;
			pfds[n].fd = c->fd;
			pfds[n].events = c->events;
			pconn[n++] = c;
		}
		if (next != UINT64_MAX) {
			ts.tv_sec = (time_t)((next - now) / 1000u);
			ts.tv_nsec = (long)((next - now) % 1000u) * 1000000L;
			tsp = &ts;
		}

		rc = ppoll(pfds, n, tsp, &unblocked);
		if (rc < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "labd: poll: %s\n", strerror(errno));
			return 1;
		}
		for (nfds_t i = 0; i < n && rc > 0; i++) {
			if (!pfds[i].revents)
				continue;
			rc--;
			/* On POLLERR/POLLHUP too: the handshake step fails and closes. */
			if (pconn[i])
				conn_step(pconn[i]);
			else
				accept_all(&listeners[i], ctx);
		}
	}

	for (int i = 0; i < MAX_CONNS; i++)
		if (conns[i].fd >= 0)
			conn_close(&conns[i]);
	for (int i = 0; i < nlisteners; i++)
		close(listeners[i].fd);
	SSL_CTX_free(ctx);
	if (pidfile)
		unlink(pidfile);
	return 0;
}
