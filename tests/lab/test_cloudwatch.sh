#!/bin/bash
# CloudWatch in the AFIRGen lab: the collector, in its namespace, publishes to a
# CloudWatch stand-in on the VPC-endpoint host (198.18.0.19:443, TLS from the
# lab CA), reached by its real name monitoring.us-east-1.amazonaws.com through
# the lab's hosts file, as a `monitoring` interface endpoint with private DNS
# would be. The lab's groups let the collector out on 443 to the endpoints and
# the endpoints' group lets it in. The stand-in recomputes every signature with
# botocore (tests/integration/cw_standin.py). Credentials come from an ECS
# container credentials stand-in on the collector's loopback, each set valid
# a few seconds only.
#   1. a clean lab publishes 8 totals and 2 per agent role, one call a flush;
#   2. a staged violation (gguf-model-server → rds-mysql:3306 opened) arrives
#      as UnexpectedOpenPaths ≥ 1, and as the cell's own metric with its four
#      dimensions;
#   3. throttling answers are retried and the data arrives afterwards: nothing
#      dropped, counted alike on both sides;
#   4. the credentials are refreshed before they expire: no call is refused;
#   5. SIGTERM: the last flush is delivered, exit 0.
. "$(dirname "$0")/../lib.sh"
set -u

export SGPROBE_LAB_PREFIX=sgpcw
export LABD="$labd"
lab="$top/tests/lab/lab.sh"
collector="$build/sgprobe-collector"
standin="$top/tests/integration/cw_standin.py"
work=$(mktemp -d /tmp/sgprobe-cw.XXXXXX)
matrix="$top/examples/afirgen.matrix.json"
agents=$(jq -r '.roles | to_entries[] | select(.value.agent) | .key' "$matrix")
n_roles=$(echo "$agents" | wc -w)
flush=2
cpid=""
declare -A pids=()

