#!/bin/bash
# The collector as a real process on loopback: signed reports from several agents
# and roles (signed by tests/integration/sign.py, written apart from the C code),
# the matrix view they produce, every kind of bad input with its status code and
# message, plans with ETags, reload, health, shutdown, and the agent's
# --once --push feeding it.
. "$(dirname "$0")/../lib.sh"
set -u

collector="$build/sgprobe-collector"
sign="$top/tests/integration/sign.py"
work=$(mktemp -d /tmp/sgprobe-collector.XXXXXX)
pid=""

cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
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

# A small matrix on loopback addresses: web and api have agents, db has none.
cat >"$work/matrix.json" <<'EOF'
{ "version": 1, "name": "loop",
  "probe": { "ports": [5432], "interval_s": 60, "timeout_ms": 300 },
  "roles": {
    "web": { "endpoints": ["127.0.0.11"], "ports": [80], "agent": true },
    "api": { "endpoints": ["127.0.0.12"], "ports": [8000], "agent": true },
    "db":  { "endpoints": ["127.0.0.13"], "ports": [5432], "agent": false } },
  "allow": [ { "from": "web", "to": "api", "ports": [8000] },
             { "from": "api", "to": "db", "ports": [5432] } ] }
EOF
printf 'web-secret\n' >"$work/web.secret"
cat >"$work/keys.json" <<'EOF'
{ "keys": [ { "id": "web-1", "secret_file": "web.secret", "roles": ["web"] },
            { "id": "api-1", "secret": "api-secret", "roles": ["api"] },
            { "id": "api-2", "secret": "api-secret-next", "roles": ["api"] },
            { "id": "cache-1", "secret": "cache-secret", "roles": ["cache"] } ] }
EOF

"$collector" --matrix "$work/matrix.json" --keys "$work/keys.json" \
	--listen "127.0.0.1:$P" --admin-listen "127.0.0.1:$A" 2>"$work/collector.log" &
pid=$!
for i in $(seq 50); do
	curl -sf "$admin/healthz" >/dev/null 2>&1 && break
	sleep 0.1
done
check "the collector serves /healthz on both listeners" sh -c \
	"curl -sf $admin/healthz >/dev/null && curl -sf $agents/healthz >/dev/null"
check "sgprobe-collector health answers 0" "$collector" health --admin-listen "127.0.0.1:$A"

# report FILE ROLE SEQ AGENT ADDRESS BOOT RESULTS: writes a daemon report.
report() {
	local addr=$5
	cat >"$1" <<EOF
{"schema":"sgprobe.report/v1","agent":{"id":"$4","role":"$2","cluster":"test","az":null,
 "address":"$addr","version":"0.1.0","boot":"${6:-b1}"},"seq":$3,
 "sent_at":"2026-11-29T10:00:00.000Z","mode":"daemon","interval_s":60,"round_ms":120,"final":false,
 "results":[$7]}
EOF
}
res() { # res DST TARGET ADDRESS PORT EXPECTED STATE
	printf '{"dst_role":"%s","target":"%s","address":"%s","port":%s,"expected":"%s","state":"%s","latency_us":100,"at":"2026-11-29T10:00:00.000Z","detail":null,"tls":null}' "$@"
}

# post KEY SECRET FILE [extra curl args]: prints "STATUS BODY".
post() {
	local auth
	auth=$(python3 "$sign" "$1" "$2" POST /v1/reports "$3")
	curl -s -o "$work/body" -w '%{http_code}' -H "Authorization: $auth" \
		-H 'Content-Type: application/json' --data-binary "@$3" "${@:4}" "$agents/v1/reports"
	printf ' %s' "$(cat "$work/body")"
}

# --- accepted reports from two agents of two roles --------------------------------
report "$work/r1.json" web 1 web-a 127.0.0.11 b1 "$(res api 127.0.0.12 127.0.0.12 8000 allow open),$(res db 127.0.0.13 127.0.0.13 5432 deny filtered)"
eq "a signed report is accepted" "$(post web-1 web-secret "$work/r1.json")" '202 {"accepted":2}'
eq "the same report again is a duplicate, answered 200" "$(post web-1 web-secret "$work/r1.json")" \
	'200 {"accepted":0,"duplicate":true}'
