#!/usr/bin/env python3
"""Host side of the ARM full-system test (tests/arm/run.sh).

Boots one QEMU VM (argv after --), whose initramfs (mkinitramfs.sh) runs
tcpcan as a server on the VM kernel's vcan0, and checks through QEMU's port
forward that protocol-v1 frames sent on one TCP connection come out of a
second one byte for byte: they cross the guest kernel's CAN stack, because
the server gives each client its own raw CAN socket.

Prints one "PASS <name>" or "FAIL <name>: <why>" line per check and
"FIGURE <name> <value>" lines (measured, never asserted); exits 1 if any
check failed. Usage:
    vm.py --name NAME --mode test|boot --port PORT --log FILE -- QEMU ARGS...
"""

import argparse
import os
import re
import socket
import struct
import subprocess
import sys
import threading
import time

# The protocol client the tests share: tests/v1proto.py, one level up.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from v1proto import CAN_EFF_FLAG, HELLO, data, recv_exact, recv_msg  # noqa: E402
import v1proto  # noqa: E402

BOOT_TIMEOUT = 240  # s; a TCG boot takes 5-30 s, a loaded CI machine more
STEP_TIMEOUT = 30  # s; any one exchange after boot


class Failed(Exception):
    """A check failed; the message says why."""


def expect(ok, why):
    if not ok:
        raise Failed(why)


class Console:
    """QEMU's serial console: keeps every line, lets us wait for one."""

    def __init__(self, argv, log_path):
        self.log = open(log_path, "w", encoding="utf-8", errors="replace")
        self.lines = []
        self.cond = threading.Condition()
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            self.log.write(line + "\n")
            self.log.flush()
            with self.cond:
                self.lines.append(line)
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def wait_for(self, pattern, timeout, start=0, fail=r"VM-FAIL|Kernel panic"):
        """Return (match, index) of the first line from `start` matching."""
        rx, bad = re.compile(pattern), re.compile(fail)
        deadline = time.monotonic() + timeout
        i = start
        with self.cond:
            while True:
                while i < len(self.lines):
                    line = self.lines[i]
                    if bad.search(line):
                        raise Failed(f"console: {line}")
                    m = rx.search(line)
                    if m:
                        return m, i + 1
                    i += 1
                left = deadline - time.monotonic()
                if left <= 0:
                    raise Failed(f"no console line /{pattern}/ within {timeout} s")
                if self.proc.poll() is not None and not self.reader.is_alive():
                    raise Failed(f"QEMU exited ({self.proc.returncode}) before /{pattern}/")
                self.cond.wait(min(left, 0.5))

    def type(self, text):
        self.proc.stdin.write(text.encode() + b"\n")
        self.proc.stdin.flush()

    def close(self, timeout):
        """Wait for QEMU to exit by itself; kill it after `timeout`."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None
        finally:
            self.reader.join(5)
            self.log.close()


def classic(can_id, payload):
    """A data message carrying a struct can_frame (16 bytes)."""
    return data(v1proto.classic(can_id, payload))


def fd(can_id, payload):
    """A data message carrying a struct canfd_frame (72 bytes), BRS set."""
    return data(v1proto.fd(can_id, payload))


def connect(port):
    """Open a v1 connection; QEMU accepts at once even while the guest port
    is closed, so retry until the guest's answer arrives."""
    deadline = time.monotonic() + STEP_TIMEOUT
    while True:
        s = socket.create_connection(("127.0.0.1", port), timeout=STEP_TIMEOUT)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            s.sendall(HELLO)
            s.settimeout(5)
            answer = recv_exact(s, len(HELLO))
            s.settimeout(STEP_TIMEOUT)
            if answer != HELLO:
                raise Failed(f"handshake answer {answer!r}, want {HELLO!r}")
            return s
        except (Failed, OSError):
            s.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def cross(src, dst, msgs):
    """Send msgs on src; each must come out of dst unchanged, in order."""
    src.sendall(b"".join(msgs))
    for want in msgs:
        got = v1proto.message(*recv_msg(dst))
        if got != want:
            raise Failed(f"sent {want.hex()}\n      got  {got.hex()}")


