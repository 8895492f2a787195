#!/bin/bash
# The CloudWatch + ECS credentials stand-in (tests/integration/cw_standin.py) on
# its own, without the sgprobe binaries: requests signed by botocore's SigV4
# signer (and one sent by botocore's own CloudWatch client) are accepted and
# recorded; a body changed after signing, an unknown key, a stale X-Amz-Date,
# a missing session token, expired ECS credentials and invalid PutMetricData
# parameters are refused with CloudWatch's error codes; the throttle, 503 and
# drop faults happen once each and then calls succeed again.
. "$(dirname "$0")/../lib.sh"
set -u

py=/usr/bin/python3
standin="$top/tests/integration/cw_standin.py"
work=$(mktemp -d /tmp/sgprobe-standin.XXXXXX)
pid=""
tpid=""

cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	[ -n "$tpid" ] && kill "$tpid" 2>/dev/null && wait "$tpid" 2>/dev/null
	[ -n "${KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT INT TERM

if ! "$py" -c 'import botocore' 2>/dev/null; then
	echo "# $py has no botocore (apt-get install python3-botocore)"
	not_ok "botocore is installed for $py"
	done_testing
	exit
fi

# The client: signs with botocore's SigV4Auth (as any AWS SDK would) and sends
# with http.client so that the test controls every byte. Prints "STATUS CODE".
cat >"$work/client.py" <<'PY'
import gzip, http.client, json, sys, time, urllib.parse
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

port = int(sys.argv[1])
op = sys.argv[2]
opts = dict(a.split("=", 1) for a in sys.argv[3:])


def code_of(body):
    b = body.decode()
    return b.split("<Code>")[1].split("</Code>")[0] if "<Code>" in b else "-"


def form(n, unit, stamp):
    f = [("Action", "PutMetricData"), ("Version", "2010-08-01"), ("Namespace", "sgprobe/test")]
    for i in range(1, n + 1):
        p = f"MetricData.member.{i}."
        f += [(p + "MetricName", "ProbeFailures" if i == 1 else f"M{i}"),
              (p + "Value", "3" if i == 1 else "0.5"), (p + "Unit", unit),
              (p + "Dimensions.member.1.Name", "From"), (p + "Dimensions.member.1.Value", "web role"),
              (p + "Dimensions.member.2.Name", "To"), (p + "Dimensions.member.2.Value", "db/5432")]
        if stamp:
            f.append((p + "Timestamp", stamp))
    return urllib.parse.urlencode(f).encode()


if op == "put":
    body = form(int(opts.get("n", "1")), opts.get("unit", "Count"),
                time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()) if "stamp" in opts else None)
    headers = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
               "Host": f"127.0.0.1:{port}", "User-Agent": "standin-selftest"}
    if opts.get("gzip") == "1":
        body = gzip.compress(body)
        headers["Content-Encoding"] = "gzip"
    req = AWSRequest(method="POST", url=f"https://127.0.0.1:{port}/", headers=headers, data=body)
    if "akid" in opts:
        if "skew" in opts:  # sign as if the clock were off by skew seconds
            import datetime
            import botocore.auth
            real = datetime.datetime

            class Skewed(real):
                @classmethod
                def utcnow(cls):
                    return real.utcnow() + datetime.timedelta(seconds=float(opts["skew"]))
            botocore.auth.datetime.datetime = Skewed
        if opts.get("sign_ua") == "1":  # sign User-Agent too, which botocore never does
            import botocore.auth
            botocore.auth.SIGNED_HEADERS_BLACKLIST[:] = []
        auth = SigV4Auth(Credentials(opts["akid"], opts["secret"], opts.get("token")), "monitoring", "us-east-1")
        auth.add_auth(req)
        if opts.get("drop_token") == "1":
            del req.headers["X-Amz-Security-Token"]
    if opts.get("tamper") == "1":
        body = bytearray(body)
        body[len(body) // 2] ^= 0x01
        body = bytes(body)
    if opts.get("tls"):
        import ssl
        ctx = ssl.create_default_context(cafile=opts["tls"])
        c = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=ctx)
    else:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request("POST", "/", body=body, headers=dict(req.headers.items()))
        r = c.getresponse()
        print(r.status, code_of(r.read()))
    except (http.client.RemoteDisconnected, ConnectionError) as e:
        print("closed", type(e).__name__)
elif op == "sdk":  # botocore's own CloudWatch client, end to end
    import datetime
    import botocore.session
    from botocore.config import Config
    s = botocore.session.get_session()
    cw = s.create_client("cloudwatch", region_name="us-east-1", endpoint_url=f"http://127.0.0.1:{port}",
                         aws_access_key_id=opts["akid"], aws_secret_access_key=opts["secret"],
                         config=Config(retries={"max_attempts": 1}))
    r = cw.put_metric_data(Namespace="sgprobe/sdk", MetricData=[
        {"MetricName": "Latency", "Value": 1.25, "Unit": "Milliseconds", "StorageResolution": 1,
         "Timestamp": datetime.datetime.now(datetime.timezone.utc),
         "Dimensions": [{"Name": "Cell", "Value": "web->api:8000"}]},
        {"MetricName": "Hist", "Values": [1, 2], "Counts": [3, 4], "Unit": "Count"}])
    print(r["ResponseMetadata"]["HTTPStatusCode"], "-")
