/*
 * Unit tests of collector/importsg.c: the rules by which security groups become
 * allowed paths (group references, 0.0.0.0/0, narrower CIDRs matching a role's
 * cidrs or IP endpoints, roles with no groups, several groups per role, a group
 * for several roles, port ranges cut to the probed ports), the warning each
 * unsupported kind of rule produces, the map's strict validation, and
 * diff-matrix's comparison. The fixtures are written with single quotes.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "../../collector/importsg.h"

/* One group: GroupId, GroupName, ingress rules, egress rules. */
#define G(id, name, in, out)                                                                       \
	"{'GroupId':'" id "','GroupName':'" name "','IpPermissions':[" in                          \
	"],'IpPermissionsEgress':[" out "]}"
/* A TCP rule from-to with its targets. */
#define TCP(from, to, targets)                                                                     \
	"{'IpProtocol':'tcp','FromPort':" #from ",'ToPort':" #to "," targets "}"
#define REF(g)     "'UserIdGroupPairs':[{'GroupId':'" g "','UserId':'123456789012'}]"
#define CIDR(c)    "'IpRanges':[{'CidrIp':'" c "'}]"
#define GROUPS(gs) "{'SecurityGroups':[" gs "]}"
/* A role whose endpoint is <name>.internal. */
#define ROLE(name, groups, ports, extra)                                                           \
	"'" name "':{'groups':[" groups "],'endpoints':['" name ".internal'],'ports':[" ports      \
	"],'agent':true" extra "}"
#define MAP(roles)              "{'name':'t','roles':{" roles "}}"
#define MAP_PROBE(ports, roles) "{'name':'t','probe':{'ports':[" ports "]},'roles':{" roles "}}"

/* One import: its output, the output loaded, its warnings. */
typedef struct {
	char *text;
	matrix_t *m;
	char warnings[16384];
	unsigned n_warnings;
	char err[IMPORTSG_ERR_MAX];
	int result;
} run_t;

static void on_warn(void *arg, const char *msg)
{
	run_t *r = arg;
	size_t len = strlen(r->warnings);

	r->n_warnings++;
	assert_true(len + strlen(msg) + 2 < sizeof(r->warnings));
	memcpy(r->warnings + len, msg, strlen(msg));
	memcpy(r->warnings + len + strlen(msg), "\n", 2);
}

static char *unquote(const char *q)
{
	char *s = strdup(q);

	assert_non_null(s);
	for (size_t i = 0; s[i]; i++) {
		if (s[i] == '\'')
			s[i] = '"';
	}
	return s;
}

/* Runs the import on single-quoted fixtures; `name` stands for --name (NULL: none). */
static run_t *run_named(const char *groups_q, const char *map_q, const char *name)
{
	run_t *r = calloc(1, sizeof(*r));
	char *groups = unquote(groups_q);
	char *map = unquote(map_q);
	importsg_input_t in = {
	    .groups_path = "groups.json",
	    .groups_text = groups,
	    .groups_len = strlen(groups),
	    .map_path = "roles.json",
	    .map_text = map,
	    .map_len = strlen(map),
	    .name = name,
	    .warn = on_warn,
	    .warn_arg = r,
	};

	assert_non_null(r);
	r->text = importsg_convert(&in, r->err, sizeof(r->err), &r->result);
	if (r->text) {
		char err[MATRIX_ERR_MAX];

		assert_int_equal(r->result, 0);
		r->m = matrix_parse(r->text, strlen(r->text), err, sizeof(err));
		if (!r->m)
			fail_msg("the output does not load: %s\n%s", err, r->text);
	}
	free(groups);
	free(map);
	return r;
}

static run_t *run(const char *groups_q, const char *map_q)
{
	return run_named(groups_q, map_q, NULL);
}

static run_t *run_ok(const char *groups_q, const char *map_q)
{
	run_t *r = run(groups_q, map_q);

	if (!r->text)
		fail_msg("import failed: %s", r->err);
	return r;
}

/* Runs an import that must fail with -EINVAL and a message holding `want`. */
static void run_fails(const char *groups_q, const char *map_q, const char *want)
{
	run_t *r = run(groups_q, map_q);

	assert_null(r->text);
	assert_int_equal(r->result, -EINVAL);
	if (!strstr(r->err, want))
		fail_msg("error '%s' does not hold '%s'", r->err, want);
	free(r);
}

