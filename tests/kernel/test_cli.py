"""--help documents the defaults; --version names the version and the target triple."""

import re
import subprocess

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
