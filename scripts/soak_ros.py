"""
Overload soak through the ROS master (issue 21): the camera at twice what the cluster sustains.

``cluster.launch.py`` for ``--duration`` seconds; run by scripts/soak_ros.sh (which builds the workspace).

1. capacity: the launch with the camera well above the cluster's pace, then again with the camera at
   twice that first estimate (a camera far too fast costs the cores the cluster runs on, so the first
   estimate is low); the output rate over the last ``--capacity-s`` seconds of the second run is what
   the cluster sustains;
2. soak: the launch again, the camera at 2x that; every ``stats`` message is kept, and the RSS of the
   master and slave processes is read from /proc every 5 s;
3. summary (``OUT/summary.json``): pass when every stats message accounts for every frame
   (``frames_out + frames_dropped + frames_pending == frames_in``), each process's RSS stays within
   ``--rss-band`` (10 %) of its value at minute 2 for the rest of the run, and the run was an overload
   indeed: the camera at least ``--min-overload`` (1.5) times the soak's own output rate (on a shared
   machine the cluster's pace drifts between the capacity run and the soak).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any

NODES = ("master", "slave0", "slave1")


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


def node_pid(ns: str, name: str) -> int | None:
    """The PID of the process ``ros2 launch`` started for node ``name`` in ``/ns``."""
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            argv = (d / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"__node:={name}".encode() in argv and f"__ns:=/{ns}".encode() in argv:
            return int(d.name)
    return None


class Stats:
    """Records the master's ``stats`` (JSON) on its own rclpy context."""

    def __init__(self, ns: str) -> None:
        import rclpy
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from std_msgs.msg import String

        self.context = Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("soak_watcher", namespace=f"/{ns}", context=self.context)
        self.messages: list[tuple[float, dict[str, Any]]] = []
        qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        self.node.create_subscription(String, "stats", self._on_stats, qos)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def _on_stats(self, msg: Any) -> None:
        rep = json.loads(msg.data)
        keep = ("frames_in", "frames_out", "frames_dropped", "frames_pending", "fps", "wall_seconds")
        self.messages.append((time.monotonic(), {k: rep.get(k) for k in keep}))

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        self.context.try_shutdown()


def params(path: Path, a: argparse.Namespace, rate: float) -> Path:
    path.write_text(
        f"""/**:
  ros__parameters:
    width: {a.width}
    height: {a.height}
    slaves_expected: {a.slaves}
    input_reliability: best_effort
    threads: 1
    source: {a.frames_dir}
    loop: true
    frames: 0
    rate: {rate}
    stats_period: 1.0
    publish_overlay: false
"""
    )
    return path


