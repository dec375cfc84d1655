#!/usr/bin/env python3
"""The Buildroot check-package rules our files can break, checked without
Buildroot (its code may not be fetched by the test suite; the real
check-package was run by hand, see docs/packaging.md):

- every file: no trailing space, newline at the end, no empty last line, no
  two empty lines in a row, not executable in the repository;
- the start script, as the .mk installs it (S<NN>tcpcan): DAEMON without a
  path, PIDFILE="/var/run/$DAEMON.pid", indented with tabs;
- Config.in: attributes indented with one tab, help text <tab><2 spaces>
  and at most 62 characters;
- tcpcan.mk: the package header, only TCPCAN_ variables, files beside the
  .mk through $(TCPCAN_PKGDIR), init files from $(@D)/init/ that exist;
- tcpcan.hash: "sha256  <hash>  <file>", and the licence files' hashes
  match the files;
- a clone builds as it stands: tcpcan.mk takes the tree it is part of
  (SITE_METHOD local, SITE the BR2_EXTERNAL tree's parent), leaves build
  output out of the copy, and vendors the crates before the offline build.

Prints "ok - ..." or "not ok - ..." per file and rule; exit status 1 if any
failed.
"""

import hashlib
import os
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BR = REPO / "buildroot"
PKG = BR / "package" / "tcpcan"
INIT = REPO / "init" / "tcpcan.init"
LINK = REPO / "init" / "tcpcan-link.sh"

failed = 0


def report(what, problems):
    global failed
    if problems:
        failed = 1
        for problem in problems:
            print(f"not ok - {what}: {problem}")
    else:
        print(f"ok - {what}")


def generic(path):
    text = path.read_text()
    lines = text.split("\n")[:-1]
    problems = []
    if not text.endswith("\n"):
        problems.append("no newline at the end")
    if lines and not lines[-1].strip():
        problems.append("empty last line")
    for n, line in enumerate(lines, 1):
        if line != line.rstrip():
            problems.append(f"line {n}: trailing space")
        if n > 1 and not line.strip() and not lines[n - 2].strip():
            problems.append(f"line {n}: consecutive empty lines")
    if os.access(path, os.X_OK):
        problems.append("executable (install it 0755 instead)")
    return problems


def start_script(path, installed_name):
    lines = path.read_text().splitlines()
    problems = []
    daemon = [line for line in lines if line.startswith("DAEMON=")]
    if daemon != ['DAEMON="tcpcan"']:
        problems.append(f'want one DAEMON="tcpcan", have {daemon}')
    pidfile = [line for line in lines if line.startswith("PIDFILE=")]
    if pidfile != ['PIDFILE="/var/run/$DAEMON.pid"']:
        problems.append(f'want PIDFILE="/var/run/$DAEMON.pid", have {pidfile}')
    for n, line in enumerate(lines, 1):
        if re.match(r"^\t* ", line.rstrip()):
            problems.append(f"line {n}: indented with spaces")
    if not re.fullmatch(r"S\d\dtcpcan", installed_name or ""):
        problems.append(f"installed as {installed_name!r}, not S<NN>tcpcan")
    return problems


def config_in(path):
    problems = []
    in_help = False
    first = False
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        word = line.split()[0]
        if word in ("config", "comment", "menu", "endmenu", "if", "endif",
                    "source", "choice", "endchoice", "menuconfig"):
            in_help = False
            if line != line.lstrip():
                problems.append(f"line {n}: {word} should not be indented")
        elif in_help:
            pattern = r"\t  \S.{,61}" if first else r"\t  .{,62}"
            first = False
            if not re.fullmatch(pattern, line) and not re.fullmatch(
                r"\t  (https?|git)://\S*", line
            ):
                problems.append(f"line {n}: help text: <tab><2 spaces><62 chars>")
        elif word in ("bool", "default", "depends", "help", "prompt", "select", "string"):
            if not line.startswith("\t" + word):
                problems.append(f"line {n}: {word} should be indented with one tab")
            in_help = first = word == "help"
    return problems


