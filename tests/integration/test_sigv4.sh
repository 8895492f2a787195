#!/bin/bash
# `sgprobe-collector sign-request` as a user runs it: AWS's own signed requests
# reproduced byte for byte on the shipped cases of the 2015 SigV4 test suite
# (../shared/aws/sigv4), and on all 29 suite cases (plus sgprobe's own, in
# tests/data/sigv4) the same Authorization as botocore, AWS's Python signer,
# run by tests/integration/botosign.py; the session token and the date added
# and signed; every usage and input error exits 2 with a message naming it; the
# secret never reaches standard error.
. "$(dirname "$0")/../lib.sh"
set -u

collector="$build/sgprobe-collector"
botosign="$top/tests/integration/botosign.py"
shared="$top/../shared/aws/sigv4"
data="$top/tests/data/sigv4"
# Debian's python3 has botocore; a pyenv python3 first on PATH (as in CI) has not.
python=/usr/bin/python3
work=$(mktemp -d /tmp/sgprobe-sigv4.XXXXXX)
trap 'rm -rf "$work"' EXIT INT TERM

# The suite's credentials (suite-credentials.json).
export AWS_ACCESS_KEY_ID=AKIDEXAMPLE
export AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY
unset AWS_SESSION_TOKEN
secret=$AWS_SECRET_ACCESS_KEY
token=$(sed -n 's/.*"session_token_post_sts_cases": *"\([^"]*\)".*/\1/p' "$shared/suite-credentials.json")
date=20150830T123600Z
sign=("$collector" sign-request --region us-east-1 --service service)
# Every standard error of sign-request goes here too, to look for the secret at the end.
: >"$work/all.err"

# run OUT [ARGS...] < REQ: sign-request, its stdout in OUT, its stderr in $work/err; prints the status.
run() {
	local out=$1
	shift
	"${sign[@]}" "$@" >"$out" 2>"$work/err"
	local rc=$?
	cat "$work/err" >>"$work/all.err"
	echo "$rc"
}

# authz FILE: the Authorization value of a signed request.
authz() {
	sed -n 's/^Authorization: //p' "$1" | tr -d '\r'
}

check "botocore is there (/usr/bin/python3, Debian's python3-botocore)" \
	"$python" -c 'import botocore.auth'
check "the suite is beside the clone ($shared)" test -f "$shared/get-vanilla/get-vanilla.req"

