#!/usr/bin/env python3
"""Drives requests for mirroring tests.

usage: mirror_load.py AUTHORITY COUNT ADDRESS [ADDRESS ...] [--post] [--connections N]
  Request K (0 <= K < COUNT) is GET /item/K, or with --post POST /upload/K with the body
  body(K) below. With several addresses, request K goes to ADDRESS[K % len] (so runs through
  different proxies interleave and share the machine's noise).
Prints one JSON object: {"status": {code: n}, "errors": n,
  "latency_ms": [{"p50": x, "p99": y}, ...one per address]}.
"""
import http.client
import json
import sys
import threading
import time

args = [a for a in sys.argv[1:]]
post = "--post" in args
connections = 1
if "--connections" in args:
    index = args.index("--connections")
    connections = int(args[index + 1])
    del args[index:index + 2]
args = [a for a in args if a != "--post"]
authority, count, addresses = args[0], int(args[1]), args[2:]


def body(k):
    return bytes((k * 7 + i) % 251 for i in range((k * 37) % 9000))


lock = threading.Lock()
status, errors = {}, [0]
latencies = [[] for _ in addresses]


def worker(ks):
    conns = {}
    for k in ks:
        which = k % len(addresses)
        host, port = addresses[which].rsplit(":", 1)
        try:
            conn = conns.get(which) or http.client.HTTPConnection(host, int(port), timeout=30)
            conns[which] = conn
            start = time.perf_counter()
            if post:
                conn.request("POST", "/upload/%d" % k, body=body(k), headers={"Host": authority})
            else:
                conn.request("GET", "/item/%d" % k, headers={"Host": authority})
            response = conn.getresponse()
            response.read()
            elapsed = (time.perf_counter() - start) * 1000
            with lock:
                status[str(response.status)] = status.get(str(response.status), 0) + 1
                latencies[which].append(elapsed)
        except Exception:
            with lock:
                errors[0] += 1
            conns.pop(which, None)


threads = [threading.Thread(target=worker, args=(range(i, count, connections),)) for i in range(connections)]
for t in threads:
    t.start()
for t in threads:
    t.join()


def percentile(values, q):
    if not values:
        return 0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


print(json.dumps({"status": status, "errors": errors[0],
                  "latency_ms": [{"p50": percentile(v, 0.5), "p99": percentile(v, 0.99)} for v in latencies]}))
