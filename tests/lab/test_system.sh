#!/bin/bash
# The whole system in the AFIRGen lab (tests/lab/lab.sh), running: the collector
# in the collector's namespace, one daemon agent in every agent role's
# namespace at a 1 s interval, and the matrix view watched while the lab
# changes under it:
#   1. baseline: every cell ok, unverified or unobserved; all six agents live;
#   2. nftables rules opening gguf-model-server → rds-mysql:3306, added live:
#      that cell turns violation within two intervals;
#   3. nginx → main-backend:8000 dropped live: that cell turns blocked;
#   4. an agent SIGKILLed: its cells and the agent go stale after ~3 intervals;
#   5. an agent SIGTERMed: it exits 0 within its stop timeout, and the
#      collector forgets it;
#   6. the collector stopped for several intervals and restarted: every queued
#      report arrives (sent = accepted + duplicates, counted on both sides).
# Every wait is bounded: the matrix view is polled every 0.5 s up to a limit.
. "$(dirname "$0")/../lib.sh"
set -u

export SGPROBE_LAB_PREFIX=sgpsys
export LABD="$labd"
lab="$top/tests/lab/lab.sh"
collector="$build/sgprobe-collector"
work=$(mktemp -d /tmp/sgprobe-system.XXXXXX)
interval=1
# The shipped matrix as it is: the agents run at the lab's interval, and the
# collector judges staleness by the interval they report (a path keeps a longer
# one of its own only through allowed_interval_s).
matrix="$top/examples/afirgen.matrix.json"
agents=$(jq -r '.roles | to_entries[] | select(.value.agent) | .key' "$matrix")
cpid=""
declare -A apid=()