elif op == "ecs":
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", opts["path"])
    r = c.getresponse()
    j = json.loads(r.read())
    print(j["AccessKeyId"], j["SecretAccessKey"], j["Token"], j["Expiration"])
elif op == "fault":
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("POST", "/_standin/fault?" + opts["q"], body=b"")
    r = c.getresponse()
    print(r.status, r.read().decode().strip())
elif op == "keepalive":  # two signed calls on one connection
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    out = []
    for _ in range(2):
        body = form(1, "Count", None)
        req = AWSRequest(method="POST", url=f"https://127.0.0.1:{port}/", data=body,
                         headers={"Content-Type": "application/x-www-form-urlencoded", "Host": f"127.0.0.1:{port}"})
        SigV4Auth(Credentials(opts["akid"], opts["secret"]), "monitoring", "us-east-1").add_auth(req)
        c.request("POST", "/", body=body, headers=dict(req.headers.items()))
        r = c.getresponse()
        r.read()
        out.append(str(r.status))
    print(" ".join(out), c.sock is not None)
PY

client() { env -u AWS_PROFILE -u AWS_DEFAULT_PROFILE -u http_proxy -u https_proxy -u HTTP_PROXY -u HTTPS_PROXY \
	AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_EC2_METADATA_DISABLED=true \
	"$py" "$work/client.py" "$port" "$@"; }
# rec EXPR: EXPR (python, over r = the last record) evaluated on the record file.
rec() { "$py" -c 'import json, sys; r = json.loads(open(sys.argv[1]).read().splitlines()[-1]); print(eval(sys.argv[2]))' "$work/rec.jsonl" "$1"; }

records="$work/rec.jsonl"
"$py" "$standin" --listen 127.0.0.1:0 --region us-east-1 --record "$records" \
	--key AKIDSTANDINTEST:s3cr3t/K3y+x --key AKIDSESSION:sess-secret:sess-token \
	--ecs-path /v2/credentials/abc --ecs-ttl-s 2 --ready-file "$work/ready" 2>"$work/standin.log" &
pid=$!
for _ in $(seq 50); do
	[ -s "$work/ready" ] && break
	sleep 0.1
done
port=$(cat "$work/ready" 2>/dev/null)
check "the stand-in listens and writes its port to the ready file" test -n "$port"
K=(akid=AKIDSTANDINTEST "secret=s3cr3t/K3y+x")

eq "a signed gzip PutMetricData is accepted" "$(client put "${K[@]}" gzip=1 n=2 stamp=1)" "200 -"
eq "it is recorded with its key, gzip and namespace" \
	"$(rec '(r["status"], r["error"], r["access_key_id"], r["gzip"], r["bytes"] > 0, r["namespace"])')" \
	"(200, None, 'AKIDSTANDINTEST', True, True, 'sgprobe/test')"
eq "its metrics are decoded with values, units and dimensions" \
	"$(rec '[(m["name"], m["value"], m["unit"], m["dimensions"]) for m in r["metrics"]]')" \
	"[('ProbeFailures', 3.0, 'Count', {'From': 'web role', 'To': 'db/5432'}), ('M2', 0.5, 'Count', {'From': 'web role', 'To': 'db/5432'})]"
eq "its timestamps are kept" "$(rec 'all(m["timestamp"].endswith("Z") and m["timestamp_s"] > 0 for m in r["metrics"])')" True

eq "botocore's own CloudWatch client is accepted" "$(client sdk "${K[@]}" 2>&1 | tail -n1)" "200 -"
eq "the SDK call's metrics, resolution and Values/Counts are decoded" \
	"$(rec '(r["gzip"], r["namespace"], r["metrics"][0]["dimensions"], r["metrics"][0]["storage_resolution"], r["metrics"][1]["values"], r["metrics"][1]["counts"])')" \
	"(False, 'sgprobe/sdk', {'Cell': 'web->api:8000'}, 1, [1.0, 2.0], [3.0, 4.0])"
eq "two calls on one keep-alive connection" "$(client keepalive "${K[@]}")" "200 200 True"

eq "a signed User-Agent (botocore never signs it, AWS accepts it) is accepted" \
	"$(client put "${K[@]}" sign_ua=1)" "200 -"

eq "one byte of the body changed after signing: SignatureDoesNotMatch" \
	"$(client put "${K[@]}" gzip=1 tamper=1)" "403 SignatureDoesNotMatch"
eq "... recorded as such" "$(rec '(r["status"], r["error"], r["metrics"])')" "(403, 'SignatureDoesNotMatch', [])"
eq "an unknown key: InvalidClientTokenId" \
	"$(client put akid=AKIDNOBODY secret=x gzip=1)" "403 InvalidClientTokenId"
eq "a wrong secret: SignatureDoesNotMatch" \
	"$(client put akid=AKIDSTANDINTEST secret=wrong)" "403 SignatureDoesNotMatch"
