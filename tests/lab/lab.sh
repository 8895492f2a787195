#!/bin/bash
# lab.sh — the AFIRGen lab: one network namespace per role, joined by a bridge in a hub
# namespace, each role's security groups as nftables rules, a listener (labd) on each role's
# service ports. Nothing is added to the host's own namespace. Run as root.
#
#   lab.sh up              build the lab (tears down any leftovers first)
#   lab.sh down            remove it; never fails, also when nothing is there
#   lab.sh exec ROLE CMD…  run CMD inside ROLE's namespace
#   lab.sh addr ROLE       print ROLE's address
#   lab.sh ns ROLE         print ROLE's namespace name
#   lab.sh roles           list the roles
#   lab.sh ca              print the path of the lab CA certificate
#   lab.sh stop ROLE       stop ROLE's listener, freeing its ports for a real server
#
# Environment:
#   SGPROBE_LAB_SG      security groups, `aws ec2 describe-security-groups` output
#                       (default examples/afirgen.security-groups.json): stage a
#                       misconfiguration by pointing it at another file
#   SGPROBE_LAB_JSON    lab description (default examples/afirgen.lab.json)
#   SGPROBE_LAB_DIR     state directory (default /run/sgprobe-lab, or /run/sgprobe-lab-PREFIX
#                       for another prefix): generated files, CA, certificates, pidfiles, logs
#   SGPROBE_LAB_PREFIX  names the namespaces (PREFIX-ROLE, PREFIX-hub) and interfaces
#                       (default sgp); letters and digits, at most 8, so that two labs can
#                       coexist and interface names stay within 15 characters
#   LABD                the listener binary (default build/labd; relative to the repo root)
#
# Name resolution inside a namespace goes through /etc/netns/PREFIX-ROLE/{hosts,resolv.conf,
# nsswitch.conf}: every role's names are in hosts, and resolv.conf points at 127.0.0.1 where
# nothing listens, so an unknown name fails at once and no lookup ever leaves the lab.

set -eEu -o pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PREFIX=${SGPROBE_LAB_PREFIX:-sgp}
if [ "$PREFIX" = sgp ]; then
	DIR=${SGPROBE_LAB_DIR:-/run/sgprobe-lab}
else
	DIR=${SGPROBE_LAB_DIR:-/run/sgprobe-lab-$PREFIX}
