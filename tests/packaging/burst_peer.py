#!/usr/bin/env python3
"""The TCP peer of the receive-queue test (initscript-uml.sh): connects to a
tcpcan server, agrees on protocol v1, prints "ready", then counts the
frames it receives until the end marker (CAN ID 0x7FF), prints that count
and closes, which makes tcpcan log the connection's counters. The test
stops this process, or tcpcan, while a burst arrives.

usage: burst_peer.py HOST PORT   (exit 0 after the marker, 1 with a reason)
"""

import os
import socket
import sys

# The protocol client the tests share: tests/v1proto.py, one level up.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from v1proto import DATA, HELLO, frame_fields, message, recv_msg, run_script  # noqa: E402

MARKER_ID = 0x7FF
# Covers a stop of the peer or of tcpcan and the burst itself, in UML.
TIMEOUT_S = 30.0


def main(host, port):
    tcp = socket.create_connection((host, int(port)), timeout=TIMEOUT_S)
    tcp.sendall(HELLO)
    kind, payload = recv_msg(tcp)
    if message(kind, payload) != HELLO:
        return f"expected version 1 back, got {kind!r} {payload.hex()}"
    print("ready", flush=True)
    frames = 0
    while True:
        kind, payload = recv_msg(tcp)
        if kind != DATA:
            continue
        if frame_fields(payload)[0] == MARKER_ID:
            print(frames, flush=True)
            return None
        frames += 1


if __name__ == "__main__":
    run_script(main, __doc__, 2)