report "$work/r2.json" api 7 api-a 127.0.0.12 b1 "$(res db 127.0.0.13 127.0.0.13 5432 allow closed),$(res web 127.0.0.11 127.0.0.11 80 deny open)"
eq "the second key of a role is valid too (rotation)" "$(post api-2 api-secret-next "$work/r2.json")" '202 {"accepted":2}'

curl -s "$admin/v1/matrix" >"$work/view.json"
cell() { jq -r ".cells[] | select(.src_role == \"$1\" and .dst_role == \"$2\" and .port == $3) | .verdict" "$work/view.json"; }
eq "view: schema" "$(jq -r .schema "$work/view.json")" "sgprobe.matrix-view/v1"
eq "view: web → api:8000 open and allowed is ok" "$(cell web api 8000)" ok
eq "view: api → web:80 open but denied is a violation" "$(cell api web 80)" violation
eq "view: api → db:5432 RST on an allowed path is no_listener" "$(cell api db 5432)" no_listener
eq "view: web → db:5432 timeout, db proved alive by api's RST, is ok" "$(cell web db 5432)" ok
eq "view: a path nobody reported is unobserved" "$(cell web web 80)" unobserved
eq "view: both agents are live" "$(jq -r '[.agents[].state] | join(",")' "$work/view.json")" "live,live"
# Every cell, in the view's order (matrix roles, then ports): each agent role ×
# each destination role × its ports and the probe port (5432).
cells() { jq -r '.cells[] | "\(.src_role) \(.dst_role) \(.port) \(.expected) \(.verdict)"' "$1"; }
cat >"$work/cells.want" <<'EOF'
web web 80 deny unobserved
web web 5432 deny unobserved
web api 5432 deny unobserved
web api 8000 allow ok
web db 5432 deny ok
api web 80 deny violation
api web 5432 deny unobserved
api api 5432 deny unobserved
api api 8000 deny unobserved
api db 5432 allow no_listener
EOF
eq "view: every cell, with its expectation and verdict" "$(cells "$work/view.json")" "$(cat "$work/cells.want")"

# --- every bad input: its status and a message naming the problem ---------------------
printf '{"schema": "sgprobe.report/v1", ' >"$work/bad.json"
r=$(post web-1 web-secret "$work/bad.json")
eq "malformed JSON: 400" "${r%% *}" 400
check "malformed JSON: says so" grep -q 'JSON' "$work/body"
report "$work/type.json" web 2 web-a 127.0.0.11 b1 "$(res api 127.0.0.12 127.0.0.12 '"8000"' allow open)"
r=$(post web-1 web-secret "$work/type.json")
eq "wrong type: 400" "${r%% *}" 400
check "wrong type: names the field" grep -q 'results\[0\].port' "$work/body"
report "$work/enum.json" web 2 web-a 127.0.0.11 b1 "$(res api 127.0.0.12 127.0.0.12 8000 allow ajar)"
r=$(post web-1 web-secret "$work/enum.json")
eq "bad enum: 400" "${r%% *}" 400
check "bad enum: names the field" grep -q 'results\[0\].state' "$work/body"
head -c 1572864 /dev/zero | tr '\0' ' ' >"$work/huge.json"
huge_msg='{"error":"body: 1572864 bytes exceeds the limit of 1048576 bytes (1 MiB)"}'
eq "a body of 1.5 MiB over HTTP/1.1: 413, naming size and limit" \
	"$(post web-1 web-secret "$work/huge.json" --http1.1)" "413 $huge_msg"
eq "a body of 1.5 MiB over HTTP/2: 413, naming size and limit" \
	"$(post web-1 web-secret "$work/huge.json" --http2-prior-knowledge)" "413 $huge_msg"