eq "no Authorization: MissingAuthenticationToken" "$(client put)" "403 MissingAuthenticationToken"
eq "X-Amz-Date 20 minutes old: SignatureDoesNotMatch" "$(client put "${K[@]}" skew=-1200)" "403 SignatureDoesNotMatch"
eq "a session key without its token: InvalidClientTokenId" \
	"$(client put akid=AKIDSESSION secret=sess-secret token=sess-token drop_token=1)" "403 InvalidClientTokenId"
eq "a session key with its signed token is accepted" \
	"$(client put akid=AKIDSESSION secret=sess-secret token=sess-token gzip=1)" "200 -"

eq "the throttle fault is queued" "$(client fault q=throttle=1)" "200 ok"
eq "the next call is throttled" "$(client put "${K[@]}" gzip=1)" "400 Throttling"
eq "... and recorded with status 400 and no metrics" "$(rec '(r["status"], r["error"], r["metrics"])')" "(400, 'Throttling', [])"
eq "the call after it is accepted" "$(client put "${K[@]}" gzip=1)" "200 -"
client fault 'q=status=503&n=1' >/dev/null
eq "the 503 fault: ServiceUnavailable once" "$(client put "${K[@]}") $(client put "${K[@]}")" "503 ServiceUnavailable 200 -"
client fault q=drop=1 >/dev/null
eq "the drop fault: the connection closes without an answer, once" \
	"$(client put "${K[@]}") / $(client put "${K[@]}")" "closed RemoteDisconnected / 200 -"

ecs=$(client ecs path=/v2/credentials/abc)
read -r eakid esecret etoken eexp <<<"$ecs"
eq "ECS credentials: the first set is ASIASTANDIN000000001" "$eakid" "ASIASTANDIN000000001"
check "... with an ISO 8601 Z expiration without fractions" \
	"$py" -c 'import sys, re; sys.exit(not re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", sys.argv[1]))' "$eexp"
eq "... recorded as an ECS call" "$(rec '(r["ecs"], r["access_key_id"], r["expiration"])')" "(True, 'ASIASTANDIN000000001', '$eexp')"
E=("akid=$eakid" "secret=$esecret" "token=$etoken")
eq "ECS credentials sign an accepted call" "$(client put "${E[@]}" gzip=1)" "200 -"
eq "a second ECS fetch is a new set" "$(client ecs path=/v2/credentials/abc | cut -d' ' -f1)" "ASIASTANDIN000000002"

eq "1001 metrics: InvalidParameterValue" "$(client put "${K[@]}" gzip=1 n=1001)" "400 InvalidParameterValue"
eq "1000 metrics are accepted" "$(client put "${K[@]}" gzip=1 n=1000)" "200 -"
eq "an unknown unit: InvalidParameterValue" "$(client put "${K[@]}" unit=Furlongs)" "400 InvalidParameterValue"

# The TTL is 2 s: wait until just past the Expiration the stand-in announced.
sleep "$("$py" -c 'import calendar, sys, time; print(max(0.0, calendar.timegm(time.strptime(sys.argv[1], "%Y-%m-%dT%H:%M:%SZ")) - time.time() + 0.2))' "$eexp")"
eq "after the TTL the ECS credentials are refused: ExpiredToken" "$(client put "${E[@]}" gzip=1)" "403 ExpiredToken"

# TLS: a second stand-in with a self-signed certificate for 127.0.0.1.
if command -v openssl >/dev/null && openssl req -x509 -newkey rsa:2048 -nodes -days 1 \
	-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
	-keyout "$work/tls.key" -out "$work/tls.crt" 2>/dev/null; then
	"$py" "$standin" --listen 127.0.0.1:0 --tls-cert "$work/tls.crt" --tls-key "$work/tls.key" \
		--key AKIDSTANDINTEST:s3cr3t/K3y+x --record "$work/tls.jsonl" \
		--ready-file "$work/tls.ready" 2>"$work/tls.log" &
	tpid=$!
	for _ in $(seq 50); do
		[ -s "$work/tls.ready" ] && break
		sleep 0.1
	done
	eq "over TLS a signed gzip call is accepted" \
		"$(port=$(cat "$work/tls.ready") client put "${K[@]}" gzip=1 tls="$work/tls.crt")" "200 -"
	kill "$tpid" && wait "$tpid"
	tpid=""
else
	ok "over TLS a signed gzip call is accepted # SKIP no openssl"
fi

n=$(wc -l <"$records")
eq "GET /_standin/records returns every record" \
	"$(curl -s --noproxy '*' "http://127.0.0.1:$port/_standin/records" | "$py" -c 'import json, sys; print(len(json.load(sys.stdin)))')" "$n"
check "the log names keys but never a secret or token" sh -c \
	"grep -q AKIDSTANDINTEST '$work/standin.log' && ! grep -q -e s3cr3t -e sess-secret -e sess-token -e '$esecret' -e '$etoken' '$work/standin.log'"
kill "$pid" && wait "$pid"
rc=$?
pid=""
eq "SIGTERM stops it cleanly" "$rc" 0
done_testing
