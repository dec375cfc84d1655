"""The client survives a server restart; with --no-retry it gives up instead."""

import signal

from conftest import classic, payload, transfer, wait_path, wait_tunnel


def test_client_reconnects_after_server_restart(daemons, vcan, port):
    a, b, p = vcan(), vcan(), port()
    server = daemons.server(a, p)
    client = daemons.client(b, p)
    wait_tunnel(a, b)

    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait()
    daemons.server(a, p)
    took = wait_path(b, a, timeout=5.0)
    wait_path(a, b, timeout=2.0)
    print("client reconnected and carried a frame %.2fs after the server restarted" % took)
    assert client.alive()
    transfer(a, b, [classic(0x123, payload(8))])
    transfer(b, a, [classic(0x124, payload(8))])


def test_no_retry_client_exits_when_nothing_listens(daemons, vcan, port):
    client = daemons.client(vcan(), port(), extra=["--no-retry"])
    status = client.wait_exit(5)
    assert status is not None, "--no-retry client still running with nothing listening"
    assert status != 0


def test_no_retry_client_exits_when_connection_is_lost(daemons, vcan, port):
    a, b, p = vcan(), vcan(), port()
    server = daemons.server(a, p)
    client = daemons.client(b, p, extra=["--no-retry"])
    wait_tunnel(a, b)
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait()
    status = client.wait_exit(5)
    assert status is not None, "--no-retry client still running after losing its server"
    assert status != 0
