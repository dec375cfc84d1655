#!/usr/bin/env python3
"""Prove a tcpcan server's tunnel carries frames both ways, speaking protocol
v1 over TCP ourselves: propose version 1, expect it back, send a frame that
must appear on the CAN interface, put a frame on the interface that must
arrive over TCP.

usage: v1_exchange.py HOST PORT CANIF   (exit 0 on success, 1 with a reason)
"""

import socket
import struct
import sys
import time

TIMEOUT_S = 5.0
CAN_FRAME = struct.Struct("<IB3x8s")  # struct can_frame, little-endian host
TO_BUS = (0x123, bytes.fromhex("DEADBEEF"))
FROM_BUS = (0x321, bytes.fromhex("0102030405060708"))


def can_frame(can_id, data):
    return CAN_FRAME.pack(can_id, len(data), data.ljust(8, b"\0"))


def message(prefix, payload):
    return prefix + bytes([len(payload)]) + payload


def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("server closed the connection")
        buf += chunk
    return buf


def recv_message(sock):
    prefix, length = recv_exact(sock, 2)
    return bytes([prefix]), recv_exact(sock, length)


def main(host, port, canif):
    bus = socket.socket(socket.AF_CAN, socket.SOCK_RAW, socket.CAN_RAW)
    bus.bind((canif,))
    bus.settimeout(TIMEOUT_S)
    tcp = socket.create_connection((host, int(port)), timeout=TIMEOUT_S)

    tcp.sendall(message(b"v", struct.pack(">I", 1)))
    prefix, payload = recv_message(tcp)
    if prefix != b"v" or payload != struct.pack(">I", 1):
        return f"expected version 1 back, got {prefix!r} {payload.hex()}"

    tcp.sendall(message(b"d", can_frame(*TO_BUS)))
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        can_id, length, data = CAN_FRAME.unpack(bus.recv(16))
        if (can_id, data[:length]) == TO_BUS:
            break
        if time.monotonic() > deadline:
            return "the frame sent over TCP never reached the bus"

    bus.send(can_frame(*FROM_BUS))
    while True:
        prefix, payload = recv_message(tcp)
        if prefix == b"d" and len(payload) == CAN_FRAME.size:
            can_id, length, data = CAN_FRAME.unpack(payload)
            if (can_id, data[:length]) == FROM_BUS:
                return None
        if time.monotonic() > deadline:
            return "the frame put on the bus never arrived over TCP"


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    try:
        error = main(*sys.argv[1:])
    except OSError as e:
        error = f"{type(e).__name__}: {e}"
    if error:
        print(f"v1_exchange: {error}", file=sys.stderr)
        sys.exit(1)
