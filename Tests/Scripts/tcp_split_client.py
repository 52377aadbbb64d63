#!/usr/bin/env python3
"""Opens COUNT TCP connections to HOST:PORT, reads the first line each server sends, and
counts them. Prints {"served": {line: count}, "errors": n}.

usage: tcp_split_client.py HOST:PORT COUNT
"""
import json
import socket
import sys

host, port = sys.argv[1].rsplit(":", 1)
served, errors = {}, 0
for _ in range(int(sys.argv[2])):
    try:
        sock = socket.create_connection((host, int(port)), timeout=10)
        line = b""
        while not line.endswith(b"\n"):
            chunk = sock.recv(256)
            if not chunk:
                break
            line += chunk
        sock.sendall(b"ping")
        echo = sock.recv(4)
        sock.close()
        name = line.decode().strip() if echo == b"ping" else "bad-echo"
        served[name] = served.get(name, 0) + 1
    except OSError:
        errors += 1
print(json.dumps({"served": served, "errors": errors}, sort_keys=True))
