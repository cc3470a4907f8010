"""
Costs the simulator runs on, measured from the real components: serialiser, master steps, transport.

Compute-time samples of the nets come from :class:`~dvs_cluster.sim.oracle.ModelOracle` (the real
models, one pinned core). Everything here is timed on the real code paths too: message sizes and
(de)serialisation times from ``transport.messages`` on region-sized arrays, the master's per-frame
steps (split, assemble, score) on a real frame, scheduler bookkeeping with the real
``WorkloadManager``, and Zenoh publish cost and delivery delay between two real sessions on loopback.
Other frame sizes are derived by :meth:`Costs.scaled` (times in proportion to pixels, sizes
re-measured from the serialiser), which is an approximation and says so.

Messages are timed **paced**: each encode, decode and publish :data:`PACE_GAP_S` after the one
before, as a node meets them in a run. A node wakes for a message (the master for a result, a slave
for a task) and the code it runs first after a wait is several times slower on the machine of
BENCHMARKS.md than back to back (a result decode: 25 us back to back, 98 us after 20 ms idle;
``scripts/idle_gap.py``). Timed back to back, the simulated master took 1.8 ms per 1+1 frame where
the real one takes 4 ms, and predictions where it shares a core with a slave came out up to 17 % fast.
The master's own steps (split, assemble, score, keys, scheduling) stay back to back: they run in the
same wake-up after the messages, and charging each of them a whole cold start of its own would bill
one wake-up several times over.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from dvs_cluster.core.classes import NUM_CLASSES
from dvs_cluster.core.processor import logit_grid
from dvs_cluster.core.regions import RegionGrid
from dvs_cluster.sim.oracle import QUANTS

#: Seconds of idle before each timed encode, decode and publish: about one slave's region time here
#: (20-25 ms), the gap between results a 1+1 master waits.
PACE_GAP_S = 0.02

#: Message kinds: task with/without a forwarded key, seg result, flow result (labels only, or + logits).
TASK = "task"
RESULT_FLOW = "result:flow"


def task_kind(key_quant: str | None) -> str:
    """Kind name of a task (``None``: no key attached)."""
    return TASK if key_quant is None else f"task+key:{key_quant}"


def result_kind(seg: bool, quant: str, flow_logits: bool = False) -> str:
    """Kind name of a result; flow results carry logits only in the paper's variant."""
    if seg:
        return f"result:seg:{quant}"
    return f"result:flow+logits:{quant}" if flow_logits else RESULT_FLOW


@dataclass
class Costs:
    """Measured costs for one frame size and grid (times in ms)."""

    width: int
    height: int
    rows: int
    cols: int
    #: Slave compute samples per stage: flow, dn, seg, warp, labels.
    stage_ms: dict[str, list[float]]
    #: Master: per frame split / assembly / metrics; per task schedule; per seg result keys.
    master_ms: dict[str, float]
    #: Per message kind: bytes, encode_ms, decode_ms.
    codec: dict[str, dict[str, float]]
    #: Transport: publish_ms (fixed) + publish_ms_per_mb; delivery latency_ms + size / mb_per_s.
    link: dict[str, float]
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Costs:
        """Inverse of :meth:`to_dict`."""
        return cls(**d)

    def stage_mean(self, stage: str) -> float:
        """Mean ms of a stage (0 when never sampled)."""
        s = self.stage_ms.get(stage) or [0.0]
        return float(statistics.fmean(s))

    def summary(self) -> dict[str, Any]:
        """Means only (for reports)."""
        return {
            "stage_ms_mean": {k: round(self.stage_mean(k), 3) for k in self.stage_ms},
            "stage_samples": {k: len(v) for k, v in self.stage_ms.items()},
            "master_ms": {k: round(v, 4) for k, v in self.master_ms.items()},
            "bytes": {k: int(v["bytes"]) for k, v in self.codec.items()},
            "link": self.link,
        }

    def scaled(self, width: int, height: int) -> Costs:
        """
        The same costs at another frame size (same grid).

        ASSUMPTION: compute and per-pixel CPU steps scale with pixels; message sizes are re-measured
        from the serialiser; encode/decode times scale with bytes.
        """
        if (width, height) == (self.width, self.height):
            return self
        f = (width * height) / (self.width * self.height)
        sizes = message_sizes(width, height, self.rows, self.cols)
        codec = {}
        for k, v in self.codec.items():
            b = sizes.get(k, v["bytes"] * f)
            r = b / v["bytes"] if v["bytes"] else f
            codec[k] = {"bytes": b, "encode_ms": v["encode_ms"] * r, "decode_ms": v["decode_ms"] * r}
        per_pixel = ("split", "assembly", "metrics", "keys")
        return Costs(
            width,
            height,
            self.rows,
            self.cols,
            {k: [x * f for x in v] for k, v in self.stage_ms.items()},
            {k: v * f if k in per_pixel else v for k, v in self.master_ms.items()},
            codec,
            dict(self.link),
            [*self.notes, f"scaled from {self.width}x{self.height} by pixels (x{f:.3g})"],
        )