cleanup() {
	local p
	for p in "${apid[@]}" $cpid; do
		kill -KILL "$p" 2>/dev/null
	done
	"$lab" down >/dev/null 2>&1
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# wait_until SECONDS CMD...: runs CMD every 0.5 s until it succeeds or the time
# is up; $waited_ms is how long it took.
wait_until() {
	local limit=$(($1 * 1000)) start
	shift
	start=$(now_ms)
	while :; do
		if "$@"; then
			waited_ms=$(($(now_ms) - start))
			return 0
		fi
		waited_ms=$(($(now_ms) - start))
		[ "$waited_ms" -ge "$limit" ] && return 1
		sleep 0.5
	done
}

# view: the collector's matrix view, into $work/view.json.
view() {
	"$lab" exec sgprobe-collector curl -s --max-time 2 http://127.0.0.1:9090/v1/matrix \
		>"$work/view.json.tmp" 2>/dev/null && jq -e . "$work/view.json.tmp" >/dev/null 2>&1 &&
		mv "$work/view.json.tmp" "$work/view.json"
}
# vq JQ: a query on the last view.
vq() { jq -r "$1" "$work/view.json"; }
# cell SRC DST PORT: the verdict of one cell in the last view.
cell() {
	vq ".cells[] | select(.src_role == \"$1\" and .dst_role == \"$2\" and .port == $3) | .verdict"
}
metric() {
	"$lab" exec sgprobe-collector curl -s --max-time 2 http://127.0.0.1:9090/metrics |
		awk -v m="$1" '$1 == m { print $2 }'
}

# start_collector LOG: in the collector's namespace on its lab address; waits
# (bounded) until its admin listener answers.
start_collector() {
	setsid ip netns exec "$cns" "$collector" --matrix "$matrix" --keys "$work/keys.json" \
		--listen "$caddr:9443" --admin-listen 127.0.0.1:9090 </dev/null >>"$1" 2>&1 &
	cpid=$!
	for _ in $(seq 50); do
		ip netns exec "$cns" "$collector" health --admin-listen 127.0.0.1:9090 \
			>/dev/null 2>&1 && return 0
		sleep 0.1
	done
	return 1
}
# stop_collector: SIGTERM; sets stop_rc to its exit status.
stop_collector() {
	kill -TERM "$cpid" 2>/dev/null
	wait "$cpid"
	stop_rc=$?
	cpid=""
}

# start_agent ROLE: the daemon, in ROLE's namespace, in its own session.
start_agent() {
	local role=$1
	SGPROBE_KEY=$(cat "$work/$role.secret") setsid "$lab" exec "$role" "$agent" \
		--collector http://collector.afirgen.internal:9443 --role "$role" \
		--agent-address "$("$lab" addr "$role")" --agent-id "$role.lab" \
		--interval-s "$interval" --timeout-ms 500 --stop-timeout-s 5 --key-id "$role" \
		--probe-ca-file "$("$lab" ca)" --health-file "$work/$role.health.json" \
		</dev/null 2>"$work/$role.log" >"$work/$role.out" &
	apid[$role]=$!
}
# stop_agent ROLE: SIGTERM, waits at most 5.5 s (--stop-timeout-s 5, and half a
# second for the process to end); sets stop_rc ("timeout" if it did not exit)
# and stop_ms.
stop_agent() {
	local pid=${apid[$1]} start
	start=$(now_ms)
	kill -TERM "$pid"
	for _ in $(seq 55); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		kill -KILL "$pid"
		wait "$pid" 2>/dev/null
		stop_rc=timeout
	else
		wait "$pid"
		stop_rc=$?
	fi
	stop_ms=$(($(now_ms) - start))
	unset "apid[$1]"
}
# health ROLE FIELD: one field of the agent's health file.
health() { jq -r ".$2" "$work/$1.health.json" 2>/dev/null; }

# nft_insert ROLE CHAIN RULE...: inserts RULE at the top of CHAIN of ROLE's
# table; prints the new rule's handle.
nft_insert() {
	local role=$1 chain=$2
	shift 2
	"$lab" exec "$role" nft -e -a insert rule inet sgprobe_lab "$chain" "$@" |
		sed -n 's/.*# handle \([0-9][0-9]*\).*/\1/p' | head -n 1
}
nft_delete() {
	"$lab" exec "$1" nft delete rule inet sgprobe_lab "$2" handle "$3"
}

# --- the lab, the collector, the agents -----------------------------------------------
t0=$(now_ms)
if ! "$lab" up >"$work/up.log" 2>&1; then
	not_ok "the lab comes up" "$(tail -20 "$work/up.log")"
	done_testing
	exit 1
fi
ok "the lab comes up"

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

cns=$("$lab" ns sgprobe-collector)
caddr=$("$lab" addr sgprobe-collector)
"$lab" stop sgprobe-collector
if start_collector "$work/collector.log"; then
	ok "the collector serves in its namespace on $caddr:9443"
else
	not_ok "the collector serves in its namespace on $caddr:9443" "$(tail -5 "$work/collector.log")"
	done_testing
	exit 1
fi
for role in $agents; do
	start_agent "$role"
done
n_agents=$(echo "$agents" | wc -w)

# --- 1. baseline -----------------------------------------------------------------------
all_live() {
	[ "$(vq "[.agents[] | select(.state == \"live\" and (.id | endswith(\".lab\")))] | length")" = "$n_agents" ]
}
bad_cells() {
	vq '[.cells[] | select(.verdict != "ok" and .verdict != "unverified" and
		.verdict != "unobserved") | "\(.src_role) -> \(.dst_role):\(.port) \(.verdict)"] | join(", ")'
}
# Every agent has reported its plan once and nothing needs attention.
baseline() {
	view && all_live && [ -z "$(bad_cells)" ] &&
		[ "$(vq '[.cells[] | select(.verdict == "ok")] | length')" -gt 0 ] &&
		for role in $agents; do
			[ "$(health "$role" rounds)" -ge 2 ] 2>/dev/null || return 1
		done
}
if wait_until 10 baseline; then
	ok "baseline: every cell ok, unverified or unobserved; all $n_agents agents live (${waited_ms} ms)"
else
	not_ok "baseline: every cell ok, unverified or unobserved; all $n_agents agents live" \
		"agents: $(vq '[.agents[] | "\(.id) \(.state)"] | join(", ")' 2>/dev/null); cells: $(bad_cells 2>/dev/null)"
fi
eq "baseline: nginx -> main-backend:8000 is ok" "$(cell nginx main-backend 8000)" ok
eq "baseline: gguf-model-server -> rds-mysql:3306 is ok or unverified" \
	"$(cell gguf-model-server rds-mysql 3306 | sed 's/^unverified$/ok/')" ok

# --- 2. a live hole: gguf-model-server → rds-mysql:3306 --------------------------------
gguf_addr=$("$lab" addr gguf-model-server)
rds_addr=$("$lab" addr rds-mysql)
cell_is() { view && [ "$(cell "$1" "$2" "$3")" = "$4" ]; }
h_out=$(nft_insert gguf-model-server output ip daddr "$rds_addr" tcp dport 3306 accept)
h_in=$(nft_insert rds-mysql input ip saddr "$gguf_addr" tcp dport 3306 accept)
if [ -n "$h_out" ] && [ -n "$h_in" ]; then
	ok "nft: gguf-model-server -> rds-mysql:3306 opened live"
else
	not_ok "nft: gguf-model-server -> rds-mysql:3306 opened live" "handles '$h_out' '$h_in'"
fi
if wait_until $((2 * interval + 1)) cell_is gguf-model-server rds-mysql 3306 violation; then
	ok "opened: gguf-model-server -> rds-mysql:3306 turns violation within two intervals (${waited_ms} ms)"
else
	not_ok "opened: gguf-model-server -> rds-mysql:3306 turns violation within two intervals" \
		"still $(cell gguf-model-server rds-mysql 3306) after ${waited_ms} ms"
fi
eq "opened: no other cell needs attention" "$(bad_cells)" \
	"gguf-model-server -> rds-mysql:3306 violation"
[ -n "$h_out" ] && nft_delete gguf-model-server output "$h_out"
[ -n "$h_in" ] && nft_delete rds-mysql input "$h_in"
cell_ok() { view && case $(cell "$1" "$2" "$3") in ok | unverified) true ;; *) false ;; esac; }
check "closed again: gguf-model-server -> rds-mysql:3306 is ok or unverified" \
	wait_until $((3 * interval + 1)) cell_ok gguf-model-server rds-mysql 3306

