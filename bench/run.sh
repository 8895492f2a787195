#!/bin/sh
# Runs every benchmark of bench/ against the build in BUILD_DIR. The sweep runs
# 5 rounds, as docs/benchmarks.md reports ("best of 5"); the others their defaults.
#
#   sh bench/run.sh BUILD_DIR
set -u
dir=$(dirname "$0")
build=${1:-build}
status=0
for b in sweep ingest publish footprint; do
	echo "== $b"
	if [ $b = sweep ]; then
		sh "$dir/sweep.sh" "$build" 5 || status=1
	else
		sh "$dir/$b.sh" "$build" || status=1
	fi
done
exit $status
