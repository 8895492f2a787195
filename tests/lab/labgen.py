#!/usr/bin/python3
"""labgen — turn a lab description and AWS security groups into lab files.

    labgen.py [--prefix PREFIX] LAB_JSON SECURITY_GROUPS_JSON OUTDIR

LAB_JSON (examples/afirgen.lab.json):
    {"subnet": "198.18.0.0/24",
     "roles": {"<role>": {"address": "198.18.0.N", "hosts": [names], "groups": [GroupName or
               GroupId], "listen": [ports], "tls": [ports, a subset of listen]}}}
SECURITY_GROUPS_JSON: the output of `aws ec2 describe-security-groups`.

Writes into OUTDIR:
    <role>.nft  the role's nftables ruleset (table inet sgprobe_lab): default drop both ways,
                loopback and established/related accepted, one accept per security-group rule
                of the role's groups; a group reference becomes the addresses of the roles
                in that group. A role with no groups gets no file: nothing restricts it.
    hosts       /etc/hosts for every namespace: localhost and every role's names.
    roles.tsv   one line per role, in the lab file's order, tab-separated: role, namespace,
                address, listen ports, TLS ports (ports comma-separated, "-" for none).
    subnet      the lab's subnet, one line (e.g. 198.18.0.0/24).

Errors name the file and the key and exit with status 2. Python 3 standard library only.
"""

import argparse
import ipaddress
import json
import os
import re
import sys

ROLE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
HOST_RE = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*\.?$")
ROLE_KEYS = {"address", "hosts", "groups", "listen", "tls"}
TABLE = "sgprobe_lab"


class LabError(Exception):
    pass


def fail(path, key, msg):
    raise LabError("%s: %s: %s" % (path, key, msg) if key else "%s: %s" % (path, msg))


def load_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except OSError as e:
        fail(path, None, "cannot read: %s" % e.strerror)
    except (ValueError, UnicodeDecodeError) as e:
        fail(path, None, "not valid JSON: %s" % e)


def want(path, key, value, kind, what):
    # bool is an int in Python; a port or a list must never be true/false.
    if not isinstance(value, kind) or isinstance(value, bool):
        fail(path, key, "must be %s" % what)
    return value


def port_list(path, key, value):
    want(path, key, value, list, "a list of ports")
    seen = []
    for i, p in enumerate(value):
        k = "%s[%d]" % (key, i)
        want(path, k, p, int, "a port number")
        if not 1 <= p <= 65535:
            fail(path, k, "port %d outside 1-65535" % p)
        if p in seen:
            fail(path, k, "duplicate port %d" % p)
        seen.append(p)
    return seen


# --- security groups ------------------------------------------------------------------------

def load_groups(path):
    doc = load_json(path)
    want(path, "(top level)", doc, dict, "an object")
    sgs = want(path, "SecurityGroups", doc.get("SecurityGroups"), list, "a list")
    by_id, by_name = {}, {}
    for i, g in enumerate(sgs):
        key = "SecurityGroups[%d]" % i
        want(path, key, g, dict, "an object")
        gid = want(path, key + ".GroupId", g.get("GroupId"), str, "a string")
        name = want(path, key + ".GroupName", g.get("GroupName"), str, "a string")
        if not gid:
            fail(path, key + ".GroupId", "empty")
        if gid in by_id:
            fail(path, key + ".GroupId", "duplicate group id '%s'" % gid)
        for direction in ("IpPermissions", "IpPermissionsEgress"):
            perms = want(path, key + "." + direction, g.get(direction, []), list, "a list")
            for j, perm in enumerate(perms):
                check_permission(path, "%s.%s[%d]" % (key, direction, j), perm)
        g["_key"] = key
        by_id[gid] = g
        by_name.setdefault(name, []).append(g)
    return by_id, by_name


def check_permission(path, key, perm):
    want(path, key, perm, dict, "an object")
    proto = want(path, key + ".IpProtocol", perm.get("IpProtocol"), str, "a string")
    if proto in ("tcp", "6", "udp", "17"):
        lo = want(path, key + ".FromPort", perm.get("FromPort"), int, "a port number")
        hi = want(path, key + ".ToPort", perm.get("ToPort"), int, "a port number")
        if not (0 <= lo <= hi <= 65535):
            fail(path, key, "bad port range %d-%d" % (lo, hi))
    for field, sub in (("IpRanges", "CidrIp"), ("Ipv6Ranges", "CidrIpv6"),
                       ("UserIdGroupPairs", "GroupId"), ("PrefixListIds", "PrefixListId")):
        items = want(path, key + "." + field, perm.get(field, []), list, "a list")
        for i, item in enumerate(items):
            k = "%s.%s[%d]" % (key, field, i)
            want(path, k, item, dict, "an object")
            want(path, k + "." + sub, item.get(sub), str, "a string")
            if field in ("IpRanges", "Ipv6Ranges"):
                version = 4 if field == "IpRanges" else 6
                try:
                    net = ipaddress.ip_network(item[sub], strict=False)
                except ValueError:
                    net = None
                if net is None or net.version != version:
                    fail(path, k + "." + sub, "not an IPv%d CIDR: '%s'" % (version, item[sub]))


