#!/usr/bin/env python3
"""Sends two HTTP/1.1 requests in one write (pipelining), the second asking to close, and
prints everything that comes back until the server closes.

usage: pipelined.py HOST:PORT AUTHORITY
"""
import socket
import sys

host, port = sys.argv[1].rsplit(":", 1)
authority = sys.argv[2].encode()
sock = socket.create_connection((host, int(port)), timeout=10)
sock.sendall(b"GET /bytes?n=3 HTTP/1.1\r\nHost: " + authority + b"\r\n\r\n"
             + b"GET /chunked HTTP/1.1\r\nHost: " + authority + b"\r\nConnection: close\r\n\r\n")
received = b""
while True:
    chunk = sock.recv(65536)
    if not chunk:
        break
    received += chunk
sys.stdout.write(received.decode("latin-1"))