def makefile(path):
    text = path.read_text()
    lines = text.splitlines()
    problems = []
    header = ["#" * 80, "#", "# tcpcan", "#", "#" * 80, ""]
    if lines[:6] != header:
        problems.append("package header is not the standard 80-# block")
    for n, line in enumerate(lines, 1):
        match = re.match(r"^([A-Z0-9_]+)\s*(\+|:|\?)?=", line)
        if match and not match.group(1).startswith("TCPCAN_"):
            problems.append(f"line {n}: variable {match.group(1)} is not TCPCAN_")
        if "package/tcpcan/" in line:
            problems.append(f"line {n}: use $(TCPCAN_PKGDIR), not package/tcpcan/")
        if re.match(r"^ +\S", line):
            problems.append(f"line {n}: indented with spaces")
    if lines[-1:] != ["$(eval $(cargo-package))"]:
        problems.append("last line is not $(eval $(cargo-package))")
    for used in sorted(set(re.findall(r"\$\(@D\)/(init/[\w.@-]+)", text))):
        if not (REPO / used).is_file():
            problems.append(f"installs $(@D)/{used}, which the source tree lacks")
    return problems


def hash_file(path, licence_files):
    problems = []
    listed = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        match = re.fullmatch(r"sha256  ([0-9a-f]{64})  (\S+)", line)
        if not match:
            problems.append(f"line {n}: not 'sha256  <64 hex>  <file>'")
            continue
        listed[match.group(2)] = match.group(1)
    for name in licence_files:
        if name not in listed:
            problems.append(f"no hash for licence file {name}")
        elif not (REPO / name).is_file():
            problems.append(f"licence file {name} is missing from the repository")
        elif hashlib.sha256((REPO / name).read_bytes()).hexdigest() != listed[name]:
            problems.append(f"hash of {name} does not match the file")
    return problems


def from_the_tree(text):
    problems = []
    wanted = {
        "TCPCAN_SITE": "$(BR2_EXTERNAL_TCPCAN_PATH)/..",
        "TCPCAN_SITE_METHOD": "local",
    }
    for var, value in wanted.items():
        have = re.findall(rf"^{var} = (.*)$", text, re.M)
        if have != [value]:
            problems.append(f"want {var} = {value}, have {have}")
    exclusions = re.search(
        r"^TCPCAN_OVERRIDE_SRCDIR_RSYNC_EXCLUSIONS = ((?:.*\\\n)*.*)$", text, re.M)
    excluded = exclusions.group(1).split() if exclusions else []
    for path in ("/target", "/.cargo/config.toml"):
        if path not in excluded:
            problems.append(f"the rsync of the tree does not exclude {path}")
    hook = re.search(r"^define TCPCAN_VENDOR_CRATES\n(.*?)^endef$", text, re.M | re.S)
    if not hook or "cargo vendor" not in hook.group(1) or "--locked VENDOR" not in hook.group(1):
        problems.append("no TCPCAN_VENDOR_CRATES hook running cargo vendor --locked VENDOR")
    if "TCPCAN_PRE_CONFIGURE_HOOKS += TCPCAN_VENDOR_CRATES" not in text:
        problems.append("TCPCAN_VENDOR_CRATES is not a pre-configure hook (host-rustc is built by then)")
    return problems


def main():
    mk = PKG / "tcpcan.mk"
    for path in (BR / "Config.in", BR / "external.mk", BR / "external.desc",
                 PKG / "Config.in", mk, PKG / "tcpcan.hash", INIT, LINK):
        report(f"{path.relative_to(REPO)}: whitespace and mode", generic(path))
    mk_text = mk.read_text()
    installed = re.search(r"\$\(@D\)/init/tcpcan\.init\s*\\?\s*\$\(TARGET_DIR\)/etc/init\.d/(\S+)", mk_text)
    report("init/tcpcan.init: start script rules (as installed by tcpcan.mk)",
           start_script(INIT, installed and installed.group(1)))
    for path in (BR / "Config.in", PKG / "Config.in"):
        report(f"{path.relative_to(REPO)}: Config.in rules", config_in(path))
    report("buildroot/package/tcpcan/tcpcan.mk: .mk rules", makefile(mk))
    report("buildroot/package/tcpcan/tcpcan.mk: builds the tree it is part of",
           from_the_tree(mk_text))
    licences = re.search(r"^TCPCAN_LICENSE_FILES = (.*)$", mk_text, re.M)
    report("buildroot/package/tcpcan/tcpcan.hash: format and licence hashes",
           hash_file(PKG / "tcpcan.hash", licences.group(1).split() if licences else []))
    return failed


if __name__ == "__main__":
    sys.exit(main())