def launch(a: argparse.Namespace, ns: str, rate: float, log: Path) -> subprocess.Popen[bytes]:
    cmd = [
        "ros2",
        "launch",
        "dvs_cluster",
        "cluster.launch.py",
        f"slaves:={a.slaves}",
        f"namespace:={ns}",
        "camera_topic:=camera/image_raw",
        f"params_file:={params(Path(a.out) / f'params_{ns}.yaml', a, rate)}",
        f"cluster_id:=c{ns}",
    ]
    return subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def wait_output(st: Stats, proc: subprocess.Popen[bytes], timeout: float = 180.0) -> float:
    """Until the first frame is out; returns that time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if st.messages and (st.messages[-1][1]["frames_out"] or 0) > 0:
            return time.monotonic()
        if proc.poll() is not None:
            break
        time.sleep(0.5)
    raise SystemExit("no output from the cluster (see the launch log)")


def capacity(a: argparse.Namespace, rate: float) -> float:
    """Output fps with the camera at ``rate``."""
    ns = f"cap{uuid.uuid4().hex[:6]}"
    st = Stats(ns)
    proc = launch(a, ns, rate, Path(a.out) / f"capacity_launch_{rate:g}.log")
    try:
        wait_output(st, proc)
        time.sleep(a.capacity_s / 3)  # warm-up
        t0, n0 = st.messages[-1][0], st.messages[-1][1]["frames_out"]
        time.sleep(a.capacity_s)
        t1, n1 = st.messages[-1][0], st.messages[-1][1]["frames_out"]
    finally:
        stop(proc)
        st.close()
    return (n1 - n0) / (t1 - t0)


def soak(a: argparse.Namespace, rate: float) -> dict[str, Any]:
    ns = f"soak{uuid.uuid4().hex[:6]}"
    st = Stats(ns)
    proc = launch(a, ns, rate, Path(a.out) / "soak_launch.log")
    t_start = time.monotonic()
    rss: list[dict[str, float]] = []
    pids: dict[str, int] = {}
    try:
        wait_output(st, proc)
        while (now := time.monotonic()) < t_start + a.duration:
            for name in NODES[: 1 + a.slaves]:
                if name not in pids and (pid := node_pid(ns, name)) is not None:
                    pids[name] = pid
            rss.append({"t": round(now - t_start, 1), **{n: round(rss_mb(p), 1) for n, p in pids.items()}})
            if proc.poll() is not None:
                raise SystemExit("the launch ended during the soak (see soak_launch.log)")
            time.sleep(5.0)
        final = st.messages[-1][1]
    finally:
        stop(proc)
        st.close()
    return {"stats": [m for _, m in st.messages], "final": final, "rss": rss, "pids": pids}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="out/soak_ros")
    p.add_argument("--frames-dir", required=True)
    p.add_argument("--duration", type=float, default=600.0)
    p.add_argument("--capacity-s", type=float, default=60.0)
    p.add_argument("--probe-rate", type=float, default=30.0, help="camera rate while measuring capacity")
    p.add_argument("--slaves", type=int, default=2)
    p.add_argument("--width", type=int, default=1024)
    p.add_argument("--height", type=int, default=512)
    p.add_argument("--rss-band", type=float, default=0.10)
    p.add_argument("--min-overload", type=float, default=1.5)
    a = p.parse_args()
    Path(a.out).mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("ROS_DOMAIN_ID", str(150 + os.getpid() % 80))
    os.environ.setdefault("ROS_LOCALHOST_ONLY", "1")
    first = capacity(a, a.probe_rate)
    cap = capacity(a, round(2.0 * first, 2))
    rate = round(2.0 * cap, 2)
    print(f"cluster sustains {cap:.2f} fps (ROS master); soak: camera at {rate} fps for {a.duration:g} s")
    run = soak(a, rate)
    final = run["final"]
    accounted = [
        m["frames_out"] + m["frames_dropped"] + m["frames_pending"] == m["frames_in"] for m in run["stats"]
    ]
    rss = run["rss"]
    ref = next((s for s in rss if s["t"] >= 120.0), None)
    band: dict[str, dict[str, float]] = {}
    ok_rss = ref is not None
    if ref is not None:
        for name in (k for k in ref if k != "t"):
            later = [s[name] for s in rss if s["t"] >= ref["t"] and name in s]
            lo, hi = min(later), max(later)
            dev = max(abs(lo - ref[name]), abs(hi - ref[name])) / ref[name]
            band[name] = {
                "at_2min": ref[name],
                "min": lo,
                "max": hi,
                "end": later[-1],
                "max_dev_pct": round(100 * dev, 2),
            }
            ok_rss = ok_rss and dev <= a.rss_band
    out_fps = [m["fps"] for m in run["stats"] if m.get("fps")]
    overload = rate / out_fps[-1] if out_fps else 0.0
    summary = {
        "capacity_fps": round(cap, 3),
        "capacity_first_estimate_fps": round(first, 3),
        "camera_fps": rate,
        "duration_s": a.duration,
        "size": f"{a.width}x{a.height}",
        "slaves": a.slaves,
        "final_stats": final,
        "output_fps_final": out_fps[-1] if out_fps else None,
        "overload": round(overload, 2),  # camera rate / output rate during the soak
        "stats_messages": len(run["stats"]),
        "stats_messages_accounted": sum(accounted),
        "rss_mb": band,
        "rss_reference": ref,
        "pass": bool(accounted) and all(accounted) and ok_rss and overload >= a.min_overload,
    }
    (Path(a.out) / "summary.json").write_text(json.dumps(summary, indent=2))
    (Path(a.out) / "run.json").write_text(json.dumps(run, indent=1))
    print(json.dumps(summary, indent=2))
    return 0 if summary["pass"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
