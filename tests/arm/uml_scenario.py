#!/usr/bin/env python3
"""The ARM VM scenario (vm.py) for the x86_64 musl binary, inside UML.

Run by tests/arm/run.sh as `tests/uml/run-in-uml.sh python3 THIS` with
TCPCAN_BIN pointing at dist/tcpcan-<version>-x86_64-unknown-linux-musl:
a vcan0 with CAN FD, tcpcan serving it on loopback, two protocol-v1 clients
whose frames cross the UML kernel's CAN stack. Same PASS/FAIL/FIGURE lines.
"""

import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vm  # noqa: E402  (the checks are shared with the QEMU runs)

PORT = 20010
NAME = "x86_64-uml"


def sh(*argv):
    subprocess.run(argv, check=True)


def main():
    rep = vm.Report(NAME)
    binary = os.environ.get("TCPCAN_BIN", "")
    if not os.access(binary, os.X_OK):
        print(f"FAIL {NAME}: TCPCAN_BIN={binary!r} is not an executable", flush=True)
        return 1
    try:
        sh("ip", "link", "add", "dev", "vcan0", "type", "vcan")
        sh("ip", "link", "set", "dev", "vcan0", "mtu", "72", "up")
    except (subprocess.CalledProcessError, OSError) as e:
        print(f"FAIL {NAME}: cannot set up vcan0: {e}", flush=True)
        return 1

    # Exec to listening: tcpcan logs "listening on" once its socket listens.
    t0 = time.monotonic()
    proc = subprocess.Popen([binary, "--serve", "--host", "127.0.0.1",
                             "--port", str(PORT), "vcan0"],
                            stderr=subprocess.PIPE, text=True)
    log = []
    for line in proc.stderr:
        log.append(line.rstrip())
        if "listening on" in line:
            break
    listening = proc.poll() is None and log and "listening on" in log[-1]
    rep.check("tcpcan listens", vm.expect, listening, f"tcpcan said: {log}")
    if not listening:
        proc.kill()
        return 1
    # Keep reading its log so a full pipe can never block it.
    drain = threading.Thread(target=lambda: log.extend(ln.rstrip() for ln in proc.stderr),
                             daemon=True)
    drain.start()
    rep.figure("tcpcan exec to listening (ms)", f"{(time.monotonic() - t0) * 1000:.1f}")

    socks = vm.frames_cross(rep, PORT)
    if socks:
        socks[1].close()
        time.sleep(0.5)
        with open(f"/proc/{proc.pid}/status", encoding="ascii") as f:
            rss = [ln.split()[1] for ln in f if ln.startswith("VmRSS:")]
        rep.figure("RSS of the idle server with one client (KiB)", rss[0] if rss else "?")

    t1 = time.monotonic()
    proc.terminate()
    try:
        rc = proc.wait(vm.STEP_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        rc = proc.wait()
    rep.figure("SIGTERM to exit (ms)", f"{(time.monotonic() - t1) * 1000:.1f}")
    rep.check("exit status 0 after SIGTERM", vm.expect, rc == 0, f"exit status {rc}")
    if socks:
        rep.check("remaining client sees the connection closed", vm.assert_eof, socks[0], "a")
        socks[0].close()
    drain.join(5)
    if rep.failed:
        print("tcpcan's log:", *log, sep="\n  ", file=sys.stderr)
    return 1 if rep.failed else 0


if __name__ == "__main__":
    sys.exit(main())
