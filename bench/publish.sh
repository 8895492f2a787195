#!/bin/sh
# Benchmark: publishing cost as the fleet grows. For 10, 100 and 1,000 simulated
# agents of role web (build/loadgen), each with a clean plan and with 5 violating
# cells, sgprobe-collector publishes to a CloudWatch stand-in
# (tests/integration/cw_standin.py, which checks every call's signature and
# records it) every second; the script counts, over the flushes of the steady part
# (every agent reported), PutMetricData calls and values per flush and the distinct
# metrics (name and dimensions), and scales them to an hour at the default 60 s
# flush. It checks the collector's own counters against the stand-in's records.
#
# The peer, on the same work in the same run: Prometheus Pushgateway fed the same
# results by loadgen's pushgateway mode, one grouping key per agent, as the usual
# way of getting per-agent probe results into CloudWatch without sgprobe (the
# CloudWatch agent scrapes it and makes one metric per series). Its distinct
# metrics are the sgprobe_probe_* series it exposes on /metrics; its calls per
# flush ceil(series / 1000), PutMetricData's limit of 1,000 values a call.
#
#   sh bench/publish.sh BUILD_DIR [SECONDS_PER_RUN]
#
# Everything listens on 127.0.0.1; nothing leaves the machine. Installs nothing:
# scripts/deps.sh (make deps) installs prometheus-pushgateway.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build}
seconds=${2:-10}
collector="$top/$build/sgprobe-collector"
loadgen="$top/$build/loadgen"
standin="$top/tests/integration/cw_standin.py"
python=/usr/bin/python3
pushgateway=prometheus-pushgateway
fleets="10 100 1000"
violations=5
load_seconds=2
flush_default=60
akid=AKIDSGPROBEBENCH0001
aws_secret=$(od -An -tx1 -N20 /dev/urandom | tr -d ' \n')
work=$(mktemp -d /tmp/sgprobe-publish.XXXXXX)

# stop PID: SIGTERM, up to 10 s to exit, then SIGKILL.
stop() {
	kill "$1" 2>/dev/null || return 0
	i=0
	while kill -0 "$1" 2>/dev/null; do
		i=$((i + 1))
		if [ $i -gt 100 ]; then
			kill -KILL "$1" 2>/dev/null
			break
		fi
		sleep 0.1
	done
	wait "$1" 2>/dev/null
	return 0
}

