#!/usr/bin/env python3
"""The init script (under busybox) and tcpcan.service must turn the same
/etc/default/tcpcan into the same tcpcan command line; the script's instance
NAME and tcpcan@NAME.service likewise for /etc/default/tcpcan plus
/etc/default/tcpcan.NAME. Both tag tcpcan's log lines alike: the journal
identifier the units give (SyslogIdentifier=, else the name of the program
ExecStart= runs) is the tag the script gives logger. tcpcan@.service is
tcpcan.service apart from the lines that make it a template.

The init script runs for real with its `run` action and a stand-in daemon
that prints its arguments. systemd is not PID 1 here, so its side is
emulated: the unit's ExecStart= (continuation lines joined, quotes removed,
$$ turned into $, the way systemd does) runs with the environment systemd
would build from Environment= and EnvironmentFile=.

usage: argv_check.py BUSYBOX   (exit 0 if every case agrees)
"""

import difflib
import os
import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
INIT = REPO / "init" / "tcpcan.init"
UNIT = REPO / "init" / "tcpcan.service"
TEMPLATE = REPO / "init" / "tcpcan@.service"
INSTANCE = "can1"
# Settings of instance INSTANCE, read after the shared file.
INSTANCE_LINES = ['TCPCAN_CANIF="can8"', 'TCPCAN_PORT="20011"']
DEFAULTS = REPO / "init" / "tcpcan.default"
LINK = REPO / "init" / "tcpcan-link.sh"

# Settings appended to the shipped file. TCPCAN_USER="" and TCPCAN_LOG="none"
# because the unit has its own User= and logs to the journal.
CASES = {
    "shipped settings": [],
    "client, IPv6, extra options": [
        'TCPCAN_MODE="client"',
        'TCPCAN_HOST="::1"',
        'TCPCAN_PORT="1234"',
        'TCPCAN_ARGS="--read-only  --filter 123:7FF --wait"',
    ],
    "empty host and port are left out": ['TCPCAN_HOST=""', 'TCPCAN_PORT=""'],
    # Run where files exist, so that globbing would show.
    "a glob in the options stays as it is": ['TCPCAN_ARGS="--wait --filter 1*:7FF -v *"'],
}
COMMON = ['TCPCAN_CANIF="can7"', 'TCPCAN_ARGS="--wait"', 'TCPCAN_USER=""', 'TCPCAN_LOG="none"']


def unit_directives(unit):
    """Key/value pairs of [Service], continuation lines joined like systemd."""
    text = re.sub(r"\\\n", " ", unit.read_text())
    section, pairs = None, []
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            section = line
        elif section == "[Service]":
            key, _, value = line.partition("=")
            pairs.append((key, value))
    return pairs


def env_assignments(text):
    """VAR=value words as systemd reads Environment= and EnvironmentFile=."""
    env = {}
    for word in shlex.split(text, comments=True):
        key, _, value = word.partition("=")
        env[key] = value
    return env


def unit_argv(unit, settings, daemon):
    env = {"PATH": os.environ["PATH"]}
    command = None
    files = {"/etc/default/tcpcan": settings,
             "/etc/default/tcpcan.%i": settings.with_name(f"{settings.name}.{INSTANCE}")}
    for key, value in unit_directives(unit):
        if key == "Environment":
            env.update(env_assignments(value))
        elif key == "EnvironmentFile":
            path = files.get(value.removeprefix("-"))
            if path is None:
                sys.exit(f"argv_check: {unit.name}: unknown EnvironmentFile={value}")
            env.update(env_assignments(path.read_text()))
        elif key == "ExecStart":
            # Any single $ left would be systemd's own substitution.
            if re.search(r"(?<!\$)\$(?!\$)", value.replace("$$", "")):
                sys.exit("argv_check: ExecStart has a $ that systemd would expand")
            command = shlex.split(value.replace("$$", "$"))
    command = [arg.replace("/usr/bin/tcpcan", str(daemon)) for arg in command]
    return run(command, env, settings.parent)


def script_argv(settings, daemon, applets, *instance, shell="sh"):
    env = {
        "PATH": f"{applets}:{os.environ['PATH']}",
        "TCPCAN_DEFAULTS": str(settings),
        "TCPCAN_DAEMON": str(daemon),
        "TCPCAN_PIDFILE": str(settings.parent / "unused.pid"),
        "TCPCAN_LINK": str(LINK),
    }
    return run([shell, str(INIT), "run", *instance], env, settings.parent)


