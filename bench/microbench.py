#!/usr/bin/env python3
"""Micro-benchmarks of the proxy's per-request pieces (issue 8, item 5): `make microbench`.

Builds `eino-microbench` as `make bench` builds `eino` (release, Swift runtime linked in,
.build-release), runs it pinned to CPU 1 for ns per call, then counts allocations per call
under valgrind's memcheck: each piece runs once with 100 and once with 1,100 calls, and the
difference of the "total heap usage" lines, divided by 1,000, is what one call allocates
(start-up and first-call caches cancel out). Swift cannot see malloc itself, and nothing in
the project wraps it, so an outside counter it is. Valgrind 3.19 cannot read the DWARF 5 the
toolchain writes, so it runs a copy without debug info.

Writes bench/results/microbench.md, which bench/bench.py carries into BENCHMARKS.md, and
prints it. Not a test: figures vary with the machine and its load.
"""

import datetime
import os
import re
import shutil
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.path.join(REPO, ".build-release", "release", "eino-microbench")
OUT = os.path.join(REPO, "bench", "results", "microbench.md")
FEW, MANY = 100, 1100


def log(message):
    print(f"microbench: {message}", file=sys.stderr, flush=True)


def heap_usage(binary, piece, iterations):
    """(allocations, bytes) the whole process made, from memcheck's summary."""
    done = subprocess.run(["valgrind", "--tool=memcheck", "--leak-check=no", binary, "--only", piece,
                           "--iterations", str(iterations), "--rounds", "1"], capture_output=True, text=True)
    found = re.search(r"total heap usage: ([\d,]+) allocs, [\d,]+ frees, ([\d,]+) bytes allocated", done.stderr)
    if done.returncode != 0 or not found:
        sys.exit(f"microbench: valgrind on {piece} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return int(found.group(1).replace(",", "")), int(found.group(2).replace(",", ""))


def main():
    if not shutil.which("valgrind"):
        log("installing valgrind")
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "valgrind"], check=True,
                       env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    log("building eino-microbench (release, .build-release)")
    subprocess.run(["bash", "release/build.sh", "--product", "eino-microbench"], cwd=REPO, check=True)
    pieces = [line.split("\t") for line in subprocess.run([BINARY, "--list"], capture_output=True, text=True,
                                                          check=True).stdout.splitlines()]
    log("timing, pinned to CPU 1")
    timed = subprocess.run(["taskset", "-c", "1", BINARY], capture_output=True, text=True, check=True).stdout
    nanos = dict(re.findall(r"^(\S+)\t([\d.]+) ns/op", timed, re.MULTILINE))
    scrape = re.search(r"^scrape of one route: (.*)$", timed, re.MULTILINE)

    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        stripped = os.path.join(scratch, "eino-microbench")
        subprocess.run(["objcopy", "--strip-debug", BINARY, stripped], check=True)
        for name, what in pieces:
            log(f"counting allocations: {name}")
            few, many = heap_usage(stripped, name, FEW), heap_usage(stripped, name, MANY)
            calls = MANY - FEW
            rows.append((name, what, nanos.get(name, "–"), (many[0] - few[0]) / calls, (many[1] - few[1]) / calls))

    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    lines = [
        "## Micro-benchmarks: the per-request pieces",
        "",
        "```sh",
        "make microbench   # bench/microbench.py",
        "```",
        "",
        f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}, load average {load}. Release build "
        "(`--static-swift-stdlib`), pinned to CPU 1, best of 5 rounds; inputs vary per call (4 request heads, "
        "1,024 random values). Allocations per call counted by valgrind's memcheck (difference between 1,100 and "
        "100 calls, divided by 1,000).",
        "",
        "| piece | what one call does | ns/call | allocations/call | bytes/call |",
        "|---|---|---:|---:|---:|",
    ]
    for name, what, ns, allocs, size in rows:
        lines.append(f"| `{name}` | {what} | {ns} | {allocs:.2f} | {size:.0f} |")
    if scrape:
        lines += ["", f"For scale, a scrape of one route (copy off the loop, merge, render): {scrape.group(1)}."]
    text = "\n".join(lines) + "\n"
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        f.write(text)
    print(text)
    log(f"wrote {os.path.relpath(OUT, REPO)}")


if __name__ == "__main__":
    main()
