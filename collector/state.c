/*
 * state: what the collector knows, and the evaluation of DESIGN.md's matrix cells
 * from it ("Observations, liveness and verdicts", "Collector").
 *
 * Layout. Five intrusive, chained hash tables:
 *   agents    by id;
 *   addresses by canonical address text: the liveness evidence of an address,
 *             shared by every observation and agent there (reference counted);
 *   cells     by (source role, destination role, port) as reported, holding the
 *             cell's observations and, when the matrix knows the cell, what the
 *             matrix says of it. Observations are grouped by the reported strings,
 *             not by the matrix, so that a reload only relabels cells and never
 *             moves an observation;
 *   obs       by (agent, address, port), or (agent, target, port) for an error
 *             with no address;
 *   clusters  by name, for the per-cluster sums of CloudWatch.
 * Observations also sit in three lists (their agent's, their cell's, and one in
 * order of reception for expiry), agents in one in order of their last report.
 * Ingest is then O(results), expiry O(what expires). Evaluation (views, counts)
 * walks the cells and their observations, O(state), at the rate of scrapes and
 * flushes rather than reports. Liveness is kept on the address as it arrives, so
 * that evaluation never has to search for it.
 *
 * The tables hash with FNV-1a: a few lines, not a dependency's job (DESIGN.md's
 * "no hash function" is about the cryptographic ones). The keys come from
 * authenticated agents only, so flooding a chain needs a key.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "state.h"
#include "sgprobe/container.h"

/* Large enough for a timestamp with nanoseconds (30 bytes) and its NUL. */
#define AT_MAX 32

/* Large enough for report_format_time(). */
#define TIME_MAX 32

/* ---- lists ---------------------------------------------------------------- */

/* A node of an intrusive doubly linked list; a list is a sentinel node. */
typedef struct link_s {
	struct link_s *prev;
	struct link_s *next;
} link_t;

static void list_init(link_t *l)
{
	l->prev = l;
	l->next = l;
}

static bool list_empty(const link_t *head)
{
	return head->next == head;
}

static void list_append(link_t *head, link_t *l)
{
	l->prev = head->prev;
	l->next = head;
	head->prev->next = l;
	head->prev = l;
}

static void list_unlink(link_t *l)
{
	l->prev->next = l->next;
	l->next->prev = l->prev;
	list_init(l);
}

/* ---- hash tables ---------------------------------------------------------- */

typedef struct hnode_s {
	struct hnode_s *next;
	uint64_t hash;
} hnode_t;

typedef struct {
	hnode_t **b;
	size_t mask; /* buckets - 1; the bucket count is a power of two */
	size_t n;
} htab_t;

#define HTAB_MIN_BUCKETS 64

#define HASH_INIT  UINT64_C(14695981039346656037)
#define HASH_PRIME UINT64_C(1099511628211)

static uint64_t hash_bytes(uint64_t h, const void *p, size_t n)
{
	const unsigned char *c = p;

	while (n--) {
		h ^= *c++;
		h *= HASH_PRIME;
	}
	return h;
}

/* Hashes a string with its NUL, so that ("ab", "c") and ("a", "bc") differ. */
static uint64_t hash_str(uint64_t h, const char *s)
{
	return hash_bytes(h, s, strlen(s) + 1);
}

static size_t bucket_of(uint64_t hash, size_t mask)
{
	/* FNV's low bits only see the low bits of each byte: fold the high ones in. */
	return (size_t)(hash ^ (hash >> 32)) & mask;
}

static int htab_init(htab_t *t)
{
	t->b = calloc(HTAB_MIN_BUCKETS, sizeof(*t->b));
	if (!t->b)
		return -ENOMEM;
	t->mask = HTAB_MIN_BUCKETS - 1;
	t->n = 0;
	return 0;
}

static void htab_dispose(htab_t *t)
{
	free(t->b);
	t->b = NULL;
	t->n = 0;
}

static hnode_t *htab_chain(const htab_t *t, uint64_t hash)
{
	return t->b[bucket_of(hash, t->mask)];
}

/*
 * Doubles the buckets. When that allocation fails the old buckets stay: lookups
 * get slower, nothing breaks, so that inserting never fails and callers can
 * allocate everything before they change anything.
 */
static void htab_grow(htab_t *t)
{
	size_t size = (t->mask + 1) * 2;
	hnode_t **b;
	size_t i;

	if (size > SIZE_MAX / sizeof(*b))
		return;
	b = calloc(size, sizeof(*b));
	if (!b)
		return;
	for (i = 0; i <= t->mask; i++) {
		hnode_t *n = t->b[i];

		while (n) {
			hnode_t *next = n->next;
			size_t j = bucket_of(n->hash, size - 1);

			n->next = b[j];
			b[j] = n;
			n = next;
		}
	}
	free(t->b);
	t->b = b;
	t->mask = size - 1;
}

static void htab_insert(htab_t *t, hnode_t *n)
{
	size_t i;

	if (t->n > t->mask)
		htab_grow(t);
	i = bucket_of(n->hash, t->mask);
	n->next = t->b[i];
	t->b[i] = n;
	t->n++;
}

static void htab_remove(htab_t *t, hnode_t *n)
{
	hnode_t **p = &t->b[bucket_of(n->hash, t->mask)];

	while (*p && *p != n)
		p = &(*p)->next;
	if (*p) {
		*p = n->next;
		t->n--;
	}
}

/* ---- the records ---------------------------------------------------------- */

/* An address and the evidence that it is alive. */
typedef struct {
	hnode_t node;
	char *text;  /* canonical: IP literals as inet_ntop() writes them */
	size_t refs; /* observations and agents at this address */
	/* The evidence that lasts longest: seen at seen_ms with period period_ms. */
	uint64_t seen_ms;
	uint64_t period_ms;
} address_t;

/* A cluster name, shared by its agents. */
typedef struct {
	hnode_t node;
	char *name;
	size_t refs; /* its agents */
	size_t slot; /* index in state_t.cluster_v, for per-cluster sums */
} cluster_t;

/* A role of the current matrix, for lookups by name. */
typedef struct {
	hnode_t node;
	const char *name; /* borrowed from the matrix */
	size_t index;
} role_t;

/* A cell: (source role, destination role, port) as reported. */
typedef struct {
	hnode_t node;
	char *src_role;
	char *dst_role;
	uint16_t port;
	link_t obs; /* obs_t.by_cell */
	size_t n_obs;
	/* What the current matrix says of it; the rest is meaningful only when known. */
	bool known;
	bool always; /* in the view even unobserved: its source role has agents */
	bool probe;  /* false: an allowed path towards a probe_allowed:false destination */
	bool silent; /* a timeout here proves nothing */
	verdict_expect_t expected;
	uint64_t interval_ms; /* the probe interval of the path */
} cell_t;

typedef struct agent_s agent_t;

/* The latest observation of one agent about one address (or target) and port. */
typedef struct {
	hnode_t node;
	link_t lru;      /* state_t.obs_lru, by reception */
	link_t by_agent; /* agent_t.obs */
	link_t by_cell;  /* cell_t.obs */
	agent_t *agent;
	cell_t *cell;
	address_t *addr; /* NULL for an error with no address */
	char *target;
	uint16_t port;
	verdict_state_t state;
	verdict_tls_t tls;
	int64_t latency_us; /* -1: none */
	char at[AT_MAX];    /* the agent's clock */
	uint64_t received_ms;
	uint64_t received_wall;
	bool once; /* from a `once` report: never stale, only aged out */
} obs_t;

