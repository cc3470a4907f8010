"""
The bench's report hook: calibrate, validate against the real runs, predict boards, figures, Markdown.

The simulator is calibrated on the real components, validated against every real run of the bench,
and used to predict the cluster on one board per process.

Installed by :mod:`dvs_cluster.nodes.bench` into ``dvs_cluster.bench.REPORT_HOOKS``. It adds
``report["simulation"]`` (calibration summary, per-config validation with the fps error, board
predictions, scaling options on/off), writes ``calibration.npz`` and the figures into the ``--plot``
directory, and sets ``report["markdown_extra"]`` for BENCHMARKS.md. Set ``DVS_BENCH_NO_SIM=1`` to skip.
"""

from __future__ import annotations

import os
import platform
import re
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from dvs_cluster.bench import BenchContext
from dvs_cluster.sim.costs import Costs, measure
from dvs_cluster.sim.des import (
    Board,
    Network,
    SimConfig,
    SimResult,
    Simulator,
    simulate_single,
)
from dvs_cluster.sim.oracle import ModelOracle, Oracle, pinned
from dvs_cluster.sim.plan import F16, FIFO, OPTIMISED, PIPE1, U8_FWD2, VARIANTS
from dvs_cluster.sim.profiles import load_board, load_network

#: Validation target of the issue: predicted fps within this fraction of the measured fps.
FPS_TOLERANCE = 0.15
#: Board predictions: 1+1 .. 1+PREDICT_MAX, default options and the scaling fixes together.
PREDICT_MAX = 6
#: Scaling options switched one at a time (simulated 1+4 on 1 Gbit/s).
TOGGLES: list[tuple[str, dict[str, Any]]] = [
    (
        "paper: fifo queue order, one task per slave, flow results carry logits",
        {"flow_logits": True, **FIFO},
    ),
    ("default (prefer region order, 2 in flight, labels on the flow path)", {}),
    ("no pipelining (1 in flight)", PIPE1),
    ("+ key affinity", OPTIMISED),
    ("+ key affinity, forward keys 2+ frames old", {**OPTIMISED, "forward_threshold": 2}),
    ("region order fifo (the paper's queue order)", {"region_order": "fifo"}),
    ("region order strict (one board's keys, per-region chains)", {"region_order": "strict"}),
    ("+ keys float16", {"key_quantize": "float16"}),
    ("+ keys uint8", {"key_quantize": "uint8"}),
    ("+ results float16", {"result_quantize": "float16"}),
    ("+ results uint8", {"result_quantize": "uint8"}),
    ("queue of 2 frames", {"max_queued_frames": 2}),
    ("all: aff + float16 keys/results", {**OPTIMISED, **F16}),
    ("all: aff + uint8 keys/results + forward 2+", {**OPTIMISED, **U8_FWD2}),
]
#: Board-prediction variants (the planner's); ``best`` is the fastest of them per N.
BOARD_VARIANTS = VARIANTS


def install() -> None:
    """Register :func:`bench_hook` with the bench (once)."""
    from dvs_cluster import bench

    if bench_hook not in bench.REPORT_HOOKS:
        bench.REPORT_HOOKS.append(bench_hook)


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def plot_dir(ctx: BenchContext) -> Path | None:
    """The ``--plot`` argument when it names a directory (figures and calibration go there)."""
    p = ctx.options.get("plot")
    if not p:
        return None
    path = Path(p)
    return path if path.is_dir() or not path.suffix else None


def single_policy(name: str) -> str | None:
    """Policy name of an in-process bench row (Single, SegPath, FixedK, Single-dyn)."""
    if name == "Single":
        return "dvsnet"
    if name == "SegPath":
        return "segpath"
    if name == "Single-dyn":
        return "dynamic"
    m = re.fullmatch(r"Fixed(\d+)", name)
    return f"fixed{m.group(1)}" if m else None


