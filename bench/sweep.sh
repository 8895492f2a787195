#!/bin/sh
# Benchmark: a sweep of 10,000 loopback ports (one in ten listening) by
# sgprobe-agent --once and by nmap -sT, in the same run, in a fresh network
# namespace. Prints both wall times, both peak RSS (GNU time), the ratios, and
# whether the two classified every port alike.
#
#   sh bench/sweep.sh BUILD_DIR [ROUNDS]
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build}
rounds=${2:-3}
agent="$top/$build/sgprobe-agent"
ns=sgpbench
first=20000
last=29999
work=$(mktemp -d /tmp/sgprobe-bench.XXXXXX)

cleanup() {
	[ -f "$work/listen.pid" ] && kill "$(cat "$work/listen.pid")" 2>/dev/null
	ip netns del $ns 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT INT TERM
ip netns del $ns 2>/dev/null
ip netns add $ns
ip -n $ns link set lo up
ulimit -n "$(ulimit -Hn)"

ip netns exec $ns python3 "$top/bench/listen.py" 127.0.0.1 $first $last 10 >"$work/listen.out" &
echo $! >"$work/listen.pid"
i=0
until [ -s "$work/listen.out" ]; do
	i=$((i + 1))
	[ $i -gt 100 ] && { echo "bench: the listener did not start" >&2; exit 1; }
	sleep 0.1
done

python3 - "$work/matrix.json" $first $last <<'PY'
import json, sys
path, first, last = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
json.dump({"version": 1, "name": "bench", "probe": {"ports": [], "timeout_ms": 1000},
           "roles": {"bench": {"endpoints": ["127.0.0.2"], "ports": [], "agent": True},
                     "target": {"endpoints": ["127.0.0.1"],
                                "ports": list(range(first, last + 1)), "agent": False}},
           "allow": []}, open(path, "w"))
PY

# measure NAME CMD...: runs CMD under GNU time, prints "wall_s peak_rss_kib".
# The wall time is taken around it with nanosecond resolution (GNU time's %e
# has 10 ms, too coarse for runs of a fifth of a second).
measure() {
	name=$1
	shift
	t0=$(date +%s%N)
	/usr/bin/time -q -f '%M' -o "$work/$name.time" "$@" >"$work/$name.out" 2>"$work/$name.err"
	t1=$(date +%s%N)
	echo "$(((t1 - t0) / 1000000)) $(cat "$work/$name.time")" |
		awk '{ printf "%.3f %s\n", $1 / 1000, $2 }'
}

best() { sort -n | head -1; }
: >"$work/sg.runs"
: >"$work/nm.runs"
r=0
while [ $r -lt "$rounds" ]; do
	r=$((r + 1))
	measure sg ip netns exec $ns "$agent" --once --matrix "$work/matrix.json" --role bench \
		--rate 0 --per-host 0 --concurrency 1024 --format json >>"$work/sg.runs"
	measure nm ip netns exec $ns nmap -sT -Pn -n -T5 --max-retries 0 -p $first-$last \
		127.0.0.1 -oG - >>"$work/nm.runs"
done

# Identical classification: open and closed as such, everything else filtered.
jq -r '.results[] | "\(.port) \(if .state == "open" or .state == "closed" then .state else "filtered" end)"' \
	"$work/sg.out" | sort >"$work/sg.class"
sed -n 's/.*Ports: //p' "$work/nm.out" | tr ',' '\n' | sed 's/^ *//' | awk -F/ 'NF > 2 {print $1, $2}' \
	| sort >"$work/nm.class"
# nmap folds the ports it found closed into "Ignored State: closed (N)".
ignored=$(sed -n 's/.*Ignored State: \([a-z]*\) .*/\1/p' "$work/nm.out")
if [ -n "$ignored" ]; then
	seq $first $last | sort >"$work/all"
	cut -d' ' -f1 "$work/nm.class" | sort >"$work/listed"
	comm -23 "$work/all" "$work/listed" | sed "s/\$/ $ignored/" >>"$work/nm.class"
	sort -o "$work/nm.class" "$work/nm.class"
fi
if cmp -s "$work/sg.class" "$work/nm.class"; then same=yes; else same=no; fi

sg_wall=$(awk '{print $1}' "$work/sg.runs" | best)
nm_wall=$(awk '{print $1}' "$work/nm.runs" | best)
sg_rss=$(awk '{print $2}' "$work/sg.runs" | best)
nm_rss=$(awk '{print $2}' "$work/nm.runs" | best)
open=$(grep -c ' open$' "$work/sg.class")
closed=$(grep -c ' closed$' "$work/sg.class")
echo "sweep of $((last - first + 1)) loopback ports ($open open, $closed closed), best of $rounds runs"
printf '%-10s %10s %14s\n' "" "wall (s)" "peak RSS (KiB)"
printf '%-10s %10s %14s\n' sgprobe "$sg_wall" "$sg_rss"
printf '%-10s %10s %14s\n' nmap "$nm_wall" "$nm_rss"
awk -v a="$sg_wall" -v b="$nm_wall" -v c="$sg_rss" -v d="$nm_rss" \
	'BEGIN { printf "ratio      %10.2f %14.2f   (sgprobe / nmap; goals <= 1.00 and <= 0.75)\n", a / b, c / d }'
echo "identical classification: $same"
[ "$same" = yes ]
