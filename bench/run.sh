#!/bin/sh
# Runs every benchmark of bench/ against the build in BUILD_DIR.
set -u
dir=$(dirname "$0")
status=0
for b in "$dir"/sweep.sh "$dir"/ingest.sh "$dir"/publish.sh "$dir"/footprint.sh; do
	echo "== $(basename "$b" .sh)"
	sh "$b" "$@" || status=1
done
exit $status
