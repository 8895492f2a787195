#!/bin/sh
# Builds the root filesystem of a FROM-scratch image for one dynamically linked
# program: the program, every library `ldd` names with the dynamic loader, and the
# few files it reads at run time. Used by container/agent.Dockerfile and
# container/collector.Dockerfile in their build stage, and by
# tests/integration/test_container.sh, which runs the binaries from the result:
# what the test proves is what the image holds.
#
#   sh container/rootfs.sh BINARY DEST [--user NAME:UID] [--dlopen SONAME]...
#
# --dlopen names a library the program loads itself at run time (sgprobe-agent
# loads libcurl.so.4 when it first needs it, agent/curlload.h): ldd cannot see it,
# so it is looked up beside the program's libc and copied with what it needs.
#
# DEST then holds:
#   /usr/local/bin/BINARY            the program (root's, 0755)
#   the libraries and the loader     at the paths ldd names, every symbolic link on
#                                    the way recreated (/lib -> usr/lib, the sonames)
#   /etc/passwd, /etc/group          root and NAME (default sgprobe:10001; gid = uid)
#   /etc/nsswitch.conf, /etc/hosts   files then DNS; localhost (a runtime replaces hosts)
#   /etc/ssl/certs/ca-certificates.crt and OpenSSL's links to it (/usr/lib/ssl)
#   /etc/os-release, /var/lib/dpkg/status.d/PKG
#                                    which Debian packages the files come from, for
#                                    image scanners (as distroless images do)
#   /tmp (1777), /run/sgprobe (NAME's, 0700)
#                                    writable: the agent's health file and plan cache
#
# It exits 1, saying why, when ldd cannot resolve a library ("not found"), when
# the CA bundle is missing, or when it cannot give /run/sgprobe to the user (it
# must run as root, as a Dockerfile's RUN does).
set -eu
umask 022

die() {
	echo "rootfs.sh: $*" >&2
	exit 1
}
usage() {
	echo "usage: sh container/rootfs.sh BINARY DEST [--user NAME:UID] [--dlopen SONAME]..." >&2
	exit 2
}

[ $# -ge 2 ] || usage
bin=$1
dest=$2
shift 2
user=sgprobe
uid=10001
spec=$user:$uid
dlopens=""
while [ $# -gt 0 ]; do
	case $1 in
	--user)
		[ $# -ge 2 ] || usage
		spec=$2
		shift 2
		;;
	--user=*)
		spec=${1#--user=}
		shift
		;;
	--dlopen)
		[ $# -ge 2 ] || usage
		dlopens="$dlopens $2"
		shift 2
		;;
	*) usage ;;
	esac
done
user=${spec%%:*}
uid=${spec#*:}
for so in $dlopens; do
	case $so in
	lib*.so*) case $so in */*) die "--dlopen: '$so' is not a library name (libNAME.so.N)" ;; esac ;;
	*) die "--dlopen: '$so' is not a library name (libNAME.so.N)" ;;
	esac
done
case $user in
'' | [!a-z_]* | *[!a-z0-9_-]*) die "--user: '$user' is not a user name ([a-z_][a-z0-9_-]*)" ;;
esac
case $uid in
'' | *[!0-9]*) die "--user: '$uid' is not a numeric uid" ;;
esac
# The point of the image's user is not to be root.
[ "$uid" -gt 0 ] || die "--user: the uid must not be 0"
[ "$(id -u)" = 0 ] || die "must run as root: the files are root's, /run/sgprobe is uid $uid's"
if [ ! -f "$bin" ] || [ ! -x "$bin" ]; then die "$bin: not an executable file"; fi
mkdir -p "$dest"
dest=$(cd "$dest" && pwd -P)
[ "$dest" != / ] || die "DEST must not be /"

# relative LINKDIR TARGET: an absolute link target rewritten relative to the
# link's own directory, so that the tree is self-contained: inspecting DEST from
# outside never follows a link out of it, and inside the image it resolves alike.
relative() {
	up=""
	d=${1#/}
	while [ -n "$d" ]; do
		up="../$up"
		case $d in */*) d=${d#*/} ;; *) d="" ;; esac
	done
	echo "${up}${2#/}"
}

