#!/usr/bin/env python3
"""A small HTTP/1.1 upstream for proxy tests. Answers with its own name.

usage: upstream.py NAME [PORT [HOST]]   (port 0 = any, host 127.0.0.1, "::" for both families;
                                         prints "listening PORT" once ready)

GET  /                  -> 200, body "NAME\n", header x-served-by: NAME
GET  /chunked           -> chunked body of 5 chunks "chunk-0\n" .. "chunk-4\n"
GET  /trailers          -> chunked body "hello\n" and trailers grpc-status: 0, grpc-message: ok
GET  /slow?ms=N         -> waits N ms, then answers
GET  /status?code=N     -> answers with status N
GET  /mixed             -> every 10th request (counted from the start) waits 50 ms, the others 5 ms
GET  /bytes?n=N         -> N bytes of 'x', streamed with a content-length
POST /upload            -> reads the whole body (content-length or chunked), answers its length
POST /digest            -> reads the whole body, answers "LENGTH SHA256 FRAMING TRAILERS": FRAMING
                           is chunked, length or none; TRAILERS the trailer fields as
                           name=value joined by "," ("-" for none)
GET  /headers           -> the request headers, one "name: value" a line
GET  /close             -> answers with connection: close and closes
GET  /upgrade with Upgrade + Connection: upgrade
                        -> 101 Switching Protocols, then echoes raw bytes until EOF
GET  /upgrade without   -> 426
"""
import hashlib
import socket
import socketserver
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse, parse_qs

NAME = sys.argv[1]
LOCK = threading.Lock()
MIXED = 0


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass

    def send_plain(self, code, body, extra=()):
        data = body.encode()
        self.send_response(code)
        self.send_header("x-served-by", NAME)
        self.send_header("content-type", "text/plain")
        self.send_header("content-length", str(len(data)))
        for key, value in extra:
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def read_body(self, sink=None, trailers=None):
        """Reads the body, handing each piece to sink; chunked trailers go to trailers."""
        total = 0
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while True:
                        line = self.rfile.readline()
                        if line in (b"\r\n", b"\n", b""):
                            break
                        if trailers is not None:
                            name, _, value = line.decode().partition(":")
                            trailers.append("%s=%s" % (name.strip().lower(), value.strip()))
                    return total
                remaining = size
                while remaining:
                    chunk = self.rfile.read(min(remaining, 1 << 20))
                    if not chunk:
                        return total
                    if sink:
                        sink(chunk)
                    remaining -= len(chunk)
                    total += len(chunk)
                self.rfile.readline()
        length = int(self.headers.get("content-length", "0"))
        remaining = length
        while remaining:
            chunk = self.rfile.read(min(remaining, 1 << 20))
            if not chunk:
                break
            if sink:
                sink(chunk)
            remaining -= len(chunk)
            total += len(chunk)
        return total

    def do_GET(self):
        url = urlparse(self.path)
        query = parse_qs(url.query)
        if url.path == "/upgrade":
            if "upgrade" not in self.headers.get("connection", "").lower() or not self.headers.get("upgrade"):
                self.send_plain(426, "upgrade required\n", [("connection", "close")])
                self.close_connection = True
                return
            self.wfile.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: %s\r\nConnection: Upgrade\r\nx-served-by: %s\r\n\r\n"
                             % (self.headers["upgrade"].encode(), NAME.encode()))
            self.wfile.write(b"welcome from " + NAME.encode() + b"\n")
            self.wfile.flush()
            self.close_connection = True
            # Already-buffered bytes first, then the socket itself.
            pending = self.rfile.peek() if hasattr(self.rfile, "peek") else b""
            if pending:
                data = self.rfile.read(len(pending))
                self.connection.sendall(data)
            while True:
                data = self.connection.recv(65536)
                if not data:
                    self.connection.shutdown(socket.SHUT_WR)
                    return
                self.connection.sendall(data)
        if url.path == "/chunked" or url.path == "/trailers":
            self.send_response(200)
            self.send_header("x-served-by", NAME)
            self.send_header("transfer-encoding", "chunked")
            if url.path == "/trailers":
                self.send_header("trailer", "grpc-status, grpc-message")
            self.end_headers()
            parts = ["hello\n"] if url.path == "/trailers" else ["chunk-%d\n" % i for i in range(5)]
            for part in parts:
                data = part.encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()
            if url.path == "/trailers":
                self.wfile.write(b"0\r\ngrpc-status: 0\r\ngrpc-message: ok\r\n\r\n")
            else:
                self.wfile.write(b"0\r\n\r\n")
            return
        if url.path == "/status":
            self.send_plain(int(query.get("code", ["200"])[0]), NAME + "\n")
            return
        if url.path == "/mixed":
            global MIXED
            with LOCK:
                MIXED += 1
                slow = MIXED % 10 == 0
            time.sleep(0.05 if slow else 0.005)
            self.send_plain(200, NAME + "\n")
            return
        if url.path == "/slow":
            time.sleep(int(query.get("ms", ["1000"])[0]) / 1000)
            self.send_plain(200, NAME + "\n")
            return
        if url.path == "/bytes":
            n = int(query.get("n", ["0"])[0])
            self.send_response(200)
            self.send_header("x-served-by", NAME)
            self.send_header("content-length", str(n))
            self.end_headers()
            block = b"x" * (1 << 20)
            while n > 0:
                piece = block if n >= len(block) else block[:n]
                self.wfile.write(piece)
                n -= len(piece)
            return
        if url.path == "/headers":
            body = "".join("%s: %s\n" % (k.lower(), v) for k, v in self.headers.items())
            self.send_plain(200, body)
            return
        if url.path == "/close":
            self.close_connection = True
            self.send_plain(200, NAME + "\n", [("connection", "close")])
            return
        self.send_plain(200, NAME + "\n")

    do_HEAD = do_GET

    def do_POST(self):
        if self.path == "/digest":
            digest = hashlib.sha256()
            trailers = []
            total = self.read_body(digest.update, trailers)
            if self.headers.get("transfer-encoding", "").lower() == "chunked":
                framing = "chunked"
            else:
                framing = "length" if "content-length" in self.headers else "none"
            self.send_plain(200, "%d %s %s %s\n" % (total, digest.hexdigest(), framing, ",".join(trailers) or "-"))
            return
        total = self.read_body()
        self.send_plain(200, "%s %d\n" % (NAME, total))

    do_PUT = do_POST
    do_DELETE = do_POST


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256
    allow_reuse_address = True


if __name__ == "__main__":
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    host = sys.argv[3] if len(sys.argv) > 3 else "127.0.0.1"
    if ":" in host:
        Server.address_family = socket.AF_INET6  # "::" takes IPv4 too
    server = Server((host, port), Handler)
    print("listening %d" % server.server_address[1], flush=True)
    server.serve_forever()
