/*
 * importsg: `sgprobe-collector import-sg` and `diff-matrix` (docs/operations.md
 * "A matrix from the real security groups").
 *
 * import-sg reads `aws ec2 describe-security-groups` output and a map of roles
 * (each with its groups, endpoints, ports, agent flag and optional cidrs) and
 * writes the intended matrix those groups enforce. The rules, in full:
 *
 * - A path src -> dst:port is allowed when an egress rule of one of src's groups
 *   covers dst and admits the port, and an ingress rule of one of dst's groups
 *   covers src and admits the port. A role with no groups (the internet) does not
 *   restrict its side; a path between two roles with no groups is not governed
 *   by any group and is left out.
 * - A rule covers a role by group reference (the role holds the referenced
 *   group) or by an IPv4 CIDR: 0.0.0.0/0 covers every role; another CIDR covers
 *   a role all of whose addresses (its `cidrs` and its IPv4-literal endpoints)
 *   fall inside it.
 * - Ports: a rule naming one port (FromPort == ToPort) admits that port, and the
 *   port is written whatever the destination serves. A range of more than one
 *   port is cut down to the ports the matrix probes on that destination (its
 *   `ports` and probe.ports), with a warning listing the ports kept when the
 *   range holds others. IpProtocol -1 (all traffic) is every TCP port, as a
 *   range; UDP, ICMP and other protocols are ignored: sgprobe probes TCP.
 *
 * Every rule the import cannot express (IPv6 ranges, prefix lists, an unknown
 * or unmapped group, a CIDR that covers no role or only part of one) is named
 * in a warning: nothing is dropped silently. The map is validated strictly; its
 * matrix part (name, probe, each role's endpoints, ports and flags) by the
 * matrix loader itself, so that both read the same rules.
 */
#include "importsg.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "sgprobe/fileio.h"
#include "sgprobe/json.h"

#define EXIT_FAIL  1
#define EXIT_USAGE 2

/* Longest field path in a message: `SecurityGroups[12].IpPermissionsEgress[3].IpRanges[4]`. */
#define FIELD_MAX 128

/* A set of TCP ports as a bitmap, indexed by port. */
#define PORT_BITMAP_BYTES (65536 / 8)

/* An IPv4 network in host byte order; `net` has no bits beyond `len`. */
typedef struct {
	uint32_t net;
	unsigned len;
} cidr_t;

/* How a rule's IpProtocol is imported. */
typedef enum {
	PROTO_TCP,   /* tcp or 6: its FromPort-ToPort */
	PROTO_ALL,   /* -1, all traffic: every TCP port */
	PROTO_OTHER, /* udp, icmp and the rest: ignored with a warning */
} proto_t;

/* One entry of IpPermissions or IpPermissionsEgress. */
typedef struct {
	size_t group;        /* the group that holds it */
	bool egress;         /* from IpPermissionsEgress */
	int index;           /* its index in that array */
	const cJSON *json;   /* the rule in the groups file's tree */
	const char *proto;   /* IpProtocol as written */
	proto_t kind;        /* how it is imported */
	bool single;         /* FromPort == ToPort: it names one port */
	unsigned from, to;   /* FromPort and ToPort as written (TCP) */
	unsigned lo, hi;     /* the TCP ports it admits, within 1-65535; lo > hi: none */
	size_t *refs;        /* groups of the file it references (UserIdGroupPairs) */
	size_t n_refs;       /* entries in refs */
	cidr_t *cidrs;       /* its IpRanges */
	size_t n_cidrs;      /* entries in cidrs */
	bool *covers;        /* per role: the rule covers it (imported rules only) */
	unsigned char *kept; /* ranges: the ports written through this rule */
} rule_t;

/* One security group of the groups file. */
typedef struct {
	const char *id;    /* GroupId, in the tree */
	const char *name;  /* GroupName, in the tree; "" when absent */
	int index;         /* in SecurityGroups */
	size_t first_rule; /* its rules are rules[first_rule .. first_rule + n_rules) */
	size_t n_rules;
	bool held; /* some role of the map holds it */
} group_t;

/* What the map says about a role beyond the matrix's own keys. */
typedef struct {
	size_t *groups; /* indexes into conv_t.groups */
	size_t n_groups;
	cidr_t *addrs; /* its cidrs and its IPv4-literal endpoints (as /32) */
	size_t n_addrs;
} role_t;

/* A name and what it names (a GroupId and its group, a role's name and its
 * index), sorted by name for bsearch and for sorted output. */
typedef struct {
	const char *key;
	size_t idx;
} name_ref_t;

/* One conversion: the inputs, their trees and everything derived from them. */
typedef struct {
	const importsg_input_t *in;
	char *err;
	size_t errlen;
	cJSON *groups_root;
	cJSON *map_root;
	cJSON *skeleton; /* the matrix being built: version, name, probe, roles, allow */
	matrix_t *m;     /* the skeleton as the matrix loader read it */
	group_t *groups;
	size_t n_groups;
	name_ref_t *by_id;
	rule_t *rules;
	size_t n_rules;
	role_t *roles; /* m->n_roles, in the map's order */
} conv_t;

/* Writes "<file>: <message>" into the error buffer. Returns -EINVAL. */
static int fail(conv_t *c, const char *file, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(conv_t *c, const char *file, const char *fmt, ...)
{
	char msg[IMPORTSG_ERR_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (c->err && c->errlen > 0) {
		if (file)
			snprintf(c->err, c->errlen, "%s: %s", file, msg);
		else
			snprintf(c->err, c->errlen, "%s", msg);
	}
	return -EINVAL;
}

static int fail_oom(conv_t *c)
{
	if (c->err && c->errlen > 0)
		snprintf(c->err, c->errlen, "out of memory");
	return -ENOMEM;
}

/* Hands one warning to the caller's callback. */
static void warn(conv_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void warn(conv_t *c, const char *fmt, ...)
{
	char *msg = NULL;
	va_list ap;
	int n;

	if (!c->in->warn)
		return;
	va_start(ap, fmt);
	n = vasprintf(&msg, fmt, ap);
	va_end(ap);
	/* A list of kept ports has no fixed bound, hence the allocation; without
	 * memory the warning is still counted and seen. */
	if (n < 0) {
		c->in->warn(c->in->warn_arg, "(a warning was lost: out of memory)");
		return;
	}
	c->in->warn(c->in->warn_arg, msg);
	free(msg);
}

static void bit_set(unsigned char *bits, unsigned port)
{
	bits[port >> 3] |= (unsigned char)(1u << (port & 7));
}

static bool bit_get(const unsigned char *bits, unsigned port)
{
	return bits[port >> 3] & (1u << (port & 7));
}

static uint32_t mask_of(unsigned len)
{
	return len == 0 ? 0 : 0xffffffffu << (32 - len);
}

/*
 * Parses "a.b.c.d/n". `strict`: bits beyond the prefix are an error (the map);
 * otherwise they are cleared (AWS never writes them, but nothing is lost).
 * Returns 0, or -EINVAL when `s` is no IPv4 CIDR.
 */
static int parse_cidr(const char *s, bool strict, cidr_t *out)
{
	char addr[INET_ADDRSTRLEN];
	const char *slash = strchr(s, '/');
	struct in_addr a;
	char *end = NULL;
	unsigned long len;

	if (!slash || (size_t)(slash - s) >= sizeof(addr) || !slash[1])
		return -EINVAL;
	memcpy(addr, s, (size_t)(slash - s));
	addr[slash - s] = '\0';
	if (inet_pton(AF_INET, addr, &a) != 1)
		return -EINVAL;
	if (slash[1] < '0' || slash[1] > '9')
		return -EINVAL;
	errno = 0;
	len = strtoul(slash + 1, &end, 10);
	if (errno || *end || len > 32)
		return -EINVAL;
	out->len = (unsigned)len;
	out->net = ntohl(a.s_addr);
	if (strict && (out->net & ~mask_of(out->len)))
		return -EINVAL;
	out->net &= mask_of(out->len);
	return 0;
}

/* True when network `inner` lies inside network `outer`. */
static bool cidr_inside(cidr_t inner, cidr_t outer)
{
	return inner.len >= outer.len && (inner.net & mask_of(outer.len)) == outer.net;
}

/* True when the two networks share an address. */
static bool cidr_overlap(cidr_t a, cidr_t b)
{
	return cidr_inside(a, b) || cidr_inside(b, a);
}

static void cidr_text(cidr_t c, char *buf, size_t buflen)
{
	snprintf(buf, buflen, "%u.%u.%u.%u/%u", c.net >> 24, (c.net >> 16) & 255,
	         (c.net >> 8) & 255, c.net & 255, c.len);
}

/* ---- the groups file ---------------------------------------------------- */

static int cmp_name_ref(const void *a, const void *b)
{
	return strcmp(((const name_ref_t *)a)->key, ((const name_ref_t *)b)->key);
}

/* Returns the index of the group with GroupId `id`, or -1. */
static long find_group(const conv_t *c, const char *id)
{
	name_ref_t key = {id, 0};
	const name_ref_t *found;

	if (c->n_groups == 0)
		return -1;
	found = bsearch(&key, c->by_id, c->n_groups, sizeof(key), cmp_name_ref);
	return found ? (long)found->idx : -1;
}

/* An optional array member: absent is an empty array; anything but an array is an error. */
static int get_array(conv_t *c, const cJSON *obj, const char *key, const char *path,
                     const cJSON **out)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);

	*out = NULL;
	if (!item || cJSON_IsNull(item))
		return 0;
	if (!cJSON_IsArray(item))
		return fail(c, c->in->groups_path, "%s.%s: must be an array", path, key);
	*out = item;
	return 0;
}

/* A member that must be a non-empty string; returns NULL after writing the error. */
static const char *get_string(conv_t *c, const cJSON *obj, const char *key, const char *path)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);

	if (!cJSON_IsString(item) || !item->valuestring || !item->valuestring[0]) {
		fail(c, c->in->groups_path, "%s.%s: must be a non-empty string", path, key);
		return NULL;
	}
	return item->valuestring;
}

