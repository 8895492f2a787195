#!/bin/bash
# make demo: the AFIRGen lab in network namespaces, sgprobe-agent --once in every
# agent role's namespace, each role's table, and the combined matrix. Exits 0 when
# every agent's run passed, 1 otherwise. The lab is torn down on exit.
#
#   tests/lab/demo.sh BUILD_DIR
# Environment: SGPROBE_LAB_SG=FILE builds the lab from another security-groups
# file (stage a misconfiguration); SGPROBE_DEMO_MATRIX=FILE judges against another
# matrix (default examples/afirgen.matrix.json).
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-build}
agent="$top/$build/sgprobe-agent"
export LABD="$top/$build/labd"
lab="$top/tests/lab/lab.sh"
matrix=${SGPROBE_DEMO_MATRIX:-$top/examples/afirgen.matrix.json}
work=$(mktemp -d /tmp/sgprobe-demo.XXXXXX)

cleanup() {
	"$lab" down >/dev/null 2>&1
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== bringing up the AFIRGen lab (security groups: ${SGPROBE_LAB_SG:-examples/afirgen.security-groups.json})"
if ! "$lab" up; then
	echo "demo: the lab did not come up" >&2
	exit 1
fi
agents=$(jq -r '.roles | to_entries[] | select(.value.agent) | .key' "$matrix")
# Every agent role at once, each in its own namespace: the table for people,
# the JSON document for the combined matrix.
for role in $agents; do
	(
		"$lab" exec "$role" "$agent" --once --matrix "$matrix" --role "$role" \
			--agent-address "$("$lab" addr "$role")" --probe-ca-file "$("$lab" ca)" \
			--json-file "$work/$role.json" >"$work/$role.txt" 2>"$work/$role.err"
		echo $? >"$work/$role.rc"
	) &
done
wait

status=0
files=""
for role in $agents; do
	echo
	echo "== sgprobe-agent --once --role $role (in namespace $("$lab" ns "$role"))"
	cat "$work/$role.txt" "$work/$role.err"
	[ "$(cat "$work/$role.rc")" -ne 0 ] && status=1
	[ -s "$work/$role.json" ] && files="$files $work/$role.json"
done
echo
echo "== the matrix: destination:port × source role"
# shellcheck disable=SC2086
python3 "$top/tests/lab/matrix_view.py" "$matrix" $files
echo
if [ $status -eq 0 ]; then
	echo "demo: every agent's run passed"
else
	echo "demo: at least one agent's run failed (see the tables above)"
fi
exit $status
