#!/usr/bin/env python3
"""Sends 256 KiB of binary bytes, half-closes, and reads the echo to the end.

usage: tcp_client.py HOST:PORT
"""
import socket
import sys
import threading

host, port = sys.argv[1].rsplit(":", 1)
payload = bytes(range(256)) * 1024
sock = socket.create_connection((host, int(port)))
sock.settimeout(20)


def send():
    sock.sendall(payload)
    sock.shutdown(socket.SHUT_WR)


sender = threading.Thread(target=send)
sender.start()
received = b""
while True:
    chunk = sock.recv(65536)
    if not chunk:
        break
    received += chunk
sender.join()
if received != payload:
    print("mismatch: %d bytes" % len(received))
    sys.exit(1)
print("echoed %d bytes, then closed" % len(received))