static int parse_port(conv_t *c, const cJSON *rule, const char *key, const char *path,
                      unsigned *out)
{
	int64_t v;

	if (!json_get_int(cJSON_GetObjectItemCaseSensitive(rule, key), 0, 65535, &v))
		return fail(c, c->in->groups_path, "%s.%s: must be an integer in 0-65535", path,
		            key);
	*out = (unsigned)v;
	return 0;
}

/* The protocol and ports of rule `r`, whose IpProtocol is `proto`. */
static int parse_rule_ports(conv_t *c, rule_t *r, const char *path)
{
	const char *p = r->proto;
	int result;

	if (!strcmp(p, "tcp") || !strcmp(p, "6")) {
		r->kind = PROTO_TCP;
		result = parse_port(c, r->json, "FromPort", path, &r->from);
		if (result)
			return result;
		result = parse_port(c, r->json, "ToPort", path, &r->to);
		if (result)
			return result;
		if (r->to < r->from)
			return fail(c, c->in->groups_path, "%s.ToPort: %u is below FromPort %u",
			            path, r->to, r->from);
		r->single = r->from == r->to;
		/* Port 0 is no TCP port anyone connects to. */
		r->lo = r->from < 1 ? 1 : r->from;
		r->hi = r->to;
	} else if (!strcmp(p, "-1")) {
		r->kind = PROTO_ALL;
		r->from = 0;
		r->to = 65535;
		r->lo = 1;
		r->hi = 65535;
	} else {
		r->kind = PROTO_OTHER;
	}
	return 0;
}

/* The IpRanges and UserIdGroupPairs of rule `r`; the other targets only warn, later. */
static int parse_rule_targets(conv_t *c, rule_t *r, const char *path)
{
	char p[FIELD_MAX];
	const cJSON *arr;
	const cJSON *el;
	int result;
	int i;

	result = get_array(c, r->json, "IpRanges", path, &arr);
	if (result)
		return result;
	if (arr && cJSON_GetArraySize(arr) > 0) {
		r->cidrs = calloc((size_t)cJSON_GetArraySize(arr), sizeof(*r->cidrs));
		if (!r->cidrs)
			return fail_oom(c);
	}
	i = 0;
	cJSON_ArrayForEach(el, arr)
	{
		const char *s;

		json_pathf(p, sizeof(p), "%s.IpRanges[%d]", path, i++);
		if (!cJSON_IsObject(el))
			return fail(c, c->in->groups_path, "%s: must be an object", p);
		s = get_string(c, el, "CidrIp", p);
		if (!s)
			return -EINVAL;
		if (parse_cidr(s, false, &r->cidrs[r->n_cidrs]))
			return fail(c, c->in->groups_path,
			            "%s.CidrIp: '%s' is not an IPv4 CIDR (a.b.c.d/n)", p, s);
		r->n_cidrs++;
	}

	result = get_array(c, r->json, "UserIdGroupPairs", path, &arr);
	if (result)
		return result;
	if (arr && cJSON_GetArraySize(arr) > 0) {
		r->refs = calloc((size_t)cJSON_GetArraySize(arr), sizeof(*r->refs));
		if (!r->refs)
			return fail_oom(c);
	}
	i = 0;
	cJSON_ArrayForEach(el, arr)
	{
		const char *id;
		long g;

		json_pathf(p, sizeof(p), "%s.UserIdGroupPairs[%d]", path, i++);
		if (!cJSON_IsObject(el))
			return fail(c, c->in->groups_path, "%s: must be an object", p);
		id = get_string(c, el, "GroupId", p);
		if (!id)
			return -EINVAL;
		g = find_group(c, id);
		/* An unknown group is named in a warning once the roles are known. */
		if (g >= 0)
			r->refs[r->n_refs++] = (size_t)g;
	}

	/* The kinds that are only warned about must still have their shape. */
	result = get_array(c, r->json, "Ipv6Ranges", path, &arr);
	if (!result)
		result = get_array(c, r->json, "PrefixListIds", path, &arr);
	return result;
}

static int parse_rule(conv_t *c, size_t g, bool egress, int index, const cJSON *json)
{
	rule_t *r = &c->rules[c->n_rules];
	char path[FIELD_MAX];
	const char *proto;

	json_pathf(path, sizeof(path), "SecurityGroups[%d].%s[%d]", c->groups[g].index,
	           egress ? "IpPermissionsEgress" : "IpPermissions", index);
	if (!cJSON_IsObject(json))
		return fail(c, c->in->groups_path, "%s: must be an object", path);
	/* Counted first, so that the cleanup frees a half-filled rule. */
	c->n_rules++;
	r->group = g;
	r->egress = egress;
	r->index = index;
	r->json = json;
	r->lo = 1;
	r->hi = 0;
	proto = get_string(c, json, "IpProtocol", path);
	if (!proto)
		return -EINVAL;
	r->proto = proto;
	if (parse_rule_ports(c, r, path))
		return -EINVAL;
	return parse_rule_targets(c, r, path);
}

/* First pass over SecurityGroups: the groups, their ids, and how many rules. */
static int parse_group_list(conv_t *c, const cJSON *sgs, size_t *n_rules)
{
	const cJSON *sg;
	char path[FIELD_MAX];
	int i = 0;

	*n_rules = 0;
	cJSON_ArrayForEach(sg, sgs)
	{
		group_t *g = &c->groups[c->n_groups];
		const cJSON *name;
		const cJSON *in;
		const cJSON *out;

		json_pathf(path, sizeof(path), "SecurityGroups[%d]", i);
		if (!cJSON_IsObject(sg))
			return fail(c, c->in->groups_path, "%s: must be an object", path);
		g->id = get_string(c, sg, "GroupId", path);
		if (!g->id)
			return -EINVAL;
		name = cJSON_GetObjectItemCaseSensitive(sg, "GroupName");
		if (name && !cJSON_IsString(name))
			return fail(c, c->in->groups_path, "%s.GroupName: must be a string", path);
		g->name = name && name->valuestring ? name->valuestring : "";
		g->index = i++;
		if (get_array(c, sg, "IpPermissions", path, &in) ||
		    get_array(c, sg, "IpPermissionsEgress", path, &out))
			return -EINVAL;
		*n_rules += (size_t)(in ? cJSON_GetArraySize(in) : 0);
		*n_rules += (size_t)(out ? cJSON_GetArraySize(out) : 0);
		c->by_id[c->n_groups].key = g->id;
		c->by_id[c->n_groups].idx = c->n_groups;
		c->n_groups++;
	}
	qsort(c->by_id, c->n_groups, sizeof(*c->by_id), cmp_name_ref);
	for (size_t k = 1; k < c->n_groups; k++) {
		char q[JSON_QUOTE_BUF];

		size_t later =
		    c->by_id[k - 1].idx > c->by_id[k].idx ? c->by_id[k - 1].idx : c->by_id[k].idx;

		if (!strcmp(c->by_id[k - 1].key, c->by_id[k].key))
			return fail(c, c->in->groups_path,
			            "SecurityGroups[%d].GroupId: duplicate group '%s'",
			            c->groups[later].index,
			            json_quote(c->by_id[k].key, q, sizeof(q)));
	}
	return 0;
}

