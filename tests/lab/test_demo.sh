#!/bin/bash
# make demo's script (tests/lab/demo.sh) with SGPROBE_DEMO_ROUNDS, as a user
# runs it, in a lab of its own (prefix sgpdemo) with the dashboard on a free
# port, the agents at a 1 s interval:
#   1. the shipped security groups: exits 0 after printing the matrix with
#      every agent live; the dashboard answers on the port meanwhile;
#   2. a staged hole (gguf-model-server → rds-mysql:3306 opened in both
#      security groups, through SGPROBE_LAB_SG): exits 1 naming that cell;
#   3. the collector stopped (SIGSTOP) mid-run: the demo says, interval by
#      interval, that no matrix view came; then killed: exit 1 at once, saying so;
#   4. an agent killed before it ever reports: exit 1 naming its role (every
#      cell unobserved proves nothing);
#   5. a collector (a stand-in) whose matrix view is not valid JSON: the demo
#      says so, gives up after 3 intervals with 1, never a clean verdict;
#   6. without SGPROBE_DEMO_ROUNDS: runs until Ctrl-C (SIGINT), then exits 130;
# and first, bad settings refused with status 2 before anything is built.
# After each run nothing is left: no namespace, no process, no working files,
# no listener on the port. Sanitizer reports of the collector, the agents and
# the lab's listeners (when SGPROBE_BUILD is a sanitized build) are collected
# through log_path and must be none.
. "$(dirname "$0")/../lib.sh"
set -u

prefix=sgpdemo
export SGPROBE_LAB_PREFIX=$prefix
demo="$top/tests/lab/demo.sh"
lab="$top/tests/lab/lab.sh"
work=$(mktemp -d /tmp/sgprobe-test-demo.XXXXXX)
mkdir "$work/tmp" "$work/san"
# demo.sh makes its working directory (pidfiles, logs) under TMPDIR.
export TMPDIR="$work/tmp"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}:log_path=$work/san/asan"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1}:log_path=$work/san/ubsan"
dpid=""

# stop_demo: SIGTERM to a demo still running (its own trap tears the lab down),
# then SIGKILL to its process group if it is still there after 25 s.
stop_demo() {
	[ -n "$dpid" ] || return 0
	kill -TERM "$dpid" 2>/dev/null
	for _ in $(seq 250); do
		kill -0 "$dpid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL -- "-$dpid" 2>/dev/null
	wait "$dpid" 2>/dev/null
	dpid=""
}
cleanup() {
	stop_demo
	LABD="$labd" "$lab" down >/dev/null 2>&1
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now_ms() { echo $(($(date +%s%N) / 1000000)); }

free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_demo NAME ROUNDS [VAR=VALUE...]: demo.sh in the background (ROUNDS
# empty: until stopped, as make demo runs by default), in its own
# session (so that its process group can be found and killed), its output in
# $work/NAME.out.
start_demo() {
	local name=$1 rounds=$2
	shift 2
	port=$(free_port)
	# A background job of a script starts with SIGINT ignored, which bash then
	# cannot trap: --default-signal gives the demo the SIGINT a terminal's has.
	env --default-signal=INT -u SGPROBE_DEMO_ROUNDS "$@" ${rounds:+SGPROBE_DEMO_ROUNDS="$rounds"} SGPROBE_DEMO_INTERVAL=1 \
		SGPROBE_DEMO_PORT="$port" setsid bash "$demo" "$build" </dev/null >"$work/$name.out" 2>&1 &
	dpid=$!
	out="$work/$name.out"
}

# wait_demo SECONDS: waits for the demo to exit; $rc is its status, or
# "timeout" (then it is stopped).
wait_demo() {
	for _ in $(seq $(($1 * 10))); do
		kill -0 "$dpid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$dpid" 2>/dev/null; then
		stop_demo
		rc=timeout
	else
		wait "$dpid"
		rc=$?
		dpid=""
	fi
}

# wait_for SECONDS CMD...: runs CMD every 0.2 s until it succeeds (bounded);
# fails at once when the demo has exited.
wait_for() {
	local limit=$(($1 * 5))
	shift
	for _ in $(seq "$limit"); do
		"$@" && return 0
		kill -0 "$dpid" 2>/dev/null || return 1
		sleep 0.2
	done
	return 1
}

# demo_pid NAME BINARY: the running demo's process NAME (collector, or an agent
# role) from its pidfile, checked to be BINARY before anything is sent to it.
demo_pid() {
	local f pid
	for f in "$TMPDIR"/sgprobe-demo.*/"$1.pid"; do
		[ -f "$f" ] || continue
		read -r pid <"$f"
		if [ "$(readlink "/proc/$pid/exe")" = "$(readlink -f "$build/$2")" ]; then
			echo "$pid"
			return 0
		fi
	done
	return 1
}
collector_pid() { demo_pid collector sgprobe-collector; }
frontend_pid() { demo_pid frontend sgprobe-agent; }

not() { ! "$@"; }

# all_reporting: the demo has printed a matrix every agent had reported to.
all_reporting() { grep -q ', 6 agents reporting$' "$out"; }

# torn_down NAME: nothing of the run is left.
torn_down() {
	local name=$1 left
	eq "$name: no namespace left" "$(ip netns list | grep -c "^$prefix-")" 0
	eq "$name: no /etc/netns entry left" "$(ls /etc/netns 2>/dev/null | grep -c "^$prefix-")" 0
	eq "$name: no lab state directory left" "$(ls -d "/run/sgprobe-lab-$prefix" 2>/dev/null)" ""
	eq "$name: the demo's working directory is removed" "$(ls -A "$TMPDIR")" ""
	# The collector and agents name files under TMPDIR; the forwarder names
	# the collector's namespace.
	left=$(pgrep -f -- "$TMPDIR/|netns exec $prefix-" | tr '\n' ' ')
	eq "$name: no process left" "$left" ""
	if curl -s --max-time 2 -o /dev/null "http://127.0.0.1:$port/" 2>/dev/null; then
		not_ok "$name: nothing listens on the dashboard's port any more"
	else
		ok "$name: nothing listens on the dashboard's port any more"
	fi
}

t0=$(now_ms)
expected_agents=$(jq -r '[.roles[] | select(.agent)] | length' "$top/examples/afirgen.matrix.json")
eq "the shipped matrix has 6 agent roles (what this test expects)" "$expected_agents" 6

# --- 0. bad settings: refused before anything is built --------------------------------
for bad in SGPROBE_DEMO_ROUNDS=two SGPROBE_DEMO_INTERVAL=0 SGPROBE_DEMO_PORT=70000; do
	msg=$(env "$bad" bash "$demo" "$build" 2>&1)
	eq "$bad: exits 2" "$?" 2
	case $msg in
	"demo: ${bad%%=*} must be"*"'${bad#*=}'") ok "$bad: the message names the setting and its value" ;;
	*) not_ok "$bad: the message names the setting and its value" "got '$msg'" ;;
	esac
