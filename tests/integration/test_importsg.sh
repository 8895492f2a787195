#!/bin/bash
# `sgprobe-collector import-sg` and `diff-matrix` as a reviewer runs them: the
# shipped security groups imported with the shipped role map give the shipped
# matrix's allowed paths (checked with diff-matrix and, independently, with jq
# on the allow lists), and a matrix check-matrix accepts; every kind of rule the
# import cannot express is named in a warning on standard error; diff-matrix
# names the paths the strict matrix closes, and a path a new rule opens; bad
# input exits 2 with a message naming the file and the field.
. "$(dirname "$0")/../lib.sh"
set -u

collector="$build/sgprobe-collector"
ex="$top/examples"
data="$top/tests/data/importsg"
groups="$ex/afirgen.security-groups.json"
roles="$ex/afirgen.roles.json"
shipped="$ex/afirgen.matrix.json"
strict="$ex/afirgen-strict.matrix.json"
work=$(mktemp -d /tmp/sgprobe-importsg.XXXXXX)
trap 'rm -rf "$work"' EXIT INT TERM

# paths FILE: the allowed paths of a matrix as sorted "from to port" lines, by jq alone.
paths() {
	jq -r '.allow[] | .from as $f | .to as $t | .ports[] | "\($f) \($t) \(.)"' "$1" | sort -u
}

# quiet CMD...: CMD with its standard output dropped.
quiet() {
	"$@" >/dev/null
}

# import OUT ERR ARGS...: import-sg, stdout in OUT, stderr in ERR; prints the exit status.
import() {
	local out=$1 err=$2
	shift 2
	"$collector" import-sg "$@" >"$out" 2>"$err"
	echo $?
}

# --- the shipped groups and map give the shipped matrix ----------------------------------
rc=$(import "$work/afirgen.json" "$work/afirgen.err" --groups "$groups" --roles "$roles")
eq "import-sg of the shipped groups and map: exit 0" "$rc" 0
eq "import-sg of the shipped groups and map: no warning at all" "$(cat "$work/afirgen.err")" ""
check "the imported matrix passes check-matrix" \
	quiet "$collector" check-matrix "$work/afirgen.json"

"$collector" diff-matrix "$shipped" "$work/afirgen.json" >"$work/diff" 2>"$work/diff.err"
rc=$?
eq "diff-matrix shipped imported: the allowed paths agree" "$(grep -v '^#' "$work/diff")" ""
eq "diff-matrix shipped imported: exit 0" "$rc" 0
eq "diff-matrix shipped imported: no role or setting differs" "$(grep '^#' "$work/diff")" ""
paths "$shipped" | sort -u >"$work/want.paths"
paths "$work/afirgen.json" >"$work/got.paths"
check "jq: the imported (from, to, port) set is the shipped one" \
	cmp -s "$work/want.paths" "$work/got.paths"
check "jq: it holds the collector's CloudWatch path, sgprobe-collector -> vpc-endpoints:443" \
	grep -qx "sgprobe-collector vpc-endpoints 443" "$work/got.paths"
eq "jq: 30 allowed paths" "$(wc -l <"$work/got.paths")" 30
eq "jq: the roles, name and probe settings are the shipped matrix's" \
	"$(jq -S 'del(.allow)' "$work/afirgen.json")" "$(jq -S 'del(.allow)' "$shipped")"
eq "jq: one allow rule per (from, to), sorted" \
	"$(jq -r '.allow[] | "\(.from) \(.to)"' "$work/afirgen.json")" \
	"$(jq -r '.allow[] | "\(.from) \(.to)"' "$work/afirgen.json" | LC_ALL=C sort -u)"

# The same input gives the same bytes, on standard output or in --output.
import "$work/again.json" /dev/null --groups "$groups" --roles "$roles" >/dev/null
check "import-sg is deterministic" cmp -s "$work/afirgen.json" "$work/again.json"
rc=$(import "$work/stdout" "$work/err" --groups "$groups" --roles "$roles" \
	--output "$work/out.json" --name afirgen-review)
eq "--output: exit 0, nothing on standard output" "$rc $(wc -c <"$work/stdout")" "0 0"
eq "--name replaces the map's name" "$(jq -r .name "$work/out.json")" afirgen-review
eq "--output holds the same matrix" "$(jq -S 'del(.name)' "$work/out.json")" \
	"$(jq -S 'del(.name)' "$work/afirgen.json")"

