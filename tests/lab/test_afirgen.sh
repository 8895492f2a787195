#!/bin/bash
# The AFIRGen lab (tests/lab/lab.sh) with the shipped matrix: the shipped groups
# pass, and three staged misconfigurations are caught exactly where they are.
#   1. the shipped groups: every probe of every agent role is ok or unverified;
#   2. groups that open gguf-model-server → rds-mysql:3306: that path alone is a
#      violation, and only gguf-model-server's run fails;
#   3. groups without the nginx → main-backend:8000 rules: that path alone is
#      blocked;
#   4. the strict matrix against the shipped groups: the 443-to-anywhere paths
#      are the violations.
. "$(dirname "$0")/../lib.sh"
set -u

export SGPROBE_LAB_PREFIX=sgptest
export LABD="$labd"
lab="$top/tests/lab/lab.sh"
matrix="$top/examples/afirgen.matrix.json"
strict="$top/examples/afirgen-strict.matrix.json"
shipped="$top/examples/afirgen.security-groups.json"
work=$(mktemp -d /tmp/sgprobe-afirgen.XXXXXX)
agents=$(jq -r '.roles | to_entries[] | select(.value.agent) | .key' "$matrix")

cleanup() {
	"$lab" down >/dev/null 2>&1
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

# run_all MATRIX DIR: --once in every agent role's namespace, concurrently;
# DIR/ROLE.json holds the output and DIR/ROLE.rc the exit status.
run_all() {
	mkdir -p "$2"
	for role in $agents; do
		(
			"$lab" exec "$role" "$agent" --once --matrix "$1" --role "$role" \
				--agent-address "$("$lab" addr "$role")" --probe-ca-file "$("$lab" ca)" \
				--timeout-ms 1000 --format json >"$2/$role.json" 2>"$2/$role.err"
			echo $? >"$2/$role.rc"
		) &
	done
	wait
}

# problems DIR ROLE: the paths of ROLE's run that are neither ok nor unverified.
problems() {
	jq -r '[.results[] | select(.verdict != "ok" and .verdict != "unverified") |
		"\(.dst_role):\(.port) \(.verdict)"] | join(", ")' "$1/$2.json"
}

