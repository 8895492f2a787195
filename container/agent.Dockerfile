# sgprobe-agent: the sidecar that probes its task's network paths (README.md).
#
#   docker build -f container/agent.Dockerfile -t sgprobe-agent:0.1.0 .
#
# Two stages: Debian builds the binary and stages its root filesystem with
# container/rootfs.sh (the program, the libraries ldd names, the loader, CA
# certificates, a user); the image is that folder alone, FROM scratch: no shell,
# no package manager. tests/integration/test_container.sh builds the same folder
# with the same script and runs the binary from it. docs/container.md explains it.

# Bookworm is what the project builds and is tested on; the tag pins the release
# (a digest would pin the bytes: see docs/container.md).
FROM debian:bookworm-slim AS build

# The compiler, pkg-config and the -dev packages of the Makefile's PKGS (libuv
# libcjson libcurl openssl libh2o zlib: the Makefile asks pkg-config for all of
# them, the agent's build included), as scripts/deps.sh names them;
# ca-certificates for the bundle rootfs.sh copies. No recommends, lists removed
# in the same layer.
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        build-essential pkg-config ca-certificates \
        libuv1-dev libcjson-dev libcurl4-openssl-dev libssl-dev libh2o-dev zlib1g-dev \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src
# Only what the agent is built from, named one by one: a build/ left in the
# context by a host build must never be taken for up to date.
COPY Makefile ./
COPY include/ include/
COPY lib/ lib/
COPY agent/ agent/
COPY container/rootfs.sh container/

# The Makefile's flags (-Wall -Wextra -Werror, -O2 -g) plus Debian's hardening
# flags (dpkg-buildflags with hardening=+all): stack protector, fortified libc
# calls, CET, full RELRO.
RUN make build/sgprobe-agent \
        CFLAGS="-O2 -g -fstack-protector-strong -fstack-clash-protection -fcf-protection -D_FORTIFY_SOURCE=2" \
        LDFLAGS="-Wl,-z,relro -Wl,-z,now" \
    && sh container/rootfs.sh build/sgprobe-agent /staging --user sgprobe:10001 --dlopen libcurl.so.4

# The runtime: the staged folder and nothing else.
FROM scratch

# VERSION: the version the agent puts in its reports (agent/push.h,
# PUSH_VERSION). The repository has no remote and no license file yet: SOURCE
# and REVISION are given at build time (docs/container.md), and LICENSES says
# NOASSERTION (SPDX: not stated) until a license is chosen.
ARG VERSION=0.1.0
ARG SOURCE=""
ARG REVISION=""
ARG LICENSES=NOASSERTION

# OCI annotations: what the image is, where it comes from, which version.
LABEL org.opencontainers.image.title="sgprobe-agent" \
      org.opencontainers.image.description="sgprobe agent: probes its task's network paths against the intended security-group matrix" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="${LICENSES}" \
      org.opencontainers.image.version="${VERSION}"

# Root's files, and /run/sgprobe (0700) owned by uid 10001 (set by rootfs.sh,
# kept by COPY from a stage).
COPY --from=build /staging /

# The daemon writes its health file where the health check reads it, and keeps
# the last good plan beside it; both in /run/sgprobe, the user's writable folder
# (a volume there when the root filesystem is read-only). The health command
# reads the same variable: moving the file moves the check with it.
# PATH: scratch sets none, and a health check or `docker exec` may name the
# program without its folder (an ECS healthCheck's ["CMD", "sgprobe-agent", ...]).
ENV PATH=/usr/local/bin \
    SGPROBE_HEALTH_FILE=/run/sgprobe/health.json \
    SGPROBE_PLAN_CACHE=/run/sgprobe/plan.json

# A volume, so that /run/sgprobe stays writable under a read-only root
# filesystem (docker run --read-only, ECS readonlyRootFilesystem): Docker copies
# the folder's owner and mode into a new volume, and ECS does so for a task
# volume mounted at the VOLUME path (else it is root's, 0755, and the agent
# could not write its health file).
VOLUME ["/run/sgprobe"]

# Not root, by number (scratch has no user database to look a name up for the
# runtime; /etc/passwd names it sgprobe for the program). No capability either:
# the probes are plain TCP connects, ICMP errors come from the socket's error
# queue, so NET_RAW is not needed.
USER 10001:10001

# Healthy when the daemon's last round is fresh and ok (README: Health); it reads
# SGPROBE_HEALTH_FILE like the daemon. The first check comes 30 s after the start
# and three must fail in a row, which covers the first plan and round; no
# --start-period, which dockerfilelint 1.8 cannot parse (its option pattern
# stops at the hyphen). Exec form: there is no shell. An ECS task definition
# repeats this command in its healthCheck (ECS ignores the image's).
HEALTHCHECK --interval=30s --timeout=5s --retries=3 \
    CMD ["/usr/local/bin/sgprobe-agent", "health"]

# The agent is the container's only process; flags or SGPROBE_* variables
# configure it (`--once ...` runs the post-deploy smoke test with this image).
ENTRYPOINT ["/usr/local/bin/sgprobe-agent"]