static void run_free(run_t *r)
{
	matrix_free(r->m);
	free(r->text);
	free(r);
}

/* The number of allowed (from, to, port) paths. */
static size_t n_paths(const matrix_t *m)
{
	size_t n = 0;

	for (size_t i = 0; i < m->n_rules; i++)
		n += m->rules[i].ports.n;
	return n;
}

static bool allows(const matrix_t *m, const char *from, const char *to, uint16_t port)
{
	int f = matrix_role_index(m, from);
	int t = matrix_role_index(m, to);

	assert_true(f >= 0);
	assert_true(t >= 0);
	return matrix_allows(m, (size_t)f, (size_t)t, port);
}

static void assert_warned(const run_t *r, const char *want)
{
	if (!strstr(r->warnings, want))
		fail_msg("no warning holds '%s'; the warnings:\n%s", want, r->warnings);
}

/* A path needs both sides: the source's egress to the destination's group and its ingress back. */
static void test_importsg_group_reference(void **state)
{
	run_t *r =
	    run_ok(GROUPS(G("sg-a", "a-sg", TCP(8000, 8000, REF("sg-a")),
	                    TCP(80, 80, REF("sg-b")) "," TCP(81, 81, REF("sg-b")) "," TCP(
	                        8000, 8000, REF("sg-a"))) "," G("sg-b", "b-sg",
	                                                        TCP(80, 80, REF("sg-a")), "")),
	           MAP(ROLE("a", "'sg-a'", "8000", "") "," ROLE("b", "'b-sg'", "80", "")));

	(void)state;
	assert_true(allows(r->m, "a", "b", 80));
	/* Let out by a's egress, refused by b's ingress. */
	assert_false(allows(r->m, "a", "b", 81));
	/* A group referencing itself: the role's other tasks. */
	assert_true(allows(r->m, "a", "a", 8000));
	assert_false(allows(r->m, "b", "a", 80));
	assert_int_equal(n_paths(r->m), 2);
	assert_int_equal(r->n_warnings, 0);
	run_free(r);
}

/* 0.0.0.0/0 covers every role, the ones with no groups included. */
static void test_importsg_cidr_everywhere(void **state)
{
	run_t *r = run_ok(
	    GROUPS(G("sg-a", "a", "", TCP(443, 443, CIDR("0.0.0.0/0"))) "," G(
	        "sg-b", "b", TCP(443, 443, CIDR("0.0.0.0/0")), "")),
	    MAP(ROLE("a", "'sg-a'", "8000", "") "," ROLE(
	        "b", "'sg-b'", "443",
	        "") ","
	            "'net':{'groups':[],'endpoints':['203.0.113.5'],'ports':[443],'agent':false}"));

	(void)state;
	assert_true(allows(r->m, "a", "b", 443));
	assert_true(allows(r->m, "a", "net", 443));
	assert_true(allows(r->m, "net", "b", 443));
	/* a admits nothing in; b lets nothing out. */
	assert_false(allows(r->m, "net", "a", 443));
	assert_false(allows(r->m, "b", "net", 443));
	assert_int_equal(n_paths(r->m), 3);
	assert_int_equal(r->n_warnings, 0);
	run_free(r);
}

/* A narrower CIDR covers a role by its cidrs or by its IP-literal endpoints, nothing else. */
static void test_importsg_cidr_narrower(void **state)
{
	run_t *r = run_ok(
	    GROUPS(G("sg-a", "a", "", TCP(5432, 5432, REF("sg-db"))) "," G(
	        "sg-db", "db", TCP(5432, 5432, CIDR("10.1.0.0/16")), "")),
	    MAP(ROLE("a", "'sg-a'", "", ",'cidrs':['10.1.2.0/24']") "," ROLE(
	        "far", "'sg-a'", "",
	        ",'cidrs':['10.2.0.0/24']") "," ROLE("db", "'sg-db'", "5432",
	                                             "") ","
	                                                 "'ops':{'endpoints':['10.1.9.9'],'ports':["
	                                                 "],'agent':false},"
	                                                 "'named':{'endpoints':['ops.example.com'],"
	                                                 "'ports':[],'agent':false}"));

	(void)state;
	assert_true(allows(r->m, "a", "db", 5432));   /* by cidrs */
	assert_true(allows(r->m, "ops", "db", 5432)); /* by an IP-literal endpoint */
	assert_false(allows(r->m, "far", "db", 5432));
	/* A DNS name says nothing about an address. */
	assert_false(allows(r->m, "named", "db", 5432));
	assert_int_equal(n_paths(r->m), 2);
	assert_int_equal(r->n_warnings, 0);
	run_free(r);
}

