#!/usr/bin/python3
"""A stand-in for Amazon CloudWatch (PutMetricData over the Query protocol) and
for the ECS container credentials endpoint, for the tests. Every request's
SigV4 signature is recomputed with botocore (Debian's python3-botocore), which
is AWS's own code and shares nothing with the collector's C signer.
Standard library and botocore only; run it with /usr/bin/python3:

  /usr/bin/python3 tests/integration/cw_standin.py --listen ADDR:PORT
      [--tls-cert FILE --tls-key FILE] [--region us-east-1] [--record FILE]
      [--key AKID:SECRET[:TOKEN]]... [--ecs-path /v2/credentials/ID]
      [--ecs-ttl-s N] [--ecs-auth VALUE] [--ready-file FILE]
      [--max-request-bytes N] [--idle-timeout-s N] [--issued-file FILE]

--listen 127.0.0.1:0 picks a free port; once the socket listens the port is
written (with a newline) to --ready-file. [::1]:PORT listens on IPv6.

POST /  CloudWatch: SigV4 (service monitoring, --region) checked by botocore;
        Content-Encoding gzip; PutMetricData validated as CloudWatch does (and
        stricter: unknown parameters, repeated parameters and gaps in member
        numbers are refused, where CloudWatch might ignore them). 200
        PutMetricDataResponse, or CloudWatch's ErrorResponse XML:
          403 MissingAuthenticationToken, InvalidClientTokenId, ExpiredToken,
              SignatureDoesNotMatch (also: X-Amz-Date off by > 15 min, wrong
              scope, unsigned session token)
          400 IncompleteSignature (malformed Authorization, host or
              x-amz-date unsigned), InvalidParameterValue, MissingParameter,
              InvalidParameterCombination, MissingAction, InvalidAction,
              MalformedQueryString (bad form or gzip), Throttling (fault)
          413 RequestEntityTooLarge (body or decompressed body > 1 MiB)
          411 MissingContentLength; 5xx from the status fault
GET <--ecs-path>
        ECS credentials: a new set on each call, ASIASTANDIN000000001 and on (AWS's form), valid for
        POST / until Expiration = now + --ecs-ttl-s (rounded up to a second).
        With --ecs-auth, the Authorization header must equal VALUE (else 401/403).
        With --issued-file, issued sets are appended to FILE, and POST / also
        accepts the sets found there: an ECS stand-in in the collector's
        namespace and a CloudWatch stand-in on the endpoint host agree.
POST /_standin/fault?throttle=N | ?status=5xx&n=N | ?drop=N | ?delay_ms=D&n=N | ?clear=1
        queues faults for the next PutMetricData calls, first in first out;
        a faulted call is answered before any check (drop: the connection is
        closed without an answer) and recorded with no metrics. Answers "ok".
GET /_standin/records
        every record of this process as a JSON array.

Every CloudWatch call is appended to --record as one JSON line, flushed at once:
  {"time", "status" (null when dropped), "error" (Code or null),
   "access_key_id", "gzip", "bytes" (as received), "namespace", "request_id",
   "metrics": [{"name", "value", "unit", "timestamp" (as sent or null),
                "timestamp_s", "storage_resolution", "dimensions": {Name: Value},
                and "statistic_values", "values", "counts" when sent}]}
and every ECS call as {"time", "ecs": true, "status", "access_key_id",
"expiration", "authorization"}. The log (stderr, one line a request) never
shows a secret or a token.
"""
import argparse
import calendar
import datetime
import hashlib
import hmac
import http.server
import json
import math
import os
import re
import secrets
import signal
import socket
import ssl
import sys
import threading
import time
import urllib.parse
import uuid
import zlib

from botocore.auth import SIGNED_HEADERS_BLACKLIST, SigV4Auth
from botocore.awsrequest import AWSRequest, HTTPHeaders
from botocore.credentials import Credentials

NS = "http://monitoring.amazonaws.com/doc/2010-08-01/"
SERVICE = "monitoring"
MAX_METRICS = 1000
MAX_DIMENSIONS = 30
MAX_VALUES = 150
SKEW_S = 15 * 60
VALUE_MAX = 2.0**360
VALUE_MIN = 2.0**-360
UNITS = {
    "Seconds", "Microseconds", "Milliseconds", "Bytes", "Kilobytes", "Megabytes",
    "Gigabytes", "Terabytes", "Bits", "Kilobits", "Megabits", "Gigabits",
    "Terabits", "Percent", "Count", "Bytes/Second", "Kilobytes/Second",
    "Megabytes/Second", "Gigabytes/Second", "Terabytes/Second", "Bits/Second",
    "Kilobits/Second", "Megabits/Second", "Gigabits/Second", "Terabits/Second",
    "Count/Second", "None",
}
NUMBER_RE = re.compile(r"^[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$")
TIMESTAMP_RE = re.compile(
    r"^([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})$")
