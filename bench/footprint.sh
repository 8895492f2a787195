#!/bin/sh
# Benchmark: the sidecar's footprint in steady state. sgprobe-agent runs as a
# daemon in the AFIRGen lab's main-backend namespace, probing that role's plan
# every second (--interval-s 1) and pushing a signed report of each round to a
# sgprobe-collector in the lab's collector namespace, as a sidecar does; in
# the same namespace and at the same time, Prometheus blackbox_exporter probes
# the same targets at the same rate, driven by a scraper that requests
# /probe?module=...&target=HOST:PORT for every target once a second. After a
# warm-up, both processes are measured for SECONDS: peak RSS (VmHWM), anonymous
# memory (RssAnon, sampled every second: max and last) and CPU time
# (utime + stime). Prints both, the ratios, whether each goal is met, and how
# many probes each side did in the window.
#
#   sh bench/footprint.sh BUILD_DIR [SECONDS]
#
# Brings up its own lab (SGPROBE_LAB_PREFIX=sgpfoot) and removes it at the end.
# Installs nothing: scripts/deps.sh (make deps) installs prometheus-blackbox-exporter.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build}
seconds=${2:-60}
warmup=5
agent="$top/$build/sgprobe-agent"
collector="$top/$build/sgprobe-collector"
blackbox=prometheus-blackbox-exporter
matrix="$top/examples/afirgen.matrix.json"
role=main-backend
timeout_ms=500
bb_port=9115
export SGPROBE_LAB_PREFIX=sgpfoot
lab="$top/tests/lab/lab.sh"
work=$(mktemp -d /tmp/sgprobe-footprint.XXXXXX)

