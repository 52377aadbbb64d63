#!/usr/bin/env python3
"""Where an idle eino proxy's resident memory goes (issue 8, item 4): `make bench-memory`.

Starts the release `eino proxy` (as `make bench` builds it) as the benchmark's server side:
static config, mTLS credentials from `eino identity`, `--threads 1`, pinned to CPU 1, in
front of a small keep-alive app; sends it 200 requests, then reads /proc: VmRSS split into
anonymous and file-backed pages, by mapping, the binary's resident pages by ELF section
(/proc/PID/pagemap, as root), and the threads. Then it repeats with MALLOC_ARENA_MAX=2, and
finally asks the kernel to page out the process's pages (process_madvise MADV_PAGEOUT, a
diagnostic only) and sends 200 more requests, which shows how much of the idle RSS the
proxy keeps using. Writes bench/results/memory.md, which BENCHMARKS.md carries.
"""

import collections
import ctypes
import datetime
import http.server
import os
import re
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import bench  # the benchmark's free ports and certificates

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EINO = bench.EINO
OUT = os.path.join(REPO, "bench", "results", "memory.md")
REQUESTS = 200
STARTS = 3


class App(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    body = b"x" * 1023 + b"\n"

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):
        pass


def kib(pid, key, path="status"):
    with open(f"/proc/{pid}/{path}") as f:
        found = re.search(rf"^{key}:\s+(\d+) kB", f.read(), re.MULTILINE)
    return int(found.group(1)) if found else 0


def by_mapping(pid):
    """Resident KiB by (file name or [anon]), and the anonymous share of each."""
    rss, anon = collections.Counter(), collections.Counter()
    name = None
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
                parts = line.split()
                name = os.path.basename(parts[5]) if len(parts) > 5 and parts[5].startswith("/") else "anonymous (heap, stacks)"
            elif line.startswith("Rss:"):
                rss[name] += int(line.split()[1])
            elif line.startswith("Anonymous:"):
                anon[name] += int(line.split()[1])
    return rss, anon


