"""The cluster for real: master and slave processes over Zenoh (TCP on loopback), synthetic source."""

from __future__ import annotations

import json
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from cluster_support import cli, free_port, model_dir

from dvs_cluster.core.metrics import ConfusionMatrix
from dvs_cluster.core.policy import make_policy, policy_spec
from dvs_cluster.core.processor import labels_from_logits
from dvs_cluster.core.regions import RegionGrid
from dvs_cluster.core.warp import warp
from dvs_cluster.transport.base import ClusterKeys
from dvs_cluster.transport.messages import (
    MessageError,
    decode_result,
    decode_status,
    encode_result,
    encode_task,
)
from dvs_cluster.transport.zenoh import ZenohTransport

pytestmark = pytest.mark.slow

W, H = 512, 256  # small frames: 256x128 regions keep the tests short
FRAMES = 8


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return model_dir(tmp_path_factory)


def threshold_args(models: Path) -> list[str]:
    # Random stand-in models score 0..80 on the synthetic video: 40 gives both paths.
    return ["--threshold", "40"] if "random_models" in str(models) else []


def run_cluster(models: Path, out: Path, slaves: int, *extra: str) -> tuple[dict[str, Any], dict[str, Any]]:
    args = ["run", "--slaves", str(slaves), "--models", str(models), "--frames", str(FRAMES)]
    args += ["--width", str(W), "--height", str(H), "--threads", "1"]
    args += ["--json", str(out / "report.json"), "--trace", str(out / "trace.json")]
    args += ["--save-labels", str(out / "labels"), *threshold_args(models), *extra]
    proc = cli(*args)
    assert proc.wait(timeout=240) == 0
    return json.loads((out / "report.json").read_text()), json.loads((out / "trace.json").read_text())


def single_reference(
    models: Path, frames: int, threshold: float | None, overlap: int = 0, propagate: bool = True
) -> Any:
    """Single's per-frame outcomes on the same frames (same models and threshold: the synthetic default)."""
    from dvs_cluster.bench import default_threshold
    from dvs_cluster.engine import SingleEngine
    from dvs_cluster.inference import OnnxModels
    from dvs_cluster.io.sources import open_source

    m = OnnxModels(models, intra_op_threads=1)
    th = default_threshold(m, synthetic=True) if threshold is None else threshold
    # the runtime's rule, key-age cap included (policy_spec adds the default cap)
    engine = SingleEngine(
        m, make_policy(policy_spec("dvsnet"), th), W, H, overlap=overlap, propagate=propagate
    )
    with open_source("synthetic", W, H, frames=frames) as src:
        return m, th, [(f, engine.process(f.image, f.index)) for f in src]


def read_labels(out: Path, index: int) -> np.ndarray:
    img = cv2.imread(str(out / "labels" / f"{index:06d}.png"), cv2.IMREAD_UNCHANGED)
    assert img is not None and img.shape == (H, W)
    return np.asarray(img)


def check_accounting(rep: dict[str, Any], trace: dict[str, Any], slaves: int) -> None:
    assert rep["frames_in"] == FRAMES
    assert rep["frames_out"] + rep["frames_dropped"] == rep["frames_in"]
    assert rep["frames_dropped"] == 0 and rep["frames_out"] == FRAMES
    assert trace["emitted"] == list(range(FRAMES))  # in order, none missing
    assert len(rep["per_slave"]) == slaves
    for name, s in rep["per_slave"].items():
        assert s["regions"] > 0, f"{name} did no work"
        assert s["seg"] + s["flow"] == s["regions"]
    assert sum(s["regions"] for s in rep["per_slave"].values()) == 4 * FRAMES
    for key in ("fps", "miou", "seg_fraction", "bytes_per_frame", "latency_ms"):
        assert key in rep
    assert rep["bytes_per_frame"]["master_to_slaves"] > 0 and rep["bytes_per_frame"]["slaves_to_master"] > 0
    for stage in ("split", "schedule", "serialize", "idle", "assembly"):
        assert stage in rep["latency_ms"]["master"]
    for stage in ("deserialize", "dn", "flow", "warp", "seg", "serialize_prev"):
        assert stage in rep["latency_ms"]["slave"]