static int parse_groups(conv_t *c)
{
	const cJSON *sgs;
	const cJSON *sg;
	size_t n_rules;
	unsigned line;
	int result;
	int n;

	c->groups_root = json_parse(c->in->groups_text ? c->in->groups_text : "",
	                            c->in->groups_text ? c->in->groups_len : 0, &line, &result);
	if (!c->groups_root) {
		if (result == -ENOMEM)
			return fail_oom(c);
		return fail(c, c->in->groups_path, "invalid JSON near line %u", line);
	}
	if (!cJSON_IsObject(c->groups_root))
		return fail(c, c->in->groups_path,
		            "must be a JSON object (aws ec2 describe-security-groups output)");
	sgs = cJSON_GetObjectItemCaseSensitive(c->groups_root, "SecurityGroups");
	if (!cJSON_IsArray(sgs))
		return fail(c, c->in->groups_path,
		            "SecurityGroups: must be an array (aws ec2 describe-security-groups "
		            "output)");
	n = cJSON_GetArraySize(sgs);
	if (n > IMPORTSG_MAX_GROUPS)
		return fail(c, c->in->groups_path, "SecurityGroups: more than %d groups",
		            IMPORTSG_MAX_GROUPS);
	if (n == 0)
		return 0;
	c->groups = calloc((size_t)n, sizeof(*c->groups));
	c->by_id = calloc((size_t)n, sizeof(*c->by_id));
	if (!c->groups || !c->by_id)
		return fail_oom(c);
	result = parse_group_list(c, sgs, &n_rules);
	if (result)
		return result;
	if (n_rules > 0) {
		c->rules = calloc(n_rules, sizeof(*c->rules));
		if (!c->rules)
			return fail_oom(c);
	}
	n = 0;
	cJSON_ArrayForEach(sg, sgs)
	{
		static const char *const keys[2] = {"IpPermissions", "IpPermissionsEgress"};
		group_t *g = &c->groups[n];

		g->first_rule = c->n_rules;
		for (int k = 0; k < 2; k++) {
			const cJSON *arr = cJSON_GetObjectItemCaseSensitive(sg, keys[k]);
			const cJSON *rule;
			int i = 0;

			if (!cJSON_IsArray(arr))
				continue;
			cJSON_ArrayForEach(rule, arr)
			{
				result = parse_rule(c, (size_t)n, k == 1, i++, rule);
				if (result)
					return result;
			}
		}
		g->n_rules = c->n_rules - g->first_rule;
		n++;
	}
	return 0;
}

/* ---- the map ------------------------------------------------------------ */

/* Counts the members of `obj` named `key` (cJSON keeps repeated keys). */
static int count_key(const cJSON *obj, const char *key)
{
	const cJSON *item;
	int n = 0;

	cJSON_ArrayForEach(item, obj)
	{
		if (item->string && !strcmp(item->string, key))
			n++;
	}
	return n;
}

/* The map's top level: name, probe and roles, nothing else, each once. */
static int check_map_top(conv_t *c, const cJSON *root)
{
	static const char *const keys[] = {"name", "probe", "roles"};
	const char *map = c->in->map_path;
	const cJSON *item;

	if (!cJSON_IsObject(root))
		return fail(c, map, "must be a JSON object");
	cJSON_ArrayForEach(item, root)
	{
		char q[JSON_QUOTE_BUF];
		const char *key = item->string ? item->string : "";
		size_t k;

		for (k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
			if (!strcmp(key, keys[k]))
				break;
		}
		if (k == sizeof(keys) / sizeof(keys[0]))
			return fail(c, map, "%s: unknown key (a map holds name, probe and roles)",
			            json_quote(key, q, sizeof(q)));
		if (count_key(root, key) > 1)
			return fail(c, map, "%s: duplicate key", key);
	}
	item = cJSON_GetObjectItemCaseSensitive(root, "roles");
	if (!item)
		return fail(c, map, "roles: required");
	if (!cJSON_IsObject(item))
		return fail(c, map, "roles: must be an object");
	return 0;
}

/* The name of the matrix: --name, else the map's (which the loader checks). */
static int skeleton_name(conv_t *c, const cJSON *root, cJSON *skel)
{
	const cJSON *name = cJSON_GetObjectItemCaseSensitive(root, "name");
	cJSON *item;

	if (c->in->name) {
		if (!c->in->name[0])
			return fail(c, NULL, "--name: must not be empty");
		if (strlen(c->in->name) > MATRIX_MAX_NAME)
			return fail(c, NULL, "--name: longer than %d characters", MATRIX_MAX_NAME);
		item = cJSON_CreateString(c->in->name);
	} else if (!name) {
		return fail(c, c->in->map_path, "name: required (or give --name)");
	} else {
		item = cJSON_Duplicate(name, true);
	}
	if (!item || !cJSON_AddItemToObject(skel, "name", item)) {
		cJSON_Delete(item);
		return fail_oom(c);
	}
	return 0;
}

/*
 * Builds the matrix without its allow rules from the map: each role as the map
 * gives it, less "groups" and "cidrs", which only the import reads.
 */
static int build_skeleton(conv_t *c)
{
	const cJSON *roles = cJSON_GetObjectItemCaseSensitive(c->map_root, "roles");
	const cJSON *probe = cJSON_GetObjectItemCaseSensitive(c->map_root, "probe");
	const cJSON *role;
	cJSON *out_roles;
	cJSON *item;
	int result;

	c->skeleton = cJSON_CreateObject();
	if (!c->skeleton || !cJSON_AddNumberToObject(c->skeleton, "version", 1))
		return fail_oom(c);
	result = skeleton_name(c, c->map_root, c->skeleton);
	if (result)
		return result;
	if (probe) {
		item = cJSON_Duplicate(probe, true);
		if (!item || !cJSON_AddItemToObject(c->skeleton, "probe", item)) {
			cJSON_Delete(item);
			return fail_oom(c);
		}
	}
	out_roles = cJSON_AddObjectToObject(c->skeleton, "roles");
	if (!out_roles)
		return fail_oom(c);
	cJSON_ArrayForEach(role, roles)
	{
		const char *name = role->string ? role->string : "";
		char q[JSON_QUOTE_BUF];

		if (cJSON_IsObject(role)) {
			if (count_key(role, "groups") > 1)
				return fail(c, c->in->map_path, "roles.%s.groups: duplicate key",
				            json_quote(name, q, sizeof(q)));
			if (count_key(role, "cidrs") > 1)
				return fail(c, c->in->map_path, "roles.%s.cidrs: duplicate key",
				            json_quote(name, q, sizeof(q)));
		}
		item = cJSON_Duplicate(role, true);
		if (!item)
			return fail_oom(c);
		if (cJSON_IsObject(item)) {
			cJSON_DeleteItemFromObjectCaseSensitive(item, "groups");
			cJSON_DeleteItemFromObjectCaseSensitive(item, "cidrs");
		}
		if (!cJSON_AddItemToObject(out_roles, name, item)) {
			cJSON_Delete(item);
			return fail_oom(c);
		}
	}
	if (!cJSON_AddArrayToObject(c->skeleton, "allow"))
		return fail_oom(c);
	return 0;
}

/* Reads the skeleton back through the matrix loader: its errors name the map's fields. */
static int load_skeleton(conv_t *c)
{
	char err[MATRIX_ERR_MAX];
	char *text = cJSON_PrintUnformatted(c->skeleton);

	if (!text)
		return fail_oom(c);
	c->m = matrix_parse(text, strlen(text), err, sizeof(err));
	free(text);
	if (!c->m) {
		if (!strcmp(err, "matrix: out of memory"))
			return fail_oom(c);
		return fail(c, c->in->map_path, "%s", err);
	}
	c->roles = calloc(c->m->n_roles, sizeof(*c->roles));
	if (!c->roles)
		return fail_oom(c);
	return 0;
}

