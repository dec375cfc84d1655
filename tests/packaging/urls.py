#!/usr/bin/env python3
"""No file names a URL that is not real and meant: in particular no guessed
home for this project (such as github.com/tcpcan), which a recipe would try
to fetch from and a reader would trust. This project's public repository is
not decided yet; until it is, the recipes name it in one variable each
(TCPCAN_GIT_URI in the Yocto recipe, TCPCAN_SITE in Buildroot's release
form) and fetch from the clone itself.

Every URL with a network scheme, every forge path written without one
(github.com/..., gitlab.com/...) and every Buildroot forge helper
($(call github,...)) in the files git tracks must start with one of KNOWN
below, each of which says why it is there. Placeholders such as
git://<host>/<path> or $(call github,<owner>,...) are not URLs and pass.

Prints "ok - ..." or "not ok - ..." lines; exit status 1 if any failed.
"""

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SELF = Path(__file__).resolve().relative_to(REPO).as_posix()

# Prefix -> why it may appear.
KNOWN = {
    "https://github.com/rust-lang/crates.io-index":
        "cargo's own name for the crates.io registry, in Cargo.lock files",
    "https://pypi.org/project/tcpcan/":
        "the Python tcpcan that this daemon is wire-compatible with",
    "https://github.com/linux-can/socketcand":
        "socketcand, whose protocol --socketcand serves (README)",
    "https://www.yoctoproject.org/connectivity.html":
        "oe-core's default CONNECTIVITY_CHECK_URIS, in docs/packaging.md",
    "https://docs.yoctoproject.org/":
        "the Yocto Project's security process, in the layer's SECURITY.md",
    "http://www.apache.org/licenses/":
        "the Apache License's own text",
}

HOST = r"[A-Za-z0-9][A-Za-z0-9.-]*"
PATTERNS = [
    # A URL with a network scheme and a real-looking host.
    re.compile(rf"\b(?:https?|git|ftp|ssh|git\+ssh|rsync|svn)://{HOST}[^\s\"'<>`)]*"),
    # A forge path written without a scheme.
    re.compile(rf"(?<![/\w.])(?:github\.com|gitlab\.com|codeberg\.org|bitbucket\.org)/{HOST}[^\s\"'<>`)]*"),
    # Buildroot's download helpers name a forge project by owner and name.
    re.compile(r"\$\(call (?:github|gitlab),[A-Za-z0-9$][^)\s]*"),
]


def tracked_files():
    out = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, check=True,
                         capture_output=True).stdout
    return [name for name in out.decode().split("\0") if name and name != SELF]


def unknown_urls(text):
    for pattern in PATTERNS:
        for match in pattern.finditer(text):
            url = match.group(0)
            if not any(url.startswith(prefix) for prefix in KNOWN):
                yield url


def main():
    problems = []
    for name in tracked_files():
        path = REPO / name
        if not path.is_file():
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        for n, line in enumerate(text.splitlines(), 1):
            problems += [f"{name}:{n}: {url}" for url in unknown_urls(line)]
    what = "no file names a URL outside the known list (no guessed project home)"
    if problems:
        for problem in problems:
            print(f"not ok - {what}: {problem}")
        return 1
    print(f"ok - {what}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
