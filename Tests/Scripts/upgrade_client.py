#!/usr/bin/env python3
"""Asks for an HTTP/1.1 Upgrade through a proxy, then talks raw bytes over the connection.

usage: upgrade_client.py HOST:PORT AUTHORITY
Sends the upgrade request, waits for the answer (as RFC 6455 asks of WebSocket clients),
prints the status line, then checks that every byte sent after the upgrade comes back echoed.
"""
import socket
import sys

host, port = sys.argv[1].rsplit(":", 1)
sock = socket.create_connection((host, int(port)))
sock.settimeout(10)
request = ("GET /upgrade HTTP/1.1\r\nHost: %s\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n" % sys.argv[2]).encode()
sock.sendall(request)
received = b""
while b"\r\n\r\n" not in received:
    chunk = sock.recv(65536)
    if not chunk:
        break
    received += chunk
head, _, rest = received.partition(b"\r\n\r\n")
print(head.split(b"\r\n")[0].decode())
expected = b"welcome from "
payload = bytes(range(256)) * 512
sock.sendall(payload)
sock.shutdown(socket.SHUT_WR)
while True:
    chunk = sock.recv(65536)
    if not chunk:
        break
    rest += chunk
name_line, _, echoed = rest.partition(b"\n")
if not name_line.startswith(expected):
    print("no welcome line: %r" % name_line[:80])
    sys.exit(1)
if echoed != payload:
    print("echo mismatch: %d bytes" % len(echoed))
    sys.exit(1)
print("%s; echoed %d bytes, then closed" % (name_line.decode(), len(echoed)))
