"""
The ROS master under a camera far faster than its cluster: the camera callback and the master thread
run at once for several seconds, and output must keep coming with every frame accounted for.

The node is built in process (its own rclpy context); its camera callback ``_on_image`` is driven from a
thread of the test at a high rate, as the executor would, while two in-process slaves (fake models)
answer over the ROS transport. A short GIL switch interval makes the threads interleave often, so state
the callback and the master thread share unsynchronised (before issue 21: a dict of headers iterated by
one and grown by the other, a drop counter both wrote) shows up as a dead master thread or a broken count.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

W, H = 256, 128
PUSH_SECONDS = 6.0


@contextmanager
def _master_node(ns: str, cluster: str) -> Iterator[Any]:
    import rclpy
    from rclpy.context import Context
    from rclpy.executors import MultiThreadedExecutor
    from rclpy.parameter import Parameter

    from dvs_cluster.ros.master_node import MasterRos
    from dvs_cluster.transport.ros import spin

    context = Context()
    rclpy.init(context=context)
    overrides = [
        Parameter("cluster_id", value=cluster),
        Parameter("width", value=W),
        Parameter("height", value=H),
        Parameter("slaves_expected", value=2),
        Parameter("wait_timeout", value=30.0),
        Parameter("max_queued_frames", value=2),
        Parameter("status_period", value=0.2),
        Parameter("publish_overlay", value=False),
        Parameter("use_cv_bridge", value=False),
    ]
    node = MasterRos("master", context=context, namespace=ns, parameter_overrides=overrides)
    executor = MultiThreadedExecutor(num_threads=4, context=context)
    executor.add_node(node)
    thread = threading.Thread(target=spin, args=(executor, context), daemon=True)
    thread.start()
    try:
        yield node
    finally:
        node.close()
        executor.shutdown(timeout_sec=1.0)
        node.destroy_node()
        context.try_shutdown()
        thread.join(timeout=5.0)


@contextmanager
def _slaves(ns: str, cluster: str, names: tuple[str, ...]) -> Iterator[None]:
    from fake_models import FakeModels

    from dvs_cluster.nodes.slave import SlaveNode
    from dvs_cluster.transport.ros import standalone

    stop = threading.Event()
    transports = [standalone(n, ns) for n in names]
    pairs = list(zip(names, transports, strict=True))
    nodes = [SlaveNode(n, t, FakeModels(), cluster_id=cluster) for n, t in pairs]
    threads = [threading.Thread(target=n.run, args=(stop,), daemon=True) for n in nodes]
    for th in threads:
        th.start()
    try:
        yield
    finally:
        stop.set()
        for th in threads:
            th.join(timeout=5.0)
        for node, transport in zip(nodes, transports, strict=True):
            node.close()
            transport.close()


def _image(i: int) -> Any:
    from sensor_msgs.msg import Image

    msg = Image(height=H, width=W, encoding="rgb8", is_bigendian=0, step=3 * W)
    msg.data.frombytes(np.full((H, W, 3), i % 251, np.uint8).tobytes())
    msg.header.stamp.sec = 1_700_000_000 + i // 1000
    msg.header.stamp.nanosec = (i % 1000) * 1_000_000 + 7  # not representable as a float second
    msg.header.frame_id = "race_cam"
    return msg


def _wait(cond: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return bool(cond())


def test_camera_callback_and_master_thread_at_a_high_rate() -> None:
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from std_msgs.msg import String

    ns = f"/race{uuid.uuid4().hex[:6]}"
    cluster = f"c{uuid.uuid4().hex[:8]}"
    images = [_image(i) for i in range(64)]
    old_interval = sys.getswitchinterval()
    stats: list[dict[str, Any]] = []  # the master's own snapshots (made on its thread: consistent)
    with _slaves(ns, cluster, ("s0", "s1")), _master_node(ns, cluster) as node:
        qos = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)
        node.create_subscription(String, "stats", lambda msg: stats.append(json.loads(msg.data)), qos)
        assert _wait(lambda: node._camera_sub is not None, 60.0), "the master never saw both slaves"
        m = node.master
        alive = node._thread
        pushed = 0
        out_per_second: list[int] = []
        sys.setswitchinterval(1e-5)  # interleave the two threads often
        try:
            t0 = time.monotonic()
            next_sample = t0 + 1.0
            while (now := time.monotonic()) < t0 + PUSH_SECONDS:
                msg = images[pushed % len(images)]
                msg.header.stamp.sec = 1_700_000_000 + pushed // 1000
                msg.header.stamp.nanosec = (pushed % 1000) * 1_000_000 + 7
                node._on_image(msg)  # as the executor calls it: one call at a time
                pushed += 1
                if now >= next_sample:
                    out_per_second.append(m.frames_out)
                    next_sample += 1.0
                time.sleep(0.0005)
        finally:
            sys.setswitchinterval(old_interval)
        assert alive.is_alive(), "the master thread died under the camera"
        gains = np.diff([0, *out_per_second])
        assert len(gains) >= PUSH_SECONDS - 1 and all(g > 0 for g in gains), out_per_second  # kept coming
        # The stream stops: whatever was pushed comes out or is counted dropped (the last heartbeats).
        settled = _wait(
            lambda: bool(stats) and stats[-1]["frames_in"] == pushed and not stats[-1]["frames_pending"], 30.0
        )
        assert settled, (
            pushed,
            stats[-1:] and {k: v for k, v in stats[-1].items() if k.startswith("frames")},
        )
    assert pushed > 1000, pushed  # a high rate: far above what two slaves serve
    keys = ("frames_in", "frames_out", "frames_dropped", "frames_pending")
    seen = [tuple(st[k] for k in keys) for st in stats]
    assert len(seen) >= 10
    # At every heartbeat during the race, every frame pushed so far was out, dropped or still pending.
    bad = [c for c in seen if c[1] + c[2] + c[3] != c[0]]
    assert not bad, bad[:5]
    frames_in, frames_out, frames_dropped, _ = seen[-1]
    assert frames_in == pushed and frames_out > 0 and frames_dropped > 0, seen[-1]