struct agent_s {
	hnode_t node;
	link_t lru; /* state_t.agent_lru, by last report */
	link_t obs; /* obs_t.by_agent */
	size_t n_obs;
	char *id;
	char *role;
	char *az;      /* NULL when none */
	char *version; /* NULL when none */
	char *boot;
	cluster_t *cluster;
	address_t *addr; /* where it reports from; NULL when unknown */
	uint64_t seq;    /* the highest accepted for this boot, when have_seq */
	bool have_seq;
	bool daemon; /* sent a daemon report: it can go stale */
	uint64_t last_seen_ms;
	uint64_t last_seen_wall;
	uint64_t period_ms; /* max(interval, round duration) of its latest report */
};

struct state_s {
	const matrix_t *m;
	state_limits_t limits;
	htab_t agents;
	htab_t addresses;
	htab_t cells;
	htab_t obs;
	htab_t clusters;
	htab_t roles;
	role_t *role_v; /* the nodes of `roles`, one per matrix role */
	link_t agent_lru;
	link_t obs_lru;
	cell_t **order; /* the matrix's cells, in view order */
	size_t n_order;
	size_t n_always;       /* cells of `order` with `always` */
	cluster_t **cluster_v; /* dense: cluster_v[c->slot] == c */
	size_t n_clusters;
	size_t cap_clusters;
};

/* ---- time ----------------------------------------------------------------- */

/*
 * True when something seen at `seen_ms`, recurring every `period_ms`, is still
 * current at `now_ms`. It is the liveness window (VERDICT_ALIVE_PERIODS periods),
 * which DESIGN.md also uses for staleness, so verdict_alive() answers both.
 */
static bool current(uint64_t seen_ms, uint64_t period_ms, uint64_t now_ms)
{
	return verdict_alive(seen_ms, period_ms, now_ms);
}

static bool older_than(uint64_t t, uint64_t age_ms, uint64_t now_ms)
{
	return now_ms > t && now_ms - t > age_ms;
}

static uint64_t max_u64(uint64_t a, uint64_t b)
{
	return a > b ? a : b;
}

/* ---- addresses ------------------------------------------------------------ */

/*
 * The canonical text of an address, so that "::ffff:10.0.0.1" and "10.0.0.1",
 * or two spellings of an IPv6 address, share their liveness. A name stays as it
 * is. Returns `in` or `buf` (at least INET6_ADDRSTRLEN bytes).
 */
static const char *canon_address(const char *in, char *buf, size_t buflen)
{
	struct in6_addr a6;
	struct in_addr a4;

	if (inet_pton(AF_INET, in, &a4) == 1)
		return in; /* inet_pton() takes only the canonical dotted quad */
	if (inet_pton(AF_INET6, in, &a6) != 1)
		return in;
	if (IN6_IS_ADDR_V4MAPPED(&a6)) {
		memcpy(&a4, &a6.s6_addr[12], sizeof(a4));
		if (inet_ntop(AF_INET, &a4, buf, (socklen_t)buflen))
			return buf;
	} else if (inet_ntop(AF_INET6, &a6, buf, (socklen_t)buflen)) {
		return buf;
	}
	return in;
}

static address_t *address_find(const state_t *s, const char *text)
{
	uint64_t h = hash_str(HASH_INIT, text);
	hnode_t *n;

	for (n = htab_chain(&s->addresses, h); n; n = n->next) {
		address_t *a = container_of(n, address_t, node);

		if (n->hash == h && !strcmp(a->text, text))
			return a;
	}
	return NULL;
}

/*
 * Finds or creates the address `text` (canonical). A new one has no references:
 * the caller takes one, or calls address_drop_if_unused(). NULL: out of memory.
 */
static address_t *address_get(state_t *s, const char *text)
{
	address_t *a = address_find(s, text);

	if (a)
		return a;
	a = calloc(1, sizeof(*a));
	if (!a)
		return NULL;
	a->text = strdup(text);
	if (!a->text) {
		free(a);
		return NULL;
	}
	a->node.hash = hash_str(HASH_INIT, text);
	htab_insert(&s->addresses, &a->node);
	return a;
}

static void address_drop_if_unused(state_t *s, address_t *a)
{
	if (!a || a->refs > 0)
		return;
	htab_remove(&s->addresses, &a->node);
	free(a->text);
	free(a);
}

static void address_release(state_t *s, address_t *a)
{
	if (!a)
		return;
	a->refs--;
	address_drop_if_unused(s, a);
}

/*
 * Records evidence that `a` is alive: seen at `seen_ms`, by something that
 * recurs every `period_ms`. Only the evidence that lasts longest is kept: a later
 * timeout does not undo an earlier answer, which stays evidence for its window.
 */
static void address_evidence(address_t *a, uint64_t seen_ms, uint64_t period_ms)
{
	if (!a->seen_ms || seen_ms + VERDICT_ALIVE_PERIODS * period_ms >=
	                       a->seen_ms + VERDICT_ALIVE_PERIODS * a->period_ms) {
		a->seen_ms = seen_ms;
		a->period_ms = period_ms;
	}
}

static bool address_alive(const address_t *a, uint64_t now_ms)
{
	return a && verdict_alive(a->seen_ms, a->period_ms, now_ms);
}

/* ---- clusters ------------------------------------------------------------- */

static cluster_t *cluster_find(const state_t *s, const char *name)
{
	uint64_t h = hash_str(HASH_INIT, name);
	hnode_t *n;

	for (n = htab_chain(&s->clusters, h); n; n = n->next) {
		cluster_t *c = container_of(n, cluster_t, node);

		if (n->hash == h && !strcmp(c->name, name))
			return c;
	}
	return NULL;
}