# Beyond 4 MiB h2o refuses the body itself, before the collector sees it
# (README: its own plain-text 413 on HTTP/1.1, a reset stream on HTTP/2).
head -c 5242880 /dev/zero | tr '\0' ' ' >"$work/huger.json"
r=$(post web-1 web-secret "$work/huger.json" --http1.1)
eq "a body over 4 MiB: h2o's own 413 over HTTP/1.1" "${r%% *}" 413
r=$(post web-1 wrong-secret "$work/r1.json")
eq "bad signature: 401" "${r%% *}" 401
check "bad signature: says so" grep -q 'signature' "$work/body"
auth=$(python3 "$sign" web-1 web-secret POST /v1/reports "$work/r1.json" --timestamp $(($(date +%s) - 400)))
r=$(curl -s -o "$work/body" -w '%{http_code}' -H "Authorization: $auth" --data-binary "@$work/r1.json" "$agents/v1/reports")
eq "a timestamp 400 s old: 401" "$r" 401
eq "a timestamp 400 s old: says so" "$(cat "$work/body")" \
	'{"error":"unauthorized: timestamp too far from the collector'"'"'s clock"}'
report "$work/role.json" api 9 api-x 127.0.0.12 b1 "$(res db 127.0.0.13 127.0.0.13 5432 allow open)"
r=$(post web-1 web-secret "$work/role.json")
eq "a key reporting for another role: 401" "${r%% *}" 401
check "wrong role: names key and role" grep -q "web-1.*api" "$work/body"
r=$(curl -s -o "$work/body" -w '%{http_code}' "$agents/v1/plan?role=web")
eq "an unsigned plan request: 401" "$r" 401
eq "an unsigned plan request: says so" "$(cat "$work/body")" \
	'{"error":"unauthorized: missing Authorization header"}'
# A web key sending, under the api agent's id, a final report (which would
# erase its observations: the violation api → web:80 would disappear) or any
# report (which would rewrite its role).
report "$work/takeover.json" web 99 api-a 127.0.0.11 b1 ""
sed -i 's/"final":false/"final":true/' "$work/takeover.json"
eq "a key's report under an agent id of another role: 401, naming agent, role and key" \
	"$(post web-1 web-secret "$work/takeover.json")" \
	'401 {"error":"unauthorized: agent '"'"'api-a'"'"' is an agent of role '"'"'api'"'"', which key '"'"'web-1'"'"' may not speak for"}'
report "$work/takeover2.json" web 100 api-a 127.0.0.11 b2 "$(res api 127.0.0.12 127.0.0.12 8000 allow open)"
r=$(post web-1 web-secret "$work/takeover2.json")
eq "... and not final either: 401" "${r%% *}" 401
r=$(curl -s -o /dev/null -w '%{http_code}' "$agents/v1/matrix")
eq "the matrix is not on the agents' listener" "$r" 404
r=$(curl -s -o /dev/null -w '%{http_code}' -X POST --data-binary "@$work/r1.json" "$admin/v1/reports")
eq "reports are not taken on the admin listener" "$r" 404
curl -s "$admin/v1/matrix" >"$work/view2.json"
eq "after the refusals, every cell is as it was" "$(cells "$work/view2.json")" "$(cat "$work/cells.want")"
eq "after the refusals, the agents are as they were" \
	"$(jq -r '[.agents[] | .id + " " + .role] | join(",")' "$work/view2.json")" "api-a api,web-a web"

# --- plans ----------------------------------------------------------------------------
auth=$(python3 "$sign" web-1 web-secret GET "/v1/plan?role=web")
curl -s -D "$work/h" -o "$work/plan.json" -H "Authorization: $auth" "$agents/v1/plan?role=web"
eq "a signed plan request: the plan" "$(jq -r '.schema + " " + .role' "$work/plan.json")" "sgprobe.plan/v1 web"
eq "the plan: web → api:8000 allowed" \
	"$(jq -r '.targets[] | select(.dst_role == "api" and .port == 8000) | .expected' "$work/plan.json")" allow
etag=$(sed -n 's/^etag: *//Ip' "$work/h" | tr -d '\r')
check "the plan has an ETag" test -n "$etag"
r=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: $auth" -H "If-None-Match: $etag" "$agents/v1/plan?role=web")
eq "If-None-Match with the same ETag: 304" "$r" 304
auth=$(python3 "$sign" web-1 web-secret GET "/v1/plan?role=api")
r=$(curl -s -o "$work/body" -w '%{http_code}' -H "Authorization: $auth" "$agents/v1/plan?role=api")
eq "a plan for a role the key may not speak for: 401" "$r" 401
auth=$(python3 "$sign" cache-1 cache-secret GET "/v1/plan?role=cache")
eq "a plan for a role the matrix does not have: 404, naming role and matrix" \
	"$(curl -s -w ' %{http_code}' -H "Authorization: $auth" "$agents/v1/plan?role=cache")" \
	'{"error":"role: '"'"'cache'"'"' is not in matrix '"'"'loop'"'"'"} 404'