/* Resolves one entry of a role's "groups": a GroupId, else a GroupName. */
static int resolve_group(conv_t *c, const char *s, const char *path, size_t *out)
{
	char q[JSON_QUOTE_BUF];
	long g = find_group(c, s);
	size_t n = 0;

	if (g >= 0) {
		*out = (size_t)g;
		return 0;
	}
	for (size_t i = 0; i < c->n_groups; i++) {
		if (!strcmp(c->groups[i].name, s)) {
			*out = i;
			n++;
		}
	}
	if (n == 1)
		return 0;
	json_quote(s, q, sizeof(q));
	if (n > 1)
		return fail(c, c->in->map_path,
		            "%s: '%s' is the GroupName of %zu groups in %s: give the GroupId", path,
		            q, n, c->in->groups_path);
	return fail(c, c->in->map_path,
	            "%s: group '%s' is not in %s (neither a GroupId nor a GroupName)", path, q,
	            c->in->groups_path);
}

static int parse_role_groups(conv_t *c, const cJSON *obj, const char *base, role_t *role)
{
	const cJSON *arr = cJSON_GetObjectItemCaseSensitive(obj, "groups");
	const cJSON *el;
	char p[FIELD_MAX + MATRIX_MAX_NAME];
	int i = 0;

	if (!arr)
		return 0;
	if (!cJSON_IsArray(arr))
		return fail(c, c->in->map_path, "%s.groups: must be an array of group ids or names",
		            base);
	if (cJSON_GetArraySize(arr) > 0) {
		role->groups = calloc((size_t)cJSON_GetArraySize(arr), sizeof(*role->groups));
		if (!role->groups)
			return fail_oom(c);
	}
	cJSON_ArrayForEach(el, arr)
	{
		size_t g = 0;
		int result;

		json_pathf(p, sizeof(p), "%s.groups[%d]", base, i++);
		if (!cJSON_IsString(el) || !el->valuestring || !el->valuestring[0])
			return fail(c, c->in->map_path, "%s: must be a GroupId or a GroupName", p);
		result = resolve_group(c, el->valuestring, p, &g);
		if (result)
			return result;
		for (size_t k = 0; k < role->n_groups; k++) {
			if (role->groups[k] == g)
				return fail(c, c->in->map_path, "%s: group %s is listed twice", p,
				            c->groups[g].id);
		}
		role->groups[role->n_groups++] = g;
		c->groups[g].held = true;
	}
	return 0;
}

/* A role's addresses: its "cidrs" and its IPv4-literal endpoints. */
static int parse_role_addrs(conv_t *c, const cJSON *obj, const char *base, const matrix_role_t *mr,
                            role_t *role)
{
	const cJSON *arr = cJSON_GetObjectItemCaseSensitive(obj, "cidrs");
	const cJSON *el;
	char p[FIELD_MAX + MATRIX_MAX_NAME];
	size_t n;
	int i = 0;

	if (arr && !cJSON_IsArray(arr))
		return fail(c, c->in->map_path, "%s.cidrs: must be an array of IPv4 CIDRs", base);
	n = (size_t)(arr ? cJSON_GetArraySize(arr) : 0) + mr->n_endpoints;
	if (n == 0)
		return 0;
	role->addrs = calloc(n, sizeof(*role->addrs));
	if (!role->addrs)
		return fail_oom(c);
	cJSON_ArrayForEach(el, arr)
	{
		json_pathf(p, sizeof(p), "%s.cidrs[%d]", base, i++);
		if (!cJSON_IsString(el) || !el->valuestring ||
		    parse_cidr(el->valuestring, true, &role->addrs[role->n_addrs]))
			return fail(
			    c, c->in->map_path,
			    "%s: must be an IPv4 CIDR (a.b.c.d/n, no bits beyond the prefix)", p);
		role->n_addrs++;
	}
	for (size_t e = 0; e < mr->n_endpoints; e++) {
		struct in_addr a;

		if (inet_pton(AF_INET, mr->endpoints[e], &a) == 1) {
			role->addrs[role->n_addrs].net = ntohl(a.s_addr);
			role->addrs[role->n_addrs].len = 32;
			role->n_addrs++;
		}
	}
	return 0;
}

static int parse_map(conv_t *c)
{
	const cJSON *roles;
	const cJSON *obj;
	unsigned line;
	size_t i = 0;
	int result;

	c->map_root = json_parse(c->in->map_text ? c->in->map_text : "",
	                         c->in->map_text ? c->in->map_len : 0, &line, &result);
	if (!c->map_root) {
		if (result == -ENOMEM)
			return fail_oom(c);
		return fail(c, c->in->map_path, "invalid JSON near line %u", line);
	}
	result = check_map_top(c, c->map_root);
	if (!result)
		result = build_skeleton(c);
	if (!result)
		result = load_skeleton(c);
	if (result)
		return result;
	/* The loader kept the map's order and refused repeated roles. */
	roles = cJSON_GetObjectItemCaseSensitive(c->map_root, "roles");
	cJSON_ArrayForEach(obj, roles)
	{
		char base[FIELD_MAX + MATRIX_MAX_NAME];

		json_pathf(base, sizeof(base), "roles.%s", c->m->roles[i].name);
		result = parse_role_groups(c, obj, base, &c->roles[i]);
		if (!result)
			result = parse_role_addrs(c, obj, base, &c->m->roles[i], &c->roles[i]);
		if (result)
			return result;
		i++;
	}
	return 0;
}

/* ---- coverage and the warnings about targets ----------------------------- */

/* Writes "<id> (<name>)", or "<id>" for a group with no name. */
static void group_label(const group_t *g, char *buf, size_t buflen)
{
	char q1[JSON_QUOTE_BUF];
	char q2[JSON_QUOTE_BUF];

	json_quote(g->id, q1, sizeof(q1));
	if (g->name[0])
		snprintf(buf, buflen, "%s (%s)", q1, json_quote(g->name, q2, sizeof(q2)));
	else
		snprintf(buf, buflen, "%s", q1);
}

/* Writes "<groups file>: group <id> (<name>) <field>" for messages about rule `r`. */
static void rule_where(const conv_t *c, const rule_t *r, char *buf, size_t buflen)
{
	const group_t *g = &c->groups[r->group];
	char label[2 * JSON_QUOTE_BUF + 4];

	group_label(g, label, sizeof(label));
	snprintf(buf, buflen, "%s: group %s %s[%d]", c->in->groups_path, label,
	         r->egress ? "IpPermissionsEgress" : "IpPermissions", r->index);
}

/*
 * Marks the roles CIDR `cidr` covers in `covers`; warns about the roles it
 * covers only in part, and when it covers none at all.
 */
static void cover_cidr(conv_t *c, const rule_t *r, cidr_t cidr, int k, bool *covers)
{
	char where[512];
	char text[64];
	bool any = false;
	bool partial = false;

	for (size_t i = 0; i < c->m->n_roles; i++) {
		const role_t *role = &c->roles[i];
		size_t inside = 0;
		size_t overlap = 0;

		if (cidr.len == 0) {
			covers[i] = true;
			any = true;
			continue;
		}
		for (size_t a = 0; a < role->n_addrs; a++) {
			inside += cidr_inside(role->addrs[a], cidr);
			overlap += cidr_overlap(role->addrs[a], cidr);
		}
		if (role->n_addrs > 0 && inside == role->n_addrs) {
			covers[i] = true;
			any = true;
		} else if (overlap > 0) {
			rule_where(c, r, where, sizeof(where));
			cidr_text(cidr, text, sizeof(text));
			warn(c,
			     "%s.IpRanges[%d]: %s covers only some of the addresses of role '%s' "
			     "(its cidrs and IP endpoints): not counted as covering it",
			     where, k, text, c->m->roles[i].name);
			partial = true;
		}
	}
	if (!any && !partial) {
		rule_where(c, r, where, sizeof(where));
		cidr_text(cidr, text, sizeof(text));
		warn(c,
		     "%s.IpRanges[%d]: %s covers no role of %s (no role's cidrs or IP endpoints "
		     "fall inside it): ignored",
		     where, k, text, c->in->map_path);
	}
}

