#!/bin/bash
# The container images, without a container engine. Both Dockerfiles are linted
# (dockerfilelint) and read: their stages, user, labels, environment, health
# check and entrypoint. The build stage is replayed (the files it copies, its make
# and rootfs.sh line) into a folder. Then container/rootfs.sh builds each image's
# root filesystem from $build's binary, as the build stage does, and the binaries
# run from it under chroot as uid 10001 with only the image's environment and a
# /proc of their own: the agent's --help, --once on loopback, --once --push into
# the collector, the daemon and its health file; the collector serving; and each
# image's HEALTHCHECK command, taken from its Dockerfile, from the same root.
# Loopback only (127.0.0.0/8). Needs root (chroot, mount namespaces).
. "$(dirname "$0")/../lib.sh"
set -u

lint="$top/tests/node/node_modules/.bin/dockerfilelint"
work=$(mktemp -d /tmp/sgprobe-container.XXXXXX)
pids=()

cleanup() {
	local p m
	for p in "${pids[@]}"; do
		kill "$p" 2>/dev/null && wait "$p" 2>/dev/null
	done
	# The /proc mounts live in the processes' own mount namespaces and go with
	# them; anything still mounted under $work is a leak to undo before rm.
	for m in $(awk -v w="$work/" 'index($2, w) == 1 { print $2 }' /proc/mounts | sort -r); do
		umount -l "$m"
	done
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# instructions DOCKERFILE: one line per instruction, continuations joined,
# comments dropped, blanks squeezed.
instructions() {
	awk '/^[[:space:]]*#/ { next }
		{ sub(/[[:space:]]+$/, "") }
		/\\$/ { sub(/\\$/, ""); buf = buf $0 " "; next }
		{ line = buf $0; buf = ""
		  gsub(/[[:space:]]+/, " ", line); sub(/^ /, "", line)
		  if (line != "") print line }' "$1"
}
# final_stage DOCKERFILE: the instructions of the last stage, its FROM included.
final_stage() {
	instructions "$1" | awk '/^FROM / { n = NR } { l[NR] = $0 } END { for (i = n; i <= NR; i++) print l[i] }'
}

# in_root ROOT USER:GROUP [VAR=VALUE...] -- CMD [ARG...]: runs CMD as the image
# would: from ROOT (chroot: nothing of this machine's filesystem is reachable), as
# USER:GROUP, with only the image's environment (the VAR=VALUE given, Docker's
# PATH, and the sanitizer options of the suite), and a /proc of its own (ASan
# reads it) mounted in a private mount namespace that goes with the process.
# It execs: call it in a subshell or in the background ($! is then CMD's pid).
in_root() {
	local root=$1 spec=$2 envs=() v
	shift 2
	while [ "$1" != -- ]; do
		envs+=("$1")
		shift
	done
	shift
	for v in ASAN_OPTIONS UBSAN_OPTIONS LSAN_OPTIONS; do
		[ -n "${!v:-}" ] && envs+=("$v=${!v}")
	done
	exec unshare --mount --propagation private sh -c 'mount -t proc proc "$0/proc" && exec "$@"' \
		"$root" env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		HOSTNAME=sgprobe-test "${envs[@]}" "$(command -v chroot)" --userspec="$spec" "$root" "$@"
}

# wait_for SECONDS CMD...: polls CMD every 0.1 s until it succeeds.
wait_for() {
	local n=$(($1 * 10))
	shift
	while [ "$n" -gt 0 ]; do
		"$@" && return 0
		sleep 0.1
		n=$((n - 1))
	done
	return 1
}

version=$(sed -n 's/^#define PUSH_VERSION "\(.*\)"$/\1/p' "$top/agent/push.h")
pkgs=$(sed -n 's/^PKGS := //p' "$top/Makefile")

# --- lint -----------------------------------------------------------------------------------
if [ ! -x "$lint" ]; then
	not_ok "dockerfilelint is installed" "missing $lint: run sh scripts/deps.sh"
else
	# The linter must be able to fail: a planted mistake is found.
	n=$(printf 'FROM debian:latest\nRUN apt-get update && apt-get install curl\n' |
		"$lint" -j - 2>/dev/null | jq -r .totalIssues)
	check "dockerfilelint finds the mistakes of a bad Dockerfile" test "${n:-0}" -ge 3
	for img in agent collector; do
		f="$top/container/$img.Dockerfile"
		"$lint" -j "$f" >"$work/lint-$img.json" 2>&1
		rc=$?
		n=$(jq -r .totalIssues "$work/lint-$img.json" 2>/dev/null)
		jq -r '.files[].issues[] | "# line \(.line): \(.title): \(.content)"' "$work/lint-$img.json" 2>/dev/null
		eq "dockerfilelint: container/$img.Dockerfile has no finding" "$rc ${n:-?}" "0 0"
	done
fi
if [ -f "$top/container/.dockerfilelintrc" ]; then
	# A rule turned off must say why, on the line above it.
	check "container/.dockerfilelintrc: every rule turned off has its reason" awk '
		/^[[:space:]]*[a-z_.-]+:[[:space:]]*off/ && prev !~ /^[[:space:]]*#/ { bad = 1 }
		{ prev = $0 } END { exit bad }' "$top/container/.dockerfilelintrc"
fi

# --- what the Dockerfiles say ----------------------------------------------------------------
for img in agent collector; do
	f="$top/container/$img.Dockerfile"
	bin=sgprobe-$img
	instructions "$f" >"$work/$img.all"
	final_stage "$f" >"$work/$img.final"
	check "$img: the build stage is debian:bookworm-slim, pinned by tag" \
		grep -qx 'FROM debian:bookworm-slim AS build' "$work/$img.all"
	check "$img: the runtime stage is FROM scratch" grep -qx 'FROM scratch' "$work/$img.final"
	check "$img: the runtime is the staged folder" grep -qx 'COPY --from=build /staging /' "$work/$img.final"
	check "$img: the build stage makes build/$bin and stages it with container/rootfs.sh" \
		grep -Eq "make build/$bin .*&& sh container/rootfs.sh build/$bin /staging --user sgprobe:10001( --dlopen [^ ]+)*\$" "$work/$img.all"
	# What the image's rootfs.sh line adds (the agent's --dlopen), for the roots below.
	sed -n "s#.*sh container/rootfs.sh build/$bin /staging --user sgprobe:10001##p" "$work/$img.all" \
		>"$work/$img.rootfs-args"
	eq "$img: USER is 10001:10001, the user rootfs.sh creates" \
		"$(grep '^USER ' "$work/$img.final")" "USER 10001:10001"
	eq "$img: ARG VERSION defaults to the project's version ($version)" \
		"$(sed -n 's/^ARG VERSION=//p' "$work/$img.final")" "$version"
	labels=$(grep '^LABEL ' "$work/$img.final")
	missing=""
	for l in title description source licenses version; do
		case $labels in *"org.opencontainers.image.$l="*) ;; *) missing="$missing $l" ;; esac
	done
	eq "$img: the OCI labels title, description, source, licenses, version" "$missing" ""
	check "$img: the version label is ARG VERSION" grep -q 'org.opencontainers.image.version="${VERSION}"' "$work/$img.final"
	check "$img: the title label names the image" grep -q "org.opencontainers.image.title=\"$bin\"" "$work/$img.final"
	eq "$img: ENTRYPOINT is the binary, exec form" \
		"$(sed -n 's/^ENTRYPOINT //p' "$work/$img.final" | jq -c . 2>/dev/null)" "[\"/usr/local/bin/$bin\"]"
	hc=$(grep -c '^HEALTHCHECK ' "$work/$img.final")
	eq "$img: one HEALTHCHECK, in the runtime stage" "$hc" 1
	sed -n 's/^HEALTHCHECK .* CMD \(\[.*\]\)$/\1/p' "$work/$img.final" >"$work/$img.hc"
	eq "$img: the HEALTHCHECK is the binary's own health command, exec form (no shell)" \
		"$(jq -r '.[0:2] | join(" ")' "$work/$img.hc" 2>/dev/null)" "/usr/local/bin/$bin health"
	# The image's environment, as VAR=VALUE lines (values without spaces).
	sed -n 's/^ENV //p' "$work/$img.final" | tr ' ' '\n' | grep '=' >"$work/$img.env"
	check "$img: PATH is set (scratch has none): the program answers to its bare name" \
		grep -qx 'PATH=/usr/local/bin' "$work/$img.env"
	check "$img: /run/sgprobe is a VOLUME (writable under a read-only root, ECS copies its owner)" \
		grep -qx 'VOLUME \["/run/sgprobe"\]' "$work/$img.final"
	# The -dev package of every pkg-config name the Makefile asks for is installed.
	apt_line=$(grep '^RUN apt-get update' "$work/$img.all")
	missing=""
	for pc in $pkgs; do
		dev=$(dpkg-query -S "$(pkg-config --path "$pc")" 2>/dev/null | sed 's/:.*//')
		case " $apt_line " in *" $dev "*) ;; *) missing="$missing $pc(${dev:-?})" ;; esac
	done
	eq "$img: the build stage installs the -dev package of each of the Makefile's PKGS" "$missing" ""
