"""A gateway reached through ssh with no tcpcan port open: `tcpcan --stdio`
as the forced command of a key on the gateway, `tcpcan --via 'ssh ...'` at
the desk. Both ssh servers a gateway image carries, OpenSSH's sshd and
dropbear, run here on loopback with key authentication only and fresh host
and user keys per test; the desk's client is OpenSSH's ssh.

Inside UML the tests run as root, whose home is the host's: both servers
run in a mount namespace of their own with a fresh, empty /root, as on a
gateway image. So the host's ~/.bashrc (which bash reads for a command run
by sshd, and which may take seconds) is not run, and dropbear, which reads
only ~/.ssh/authorized_keys, reads the test's.
"""

import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from conftest import (
    CAN_MTU,
    CANFD_BRS,
    CANFD_FDF,
    CAN_EFF_FLAG,
    Bus,
    classic,
    fd,
    listening,
    our_bin,
    payload,
    shows,
    transfer,
    wait_path,
    wait_tunnel,
    wait_until,
)
from faultlib import count_log, log_lines, parse_counters, seq_frame, wait_new_log

SERVERS = ["openssh", "dropbear"]


def run(*argv):
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        pytest.fail("%s failed (%d): %s" % (" ".join(argv), done.returncode, done.stderr.strip()))
    return done


def user_key(tmp, name):
    """A fresh ed25519 key pair: (private key path, public key line)."""
    key = tmp / name
    run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key))
    return key, (tmp / (name + ".pub")).read_text().strip()


def processes(name):
    """(pid, text of /proc/PID/NAME) of every process still there."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                yield int(entry), Path("/proc/%s/%s" % (entry, name)).read_bytes()
            except OSError:
                pass


def pids_of(pattern):
    """Pids whose command line matches the regex (NULs read as spaces)."""
    regex = re.compile(pattern)
    text = lambda raw: raw.replace(b"\0", b" ").decode(errors="replace")
    return [pid for pid, raw in processes("cmdline") if raw and regex.search(text(raw))]


def children_of(pid):
    parent = lambda stat: int(stat.rsplit(b")", 1)[1].split()[1])
    return [kid for kid, stat in processes("stat") if parent(stat) == pid]


class Gateway:
    """One ssh server on loopback, with its keys and authorized_keys in a
    directory of the test's own."""

    def __init__(self, kind, tmp, port, daemons):
        self.kind, self.tmp, self.port = kind, tmp, port
        self.keys = tmp / "authorized_keys"
        self.keys.write_text("")
        self.known = tmp / "known_hosts"
        if kind == "openssh":
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
            host = tmp / "ssh_host_ed25519_key"
            run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host))
            config = tmp / "sshd_config"
            config.write_text(
                "\n".join(
                    [
                        "ListenAddress 127.0.0.1",
                        "Port %d" % port,
                        "HostKey %s" % host,
                        "AuthorizedKeysFile %s" % self.keys,
                        "PubkeyAuthentication yes",
                        "PasswordAuthentication no",
                        "KbdInteractiveAuthentication no",
                        "PermitRootLogin prohibit-password",
                        "StrictModes no",
                        "UsePAM no",
                        "PidFile none",
                        "",
                    ]
                )
            )
            server = "/usr/sbin/sshd -D -e -f %s" % config
        else:
            host = tmp / "dropbear_ed25519_host_key"
            run("dropbearkey", "-t", "ed25519", "-f", str(host))
            server = "/usr/sbin/dropbear -F -E -s -r %s -p 127.0.0.1:%d" % (host, port)
        script = (
            "mount -t tmpfs -o mode=0700 tmpfs /root && mkdir -m 700 /root/.ssh && "
            "ln -s %s /root/.ssh/authorized_keys && exec %s" % (self.keys, server)
        )
        argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script]
        self.daemon = daemons.start("%s-server" % kind, argv)
        self.daemon.wait_listening(port, timeout=10)

    def authorize(self, pub, canif, *options):
        """Lets the key `pub` in, forced to `tcpcan --stdio [options] canif`."""
        command = " ".join([our_bin(), "--stdio", *options, canif])
        with open(self.keys, "a") as f:
            f.write('command="%s",restrict %s\n' % (command, pub))

    def ssh(self, key):
        """The desk's command: key authentication only, no user config, a
        known_hosts file of the test's own, a dead link noticed in 3 s."""
        return " ".join(
            [
                "ssh -T -F /dev/null -o BatchMode=yes -o IdentitiesOnly=yes",
                "-o UserKnownHostsFile=%s -o StrictHostKeyChecking=accept-new" % self.known,
                "-o ServerAliveInterval=1 -o ServerAliveCountMax=3",
                "-i %s -p %d root@127.0.0.1" % (key, self.port),
            ]
        )

    def sessions(self):
        """Pids of the server's per-connection processes (unshare exec'd sh,
        which exec'd the server: the listener is the pid we started)."""
        return children_of(self.daemon.pid)