# expect DIR SCENARIO ROLE=PROBLEMS...: each agent role's problems and status;
# a role not named must pass with no problem.
expect() {
	dir=$1
	scenario=$2
	shift 2
	for role in $agents; do
		want=""
		for spec in "$@"; do
			[ "${spec%%=*}" = "$role" ] && want=${spec#*=}
		done
		eq "$scenario: $role's problems" "$(problems "$dir" "$role")" "$want"
		if [ -n "$want" ]; then
			eq "$scenario: $role's run exits 1" "$(cat "$dir/$role.rc")" 1
		else
			eq "$scenario: $role's run exits 0" "$(cat "$dir/$role.rc")" 0
		fi
	done
}

# --- 1. the shipped groups ------------------------------------------------------
if ! "$lab" up >"$work/up.log" 2>&1; then
	not_ok "the lab comes up" "$(tail -20 "$work/up.log")"
	done_testing
	exit 1
fi
ok "the lab comes up"
run_all "$matrix" "$work/shipped"
expect "$work/shipped" "shipped groups"
q() { jq -r "$2" "$work/shipped/$1.json"; }
eq "shipped: nginx reaches main-backend:8000" \
	"$(q nginx '.results[] | select(.dst_role == "main-backend" and .port == 8000) | "\(.state) \(.verdict)"')" \
	"open ok"
eq "shipped: main-backend's TLS handshake with the VPC endpoint verifies" \
	"$(q main-backend '.results[] | select(.dst_role == "vpc-endpoints" and .port == 443) | "\(.verdict) \(.tls.ok)"')" \
	"ok true"
eq "shipped: main-backend sees gguf-model-server alive, so its denied ports are ok" \
	"$(q main-backend '[.results[] | select(.dst_role == "gguf-model-server" and .port != 8001) | .verdict] | unique | join(",")')" \
	"ok"
eq "shipped: the silent ALB's denied ports it does not serve stay unverified" \
	"$(q main-backend '[.results[] | select(.dst_role == "alb" and .port != 443 and .port != 80) | .verdict] | unique | join(",")')" \
	"unverified"
eq "shipped: every agent reaches the collector" \
	"$(for r in $agents; do q "$r" '.results[] | select(.dst_role == "sgprobe-collector") | .verdict'; done | sort -u)" \
	"ok"
eq "shipped: no agent probes itself" \
	"$(for r in $agents; do a=$("$lab" addr "$r"); q "$r" "[.results[] | select(.address == \"$a\")] | length"; done | sort -u)" \
	"0"

# Nothing leaves the lab: no namespace has a route beyond 198.18.0.0/24, and every
# resolver points at the namespace's own loopback.
leaks=""
for role in $("$lab" roles); do
	routes=$("$lab" exec "$role" ip -4 route show | grep -v '^198\.18\.0\.0/24 ')
	[ -n "$routes" ] && leaks="$leaks $role:route($routes)"
	ns=$("$lab" ns "$role")
	[ "$(grep '^nameserver' "/etc/netns/$ns/resolv.conf")" = "nameserver 127.0.0.1" ] ||
		leaks="$leaks $role:resolver"
done
eq "no route and no resolver leads out of the lab" "$leaks" ""
eq "an unknown name fails inside the lab, without leaving it" \
	"$("$lab" exec nginx getent hosts nosuch.afirgen.internal >/dev/null 2>&1; echo $?)" 2

# --- 2. a staged hole: gguf-model-server → rds-mysql:3306 ------------------------
python3 - "$shipped" "$work/hole.json" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
groups = {g["GroupName"]: g for g in doc["SecurityGroups"]}
gguf, rds = groups["afirgen-gguf-model-server-prod-sg"], groups["afirgen-rds-mysql-prod-sg"]
def rule(peer):
    return {"IpProtocol": "tcp", "FromPort": 3306, "ToPort": 3306, "IpRanges": [],
            "Ipv6Ranges": [], "PrefixListIds": [],
            "UserIdGroupPairs": [{"GroupId": peer["GroupId"], "UserId": peer["OwnerId"]}]}
gguf["IpPermissionsEgress"].append(rule(rds))
rds["IpPermissions"].append(rule(gguf))
json.dump(doc, open(sys.argv[2], "w"), indent=1)
PY
SGPROBE_LAB_SG="$work/hole.json" "$lab" up >"$work/up2.log" 2>&1 || not_ok "the lab comes up with the hole" "$(tail -5 "$work/up2.log")"
run_all "$matrix" "$work/hole"
expect "$work/hole" "gguf → rds opened" "gguf-model-server=rds-mysql:3306 violation"

# --- 3. a broken intended path: no nginx → main-backend:8000 ---------------------
python3 - "$shipped" "$work/broken.json" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
groups = {g["GroupName"]: g for g in doc["SecurityGroups"]}
nginx, backend = groups["afirgen-nginx-prod-sg"], groups["afirgen-main-backend-prod-sg"]
def keep(rules, peer):
    return [r for r in rules if not (r.get("FromPort") == 8000 and
            any(p["GroupId"] == peer["GroupId"] for p in r.get("UserIdGroupPairs", [])))]
nginx["IpPermissionsEgress"] = keep(nginx["IpPermissionsEgress"], backend)
backend["IpPermissions"] = keep(backend["IpPermissions"], nginx)
json.dump(doc, open(sys.argv[2], "w"), indent=1)
PY
SGPROBE_LAB_SG="$work/broken.json" "$lab" up >"$work/up3.log" 2>&1 || not_ok "the lab comes up without nginx → backend" "$(tail -5 "$work/up3.log")"
run_all "$matrix" "$work/broken"
expect "$work/broken" "nginx → backend removed" "nginx=main-backend:8000 blocked"
eq "nginx → backend removed: the blocked path was retried once" \
	"$(jq -r '.results[] | select(.dst_role == "main-backend" and .port == 8000) | .detail | test("retried once")' "$work/broken/nginx.json")" \
	true

# --- 4. the strict matrix against the shipped groups -----------------------------
# First a crash: the state directory is lost while namespaces and listeners are
# left behind. The next up must start clean all the same.
rm -rf "/run/sgprobe-lab-$SGPROBE_LAB_PREFIX"
if "$lab" up >"$work/up4.log" 2>&1; then
	ok "up after a crash starts clean"
else
	not_ok "up after a crash starts clean" "$(tail -5 "$work/up4.log")"
fi
eq "after the crash, one listener per role with listeners" \
	"$(pgrep -fc "labd.*--pidfile /run/sgprobe-lab-$SGPROBE_LAB_PREFIX/")" \
	"$(jq '[.roles[] | select(.listen | length > 0)] | length' "$top/examples/afirgen.lab.json")"
run_all "$strict" "$work/strict"
any443="alb:443 violation, internet:443 violation"
expect "$work/strict" "strict matrix" "main-backend=$any443" "gguf-model-server=$any443" \
	"asr-ocr-server=$any443" "backup=$any443"

"$lab" down >/dev/null 2>&1
eq "lab down leaves no namespace behind" "$(ip netns list | grep -c "^$SGPROBE_LAB_PREFIX-")" 0
eq "lab down leaves no /etc/netns entry behind" "$(ls /etc/netns 2>/dev/null | grep -c "^$SGPROBE_LAB_PREFIX-")" 0

done_testing