/* A role with no groups does not restrict its side; two of them make no path at all. */
static void test_importsg_role_without_groups(void **state)
{
	run_t *r = run_ok(
	    GROUPS(G("sg-a", "a", TCP(22, 22, CIDR("0.0.0.0/0")), "")),
	    MAP_PROBE("443",
	              ROLE("a", "'sg-a'", "80",
	                   "") ","
	                       "'net1':{'endpoints':['192.0.2.1'],'ports':[443],'agent':false},"
	                       "'net2':{'groups':[],'endpoints':['192.0.2.2'],'ports':[443],"
	                       "'agent':false}"));

	(void)state;
	/* Port 22 is named by the rule itself: written although a does not serve it. */
	assert_true(allows(r->m, "net1", "a", 22));
	assert_true(allows(r->m, "net2", "a", 22));
	assert_false(allows(r->m, "net1", "net2", 443));
	assert_false(allows(r->m, "net2", "net1", 443));
	assert_false(allows(r->m, "a", "net1", 443));
	assert_int_equal(n_paths(r->m), 2);
	run_free(r);
}

/* A role's groups add up: each of its groups may let out or admit a port. */
static void test_importsg_several_groups_per_role(void **state)
{
	run_t *r =
	    run_ok(GROUPS(G("sg-a1", "a1", "", TCP(80, 80, REF("sg-b"))) "," G(
	               "sg-a2", "a2", "",
	               TCP(443, 443, REF("sg-b"))) "," G("sg-b", "b",
	                                                 TCP(80, 80, REF("sg-a1")) "," TCP(
	                                                     443, 443, REF("sg-a2")),
	                                                 "")),
	           MAP(ROLE("a", "'sg-a1','a2'", "", "") "," ROLE("b", "'sg-b'", "80,443", "")));

	(void)state;
	assert_true(allows(r->m, "a", "b", 80));
	assert_true(allows(r->m, "a", "b", 443));
	assert_int_equal(n_paths(r->m), 2);
	run_free(r);
}

/* A group several roles hold stands for each of them, on both sides. */
static void test_importsg_group_for_several_roles(void **state)
{
	run_t *r = run_ok(GROUPS(G("sg-shared", "shared", "", TCP(9443, 9443, REF("sg-c"))) "," G(
	                      "sg-c", "c", TCP(9443, 9443, REF("sg-shared")), "")),
	                  MAP(ROLE("x", "'sg-shared'", "", "") "," ROLE(
	                      "y", "'shared'", "", "") "," ROLE("c", "'sg-c'", "9443", "")));

	(void)state;
	assert_true(allows(r->m, "x", "c", 9443));
	assert_true(allows(r->m, "y", "c", 9443));
	assert_int_equal(n_paths(r->m), 2);
	assert_int_equal(r->n_warnings, 0);
	run_free(r);
}

/*
 * A range keeps the ports the matrix probes there (the destination's ports and
 * probe.ports) and those another rule of the path names, and says which.
 */