def count_arrivals(src, dst, msgs):
    """Send msgs at once; count those that arrive, until 2 s of silence."""
    src.sendall(b"".join(msgs))
    got = 0
    dst.settimeout(2)
    try:
        while got < len(msgs):
            recv_msg(dst)
            got += 1
    except OSError:  # silence (socket.timeout) or the connection closed
        pass
    finally:
        dst.settimeout(STEP_TIMEOUT)
    return got


def assert_quiet(sock, what):
    """Nothing may be waiting on sock (e.g. no echo of our own frames)."""
    sock.settimeout(0.5)
    try:
        data = sock.recv(256)
    except socket.timeout:
        return
    finally:
        sock.settimeout(STEP_TIMEOUT)
    raise Failed(f"{what}: unexpected {data.hex() if data else 'EOF'}")


def assert_eof(sock, what):
    sock.settimeout(STEP_TIMEOUT)
    try:
        data = sock.recv(256)
    except OSError as e:
        raise Failed(f"{what}: {e}") from e
    if data:
        raise Failed(f"{what}: got {data.hex()} instead of EOF")


class Report:
    def __init__(self, name):
        self.name, self.failed = name, 0

    def check(self, what, fn, *args):
        try:
            result = fn(*args)
        except (Failed, OSError) as e:
            print(f"FAIL {self.name}: {what}: {e}", flush=True)
            self.failed += 1
            return None
        print(f"PASS {self.name}: {what}", flush=True)
        return True if result is None else result

    def figure(self, what, value):
        print(f"FIGURE {self.name}: {what} {value}", flush=True)


def frames_cross(rep, port):
    """The two-client scenario; returns the open sockets (a, b) or None."""
    conns = rep.check("two protocol-v1 connections agree version 1",
                      lambda: (connect(port), connect(port)))
    if not conns:
        return None
    a, b = conns
    rep.check("classic frame (standard id) crosses a -> b byte for byte", cross, a, b,
              [classic(0x123, bytes.fromhex("deadbeef01020304"))])
    rep.check("classic frame (extended id, 3 bytes) crosses b -> a", cross, b, a,
              [classic(0x12345678 | CAN_EFF_FLAG, b"\x11\x22\x33")])
    rep.check("CAN FD frame (64 bytes, BRS) crosses a -> b byte for byte", cross, a, b,
              [fd(0x7FF, bytes(range(64)))])
    rep.check("CAN FD frame (extended id, 12 bytes) crosses b -> a", cross, b, a,
              [fd(0x1ABCDEF | CAN_EFF_FLAG, bytes(range(100, 112)))])
    burst = [classic(0x100 + i % 0x600, struct.pack("<Q", i)) if i % 3
             else fd(0x200 + i, struct.pack("<Q", i) * 8) for i in range(300)]
    # Paced (10 in flight): a virtual bus takes frames at memory speed, so an
    # unpaced burst measures the receiving socket's buffer, not tcpcan.
    rep.check("300 mixed frames cross a -> b in order (10 in flight)",
              lambda: [cross(a, b, burst[i:i + 10]) for i in range(0, 300, 10)] and None)
    rep.check("a sender does not get its own frames back", assert_quiet, a, "a")
    rep.figure("of 300 frames sent unpaced a -> b, arrived",
               count_arrivals(a, b, burst))
    return a, b


