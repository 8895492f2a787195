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
#   tests/lab/demo.sh BUILD_DIR      (relative to the repository, or absolute)
# Environment:
#   SGPROBE_DEMO_ROUNDS=N     stop after N intervals and exit: 0 only when every
#                             cell is ok, unverified or unobserved and every agent
#                             role's agent is live (an agent still running that has
#                             not reported yet, or a matrix view that failed to
#                             come, is given up to 10 s, at least 3 intervals, more)
#   SGPROBE_DEMO_INTERVAL=S   the agents' interval (default 5 s)
#   SGPROBE_LAB_SG=FILE       build the lab from another security-groups file
#   SGPROBE_DEMO_MATRIX=FILE  judge against another matrix
#   SGPROBE_DEMO_PORT=P       the dashboard's port on this host (default 8080)
#   SGPROBE_LAB_PREFIX=P      the lab's namespace prefix (default sgp; see lab.sh)
#   TMPDIR                    where the run's working directory (keys, logs, the
#                             collector's and agents' pidfiles) is made; removed at exit
# With SGPROBE_DEMO_ROUNDS it exits 1, saying why, when a cell needs attention,
# when an agent role has no live agent at the end (one that never reported), or
# when the collector's matrix view could not be read in the last interval. In
# either mode it gives up with status 1 when the collector exits or has not
# served its matrix view for 3 intervals in a row.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-build}
case $build in /*) ;; *) build=$top/$build ;; esac
agent="$build/sgprobe-agent"
collector="$build/sgprobe-collector"
export LABD="$build/labd"
lab="$top/tests/lab/lab.sh"
matrix=${SGPROBE_DEMO_MATRIX:-$top/examples/afirgen.matrix.json}
rounds=${SGPROBE_DEMO_ROUNDS:-}
port=${SGPROBE_DEMO_PORT:-8080}
interval=${SGPROBE_DEMO_INTERVAL:-5}
max_fails=3 # intervals in a row without a matrix view before giving up
stop_timeout=3 # the agents' --stop-timeout-s: at Ctrl-C, their final report
forwarder=""
cpid=""
collector_gone=""
declare -A apid=()
work=""

case $rounds in '' | *[!0-9]* | 0) [ -n "$rounds" ] && { echo "demo: SGPROBE_DEMO_ROUNDS must be a number of intervals, at least 1, not '$rounds'" >&2; exit 2; } ;; esac
case $interval in '' | *[!0-9]* | 0) echo "demo: SGPROBE_DEMO_INTERVAL must be a number of seconds, at least 1, not '$interval'" >&2; exit 2 ;; esac
case $port in '' | *[!0-9]* | 0) echo "demo: SGPROBE_DEMO_PORT must be a port number, not '$port'" >&2; exit 2 ;; esac
[ "$port" -le 65535 ] || { echo "demo: SGPROBE_DEMO_PORT must be a port number, not '$port'" >&2; exit 2; }
interval=$((10#$interval))
fetch_timeout=$((interval < 2 ? interval : 2)) # seconds for one fetch of the matrix view

# stop SECONDS PID...: SIGTERM, then SIGKILL (said, unless SECONDS is 0) for
# those still there after SECONDS.
stop() {
	local limit=$(($1 * 10)) pid left
	shift
	[ $# -gt 0 ] || return 0
	kill -TERM "$@" 2>/dev/null
	left="$*"
	for _ in $(seq "$limit"); do
		left=""
		for pid in "$@"; do kill -0 "$pid" 2>/dev/null && left="$left $pid"; done
		[ -z "$left" ] && return 0
		sleep 0.1
	done
	for pid in $left; do
		[ "$limit" -gt 0 ] && echo "demo: $(basename "$(readlink "/proc/$pid/exe")") (pid $pid) did not stop within $1 s; killed" >&2
		kill -KILL "$pid" 2>/dev/null
	done
}

cleanup() {
	local kids
	if [ -n "$forwarder" ]; then
		# The forwarder first (no new connections), then its connections' children.
		kids=$(pgrep -P "$forwarder")
		kill "$forwarder" 2>/dev/null
		# shellcheck disable=SC2086
		[ -n "$kids" ] && kill $kids 2>/dev/null
	fi
	# The agents first (each pushes its final report), then the collector; a
	# collector given up on goes first, so that the agents' final pushes are
	# refused at once rather than left waiting.
	[ -n "$cpid" ] && [ -n "$collector_gone" ] && stop 0 "$cpid"
	stop $((stop_timeout + 1)) "${apid[@]}"
	[ -n "$cpid" ] && stop 5 "$cpid"
	# Stops whatever else runs in the lab's namespaces, then removes them.
	"$lab" down >/dev/null 2>&1
	[ -n "$work" ] && rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
work=$(mktemp -d "${TMPDIR:-/tmp}/sgprobe-demo.XXXXXX") || exit 1

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
# In its own session (Ctrl-C is the demo's to handle); ip netns exec execs it, so
# the pid is the collector's. A subshell waits for it and keeps its exit status
# (and keeps bash's job notices out of the demo's output).
(
	setsid ip netns exec "$cns" "$collector" --matrix "$matrix" --keys "$work/keys.json" \
		--listen "$caddr:9443" --admin-listen 127.0.0.1:9090 \
		--metrics-sink emf --flush-interval "$interval" \
		</dev/null >"$work/emf.jsonl" 2>"$work/collector.log" &
	echo $! >"$work/collector.pid"
	wait $!
	echo $? >"$work/collector.status"
) 2>/dev/null &
for _ in $(seq 50); do
	[ -s "$work/collector.pid" ] && break
	sleep 0.02
done
read -r cpid <"$work/collector.pid"
for _ in $(seq 50); do
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
	SGPROBE_KEY=$(cat "$work/$role.secret") setsid ip netns exec "$("$lab" ns "$role")" \
		"$agent" --collector "http://collector.afirgen.internal:9443" --role "$role" \
		--agent-address "$("$lab" addr "$role")" --agent-id "$role.lab" --cluster afirgen-lab \
		--probe-ca-file "$("$lab" ca)" --key-id "$role" --interval-s "$interval" \
		--stop-timeout-s "$stop_timeout" --health-file "$work/$role.health" \
		</dev/null >/dev/null 2>"$work/$role.log" &
	apid[$role]=$!
	echo "$!" >"$work/$role.pid"
	disown $! # no job notice if it dies: the end of the demo says so
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

# fetch_view: the collector's matrix view into $work/view.json; on failure
# $why says what went wrong and view.json keeps the previous one.
fetch_view() {
	if ! ip netns exec "$cns" curl -sS --fail --max-time "$fetch_timeout" -o "$work/view.new" \
		http://127.0.0.1:9090/v1/matrix 2>"$work/curl.err"; then
		why=$(tail -n 1 "$work/curl.err")
		return 1
	fi
	if ! jq -e '.schema == "sgprobe.matrix-view/v1" and (.cells | type == "array") and
		(.agents | type == "array")' "$work/view.new" >/dev/null 2>"$work/jq.err"; then
		why="not a matrix view (sgprobe.matrix-view/v1 with cells and agents): $(head -c 200 "$work/view.new" | tr '\n' ' ') $(tail -n 1 "$work/jq.err")"
		return 1
	fi
	mv "$work/view.new" "$work/view.json"
}

# collector_log: the end of the collector's log, on stderr.
collector_log() {
	echo "demo: the end of the collector's log:" >&2
	tail -n 5 "$work/collector.log" | sed 's/^/  /' >&2
}

# late_agents: the agent roles whose agent is still running but not live in
# the last matrix view.
late_agents() {
	local role
	for role in $agents; do
		kill -0 "${apid[$role]}" 2>/dev/null || continue
		[ "$(jq -r --arg id "$role.lab" '[.agents[] | select(.id == $id and .state == "live")] | length' \
			"$work/view.json" 2>/dev/null)" = 1 ] || printf ' %s' "$role"
	done
}

# Prints the matrix whenever a cell's verdict or the set of agents changes.
grace=$(((10 + interval - 1) / interval))
[ $grace -lt 3 ] && grace=3
n=0
fails=0
announced=""
last=""
while :; do
	sleep "$interval"
	n=$((n + 1))
	if ! kill -0 "$cpid" 2>/dev/null; then
		sleep 0.1 # for its wrapper to write the status
		echo "demo: the collector exited (status $(cat "$work/collector.status" 2>/dev/null)) during interval $n; giving up" >&2
		collector_log
		exit 1
	fi
	if ! fetch_view; then
		fails=$((fails + 1))
		echo "demo: no matrix view from the collector in interval $n: $why" >&2
		if [ "$fails" -ge "$max_fails" ]; then
			echo "demo: the collector has not served its matrix view for $fails intervals in a row; giving up" >&2
			collector_gone=1
			collector_log
			exit 1
		fi
	else
		fails=0
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
	fi
	if [ -n "$rounds" ] && [ $n -ge "$rounds" ]; then
		# An agent's first round can outlast an interval (a denied path's
		# timeout, retried once): give running agents that have not reported
		# yet, or a matrix view that failed to come, a little longer before
		# judging.
		[ $n -ge $((rounds + grace)) ] && break
		if [ "$fails" -eq 0 ]; then
			waiting=$(late_agents)
			[ -z "$waiting" ] && break
			if [ -z "$announced" ]; then
				echo "== waiting up to $(((rounds + grace - n) * interval)) s more for agents that have not reported yet:$waiting"
				announced=1
			fi
		fi
	fi
	[ -z "$rounds" ] && [ $n -eq 1 ] && echo "(Ctrl-C to stop)"
done

echo
if [ "$fails" -gt 0 ]; then
	echo "demo: no matrix view from the collector in the last interval, so no verdict" >&2
	exit 1
fi
if ! bad=$(jq -r '[.cells[] | select(.verdict != "ok" and .verdict != "unverified" and
	.verdict != "unobserved") | "\(.src_role) -> \(.dst_role):\(.port) \(.verdict)"] | join("\n")' \
	"$work/view.json" 2>&1); then
	echo "demo: cannot read the collector's matrix view: $bad" >&2
	exit 1
fi
# Every agent role's agent must have reported and be live: a matrix nobody
# reported to is all unobserved, which proves nothing.
missing=""
for role in $agents; do
	if ! state=$(jq -r --arg id "$role.lab" \
		'[.agents[] | select(.id == $id) | .state] | first // "never reported"' \
		"$work/view.json" 2>&1); then
		echo "demo: cannot read the collector's matrix view: $state" >&2
		exit 1
	fi
	[ "$state" = live ] && continue
	kill -0 "${apid[$role]}" 2>/dev/null || state="$state; its agent exited: $(tail -n 1 "$work/$role.log")"
	missing="$missing
  $role ($state)"
done
status=0
if [ -n "$missing" ]; then
	echo "demo: agent roles without a live agent after $n interval(s):$missing"
	status=1
fi
if [ -n "$bad" ]; then
	echo "demo: cells that need attention:"
	echo "$bad"
	status=1
fi
if [ $status -eq 0 ]; then
	echo "demo: every cell is ok, unverified or unobserved, and all $(echo "$agents" | wc -w) agents are live"
fi
exit $status
