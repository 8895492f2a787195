# sgprobe-collector: takes the agents' signed reports, judges the matrix, serves
# the dashboard and metrics, publishes to CloudWatch (README.md).
#
#   docker build -f container/collector.Dockerfile -t sgprobe-collector:0.1.0 .
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
# libcjson libcurl openssl libh2o zlib), as scripts/deps.sh names them;
# ca-certificates for the bundle rootfs.sh copies (the collector verifies
# CloudWatch's certificate). No recommends, lists removed in the same layer.
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        build-essential pkg-config ca-certificates \
        libuv1-dev libcjson-dev libcurl4-openssl-dev libssl-dev libh2o-dev zlib1g-dev \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src
# Only what the collector is built from, named one by one: a build/ left in the
# context by a host build must never be taken for up to date. scripts/embed.sh
# embeds collector/dashboard.html in the binary.
COPY Makefile ./
COPY include/ include/
COPY lib/ lib/
COPY collector/ collector/
COPY scripts/embed.sh scripts/
COPY container/rootfs.sh container/

# The Makefile's flags (-Wall -Wextra -Werror, -O2 -g) plus Debian's hardening
# flags (dpkg-buildflags with hardening=+all): stack protector, fortified libc
# calls, CET, full RELRO.
RUN make build/sgprobe-collector \
        CFLAGS="-O2 -g -fstack-protector-strong -fstack-clash-protection -fcf-protection -D_FORTIFY_SOURCE=2" \
        LDFLAGS="-Wl,-z,relro -Wl,-z,now" \
    && sh container/rootfs.sh build/sgprobe-collector /staging --user sgprobe:10001

# The runtime: the staged folder and nothing else.
FROM scratch

# VERSION: the project's version, the one its agents report (agent/push.h,
# PUSH_VERSION). The repository has no remote and no license file yet: SOURCE
# and REVISION are given at build time (docs/container.md), and LICENSES says
# NOASSERTION (SPDX: not stated) until a license is chosen.
ARG VERSION=0.1.0
ARG SOURCE=""
ARG REVISION=""
ARG LICENSES=NOASSERTION

# OCI annotations: what the image is, where it comes from, which version.
LABEL org.opencontainers.image.title="sgprobe-collector" \
      org.opencontainers.image.description="sgprobe collector: signed agent reports in, the live security-group matrix, dashboard, Prometheus and CloudWatch metrics out" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="${LICENSES}" \
      org.opencontainers.image.version="${VERSION}"

# Root's files, and /run/sgprobe (0700) owned by uid 10001 (set by rootfs.sh,
# kept by COPY from a stage). The collector writes nothing (its state is in
# memory); /tmp is there for libraries that want one.
COPY --from=build /staging /

# A volume at the user's folder, so that under a read-only root filesystem a
# task can still drop files there for the collector (a matrix, keys written from
# secrets): Docker copies the folder's owner and mode into a new volume, and ECS
# does so for a task volume mounted at the VOLUME path (else it is root's, 0755).
VOLUME ["/run/sgprobe"]

# The matrix and the keys where a volume or a secret mounts them; the agents'
# listener on every interface; the admin listener (dashboard, matrix, metrics,
# /healthz) on loopback, as the binary defaults: exposing it is a deliberate
# choice (SGPROBE_ADMIN_LISTEN=0.0.0.0:9090 behind an ops-only group). The health
# command reads the same variables, so moving the admin listener moves the check.
# PATH: scratch sets none, and a health check or `docker exec` may name the
# program without its folder (an ECS healthCheck's ["CMD", "sgprobe-collector", ...]).
ENV PATH=/usr/local/bin \
    SGPROBE_MATRIX=/etc/sgprobe/matrix.json \
    SGPROBE_KEYS=/etc/sgprobe/keys.json \
    SGPROBE_LISTEN=0.0.0.0:9443 \
    SGPROBE_ADMIN_LISTEN=127.0.0.1:9090

# The agents' port. The admin port is not exposed (see above).
EXPOSE 9443

# Not root, by number (scratch has no user database to look a name up for the
# runtime; /etc/passwd names it sgprobe for the program). Ports above 1024: no
# capability needed.
USER 10001:10001

# Healthy while the admin listener's /healthz answers 200 (the command asks
# SGPROBE_ADMIN_LISTEN, 127.0.0.1:9090 by default, over TLS when
# SGPROBE_ADMIN_TLS_CERT is set). The collector serves within a second of its
# start and three checks must fail in a row; no --start-period, which
# dockerfilelint 1.8 cannot parse (its option pattern stops at the hyphen). Exec
# form: there is no shell. An ECS task definition repeats this command in its
# healthCheck (ECS ignores the image's).
HEALTHCHECK --interval=30s --timeout=5s --retries=3 \
    CMD ["/usr/local/bin/sgprobe-collector", "health"]

# The collector is the container's only process; flags or SGPROBE_* variables
# configure it, and its subcommands work too (`check-matrix FILE`, `plan ...`).
ENTRYPOINT ["/usr/local/bin/sgprobe-collector"]
