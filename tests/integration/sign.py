#!/usr/bin/env python3
"""Signs a request as an sgprobe agent does (DESIGN.md "Authentication"), written
independently of the C code so that the tests check one against the other.

    sign.py KEY_ID SECRET METHOD PATH_WITH_QUERY [BODY_FILE] [--timestamp T]

Prints the Authorization header's value."""
import hashlib
import hmac
import sys
import time

args = sys.argv[1:]
ts = int(time.time())
if "--timestamp" in args:
    i = args.index("--timestamp")
    ts = int(args[i + 1])
    del args[i:i + 2]
key_id, secret, method, target = args[:4]
body = open(args[4], "rb").read() if len(args) > 4 else b""
to_sign = "\n".join([method, target, str(ts), hashlib.sha256(body).hexdigest()])
sig = hmac.new(secret.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
print(f"SGPROBE-HMAC-SHA256 KeyId={key_id}, Timestamp={ts}, Signature={sig}")
