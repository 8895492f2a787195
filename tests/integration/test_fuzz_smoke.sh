#!/bin/bash
# Fuzzes each parser (matrix_parse, report_decode, the SigV4 raw request parser
# and signer with cw_xml_error) for 20 seconds with libFuzzer,
# AddressSanitizer and UndefinedBehaviorSanitizer: tests/fuzz/run.sh prints one
# TAP line per target ("ok N - fuzz_matrix: no crash in 20 s (E execs)") and
# fails on any crash, leak, undefined behaviour or broken round trip.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top" || exit 2
sh tests/fuzz/run.sh 20
