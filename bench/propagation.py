#!/usr/bin/env python3
"""Config propagation (issue 5): how long from `eino apply` until every proxy runs the new
config, with N proxies following one control plane, and the control plane's memory.

    python3 bench/propagation.py [--eino PATH] [--proxies 50] [--rounds 30]

Starts `eino control` and N `eino proxy --control` (one event loop each) on loopback, then
applies a TrafficSplit with a new weight each round. After each apply it sweeps every
proxy's admin `/config` over kept-alive connections until all of them show a new version,
and records, per proxy, the time of the first sweep that saw it. A sweep of 50 proxies
takes a few milliseconds; that is the resolution, printed with the results.
Prints a Markdown section for BENCHMARKS.md. Not a test: `make test` never runs it.
"""

import argparse
import concurrent.futures
import http.client
import json
import os
import re
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def start(command, log):
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, text=True, cwd=ROOT)
    return process


def ready_value(process, prefix, key, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        line = process.stdout.readline()
        if not line:
            raise SystemExit(f"{prefix}: exited with {process.poll()} before it was ready")
        if line.startswith(prefix):
            return re.search(rf"{key}=(\S+)", line).group(1)
    raise SystemExit(f"{prefix}: not ready after {timeout} s")


def rss_kib(pid, field="VmRSS"):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--eino", default=os.path.join(ROOT, ".build-release/release/eino"))
    parser.add_argument("--proxies", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--output", default=os.path.join(ROOT, "bench/results/propagation.md"),
                        help="also write the Markdown here (BENCHMARKS.md links to it)")
    args = parser.parse_args()

    load_at_start = os.getloadavg()[0]
    workdir = tempfile.mkdtemp(prefix="eino-propagation-")
    processes = []
    try:
        log = open(os.path.join(workdir, "processes.log"), "w")
        control = start([args.eino, "control", "--data-dir", workdir, "--listen", "127.0.0.1:0"], log)
        processes.append(control)
        url = "https://" + ready_value(control, "eino control ready", "listen")
        cli = ["--control", url, "--data-dir", workdir]

        def eino(*arguments, stdin=None):
            result = subprocess.run([args.eino, *arguments, *cli], input=stdin, capture_output=True, text=True, cwd=ROOT)
            if result.returncode != 0:
                raise SystemExit(f"eino {' '.join(arguments)}: {result.stderr}")
            return result.stdout

        control_idle_kib = rss_kib(control.pid)
        admins = []
        for index in range(args.proxies):
            token = eino("token", "create", "--service", f"svc-{index}").strip()
            proxy = start([
                args.eino, "proxy", "--service", f"svc-{index}", "--app", "127.0.0.1:9", "--control", url,
                "--join-token", token, "--ca-file", os.path.join(workdir, "ca.pem"), "--threads", "1",
                "--inbound", "127.0.0.1:0", "--outbound", "127.0.0.1:0", "--admin", "127.0.0.1:0",
            ], log)
            processes.append(proxy)
            admins.append(ready_value(proxy, "eino proxy ready", "admin"))

        connections = [http.client.HTTPConnection(*admin.rsplit(":", 1)) for admin in admins]

        # Eight sweepers share the proxies, so one sweep takes a fraction of N sequential GETs.
        sweepers = concurrent.futures.ThreadPoolExecutor(max_workers=8)

        def version_of(connection):
            connection.request("GET", "/config")
            return json.loads(connection.getresponse().read())["version"]

        def versions():
            return list(sweepers.map(version_of, connections))

        def split(weight):
            return ("apiVersion: split.smi-spec.io/v1alpha2\nkind: TrafficSplit\n"
                    "metadata: {name: canary}\n"
                    f"spec: {{service: svc-0, backends: [{{service: svc-1, weight: 100}}, {{service: svc-2, weight: {weight}}}]}}\n")

        # Every proxy has registered and received the full registry before measuring.
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                if len(set(versions())) == 1:
                    break
            except (OSError, KeyError, ValueError):
                pass
            time.sleep(0.2)
        control_registered_kib = rss_kib(control.pid)

        # Applies go straight to the API over a kept-alive TLS connection, so the figure is the
        # mesh's own path (validate, fsync, publish, stream, compile, install), not the start-up
        # of a CLI process.
        host, port = url[len("https://"):].rsplit(":", 1)
        tls = ssl.create_default_context(cafile=os.path.join(workdir, "ca.pem"))
        api = http.client.HTTPSConnection(host, int(port), context=tls)
        with open(os.path.join(workdir, "admin.token")) as token_file:
            token = token_file.read().strip()

        def apply(yaml_text):
            body = json.dumps({"dryRun": False, "files": [{"name": "split.yaml", "content": yaml_text}]})
            api.request("POST", "/v1/apply", body=body,
                        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
            response = api.getresponse()
            answer = response.read()
            if response.status != 200:
                raise SystemExit(f"apply: {response.status} {answer!r}")

        latencies, sweeps = [], []
        for round_number in range(args.rounds):
            before = versions()
            started = time.perf_counter()
            apply(split(round_number + 1))
            pending = set(range(len(admins)))
            while pending:
                sweep_start = time.perf_counter()
                current = versions()
                now = time.perf_counter()
                sweeps.append(now - sweep_start)
                for index in list(pending):
                    if current[index] != before[index]:
                        latencies.append((now - started) * 1000)
                        pending.discard(index)
                if now - started > 10:
                    raise SystemExit(f"round {round_number}: {len(pending)} proxies still on the old config after 10 s")
        control_peak_kib = rss_kib(control.pid, "VmHWM")
        proxy_rss = [rss_kib(p.pid) for p in processes[1:]]

        report = []
        say = report.append
        say(f"## Config propagation ({args.proxies} proxies, {args.rounds} applies)\n")
        say(f"Command: `python3 bench/propagation.py --proxies {args.proxies} --rounds {args.rounds}` "
              f"(binary {os.path.relpath(args.eino, ROOT)}; load average {load_at_start:.2f} at start; {os.cpu_count()} cores).\n")
        say("Time from sending `POST /v1/apply` (validation, fsync of the store, publication to every watch) "
              "until a proxy's admin `/config` shows the new version, over every proxy and apply. "
              "`eino apply` adds its own start-up (about 50 ms) in front:\n")
        say("| p50 | p90 | p99 | max | sweep resolution (median) |")
        say("|---|---|---|---|---|")
        say(f"| {percentile(latencies, 0.5):.1f} ms | {percentile(latencies, 0.9):.1f} ms | "
              f"{percentile(latencies, 0.99):.1f} ms | {max(latencies):.1f} ms | {statistics.median(sweeps) * 1000:.1f} ms |\n")
        say(f"Control plane RSS: {control_idle_kib / 1024:.1f} MiB idle, {control_registered_kib / 1024:.1f} MiB with "
              f"{args.proxies} proxies registered and watching, peak {control_peak_kib / 1024:.1f} MiB (VmHWM). "
              f"Proxies (one event loop each): median RSS {statistics.median(proxy_rss) / 1024:.1f} MiB.")
        text = "\n".join(report) + "\n"
        print(text, end="")
        os.makedirs(os.path.dirname(args.output), exist_ok=True)
        with open(args.output, "w") as output:
            output.write(text)
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in reversed(processes):
            try:
                process.wait(timeout=35)
            except subprocess.TimeoutExpired:
                process.kill()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