def run_test_mode(rep, con, port, t0):
    m, at = rep.check("VM boots and tcpcan listens",
                      lambda: con.wait_for(r"VM-READY", BOOT_TIMEOUT)) or (None, 0)
    if m is None:
        return
    rep.figure("boot to listening (s, wall clock)", f"{time.monotonic() - t0:.1f}")
    su = re.search(r"VM-STARTUP-US (\d+)", "\n".join(con.lines))
    if su:
        rep.figure("tcpcan exec to listening (ms, emulated CPU)", int(su.group(1)) / 1000)
    socks = frames_cross(rep, port)
    if socks:
        a, b = socks
        b.close()
        time.sleep(1)
        con.type("rss")
        rss = rep.check("RSS read", lambda: con.wait_for(r"^VM-RSS-KB (\d+)$", STEP_TIMEOUT, at))
        if rss:
            rep.figure("RSS of the idle server with one client (KiB)", rss[0].group(1))
    con.type("stop")
    ex = rep.check("SIGTERM ends tcpcan",
                   lambda: con.wait_for(r"^VM-EXIT (\d+) (\d+)$", STEP_TIMEOUT, at))
    if ex:
        m = ex[0]
        rep.check("exit status 0 after SIGTERM",
                  expect, m.group(1) == "0", f"exit status {m.group(1)}")
        rep.figure("SIGTERM to exit (ms, emulated CPU)", int(m.group(2)) / 1000)
    if socks:
        rep.check("remaining client sees the connection closed", assert_eof, socks[0], "a")
        socks[0].close()


def run_boot_mode(rep, con, port, t0):
    """busybox init as PID 1; the project's init script starts tcpcan."""
    ok = rep.check("busybox init runs rcS; S60tcpcan starts tcpcan",
                   lambda: con.wait_for(r"Starting tcpcan: OK", BOOT_TIMEOUT,
                                        fail=r"VM-FAIL|Kernel panic|Starting tcpcan: FAIL"))
    if not ok:
        return
    rep.figure("boot to 'Starting tcpcan: OK' (s, wall clock)", f"{time.monotonic() - t0:.1f}")
    _, at = rep.check("rcS finished", lambda: con.wait_for(r"VM-RCS-DONE", STEP_TIMEOUT)) or (0, 0)
    socks = frames_cross(rep, port)
    # The console shell: our commands' answers are lines of their own.
    con.type("echo VM-UID $(sed -n 's/^Uid:[[:space:]]*\\([0-9]*\\).*/\\1/p' "
             "/proc/$(cat /var/run/tcpcan.pid)/status)")
    rep.check("tcpcan runs as the unprivileged user from /etc/default/tcpcan (uid 999)",
              lambda: con.wait_for(r"^VM-UID 999$", STEP_TIMEOUT, at))
    con.type("echo VM-SYSLOG $(logread | grep -c 'tcpcan.*agreed protocol version 1')")
    rep.check("tcpcan's log reaches syslog (logread)",
              lambda: con.wait_for(r"^VM-SYSLOG [1-9]\d*$", STEP_TIMEOUT, at))
    con.type("poweroff")
    rep.check("poweroff runs the init script's stop",
              lambda: con.wait_for(r"Stopping tcpcan: OK", STEP_TIMEOUT, at,
                                   fail=r"Kernel panic|Stopping tcpcan: FAIL"))
    if socks:
        for s, n in zip(socks, "ab"):
            rep.check(f"client {n} sees the connection closed at poweroff", assert_eof, s, n)
            s.close()
    rep.check("rcK finished", lambda: con.wait_for(r"VM-RCK-DONE", STEP_TIMEOUT, at))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--name", required=True)
    ap.add_argument("--mode", choices=("test", "boot"), default="test")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("qemu", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    argv = args.qemu[1:] if args.qemu[:1] == ["--"] else args.qemu
    rep = Report(args.name)
    t0 = time.monotonic()
    con = Console(argv, args.log)
    try:
        (run_test_mode if args.mode == "test" else run_boot_mode)(rep, con, args.port, t0)
    finally:
        rc = con.close(STEP_TIMEOUT)
    # poweroff -f / busybox poweroff end QEMU (PSCI SYSTEM_OFF) with status 0.
    rep.check("VM powered off by itself", expect, rc == 0,
              f"QEMU status {rc} (None: killed after {STEP_TIMEOUT} s)")
    if rep.failed:
        print(f"{args.name}: console log in {args.log}; last lines:", file=sys.stderr)
        for line in con.lines[-25:]:
            print("  | " + line, file=sys.stderr)
    return 1 if rep.failed else 0


if __name__ == "__main__":
    sys.exit(main())
