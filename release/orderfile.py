#!/usr/bin/env python3
"""Writes release/eino.order.gz: the functions an `eino proxy` runs, for release/build.sh to
lay out first. Both proxies of the benchmark's eino scenario (bench/bench.py's topology: mTLS
and HTTP/2 between them, nginx behind) run under callgrind through start-up, 300 requests, a
handshake closed without a request, their admin endpoints and a SIGTERM drain; every function
callgrind saw run is listed.

    make orderfile      # relinks the release binary with a link map, then profiles it

lld moves whole input sections, and it moves every section that defines a listed name, local
symbols included. Our code and the packages are compiled one function a section, but the
toolchain's static libraries are not: a name such as `objectdestroyTm`, defined in one of their
objects too, drags that object's whole .text (the regex parser's is 470 KiB) into the packed
run. So names go in two groups, from the link map: first those whose every section is small
(a function), then those that pull in a large one, so the large sections follow the packed
functions instead of spreading them apart.

Callgrind emulates the CPU, so code chosen by CPU features (BoringSSL's AES, say) may differ
from a native run: those functions are just not packed. Regenerate after large changes; a stale
list only packs less (names no longer there are skipped).
"""
import glob
import gzip
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "bench"))
import bench  # noqa: E402  (the benchmark's topology: nginx, certificates, proxy configs)

BUILT = os.path.join(REPO, ".build-release", "release", "eino")
OUT = os.path.join(REPO, "release", "eino.order.gz")
# A section at least this large is an object's whole .text, not one function.
LARGE_SECTION = 16 * 1024
PORTS = ["nginx", "eino_client_out", "eino_client_in", "eino_client_admin", "eino_server_out", "eino_server_in", "eino_server_admin"]


def main():
    work = tempfile.mkdtemp(prefix="eino-orderfile-")
    try:
        link_map = os.path.join(work, "eino.map")
        subprocess.run(["bash", os.path.join(REPO, "release", "build.sh"), "--product", "eino",
                        "-Xlinker", f"-Map={link_map}"], check=True)
        # Valgrind cannot read the DWARF 5 the toolchain writes; the symbol table is enough.
        binary = os.path.join(work, "eino")
        subprocess.run(["strip", "--strip-debug", "-o", binary, BUILT], check=True)
        bench.EINO = binary
        names = profile(binary, work)
        largest = largest_section_by_name(link_map)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    small = sorted(name for name in names if largest.get(name, 0) < LARGE_SECTION)
    large = sorted(name for name in names if largest.get(name, 0) >= LARGE_SECTION)
    with gzip.open(OUT, "wt") as f:
        f.write("\n".join(small + large) + "\n")
    print(f"orderfile: {len(names)} functions ran ({len(large)} of them in or named like large sections, "
          f"listed last); written to {os.path.relpath(OUT, REPO)}")


def largest_section_by_name(link_map):
    """For every symbol in the link map's .text, the size of the largest input section defining
    a symbol of that name: what listing the name moves."""
    largest = {}
    section_size = 0
    in_text = False
    with open(link_map, errors="replace") as f:
        for line in f:
            # "VMA LMA Size Align" then the name, indented by what it is: 0 an output
            # section, 8 an input section, 16 a symbol.
            found = re.match(r"\s*[0-9a-f]+\s+[0-9a-f]+\s+([0-9a-f]+)\s+\d+ ( *)(\S.*)$", line)
            if not found:
                continue
            size, depth, name = int(found.group(1), 16), len(found.group(2)), found.group(3)
            if depth == 0:
                in_text = name == ".text"
            elif in_text and depth == 8:
                section_size = size
            elif in_text:
                largest[name] = max(largest.get(name, 0), section_size)
    return largest


def profile(binary, work):
    certs = bench.make_certificates(work)
    ports = {name: bench.free_port() for name in PORTS}
    processes = bench.Processes(work)
    proxies = []
    try:
        conf, prefix = bench.write_nginx(work, ports["nginx"])
        processes.start("nginx", ["nginx", "-c", conf, "-p", prefix], bench.LOAD_CPU)
        bench.wait_until("nginx", lambda: bench.http_get(f"http://127.0.0.1:{ports['nginx']}/")[0] == 200)
        configs = bench.write_eino(work, ports, certs)
        for name, side in [("eino-server", "server"), ("eino-client", "client")]:
            out = os.path.join(work, f"{name}.out")
            proxies.append(subprocess.Popen(
                ["valgrind", "--tool=callgrind", "--demangle=no", "--dump-instr=no", f"--callgrind-out-file={work}/callgrind.{name}",
                 binary, "proxy", "--config", configs[name], "--app", f"127.0.0.1:{ports['nginx']}",
                 "--outbound", f"127.0.0.1:{ports[f'eino_{side}_out']}", "--inbound", f"127.0.0.1:{ports[f'eino_{side}_in']}",
                 "--admin", f"127.0.0.1:{ports[f'eino_{side}_admin']}", "--threads", "1", "--watch-interval", "0"],
                stdout=open(out, "w"), stderr=subprocess.DEVNULL))
            bench.wait_until(name, lambda: "eino proxy ready" in open(out).read(), timeout=180)
        url = f"http://127.0.0.1:{ports['eino_client_out']}/"
        for _ in range(300):
            status, _ = bench.http_get(url, "web", timeout=20)
            if status != 200:
                raise RuntimeError(f"a request through the proxies answered {status}")
        # The benchmark's check that the inbound speaks mTLS: a handshake closed without a request.
        bench.tls_handshake(ports["eino_server_in"], certs)
        for side in ["server", "client"]:
            for path in ["/ready", "/metrics", "/config"]:
                bench.http_get(f"http://127.0.0.1:{ports[f'eino_{side}_admin']}{path}", timeout=20)
        for proxy in proxies:
            proxy.send_signal(signal.SIGTERM)
        for proxy in proxies:
            proxy.wait(timeout=120)
    finally:
        for proxy in proxies:
            if proxy.poll() is None:
                proxy.kill()
        processes.stop_all()
    names = set()
    for path in glob.glob(os.path.join(work, "callgrind.*")):
        with open(path, errors="replace") as f:
            for line in f:
                # "fn=(12) name" names a function the first time; "'2" marks a recursion level.
                found = re.match(r"c?fn=\(\d+\) (.+)", line)
                if found:
                    names.add(re.sub(r"'\d+$", "", found.group(1).strip()))
    if len(names) < 1000:
        raise RuntimeError(f"callgrind saw only {len(names)} functions; is valgrind working?")
    return names


if __name__ == "__main__":
    main()