auth=$(python3 "$sign" web-1 web-secret GET "/v1/plan?x=1&role=w%65b")
eq "a percent-encoded role in the query is decoded" \
	"$(curl -s -H "Authorization: $auth" "$agents/v1/plan?x=1&role=w%65b" | jq -r .role)" web
auth=$(python3 "$sign" web-1 web-secret GET "/v1/plan?role=web%4")
eq "a truncated escape in the query: 400" \
	"$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: $auth" "$agents/v1/plan?role=web%4")" 400
eq "sgprobe-collector plan prints the same plan" \
	"$("$collector" plan --matrix "$work/matrix.json" --role web | jq -c .)" "$(jq -c . "$work/plan.json")"

# --- metrics ----------------------------------------------------------------------------
curl -s "$admin/metrics" >"$work/metrics"
check "metrics: accepted reports counted" grep -q '^sgprobe_reports_accepted_total 2$' "$work/metrics"
check "metrics: duplicates counted" grep -q '^sgprobe_reports_duplicate_total 1$' "$work/metrics"
# Reports refused: 3 malformed (JSON, type, enum); 5 unauthorized (signature,
# timestamp, role, two agent-id takeovers); 2 too large (HTTP/1.1 and HTTP/2:
# the one over h2o's limit is h2o's, and not counted).
eq "metrics: reports refused, by reason" "$(grep '^sgprobe_reports_rejected_total' "$work/metrics")" \
	'sgprobe_reports_rejected_total{reason="malformed"} 3
sgprobe_reports_rejected_total{reason="unauthorized"} 5
sgprobe_reports_rejected_total{reason="too_large"} 2
sgprobe_reports_rejected_total{reason="full"} 0'
# Plans refused, apart: the unsigned one and the other role's; the unknown
# role; the truncated escape.
eq "metrics: plan requests refused, by reason, apart from reports" \
	"$(grep '^sgprobe_plan_requests_rejected_total' "$work/metrics")" \
	'sgprobe_plan_requests_rejected_total{reason="malformed"} 1
sgprobe_plan_requests_rejected_total{reason="unauthorized"} 2
sgprobe_plan_requests_rejected_total{reason="unknown_role"} 1'
check "metrics: ingest latency histogram (accepted and duplicate reports)" grep -q '^sgprobe_ingest_duration_seconds_count 3$' "$work/metrics"
check "metrics: a violation cell" grep -q 'verdict="violation"' "$work/metrics"

# --- HTTP/2, an unknown port, the state's bound, TLS ------------------------------------
eq "HTTP/2 (prior knowledge) is served" \
	"$(curl -s --http2-prior-knowledge -o /dev/null -w '%{http_version} %{http_code}' "$admin/healthz")" "2 200"
report "$work/unknown.json" web 3 web-a 127.0.0.11 b1 "$(res api 127.0.0.12 127.0.0.12 6379 deny open)"
eq "a report about a port the matrix does not know is accepted" \
	"$(post web-1 web-secret "$work/unknown.json")" '202 {"accepted":1}'
eq "... and shown as an unknown cell, not dropped" \
	"$(curl -s "$admin/v1/matrix" | jq -r '.cells[] | select(.port == 6379) | "\(.src_role) \(.dst_role) \(.verdict)"')" \
	"web api unknown"

P2=$(free_port)
A2=$(free_port)
"$collector" --matrix "$work/matrix.json" --keys "$work/keys.json" --max-agents 1 \
	--listen "127.0.0.1:$P2" --admin-listen "127.0.0.1:$A2" 2>"$work/small.log" &
pid2=$!
for i in $(seq 50); do curl -sf "http://127.0.0.1:$A2/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
agents_saved=$agents
agents="http://127.0.0.1:$P2"
post web-1 web-secret "$work/r1.json" >/dev/null
report "$work/second.json" web 1 web-b 127.0.0.21 b1 "$(res api 127.0.0.12 127.0.0.12 8000 allow open)"
auth=$(python3 "$sign" web-1 web-secret POST /v1/reports "$work/second.json")
r=$(curl -s -D "$work/h429" -o "$work/body" -w '%{http_code}' -H "Authorization: $auth" \
	--data-binary "@$work/second.json" "$agents/v1/reports")
