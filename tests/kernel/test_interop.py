"""Wire compatibility with the Python reference tcpcan 0.0.2, in both roles."""

import pytest

from conftest import CAN_EFF_FLAG, CANFD_BRS, classic, fd, payload, transfer, wait_tunnel

FRAMES = [
    classic(0x123, payload(8)),
    classic(0x18FEF100 | CAN_EFF_FLAG, payload(3)),
    classic(0x321, rtr=True, dlc=2),
    classic(0x000),
    fd(0x456, payload(64), flags=CANFD_BRS),
    fd(0x1ABCDEF | CAN_EFF_FLAG, payload(12), flags=0),
]


@pytest.mark.parametrize(
    "server_impl, client_impl",
    [("ours", "ref"), ("ref", "ours")],
    ids=["our-server-reference-client", "reference-server-our-client"],
)
def test_interop_with_reference(daemons, vcan, port, server_impl, client_impl):
    a, b, p = vcan(), vcan(), port()
    daemons.server(a, p, impl=server_impl)
    daemons.client(b, p, impl=client_impl)
    wait_tunnel(a, b)
    transfer(a, b, FRAMES)
    transfer(b, a, FRAMES)
