"""The ROS 2 transport: graph liveliness, wildcard subscriptions, and whole clusters over it (in process)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from dvs_cluster.transport.base import ClusterKeys, Transport


def _wait(cond: Callable[[], bool], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


@contextmanager
def _ros(name: str, namespace: str) -> Iterator[Transport]:
    from dvs_cluster.transport.ros import standalone

    t = standalone(name, namespace)
    try:
        yield t
    finally:
        t.close()


def _cluster() -> ClusterKeys:
    return ClusterKeys(f"c{uuid.uuid4().hex[:8]}")


def test_keys_must_be_ros_names() -> None:
    from dvs_cluster.transport.ros import check_ros_key

    assert check_ros_key("dvs_cluster/c1/status/*")
    with pytest.raises(ValueError, match="run-1"):
        check_ros_key("dvs_cluster/run-1/result")


def test_liveliness_and_wildcard_subscription() -> None:
    keys = _cluster()
    events: list[tuple[str, bool]] = []
    got: list[tuple[str, bytes]] = []
    with _ros("watcher", "/t_live") as a, _ros("worker", "/t_live") as b:
        a.watch_liveliness(keys.alive_slaves, lambda k, alive: events.append((k, alive)))
        a.subscribe(keys.status_all, lambda k, p: got.append((k, p)))
        token = b.declare_liveliness(keys.alive_slave("s1"))
        assert _wait(lambda: (keys.alive_slave("s1"), True) in events), events
        from dvs_cluster.transport import messages as m

        payload = bytes(m.encode_status(m.Status(cluster_id=keys.cluster_id, slave_id="s1", incarnation="i")))

        def delivered() -> bool:
            b.publish(keys.status("s1"), payload)
            return any(p == payload for _, p in got)

        assert _wait(delivered), "no heartbeat through the wildcard subscription"
        assert got[0][0] == keys.status("s1")
        token.close()
        assert _wait(lambda: (keys.alive_slave("s1"), False) in events), events


def test_zero_length_payload_does_not_deafen_a_subscriber() -> None:
    """rcl refuses to take an empty raw message; the subscription must keep serving after it."""
    keys = _cluster()
    got: list[bytes] = []
    with _ros("listener", "/t_empty") as a, _ros("talker", "/t_empty") as b:
        a.subscribe(keys.task("s0"), lambda k, p: got.append(bytes(p)))

        def delivered(payload: bytes) -> bool:
            b.publish(keys.task("s0"), payload)
            return any(g.startswith(payload) for g in got)  # DDS may pad to a multiple of 4 bytes

        assert _wait(lambda: delivered(b"\x00\x01\x00\x00first"))
        for _ in range(3):
            b.publish(keys.task("s0"), b"")  # each one fails inside rclpy's executor
        assert _wait(lambda: delivered(b"\x00\x01\x00\x00after the empty ones")), got[-3:]


def _run_cluster(
    master_t: Transport,
    slaves: dict[str, Transport],
    cluster: str,
    frames: int = 6,
    on_ready: Callable[[], None] | None = None,
    timeout_s: float = 30.0,
) -> Any:
    from fake_models import FakeModels

    from dvs_cluster.io.sources import open_source
    from dvs_cluster.nodes.master import MasterConfig, MasterNode
    from dvs_cluster.nodes.slave import SlaveNode

    stop = threading.Event()
    nodes = [SlaveNode(n, t, FakeModels(), cluster_id=cluster) for n, t in slaves.items()]
    threads = [threading.Thread(target=n.run, args=(stop,), daemon=True) for n in nodes]
    for th in threads:
        th.start()
    cfg = MasterConfig(cluster_id=cluster, width=256, height=128, timeout_s=timeout_s)
    master = MasterNode(master_t, cfg)
    try:
        assert master.wait_for_slaves(len(slaves), 30.0), f"slaves alive: {sorted(master.wm.slaves)}"
        if on_ready is not None:
            on_ready()
        with open_source("synthetic", 256, 128, frames=frames) as src:
            return master.run(src, max_frames=frames)
    finally:
        stop.set()
        for th in threads:
            th.join(timeout=5)
        for n in nodes:
            n.close()
        master.close()


def test_cluster_over_ros() -> None:
    keys = _cluster()
    with _ros("master", "/t_cluster") as mt, _ros("s0", "/t_cluster") as t0, _ros("s1", "/t_cluster") as t1:
        rep = _run_cluster(mt, {"s0": t0, "s1": t1}, keys.cluster_id)
    assert rep["frames_out"] == 6 and rep["frames_dropped"] == 0
    assert all(rep["per_slave"][s]["regions"] > 0 for s in ("s0", "s1")), rep["per_slave"]
    assert rep["malformed"]["master"] == 0


def test_mixed_cluster_ros_and_zenoh() -> None:
    """A master on both transports serves a ROS slave and a Zenoh slave at once."""
    pytest.importorskip("zenoh")
    from cluster_support import free_port

    from dvs_cluster.transport.multi import MultiTransport
    from dvs_cluster.transport.zenoh import ZenohTransport

    keys = _cluster()
    endpoint = f"tcp/127.0.0.1:{free_port()}"
    with _ros("master", "/t_mixed") as mr, _ros("rs", "/t_mixed") as rs:
        mz = ZenohTransport(listen=[endpoint], multicast=False)
        zs = ZenohTransport(connect=[endpoint], multicast=False)
        try:
            rep = _run_cluster(
                MultiTransport([mr, mz]), {"ros_slave": rs, "zenoh_slave": zs}, keys.cluster_id
            )
        finally:
            zs.close()
            mz.close()
    assert rep["frames_out"] == 6
    assert rep["per_slave"]["ros_slave"]["regions"] > 0, rep["per_slave"]
    assert rep["per_slave"]["zenoh_slave"]["regions"] > 0, rep["per_slave"]


@pytest.mark.chaos
def test_fuzz_on_ros_topics_cluster_keeps_going() -> None:
    """Seeded garbage on every cluster topic the nodes read (raw CDR bytes): counted, nothing lost."""
    from dvs_cluster.nodes.fuzz import fuzz_bus

    keys = _cluster()
    with (
        _ros("master", "/t_fuzz") as mt,
        _ros("s0", "/t_fuzz") as t0,
        _ros("s1", "/t_fuzz") as t1,
        _ros("fuzzer", "/t_fuzz") as ft,
    ):
        sent: list[int] = []
        fuzzer = threading.Thread(
            target=lambda: sent.append(
                fuzz_bus(ft, keys.cluster_id, ["s0", "s1"], 600, seed=5, rate=150).total
            ),
            daemon=True,
        )
        # A flood can overwrite a task in a reader's keep-last history: a short timeout re-dispatches it.
        rep = _run_cluster(
            mt, {"s0": t0, "s1": t1}, keys.cluster_id, frames=60, on_ready=fuzzer.start, timeout_s=2.0
        )
        fuzzer.join(timeout=60)
    assert sent == [600]
    assert rep["frames_out"] + rep["frames_dropped"] == rep["frames_in"] == 60
    assert rep["frames_out"] == 60 and rep["aborted"] is None
    assert rep["malformed"]["master"] + rep["malformed"]["foreign"] > 0