eq "a full state answers 429" "$r" 429
check "... with Retry-After" grep -qi '^retry-after: [0-9]' "$work/h429"
eq "... and keeps what it had" "$(curl -s "http://127.0.0.1:$A2/v1/matrix" | jq -r '[.agents[].id] | join(",")')" "web-a"
kill "$pid2"
wait "$pid2" 2>/dev/null
agents=$agents_saved

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$work/tls.key" \
	-out "$work/tls.pem" -subj /CN=localhost -addext subjectAltName=IP:127.0.0.1 -days 2 2>/dev/null
P3=$(free_port)
A3=$(free_port)
"$collector" --matrix "$work/matrix.json" --keys "$work/keys.json" --listen "127.0.0.1:$P3" \
	--admin-listen "127.0.0.1:$A3" --tls-cert "$work/tls.pem" --tls-key "$work/tls.key" \
	--admin-tls-cert "$work/tls.pem" --admin-tls-key "$work/tls.key" 2>"$work/tls.log" &
pid3=$!
for i in $(seq 50); do curl -sf --cacert "$work/tls.pem" "https://127.0.0.1:$A3/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
eq "TLS on the agents' listener, HTTP/2 by ALPN" \
	"$(curl -s --cacert "$work/tls.pem" -o /dev/null -w '%{http_version} %{http_code}' "https://127.0.0.1:$P3/healthz")" "2 200"
agents="https://127.0.0.1:$P3"
eq "a report over TLS is accepted" "$(post web-1 web-secret "$work/r1.json" --cacert "$work/tls.pem")" '202 {"accepted":2}'
eq "a body of 1.5 MiB over TLS and HTTP/2 (ALPN): 413, naming size and limit" \
	"$(post web-1 web-secret "$work/huge.json" --cacert "$work/tls.pem" --http2)" "413 $huge_msg"
eq "a body of 1.5 MiB over TLS and HTTP/1.1: 413, naming size and limit" \
	"$(post web-1 web-secret "$work/huge.json" --cacert "$work/tls.pem" --http1.1)" "413 $huge_msg"
agents=$agents_saved
eq "... both counted as too_large" \
	"$(curl -s --cacert "$work/tls.pem" "https://127.0.0.1:$A3/metrics" | grep 'reason="too_large"')" \
	'sgprobe_reports_rejected_total{reason="too_large"} 2'
check "health over TLS" "$collector" health --admin-listen "127.0.0.1:$A3" --admin-tls-cert "$work/tls.pem"
kill "$pid3"
wait "$pid3" 2>/dev/null
"$collector" --matrix "$work/matrix.json" --keys "$work/keys.json" --listen "127.0.0.1:$P3" \
	--admin-listen "127.0.0.1:$A3" --tls-cert "$work/tls.pem" >/dev/null 2>"$work/tls2.log"
eq "a certificate without its key: exit 2" "$?" 2
check "... named" grep -q 'tls-cert/--tls-key' "$work/tls2.log"

# --- the dashboard, rendered by Chromium from this collector's own state ---------------
# (tests/integration/test_dashboard.sh against the live admin listener)
SGPROBE_DASHBOARD_URL="$admin/" bash "$top/tests/integration/test_dashboard.sh" >"$work/dash.tap" 2>&1
rc=$?
sed 's/^/# dashboard: /' "$work/dash.tap" | grep -v '^# dashboard: ok' | head -20
eq "the dashboard renders this collector's cells in Chromium" "$rc" 0

