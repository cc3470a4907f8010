"""A short real ``bench``: 1+1, the paper's logits-on-flow variant, master capacity; then ``plan``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cluster_support import REPO, model_dir

from dvs_cluster.bench import BenchError
from dvs_cluster.nodes.bench import ECHO_FRAMES, ECHO_SEG, ClusterOptions, parse_config

pytestmark = pytest.mark.slow


def test_parse_config() -> None:
    n, o = parse_config("1+3:pipe2:aff:keys16:res8:queue6:fwd2:logits")
    assert n == 3
    assert o == ClusterOptions(2, 6, True, 2, "float16", "uint8", True)
    assert parse_config("1+1") == (1, ClusterOptions())
    assert parse_config("1+4:fifo:aff") == (4, ClusterOptions(affinity=True, region_order="fifo"))
    assert parse_config("1+4:strict")[1].region_order == "strict"
    assert parse_config("1+2:echo:pipe2") == (2, ClusterOptions(max_in_flight=2, echo=True))
    assert parse_config("1+1:echo:hold25") == (1, ClusterOptions(echo=True, hold_ms=25))
    for bad in ("1+0", "2+2", "1+2:turbo", "1+1:echo:logits", "1+1:hold25"):
        with pytest.raises(BenchError):
            parse_config(bad)


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    models = model_dir(tmp_path_factory)
    out = tmp_path_factory.mktemp("bench")
    th = ["--threshold", "40"] if "random_models" in str(models) else []
    cmd = [sys.executable, "-m", "dvs_cluster.cli", "bench", "--models", str(models), *th]
    cmd += [
        "--configs",
        "single,1+1,1+1:logits,1+1:echo:pipe4,1+1:echo:hold20",
        "--frames",
        "4",
        "--width",
        "512",
        "--height",
        "256",
    ]
    cmd += ["--threads", "1", "--sweep", "", "--json", str(out / "b.json"), "--plot", str(out / "fig")]
    cmd += ["--markdown", str(out / "BENCH.md")]
    subprocess.run(cmd, cwd=REPO, check=True, timeout=240, capture_output=True)
    return json.loads((out / "b.json").read_text()), out


def test_bench_json_shape(bench: tuple[dict[str, Any], Path]) -> None:
    rep, out = bench
    assert {"configs", "sweep", "machine", "command", "speedup_baseline"} <= set(rep)
    names = [r["name"] for r in rep["configs"]]
    assert names == ["Single", "1+1", "1+1:logits", "1+1:echo:pipe4", "1+1:echo:hold20"]
    for r in rep["configs"]:
        assert {"name", "frames", "fps", "miou", "speedup", "seg_fraction", "latency_ms"} <= set(r)
        assert r["frames"] == (ECHO_FRAMES if r["name"] == "1+1:echo:pipe4" else 4) and r["fps"] > 0
    c = rep["configs"][1]
    assert c["kind"] == "cluster" and c["slaves"] == 1 and c["oversubscribed"] is False
    assert c["placement"]["slave_cores"] and c["frames_dropped"] == 0
    assert {"p50", "p99"} <= set(c["latency_ms"]["frame"])
    assert {"master", "slave"} <= set(c["breakdown"]) and "idle" in c["breakdown"]["master"]
    assert c["bytes_per_frame"]["master_to_slaves"] > 0
    # Labels instead of logits on the flow path: the paper's variant sends more bytes back.
    logits = rep["configs"][2]
    if logits["seg_fraction"] < 1.0:
        assert logits["bytes_per_frame"]["slaves_to_master"] > c["bytes_per_frame"]["slaves_to_master"]


def test_master_capacity_row(bench: tuple[dict[str, Any], Path]) -> None:
    """Echo slaves answer at once: the master alone sets the pace; no mIoU or speed-up is claimed."""
    rep, out = bench
    cluster, echo = rep["configs"][1], rep["configs"][3]
    assert echo["kind"] == "capacity" and echo["miou"] is None and echo["speedup"] is None
    assert echo["frames_dropped"] == 0
    assert echo["seg_fraction"] == pytest.approx(ECHO_SEG[0] / ECHO_SEG[1], abs=0.02)
    assert echo["fps"] > 2 * cluster["fps"]  # no networks on the slave side
    # The master is the bottleneck: with four tasks in flight it waits for less than half of each frame.
    assert echo["breakdown"]["master"]["idle"] < 0.5 * 1000 / echo["fps"]
    assert echo["master_overhead_ms_excl_metrics"] > 0
    assert "master capacity (1+1:echo" in (out / "BENCH.md").read_text()


def test_master_at_a_clusters_pace_row(bench: tuple[dict[str, Any], Path]) -> None:
    """Echo slaves that hold each answer 20 ms: the master waits most of each frame, no slave computes."""
    rep, out = bench
    hold = rep["configs"][4]
    assert hold["kind"] == "capacity" and hold["miou"] is None and hold["frames_dropped"] == 0
    assert hold["options"]["hold_ms"] == 20
    period_ms = 1000 / hold["fps"]
    assert period_ms >= 4 * 20  # four regions, one at a time, each answered 20 ms after it was sent
    assert hold["breakdown"]["master"]["idle"] > 0.5 * period_ms
    assert "master at a cluster's pace" in (out / "BENCH.md").read_text()


def test_bench_simulation_and_outputs(bench: tuple[dict[str, Any], Path]) -> None:
    rep, out = bench
    sim = rep["simulation"]
    val = {v["name"]: v for v in sim["validation"]}
    assert set(val) == {"Single", "1+1", "1+1:logits"}
    for v in val.values():
        assert v["predicted_fps"] > 0 and v["fps_error"] is not None
    assert val["1+1"]["predicted_seg_fraction"] == pytest.approx(rep["configs"][1]["seg_fraction"], abs=0.15)
    assert {"loopback", "1gbit"} <= set(sim["boards"]["networks"])
    for f in ("fig5_configs.png", "fig6_latency.png", "sweep.png", "calibration.npz"):
        assert (out / "fig" / f).is_file(), f
    md = (out / "BENCH.md").read_text()
    assert "Simulator validation" in md and "fig5_configs.png" in md


def test_plan_on_the_bench_calibration(bench: tuple[dict[str, Any], Path], tmp_path: Path) -> None:
    _, out = bench
    cmd = [sys.executable, "-m", "dvs_cluster.cli", "plan", "--target-fps", "1", "--max-slaves", "3"]
    cmd += ["--calibration", str(out / "fig" / "calibration.npz"), "--network", "1gbit"]
    cmd += ["--width", "1024", "--height", "512", "--json", str(tmp_path / "plan.json")]
    p = subprocess.run(cmd, cwd=REPO, check=True, timeout=120, capture_output=True, text=True)
    res = json.loads((tmp_path / "plan.json").read_text())
    assert res["frame_size"] == [1024, 512] and res["answer"]["slaves"] == 1
    # One ANSWER: Single when one board already reaches the target, and 1+1 then only as the alternative.
    if res["single_suffices"]:
        assert res["recommendation"] == "Single" and "ANSWER: no cluster" in p.stdout
        assert "cluster alternative: 1+1" in p.stdout
    else:
        assert res["recommendation"] == "1+1" and "ANSWER: 1+1" in p.stdout
    bad = subprocess.run(
        [*cmd[:3], "--target-fps", "5", "--calibration", str(tmp_path / "none.npz")], cwd=REPO
    )
    assert bad.returncode == 2