def by_section(pid, binary):
    """Resident KiB of the binary by ELF section, from the present bit of /proc/PID/pagemap."""
    sections = []
    listing = subprocess.run(["readelf", "-SW", binary], capture_output=True, text=True).stdout
    for line in listing.splitlines():
        found = re.match(r"\s*\[\s*\d+\]\s+(\S+)\s+\S+\s+([0-9a-f]+)\s+([0-9a-f]+)\s+([0-9a-f]+)", line)
        if found and int(found.group(2), 16):
            sections.append((int(found.group(2), 16), int(found.group(4), 16), found.group(1)))
    maps = []
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            parts = line.split()
            if len(parts) > 5 and parts[5] == binary:
                start, end = (int(x, 16) for x in parts[0].split("-"))
                maps.append((start, end, int(parts[2], 16)))
    base = min(start - offset for start, _, offset in maps)
    resident, size = collections.Counter(), collections.Counter()
    with open(f"/proc/{pid}/pagemap", "rb") as pagemap:
        for start, end, _ in maps:
            pagemap.seek(start // 4096 * 8)
            data = pagemap.read((end - start) // 4096 * 8)
            for index in range(len(data) // 8):
                address = start + index * 4096 - base
                name = next((n for s, z, n in sections if s <= address < s + z), "other")
                size[name] += 4
                if struct.unpack_from("<Q", data, index * 8)[0] >> 63:
                    resident[name] += 4
    return resident, size


def threads(pid):
    names = collections.Counter()
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/comm") as f:
            names[f.read().strip()] += 1
    return names


def page_out(pid):
    libc = ctypes.CDLL(None, use_errno=True)
    pidfd = libc.syscall(434, pid, 0)  # pidfd_open
    if pidfd < 0:
        return False

    class IOVec(ctypes.Structure):
        _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            start, end = (int(x, 16) for x in line.split()[0].split("-"))
            vector = IOVec(start, end - start)
            libc.syscall(440, pidfd, ctypes.byref(vector), 1, 21, 0)  # process_madvise, MADV_PAGEOUT
    os.close(pidfd)
    return True


def send(port, count):
    for _ in range(count):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
            assert response.status == 200 and len(response.read()) == 1024


def start_proxy(workdir, app_port, env):
    ports = {name: bench.free_port() for name in ["outbound", "inbound", "admin"]}
    out = open(os.path.join(workdir, "proxy.out"), "w")
    process = subprocess.Popen(
        ["taskset", "-c", "1", EINO, "proxy", "--config", os.path.join(workdir, "proxy.yaml"),
         "--app", f"127.0.0.1:{app_port}", "--threads", "1", "--watch-interval", "0"]
        + [arg for name, port in ports.items() for arg in (f"--{name}", f"127.0.0.1:{port}")],
        stdout=out, stderr=subprocess.STDOUT, env=dict(os.environ, **env))
    deadline = time.monotonic() + 20
    while "eino proxy ready" not in open(os.path.join(workdir, "proxy.out")).read():
        if process.poll() is not None or time.monotonic() > deadline:
            sys.exit(f"memory: eino proxy did not start:\n{open(os.path.join(workdir, 'proxy.out')).read()}")
        time.sleep(0.05)
    return process, ports


def main():
    if not os.access(EINO, os.X_OK):
        sys.exit(f"memory: {EINO} is missing; `make bench` (bench/run.sh) builds it")
    binary = os.path.realpath(EINO)
    workdir = tempfile.mkdtemp(prefix="eino-memory-")
    certs = bench.make_certificates(workdir)
    with open(os.path.join(workdir, "proxy.yaml"), "w") as f:
        f.write(f"""apiVersion: proxy.eino.dev/v1alpha1
kind: ProxyConfig
identity: {{service: web-v1, namespace: default}}
tls: {{caFile: {certs['ca']}, certFile: {certs['server'][0]}, keyFile: {certs['server'][1]}}}
services: []
""")
    app = http.server.ThreadingHTTPServer(("127.0.0.1", 0), App)
    threading.Thread(target=app.serve_forever, daemon=True).start()

    process, ports = start_proxy(workdir, app.server_address[1], {})
    try:
        send(ports["inbound"], REQUESTS)
        time.sleep(1)
        pid = process.pid
        idle = {"VmRSS": kib(pid, "VmRSS"), "Anonymous": kib(pid, "Anonymous", "smaps_rollup"),
                "Pss": kib(pid, "Pss", "smaps_rollup")}
        mappings, anonymous = by_mapping(pid)
        sections, sizes = by_section(pid, binary)
        named = threads(pid)
        paged = page_out(pid)
        after_pageout = kib(pid, "VmRSS")
        send(ports["inbound"], REQUESTS)
        time.sleep(1)
        working = kib(pid, "VmRSS")
        working_sections, _ = by_section(pid, binary)
    finally:
        process.terminate()
        process.wait(timeout=30)
    def fresh(env):
        """(VmRSS, anonymous) KiB of a new proxy after the same requests and pause."""
        process, ports = start_proxy(workdir, app.server_address[1], env)
        try:
            send(ports["inbound"], REQUESTS)
            time.sleep(1)
            return kib(process.pid, "VmRSS"), kib(process.pid, "Anonymous", "smaps_rollup")
        finally:
            process.terminate()
            process.wait(timeout=30)
    starts = [fresh({}) for _ in range(STARTS)]
    arenas = [fresh({"MALLOC_ARENA_MAX": "2"}) for _ in range(STARTS)]
    app.shutdown()

    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    mib = lambda k: f"{k / 1024:.1f}"
    lines = [
        "## Memory: where an idle eino proxy's RSS goes",
        "",
        "```sh",
        "make bench-memory   # bench/memory.py, after make bench has built the release binary",
        "```",
        "",
        f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}, load average {load}. The release `eino "
        f"proxy` as `make bench` runs its server side (static config, mTLS credentials, `--threads 1`), after "
        f"{REQUESTS} requests to a keep-alive app, then idle for 1 s.",
        "",
        f"- **VmRSS {mib(idle['VmRSS'])} MiB**, of which **anonymous {mib(idle['Anonymous'])} MiB** (heap, thread "
        f"stacks, relocated data) and {mib(idle['VmRSS'] - idle['Anonymous'])} MiB clean file-backed pages: code and "
        f"read-only data of the binary and of libc/libstdc++, shared with every other process that maps them and "
        f"dropped first under memory pressure (PSS {mib(idle['Pss'])} MiB).",
        f"- {STARTS} more starts, each measured the same way: VmRSS "
        + ", ".join(mib(rss) for rss, _ in starts) + " MiB (anonymous " + ", ".join(mib(a) for _, a in starts)
        + " MiB): the file-backed share varies with what start-up happens to touch.",
        f"- The same with `MALLOC_ARENA_MAX=2`: VmRSS " + ", ".join(mib(rss) for rss, _ in arenas)
        + " MiB (anonymous " + ", ".join(mib(a) for _, a in arenas) + " MiB): malloc arenas are not where the memory is.",
        "- Threads: " + ", ".join(f"{count} × `{name}`" for name, count in sorted(named.items())) + ".",
    ]
    if paged:
        lines.append(f"- After paging the whole process out (`process_madvise(MADV_PAGEOUT)`, a diagnostic) VmRSS "
                     f"was {mib(after_pageout)} MiB; {REQUESTS} more requests brought it back to **{mib(working)} MiB**: "
                     f"what serving actually keeps using. The rest was touched once, during start-up, and stays "
                     f"mapped: nothing evicts clean pages of a process while the machine has memory to spare.")
    lines += ["", "| mapping | resident KiB | anonymous KiB |", "|---|---:|---:|"]
    for name, value in mappings.most_common(8):
        lines.append(f"| `{name}` | {value:,} | {anonymous[name]:,} |")
    lines += ["", f"The binary (`{os.path.basename(binary)}`, {os.path.getsize(binary) / 1048576:.0f} MiB with symbols) "
              "by ELF section, resident KiB of its mapped size, at idle and after the page-out and "
              f"{REQUESTS} requests:", "", "| section | idle | mapped | after page-out + requests |", "|---|---:|---:|---:|"]
    for name, value in sections.most_common(8):
        lines.append(f"| `{name}` | {value:,} | {sizes[name]:,} | {working_sections[name]:,} |")
    text = "\n".join(lines) + "\n"
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        f.write(text)
    print(text)
    print(f"memory: wrote {os.path.relpath(OUT, REPO)}", file=sys.stderr)


if __name__ == "__main__":
    main()
