#!/usr/bin/env python3
"""A server-speaks-first TCP server: sends "NAME\n" on accept, then echoes until EOF.

usage: tcp_named.py NAME PORT   (PORT 0 = any; prints "listening PORT")
"""
import socket
import sys
import threading

NAME = sys.argv[1].encode()
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", int(sys.argv[2])))
server.listen(256)
print("listening %d" % server.getsockname()[1], flush=True)


def serve(conn):
    conn.sendall(NAME + b"\n")
    while True:
        data = conn.recv(65536)
        if not data:
            conn.close()
            return
        conn.sendall(data)


while True:
    conn, _ = server.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