@pytest.mark.parametrize("overlap", [0, 16])
def test_run_one_slave_equals_single(models: Path, tmp_path: Path, overlap: int) -> None:
    rep, trace = run_cluster(models, tmp_path, 1, "--overlap", str(overlap))
    check_accounting(rep, trace, 1)
    _, _, ref = single_reference(models, FRAMES, None if not threshold_args(models) else 40.0, overlap)
    # One slave, one task in flight: it sees the regions in Single's order with Single's keys.
    for frame, res in ref:
        assert np.array_equal(read_labels(tmp_path, frame.index), res.labels), frame.index
    paths = {(r["sequence"], r["region"]): (r["path"], r["key"]) for r in trace["regions"]}
    for frame, res in ref:
        for o in res.outcomes:
            key = frame.index if o.path == "seg" else o.key_timestep
            assert paths[(frame.index, o.region)] == (o.path, key)
    assert rep["miou"] is not None  # the synthetic source has ground truth


def test_run_two_slaves_matches_single_per_path_and_key(models: Path, tmp_path: Path) -> None:
    # DVSNet's own flow path (from the key): every flow step is recomputable from its key alone.
    rep, trace = run_cluster(models, tmp_path, 2, "--warp-from", "key")
    check_accounting(rep, trace, 2)
    m, th, ref = single_reference(
        models, FRAMES, None if not threshold_args(models) else 40.0, propagate=False
    )
    grid = RegionGrid(W, H)
    crops = {f.index: grid.split(f.image) for f, _ in ref}
    seg_logits = {(i, r): m.seg(c) for i, cs in crops.items() for r, c in enumerate(cs)}
    same = 0
    for r in trace["regions"]:
        seq, region, path, key = r["sequence"], r["region"], r["path"], r["key"]
        region_rect = grid.regions[region]
        got = read_labels(tmp_path, seq)[region_rect.core_slices]
        h, w = region_rect.height, region_rect.width
        # Recompute this region from its path and key with the same nets and the same warp.
        if path == "seg":
            want, _ = labels_from_logits(seg_logits[(seq, region)], h, w)
        else:
            assert key < seq
            flow, _ = m.flow(crops[key][region], crops[seq][region])
            want, _ = labels_from_logits(warp(seg_logits[(key, region)], flow), h, w)
        assert np.array_equal(got, want), (seq, region, path, key)
        o = ref[seq][1].outcomes[region]
        if o.path == path and (path == "seg" or o.key_timestep == key):
            same += 1
            assert np.array_equal(got, ref[seq][1].labels[region_rect.core_slices])
        if r["score"] < 0:  # no key on that slave yet
            assert path == "seg"
        else:
            assert (r["score"] < th) == (path == "seg")
    assert same > 0
    # A slave holds only the keys it computed and the ones the master forwarded to it: a flow step
    # from a key another slave computed proves forwarding happened. (With key affinity each region
    # may stay on one slave for all 8 frames, so forwarding itself is timing-dependent.)
    own = {(r["slave"], r["region"], r["sequence"]) for r in trace["regions"] if r["path"] == "seg"}
    borrowed = [
        r for r in trace["regions"] if r["path"] == "flow" and (r["slave"], r["region"], r["key"]) not in own
    ]
    if borrowed:
        assert rep["scheduler"]["forwarded_keys"] > 0, borrowed