# --- a staged change: diff-matrix names the path a new rule opens ------------------------
jq '(.SecurityGroups[] | select(.GroupName == "afirgen-rds-mysql-prod-sg") | .IpPermissions[0].UserIdGroupPairs)
	+= [{"GroupId": "sg-0b2d4f6a8c0e31572", "UserId": "123456789012"}]
	| (.SecurityGroups[] | select(.GroupName == "afirgen-nginx-prod-sg") | .IpPermissionsEgress)
	+= [{"IpProtocol": "tcp", "FromPort": 3306, "ToPort": 3306, "IpRanges": [],
	     "Ipv6Ranges": [], "PrefixListIds": [],
	     "UserIdGroupPairs": [{"GroupId": "sg-01a7c9e1f3b5d86c7", "UserId": "123456789012"}]}]' \
	"$groups" >"$work/staged.groups.json"
import "$work/staged.json" "$work/staged.err" --groups "$work/staged.groups.json" \
	--roles "$roles" >/dev/null
"$collector" diff-matrix "$work/afirgen.json" "$work/staged.json" >"$work/staged.diff"
rc=$?
eq "nginx let into RDS: diff-matrix prints + nginx -> rds-mysql:3306 and exits 1" \
	"$rc $(cat "$work/staged.diff")" "1 + nginx -> rds-mysql:3306"
# Half of it (only RDS's ingress) opens nothing: nginx's own egress still stops it.
jq '(.SecurityGroups[] | select(.GroupName == "afirgen-rds-mysql-prod-sg") | .IpPermissions[0].UserIdGroupPairs)
	+= [{"GroupId": "sg-0b2d4f6a8c0e31572", "UserId": "123456789012"}]' \
	"$groups" >"$work/half.groups.json"
import "$work/half.json" /dev/null --groups "$work/half.groups.json" --roles "$roles" >/dev/null
"$collector" diff-matrix "$work/afirgen.json" "$work/half.json" >"$work/half.diff"
eq "RDS's ingress alone opens no path: exit 0, nothing printed" "$? $(cat "$work/half.diff")" "0 "

# --- each kind of rule the import cannot express is named on standard error --------------
rc=$(import "$work/unsup.json" "$work/unsup.err" --groups "$data/unsupported.groups.json" \
	--roles "$data/unsupported.roles.json")
eq "unsupported rules: still exit 0" "$rc" 0
check "unsupported rules: the output passes check-matrix" \
	quiet "$collector" check-matrix "$work/unsup.json"
eq "unsupported rules: what can be expressed is kept (app -> db:5432)" \
	"$(paths "$work/unsup.json")" "app db 5432"
# warned NAME PATTERN: ok when one warning line on standard error matches PATTERN.
warned() {
	if grep -q -- "^sgprobe-collector import-sg: warning: .*$2" "$work/unsup.err"; then
		ok "warning: $1"
	else
		not_ok "warning: $1" "no line matches '$2' in: $(cat "$work/unsup.err")"
	fi
}
warned "a CIDR that covers no role" \
	"group sg-0000000000000000a (app) IpPermissions\[0\]\.IpRanges\[0\]: 10\.20\.0\.0/16 covers no role"
warned "a reference to a group not in the file" \
	"IpPermissions\[0\]\.UserIdGroupPairs\[0\]: group 'sg-0000000000000000d' is not in .*unsupported.groups.json"
warned "an IPv6 range" \
	"IpPermissions\[0\]\.Ipv6Ranges\[0\]: 2001:db8::/32: IPv6 ranges are not imported"
warned "a prefix list" \
	"IpPermissions\[0\]\.PrefixListIds\[0\]: prefix list pl-0123456789abcdef0 is not resolved"
warned "a UDP rule" "group sg-0000000000000000a (app) IpPermissions\[1\]: udp rule ignored: sgprobe probes TCP"
warned "all traffic (-1), with the ports kept" \
	"group sg-0000000000000000a (app) IpPermissionsEgress\[0\]: all traffic (IpProtocol -1) .*: kept 5432$"
warned "a range wider than the probed ports, with the ports kept" \
	"group sg-0000000000000000b (db) IpPermissions\[0\]: tcp 1024-65535 is wider than the ports the matrix probes .*: kept 5432$"