# --- 3. a live break: nginx → main-backend:8000 dropped ---------------------------------
backend_addr=$("$lab" addr main-backend)
h_drop=$(nft_insert nginx output ip daddr "$backend_addr" tcp dport 8000 drop)
if [ -n "$h_drop" ]; then ok "nft: nginx -> main-backend:8000 dropped live"; else not_ok "nft: nginx -> main-backend:8000 dropped live"; fi
if wait_until $((2 * interval + 2)) cell_is nginx main-backend 8000 blocked; then
	ok "dropped: nginx -> main-backend:8000 turns blocked (${waited_ms} ms)"
else
	not_ok "dropped: nginx -> main-backend:8000 turns blocked" \
		"still $(cell nginx main-backend 8000) after ${waited_ms} ms"
fi
eq "dropped: no other cell needs attention" "$(bad_cells)" "nginx -> main-backend:8000 blocked"
[ -n "$h_drop" ] && nft_delete nginx output "$h_drop"
check "restored: nginx -> main-backend:8000 is ok again" \
	wait_until $((3 * interval + 1)) cell_is nginx main-backend 8000 ok

# --- 4. SIGKILL: frontend goes stale ---------------------------------------------------
frontend_stale() {
	view &&
		[ "$(vq '[.agents[] | select(.id == "frontend.lab") | .state] | join(",")')" = stale ] &&
		[ "$(vq '[.cells[] | select(.src_role == "frontend" and .verdict != "unobserved") | .verdict] | unique | join(",")')" = stale ]
}
kill -KILL "${apid[frontend]}"
wait "${apid[frontend]}" 2>/dev/null
unset "apid[frontend]"
if wait_until $((3 * interval + 4)) frontend_stale; then
	ok "SIGKILL: frontend and its cells go stale (${waited_ms} ms)"
	if [ "$waited_ms" -ge $((2 * interval * 1000)) ]; then
		ok "SIGKILL: not before about 3 intervals"
	else
		not_ok "SIGKILL: not before about 3 intervals" "stale after ${waited_ms} ms"
	fi
else
	not_ok "SIGKILL: frontend and its cells go stale" \
		"agent: $(vq '[.agents[] | select(.id == "frontend.lab") | .state] | join(",")'); cells: $(vq '[.cells[] | select(.src_role == "frontend") | .verdict] | unique | join(",")')"
fi
eq "SIGKILL: the other agents stay live" \
	"$(vq '[.agents[] | select(.id != "frontend.lab") | .state] | unique | join(",")')" live

# --- 5. SIGTERM: backup leaves cleanly ----------------------------------------------------
stop_agent backup
eq "SIGTERM: backup exits 0" "$stop_rc" 0
if [ "$stop_ms" -le 5000 ]; then ok "SIGTERM: backup exits within its stop timeout (${stop_ms} ms)"; else not_ok "SIGTERM: backup exits within its stop timeout" "${stop_ms} ms"; fi
eq "SIGTERM: backup's log ends with stopped, nothing dropped or abandoned" \
	"$(jq -r 'select(.msg == "stopped") | "\(.dropped) \(.abandoned)"' "$work/backup.log" 2>/dev/null)" "0 0"
