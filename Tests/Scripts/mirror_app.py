#!/usr/bin/env python3
"""An app for mirroring tests: answers JSON and remembers every request it got.

usage: mirror_app.py ROLE [--delay-ms N] [--status N] [--diverge-every N]
  ROLE        primary or shadow; a shadow writes its JSON keys in reverse order
  --delay-ms  wait this long before answering
  --status    answer with this status
  --diverge-every N   on /item/K with K % N == 0, answer a different "price"
Prints "listening PORT" once ready.

GET  /_concurrency -> the most requests it was answering at once (not counted)
GET  /_log      -> the requests seen so far (not counted), as a JSON list of
                   {"method","path","host","mirror","length","sha256"}
*    /item/K    -> {"item": K, "price": K, "currency": "EUR"}
*    anything   -> {"path": ..., "length": body length, "sha256": ...}
"""
import hashlib
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROLE = sys.argv[1]
options = dict(zip(sys.argv[2::2], sys.argv[3::2]))
DELAY = int(options.get("--delay-ms", "0")) / 1000
STATUS = int(options.get("--status", "200"))
DIVERGE = int(options.get("--diverge-every", "0"))
log, lock = [], threading.Lock()
busy = {"now": 0, "max": 0}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass

    def body(self):
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("content-length", "0")))

    def handle_any(self):
        data = self.body()
        if self.path == "/_log":
            with lock:
                answer = json.dumps(log).encode()
            return self.send(200, answer)
        if self.path == "/_concurrency":
            with lock:
                answer = str(busy["max"]).encode()
            return self.send(200, answer)
        entry = {"method": self.command, "path": self.path, "host": self.headers.get("host"),
                 "mirror": self.headers.get("eino-mirror"), "length": len(data),
                 "sha256": hashlib.sha256(data).hexdigest()}
        with lock:
            log.append(entry)
            busy["now"] += 1
            busy["max"] = max(busy["max"], busy["now"])
        if DELAY:
            time.sleep(DELAY)
        with lock:
            busy["now"] -= 1
        if self.path.startswith("/item/"):
            number = int(self.path.split("/")[2])
            price = number + 1 if ROLE == "shadow" and DIVERGE and number % DIVERGE == 0 else number
            fields = [("item", number), ("price", price), ("currency", "EUR")]
        else:
            fields = [("path", self.path), ("length", len(data)), ("sha256", entry["sha256"])]
        if ROLE == "shadow":
            fields.reverse()
        self.send(STATUS, json.dumps(dict(fields)).encode())

    def send(self, status, payload):
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = handle_any


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
print("listening", server.server_address[1], flush=True)
server.serve_forever()
