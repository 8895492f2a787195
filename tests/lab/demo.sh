#!/bin/bash
# make demo: the AFIRGen lab in network namespaces with the whole system in it.
# The collector runs in the lab's collector namespace; in every agent role's
# namespace, sgprobe-agent --once probes its plan and pushes its signed report
# to the collector; the collector's matrix is printed after each round, and its
# dashboard is served on this host at http://127.0.0.1:8080 (a socat forwarder
# on loopback into the collector's namespace: no interface is added to the
# host) until Ctrl-C.
#
#   tests/lab/demo.sh BUILD_DIR
# Environment:
#   SGPROBE_DEMO_ROUNDS=N  run N rounds and exit: 0 only when every cell is ok,
#                          unverified or unobserved
#   SGPROBE_LAB_SG=FILE    build the lab from another security-groups file
#   SGPROBE_DEMO_MATRIX=FILE  judge against another matrix
#   SGPROBE_DEMO_PORT=P    the dashboard's port on this host (default 8080)
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-build}
agent="$top/$build/sgprobe-agent"
collector="$top/$build/sgprobe-collector"
export LABD="$top/$build/labd"
lab="$top/tests/lab/lab.sh"
matrix=${SGPROBE_DEMO_MATRIX:-$top/examples/afirgen.matrix.json}
rounds=${SGPROBE_DEMO_ROUNDS:-}
port=${SGPROBE_DEMO_PORT:-8080}
work=$(mktemp -d /tmp/sgprobe-demo.XXXXXX)
forwarder=""

cleanup() {
	[ -n "$forwarder" ] && kill "$forwarder" 2>/dev/null
	"$lab" down >/dev/null 2>&1
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

case $rounds in '' | *[!0-9]*) [ -n "$rounds" ] && { echo "demo: SGPROBE_DEMO_ROUNDS must be a number" >&2; exit 2; } ;; esac

echo "== bringing up the AFIRGen lab (security groups: ${SGPROBE_LAB_SG:-examples/afirgen.security-groups.json})"
"$lab" up || { echo "demo: the lab did not come up" >&2; exit 1; }
agents=$(jq -r '.roles | to_entries[] | select(.value.agent) | .key' "$matrix")

# One key per agent role, made for this run; the secrets stay in $work.
{
	printf '{"keys": ['
	sep=""
	for role in $agents; do
		openssl rand -hex 24 | tr -d '\n' >"$work/$role.secret"
		printf '%s{"id": "%s", "secret_file": "%s.secret", "roles": ["%s"]}' "$sep" "$role" "$role" "$role"
		sep=", "
	done
	printf ']}\n'
} >"$work/keys.json"

# The collector takes the place of the collector host's stand-in listener.
cns=$("$lab" ns sgprobe-collector)
caddr=$("$lab" addr sgprobe-collector)
"$lab" stop sgprobe-collector
setsid -f ip netns exec "$cns" "$collector" --matrix "$matrix" --keys "$work/keys.json" \
	--listen "$caddr:9443" --admin-listen 127.0.0.1:9090 </dev/null >"$work/collector.log" 2>&1
for i in $(seq 50); do
	ip netns exec "$cns" "$collector" health --admin-listen 127.0.0.1:9090 2>/dev/null && break
	sleep 0.1
done
if ! ip netns exec "$cns" "$collector" health --admin-listen 127.0.0.1:9090; then
	echo "demo: the collector did not start:" >&2
	cat "$work/collector.log" >&2
	exit 1
fi
echo "== the collector serves agents on $caddr:9443 inside the lab"

socat TCP-LISTEN:"$port",bind=127.0.0.1,reuseaddr,fork \
	EXEC:"ip netns exec $cns socat STDIO TCP\:127.0.0.1\:9090" 2>"$work/socat.log" &
forwarder=$!
sleep 0.2
if kill -0 "$forwarder" 2>/dev/null; then
	echo "== the dashboard: http://127.0.0.1:$port/"
else
	echo "demo: cannot serve the dashboard on 127.0.0.1:$port: $(cat "$work/socat.log")" >&2
	forwarder=""
fi

# round N: every agent role at once, each in its own namespace, pushing its report.
round() {
	local pids=""
	for role in $agents; do
		(
			SGPROBE_KEY=$(cat "$work/$role.secret") "$lab" exec "$role" "$agent" --once \
				--matrix "$matrix" --role "$role" --agent-address "$("$lab" addr "$role")" \
				--agent-id "$role.lab" --cluster afirgen-lab --probe-ca-file "$("$lab" ca)" \
				--push "http://collector.afirgen.internal:9443/v1/reports" --key-id "$role" \
				>"$work/$role.txt" 2>"$work/$role.err"
			echo $? >"$work/$role.rc"
		) &
		pids="$pids $!"
	done
	# Only this round's agents: the dashboard's forwarder runs on.
	# shellcheck disable=SC2086
	wait $pids
}

show_matrix() {
	ip netns exec "$cns" curl -s http://127.0.0.1:9090/v1/matrix >"$work/view.json"
	python3 "$top/tests/lab/matrix_view.py" --view "$work/view.json"
}

n=0
while :; do
	n=$((n + 1))
	echo
	echo "== round $n: sgprobe-agent --once --push in every agent role"
	round
	if [ $n -eq 1 ]; then
		for role in $agents; do
			echo
			echo "== $role (namespace $("$lab" ns "$role")), its own table"
			cat "$work/$role.txt" "$work/$role.err"
		done
	else
		for role in $agents; do
			printf '%s: %s\n' "$role" "$(tail -n 1 "$work/$role.txt")"
			grep -v 'pushed' "$work/$role.err"
		done
	fi
	echo
	echo "== the collector's matrix: destination:port × source role"
	show_matrix
	if [ -n "$rounds" ] && [ $n -ge "$rounds" ]; then
		break
	fi
	[ -z "$rounds" ] && echo "(Ctrl-C to stop; next round in 10 s)" && sleep 10
done

bad=$(jq -r '[.cells[] | select(.verdict != "ok" and .verdict != "unverified" and
	.verdict != "unobserved") | "\(.src_role) -> \(.dst_role):\(.port) \(.verdict)"] | join("\n")' \
	"$work/view.json")
echo
if [ -z "$bad" ]; then
	echo "demo: every cell is ok, unverified or unobserved"
	exit 0
fi
echo "demo: cells that need attention:"
echo "$bad"
exit 1
