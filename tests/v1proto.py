"""Protocol v1 as the tests speak it: messages, the version handshake, CAN
frames in the kernel's layout, and blocking reads of whole messages.

One module for every test that talks to tcpcan over TCP (tests/kernel,
tests/arm/vm.py, tests/packaging/*.py), so the wire format is
written down once on the test side too. Standard library only: it also runs
under the plain system python3 of the ARM and packaging tests.

A message is a one-byte kind, a one-byte length and that many payload bytes
(docs/protocol.md). Frames are `struct can_frame` (16 bytes) and
`struct canfd_frame` (72 bytes), little-endian, as the x86 and ARM hosts and
guests we test on lay them out.
"""

import os
import struct
import sys

# linux/can.h
CAN_EFF_FLAG = 0x80000000
CAN_RTR_FLAG = 0x40000000
CANFD_BRS = 0x01
CANFD_FDF = 0x04  # the kernel sets it on every CAN FD frame it delivers (6.x)

VERSION = b"v"
DATA = b"d"

_CAN_FRAME = struct.Struct("<IBBBB8s")
_CANFD_FRAME = struct.Struct("<IBBBB64s")
_VERSION_NUMBER = struct.Struct(">I")


def message(kind, payload):
    """One message: kind byte, length byte, payload."""
    return kind + bytes([len(payload)]) + payload


def hello(version=1):
    """The version message that proposes (or agrees to) `version`."""
    return message(VERSION, _VERSION_NUMBER.pack(version))


HELLO = hello(1)


def data(frame):
    """The data message carrying one raw frame."""
    return message(DATA, frame)


def classic(can_id, payload=b"", rtr=False, dlc=None):
    """A 16-byte struct can_frame (payload padded with zeros)."""
    if rtr:
        can_id |= CAN_RTR_FLAG
    length = len(payload) if dlc is None else dlc
    return _CAN_FRAME.pack(can_id, length, 0, 0, 0, payload)


def fd(can_id, payload=b"", flags=CANFD_BRS):
    """A 72-byte struct canfd_frame (payload padded with zeros) with FDF set,
    as the kernel delivers it."""
    return _CANFD_FRAME.pack(can_id, len(payload), flags | CANFD_FDF, 0, 0, payload)


def frame_fields(frame):
    """(can_id, payload) of a raw classic or FD frame, payload cut to its length."""
    can_id, length = struct.unpack_from("<IB", frame)
    return can_id, frame[8 : 8 + length]


def split(buf):
    """(kind, payload, rest) for the first whole message in buf, or None
    while buf holds only part of one."""
    if len(buf) < 2 or len(buf) < 2 + buf[1]:
        return None
    end = 2 + buf[1]
    return buf[:1], buf[2:end], buf[end:]


def recv_exact(sock, n):
    """Exactly n bytes from a blocking socket; ConnectionError on EOF."""
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError(f"connection closed after {len(buf)} of {n} bytes")
        buf += chunk
    return buf


def recv_msg(sock):
    """(kind, payload) of the next message from a blocking socket."""
    kind, length = recv_exact(sock, 2)
    return bytes([kind]), recv_exact(sock, length)


def run_script(main, usage, nargs):
    """Runs a test script's `main(*argv)` as a command: exit 0 when it
    returns None; else 1, with the reason it returned (or the socket error)
    on one line of stderr, named after the script."""
    if len(sys.argv) != nargs + 1:
        sys.exit(usage)
    name = os.path.splitext(os.path.basename(sys.argv[0]))[0]
    try:
        error = main(*sys.argv[1:])
    except OSError as e:
        error = f"{type(e).__name__}: {e}"
    if error:
        print(f"{name}: {error}", file=sys.stderr)
        sys.exit(1)
