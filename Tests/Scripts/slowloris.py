#!/usr/bin/env python3
"""Sends a request head one byte every 200 ms and prints what comes back.

usage: slowloris.py HOST:PORT
Prints the raw response, then "closed" once the server closes the connection.
"""
import socket
import sys
import time

host, port = sys.argv[1].rsplit(":", 1)
sock = socket.create_connection((host, int(port)))
sock.settimeout(0.05)
head = b"GET / HTTP/1.1\r\nHost: web\r\nx-slow: " + b"s" * 200 + b"\r\n\r\n"
received = b""
deadline = time.time() + 20
index = 0
closed = False
while time.time() < deadline and not closed:
    if index < len(head):
        try:
            sock.send(head[index:index + 1])
        except OSError:
            pass
        index += 1
    end = time.time() + 0.2
    while time.time() < end:
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            continue
        except OSError:
            closed = True
            break
        if not chunk:
            closed = True
            break
        received += chunk
sys.stdout.write(received.decode("latin-1"))
print("closed" if closed else "still open")