cleanup() {
	for f in "$work"/*.pid; do
		[ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null
	done
	sleep 0.2
	"$lab" down >/dev/null 2>&1
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

die() {
	echo "bench: $*" >&2
	exit 1
}
[ -x "$agent" ] || die "$agent is missing (make)"
[ -x "$collector" ] || die "$collector is missing (make)"
command -v $blackbox >/dev/null || die "$blackbox is missing (sh scripts/deps.sh)"

"$lab" up >"$work/lab.log" 2>&1 || { cat "$work/lab.log" >&2; die "lab.sh up failed"; }
addr=$("$lab" addr $role)
ca=$("$lab" ca)
hz=$(getconf CLK_TCK)

# The collector takes the place of the collector host's stand-in listener, with
# a key for this one agent (the secret stays in $work).
caddr=$("$lab" addr sgprobe-collector)
"$lab" stop sgprobe-collector
openssl rand -hex 24 | tr -d '\n' >"$work/agent.secret"
printf '{"keys": [{"id": "bench", "secret_file": "agent.secret", "roles": ["%s"]}]}\n' $role \
	>"$work/keys.json"
"$lab" exec sgprobe-collector "$collector" --matrix "$matrix" --keys "$work/keys.json" \
	--listen "$caddr:9443" --admin-listen 127.0.0.1:9090 >"$work/collector.out" \
	2>"$work/collector.log" &
echo $! >"$work/collector.pid"
i=0
until "$lab" exec sgprobe-collector "$collector" health --admin-listen 127.0.0.1:9090 2>/dev/null; do
	i=$((i + 1))
	[ $i -gt 100 ] && { cat "$work/collector.log" >&2; die "the collector did not start"; }
	sleep 0.1
done
accepted() {
	"$lab" exec sgprobe-collector curl -sf http://127.0.0.1:9090/metrics |
		awk '$1 == "sgprobe_reports_accepted_total" { print $2 }'
}

# The plan's targets, less those that resolve (in the namespace) to the agent's
# own address, as the agent skips them. A target keeps its own interval when it
# has one other than the plan's (allowed_interval_s), as the agent does; all
# others are probed every second.
"$collector" plan --matrix "$matrix" --role $role >"$work/plan.json" || die "no plan"
jq -r '.interval_s as $d | .targets[] | select(.probe)
	| "\(.target) \(.port) \(.tls) \(if .interval_s == $d then 1 else .interval_s end)"' \
	"$work/plan.json" >"$work/plan.tsv"
"$lab" exec $role python3 - "$addr" "$work/plan.tsv" >"$work/targets" <<'PY' || die "cannot resolve the plan's targets"
import socket, sys
own = sys.argv[1]
for line in open(sys.argv[2]):
    host, port, tls, iv = line.split()
    addrs = {a[4][0] for a in socket.getaddrinfo(host, int(port), socket.AF_INET, socket.SOCK_STREAM)}
    if own in addrs:
        continue
    print(host, port, tls, iv)
PY
n_targets=$(wc -l <"$work/targets")
[ "$n_targets" -gt 0 ] || die "no targets"

# blackbox_exporter: TCP connect with the agent's timeout; TLS (verified against
# the lab CA) where the plan asks for it.
cat >"$work/blackbox.yml" <<EOF
modules:
  tcp_connect:
    prober: tcp
    timeout: ${timeout_ms}ms
    tcp:
      preferred_ip_protocol: ip4
  tls_connect:
    prober: tcp
    timeout: ${timeout_ms}ms
    tcp:
      preferred_ip_protocol: ip4
      tls: true
      tls_config:
        ca_file: $ca
EOF

# The scraper: every second, every target that is due, all in parallel; one
# line per answered request ("code success seconds") to scrape.log.
cat >"$work/scraper.py" <<'PY'
import sys, time, urllib.request
from concurrent.futures import ThreadPoolExecutor
port, targets_file, log_file = sys.argv[1], sys.argv[2], sys.argv[3]
targets = []
for line in open(targets_file):
    host, p, tls, iv = line.split()
    module = "tls_connect" if tls == "true" else "tcp_connect"
    targets.append((f"http://127.0.0.1:{port}/probe?module={module}&target={host}:{p}", int(iv)))
log = open(log_file, "w", buffering=1)

def scrape(url):
    t0 = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            body = r.read().decode()
            code = r.status
    except Exception as e:
        log.write(f"error 0 0 {e}\n")
        return
    ok = "1" if "\nprobe_success 1" in "\n" + body else "0"
    log.write(f"{code} {ok} {time.monotonic() - t0:.3f}\n")

pool = ThreadPoolExecutor(max_workers=2 * len(targets))
start = time.monotonic()
tick = 0
while True:
    for url, iv in targets:
        if tick % iv == 0:
            pool.submit(scrape, url)
    tick += 1
    time.sleep(max(0.0, start + tick - time.monotonic()))
PY

# --- start both, in the same namespace ---------------------------------------------------
SGPROBE_KEY=$(cat "$work/agent.secret") "$lab" exec $role "$agent" \
	--collector "http://collector.afirgen.internal:9443" --key-id bench --agent-id bench \
	--role $role --agent-address "$addr" \
	--interval-s 1 --timeout-ms $timeout_ms --rate 0 --per-host 0 --probe-ca-file "$ca" \
	>"$work/agent.out" 2>"$work/agent.log" &
echo $! >"$work/agent.pid"
"$lab" exec $role $blackbox --config.file="$work/blackbox.yml" \
	--web.listen-address="127.0.0.1:$bb_port" --log.level=warn \
	>"$work/blackbox.out" 2>"$work/blackbox.log" &
echo $! >"$work/blackbox.pid"
apid=$(cat "$work/agent.pid")
bpid=$(cat "$work/blackbox.pid")
i=0
until "$lab" exec $role curl -sf -o /dev/null "http://127.0.0.1:$bb_port/-/healthy"; do
	i=$((i + 1))
	[ $i -gt 100 ] && { cat "$work/blackbox.log" >&2; die "blackbox_exporter did not start"; }
	sleep 0.1
done
"$lab" exec $role python3 "$work/scraper.py" $bb_port "$work/targets" "$work/scrape.log" \
	2>"$work/scraper.err" &
echo $! >"$work/scraper.pid"
sleep $warmup
for p in $apid $bpid; do
	[ -r "/proc/$p/status" ] || { cat "$work/agent.log" "$work/blackbox.log" >&2; die "pid $p died"; }
done

# --- measure ------------------------------------------------------------------------------
cpu() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
status() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }
# window FILE L0 L1: lines L0+1..L1 of FILE (what was logged during the window).
window() { sed -n "$(($2 + 1)),$3p" "$1"; }
lines() { wc -l <"$1"; }

a0=$(cpu "$apid")
b0=$(cpu "$bpid")
r0=$(accepted)
al0=$(lines "$work/agent.log")
sl0=$(lines "$work/scrape.log")
: >"$work/anon"
s=0
while [ $s -lt "$seconds" ]; do
	sleep 1
	s=$((s + 1))
	echo "$(status "$apid" RssAnon) $(status "$bpid" RssAnon)" >>"$work/anon"
done
a1=$(cpu "$apid")
b1=$(cpu "$bpid")
r1=$(accepted)
al1=$(lines "$work/agent.log")
sl1=$(lines "$work/scrape.log")
a_hwm=$(status "$apid" VmHWM)
b_hwm=$(status "$bpid" VmHWM)
a_rss=$(status "$apid" VmRSS)
b_rss=$(status "$bpid" VmRSS)
# The agent's probes: the results of its "round" lines; the scraper's: its answered requests.
window "$work/agent.log" "$al0" "$al1" | jq -r 'select(.msg == "round") | "\(.results) \(.open)"' \
	>"$work/rounds"
window "$work/scrape.log" "$sl0" "$sl1" >"$work/scrapes"
rounds=$(lines "$work/rounds")
ap=$(awk '{ s += $1 } END { print s + 0 }' "$work/rounds")
a_open=$(awk '{ s += $2 } END { print s + 0 }' "$work/rounds")
bp=$(lines "$work/scrapes")
b_open=$(awk '$2 == 1' "$work/scrapes" | wc -l)
bad=$(awk '$1 != 200' "$work/scrapes" | wc -l)
every_s=$(awk '$4 == 1' "$work/targets" | wc -l)
bbv=$($blackbox --version 2>&1 | sed -n 's/^blackbox_exporter, version \([^ ]*\).*/\1/p')

# --- figures ------------------------------------------------------------------------------
awk -v n="$n_targets" -v s="$seconds" -v w=$warmup -v hz="$hz" -v bbv="$bbv" \
	-v a0="$a0" -v a1="$a1" -v b0="$b0" -v b1="$b1" -v ah="$a_hwm" -v bh="$b_hwm" \
	-v ar="$a_rss" -v br="$b_rss" -v ap="$ap" -v bp="$bp" -v n1="$every_s" '
	{ ax = $1 > ax ? $1 : ax; bx = $2 > bx ? $2 : bx; al = $1; bl = $2 }
	END {
		ac = (a1 - a0) / hz; bc = (b1 - b0) / hz
		printf "sidecar footprint over %d s (after %d s of warm-up): role main-backend of the AFIRGen lab, %d targets (%d every 1 s, the rest at their own interval), timeout 500 ms (blackbox_exporter %s)\n", s, w, n, n1, bbv
		printf "%-16s %14s %15s %15s %9s %8s %13s\n", "", "peak RSS (KiB)", "RssAnon max", "RssAnon last", "CPU (s)", "probes", "CPU/1k probes"
		printf "%-16s %14d %15d %15d %9.2f %8d %12.3fs\n", "sgprobe-agent", ah, ax, al, ac, ap, ap ? 1000 * ac / ap : 0
		printf "%-16s %14d %15d %15d %9.2f %8d %12.3fs\n", "blackbox_exporter", bh, bx, bl, bc, bp, bp ? 1000 * bc / bp : 0
		rr = ah / bh; ra = ax / bx; rc = bc > 0 ? ac / bc : 0
		printf "%-16s %14.2f %15.2f %15s %9.3f   (sgprobe / blackbox_exporter)\n", "ratio", rr, ra, "", rc
		printf "goal peak RSS <= 0.6x:   %.2f  %s\n", rr, rr <= 0.6 ? "met" : "MISSED"
		printf "goal RssAnon <= 0.5x:    %.2f  %s\n", ra, ra <= 0.5 ? "met" : "MISSED"
		printf "goal CPU time <= 0.2x:   %.3f %s\n", rc, rc <= 0.2 ? "met" : "MISSED"
		printf "goal RssAnon < 4 MiB:    %d KiB  %s\n", ax, ax < 4096 ? "met" : "MISSED"
		printf "probes in the window: agent %d (%.1f/s), scraper %d (%.1f/s); %d targets x %d s = %d\n", ap, ap / s, bp, bp / s, n1, s, n1 * s
	}' "$work/anon"
pushed=$((${r1:-0} - ${r0:-0}))
echo "agent: $rounds rounds, $a_open results open, $pushed reports accepted by the collector; scraper: $b_open with probe_success 1, $bad requests failed"
[ "$ap" -gt 0 ] && [ "$bp" -gt 0 ] && [ "$bad" = 0 ] && [ "$pushed" -gt 0 ]