def _region_arrays(width: int, height: int, rows: int, cols: int, seed: int = 0) -> dict[str, Any]:
    grid = RegionGrid(width, height, rows, cols)
    r = grid.regions[0]
    h, w = r.height, r.width
    gh, gw = logit_grid(h, w)
    rng = np.random.default_rng(seed)
    return {
        "image": rng.integers(0, 256, (h, w, 3), dtype=np.uint8),
        "labels": rng.integers(0, NUM_CLASSES, (h, w), dtype=np.uint8),
        "logits": (rng.standard_normal((NUM_CLASSES, gh, gw)) * 4).astype(np.float32),
        "rect": (r.px0, r.py0, w, h),
        "regions": len(grid),
    }


def _messages(width: int, height: int, rows: int, cols: int) -> dict[str, tuple[Callable[[], Any], Any]]:
    """Kind -> (encode thunk, decoder) with the real serialiser on region-sized arrays."""
    from dvs_cluster.transport import messages as m

    a = _region_arrays(width, height, rows, cols)
    img, logits, labels = a["image"], a["logits"], a["labels"]

    def task(key: m.KeyPayload | None, q: str) -> Callable[[], Any]:
        t = m.Task("bench", "slave0", 7, 0, a["regions"], a["rect"], img, 90.0, run_id="r", key=key)
        return lambda: m.encode_task(t, q)

    def result(seg: bool, with_logits: bool, q: str) -> Callable[[], Any]:
        res = m.Result(
            "bench",
            "slave0",
            7,
            0,
            m.PATH_SEG if seg else m.PATH_FLOW,
            95.0,
            6,
            labels,
            logits if with_logits else None,
            run_id="r",
        )
        return lambda: m.encode_result(res, q)

    out: dict[str, tuple[Callable[[], Any], Any]] = {TASK: (task(None, "float32"), m.decode_task)}
    key = m.KeyPayload(6, img, logits)
    for q in QUANTS:
        out[task_kind(q)] = (task(key, q), m.decode_task)
        out[result_kind(True, q)] = (result(True, True, q), m.decode_result)
        out[result_kind(False, q, True)] = (result(False, True, q), m.decode_result)
    out[RESULT_FLOW] = (result(False, False, "float32"), m.decode_result)
    return out


def message_sizes(width: int, height: int, rows: int = 2, cols: int = 2) -> dict[str, float]:
    """Bytes of every message kind at this frame size, from the real serialiser."""
    return {k: float(len(enc())) for k, (enc, _) in _messages(width, height, rows, cols).items()}


def _median_ms(fn: Callable[[], Any], reps: int, gap_s: float = 0.0) -> float:
    """
    Lower-quartile CPU time of the calling thread over ``reps`` calls, each ``gap_s`` after the last.

    CPU time, so waiting for a shared core does not count; the lower quartile, because what other jobs
    still add (a busy SMT sibling, a hypervisor's steal) only ever makes a call slower.
    """
    fn()
    times = []
    for _ in range(reps):
        if gap_s:
            time.sleep(gap_s)
        t0 = time.thread_time()
        fn()
        times.append((time.thread_time() - t0) * 1000.0)
    return float(np.percentile(times, 25))


def measure_codec(
    width: int, height: int, rows: int, cols: int, reps: int = 7, gap_s: float = PACE_GAP_S
) -> dict[str, dict[str, float]]:
    """Size and encode/decode time (``gap_s`` apart) of every message kind."""
    out = {}
    for kind, (enc, dec) in _messages(width, height, rows, cols).items():
        data = bytes(enc())
        out[kind] = {
            "bytes": float(len(data)),
            "encode_ms": _median_ms(enc, reps, gap_s),
            "decode_ms": _median_ms(lambda d=data, f=dec: f(d), reps, gap_s),  # type: ignore[misc]
        }
    return out


