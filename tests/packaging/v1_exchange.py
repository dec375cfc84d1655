#!/usr/bin/env python3
"""Prove a tcpcan server's tunnel carries frames both ways, speaking protocol
v1 over TCP ourselves: propose version 1, expect it back, send a frame that
must appear on the CAN interface, put a frame on the interface that must
arrive over TCP.

usage: v1_exchange.py HOST PORT CANIF   (exit 0 on success, 1 with a reason)
"""

import os
import socket
import sys
import time

# The protocol client the tests share: tests/v1proto.py, one level up.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from v1proto import DATA, HELLO, classic, data, frame_fields, message, recv_msg, run_script  # noqa: E402

TIMEOUT_S = 5.0
CAN_MTU = 16
TO_BUS = (0x123, bytes.fromhex("DEADBEEF"))
FROM_BUS = (0x321, bytes.fromhex("0102030405060708"))


def main(host, port, canif):
    bus = socket.socket(socket.AF_CAN, socket.SOCK_RAW, socket.CAN_RAW)
    bus.bind((canif,))
    bus.settimeout(TIMEOUT_S)
    tcp = socket.create_connection((host, int(port)), timeout=TIMEOUT_S)

    tcp.sendall(HELLO)
    kind, payload = recv_msg(tcp)
    if message(kind, payload) != HELLO:
        return f"expected version 1 back, got {kind!r} {payload.hex()}"

    tcp.sendall(data(classic(*TO_BUS)))
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        if frame_fields(bus.recv(CAN_MTU)) == TO_BUS:
            break
        if time.monotonic() > deadline:
            return "the frame sent over TCP never reached the bus"

    bus.send(classic(*FROM_BUS))
    while True:
        kind, payload = recv_msg(tcp)
        if kind == DATA and len(payload) == CAN_MTU and frame_fields(payload) == FROM_BUS:
            return None
        if time.monotonic() > deadline:
            return "the frame put on the bus never arrived over TCP"


if __name__ == "__main__":
    run_script(main, __doc__, 3)
