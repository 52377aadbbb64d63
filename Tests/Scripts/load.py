#!/usr/bin/env python3
"""Sends many keep-alive requests through a proxy and counts who served them.

usage: load.py HOST:PORT AUTHORITY COUNT [CONNECTIONS] [PATH] [HEADER:VALUE ...]
Prints one JSON object: {"served": {name: count}, "status": {code: count}, "errors": n}.
With LOAD_UNTIL_FILE=PATH in the environment, each connection keeps sending after its share
of COUNT until PATH exists (a steady load a test stops when it is done with it).
"""
import http.client
import json
import os
import sys
import threading

address, authority, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
connections = int(sys.argv[4]) if len(sys.argv) > 4 else 1
path = sys.argv[5] if len(sys.argv) > 5 else "/"
headers = {"Host": authority}
for item in sys.argv[6:]:
    key, value = item.split(":", 1)
    headers[key] = value
host, port = address.rsplit(":", 1)
lock = threading.Lock()
served, status, errors = {}, {}, [0]
until_file = os.environ.get("LOAD_UNTIL_FILE")


def turns(n):
    sent = 0
    while sent < n or (until_file and not os.path.exists(until_file)):
        yield sent
        sent += 1


def worker(n):
    conn = None
    for _ in turns(n):
        try:
            if conn is None:
                conn = http.client.HTTPConnection(host, int(port), timeout=30)
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            response.read()
            name = response.getheader("x-served-by") or response.getheader("eino-error") or "-"
            with lock:
                served[name] = served.get(name, 0) + 1
                status[str(response.status)] = status.get(str(response.status), 0) + 1
            if response.getheader("connection", "").lower() == "close":
                conn.close()
                conn = None
        except Exception as error:  # counted, never hidden
            with lock:
                errors[0] += 1
                status["error:" + type(error).__name__] = status.get("error:" + type(error).__name__, 0) + 1
            if conn is not None:
                conn.close()
            conn = None


threads = []
share = count // connections
for index in range(connections):
    n = share + (1 if index < count % connections else 0)
    thread = threading.Thread(target=worker, args=(n,))
    thread.start()
    threads.append(thread)
for thread in threads:
    thread.join()
print(json.dumps({"served": served, "status": status, "errors": errors[0]}, sort_keys=True))