def run(command, env, cwd):
    done = subprocess.run(
        command, env=env, cwd=cwd, capture_output=True, text=True, timeout=30
    )
    if done.returncode != 0:
        return f"exit status {done.returncode}: {done.stderr.strip()}"
    return done.stdout.splitlines()


def main(busybox):
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        applets = tmp / "busybox"
        applets.mkdir()
        for applet in ("sh", "start-stop-daemon", "id", "sleep", "ip", "logger"):
            (applets / applet).symlink_to(busybox)
        daemon = tmp / "tcpcan"
        daemon.write_text('#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done\n')
        daemon.chmod(0o755)
        settings = tmp / "tcpcan.default"
        settings.with_name(f"{settings.name}.{INSTANCE}").write_text(
            "\n".join(INSTANCE_LINES) + "\n")
        failed = 0
        for name, lines in CASES.items():
            settings.write_text(DEFAULTS.read_text() + "\n".join(COMMON + lines) + "\n")
            for what, ours, theirs in [
                ("", script_argv(settings, daemon, applets), unit_argv(UNIT, settings, daemon)),
                (f" (instance {INSTANCE}, tcpcan@{INSTANCE}.service)",
                 script_argv(settings, daemon, applets, INSTANCE),
                 unit_argv(TEMPLATE, settings, daemon)),
            ]:
                if ours == theirs and isinstance(ours, list):
                    print(f"ok - same command line: {name}{what}: {' '.join(ours)}")
                else:
                    print(f"not ok - {name}{what}: init script {ours!r} but unit {theirs!r}")
                    failed = 1
        failed |= same_tags(settings, daemon, applets, tmp)
        failed |= template_is_unit()
        return failed


def journal_identifier(unit, instance):
    """The identifier journald gives the unit's stdout and stderr lines:
    SyslogIdentifier= if set, else the name of the program ExecStart= runs
    (after systemd's prefixes such as - and @)."""
    ident, program = None, None
    for key, value in unit_directives(unit):
        if key == "SyslogIdentifier":
            ident = value
        elif key == "ExecStart":
            program = os.path.basename(shlex.split(value)[0].lstrip("-@:+!|"))
    return (ident or program).replace("%i", instance)


def same_tags(settings, daemon, applets, tmp):
    """The script's logger tag for the first instance and for INSTANCE, from
    a stand-in logger that records its -t, against the units' identifiers.
    Under dash: Debian's busybox sh runs its own logger applet before any
    in PATH, unlike the busybox of an image."""
    logger = tmp / "logger-stand-in"
    logger.mkdir(exist_ok=True)
    tags_file = tmp / "tags"
    (logger / "logger").write_text(
        '#!/bin/sh\ncat >/dev/null\nwhile [ $# -gt 0 ]; do\n'
        f'\t[ "$1" = -t ] && echo "$2" >>"{tags_file}"\n\tshift\ndone\n')
    (logger / "logger").chmod(0o755)
    settings.write_text(DEFAULTS.read_text() + "\n".join(
        ['TCPCAN_CANIF="can7"', 'TCPCAN_USER=""', 'TCPCAN_LOG="syslog"']) + "\n")
    failed = 0
    for unit, instance in ((UNIT, []), (TEMPLATE, [INSTANCE])):
        tags_file.write_text("")
        out = script_argv(settings, daemon, f"{logger}:{applets}", *instance,
                          shell="dash")
        tags = tags_file.read_text().split() if isinstance(out, list) else out
        ident = journal_identifier(unit, INSTANCE)
        if tags == [ident]:
            print(f"ok - {unit.name} tags the journal {ident}, as the script tags syslog")
        else:
            print(f"not ok - {unit.name}: journal identifier {ident!r}, "
                  f"the script's syslog tag {tags!r}")
            failed = 1
    return failed


def template_is_unit():
    """tcpcan@.service = tcpcan.service + its own comment, Description and
    the instance's EnvironmentFile= (with the comment above it)."""
    unit = UNIT.read_text().splitlines()
    template = TEMPLATE.read_text().splitlines()
    extra = [line for line in difflib.ndiff(unit, template) if line[:1] in "+-"]
    allowed = re.compile(r"^\+ (#.*|Description=.* %i|EnvironmentFile=/etc/default/tcpcan\.%i"
                         r"|SyslogIdentifier=tcpcan\.%i)$"
                         r"|^- (Description=.*|SyslogIdentifier=tcpcan)$")
    stray = [line for line in extra if not allowed.match(line)]
    if stray:
        print(f"not ok - tcpcan@.service differs from tcpcan.service beyond its template lines: {stray}")
        return 1
    print("ok - tcpcan@.service is tcpcan.service but for its template lines")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1]))