done
eq "bad settings: no lab was built" "$(ip netns list | grep -c "^$prefix-")" 0

# --- 1. the shipped security groups -------------------------------------------------
start_demo clean 3
dashboard() {
	curl -s --max-time 2 "http://127.0.0.1:$port/" 2>/dev/null | grep -qi '<html'
}
view_via_dashboard() {
	[ "$(curl -s --max-time 2 "http://127.0.0.1:$port/v1/matrix" 2>/dev/null | jq -r .schema 2>/dev/null)" = \
		sgprobe.matrix-view/v1 ]
}
check "clean: the dashboard answers on 127.0.0.1:$port while the demo runs" wait_for 40 dashboard
check "clean: the matrix view is served through the same port" view_via_dashboard
wait_demo 60
eq "clean: exits 0" "$rc" 0
check "clean: prints the collector's matrix" grep -q "^== the collector's matrix after" "$out"
check "clean: the printed matrix has every agent reporting" all_reporting
check "clean: nginx -> main-backend:8000 is printed allowed and ok" \
	grep -Eq '^main-backend:8000 +\+ok ' "$out"
eq "clean: the verdict line" "$(grep '^demo:' "$out")" \
	"demo: every cell is ok, unverified or unobserved, and all 6 agents are live"
eq "clean: the agents and the collector stop on SIGTERM, none killed" \
	"$(grep 'did not stop within' "$out")" ""
torn_down clean

# --- 2. a staged hole: gguf-model-server → rds-mysql:3306 ---------------------------
jq '(.SecurityGroups[] | select(.GroupName == "afirgen-gguf-model-server-prod-sg")) as $gguf |
	(.SecurityGroups[] | select(.GroupName == "afirgen-rds-mysql-prod-sg")) as $rds |
	def rule($peer): {IpProtocol: "tcp", FromPort: 3306, ToPort: 3306, IpRanges: [],
		Ipv6Ranges: [], PrefixListIds: [],
		UserIdGroupPairs: [{GroupId: $peer.GroupId, UserId: $peer.OwnerId}]};
	(.SecurityGroups[] | select(.GroupId == $gguf.GroupId) | .IpPermissionsEgress) += [rule($rds)] |
	(.SecurityGroups[] | select(.GroupId == $rds.GroupId) | .IpPermissions) += [rule($gguf)]' \
	"$top/examples/afirgen.security-groups.json" >"$work/hole.json"
eq "the staged security groups differ from the shipped ones by two rules" \
	"$(jq '[.SecurityGroups[] | (.IpPermissions | length) + (.IpPermissionsEgress | length)] | add' "$work/hole.json")" \
	"$(($(jq '[.SecurityGroups[] | (.IpPermissions | length) + (.IpPermissionsEgress | length)] | add' \
		"$top/examples/afirgen.security-groups.json") + 2))"
start_demo hole 3 SGPROBE_LAB_SG="$work/hole.json"
wait_demo 60
eq "hole: exits 1" "$rc" 1
eq "hole: names the violation, and only it" \
	"$(sed -n '/^demo: cells that need attention:$/,$p' "$out")" \
	"demo: cells that need attention:
