# Helpers for the shell tests: TAP output, assertions, the agent's path.
# Sourced by tests/integration/*.sh and tests/lab/*.sh.
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${SGPROBE_BUILD:-$top/build}
agent="$build/sgprobe-agent"
labd="$build/labd"
tap_n=0
tap_failed=0

# ok NAME / not_ok NAME [WHY]: one TAP line.
ok() {
	tap_n=$((tap_n + 1))
	echo "ok $tap_n - $1"
}
not_ok() {
	tap_n=$((tap_n + 1))
	tap_failed=$((tap_failed + 1))
	echo "not ok $tap_n - $1"
	[ -n "${2:-}" ] && echo "# $2"
	return 0
}

# check NAME CMD...: ok when CMD succeeds.
check() {
	name=$1
	shift
	if "$@"; then ok "$name"; else not_ok "$name" "command failed: $*"; fi
}

# eq NAME GOT WANT: ok when the two strings are equal.
eq() {
	if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1" "got '$2', want '$3'"; fi
}

# done_testing: the exit status of the test program.
done_testing() {
	echo "1..$tap_n"
	[ "$tap_failed" -eq 0 ]
}