/* Warns about the UserIdGroupPairs that reference no group of the file, or an unmapped one. */
static void warn_refs(conv_t *c, const rule_t *r)
{
	const cJSON *arr = cJSON_GetObjectItemCaseSensitive(r->json, "UserIdGroupPairs");
	const cJSON *el;
	char where[512];
	char label[256];
	int k = 0;

	cJSON_ArrayForEach(el, arr)
	{
		const char *id = cJSON_GetObjectItemCaseSensitive(el, "GroupId")->valuestring;
		long g = find_group(c, id);
		char q[JSON_QUOTE_BUF];

		rule_where(c, r, where, sizeof(where));
		if (g < 0) {
			warn(c, "%s.UserIdGroupPairs[%d]: group '%s' is not in %s: ignored", where,
			     k, json_quote(id, q, sizeof(q)), c->in->groups_path);
		} else if (!c->groups[g].held) {
			group_label(&c->groups[g], label, sizeof(label));
			warn(c,
			     "%s.UserIdGroupPairs[%d]: group %s is held by no role of %s: covers "
			     "no role",
			     where, k, label, c->in->map_path);
		}
		k++;
	}
}

/* Warns about the IPv6 ranges and the prefix lists, which the import does not read. */
static void warn_unsupported_targets(conv_t *c, const rule_t *r)
{
	const cJSON *arr;
	const cJSON *el;
	char where[512];
	char q[JSON_QUOTE_BUF];
	int k = 0;

	rule_where(c, r, where, sizeof(where));
	arr = cJSON_GetObjectItemCaseSensitive(r->json, "Ipv6Ranges");
	cJSON_ArrayForEach(el, arr)
	{
		const cJSON *s = cJSON_GetObjectItemCaseSensitive(el, "CidrIpv6");

		warn(c, "%s.Ipv6Ranges[%d]: %s: IPv6 ranges are not imported (roles are IPv4)",
		     where, k++,
		     cJSON_IsString(s) ? json_quote(s->valuestring, q, sizeof(q))
		                       : "(no CidrIpv6)");
	}
	k = 0;
	arr = cJSON_GetObjectItemCaseSensitive(r->json, "PrefixListIds");
	cJSON_ArrayForEach(el, arr)
	{
		const cJSON *s = cJSON_GetObjectItemCaseSensitive(el, "PrefixListId");

		warn(c, "%s.PrefixListIds[%d]: prefix list %s is not resolved: ignored", where, k++,
		     cJSON_IsString(s) ? json_quote(s->valuestring, q, sizeof(q))
		                       : "(no PrefixListId)");
	}
}

/* Warns about a rule whose protocol the import ignores. */
static void warn_protocol(conv_t *c, const rule_t *r)
{
	const char *p = r->proto;
	char where[512];
	char q[JSON_QUOTE_BUF];

	rule_where(c, r, where, sizeof(where));
	if (!strcmp(p, "udp") || !strcmp(p, "17"))
		warn(c, "%s: udp rule ignored: sgprobe probes TCP", where);
	else if (!strcmp(p, "icmp") || !strcmp(p, "1") || !strcmp(p, "icmpv6") || !strcmp(p, "58"))
		warn(c, "%s: %s rule ignored: sgprobe probes TCP", where,
		     json_quote(p, q, sizeof(q)));
	else
		warn(c, "%s: protocol '%s' ignored: sgprobe probes TCP", where,
		     json_quote(p, q, sizeof(q)));
}

/* True when rule `r` takes part in the paths: a TCP rule of a mapped group with ports. */
static bool imported(const conv_t *c, const rule_t *r)
{
	return c->groups[r->group].held && r->kind != PROTO_OTHER && r->lo <= r->hi;
}

/*
 * In the groups file's order: the warnings about groups no role holds and about
 * each rule's targets and protocol, and each imported rule's covered roles.
 */
static int cover_rules(conv_t *c)
{
	char label[256];

	for (size_t g = 0; g < c->n_groups; g++) {
		const group_t *grp = &c->groups[g];

		if (!grp->held) {
			group_label(grp, label, sizeof(label));
			warn(c,
			     "%s: group %s is held by no role of %s: its %zu rule%s not imported",
			     c->in->groups_path, label, c->in->map_path, grp->n_rules,
			     grp->n_rules == 1 ? " is" : "s are");
			continue;
		}
		for (size_t i = grp->first_rule; i < grp->first_rule + grp->n_rules; i++) {
			rule_t *r = &c->rules[i];

			if (r->kind == PROTO_OTHER) {
				warn_protocol(c, r);
				continue;
			}
			if (r->lo > r->hi) {
				char where[512];

				rule_where(c, r, where, sizeof(where));
				warn(c, "%s: tcp port 0 is no port to probe: ignored", where);
				continue;
			}
			r->covers = calloc(c->m->n_roles, sizeof(*r->covers));
			if (!r->covers)
				return fail_oom(c);
			for (size_t k = 0; k < r->n_refs; k++) {
				for (size_t ro = 0; ro < c->m->n_roles; ro++) {
					for (size_t j = 0; j < c->roles[ro].n_groups; j++) {
						if (c->roles[ro].groups[j] == r->refs[k])
							r->covers[ro] = true;
					}
				}
			}
			for (size_t k = 0; k < r->n_cidrs; k++)
				cover_cidr(c, r, r->cidrs[k], (int)k, r->covers);
			warn_refs(c, r);
			warn_unsupported_targets(c, r);
			if (!r->single) {
				r->kept = calloc(1, PORT_BITMAP_BYTES);
				if (!r->kept)
					return fail_oom(c);
			}
		}
	}
	return 0;
}

/* ---- the paths ----------------------------------------------------------- */

static int cmp_u16(const void *a, const void *b)
{
	uint16_t x = *(const uint16_t *)a;
	uint16_t y = *(const uint16_t *)b;

	return (x > y) - (x < y);
}

/*
 * Collects into `out` the imported rules of role `holder`'s groups in direction
 * `egress` that cover role `other`. Returns how many.
 */
static size_t side_rules(const conv_t *c, size_t holder, size_t other, bool egress, size_t *out)
{
	const role_t *role = &c->roles[holder];
	size_t n = 0;

	for (size_t k = 0; k < role->n_groups; k++) {
		const group_t *g = &c->groups[role->groups[k]];

		for (size_t i = g->first_rule; i < g->first_rule + g->n_rules; i++) {
			const rule_t *r = &c->rules[i];

			if (r->egress == egress && imported(c, r) && r->covers[other])
				out[n++] = i;
		}
	}
	return n;
}

/* True when one of the `n` rules at `idx` admits `port` (or there are no groups: `open`). */
static bool side_admits(const conv_t *c, bool open, const size_t *idx, size_t n, unsigned port)
{
	if (open)
		return true;
	for (size_t i = 0; i < n; i++) {
		if (c->rules[idx[i]].lo <= port && port <= c->rules[idx[i]].hi)
			return true;
	}
	return false;
}

/* Marks `port` as kept on the port ranges among the `n` rules at `idx` that admit it. */
static void mark_kept(conv_t *c, const size_t *idx, size_t n, unsigned port)
{
	for (size_t i = 0; i < n; i++) {
		rule_t *r = &c->rules[idx[i]];

		if (r->kept && r->lo <= port && port <= r->hi)
			bit_set(r->kept, port);
	}
}

/* Scratch space for one path, sized once for the largest. */
typedef struct {
	size_t *out_rules; /* the source's egress rules that cover the destination */
	size_t *in_rules;  /* the destination's ingress rules that cover the source */
	uint16_t *cand;    /* the ports to consider */
	size_t cand_cap;
} scratch_t;

/*
 * Works out the ports of path s -> d and appends its allow rule to `allow` when
 * there are any. The ports to consider are those the matrix probes on d (its
 * ports and probe.ports) and those a rule of the path names alone; of those,
 * the ones both sides admit are written.
 */