gguf-model-server -> rds-mysql:3306 violation"
check "hole: every agent was live" all_reporting
if grep -q 'without a live agent' "$out"; then
	not_ok "hole: no agent role is reported missing" "$(grep -A6 'without a live agent' "$out")"
else
	ok "hole: no agent role is reported missing"
fi
torn_down hole

# --- 3. the collector stops answering, then dies, mid-run ----------------------------
start_demo collector 100
if wait_for 40 all_reporting && cpid=$(collector_pid); then
	ok "collector: the demo runs, every agent reporting"
	kill -STOP "$cpid"
	no_view() { grep -q '^demo: no matrix view from the collector in interval [0-9]*: curl: (28) ' "$out"; }
	check "collector stopped: the demo says, interval by interval, that no matrix view came" \
		wait_for 10 no_view
	kill -KILL "$cpid"
	wait_demo 20
	eq "collector killed: exits 1" "$rc" 1
	check "collector killed: says the collector exited, with its status" \
		grep -q '^demo: the collector exited (status 137) during interval [0-9]*; giving up$' "$out"
else
	not_ok "collector: the demo runs, every agent reporting" "$(tail -5 "$out")"
	stop_demo
fi
torn_down collector

# --- 4. an agent that never reports --------------------------------------------------
# frontend's agent is killed as soon as it runs, long before its first round
# ends: its role has no live agent, and every cell it would have probed is
# unobserved, which alone would pass.
start_demo silent 2
if wait_for 40 frontend_pid >/dev/null; then
	kill -KILL "$(frontend_pid)"
	agent_killed_at=$(now_ms)
	ok "silent: frontend's agent killed before its first report"
	wait_demo 40
	eq "silent: exits 1" "$rc" 1
	eq "silent: names the agent role without a live agent, and only it" \
		"$(sed -n '/^demo: agent roles without a live agent after [0-9]* interval(s):$/,/^[^ ]/p' "$out" |
			sed -n '2,$p' | sed 's/; its agent exited.*//')" \
		"  frontend (never reported"
	echo "# the demo exited $(($(now_ms) - agent_killed_at)) ms after frontend's agent was killed"
	check "silent: says frontend's agent exited" grep -q '^  frontend (never reported; its agent exited' "$out"
	check "silent: no cell needs attention" not grep -q '^demo: cells that need attention' "$out"
else
	not_ok "silent: frontend's agent killed before its first report" "$(tail -5 "$out")"
	stop_demo
fi
torn_down silent

# --- 5. a matrix view that is not one ---------------------------------------------------
# A stand-in collector (same flags, same health subcommand) whose /v1/matrix
# answers 200 with truncated JSON: the demo must not take that for a clean matrix.
mkdir "$work/fake"
ln -s "$build/sgprobe-agent" "$build/labd" "$work/fake/"
cat >"$work/fake/sgprobe-collector" <<'PY'
#!/usr/bin/python3
import http.server, socket, sys
args = sys.argv[1:]
host, port = args[args.index("--admin-listen") + 1].rsplit(":", 1)
if args[0] == "health":
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
    except OSError:
        sys.exit(1)
    sys.exit(0)
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b'{"schema": "sgprobe.matrix-view/v1", "cells": [{"src_role": "nginx"'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer((host, int(port)), Handler).serve_forever()
PY
chmod +x "$work/fake/sgprobe-collector"
build_real=$build
build="$work/fake"
start_demo badview 1
wait_demo 40
build=$build_real
eq "bad view: exits 1" "$rc" 1
check "bad view: says the collector's answer is not a matrix view" \
	grep -q '^demo: no matrix view from the collector in interval 1: not a matrix view' "$out"
check "bad view: gives up after 3 intervals without a matrix view" \
	grep -q '^demo: the collector has not served its matrix view for 3 intervals in a row; giving up$' "$out"
check "bad view: never says every cell is ok" not grep -q '^demo: every cell' "$out"
torn_down "bad view"

# --- 6. Ctrl-C ------------------------------------------------------------------------
# Without SGPROBE_DEMO_ROUNDS it runs until Ctrl-C: SIGINT to its process group,
# as a terminal sends it.
start_demo ctrlc ""
if wait_for 40 grep -q '^(Ctrl-C to stop)$' "$out"; then
	ok "ctrl-c: runs until stopped"
	kill -INT -- "-$dpid"
	wait_demo 30
	eq "ctrl-c: exits 130" "$rc" 130
	eq "ctrl-c: the agents and the collector stop on SIGTERM, none killed" \
		"$(grep 'did not stop within' "$out")" ""
else
	not_ok "ctrl-c: runs until stopped" "$(tail -5 "$out")"
	stop_demo
fi
torn_down ctrl-c

eq "no sanitizer reports from the collector, agents or listeners" \
	"$(cat "$work"/san/* 2>/dev/null | head -40)" ""
echo "# $((($(now_ms) - t0) / 1000)) s in all"
done_testing