backup_gone() { view && [ "$(vq '[.agents[] | select(.id == "backup.lab")] | length')" = 0 ]; }
check "SIGTERM: the collector forgets backup" wait_until 3 backup_gone

# --- 6. the collector away, then back: every queued report arrives ---------------------
remaining="${!apid[*]}"
away_at=$(now_ms)
stop_collector
eq "the collector exits 0 on SIGTERM" "$stop_rc" 0
# Several intervals without a collector; the agents keep probing and queue.
queued() {
	for role in $remaining; do
		[ "$(health "$role" queue)" -gt 0 ] 2>/dev/null || return 1
	done
}
check "collector away: every remaining agent queues reports" wait_until $((4 * interval + 2)) queued
# Several intervals away in all; what was delivered before the stop is then
# settled in every health file (nothing can be delivered meanwhile).
away_ms=$((4 * interval * 1000 - ($(now_ms) - away_at)))
[ "$away_ms" -gt 0 ] && sleep "$(awk -v m="$away_ms" 'BEGIN { printf "%.3f", m / 1000 }')"
echo "# the collector was away $(($(now_ms) - away_at)) ms; queued: $(for r in $remaining; do printf '%s=%s ' "$r" "$(health "$r" queue)"; done)"
declare -A d0=()
for role in $remaining; do
	d0[$role]=$(health "$role" delivered)
done
rounds_before=$(for role in $remaining; do health "$role" rounds; done | awk "{ s += \$1 } END { print s + 0 }")
check "the collector is back (same keys, same address)" start_collector "$work/collector2.log"
drained() {
	for role in $remaining; do
		[ "$(health "$role" queue)" = 0 ] && [ "$(health "$role" delivered)" -gt "${d0[$role]}" ] ||
			return 1
	done
}
if wait_until 25 drained; then
	ok "collector back: every remaining agent's queue drains (${waited_ms} ms)"
else
	not_ok "collector back: every remaining agent's queue drains" \
		"$(for r in $remaining; do printf '%s queue=%s ' "$r" "$(health "$r" queue)"; done)"
fi
live_again() {
	view && [ "$(vq '[.agents[] | select(.state == "live")] | length')" = "$(echo "$remaining" | wc -w)" ]
}
check "collector back: the remaining agents are live again" wait_until 4 live_again

sent=0
stops_ok=0
lost=""
for role in $remaining; do
	stop_agent "$role"
	[ "$stop_rc" = 0 ] && stops_ok=$((stops_ok + 1))
	line=$(jq -c 'select(.msg == "stopped")' "$work/$role.log" 2>/dev/null)
	d1=$(jq -r '.delivered' <<<"$line")
	[ "$(jq -r '.dropped + .abandoned' <<<"$line")" = 0 ] || lost="$lost $role:$line"
	sent=$((sent + d1 - d0[$role]))
done
eq "the remaining agents exit 0 on SIGTERM" "$stops_ok" "$(echo "$remaining" | wc -w)"
eq "nothing dropped or abandoned by any agent" "$lost" ""
accepted=$(metric sgprobe_reports_accepted_total)
duplicate=$(metric sgprobe_reports_duplicate_total)
rounds_after=$(for role in $remaining; do health "$role" rounds; done | awk "{ s += \$1 } END { print s + 0 }")
echo "# delivered since the restart (agents) $sent; accepted $accepted + duplicate $duplicate (collector); rounds meanwhile $((rounds_after - rounds_before))"
eq "sent = accepted + duplicates, counted on both sides" "$sent" "$((accepted + duplicate))"
if [ "$sent" -ge "$(echo "$remaining" | wc -w)" ]; then ok "reports were delivered after the restart"; else not_ok "reports were delivered after the restart" "sent $sent"; fi
stop_collector
eq "the restarted collector exits 0 on SIGTERM" "$stop_rc" 0

"$lab" down >/dev/null 2>&1
eq "lab down leaves no namespace behind" "$(ip netns list | grep -c "^$SGPROBE_LAB_PREFIX-")" 0
echo "# $(( ($(now_ms) - t0) / 1000 )) s in all"
done_testing
