"""
The master serving a pushed stream (a camera on another thread) through its one loop and one inbox.

In process over :class:`~dvs_cluster.transport.loopback.LoopbackTransport` with fake models, so it runs
in seconds and without ROS; ``test/ros/test_master_race.py`` drives the ROS node's camera callback the
same way.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
from fake_models import FakeModels

from dvs_cluster.io.sources import Frame, FrameTransform
from dvs_cluster.nodes.inbox import FRAME, RESULT, Inbox
from dvs_cluster.nodes.master import MasterConfig, MasterNode
from dvs_cluster.nodes.slave import SlaveNode
from dvs_cluster.transport.loopback import LoopbackTransport

W, H = 256, 128


def _frame(i: int, tf: FrameTransform, image: np.ndarray) -> Frame:
    return Frame(i, image, None, 1000.0 + i / 100.0, tf, image, frame_id="cam", stamp_ns=10**12 + i)


class _Collect:
    def __init__(self) -> None:
        self.frames: list[Frame] = []

    def write(self, frame: Frame, labels: np.ndarray) -> None:
        self.frames.append(frame)

    def close(self) -> None:
        return None


def test_inbox_lanes_are_bounded_and_counted() -> None:
    box = Inbox(size=2, frames=1)
    assert box.put(RESULT, "k", b"1") and box.put(RESULT, "k", b"2")
    assert not box.put(RESULT, "k", b"3")  # results lane full
    assert box.put(FRAME, "", "f0")  # the camera still gets in
    assert not box.put(FRAME, "", "f1")
    assert box.refused() == 1 and box.refused(FRAME) == 1 and len(box) == 3
    assert [box.get()[2] for _ in range(3)] == [b"1", b"2", "f0"]  # type: ignore[index]
    assert box.get(0.01) is None and box.frames_waiting() == 0


def test_pushed_stream_from_another_thread_is_served_and_accounted() -> None:
    """A camera thread pushing faster than the cluster: output keeps coming, every frame accounted."""
    bus = LoopbackTransport()
    beats: list[dict[str, Any]] = []
    master = MasterNode(
        bus,
        MasterConfig(
            cluster_id="live", width=W, height=H, max_queued_frames=2, status_period_s=0.2, keep_trace=False
        ),
        heartbeat=lambda m: beats.append(m.report()),
    )
    slave = SlaveNode("s0", bus, FakeModels(), cluster_id="live")
    stop, stop_slave = threading.Event(), threading.Event()
    threads = [threading.Thread(target=slave.run, args=(stop_slave,), daemon=True)]
    sink = _Collect()
    reports: list[dict[str, Any]] = []
    threads.append(
        threading.Thread(target=lambda: reports.append(master.run(None, [sink], stop=stop)), daemon=True)
    )
    for th in threads:
        th.start()
    tf = FrameTransform(W, H, W, H, "letterbox")
    image = np.zeros((H, W, 3), np.uint8)
    pushed = refused = 0
    out_at: list[int] = []
    t_end = time.monotonic() + 3.0
    while time.monotonic() < t_end:
        if not master.push(_frame(pushed, tf, image)):
            refused += 1
        pushed += 1
        time.sleep(0.001)
        if pushed % 200 == 0:
            out_at.append(len(sink.frames))
    time.sleep(1.0)  # the master takes what is waiting
    stop.set()
    threads[1].join(timeout=10)
    stop_slave.set()
    threads[0].join(timeout=10)
    slave.close()
    master.close()
    assert reports, "the master's loop did not return"
    rep = reports[0]
    assert rep["frames_in"] == pushed  # every push is in: taken by the master, or refused and dropped
    assert rep["frames_out"] + rep["frames_dropped"] + rep["frames_pending"] == rep["frames_in"]
    assert rep["frames_dropped"] > 0 and master.frames_refused == refused
    assert out_at[-1] > out_at[len(out_at) // 2] > 0, out_at  # output kept coming to the end
    seqs = [f.index for f in sink.frames]
    assert seqs == sorted(set(seqs))
    assert all(f.frame_id == "cam" and f.stamp_ns == 10**12 + f.index for f in sink.frames)
    assert len(beats) >= 5 and beats[-1]["wall_seconds"] > 2.0  # the housekeeping ran in live mode


def test_live_mode_housekeeping_gives_up_without_slaves() -> None:
    """The lost-slave rule runs in the pushed-stream loop too (it never did in the old ``poll``)."""
    bus = LoopbackTransport()
    master = MasterNode(
        bus, MasterConfig(cluster_id="lost", width=W, height=H, lost_s=0.3, status_period_s=0)
    )
    token = bus.declare_liveliness(master.keys.alive_slave("s0"))
    assert master.wait_for_slaves(1, 1.0)
    tf = FrameTransform(W, H, W, H, "letterbox")
    master.push(_frame(0, tf, np.zeros((H, W, 3), np.uint8)))
    token.close()  # the only slave leaves with the frame open
    stop = threading.Event()
    timer = threading.Timer(5.0, stop.set)
    timer.start()
    rep = master.run(None, stop=stop)
    timer.cancel()
    master.close()
    assert rep["aborted"] == "no slave alive for 0.3 s"
    assert rep["frames_in"] == 1 and rep["frames_dropped"] == 1 and rep["frames_out"] == 0
