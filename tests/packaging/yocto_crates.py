#!/usr/bin/env python3
"""The recipe fetches only the crates the daemon builds with.

tcpcan-crates.inc must list exactly the crates.io packages of the root
Cargo.lock at the recipe's SRCREV: nothing from fuzz/Cargo.lock (whose
crates Yocto would fetch for nothing), and the recipe must keep the
class's Cargo.lock search on a directory that holds the root Cargo.lock
alone, or the next `bitbake -c update_crates` brings them back.

Prints "ok - ..." / "not ok - ..." lines; exit 1 if any check failed.
"""

import re
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RECIPE_DIR = REPO / "yocto/meta-tcpcan/recipes-connectivity/tcpcan"
RECIPE = (RECIPE_DIR / "tcpcan_git.bb").read_text()
INC = (RECIPE_DIR / "tcpcan-crates.inc").read_text()

failed = 0


def check(what, problem):
    """problem: None when the check holds, else what is wrong."""
    global failed
    if problem:
        failed += 1
        print(f"not ok - {what}: {problem}")
    else:
        print(f"ok - {what}")


def crates_io(lock_text):
    lock = tomllib.loads(lock_text)
    return {(c["name"], c["version"]) for c in lock["package"]
            if "crates.io" in c.get("source", "")}


def at_srcrev(path):
    rev = re.search(r'^SRCREV = "([0-9a-f]{40})"$', RECIPE, re.M)
    if not rev:
        sys.exit("yocto_crates: no pinned SRCREV in tcpcan_git.bb")
    return subprocess.run(["git", "-C", str(REPO), "show", f"{rev.group(1)}:{path}"],
                          check=True, capture_output=True, text=True).stdout


listed = set(re.findall(r"crate://crates\.io/([^/\s]+)/(\S+) \\", INC))
daemon = crates_io(at_srcrev("Cargo.lock"))
fuzz_only = crates_io((REPO / "fuzz/Cargo.lock").read_text()) - daemon

extra = sorted(listed - daemon)
check("tcpcan-crates.inc lists no crate outside the root Cargo.lock",
      extra and "extra: " + ", ".join(f"{n} {v}" for n, v in extra))
check("tcpcan-crates.inc lists no fuzz-only crate (fuzz/Cargo.lock)",
      listed & fuzz_only and "fuzz-only: " + ", ".join(
          sorted(f"{n} {v}" for n, v in listed & fuzz_only)))
check("tcpcan-crates.inc has one section, from the root Cargo.lock",
      re.findall(r"^# from (.*)$", INC, re.M) != ["Cargo.lock"]
      and "sections: %s" % re.findall(r"^# from (.*)$", INC, re.M))
# The class walks CARGO_LOCK_SRC_DIR recursively: at ${S} it finds fuzz/.
lock_dir = re.search(r'^CARGO_LOCK_SRC_DIR = "([^"]*)"$', RECIPE, re.M)
copied = re.search(r"^do_update_crates:prepend\(\) \{\n\s+cp \$\{S\}/Cargo\.lock "
                   r"\$\{CARGO_LOCK_SRC_DIR\}/\n\}$", RECIPE, re.M)
check("the recipe gives update_crates a directory with the root Cargo.lock alone",
      not (lock_dir and "${S}" not in lock_dir.group(1) and copied
           and 'do_update_crates[cleandirs] = "${CARGO_LOCK_SRC_DIR}"' in RECIPE)
      and "CARGO_LOCK_SRC_DIR outside ${S}, its cleandirs and the copy of "
          "${S}/Cargo.lock are not all in tcpcan_git.bb")
sys.exit(1 if failed else 0)