AMZ_DATE_RE = re.compile(r"^[0-9]{8}T[0-9]{6}Z$")
MEMBER_RE = re.compile(r"^MetricData\.member\.([0-9]+)\.(.+)$")
DIM_RE = re.compile(r"^Dimensions\.member\.([0-9]+)\.(Name|Value)$")
LIST_RE = re.compile(r"^(Values|Counts)\.member\.([0-9]+)$")
STAT_FIELDS = ("SampleCount", "Sum", "Minimum", "Maximum")
SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you "
    "provided. Check your AWS Secret Access Key and signing method. Consult "
    "the service documentation for details.")


def log(msg):
    sys.stderr.write(f"cw_standin: {msg}\n")
    sys.stderr.flush()


class Fail(Exception):
    """An answer other than 200: CloudWatch's ErrorResponse."""

    def __init__(self, status, code, message, kind="Sender", close=False):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.kind = kind
        self.close = close


def xml_escape(s):
    return (s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;"))


def error_xml(fail, request_id):
    return (f'<ErrorResponse xmlns="{NS}"><Error><Type>{fail.kind}</Type>'
            f"<Code>{fail.code}</Code><Message>{xml_escape(fail.message)}</Message>"
            f"</Error><RequestId>{request_id}</RequestId></ErrorResponse>\n").encode()


def ok_xml(request_id):
    return (f'<PutMetricDataResponse xmlns="{NS}"><ResponseMetadata>'
            f"<RequestId>{request_id}</RequestId></ResponseMetadata>"
            "</PutMetricDataResponse>\n").encode()


def invalid(param, value=None, why=None):
    if why is None:
        why = f"The value {value} for parameter {param} is invalid."
    return Fail(400, "InvalidParameterValue", why)


def missing(param):
    return Fail(400, "MissingParameter", f"The parameter {param} is required.")


# ---------------------------------------------------------------- state

class Key:
    def __init__(self, secret, token, expires):
        self.secret = secret
        self.token = token
        self.expires = expires  # epoch seconds, None: never


class State:
    def __init__(self, args):
        self.lock = threading.Lock()
        self.region = args.region
        self.keys = {}
        for spec in args.key:
            parts = spec.split(":", 2)
            if len(parts) < 2 or not parts[0] or not parts[1]:
                raise SystemExit(f"cw_standin: --key wants AKID:SECRET[:TOKEN], got one with {len(parts)} part(s)")
            self.keys[parts[0]] = Key(parts[1], parts[2] if len(parts) > 2 else None, None)
        self.faults = []  # [kind, remaining, arg]
        self.records = []
        self.record_file = open(args.record, "a", encoding="utf-8") if args.record else None
        self.ecs_n = 0
        self.ecs_ttl_s = args.ecs_ttl_s
        self.ecs_path = args.ecs_path
        self.ecs_auth = args.ecs_auth
        self.max_bytes = args.max_request_bytes
        # Keys issued by another stand-in (its ECS endpoint in another namespace).
        self.issued_file = args.issued_file

    def record(self, rec):
        line = json.dumps(rec, sort_keys=False)
        with self.lock:
            self.records.append(rec)
            if self.record_file:
                self.record_file.write(line + "\n")
                self.record_file.flush()

    def take_fault(self):
        with self.lock:
            if not self.faults:
                return None
            f = self.faults[0]
            f[1] -= 1
            if f[1] <= 0:
                self.faults.pop(0)
            return (f[0], f[2])

    def issue(self):
        with self.lock:
            self.ecs_n += 1
            akid = f"ASIASTANDIN{self.ecs_n:09d}"
            expires = math.ceil(time.time() + self.ecs_ttl_s)
            key = Key(secrets.token_urlsafe(30), secrets.token_urlsafe(96), expires)
            self.keys[akid] = key
            if self.issued_file:
                with open(self.issued_file, "a", encoding="utf-8") as f:
                    f.write(json.dumps({"akid": akid, "secret": key.secret, "token": key.token,
                                        "expires": expires}) + "\n")
        return akid, key

    def key(self, akid):
        with self.lock:
            k = self.keys.get(akid)
            if k is None and self.issued_file and os.path.exists(self.issued_file):
                with open(self.issued_file, encoding="utf-8") as f:
                    for line in f:
                        try:
                            e = json.loads(line)
                        except ValueError:
                            continue  # a line being written
                        if e.get("akid") == akid:
                            k = Key(e["secret"], e["token"], e["expires"])
            return k


def iso_z(epoch):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


# ---------------------------------------------------------------- SigV4

class SigV4KeepAll(SigV4Auth):
    """botocore's SigV4Auth without its blacklist (user-agent, expect,
    x-amzn-trace-id): AWS accepts those when a client signs them."""

    def headers_to_sign(self, request):
        header_map = HTTPHeaders()
        for name, value in request.headers.items():
            header_map[name.lower()] = value
        return header_map


def parse_authorization(value):
    alg, _, rest = value.partition(" ")
    if alg != "AWS4-HMAC-SHA256":
        raise Fail(400, "IncompleteSignature",
                   f"Unsupported AWS 'algorithm': '{alg}'.")
    fields = {}
    for part in rest.split(","):
        k, eq, v = part.strip().partition("=")
        if not eq or k in fields:
            raise Fail(400, "IncompleteSignature",
                       "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' parameters, each once.")
        fields[k] = v
    for need in ("Credential", "SignedHeaders", "Signature"):
        if need not in fields:
            raise Fail(400, "IncompleteSignature",
                       f"Authorization header requires '{need}' parameter.")
    if set(fields) != {"Credential", "SignedHeaders", "Signature"}:
        raise Fail(400, "IncompleteSignature",
                   f"Authorization header has unknown parameters: {sorted(set(fields) - {'Credential', 'SignedHeaders', 'Signature'})}.")
    scope = fields["Credential"].split("/")
    if len(scope) != 5 or not scope[0]:
        raise Fail(400, "IncompleteSignature",
                   "Credential must have the form AKID/DATE/REGION/SERVICE/aws4_request.")
    return scope, fields["SignedHeaders"], fields["Signature"]


def akid_of(headers):
    """The access key id named by the Authorization header, for the record."""
    m = re.search(r"Credential=([^/,\s]+)/", headers.get("Authorization", ""))
    return m.group(1) if m else None


def verify_sigv4(state, method, path, headers, raw, redactions):
    """Checks the request's SigV4 signature with botocore. Returns the access
    key id; raises Fail. headers: the http.server message (ordered, with
    repeats)."""
    auth_value = headers.get("Authorization")
    if auth_value is None:
        raise Fail(403, "MissingAuthenticationToken", "Request is missing Authentication Token")
    if len(headers.get_all("Authorization")) != 1:
        raise Fail(400, "IncompleteSignature", "Only one Authorization header is allowed.")
    (akid, scope_date, scope_region, scope_service, terminator), signed_str, given_sig = \
        parse_authorization(auth_value)
    amz_date = headers.get("X-Amz-Date")
    if amz_date is None:
        raise Fail(400, "IncompleteSignature",
                   "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.")
    if not AMZ_DATE_RE.match(amz_date):
        raise Fail(400, "IncompleteSignature",
                   f"X-Amz-Date must be in the ISO-8601 basic format YYYYMMDD'T'HHMMSS'Z', not '{amz_date}'.")

    key = state.key(akid)
    if key is None:
        raise Fail(403, "InvalidClientTokenId", "The security token included in the request is invalid.")
    if key.expires is not None and time.time() >= key.expires:
        raise Fail(403, "ExpiredToken", "The security token included in the request is expired")
    signed = signed_str.split(";")
    token = headers.get("X-Amz-Security-Token")
    if key.token is not None:
        redactions.append(key.token)
        if token is None:
            raise Fail(403, "InvalidClientTokenId",
                       "The security token included in the request is invalid (X-Amz-Security-Token is missing).")
        if len(headers.get_all("X-Amz-Security-Token")) != 1 or not hmac.compare_digest(token, key.token):
            raise Fail(403, "InvalidClientTokenId", "The security token included in the request is invalid.")
        if "x-amz-security-token" not in signed:
            raise Fail(403, "SignatureDoesNotMatch",
                       "X-Amz-Security-Token must be among the SignedHeaders.")
    elif token is not None:
        raise Fail(403, "InvalidClientTokenId",
                   "The security token included in the request is invalid (this key has no session token).")

    if scope_service != SERVICE:
        raise Fail(403, "SignatureDoesNotMatch",
                   f"Credential should be scoped to correct service: '{SERVICE}'.")
    if scope_region != state.region:
        raise Fail(403, "SignatureDoesNotMatch",
                   f"Credential should be scoped to a valid region, not '{scope_region}'.")
    if terminator != "aws4_request":
        raise Fail(403, "SignatureDoesNotMatch",
                   "Credential should be scoped with a valid terminator: 'aws4_request'.")
    if scope_date != amz_date[:8]:
        raise Fail(403, "SignatureDoesNotMatch",
                   f"Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{scope_date}' != '{amz_date[:8]}'.")
    try:
        t = calendar.timegm(time.strptime(amz_date, "%Y%m%dT%H%M%SZ"))
    except ValueError:
        raise Fail(400, "IncompleteSignature", f"X-Amz-Date '{amz_date}' is not a valid date.")
    now = time.time()
    if t < now - SKEW_S:
        raise Fail(403, "SignatureDoesNotMatch",
                   f"Signature expired: {amz_date} is now earlier than {time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(now - SKEW_S))} "
                   f"({time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(now))} - 15 min.)")
    if t > now + SKEW_S:
        raise Fail(403, "SignatureDoesNotMatch",
                   f"Signature not yet current: {amz_date} is still later than {time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(now + SKEW_S))} "
                   f"({time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(now))} + 15 min.)")

    if "host" not in signed:
        raise Fail(400, "IncompleteSignature",
                   "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.")
    if "x-amz-date" not in signed:
        raise Fail(400, "IncompleteSignature",
                   "'X-Amz-Date' must be a 'SignedHeader' in the AWS Authorization.")
    if signed != sorted(set(signed)) or any(h != h.lower() or not h for h in signed):
        raise Fail(403, "SignatureDoesNotMatch",
                   f"SignedHeaders must be lowercase, sorted, without repeats: '{signed_str}'.")
    present = {name.lower() for name in headers.keys()}
    absent = [h for h in signed if h not in present]
    if absent:
        raise Fail(403, "SignatureDoesNotMatch",
                   f"SignedHeaders names headers the request does not carry: {', '.join(absent)}.")
    content_sha = headers.get("X-Amz-Content-SHA256")
    if content_sha is not None and content_sha != hashlib.sha256(raw).hexdigest():
        raise Fail(403, "SignatureDoesNotMatch",
                   "X-Amz-Content-SHA256 is not the SHA-256 of the body.")

    host = headers.get("Host")
    url = "https://" + host + path
    req = AWSRequest(method=method, url=url, data=raw)
    for name, value in headers.items():
        if name.lower() in signed:
            req.headers[name] = value
    req.context["timestamp"] = amz_date
    creds = Credentials(akid, key.secret, key.token)
    auth = SigV4Auth(creds, SERVICE, state.region)
    ours = auth.signed_headers(auth.headers_to_sign(req))
    if ours != signed_str:
        ours_set = set(ours.split(";"))
        dropped = set(signed) - ours_set
        added = ours_set - set(signed)
        if not added and dropped <= set(SIGNED_HEADERS_BLACKLIST):
            # botocore never signs these itself, but AWS accepts them signed.
            auth = SigV4KeepAll(creds, SERVICE, state.region)
            ours = auth.signed_headers(auth.headers_to_sign(req))
        if ours != signed_str:
            raise Fail(403, "SignatureDoesNotMatch",
                       f"botocore signs the headers '{ours}', the request lists '{signed_str}'.")
    canonical = auth.canonical_request(req)
    string_to_sign = auth.string_to_sign(req, canonical)
    expected = auth.signature(string_to_sign, req)
    if not hmac.compare_digest(expected, given_sig):
        shown = canonical
        for r in redactions:
            shown = shown.replace(r, "<redacted>")
        log("signature mismatch; botocore's canonical request:\n    "
            + shown.replace("\n", "\n    ") + "\n  string to sign:\n    "
            + string_to_sign.replace("\n", "\n    "))
        raise Fail(403, "SignatureDoesNotMatch", SIGNATURE_MISMATCH)
    return akid


# ---------------------------------------------------------------- PutMetricData

def parse_form(text):
    """application/x-www-form-urlencoded → [(name, value)]. Raises Fail."""
    out = []
    for field in text.split("&"):
        if field == "":
            continue
        name, eq, value = field.partition("=")
        if not eq:
            raise Fail(400, "MalformedQueryString", f"The form field '{name[:80]}' has no '='.")
        try:
            out.append((urllib.parse.unquote_plus(name, errors="strict"),
                        urllib.parse.unquote_plus(value, errors="strict")))
        except UnicodeDecodeError:
            raise Fail(400, "MalformedQueryString", "A form field is not valid UTF-8 once percent-decoded.")
    return out


def parse_number(param, s):
    if not NUMBER_RE.match(s):
        raise invalid(param, s)
    v = float(s)
    if not math.isfinite(v) or abs(v) > VALUE_MAX or (v != 0 and abs(v) < VALUE_MIN):
        raise invalid(param, s)
    return v


def parse_timestamp(param, s, now):
    m = TIMESTAMP_RE.match(s)
    if not m:
        raise invalid(param, s)
    y, mo, d, hh, mi, ss = (int(x) for x in m.groups()[:6])
    try:
        dt = datetime.datetime(y, mo, d, hh, mi, ss, tzinfo=datetime.timezone.utc)
    except ValueError:
        raise invalid(param, s)
    t = dt.timestamp() + (float("0" + m.group(7)) if m.group(7) else 0.0)
    zone = m.group(8)
    if zone != "Z":
        off = int(zone[1:3]) * 3600 + int(zone[4:6]) * 60
        t -= off if zone[0] == "+" else -off
    if t < now - 14 * 86400:
        raise invalid(param, why=f"The parameter {param} must specify a time no more than two weeks in the past.")
    if t > now + 2 * 3600:
        raise invalid(param, why=f"The parameter {param} must specify a time no more than two hours in the future.")
    return t


def check_text(param, s, maxlen, ascii_only=False, no_colon=False):
    if len(s) < 1 or len(s) > maxlen:
        raise invalid(param, why=f"The parameter {param} must be between 1 and {maxlen} characters long.")
    if not s.strip():
        raise invalid(param, why=f"The parameter {param} must contain at least one non-whitespace character.")
    if ascii_only and any(ord(c) < 32 or ord(c) > 126 for c in s):
        raise invalid(param, why=f"The parameter {param} must contain only printable ASCII characters.")
    if no_colon and s.startswith(":"):
        raise invalid(param, why=f"The parameter {param} must not start with ':'.")


def dense(param, indexed, limit):
    """{index: x} with indices 1..n → [x]; raises Fail on gaps or a size > limit."""
    n = max(indexed) if indexed else 0
    if n > limit or len(indexed) > limit:
        raise invalid(param, why=f"The collection {param} must not have a size greater than {limit}.")
    for i in range(1, n + 1):
        if i not in indexed:
            raise invalid(param, why=f"The collection {param} has no member {i}: members are numbered 1, 2, ... without gaps.")
    return [indexed[i] for i in range(1, n + 1)]


def index_of(param, s):
    if not s.isdigit() or s.startswith("0"):
        raise invalid(param, why=f"The parameter name {param} has an invalid member index '{s}'.")
    return int(s)


def put_metric_data(pairs, now):
    """Validates the form's parameters as CloudWatch does. Returns
    (namespace, [metric record]); raises Fail."""
    params = {}
    for name, value in pairs:
        if name in params:
            raise Fail(400, "MalformedQueryString", f"The parameter {name} appears more than once.")
        params[name] = value
    action = params.get("Action")
    if action is None:
        raise Fail(400, "MissingAction", "The request is missing an action or a required parameter.")
    version = params.get("Version")
    if version is None:
        raise missing("Version")
    if version != "2010-08-01":
        raise Fail(400, "NoSuchVersion", f"The requested version ({version}) of service AmazonCloudWatch does not exist.")
    if action != "PutMetricData":
        raise Fail(400, "InvalidAction", f"Could not find operation {action} for version 2010-08-01.")

    members = {}
    for name, value in params.items():
        if name in ("Action", "Version", "Namespace"):
            continue
        if name == "StrictEntityValidation":
            if value not in ("true", "false"):
                raise invalid(name, value)
            continue
        m = MEMBER_RE.match(name)
        if not m:
            raise invalid(name, why=f"The stand-in does not know the parameter {name} (CloudWatch may ignore it silently).")
        i = index_of(name, m.group(1))
        if i > MAX_METRICS:
            raise invalid("MetricData", why=f"The collection MetricData must not have a size greater than {MAX_METRICS}.")
        members.setdefault(i, {})[m.group(2)] = value

    namespace = params.get("Namespace")
    if namespace is None:
        raise missing("Namespace")
    check_text("Namespace", namespace, 255, ascii_only=True, no_colon=True)
    if namespace.startswith("AWS/"):
        raise invalid("Namespace", namespace)
    if not members:
        raise missing("MetricData")
    metrics = []
    for i, fields in enumerate(dense("MetricData", members, MAX_METRICS), start=1):
        p = f"MetricData.member.{i}"
        dims, stats, lists = {}, {}, {"Values": {}, "Counts": {}}
        for field, value in fields.items():
            dm = DIM_RE.match(field)
            lm = LIST_RE.match(field)
            if dm:
                j = index_of(f"{p}.{field}", dm.group(1))
                if j > MAX_DIMENSIONS:
                    raise invalid(f"{p}.Dimensions", why=f"The collection {p}.Dimensions must not have a size greater than {MAX_DIMENSIONS}.")
                dims.setdefault(j, {})[dm.group(2)] = value
            elif lm:
                j = index_of(f"{p}.{field}", lm.group(2))
                if j > MAX_VALUES:
                    raise invalid(f"{p}.{lm.group(1)}", why=f"The collection {p}.{lm.group(1)} must not have a size greater than {MAX_VALUES}.")
                lists[lm.group(1)][j] = value
            elif field.startswith("StatisticValues.") and field[16:] in STAT_FIELDS:
                stats[field[16:]] = value
            elif field not in ("MetricName", "Value", "Unit", "Timestamp", "StorageResolution"):
                raise invalid(f"{p}.{field}", why=f"The stand-in does not know the parameter {p}.{field} (CloudWatch may ignore it silently).")
        name = fields.get("MetricName")
        if name is None:
            raise missing(f"{p}.MetricName")
        check_text(f"{p}.MetricName", name, 255)
        rec = {"name": name, "value": None, "unit": None, "timestamp": None,
               "timestamp_s": None, "storage_resolution": None, "dimensions": {}}
        has_value = "Value" in fields
        has_stats = bool(stats)
        has_values = bool(lists["Values"])
        if has_value + has_stats + has_values > 1:
            both = [x for x, h in (("Value", has_value), ("StatisticValues", has_stats), ("Values", has_values)) if h]
            raise Fail(400, "InvalidParameterCombination",
                       f"The parameters {p}.{both[0]} and {p}.{both[1]} are mutually exclusive and you have specified both.")
        if lists["Counts"] and not has_values:
            raise Fail(400, "InvalidParameterCombination", f"The parameter {p}.Counts requires {p}.Values.")
        if not (has_value or has_stats or has_values):
            raise missing(f"{p}.Value")
        if has_value:
            rec["value"] = parse_number(f"{p}.Value", fields["Value"])
        if has_stats:
            sv = {}
            for s in STAT_FIELDS:
                if s not in stats:
                    raise missing(f"{p}.StatisticValues.{s}")
                sv[s] = parse_number(f"{p}.StatisticValues.{s}", stats[s])
            if sv["SampleCount"] <= 0 or sv["Minimum"] > sv["Maximum"]:
                raise invalid(f"{p}.StatisticValues", why=f"The parameter {p}.StatisticValues is inconsistent (SampleCount must be > 0, Minimum <= Maximum).")
            rec["statistic_values"] = sv
        if has_values:
            vals = dense(f"{p}.Values", lists["Values"], MAX_VALUES)
            rec["values"] = [parse_number(f"{p}.Values.member.{k}", v) for k, v in enumerate(vals, 1)]
            if lists["Counts"]:
                counts = dense(f"{p}.Counts", lists["Counts"], MAX_VALUES)
                if len(counts) != len(vals):
                    raise invalid(f"{p}.Counts", why=f"The parameters {p}.Values and {p}.Counts must be of the same size.")
                rec["counts"] = [parse_number(f"{p}.Counts.member.{k}", v) for k, v in enumerate(counts, 1)]
        if "Unit" in fields:
            if fields["Unit"] not in UNITS:
                raise invalid(f"{p}.Unit", fields["Unit"])
            rec["unit"] = fields["Unit"]
        if "Timestamp" in fields:
            rec["timestamp"] = fields["Timestamp"]
            rec["timestamp_s"] = parse_timestamp(f"{p}.Timestamp", fields["Timestamp"], now)
        if "StorageResolution" in fields:
            if fields["StorageResolution"] not in ("1", "60"):
                raise invalid(f"{p}.StorageResolution", fields["StorageResolution"])
            rec["storage_resolution"] = int(fields["StorageResolution"])
        for j, d in enumerate(dense(f"{p}.Dimensions", dims, MAX_DIMENSIONS), start=1):
            dp = f"{p}.Dimensions.member.{j}"
            if "Name" not in d:
                raise missing(f"{dp}.Name")
            if "Value" not in d:
                raise missing(f"{dp}.Value")
            check_text(f"{dp}.Name", d["Name"], 255, ascii_only=True, no_colon=True)
            check_text(f"{dp}.Value", d["Value"], 1024, ascii_only=True)
            if d["Name"] in rec["dimensions"]:
                raise invalid(f"{p}.Dimensions", why=f"The collection {p}.Dimensions must not contain duplicate dimension names ({d['Name']}).")
            rec["dimensions"][d["Name"]] = d["Value"]
        metrics.append(rec)
    return namespace, metrics


def gunzip(raw, limit):
    out = []
    size = 0
    data = raw
    while True:
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            chunk = d.decompress(data, limit + 1 - size)
        except zlib.error as e:
            raise Fail(400, "MalformedQueryString", f"The body is not valid gzip: {e}.")
        size += len(chunk)
        out.append(chunk)
        if size > limit or d.unconsumed_tail:
            raise Fail(413, "RequestEntityTooLarge",
                       f"Request size exceeded {limit} bytes once decompressed.")
        if not d.eof:
            raise Fail(400, "MalformedQueryString", "The body is truncated gzip.")
        data = d.unused_data
        if not data:
            return b"".join(out)


# ---------------------------------------------------------------- HTTP

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "cw-standin"
    sys_version = ""
    timeout = 60

    def setup(self):
        super().setup()
        if isinstance(self.request, ssl.SSLSocket):
            self.request.do_handshake()

    def log_request(self, code="-", size="-"):
        pass  # each handler logs one line of its own

    def log_message(self, fmt, *args):
        log(f"{self.client_address[0]} " + (fmt % args))

    @property
    def st(self):
        return self.server.state

    def send(self, status, body, ctype, extra=()):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra:
            self.send_header(k, v)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def read_body(self, limit):
        """The body as bytes; raises Fail (411, 413, 400) and closes the
        connection when the body cannot be read in step."""
        te = self.headers.get_all("Transfer-Encoding") or []
        if te:
            if [t.strip().lower() for t in te] != ["chunked"]:
                self.close_connection = True
                raise Fail(400, "MalformedInput", f"Unsupported Transfer-Encoding {te}.")
            return self.read_chunked(limit)
        cls = self.headers.get_all("Content-Length") or []
        if not cls:
            if self.command == "POST":
                self.close_connection = True
                raise Fail(411, "MissingContentLength", "You must provide the Content-Length HTTP header.")
            return b""
        if len(cls) != 1 or not cls[0].strip().isdigit():
            self.close_connection = True
            raise Fail(400, "MalformedInput", "The Content-Length header is invalid.")
        n = int(cls[0].strip())
        if n > limit:
            self.close_connection = True
            self.drain(n)
            raise Fail(413, "RequestEntityTooLarge", f"Request size {n} exceeded {limit} bytes.")
        data = self.rfile.read(n)
        if len(data) != n:
            self.close_connection = True
            raise ConnectionError("the client closed the connection inside the body")
        return data

    def drain(self, n):
        if n > 16 << 20:
            return
        while n > 0:
            chunk = self.rfile.read(min(n, 65536))
            if not chunk:
                return
            n -= len(chunk)

    def read_chunked(self, limit):
        out = []
        size = 0
        while True:
            line = self.rfile.readline(1024)
            try:
                n = int(line.split(b";")[0].strip(), 16)
            except ValueError:
                self.close_connection = True
                raise Fail(400, "MalformedInput", "Bad chunk size line.")
            if n == 0:
                while self.rfile.readline(8192) not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(out)
            size += n
            if size > limit:
                self.close_connection = True
                raise Fail(413, "RequestEntityTooLarge", f"Request size exceeded {limit} bytes.")
            out.append(self.rfile.read(n))
            self.rfile.readline(8)

    # --- routing

    def do_POST(self):
        path, _, query = self.path.partition("?")
        if path == "/":
            self.cloudwatch()
        elif path == "/_standin/fault":
            self.fault(query)
        else:
            self.close_connection = True
            self.send(404, b"not found\n", "text/plain")
            log(f"{self.client_address[0]} POST {path} -> 404")

    def do_GET(self):
        path = self.path.partition("?")[0]
        if self.st.ecs_path and path == self.st.ecs_path:
            self.ecs()
        elif path == "/_standin/records":
            with self.st.lock:
                body = json.dumps(self.st.records).encode() + b"\n"
            self.send(200, body, "application/json")
        else:
            self.send(404, b"not found\n", "text/plain")
            log(f"{self.client_address[0]} GET {path} -> 404")

    # --- the fault queue

    def fault(self, query):
        try:
            self.read_body(1 << 16)
            pairs = urllib.parse.parse_qsl(query, keep_blank_values=True, strict_parsing=True)
            q = dict(pairs)
            n = int(q.get("n", "1"))
            added = []
            for k, v in pairs:
                if k == "throttle":
                    added.append(["throttle", int(v), None])
                elif k == "drop":
                    added.append(["drop", int(v), None])
                elif k == "status":
                    s = int(v)
                    if not 500 <= s <= 599:
                        raise ValueError("status must be 5xx")
                    added.append(["status", n, s])
                elif k == "delay_ms":
                    added.append(["delay", n, int(v) / 1000.0])
                elif k == "clear":
                    with self.st.lock:
                        self.st.faults.clear()
                elif k != "n":
                    raise ValueError(f"unknown fault {k}")
            if any(f[1] < 0 for f in added):
                raise ValueError("negative count")
        except (ValueError, Fail) as e:
            self.send(400, f"bad fault: {e}\n".encode(), "text/plain")
            log(f"{self.client_address[0]} POST /_standin/fault?{query} -> 400")
            return
        with self.st.lock:
            self.st.faults.extend(f for f in added if f[1] > 0)
        self.send(200, b"ok\n", "text/plain")
        log(f"{self.client_address[0]} POST /_standin/fault?{query} -> 200")

    # --- CloudWatch

    def cloudwatch(self):
        st = self.st
        rid = str(uuid.uuid4())
        enc = (self.headers.get("Content-Encoding") or "").strip().lower()
        rec = {"time": time.time(), "status": None, "error": None,
               "access_key_id": akid_of(self.headers), "gzip": enc == "gzip",
               "bytes": 0, "namespace": None, "metrics": [], "request_id": rid}
        note = ""
        try:
            raw = self.read_body(st.max_bytes)
            rec["bytes"] = len(raw)
            fault = st.take_fault()
            if fault and fault[0] == "delay":
                time.sleep(fault[1])
                note = f" (delayed {fault[1]:g} s)"
                fault = None
            if fault:
                kind, arg = fault
                if kind == "drop":
                    self.close_connection = True
                    rec["error"] = "Dropped"
                    st.record(rec)
                    log(f"{self.client_address[0]} POST / -> dropped (fault) key={rec['access_key_id']} bytes={len(raw)}")
                    return
                if kind == "throttle":
                    raise Fail(400, "Throttling", "Rate exceeded")
                raise Fail(arg, "ServiceUnavailable" if arg == 503 else "InternalFailure",
                           "Service is unavailable (fault injected by the stand-in)."
                           if arg == 503 else "The request processing has failed because of an unknown error, exception or failure (fault injected by the stand-in).",
                           kind="Receiver")
            target = self.path
            rec["access_key_id"] = verify_sigv4(st, "POST", target, self.headers, raw, [])
            ctype = self.headers.get("Content-Type") or ""
            mtype, *cparams = [x.strip() for x in ctype.split(";")]
            if mtype.lower() != "application/x-www-form-urlencoded" or any(
                    x.lower().replace(" ", "") not in ("charset=utf-8", "") for x in cparams):
                raise invalid("Content-Type", why=f"Content-Type must be application/x-www-form-urlencoded (charset=utf-8 allowed), not '{ctype}'.")
            if enc == "gzip":
                body = gunzip(raw, st.max_bytes)
            elif enc in ("", "identity"):
                body = raw
            else:
                raise invalid("Content-Encoding", why=f"Unsupported Content-Encoding '{enc}'.")
            try:
                text = body.decode("ascii")
            except UnicodeDecodeError:
                raise Fail(400, "MalformedQueryString", "The form body must be ASCII (percent-encode the rest).")
            pairs = parse_form(text)
            query = self.path.partition("?")[2]
            if query:
                pairs = parse_form(query) + pairs
            rec["namespace"] = dict(pairs).get("Namespace")
            rec["namespace"], rec["metrics"] = put_metric_data(pairs, time.time())
            rec["status"] = 200
            self.send(200, ok_xml(rid), "text/xml", [("x-amzn-RequestId", rid)])
        except Fail as f:
            rec["status"] = f.status
            rec["error"] = f.code
            if f.close:
                self.close_connection = True
            self.send(f.status, error_xml(f, rid), "text/xml", [("x-amzn-RequestId", rid)])
            note += f" {f.code}: {f.message}"
        except ConnectionError as e:
            rec["error"] = "ClientClosed"
            note += f" {e}"
        except Exception as e:  # a bug here: answer 500, keep serving
            rec["status"] = 500
            rec["error"] = "InternalFailure"
            self.close_connection = True
            log(f"internal error: {e!r}")
            self.send(500, error_xml(Fail(500, "InternalFailure", "stand-in error", "Receiver"), rid),
                      "text/xml")
        st.record(rec)
        log(f"{self.client_address[0]} POST / -> {rec['status']} key={rec['access_key_id']} "
            f"gzip={int(rec['gzip'])} bytes={rec['bytes']} metrics={len(rec['metrics'])}{note}")

    # --- ECS credentials

    def ecs(self):
        st = self.st
        authz = self.headers.get("Authorization")
        rec = {"time": time.time(), "ecs": True, "status": 200, "access_key_id": None,
               "expiration": None, "authorization": authz}
        if st.ecs_auth is not None and (authz is None or not hmac.compare_digest(authz, st.ecs_auth)):
            rec["status"] = 401 if authz is None else 403
            st.record(rec)
            body = json.dumps({"code": "Unauthorized" if authz is None else "AccessDenied",
                               "message": "missing or wrong Authorization"}).encode()
            self.send(rec["status"], body, "application/json")
            log(f"{self.client_address[0]} GET {st.ecs_path} -> {rec['status']} authorization={'present' if authz else 'absent'}")
            return
        akid, key = st.issue()
        exp = iso_z(key.expires)
        rec["access_key_id"] = akid
        rec["expiration"] = exp
        st.record(rec)
        body = json.dumps({
            "RoleArn": "arn:aws:iam::123456789012:role/sgprobe-collector",
            "AccessKeyId": akid, "SecretAccessKey": key.secret, "Token": key.token,
            "Expiration": exp}).encode()
        self.send(200, body, "application/json")
        log(f"{self.client_address[0]} GET {st.ecs_path} -> 200 issued {akid} until {exp} "
            f"authorization={'present' if authz else 'absent'}")


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def handle_error(self, request, client_address):
        e = sys.exc_info()[1]
        log(f"{client_address[0]} connection error: {e!r}")


def parse_listen(s):
    host, sep, port = s.rpartition(":")
    if not sep or not port.isdigit():
        raise SystemExit(f"cw_standin: --listen wants ADDR:PORT, got '{s}'")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def main():
    ap = argparse.ArgumentParser(description="CloudWatch + ECS credentials stand-in for the tests.")
    ap.add_argument("--listen", required=True)
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("--region", default="us-east-1")
    ap.add_argument("--record")
    ap.add_argument("--key", action="append", default=[])
    ap.add_argument("--ecs-path")
    ap.add_argument("--ecs-ttl-s", type=int, default=3600)
    ap.add_argument("--ecs-auth", help="require this Authorization value on the ECS path")
    ap.add_argument("--ready-file")
    ap.add_argument("--issued-file",
                    help="share issued ECS keys through this file: the ECS side appends, "
                         "the CloudWatch side reads (two stand-ins in two namespaces)")
    ap.add_argument("--max-request-bytes", type=int, default=1 << 20)
    ap.add_argument("--idle-timeout-s", type=float, default=60)
    args = ap.parse_args()
    if bool(args.tls_cert) != bool(args.tls_key):
        ap.error("--tls-cert and --tls-key go together")
    if args.ecs_path and not args.ecs_path.startswith("/"):
        ap.error("--ecs-path must start with /")

    host, port = parse_listen(args.listen)
    Server.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
    Handler.timeout = args.idle_timeout_s
    httpd = Server((host, port), Handler)
    httpd.state = State(args)
    if args.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
        httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True, do_handshake_on_connect=False)
    bound = httpd.socket.getsockname()[1]

    def stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    log(f"listening on {host}:{bound} ({'https' if args.tls_cert else 'http'}), region {args.region}, "
        f"{len(args.key)} static key(s), ecs path {args.ecs_path or '-'}")
    if args.ready_file:
        tmp = args.ready_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{bound}\n")
        os.replace(tmp, args.ready_file)
    try:
        httpd.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()
        log("stopped")


if __name__ == "__main__":
    main()
