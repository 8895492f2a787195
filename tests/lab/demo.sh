#!/bin/bash
# make demo: the AFIRGen lab in network namespaces with the whole system running
# in it. The collector runs in the lab's collector namespace; in every agent
# role's namespace a daemon sgprobe-agent probes its plan every interval and
# pushes signed reports to the collector. The collector's matrix is printed
# whenever it changes, with the metrics it publishes (EMF lines: what CloudWatch
# would get), and its dashboard is served on this host at
# http://127.0.0.1:8080 (a socat forwarder on loopback into the collector's
# namespace: no interface is added to the host) until Ctrl-C, which tears
# everything down.
#
#   tests/lab/demo.sh BUILD_DIR
# Environment:
#   SGPROBE_DEMO_ROUNDS=N     stop after N intervals and exit: 0 only when every
#                             cell is ok, unverified or unobserved
#   SGPROBE_DEMO_INTERVAL=S   the agents' interval (default 5 s)
#   SGPROBE_LAB_SG=FILE       build the lab from another security-groups file
#   SGPROBE_DEMO_MATRIX=FILE  judge against another matrix
#   SGPROBE_DEMO_PORT=P       the dashboard's port on this host (default 8080)
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
interval=${SGPROBE_DEMO_INTERVAL:-5}
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
case $interval in '' | *[!0-9]* | 0) echo "demo: SGPROBE_DEMO_INTERVAL must be a number of seconds" >&2; exit 2 ;; esac

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
# Its metrics go out as EMF lines on stdout (what CloudWatch would get), its log on stderr.
setsid -f ip netns exec "$cns" "$collector" --matrix "$matrix" --keys "$work/keys.json" \
	--listen "$caddr:9443" --admin-listen 127.0.0.1:9090 \
	--metrics-sink emf --flush-interval "$interval" \
	</dev/null >"$work/emf.jsonl" 2>"$work/collector.log"
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

# One daemon per agent role, each in its own namespace, pushing to the collector.
for role in $agents; do
	SGPROBE_KEY=$(cat "$work/$role.secret") setsid -f ip netns exec "$("$lab" ns "$role")" \
		"$agent" --collector "http://collector.afirgen.internal:9443" --role "$role" \
		--agent-address "$("$lab" addr "$role")" --agent-id "$role.lab" --cluster afirgen-lab \
		--probe-ca-file "$("$lab" ca)" --key-id "$role" --interval-s "$interval" \
		--health-file "$work/$role.health" </dev/null >/dev/null 2>"$work/$role.log"
done
echo "== a daemon agent in every agent role's namespace, every ${interval} s: $(echo $agents)"

# The latest flush's EMF lines, one per set of dimension values, in short:
# [dimension=value ...] metric=value ... (docs/metrics.md has the full lines).
show_emf() {
	[ -s "$work/emf.jsonl" ] || return 0
	echo "== published as CloudWatch metrics (EMF on the collector's stdout, namespace SGProbe):"
	# Unverified cells (no proof the address is alive) are counted, not listed.
	jq -s -r '(map(._aws.Timestamp) | max) as $t | map(select(._aws.Timestamp == $t)) |
		(map(select(.Port and .UnverifiedPaths)) | length) as $u |
		(.[] | select((.Port and .UnverifiedPaths) | not) |
		._aws.CloudWatchMetrics[0] as $d |
		"  [" + ([$d.Dimensions[0][] as $k | "\($k)=\(.[$k])"] | join(" ")) + "] " +
		([$d.Metrics[].Name as $m | "\($m)=\(.[$m])"] | join(" "))),
		(if $u > 0 then "  ... and \($u) lines [Cluster SourceRole DestinationRole Port] UnverifiedPaths=1" else empty end)' \
		"$work/emf.jsonl" 2>/dev/null
}

# Prints the matrix whenever a cell's verdict or the set of agents changes.
n=0
last=""
while :; do
	sleep "$interval"
	n=$((n + 1))
	ip netns exec "$cns" curl -s http://127.0.0.1:9090/v1/matrix >"$work/view.json" || continue
	now=$(jq -c '[[.cells[] | [.src_role, .dst_role, .port, .verdict]], [.agents[] | [.id, .state]]]' \
		"$work/view.json")
	if [ "$now" != "$last" ]; then
		echo
		echo "== the collector's matrix after ${n} interval(s): destination:port × source role"
		python3 "$top/tests/lab/matrix_view.py" --view "$work/view.json"
		for role in $agents; do
			printf '  %s: %s\n' "$role" "$(grep '"msg":"round"' "$work/$role.log" | tail -n 1 |
				jq -r '"round \(.round): \(.results) results in \(.round_ms) ms"' 2>/dev/null)"
		done
		show_emf
		last=$now
	fi
	if [ -n "$rounds" ] && [ $n -ge "$rounds" ]; then
		break
	fi
	[ -z "$rounds" ] && [ $n -eq 1 ] && echo "(Ctrl-C to stop)"
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