@pytest.fixture(params=SERVERS)
def gateway(request, tmp_path, port, daemons):
    return Gateway(request.param, tmp_path, port(), daemons)


def desk(daemons, gateway, key, canif, *extra, name="desk"):
    return daemons.ours("-v", "--via", gateway.ssh(key), *extra, canif, name=name)


def stdio_pids(canif):
    return pids_of(r"--stdio .*\b%s\b" % canif)


def ssh_pids(key):
    return pids_of(r"^ssh .*-i %s " % re.escape(str(key)))


def up(gateway, tmp, daemons, vcan, *options):
    """A gateway bus, a desk bus, a key and a desk connected through ssh."""
    gw, dk = vcan(), vcan()
    key, pub = user_key(tmp, "desk")
    gateway.authorize(pub, gw, *options)
    d = desk(daemons, gateway, key, dk)
    wait_tunnel(dk, gw, timeout=15)
    return gw, dk, key, d


def test_frames_cross_both_ways_classic_and_fd_byte_exact(gateway, tmp_path, daemons, vcan):
    gw, dk, _, d = up(gateway, tmp_path, daemons, vcan)
    frames = [classic(0x100 + n, payload(n, n)) for n in range(9)]
    frames += [classic(0x1ABCDE0 | CAN_EFF_FLAG, payload(8, 9))]
    frames += [fd(0x200 + i, payload(n, i), CANFD_FDF | CANFD_BRS) for i, n in enumerate([0, 12, 64])]
    transfer(dk, gw, frames)
    transfer(gw, dk, frames)
    # No port of tcpcan's own is open anywhere: only the ssh server listens.
    assert not pids_of(r"tcpcan.*--serve"), "a tcpcan server runs"
    # tcpcan at both ends of the pipes: version 2 (issue 24).
    line = d.wait_log(r"via: .*stdio: agreed protocol version 2")
    print("%s: the gateway's log reached the desk: %s" % (gateway.kind, line))


def test_a_read_only_key_has_its_frames_counted_and_dropped(gateway, tmp_path, daemons, vcan):
    gw, dk = vcan(), vcan()
    writer, writer_pub = user_key(tmp_path, "writer")
    reader, reader_pub = user_key(tmp_path, "reader")
    gateway.authorize(writer_pub, gw)
    gateway.authorize(reader_pub, gw, "--read-only")
    d = desk(daemons, gateway, reader, dk)
    wait_path(gw, dk, timeout=15)
    frames = [seq_frame(0x5A0, i) for i in range(5)]
    with Bus(gw) as watch:
        Bus(dk).send_all(frames)
        leaked = watch.quiet(0.5)
    assert not leaked, "a read-only key wrote frames to the bus: %s" % shows(leaked)
    # The gateway's counters, asked for with SIGUSR1, reach the desk's log.
    (pid,) = stdio_pids(gw)
    start = len(d.log())
    os.kill(pid, signal.SIGUSR1)
    counts = parse_counters(wait_new_log(d, r"via: .*stdio: frames to_can=", start))
    print("%s read-only key: %s" % (gateway.kind, counts))
    assert counts["read_only"] == len(frames) and counts["to_can"] == 0
    # The other key of the same gateway writes.
    dk2 = vcan()
    desk(daemons, gateway, writer, dk2, name="writer")
    wait_path(dk2, gw, timeout=15)


