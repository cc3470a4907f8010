"""Chaos-test helpers: cluster processes started and killed one by one, a test-side bus, measurements."""

from __future__ import annotations

import json
import signal
import statistics
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from cluster_support import REPO, cli, free_port

from dvs_cluster.transport.base import ClusterKeys
from dvs_cluster.transport.messages import MessageError, Status, decode_result, decode_status
from dvs_cluster.transport.zenoh import ZenohTransport

W, H = 512, 256
RESULTS_JSON = REPO / "out" / "chaos" / "chaos.json"
_lock = threading.Lock()


def record(name: str, data: dict[str, Any]) -> None:
    """Add one scenario's figures to out/chaos/chaos.json (for the note) and print them."""
    print(f"CHAOS {name}: {json.dumps(data, sort_keys=True)}")
    with _lock:
        RESULTS_JSON.parent.mkdir(parents=True, exist_ok=True)
        old = json.loads(RESULTS_JSON.read_text()) if RESULTS_JSON.exists() else {}
        old[name] = data
        RESULTS_JSON.write_text(json.dumps(old, indent=2, sort_keys=True))


def frames_dir(out: Path, unique: int = 40, total: int = 300) -> Path:
    """
    Pre-rendered synthetic frames as PNGs (``unique`` rendered, repeated up to ``total`` by links).

    Rendering synthetic frames live costs ~0.1 s each on a loaded 2-core box: slower than the 20 fps
    camera the chaos runs emulate, so the source, not the fault, would set the pace.
    """
    import cv2

    from dvs_cluster.io.sources import open_source

    uniq, frames = out / "unique", out / "frames"
    uniq.mkdir(parents=True, exist_ok=True)
    frames.mkdir(parents=True, exist_ok=True)
    with open_source("synthetic", W, H, frames=unique) as src:
        for f in src:
            cv2.imwrite(str(uniq / f"{f.index:04d}.png"), cv2.cvtColor(f.image, cv2.COLOR_RGB2BGR))
    for i in range(total):
        (frames / f"{i:05d}.png").symlink_to(uniq / f"{i % unique:04d}.png")
    return frames


def threshold_args(models: Path) -> list[str]:
    return ["--threshold", "40"] if "random_models" in str(models) else []