done
eq "agent: the image puts the health file and the plan cache in the volume" \
	"$(grep -cx -e 'SGPROBE_HEALTH_FILE=/run/sgprobe/health.json' -e 'SGPROBE_PLAN_CACHE=/run/sgprobe/plan.json' "$work/agent.env")" 2

# --- the build stage, replayed --------------------------------------------------------------
# Its COPY lines into a fresh source folder, then its make-and-stage line there
# (/staging moved into $work): the files it names are enough to build, and its
# flags pass -Werror.
for img in agent collector; do
	src="$work/src-$img"
	mkdir -p "$src"
	awk '/^FROM / { n++ } n == 1 && /^COPY / && !/--from/' "$work/$img.all" |
		while read -r -a words; do
			set -- "${words[@]:1}"
			dst=${*: -1}
			mkdir -p "$src/$dst"
			for s in "${@:1:$#-1}"; do
				if [ -d "$top/$s" ]; then cp -a "$top/$s/." "$src/$dst/"; else cp -a "$top/$s" "$src/$dst/"; fi
			done
		done
	run=$(grep '^RUN make build/' "$work/$img.all" | sed "s/^RUN //; s#/staging#$work/staging-$img#g")
	(cd "$src" && MAKEFLAGS=-j"$(nproc)" sh -c "$run") >"$work/build-$img.log" 2>&1
	rc=$?
	[ "$rc" -eq 0 ] || tail -20 "$work/build-$img.log" | sed 's/^/# /'
	eq "$img: the build stage's files, make and rootfs.sh line build the staged folder" "$rc" 0
	if [ "$rc" -eq 0 ]; then
		mkdir -p "$work/staging-$img/proc"
		(in_root "$work/staging-$img" 10001:10001 -- "/usr/local/bin/sgprobe-$img" --help) \
			>"$work/staged-help-$img" 2>&1
		check "$img: the staged binary (the build stage's flags) runs from its folder" \
			grep -q "^usage: sgprobe-$img" "$work/staged-help-$img"
	fi
