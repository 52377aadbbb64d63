#!/usr/bin/env python3
"""A small HTTP/2 (prior knowledge, cleartext) upstream for proxy tests, gRPC-style.

usage: h2_upstream.py NAME   (prints "listening PORT" once ready; needs python3-h2)

Every request is answered 200 with headers x-served-by: NAME and content-type
application/grpc, a body "NAME PATH BYTES conn=N\n" (BYTES = request body length, N = the
serial number of the TCP connection it came on), and trailers
grpc-status: 0, grpc-message: ok. The path /fail answers grpc-status 13 in the trailers;
/slow answers after one second (other streams are served meanwhile).
"""
import socket
import sys
import threading
import time

import h2.config
import h2.connection
import h2.events

NAME = sys.argv[1]


def serve(sock, serial):
    conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=False))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    streams = {}
    delayed = []  # (due, stream_id, state)
    sock.settimeout(0.05)
    while True:
        now = time.time()
        for item in [d for d in delayed if d[0] <= now]:
            delayed.remove(item)
            respond(conn, item[1], item[2], serial, delayed, now=True)
        if delayed:
            sock.sendall(conn.data_to_send())
        try:
            data = sock.recv(65536)
        except socket.timeout:
            sock.sendall(conn.data_to_send())
            continue
        except OSError:
            return
        if not data:
            sock.close()
            return
        for event in conn.receive_data(data):
            if isinstance(event, h2.events.RequestReceived):
                headers = dict((k.decode() if isinstance(k, bytes) else k, v.decode() if isinstance(v, bytes) else v) for k, v in event.headers)
                streams[event.stream_id] = [headers.get(":path", "/"), 0]
                if event.stream_ended:
                    respond(conn, event.stream_id, streams.pop(event.stream_id), serial, delayed)
            elif isinstance(event, h2.events.DataReceived):
                conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                if event.stream_id in streams:
                    streams[event.stream_id][1] += len(event.data)
                if event.stream_ended and event.stream_id in streams:
                    respond(conn, event.stream_id, streams.pop(event.stream_id), serial, delayed)
            elif isinstance(event, h2.events.StreamEnded):
                if event.stream_id in streams:
                    respond(conn, event.stream_id, streams.pop(event.stream_id), serial, delayed)
        sock.sendall(conn.data_to_send())


def respond(conn, stream_id, state, serial, delayed, now=False):
    path, size = state
    if path == "/slow" and not now:
        delayed.append((time.time() + 1.0, stream_id, state))
        return
    body = ("%s %s %d conn=%d\n" % (NAME, path, size, serial)).encode()
    conn.send_headers(stream_id, [(":status", "200"), ("x-served-by", NAME), ("content-type", "application/grpc")])
    conn.send_data(stream_id, body)
    status = "13" if path == "/fail" else "0"
    conn.send_headers(stream_id, [("grpc-status", status), ("grpc-message", "ok" if status == "0" else "failed")], end_stream=True)


server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", 0))
server.listen(64)
print("listening %d" % server.getsockname()[1], flush=True)
serial = 0
while True:
    client, _ = server.accept()
    client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    serial += 1
    threading.Thread(target=serve, args=(client, serial), daemon=True).start()