def test_run_two_slaves_propagated_chains(models: Path, tmp_path: Path) -> None:
    """The default flow path (from each region's previous output) across two boards: every flow step
    warps a state no older than its key and the run stays close to Single (which never skips a frame)."""
    rep, trace = run_cluster(models, tmp_path, 2)
    check_accounting(rep, trace, 2)
    _, th, ref = single_reference(models, FRAMES, None if not threshold_args(models) else 40.0)
    conf = np.zeros((19, 19), np.int64)
    for frame, _ in ref:
        got, gt = read_labels(tmp_path, frame.index), frame.labels
        assert gt is not None
        m = gt != 255
        conf += np.bincount(gt[m].astype(np.int64) * 19 + got[m], minlength=361).reshape(19, 19)
    tp = np.diag(conf).astype(float)
    union = conf.sum(0) + conf.sum(1) - tp
    present = conf.sum(1) > 0
    miou = float(np.mean(tp[present] / np.maximum(union[present], 1)) * 100)
    assert miou == pytest.approx(rep["miou"], abs=0.01)
    single = ConfusionMatrix()
    for frame, res in ref:
        single.update(res.labels, frame.labels)
    assert abs(rep["miou"] - single.miou()) < 3.0, (rep["miou"], single.miou())
    for r in trace["regions"]:
        if r["path"] == "flow":
            assert r["key"] < r["sequence"]
    assert rep["region_steps"]["flow"] > 0


def test_run_three_slaves_strict_order_equals_single(models: Path, tmp_path: Path) -> None:
    # Strict region order: a region waits for the same region of the frame before, so with more slaves
    # than one every step still starts from the key one board would hold: Single's paths, keys, labels.
    # (With the key as the flow path's source: a propagated state stays on the board that made it.)
    rep, trace = run_cluster(models, tmp_path, 3, "--region-order", "strict", "--warp-from", "key")
    check_accounting(rep, trace, 3)
    assert rep["scheduler"]["region_order"] == "strict"
    th = None if not threshold_args(models) else 40.0
    _, _, ref = single_reference(models, FRAMES, th, propagate=False)
    paths = {(r["sequence"], r["region"]): (r["path"], r["key"]) for r in trace["regions"]}
    for frame, res in ref:
        assert np.array_equal(read_labels(tmp_path, frame.index), res.labels), frame.index
        for o in res.outcomes:
            key = frame.index if o.path == "seg" else o.key_timestep
            assert paths[(frame.index, o.region)] == (o.path, key)
    starts = sorted(trace["regions"], key=lambda r: r["t"])
    assert len({r["slave"] for r in starts}) == 3  # the work was spread, not run by one slave


# -- processes started one by one (fault tests) ---------------------------------------------------------


