#!/bin/bash
# The agent's daemon mode as a real process on loopback against a real
# collector: plan fetched and cached, rounds pushed, health, an orderly stop on
# SIGTERM with a final report, and reports queued while the collector is down
# delivered when it comes back.
. "$(dirname "$0")/../lib.sh"
set -u

collector="$build/sgprobe-collector"
work=$(mktemp -d /tmp/sgprobe-daemon.XXXXXX)
cpid=""
dpid=""

cleanup() {
	[ -n "$dpid" ] && kill "$dpid" 2>/dev/null && wait "$dpid" 2>/dev/null
	[ -n "$cpid" ] && kill "$cpid" 2>/dev/null && wait "$cpid" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
P=$(free_port)
A=$(free_port)
agents="http://127.0.0.1:$P"
admin="http://127.0.0.1:$A"

cat >"$work/matrix.json" <<'JSON'
{ "version": 1, "name": "loop",
  "probe": { "ports": [5432], "interval_s": 60, "timeout_ms": 300 },
  "roles": {
    "web": { "endpoints": ["127.0.0.11"], "ports": [80], "agent": true },
    "api": { "endpoints": ["127.0.0.12"], "ports": [8000], "agent": true },
    "db":  { "endpoints": ["127.0.0.13"], "ports": [5432], "agent": false } },
  "allow": [ { "from": "web", "to": "api", "ports": [8000] },
             { "from": "api", "to": "db", "ports": [5432] } ] }
JSON
cat >"$work/keys.json" <<'JSON'
{ "keys": [ { "id": "web-1", "secret": "web-secret", "roles": ["web"] } ] }
JSON

# start_collector LOG: starts it and waits (bounded) until it serves.
start_collector() {
	"$collector" --matrix "$work/matrix.json" --keys "$work/keys.json" \
		--listen "127.0.0.1:$P" --admin-listen "127.0.0.1:$A" 2>>"$1" &
	cpid=$!
	for _ in $(seq 50); do
		curl -sf "$admin/healthz" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	return 1
}
stop_collector() {
	kill -TERM "$cpid" 2>/dev/null
	wait "$cpid" 2>/dev/null
	cpid=""
}

# start_daemon ID LOG: the daemon of role web, fed by the collector.
start_daemon() {
	SGPROBE_KEY=web-secret "$agent" --collector "$agents" --role web --agent-id "$1" \
		--agent-address 127.0.0.11 --interval-s 1 --key-id web-1 --stop-timeout-s 5 \
		--health-file "$work/health.json" --plan-cache "$work/plan.cache" 2>"$2" &
	dpid=$!
}

# stop_daemon: SIGTERM, then waits at most 7 s; sets stop_rc to its exit status
# ("timeout" when it did not exit). Not in a subshell: only this shell may wait.
stop_daemon() {
	kill -TERM "$dpid"
	for _ in $(seq 70); do
		kill -0 "$dpid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$dpid" 2>/dev/null; then
		kill -KILL "$dpid"
		wait "$dpid" 2>/dev/null
		stop_rc=timeout
	else
		wait "$dpid"
		stop_rc=$?
	fi
	dpid=""
}

# wait_for SECONDS CMD...: runs CMD every 0.2 s until it succeeds or time is up.
wait_for() {
	local n=$(($1 * 5))
	shift
	for _ in $(seq "$n"); do
		"$@" && return 0
		sleep 0.2
	done
	return 1
}

live_with_observations() {
	curl -s "$admin/v1/matrix" >"$work/view.json" || return 1
	[ "$(jq -r '[.agents[] | select(.id == "'"$1"'") | .state] | join(",")' "$work/view.json")" = live ] &&
		[ "$(jq '[.cells[].observations[] | select(.agent == "'"$1"'")] | length' "$work/view.json")" -gt 0 ]
}
agent_known() {
	curl -s "$admin/v1/matrix" | jq -e '[.agents[] | select(.id == "'"$1"'")] | length > 0' >/dev/null
}
accepted_total() {
	curl -s "$admin/metrics" | awk '$1 == "sgprobe_reports_accepted_total" { print $2 }'
}

# --- the daemon against a running collector -------------------------------------------------
check "the collector starts" start_collector "$work/collector.log"
start_daemon web-d "$work/daemon.log"
check "the daemon's agent is live in the matrix view, with observations" \
	wait_for 10 live_with_observations web-d
# Each path has its own schedule, its first probe jittered by up to 10 % of the
# interval: the first report may hold only some of them, so wait for this one.
cell_verdict_is() {
	curl -s "$admin/v1/matrix" |
		jq -e --arg v "$1" '.cells[] | select(.src_role == "web" and .dst_role == "api" and .port == 8000) | .verdict == $v' >/dev/null
}
check "the view: web → api:8000, nothing listening, is no_listener" \
	wait_for 5 cell_verdict_is no_listener
check "sgprobe-agent health exits 0 while the daemon runs" \
	wait_for 5 "$agent" health --health-file "$work/health.json"
check "the plan cache exists and is the role's plan" \
	sh -c "jq -e '.schema == \"sgprobe.plan/v1\" and .role == \"web\" and (.targets | length) > 0' '$work/plan.cache' >/dev/null"
check "the log is JSON lines with round summaries" \
	sh -c "jq -e 'select(.msg == \"round\") | .level == \"info\"' '$work/daemon.log' | grep -q true"
check "the log never holds the secret" sh -c "! grep -q web-secret '$work/daemon.log'"
stop_daemon
eq "SIGTERM: the daemon exits 0 within --stop-timeout-s" "$stop_rc" 0
check "the final report made the collector forget the agent" \
	wait_for 3 sh -c "! curl -s '$admin/v1/matrix' | jq -e '[.agents[] | select(.id == \"web-d\")] | length > 0' >/dev/null"
check "sgprobe-agent health exits 1 once the daemon has stopped" \
	sh -c "! '$agent' health --health-file '$work/health.json' 2>/dev/null"
check "sgprobe-agent health exits 1 without a health file" \
	sh -c "! '$agent' health --health-file '$work/nothing.json' 2>/dev/null"

# --- the collector away: the plan from the cache, reports queued, then delivered ---------------
stop_collector
start_daemon web-c "$work/daemon2.log"
check "with the collector down, the plan comes from the cache" \
	wait_for 10 sh -c "jq -e 'select(.msg == \"plan loaded\") | .source == \"cache\"' '$work/daemon2.log' 2>/dev/null | grep -q true"
check "rounds run from the cached plan" \
	wait_for 5 sh -c "[ \$(grep -c '\"msg\":\"round\"' '$work/daemon2.log') -ge 2 ]"
check "the collector is back" start_collector "$work/collector2.log"
check "everything queued is delivered: the queue empties" \
	wait_for 20 sh -c "jq -e '.queue == 0 and .delivered >= 3' '$work/health.json' >/dev/null 2>&1"
check "the agent is live again" wait_for 5 live_with_observations web-c
stop_daemon
eq "SIGTERM again: exit 0" "$stop_rc" 0
delivered=$(jq -r 'select(.msg == "stopped") | .delivered' "$work/daemon2.log")
dropped=$(jq -r 'select(.msg == "stopped") | .dropped + .abandoned' "$work/daemon2.log")
eq "nothing dropped or abandoned" "$dropped" 0
eq "sgprobe_reports_accepted_total counts every report the daemon delivered" \
	"$(accepted_total)" "$delivered"
stop_collector

done_testing
