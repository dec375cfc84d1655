#!/usr/bin/env python3
"""Which instances the init script acts on, under busybox sh: the first and
each one TCPCAN_INSTANCES in /etc/default/tcpcan names, never a file that
merely lies beside it. Package managers and editors leave copies there
(tcpcan.rpmnew, tcpcan.dpkg-dist, tcpcan.bak, ...); counted as instances,
each would start one more tcpcan, on the bus the copied file names.

`status` without a name walks the same list as `start` and `stop`, and
needs no daemon: the instances it reports are the ones `start` would start
(initscript-uml.sh starts them for real, backups beside them). Also: the
usage line names every action the script accepts, and start without the
sourced tcpcan-link.sh fails with one line that says where it belongs.

usage: instances.py BUSYBOX   (prints ok/not ok lines; exit 1 if any failed)
"""

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from tap import report, status

REPO = Path(__file__).resolve().parents[2]
INIT = REPO / "init" / "tcpcan.init"
LINK = REPO / "init" / "tcpcan-link.sh"
DEFAULTS = (REPO / "init" / "tcpcan.default").read_text()

# Left by rpm (Yocto's package manager treats the file as %config), dpkg,
# ucf, opkg, editors and by hand.
SUFFIXES = [
    ".rpmnew", ".rpmsave", ".rpmorig",
    ".dpkg-dist", ".dpkg-old", ".dpkg-new", ".dpkg-bak", ".dpkg-tmp",
    ".ucf-dist", ".ucf-old", ".ucf-new",
    "-opkg", ".opkg",
    ".bak", ".orig", ".old", ".save", ".swp", ".new", ".dist", ".tmp", "~",
]


def script(etc, applets, *args, link=LINK):
    env = {
        "PATH": f"{applets}:{os.environ['PATH']}",
        "TCPCAN_DEFAULTS": str(etc / "tcpcan"),
        "TCPCAN_PIDFILE": str(etc / "run" / "tcpcan.pid"),
        "TCPCAN_DAEMON": str(etc / "no-such-daemon"),
        "TCPCAN_LINK": str(link),
    }
    done = subprocess.run(["sh", str(INIT), *args], env=env, cwd=etc,
                          capture_output=True, text=True, timeout=30)
    return done.returncode, (done.stdout + done.stderr).splitlines()


def expect(what, got, rc, lines):
    want = (rc, lines)
    report(what, None if got == want else f"want {want}, got {got}")


def settings(etc, shared, files):
    for f in etc.glob("tcpcan*"):
        f.unlink()
    (etc / "tcpcan").write_text(DEFAULTS + "".join(line + "\n" for line in shared))
    for name, text in files.items():
        (etc / name).write_text(text)


def main(busybox):
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        applets = tmp / "busybox"
        applets.mkdir()
        for applet in ("sh", "start-stop-daemon", "cat", "sleep", "rm"):
            (applets / applet).symlink_to(busybox)
        etc = tmp / "etc"
        (etc / "run").mkdir(parents=True)
        can1 = 'TCPCAN_CANIF="can1"\nTCPCAN_PORT="20011"\n'
        both = ["tcpcan is stopped", "tcpcan.can1 is stopped"]

        for suffix in SUFFIXES:
            # A copy of each file, the shared one with the port it had
            # before the integrator changed it: two daemons on can0.
            backup = DEFAULTS + 'TCPCAN_PORT="20019"\nTCPCAN_INSTANCES="can1"\n'
            settings(etc, ['TCPCAN_INSTANCES="can1"'], {
                "tcpcan.can1": can1,
                f"tcpcan{suffix}": backup,
                f"tcpcan.can1{suffix}": can1,
            })
            expect(f"tcpcan{suffix} and tcpcan.can1{suffix} are not instances",
                   script(etc, applets, "status"), 3, both)

        settings(etc, [], {"tcpcan.can1": can1})
        expect("a file that TCPCAN_INSTANCES does not list starts nothing",
               script(etc, applets, "status"), 3, ["tcpcan is stopped"])
        expect("but is an instance when named on the command line",
               script(etc, applets, "status", "can1"), 3, ["tcpcan.can1 is stopped"])

        settings(etc, ['TCPCAN_INSTANCES="can2 can1"'], {"tcpcan.can1": can1})
        # status: the first non-zero status, here the first instance's 3.
        expect("a listed instance without its file fails alone, the others go on",
               script(etc, applets, "status"), 3, [
                   "tcpcan is stopped",
                   f"tcpcan: no instance 'can2': {etc}/tcpcan.can2 does not exist"
                   " (names: letters, digits, _ and -)",
                   "tcpcan.can1 is stopped"])
        settings(etc, ['TCPCAN_INSTANCES="../etc/tcpcan"'], {})
        expect("a listed name that is a path is refused",
               script(etc, applets, "status"), 3, [
                   "tcpcan is stopped",
                   f"tcpcan: no instance '../etc/tcpcan': {etc}/tcpcan.../etc/tcpcan"
                   " does not exist (names: letters, digits, _ and -)"])
        settings(etc, ['TCPCAN_INSTANCES="*"'], {"tcpcan.can1": can1})
        expect("TCPCAN_INSTANCES is never globbed",
               script(etc, applets, "status"), 3, [
                   "tcpcan is stopped",
                   f"tcpcan: no instance '*': {etc}/tcpcan.* does not exist"
                   " (names: letters, digits, _ and -)"])
        expect("start of a listed instance without its file exits 1",
               script(etc, applets, "start", "can2"), 1, [
                   f"tcpcan: no instance 'can2': {etc}/tcpcan.can2 does not exist"
                   " (names: letters, digits, _ and -)"])
        expect("run of an unknown instance fails before starting anything",
               script(etc, applets, "run", "can2"), 1, [
                   f"tcpcan: no instance 'can2': {etc}/tcpcan.can2 does not exist"
                   " (names: letters, digits, _ and -)"])

        missing = tmp / "usr/share/tcpcan/tcpcan-link.sh"
        expect("start without the link set-up file says where it belongs",
               script(etc, applets, "start", "can1", link=missing), 1, [
                   f"Starting tcpcan.can1: FAIL ({missing} is missing"
                   " (install init/tcpcan-link.sh there))"])

        rc, out = script(etc, applets, "no-such-action")
        usage = re.search(r"\{([a-z|]+)\}", out[0]) if out else None
        text = INIT.read_text()
        cases = text[text.rindex('case "$1" in'):]
        accepted = set(re.findall(r"^\t([a-z|]+)\)", cases, re.M)[0].split("|"))
        accepted |= set(re.findall(r"^\t([a-z]+)\)", cases, re.M))
        listed = set(usage.group(1).split("|")) if usage else set()
        report("the usage line names every action the script accepts",
               None if rc == 1 and listed == accepted
               else f"exit {rc}, usage {sorted(listed)}, accepted {sorted(accepted)}")
    return status()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1]))