done

# --- the root filesystems, from $build's binaries ---------------------------------------------
for img in agent collector; do
	root="$work/$img"
	bin=sgprobe-$img
	read -r -a extra <"$work/$img.rootfs-args" || true
	sh "$top/container/rootfs.sh" "$build/$bin" "$root" --user sgprobe:10001 "${extra[@]}" \
		2>"$work/rootfs-$img.err"
	rc=$?
	cat "$work/rootfs-$img.err"
	eq "$img: container/rootfs.sh builds the root filesystem" "$rc" 0
	echo "# $img: $(du -sh "$root" | cut -f1) ($build)"
	check "$img: no /bin/sh" test ! -e "$root/bin/sh" -a ! -L "$root/bin/sh"
	eq "$img: no shell, no package manager, no busybox" \
		"$(find "$root" ! -type d \( -name sh -o -name bash -o -name dash -o -name busybox -o -name 'apt*' \
			-o -name 'dpkg*' -o -name rpm -o -name yum -o -name apk -o -name pip \) -printf '%P ')" ""
	# Every file is accounted for: the program, shared objects, a few of /etc, and
	# the package records for scanners.
	eq "$img: nothing but the program, its libraries and the files it reads" \
		"$(find "$root" -type f -printf '/%P\n' | grep -vx -e "/usr/local/bin/$bin" \
			-e '/usr/lib/[a-z0-9_-]*/[^/]*\.so[.0-9]*' -e '/usr/lib/[a-z0-9_-]*/ld-linux[^/]*' \
			-e '/etc/passwd' -e '/etc/group' -e '/etc/nsswitch.conf' -e '/etc/hosts' \
			-e '/etc/ssl/openssl.cnf' -e '/etc/ssl/certs/ca-certificates.crt' \
			-e '/usr/lib/os-release' -e '/var/lib/dpkg/status.d/[a-z0-9.+-]*' | tr '\n' ' ')" ""
	# Each library ldd names, by the name it names: the links resolve inside the root.
	missing=""
	for lib in $(ldd "$build/$bin" | awk '$2 == "=>" { print $3; next } $1 ~ /^\// { print $1 }'); do
		[ -f "$root$lib" ] || missing="$missing $lib"
	done
	eq "$img: every library ldd names, and the loader, resolve inside the root" "$missing" ""
	if [ "$img" = agent ]; then
		# The agent loads libcurl itself when it first pushes (agent/curlload.h).
		check "agent: libcurl, which ldd does not name, is in the root (--dlopen)" \
			test -n "$(find "$root" -name 'libcurl.so.4' -print -quit)"
	fi
	check "$img: no link points out of the root" sh -c \
		"! find '$root' -type l -lname '/*' | grep -q ."
	check "$img: /etc/passwd names uid 10001 sgprobe, with no shell" \
		grep -qx 'sgprobe:x:10001:10001:sgprobe:/nonexistent:/sbin/nologin' "$root/etc/passwd"
	check "$img: the CA bundle, and OpenSSL's default path to it" \
		test -s "$root/etc/ssl/certs/ca-certificates.crt" -a -s "$root/usr/lib/ssl/cert.pem"
	check "$img: the package records name libc6 and ca-certificates" \
		test -s "$root/var/lib/dpkg/status.d/libc6" -a -s "$root/var/lib/dpkg/status.d/ca-certificates"
	eq "$img: all root's but /run/sgprobe, uid 10001's and private" \
		"$(find "$root" ! -user 0 -printf '/%P ') $(stat -c '%u:%g %a' "$root/run/sgprobe") $(stat -c %a "$root/tmp")" \
		"/run/sgprobe  10001:10001 700 1777"
	# The runtime makes the mount points; the test makes /proc (in_root mounts it).
	mkdir -p "$root/proc" "$root/etc/sgprobe"
