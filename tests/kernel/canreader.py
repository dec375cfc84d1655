"""A desk tool reading a virtual bus the way python-can users do (issue 15).

Run as its own process by test_desk.py, so it is scheduled like any other
reader on the desk machine:

    python canreader.py IFNAME CAN_ID COUNT IDLE_SECS

It opens `can.Bus(interface="socketcan", channel=IFNAME)` as python-can's
documentation shows, with the kernel's default receive queue (python-can sets
none), a kernel filter for CAN_ID (hex) only, prints `ready` once the socket
is bound, then receives until COUNT frames arrived, or IDLE_SECS passed
without one after the first, or SIGTERM. Last it prints one line: the
sequence numbers (first 4 data bytes, little-endian) of the frames received,
in order, as JSON.
"""

import json
import signal
import struct
import sys

import can


def main():
    ifname, can_id, count, idle = sys.argv[1], int(sys.argv[2], 16), int(sys.argv[3]), float(sys.argv[4])
    # SIGTERM ends the loop like a deadline would: what arrived is still reported.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    seqs = []
    bus = can.Bus(
        interface="socketcan",
        channel=ifname,
        can_filters=[{"can_id": can_id, "can_mask": 0x7FF, "extended": False}],
    )
    try:
        print("ready", flush=True)
        # Before the first frame the tunnel may be stalled for seconds on purpose.
        first = bus.recv(timeout=60.0)
        if first is not None:
            seqs.append(struct.unpack_from("<I", first.data)[0])
            while len(seqs) < count:
                msg = bus.recv(timeout=idle)
                if msg is None:
                    break
                seqs.append(struct.unpack_from("<I", msg.data)[0])
    finally:
        bus.shutdown()
        print(json.dumps(seqs), flush=True)


if __name__ == "__main__":
    main()
