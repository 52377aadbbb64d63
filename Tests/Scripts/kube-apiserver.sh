#!/usr/bin/env bash
# The test rig's kube-apiserver: built once from Debian's `kubernetes` source package into a
# cache outside the clone, keyed by its version, and reused by every later run.
#
#   Tests/Scripts/kube-apiserver.sh build    # prints the binary's path (builds it if missing)
#
# Offline: the Go toolchain, etcd and the source come from Debian; nothing is fetched from
# anywhere else (GOPROXY=off, vendored modules). A first build takes 4-9 minutes on 2 cores.
set -euo pipefail

CACHE="${EINO_CACHE:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/eino}"
PACKAGES=(golang-go rsync golang-github-modern-go-reflect2-dev etcd-server dpkg-dev)

install_packages() {
    local missing=()
    for p in "${PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "apiserver: installing ${missing[*]}" >&2
        apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
    fi
}

# apt options that read a private deb-src copy of the system's own sources, so that nothing
# about the system's configuration changes.
apt_source_options() {
    local parts list
    parts=$(apt-config dump Dir::Etc::sourceparts | sed -n 's/.*"\(.*\)";/\1/p')
    case "$parts" in /*) ;; *) parts="/etc/apt/$parts" ;; esac
    mkdir -p "$1/sources"
    sed 's/^Types: deb$/Types: deb-src/' "$parts/debian.sources" > "$1/sources/debian.sources"
    # Option names are case-insensitive: SourceList and sourcelist are one key.
    echo "-o Dir::Etc::SourceParts=$1/sources -o Dir::Etc::SourceList=/dev/null -o Dir::State::Lists=$1/lists"
}

build() {
    install_packages
    local work version binary options
    work="$CACHE/kubernetes-source"
    mkdir -p "$work/lists/partial"
    options=$(apt_source_options "$work")
    # shellcheck disable=SC2086
    version=$(apt-cache $options showsrc kubernetes 2>/dev/null | sed -n 's/^Version: //p' | head -n 1 || true)
    if [ -z "$version" ]; then
        # shellcheck disable=SC2086
        apt-get $options update -qq >&2
        # shellcheck disable=SC2086
        version=$(apt-cache $options showsrc kubernetes | sed -n 's/^Version: //p' | head -n 1)
    fi
    binary="$CACHE/kube-apiserver-$version/kube-apiserver"
    if [ -x "$binary" ]; then
        echo "$binary"
        return
    fi
    echo "apiserver: building kube-apiserver $version into $(dirname "$binary") (once; minutes)" >&2
    (
        cd "$work"
        rm -rf kubernetes
        # shellcheck disable=SC2086
        [ -f "kubernetes_${version#*:}.dsc" ] || apt-get $options source --download-only kubernetes >&2
        dpkg-source -x "kubernetes_${version#*:}.dsc" kubernetes >&2
        cd kubernetes
        # The vendored reflect2 1.0.1 crashes under Go >= 1.18; Debian's packaged copy does not.
        local reflect2
        reflect2=$(dirname "$(dpkg -L golang-github-modern-go-reflect2-dev | grep '/reflect2.go$' | head -n 1)")
        rm -rf vendor/github.com/modern-go/reflect2
        cp -r "$reflect2" vendor/github.com/modern-go/reflect2
        GOPATH="$PWD/.go" GOPROXY=off GOFLAGS=-mod=vendor CGO_ENABLED=0 make WHAT=cmd/kube-apiserver >&2
        mkdir -p "$(dirname "$binary")"
        cp "$(find _output -type f -name kube-apiserver | head -n 1)" "$binary.partial"
        mv "$binary.partial" "$binary"
        cd ..
        rm -rf kubernetes
    )
    echo "$binary"
}

case "${1:-}" in
    build) build ;;
    *) echo "usage: $0 build" >&2; exit 2 ;;
esac