# --- reload -----------------------------------------------------------------------------
# hup: sends SIGHUP and waits for the collector's line about it.
hup() {
	local before
	before=$(grep -c -e 'reloaded' -e 'reload refused' "$work/collector.log")
	kill -HUP "$pid"
	for i in $(seq 100); do
		[ "$(grep -c -e 'reloaded' -e 'reload refused' "$work/collector.log")" -gt "$before" ] && return
		sleep 0.05
	done
}
cp "$work/matrix.json" "$work/matrix.good"
printf '{"version": 1, "name": "broken", "roles": {}, "allow": [], "typo": 1}' >"$work/matrix.json"
hup
check "a bad reload is refused and logged" grep -q 'reload refused' "$work/collector.log"
eq "after a bad reload the old matrix serves" "$(curl -s "$admin/v1/matrix" | jq -r .matrix)" loop
jq '.allow += [{"from": "api", "to": "web", "ports": [80]}]' "$work/matrix.good" >"$work/matrix.json"
hup
eq "after a good reload, api → web:80 is allowed and ok" \
	"$(curl -s "$admin/v1/matrix" | jq -r '.cells[] | select(.src_role == "api" and .dst_role == "web" and .port == 80) | .verdict')" ok

# The keys: a key added is valid once reloaded, a key removed is refused.
cp "$work/keys.json" "$work/keys.good"
report "$work/k1.json" web 1 web-k 127.0.0.14 b1 "$(res api 127.0.0.12 127.0.0.12 8000 allow open)"
r=$(post web-9 web-secret-9 "$work/k1.json")
eq "a key not yet in the keys file: 401, unknown key" "$r" '401 {"error":"unauthorized: unknown key"}'
jq '.keys += [{"id": "web-9", "secret": "web-secret-9", "roles": ["web"]}]' "$work/keys.good" >"$work/keys.json"
hup
check "SIGHUP with a key added: logged" grep -q "reloaded matrix 'loop' and 5 keys" "$work/collector.log"
eq "... and the new key's reports are accepted" "$(post web-9 web-secret-9 "$work/k1.json")" '202 {"accepted":1}'
cp "$work/keys.good" "$work/keys.json"
hup
report "$work/k2.json" web 2 web-k 127.0.0.14 b1 "$(res api 127.0.0.12 127.0.0.12 8000 allow open)"
eq "SIGHUP with the key revoked: its reports are refused" \
	"$(post web-9 web-secret-9 "$work/k2.json")" '401 {"error":"unauthorized: unknown key"}'
printf '{"keys": [{"id": "web-1", "secret": "web-secret", "roles": ["web"]}, ' >"$work/keys.json"
hup
check "a bad keys file on reload is refused and logged, naming --keys" \
	grep -q 'reload refused, keeping the old matrix and keys: --keys' "$work/collector.log"
report "$work/k3.json" api 8 api-a 127.0.0.12 b1 "$(res db 127.0.0.13 127.0.0.13 5432 allow closed)"
eq "... and the old keys stay: api-1's reports are still accepted" \
	"$(post api-1 api-secret "$work/k3.json")" '202 {"accepted":1}'
cp "$work/keys.good" "$work/keys.json"
check "no secret in the reload log lines" sh -c "! grep -q -e web-secret-9 '$work/collector.log'"

# --- the agent's --once --push -----------------------------------------------------------------
python3 -c 'import socket,time,sys
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.12", 8000)); s.listen(16)
open(sys.argv[1], "w").write("up"); time.sleep(30)' "$work/listener.up" &
lpid=$!
for i in $(seq 50); do [ -s "$work/listener.up" ] && break; sleep 0.1; done
SGPROBE_KEY=web-secret "$agent" --once --matrix "$work/matrix.good" --role web --agent-address 127.0.0.11 \
	--agent-id web-once --push "$agents/v1/reports" --key-id web-1 --format json \
	--fail-on blocked,no_listener,inconclusive >"$work/once.json" 2>"$work/once.err"
rc=$?
kill $lpid 2>/dev/null
cat "$work/once.err"
# On loopback a denied port answers RST (a violation): only the allowed path fails the run here.
eq "--once --push: the run passes" "$rc" 0
check "--once --push: says it pushed" grep -q 'pushed 1 report' "$work/once.err"
curl -s "$admin/v1/matrix" >"$work/view3.json"
eq "--once --push: its observations reach the matrix" \
	"$(jq -r '.cells[] | select(.src_role == "web" and .dst_role == "api" and .port == 8000) | .observations[] | select(.agent == "web-once") | .verdict' "$work/view3.json")" ok