# --- lab description ------------------------------------------------------------------------

def load_lab(path, by_id, by_name, sg_path):
    doc = load_json(path)
    want(path, "(top level)", doc, dict, "an object")
    for k in doc:
        if k not in ("subnet", "roles"):
            fail(path, k, "unknown key")
    subnet_s = want(path, "subnet", doc.get("subnet"), str, "a string (an IPv4 CIDR)")
    try:
        subnet = ipaddress.IPv4Network(subnet_s)
    except ValueError as e:
        fail(path, "subnet", "not an IPv4 network: %s" % e)
    roles = want(path, "roles", doc.get("roles"), dict, "an object")
    if not roles:
        fail(path, "roles", "no roles")
    out, addresses, hostnames = [], {}, {}
    for name, r in roles.items():
        key = "roles." + name
        if not ROLE_RE.match(name):
            fail(path, key, "role names are letters, digits, '-', '_', '.' (at most 64)")
        want(path, key, r, dict, "an object")
        for k in r:
            if k not in ROLE_KEYS:
                fail(path, "%s.%s" % (key, k), "unknown key")
        a = want(path, key + ".address", r.get("address"), str, "a string (an IPv4 address)")
        try:
            addr = ipaddress.IPv4Address(a)
        except ValueError:
            fail(path, key + ".address", "not an IPv4 address: '%s'" % a)
        if addr not in subnet or addr in (subnet.network_address, subnet.broadcast_address):
            fail(path, key + ".address", "%s is not a host address of %s" % (addr, subnet))
        if addr in addresses:
            fail(path, key + ".address", "%s already used by role '%s'" % (addr, addresses[addr]))
        addresses[addr] = name
        hosts = want(path, key + ".hosts", r.get("hosts", []), list, "a list of host names")
        for i, h in enumerate(hosts):
            k = "%s.hosts[%d]" % (key, i)
            want(path, k, h, str, "a host name")
            if not HOST_RE.match(h):
                fail(path, k, "not a host name: '%s'" % h)
            if h.lower() in hostnames:
                fail(path, k, "'%s' already names role '%s'" % (h, hostnames[h.lower()]))
            hostnames[h.lower()] = name
        groups = []
        glist = want(path, key + ".groups", r.get("groups", []), list, "a list of groups")
        for i, gref in enumerate(glist):
            k = "%s.groups[%d]" % (key, i)
            want(path, k, gref, str, "a GroupName or GroupId")
            if gref in by_id:
                gid = gref
            elif len(by_name.get(gref, [])) == 1:
                gid = by_name[gref][0]["GroupId"]
            elif gref in by_name:
                fail(path, k, "group name '%s' is ambiguous in %s: use its GroupId" % (gref, sg_path))
            else:
                fail(path, k, "unknown group '%s' (no such GroupName or GroupId in %s)"
                     % (gref, sg_path))
            if gid in groups:
                fail(path, k, "group '%s' listed twice" % gref)
            groups.append(gid)
        listen = port_list(path, key + ".listen", r.get("listen", []))
        tls = port_list(path, key + ".tls", r.get("tls", []))
        for i, p in enumerate(tls):
            if p not in listen:
                fail(path, "%s.tls[%d]" % (key, i), "TLS port %d is not in listen" % p)
        out.append({"name": name, "address": str(addr), "hosts": hosts, "groups": groups,
                    "listen": listen, "tls": tls})
    return subnet, out


# --- nftables -------------------------------------------------------------------------------

def comment(text):
    return "# " + " ".join(str(text).split())


def proto_match(perm):
    """The nft match of a permission's protocol and ports, or None when the lab cannot model it."""
    proto = perm["IpProtocol"]
    if proto == "-1":
        return ""
    if proto in ("tcp", "6", "udp", "17"):
        p = "tcp" if proto in ("tcp", "6") else "udp"
        lo, hi = perm["FromPort"], perm["ToPort"]
        if lo == 0 and hi == 65535:
            return "meta l4proto %s" % p
        return "%s dport %s" % (p, lo if lo == hi else "%d-%d" % (lo, hi))
    return None


