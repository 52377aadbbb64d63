#!/usr/bin/env python3
"""An opaque TCP echo server: echoes everything, and half-closes after the peer does.

usage: tcp_echo.py   (prints "listening PORT")
"""
import socket
import threading

server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", 0))
server.listen(64)
print("listening %d" % server.getsockname()[1], flush=True)


def serve(conn):
    while True:
        data = conn.recv(65536)
        if not data:
            conn.shutdown(socket.SHUT_WR)
            conn.close()
            return
        conn.sendall(data)


while True:
    conn, _ = server.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