class Chaos:
    """
    One cluster id and endpoint; masters and slaves started by name; a test-side Zenoh session that
    sees liveliness, results (with their arrival time) and the master heartbeat.
    """

    def __init__(
        self,
        models: Path,
        out: Path,
        source: Path,
        cluster: str | None = None,
        endpoint: str | None = None,
        shared: bool = False,
    ) -> None:
        self.models = models
        self.source = source
        self.out = out
        self.cluster = cluster or f"c{uuid.uuid4().hex[:8]}"
        self.keys = ClusterKeys(self.cluster)
        self.endpoint = endpoint or f"tcp/127.0.0.1:{free_port()}"
        self.shared = shared  # the endpoint belongs to another cluster's master: connect, never listen
        self.common = ["--cluster", self.cluster, "--multicast", "off"]
        self.masters: dict[str, subprocess.Popen[bytes]] = {}
        self.slaves: dict[str, subprocess.Popen[bytes]] = {}
        self.t0 = time.monotonic()
        self.alive: set[str] = set()
        self.alive_log: list[tuple[float, str, bool]] = []
        self.answers: list[
            tuple[float, str, int, int, int, str]
        ] = []  # (t, slave, seq, region, attempt, run)
        self.master_status: list[tuple[float, dict[str, Any]]] = []
        self.statuses: dict[str, Status] = {}
        self.bus = ZenohTransport(connect=[self.endpoint], multicast=False)
        self.bus.watch_liveliness(self.keys.alive_slaves, self._on_alive)
        self.bus.subscribe(self.keys.result, self._on_result)
        self.bus.subscribe(self.keys.master_status, self._on_master_status)
        self.bus.subscribe(self.keys.status_all, self._on_status)

    def now(self) -> float:
        return time.monotonic() - self.t0

    def _on_alive(self, key: str, alive: bool) -> None:
        name = self.keys.last_chunk(key)
        (self.alive.add if alive else self.alive.discard)(name)
        self.alive_log.append((self.now(), name, alive))

    def _on_result(self, key: str, payload: bytes) -> None:
        try:
            r = decode_result(payload)
        except MessageError:
            return
        self.answers.append((self.now(), r.slave_id, r.sequence, r.region, r.attempt, r.run_id))

    def _on_status(self, key: str, payload: bytes) -> None:
        try:
            st = decode_status(payload)
        except MessageError:
            return
        self.statuses[st.slave_id] = st

    def _on_master_status(self, key: str, payload: bytes) -> None:
        try:
            self.master_status.append((self.now(), json.loads(payload)))
        except ValueError:
            return

    def start_master(self, name: str, frames: int, expected: int, *extra: str) -> subprocess.Popen[bytes]:
        where = ["--connect", self.endpoint] if self.shared else ["--listen", self.endpoint]
        p = cli(
            "master", *self.common, *where, "--slaves-expected", str(expected), "--frames", str(frames),
            "--width", str(W), "--height", str(H), "--status-period", "0.2", "--source", str(self.source),
            "--json", str(self.out / f"{name}.json"), "--trace", str(self.out / f"{name}.trace.json"),
            *threshold_args(self.models), *extra,
        )  # fmt: skip
        self.masters[name] = p
        return p

    def start_slave(self, name: str, *extra: str) -> subprocess.Popen[bytes]:
        p = cli(
            "slave", "--name", name, *self.common, "--connect", self.endpoint, "--models", str(self.models),
            "--threads", "1", *extra,
        )  # fmt: skip
        self.slaves[name] = p
        return p

    def results_of(self, slave: str | None = None, since: float = 0.0) -> int:
        return sum(1 for a in self.answers if a[0] >= since and (slave is None or a[1] == slave))

    def wait_for(self, what: Any, timeout: float = 60.0, master: str | None = None) -> float:
        """Wait until ``what()``; returns the time it became true (test clock)."""
        deadline = time.monotonic() + timeout
        while not what():
            if master is not None:
                assert self.masters[master].poll() is None or what(), "master exited early"
            assert time.monotonic() < deadline, "timed out"
            time.sleep(0.01)
        return self.now()

    def finish(self, name: str, timeout: float = 120.0) -> tuple[dict[str, Any], dict[str, Any]]:
        assert self.masters[name].wait(timeout=timeout) == 0
        rep = json.loads((self.out / f"{name}.json").read_text())
        trace = json.loads((self.out / f"{name}.trace.json").read_text())
        return rep, trace

    def close(self) -> None:
        procs = [*self.masters.values(), *self.slaves.values()]
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGCONT)
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.bus.close()


def check_exactly_once(rep: dict[str, Any], trace: dict[str, Any]) -> None:
    """Every accepted frame out exactly once and in order, or counted dropped."""
    emitted = trace["emitted"]
    assert emitted == sorted(set(emitted)), "out of order or duplicated"
    assert len(emitted) == rep["frames_out"]
    assert rep["frames_out"] + rep["frames_dropped"] == rep["frames_in"]
    assert set(emitted) <= set(range(rep["frames_in"]))
    done = {(r["sequence"], r["region"]) for r in trace["regions"]}
    assert len(done) == len(trace["regions"]), "a region accepted twice"
    for seq in emitted:
        assert all((seq, r) in done for r in range(4)), f"frame {seq} out with a region missing"


def latency_figures(rep: dict[str, Any], trace: dict[str, Any]) -> dict[str, float]:
    """Frame latency: median, worst, and the worst minus the median (the latency a fault added)."""
    lat = trace.get("latency_ms") or [0.0]
    med = statistics.median(lat)
    return {"median_ms": round(med, 1), "max_ms": round(max(lat), 1), "added_ms": round(max(lat) - med, 1)}


def frame_figures(rep: dict[str, Any]) -> dict[str, Any]:
    return {
        "frames_in": rep["frames_in"],
        "frames_out": rep["frames_out"],
        "frames_dropped": rep["frames_dropped"],
        "redispatched": rep["scheduler"]["redispatched"],
        "timeouts": rep["scheduler"]["timeouts"],
        "late_or_duplicate_discarded": rep["scheduler"]["duplicates"] + rep["scheduler"]["late_or_unknown"],
    }