def measure_master(
    width: int,
    height: int,
    rows: int,
    cols: int,
    reps: int = 7,
    image: np.ndarray | None = None,
    labels: np.ndarray | None = None,
) -> dict[str, float]:
    """
    The master's own steps: split, assemble, score (metrics), keys, scheduling.

    On a real frame and its ground truth when given (scoring speed depends on the label maps), else on
    random data.
    """
    from dvs_cluster.core.keys import KeyBuffer, KeyFrame
    from dvs_cluster.core.metrics import ConfusionMatrix
    from dvs_cluster.core.scheduler import WorkloadManager

    grid = RegionGrid(width, height, rows, cols)
    rng = np.random.default_rng(1)
    frame = image if image is not None else rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    gt = labels if labels is not None else rng.integers(0, NUM_CLASSES, (height, width), dtype=np.uint8)
    parts = [np.ascontiguousarray(p) for p in grid.split(gt)]
    a = _region_arrays(width, height, rows, cols)
    kb = KeyBuffer(len(grid))
    cm = ConfusionMatrix()

    def split() -> None:
        [np.ascontiguousarray(c, dtype=np.uint8) for c in grid.split(frame)]

    def keys() -> None:
        kb.put(0, KeyFrame(len(kb._keys), a["image"], a["logits"]))

    def schedule() -> None:
        wm = WorkloadManager(len(grid), max_in_flight=2)
        for s in range(4):
            wm.add_slave(f"s{s}")
        for seq in range(4):
            wm.submit(seq)
            while (d := wm.next_dispatch(0.0)) is not None:
                wm.complete(d.slave, d.job.sequence, d.job.region, d.job.region == 0)

    n_tasks = 4 * len(grid)
    return {
        "split": _median_ms(split, reps),
        "assembly": _median_ms(lambda: grid.assemble_labels(parts), reps),
        "metrics": _median_ms(lambda: cm.update(gt, gt), reps),
        "keys": _median_ms(keys, reps),
        "schedule": _median_ms(schedule, reps) / n_tasks,
    }


def _echo_main(endpoint: str, key_in: str, key_out: str, core: int | None) -> None:
    """Child side of :func:`measure_link`: echo every payload back, through a queue like a slave."""
    import os
    import queue

    from dvs_cluster.transport.zenoh import ZenohTransport

    if core is not None:
        os.sched_setaffinity(0, {core})
    t = ZenohTransport("peer", [], [endpoint], False)
    inbox: queue.Queue[bytes] = queue.Queue()
    h = t.subscribe(key_in, lambda k, p: inbox.put(p))
    try:
        while True:
            payload = inbox.get()
            if len(payload) == 1:  # stop
                break
            t.publish(key_out, payload)
    finally:
        h.close()
        t.close()


def _probe_main(
    endpoint: str, tag: str, core: int | None, sizes: list[int], reps: int, gap_s: float = PACE_GAP_S
) -> None:
    """Master side of :func:`measure_link`, in its own pinned process; prints the samples as JSON."""
    import json
    import queue

    from dvs_cluster.transport.zenoh import ZenohTransport

    if core is not None:
        os.sched_setaffinity(0, {core})  # before the session: Zenoh's threads share the core, as in a run
    t = ZenohTransport("peer", [endpoint], [], False)
    inbox: queue.Queue[tuple[float, int]] = queue.Queue()
    h = t.subscribe(f"{tag}/back", lambda k, p: inbox.put((time.perf_counter(), len(p))))
    out: dict[str, list[float]] = {"x": [], "pub": [], "rtt": [], "declare": []}
    try:
        t0 = time.perf_counter()
        t.publish(f"{tag}/first", bytes(16))  # first put on a key declares its publisher
        out["declare"].append((time.perf_counter() - t0) * 1000.0)
        deadline = time.monotonic() + 20.0
        while time.monotonic() < deadline:  # until the echo is connected and subscribed
            t.publish(f"{tag}/out", bytes(16))
            try:
                inbox.get(timeout=0.2)
                break
            except queue.Empty:
                continue
        time.sleep(0.2)
        while not inbox.empty():
            inbox.get()
        for size in sizes:
            payload = bytes(size)
            for i in range(reps + 2):
                time.sleep(gap_s)
                t0 = time.perf_counter()
                t.publish(f"{tag}/out", payload)
                t1 = time.perf_counter()
                try:
                    t_back, n = inbox.get(timeout=2.0)
                except queue.Empty:
                    continue
                if i >= 2 and n == size:
                    out["x"].append(size / 1e6)
                    out["pub"].append((t1 - t0) * 1000.0)
                    out["rtt"].append((t_back - t0) * 1000.0)
        t.publish(f"{tag}/out", b"x")
    finally:
        h.close()
        t.close()
    print(json.dumps(out))


