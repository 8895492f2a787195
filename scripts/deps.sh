#!/bin/sh
# Installs the Debian packages sgprobe needs to build, test and run its demo.
# Used by `make deps` (and so by `make test`, `make demo` and .ci/run).
# Only packages that are missing are installed; nothing is done when all are there.
set -eu

PKGS="build-essential pkg-config libuv1-dev libcjson-dev libcurl4-openssl-dev libssl-dev
libh2o-dev libcmocka-dev nftables nmap iproute2 clang-format openssl ca-certificates
procps jq python3 bash time clang libclang-rt-dev socat curl chromium prometheus-pushgateway
prometheus-blackbox-exporter zlib1g-dev python3-botocore"

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing="$missing $p"
	fi
done

[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
	echo "deps: missing Debian packages:$missing (run as root, or install them)" >&2
	exit 1
fi
echo "deps: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2 || apt-get update >&2
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/tmp/sgprobe-apt.log 2>&1 || { cat /tmp/sgprobe-apt.log >&2; exit 1; }
