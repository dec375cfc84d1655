"""A diagnostic desk's request/response turn, timed (issue 26).

Shared by the kernel scenarios (tests/kernel/test_socketcand.py and
test_interop.py) and the benchmark's round-trip rows (bench/bench.py), so
all of them time the same turn.

One turn has the shape of an ISO-TP request and its answer, each a message
of a first frame, a flow control from the other end, and a block of
consecutive frames back to back: the desk sends the request's first frame,
the ECU its flow control, the desk the request's block; then the ECU sends
the answer's first frame, the desk its flow control, the ECU the answer's
block. Every other frame goes out after one from the other end, which
carries the acknowledgement of what went before. Inside a block nothing
comes back: a sender whose TCP stack holds a small write until the previous
one is acknowledged (Nagle, on unless it sets TCP_NODELAY) waits there for
the acknowledgement of the far end of its TCP connection. The desk sends
the request's block across; a tunnel's server end sends the answer's.

Run as a script, it is the ECU: `python roundtrip.py CANIF 7E0[,7E1...]`
answers requests to those IDs on CANIF until it is stopped, and says
"ready" once it listens. Standard library only (python-can comes with the
desk that uses it).
"""

import logging
import os
import select
import socket
import struct
import subprocess
import sys
import time

# A desk's request ID; the ECU answers on request ID + RESPONSE_OFFSET. Two
# desks on one bus use two request IDs and never see each other's answers.
REQUEST_ID = 0x7E0
RESPONSE_OFFSET = 8
# Consecutive frames per block: one is sent at once, the rest wait for its
# acknowledgement at a sender with Nagle on.
BLOCK = 4

FIRST, CONSECUTIVE, FLOW_CONTROL = 0x10, 0x20, 0x30
# A message's length as its first frame states it: 6 bytes there, 7 in each
# consecutive frame.
LENGTH = 6 + 7 * BLOCK
READ, POSITIVE = 0x22, 0x62  # a UDS read and its positive response

_FRAME = struct.Struct("=IB3x8s")
# linux/can/raw.h: filters that each pass one standard ID
_SOL_CAN_RAW = socket.SOL_CAN_BASE + socket.CAN_RAW
_CAN_RAW_FILTER = 1
_CAN_SFF_MASK = 0x7FF


class RawDesk:
    """A desk on a raw CAN socket (the far side of a protocol v1 tunnel)."""

    def __init__(self, canif):
        self.sock = socket.socket(socket.AF_CAN, socket.SOCK_RAW, socket.CAN_RAW)
        self.sock.bind((canif,))

    def send(self, can_id, data):
        self.sock.send(_FRAME.pack(can_id, len(data), data))

    def recv(self, timeout):
        """(ID, data) of the next frame within timeout, or None."""
        if not select.select([self.sock], [], [], timeout)[0]:
            return None
        can_id, length, data = _FRAME.unpack(self.sock.recv(16))
        return can_id, data[:length]

    def close(self):
        self.sock.close()


class CanDesk:
    """A desk on a python-can bus (its socketcand interface, for one)."""

    def __init__(self, bus):
        import can  # only the desks that use it need python-can

        # Two desks on one server each read the other's frames later, in
        # reads that cut lines; python-can warns of every cut line, which is
        # no fault.
        logging.getLogger("can.interfaces.socketcand.socketcand").setLevel(logging.ERROR)
        self.bus = bus
        self.message = can.Message

    def send(self, can_id, data):
        self.bus.send(self.message(arbitration_id=can_id, is_extended_id=False, data=data))

    def recv(self, timeout):
        m = self.bus.recv(timeout)
        return None if m is None else (m.arbitration_id, bytes(m.data))

    def close(self):
        self.bus.shutdown()


def _await(desk, can_id, want, timeout, what):
    """Reads until a frame with `can_id` whose data starts with `want`."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        got = desk.recv(max(0.0, left)) if left > 0 else None
        if got is None:
            raise TimeoutError("no %s from the ECU within %.1f s" % (what, timeout))
        if got[0] == can_id and got[1][: len(want)] == want:
            return


def _block(send, can_id, tag):
    """A message's consecutive frames, each with the turn's number."""
    for i in range(1, BLOCK + 1):
        send(can_id, bytes([CONSECUTIVE | i, tag, 0, 0, 0, 0, 0, 0]))


def turns(desk, count, request_id=REQUEST_ID, timeout=5.0):
    """Times `count` turns of `desk`; returns each turn's seconds."""
    answer_id = request_id + RESPONSE_OFFSET
    took = []
    for k in range(count):
        tag = k & 0xFF
        start = time.perf_counter()
        desk.send(request_id, bytes([FIRST, LENGTH, READ, tag, 0, 0, 0, 0]))
        _await(desk, answer_id, bytes([FLOW_CONTROL]), timeout, "flow control")
        _block(desk.send, request_id, tag)
        _await(desk, answer_id, bytes([FIRST, LENGTH, POSITIVE, tag]), timeout, "answer")
        desk.send(request_id, bytes([FLOW_CONTROL, 0, 0]))
        _await(desk, answer_id, bytes([CONSECUTIVE | BLOCK, tag]), timeout, "answer's last frame")
        took.append(time.perf_counter() - start)
    return took


def interleaved(desks, rounds, count):
    """Times `rounds` rounds of `count` turns of every desk in `desks` (name:
    (desk, request ID)), the desks taking rounds in turn so that a slow
    spell of the host hits each of them; a first round warms up and is not
    counted. Returns each desk's turn times (seconds) by name."""
    took = {name: [] for name in desks}
    for r in range(rounds + 1):
        for name, (desk, request_id) in desks.items():
            times = turns(desk, count, request_id)
            if r:
                took[name] += times
    return took


class Ecu:
    """The ECU script in its own process (no shared interpreter lock with
    the desk), answering every request ID in `request_ids` on `canif`."""

    def __init__(self, canif, request_ids=(REQUEST_ID,)):
        ids = ",".join("%X" % i for i in request_ids)
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), canif, ids], stdout=subprocess.PIPE, text=True
        )
        if self.proc.stdout.readline().strip() != "ready":
            self.proc.kill()
            raise RuntimeError("the ECU script did not start on %s" % canif)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.proc.kill()
        self.proc.wait()


def _serve(canif, request_ids):
    sock = socket.socket(socket.AF_CAN, socket.SOCK_RAW, socket.CAN_RAW)
    filters = b"".join(struct.pack("=II", i, _CAN_SFF_MASK) for i in request_ids)
    sock.setsockopt(_SOL_CAN_RAW, _CAN_RAW_FILTER, filters)
    sock.bind((canif,))
    print("ready", flush=True)

    def send(can_id, data):
        sock.send(_FRAME.pack(can_id + RESPONSE_OFFSET, len(data), data))

    answering = {}  # request ID: the number of the turn being answered
    while True:
        can_id, _, data = _FRAME.unpack(sock.recv(16))
        kind = data[0] & 0xF0
        if kind == FIRST:
            send(can_id, bytes([FLOW_CONTROL, 0, 0]))
        elif kind == CONSECUTIVE and data[0] & 0x0F == BLOCK:
            answering[can_id] = data[1]
            send(can_id, bytes([FIRST, LENGTH, POSITIVE, data[1], 0, 0, 0, 0]))
        elif kind == FLOW_CONTROL and can_id in answering:
            _block(send, can_id, answering.pop(can_id))


if __name__ == "__main__":
    _serve(sys.argv[1], [int(i, 16) for i in sys.argv[2].split(",")])
