"""
One contract for every transport backend (:mod:`dvs_cluster.transport.registry`), run over each of them.

The nodes rely on exactly these properties: ``*`` matches one key chunk (the master's ``status/*`` and
``alive/slave/*``), a liveliness watch reports the tokens alive before it started (a master that
starts after its slaves), a token's end is reported, payloads arrive as the bytes sent, and closing a
handle or a transport twice (or a handle after its transport) is harmless. Each case opens two nodes
that see each other through ``transport.open``; the ``ros`` case needs the ROS 2 rig and runs in the
``ros`` group (scripts/ros_test.sh).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from dvs_cluster import transport
from dvs_cluster.transport.base import ClusterKeys, Transport
from dvs_cluster.transport.messages import Status, encode_status

Pair = tuple[Transport, Transport]


@contextmanager
def _loopback() -> Iterator[Pair]:
    from dvs_cluster.transport.loopback import LoopbackBus

    bus = LoopbackBus()
    a = transport.open("loopback", loopback={"bus": bus})
    with a, transport.open("loopback", loopback={"bus": bus}) as b:
        yield a, b


@contextmanager
def _zenoh() -> Iterator[Pair]:
    pytest.importorskip("zenoh")
    from cluster_support import free_port

    endpoint = f"tcp/127.0.0.1:{free_port()}"
    a = transport.open("zenoh", zenoh={"listen": [endpoint], "multicast": False})
    with a, transport.open("zenoh", zenoh={"connect": [endpoint], "multicast": False}) as b:
        yield a, b


@contextmanager
def _multi() -> Iterator[Pair]:
    """A node on loopback and zenoh at once (a master bridging two kinds of slaves), a loopback peer."""
    pytest.importorskip("zenoh")
    from dvs_cluster.transport.loopback import LoopbackBus

    bus = LoopbackBus()
    a = transport.open("loopback,zenoh", loopback={"bus": bus}, zenoh={"multicast": False})
    with a, transport.open("loopback", loopback={"bus": bus}) as b:
        yield a, b


@contextmanager
def _ros() -> Iterator[Pair]:
    pytest.importorskip("rclpy", reason="needs the ROS 2 rig: scripts/ros_test.sh")
    ns = f"/contract_{uuid.uuid4().hex[:6]}"
    a = transport.open("ros", ros={"name": "node_a", "namespace": ns})
    with a, transport.open("ros", ros={"name": "node_b", "namespace": ns}) as b:
        yield a, b


BACKENDS: dict[str, Callable[[], Any]] = {
    "loopback": _loopback,
    "zenoh": _zenoh,
    "multi": _multi,
    "ros": _ros,
}


@pytest.fixture(
    params=[
        "loopback",
        "zenoh",
        "multi",
        pytest.param("ros", marks=pytest.mark.ros),
    ]
)
def pair(request: pytest.FixtureRequest) -> Iterator[Pair]:
    with BACKENDS[request.param]() as p:
        yield p


def _wait(cond: Callable[[], bool], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return cond()


def _keys() -> ClusterKeys:
    return ClusterKeys(f"k{uuid.uuid4().hex[:8]}")  # ROS names: no leading digit, no '-'


def _status(keys: ClusterKeys, slave: str, n: int) -> bytes:
    return bytes(encode_status(Status(cluster_id=keys.cluster_id, slave_id=slave, incarnation=f"i{n}")))


def test_every_backend_is_registered() -> None:
    assert {"zenoh", "ros", "loopback"} <= set(transport.names())
    with pytest.raises(ValueError, match="known: "):
        transport.open("carrier_pigeon")
    with pytest.raises(ValueError, match="twice"):
        transport.open("loopback,loopback")


def test_wildcard_matches_one_chunk(pair: Pair) -> None:
    a, b = pair
    keys = _keys()
    got: list[tuple[str, bytes]] = []
    b.subscribe(keys.status_all, lambda k, p: got.append((k, p)))
    wanted = {keys.status("s1"): _status(keys, "s1", 1), keys.status("s2"): _status(keys, "s2", 2)}
    others = {keys.result: _status(keys, "x", 3), f"{keys.status('s1')}/deeper": _status(keys, "x", 4)}

    def all_arrived() -> bool:  # publish until discovery has matched (ROS, Zenoh); then once more is harmless
        for key, payload in {**wanted, **others}.items():
            a.publish(key, payload)
        return set(wanted.items()) <= set(got)

    assert _wait(all_arrived), got[-4:]
    assert {k for k, _ in got} <= set(wanted), "a key outside status/* (or deeper than one chunk) matched"


def test_liveliness_history_and_end(pair: Pair) -> None:
    a, b = pair
    keys = _keys()
    token = a.declare_liveliness(keys.alive_slave("early"))
    events: list[tuple[str, bool]] = []
    time.sleep(0.3)  # the token is there before the watch starts
    b.watch_liveliness(keys.alive_slaves, lambda k, alive: events.append((k, alive)))
    assert _wait(lambda: (keys.alive_slave("early"), True) in events), events
    late = a.declare_liveliness(keys.alive_slave("late"))
    assert _wait(lambda: (keys.alive_slave("late"), True) in events), events
    token.close()
    assert _wait(lambda: (keys.alive_slave("early"), False) in events), events
    assert (keys.alive_slave("late"), False) not in events
    late.close()
    assert _wait(lambda: (keys.alive_slave("late"), False) in events), events
    assert all(k.startswith(f"{keys.prefix}/alive/slave/") for k, _ in events)


def test_close_is_idempotent(pair: Pair) -> None:
    a, b = pair
    keys = _keys()
    handles = [
        b.subscribe(keys.result, lambda k, p: None),
        b.watch_liveliness(keys.alive_slaves, lambda k, alive: None),
        a.declare_liveliness(keys.alive_slave("s")),
    ]
    for h in handles:
        h.close()
        h.close()
    late = a.declare_liveliness(keys.alive_slave("t"))  # left open: closing the transport withdraws it
    for t in (a, b):
        t.close()
        t.close()
        with pytest.raises(RuntimeError):
            t.publish(keys.result, _status(keys, "s", 0))
    for h in [*handles, late]:
        h.close()  # after the transport is gone: harmless