static void test_importsg_wide_ranges(void **state)
{
	run_t *r = run_ok(
	    GROUPS(G("sg-a", "a", "", TCP(0, 65535, REF("sg-b"))) "," G(
	        "sg-b", "b", TCP(1024, 65535, REF("sg-a")) "," TCP(22, 22, REF("sg-a")), "")),
	    MAP_PROBE("3306,443", ROLE("a", "'sg-a'", "", "") "," ROLE("b", "'sg-b'", "8080", "")));

	(void)state;
	assert_true(allows(r->m, "a", "b", 3306));
	assert_true(allows(r->m, "a", "b", 8080));
	assert_true(allows(r->m, "a", "b", 22));
	/* Probed, but below b's range. */
	assert_false(allows(r->m, "a", "b", 443));
	assert_int_equal(n_paths(r->m), 3);
	assert_warned(r, "groups.json: group sg-a (a) IpPermissionsEgress[0]: tcp 0-65535 is "
	                 "wider than the ports the matrix probes");
	assert_warned(r, "kept 22, 3306, 8080\n");
	assert_warned(r, "groups.json: group sg-b (b) IpPermissions[0]: tcp 1024-65535 is wider");
	assert_warned(r, "kept 3306, 8080\n");
	assert_int_equal(r->n_warnings, 2);
	run_free(r);
}

/* A range wholly made of probed ports is kept whole, without a warning. */
static void test_importsg_narrow_range_silent(void **state)
{
	run_t *r =
	    run_ok(GROUPS(G("sg-a", "a", "", TCP(8000, 8002, REF("sg-b"))) "," G(
	               "sg-b", "b", TCP(8000, 8002, REF("sg-a")), "")),
	           MAP(ROLE("a", "'sg-a'", "", "") "," ROLE("b", "'sg-b'", "8000,8001,8002", "")));

	(void)state;
	assert_int_equal(n_paths(r->m), 3);
	assert_int_equal(r->n_warnings, 0);
	run_free(r);
}

/* IpProtocol -1 is every TCP port, with a warning naming those kept. */
static void test_importsg_all_traffic(void **state)
{
	run_t *r = run_ok(GROUPS(G("sg-a", "a", "", "{'IpProtocol':'-1'," REF("sg-b") "}") "," G(
	                      "sg-b", "b", TCP(443, 443, REF("sg-a")), "")),
	                  MAP(ROLE("a", "'sg-a'", "", "") "," ROLE("b", "'sg-b'", "443", "")));

	(void)state;
	assert_true(allows(r->m, "a", "b", 443));
	assert_int_equal(n_paths(r->m), 1);
	assert_warned(r, "group sg-a (a) IpPermissionsEgress[0]: all traffic (IpProtocol -1) "
	                 "taken as TCP 1-65535");
	assert_warned(r, "kept 443\n");
	assert_int_equal(r->n_warnings, 1);
	run_free(r);
}

/* UDP and ICMP are ignored with a warning: sgprobe probes TCP. */
static void test_importsg_udp_icmp_ignored(void **state)
{
	run_t *r = run_ok(
	    GROUPS(G(
	        "sg-a", "a", "",
	        "{'IpProtocol':'udp','FromPort':53,'ToPort':53," CIDR(
	            "0.0.0.0/0") "},"
	                         "{'IpProtocol':'icmp','FromPort':-1,'ToPort':-1," CIDR(
	                             "0.0.0.0/0") "},"
	                                          "{'IpProtocol':'47'," CIDR(
	                                              "0.0.0.0/0") "}") "," G("sg-b", "b",
	                                                                      "{'IpProtocol':'-1'"
	                                                                      "," CIDR(
	                                                                          "0.0.0.0/0") "}",
	                                                                      "")),
	    MAP(ROLE("a", "'sg-a'", "", "") "," ROLE("b", "'sg-b'", "53", "")));

	(void)state;
	assert_int_equal(n_paths(r->m), 0);
	assert_warned(r, "group sg-a (a) IpPermissionsEgress[0]: udp rule ignored: sgprobe "
	                 "probes TCP");
	assert_warned(r, "IpPermissionsEgress[1]: icmp rule ignored");
	assert_warned(r, "IpPermissionsEgress[2]: protocol '47' ignored");
	run_free(r);
}

