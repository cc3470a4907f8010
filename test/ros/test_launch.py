"""
``ros2 launch dvs_cluster cluster.launch.py`` for real: camera -> master -> 2 slaves -> segmentation.

A pytest that runs ``ros2 launch`` (and ``ros2 run``) as subprocesses and watches the topics with its own
rclpy node, so it checks what a user sees: every camera frame comes out as mono8 with the camera's
stamp and frame_id, both slaves worked, and bad parameters stop a node at start-up naming the parameter.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

FRAMES = 10
W, H = 512, 256


def _start(cmd: list[str], log: Path) -> subprocess.Popen[bytes]:
    out = log.open("wb")
    return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def _stop(proc: subprocess.Popen[bytes], grace: float = 20.0) -> None:
    """Ctrl-C as a terminal sends it: SIGINT to the whole process group (launch and every node)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


class Watcher:
    """A test node on its own context that records the cluster's outputs."""

    def __init__(self, ns: str) -> None:
        import rclpy
        from rcl_interfaces.msg import Log
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image
        from std_msgs.msg import String

        self.context = Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("watcher", namespace=ns, context=self.context)
        qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        self.camera: list[Any] = []
        self.seg: list[Any] = []
        self.color: list[Any] = []
        self.stats: list[dict[str, Any]] = []
        self.rosout: list[Any] = []
        self.node.create_subscription(Image, "camera/image_raw", lambda m: self.camera.append(m.header), qos)
        self.node.create_subscription(Image, "segmentation", self.seg.append, qos)
        self.node.create_subscription(Image, "segmentation_color", self.color.append, qos)
        self.node.create_subscription(String, "stats", lambda m: self.stats.append(json.loads(m.data)), qos)
        self.node.create_subscription(Log, "/rosout", self.rosout.append, QoSProfile(depth=1000))
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def close(self) -> None:
        # Jazzy's Executor.shutdown does not wait for the spinning thread: join it before destroying the
        # node under it (a thread left in a wait set kills the test process at exit with SIGABRT).
        self.executor.shutdown(timeout_sec=1.0)
        self.thread.join(timeout=5.0)
        self.node.destroy_node()
        self.context.try_shutdown()


def _params(tmp: Path, models: Path, extra: str = "", frames: int = FRAMES) -> Path:
    p = tmp / "params.yaml"
    p.write_text(
        f"""/**:
  ros__parameters:
    width: {W}
    height: {H}
    slaves_expected: 2
    input_reliability: best_effort
    models: {models}
    threads: 1
    source: synthetic
    rate: 4.0
    frames: {frames}
    wait_for_subscribers: 2   # the master and this test's watcher
{extra}"""
    )
    return p