/* As address_get(), for a cluster. */
static cluster_t *cluster_get(state_t *s, const char *name)
{
	cluster_t *c = cluster_find(s, name);

	if (c)
		return c;
	if (s->n_clusters == s->cap_clusters) {
		size_t cap = s->cap_clusters ? s->cap_clusters * 2 : 8;
		cluster_t **v = realloc(s->cluster_v, cap * sizeof(*v));

		if (!v)
			return NULL;
		s->cluster_v = v;
		s->cap_clusters = cap;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->name = strdup(name);
	if (!c->name) {
		free(c);
		return NULL;
	}
	c->node.hash = hash_str(HASH_INIT, name);
	htab_insert(&s->clusters, &c->node);
	c->slot = s->n_clusters;
	s->cluster_v[s->n_clusters++] = c;
	return c;
}

static void cluster_drop_if_unused(state_t *s, cluster_t *c)
{
	cluster_t *last;

	if (!c || c->refs > 0)
		return;
	/* Keep cluster_v dense: the last one takes the freed slot. */
	last = s->cluster_v[--s->n_clusters];
	s->cluster_v[c->slot] = last;
	last->slot = c->slot;
	htab_remove(&s->clusters, &c->node);
	free(c->name);
	free(c);
}

static void cluster_release(state_t *s, cluster_t *c)
{
	if (!c)
		return;
	c->refs--;
	cluster_drop_if_unused(s, c);
}

/* ---- roles ---------------------------------------------------------------- */

/* The index of matrix role `name`, or SIZE_MAX. */
static size_t role_index(const state_t *s, const char *name)
{
	uint64_t h = hash_str(HASH_INIT, name);
	hnode_t *n;

	for (n = htab_chain(&s->roles, h); n; n = n->next) {
		role_t *r = container_of(n, role_t, node);

		if (n->hash == h && !strcmp(r->name, name))
			return r->index;
	}
	return SIZE_MAX;
}

/* ---- cells ---------------------------------------------------------------- */

static uint64_t cell_hash(const char *src, const char *dst, uint16_t port)
{
	return hash_bytes(hash_str(hash_str(HASH_INIT, src), dst), &port, sizeof(port));
}

static cell_t *cell_find(const state_t *s, const char *src, const char *dst, uint16_t port)
{
	uint64_t h = cell_hash(src, dst, port);
	hnode_t *n;

	for (n = htab_chain(&s->cells, h); n; n = n->next) {
		cell_t *c = container_of(n, cell_t, node);

		if (n->hash == h && c->port == port && !strcmp(c->src_role, src) &&
		    !strcmp(c->dst_role, dst))
			return c;
	}
	return NULL;
}

/* A new cell, not yet in the table, which the matrix does not know. */
static cell_t *cell_new(const char *src, const char *dst, uint16_t port)
{
	cell_t *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->src_role = strdup(src);
	c->dst_role = strdup(dst);
	if (!c->src_role || !c->dst_role) {
		free(c->src_role);
		free(c->dst_role);
		free(c);
		return NULL;
	}
	c->port = port;
	c->node.hash = cell_hash(src, dst, port);
	list_init(&c->obs);
	return c;
}

static void cell_free(cell_t *c)
{
	free(c->src_role);
	free(c->dst_role);
	free(c);
}

/* Finds or creates a cell (unknown to the matrix when new). NULL: out of memory. */
static cell_t *cell_get(state_t *s, const char *src, const char *dst, uint16_t port)
{
	cell_t *c = cell_find(s, src, dst, port);

	if (c)
		return c;
	c = cell_new(src, dst, port);
	if (c)
		htab_insert(&s->cells, &c->node);
	return c;
}

/* Cells the matrix knows stay (they are in the view); the others go with their last observation. */
static void cell_drop_if_unused(state_t *s, cell_t *c)
{
	if (c->known || c->n_obs > 0)
		return;
	htab_remove(&s->cells, &c->node);
	cell_free(c);
}

/* ---- observations --------------------------------------------------------- */

static uint64_t obs_hash(const agent_t *a, const address_t *addr, const char *target, uint16_t port)
{
	uint64_t h = hash_bytes(HASH_INIT, &a, sizeof(a));

	/* An address identifies the observation; a target only when there is none. */
	if (addr)
		h = hash_bytes(h, &addr, sizeof(addr));
	else
		h = hash_str(hash_bytes(h, "t", 1), target);
	return hash_bytes(h, &port, sizeof(port));
}

static obs_t *obs_find(const state_t *s, const agent_t *a, const address_t *addr,
                       const char *target, uint16_t port)
{
	uint64_t h = obs_hash(a, addr, target, port);
	hnode_t *n;

	for (n = htab_chain(&s->obs, h); n; n = n->next) {
		obs_t *o = container_of(n, obs_t, node);

		if (n->hash == h && o->agent == a && o->port == port && o->addr == addr &&
		    (addr || !strcmp(o->target, target)))
			return o;
	}
	return NULL;
}

static void obs_remove(state_t *s, obs_t *o)
{
	cell_t *c = o->cell;

	htab_remove(&s->obs, &o->node);
	list_unlink(&o->lru);
	list_unlink(&o->by_agent);
	list_unlink(&o->by_cell);
	o->agent->n_obs--;
	c->n_obs--;
	cell_drop_if_unused(s, c);
	address_release(s, o->addr);
	free(o->target);
	free(o);
}

/* The period of an observation: its agent's, or the path's when that is longer. */
static uint64_t obs_period(const obs_t *o)
{
	return max_u64(o->agent->period_ms, o->cell->known ? o->cell->interval_ms : 0);
}

static bool obs_fresh(const obs_t *o, uint64_t now_ms)
{
	return o->once || current(o->received_ms, obs_period(o), now_ms);
}

/*
 * The verdict one observation contributes at `now_ms`: `unknown` in a cell the
 * matrix lacks, `stale` when too old, else DESIGN.md's table against the
 * collector's own matrix (the agent's `expected` is informative only).
 */
static verdict_t obs_verdict(const obs_t *o, uint64_t now_ms)
{
	const cell_t *c = o->cell;

	if (!c->known)
		return VERDICT_UNKNOWN;
	if (!obs_fresh(o, now_ms))
		return VERDICT_STALE;
	return verdict_of(c->expected, o->state, o->tls, address_alive(o->addr, now_ms), c->silent);
}

/* ---- agents --------------------------------------------------------------- */

static agent_t *agent_find(const state_t *s, const char *id)
{
	uint64_t h = hash_str(HASH_INIT, id);
	hnode_t *n;

	for (n = htab_chain(&s->agents, h); n; n = n->next) {
		agent_t *a = container_of(n, agent_t, node);

		if (n->hash == h && !strcmp(a->id, id))
			return a;
	}
	return NULL;
}

static bool agent_stale(const agent_t *a, uint64_t now_ms)
{
	return a->daemon && !current(a->last_seen_ms, a->period_ms, now_ms);
}

static void agent_free_strings(agent_t *a)
{
	free(a->id);
	free(a->role);
	free(a->az);
	free(a->version);
	free(a->boot);
}

/* Forgets an agent and every observation it made. */
static void agent_forget(state_t *s, agent_t *a)
{
	while (!list_empty(&a->obs))
		obs_remove(s, container_of(a->obs.next, obs_t, by_agent));
	htab_remove(&s->agents, &a->node);
	list_unlink(&a->lru);
	cluster_release(s, a->cluster);
	address_release(s, a->addr);
	agent_free_strings(a);
	free(a);
}

static const char *cluster_name(const report_t *r)
{
	return r->agent.cluster ? r->agent.cluster : "";
}

/* Copies `v` into *out; NULL stays NULL. Returns false when out of memory. */
static bool dup_opt(const char *v, char **out)
{
	*out = v ? strdup(v) : NULL;
	return !v || *out;
}

static int agent_create(state_t *s, const report_t *r, agent_t **out)
{
	char buf[INET6_ADDRSTRLEN];
	agent_t *a = calloc(1, sizeof(*a));

	if (!a)
		return -ENOMEM;
	list_init(&a->obs);
	list_init(&a->lru);
	if (!dup_opt(r->agent.id, &a->id) || !dup_opt(r->agent.role, &a->role) ||
	    !dup_opt(r->agent.az, &a->az) || !dup_opt(r->agent.version, &a->version) ||
	    !dup_opt(r->agent.boot, &a->boot))
		goto oom;
	a->cluster = cluster_get(s, cluster_name(r));
	if (!a->cluster)
		goto oom;
	if (r->agent.address) {
		a->addr = address_get(s, canon_address(r->agent.address, buf, sizeof(buf)));
		if (!a->addr) {
			cluster_drop_if_unused(s, a->cluster);
			goto oom;
		}
		a->addr->refs++;
	}
	a->cluster->refs++;
	a->node.hash = hash_str(HASH_INIT, a->id);
	htab_insert(&s->agents, &a->node);
	list_append(&s->agent_lru, &a->lru);
	*out = a;
	return 0;

oom:
	agent_free_strings(a);
	free(a);
	return -ENOMEM;
}

static bool same_opt(const char *a, const char *b)
{
	if (!a || !b)
		return a == b;
	return !strcmp(a, b);
}

/* A string field about to change: the new copy, made before anything is changed. */
typedef struct {
	char **field;
	const char *value;
	char *copy;
	bool change;
} pending_str_t;

/*
 * Brings a known agent's identity up to date with its report. Everything is
 * allocated before anything changes, so that -ENOMEM leaves the agent as it was.
 */
static int agent_update(state_t *s, agent_t *a, const report_t *r)
{
	pending_str_t p[] = {
	    {&a->role, r->agent.role, NULL, false},
	    {&a->az, r->agent.az, NULL, false},
	    {&a->version, r->agent.version, NULL, false},
	    {&a->boot, r->agent.boot, NULL, false},
	};
	char buf[INET6_ADDRSTRLEN];
	cluster_t *cluster = a->cluster;
	address_t *addr = a->addr;
	size_t n = sizeof(p) / sizeof(p[0]);
	size_t i;

	for (i = 0; i < n; i++) {
		p[i].change = !same_opt(*p[i].field, p[i].value);
		if (p[i].change && !dup_opt(p[i].value, &p[i].copy))
			goto oom;
	}
	if (strcmp(cluster->name, cluster_name(r))) {
		cluster = cluster_get(s, cluster_name(r));
		if (!cluster)
			goto oom;
	}
	if (r->agent.address) {
		addr = address_get(s, canon_address(r->agent.address, buf, sizeof(buf)));
		if (!addr) {
			cluster_drop_if_unused(s, cluster);
			goto oom;
		}
	} else {
		addr = NULL;
	}

	/* A new boot starts a new sequence. */
	if (p[3].change)
		a->have_seq = false;
	for (i = 0; i < n; i++) {
		if (p[i].change) {
			free(*p[i].field);
			*p[i].field = p[i].copy;
		}
	}
	if (cluster != a->cluster) {
		cluster->refs++;
		cluster_release(s, a->cluster);
		a->cluster = cluster;
	}
	if (addr != a->addr) {
		if (addr)
			addr->refs++;
		address_release(s, a->addr);
		a->addr = addr;
	}
	return 0;

oom:
	for (i = 0; i < n; i++)
		free(p[i].copy);
	return -ENOMEM;
}

/* ---- ingest --------------------------------------------------------------- */

/* The observation a result would replace, or NULL when it would be a new one. */
static obs_t *obs_find_for(const state_t *s, const agent_t *a, const report_result_t *res)
{
	char buf[INET6_ADDRSTRLEN];
	const address_t *addr = NULL;

	if (res->address) {
		addr = address_find(s, canon_address(res->address, buf, sizeof(buf)));
		if (!addr)
			return NULL;
	}
	return obs_find(s, a, addr, res->target ? res->target : "", res->port);
}

/*
 * True when the report's observations fit in the bounds. Counted only near the
 * bound; results repeating a key within the report count twice there, which errs
 * on the side of refusing.
 */
static bool room_for(const state_t *s, const agent_t *a, const report_t *r)
{
	size_t n_new = 0;
	size_t i;

	if (s->obs.n + r->n_results <= s->limits.max_observations)
		return true;
	if (!a)
		return false;
	for (i = 0; i < r->n_results; i++) {
		if (!obs_find_for(s, a, &r->results[i]))
			n_new++;
	}
	return s->obs.n + n_new <= s->limits.max_observations;
}

static verdict_tls_t tls_of(const report_tls_t *tls)
{
	if (!tls->present)
		return VERDICT_TLS_NONE;
	return tls->ok ? VERDICT_TLS_OK : VERDICT_TLS_FAIL;
}

/* Creates an observation in cell `c`, linked everywhere. NULL: out of memory. */
static obs_t *obs_create(state_t *s, agent_t *a, address_t *addr, cell_t *c, const char *target,
                         uint16_t port)
{
	obs_t *o = calloc(1, sizeof(*o));

	if (!o)
		return NULL;
	o->target = strdup(target);
	if (!o->target) {
		free(o);
		return NULL;
	}
	o->agent = a;
	o->cell = c;
	o->addr = addr;
	o->port = port;
	o->node.hash = obs_hash(a, addr, target, port);
	htab_insert(&s->obs, &o->node);
	list_init(&o->lru);
	list_append(&a->obs, &o->by_agent);
	list_append(&c->obs, &o->by_cell);
	a->n_obs++;
	c->n_obs++;
	if (addr)
		addr->refs++;
	return o;
}

/* Stores one result of agent `a`. Returns 0 or -ENOMEM (with nothing changed for it). */
static int apply_result(state_t *s, agent_t *a, const report_result_t *res, bool once,
                        uint64_t now_ms, uint64_t wall_ms)
{
	char buf[INET6_ADDRSTRLEN];
	const char *target = res->target ? res->target : "";
	const char *dst = res->dst_role ? res->dst_role : "";
	address_t *addr = NULL;
	cell_t *c;
	obs_t *o;

	if (res->address) {
		addr = address_get(s, canon_address(res->address, buf, sizeof(buf)));
		if (!addr)
			return -ENOMEM;
	}
	o = obs_find(s, a, addr, target, res->port);
	/* The cell is the agent's role as of now: an agent may change roles. */
	if (o && !strcmp(o->cell->src_role, a->role) && !strcmp(o->cell->dst_role, dst))
		c = o->cell;
	else
		c = cell_get(s, a->role, dst, res->port);
	if (!c) {
		address_drop_if_unused(s, addr);
		return -ENOMEM;
	}
	if (!o) {
		o = obs_create(s, a, addr, c, target, res->port);
		if (!o) {
			cell_drop_if_unused(s, c);
			address_drop_if_unused(s, addr);
			return -ENOMEM;
		}
	} else {
		if (strcmp(o->target, target)) {
			char *copy = strdup(target);

			if (!copy) {
				cell_drop_if_unused(s, c);
				return -ENOMEM;
			}
			free(o->target);
			o->target = copy;
		}
		if (o->cell != c) {
			cell_t *old = o->cell;

			list_unlink(&o->by_cell);
			old->n_obs--;
			list_append(&c->obs, &o->by_cell);
			c->n_obs++;
			o->cell = c;
			cell_drop_if_unused(s, old);
		}
		list_unlink(&o->lru);
	}
	list_append(&s->obs_lru, &o->lru);
	o->state = res->state;
	o->tls = tls_of(&res->tls);
	o->latency_us = res->latency_us;
	snprintf(o->at, sizeof(o->at), "%s", res->at ? res->at : "");
	o->received_ms = now_ms;
	o->received_wall = wall_ms;
	o->once = once;
	if (addr && verdict_state_proves_alive(res->state))
		address_evidence(addr, now_ms, obs_period(o));
	return 0;
}

int state_ingest(state_t *s, const report_t *r, uint64_t now_ms, uint64_t wall_ms,
                 state_ingest_t *out)
{
	agent_t *a;
	size_t i;
	int result;

	memset(out, 0, sizeof(*out));
	if (!s || !r || !r->agent.id || !r->agent.role || !r->agent.boot)
		return -EINVAL;
	/* verdict_alive() reads a time of 0 as "never". */
	if (now_ms == 0)
		now_ms = 1;

	a = agent_find(s, r->agent.id);
	if (a && a->have_seq && !strcmp(a->boot, r->agent.boot) && r->seq <= a->seq) {
		out->duplicate = true;
		return 0;
	}
	if (r->final) {
		/* A stopping task: its observations describe a task that is gone. */
		if (a)
			agent_forget(s, a);
		return 0;
	}
	if (!a && s->agents.n >= s->limits.max_agents)
		return -ENOSPC;
	if (!room_for(s, a, r))
		return -ENOSPC;

	result = a ? agent_update(s, a, r) : agent_create(s, r, &a);
	if (result)
		return result;
	a->last_seen_ms = now_ms;
	a->last_seen_wall = wall_ms;
	a->period_ms = max_u64(max_u64((uint64_t)r->interval_s * 1000, r->round_ms), 1);
	if (r->mode == REPORT_MODE_DAEMON)
		a->daemon = true;
	list_unlink(&a->lru);
	list_append(&s->agent_lru, &a->lru);
	if (a->addr)
		address_evidence(a->addr, now_ms, a->period_ms);

	for (i = 0; i < r->n_results; i++) {
		result = apply_result(s, a, &r->results[i], r->mode == REPORT_MODE_ONCE, now_ms,
		                      wall_ms);
		if (result)
			return result;
		out->accepted++;
	}
	a->seq = r->seq;
	a->have_seq = true;
	return 0;
}

const char *state_agent_role(const state_t *s, const char *id)
{
	const agent_t *a = s && id ? agent_find(s, id) : NULL;

	return a ? a->role : NULL;
}

void state_expire(state_t *s, uint64_t now_ms)
{
	/* Both lists are in time order: stop at the first that is still current. */
	while (!list_empty(&s->agent_lru)) {
		agent_t *a = container_of(s->agent_lru.next, agent_t, lru);

		if (!older_than(a->last_seen_ms, s->limits.retention_ms, now_ms))
			break;
		agent_forget(s, a);
	}
	while (!list_empty(&s->obs_lru)) {
		obs_t *o = container_of(s->obs_lru.next, obs_t, lru);

		if (!older_than(o->received_ms, s->limits.retention_ms, now_ms))
			break;
		obs_remove(s, o);
	}
}

/* ---- the matrix ----------------------------------------------------------- */

/* A cell of the new matrix, prepared before the state changes. */
typedef struct {
	cell_t *cell; /* an existing cell, or a new one not yet in the table */
	bool is_new;
	bool always;
	bool probe;
	bool silent;
	verdict_expect_t expected;
	uint64_t interval_ms;
} def_t;

typedef struct {
	def_t *v;
	size_t n;
	size_t cap;
} defs_t;

static void defs_dispose(defs_t *d)
{
	size_t i;

	for (i = 0; i < d->n; i++) {
		if (d->v[i].is_new)
			cell_free(d->v[i].cell);
	}
	free(d->v);
}

static int defs_add(defs_t *d, const state_t *s, const matrix_role_t *src, const matrix_target_t *t,
                    unsigned default_interval_s)
{
	def_t *def;

	if (d->n == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 64;
		def_t *v = realloc(d->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		d->v = v;
		d->cap = cap;
	}
	def = &d->v[d->n];
	def->cell = cell_find(s, src->name, t->dst_role, t->port);
	def->is_new = !def->cell;
	if (def->is_new) {
		def->cell = cell_new(src->name, t->dst_role, t->port);
		if (!def->cell)
			return -ENOMEM;
	}
	def->always = src->agent;
	def->probe = t->probe;
	def->silent = t->silent;
	def->expected = t->expected;
	/* Only a path with an interval of its own (allowed_interval_s) keeps it:
	 * every other path is probed at the agent's interval, which the agent
	 * reports and may set shorter than the matrix's default. */
	def->interval_ms = t->interval_s != default_interval_s ? (uint64_t)t->interval_s * 1000 : 0;
	d->n++;
	return 0;
}

/*
 * Adds the cells of role `src`'s plan: one per (destination role, port), the
 * endpoints collapsed. Every endpoint of a destination has the same ports, so the
 * first endpoint's targets are all of them.
 */
static int defs_add_role(defs_t *d, const state_t *s, const matrix_t *m, size_t src)
{
	char err[MATRIX_ERR_MAX];
	matrix_plan_t *plan = matrix_plan_for_role(m, m->roles[src].name, NULL, err, sizeof(err));
	const char *dst = NULL;
	const char *first = NULL;
	size_t i;
	int result = 0;

	if (!plan)
		return -EINVAL;
	for (i = 0; i < plan->n_targets && !result; i++) {
		const matrix_target_t *t = &plan->targets[i];

		if (!dst || strcmp(dst, t->dst_role)) {
			dst = t->dst_role;
			first = t->target;
		}
		if (!strcmp(first, t->target))
			result = defs_add(d, s, &m->roles[src], t, plan->interval_s);
	}
	matrix_plan_free(plan);
	return result;
}

int state_set_matrix(state_t *s, const matrix_t *m)
{
	defs_t defs = {NULL, 0, 0};
	cell_t **order = NULL;
	role_t *role_v = NULL;
	htab_t roles = {NULL, 0, 0};
	size_t i;
	int result;

	if (!s || !m)
		return -EINVAL;

	/* Everything that can fail first, so that on error the old matrix stays. */
	for (i = 0; i < m->n_roles; i++) {
		result = defs_add_role(&defs, s, m, i);
		if (result)
			goto fail;
	}
	result = -ENOMEM;
	order = malloc((defs.n ? defs.n : 1) * sizeof(*order));
	role_v = calloc(m->n_roles ? m->n_roles : 1, sizeof(*role_v));
	if (!order || !role_v || htab_init(&roles))
		goto fail;
	for (i = 0; i < m->n_roles; i++) {
		role_v[i].name = m->roles[i].name;
		role_v[i].index = i;
		role_v[i].node.hash = hash_str(HASH_INIT, m->roles[i].name);
		htab_insert(&roles, &role_v[i].node);
	}

	/* Then the change, which cannot fail. */
	for (i = 0; i <= s->cells.mask; i++) {
		hnode_t *n;

		for (n = s->cells.b[i]; n; n = n->next)
			container_of(n, cell_t, node)->known = false;
	}
	s->n_always = 0;
	for (i = 0; i < defs.n; i++) {
		const def_t *d = &defs.v[i];
		cell_t *c = d->cell;

		if (d->is_new)
			htab_insert(&s->cells, &c->node);
		c->known = true;
		c->always = d->always;
		c->probe = d->probe;
		c->silent = d->silent;
		c->expected = d->expected;
		c->interval_ms = d->interval_ms;
		order[i] = c;
		if (c->always)
			s->n_always++;
	}
	/* Cells the new matrix dropped and nothing observes go. */
	for (i = 0; i <= s->cells.mask; i++) {
		hnode_t *n = s->cells.b[i];

		while (n) {
			hnode_t *next = n->next;

			cell_drop_if_unused(s, container_of(n, cell_t, node));
			n = next;
		}
	}
	free(s->order);
	s->order = order;
	s->n_order = defs.n;
	htab_dispose(&s->roles);
	free(s->role_v);
	s->roles = roles;
	s->role_v = role_v;
	s->m = m;
	free(defs.v);
	return 0;

fail:
	defs_dispose(&defs);
	free(order);
	free(role_v);
	htab_dispose(&roles);
	return result;
}

/* ---- lifecycle ------------------------------------------------------------ */

state_t *state_new(const matrix_t *m, const state_limits_t *limits)
{
	state_t *s;

	if (!m)
		return NULL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	if (limits)
		s->limits = *limits;
	if (!s->limits.max_agents)
		s->limits.max_agents = STATE_DEFAULT_MAX_AGENTS;
	if (!s->limits.max_observations)
		s->limits.max_observations = STATE_DEFAULT_MAX_OBSERVATIONS;
	if (!s->limits.retention_ms)
		s->limits.retention_ms = STATE_DEFAULT_RETENTION_MS;
	list_init(&s->agent_lru);
	list_init(&s->obs_lru);
	if (htab_init(&s->agents) || htab_init(&s->addresses) || htab_init(&s->cells) ||
	    htab_init(&s->obs) || htab_init(&s->clusters) || htab_init(&s->roles) ||
	    state_set_matrix(s, m)) {
		state_free(s);
		return NULL;
	}
	return s;
}

void state_free(state_t *s)
{
	size_t i;

	if (!s)
		return;
	while (!list_empty(&s->agent_lru))
		agent_forget(s, container_of(s->agent_lru.next, agent_t, lru));
	/* Only the matrix's cells are left: no agent, no observation. */
	for (i = 0; s->cells.b && i <= s->cells.mask; i++) {
		hnode_t *n = s->cells.b[i];

		while (n) {
			hnode_t *next = n->next;

			cell_free(container_of(n, cell_t, node));
			n = next;
		}
	}
	htab_dispose(&s->agents);
	htab_dispose(&s->addresses);
	htab_dispose(&s->cells);
	htab_dispose(&s->obs);
	htab_dispose(&s->clusters);
	htab_dispose(&s->roles);
	free(s->role_v);
	free(s->order);
	free(s->cluster_v);
	free(s);
}

/* ---- evaluation ----------------------------------------------------------- */

/* A cell's observations summed up. */
typedef struct {
	size_t counts[VERDICT_COUNT]; /* by each observation's verdict */
	size_t n;
	bool fresh;      /* at least one observation is fresh */
	verdict_t worst; /* over the fresh ones */
	uint64_t last_wall;
} acc_t;

static void acc_add(acc_t *acc, const obs_t *o, verdict_t v)
{
	acc->n++;
	acc->counts[v]++;
	if (o->received_wall > acc->last_wall)
		acc->last_wall = o->received_wall;
	if (v < VERDICT_COUNT_ORDERED) {
		acc->worst = acc->fresh ? verdict_worst(acc->worst, v) : v;
		acc->fresh = true;
	}
}

/* The cell's verdict from its summed observations. */
static verdict_t acc_verdict(const cell_t *c, acc_t *acc)
{
	if (!c->known)
		return VERDICT_UNKNOWN;
	if (!c->probe) {
		/* Not probed by design: whatever an agent with an old plan sent
		 * is shown, but the cell stays unobserved and counts nothing. */
		memset(acc->counts, 0, sizeof(acc->counts));
		return VERDICT_UNOBSERVED;
	}
	if (acc->n == 0)
		return VERDICT_UNOBSERVED;
	if (!acc->fresh)
		return VERDICT_STALE;
	return acc->worst;
}

static verdict_t cell_eval(const cell_t *c, uint64_t now_ms, acc_t *acc)
{
	const link_t *l;

	memset(acc, 0, sizeof(*acc));
	for (l = c->obs.next; l != &c->obs; l = l->next) {
		const obs_t *o = container_of(l, obs_t, by_cell);

		acc_add(acc, o, obs_verdict(o, now_ms));
	}
	return acc_verdict(c, acc);
}

/* In the view: the matrix's cells of agent roles, any other cell once observed. */
static bool cell_shown(const cell_t *c)
{
	return (c->known && c->always) || c->n_obs > 0;
}

static int cmp_unknown_cells(const void *pa, const void *pb)
{
	const cell_t *a = *(const cell_t *const *)pa;
	const cell_t *b = *(const cell_t *const *)pb;
	int d = strcmp(a->src_role, b->src_role);

	if (!d)
		d = strcmp(a->dst_role, b->dst_role);
	if (!d)
		d = (int)a->port - (int)b->port;
	return d;
}

/*
 * The cells of the view, in its order: the matrix's (source role, destination
 * role, port, in matrix order), then the unknown ones by name. Returns a new
 * array (free()), or NULL when out of memory.
 */
static cell_t **view_cells(const state_t *s, size_t *n_out)
{
	cell_t **v = malloc((s->cells.n ? s->cells.n : 1) * sizeof(*v));
	size_t n = 0;
	size_t first_unknown;
	size_t i;

	if (!v)
		return NULL;
	for (i = 0; i < s->n_order; i++) {
		if (cell_shown(s->order[i]))
			v[n++] = s->order[i];
	}
	first_unknown = n;
	for (i = 0; i <= s->cells.mask; i++) {
		hnode_t *node;

		for (node = s->cells.b[i]; node; node = node->next) {
			cell_t *c = container_of(node, cell_t, node);

			if (!c->known && c->n_obs > 0)
				v[n++] = c;
		}
	}
	qsort(v + first_unknown, n - first_unknown, sizeof(*v), cmp_unknown_cells);
	*n_out = n;
	return v;
}

void state_count(const state_t *s, uint64_t now_ms, state_counts_t *out)
{
	const link_t *l;
	acc_t acc;
	size_t i;

	memset(out, 0, sizeof(*out));
	if (!s)
		return;
	if (now_ms == 0)
		now_ms = 1;
	/* The order does not matter here: no allocation, so no failure. */
	for (i = 0; i < s->n_order; i++) {
		if (cell_shown(s->order[i]))
			out->cells[cell_eval(s->order[i], now_ms, &acc)]++;
	}
	for (i = 0; i <= s->cells.mask; i++) {
		hnode_t *n;

		for (n = s->cells.b[i]; n; n = n->next) {
			const cell_t *c = container_of(n, cell_t, node);

			if (!c->known && c->n_obs > 0)
				out->cells[VERDICT_UNKNOWN]++;
		}
	}
	for (l = s->agent_lru.next; l != &s->agent_lru; l = l->next) {
		if (agent_stale(container_of(l, agent_t, lru), now_ms))
			out->agents_stale++;
		else
			out->agents_live++;
	}
	out->observations = s->obs.n;
}

/* ---- the matrix view ------------------------------------------------------ */

static bool add_time(cJSON *obj, const char *key, uint64_t wall_ms)
{
	char buf[TIME_MAX];

	return cJSON_AddStringToObject(obj, key, report_format_time(wall_ms, buf, sizeof(buf)));
}

static bool add_str_or_null(cJSON *obj, const char *key, const char *v)
{
	if (v)
		return cJSON_AddStringToObject(obj, key, v);
	return cJSON_AddNullToObject(obj, key);
}

static const char *obs_where(const obs_t *o)
{
	return o->addr ? o->addr->text : o->target;
}

static int cmp_obs(const void *pa, const void *pb)
{
	const obs_t *a = *(const obs_t *const *)pa;
	const obs_t *b = *(const obs_t *const *)pb;
	int d = strcmp(a->agent->id, b->agent->id);

	if (!d)
		d = strcmp(obs_where(a), obs_where(b));
	return d;
}

static bool add_observations(cJSON *cell, const cell_t *c, uint64_t now_ms)
{
	cJSON *arr = cJSON_AddArrayToObject(cell, "observations");
	const obs_t **v;
	const link_t *l;
	size_t n = 0;
	size_t i;
	bool ok = false;

	if (!arr)
		return false;
	v = malloc((c->n_obs ? c->n_obs : 1) * sizeof(*v));
	if (!v)
		return false;
	for (l = c->obs.next; l != &c->obs; l = l->next)
		v[n++] = container_of(l, obs_t, by_cell);
	qsort(v, n, sizeof(*v), cmp_obs);
	for (i = 0; i < n; i++) {
		const obs_t *o = v[i];
		cJSON *item = cJSON_CreateObject();

		if (!item || !cJSON_AddItemToArray(arr, item)) {
			cJSON_Delete(item);
			goto out;
		}
		if (!cJSON_AddStringToObject(item, "agent", o->agent->id) ||
		    !add_str_or_null(item, "address", o->addr ? o->addr->text : NULL) ||
		    !cJSON_AddStringToObject(item, "state", verdict_state_name(o->state)) ||
		    !cJSON_AddStringToObject(item, "verdict",
		                             verdict_name(obs_verdict(o, now_ms))) ||
		    !(o->latency_us < 0
		          ? cJSON_AddNullToObject(item, "latency_us")
		          : cJSON_AddNumberToObject(item, "latency_us", (double)o->latency_us)) ||
		    !cJSON_AddStringToObject(item, "at", o->at))
			goto out;
	}
	ok = true;
out:
	free(v);
	return ok;
}

static bool add_cell(cJSON *cells, const cell_t *c, uint64_t now_ms)
{
	cJSON *item = cJSON_CreateObject();
	cJSON *counts;
	acc_t acc;
	verdict_t v;
	int i;

	if (!item || !cJSON_AddItemToArray(cells, item)) {
		cJSON_Delete(item);
		return false;
	}
	v = cell_eval(c, now_ms, &acc);
	if (!cJSON_AddStringToObject(item, "src_role", c->src_role) ||
	    !cJSON_AddStringToObject(item, "dst_role", c->dst_role) ||
	    !cJSON_AddNumberToObject(item, "port", c->port) ||
	    !add_str_or_null(item, "expected",
	                     c->known ? verdict_expect_name(c->expected) : NULL) ||
	    !cJSON_AddStringToObject(item, "verdict", verdict_name(v)))
		return false;
	counts = cJSON_AddObjectToObject(item, "counts");
	if (!counts)
		return false;
	for (i = 0; i < VERDICT_COUNT; i++) {
		if (acc.counts[i] && !cJSON_AddNumberToObject(counts, verdict_name((verdict_t)i),
		                                              (double)acc.counts[i]))
			return false;
	}
	if (!add_observations(item, c, now_ms))
		return false;
	if (acc.n > 0)
		return add_time(item, "last_seen", acc.last_wall);
	return cJSON_AddNullToObject(item, "last_seen");
}

static int cmp_agents(const void *pa, const void *pb)
{
	const agent_t *a = *(const agent_t *const *)pa;
	const agent_t *b = *(const agent_t *const *)pb;

	return strcmp(a->id, b->id);
}

static bool add_agents(cJSON *root, const state_t *s, uint64_t now_ms)
{
	cJSON *arr = cJSON_AddArrayToObject(root, "agents");
	const agent_t **v;
	const link_t *l;
	size_t n = 0;
	size_t i;
	bool ok = false;

	if (!arr)
		return false;
	v = malloc((s->agents.n ? s->agents.n : 1) * sizeof(*v));
	if (!v)
		return false;
	for (l = s->agent_lru.next; l != &s->agent_lru; l = l->next)
		v[n++] = container_of(l, agent_t, lru);
	qsort(v, n, sizeof(*v), cmp_agents);
	for (i = 0; i < n; i++) {
		const agent_t *a = v[i];
		cJSON *item = cJSON_CreateObject();

		if (!item || !cJSON_AddItemToArray(arr, item)) {
			cJSON_Delete(item);
			goto out;
		}
		if (!cJSON_AddStringToObject(item, "id", a->id) ||
		    !cJSON_AddStringToObject(item, "role", a->role) ||
		    !cJSON_AddStringToObject(item, "cluster", a->cluster->name) ||
		    !add_str_or_null(item, "az", a->az) ||
		    !add_str_or_null(item, "address", a->addr ? a->addr->text : NULL) ||
		    !cJSON_AddStringToObject(item, "state",
		                             agent_stale(a, now_ms) ? "stale" : "live") ||
		    !add_time(item, "last_seen", a->last_seen_wall))
			goto out;
	}
	ok = true;
out:
	free(v);
	return ok;
}

cJSON *state_matrix_view(const state_t *s, uint64_t now_ms, uint64_t wall_ms)
{
	cJSON *root;
	cJSON *arr;
	cell_t **cells = NULL;
	size_t n = 0;
	size_t i;

	if (!s)
		return NULL;
	if (now_ms == 0)
		now_ms = 1;
	root = cJSON_CreateObject();
	if (!root)
		return NULL;
	if (!cJSON_AddStringToObject(root, "schema", "sgprobe.matrix-view/v1") ||
	    !cJSON_AddStringToObject(root, "matrix", s->m->name) ||
	    !add_time(root, "generated_at", wall_ms))
		goto fail;
	arr = cJSON_AddArrayToObject(root, "cells");
	cells = view_cells(s, &n);
	if (!arr || !cells)
		goto fail;
	for (i = 0; i < n; i++) {
		if (!add_cell(arr, cells[i], now_ms))
			goto fail;
	}
	if (!add_agents(root, s, now_ms))
		goto fail;
	free(cells);
	return root;

fail:
	free(cells);
	cJSON_Delete(root);
	return NULL;
}

/* ---- Prometheus ----------------------------------------------------------- */

/* A growing text buffer; a failed allocation sticks, and is checked once at the end. */
typedef struct {
	char *p;
	size_t len;
	size_t cap;
	bool failed;
} buf_t;

static void buf_reserve(buf_t *b, size_t more)
{
	size_t cap;
	char *p;

	if (b->failed || b->len + more + 1 <= b->cap)
		return;
	cap = b->cap ? b->cap : 1024;
	while (cap < b->len + more + 1)
		cap *= 2;
	p = realloc(b->p, cap);
	if (!p) {
		b->failed = true;
		return;
	}
	b->p = p;
	b->cap = cap;
}

static void buf_printf(buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void buf_printf(buf_t *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->failed = true;
		return;
	}
	buf_reserve(b, (size_t)n);
	if (b->failed)
		return;
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

/* Appends a label value escaped as the exposition format asks: \\, \" and \n. */
static void buf_label(buf_t *b, const char *v)
{
	for (; *v; v++) {
		buf_reserve(b, 2);
		if (b->failed)
			return;
		if (*v == '\\' || *v == '"') {
			b->p[b->len++] = '\\';
			b->p[b->len++] = *v;
		} else if (*v == '\n') {
			b->p[b->len++] = '\\';
			b->p[b->len++] = 'n';
		} else {
			b->p[b->len++] = *v;
		}
	}
	b->p[b->len] = '\0';
}

char *state_prometheus(const state_t *s, uint64_t now_ms)
{
	buf_t b = {NULL, 0, 0, false};
	state_counts_t counts;
	cell_t **cells;
	size_t n = 0;
	size_t i;
	int v;

	if (!s)
		return NULL;
	if (now_ms == 0)
		now_ms = 1;
	state_count(s, now_ms, &counts);
	buf_printf(&b, "# HELP sgprobe_cells Matrix cells by verdict, cell states included.\n"
	               "# TYPE sgprobe_cells gauge\n");
	for (v = 0; v < VERDICT_COUNT; v++)
		buf_printf(&b, "sgprobe_cells{verdict=\"%s\"} %zu\n", verdict_name((verdict_t)v),
		           counts.cells[v]);

	buf_printf(&b, "# HELP sgprobe_cell_verdict Each cell whose verdict is not ok, "
	               "labelled with it; always 1.\n"
	               "# TYPE sgprobe_cell_verdict gauge\n");
	cells = view_cells(s, &n);
	if (!cells) {
		free(b.p);
		return NULL;
	}
	for (i = 0; i < n; i++) {
		const cell_t *c = cells[i];
		acc_t acc;
		verdict_t cv = cell_eval(c, now_ms, &acc);

		if (cv == VERDICT_OK)
			continue;
		buf_printf(&b, "sgprobe_cell_verdict{src_role=\"");
		buf_label(&b, c->src_role);
		buf_printf(&b, "\",dst_role=\"");
		buf_label(&b, c->dst_role);
		buf_printf(&b, "\",port=\"%u\",verdict=\"%s\"} 1\n", c->port, verdict_name(cv));
	}
	free(cells);

	buf_printf(&b,
	           "# HELP sgprobe_agents Agents by state.\n"
	           "# TYPE sgprobe_agents gauge\n"
	           "sgprobe_agents{state=\"live\"} %zu\n"
	           "sgprobe_agents{state=\"stale\"} %zu\n",
	           counts.agents_live, counts.agents_stale);
	buf_printf(&b,
	           "# HELP sgprobe_observations Observations held: the latest per agent, "
	           "address and port.\n"
	           "# TYPE sgprobe_observations gauge\n"
	           "sgprobe_observations %zu\n",
	           counts.observations);
	if (b.failed) {
		free(b.p);
		return NULL;
	}
	return b.p;
}

/* ---- per cluster ---------------------------------------------------------- */

/* An agent as the per-role sums see it. */
typedef struct {
	size_t slot; /* its cluster's */
	size_t rank; /* its role's matrix index, SIZE_MAX for a role the matrix lacks */
	const char *role;
	bool stale;
} agent_ref_t;

static int cmp_agent_refs(const void *pa, const void *pb)
{
	const agent_ref_t *a = pa;
	const agent_ref_t *b = pb;

	if (a->slot != b->slot)
		return a->slot < b->slot ? -1 : 1;
	if (a->rank != b->rank)
		return a->rank < b->rank ? -1 : 1;
	return strcmp(a->role, b->role);
}

static bool cluster_add_role(state_cluster_t *c, const char *role, size_t live, size_t stale)
{
	state_role_t *r = &c->roles[c->n_roles];

	r->role = strdup(role);
	if (!r->role)
		return false;
	r->live = live;
	r->stale = stale;
	c->n_roles++;
	return true;
}

/*
 * Fills the roles of every cluster: each agent role of the matrix, then the
 * others that have agents there. `out->v` is indexed by cluster slot here.
 */
static bool clusters_roles(const state_t *s, uint64_t now_ms, state_clusters_t *out)
{
	agent_ref_t *refs = malloc((s->agents.n ? s->agents.n : 1) * sizeof(*refs));
	const link_t *l;
	size_t n = 0;
	size_t j = 0;
	size_t k;
	bool ok = false;

	if (!refs)
		return false;
	for (l = s->agent_lru.next; l != &s->agent_lru; l = l->next) {
		const agent_t *a = container_of(l, agent_t, lru);

		refs[n].slot = a->cluster->slot;
		refs[n].rank = role_index(s, a->role);
		refs[n].role = a->role;
		refs[n].stale = agent_stale(a, now_ms);
		n++;
	}
	qsort(refs, n, sizeof(*refs), cmp_agent_refs);
	for (k = 0; k < out->n; k++) {
		state_cluster_t *c = &out->v[k];
		size_t end = j;
		size_t r;

		while (end < n && refs[end].slot == k)
			end++;
		c->roles = calloc(s->m->n_roles + (end - j) + 1, sizeof(*c->roles));
		if (!c->roles)
			goto out;
		for (r = 0; r < s->m->n_roles; r++) {
			size_t live = 0;
			size_t stale = 0;

			for (; j < end && refs[j].rank == r; j++) {
				if (refs[j].stale)
					stale++;
				else
					live++;
			}
			if ((s->m->roles[r].agent || live + stale > 0) &&
			    !cluster_add_role(c, s->m->roles[r].name, live, stale))
				goto out;
		}
		while (j < end) {
			const char *role = refs[j].role;
			size_t live = 0;
			size_t stale = 0;

			for (; j < end && !strcmp(refs[j].role, role); j++) {
				if (refs[j].stale)
					stale++;
				else
					live++;
			}
			if (!cluster_add_role(c, role, live, stale))
				goto out;
		}
	}
	ok = true;
out:
	free(refs);
	return ok;
}

static bool cluster_add_cell(state_cluster_t *c, size_t *cap, const cell_t *cell, verdict_t v)
{
	state_cell_t *e;

	if (c->n_cells == *cap) {
		size_t ncap = *cap ? *cap * 2 : 16;
		state_cell_t *nv = realloc(c->cells, ncap * sizeof(*nv));

		if (!nv)
			return false;
		c->cells = nv;
		*cap = ncap;
	}
	e = &c->cells[c->n_cells];
	e->src_role = strdup(cell->src_role);
	e->dst_role = strdup(cell->dst_role);
	if (!e->src_role || !e->dst_role) {
		free(e->src_role);
		free(e->dst_role);
		return false;
	}
	e->port = cell->port;
	e->verdict = v;
	c->n_cells++;
	return true;
}

/*
 * Judges every cell per cluster in one pass over its observations: each
 * cluster's sums sit at its slot, and only the clusters a cell touched are
 * finished and reset, so the cost is the observations, not cells × clusters.
 */
static bool clusters_cells(const state_t *s, uint64_t now_ms, state_clusters_t *out)
{
	size_t k_n = out->n;
	acc_t *acc = calloc(k_n, sizeof(*acc));
	size_t *touched = calloc(k_n, sizeof(*touched));
	size_t *always_seen = calloc(k_n, sizeof(*always_seen));
	size_t *caps = calloc(k_n, sizeof(*caps));
	cell_t **cells = NULL;
	size_t n = 0;
	size_t i;
	size_t k;
	bool ok = false;

	if (!acc || !touched || !always_seen || !caps)
		goto out;
	cells = view_cells(s, &n);
	if (!cells)
		goto out;
	for (i = 0; i < n; i++) {
		const cell_t *c = cells[i];
		const link_t *l;
		size_t n_touched = 0;
		size_t t;

		for (l = c->obs.next; l != &c->obs; l = l->next) {
			const obs_t *o = container_of(l, obs_t, by_cell);

			k = o->agent->cluster->slot;
			if (acc[k].n == 0)
				touched[n_touched++] = k;
			acc_add(&acc[k], o, obs_verdict(o, now_ms));
		}
		for (t = 0; t < n_touched; t++) {
			verdict_t v;

			k = touched[t];
			v = acc_verdict(c, &acc[k]);
			memset(&acc[k], 0, sizeof(acc[k]));
			out->v[k].counts.cells[v]++;
			if (c->known && c->always)
				always_seen[k]++;
			if (v != VERDICT_OK && v != VERDICT_UNOBSERVED &&
			    !cluster_add_cell(&out->v[k], &caps[k], c, v))
				goto out;
		}
	}
	/* The agent roles' cells a cluster did not observe at all. */
	for (k = 0; k < k_n; k++)
		out->v[k].counts.cells[VERDICT_UNOBSERVED] += s->n_always - always_seen[k];
	ok = true;
out:
	free(acc);
	free(touched);
	free(always_seen);
	free(caps);
	free(cells);
	return ok;
}

static int cmp_clusters(const void *pa, const void *pb)
{
	const state_cluster_t *a = pa;
	const state_cluster_t *b = pb;

	return strcmp(a->name, b->name);
}

state_clusters_t *state_clusters(const state_t *s, uint64_t now_ms)
{
	state_clusters_t *out;
	const link_t *l;
	size_t k;

	if (!s)
		return NULL;
	if (now_ms == 0)
		now_ms = 1;
	out = calloc(1, sizeof(*out));
	if (!out)
		return NULL;
	if (s->n_clusters == 0)
		return out;
	out->v = calloc(s->n_clusters, sizeof(*out->v));
	if (!out->v)
		goto fail;
	out->n = s->n_clusters;
	for (k = 0; k < out->n; k++) {
		out->v[k].name = strdup(s->cluster_v[k]->name);
		if (!out->v[k].name)
			goto fail;
	}
	for (l = s->agent_lru.next; l != &s->agent_lru; l = l->next) {
		const agent_t *a = container_of(l, agent_t, lru);
		state_counts_t *c = &out->v[a->cluster->slot].counts;

		if (agent_stale(a, now_ms))
			c->agents_stale++;
		else
			c->agents_live++;
		c->observations += a->n_obs;
	}
	if (!clusters_cells(s, now_ms, out) || !clusters_roles(s, now_ms, out))
		goto fail;
	qsort(out->v, out->n, sizeof(*out->v), cmp_clusters);
	return out;

fail:
	state_clusters_free(out);
	return NULL;
}

void state_clusters_free(state_clusters_t *c)
{
	size_t k;
	size_t i;

	if (!c)
		return;
	for (k = 0; k < c->n; k++) {
		state_cluster_t *cl = &c->v[k];

		for (i = 0; i < cl->n_roles; i++)
			free(cl->roles[i].role);
		for (i = 0; i < cl->n_cells; i++) {
			free(cl->cells[i].src_role);
			free(cl->cells[i].dst_role);
		}
		free(cl->roles);
		free(cl->cells);
		free(cl->name);
	}
	free(c->v);
	free(c);
}
