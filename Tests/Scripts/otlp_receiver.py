#!/usr/bin/env python3
"""A local OTLP/HTTP JSON trace receiver for proxy tests.

usage: otlp_receiver.py [STATUS]   (any port; prints "listening PORT" once ready)

With STATUS (e.g. 503) every POST is refused with it and nothing is stored.

POST /v1/traces   -> stores the JSON body (must be application/json and parse), answers 200 {}
GET  /spans       -> every span received so far, flattened: the span's own fields plus
                     "resource" (resource attribute key -> string value) and "scope" (scope name)
GET  /posts       -> how many bodies were posted
"""
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

REFUSE = int(sys.argv[1]) if len(sys.argv) > 1 else None
lock = threading.Lock()
spans = []
posts = 0


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        global posts
        length = int(self.headers.get("content-length", "0"))
        data = self.rfile.read(length)
        if REFUSE:
            self.answer(REFUSE, {"error": "refused"})
            return
        if self.path != "/v1/traces":
            self.answer(404, {"error": "not found"})
            return
        if self.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            self.answer(415, {"error": "content-type must be application/json"})
            return
        try:
            body = json.loads(data)
        except ValueError as error:
            self.answer(400, {"error": str(error)})
            return
        with lock:
            posts += 1
            for resource_spans in body["resourceSpans"]:
                resource = {a["key"]: a["value"]["stringValue"] for a in resource_spans["resource"]["attributes"]}
                for scope_spans in resource_spans["scopeSpans"]:
                    for span in scope_spans["spans"]:
                        span = dict(span)
                        span["resource"] = resource
                        span["scope"] = scope_spans["scope"]["name"]
                        spans.append(span)
        self.answer(200, {})

    def do_GET(self):
        with lock:
            if self.path == "/spans":
                self.answer(200, spans)
            elif self.path == "/posts":
                self.answer(200, posts)
            else:
                self.answer(404, {"error": "not found"})


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print("listening %d" % server.server_address[1], flush=True)
    server.serve_forever()
