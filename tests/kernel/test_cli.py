"""--help documents the defaults; --version names the version and the target
triple; server flags given to a client are a usage error; --no-retry with
--serve starts with a warning, as the Python original accepts it."""

import re
import subprocess

import pytest

from conftest import REPO, our_bin


def run(*args):
    done = subprocess.run([our_bin(), *args], capture_output=True, timeout=5)
    return done.returncode, (done.stdout + done.stderr).decode(errors="replace")


def test_help_shows_defaults():
    status, text = run("--help")
    assert status == 0, text
    for option in ("--host", "--port", "--serve", "--no-retry", "--filter", "--error-frames", "--version"):
        assert option in text, "--help lacks %s:\n%s" % (option, text)
    for default in ("localhost", "20010", "64", "1000"):
        assert re.search(r"\b%s\b" % default, text), "--help lacks the default %s:\n%s" % (default, text)


def test_version_prints_version_and_target_triple():
    manifest = (REPO / "Cargo.toml").read_text()
    version = re.search(r'^version\s*=\s*"([^"]+)"', manifest, re.M).group(1)
    status, text = run("--version")
    assert status == 0, text
    assert re.search(r"\b%s\b" % re.escape(version), text), "no version %s in %r" % (version, text)
    triple = r"\b[a-z0-9_]+-[a-z0-9_]+-linux-[a-z0-9_]+\b"
    assert re.search(triple, text), "no target triple in %r" % text


@pytest.mark.parametrize(
    "flags",
    [["--allow", "10.0.0.0/8"], ["--max-clients", "64"]],
    ids=["allow", "max-clients"],
)
def test_server_flags_given_to_a_client_are_a_usage_error(flags):
    """A client would ignore them; it says so at start-up instead."""
    done = subprocess.run(
        [our_bin(), *flags, "--host", "127.0.0.1", "vcan0"], capture_output=True, timeout=5
    )
    stderr = done.stderr.decode(errors="replace")
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert done.returncode == 2, "exit status %d, stderr: %r" % (done.returncode, stderr)
    assert lines == ["tcpcan: %s only applies with --serve" % flags[0]], stderr


def test_no_retry_with_serve_starts_as_with_the_original_and_is_warned_of(daemons, vcan, port):
    """The Python original accepts --no-retry with --serve and ignores it: a
    command line written for it still starts, with one warning."""
    p = port()
    server = daemons.start("server", [our_bin(), "--serve", "--no-retry", "--host", "127.0.0.1", "--port", str(p), vcan()])
    server.wait_listening(p)
    warnings = [line for line in server.log().splitlines() if "--no-retry" in line]
    assert warnings == ["[WARN] --no-retry only applies to a client; ignored with --serve"], server.log()