cleanup() {
	for f in "$work"/*.pid; do
		[ -f "$f" ] && stop "$(cat "$f")"
	done
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

die() {
	echo "bench: $*" >&2
	exit 1
}
[ "$seconds" -ge 3 ] 2>/dev/null || die "SECONDS_PER_RUN must be an integer >= 3"
[ -x "$collector" ] || die "$collector is missing (make)"
[ -x "$loadgen" ] || die "$loadgen is missing (make $build/loadgen)"
[ -x "$python" ] || die "$python is missing"
command -v $pushgateway >/dev/null || die "$pushgateway is missing (sh scripts/deps.sh)"
command -v jq >/dev/null || die "jq is missing"

free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# get URL: the body, no proxy whatever the environment says.
get() {
	curl -sf --noproxy '*' --max-time 5 "$1"
}

# wait_up URL NAME: waits up to 10 s for URL to answer.
wait_up() {
	i=0
	until get "$1" >/dev/null; do
		i=$((i + 1))
		[ $i -gt 100 ] && die "$2 did not start"
		sleep 0.1
	done
}

# The plan of role web is the 20 results loadgen sends (bench/loadgen.c), as in
# bench/ingest.sh: allowed paths open, denied ones filtered.
cat >"$work/matrix.json" <<'EOF'
{ "version": 1, "name": "bench",
  "probe": { "ports": [22], "interval_s": 60, "timeout_ms": 1000 },
  "roles": {
    "web":    { "endpoints": ["web.bench.internal"], "ports": [80, 443], "agent": true },
    "api":    { "endpoints": ["api-a.bench.internal", "api-b.bench.internal"], "ports": [8000],
                "agent": true },
    "db":     { "endpoints": ["db.bench.internal"], "ports": [5432], "agent": false },
    "cache":  { "endpoints": ["cache-a.bench.internal", "cache-b.bench.internal"],
                "ports": [6379], "agent": false },
    "queue":  { "endpoints": ["queue.bench.internal"], "ports": [5672], "agent": false },
    "search": { "endpoints": ["search.bench.internal"], "ports": [9200, 9300], "agent": false },
    "admin":  { "endpoints": ["admin.bench.internal"], "ports": [8443], "agent": false } },
  "allow": [ { "from": "web", "to": "api", "ports": [8000] },
             { "from": "web", "to": "cache", "ports": [6379] },
             { "from": "web", "to": "queue", "ports": [5672] },
             { "from": "web", "to": "search", "ports": [9200] },
             { "from": "api", "to": "db", "ports": [5432] },
             { "from": "admin", "to": "web", "ports": [443] } ] }
EOF
agent_roles=$(jq '[.roles[] | select(.agent)] | length' "$work/matrix.json")
secret=$(od -An -tx1 -N24 /dev/urandom | tr -d ' \n')
printf '%s\n' "$secret" >"$work/bench.secret"
cat >"$work/keys.json" <<'EOF'
{ "keys": [ { "id": "bench-1", "secret_file": "bench.secret", "roles": ["web"] } ] }
EOF

# The stand-in's records of one run: the steady flushes (metrics' timestamp after
# SINCE, a wall time in s) grouped by timestamp, and the distinct metrics. Prints
# KEY=VALUE lines; exits 1 with a message when a flush is not steady.
cat >"$work/flushes.py" <<'EOF'
import json, sys
records, since, agents = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
flushes, failed = {}, 0
for line in open(records, encoding="utf-8"):
    r = json.loads(line)
    if r.get("ecs"):
        continue
    if r["status"] != 200:
        failed += 1
        continue
    for ts in {m["timestamp_s"] for m in r["metrics"]}:
        f = flushes.setdefault(ts, {"calls": 0, "metrics": []})
        f["calls"] += 1
        f["metrics"] += [m for m in r["metrics"] if m["timestamp_s"] == ts]
steady = sorted(ts for ts in flushes if ts > since)
if failed or not steady:
    sys.exit(f"{failed} calls failed, {len(steady)} steady flushes")
distinct, calls, values = set(), set(), set()
for ts in steady:
    f = flushes[ts]
    live = [m["value"] for m in f["metrics"]
            if m["name"] == "ReportingAgents" and set(m["dimensions"]) == {"Cluster"}]
    if live != [agents]:
        sys.exit(f"flush at {ts}: ReportingAgents {live}, not [{agents}]")
    calls.add(f["calls"])
    values.add(len(f["metrics"]))
    distinct |= {(m["name"], tuple(sorted(m["dimensions"].items()))) for m in f["metrics"]}
cells = {}
for d in distinct:
    if len(d[1]) == 4:
        cells[d[0]] = cells.get(d[0], 0) + 1
print(f"flushes={len(steady)}")
print(f"calls_min={min(calls)}\ncalls_max={max(calls)}")
print(f"values_min={min(values)}\nvalues_max={max(values)}")
print(f"distinct={len(distinct)}")
print(f"cell_violation={cells.get('UnexpectedOpenPaths', 0)}")
print("cells=" + (", ".join(f"{v} {k}" for k, v in sorted(cells.items())) or "none"))
EOF

# The stand-in's totals so far: successful calls and the values they carried.
cat >"$work/totals.py" <<'EOF'
import json, sys
calls = values = 0
for line in open(sys.argv[1], encoding="utf-8"):
    r = json.loads(line)
    if not r.get("ecs") and r["status"] == 200:
        calls += 1
        values += len(r["metrics"])
print(calls, values)
EOF

# val FILE KEY: the value of KEY in a file of KEY=VALUE lines.
val() {
	sed -n "s/^$2=//p" "$1"
}

# metric FILE NAME: the value of the Prometheus sample NAME (with its labels) in FILE.
metric() {
	awk -v n="$2" '$1 == n { print $2 }' "$1"
}

# counters ADMIN RUN: reads the collector's publish counters and the stand-in's
# records at a moment no call is in flight (the same counters and nothing buffered
# before and after reading the records); writes RUN/counters: collector calls ok,
# values sent, other calls; stand-in calls, values.
counters() {
	i=0
	while [ $i -lt 20 ]; do
		i=$((i + 1))
		get "http://127.0.0.1:$1/metrics" >"$2/m1" || continue
		cp "$2/cw.jsonl" "$2/cw.snap"
		get "http://127.0.0.1:$1/metrics" >"$2/m2" || continue
		a=$(grep -E '^sgprobe_publish_(calls_total|sent_metrics_total|buffered_metrics)' "$2/m1")
		b=$(grep -E '^sgprobe_publish_(calls_total|sent_metrics_total|buffered_metrics)' "$2/m2")
		if [ "$a" = "$b" ] && [ "$(metric "$2/m2" sgprobe_publish_buffered_metrics)" = 0 ]; then
			echo "$(metric "$2/m2" 'sgprobe_publish_calls_total{result="ok"}')" \
				"$(metric "$2/m2" sgprobe_publish_sent_metrics_total)" \
				"$(($(metric "$2/m2" 'sgprobe_publish_calls_total{result="throttled"}') + \
				$(metric "$2/m2" 'sgprobe_publish_calls_total{result="error"}')))" \
				"$($python "$work/totals.py" "$2/cw.snap")" >"$2/counters"
			return 0
		fi
		sleep 0.2
	done
	die "the collector's publish counters did not hold still"
}

# sgprobe_run N K: the collector with N agents and K violating cells; writes
# $work/sg-N-K/result (KEY=VALUE lines) and counters.
sgprobe_run() {
	run="$work/sg-$1-$2"
	mkdir "$run"
	conns=$(($1 < 32 ? $1 : 32))
	"$python" "$standin" --listen 127.0.0.1:0 --ready-file "$run/cw.port" \
		--record "$run/cw.jsonl" --key "$akid:$aws_secret" --region us-east-1 \
		2>"$run/standin.log" &
	echo $! >"$work/standin.pid"
	i=0
	until [ -s "$run/cw.port" ]; do
		i=$((i + 1))
		[ $i -gt 100 ] && { cat "$run/standin.log" >&2; die "the CloudWatch stand-in did not start"; }
		sleep 0.1
	done
	cw=$(cat "$run/cw.port")
	P=$(free_port)
	A=$(free_port)
	env -u AWS_SESSION_TOKEN -u AWS_PROFILE -u AWS_CONTAINER_CREDENTIALS_RELATIVE_URI \
		-u AWS_CONTAINER_CREDENTIALS_FULL_URI -u AWS_CONTAINER_AUTHORIZATION_TOKEN \
		-u AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE -u AWS_EC2_METADATA_SERVICE_ENDPOINT \
		-u http_proxy -u https_proxy -u HTTP_PROXY -u HTTPS_PROXY -u ALL_PROXY -u all_proxy \
		AWS_EC2_METADATA_DISABLED=true AWS_ACCESS_KEY_ID=$akid AWS_SECRET_ACCESS_KEY="$aws_secret" \
		"$collector" --matrix "$work/matrix.json" --keys "$work/keys.json" \
		--listen "127.0.0.1:$P" --admin-listen "127.0.0.1:$A" \
		--metrics-sink cloudwatch --region us-east-1 --cloudwatch-endpoint "http://127.0.0.1:$cw/" \
		--flush-interval 1 --ecs-credentials-host 127.0.0.1:9 --imds-endpoint http://127.0.0.1:9 \
		2>"$run/collector.log" &
	echo $! >"$work/collector.pid"
	wait_up "http://127.0.0.1:$A/healthz" sgprobe-collector
	"$loadgen" sgprobe "http://127.0.0.1:$P/v1/reports" bench-1 "$secret" --agents "$1" \
		--connections $conns --seconds $load_seconds --violations "$2" \
		>"$run/loadgen.json" 2>"$run/loadgen.err" ||
		{ cat "$run/loadgen.err" >&2; die "loadgen sgprobe --agents $1 --violations $2 failed"; }
	since=$(date +%s.%N)
	sleep "$seconds"
	counters "$A" "$run"
	get "http://127.0.0.1:$A/metrics" >"$run/metrics"
	stop "$(cat "$work/collector.pid")"
	rm -f "$work/collector.pid"
	stop "$(cat "$work/standin.pid")"
	rm -f "$work/standin.pid"
	$python "$work/flushes.py" "$run/cw.jsonl" "$since" "$1" >"$run/result" ||
		die "sgprobe with $1 agents, $2 violations: no steady flushes to count"
	# The cells whose verdict has a per-cell metric, as the collector counts them.
	nonok=0
	for v in violation blocked no_listener tls_failed inconclusive unverified; do
		nonok=$((nonok + $(metric "$run/metrics" "sgprobe_cells{verdict=\"$v\"}")))
	done
	echo "nonok=$nonok" >>"$run/result"
	echo "reports=$(jq -r .ok "$run/loadgen.json")" >>"$run/result"
}

# peer_run N K: Pushgateway with the same N agents and K violating cells; writes
# $work/pg-N-K/result.
peer_run() {
	run="$work/pg-$1-$2"
	mkdir "$run"
	conns=$(($1 < 32 ? $1 : 32))
	G=$(free_port)
	# In memory, as the collector. The consistency check (which re-gathers every
	# group on every push, bench/ingest.sh) is off: it decides how fast pushes are
	# taken, not what is stored, and with it 1,000 agents take 40 s to push once.
	$pushgateway --web.listen-address="127.0.0.1:$G" --persistence.file= \
		--push.disable-consistency-check --log.level=warn 2>"$run/pushgateway.log" &
	echo $! >"$work/pushgateway.pid"
	wait_up "http://127.0.0.1:$G/-/ready" $pushgateway
	"$loadgen" pushgateway "http://127.0.0.1:$G" --agents "$1" --connections $conns \
		--seconds 1 --violations "$2" >"$run/loadgen.json" 2>"$run/loadgen.err" ||
		{ cat "$run/loadgen.err" >&2; die "loadgen pushgateway --agents $1 --violations $2 failed"; }
	# Without the check a push is answered before it is applied: wait for every group.
	i=0
	while :; do
		get "http://127.0.0.1:$G/metrics" >"$run/metrics" || die "$pushgateway /metrics failed"
		groups=$(grep -c '^sgprobe_report_seq{' "$run/metrics")
		[ "$groups" -eq "$1" ] && break
		i=$((i + 1))
		[ $i -gt 100 ] && die "$pushgateway holds $groups groups, not $1"
		sleep 0.1
	done
	stop "$(cat "$work/pushgateway.pid")"
	rm -f "$work/pushgateway.pid"
	series=$(grep '^sgprobe_probe_' "$run/metrics" | sed 's/} .*/}/' | sort -u | wc -l)
	opened=$(grep '^sgprobe_probe_state{' "$run/metrics" | grep 'expected="deny"' |
		grep -c 'state="open"')
	printf 'series=%s\ngroups=%s\nopened=%s\n' "$series" "$groups" "$opened" >"$run/result"
}