cleanup() {
	local p
	for p in "${pids[@]}" $cpid; do
		kill -KILL "$p" 2>/dev/null
	done
	"$lab" down >/dev/null 2>&1
	[ -n "${KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now_ms() { echo $(($(date +%s%N) / 1000000)); }
wait_until() {
	local limit=$(($1 * 1000)) start
	shift
	start=$(now_ms)
	while :; do
		"$@" && return 0
		[ $(($(now_ms) - start)) -ge "$limit" ] && return 1
		sleep 0.5
	done
}

if ! "$lab" up >"$work/up.log" 2>&1; then
	not_ok "the lab comes up" "$(tail -20 "$work/up.log")"
	done_testing
	exit 1
fi
ok "the lab comes up"
labdir=$(dirname "$("$lab" ca)")
cns=$("$lab" ns sgprobe-collector)
caddr=$("$lab" addr sgprobe-collector)
vaddr=$("$lab" addr vpc-endpoints)

# --- the stand-ins ------------------------------------------------------------------------
"$lab" stop vpc-endpoints
setsid "$lab" exec vpc-endpoints /usr/bin/python3 "$standin" --listen "$vaddr:443" \
	--tls-cert "$labdir/certs/vpc-endpoints.pem" --tls-key "$labdir/certs/vpc-endpoints.key" \
	--region us-east-1 --record "$work/cw.jsonl" --issued-file "$work/issued.jsonl" \
	--ready-file "$work/cw.ready" </dev/null 2>"$work/cw.log" &
pids[cw]=$!
setsid "$lab" exec sgprobe-collector /usr/bin/python3 "$standin" --listen 127.0.0.1:0 \
	--ecs-path /v2/credentials/sgprobe-collector --ecs-ttl-s 8 --record "$work/ecs.jsonl" \
	--issued-file "$work/issued.jsonl" --ready-file "$work/ecs.ready" \
	</dev/null 2>"$work/ecs.log" &
pids[ecs]=$!
check "the CloudWatch and ECS credentials stand-ins listen" \
	wait_until 10 sh -c "[ -s '$work/cw.ready' ] && [ -s '$work/ecs.ready' ]"
ecs_port=$(cat "$work/ecs.ready" 2>/dev/null)

# --- the collector and the agents -------------------------------------------------------------
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
"$lab" stop sgprobe-collector
env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u AWS_SESSION_TOKEN \
	AWS_CONTAINER_CREDENTIALS_RELATIVE_URI=/v2/credentials/sgprobe-collector \
	setsid ip netns exec "$cns" "$collector" --matrix "$matrix" --keys "$work/keys.json" \
	--listen "$caddr:9443" --admin-listen 127.0.0.1:9090 \
	--metrics-sink cloudwatch --region us-east-1 --ca-file "$("$lab" ca)" \
	--flush-interval "$flush" --ecs-credentials-host "127.0.0.1:$ecs_port" \
	--credentials-refresh-margin-s 4 </dev/null >"$work/collector.out" 2>"$work/collector.log" &
cpid=$!
check "the collector serves with the cloudwatch sink" \
	wait_until 10 sh -c "ip netns exec '$cns' '$collector' health --admin-listen 127.0.0.1:9090 2>/dev/null"
for role in $agents; do
	SGPROBE_KEY=$(cat "$work/$role.secret") setsid "$lab" exec "$role" "$agent" \
		--collector http://collector.afirgen.internal:9443 --role "$role" \
		--agent-address "$("$lab" addr "$role")" --agent-id "$role.lab" --cluster afirgen-lab \
		--interval-s 1 --timeout-ms 500 --stop-timeout-s 5 --key-id "$role" \
		--probe-ca-file "$("$lab" ca)" </dev/null 2>"$work/$role.log" >/dev/null &
	pids[$role]=$!
done

# ok200 JQ: the accepted calls' metrics, one JSON object per line, filtered by JQ.
metrics200() { jq -c 'select(.status == 200) | .metrics[]' "$work/cw.jsonl" 2>/dev/null; }
# A call holding the totals with every agent reporting.
all_reporting() {
	metrics200 | jq -e -s --argjson n "$n_roles" \
		'map(select(.name == "ReportingAgents" and (.dimensions | keys) == ["Cluster"] and .value == $n)) | length > 0' >/dev/null
}
if wait_until 30 all_reporting; then
	ok "CloudWatch receives ReportingAgents = $n_roles for cluster afirgen-lab"
else
	not_ok "CloudWatch receives ReportingAgents = $n_roles for cluster afirgen-lab" \
		"$(tail -3 "$work/cw.log"; tail -3 "$work/collector.log")"
fi
# The last accepted call with all agents: 8 totals, 2 per role, each cell on its own.
last=$(jq -c 'select(.status == 200 and (.metrics | map(select(.name == "ReportingAgents" and (.dimensions | keys) == ["Cluster"])) | .[0].value) == '"$n_roles"')' "$work/cw.jsonl" | tail -n 1)
eq "one call a flush: 8 totals with [Cluster]" \
	"$(echo "$last" | jq '[.metrics[] | select((.dimensions | keys) == ["Cluster"])] | length')" 8
eq "one call a flush: 2 per agent role with [Cluster, SourceRole]" \
	"$(echo "$last" | jq '[.metrics[] | select((.dimensions | keys | sort) == ["Cluster", "SourceRole"])] | length')" \
	$((2 * n_roles))
eq "the cluster dimension is the agents' cluster, the namespace SGProbe" \
	"$(echo "$last" | jq -r '[.namespace, (.metrics[0].dimensions.Cluster)] | join(" ")')" "SGProbe afirgen-lab"
eq "every metric is a Count" "$(echo "$last" | jq -r '[.metrics[].unit] | unique | join(",")')" Count
eq "bodies are gzip-encoded" "$(echo "$last" | jq -r .gzip)" true

# --- 2. a staged violation -------------------------------------------------------------------
gguf=$("$lab" addr gguf-model-server)
rds=$("$lab" addr rds-mysql)
"$lab" exec gguf-model-server nft insert rule inet sgprobe_lab output ip daddr "$rds" tcp dport 3306 accept
"$lab" exec rds-mysql nft insert rule inet sgprobe_lab input ip saddr "$gguf" tcp dport 3306 accept
violation_cell() {
	metrics200 | jq -e -s 'map(select(.name == "UnexpectedOpenPaths" and .value == 1 and
		.dimensions == {"Cluster": "afirgen-lab", "SourceRole": "gguf-model-server",
		"DestinationRole": "rds-mysql", "Port": "3306"})) | length > 0' >/dev/null
}
violation_total() {
	metrics200 | jq -e -s 'map(select(.name == "UnexpectedOpenPaths" and
		.dimensions == {"Cluster": "afirgen-lab"} and .value >= 1)) | length > 0' >/dev/null
}
check "a staged violation: UnexpectedOpenPaths{Cluster, SourceRole=gguf-model-server, DestinationRole=rds-mysql, Port=3306} = 1" \
	wait_until 20 violation_cell
