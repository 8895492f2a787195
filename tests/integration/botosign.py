#!/usr/bin/python3
"""Signs a raw request (the AWS SigV4 test suite's .req format) with botocore,
AWS's own Python signer, as an independent check of lib/sigv4.c.

    /usr/bin/python3 botosign.py [--region R] [--service S] [--date D] FILE.req

Run it with Debian's /usr/bin/python3 (python3-botocore), not a python3 from a
pyenv on PATH, which has no botocore. Credentials come from AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN (optional), as for
`sgprobe-collector sign-request`. The date is the request's X-Amz-Date header,
else --date.

Prints botocore's Authorization header value on the first line, then its
canonical request. Exit status 2 on a usage error or a request it cannot read.

Only the reading of the .req file is ours: every rule of the signature (path
normalisation and encoding, query encoding and order, header canonicalisation,
payload hash, key derivation, the header's format) is botocore's SigV4Auth.
Two things to know:

- The query is handed to botocore as request.params, a list of (name, value)
  pairs percent-decoded here, which botocore encodes (RFC 3986) and sorts
  itself. That is how botocore signs every query-protocol call, and it handles
  raw UTF-8 (get-vanilla-utf8-query: `?ሴ=bar`). Left in the URL, the query would
  be signed exactly as written, neither encoded nor decoded, by a path of
  botocore meant for queries it built already encoded.
- botocore never signs User-Agent, Expect and X-Amzn-Trace-Id (proxies change
  them); sgprobe signs every header given. No test request has them.
"""
import argparse
import os
import sys
from urllib.parse import unquote

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials


def fail(msg):
    print(f"botosign.py: {msg}", file=sys.stderr)
    sys.exit(2)


def read_req(path):
    """Returns (method, target, [(name, value)], body) of a raw request."""
    data = open(path, "rb").read()
    eol = b"\r\n" if data.split(b"\n", 1)[0].endswith(b"\r") else b"\n"
    head, sep, body = data.partition(eol + eol)
    lines = head.split(eol)
    request_line = lines[0].decode("utf-8")
    method, _, rest = request_line.partition(" ")
    target, _, version = rest.rpartition(" ")
    if not method or not target.startswith("/") or not version.startswith("HTTP/"):
        fail(f"{path}: line 1 is not 'METHOD TARGET HTTP/x.y'")
    headers = []
    for no, line in enumerate(lines[1:], 2):
        name, colon, value = line.decode("utf-8").partition(":")
        if not colon:
            fail(f"{path}: line {no} has no ':'")
        headers.append((name, value))
    return method, target, headers, body


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--region", default="us-east-1")
    ap.add_argument("--service", default="service")
    ap.add_argument("--date", help="YYYYMMDDTHHMMSSZ, when the request has no X-Amz-Date")
    ap.add_argument("req")
    args = ap.parse_args()

    key = os.environ.get("AWS_ACCESS_KEY_ID")
    secret = os.environ.get("AWS_SECRET_ACCESS_KEY")
    token = os.environ.get("AWS_SESSION_TOKEN") or None
    if not key or not secret:
        fail("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set")

    method, target, headers, body = read_req(args.req)
    path, qmark, query = target.partition("?")
    host = next((v.strip() for n, v in headers if n.lower() == "host"), None)
    if host is None:
        fail(f"{args.req}: no Host header")
    params = []
    for pair in query.split("&") if qmark else []:
        if pair:
            name, _, value = pair.partition("=")
            params.append((unquote(name, errors="strict"), unquote(value, errors="strict")))

    request = AWSRequest(method=method, url=f"https://{host}{path}", data=body,
                         params=params)
    for name, value in headers:
        # HTTPHeaders (an email.message.Message) appends: repeated headers stay, in order.
        request.headers[name] = value
    date = next((v.strip() for n, v in headers if n.lower() == "x-amz-date"), args.date)
    if not date:
        fail(f"{args.req}: no X-Amz-Date header and no --date")
    request.context["timestamp"] = date

    auth = SigV4Auth(Credentials(key, secret, token), args.service, args.region)
    # What add_auth() does, without its reading of the clock: X-Amz-Date (and
    # the session token's header) set from the timestamp and the credentials.
    auth._modify_request_before_signing(request)
    canonical_request = auth.canonical_request(request)
    string_to_sign = auth.string_to_sign(request, canonical_request)
    signature = auth.signature(string_to_sign, request)
    auth._inject_signature_to_request(request, signature)
    print(request.headers["Authorization"])
    print(canonical_request)


if __name__ == "__main__":
    main()