def test_two_desks_see_each_others_frames(gateway, tmp_path, daemons, vcan):
    gw, a, key, _ = up(gateway, tmp_path, daemons, vcan)
    b = vcan()
    desk(daemons, gateway, key, b, name="desk-b")
    wait_tunnel(b, gw, timeout=15)
    assert len(stdio_pids(gw)) == 2, "two desks are two gateway processes"
    frames = [classic(0x300 + i, payload(8, i)) for i in range(5)]
    with Bus(gw) as on_gw, Bus(b) as on_b:
        Bus(a).send_all(frames)
        assert shows(on_gw.recv_n(5)) == shows(frames)
        assert shows(on_b.recv_n(5)) == shows(frames), "desk b did not see desk a's frames"


def test_a_killed_ssh_session_is_started_again(gateway, tmp_path, daemons, vcan):
    gw, dk, key, d = up(gateway, tmp_path, daemons, vcan)
    sessions = gateway.sessions()
    assert sessions, "no session process of %s found" % gateway.kind
    for pid in sessions:
        os.kill(pid, signal.SIGKILL)
    # The bound: frames flow again within 2 s (wait_path fails past it).
    took = wait_path(dk, gw, timeout=2.0)
    print("%s: session killed; frames flow again after %.2f s" % (gateway.kind, took))
    assert count_log(d, r"via: `ssh .*` ended") >= 1


def test_a_killed_gateway_tcpcan_ends_ssh_and_is_started_again(gateway, tmp_path, daemons, vcan):
    gw, dk, key, d = up(gateway, tmp_path, daemons, vcan)
    (old,) = stdio_pids(gw)
    os.kill(old, signal.SIGKILL)
    d.wait_log(r"via: `ssh .*` ended \(exit status: ", timeout=5)
    wait_tunnel(dk, gw, timeout=5)
    (new,) = stdio_pids(gw)
    assert new != old


def test_sigterm_at_the_desk_leaves_no_ssh_and_no_tcpcan(gateway, tmp_path, daemons, vcan):
    gw, dk, key, d = up(gateway, tmp_path, daemons, vcan)
    assert ssh_pids(key) and stdio_pids(gw)
    status, took = d.signal_and_reap(signal.SIGTERM)
    assert status == 0, "desk exited with %s" % status
    wait_until(lambda: not ssh_pids(key) and not stdio_pids(gw), 3.0, "ssh and the gateway's tcpcan to end")
    zombies = [p for p in children_of(d.pid)]
    assert not zombies, "children of the desk left: %s" % zombies
    print("%s: desk stopped in %.3f s, nothing left on either side" % (gateway.kind, took))


def said(daemon, pattern):
    """The daemon's log lines matching `pattern` above debug level."""
    return [line for line in log_lines(daemon) if re.search(pattern, line) and "[DEBUG]" not in line]


def test_a_missing_command_is_said_once_and_retried(tmp_path, daemons, vcan):
    dk = vcan()
    cmd = tmp_path / "not-yet"
    d = daemons.ours("-v", "--via", str(cmd), dk, name="desk")
    d.wait_log(r"via: .*not-yet.*not found")
    d.wait_log(r"via: `.*not-yet` ended \(exit status: 127\); starting it again every second")
    # Still retrying, every second: three more attempts, none said again
    # above debug level. Two of them ended before the last started: a line
    # once said again at every other attempt.
    wait_until(lambda: count_log(d, r"\[DEBUG\] via: started `") >= 4, 10, "three more attempts")
    lines = said(d, r"not found|ended")
    assert len(lines) == 2, "a repeated failure is said again:\n" + "\n".join(lines)
    # Still retrying: once the command exists, it is run and served.
    gw = vcan()
    cmd.write_text("#!/bin/sh\nexec %s --stdio %s\n" % (our_bin(), gw))
    cmd.chmod(0o755)
    wait_tunnel(dk, gw, timeout=5)