/* IPv6 ranges, prefix lists, unknown and unmapped groups, CIDRs covering nothing: each named. */
static void test_importsg_unsupported_targets(void **state)
{
	run_t *r = run_ok(
	    GROUPS(G("sg-a", "a", "",
	             "{'IpProtocol':'tcp','FromPort':443,'ToPort':443,"
	             "'IpRanges':[{'CidrIp':'10.9.0.0/16'}],"
	             "'Ipv6Ranges':[{'CidrIpv6':'::/0'}],"
	             "'PrefixListIds':[{'PrefixListId':'pl-63a5400a'}],"
	             "'UserIdGroupPairs':[{'GroupId':'sg-nothere'},{'GroupId':'sg-lonely'},"
	             "{'GroupId':'sg-b'}]}") "," G("sg-lonely", "lonely",
	                                           TCP(443, 443, CIDR("0.0.0.0/0")),
	                                           "") "," G("sg-b", "b",
	                                                     TCP(443, 443, REF("sg-a")), "")),
	    MAP(ROLE("a", "'sg-a'", "", "") "," ROLE("b", "'sg-b'", "443", "")));

	(void)state;
	/* The group reference that resolves still counts. */
	assert_true(allows(r->m, "a", "b", 443));
	assert_int_equal(n_paths(r->m), 1);
	assert_warned(r, "group sg-a (a) IpPermissionsEgress[0].IpRanges[0]: 10.9.0.0/16 covers "
	                 "no role of roles.json");
	assert_warned(r, "IpPermissionsEgress[0].Ipv6Ranges[0]: ::/0: IPv6 ranges are not "
	                 "imported");
	assert_warned(r, "IpPermissionsEgress[0].PrefixListIds[0]: prefix list pl-63a5400a is "
	                 "not resolved");
	assert_warned(r, "IpPermissionsEgress[0].UserIdGroupPairs[0]: group 'sg-nothere' is not "
	                 "in groups.json");
	assert_warned(r, "IpPermissionsEgress[0].UserIdGroupPairs[1]: group sg-lonely (lonely) "
	                 "is held by no role");
	assert_warned(r, "groups.json: group sg-lonely (lonely) is held by no role of roles.json: "
	                 "its 1 rule is not imported");
	assert_int_equal(r->n_warnings, 6);
	run_free(r);
}

/* A CIDR that covers only some of a role's addresses does not cover the role, and says so. */
static void test_importsg_cidr_partial(void **state)
{
	run_t *r = run_ok(
	    GROUPS(G("sg-db", "db", TCP(5432, 5432, CIDR("10.1.1.0/24")), "")),
	    MAP(ROLE("db", "'sg-db'", "5432",
	             "") ","
	                 "'app':{'endpoints':['app.internal'],'cidrs':['10.1.0.0/16'],'ports':[],"
	                 "'agent':true}"));

	(void)state;
	assert_int_equal(n_paths(r->m), 0);
	assert_warned(r, "groups.json: group sg-db (db) IpPermissions[0].IpRanges[0]: 10.1.1.0/24 "
	                 "covers only some of the addresses of role 'app'");
	run_free(r);
}

/* The allow rules come out sorted by source and destination, one per pair, the same each time. */
static void test_importsg_output_sorted(void **state)
{
	const char *groups = GROUPS(G("sg-z", "z", "", TCP(80, 80, CIDR("0.0.0.0/0"))) "," G(
	    "sg-m", "m", TCP(80, 80, CIDR("0.0.0.0/0")), TCP(80, 80, CIDR("0.0.0.0/0"))));
	const char *map = MAP(ROLE("zeta", "'sg-z'", "", "") "," ROLE(
	    "mu", "'sg-m'", "80",
	    "") ","
	        "'alpha':{'endpoints':['192.0.2.9'],'ports':[80],'agent':false}");
	run_t *r1 = run_ok(groups, map);
	run_t *r2 = run_ok(groups, map);
	const char *a;
	const char *b;
	const char *c;

	(void)state;
	assert_string_equal(r1->text, r2->text);
	/* The roles stay in the map's order. */
	assert_string_equal(r1->m->roles[0].name, "zeta");
	a = strstr(r1->text, "{ \"from\": \"alpha\", \"to\": \"mu\", \"ports\": [80] }");
	b = strstr(r1->text, "{ \"from\": \"mu\", \"to\": \"alpha\", \"ports\": [80] }");
	c = strstr(r1->text, "{ \"from\": \"zeta\", \"to\": \"mu\", \"ports\": [80] }");
	assert_non_null(a);
	assert_non_null(b);
	assert_non_null(c);
	assert_true(a < b && b < c);
	assert_non_null(strstr(r1->text, "{ \"from\": \"mu\", \"to\": \"mu\", \"ports\": [80] }"));
	assert_null(strstr(r1->text, "\"groups\""));
	assert_null(strstr(r1->text, "\"cidrs\""));
	run_free(r1);
	run_free(r2);
}