static int derive_path(conv_t *c, scratch_t *sc, size_t s, size_t d, cJSON *allow)
{
	const matrix_role_t *dr = &c->m->roles[d];
	bool s_open = c->roles[s].n_groups == 0;
	bool d_open = c->roles[d].n_groups == 0;
	size_t n_out;
	size_t n_in;
	size_t n_cand = 0;
	cJSON *rule;
	cJSON *ports;

	if (s_open && d_open)
		return 0;
	n_out = s_open ? 0 : side_rules(c, s, d, true, sc->out_rules);
	n_in = d_open ? 0 : side_rules(c, d, s, false, sc->in_rules);
	if ((!s_open && n_out == 0) || (!d_open && n_in == 0))
		return 0;
	for (size_t i = 0; i < dr->ports.n; i++)
		sc->cand[n_cand++] = dr->ports.v[i];
	for (size_t i = 0; i < c->m->probe_ports.n; i++)
		sc->cand[n_cand++] = c->m->probe_ports.v[i];
	for (size_t i = 0; i < n_out; i++) {
		if (c->rules[sc->out_rules[i]].single)
			sc->cand[n_cand++] = (uint16_t)c->rules[sc->out_rules[i]].lo;
	}
	for (size_t i = 0; i < n_in; i++) {
		if (c->rules[sc->in_rules[i]].single)
			sc->cand[n_cand++] = (uint16_t)c->rules[sc->in_rules[i]].lo;
	}
	if (n_cand == 0)
		return 0;
	qsort(sc->cand, n_cand, sizeof(*sc->cand), cmp_u16);
	ports = NULL;
	rule = NULL;
	for (size_t i = 0; i < n_cand; i++) {
		unsigned p = sc->cand[i];

		if (i > 0 && sc->cand[i - 1] == p)
			continue;
		if (!side_admits(c, s_open, sc->out_rules, n_out, p) ||
		    !side_admits(c, d_open, sc->in_rules, n_in, p))
			continue;
		mark_kept(c, sc->out_rules, n_out, p);
		mark_kept(c, sc->in_rules, n_in, p);
		if (!rule) {
			rule = cJSON_CreateObject();
			if (!rule || !cJSON_AddItemToArray(allow, rule)) {
				cJSON_Delete(rule);
				return fail_oom(c);
			}
			if (!cJSON_AddStringToObject(rule, "from", c->m->roles[s].name) ||
			    !cJSON_AddStringToObject(rule, "to", dr->name))
				return fail_oom(c);
			ports = cJSON_AddArrayToObject(rule, "ports");
			if (!ports)
				return fail_oom(c);
		}
		if (!cJSON_AddItemToArray(ports, cJSON_CreateNumber(p)))
			return fail_oom(c);
	}
	return 0;
}

static int derive_paths(conv_t *c)
{
	cJSON *allow = cJSON_GetObjectItemCaseSensitive(c->skeleton, "allow");
	size_t n = c->m->n_roles;
	size_t max_ports = 0;
	scratch_t sc = {0};
	name_ref_t *order;
	int result = 0;

	for (size_t i = 0; i < n; i++) {
		if (c->m->roles[i].ports.n > max_ports)
			max_ports = c->m->roles[i].ports.n;
	}
	sc.cand_cap = max_ports + c->m->probe_ports.n + 2 * c->n_rules + 1;
	order = calloc(n, sizeof(*order));
	sc.out_rules = calloc(c->n_rules + 1, sizeof(*sc.out_rules));
	sc.in_rules = calloc(c->n_rules + 1, sizeof(*sc.in_rules));
	sc.cand = calloc(sc.cand_cap, sizeof(*sc.cand));
	if (!order || !sc.out_rules || !sc.in_rules || !sc.cand) {
		result = fail_oom(c);
		goto out;
	}
	/* By name, so that the allow rules come out sorted by source, then destination. */
	for (size_t i = 0; i < n; i++) {
		order[i].key = c->m->roles[i].name;
		order[i].idx = i;
	}
	qsort(order, n, sizeof(*order), cmp_name_ref);
	for (size_t i = 0; i < n && !result; i++) {
		for (size_t j = 0; j < n && !result; j++)
			result = derive_path(c, &sc, order[i].idx, order[j].idx, allow);
	}
out:
	free(order);
	free(sc.out_rules);
	free(sc.in_rules);
	free(sc.cand);
	return result;
}

/*
 * Writes the ports set in `bits` within lo..hi as "80, 443, 8000-8002" into a
 * new string (free()), or "none". Returns NULL when memory ran out.
 */
static char *ports_text(const unsigned char *bits, unsigned lo, unsigned hi)
{
	char *buf = NULL;
	size_t len = 0;
	bool first = true;
	FILE *f = open_memstream(&buf, &len);

	if (!f)
		return NULL;
	for (unsigned p = lo; p <= hi; p++) {
		unsigned end = p;

		if (!bit_get(bits, p))
			continue;
		while (end < hi && bit_get(bits, end + 1))
			end++;
		fprintf(f, "%s%u", first ? "" : ", ", p);
		if (end >= p + 2)
			fprintf(f, "-%u", end);
		else if (end == p + 1)
			fprintf(f, ", %u", end);
		first = false;
		p = end;
	}
	if (first)
		fputs("none", f);
	if (fclose(f)) {
		free(buf);
		return NULL;
	}
	return buf;
}

/* Warns about each port range that held ports the matrix does not probe, naming those kept. */
static int warn_ranges(conv_t *c)
{
	for (size_t i = 0; i < c->n_rules; i++) {
		const rule_t *r = &c->rules[i];
		char where[512];
		bool all_kept = true;
		char *kept;

		if (!r->kept)
			continue;
		for (unsigned p = r->lo; p <= r->hi && all_kept; p++)
			all_kept = bit_get(r->kept, p);
		/* All traffic is always named: it is more than TCP anyway. */
		if (all_kept && r->kind != PROTO_ALL)
			continue;
		kept = ports_text(r->kept, r->lo, r->hi);
		if (!kept)
			return fail_oom(c);
		rule_where(c, r, where, sizeof(where));
		if (r->kind == PROTO_ALL)
			warn(c,
			     "%s: all traffic (IpProtocol -1) taken as TCP 1-65535, wider than the "
			     "ports the matrix probes (the destinations' ports and probe.ports): "
			     "kept %s",
			     where, kept);
		else
			warn(c,
			     "%s: tcp %u-%u is wider than the ports the matrix probes (the "
			     "destinations' ports and probe.ports): kept %s",
			     where, r->from, r->to, kept);
		free(kept);
	}
	return 0;
}

/* ---- the output ---------------------------------------------------------- */

static void put_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch < 0x20)
			fprintf(f, "\\u%04x", ch);
		else
			fputc(ch, f);
	}
	fputc('"', f);
}

/* One value on one line: `{ "a": 1, "b": [1, 2] }`. */
static void put_compact(FILE *f, const cJSON *item)
{
	const cJSON *child;
	bool first = true;

	if (cJSON_IsObject(item) || cJSON_IsArray(item)) {
		bool obj = cJSON_IsObject(item);

		if (!item->child) {
			fputs(obj ? "{}" : "[]", f);
			return;
		}
		fputs(obj ? "{ " : "[", f);
		cJSON_ArrayForEach(child, item)
		{
			if (!first)
				fputs(", ", f);
			first = false;
			if (obj) {
				put_string(f, child->string ? child->string : "");
				fputs(": ", f);
			}
			put_compact(f, child);
		}
		fputs(obj ? " }" : "]", f);
	} else if (cJSON_IsString(item)) {
		put_string(f, item->valuestring ? item->valuestring : "");
	} else if (cJSON_IsNumber(item)) {
		int64_t v;

		if (json_get_int(item, -9007199254740992.0, 9007199254740992.0, &v))
			fprintf(f, "%lld", (long long)v);
		else
			fprintf(f, "%.17g", item->valuedouble);
	} else if (cJSON_IsBool(item)) {
		fputs(cJSON_IsTrue(item) ? "true" : "false", f);
	} else {
		fputs("null", f);
	}
}

/*
 * The matrix in the shipped examples' layout, so that a pull request's diff
 * shows one role or one allow rule per line: the top level one key per line,
 * "roles" and "allow" one entry per line, everything else on one line.
 */
static char *print_matrix(const cJSON *root)
{
	const cJSON *top;
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (!f)
		return NULL;
	fputs("{\n", f);
	cJSON_ArrayForEach(top, root)
	{
		bool expand = (cJSON_IsObject(top) || cJSON_IsArray(top)) && top->child &&
		              (!strcmp(top->string, "roles") || !strcmp(top->string, "allow"));

		fputs("  ", f);
		put_string(f, top->string);
		fputs(": ", f);
		if (expand) {
			bool obj = cJSON_IsObject(top);
			const cJSON *child;

			fputs(obj ? "{\n" : "[\n", f);
			cJSON_ArrayForEach(child, top)
			{
				fputs("    ", f);
				if (obj) {
					put_string(f, child->string);
					fputs(": ", f);
				}
				put_compact(f, child);
				fputs(child->next ? ",\n" : "\n", f);
			}
			fputs(obj ? "  }" : "  ]", f);
		} else {
			put_compact(f, top);
		}
		fputs(top->next ? ",\n" : "\n", f);
	}
	fputs("}\n", f);
	if (fclose(f)) {
		free(buf);
		return NULL;
	}
	return buf;
}

