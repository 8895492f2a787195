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
spid=""
epid=""
fpid=""
dbpid=""

cleanup() {
	[ -n "$dpid" ] && kill "$dpid" 2>/dev/null && wait "$dpid" 2>/dev/null
	[ -n "$cpid" ] && kill "$cpid" 2>/dev/null && wait "$cpid" 2>/dev/null
	[ -n "$spid" ] && kill "$spid" 2>/dev/null && wait "$spid" 2>/dev/null
	[ -n "$epid" ] && kill "$epid" 2>/dev/null && wait "$epid" 2>/dev/null
	[ -n "$fpid" ] && kill "$fpid" 2>/dev/null && wait "$fpid" 2>/dev/null
	[ -n "$dbpid" ] && kill "$dbpid" 2>/dev/null && wait "$dbpid" 2>/dev/null
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

# The database: a listener that notes every connection it accepts, so that the
# probes of the allowed path web → db (allowed_interval_s 900) can be counted.
python3 -c '
import socket, sys
s = socket.socket(); s.bind(("127.0.0.13", 0)); s.listen(64)
print(s.getsockname()[1], flush=True)
while True:
    c, _ = s.accept()
    c.close()
    with open(sys.argv[1], "a") as f:
        f.write("hit\n")' "$work/db.hits" >"$work/db.port" &
dbpid=$!
for _ in $(seq 50); do [ -s "$work/db.port" ] && break; sleep 0.1; done
D=$(cat "$work/db.port")
# db_hits: connections the database accepted since the last reset_db_hits.
reset_db_hits() { : >"$work/db.hits"; }
db_hits() { wc -l <"$work/db.hits"; }
reset_db_hits
sed "s/DBPORT/$D/g" >"$work/matrix.json" <<'JSON'
{ "version": 1, "name": "loop",
  "probe": { "ports": [5432], "interval_s": 60, "timeout_ms": 300 },
  "roles": {
    "web": { "endpoints": ["127.0.0.11"], "ports": [80], "agent": true },
    "api": { "endpoints": ["127.0.0.12"], "ports": [8000], "agent": true },
    "db":  { "endpoints": ["127.0.0.13"], "ports": [DBPORT], "agent": false,
             "allowed_interval_s": 900 } },
  "allow": [ { "from": "web", "to": "api", "ports": [8000] },
             { "from": "web", "to": "db", "ports": [DBPORT] },
             { "from": "api", "to": "db", "ports": [DBPORT] } ] }
JSON
cat >"$work/keys.json" <<'JSON'
{ "keys": [ { "id": "web-1", "secret": "web-secret", "roles": ["web"] } ] }
JSON

# start_collector LOG [MATRIX]: starts it and waits (bounded) until it serves.
start_collector() {
	"$collector" --matrix "${2:-$work/matrix.json}" --keys "$work/keys.json" \
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

# start_daemon ID LOG [FLAG...]: the daemon of role web, fed by the collector.
# The plan is asked for again every 300 ms (a testing knob), so that the
# cache→collector handoff happens within the test.
start_daemon() {
	local id=$1 log=$2
	shift 2
	SGPROBE_KEY=web-secret SGPROBE_TEST_PLAN_REFRESH_MS=300 "$agent" --collector "$agents" \
		--role web --agent-id "$id" --agent-address 127.0.0.11 --interval-s 1 \
		--key-id web-1 --stop-timeout-s 5 --health-file "$work/health.json" \
		--plan-cache "$work/plan.cache" "$@" 2>"$log" &
	dpid=$!
}

# stop_daemon [TENTHS]: SIGTERM, then waits at most TENTHS tenths of a second
# (default 55: --stop-timeout-s 5, and half a second for the process to end);
# sets stop_rc to its exit status ("timeout" when it did not exit). Not in a
# subshell: only this shell may wait.
stop_daemon() {
	kill -TERM "$dpid"
	for _ in $(seq "${1:-55}"); do
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

# --- a daemon without its key's secret -------------------------------------------------------
(unset SGPROBE_KEY SGPROBE_KEY_FILE; "$agent" --collector http://127.0.0.1:9/ --role web \
	--key-id web-1 2>"$work/nokey.err")
eq "a daemon with --collector and no secret exits 2" "$?" 2
check "... saying that --collector needs the secret" \
	grep -q -- '--collector needs --key-file FILE or SGPROBE_KEY' "$work/nokey.err"

# --- the daemon against a running collector -------------------------------------------------
check "the collector starts" start_collector "$work/collector.log"
start_daemon web-d "$work/daemon.log"
check "the daemon's agent is live in the matrix view, with observations" \
	wait_for 10 live_with_observations web-d
# The first round probes the whole plan; the collector may still be showing
# an earlier view, so wait for this cell.
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
check "the plan cache keeps the plan's ETag" \
	sh -c "jq -e '.sgprobe_cache_etag | test(\"^\\\".+\\\"$\")' '$work/plan.cache' >/dev/null"
# Paths probed: the plan's, but web → db:5432 (allowed_interval_s 900) is not
# probed again within the test.
n_paths=$(jq '[.targets[] | select(.probe != false)] | length' "$work/plan.cache")
full_rounds() {
	jq -s --argjson n "$n_paths" '[.[] | select(.msg == "round" and .targets == $n)] | length' "$1"
}
rounds_at_least() { [ "$(grep -c '"msg":"round"' "$2")" -ge "$1" ]; }
check "rounds follow one another" wait_for 5 rounds_at_least 3 "$work/daemon.log"
eq "the first round probes the whole plan, later ones leave out the 900 s path" \
	"$(full_rounds "$work/daemon.log"),$(db_hits)" "1,1"
check "the log is JSON lines with round summaries" \
	sh -c "jq -e 'select(.msg == \"round\") | .level == \"info\"' '$work/daemon.log' | grep -q true"
check "the log never holds the secret" sh -c "! grep -q web-secret '$work/daemon.log'"
# web → api:8000 (allowed, nothing listening) is no_listener in every round
# that probes it; the first round probes every path.
check "the round line counts verdicts and carries the counters" \
	sh -c "jq -se '[.[] | select(.msg == \"round\")] | first | (.no_listener >= 1) and (.failing >= 1) and (.probes == .results) and has(\"violation\") and has(\"reports_sent\") and has(\"reports_retried\") and has(\"reports_dropped\")' '$work/daemon.log' >/dev/null"
check "the health file carries the counters too" \
	sh -c "jq -e '(.probes >= 1) and has(\"reports_sent\") and has(\"reports_retried\") and has(\"reports_dropped\")' '$work/health.json' >/dev/null"
cp "$work/plan.cache" "$work/plan-web.json"
stop_daemon
eq "SIGTERM: the daemon exits 0 within --stop-timeout-s" "$stop_rc" 0
check "the final report made the collector forget the agent" \
	wait_for 3 sh -c "! curl -s '$admin/v1/matrix' | jq -e '[.agents[] | select(.id == \"web-d\")] | length > 0' >/dev/null"
check "sgprobe-agent health exits 1 once the daemon has stopped" \
	sh -c "! '$agent' health --health-file '$work/health.json' 2>/dev/null"
check "sgprobe-agent health exits 1 without a health file" \
	sh -c "! '$agent' health --health-file '$work/nothing.json' 2>/dev/null"
# Docker reserves exit status 2 of a health check: every failure is 1.
health_rc() {
	"$agent" health "$@" 2>"$work/health.err"
	echo $?
}
eq "sgprobe-agent health exits 1, not 2, without --health-file" \
	"$(env -u SGPROBE_HEALTH_FILE "$agent" health 2>"$work/health.err"; echo $?)" 1
check "... and says what is missing" grep -q -- '--health-file' "$work/health.err"
eq "sgprobe-agent health exits 1, not 2, on an unknown flag" "$(health_rc --no-such-flag)" 1
eq "sgprobe-agent health exits 1, not 2, on a bad flag value" \
	"$(health_rc --health-file "$work/health.json" --interval-s nope)" 1
printf 'not json' >"$work/garbage.json"
eq "sgprobe-agent health exits 1 on a health file that is not JSON" \
	"$(health_rc --health-file "$work/garbage.json")" 1
# Values no daemon writes: never fresh.
future=$(($(date +%s) * 1000 + 3600000))
printf '{"ok":true,"interval_s":1,"last_round_at_ms":%s}' "$future" >"$work/future.json"
eq "sgprobe-agent health exits 1 on a round an hour in the future" \
	"$(health_rc --health-file "$work/future.json")" 1
check "... saying so" grep -q 'in the future' "$work/health.err"
printf '{"ok":true,"interval_s":1e300,"last_round_at_ms":1e300}' >"$work/huge.json"
eq "sgprobe-agent health exits 1 on numbers out of range" \
	"$(health_rc --health-file "$work/huge.json")" 1
check "... naming the field" grep -q 'last_round_at_ms: must be a time in ms' "$work/health.err"

# --- the collector away: the plan from the cache, reports queued, then delivered ---------------
stop_collector
reset_db_hits
start_daemon web-c "$work/daemon2.log"
check "with the collector down, the plan comes from the cache" \
	wait_for 10 sh -c "jq -e 'select(.msg == \"plan loaded\") | .source == \"cache\"' '$work/daemon2.log' 2>/dev/null | grep -q true"
check "rounds run from the cached plan" \
	wait_for 5 sh -c "[ \$(grep -c '\"msg\":\"round\"' '$work/daemon2.log') -ge 2 ]"
check "the collector is back" start_collector "$work/collector2.log"
check "everything queued is delivered: the queue empties" \
	wait_for 20 sh -c "jq -e '.queue == 0 and .delivered >= 3' '$work/health.json' >/dev/null 2>&1"
check "the agent is live again" wait_for 5 live_with_observations web-c
plans_served() {
	curl -s "$admin/metrics" | awk '$1 == "sgprobe_plans_served_total" { print $2 }'
}
served_at_least() { [ "$(plans_served)" -ge "$1" ] 2>/dev/null; }
check "the daemon asks the collector for its plan again" wait_for 5 served_at_least 2
eq "the cache's ETag: the collector's plan is the same one, not installed again" \
	"$(jq -s '[.[] | select(.msg == "plan loaded")] | map(.source) | join(",")' "$work/daemon2.log")" '"cache"'
eq "the handoff keeps the schedule: the 900 s path was probed once, in the first round" \
	"$(full_rounds "$work/daemon2.log"),$(db_hits)" "1,1"
stop_daemon
eq "SIGTERM again: exit 0" "$stop_rc" 0
delivered=$(jq -r 'select(.msg == "stopped") | .delivered' "$work/daemon2.log")
dropped=$(jq -r 'select(.msg == "stopped") | .dropped + .abandoned' "$work/daemon2.log")
eq "nothing dropped or abandoned" "$dropped" 0
eq "sgprobe_reports_accepted_total counts every report the daemon delivered" \
	"$(accepted_total)" "$delivered"
stop_collector

# --- an older agent's cache, without the ETag: still used; the collector's plan
# then comes with a 200, and is installed keeping the schedule ---------------------------------
jq 'del(.sgprobe_cache_etag)' "$work/plan.cache" >"$work/plan.old" && mv "$work/plan.old" "$work/plan.cache"
reset_db_hits
start_daemon web-o "$work/daemon-o.log"
check "a cache without the ETag is used" \
	wait_for 10 sh -c "jq -e 'select(.msg == \"plan loaded\") | .source == \"cache\"' '$work/daemon-o.log' 2>/dev/null | grep -q true"
check "the collector is back" start_collector "$work/collector-o.log"
plan_from_collector() {
	jq -se 'any(.[]; .msg == "plan loaded" and .source == "collector")' "$work/daemon-o.log" >/dev/null 2>&1
}
check "the collector's plan is installed (no ETag to match)" wait_for 5 plan_from_collector
eq "... keeping every path's schedule" \
	"$(jq -r 'select(.msg == "plan loaded" and .source == "collector") | .kept_schedule == .targets' "$work/daemon-o.log")" true
check "rounds follow" wait_for 5 rounds_at_least 3 "$work/daemon-o.log"
eq "... so the 900 s path is not probed again: once, in the first round" \
	"$(full_rounds "$work/daemon-o.log"),$(db_hits)" "1,1"
stop_daemon
eq "SIGTERM: exit 0" "$stop_rc" 0
stop_collector

# --- SIGTERM in the middle of a round -------------------------------------------------------
# A destination that never answers (a listener whose accept queue is full
# drops every SYN) and a 30 s timeout: the first round cannot end by itself
# before the stop. The agent cuts it short, pushes what it saw with the final
# report, and exits promptly.
python3 -c '
import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.14", 0)); s.listen(0)
f = socket.socket(); f.setblocking(False); f.connect_ex(s.getsockname())
time.sleep(0.2)
print(s.getsockname()[1], flush=True)
time.sleep(600)' >"$work/slow.port" &
spid=$!
wait_for 5 test -s "$work/slow.port"
S=$(cat "$work/slow.port")
jq --argjson s "$S" '.roles.slow = { "endpoints": ["127.0.0.14"], "ports": [$s], "agent": false }
	| .allow += [ { "from": "web", "to": "slow", "ports": [$s] } ]' \
	"$work/matrix.json" >"$work/matrix-slow.json"
rm -f "$work/plan.cache"
check "a fresh collector starts, with a destination that never answers" \
	start_collector "$work/collector3.log" "$work/matrix-slow.json"
start_daemon web-s "$work/daemon3.log" --timeout-ms 30000 --stop-timeout-s 10
check "the daemon loads the plan" \
	wait_for 10 sh -c "grep -q '\"msg\":\"plan loaded\"' '$work/daemon3.log'"
# Every path but the agent's own address's (never probed) and the unanswered one.
n_seen=$(jq '[.targets[] | select(.probe != false and .target != "127.0.0.11")] | length - 1' "$work/plan.cache")
# The first round starts within 10 % of the interval and waits for the
# destination that never answers.
sleep 1
stop_daemon 30
eq "SIGTERM mid-round: exit 0 within 3 s, not at the 10 s stop timeout" "$stop_rc" 0
eq "the round was cut short: one round, cancelled, with every result but the unanswered one" \
	"$(jq -sc '[.[] | select(.msg == "round") | [.cancelled, .results]]' "$work/daemon3.log")" \
	"[[true,$n_seen]]"
eq "the round's results and the final report arrive: two reports, every result accepted" \
	"$(accepted_total),$(curl -s "$admin/metrics" | awk '$1 == "sgprobe_observations_accepted_total" { print $2 }')" \
	"2,$n_seen"
check "the final report made the collector forget the agent" \
	sh -c "! curl -s '$admin/v1/matrix' | jq -e '[.agents[] | select(.id == \"web-s\")] | length > 0' >/dev/null"
eq "nothing dropped or abandoned at the stop" \
	"$(jq -r 'select(.msg == "stopped") | "\(.delivered) \(.dropped + .abandoned)"' "$work/daemon3.log")" "2 0"
check "the health file says not ok after the stop" \
	sh -c "jq -e '.ok == false' '$work/health.json' >/dev/null"
stop_collector
kill "$spid" 2>/dev/null
wait "$spid" 2>/dev/null
spid=""

# --- counters in every report ----------------------------------------------------------------
# A stand-in collector that serves the plan, and answers the reports: 503 the
# first attempt (retried), 400 the second report (dropped), 202 the rest. It
# keeps every body it is sent.
mkdir "$work/posts"
python3 -c '
import http.server, json, os, sys
plan, posts = open(sys.argv[1], "rb").read(), sys.argv[2]
n = [0]
class H(http.server.BaseHTTPRequestHandler):
    def answer(self, code, body):
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        self.answer(200, plan)
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        n[0] += 1
        with open(os.path.join(posts, "%03d.json" % n[0]), "wb") as f:
            f.write(body)
        seq = json.loads(body)["seq"]
        if n[0] == 1:
            self.answer(503, b"{\"error\": \"busy\"}")
        elif seq == 2:
            self.answer(400, b"{\"error\": \"refused for the test\"}")
        else:
            self.answer(202, b"{\"accepted\": 1}")
    def log_message(self, *a):
        pass
s = http.server.HTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()' "$work/plan-web.json" "$work/posts" >"$work/fake.port" &
fpid=$!
wait_for 5 test -s "$work/fake.port"
F=$(cat "$work/fake.port")
rm -f "$work/plan.cache"
SGPROBE_KEY=web-secret "$agent" --collector "http://127.0.0.1:$F" --role web --agent-id web-k \
	--agent-address 127.0.0.11 --interval-s 1 --key-id web-1 --stop-timeout-s 5 \
	--health-file "$work/health.json" 2>"$work/daemon-k.log" &
dpid=$!
posts_at_least() { [ "$(ls "$work/posts" | wc -l)" -ge "$1" ]; }
check "the daemon pushes to the stand-in" wait_for 10 posts_at_least 6
stop_daemon
eq "SIGTERM: exit 0" "$stop_rc" 0
# Every report has counters; the last non-final one, seq s, counts s rounds,
# the probes of every round so far, and the first attempt retried and the
# second report dropped.
jq -s 'map(select(.final == false)) | unique_by(.seq)' "$work"/posts/*.json >"$work/reports.json"
check "every report carries a counters object with the five counters" \
	sh -c "jq -se 'map(.counters | keys == [\"probes\",\"reports_dropped\",\"reports_retried\",\"reports_sent\",\"rounds\"]) | all' '$work'/posts/*.json >/dev/null"
eq "counters.rounds = seq, counters.probes = every result so far" \
	"$(jq -c 'last as $l | [$l.counters.rounds == $l.seq, $l.counters.probes == ([.[].results | length] | add)]' "$work/reports.json")" \
	"[true,true]"
eq "counters: the 503 counted retried, the 400 dropped, every answer sent" \
	"$(jq -c 'last | [.counters.reports_retried, .counters.reports_dropped, .counters.reports_sent == .seq]' "$work/reports.json")" \
	"[1,1,true]"
eq "the health file and the log's stopped line agree with the collector's view" \
	"$(jq -c '[.reports_retried, .reports_dropped]' "$work/health.json"),$(jq -c 'select(.msg == "stopped") | [.reports_retried, .reports_dropped]' "$work/daemon-k.log")" \
	"[1,1],[1,1]"
kill "$fpid" 2>/dev/null
wait "$fpid" 2>/dev/null
fpid=""

# --- without a collector: the log is all there is ---------------------------------------------
# Twelve ports of one destination open on denied paths: twelve violations.
python3 -c '
import socket, time
ls = []
for _ in range(12):
    s = socket.socket(); s.bind(("127.0.0.15", 0)); s.listen(64); ls.append(s)
print(" ".join(str(s.getsockname()[1]) for s in ls), flush=True)
time.sleep(600)' >"$work/open.ports" &
spid=$!
wait_for 5 test -s "$work/open.ports"
jq -n --arg p "$(cat "$work/open.ports")" '{ "version": 1, "name": "open",
  "probe": { "interval_s": 60, "timeout_ms": 300 },
  "roles": {
    "web":  { "endpoints": ["127.0.0.11"], "ports": [80], "agent": true },
    "open": { "endpoints": ["127.0.0.15"], "ports": ($p | split(" ") | map(tonumber)), "agent": false } },
  "allow": [] }' >"$work/matrix-open.json"
"$agent" --matrix "$work/matrix-open.json" --role web --agent-address 127.0.0.11 \
	--interval-s 1 --stop-timeout-s 2 2>"$work/daemon-open.log" &
dpid=$!
check "--matrix alone: rounds run" \
	wait_for 5 sh -c "grep -q '\"msg\":\"round\"' '$work/daemon-open.log'"
stop_daemon 25
eq "... SIGTERM: exit 0" "$stop_rc" 0
eq "the round line counts the violations" \
	"$(jq -sc '[.[] | select(.msg == "round")] | first | [.violation, .failing, .ok, .open]' "$work/daemon-open.log")" \
	"[12,12,0,12]"
rounds=$(jq -s '[.[] | select(.msg == "round")] | length' "$work/daemon-open.log")
eq "one warning per failing path, ten a round at most, then one line for the rest" \
	"$(jq -sc '[([.[] | select(.msg == "path failing")] | length), ([.[] | select(.msg == "more paths failing than logged one by one" and .failing == 12 and .logged == 10)] | length)]' "$work/daemon-open.log")" \
	"[$((10 * rounds)),$rounds]"
check "a warning names the verdict, the path and what was seen" \
	sh -c "jq -se '[.[] | select(.msg == \"path failing\")] | first | .level == \"warn\" and .verdict == \"violation\" and .dst_role == \"open\" and .address == \"127.0.0.15\" and .expected == \"deny\" and .state == \"open\" and (.port > 0)' '$work/daemon-open.log' >/dev/null"
kill "$spid" 2>/dev/null
wait "$spid" 2>/dev/null
spid=""

# --- identity -------------------------------------------------------------------------------
boots=$(jq -r 'select(.msg == "starting") | .boot' "$work/daemon.log" "$work/daemon2.log" "$work/daemon3.log")
eq "every start has a new boot id (32 hex digits)" \
	"$(printf '%s\n' "$boots" | grep -cE '^[0-9a-f]{32}$'),$(printf '%s\n' "$boots" | sort -u | wc -l)" "3,3"

# A task metadata endpoint v4 on loopback: the example document under /v4/ok,
# 404 anywhere else.
python3 -c '
import http.server, sys
doc = open(sys.argv[1], "rb").read()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        code, body = (200, doc) if self.path == "/v4/ok/task" else (404, b"not found")
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
s = http.server.HTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()' "$top/tests/unit/data/task-metadata-v4.json" >"$work/ecs.port" &
epid=$!
wait_for 5 test -s "$work/ecs.port"
E=$(cat "$work/ecs.port")
# matrix_daemon URI LOG: the daemon of role web from --matrix, inside "ECS".
matrix_daemon() {
	ECS_CONTAINER_METADATA_URI_V4=$1 "$agent" --matrix "$work/matrix.json" --role web \
		--agent-address 127.0.0.11 --interval-s 1 --stop-timeout-s 2 2>"$2" &
	dpid=$!
}
matrix_daemon "http://127.0.0.1:$E/v4/ok" "$work/ecs-ok.log"
check "inside ECS, the daemon starts with the task's identity" \
	wait_for 5 sh -c "grep -q '\"msg\":\"round\"' '$work/ecs-ok.log'"
eq "the starting line names the task, its cluster, family, revision and zone" \
	"$(jq -r 'select(.msg == "starting") | [.id, .cluster, .family, .revision, .az] | join(" ")' "$work/ecs-ok.log")" \
	"arn:aws:ecs:us-west-2:111122223333:task/default/158d1c8083dd49d6b527399fd6414f5c default curltest 26 us-west-2d"
stop_daemon 25
eq "... and stops with 0" "$stop_rc" 0
# A metadata endpoint that fails: no identity of the hostname's (the agent
# would not know its own address and would probe its own task), but exit 1,
# so that ECS starts the task again. A 404 is not retried.
matrix_daemon "http://127.0.0.1:$E/v4/gone" "$work/ecs-fail.log"
stop_rc=timeout
for _ in $(seq 50); do
	kill -0 "$dpid" 2>/dev/null || { wait "$dpid"; stop_rc=$?; break; }
	sleep 0.1
done
[ "$stop_rc" = timeout ] && kill -KILL "$dpid" 2>/dev/null && wait "$dpid" 2>/dev/null
dpid=""
eq "inside ECS, a failing metadata endpoint: exit 1, not the hostname's identity" "$stop_rc" 1
check "... with an error that names the endpoint and the status" \
	sh -c "jq -e 'select(.level == \"error\" and (.msg | startswith(\"no ECS identity\"))) | .error | contains(\"/v4/gone/task: HTTP 404\")' '$work/ecs-fail.log' | grep -q true"
check "... and no probe" sh -c "! grep -q '\"msg\":\"round\"' '$work/ecs-fail.log'"
kill "$epid" 2>/dev/null
wait "$epid" 2>/dev/null
epid=""
kill "$dbpid" 2>/dev/null
wait "$dbpid" 2>/dev/null
dbpid=""

done_testing