done

# rootfs.sh refuses what would make a broken image.
printf '#!/bin/sh\n' >"$work/notelf"
chmod +x "$work/notelf"
cat >"$work/fake-ldd" <<'EOF'
#!/bin/sh
printf '\tlibuv.so.1 => /lib/x86_64-linux-gnu/libuv.so.1 (0x1)\n\tlibgone.so.3 => not found\n'
EOF
chmod +x "$work/fake-ldd"
mkdir -p "$work/fakebin"
cp "$work/fake-ldd" "$work/fakebin/ldd"
PATH="$work/fakebin:$PATH" sh "$top/container/rootfs.sh" "$build/sgprobe-agent" "$work/broken" \
	>/dev/null 2>"$work/broken.err"
rc=$?
eq "rootfs.sh: a library ldd does not find fails the build" "$rc" 1
check "rootfs.sh: ... naming it" grep -q 'libgone.so.3 => not found' "$work/broken.err"
sh "$top/container/rootfs.sh" "$build/sgprobe-agent" "$work/rootuser" --user root:0 >/dev/null 2>&1
eq "rootfs.sh: uid 0 is refused" "$?" 1

ra="$work/agent"
rc_="$work/collector"
mapfile -t agent_env <"$work/agent.env"
mapfile -t collector_env <"$work/collector.env"
mapfile -t agent_hc < <(jq -r '.[]' "$work/agent.hc")
mapfile -t collector_hc < <(jq -r '.[]' "$work/collector.hc")
user=$(sed -n 's/^USER //p' "$work/agent.final")
cuser=$(sed -n 's/^USER //p' "$work/collector.final")