/* The map's probe settings and role flags pass through; --name replaces the name. */
static void test_importsg_passes_settings_through(void **state)
{
	run_t *r =
	    run_named(GROUPS(G("sg-a", "a", "", "")),
	              "{'name':'from-map','probe':{'ports':[443],'interval_s':30,"
	              "'timeout_ms':500},'roles':{'a':{'groups':['sg-a'],'endpoints':['a.x'],"
	              "'ports':[443],'agent':false,'tls_ports':[443],'silent':true,"
	              "'probe_allowed':false,'allowed_interval_s':900}}}",
	              "from-flag");

	(void)state;
	assert_non_null(r->m);
	assert_string_equal(r->m->name, "from-flag");
	assert_int_equal(r->m->interval_s, 30);
	assert_int_equal(r->m->timeout_ms, 500);
	assert_int_equal(r->m->probe_ports.n, 1);
	assert_true(r->m->roles[0].silent);
	assert_false(r->m->roles[0].probe_allowed);
	assert_int_equal(r->m->roles[0].allowed_interval_s, 900);
	assert_int_equal(r->m->roles[0].tls_ports.n, 1);
	run_free(r);
}

/* Every mistake in the map is an error naming the map and the field. */
static void test_importsg_map_errors(void **state)
{
	const char *groups = GROUPS(
	    G("sg-a", "a", "", "") "," G("sg-b", "dup", "", "") "," G("sg-c", "dup", "", ""));

	(void)state;
	run_fails(groups, MAP(ROLE("a", "'sg-missing'", "", "")),
	          "roles.json: roles.a.groups[0]: group 'sg-missing' is not in groups.json");
	run_fails(groups, MAP(ROLE("a", "'dup'", "", "")),
	          "roles.json: roles.a.groups[0]: 'dup' is the GroupName of 2 groups");
	run_fails(groups, MAP(ROLE("a", "'sg-a','a'", "", "")),
	          "roles.json: roles.a.groups[1]: group sg-a is listed twice");
	run_fails(groups, MAP(ROLE("a", "7", "", "")), "roles.json: roles.a.groups[0]: must be");
	run_fails(groups, MAP("'a':{'groups':'sg-a','endpoints':['a'],'ports':[],'agent':true}"),
	          "roles.json: roles.a.groups: must be an array");
	run_fails(groups, MAP(ROLE("a", "'sg-a'", "", ",'prots':[1]")),
	          "roles.json: roles.a.prots: unknown key");
	run_fails(groups, MAP(ROLE("a", "'sg-a'", "0", "")),
	          "roles.json: roles.a.ports[0]: port 0 out of range");
	run_fails(groups, MAP(ROLE("a", "'sg-a'", "", ",'cidrs':['10.0.0.1/8']")),
	          "roles.json: roles.a.cidrs[0]: must be an IPv4 CIDR");
	run_fails(groups, MAP(ROLE("a", "'sg-a'", "", ",'cidrs':['fd00::/8']")),
	          "roles.json: roles.a.cidrs[0]: must be an IPv4 CIDR");
	run_fails(groups, MAP(ROLE("a", "'sg-a'", "", ",'groups':[]")),
	          "roles.json: roles.a.groups: duplicate key");
	run_fails(groups, "{'name':'t','roles':{" ROLE("a", "'sg-a'", "", "") "},'allow':[]}",
	          "roles.json: allow: unknown key");
	run_fails(groups, "{'roles':{" ROLE("a", "'sg-a'", "", "") "}}",
	          "roles.json: name: required (or give --name)");
	run_fails(groups, "{'name':'t'}", "roles.json: roles: required");
	run_fails(groups,
	          "{'name':'t','probe':{'port':[1]},'roles':{" ROLE("a", "'sg-a'", "", "") "}}",
	          "roles.json: probe.port: unknown key");
	run_fails(groups, "{'name':'t',", "roles.json: invalid JSON near line 1");
	run_fails(groups, "[]", "roles.json: must be a JSON object");
}