/* The written matrix goes through the loader and every role's plan, as check-matrix does. */
static int check_output(conv_t *c, const char *text)
{
	char err[MATRIX_ERR_MAX];
	matrix_t *m = matrix_parse(text, strlen(text), err, sizeof(err));

	if (!m)
		return fail(c, NULL, "the derived matrix is refused by the matrix loader: %s", err);
	for (size_t i = 0; i < m->n_roles; i++) {
		matrix_plan_t *p =
		    matrix_plan_for_role(m, m->roles[i].name, NULL, err, sizeof(err));

		if (!p) {
			matrix_free(m);
			return fail(c, NULL, "the derived matrix has no valid plan: %s", err);
		}
		matrix_plan_free(p);
	}
	matrix_free(m);
	return 0;
}

static void conv_dispose(conv_t *c)
{
	for (size_t i = 0; i < c->n_rules; i++) {
		free(c->rules[i].refs);
		free(c->rules[i].cidrs);
		free(c->rules[i].covers);
		free(c->rules[i].kept);
	}
	free(c->rules);
	if (c->roles) {
		for (size_t i = 0; i < c->m->n_roles; i++) {
			free(c->roles[i].groups);
			free(c->roles[i].addrs);
		}
		free(c->roles);
	}
	free(c->groups);
	free(c->by_id);
	matrix_free(c->m);
	cJSON_Delete(c->skeleton);
	cJSON_Delete(c->map_root);
	cJSON_Delete(c->groups_root);
}

char *importsg_convert(const importsg_input_t *in, char *err, size_t errlen, int *result)
{
	conv_t c;
	char *text = NULL;
	int r;

	memset(&c, 0, sizeof(c));
	c.in = in;
	c.err = err;
	c.errlen = errlen;
	if (err && errlen > 0)
		err[0] = '\0';
	r = parse_groups(&c);
	if (!r)
		r = parse_map(&c);
	if (!r)
		r = cover_rules(&c);
	if (!r)
		r = derive_paths(&c);
	if (!r)
		r = warn_ranges(&c);
	if (!r) {
		text = print_matrix(c.skeleton);
		if (!text)
			r = fail_oom(&c);
	}
	if (!r)
		r = check_output(&c, text);
	if (r) {
		free(text);
		text = NULL;
	}
	conv_dispose(&c);
	*result = r;
	return text;
}

/* ---- diff-matrix --------------------------------------------------------- */

/* One allowed path, named by its roles. */
typedef struct {
	const char *from;
	const char *to;
	uint16_t port;
} path_t;

static int cmp_path(const void *a, const void *b)
{
	const path_t *x = a;
	const path_t *y = b;
	int r = strcmp(x->from, y->from);

	if (!r)
		r = strcmp(x->to, y->to);
	if (!r)
		r = (x->port > y->port) - (x->port < y->port);
	return r;
}

/* The allowed paths of `m`, sorted and unique, in a new array (free()). Returns 0 or -ENOMEM. */
static int paths_of(const matrix_t *m, path_t **out, size_t *n_out)
{
	size_t total = 0;
	size_t n = 0;
	path_t *v;

	for (size_t i = 0; i < m->n_rules; i++)
		total += m->rules[i].ports.n;
	v = calloc(total + 1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < m->n_rules; i++) {
		const matrix_rule_t *r = &m->rules[i];

		for (size_t k = 0; k < r->ports.n; k++) {
			v[n].from = m->roles[r->from].name;
			v[n].to = m->roles[r->to].name;
			v[n].port = r->ports.v[k];
			n++;
		}
	}
	qsort(v, n, sizeof(*v), cmp_path);
	total = 0;
	for (size_t i = 0; i < n; i++) {
		if (total == 0 || cmp_path(&v[total - 1], &v[i]))
			v[total++] = v[i];
	}
	*out = v;
	*n_out = total;
	return 0;
}

static void put_ports(FILE *f, const matrix_ports_t *p)
{
	fputc('[', f);
	for (size_t i = 0; i < p->n; i++)
		fprintf(f, "%s%u", i ? ", " : "", (unsigned)p->v[i]);
	fputc(']', f);
}

static bool ports_equal(const matrix_ports_t *a, const matrix_ports_t *b)
{
	return a->n == b->n && (a->n == 0 || !memcmp(a->v, b->v, a->n * sizeof(*a->v)));
}

static void diff_ports(FILE *f, const char *what, const matrix_ports_t *a, const matrix_ports_t *b)
{
	if (ports_equal(a, b))
		return;
	fprintf(f, "# %s ", what);
	put_ports(f, a);
	fputs(" -> ", f);
	put_ports(f, b);
	fputc('\n', f);
}

static void put_endpoints(FILE *f, const matrix_role_t *r)
{
	fputc('[', f);
	for (size_t i = 0; i < r->n_endpoints; i++)
		fprintf(f, "%s%s", i ? ", " : "", r->endpoints[i]);
	fputc(']', f);
}

static bool endpoints_equal(const matrix_role_t *a, const matrix_role_t *b)
{
	if (a->n_endpoints != b->n_endpoints)
		return false;
	for (size_t i = 0; i < a->n_endpoints; i++) {
		size_t k;

		for (k = 0; k < b->n_endpoints; k++) {
			if (!strcmp(a->endpoints[i], b->endpoints[k]))
				break;
		}
		if (k == b->n_endpoints)
			return false;
	}
	return true;
}

/* The informational lines about one role present in both matrices. */
static void diff_role(FILE *f, const matrix_role_t *a, const matrix_role_t *b)
{
	char what[MATRIX_MAX_NAME + 32];

	if (!endpoints_equal(a, b)) {
		fprintf(f, "# role %s: endpoints ", a->name);
		put_endpoints(f, a);
		fputs(" -> ", f);
		put_endpoints(f, b);
		fputc('\n', f);
	}
	snprintf(what, sizeof(what), "role %s: ports", a->name);
	diff_ports(f, what, &a->ports, &b->ports);
	snprintf(what, sizeof(what), "role %s: tls_ports", a->name);
	diff_ports(f, what, &a->tls_ports, &b->tls_ports);
	if (a->agent != b->agent)
		fprintf(f, "# role %s: agent %s -> %s\n", a->name, a->agent ? "true" : "false",
		        b->agent ? "true" : "false");
	if (a->silent != b->silent)
		fprintf(f, "# role %s: silent %s -> %s\n", a->name, a->silent ? "true" : "false",
		        b->silent ? "true" : "false");
	if (a->probe_allowed != b->probe_allowed)
		fprintf(f, "# role %s: probe_allowed %s -> %s\n", a->name,
		        a->probe_allowed ? "true" : "false", b->probe_allowed ? "true" : "false");
	if (a->allowed_interval_s != b->allowed_interval_s)
		fprintf(f, "# role %s: allowed_interval_s %u -> %u\n", a->name,
		        a->allowed_interval_s, b->allowed_interval_s);
}

/* The informational lines: name, probe settings, roles added, removed and changed. */
static void diff_roles(const matrix_t *a, const matrix_t *b, FILE *f)
{
	if (strcmp(a->name, b->name))
		fprintf(f, "# name: %s -> %s\n", a->name, b->name);
	diff_ports(f, "probe: ports", &a->probe_ports, &b->probe_ports);
	if (a->interval_s != b->interval_s)
		fprintf(f, "# probe: interval_s %u -> %u\n", a->interval_s, b->interval_s);
	if (a->timeout_ms != b->timeout_ms)
		fprintf(f, "# probe: timeout_ms %u -> %u\n", a->timeout_ms, b->timeout_ms);
	for (size_t i = 0; i < a->n_roles; i++) {
		int k = matrix_role_index(b, a->roles[i].name);

		if (k < 0)
			fprintf(f, "# role removed: %s\n", a->roles[i].name);
		else
			diff_role(f, &a->roles[i], &b->roles[k]);
	}
	for (size_t i = 0; i < b->n_roles; i++) {
		if (matrix_role_index(a, b->roles[i].name) < 0)
			fprintf(f, "# role added: %s\n", b->roles[i].name);
	}
}