def measure_link(
    sizes: tuple[int, ...] = (1_000, 100_000, 400_000, 800_000),
    reps: int = 10,
    cores: tuple[int | None, int | None] = (None, None),
    gap_s: float = PACE_GAP_S,
) -> dict[str, float]:
    """
    Zenoh between two processes on loopback, the way master and slave talk: round trips of real sizes.

    Both ends are processes pinned (with their Zenoh threads) to the cores a run would use. The echo
    answers from its main thread (callback -> queue -> publish, as the slave does), so a round trip
    holds two deliveries and four thread hand-offs. Fitted as one-way ``latency_ms + size / mb_per_s``,
    plus the publish call's own cost ``publish_ms + publish_ms_per_mb * size``; each round trip starts
    ``gap_s`` after the last one ended.
    """
    import json
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ep = f"tcp/127.0.0.1:{port}"
    tag = f"bench/link/{port}"
    probe = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from dvs_cluster.sim.costs import _probe_main; "
            f"_probe_main({ep!r}, {tag!r}, {cores[0]!r}, {list(sizes)!r}, {reps}, {gap_s!r})",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    echo = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from dvs_cluster.sim.costs import _echo_main; "
            f"_echo_main({ep!r}, {tag + '/out'!r}, {tag + '/back'!r}, {cores[1]!r})",
        ]
    )
    try:
        stdout, _ = probe.communicate(timeout=120)
        data = json.loads(stdout.strip().splitlines()[-1]) if stdout.strip() else {"x": []}
    except (subprocess.TimeoutExpired, ValueError, IndexError):
        probe.kill()
        probe.wait()
        data = {"x": []}
    finally:
        try:
            echo.wait(timeout=5)
        except subprocess.TimeoutExpired:
            echo.kill()
            echo.wait()
    if len(data["x"]) < 4:
        return {"publish_ms": 0.1, "publish_ms_per_mb": 0.0, "latency_ms": 0.2, "mb_per_s": 2000.0}
    x = np.asarray(data["x"])
    p0, p1 = _robust_line(x, np.asarray(data["pub"]))
    r0, r1 = _robust_line(x, np.asarray(data["rtt"]))
    # One way = half a round trip, less the echo's own publish call (booked on the slave in the model).
    one_way0 = max((r0 - p0) / 2.0, 0.0)
    one_way1 = max((r1 - p1) / 2.0, 1e-6)
    return {
        "publish_ms": max(p0, 0.0),
        "publish_ms_per_mb": max(p1, 0.0),
        "latency_ms": one_way0,
        "mb_per_s": 1000.0 / one_way1,
        "declare_ms": float(data.get("declare", [0.0])[0]),
    }


def _robust_line(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Intercept and slope through the per-size medians (scheduling noise makes means useless)."""
    ux = np.unique(x)
    my = np.array([np.median(y[x == v]) for v in ux])
    if len(ux) < 2:
        return float(my[0]), 0.0
    slope, icpt = np.polyfit(ux, my, 1)
    return float(icpt), float(slope)


def measure(
    width: int,
    height: int,
    rows: int,
    cols: int,
    stage_ms: dict[str, list[float]],
    link: bool = True,
    cores: tuple[int | None, int | None] = (None, None),
    image: np.ndarray | None = None,
    labels: np.ndarray | None = None,
) -> Costs:
    """All costs but the nets' (passed in from the oracle); ``cores``: pin the link test's two ends."""
    return Costs(
        width,
        height,
        rows,
        cols,
        {k: list(v) for k, v in stage_ms.items()},
        measure_master(width, height, rows, cols, image=image, labels=labels),
        measure_codec(width, height, rows, cols),
        measure_link(cores=cores)
        if link
        else {"publish_ms": 0.0, "publish_ms_per_mb": 0.0, "latency_ms": 0.0, "mb_per_s": 1e6},
    )