def _node_pids(ns: str, name: str) -> list[int]:
    """PIDs of the processes ``ros2 launch`` started for node ``name`` in namespace ``ns``."""
    pids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            argv = (d / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"__node:={name}".encode() in argv and f"__ns:=/{ns}".encode() in argv:
            pids.append(int(d.name))
    return pids


def _wait(cond: Any, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> bool:
    """Poll ``cond`` until true, ``timeout`` passes, or ``proc`` (the launch) has exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        if proc is not None and proc.poll() is not None:
            return bool(cond())
        time.sleep(0.1)
    return bool(cond())


def _died(log: Path) -> bool:
    """A node of the launch exited before the end (launch keeps the others running)."""
    return "process has died" in log.read_text(errors="replace")


def _check_clean_exit(log: Path, nodes: int) -> None:
    """After Ctrl-C every node finished cleanly (token withdrawn, transport closed): no traceback, no kill."""
    text = log.read_text(errors="replace")
    assert text.count("process has finished cleanly") == nodes, text[-3000:]
    assert "Traceback" not in text and "failed to terminate" not in text, text[-3000:]


def _check_outputs(w: Watcher, log: Path, slaves: tuple[str, ...]) -> None:
    text = log.read_text(errors="replace")
    assert len(w.seg) == FRAMES, f"{len(w.seg)} of {FRAMES} frames came out\n{text[-3000:]}"
    assert len(w.camera) == FRAMES
    cam = [(h.stamp.sec, h.stamp.nanosec, h.frame_id) for h in w.camera]
    seg = [(m.header.stamp.sec, m.header.stamp.nanosec, m.header.frame_id) for m in w.seg]
    assert seg == cam, "segmentation must carry the camera's stamps and frame_id, in order"
    assert all(f == "camera" for _, _, f in seg)
    for m in w.seg:
        assert (m.encoding, m.width, m.height, m.step) == ("mono8", W, H, W)
        values = set(bytes(m.data))
        assert values <= set(range(19)) | {255}, sorted(values)[:10]
    assert _wait(lambda: len(w.color) == FRAMES, 10.0)
    assert all(m.encoding == "rgb8" and m.step == 3 * W for m in w.color)
    assert _wait(lambda: bool(w.stats) and w.stats[-1]["frames_out"] == FRAMES, 10.0)
    per_slave = w.stats[-1]["per_slave"]
    for s in slaves:
        assert per_slave.get(s, {}).get("regions", 0) > 0, f"slave {s} did no work: {per_slave}"
    assert sum(v["regions"] for v in per_slave.values()) == 4 * FRAMES


def test_cluster_launch_two_slaves(tmp_path: Path, models_dir: Path) -> None:
    """cluster.launch.py, 2 slaves + camera, in a namespace: every frame, stamps, frame_id, both slaves."""
    ns = f"t{uuid.uuid4().hex[:6]}"
    w = Watcher(f"/{ns}")
    log = tmp_path / "launch.log"
    proc = _start(
        [
            "ros2",
            "launch",
            "dvs_cluster",
            "cluster.launch.py",
            "slaves:=2",
            f"namespace:={ns}",
            "camera_topic:=camera/image_raw",
            f"params_file:={_params(tmp_path, models_dir)}",
            f"cluster_id:=c{ns}",
        ],
        log,
    )
    try:
        _wait(lambda: len(w.seg) >= FRAMES or _died(log), 120.0, proc)
        _check_outputs(w, log, ("slave0", "slave1"))
    finally:
        _stop(proc)
        w.close()
    _check_clean_exit(log, 4)


def test_mixed_cluster_launch(tmp_path: Path, models_dir: Path) -> None:
    """The master on ros,zenoh: one ROS slave from the launch file and one `dvs-cluster slave` on Zenoh."""
    pytest.importorskip("zenoh")
    from cluster_support import free_port

    ns = f"t{uuid.uuid4().hex[:6]}"
    cluster = f"c{ns}"
    endpoint = f"tcp/127.0.0.1:{free_port()}"
    w = Watcher(f"/{ns}")
    params = _params(tmp_path, models_dir, f"    zenoh_listen: {endpoint}\n")
    zlog = tmp_path / "zenoh_slave.log"
    zslave = _start(
        [
            sys.executable,
            "-m",
            "dvs_cluster.cli",
            "slave",
            "--name",
            "zslave",
            "--cluster",
            cluster,
            "--connect",
            endpoint,
            "--models",
            str(models_dir),
            "--threads",
            "1",
        ],
        zlog,
    )
    log = tmp_path / "launch.log"
    proc = _start(
        [
            "ros2",
            "launch",
            "dvs_cluster",
            "cluster.launch.py",
            "slaves:=1",
            f"namespace:={ns}",
            "camera_topic:=camera/image_raw",
            f"params_file:={params}",
            f"cluster_id:={cluster}",
            "master_transport:=ros,zenoh",
        ],
        log,
    )
    try:
        _wait(lambda: len(w.seg) >= FRAMES or _died(log), 120.0, proc)
        _check_outputs(w, log, ("slave0", "zslave"))
    finally:
        _stop(proc)
        _stop(zslave)
        w.close()
    _check_clean_exit(log, 3)
    assert zslave.returncode == 0, zlog.read_text()[-2000:]


def test_slave_kill_is_logged_on_rosout(tmp_path: Path, models_dir: Path) -> None:
    """kill -9 of a slave: the master's "slave ... gone; ... re-queued" reaches /rosout as a WARN."""
    ns = f"t{uuid.uuid4().hex[:6]}"
    w = Watcher(f"/{ns}")
    log = tmp_path / "launch.log"
    frames = 80  # 20 s of camera: the kill lands mid-stream
    proc = _start(
        [
            "ros2",
            "launch",
            "dvs_cluster",
            "cluster.launch.py",
            "slaves:=2",
            f"namespace:={ns}",
            "camera_topic:=camera/image_raw",
            f"params_file:={_params(tmp_path, models_dir, frames=frames)}",
            f"cluster_id:=c{ns}",
        ],
        log,
    )

    def gone() -> list[Any]:
        return [
            m
            for m in list(w.rosout)
            if m.name == f"{ns}.master" and "slave slave1 gone" in m.msg and "re-queued" in m.msg
        ]

    try:
        assert _wait(lambda: len(w.seg) >= 3 or _died(log), 120.0, proc), log.read_text()[-3000:]
        pids = _node_pids(ns, "slave1")
        assert len(pids) == 1, pids
        os.kill(pids[0], signal.SIGKILL)
        out_at_kill = len(w.seg)
        # DDS notices a killed participant when its lease ends (cyclonedds: 10 s).
        assert _wait(lambda: bool(gone()), 60.0, proc), [m.msg for m in w.rosout if "master" in m.name][-20:]
        assert gone()[0].level == 30  # WARN, the level the Python record had
        assert _wait(lambda: len(w.seg) > out_at_kill + 4, 60.0, proc)  # slave0 carries on alone
    finally:
        _stop(proc)
        w.close()
    text = log.read_text(errors="replace")
    assert text.count("process has finished cleanly") == 3, text[-3000:]  # camera, master, slave0


@pytest.mark.parametrize(
    ("executable", "param", "value"),
    [
        ("master", "rows", "99"),
        ("master", "threshold", "150.0"),
        ("master", "threshold", "-5.0"),
        ("master", "slaves_expected", "0"),
        ("master", "policy", "bogus"),
        ("master", "region_order", "lifo"),
        ("slave", "threads", "-1"),
        ("slave", "cluster_id", "bad-name"),
        ("slave", "providers", "[warp_drive]"),
        ("camera", "rate", "0.0"),
    ],
)
def test_bad_parameter_refused_at_startup(executable: str, param: str, value: str, models_dir: Path) -> None:
    """`ros2 run dvs_cluster <node> --ros-args -p name:=bad` exits 2 with one line naming the parameter."""
    cmd = ["ros2", "run", "dvs_cluster", executable, "--ros-args", "-p", f"{param}:={value}"]
    if executable == "slave" and param != "models":
        cmd += ["-p", f"models:={models_dir}"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, (r.returncode, r.stdout[-2000:], r.stderr[-2000:])
    assert f"parameter '{param}'" in r.stderr, r.stderr[-2000:]
    assert "Traceback" not in r.stderr


def test_bad_parameter_in_launch_params_file(tmp_path: Path, models_dir: Path) -> None:
    """The same through cluster.launch.py: the master dies at start-up, the log names the parameter."""
    params = _params(tmp_path, models_dir, "    max_in_flight: 0\n")
    r = subprocess.run(
        [
            "ros2",
            "launch",
            "dvs_cluster",
            "cluster.launch.py",
            "slaves:=0",
            "camera:=false",
            f"params_file:={params}",
        ],
        capture_output=True,
        text=True,
        timeout=90,
    )
    out = r.stdout + r.stderr
    assert "parameter 'max_in_flight'" in out, out[-3000:]
    assert "exit code 2" in out, out[-3000:]


def test_camera_ctrl_c_while_publishing_exits_cleanly(tmp_path: Path) -> None:
    """
    Ctrl-C lands while the camera is publishing to a subscriber: exit 0, never SIGSEGV.

    CI saw the camera die with SIGSEGV on Ctrl-C on Jazzy: rclpy's signal handler shut the context down
    from its own thread while the node was being destroyed (``run_node`` now owns the signals and cleans
    up once). ``ros2 run`` forwards the group's SIGINT, so the node gets it twice, as under ``ros2 launch``.
    A fast camera with a live subscriber puts a publish in flight at the signal; six rounds at
    different phases of its cycle.
    """
    codes: list[int | str] = []
    for i in range(6):
        ns = f"t{uuid.uuid4().hex[:8]}"
        w = Watcher(ns)
        log = tmp_path / f"camera{i}.log"
        cmd = ["ros2", "run", "dvs_cluster", "camera", "--ros-args", "-r", f"__ns:=/{ns}"]
        cmd += ["-r", "image:=camera/image_raw", "-p", "rate:=60.0", "-p", "wait_for_subscribers:=1"]
        proc = _start(cmd, log)
        try:
            assert _wait(lambda w=w: len(w.camera) >= 5, 30.0, proc), log.read_text(errors="replace")[-2000:]
            time.sleep(0.011 * i)  # a different phase of the publishing cycle each round
            os.killpg(proc.pid, signal.SIGINT)
            try:
                codes.append(proc.wait(timeout=20))
            except subprocess.TimeoutExpired:
                codes.append("hung")
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            w.close()
        assert "Traceback" not in log.read_text(errors="replace"), log.read_text(errors="replace")[-2000:]
    assert codes == [0] * 6, codes
