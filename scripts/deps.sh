#!/bin/sh
# Installs the Debian packages sgprobe needs to build, test and run its demo, and
# the npm tools its tests run on container/ (tests/node).
# Used by `make deps` (and so by `make test`, `make demo` and .ci/run).
# Only packages that are missing are installed; nothing is done when all are there.
set -eu

PKGS="build-essential pkg-config libuv1-dev libcjson-dev libcurl4-openssl-dev libssl-dev
libh2o-dev libcmocka-dev nftables nmap iproute2 clang-format openssl ca-certificates
procps jq python3 bash time clang libclang-rt-dev socat curl chromium prometheus-pushgateway
prometheus-blackbox-exporter zlib1g-dev python3-botocore"

apt_install() {
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >&2 || apt-get update >&2
	apt-get install -y -qq --no-install-recommends "$@" >/tmp/sgprobe-apt.log 2>&1 ||
		{ cat /tmp/sgprobe-apt.log >&2; exit 1; }
}

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing="$missing $p"
	fi
done

# The npm tools the tests run on container/ (dockerfilelint, @cdktf/hcl2json),
# pinned by tests/node/package-lock.json, installed into tests/node/node_modules.
npm_tools() {
	top=$(cd "$(dirname "$0")/.." && pwd)
	[ -x "$top/tests/node/node_modules/.bin/dockerfilelint" ] &&
		[ -f "$top/tests/node/node_modules/@cdktf/hcl2json/package.json" ] && return 0
	if ! command -v npm >/dev/null 2>&1; then
		echo "deps: npm is missing: installing nodejs and npm" >&2
		apt_install nodejs npm
	fi
	echo "deps: installing the npm test tools into tests/node" >&2
	(cd "$top/tests/node" && npm ci --no-audit --no-fund >/tmp/sgprobe-npm.log 2>&1) ||
		{ cat /tmp/sgprobe-npm.log >&2; exit 1; }
}

[ -z "$missing" ] && { npm_tools; exit 0; }

if [ "$(id -u)" != 0 ]; then
	echo "deps: missing Debian packages:$missing (run as root, or install them)" >&2
	exit 1
fi
echo "deps: installing$missing" >&2
# shellcheck disable=SC2086
apt_install $missing
npm_tools