check "a staged violation: UnexpectedOpenPaths{Cluster=afirgen-lab} >= 1" violation_total

# --- 3. throttling ---------------------------------------------------------------------------
pm() {
	ip netns exec "$cns" curl -s --max-time 2 http://127.0.0.1:9090/metrics |
		awk -v m="$1" '$1 == m { print $2 }'
}
# From the collector's namespace, by the endpoint's name: the path the collector takes.
"$lab" exec sgprobe-collector curl -s --max-time 3 --cacert "$("$lab" ca)" --data "" \
	"https://monitoring.us-east-1.amazonaws.com/_standin/fault?throttle=3" >/dev/null
throttled_then_ok() {
	[ "$(jq -s '[.[] | select(.error == "Throttling")] | length' "$work/cw.jsonl")" -ge 3 ] &&
		[ "$(pm sgprobe_publish_buffered_metrics)" = 0 ] &&
		[ "$(pm 'sgprobe_publish_throttles_total')" -ge 3 ]
}
check "three throttling answers are retried, and the buffer empties afterwards" \
	wait_until 30 throttled_then_ok
sent=$(pm sgprobe_publish_sent_metrics_total)
received=$(jq -s '[.[] | select(.status == 200) | .metrics | length] | add' "$work/cw.jsonl")
eq "every metric the collector counts as sent was received (counted on both sides)" "$sent" "$received"
eq "nothing dropped" "$(pm 'sgprobe_publish_dropped_metrics_total{reason="buffer_full"}') $(pm 'sgprobe_publish_dropped_metrics_total{reason="rejected"}')" "0 0"
check "the log names CloudWatch's code and message" \
	sh -c "grep -q '\"code\":\"Throttling\",\"message\":\"Rate exceeded\"' '$work/collector.log'"

# --- 4. credentials refreshed before they expire -----------------------------------------------
refreshed() {
	[ "$(jq -s '[.[] | select(.ecs == true)] | length' "$work/ecs.jsonl")" -ge 3 ] &&
		[ "$(jq -s '[.[] | select(.status == 200) | .access_key_id] | unique | length' "$work/cw.jsonl")" -ge 3 ]
}
check "ECS credentials valid 8 s are refreshed 4 s ahead; calls are signed with each new set" \
	wait_until 30 refreshed
eq "no call was refused for its credentials or signature" \
	"$(jq -r 'select(.status == 403) | .error' "$work/cw.jsonl" | sort -u | tr '\n' ' ')" ""
jq -r '.secret // empty, .token // empty' "$work/issued.jsonl" >"$work/issued.secrets"
check "the stand-in issued secrets and tokens to look for" \
	test "$(grep -c . "$work/issued.secrets")" -ge 6
check "no issued secret or token in the collector's log" \
	sh -c "! grep -F -f '$work/issued.secrets' '$work/collector.log' >/dev/null"

# --- 5. the stop ---------------------------------------------------------------------------
before=$(jq -s '[.[] | select(.status == 200)] | length' "$work/cw.jsonl")
kill -TERM "$cpid"
wait "$cpid"
eq "SIGTERM: the collector exits 0" "$?" 0
cpid=""
after=$(jq -s '[.[] | select(.status == 200)] | length' "$work/cw.jsonl")
check "the stop's last flush reached CloudWatch" test "$after" -gt "$before"
check "stdout stays clean with the cloudwatch sink" test ! -s "$work/collector.out"

for p in "${pids[@]}"; do
	kill -TERM "$p" 2>/dev/null
	wait "$p" 2>/dev/null
done
pids=()
"$lab" down >/dev/null 2>&1
eq "lab down leaves no namespace behind" "$(ip netns list | grep -c "^$SGPROBE_LAB_PREFIX-")" 0
done_testing
