"""Field features: id filters, error frames, bus-state logging, dual-stack listening."""

import pytest

from conftest import (
    CAN_EFF_FLAG,
    CAN_ERR_BUSOFF,
    CAN_ERR_FLAG,
    CAN_ERR_RESTARTED,
    Bus,
    classic,
    daemon_with_peer,
    fd,
    payload,
    show,
    shows,
    transfer,
    wait_tunnel,
)

FILTERS = ["--filter", "123:7FF", "--filter", "18FEF100:1FFFFFFF"]
ROLES = ["server", "client"]

# CAN_ERR_CRTL with CAN_ERR_CRTL_RX_WARNING: an ordinary controller error.
CRTL_ERROR = classic(CAN_ERR_FLAG | 0x04, bytes([0, 0x04, 0, 0, 0, 0, 0, 0]))


def test_filters_pass_only_matching_ids_both_directions(daemons, vcan, port):
    a, b, p = vcan(), vcan(), port()
    daemons.server(a, p, extra=FILTERS)
    daemons.client(b, p, extra=FILTERS)
    wait_tunnel(a, b, can_id=0x123)
    # (frame, passes the filters), interleaved so a dropped frame sits between passing ones.
    cases = [
        (classic(0x124, payload(8)), False),
        (classic(0x123, payload(8)), True),
        (classic(0x023, payload(1)), False),
        (fd(0x123, payload(16)), True),
        (classic(0x7FF, payload(2)), False),
        (fd(0x321, payload(12)), False),
        (classic(0x18FEF100 | CAN_EFF_FLAG, payload(8)), True),
        (classic(0x18FEF101 | CAN_EFF_FLAG, payload(8)), False),
        (classic(0x08FEF100 | CAN_EFF_FLAG, payload(8)), False),
        (fd(0x18FEF100 | CAN_EFF_FLAG, payload(64)), True),
        (fd(0x1FFFFFFF | CAN_EFF_FLAG, payload(24)), False),
    ]
    sent = [frame for frame, _ in cases]
    matching = [frame for frame, passes in cases if passes]
    for src, dst in ((a, b), (b, a)):
        with Bus(src) as sender, Bus(dst) as receiver:
            sender.send_all(sent)
            got = receiver.expect(len(matching))
            assert shows(got) == shows(matching), "%s -> %s" % (src, dst)
            assert got == matching


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("flag", [True, False], ids=["error-frames", "default"])
def test_bus_error_frames_reach_peer_only_with_flag(daemons, vcan, port, peers, role, flag):
    bus = vcan()
    extra = ["--error-frames"] if flag else []
    _, peer = daemon_with_peer(role, daemons, peers, bus, port(), extra)
    marker = classic(0x321, payload(4))
    with Bus(bus) as injector:
        injector.send(CRTL_ERROR)
        injector.send(marker)
    got = peer.recv_frame(2.0)
    if flag:
        assert got is not None and show(got) == show(CRTL_ERROR), "got %s" % (got and show(got))
        assert got == CRTL_ERROR
        got = peer.recv_frame(2.0)
    assert got is not None and show(got) == show(marker), "got %s" % (got and show(got))


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("flag", [True, False], ids=["error-frames", "default"])
def test_error_frame_from_tcp_reaches_vcan_only_with_flag(daemons, vcan, port, peers, role, flag):
    """Error frames from TCP are dropped, except by a daemon with --error-frames on a
    virtual bus (so candump -e on a desk vcan shows the remote bus's errors)."""
    bus = vcan()
    extra = ["--error-frames"] if flag else []
    daemon, peer = daemon_with_peer(role, daemons, peers, bus, port(), extra)
    busoff = classic(CAN_ERR_FLAG | CAN_ERR_BUSOFF, bytes(8))
    marker = classic(0x321, payload(4))
    sent = [CRTL_ERROR, busoff, marker]
    expected = sent if flag else [marker]
    with Bus(bus, errors=True) as watcher:
        for frame in sent:
            peer.send_frame(frame)
        # TCP keeps order: the marker comes last whatever was written before it.
        got = watcher.expect(len(expected))
    assert shows(got) == shows(expected)
    assert got == expected
    assert daemon.alive() and peer.is_open()


@pytest.mark.parametrize("flag", [True, False], ids=["error-frames", "default"])
def test_bus_error_frames_cross_the_tunnel_only_with_flag(daemons, vcan, port, flag):
    a, b, p = vcan(), vcan(), port()
    extra = ["--error-frames"] if flag else []
    daemons.server(a, p, extra=extra)
    daemons.client(b, p, extra=extra)
    wait_tunnel(a, b)
    marker = classic(0x321, payload(4))
    expected = [CRTL_ERROR, marker] if flag else [marker]
    for src, dst in ((a, b), (b, a)):
        with Bus(src) as injector, Bus(dst, errors=True) as watcher:
            injector.send_all([CRTL_ERROR, marker])
            got = watcher.expect(len(expected))
        assert shows(got) == shows(expected), "%s -> %s" % (src, dst)
        assert got == expected


@pytest.mark.parametrize("role", ROLES)
def test_bus_off_and_restart_are_logged(daemons, vcan, port, peers, role):
    bus = vcan()
    daemon, _ = daemon_with_peer(role, daemons, peers, bus, port())
    with Bus(bus) as injector:
        injector.send(classic(CAN_ERR_FLAG | CAN_ERR_BUSOFF, bytes(8)))
        line = daemon.wait_log(r"(?=.*warn)(?=.*\b%s\b).*bus.?off" % bus, timeout=5.0)
        print("bus-off logged as:", line)
        injector.send(classic(CAN_ERR_FLAG | CAN_ERR_RESTARTED, bytes(8)))
        line = daemon.wait_log(r"(?=.*warn)(?=.*\b%s\b).*restart" % bus, timeout=5.0)
        print("restart logged as:", line)


def test_ipv4_client_reaches_dual_stack_server(daemons, vcan, port):
    a, b, p = vcan(), vcan(), port()
    daemons.server(a, p, host="::")
    daemons.client(b, p, host="127.0.0.1")
    wait_tunnel(a, b)
    transfer(a, b, [classic(0x123, payload(8)), fd(0x456, payload(32))])
    transfer(b, a, [classic(0x124, payload(8)), fd(0x457, payload(32))])