# --- the agent from its root ------------------------------------------------------------------
(in_root "$ra" "$user" "${agent_env[@]}" -- /usr/local/bin/sgprobe-agent --help) >"$work/help" 2>&1
eq "agent: --help from the root exits 0" "$?" 0
check "agent: --help prints the usage" grep -q '^usage: sgprobe-agent' "$work/help"
# As an ECS healthCheck or `docker exec` names it: by its bare name, through the image's PATH.
(in_root "$ra" "$user" "${agent_env[@]}" -- sgprobe-agent --help) >/dev/null 2>&1
eq "agent: the bare name runs it (the image's PATH)" "$?" 0

# A tiny matrix on loopback: web (this agent, 127.0.0.11) may reach api on a port
# a listener holds; web's own address is never probed.
LP=$(free_port)
python3 -c 'import socket,time,sys
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.12", int(sys.argv[2]))); s.listen(64)
open(sys.argv[1], "w").write("up"); time.sleep(60)' "$work/listener.up" "$LP" &
pids+=("$!")
cat >"$work/matrix.json" <<EOF
{ "version": 1, "name": "container",
  "probe": { "ports": [$LP], "interval_s": 1, "timeout_ms": 300 },
  "roles": {
    "web": { "endpoints": ["127.0.0.11"], "ports": [$LP], "agent": true },
    "api": { "endpoints": ["127.0.0.12"], "ports": [$LP], "agent": true } },
  "allow": [ { "from": "web", "to": "api", "ports": [$LP] } ] }
EOF
cat >"$work/keys.json" <<'EOF'
{ "keys": [ { "id": "web-1", "secret": "container-secret", "roles": ["web"] } ] }
EOF
for r in "$ra" "$rc_"; do
	cp "$work/matrix.json" "$work/keys.json" "$r/etc/sgprobe/"
	chmod 0644 "$r/etc/sgprobe/"*
done
wait_for 5 test -s "$work/listener.up"

(in_root "$ra" "$user" "${agent_env[@]}" -- /usr/local/bin/sgprobe-agent --once \
	--matrix /etc/sgprobe/matrix.json --role web --agent-address 127.0.0.11) >"$work/once.out" 2>&1
rc=$?
sed 's/^/# /' "$work/once.out"
eq "agent: --once from the root, as uid 10001, exits 0" "$rc" 0
check "agent: --once prints its table: web → api:$LP open and allowed is ok" \
	grep -Eq "^ +ok +allow +api +127\.0\.0\.12:$LP +127\.0\.0\.12 +open" "$work/once.out"

# --- the collector from its root --------------------------------------------------------------
P=$(free_port)
A=$(free_port)
cenv=("${collector_env[@]}" "SGPROBE_LISTEN=127.0.0.1:$P" "SGPROBE_ADMIN_LISTEN=127.0.0.1:$A")
in_root "$rc_" "$cuser" "${cenv[@]}" -- /usr/local/bin/sgprobe-collector 2>"$work/collector.log" &
cpid=$!
pids+=("$cpid")
wait_for 10 curl -sf "http://127.0.0.1:$A/healthz" -o /dev/null
check "collector: serves from its root, with the image's matrix and keys paths" \
	curl -sf "http://127.0.0.1:$A/healthz" -o /dev/null
eq "collector: runs as uid 10001" "$(awk '/^Uid:/ { print $2 }' "/proc/$cpid/status" 2>/dev/null)" 10001
(in_root "$rc_" "$cuser" "${cenv[@]}" -- "${collector_hc[@]}") >"$work/chc.out" 2>&1
eq "collector: the image's HEALTHCHECK (${collector_hc[*]}) exits 0" "$?" 0
(in_root "$rc_" "$cuser" "${cenv[@]}" -- sgprobe-collector health) >/dev/null 2>&1
eq "collector: so does sgprobe-collector health by its bare name" "$?" 0

(in_root "$ra" "$user" "${agent_env[@]}" SGPROBE_KEY=container-secret -- /usr/local/bin/sgprobe-agent \
	--once --matrix /etc/sgprobe/matrix.json --role web --agent-address 127.0.0.11 --agent-id web-c \
	--push "http://127.0.0.1:$P/v1/reports" --key-id web-1 --format json) >/dev/null 2>"$work/push.err"
