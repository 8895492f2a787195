#!/bin/sh
# Benchmark: ingest throughput. sgprobe-collector takes distinct, signed reports
# of 20 results each from 500 simulated agents over 32 keep-alive connections;
# then, in the same run and with the same concurrency, Prometheus Pushgateway
# takes the same results in its text format, one grouping key per agent. The
# server runs on CPU 0 and the load generator (build/loadgen) on CPU 1.
# Prints both rates, the ratio, each side's CPU use, the collector's RSS over
# the run (sampled every second) and its peak, and checks that the collector
# counted as accepted exactly what the generator saw accepted.
#
#   sh bench/ingest.sh BUILD_DIR [SECONDS]
#
# Installs nothing: scripts/deps.sh (make deps) installs prometheus-pushgateway.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build}
seconds=${2:-60}
collector="$top/$build/sgprobe-collector"
loadgen="$top/$build/loadgen"
pushgateway=prometheus-pushgateway
connections=32
agents=500
results=20
work=$(mktemp -d /tmp/sgprobe-ingest.XXXXXX)

cleanup() {
	for f in "$work"/*.pid; do
		[ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null
	done
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

die() {
	echo "bench: $*" >&2
	exit 1
}
[ -x "$collector" ] || die "$collector is missing (make)"
[ -x "$loadgen" ] || die "$loadgen is missing (make $build/loadgen)"
command -v $pushgateway >/dev/null || die "$pushgateway is missing (sh scripts/deps.sh)"

# The server gets CPU 0 and the generator CPU 1, so that neither steals from the
# other; on a single CPU both share it.
if [ "$(nproc)" -ge 2 ]; then
	server_cpu="taskset -c 0"
	client_cpu="taskset -c 1"
else
	server_cpu=""
	client_cpu=""
fi
hz=$(getconf CLK_TCK)

free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# The plan of role web is the 20 results loadgen sends (bench/loadgen.c):
# allowed paths open, denied ones filtered.
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
secret=$(od -An -tx1 -N24 /dev/urandom | tr -d ' \n')
printf '%s\n' "$secret" >"$work/bench.secret"
cat >"$work/keys.json" <<'EOF'
{ "keys": [ { "id": "bench-1", "secret_file": "bench.secret", "roles": ["web"] } ] }
EOF

# cpu PID: user + system CPU time of PID so far, in clock ticks.
cpu() {
	awk '{ print $14 + $15 }' "/proc/$1/stat"
}

# sample_rss PID FILE: appends PID's VmRSS (KiB) to FILE every second while it lives.
sample_rss() {
	while [ -r "/proc/$1/status" ]; do
		while read -r k v _; do
			[ "$k" = VmRSS: ] && echo "$v" >>"$2"
		done <"/proc/$1/status"
		sleep 1
	done
}

# wait_up URL NAME: waits up to 10 s for URL to answer.
wait_up() {
	i=0
	until curl -sf -o /dev/null "$1"; do
		i=$((i + 1))
		[ $i -gt 100 ] && die "$2 did not start"
		sleep 0.1
	done
}

# load NAME PID ARGS...: runs the generator against server PID, sampling its RSS;
# writes NAME.json (the generator's summary), NAME.rss and NAME.cpu (server CPU s).
load() {
	name=$1
	pid=$2
	shift 2
	: >"$work/$name.rss"
	sample_rss "$pid" "$work/$name.rss" &
	echo $! >"$work/sampler.pid"
	c0=$(cpu "$pid")
	$client_cpu "$loadgen" "$@" --connections $connections --seconds "$seconds" \
		--agents $agents --results $results >"$work/$name.json" 2>"$work/$name.err"
	c1=$(cpu "$pid")
	kill "$(cat "$work/sampler.pid")" 2>/dev/null
	wait "$(cat "$work/sampler.pid")" 2>/dev/null
	rm -f "$work/sampler.pid"
	[ -s "$work/$name.json" ] || { cat "$work/$name.err" >&2; die "loadgen $name failed"; }
	echo $((c1 - c0)) "$hz" | awk '{ printf "%.2f\n", $1 / $2 }' >"$work/$name.cpu"
}

hwm() {
	awk '/^VmHWM:/ { print $2 }' "/proc/$1/status"
}

# --- sgprobe-collector -------------------------------------------------------------
P=$(free_port)
A=$(free_port)
$server_cpu "$collector" --matrix "$work/matrix.json" --keys "$work/keys.json" \
	--listen "127.0.0.1:$P" --admin-listen "127.0.0.1:$A" 2>"$work/collector.log" &
echo $! >"$work/collector.pid"
cpid=$(cat "$work/collector.pid")
wait_up "http://127.0.0.1:$A/healthz" sgprobe-collector
load sg "$cpid" sgprobe "http://127.0.0.1:$P/v1/reports" bench-1 "$secret"
sg_hwm=$(hwm "$cpid")
curl -s "http://127.0.0.1:$A/metrics" >"$work/metrics"
kill "$cpid"
wait "$cpid" 2>/dev/null
rm -f "$work/collector.pid"

# --- Prometheus Pushgateway -----------------------------------------------------------
# In memory only, as the collector: no persistence file.
G=$(free_port)
$server_cpu $pushgateway --web.listen-address="127.0.0.1:$G" --persistence.file= \
	--log.level=warn 2>"$work/pushgateway.log" &
echo $! >"$work/pushgateway.pid"
gpid=$(cat "$work/pushgateway.pid")
wait_up "http://127.0.0.1:$G/-/ready" $pushgateway
load pg "$gpid" pushgateway "http://127.0.0.1:$G"
pg_hwm=$(hwm "$gpid")
pg_groups=$(curl -s "http://127.0.0.1:$G/metrics" | grep -c '^sgprobe_report_seq{')
kill "$gpid"
wait "$gpid" 2>/dev/null
rm -f "$work/pushgateway.pid"

# --- figures -----------------------------------------------------------------------------
field() { jq -r ".$2" "$work/$1.json"; }
sg_rate=$(field sg rate)
pg_rate=$(field pg rate)
sg_ok=$(field sg ok)
accepted=$(awk '$1 == "sgprobe_reports_accepted_total" { print $2 }' "$work/metrics")
unknown=$(awk '$1 == "sgprobe_cells{verdict=\"unknown\"}" { print $2 }' "$work/metrics")
observations=$(awk '$1 == "sgprobe_observations" { print $2 }' "$work/metrics")
pgv=$($pushgateway --version 2>&1 | sed -n 's/^pushgateway, version \([^ ]*\).*/\1/p')

echo "ingest for ${seconds} s: reports of $results results from $agents agents over $connections" \
	"keep-alive connections; server on CPU 0, loadgen on CPU 1 (pushgateway $pgv)"
printf '%-12s %10s %9s %9s %7s %9s %11s %12s %15s\n' "" reports/s requests ok errors connects \
	"server CPU" "loadgen CPU" "peak RSS (KiB)"
for n in sg pg; do
	if [ $n = sg ]; then label=sgprobe rss=$sg_hwm; else label=pushgateway rss=$pg_hwm; fi
	s=$(field $n seconds)
	printf '%-12s %10s %9s %9s %7s %9s %10.0f%% %11.0f%% %15s\n' $label "$(field $n rate)" \
		"$(field $n requests)" "$(field $n ok)" "$(field $n errors)" "$(field $n connects)" \
		"$(awk -v c="$(cat "$work/$n.cpu")" -v s="$s" 'BEGIN { print 100 * c / s }')" \
		"$(awk -v c="$(field $n cpu_s)" -v s="$s" 'BEGIN { print 100 * c / s }')" "$rss"
done
awk -v a="$sg_rate" -v b="$pg_rate" \
	'BEGIN { printf "ratio        %10.1f   (sgprobe / pushgateway; goal >= 10)\n", (b > 0 ? a / b : 0) }'

# RSS flat: the last sample within 10 % of the one at 10 s (or mid-run for short runs).
ref=10
[ "$seconds" -lt 20 ] && ref=$((seconds / 2))
awk -v ref=$ref '{ v[NR] = $1; if ($1 > max) max = $1 }
	END {
		r = v[ref + 1] ? v[ref + 1] : v[NR]
		flat = v[NR] <= 1.1 * r ? "yes" : "no"
		printf "collector RSS (KiB), %d samples 1 s apart: first %d, at %d s %d, max %d, last %d; flat (last <= 1.1 x at %d s): %s\n",
			NR, v[1], ref, r, max, v[NR], ref, flat
	}' "$work/sg.rss" | tee "$work/flat"
echo "collector state at the end: $observations observations, ${unknown:-?} unknown cells;" \
	"pushgateway: $pg_groups groups"
if [ "$accepted" = "$sg_ok" ]; then same=yes; else same=no; fi
echo "collector accepted = loadgen ok: $accepted = $sg_ok: $same"
[ "$same" = yes ] && [ "$(field sg errors)" = 0 ] && [ "$(field pg errors)" = 0 ]