# --- the shipped cases: AWS's signed requests, byte for byte ------------------------------
shipped=0
for dir in "$shared"/*/; do
	c=$(basename "$dir")
	shipped=$((shipped + 1))
	rc=$(run "$work/$c.sreq" <"$dir/$c.req")
	if [ "$rc" = 0 ] && cmp -s "$work/$c.sreq" "$dir/$c.sreq"; then
		ok "sign-request reproduces $c.sreq byte for byte"
	else
		not_ok "sign-request reproduces $c.sreq byte for byte" \
			"exit $rc; $(diff "$work/$c.sreq" "$dir/$c.sreq" | head -5 | tr '\n' '|') $(cat "$work/err")"
	fi
done
eq "six shipped cases" "$shipped" 6

# --- all 29 suite cases and sgprobe's own: botocore's Authorization ----------------------
suite_cases="get-header-key-duplicate get-header-value-order get-header-value-trim get-relative
get-relative-relative get-slash get-slash-dot-slash get-slash-pointless-dot get-slashes get-space
get-unreserved get-utf8 get-vanilla get-vanilla-empty-query-key get-vanilla-query
get-vanilla-query-order-key get-vanilla-query-order-key-case get-vanilla-query-order-value
get-vanilla-query-unreserved get-vanilla-utf8-query post-header-key-case post-header-key-sort
post-header-value-case post-sts-header-before post-vanilla post-vanilla-empty-query-value
post-vanilla-query post-x-www-form-urlencoded post-x-www-form-urlencoded-parameters"
own_cases=$(cd "$data" && ls -d sgprobe-*)
n=0
for c in $suite_cases $own_cases; do
	req="$shared/$c/$c.req"
	[ -f "$req" ] || req="$data/$c/$c.req"
	n=$((n + 1))
	rc=$(run "$work/out" <"$req")
	"$python" "$botosign" "$req" >"$work/boto" 2>"$work/boto.err"
	want=$(head -n1 "$work/boto")
	got=$(authz "$work/out")
	if [ "$rc" = 0 ] && [ -n "$want" ] && [ "$got" = "$want" ]; then
		ok "$c: the Authorization is botocore's"
	else
		not_ok "$c: the Authorization is botocore's" \
			"exit $rc, got '$got', botocore '$want' $(cat "$work/err" "$work/boto.err")"
	fi
done
compared=0
for c in $suite_cases; do
	{ [ -f "$shared/$c/$c.req" ] || [ -f "$data/$c/$c.req" ]; } && compared=$((compared + 1))
done
eq "all 29 suite cases have a request file and were compared" "$compared" 29
check "sgprobe's own cases were compared too" test "$n" -gt 29

# --- the session token --------------------------------------------------------------------
export AWS_SESSION_TOKEN=$token
rc=$(run "$work/tok" <"$shared/post-vanilla/post-vanilla.req")
eq "AWS_SESSION_TOKEN: exit 0" "$rc" 0
eq "AWS_SESSION_TOKEN: X-Amz-Security-Token added before Authorization" \
	"$(sed -n 4p "$work/tok")" "X-Amz-Security-Token:$token"
check "AWS_SESSION_TOKEN: the token's header is signed" \
	grep -q '^Authorization: .*SignedHeaders=host;x-amz-date;x-amz-security-token,' "$work/tok"
check "AWS_SESSION_TOKEN on post-vanilla gives AWS's post-sts-header-before, byte for byte" \
	cmp -s "$work/tok" "$shared/post-sts-header-before/post-sts-header-before.sreq"
"$python" "$botosign" "$shared/post-vanilla/post-vanilla.req" >"$work/boto" 2>&1
eq "AWS_SESSION_TOKEN: botocore agrees" "$(authz "$work/tok")" "$(head -n1 "$work/boto")"
rc=$(run "$work/tok2" <"$shared/get-header-value-trim/get-header-value-trim.req")
"$python" "$botosign" "$shared/get-header-value-trim/get-header-value-trim.req" >"$work/boto" 2>&1
eq "AWS_SESSION_TOKEN on another request: botocore agrees" \
	"$rc $(authz "$work/tok2")" "0 $(head -n1 "$work/boto")"
rc=$(run "$work/tok3" <"$shared/post-sts-header-before/post-sts-header-before.req")
check "a request with its own X-Amz-Security-Token gets no second one" \
	cmp -s "$work/tok3" "$shared/post-sts-header-before/post-sts-header-before.sreq"
unset AWS_SESSION_TOKEN

# --- the date -----------------------------------------------------------------------------
printf 'GET / HTTP/1.1\nHost:example.amazonaws.com' >"$work/nodate.req"
rc=$(run "$work/nodate" --date "$date" <"$work/nodate.req")
check "--date on a request without X-Amz-Date: AWS's get-vanilla.sreq, byte for byte" \
	cmp -s "$work/nodate" "$shared/get-vanilla/get-vanilla.sreq"
"$python" "$botosign" --date "$date" "$work/nodate.req" >"$work/boto" 2>&1
eq "--date: botocore agrees" "$rc $(authz "$work/nodate")" "0 $(head -n1 "$work/boto")"
rc=$(run "$work/wins" --date 20240101T000000Z <"$shared/get-vanilla/get-vanilla.req")
check "the request's own X-Amz-Date wins over --date" \
	cmp -s "$work/wins" "$shared/get-vanilla/get-vanilla.sreq"
today=$(date -u +%Y%m%d)
rc=$(run "$work/now" <"$work/nodate.req")
check "no date anywhere: now, in UTC, added and signed" sh -c \
	"sed -n 3p '$work/now' | grep -Eq '^X-Amz-Date:($today|$(date -u -d '1 minute ago' +%Y%m%d))T[0-9]{6}Z\$' &&
	 grep -q 'SignedHeaders=host;x-amz-date,' '$work/now'"

# --- usage and input errors: exit 2, named --------------------------------------------------
req="$shared/get-vanilla/get-vanilla.req"
rc=$(AWS_ACCESS_KEY_ID= run "$work/out" <"$req")
eq "no AWS_ACCESS_KEY_ID: exit 2" "$rc" 2
check "... named" grep -q 'sign-request: AWS_ACCESS_KEY_ID is not set' "$work/err"
rc=$(env -u AWS_SECRET_ACCESS_KEY "${sign[@]}" <"$req" 2>"$work/err" >/dev/null; echo $?)
eq "no AWS_SECRET_ACCESS_KEY: exit 2" "$rc" 2
check "... named" grep -q 'sign-request: AWS_SECRET_ACCESS_KEY is not set' "$work/err"
check "... and nothing printed" test ! -s "$work/out"
printf 'GET / HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date %s' "$date" >"$work/bad.req"
rc=$(run "$work/out" <"$work/bad.req")
eq "a header line without ':': exit 2" "$rc" 2
check "... named, with its line" grep -q "sign-request: standard input: line 3: 'X-Amz-Date 20150830T123600Z' is a header line without ':'" "$work/err"
printf 'GET / HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:2015-08-30' >"$work/bad.req"
rc=$(run "$work/out" <"$work/bad.req")
eq "a malformed X-Amz-Date: exit 2" "$rc" 2
check "... named" grep -q "X-Amz-Date header: '2015-08-30' is not YYYYMMDDTHHMMSSZ" "$work/err"
printf 'GET / HTTP/1.1\nX-Amz-Date:%s' "$date" >"$work/bad.req"
rc=$(run "$work/out" <"$work/bad.req")
eq "no Host header: exit 2, named" "$rc $(cat "$work/err")" \
	"2 sgprobe-collector sign-request: no Host header (SigV4 always signs the host)"
rc=$(run "$work/out" </dev/null)
eq "empty input: exit 2, named" "$rc $(cat "$work/err")" \
	"2 sgprobe-collector sign-request: standard input: empty request: no request line"
head -c 1048577 /dev/zero | tr '\0' a >"$work/big.req"
rc=$(run "$work/out" <"$work/big.req")
eq "more than 1 MiB on standard input: exit 2, named" "$rc $(cat "$work/err")" \
	"2 sgprobe-collector sign-request: the request on standard input is larger than 1048576 bytes"
rc=$(run "$work/out" --date 2015-08-30 <"$req")
eq "a bad --date: exit 2, named" "$rc $(cat "$work/err")" \
	"2 sgprobe-collector sign-request: --date: '2015-08-30' is not YYYYMMDDTHHMMSSZ"
rc=$("$collector" sign-request --service service <"$req" 2>"$work/err" >/dev/null; echo $?)
eq "no --region: exit 2, named" "$rc $(cat "$work/err")" \
	"2 sgprobe-collector sign-request: --region is required"
rc=$(run "$work/out" --bogus <"$req")
eq "an unknown option: exit 2" "$rc" 2
check "... named" grep -q 'unknown option or missing value: --bogus' "$work/err"
rc=$(run "$work/out" --region 'us east' <"$req")
eq "a bad region: exit 2, named" "$rc $(cat "$work/err")" \
	"2 sgprobe-collector sign-request: region: 'us east' is not 1-128 of A-Z, a-z, 0-9, '-', '_', '.'"

# --- help, verbose, the secret -------------------------------------------------------------
rc=$("$collector" sign-request --help >"$work/help" 2>&1; echo $?)
eq "--help: exit 0" "$rc" 0
check "--help: the usage" grep -q '^usage: sgprobe-collector sign-request --region R --service S' "$work/help"
check "sgprobe-collector --help lists sign-request" sh -c "'$collector' --help | grep -q 'sign-request'"
c=get-header-value-trim
rc=$(run "$work/out" --verbose <"$shared/$c/$c.req")
# Between "canonical request:" and the empty line before "string to sign:".
awk '/^string to sign:$/ { f = 0 } f { print } /^canonical request:$/ { f = 1 }' "$work/err" |
	sed '$d' >"$work/v.creq"
printf '%s\n' "$(cat "$shared/$c/$c.creq")" >"$work/want.creq"
check "--verbose: the canonical request on standard error" cmp -s "$work/v.creq" "$work/want.creq"
check "--verbose: the string to sign on standard error" \
	grep -q "^$(tail -n1 "$shared/$c/$c.sts")\$" "$work/err"
check "--verbose: standard output unchanged" cmp -s "$work/out" "$shared/$c/$c.sreq"
check "stderr held something to look at" test -s "$work/all.err"
check "the secret access key never appears on standard error" \
	sh -c "! grep -qF -e '$secret' -e 'EXAMPLEKEY' '$work/all.err'"

done_testing