int importsg_diff(const matrix_t *a, const matrix_t *b, FILE *out)
{
	path_t *pa = NULL;
	path_t *pb = NULL;
	size_t na = 0;
	size_t nb = 0;
	size_t i = 0;
	size_t k = 0;
	int differ = 0;

	if (paths_of(a, &pa, &na) || paths_of(b, &pb, &nb)) {
		free(pa);
		free(pb);
		return -ENOMEM;
	}
	diff_roles(a, b, out);
	while (i < na || k < nb) {
		int r = i == na ? 1 : k == nb ? -1 : cmp_path(&pa[i], &pb[k]);

		if (r == 0) {
			i++;
			k++;
			continue;
		}
		if (r < 0) {
			fprintf(out, "- %s -> %s:%u\n", pa[i].from, pa[i].to, (unsigned)pa[i].port);
			i++;
		} else {
			fprintf(out, "+ %s -> %s:%u\n", pb[k].from, pb[k].to, (unsigned)pb[k].port);
			k++;
		}
		differ = 1;
	}
	free(pa);
	free(pb);
	return differ;
}

/* ---- the command line ---------------------------------------------------- */

#define PROG "sgprobe-collector"

/*
 * Reads the whole file at `path`, at most IMPORTSG_MAX_FILE_BYTES, into a new
 * buffer (free()). Returns 0, or -1 with a message naming the file in `err`.
 */
static int read_file(const char *path, char **out, size_t *outlen, char *err, size_t errlen)
{
	int result = fileio_read(path, IMPORTSG_MAX_FILE_BYTES, out, outlen);

	if (result == -EFBIG)
		snprintf(err, errlen, "%s: larger than the limit of %u bytes", path,
		         IMPORTSG_MAX_FILE_BYTES);
	else if (result == -ENOMEM)
		snprintf(err, errlen, "out of memory");
	else if (result)
		snprintf(err, errlen, "%s: cannot read: %s", path, strerror(-result));
	return result ? -1 : 0;
}

static void import_usage(FILE *f)
{
	fputs("usage: " PROG " import-sg --groups FILE --roles MAP [--name NAME] [--output FILE]\n"
	      "\n"
	      "Derives the intended matrix from security groups: FILE is the output of\n"
	      "`aws ec2 describe-security-groups`, MAP names each role's groups, endpoints,\n"
	      "ports and agent flag (docs/operations.md \"A matrix from the real security\n"
	      "groups\"). The matrix goes to standard output or --output; warnings about\n"
	      "rules the matrix cannot express go to standard error.\n"
	      "\n"
	      "  --groups FILE   aws ec2 describe-security-groups output (JSON)\n"
	      "  --roles MAP     the role map (JSON)\n"
	      "  --name NAME     the matrix's name; default the map's \"name\"\n"
	      "  --output FILE   write the matrix there (only once it is valid)\n"
	      "\n"
	      "Exit status: 0 written, 1 out of memory or an output error, 2 bad usage or input.\n",
	      f);
}

static void on_warning(void *arg, const char *msg)
{
	unsigned *count = arg;

	(*count)++;
	fprintf(stderr, PROG " import-sg: warning: %s\n", msg);
}

/* Writes `text` to `path`, or to standard output when `path` is NULL. Returns 0 or -1. */
static int write_text(const char *path, const char *text)
{
	size_t len = strlen(text);
	FILE *f = path ? fopen(path, "w") : stdout;
	int bad;

	if (!f) {
		fprintf(stderr, PROG " import-sg: %s: %s\n", path, strerror(errno));
		return -1;
	}
	bad = fwrite(text, 1, len, f) != len;
	bad |= path ? fclose(f) != 0 : fflush(f) != 0;
	if (bad) {
		fprintf(stderr, PROG " import-sg: writing %s: %s\n",
		        path ? path : "standard output", strerror(errno));
		return -1;
	}
	return 0;
}

int importsg_main(int argc, char **argv)
{
	enum { OPT_GROUPS = 256, OPT_ROLES, OPT_NAME, OPT_OUTPUT, OPT_HELP };
	static const struct option options[] = {
	    {"groups", required_argument, NULL, OPT_GROUPS},
	    {"roles", required_argument, NULL, OPT_ROLES},
	    {"name", required_argument, NULL, OPT_NAME},
	    {"output", required_argument, NULL, OPT_OUTPUT},
	    {"help", no_argument, NULL, OPT_HELP},
	    {NULL, 0, NULL, 0},
	};
	importsg_input_t in;
	const char *output = NULL;
	char err[IMPORTSG_ERR_MAX];
	char *groups = NULL;
	char *map = NULL;
	char *text = NULL;
	unsigned warnings = 0;
	int status = EXIT_USAGE;
	int result;
	int opt;

	memset(&in, 0, sizeof(in));
	/* 0, not 1: glibc then starts over, whatever an earlier getopt left behind. */
	optind = 0;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
		switch (opt) {
		case OPT_GROUPS:
			in.groups_path = optarg;
			break;
		case OPT_ROLES:
			in.map_path = optarg;
			break;
		case OPT_NAME:
			in.name = optarg;
			break;
		case OPT_OUTPUT:
			output = optarg;
			break;
		case 'h':
		case OPT_HELP:
			import_usage(stdout);
			return 0;
		default:
			fprintf(stderr, PROG " import-sg: unknown option or missing value: %s\n",
			        argv[optind - 1]);
			import_usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, PROG " import-sg: unexpected argument: %s\n", argv[optind]);
		return EXIT_USAGE;
	}
	if (!in.groups_path || !in.map_path) {
		fprintf(stderr, PROG " import-sg: --%s is required\n",
		        in.groups_path ? "roles" : "groups");
		import_usage(stderr);
		return EXIT_USAGE;
	}
	if (read_file(in.groups_path, &groups, &in.groups_len, err, sizeof(err)) ||
	    read_file(in.map_path, &map, &in.map_len, err, sizeof(err))) {
		fprintf(stderr, PROG " import-sg: %s\n", err);
		goto out;
	}
	in.groups_text = groups;
	in.map_text = map;
	in.warn = on_warning;
	in.warn_arg = &warnings;
	text = importsg_convert(&in, err, sizeof(err), &result);
	if (!text) {
		fprintf(stderr, PROG " import-sg: %s\n", err);
		status = result == -ENOMEM ? EXIT_FAIL : EXIT_USAGE;
		goto out;
	}
	status = EXIT_FAIL;
	if (write_text(output, text))
		goto out;
	if (warnings)
		fprintf(stderr,
		        PROG " import-sg: %u warning%s: review them before using the matrix\n",
		        warnings, warnings == 1 ? "" : "s");
	status = 0;
out:
	free(text);
	free(groups);
	free(map);
	return status;
}

int importsg_diff_main(int argc, char **argv)
{
	char err[MATRIX_ERR_MAX];
	matrix_t *a = NULL;
	matrix_t *b = NULL;
	int status = EXIT_USAGE;
	int result;

	if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		printf("usage: " PROG " diff-matrix A B\n"
		       "\n"
		       "Prints the allowed paths only B allows (+ src -> dst:port) and only A\n"
		       "allows (- src -> dst:port), sorted, after informational lines (# ...)\n"
		       "about roles and settings that differ.\n"
		       "Exit status: 0 the same allowed paths, 1 different ones, 2 bad usage or a\n"
		       "matrix that does not load.\n");
		return 0;
	}
	if (argc != 3) {
		fprintf(stderr, "usage: " PROG " diff-matrix A B\n");
		return EXIT_USAGE;
	}
	a = matrix_load(argv[1], err, sizeof(err));
	if (!a) {
		fprintf(stderr, PROG " diff-matrix: %s\n", err);
		goto out;
	}
	b = matrix_load(argv[2], err, sizeof(err));
	if (!b) {
		fprintf(stderr, PROG " diff-matrix: %s\n", err);
		goto out;
	}
	result = importsg_diff(a, b, stdout);
	if (result < 0) {
		fprintf(stderr, PROG " diff-matrix: out of memory\n");
		goto out;
	}
	if (fflush(stdout)) {
		fprintf(stderr, PROG " diff-matrix: writing standard output: %s\n",
		        strerror(errno));
		goto out;
	}
	status = result;
out:
	matrix_free(a);
	matrix_free(b);
	return status;
}
