"""Frames cross the tunnel unchanged: every length, id kind and RTR, both ways."""

from conftest import (
    CAN_EFF_FLAG,
    CAN_MTU,
    CANFD_BRS,
    CANFD_ESI,
    CLASSIC_LENGTHS,
    FD_LENGTHS,
    Bus,
    classic,
    daemon_with_peer,
    fd,
    payload,
    shows,
    transfer,
    wait_tunnel,
)


def classic_frames():
    frames = []
    for n in CLASSIC_LENGTHS:
        frames.append(classic(0x100 + n, payload(n, n)))
        frames.append(classic(0x1ABCDE00 + n | CAN_EFF_FLAG, payload(n, n + 50)))
        frames.append(classic(0x200 + n, rtr=True, dlc=n))
        frames.append(classic(0x1ABCDF00 + n | CAN_EFF_FLAG, rtr=True, dlc=n))
    # Extremes of both id spaces.
    frames += [classic(0x000, b"\x00"), classic(0x7FF, b"\xff" * 8)]
    frames += [classic(0 | CAN_EFF_FLAG), classic(0x1FFFFFFF | CAN_EFF_FLAG, b"\xff" * 8)]
    return frames


def fd_frames():
    frames = []
    for n in FD_LENGTHS:
        frames.append(fd(0x300 + n, payload(n, n), flags=CANFD_BRS))
        frames.append(fd(0x1BCDEF00 + n | CAN_EFF_FLAG, payload(n, n + 80), flags=0))
    frames.append(fd(0x7FF, b"\xff" * 64, flags=CANFD_BRS | CANFD_ESI))
    return frames


def start_tunnel(daemons, vcan, port, mtu_a=72, mtu_b=72):
    a, b, p = vcan(mtu_a), vcan(mtu_b), port()
    daemons.server(a, p)
    daemons.client(b, p)
    wait_tunnel(a, b)
    return a, b


def test_classic_frames_every_length_both_directions(daemons, vcan, port):
    a, b = start_tunnel(daemons, vcan, port)
    transfer(a, b, classic_frames())
    transfer(b, a, classic_frames())


def test_fd_frames_every_length_both_directions(daemons, vcan, port):
    a, b = start_tunnel(daemons, vcan, port)
    transfer(a, b, fd_frames())
    transfer(b, a, fd_frames())


def test_mixed_classic_and_fd_frames_keep_their_order(daemons, vcan, port):
    a, b = start_tunnel(daemons, vcan, port)
    mixed = [f for pair in zip(classic_frames(), fd_frames()) for f in pair]
    transfer(a, b, mixed)
    transfer(b, a, mixed)


def test_classic_only_interfaces_on_both_ends(daemons, vcan, port):
    a, b = start_tunnel(daemons, vcan, port, mtu_a=CAN_MTU, mtu_b=CAN_MTU)
    transfer(a, b, classic_frames())
    transfer(b, a, classic_frames())


def test_fd_frame_toward_classic_client_interface_is_dropped(daemons, vcan, port):
    a, b = vcan(), vcan(CAN_MTU)
    p = port()
    server = daemons.server(a, p)
    client = daemons.client(b, p)
    wait_tunnel(a, b)
    with Bus(b) as far:
        with Bus(a) as near:
            near.send(fd(0x123, payload(12)))
            near.send(fd(0x124, payload(3)))
        extra = far.quiet()
        assert not extra, "an FD frame reached a classic-only bus"
    assert server.alive() and client.alive()
    # The connection stayed up: classic frames still flow both ways.
    transfer(a, b, [classic(0x125, payload(8))])
    transfer(b, a, [classic(0x126, payload(5))])


def test_fd_frame_toward_classic_server_interface_is_dropped(daemons, vcan, port, peers):
    a = vcan(CAN_MTU)
    server, peer = daemon_with_peer("server", daemons, peers, a, port())
    with Bus(a) as bus:
        peer.send_frame(fd(0x123, payload(64)))
        peer.send_frame(classic(0x124, payload(4)))
        got = bus.expect(1)
        assert shows(got) == shows([classic(0x124, payload(4))]), "expected only the classic frame"
        assert got == [classic(0x124, payload(4))]
    assert peer.is_open(), "server closed the connection after an FD frame for a classic bus"
    assert server.alive()