/* Every mistake in the groups file is an error naming the file and the field. */
static void test_importsg_groups_errors(void **state)
{
	const char *map = MAP(ROLE("a", "'sg-a'", "", ""));

	(void)state;
	run_fails("{}", map, "groups.json: SecurityGroups: must be an array");
	run_fails("{'SecurityGroups':[{'GroupName':'x'}]}", map,
	          "groups.json: SecurityGroups[0].GroupId: must be a non-empty string");
	run_fails(GROUPS(G("sg-a", "a", "", "") "," G("sg-a", "b", "", "")), map,
	          "groups.json: SecurityGroups[1].GroupId: duplicate group 'sg-a'");
	run_fails(GROUPS(G("sg-a", "a", "{'IpProtocol':'tcp','ToPort':80}", "")), map,
	          "groups.json: SecurityGroups[0].IpPermissions[0].FromPort: must be an integer "
	          "in 0-65535");
	run_fails(
	    GROUPS(G("sg-a", "a", TCP(90, 80, CIDR("0.0.0.0/0")), "")), map,
	    "groups.json: SecurityGroups[0].IpPermissions[0].ToPort: 80 is below FromPort 90");
	run_fails(GROUPS(G("sg-a", "a", "", TCP(80, 80, CIDR("10.0.0/8")))), map,
	          "groups.json: SecurityGroups[0].IpPermissionsEgress[0].IpRanges[0].CidrIp: "
	          "'10.0.0/8' is not an IPv4 CIDR");
	run_fails(GROUPS(G("sg-a", "a", "{'FromPort':80,'ToPort':80}", "")), map,
	          "groups.json: SecurityGroups[0].IpPermissions[0].IpProtocol: must be a "
	          "non-empty string");
	run_fails("{'SecurityGroups':[{'GroupId':'sg-a','IpPermissions':{}}]}", map,
	          "groups.json: SecurityGroups[0].IpPermissions: must be an array");
	run_fails(GROUPS(G("sg-a", "a", TCP(80, 80, "'UserIdGroupPairs':[{'UserId':'1'}]"), "")),
	          map,
	          "groups.json: SecurityGroups[0].IpPermissions[0].UserIdGroupPairs[0].GroupId: "
	          "must be a non-empty string");
	run_fails("nope", map, "groups.json: invalid JSON near line 1");
}

/* --name is checked as the loader would check the map's name. */
static void test_importsg_name_flag_checked(void **state)
{
	char name[MATRIX_MAX_NAME + 2];
	run_t *r;

	(void)state;
	memset(name, 'n', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	r = run_named(GROUPS(G("sg-a", "a", "", "")), MAP(ROLE("a", "'sg-a'", "", "")), name);
	assert_null(r->text);
	assert_int_equal(r->result, -EINVAL);
	assert_non_null(strstr(r->err, "--name: longer than 253 characters"));
	free(r);
	r = run_named(GROUPS(G("sg-a", "a", "", "")), MAP(ROLE("a", "'sg-a'", "", "")), "");
	assert_null(r->text);
	assert_non_null(strstr(r->err, "--name: must not be empty"));
	free(r);
}

/*
 * A matrix the loader would refuse is never written: 130 roles in one group
 * open to 0.0.0.0/0 both ways make 16900 allow rules, over the loader's 16384.
 */
static void test_importsg_output_validated(void **state)
{
	const size_t n = 130;
	size_t cap = 128 * n + 64;
	char *map = malloc(cap);
	size_t len;
	run_t *r;

	(void)state;
	assert_non_null(map);
	len = (size_t)snprintf(map, cap, "{'name':'big','roles':{");
	for (size_t i = 0; i < n; i++)
		len += (size_t)snprintf(
		    map + len, cap - len,
		    "%s'r%zu':{'groups':['sg-a'],'endpoints':['r%zu'],'ports':[80],"
		    "'agent':true}",
		    i ? "," : "", i, i);
	assert_true(len + 3 < cap);
	snprintf(map + len, cap - len, "}}");
	r = run(
	    GROUPS(G("sg-a", "a", TCP(80, 80, CIDR("0.0.0.0/0")), TCP(80, 80, CIDR("0.0.0.0/0")))),
	    map);
	assert_null(r->text);
	assert_int_equal(r->result, -EINVAL);
	if (!strstr(r->err, "the derived matrix is refused by the matrix loader: allow: more than "
	                    "16384 rules"))
		fail_msg("unexpected error: %s", r->err);
	free(r);
	free(map);
}

/* Parses a single-quoted matrix. */
static matrix_t *matrix_q(const char *q)
{
	char err[MATRIX_ERR_MAX];
	char *text = unquote(q);
	matrix_t *m = matrix_parse(text, strlen(text), err, sizeof(err));

	if (!m)
		fail_msg("%s", err);
	free(text);
	return m;
}

/* Runs importsg_diff into a string (free()); its return value in *result. */
static char *diff(const matrix_t *a, const matrix_t *b, int *result)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	assert_non_null(f);
	*result = importsg_diff(a, b, f);
	assert_int_equal(fclose(f), 0);
	return buf;
}

