"""One server, three clients: every bus hears every other bus, none hears itself twice."""

import time

from conftest import CAN_EFF_FLAG, QUIET, Bus, classic, fd, payload, shows, wait_tunnel


def test_three_clients_share_one_server(daemons, vcan, port):
    server_bus, p = vcan(), port()
    daemons.server(server_bus, p)
    client_buses = [vcan() for _ in range(3)]
    for bus in client_buses:
        daemons.client(bus, p)
    for bus in client_buses:
        wait_tunnel(server_bus, bus)

    everyone = [server_bus] + client_buses
    for i, origin in enumerate(everyone):
        frames = [classic(0x100 + i, payload(8, i)), fd(0x1000 + i | CAN_EFF_FLAG, payload(20, i))]
        listeners = {name: Bus(name) for name in everyone}
        try:
            with Bus(origin) as sender:
                sender.send_all(frames)
            for name, bus in listeners.items():
                got = bus.recv_n(len(frames), 2.0)
                assert shows(got) == shows(frames), "frames from %s seen on %s" % (origin, name)
                assert got == frames
            # The origin bus sees the frames once (the sender's own loopback);
            # a second copy would mean the tunnel echoed them back.
            time.sleep(QUIET)
            for name, bus in listeners.items():
                extra = bus.drain()
                assert not extra, "frames from %s seen again on %s: %s" % (origin, name, shows(extra))
        finally:
            for bus in listeners.values():
                bus.close()
