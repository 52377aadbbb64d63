# Eino: one image for the init container (`eino init`) and the sidecar (`eino proxy`).
#
# Nothing builds this image in the project's CI: no container engine runs there. Its steps are
# the Makefile's (`make build`: the apt build packages, then `swift build`), as a release build
# (release/build.sh) with the Swift runtime linked in, so the runtime stage needs no Swift toolchain.
#
#   docker build -t eino:0.1.0 .

ARG SWIFT_IMAGE=swift:6.3-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${SWIFT_IMAGE} AS build
# The Makefile's build packages (APT_PACKAGES: OpenSSL and nghttp2 headers).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libssl-dev libnghttp2-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Resolve dependencies in their own layer, so a source change does not fetch them again.
COPY Package.swift ./
RUN swift package --scratch-path .build-release resolve
COPY . .
# release/build.sh: the Swift runtime linked in, start-up and serving code packed together.
RUN bash release/build.sh --product eino \
 && install -D -m 0755 .build-release/release/eino /out/eino

FROM ${RUNTIME_IMAGE}
# iptables (nf_tables and legacy) for `eino init`; the binary itself needs only libc and libstdc++.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends iptables \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 7102 eino \
 && useradd --uid 7102 --gid 7102 --no-create-home --shell /usr/sbin/nologin eino
COPY --from=build /out/eino /usr/local/bin/eino
# The proxy's uid. `eino inject` runs the init container as root with NET_ADMIN and NET_RAW.
USER 7102:7102
EXPOSE 7143
ENTRYPOINT ["/usr/local/bin/eino"]
CMD ["--help"]