def calibrate(ctx: BenchContext, core: int | None) -> tuple[ModelOracle, Costs]:
    """Real models on one pinned core over the bench's frames; Single's key chain primes the samples."""
    from dvs_cluster.core.regions import RegionGrid
    from dvs_cluster.inference import DEFAULT_FLOW, OnnxModels, ThreadPolicy

    o = ctx.options
    providers = [p for p in str(o.get("providers") or "cpu").split(",") if p.strip()]
    models = OnnxModels(
        o.get("models"),
        providers,
        threads=ThreadPolicy(1),
        flow=o.get("flow") or DEFAULT_FLOW,
        dn=o.get("dn") or "auto",
    )
    grid = RegionGrid(ctx.width, ctx.height, ctx.rows, ctx.cols, ctx.overlap)
    oracle = ModelOracle(models, ctx.frames, grid, core=core, propagate=ctx.propagate_for(models))
    oracle.prime("dvsnet", ctx.threshold, ctx.max_age)
    from dvs_cluster.placement import all_cores

    cores = all_cores()
    f = ctx.frames[len(ctx.frames) // 2]
    with pinned(core):
        costs = measure(
            ctx.width,
            ctx.height,
            ctx.rows,
            ctx.cols,
            oracle.stage_ms,
            cores=(cores[0], cores[-1]),
            image=f.image,
            labels=f.labels,
        )
    return oracle, costs


def sim_config(row: dict[str, Any], frames: int, threshold: float, placement: bool = True) -> SimConfig:
    """The simulator's config of a measured cluster row (its options and, if asked, its core placement)."""
    opt = row["options"]
    cfg = SimConfig(
        slaves=int(row["slaves"]),
        frames=frames,
        threshold=threshold,
        # bench.json files from before the cap ran without one
        max_age=int(opt.get("max_age", 0)),
        max_in_flight=int(opt["max_in_flight"]),
        max_queued_frames=int(opt["max_queued_frames"]),
        forward_threshold=int(opt["forward_threshold"]),
        affinity=bool(opt["affinity"]),
        key_quantize=str(opt["key_quantize"]),
        result_quantize=str(opt["result_quantize"]),
        flow_logits=bool(opt["flow_logits"]),
        # bench.json files from before the option ran the paper's order
        region_order=str(opt.get("region_order", "fifo")),
    )
    if placement:
        pl = row["placement"]
        cfg.master_core, cfg.slave_cores = pl["master_core"], list(pl["slave_cores"])
        bg = (row.get("background") or {}).get("threads") or {}
        cfg.background = {int(k): float(v) for k, v in bg.items()}
    return cfg


def _err(pred: float | None, meas: float | None) -> float | None:
    if pred is None or meas is None or not meas:
        return None
    return pred / meas - 1.0


def validate(
    rows: list[dict[str, Any]], oracle: Oracle, costs: Costs, threshold: float, frames: int, link: Network
) -> list[dict[str, Any]]:
    """Simulate every measured row as it ran (same policy, options, core placement); errors per row."""
    local = load_board("local")
    out = []
    for row in rows:
        pol = single_policy(row["name"])
        if row.get("kind") == "cluster":
            pred = Simulator(sim_config(row, frames, threshold), oracle, costs, local, link).run(row["name"])
        elif pol is not None:
            pred = simulate_single(oracle, costs, local, frames, threshold, pol)
            pred.name = row["name"]
            bg = (row.get("background") or {}).get("threads") or {}
            if len(bg) == 1:  # one process on one core shared with k CPU-bound threads: 1 / (1 + k) of it
                slow = 1.0 + float(next(iter(bg.values())))
                pred.fps /= slow
                pred.latency_ms = {k: v * slow for k, v in pred.latency_ms.items()}
        else:
            continue
        e = _err(pred.fps, row["fps"])
        out.append(
            {
                "name": row["name"],
                "measured_fps": row["fps"],
                "predicted_fps": pred.fps,
                "fps_error": e,
                "within_tolerance": e is not None and abs(e) <= FPS_TOLERANCE,
                "measured_miou": row.get("miou"),
                "predicted_miou": pred.miou,
                "measured_seg_fraction": row.get("seg_fraction"),
                "predicted_seg_fraction": pred.seg_fraction,
                "measured_p50_ms": (row.get("latency_ms", {}).get("frame") or {}).get("p50"),
                "predicted_p50_ms": pred.latency_ms["p50"],
                "shared_cores": bool(row.get("shared_cores", False)),
                "predicted": pred.to_dict(),
            }
        )
    return out


def predict_boards(
    oracle: Oracle, costs: Costs, board: Board, network: Network, threshold: float, frames: int, n_max: int
) -> list[dict[str, Any]]:
    """Single and 1+1..1+n_max on one board per process, per variant, and the best variant per N."""
    single = simulate_single(oracle, costs, board, frames, threshold)
    out = [{"variant": "Single", **_brief(single, single.fps)}]
    best: dict[int, dict[str, Any]] = {}
    for variant, opts in BOARD_VARIANTS.items():
        for n in range(1, n_max + 1):
            cfg = replace(SimConfig(n, frames, threshold), **opts)
            r = Simulator(cfg, oracle, costs, board, network).run(f"1+{n}")
            entry = {"variant": variant, **_brief(r, single.fps)}
            out.append(entry)
            if n not in best or entry["fps"] > best[n]["fps"]:
                best[n] = entry
    out += [{**best[n], "variant": "best", "of": best[n]["variant"]} for n in sorted(best)]
    return out


def toggles(
    oracle: Oracle, costs: Costs, board: Board, network: Network, threshold: float, frames: int, n: int
) -> list[dict[str, Any]]:
    """The scaling options one at a time at 1+n (simulated)."""
    single = simulate_single(oracle, costs, board, frames, threshold)
    out = []
    for label, opts in TOGGLES:
        cfg = replace(SimConfig(n, frames, threshold), **opts)
        r = Simulator(cfg, oracle, costs, board, network).run(f"1+{n}")
        out.append({"variant": label, "options": opts, **_brief(r, single.fps)})
    return out


def _brief(r: SimResult, single_fps: float) -> dict[str, Any]:
    return {
        "name": r.name,
        "fps": r.fps,
        "speedup": r.fps / single_fps if single_fps else None,
        "miou": r.miou,
        "seg_fraction": r.seg_fraction,
        "latency_ms": r.latency_ms,
        "bytes_per_frame": r.bytes_per_frame,
        "breakdown": r.breakdown,
        "key_age": r.key_age,
    }


def bench_hook(report: dict[str, Any], ctx: BenchContext) -> None:
    """Calibrate, validate, predict, plot; see the module docstring."""
    if os.environ.get("DVS_BENCH_NO_SIM"):
        return
    rows = report["configs"]
    out_dir = plot_dir(ctx)
    if not any(r.get("kind") == "cluster" for r in rows) and out_dir is None:
        return
    from dvs_cluster.placement import all_cores

    t0 = time.perf_counter()
    cores = all_cores()
    _say(f"simulator: calibrating on the real models (core {cores[-1]}) ...")
    oracle, costs = calibrate(ctx, cores[-1])
    frames = len(ctx.frames)
    loop = load_network("loopback", costs.link)
    _say("simulator: validating against the real runs ...")
    validation = validate(rows, oracle, costs, ctx.threshold, frames, loop)
    local = load_board("local")
    gbit = load_network("1gbit")
    n_max = max([PREDICT_MAX, *(int(r["slaves"]) for r in rows if r.get("kind") == "cluster")])
    _say("simulator: predicting one board per process ...")
    boards = {
        "loopback": predict_boards(oracle, costs, local, loop, ctx.threshold, frames, n_max),
        "1gbit": predict_boards(oracle, costs, local, gbit, ctx.threshold, frames, n_max),
    }
    sw = {
        "1gbit": toggles(oracle, costs, local, gbit, ctx.threshold, frames, 4),
        "loopback": toggles(oracle, costs, local, loop, ctx.threshold, frames, 4),
    }
    calib_meta = {
        "costs": costs.to_dict(),
        "source": ctx.source,
        "width": ctx.width,
        "height": ctx.height,
        "rows": ctx.rows,
        "cols": ctx.cols,
        "threshold": ctx.threshold,
        "machine": {"platform": platform.platform(), "processor": _cpu_name(), "cpu_count": os.cpu_count()},
        "created": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "command": report.get("command"),
    }
    calib_file = None
    if out_dir is not None:
        calib_file = out_dir / "calibration.npz"
        oracle.table().save(calib_file, calib_meta)
    report["simulation"] = {
        "calibration": {
            **costs.summary(),
            "oracle_pairs": len(oracle._pairs),
            "oracle_seg_entries": len(oracle._seg),
            "net_seconds": oracle.compute_s,
            "file": str(calib_file) if calib_file else None,
            "core": cores[-1],
        },
        "bench_affinity": sorted(os.sched_getaffinity(0)),
        "versions": versions(),
        "fps_tolerance": FPS_TOLERANCE,
        "validation": validation,
        "boards": {"board": "local", "networks": boards},
        "toggles": {"slaves": 4, "networks": sw},
        "seconds": time.perf_counter() - t0,
    }
    if out_dir is not None:
        from dvs_cluster.sim.figures import figure5, figure6

        out_dir.mkdir(parents=True, exist_ok=True)
        report["figures"] = {
            "figure5": str(figure5(report, out_dir / "fig5_configs.png")),
            "figure6": str(figure6(report, out_dir / "fig6_latency.png")),
        }
    from dvs_cluster.sim.markdown import cluster_markdown

    md = ctx.options.get("markdown")
    report["markdown_extra"] = cluster_markdown(report, Path(md).parent if md else None)
    _say(f"simulator: done in {time.perf_counter() - t0:.0f} s")


def versions() -> dict[str, str]:
    """Versions of what the numbers depend on, and the commit of the code."""
    import subprocess
    from importlib import metadata

    out = {"python": platform.python_version(), "cpu": _cpu_name(), "kernel": platform.release()}
    for dist in ("numpy", "onnxruntime", "eclipse-zenoh", "rosbags", "opencv-python-headless"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
        if rev.returncode == 0:
            out["commit"] = rev.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return out


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