# mirror PATH: makes DEST/PATH resolve as PATH does here. Every symbolic link met
# on the way (a directory such as /lib -> usr/lib, a library's soname link) is
# recreated, and the walk goes on from its target; the regular file at the end is
# copied, a directory at the end is only created (not its contents).
mirror() {
	path=$1
	hops=${2:-0}
	[ "$hops" -lt 40 ] || die "$1: too many levels of symbolic links"
	done_path=""
	rest=${path#/}
	while [ -n "$rest" ]; do
		c=${rest%%/*}
		case $rest in */*) rest=${rest#*/} ;; *) rest="" ;; esac
		[ -n "$c" ] || continue
		cur="$done_path/$c"
		if [ -L "$cur" ]; then
			target=$(readlink "$cur")
			if [ ! -L "$dest$cur" ]; then
				[ -e "$dest$cur" ] && die "$cur: a link here, not in $dest"
				mkdir -p "$dest$done_path"
				case $target in
				/*) ln -s "$(relative "${done_path:-/}" "$target")" "$dest$cur" ;;
				*) ln -s "$target" "$dest$cur" ;;
				esac
			fi
			case $target in
			/*) next=$target ;;
			*) next="$done_path/$target" ;;
			esac
			mirror "$next${rest:+/$rest}" $((hops + 1))
			return
		elif [ -d "$cur" ]; then
			[ -L "$dest$cur" ] || mkdir -p "$dest$cur"
		elif [ -f "$cur" ]; then
			[ -z "$rest" ] || die "$cur: a file where $path needs a directory"
			mkdir -p "$dest$done_path"
			cp -p "$cur" "$dest$cur"
		else
			die "$cur: no such file (needed for $path)"
		fi
		done_path=$cur
	done
}

# --- the program and what the loader needs --------------------------------------------
name=$(basename "$bin")
mkdir -p "$dest/usr/local/bin"
cp -L "$bin" "$dest/usr/local/bin/$name"
chmod 0755 "$dest/usr/local/bin/$name"

# ldd fails on a static program ("not a dynamic executable"): nothing to copy then.
lddout=$(LC_ALL=C ldd "$bin" 2>&1) || {
	case $lddout in
	*"not a dynamic executable"* | *"statically linked"*) lddout="" ;;
	*) die "ldd $bin failed: $lddout" ;;
	esac
}
missing=$(printf '%s\n' "$lddout" | grep 'not found' || true)
[ -z "$missing" ] || die "ldd $bin: libraries not found (install them in the build stage):
$missing"
# "libuv.so.1 => /lib/…/libuv.so.1 (0x…)" names a library; "/lib64/ld-linux….so.2
# (0x…)" the loader (PT_INTERP); linux-vdso has no file.
libs=$(printf '%s\n' "$lddout" | awk '$2 == "=>" && $3 ~ /^\// { print $3; next }
	$1 ~ /^\// { print $1 }')
loader=$(printf '%s\n' "$lddout" | awk '$2 != "=>" && $1 ~ /^\// { print $1 }')
[ -z "$lddout" ] || [ -n "$loader" ] || die "ldd $bin names no dynamic loader:
$lddout"
# The libraries loaded with dlopen(): from the directory of the program's libc,
# the same architecture, with everything ldd says they need.
if [ -n "$dlopens" ]; then
	libdir=$(printf '%s\n' "$libs" | awk -F/ '$NF == "libc.so.6" { NF--; print; exit }' OFS=/)
	[ -n "$libdir" ] || die "--dlopen: $bin does not use libc.so.6: where would its libraries be?"
	for so in $dlopens; do
		[ -e "$libdir/$so" ] || die "--dlopen $so: no $libdir/$so (install it in the build stage)"
		more=$(LC_ALL=C ldd "$libdir/$so" 2>&1) || die "ldd $libdir/$so failed: $more"
		missing=$(printf '%s\n' "$more" | grep 'not found' || true)
		[ -z "$missing" ] || die "ldd $libdir/$so: libraries not found (install them in the build stage):
$missing"
		libs="$libs
$libdir/$so
$(printf '%s\n' "$more" | awk '$2 == "=>" && $3 ~ /^\// { print $3 }')"
	done
	libs=$(printf '%s\n' "$libs" | awk 'NF && !seen[$0]++')
fi
for lib in $libs; do
	mirror "$lib"
done

# --- what the program reads at run time -------------------------------------------------
# TLS: libcurl (the push, CloudWatch) reads the bundle by its path; OpenSSL's
# default verify paths (TLS probes) are /usr/lib/ssl/cert.pem and certs/, links to
# /etc/ssl. openssl.cnf keeps Debian's defaults (the security level).
[ -s /etc/ssl/certs/ca-certificates.crt ] ||
	die "/etc/ssl/certs/ca-certificates.crt is missing: install ca-certificates in the build stage"
mirror /etc/ssl/certs/ca-certificates.crt
for f in /usr/lib/ssl/cert.pem /usr/lib/ssl/certs /usr/lib/ssl/openssl.cnf; do
	if [ -e "$f" ]; then mirror "$f"; fi
done

# Users: the uid the image runs as has a name (logs, getpwuid), no shell, no home.
printf 'root:x:0:0:root:/root:/sbin/nologin\n%s:x:%s:%s:%s:/nonexistent:/sbin/nologin\n' \
	"$user" "$uid" "$uid" "$user" >"$dest/etc/passwd"
printf 'root:x:0:\n%s:x:%s:\n' "$user" "$uid" >"$dest/etc/group"
# Name lookups: glibc's files and dns backends are built into libc.so.6 (2.34 and
# later), so this file is all getaddrinfo needs; resolv.conf comes from the runtime.
printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$dest/etc/nsswitch.conf"
printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$dest/etc/hosts"

# What the image is made of, for scanners (Trivy and Grype read status.d, as
# distroless images carry it): the package of every file copied, and
# ca-certificates. Records only: no dpkg.
if [ -e /etc/os-release ]; then mirror /etc/os-release; fi
if command -v dpkg-query >/dev/null 2>&1; then
	paths=""
	for lib in $libs; do
		paths="$paths $lib $(readlink -f "$lib")"
	done
	# shellcheck disable=SC2086
	pkgs=$({
		[ -z "$paths" ] || dpkg-query -S $paths 2>/dev/null || true
		echo "ca-certificates: /etc/ssl/certs"
	} | sed -n 's/^\([^ ,:]*\(:[a-z0-9]*\)\{0,1\}\): .*/\1/p' | sort -u)
	mkdir -p "$dest/var/lib/dpkg/status.d"
	for p in $pkgs; do
		dpkg-query -s "$p" >"$dest/var/lib/dpkg/status.d/${p%%:*}" 2>/dev/null ||
			rm -f "$dest/var/lib/dpkg/status.d/${p%%:*}"
	done
fi

# Writable places, and nothing else: /tmp for libraries that want one, /run/sgprobe
# for the agent's health file and plan cache (mount a volume there when the root
# filesystem is read-only).
mkdir -p "$dest/tmp" "$dest/run/sgprobe"
chmod 1777 "$dest/tmp"
chown "$uid:$uid" "$dest/run/sgprobe"
chmod 0700 "$dest/run/sgprobe"