class Cluster:
    """A master and named slaves as separate processes, plus a test-side Zenoh session on the same bus."""

    def __init__(self, models: Path, out: Path, slaves: list[str], frames: int, *master_args: str) -> None:
        self.cluster = f"t{uuid.uuid4().hex[:8]}"
        self.keys = ClusterKeys(self.cluster)
        self.endpoint = f"tcp/127.0.0.1:{free_port()}"
        self.out = out
        common = ["--cluster", self.cluster, "--multicast", "off"]
        self.master = cli(
            "master", *common, "--listen", self.endpoint, "--slaves-expected", str(len(slaves)),
            "--frames", str(frames), "--width", str(W), "--height", str(H),
            "--json", str(out / "report.json"), "--trace", str(out / "trace.json"),
            *threshold_args(models), *master_args,
        )  # fmt: skip
        self.slaves = {
            name: cli("slave", "--name", name, *common, "--connect", self.endpoint, "--models", str(models),
                      "--threads", "1")
            for name in slaves
        }  # fmt: skip
        self.bus = ZenohTransport(connect=[self.endpoint], multicast=False)
        self.alive: set[str] = set()
        self.results = 0
        self.answers: list[tuple[str, int, int, int]] = []  # (slave, sequence, region, attempt)
        self.statuses: dict[str, Any] = {}
        self.bus.watch_liveliness(self.keys.alive_slaves, self._on_alive)
        self.bus.subscribe(self.keys.result, self._on_result)
        self.bus.subscribe(self.keys.status_all, self._on_status)

    def _on_alive(self, key: str, alive: bool) -> None:
        (self.alive.add if alive else self.alive.discard)(self.keys.last_chunk(key))

    def _on_result(self, key: str, payload: bytes) -> None:
        self.results += 1
        try:
            r = decode_result(payload)
        except MessageError:
            return
        self.answers.append((r.slave_id, r.sequence, r.region, r.attempt))

    def _on_status(self, key: str, payload: bytes) -> None:
        try:
            st = decode_status(payload)
        except MessageError:
            return  # our own garbage
        self.statuses[st.slave_id] = st

    def wait_for(self, what: Any, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not what():
            assert self.master.poll() is None or what(), "master exited early"
            assert time.monotonic() < deadline, "timed out"
            time.sleep(0.02)

    def finish(self, timeout: float = 240.0) -> tuple[dict[str, Any], dict[str, Any]]:
        assert self.master.wait(timeout=timeout) == 0
        rep = json.loads((self.out / "report.json").read_text())
        trace = json.loads((self.out / "trace.json").read_text())
        return rep, trace

    def close(self) -> None:
        for p in [self.master, *self.slaves.values()]:
            if p.poll() is None:
                p.send_signal(signal.SIGCONT)
                p.terminate()
        for p in [self.master, *self.slaves.values()]:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.bus.close()


@pytest.fixture
def cluster_factory(models: Path, tmp_path: Path) -> Iterator[Any]:
    made: list[Cluster] = []

    def make(slaves: list[str], frames: int, *master_args: str) -> Cluster:
        c = Cluster(models, tmp_path, slaves, frames, *master_args)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


def garbage(rng: np.random.Generator) -> list[bytes]:
    img = np.zeros((H // 2, W // 2, 3), np.uint8)
    from dvs_cluster.transport.messages import PATH_SEG, Result, Task

    task = bytes(encode_task(Task("x", "x", 1, 0, 4, (0, 0, W // 2, H // 2), img, 50.0)))
    res = bytes(encode_result(Result("x", "x", 1, 0, PATH_SEG, 1.0, 1, img[:, :, 0], None)))
    out = [b"", b"\x00\x01\x00\x00", task[: len(task) // 2], res[:100], res]  # res: seg path without logits
    out += [rng.integers(0, 256, int(n), dtype=np.uint8).tobytes() for n in (3, 100, 5000, 200000)]
    return out


def test_malformed_bytes_on_every_key_are_counted_and_dropped(cluster_factory: Any) -> None:
    frames = 40  # the master must still be running when the last garbage arrives
    c = cluster_factory(["s0", "s1"], frames)
    c.wait_for(lambda: c.alive == {"s0", "s1"})
    junk = garbage(np.random.default_rng(0))
    keys = [c.keys.task("s0"), c.keys.task("s1"), c.keys.result, c.keys.status("s0"), c.keys.status("s1")]
    c.wait_for(lambda: c.results >= 4)  # mid-run
    for payload in junk:
        for key in keys:
            c.bus.publish(key, payload)
    # Slaves report what they dropped in their heartbeats.
    c.wait_for(lambda: all(c.statuses.get(s) and c.statuses[s].malformed >= len(junk) for s in ("s0", "s1")))
    rep, trace = c.finish()
    assert rep["frames_out"] == frames and rep["frames_dropped"] == 0
    assert trace["emitted"] == list(range(frames))
    # Master: everything on the result key and both status keys (three keys' worth) was dropped.
    # (A garbage payload may even decode as a well-formed message of another cluster: dropped as foreign.)
    assert rep["malformed"]["master"] + rep["malformed"]["foreign"] >= 3 * len(junk)
    assert all(p.poll() is None for p in c.slaves.values()), "a slave died on garbage"
    assert all(c.statuses[s].malformed == len(junk) for s in ("s0", "s1"))


def test_slave_killed_mid_run_its_tasks_are_redispatched(cluster_factory: Any) -> None:
    frames = 16
    c = cluster_factory(["s0", "s1"], frames)
    c.wait_for(lambda: c.alive == {"s0", "s1"})
    c.wait_for(lambda: c.results >= 8)
    victim = c.slaves["s0"]
    victim.send_signal(signal.SIGSTOP)  # freeze it holding its task in flight...
    time.sleep(0.5)
    victim.kill()  # ...then kill it: liveliness drops, the master re-queues that task
    victim.wait()
    rep, trace = c.finish()
    assert rep["frames_out"] == frames and rep["frames_dropped"] == 0
    assert trace["emitted"] == list(range(frames))
    assert rep["scheduler"]["redispatched"] >= 1
    assert rep["per_slave"]["s0"]["regions"] > 0 and rep["per_slave"]["s1"]["regions"] > 0
    redone = [r for r in trace["regions"] if r["attempt"] >= 1]
    assert redone and all(r["slave"] == "s1" for r in redone)
    assert len({(r["sequence"], r["region"]) for r in trace["regions"]}) == 4 * frames


def test_hung_slave_times_out_and_late_answer_is_discarded(cluster_factory: Any) -> None:
    frames = 48  # long enough that the master is still running when the late answer comes
    c = cluster_factory(["s0", "s1"], frames, "--timeout", "1.0")
    c.wait_for(lambda: c.alive == {"s0", "s1"})
    c.wait_for(lambda: c.results >= 8)
    hung = c.slaves["s0"]
    hung.send_signal(signal.SIGSTOP)
    # The master gives up on s0's task after 1 s and hands it to s1 (attempt 1) ...
    c.wait_for(lambda: any(a[0] == "s1" and a[3] >= 1 for a in c.answers))
    redone = {(a[1], a[2]) for a in c.answers if a[3] >= 1}
    hung.send_signal(signal.SIGCONT)
    # ... and s0, resumed, answers the same task late (attempt 0): that answer must be discarded.
    c.wait_for(lambda: any(a[0] == "s0" and (a[1], a[2]) in redone for a in c.answers), timeout=30)
    rep, trace = c.finish()
    assert rep["frames_out"] == frames and rep["frames_dropped"] == 0
    assert trace["emitted"] == list(range(frames))
    assert rep["scheduler"]["redispatched"] >= 1
    assert rep["scheduler"]["duplicates"] + rep["scheduler"]["late_or_unknown"] >= 1
    assert (
        len({(r["sequence"], r["region"]) for r in trace["regions"]}) == len(trace["regions"]) == 4 * frames
    )
    assert rep["per_slave"]["s0"]["regions"] > 0


def test_camera_faster_than_cluster_drops_are_counted(models: Path, tmp_path: Path) -> None:
    frames = 24
    args = ["run", "--slaves", "1", "--models", str(models), "--frames", str(frames), "--preload"]
    args += ["--width", str(W), "--height", str(H), "--threads", "1", "--rate", "1000", "--queue", "2"]
    args += ["--json", str(tmp_path / "report.json"), "--trace", str(tmp_path / "trace.json")]
    assert cli(*args, *threshold_args(models)).wait(timeout=240) == 0
    rep = json.loads((tmp_path / "report.json").read_text())
    trace = json.loads((tmp_path / "trace.json").read_text())
    assert rep["frames_in"] == frames
    assert rep["frames_dropped"] > 0  # 1000 fps camera, bounded queue of 2 frames
    assert rep["frames_out"] + rep["frames_dropped"] == frames
    assert trace["emitted"] == sorted(trace["emitted"]) and len(trace["emitted"]) == rep["frames_out"]
    assert trace["emitted"][-1] == frames - 1  # newest frame wins: the last frame is never the one dropped


def test_prefetch_keeps_order_and_reraises_source_errors() -> None:
    from dvs_cluster.nodes.master import Prefetch

    assert list(Prefetch(range(50), depth=2)) == list(range(50))  # type: ignore[arg-type]

    def broken() -> Iterator[int]:
        yield 1
        raise RuntimeError("camera unplugged")

    it = iter(Prefetch(broken()))  # type: ignore[arg-type]
    assert next(it) == 1
    with pytest.raises(RuntimeError, match="unplugged"):
        next(it)
    p = Prefetch(iter(range(10**9)))  # type: ignore[arg-type]
    p.close()  # stops an endless source