def permission_rules(perm, direction, by_id, members):
    """nft lines (comments and rules) for one IpPermission of one group."""
    peer = "saddr" if direction == "IpPermissions" else "daddr"
    way = "from" if direction == "IpPermissions" else "to"
    match = proto_match(perm)
    what = perm["IpProtocol"] if perm["IpProtocol"] != "-1" else "all traffic"
    if perm["IpProtocol"] in ("tcp", "6", "udp", "17"):
        lo, hi = perm["FromPort"], perm["ToPort"]
        what += " %s" % (lo if lo == hi else "%d-%d" % (lo, hi))
    lines = []

    def emit(src, sel, desc):
        lines.append(comment("%s %s %s%s" % (what, way, src, (": " + desc) if desc else "")))
        if match is None:
            lines.append(comment("protocol '%s' is not modelled by the lab: no rule"
                                 % perm["IpProtocol"]))
            return
        rule = " ".join(x for x in (sel, match, "accept") if x)
        lines.append(rule)

    for r in perm.get("IpRanges", []):
        net = ipaddress.ip_network(r["CidrIp"], strict=False)
        emit(r["CidrIp"], "" if net.prefixlen == 0 else "ip %s %s" % (peer, net),
             r.get("Description"))
    for r in perm.get("Ipv6Ranges", []):
        net = ipaddress.ip_network(r["CidrIpv6"], strict=False)
        sel = "meta nfproto ipv6" if net.prefixlen == 0 else "ip6 %s %s" % (peer, net)
        emit(r["CidrIpv6"], sel, r.get("Description"))
    for pair in perm.get("UserIdGroupPairs", []):
        gid = pair["GroupId"]
        gname = by_id[gid]["GroupName"] if gid in by_id else "not in the file"
        addrs = members.get(gid, [])
        src = "%s (%s)" % (gid, gname)
        if not addrs:
            lines.append(comment("%s %s %s%s" % (what, way, src, (": " + pair["Description"])
                                                 if pair.get("Description") else "")))
            lines.append(comment("no role of the lab is in %s: no rule" % gid))
            continue
        emit(src, "ip %s { %s }" % (peer, ", ".join(addrs)), pair.get("Description"))
    for pl in perm.get("PrefixListIds", []):
        lines.append(comment("%s %s prefix list %s: not modelled by the lab, no rule"
                             % (what, way, pl["PrefixListId"])))
    return lines


def ruleset(role, by_id, members, sources):
    head = [comment("generated by tests/lab/labgen.py from %s; do not edit" % ", ".join(sources)),
            comment("role %s (%s), groups: %s" % (role["name"], role["address"], ", ".join(
                "%s (%s)" % (g, by_id[g]["GroupName"]) for g in role["groups"]))),
            "table inet %s" % TABLE,
            "delete table inet %s" % TABLE,  # so that loading twice replaces, never appends
            "table inet %s {" % TABLE]
    body = []
    for chain, hook, lo, direction in (("input", "input", "iif", "IpPermissions"),
                                       ("output", "output", "oif", "IpPermissionsEgress")):
        body.append("\tchain %s {" % chain)
        body.append("\t\ttype filter hook %s priority filter; policy drop;" % hook)
        body.append('\t\t%s "lo" accept' % lo)
        body.append("\t\tct state established,related accept")
        for gid in role["groups"]:
            g = by_id[gid]
            body.append("\t\t" + comment("%s %s (%s)" % (
                "ingress of" if direction == "IpPermissions" else "egress of",
                g["GroupName"], gid)))
            perms = g.get(direction, [])
            if not perms:
                body.append("\t\t" + comment("no rules"))
            for perm in perms:
                body.extend("\t\t" + line for line in
                            permission_rules(perm, direction, by_id, members))
        body.append("\t}")
    return "\n".join(head + body + ["}", ""])


def write(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def main(argv):
    ap = argparse.ArgumentParser(description="Generate the sgprobe lab's nftables rulesets, "
                                 "hosts file and role table.")
    ap.add_argument("--prefix", default="sgp", help="namespace name prefix (default: sgp)")
    ap.add_argument("lab", help="lab description (JSON)")
    ap.add_argument("groups", help="aws ec2 describe-security-groups output (JSON)")
    ap.add_argument("outdir", help="output directory (created if missing)")
    args = ap.parse_args(argv)
    try:
        by_id, by_name = load_groups(args.groups)
        subnet, roles = load_lab(args.lab, by_id, by_name, args.groups)
        members = {}
        for r in roles:
            for gid in r["groups"]:
                members.setdefault(gid, []).append(r["address"])
        os.makedirs(args.outdir, exist_ok=True)
        sources = (os.path.basename(args.lab), os.path.basename(args.groups))
        tsv = []
        for r in roles:
            nft = os.path.join(args.outdir, r["name"] + ".nft")
            if r["groups"]:
                write(nft, ruleset(r, by_id, members, sources))
            elif os.path.exists(nft):
                os.unlink(nft)  # no groups: no rules at all
            tsv.append("\t".join([r["name"], "%s-%s" % (args.prefix, r["name"]), r["address"],
                                  ",".join(map(str, r["listen"])) or "-",
                                  ",".join(map(str, r["tls"])) or "-"]))
        hosts = ["127.0.0.1\tlocalhost"]
        hosts += ["%s\t%s" % (r["address"], " ".join(r["hosts"])) for r in roles if r["hosts"]]
        write(os.path.join(args.outdir, "hosts"), "\n".join(hosts) + "\n")
        write(os.path.join(args.outdir, "roles.tsv"), "\n".join(tsv) + "\n")
        write(os.path.join(args.outdir, "subnet"), str(subnet) + "\n")
    except LabError as e:
        print("labgen: %s" % e, file=sys.stderr)
        return 2
    except OSError as e:
        print("labgen: %s: %s" % (e.filename or args.outdir, e.strerror), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
