"""`make demo` must start even when port 8080 is taken: it falls back to a free port."""

from __future__ import annotations

import socket

from courier.demo.run import free_port


def test_a_free_wanted_port_is_kept_and_a_busy_one_replaced() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        wanted = probe.getsockname()[1]
    assert free_port("127.0.0.1", wanted) == wanted
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", wanted))
        busy.listen()
        other = free_port("127.0.0.1", wanted)
    assert other != wanted and other > 0