pgv=$($pushgateway --version 2>&1 | sed -n 's/^pushgateway, version \([^ ]*\).*/\1/p')
echo "publishing cost for $(echo $fleets | tr ' ' /) agents of role web (20 results each), clean and" \
	"with $violations violating cells: sgprobe-collector (PutMetricData to a CloudWatch stand-in," \
	"flush every 1 s, ${seconds} s of steady flushes a run) against Pushgateway $pgv (a series per result)"
echo "per hour at the default ${flush_default} s flush; the peer's calls = ceil(series / 1000)," \
	"PutMetricData's limit of 1,000 values a call"

status=0
out="$work/table"
fmt='%6s %-12s %7s %11s %12s %10s %10s %12s %12s %14s\n'
# shellcheck disable=SC2059
printf "$fmt" agents variant flushes calls/flush values/flush "sg calls/h" "sg metrics" \
	"peer calls/h" "peer metrics" "metrics ratio" >"$out"
for n in $fleets; do
	for k in 0 $violations; do
		sgprobe_run "$n" "$k"
		peer_run "$n" "$k"
	done
done

for n in $fleets; do
	for k in 0 $violations; do
		sg="$work/sg-$n-$k/result"
		calls_min=$(val "$sg" calls_min)
		calls_max=$(val "$sg" calls_max)
		values_min=$(val "$sg" values_min)
		values_max=$(val "$sg" values_max)
		distinct=$(val "$sg" distinct)
		series=$(val "$work/pg-$n-$k/result" series)
		if [ "$k" = 0 ]; then variant=clean; else variant="$k violating"; fi
		if [ "$calls_min" = "$calls_max" ]; then cpf=$calls_min; else cpf="$calls_min-$calls_max"; fi
		if [ "$values_min" = "$values_max" ]; then vpf=$values_min; else vpf="$values_min-$values_max"; fi
		pg_calls=$(((series + 999) / 1000))
		# shellcheck disable=SC2059
		printf "$fmt" "$n" "$variant" "$(val "$sg" flushes)" "$cpf" "$vpf" $((calls_max * flush_default)) \
			"$distinct" $((pg_calls * flush_default)) "$series" \
			"$(awk -v a="$series" -v b="$distinct" 'BEGIN { printf "%.1f", a / b }')" >>"$out"
	done
