"""
Discrete-event simulation of a 1+N cluster (and of Single) on measured costs.

What is real and what is modelled:

- **Real code**: scheduling, forwarding and key tables are the master's own
  :class:`~dvs_cluster.core.scheduler.WorkloadManager`; path decisions are the real policy
  (``core.policy``) fed with the real DN score of (region, key, frame) from an
  :class:`~dvs_cluster.sim.oracle.Oracle`; accuracy is the real per-pixel outcome of that path.
- **Measured**: per-stage compute-time samples of the nets and of warp/labels, serialisation time and
  size per message kind, the master's per-frame steps, Zenoh publish cost and delivery delay
  (:class:`~dvs_cluster.sim.costs.Costs`), scaled by a board profile.
- **Modelled**: each process is a sequential server on a core; processes pinned to the same core share
  it equally (processor sharing), which is how the oversubscribed local runs are reproduced; the network
  is a full-duplex star (master uplink and downlink are FIFO links of the given bandwidth, a message
  takes ``hops`` store-and-forward serialisations plus the link latency), or one shared medium (Wi-Fi).

The master loop mirrors ``nodes/master.py``: take frames while the queue has room (preloaded source),
dispatch everything the scheduler allows (schedule, serialise, publish), emit finished frames in order
(assemble, score), then wait for results and handle all that arrived (deserialise, keys).
"""

from __future__ import annotations

import heapq
import math
import random
from collections import Counter, defaultdict, deque
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dvs_cluster.core.classes import NUM_CLASSES
from dvs_cluster.core.metrics import summarize
from dvs_cluster.core.policy import DEFAULT_MAX_AGE, DecisionPolicy, make_policy
from dvs_cluster.core.scheduler import DEFAULT_MAX_IN_FLIGHT, Outcome, WorkloadManager
from dvs_cluster.placement import local_placement as local_placement  # re-exported (tests, callers)
from dvs_cluster.sim.costs import Costs, result_kind, task_kind
from dvs_cluster.sim.oracle import Counts, Oracle, coarsest, miou_from_counts

NETS = ("seg", "flow", "dn")  # scaled by the board's ``compute`` factor; everything else by ``cpu``


@dataclass
class Network:
    """A network: per-link bandwidth (MB/s, 1e6 bytes), one-way latency, store-and-forward hops."""

    name: str
    mb_per_s: float
    latency_ms: float
    hops: int = 2
    shared_medium: bool = False
    assumption: bool = True
    notes: str = ""


@dataclass
class Board:
    """Speed of one board relative to one pinned core of the calibration machine (1.0 = the same)."""

    name: str
    compute: float = 1.0  # multiplier on the nets (seg, flow, DN)
    cpu: float = 1.0  # multiplier on everything else (warp, labels, serialisation, transport, master)
    assumption: bool = False
    notes: str = ""


@dataclass
class SimConfig:
    """One simulated configuration (mirrors the master/slave options)."""

    slaves: int
    frames: int
    threshold: float
    policy: str = "dvsnet"
    #: The DVSNet rule's key-age cap, as the runtime's ``--max-age`` (the default when not given).
    max_age: int = DEFAULT_MAX_AGE
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
    max_queued_frames: int = 4
    forward_threshold: int = 0
    affinity: bool = False
    region_order: str = "prefer"
    key_quantize: str = "float32"
    result_quantize: str = "float32"
    flow_logits: bool = False  # the paper's scheme: flow results carry logits as well
    metrics: bool = True  # the master scores frames against ground truth (as the bench's runs do)
    master_core: int | None = None  # shared core id, None = own board
    slave_cores: list[int | None] | None = None
    #: Other jobs per shared core, as always-runnable threads (measured during a real run; 0 = quiet).
    background: dict[int, float] = field(default_factory=dict)
    seed: int = 0


@dataclass
class _TaskMsg:
    sequence: int
    region: int
    key: tuple[int, str] | None  # forwarded (timestep, encoding)
    kind: str
    nbytes: float


@dataclass
class _ResultMsg:
    slave: str
    sequence: int
    region: int
    seg: bool
    key_ts: int | None
    counts: Counts | None
    kind: str
    nbytes: float