warned "a group no role holds" \
	"group sg-0000000000000000c (default) is held by no role of .*unsupported.roles.json: its 1 rule is not imported"
eq "unsupported rules: eight warnings and the count" \
	"$(grep -c ': warning: ' "$work/unsup.err") $(tail -n1 "$work/unsup.err")" \
	"8 sgprobe-collector import-sg: 8 warnings: review them before using the matrix"

# --- diff-matrix --------------------------------------------------------------------------
"$collector" diff-matrix "$strict" "$shipped" >"$work/strict.diff" 2>"$work/strict.err"
rc=$?
eq "diff-matrix strict shipped: exit 1" "$rc" 1
eq "diff-matrix strict shipped: the 0.0.0.0/0 443 paths, sorted, only in the shipped matrix" \
	"$(grep -v '^#' "$work/strict.diff")" \
	"+ asr-ocr-server -> alb:443
+ asr-ocr-server -> internet:443
+ backup -> alb:443
+ backup -> internet:443
+ gguf-model-server -> alb:443
+ gguf-model-server -> internet:443
+ main-backend -> alb:443
+ main-backend -> internet:443"
eq "diff-matrix strict shipped: the names differ, as information" \
	"$(grep '^#' "$work/strict.diff")" "# name: afirgen-strict -> afirgen-prod"
"$collector" diff-matrix "$shipped" "$strict" >"$work/rev.diff"
eq "diff-matrix shipped strict: the same paths, as removals" \
	"$(grep -c '^- .*:443$' "$work/rev.diff") $(grep -c '^+' "$work/rev.diff")" "8 0"
"$collector" diff-matrix "$shipped" "$shipped" >"$work/same" 2>&1
rc=$?
eq "diff-matrix of a file with itself: exit 0, nothing printed" "$rc $(wc -c <"$work/same")" "0 0"

# --- bad input: exit 2, naming the file and the field -------------------------------------
# fails NAME WANT CMD...: ok when CMD exits 2 with WANT in its standard error.
fails() {
	local name=$1 want=$2
	shift 2
	"$@" >"$work/f.out" 2>"$work/f.err"
	local rc=$?
	if [ "$rc" = 2 ] && grep -qF -- "$want" "$work/f.err" && [ ! -s "$work/f.out" ]; then
		ok "$name"
	else
		not_ok "$name" "exit $rc, stderr: $(cat "$work/f.err")"
	fi
}
fails "a map group missing from the groups file" \
	"missing-group.roles.json: roles.app.groups[1]: group 'sg-0ffffffffffffffff' is not in" \
	"$collector" import-sg --groups "$data/unsupported.groups.json" \
	--roles "$data/missing-group.roles.json"
fails "an unknown key in the map" "unknown-key.roles.json: roles.app.groupz: unknown key" \
	"$collector" import-sg --groups "$data/unsupported.groups.json" \
	--roles "$data/unknown-key.roles.json"
fails "a FromPort that is a string" \
	"bad-port.groups.json: SecurityGroups[0].IpPermissions[0].FromPort: must be an integer" \
	"$collector" import-sg --groups "$data/bad-port.groups.json" \
	--roles "$data/unsupported.roles.json"
fails "a groups file that is not there" "$work/nothere.json: cannot read" \
	"$collector" import-sg --groups "$work/nothere.json" --roles "$roles"
fails "no --groups" "--groups is required" "$collector" import-sg --roles "$roles"
fails "an unknown flag" "unknown option or missing value: --grups" \
	"$collector" import-sg --grups "$groups" --roles "$roles"
rc=$(import "$work/kept" /dev/null --groups "$data/bad-port.groups.json" \
	--roles "$data/unsupported.roles.json" --output "$work/kept.json")
check "a failed import leaves --output alone" test ! -e "$work/kept.json"
jq '.allow[0].to = "rds"' "$shipped" >"$work/typo.matrix.json"
fails "diff-matrix: a matrix the loader refuses" \
	"typo.matrix.json: allow[0].to: unknown role 'rds'" \
	"$collector" diff-matrix "$shipped" "$work/typo.matrix.json"
fails "diff-matrix: one file" "usage: sgprobe-collector diff-matrix A B" \
	"$collector" diff-matrix "$shipped"

done_testing
