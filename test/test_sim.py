"""The cluster simulator: closed forms, monotonicity, bandwidth cap, core sharing, key policy, planner."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from dvs_cluster.core.classes import NUM_CLASSES
from dvs_cluster.core.metrics import ConfusionMatrix
from dvs_cluster.sim.costs import RESULT_FLOW, TASK, Costs, message_sizes, result_kind, task_kind
from dvs_cluster.sim.des import (
    Board,
    Network,
    SimConfig,
    SimResult,
    Simulator,
    local_placement,
    simulate_single,
)
from dvs_cluster.sim.oracle import QUANTS, Counts, TableOracle, class_counts, miou_from_counts
from dvs_cluster.sim.profiles import board_names, load_board, load_network

R = 4  # 2x2 grid


class AgeOracle:
    """Score falls 10 points per frame of key age; flow accuracy falls with age, seg is perfect."""

    def __init__(self, frames: int = 24, regions: int = R) -> None:
        self.frames, self.regions, self.has_gt = frames, regions, True

    def score(self, region: int, key: int, t: int) -> float:
        return 100.0 - 10.0 * (t - key)

    def seg_counts(self, region: int, t: int) -> Counts:
        c = np.zeros((3, NUM_CLASSES), np.int64)
        c[:, 0] = 100
        return c

    def flow_counts(self, region: int, key: int, t: int, quant: str) -> Counts:
        c = self.seg_counts(region, t)
        c[0, 0] -= 5 * (t - key) + QUANTS.index(quant)  # fewer true positives
        return c


def costs(
    seg: float = 10.0,
    flow: float = 0.0,
    labels: float = 0.0,
    task_bytes: float = 0.0,
    result_bytes: float = 0.0,
) -> Costs:
    """Fixed costs (ms); every message kind the same size per direction, zero codec and master time."""
    codec = {task_kind(None): {"bytes": task_bytes, "encode_ms": 0.0, "decode_ms": 0.0}}
    for q in QUANTS:
        codec[task_kind(q)] = {"bytes": task_bytes, "encode_ms": 0.0, "decode_ms": 0.0}
        for seg_path, logits in ((True, False), (False, True)):
            codec[result_kind(seg_path, q, logits)] = {
                "bytes": result_bytes,
                "encode_ms": 0.0,
                "decode_ms": 0.0,
            }
    codec[RESULT_FLOW] = {"bytes": result_bytes, "encode_ms": 0.0, "decode_ms": 0.0}
    stage = {"seg": [seg], "flow": [flow], "dn": [0.0], "warp": [0.0], "labels": [labels]}
    link = {"publish_ms": 0.0, "publish_ms_per_mb": 0.0, "latency_ms": 0.0, "mb_per_s": 1e9}
    return Costs(512, 256, 2, 2, stage, {}, codec, link)


BOARD = Board("test")
NO_NET = Network("ideal", 0.0, 0.0, 1)  # 0 MB/s means "no serialisation time"


def run(
    cfg: SimConfig, c: Costs | None = None, net: Network = NO_NET, oracle: AgeOracle | None = None
) -> SimResult:
    return Simulator(cfg, oracle or AgeOracle(), c or costs(), BOARD, net).run()


def test_one_slave_closed_form() -> None:
    # SegPath, 10 ms per region, nothing else costs: 4 regions per frame on one slave -> 25 fps exactly.
    r = run(SimConfig(1, 12, 90.0, policy="segpath"))
    assert r.fps == pytest.approx(25.0, rel=1e-9)
    assert r.seg_fraction == 1.0
    assert r.latency_ms["p50"] >= 40.0 - 1e-9


def test_latency_without_pipelining_adds_round_trips() -> None:
    # 1 task in flight: each region pays compute + two one-way latencies.
    net = Network("lat", 0.0, 2.0, 1)
    r = run(SimConfig(1, 10, 90.0, policy="segpath", max_in_flight=1), net=net)
    assert r.fps == pytest.approx(1000.0 / (R * (10.0 + 4.0)), rel=1e-9)
    # Two in flight hide the transfer behind compute (only the pipeline fill and drain remain).
    r2 = run(SimConfig(1, 10, 90.0, policy="segpath", max_in_flight=2), net=net)
    assert r2.fps == pytest.approx(10 * 1000.0 / (10 * R * 10.0 + 4.0), rel=1e-6)


def test_more_slaves_never_slower_without_network_cost() -> None:
    # Key-independent work (SegPath): monotonic, and linear up to one slave per region.
    fps = [run(SimConfig(n, 24, 75.0, policy="segpath")).fps for n in range(1, 9)]
    assert all(b >= a * (1 - 1e-9) for a, b in zip(fps, fps[1:], strict=False)), fps
    assert fps[:4] == pytest.approx([25.0, 50.0, 75.0, 100.0], rel=1e-9)
    # DVSNet: never slower than one slave; past one slave per region, a free slave may take region r of
    # frame t+1 before frame t's key for r is back (staler key -> more seg paths): the paper's 1+6 drop.
    dvs = [run(SimConfig(n, 24, 75.0)).fps for n in range(1, 8)]
    assert min(dvs[1:]) >= dvs[0]
    assert dvs[:4] == sorted(dvs[:4])


def test_bandwidth_caps_fps() -> None:
    # 1 MB per task down, 0.1 MB per result up, 100 MB/s: the master's downlink allows 25 frames/s.
    c = costs(seg=0.01, task_bytes=1e6, result_bytes=1e5)
    net = Network("slow", 100.0, 0.0, 1)
    r = run(SimConfig(4, 40, 90.0, policy="segpath", max_in_flight=2), c, net, AgeOracle(40))
    cap = 100e6 / (R * 1e6)
    assert r.fps <= cap * (1 + 1e-9)
    assert r.fps == pytest.approx(cap, rel=0.05)
    assert r.bytes_per_frame["master_to_slaves"] == pytest.approx(R * 1e6)


def test_shared_core_is_time_shared() -> None:
    # Two slaves pinned to one core do the work of one; on two cores, of two.
    one = run(SimConfig(2, 12, 90.0, policy="segpath", master_core=None, slave_cores=[0, 0])).fps
    two = run(SimConfig(2, 12, 90.0, policy="segpath", master_core=None, slave_cores=[0, 1])).fps
    assert one == pytest.approx(25.0, rel=1e-6)
    assert two == pytest.approx(50.0, rel=1e-6)


def test_key_policy_and_accuracy_follow_the_oracle() -> None:
    # score = 100 - 10 * age, threshold 75: a new key every 3 frames (ages 1, 2 flow; 3 seg).
    single = simulate_single(AgeOracle(), costs(), BOARD, 9, 75.0)
    assert single.seg_fraction == pytest.approx(3 / 9)
    one = run(SimConfig(1, 9, 75.0))
    assert one.seg_fraction == pytest.approx(single.seg_fraction)
    assert one.miou == pytest.approx(single.miou)
    assert one.key_age["max"] == 2
    # Quantised forwarded keys cost accuracy only where a forwarded key is used.
    q = run(SimConfig(3, 9, 75.0, key_quantize="uint8"))
    exact = run(SimConfig(3, 9, 75.0))
    assert q.miou is not None and exact.miou is not None and q.miou <= exact.miou


def test_key_age_cap_as_the_runtime() -> None:
    """``max_age`` forces a key as the processor does (at threshold 0 the DN keys only at age 11)."""
    never = simulate_single(AgeOracle(), costs(), BOARD, 12, 0.0, max_age=0)
    assert never.seg_fraction == pytest.approx(2 / 12)  # frames 0 and 11 (score 100 - 10 * 11 < 0)
    capped = simulate_single(AgeOracle(), costs(), BOARD, 12, 0.0, max_age=3)
    assert capped.seg_fraction == pytest.approx(4 / 12)  # frames 0, 3, 6, 9
    one = run(SimConfig(1, 12, 0.0, max_age=3))
    assert one.seg_fraction == pytest.approx(capped.seg_fraction) and one.key_age["max"] == 2
    assert capped.fps > simulate_single(AgeOracle(), costs(), BOARD, 12, 100.0, max_age=3).fps


def test_strict_region_order_makes_single_decisions() -> None:
    # fifo: 1+6 starts regions of later frames on keys not back yet: staler keys, more seg steps than
    # one board. strict waits instead: Single's path mix and mIoU exactly, faster than one board.
    single = simulate_single(AgeOracle(24), costs(), BOARD, 24, 75.0)
    fifo = run(SimConfig(6, 24, 75.0, region_order="fifo"), oracle=AgeOracle(24))
    strict = run(SimConfig(6, 24, 75.0, region_order="strict"), oracle=AgeOracle(24))
    assert fifo.seg_fraction > single.seg_fraction
    assert strict.seg_fraction == pytest.approx(single.seg_fraction)
    assert strict.miou == pytest.approx(single.miou)
    assert strict.fps > single.fps


def test_affinity_keeps_keys_local() -> None:
    base = run(SimConfig(4, 24, 75.0, max_in_flight=2), costs(task_bytes=1e5, result_bytes=1e4))
    aff = run(SimConfig(4, 24, 75.0, max_in_flight=2, affinity=True), costs(task_bytes=1e5, result_bytes=1e4))
    assert aff.forwarded_keys <= base.forwarded_keys


def test_deterministic() -> None:
    c = replace(
        costs(),
        stage_ms={"seg": [5.0, 15.0], "flow": [1.0, 2.0], "dn": [0.1], "warp": [0.5], "labels": [1.0]},
    )
    a = run(SimConfig(3, 20, 75.0, seed=3), c)
    b = run(SimConfig(3, 20, 75.0, seed=3), c)
    assert a.to_dict() == b.to_dict()


def test_counts_match_confusion_matrix() -> None:
    rng = np.random.default_rng(0)
    gt = rng.integers(0, NUM_CLASSES, (40, 60)).astype(np.uint8)
    gt[:5] = 255
    pred = rng.integers(0, NUM_CLASSES, (40, 60)).astype(np.uint8)
    cm = ConfusionMatrix()
    cm.update(pred[:, :30], gt[:, :30])
    cm.update(pred[:, 30:], gt[:, 30:])
    counts = class_counts(pred[:, :30], gt[:, :30]) + class_counts(pred[:, 30:], gt[:, 30:])
    assert miou_from_counts(counts) == pytest.approx(cm.miou())


def test_table_oracle_roundtrip_and_fallback(tmp_path: Path) -> None:
    c = np.ones((3, NUM_CLASSES), np.int64)
    t = TableOracle(
        5,
        1,
        True,
        np.array([[0, 0], [0, 2]]),
        np.stack([c, 2 * c]),
        np.array([[0, 0, 1], [0, 0, 3]]),
        np.array([90.0, 60.0]),
        np.stack([np.stack([c] * 3), np.stack([3 * c] * 3)]),
    )
    t.save(tmp_path / "cal.npz", {"costs": {}})
    t2, meta = TableOracle.load(tmp_path / "cal.npz")
    assert meta["frames"] == 5 and t2.score(0, 0, 1) == pytest.approx(90.0)
    assert t2.score(0, 0, 3) == pytest.approx(60.0)
    assert t2.score(0, 2, 4) == pytest.approx(60.0)  # age 2 never seen: nearest age, ties -> older key
    assert t2.fallbacks == 1
    assert np.array_equal(t2.flow_counts(0, 0, 3, "uint8"), 3 * c)  # type: ignore[arg-type]
    assert np.array_equal(t2.seg_counts(0, 3), 2 * c)  # type: ignore[arg-type]  # nearest computed frame of the region


def test_message_sizes_from_the_serialiser() -> None:
    small = message_sizes(512, 256)
    big = message_sizes(1024, 512)
    assert small[RESULT_FLOW] < small[result_kind(True, "float32")]  # labels only vs labels + logits
    assert (
        small[result_kind(True, "uint8")]
        < small[result_kind(True, "float16")]
        < small[result_kind(True, "float32")]
    )
    assert small[task_kind("float32")] > small[TASK]
    assert big[TASK] == pytest.approx(4 * small[TASK], rel=0.01)


def test_local_placement() -> None:
    assert local_placement(1, [0, 1]) == (0, [1])
    assert local_placement(3, [0, 1]) == (0, [1, 0, 1])
    assert local_placement(2, [0, 1, 2]) == (0, [1, 2])


def test_profiles() -> None:
    names = board_names()
    assert "local" in names and any(n.startswith("jetson") for n in names)
    assert not load_board("local").assumption
    assert all(load_board(n).assumption for n in names if n != "local")
    assert load_network("1gbit").mb_per_s == pytest.approx(117.0)
    assert load_network("2.5gbit").mb_per_s == pytest.approx(2500 / 8 * 0.94)
    loop = load_network("loopback", {"mb_per_s": 1234.0, "latency_ms": 0.07})
    assert loop.mb_per_s == 1234.0 and not loop.assumption
    with pytest.raises(ValueError):
        load_board("no-such-board")


def test_plan_answers_fewest_slaves() -> None:
    from dvs_cluster.sim.plan import Calibration, plan

    t = AgeOracle(24)
    c = costs(seg=10.0)
    cal = Calibration(t, c, {"threshold": 75.0, "width": 512, "height": 256})  # type: ignore[arg-type]
    res = plan(cal, 60.0, board=BOARD, network=NO_NET, max_slaves=6, variants=("default",))
    assert res["answer"] is not None
    n = res["answer"]["slaves"]
    fps = {e["slaves"]: e["fps"] for e in res["table"]}
    assert fps[n] >= 60.0 and all(fps[k] < 60.0 for k in fps if k < n)
    none = plan(cal, 1e6, board=BOARD, network=NO_NET, max_slaves=3, variants=("default",))
    assert none["answer"] is None and none["best_possible"]["fps"] > 0