@dataclass
class _Proc:
    name: str
    core: int | None
    gen: Generator[tuple[Any, ...], None, None] | None = None
    inbox: deque[Any] = field(default_factory=deque)
    state: str = "ready"  # ready | cpu | wait | done
    remaining: float = 0.0
    stage: str = ""
    since: float = 0.0
    busy: dict[str, float] = field(default_factory=lambda: defaultdict(float))


class _Link:
    def __init__(self) -> None:
        self.free = 0.0


@dataclass
class SimResult:
    """What a simulated run predicts (same names as the master's JSON report where they overlap)."""

    name: str
    frames: int
    fps: float
    miou: float | None
    seg_fraction: float
    latency_ms: dict[str, float]
    bytes_per_frame: dict[str, float]
    breakdown: dict[str, dict[str, float]]
    per_slave: dict[str, dict[str, int]]
    key_age: dict[str, float]
    forwarded_keys: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-able."""
        return dict(self.__dict__)


class Simulator:
    """One simulated cluster run (construct, then :meth:`run`)."""

    def __init__(self, cfg: SimConfig, oracle: Oracle, costs: Costs, board: Board, network: Network) -> None:
        """Check the configuration against the oracle's frames and regions."""
        if cfg.slaves < 1:
            raise ValueError("at least one slave")
        if cfg.frames > oracle.frames:
            raise ValueError(f"{cfg.frames} frames asked, the oracle knows {oracle.frames}")
        self.cfg = cfg
        self.oracle = oracle
        self.costs = costs
        self.board = board
        self.net = network
        self.R = costs.rows * costs.cols
        if self.R != oracle.regions:
            raise ValueError(f"costs for {self.R} regions, oracle for {oracle.regions}")
        self.rng = random.Random(cfg.seed)
        self.now = 0.0
        self._heap: list[tuple[float, int, int, Any]] = []
        self._seq = 0
        self._down, self._up = _Link(), _Link()
        self.procs: list[_Proc] = []

    # -- costs -----------------------------------------------------------------------------------

    def _stage_s(self, stage: str) -> float:
        samples = self.costs.stage_ms.get(stage) or [0.0]
        f = self.board.compute if stage in NETS else self.board.cpu
        return self.rng.choice(samples) * f / 1000.0

    def _master_s(self, step: str) -> float:
        return self.costs.master_ms.get(step, 0.0) * self.board.cpu / 1000.0

    def _codec(self, kind: str, what: str) -> float:
        return (
            self.costs.codec[kind][what] * self.board.cpu / 1000.0
            if what != "bytes"
            else self.costs.codec[kind]["bytes"]
        )

    def _publish_s(self, nbytes: float) -> float:
        ln = self.costs.link
        return (
            (ln.get("publish_ms", 0.0) + ln.get("publish_ms_per_mb", 0.0) * nbytes / 1e6)
            * self.board.cpu
            / 1000.0
        )

    def _send(self, nbytes: float, up: bool, dest: _Proc, msg: Any) -> None:
        ser = nbytes / (self.net.mb_per_s * 1e6) if self.net.mb_per_s > 0 else 0.0
        link = self._down if self.net.shared_medium else (self._up if up else self._down)
        start = max(self.now, link.free)
        link.free = start + ser
        arrive = link.free + max(self.net.hops - 1, 0) * ser + self.net.latency_ms / 1000.0
        self._seq += 1
        heapq.heappush(self._heap, (arrive, self._seq, self.procs.index(dest), msg))

    # -- region step (the slave's RegionProcessor, with the oracle for the nets) ------------------

    def _region_step(
        self, policy: DecisionPolicy, region: int, t: int, key: tuple[int, str] | None
    ) -> tuple[bool, list[tuple[str, float]], Counts | None]:
        stages: list[tuple[str, float]] = []
        flow_done = False
        if key is None:
            seg = True
        else:
            age = t - key[0]
            forced = policy.forced(region, age)  # the age cap: no flow source, no DN (the processor's rule)
            if forced is not None:
                seg = forced == "seg"
            elif policy.uses_score:
                stages += [("flow", self._stage_s("flow")), ("dn", self._stage_s("dn"))]
                flow_done = True
                seg = policy.decide(region, age, self.oracle.score(region, key[0], t)) == "seg"
            else:
                seg = policy.decide(region, age, None) == "seg"
        if seg:
            stages += [("seg", self._stage_s("seg")), ("labels", self._stage_s("labels"))]
            counts = self.oracle.seg_counts(region, t)
        else:
            assert key is not None
            if not flow_done:
                stages.append(("flow", self._stage_s("flow")))
            stages += [("warp", self._stage_s("warp")), ("labels", self._stage_s("labels"))]
            counts = self.oracle.flow_counts(region, key[0], t, key[1])
        policy.observe(region, "seg" if seg else "flow")
        return seg, stages, counts

    # -- processes ---------------------------------------------------------------------------------

    def _slave(self, me: _Proc, master: _Proc) -> Generator[tuple[Any, ...], None, None]:
        cfg = self.cfg
        policy = make_policy(cfg.policy, cfg.threshold, max_age=cfg.max_age)
        local: dict[int, tuple[int, str]] = {}
        while True:
            if not me.inbox:
                yield ("wait",)
                continue
            task: _TaskMsg = me.inbox.popleft()
            yield ("cpu", self._codec(task.kind, "decode_ms"), "deserialize")
            if task.key is not None:
                cur = local.get(task.region)
                if cur is None or cur[0] <= task.key[0]:
                    local[task.region] = task.key
            key = local.get(task.region)
            seg, stages, counts = self._region_step(policy, task.region, task.sequence, key)
            for stage, s in stages:
                yield ("cpu", s, stage)
            if seg:
                local[task.region] = (task.sequence, "float32")
            kind = result_kind(seg, cfg.result_quantize, cfg.flow_logits)
            yield ("cpu", self._codec(kind, "encode_ms"), "serialize_prev")
            nbytes = self._codec(kind, "bytes")
            msg = _ResultMsg(
                me.name,
                task.sequence,
                task.region,
                seg,
                None if key is None else key[0],
                counts,
                kind,
                nbytes,
            )
            self._send(nbytes, True, master, msg)
            yield ("cpu", self._publish_s(nbytes), "publish")

    def _master(self, me: _Proc, slaves: list[_Proc]) -> Generator[tuple[Any, ...], None, None]:
        cfg = self.cfg
        R = self.R
        wm = WorkloadManager(
            R,
            max_in_flight=cfg.max_in_flight,
            max_queued_frames=cfg.max_queued_frames,
            forward_threshold=cfg.forward_threshold,
            affinity=cfg.affinity,
            region_order=cfg.region_order,
        )
        by_name = {p.name: p for p in slaves}
        for p in slaves:
            wm.add_slave(p.name)
        global_keys: dict[int, tuple[int, str]] = {}
        t_in: dict[int, float] = {}
        done: dict[int, int] = {}
        order: deque[int] = deque()
        frames_in = 0
        st = self._stats
        while True:
            while frames_in < cfg.frames and wm.has_room():
                yield ("cpu", self._master_s("split"), "split")
                seq = frames_in
                frames_in += 1
                t_in[seq], done[seq] = self.now, 0
                order.append(seq)
                wm.submit(seq)
            while True:
                d = wm.next_dispatch(self.now)
                yield ("cpu", self._master_s("schedule"), "schedule")
                if d is None:
                    break
                key = None
                if d.forward_key is not None and d.job.region in global_keys:
                    ts, q = global_keys[d.job.region]
                    key = (ts, coarsest(q, cfg.key_quantize))
                    st["key_bytes"] += self._codec(task_kind(cfg.key_quantize), "bytes") - self._codec(
                        task_kind(None), "bytes"
                    )
                kind = task_kind(cfg.key_quantize if key is not None else None)
                yield ("cpu", self._codec(kind, "encode_ms"), "serialize")
                nbytes = self._codec(kind, "bytes")
                st["down_bytes"] += nbytes
                self._send(
                    nbytes, False, by_name[d.slave], _TaskMsg(d.job.sequence, d.job.region, key, kind, nbytes)
                )
                yield ("cpu", self._publish_s(nbytes), "publish")
            st["forwarded"] = wm.forwarded
            while order and done[order[0]] == R:
                seq = order.popleft()
                yield ("cpu", self._master_s("assembly"), "assembly")
                if cfg.metrics and self.oracle.has_gt:
                    yield ("cpu", self._master_s("metrics"), "metrics")
                st["latency"].append((self.now - t_in[seq]) * 1000.0)
                st["frames_out"] += 1
                st["last_out"] = self.now
            if frames_in >= cfg.frames and not order:
                return
            if not me.inbox:
                yield ("wait",)
            while me.inbox:
                res: _ResultMsg = me.inbox.popleft()
                st["up_bytes"] += res.nbytes
                yield ("cpu", self._codec(res.kind, "decode_ms"), "deserialize")
                if wm.complete(res.slave, res.sequence, res.region, res.seg) is not Outcome.ACCEPTED:
                    continue
                done[res.sequence] += 1
                st["seg" if res.seg else "flow"] += 1
                st["per_slave"][res.slave]["seg" if res.seg else "flow"] += 1
                if res.key_ts is not None and not res.seg:
                    st["ages"].append(res.sequence - res.key_ts)
                if res.counts is not None:
                    st["counts"] += res.counts
                if res.seg:
                    yield ("cpu", self._master_s("keys"), "keys")
                    cur = global_keys.get(res.region)
                    if cur is None or cur[0] <= res.sequence:
                        global_keys[res.region] = (res.sequence, cfg.result_quantize)

    # -- engine ------------------------------------------------------------------------------------

    def _advance(self, p: _Proc) -> None:
        """Run a process until it needs the CPU or waits with an empty inbox."""
        assert p.gen is not None
        while True:
            try:
                cmd = next(p.gen)
            except StopIteration:
                p.state = "done"
                return
            if cmd[0] == "cpu":
                if cmd[1] <= 0.0:
                    continue
                p.state, p.remaining, p.stage, p.since = "cpu", float(cmd[1]), cmd[2], self.now
                return
            if p.inbox:  # "wait" with work pending: go on
                continue
            p.state, p.since = "wait", self.now
            return

    def run(self, name: str = "") -> SimResult:
        """Simulate until the master has emitted every frame; returns the prediction."""
        cfg = self.cfg
        self._stats: dict[str, Any] = {
            "frames_out": 0,
            "last_out": 0.0,
            "latency": [],
            "seg": 0,
            "flow": 0,
            "down_bytes": 0.0,
            "up_bytes": 0.0,
            "key_bytes": 0.0,
            "counts": np.zeros((3, NUM_CLASSES), np.int64),
            "ages": [],
            "per_slave": defaultdict(lambda: {"seg": 0, "flow": 0}),
            "forwarded": 0,
        }
        cores = cfg.slave_cores or [None] * cfg.slaves
        master = _Proc("master", cfg.master_core)
        slaves = [_Proc(f"slave{i}", cores[i]) for i in range(cfg.slaves)]
        self.procs = [master, *slaves]
        master.gen = self._master(master, slaves)
        for s in slaves:
            s.gen = self._slave(s, master)
        for p in self.procs:
            self._advance(p)
        while master.state != "done":
            running = [p for p in self.procs if p.state == "cpu"]
            share: Counter[int | None] = Counter(p.core for p in running if p.core is not None)

            def rate(p: _Proc, share: Counter[int | None] = share) -> float:
                if p.core is None:
                    return 1.0
                return 1.0 / (share[p.core] + cfg.background.get(p.core, 0.0))

            t_job = min((self.now + p.remaining / rate(p) for p in running), default=math.inf)
            t_msg = self._heap[0][0] if self._heap else math.inf
            t = min(t_job, t_msg)
            if t == math.inf:
                raise RuntimeError("simulation deadlocked (no work and no message in flight)")
            dt = t - self.now
            for p in running:
                p.remaining -= dt * rate(p)
            self.now = t
            for p in running:
                if p.remaining <= 1e-12:
                    p.busy[p.stage] += self.now - p.since
                    p.state = "ready"
                    self._advance(p)
            while self._heap and self._heap[0][0] <= self.now:
                _, _, idx, msg = heapq.heappop(self._heap)
                dest = self.procs[idx]
                dest.inbox.append(msg)
                if dest.state == "wait":
                    dest.busy["idle"] += self.now - dest.since
                    dest.state = "ready"
                    self._advance(dest)
        return self._result(name or f"1+{cfg.slaves}", master, slaves)

    def _result(self, name: str, master: _Proc, slaves: list[_Proc]) -> SimResult:
        st = self._stats
        out = max(st["frames_out"], 1)
        regions = max(st["seg"] + st["flow"], 1)
        slave_busy: dict[str, float] = defaultdict(float)
        for s in slaves:
            for k, v in s.busy.items():
                if k != "idle":
                    slave_busy[k] += v
        lat = summarize(st["latency"])
        ages = st["ages"]
        return SimResult(
            name=name,
            frames=st["frames_out"],
            fps=st["frames_out"] / st["last_out"] if st["last_out"] > 0 else 0.0,
            miou=miou_from_counts(st["counts"]) if self.oracle.has_gt else None,
            seg_fraction=st["seg"] / regions,
            latency_ms={k: lat[k] for k in ("mean", "p50", "p99")},
            bytes_per_frame={
                "master_to_slaves": st["down_bytes"] / out,
                "slaves_to_master": st["up_bytes"] / out,
                "forwarded_keys": st["key_bytes"] / out,
            },
            breakdown={
                "master": {k: v * 1000.0 / out for k, v in sorted(master.busy.items())},
                "slave": {k: v * 1000.0 / regions for k, v in sorted(slave_busy.items())},
            },
            per_slave={k: dict(v) for k, v in sorted(st["per_slave"].items())},
            key_age={"mean": float(np.mean(ages)) if ages else 0.0, "max": float(max(ages, default=0))},
            forwarded_keys=int(st["forwarded"]),
        )


