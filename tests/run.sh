#!/bin/sh
# The whole test suite: the format check, every cmocka unit test, every
# integration and lab test. Each test program reports TAP lines ("ok N - name",
# "not ok N - name"); a program that exits non-zero without reporting a failure
# (a crash, a sanitizer report) counts as one failure. The last line is
# "N passed, N failed".
#
#   sh tests/run.sh BUILD_DIR [FILTER]    FILTER: a substring of the test file names
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 2
build=${1:-build-san}
filter=${2:-}
out="$top/tests/out"
rm -rf "$out"
mkdir -p "$out"

export SGPROBE_BUILD="$top/$build"
# Sanitizers: any report fails the test; leaks count.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:exitcode=86}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1:exitcode=87}"
export CMOCKA_MESSAGE_OUTPUT=TAP

passed=0
failed=0

# run NAME CMD...: runs one test program, counts its TAP lines.
run() {
	name=$1
	shift
	log="$out/$(echo "$name" | tr / _).log"
	"$@" >"$log" 2>&1
	rc=$?
	p=$(grep -c '^ok ' "$log")
	f=$(grep -c '^not ok ' "$log")
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		echo "not ok - $name exited with status $rc" >>"$log"
		f=1
	elif [ "$p" -eq 0 ] && [ "$f" -eq 0 ]; then
		echo "not ok - $name reported no result" >>"$log"
		f=1
	fi
	passed=$((passed + p))
	failed=$((failed + f))
	if [ "$f" -gt 0 ]; then
		echo "FAIL $name ($p passed, $f failed); its output:"
		sed 's/^/    /' "$log" | tail -n 60
	else
		echo "ok   $name ($p passed)"
	fi
}

if [ -z "$filter" ] || echo format | grep -q -- "$filter"; then
	run format sh -c 'if make -s check-format; then echo "ok 1 - sources follow .clang-format"; else echo "not ok 1 - sources follow .clang-format"; fi'
fi
for t in "$build"/tests/test_*; do
	[ -x "$t" ] || continue
	n=$(basename "$t")
	[ -n "$filter" ] && ! echo "unit/$n" | grep -q -- "$filter" && continue
	run "unit/$n" "$t"
done
for t in tests/integration/test_*.sh tests/lab/test_*.sh; do
	[ -f "$t" ] || continue
	n=$(basename "$(dirname "$t")")/$(basename "$t" .sh)
	[ -n "$filter" ] && ! echo "$n" | grep -q -- "$filter" && continue
	run "$n" bash "$t"
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
