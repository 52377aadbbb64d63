#!/usr/bin/env python3
"""One HTTP/2 request (prior knowledge, clear text) whose body has no content-length, as
HTTP/2 allows: the length is known only when the stream ends.

usage: h2_request.py HOST:PORT AUTHORITY METHOD PATH BODY_BYTES [TRAILER_NAME TRAILER_VALUE]
The body is BODY_BYTES bytes of a repeating pattern (byte i is i % 251), sent in DATA frames
as flow control allows; a trailer, if given, ends the stream. Prints the response status on
one line, then the response body.
"""
import socket
import sys

import h2.config
import h2.connection
import h2.events

host, port = sys.argv[1].rsplit(":", 1)
authority, method, path, size = sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
trailer = (sys.argv[6], sys.argv[7]) if len(sys.argv) > 7 else None
body = bytes(i % 251 for i in range(size))

sock = socket.create_connection((host, int(port)), timeout=20)
connection = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
connection.initiate_connection()
stream = 1
headers = [(":method", method), (":path", path), (":scheme", "http"), (":authority", authority)]
connection.send_headers(stream, headers, end_stream=size == 0 and trailer is None)
sock.sendall(connection.data_to_send())

sent = 0
finished_sending = size == 0 and trailer is None


def send_more():
    """Sends what the windows allow; ends the stream (with the trailer) after the last byte."""
    global sent, finished_sending
    while sent < size:
        room = min(connection.local_flow_control_window(stream), connection.max_outbound_frame_size, size - sent)
        if room <= 0:
            break
        connection.send_data(stream, body[sent:sent + room])
        sent += room
    if sent == size and not finished_sending:
        if trailer:
            connection.send_headers(stream, [trailer], end_stream=True)
        else:
            connection.end_stream(stream)
        finished_sending = True
    sock.sendall(connection.data_to_send())


send_more()
status, received, done = None, bytearray(), False
while not done:
    data = sock.recv(65536)
    if not data:
        sys.exit("connection closed before the response ended")
    for event in connection.receive_data(data):
        if isinstance(event, h2.events.ResponseReceived):
            status = dict(event.headers)[b":status"].decode()
        elif isinstance(event, h2.events.DataReceived):
            received += event.data
            connection.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2.events.StreamEnded):
            done = True
        elif isinstance(event, h2.events.StreamReset):
            sys.exit("stream reset")
    if not finished_sending:
        send_more()
    sock.sendall(connection.data_to_send())
print(status)
sys.stdout.write(received.decode())