done
cat "$out"
echo "(sg: sgprobe-collector; peer: Pushgateway's sgprobe_probe_* series, one CloudWatch metric" \
	"each; calls/h = calls a flush x $((3600 / flush_default)) flushes; metrics ratio = peer / sg)"

echo "checks:"
for n in $fleets; do
	for k in 0 $violations; do
		run="$work/sg-$n-$k"
		sg="$run/result"
		pg="$work/pg-$n-$k/result"
		calls_max=$(val "$sg" calls_max)
		values_min=$(val "$sg" values_min)
		values_max=$(val "$sg" values_max)
		distinct=$(val "$sg" distinct)
		nonok=$(val "$sg" nonok)
		read -r c_calls c_sent c_other s_calls s_values <"$run/counters"
		base=$((8 + 2 * agent_roles))
		expect=$((base + nonok))
		ok=yes
		[ "$calls_max" = 1 ] && [ "$distinct" = "$expect" ] && [ "$values_min" = "$distinct" ] &&
			[ "$values_max" = "$distinct" ] && [ "$(val "$sg" cell_violation)" = "$k" ] || ok=no
		echo "  $n agents, $k violating: sgprobe $distinct metrics = 8 + 2 x $agent_roles agent" \
			"roles + $nonok non-ok cells ($(val "$sg" cells)) = $expect, all in every flush, in 1" \
			"call: $ok ($(val "$sg" reports) reports); pushgateway: $(val "$pg" groups) groups," \
			"$(val "$pg" opened) denied paths open"
		[ "$ok" = yes ] || status=1
		if [ "$c_calls" != "$s_calls" ] || [ "$c_sent" != "$s_values" ] || [ "$c_other" != 0 ]; then
			echo "  *** MISMATCH: collector sgprobe_publish_calls_total{ok} $c_calls (other results" \
				"$c_other), sgprobe_publish_sent_metrics_total $c_sent; the stand-in recorded" \
				"$s_calls calls, $s_values values ***"
			status=1
		else
			echo "    collector's counters = stand-in's records: $c_calls calls, $c_sent values: yes"
		fi
	done
	d0=$(val "$work/sg-$n-0/result" distinct)
	d1=$(val "$work/sg-$n-$violations/result" distinct)
	echo "  $n agents: $violations violating cells add $((d1 - d0)) distinct metrics"
	[ $((d1 - d0)) = "$violations" ] || status=1
done
exit $status
