"""testing.splice: the proxies' zero-copy relay moves every byte, in order, with slow ends."""

from __future__ import annotations

import os
import socket
import threading
import time

import pytest

from intake_helio.testing.splice import Splicer, splicer

pytestmark = pytest.mark.skipif(not hasattr(os, "splice"), reason="os.splice is Linux-only")


def _pair(timeout: float) -> tuple[socket.socket, socket.socket]:
    listener = socket.create_server(("127.0.0.1", 0))
    with listener:
        a = socket.create_connection(listener.getsockname())
        b, _ = listener.accept()
    for s in (a, b):
        s.settimeout(timeout)  # non-blocking underneath, as the proxies' sockets are
    return a, b


def test_splicer_relays_every_byte_between_slow_ends():
    payload = os.urandom(3 * 2**20 + 12345)
    up_w, up_r = _pair(10)  # upstream: written by a slow writer
    down_w, down_r = _pair(10)  # downstream: read by a slow reader
    received = bytearray()

    def write_slowly():
        for i in range(0, len(payload), 256 * 1024):
            up_w.sendall(payload[i : i + 256 * 1024])
            time.sleep(0.005)
        up_w.shutdown(socket.SHUT_WR)

    def read_slowly():
        while chunk := down_r.recv(100_000):
            received.extend(chunk)
            time.sleep(0.001)

    threads = [threading.Thread(target=write_slowly), threading.Thread(target=read_slowly)]
    for t in threads:
        t.start()
    moved = 0
    with splicer(10) as mover:
        assert isinstance(mover, Splicer) and mover.capacity >= 1 << 16
        while n := mover.move(up_r, down_w, 700_000):
            assert 0 < n <= min(700_000, mover.capacity)
            moved += n
    down_w.shutdown(socket.SHUT_WR)
    for t in threads:
        t.join(30)
    for s in (up_w, up_r, down_w, down_r):
        s.close()
    assert moved == len(payload)
    assert bytes(received) == payload


def test_a_silent_upstream_times_out():
    up_w, up_r = _pair(10)
    down_w, down_r = _pair(10)
    with splicer(0.2) as mover, pytest.raises(TimeoutError, match="0.2 s"):
        mover.move(up_r, down_w, 1000)
    for s in (up_w, up_r, down_w, down_r):
        s.close()