fi
SG=${SGPROBE_LAB_SG:-$ROOT/examples/afirgen.security-groups.json}
LAB=${SGPROBE_LAB_JSON:-$ROOT/examples/afirgen.lab.json}
LABD=${LABD:-build/labd}
case $LABD in /*) ;; *) LABD=$ROOT/$LABD ;; esac
PYTHON=/usr/bin/python3
[ -x "$PYTHON" ] || PYTHON=python3
HUB=$PREFIX-hub
BRIDGE=${PREFIX}br
MARKER=.sgprobe-lab # marks a state directory as ours, so that down may remove it

die() {
	echo "lab.sh: $*" >&2
	exit 1
}

check_prefix() {
	case $PREFIX in
	'' | *[!A-Za-z0-9]*) die "SGPROBE_LAB_PREFIX '$PREFIX': letters and digits only" ;;
	?????????*) die "SGPROBE_LAB_PREFIX '$PREFIX': at most 8 characters" ;;
	esac
}

need_root() {
	[ "$(id -u)" = 0 ] || die "$1 needs root"
}

# Our namespaces: PREFIX-* (a prefix has no '-', so another prefix's never match).
lab_namespaces() {
	ip netns list 2>/dev/null | awk -v p="$PREFIX-" 'index($1, p) == 1 { print $1 }'
}

# Prints roles.tsv: the state directory's when the lab is up, else generated afresh.
roles_tsv() {
	if [ -f "$DIR/roles.tsv" ]; then
		cat "$DIR/roles.tsv"
		return
	fi
	local tmp
	tmp=$(mktemp -d)
	if ! "$PYTHON" "$HERE/labgen.py" --prefix "$PREFIX" "$LAB" "$SG" "$tmp" >&2; then
		rm -rf "$tmp"
		exit 2
	fi
	cat "$tmp/roles.tsv"
	rm -rf "$tmp"
}

# Prints field N (1 role, 2 namespace, 3 address, 4 listen, 5 tls) of ROLE's line.
role_field() {
	local out
	out=$(roles_tsv | awk -F '\t' -v r="$1" -v f="$2" '$1 == r { print $f; found = 1 }
		END { exit !found }') || die "unknown role '$1' (lab.sh roles lists them)"
	printf '%s\n' "$out"
}

# Sends SIGTERM, then SIGKILL after 2 s, to the given pids; waits until they are gone.
stop_pids() {
	local pid i
	[ $# -gt 0 ] || return 0
	kill -TERM "$@" 2>/dev/null || true
	for i in $(seq 20); do
		for pid in "$@"; do
			kill -0 "$pid" 2>/dev/null && break
			pid=
		done
		[ -z "$pid" ] && return 0
		sleep 0.1
	done
	kill -KILL "$@" 2>/dev/null || true
}

# Removes the lab. With "keep-ca", the CA (ca.pem, ca.key) survives in the state directory.
teardown() {
	local keep=${1:-} ns pids f
	# The listeners by pidfile (only if the pid is still a labd), then anything else left
	# in our namespaces: a namespace with processes in it outlives `ip netns del`.
	if [ -d "$DIR" ]; then
		pids=
		for f in "$DIR"/*.pid; do
			[ -f "$f" ] || continue
			read -r pid <"$f" 2>/dev/null || continue
			case $pid in '' | *[!0-9]*) continue ;; esac
			[ "$(cat "/proc/$pid/comm" 2>/dev/null)" = labd ] && pids="$pids $pid"
		done
		# shellcheck disable=SC2086
		stop_pids $pids
	fi
	for ns in $(lab_namespaces); do
		# shellcheck disable=SC2046
		stop_pids $(ip netns pids "$ns" 2>/dev/null)
	done
	# Role namespaces first (their veths go with them), the hub last.
	for ns in $(lab_namespaces); do
		[ "$ns" = "$HUB" ] || ip netns del "$ns" 2>/dev/null || true
	done
	ip netns del "$HUB" 2>/dev/null || true
	rm -rf "/etc/netns/$PREFIX-"* 2>/dev/null || true
	rmdir /etc/netns 2>/dev/null || true
	if [ -d "$DIR" ]; then
		if [ ! -e "$DIR/$MARKER" ] && [ -n "$(ls -A "$DIR" 2>/dev/null)" ]; then
			echo "lab.sh: $DIR is not a lab state directory (no $MARKER): left alone" >&2
			return 1
		fi
		if [ "$keep" = keep-ca ]; then
			find "$DIR" -mindepth 1 -maxdepth 1 ! -name ca.pem ! -name ca.key \
				! -name "$MARKER" -exec rm -rf {} + 2>/dev/null || true
		else
			rm -rf "$DIR" 2>/dev/null || true
		fi
	fi
	return 0
}

# The lab CA (kept across runs: regenerated only if missing) and a server certificate for
# ROLE, with its host names and address as subject alternative names.
make_cert() {
	local role=$1 addr=$2 names san n cn
	if [ ! -s "$DIR/ca.pem" ] || [ ! -s "$DIR/ca.key" ]; then
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
			-keyout "$DIR/ca.key" -out "$DIR/ca.pem" -days 3650 \
			-subj "/CN=sgprobe lab CA ($PREFIX)" \
			-addext "basicConstraints=critical,CA:TRUE" \
			-addext "keyUsage=critical,keyCertSign,cRLSign" 2>"$DIR/openssl.log" ||
			die "cannot create the lab CA: see $DIR/openssl.log"
	fi
	mkdir -p "$DIR/certs"
	names=$(awk -v a="$addr" '$1 == a { for (i = 2; i <= NF; i++) print $i }' "$DIR/hosts")
	san="IP:$addr"
	for n in $names; do san="$san,DNS:$n"; done
	printf '%s\n' "basicConstraints=critical,CA:FALSE" \
		"keyUsage=critical,digitalSignature" "extendedKeyUsage=serverAuth" \
		"subjectAltName=$san" >"$DIR/certs/$role.ext"
	cn=${names%%$'\n'*}
	[ -n "$cn" ] || cn=$addr
	if ! openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
		-keyout "$DIR/certs/$role.key" -out "$DIR/certs/$role.csr" -subj "/CN=$cn" \
		2>>"$DIR/openssl.log" ||
		! openssl x509 -req -in "$DIR/certs/$role.csr" -CA "$DIR/ca.pem" \
			-CAkey "$DIR/ca.key" -set_serial "0x$(openssl rand -hex 16)" -days 365 \
			-extfile "$DIR/certs/$role.ext" -out "$DIR/certs/$role.pem" 2>>"$DIR/openssl.log"
	then
		die "cannot create the certificate of $role: see $DIR/openssl.log"
	fi
}

# Waits until every listen port of NS answers a connect from inside it (5 s at most).
wait_listeners() {
	local ns=$1 addr=$2 ports=$3
	ip netns exec "$ns" "$PYTHON" - "$addr" "$ports" <<-'EOF'
		import socket, sys, time
		addr, ports = sys.argv[1], [int(p) for p in sys.argv[2].split(",")]
		deadline = time.monotonic() + 5
		for port in ports:
		    while True:
		        try:
		            socket.create_connection((addr, port), timeout=0.5).close()
		            break
		        except OSError as e:
		            if time.monotonic() > deadline:
		                sys.exit("%s:%d does not answer: %s" % (addr, port, e))
		            time.sleep(0.05)
	EOF
}

cmd_up() {
	need_root up
	local i role ns addr listen tls plen args p
	command -v nft >/dev/null || die "nft not found (apt-get install nftables)"
	command -v openssl >/dev/null || die "openssl not found"
	[ -x "$LABD" ] || die "no listener at $LABD: build it with 'make build/labd' (or set LABD)"
	[ -r "$SG" ] || die "cannot read SGPROBE_LAB_SG=$SG"
	[ -r "$LAB" ] || die "cannot read SGPROBE_LAB_JSON=$LAB"
	case $DIR in /?*) ;; *) die "SGPROBE_LAB_DIR must be an absolute path" ;; esac

	teardown keep-ca || exit 1
	trap 'echo "lab.sh: up failed; lab.sh down removes what was built" >&2' ERR
	mkdir -p "$DIR"
	touch "$DIR/$MARKER"
	"$PYTHON" "$HERE/labgen.py" --prefix "$PREFIX" "$LAB" "$SG" "$DIR" || exit 2
	plen=$(cut -d/ -f2 "$DIR/subnet")

	# The hub: a bridge, nothing else; no addresses, no IPv6 chatter.
	ip netns add "$HUB"
	ip netns exec "$HUB" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 \
		net.ipv6.conf.default.disable_ipv6=1
	ip -n "$HUB" link set lo up
	ip -n "$HUB" link add "$BRIDGE" type bridge
	ip -n "$HUB" link set "$BRIDGE" up

	i=0
	while IFS=$'\t' read -r role ns addr listen tls; do
		i=$((i + 1))
		ip netns add "$ns"
		ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 \
			net.ipv6.conf.default.disable_ipv6=1
		ip -n "$ns" link set lo up
		# veths by index: PREFIXh<i> on the hub's bridge, PREFIXv<i> in the role.
		ip -n "$HUB" link add "${PREFIX}h$i" type veth peer name "${PREFIX}v$i" netns "$ns"
		ip -n "$HUB" link set "${PREFIX}h$i" master "$BRIDGE" up
		ip -n "$ns" addr add "$addr/$plen" dev "${PREFIX}v$i"
		ip -n "$ns" link set "${PREFIX}v$i" up

		mkdir -p "/etc/netns/$ns"
		cp "$DIR/hosts" "/etc/netns/$ns/hosts"
		printf 'nameserver 127.0.0.1\noptions timeout:1 attempts:1\n' \
			>"/etc/netns/$ns/resolv.conf"
		printf 'hosts: files dns\n' >"/etc/netns/$ns/nsswitch.conf"

		if [ -f "$DIR/$role.nft" ]; then
			ip netns exec "$ns" nft -f "$DIR/$role.nft"
		fi
	done <"$DIR/roles.tsv"

	# Listeners: plain on listen ports, TLS (with a lab certificate) on tls ports.
	while IFS=$'\t' read -r role ns addr listen tls; do
		[ "$listen" = - ] && continue
		args=(--bind "$addr" --pidfile "$DIR/$role.pid")
		for p in ${listen//,/ }; do
			case ",$tls," in
			*",$p,"*) args+=(--tls-port "$p") ;;
			*) args+=(--port "$p") ;;
			esac
		done
		if [ "$tls" != - ]; then
			make_cert "$role" "$addr"
			args+=(--cert "$DIR/certs/$role.pem" --key "$DIR/certs/$role.key")
		fi
		setsid -f ip netns exec "$ns" "$LABD" "${args[@]}" \
			</dev/null >"$DIR/$role.log" 2>&1
	done <"$DIR/roles.tsv"

	while IFS=$'\t' read -r role ns addr listen tls; do
		[ "$listen" = - ] && continue
		wait_listeners "$ns" "$addr" "$listen" ||
			die "the listener of $role is not answering (log: $DIR/$role.log): $(cat "$DIR/$role.log")"
	done <"$DIR/roles.tsv"
	trap - ERR
	echo "lab up: $i roles in namespaces $PREFIX-*, state in $DIR, CA $DIR/ca.pem"
}

cmd_down() {
	set +e
	if [ "$(id -u)" != 0 ]; then
		echo "lab.sh: down needs root" >&2
		return 1
	fi
	teardown
	return 0
}

main() {
	local cmd=${1:-help}
	[ $# -gt 0 ] && shift
	check_prefix
	case $cmd in
	up) cmd_up ;;
	down) cmd_down ;;
	exec)
		[ $# -ge 2 ] || die "usage: lab.sh exec ROLE CMD..."
		need_root exec
		local ns
		ns=$(role_field "$1" 2)
		shift
		exec ip netns exec "$ns" "$@"
		;;
	addr | ns)
		[ $# -eq 1 ] || die "usage: lab.sh $cmd ROLE"
		if [ "$cmd" = addr ]; then role_field "$1" 3; else role_field "$1" 2; fi
		;;
	stop)
		# Frees a role's ports for a real server (the demo's collector).
		[ $# -eq 1 ] || die "usage: lab.sh stop ROLE"
		need_root stop
		role_field "$1" 2 >/dev/null
		local pid
		read -r pid <"$DIR/$1.pid" 2>/dev/null || die "$1 has no listener running"
		[ "$(cat "/proc/$pid/comm" 2>/dev/null)" = labd ] && stop_pids "$pid"
		;;
	roles) roles_tsv | cut -f1 ;;
	ca) echo "$DIR/ca.pem" ;;
	help | -h | --help) sed -n '2,/^$/s/^# \{0,1\}//p' "$0" ;;
	*) die "unknown command '$cmd' (lab.sh help)" ;;
	esac
}

main "$@"