eq "agent: --once --push from its root to the collector in its root exits 0" "$?" 0
check "agent: ... says it pushed" grep -q 'pushed 1 report' "$work/push.err"
eq "collector: the pushed observation is in its matrix" \
	"$(curl -s "http://127.0.0.1:$A/v1/matrix" | jq -r ".cells[] | select(.src_role == \"web\" and .dst_role == \"api\" and .port == $LP) | .observations[] | select(.agent == \"web-c\") | .verdict")" ok

# An agent root made without the Dockerfile's --dlopen: probing works, pushing
# fails and says why.
sh "$top/container/rootfs.sh" "$build/sgprobe-agent" "$work/nocurl" --user sgprobe:10001 >/dev/null 2>&1
mkdir -p "$work/nocurl/proc" "$work/nocurl/etc/sgprobe"
cp "$work/matrix.json" "$work/nocurl/etc/sgprobe/"
chmod 0644 "$work/nocurl/etc/sgprobe/matrix.json"
(in_root "$work/nocurl" "$user" "${agent_env[@]}" -- /usr/local/bin/sgprobe-agent --once \
	--matrix /etc/sgprobe/matrix.json --role web --agent-address 127.0.0.11) >/dev/null 2>&1
eq "agent without libcurl: --once (no push) still exits 0" "$?" 0
(in_root "$work/nocurl" "$user" "${agent_env[@]}" SGPROBE_KEY=container-secret -- /usr/local/bin/sgprobe-agent \
	--once --matrix /etc/sgprobe/matrix.json --role web --agent-address 127.0.0.11 --agent-id web-c \
	--push "http://127.0.0.1:$P/v1/reports" --key-id web-1 --format json) >/dev/null 2>"$work/nocurl.err"
eq "agent without libcurl: --once --push exits 1" "$?" 1
check "agent without libcurl: ... saying it cannot load libcurl.so.4" \
	grep -q 'sgprobe-agent: --push: cannot load libcurl (libcurl.so.4)' "$work/nocurl.err"

# --- the agent's daemon and its health check --------------------------------------------------
denv=("${agent_env[@]}" SGPROBE_MATRIX=/etc/sgprobe/matrix.json SGPROBE_ROLE=web SGPROBE_AGENT_ADDRESS=127.0.0.11)
(in_root "$ra" "$user" "${denv[@]}" -- "${agent_hc[@]}") >"$work/hc0.out" 2>&1
eq "agent: before the daemon ran, the HEALTHCHECK fails" "$?" 1
in_root "$ra" "$user" "${denv[@]}" -- /usr/local/bin/sgprobe-agent --interval-s 1 2>"$work/daemon.log" &
dpid=$!
pids+=("$dpid")
hf="$ra/run/sgprobe/health.json"
wait_for 15 sh -c "jq -e '.ok == true and .rounds >= 1' '$hf' >/dev/null 2>&1"
check "agent: the daemon (--matrix, no collector) writes its health file, ok after a round" \
	sh -c "jq -e '.ok == true and .rounds >= 1' '$hf' >/dev/null"
eq "agent: ... in /run/sgprobe, as uid 10001" "$(stat -c %u "$hf" 2>/dev/null)" 10001
eq "agent: the daemon runs as uid 10001" "$(awk '/^Uid:/ { print $2 }' "/proc/$dpid/status" 2>/dev/null)" 10001
(in_root "$ra" "$user" "${denv[@]}" -- "${agent_hc[@]}") >"$work/hc.out" 2>&1
rc=$?
cat "$work/hc.out"
eq "agent: the image's HEALTHCHECK (${agent_hc[*]}) exits 0" "$rc" 0
kill -TERM "$dpid"
wait "$dpid"
eq "agent: SIGTERM: the daemon exits 0" "$?" 0
(in_root "$ra" "$user" "${denv[@]}" -- "${agent_hc[@]}") >/dev/null 2>&1
eq "agent: stopped, the HEALTHCHECK fails" "$?" 1
grep -q '"level":"error"' "$work/daemon.log" && sed 's/^/# /' "$work/daemon.log" | head -20

kill -TERM "$cpid"
wait "$cpid"
eq "collector: SIGTERM: exits 0" "$?" 0
(in_root "$rc_" "$cuser" "${cenv[@]}" -- "${collector_hc[@]}") >/dev/null 2>&1
eq "collector: stopped, the HEALTHCHECK fails" "$?" 1

done_testing
