import socket

import pytest


def test_a_connection_to_a_non_loopback_address_fails_loudly():
    with socket.socket() as s, pytest.raises(RuntimeError, match="only connect to loopback"):
        s.connect(("192.0.2.1", 443))


def test_a_connection_to_loopback_is_allowed():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        with socket.socket() as client:
            client.connect(server.getsockname())
