#!/bin/sh
# Builds the libFuzzer targets of the parsers (tests/fuzz/fuzz_*.c) with
# AddressSanitizer and UndefinedBehaviorSanitizer into build-fuzz/, and runs each
# for SECONDS seconds on a copy of its seed corpus (build-fuzz/corpus/NAME: what
# the fuzzer learns stays there, the seeds in tests/fuzz/corpus are never
# written). Prints one TAP line per target; exits non-zero when a target fails
# to build or finds a crash, a leak, undefined behaviour, an abort() of its
# property checks, a unit slower than TIMEOUT seconds or an out-of-memory.
# Reproducers go to build-fuzz/artifacts/NAME/; replay one with
# `build-fuzz/fuzz_NAME FILE`.
#
#   sh tests/fuzz/run.sh [SECONDS]      default 60; CLANG, PKG_CONFIG, TIMEOUT may be set
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top" || exit 2

secs=${1:-60}
case $secs in
'' | *[!0-9]*)
	echo "usage: sh tests/fuzz/run.sh [SECONDS]" >&2
	exit 2
	;;
esac
CLANG=${CLANG:-clang}
PKG_CONFIG=${PKG_CONFIG:-pkg-config}
TIMEOUT=${TIMEOUT:-30}
out=build-fuzz
targets="matrix report sigv4"

# lib/*.c links cJSON, OpenSSL (auth, SigV4), libcurl and libuv (curluv), zlib (cloudwatch).
if ! dep_cflags=$($PKG_CONFIG --cflags libcjson openssl libcurl libuv zlib) || ! dep_libs=$($PKG_CONFIG --libs libcjson openssl libcurl libuv zlib); then
	echo "fuzz: pkg-config cannot find libcjson, openssl, libcurl, libuv or zlib (make deps)" >&2
	exit 2
fi

# Whatever the caller set: any sanitizer report is a failure, and the fuzzer's
# own crash handling (a reproducer in the artifacts) must run rather than abort.
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:allocator_may_return_null=0
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1

mkdir -p "$out" || exit 2
n=0
failed=0
# shellcheck disable=SC2086
set -- $targets
echo "1..$#"
for t in $targets; do
	n=$((n + 1))
	name=fuzz_$t
	bin=$out/$name
	log=$out/$name.log
	corpus=$out/corpus/$t
	artifacts=$out/artifacts/$t/

	# shellcheck disable=SC2086
	if ! $CLANG -g -O1 -fsanitize=fuzzer,address,undefined -std=c11 -D_GNU_SOURCE \
		-Wall -Wextra -Werror -Iinclude $dep_cflags lib/*.c "tests/fuzz/$name.c" \
		$dep_libs -o "$bin" >"$out/$name.build.log" 2>&1; then
		echo "not ok $n - $name: does not build"
		sed 's/^/# /' "$out/$name.build.log" | tail -n 30
		failed=$((failed + 1))
		continue
	fi

	mkdir -p "$corpus" "$artifacts" || exit 2
	cp "tests/fuzz/corpus/$t"/* "$corpus"/ || exit 2
	dict=
	[ -f "tests/fuzz/$t.dict" ] && dict=-dict=tests/fuzz/$t.dict

	start=$(date +%s)
	# shellcheck disable=SC2086
	"$bin" -max_total_time="$secs" -max_len=65536 -rss_limit_mb=2048 -timeout="$TIMEOUT" \
		-artifact_prefix="$artifacts" -print_final_stats=1 $dict "$corpus" >"$log" 2>&1
	rc=$?
	elapsed=$(($(date +%s) - start))

	# "Done 12345 runs in 20 second(s)" at a normal end; the last status line otherwise.
	execs=$(sed -n 's/^Done \([0-9]*\) runs in .*/\1/p' "$log" | tail -n 1)
	[ -n "$execs" ] || execs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$log" | tail -n 1)
	[ -n "$execs" ] || execs=$(sed -n 's/^#\([0-9]*\).*/\1/p' "$log" | tail -n 1)
	[ -n "$execs" ] || execs=0

	if [ "$rc" -eq 0 ]; then
		echo "ok $n - $name: no crash in $elapsed s ($execs execs)"
	else
		# shellcheck disable=SC2012
		repro=$(ls -t "$artifacts" | head -n 1)
		echo "not ok $n - $name: failed (status $rc) after $elapsed s ($execs execs)${repro:+, reproducer $artifacts$repro}"
		grep -E 'ERROR|SUMMARY|runtime error|fuzz_(matrix|report):|^    #[0-9]' "$log" |
			head -n 40 | sed 's/^/# /'
		echo "# full log: $log"
		failed=$((failed + 1))
	fi
done
[ "$failed" -eq 0 ]
