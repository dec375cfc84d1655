#!/usr/bin/env python3
"""The packaged daemon's CAN receive queue, checked as text (the UML test
in initscript-uml.sh checks it for real):

- the init script's link set-up raises net.core.rmem_max to the queue
  tcpcan asks for (CAN_RCVBUF in src/limits.rs), and the sysctl file sets
  the same value;
- both recipes install the sysctl file as /usr/lib/sysctl.d/30-tcpcan.conf,
  and init/tcpcan-link.sh where the init script sources it;
- the units get the queue that way, not by a capability: no
  AmbientCapabilities=, an empty CapabilityBoundingSet=.

Prints "ok - ..." or "not ok - ..." per rule; exit status 1 if any failed.
"""

import re
import sys
from pathlib import Path

from tap import report, status

REPO = Path(__file__).resolve().parents[2]
SYSCTL = "init/tcpcan.sysctl.conf"


def one(pattern, path, what):
    """The single match of pattern's group 1 in path, or an exception."""
    found = re.findall(pattern, (REPO / path).read_text(), re.M)
    if len(found) != 1:
        raise ValueError(f"{path}: want one {what}, found {len(found)}")
    return found[0]


def asked():
    expr = one(r"^pub const CAN_RCVBUF: usize = ([0-9_ *]+);$", "src/limits.rs",
               "CAN_RCVBUF")
    value = 1
    for factor in expr.split("*"):
        value *= int(factor.strip().replace("_", ""))
    return value


def main():
    try:
        want = asked()
    except (OSError, ValueError) as e:
        report("the queue tcpcan asks for (src/limits.rs)", e)
        return status()
    for path, pattern, what in (
        ("init/tcpcan-link.sh", r'^RCVBUF="(\d+)"$', 'RCVBUF="..."'),
        (SYSCTL, r"^net\.core\.rmem_max = (\d+)$", "net.core.rmem_max = ..."),
    ):
        try:
            have = int(one(pattern, path, what))
            problem = None if have == want else f"{have}, tcpcan asks for {want}"
        except (OSError, ValueError) as e:
            problem = e
        report(f"{path} raises net.core.rmem_max to CAN_RCVBUF ({want})", problem)

    mk = (REPO / "buildroot/package/tcpcan/tcpcan.mk").read_text()
    report("Buildroot installs the sysctl file as /usr/lib/sysctl.d/30-tcpcan.conf",
           None if re.search(r"\$\(@D\)/" + re.escape(SYSCTL) + r" \\\n\s*"
                             r"\$\(TARGET_DIR\)/usr/lib/sysctl\.d/30-tcpcan\.conf$", mk, re.M)
           else "no such $(INSTALL) line in tcpcan.mk")
    bb = (REPO / "yocto/meta-tcpcan/recipes-connectivity/tcpcan/tcpcan_git.bb").read_text()
    problem = None
    if not re.search(r"\$\{S\}/" + re.escape(SYSCTL) + r" "
                     r"\$\{D\}\$\{nonarch_libdir\}/sysctl\.d/30-tcpcan\.conf$", bb, re.M):
        problem = "no such install line in tcpcan_git.bb"
    elif 'FILES:${PN} += "${nonarch_libdir}/sysctl.d"' not in bb:
        problem = "FILES:${PN} lacks ${nonarch_libdir}/sysctl.d (installed but not shipped)"
    report("Yocto installs the sysctl file as /usr/lib/sysctl.d/30-tcpcan.conf", problem)

    link = one(r'^LINK="\$\{TCPCAN_LINK:-/usr/share/\$DAEMON/([\w.-]+)\}"$', "init/tcpcan.init",
               "LINK default")
    report(f"the init script sources /usr/share/tcpcan/{link}, from init/tcpcan-link.sh",
           None if link == "tcpcan-link.sh" else f"it sources {link}")
    report("Buildroot installs init/tcpcan-link.sh as /usr/share/tcpcan/tcpcan-link.sh",
           None if re.search(r"\$\(@D\)/init/tcpcan-link\.sh \\\n\s*"
                             r"\$\(TARGET_DIR\)/usr/share/tcpcan/tcpcan-link\.sh$", mk, re.M)
           else "no such $(INSTALL) line in tcpcan.mk")
    report("Yocto installs init/tcpcan-link.sh as /usr/share/tcpcan/tcpcan-link.sh",
           None if re.search(r"\$\{S\}/init/tcpcan-link\.sh "
                             r"\$\{D\}\$\{datadir\}/tcpcan/tcpcan-link\.sh$", bb, re.M)
           else "no such install line in tcpcan_git.bb")

    for unit in ("init/tcpcan.service", "init/tcpcan@.service"):
        text = (REPO / unit).read_text()
        problem = None
        if re.search(r"^AmbientCapabilities=", text, re.M):
            problem = "has AmbientCapabilities="
        elif re.findall(r"^CapabilityBoundingSet=(.*)$", text, re.M) != [""]:
            problem = "CapabilityBoundingSet= is not one empty line"
        report(f"{unit} gets the queue without a capability", problem)
    return status()


if __name__ == "__main__":
    sys.exit(main())