/* diff-matrix: + only in B, - only in A, sorted; role changes as # lines; 0 when equal. */
static void test_importsg_diff(void **state)
{
	matrix_t *a = matrix_q(
	    "{'version':1,'name':'a','roles':{"
	    "'x':{'endpoints':['x1'],'ports':[80],'agent':true},"
	    "'y':{'endpoints':['y1'],'ports':[443],'agent':true},"
	    "'old':{'endpoints':['o'],'ports':[],'agent':false}},"
	    "'allow':[{'from':'x','to':'y','ports':[443,8443]},{'from':'y','to':'x','ports':[80]},"
	    "{'from':'x','to':'y','ports':[443]}]}");
	matrix_t *b = matrix_q(
	    "{'version':1,'name':'b','roles':{"
	    "'y':{'endpoints':['y2'],'ports':[443],'agent':false},"
	    "'x':{'endpoints':['x1'],'ports':[80, 81],'agent':true},"
	    "'new':{'endpoints':['n'],'ports':[],'agent':false}},"
	    "'allow':[{'from':'y','to':'x','ports':[80]},{'from':'x','to':'y','ports':[443]},"
	    "{'from':'new','to':'x','ports':[80]},{'from':'x','to':'x','ports':[80]}]}");
	int result;
	char *out;

	(void)state;
	out = diff(a, b, &result);
	assert_int_equal(result, 1);
	assert_string_equal(out, "# name: a -> b\n"
	                         "# role x: ports [80] -> [80, 81]\n"
	                         "# role y: endpoints [y1] -> [y2]\n"
	                         "# role y: agent true -> false\n"
	                         "# role removed: old\n"
	                         "# role added: new\n"
	                         "+ new -> x:80\n"
	                         "+ x -> x:80\n"
	                         "- x -> y:8443\n");
	free(out);
	out = diff(a, a, &result);
	assert_int_equal(result, 0);
	assert_string_equal(out, "");
	free(out);
	matrix_free(a);
	matrix_free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_importsg_group_reference),
	    cmocka_unit_test(test_importsg_cidr_everywhere),
	    cmocka_unit_test(test_importsg_cidr_narrower),
	    cmocka_unit_test(test_importsg_role_without_groups),
	    cmocka_unit_test(test_importsg_several_groups_per_role),
	    cmocka_unit_test(test_importsg_group_for_several_roles),
	    cmocka_unit_test(test_importsg_wide_ranges),
	    cmocka_unit_test(test_importsg_narrow_range_silent),
	    cmocka_unit_test(test_importsg_all_traffic),
	    cmocka_unit_test(test_importsg_udp_icmp_ignored),
	    cmocka_unit_test(test_importsg_unsupported_targets),
	    cmocka_unit_test(test_importsg_cidr_partial),
	    cmocka_unit_test(test_importsg_output_sorted),
	    cmocka_unit_test(test_importsg_passes_settings_through),
	    cmocka_unit_test(test_importsg_map_errors),
	    cmocka_unit_test(test_importsg_groups_errors),
	    cmocka_unit_test(test_importsg_name_flag_checked),
	    cmocka_unit_test(test_importsg_output_validated),
	    cmocka_unit_test(test_importsg_diff),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
