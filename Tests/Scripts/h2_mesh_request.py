#!/usr/bin/env python3
"""One HTTP/2 request over mTLS, as a peer proxy would send it, with header fields no
HTTP/2 stack would let through (the h2 library's own checks are off).

usage: h2_mesh_request.py HOST:PORT CERT KEY CA NAME VALUE
Prints the response status, then the eino-error field (or "-").
"""
import socket
import ssl
import sys

import h2.config
import h2.connection
import h2.events

host, port = sys.argv[1].rsplit(":", 1)
cert, key, ca, name, value = sys.argv[2:7]
context = ssl.create_default_context(cafile=ca)
context.check_hostname = False
context.load_cert_chain(cert, key)
context.set_alpn_protocols(["h2"])
sock = context.wrap_socket(socket.create_connection((host, int(port)), timeout=10))
connection = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, validate_outbound_headers=False,
                                                                  normalize_outbound_headers=False))
connection.initiate_connection()
headers = [(":method", "GET"), (":path", "/"), (":scheme", "https"), (":authority", "web"),
           (name.encode(), value.encode().decode("unicode_escape").encode("latin-1"))]
connection.send_headers(1, headers, end_stream=True)
sock.sendall(connection.data_to_send())
status, error = None, "-"
while status is None:
    data = sock.recv(65536)
    if not data:
        sys.exit("connection closed before a response")
    for event in connection.receive_data(data):
        if isinstance(event, h2.events.ResponseReceived):
            fields = {k.decode(): v.decode() for k, v in event.headers}
            status, error = fields[":status"], fields.get("eino-error", "-")
        elif isinstance(event, h2.events.StreamReset):
            status = "reset"
    sock.sendall(connection.data_to_send())
print(status)
print(error)