def simulate_single(
    oracle: Oracle,
    costs: Costs,
    board: Board,
    frames: int,
    threshold: float,
    policy: str = "dvsnet",
    seed: int = 0,
    max_age: int = DEFAULT_MAX_AGE,
) -> SimResult:
    """Single (everything in one process, no messages): the speed-up baseline, same costs and oracle."""
    cfg = SimConfig(1, frames, threshold, policy, max_age=max_age, seed=seed)
    sim = Simulator(cfg, oracle, costs, board, Network("none", 0.0, 0.0, 1))
    pol = make_policy(policy, threshold, max_age=max_age)
    keys: dict[int, tuple[int, str]] = {}
    total = 0.0
    seg_n = 0
    counts = np.zeros((3, NUM_CLASSES), np.int64)
    lat = []
    busy: dict[str, float] = defaultdict(float)
    for t in range(frames):
        ft = sim._master_s("split") + sim._master_s("assembly")
        busy["split"] += sim._master_s("split")
        busy["assembly"] += sim._master_s("assembly")
        for r in range(sim.R):
            seg, stages, c = sim._region_step(pol, r, t, keys.get(r))
            for stage, s in stages:
                ft += s
                busy[stage] += s
            if seg:
                keys[r] = (t, "float32")
                seg_n += 1
            if c is not None:
                counts += c
        total += ft
        lat.append(ft * 1000.0)
    lat_s = summarize(lat)
    return SimResult(
        name="Single",
        frames=frames,
        fps=frames / total if total else 0.0,
        miou=miou_from_counts(counts) if oracle.has_gt else None,
        seg_fraction=seg_n / (frames * sim.R),
        latency_ms={k: lat_s[k] for k in ("mean", "p50", "p99")},
        bytes_per_frame={"master_to_slaves": 0.0, "slaves_to_master": 0.0, "forwarded_keys": 0.0},
        breakdown={"single": {k: v * 1000.0 / frames for k, v in sorted(busy.items())}},
        per_slave={},
        key_age={},
        forwarded_keys=0,
    )