def test_a_refused_key_is_said_once_and_retried(gateway, tmp_path, daemons, vcan):
    gw, dk = vcan(), vcan()
    key, pub = user_key(tmp_path, "late")
    d = desk(daemons, gateway, key, dk)
    d.wait_log(r"via: .*Permission denied", timeout=15)
    d.wait_log(r"via: `ssh .*` ended \(exit status: 255\); starting it again every second", timeout=15)
    # Still retrying, every second: three more attempts (each a few hundred
    # ms of ssh under UML), none of them said again above debug level.
    wait_until(lambda: count_log(d, r"\[DEBUG\] via: started `ssh") >= 4, 20, "three more attempts")
    lines = said(d, r"Permission denied|ended")
    assert len(lines) == 2, "a repeated refusal is said again:\n" + "\n".join(lines)
    gateway.authorize(pub, gw)
    wait_tunnel(dk, gw, timeout=10)


def test_no_retry_exits_1_when_the_command_ends(tmp_path, daemons, vcan):
    dk = vcan()
    d = daemons.ours("--no-retry", "--via", "echo refused >&2; exit 3", dk, name="desk")
    assert d.wait_exit(5) == 1
    assert "via: refused" in d.log()
    assert re.search(r"tcpcan: `echo refused >&2; exit 3` ended \(exit status: 3\)", d.log()), d.log()


def descendants_of(pid):
    found, todo = [], [pid]
    while todo:
        kids = children_of(todo.pop())
        found += kids
        todo += kids
    return found


def test_a_dead_link_is_noticed_by_ssh_and_the_command_started_again(gateway, tmp_path, daemons, vcan):
    """A session that stops answering (its processes stopped, as a link that
    went dead would look): ssh's ServerAliveInterval gives up on it, and the
    desk starts a new one."""
    gw, dk, key, d = up(gateway, tmp_path, daemons, vcan)
    frozen = descendants_of(gateway.daemon.pid)
    assert frozen, "no session process of %s found" % gateway.kind
    try:
        start = time.monotonic()
        for pid in frozen:
            os.kill(pid, signal.SIGSTOP)
        d.wait_log(r"via: .*(Timeout, server .* not responding|ended \(exit status: 255\))", timeout=10)
        wait_tunnel(dk, gw, timeout=10)
        print("%s: a dead session noticed and replaced after %.1f s" % (gateway.kind, time.monotonic() - start))
    finally:
        for pid in frozen:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_a_key_gets_the_tunnel_only_whatever_the_desk_asks(gateway, tmp_path, daemons, vcan, port):
    """`restrict` and the forced command: another command asked for runs
    tcpcan --stdio all the same (which then sees the end of its input), and
    a port forward is refused."""
    gw = vcan()
    key, pub = user_key(tmp_path, "desk")
    gateway.authorize(pub, gw, "--read-only")
    ssh = gateway.ssh(key).split()
    done = subprocess.run(ssh + ["echo shell-ran; id"], stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
    assert b"shell-ran" not in done.stdout and b"uid=" not in done.stdout, done.stdout
    assert done.returncode == 0, "the forced tcpcan --stdio did not end cleanly: %r" % done.stderr
    assert b"stdio: closed: peer closed the connection" in done.stderr, done.stderr
    local = port()
    fwd = subprocess.Popen(
        ssh + ["-N", "-o", "ExitOnForwardFailure=no", "-L", "127.0.0.1:%d:127.0.0.1:%d" % (local, gateway.port)],
        stdin=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_until(lambda: listening(local), 15, "ssh's local forward to listen")
        with socket.create_connection(("127.0.0.1", local), 5) as s:
            s.settimeout(5)
            got = s.recv(100)
        assert not got.startswith(b"SSH-"), "a restricted key forwarded a port"
    finally:
        fwd.kill()
        fwd.wait()


def test_a_command_that_writes_stderr_without_end_neither_floods_the_log_nor_holds_the_desk(tmp_path, daemons, vcan):
    d = daemons.ours("--via", "yes via-noise >&2", vcan(), name="desk")
    d.wait_log(r"via: via-noise")
    time.sleep(1)
    assert count_log(d, r"via-noise") == 1, "a repeated line is logged again"
    status, took = d.signal_and_reap(signal.SIGTERM)
    assert status == 0, "desk did not stop on SIGTERM (status %s)" % status
    assert not pids_of(r"^yes via-noise"), "the command outlived the desk"
    print("stopped %.3f s after SIGTERM while its command wrote without end" % took)