SGPROBE_KEY=nope "$agent" --once --matrix "$work/matrix.good" --role web --agent-address 127.0.0.11 \
	--push "$agents/v1/reports" --key-id web-1 >/dev/null 2>"$work/once2.err"
eq "--push with a wrong key: the run fails" "$?" 1
check "--push with a wrong key: the collector's message is shown" grep -q '401.*signature' "$work/once2.err"
"$agent" --once --matrix "$work/matrix.good" --role web --push "$agents/v1/reports" >/dev/null 2>"$work/once3.err"
eq "--push without a key: exit 2 before probing" "$?" 2
# --key-file FILE (trailing newline stripped), and the flag wins over SGPROBE_KEY.
# Only the push can fail this run: on loopback the denied ports answer RST.
env -u SGPROBE_KEY "$agent" --once --matrix "$work/matrix.good" --role web --agent-address 127.0.0.11 \
	--agent-id web-keyfile --push "$agents/v1/reports" --key-id web-1 --key-file "$work/web.secret" \
	--fail-on tls_failed >"$work/once4.out" 2>"$work/once4.err"
eq "--once --push --key-id --key-file: the run passes" "$?" 0
check "--key-file: says it pushed" grep -q 'pushed 1 report' "$work/once4.err"
eq "--key-file: the report reaches the matrix" \
	"$(curl -s "$admin/v1/matrix" | jq -r '[.agents[] | select(.id == "web-keyfile") | .role] | join(",")')" web
SGPROBE_KEY=not-the-secret "$agent" --once --matrix "$work/matrix.good" --role web --agent-address 127.0.0.11 \
	--agent-id web-keyfile2 --push "$agents/v1/reports" --key-id web-1 --key-file "$work/web.secret" \
	--fail-on tls_failed >>"$work/once4.out" 2>>"$work/once4.err"
eq "--key-file wins over SGPROBE_KEY: the run passes" "$?" 0
check "no secret in the agent's output" sh -c "! grep -q -e web-secret -e not-the-secret '$work/once4.out' '$work/once4.err'"
env -u SGPROBE_KEY "$agent" --once --matrix "$work/matrix.good" --role web --push "$agents/v1/reports" \
	--key-id web-1 --key-file "$work/nonexistent.secret" >/dev/null 2>"$work/once5.err"
eq "--key-file that cannot be read: exit 2 before probing" "$?" 2
check "... naming the flag and the file" grep -q -- "--key-file: cannot open $work/nonexistent.secret" "$work/once5.err"

# --- the metrics sink's settings are checked before any port is taken ------------------------
# The running collector holds $P: a bad namespace must be what is reported.
"$collector" --matrix "$work/matrix.json" --keys "$work/keys.json" --listen "127.0.0.1:$P" \
	--admin-listen "127.0.0.1:$A" --metrics-sink emf --namespace 'AWS/EC2' 2>"$work/ns.err"
eq "a reserved --namespace exits 2 before the listeners start" "$?" 2
check "... naming --namespace, not the port in use" grep -q -- '--namespace: .AWS/EC2.' "$work/ns.err"

# --- matrix tools -----------------------------------------------------------------------------
check "check-matrix: the shipped matrix is valid" "$collector" check-matrix "$top/examples/afirgen.matrix.json"
"$collector" check-matrix "$work/bad.json" >/dev/null 2>&1
eq "check-matrix: an invalid file exits 2" "$?" 2

# --- shutdown -------------------------------------------------------------------------------
kill -TERM "$pid"
wait "$pid"
eq "SIGTERM: exit 0" "$?" 0
pid=""
check "SIGTERM: logged" grep -q 'stopped' "$work/collector.log"
check "no secret in the collector's log" sh -c "! grep -q -e web-secret -e api-secret '$work/collector.log'"
P4=$(free_port)
A4=$(free_port)
"$collector" --matrix "$work/matrix.good" --keys "$work/keys.json" --listen "127.0.0.1:$P4" \
	--admin-listen "127.0.0.1:$A4" 2>"$work/int.log" &
pid4=$!
for i in $(seq 50); do curl -sf "http://127.0.0.1:$A4/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
kill -INT "$pid4"
wait "$pid4"
eq "SIGINT: exit 0" "$?" 0
check "SIGINT: logged" grep -q 'SIGINT' "$work/int.log"

done_testing
