"""
Capacity planning: how many slaves for a target fps at a resolution, on a board profile and network.

Answers from the simulator on a saved calibration (``calibration.npz`` written by ``dvs-cluster bench
--plot DIR``): the DN decisions and accuracy of the real nets on the bench's video, the measured
costs, scaled to the asked frame size (an approximation, stated in the output) and to the board.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from dvs_cluster.sim.costs import Costs
from dvs_cluster.sim.des import Board, Network, SimConfig, SimResult, Simulator, simulate_single
from dvs_cluster.sim.oracle import TableOracle
from dvs_cluster.sim.profiles import load_board, load_network

ENV_CALIBRATION = "DVS_CLUSTER_CALIBRATION"
#: Scheduler/transport options the planner (and the bench's board predictions) try per N; a planner
#: picks the fastest per N. Each has been run for real in the bench (docs/bench/bench.json).
#: Key affinity on top of the defaults (which pipeline 2 tasks per slave).
OPTIMISED: dict[str, Any] = {"affinity": True}
F16: dict[str, Any] = {"key_quantize": "float16", "result_quantize": "float16"}
#: uint8 keys and results, and a slave's local key counts as fresh up to 2 frames: fewer and smaller
#: forwarded keys, which are what saturates a 1 Gbit/s master link from 1+5 on.
U8_FWD2: dict[str, Any] = {"key_quantize": "uint8", "result_quantize": "uint8", "forward_threshold": 2}
#: The paper's scheme: the head of the queue to any free slave, one task at a time (the "before").
FIFO: dict[str, Any] = {"region_order": "fifo", "max_in_flight": 1}
#: The defaults without pipelining (the master's default before 2026-12-04).
PIPE1: dict[str, Any] = {"max_in_flight": 1}
VARIANTS: dict[str, dict[str, Any]] = {
    "fifo": FIFO,
    "pipe1": PIPE1,
    "default": {},
    "aff": OPTIMISED,
    "aff+f16": {**OPTIMISED, **F16},
    "aff+u8+fwd2": {**OPTIMISED, **U8_FWD2},
}


class PlanError(RuntimeError):
    """No calibration, or an unknown profile / network."""


def default_calibration() -> Path:
    """``$DVS_CLUSTER_CALIBRATION``, else the repository's ``docs/bench/calibration.npz``."""
    env = os.environ.get(ENV_CALIBRATION)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "docs" / "bench" / "calibration.npz"


@dataclass
class Calibration:
    """A loaded calibration: the oracle table, the costs and where they came from."""

    oracle: TableOracle
    costs: Costs
    meta: dict[str, Any]

    @classmethod
    def load(cls, path: Path) -> Calibration:
        """Read ``calibration.npz``; PlanError when it is missing."""
        if not path.is_file():
            raise PlanError(
                f"no calibration at {path}: run `dvs-cluster bench --configs single,1+1 --plot DIR` "
                f"(writes DIR/calibration.npz) and pass --calibration DIR/calibration.npz"
            )
        oracle, meta = TableOracle.load(path)
        return cls(oracle, Costs.from_dict(meta["costs"]), meta)


def plan(
    cal: Calibration,
    target_fps: float,
    width: int | None = None,
    height: int | None = None,
    board: Board | None = None,
    network: Network | None = None,
    max_slaves: int = 16,
    variants: tuple[str, ...] = tuple(VARIANTS),
) -> dict[str, Any]:
    """Simulate 1+1..1+max_slaves for each variant; the fewest slaves reaching ``target_fps``."""
    w = width or cal.costs.width
    h = height or cal.costs.height
    costs = cal.costs.scaled(w, h)
    board = board or load_board("local")
    network = network or load_network("1gbit")
    th = float(cal.meta.get("threshold", 90.0))
    frames = cal.oracle.frames
    single = simulate_single(cal.oracle, costs, board, frames, th)
    table: list[dict[str, Any]] = []
    best: dict[str, Any] | None = None
    for variant in variants:
        for n in range(1, max_slaves + 1):
            # A deployed master has no ground truth to score against: no metrics step.
            cfg = replace(SimConfig(n, frames, th, metrics=False), **VARIANTS[variant])
            r = Simulator(cfg, cal.oracle, costs, board, network).run(f"1+{n}")
            entry = _entry(variant, r, single, network)
            table.append(entry)
            if r.fps >= target_fps and (
                best is None or n < best["slaves"] or (n == best["slaves"] and r.fps > best["fps"])
            ):
                best = entry
    top = max(table, key=lambda e: e["fps"])
    notes = list(costs.notes)
    if board.assumption:
        notes.append(f"board profile {board.name} is an ASSUMPTION: {_unmarked(board.notes)}")
    if network.assumption:
        notes.append(f"network {network.name} is an ASSUMPTION: {_unmarked(network.notes)}")
    notes.append(
        "DN decisions and mIoU come from the calibration video at its own resolution "
        f"({cal.meta.get('width')}x{cal.meta.get('height')}, {cal.meta.get('source')}); at another size "
        "only the costs are rescaled"
    )
    fallbacks = int(getattr(cal.oracle, "fallbacks", 0))
    if fallbacks:
        notes.append(f"{fallbacks} (region, key, frame) pairs were not in the calibration: nearest used")
    single_suffices = single.fps >= target_fps
    return {
        "target_fps": target_fps,
        "single_suffices": single_suffices,
        # The one answer: Single when one board is enough, else the fewest slaves (None: unreachable).
        "recommendation": "Single" if single_suffices else (f"1+{best['slaves']}" if best else None),
        "frame_size": [w, h],
        "board": board.__dict__,
        "network": network.__dict__,
        "single": {"fps": single.fps, "miou": single.miou, "seg_fraction": single.seg_fraction},
        "answer": best,
        "best_possible": top,
        "table": table,
        "notes": notes,
        "calibration": {
            k: cal.meta.get(k) for k in ("created", "source", "width", "height", "threshold", "machine")
        },
    }


def _unmarked(note: str) -> str:
    """A profile's note without its own leading ``ASSUMPTION`` mark (the planner adds one)."""
    return re.sub(r"^\s*ASSUMPTION\s*[:,]?\s*", "", note)


def _entry(variant: str, r: SimResult, single: SimResult, net: Network) -> dict[str, Any]:
    n = int(r.name.split("+")[1])
    bpf = r.bytes_per_frame
    link = (
        max(bpf["master_to_slaves"], bpf["slaves_to_master"]) * r.fps / (net.mb_per_s * 1e6)
        if net.mb_per_s
        else 0.0
    )
    busy = sum(v for k, v in r.breakdown["master"].items() if k != "idle")
    return {
        "variant": variant,
        "slaves": n,
        "fps": r.fps,
        "speedup": r.fps / single.fps if single.fps else None,
        "miou": r.miou,
        "miou_delta": (r.miou - single.miou) if r.miou is not None and single.miou is not None else None,
        "seg_fraction": r.seg_fraction,
        "latency_ms": r.latency_ms,
        "bytes_per_frame": bpf,
        "link_utilisation": link,
        "master_utilisation": busy * r.fps / 1000.0,
    }


def bottleneck(e: dict[str, Any]) -> str:
    """What limits a configuration, from its utilisations."""
    if e["link_utilisation"] > 0.75:
        return "network (master's link)"
    if e["master_utilisation"] > 0.85:
        return "master CPU"
    return "slaves / key staleness"


def format_plan(res: dict[str, Any], table: bool = False) -> str:
    """Human-readable answer: one ANSWER line, the notes, and with ``table`` every variant and N."""
    w, h = res["frame_size"]
    b, n = res["board"], res["network"]
    lines = [
        f"target {res['target_fps']:g} fps at {w}x{h}, board {b['name']}"
        f"{' (ASSUMPTION)' if b['assumption'] else ' (measured)'}, network {n['name']}"
        f"{' (ASSUMPTION)' if n['assumption'] else ' (measured)'}",
        f"Single on one board: {res['single']['fps']:.2f} fps"
        + (f", mIoU {res['single']['miou']:.1f}" if res["single"]["miou"] is not None else ""),
    ]
    a = res["answer"]
    if res.get("single_suffices"):
        lines.append(
            f"ANSWER: no cluster: one board running Single reaches {res['single']['fps']:.2f} fps "
            f"(target {res['target_fps']:g})"
        )
    if a:
        miou = f", mIoU {a['miou']:.1f} ({a['miou_delta']:+.2f} vs Single)" if a["miou"] is not None else ""
        lead = "cluster alternative" if res.get("single_suffices") else "ANSWER"
        lines.append(
            f"{lead}: 1+{a['slaves']} ({a['variant']}): {a['fps']:.2f} fps "
            f"({a['speedup']:.2f}x Single){miou}, "
            f"latency p50 {a['latency_ms']['p50']:.0f} ms / p99 {a['latency_ms']['p99']:.0f} ms, "
            f"{a['bytes_per_frame']['master_to_slaves'] / 1e6:.2f} MB down + "
            f"{a['bytes_per_frame']['slaves_to_master'] / 1e6:.2f} MB up per frame "
            f"(link {a['link_utilisation'] * 100:.0f} % busy)"
        )
    elif not res.get("single_suffices"):
        t = res["best_possible"]
        lines.append(
            f"NOT REACHABLE with up to {max(e['slaves'] for e in res['table'])} slaves: best 1+{t['slaves']} "
            f"({t['variant']}) {t['fps']:.2f} fps, limited by {bottleneck(t)}"
        )
    if not table:
        n_rows = len(res["table"])
        return "\n".join(
            [
                *lines,
                "",
                *(f"note: {x}" for x in res["notes"]),
                f"(--table: all {n_rows} simulated configurations)",
            ]
        )
    lines.append("")
    head = ("N", "fps", "speedup", "mIoU", "seg %", "p50 ms", "link %", "master %")
    widths = (3, 8, 8, 6, 6, 7, 7, 8)
    lines.append(f"{'variant':<14} " + " ".join(f"{h:>{w}}" for h, w in zip(head, widths, strict=True)))
    for e in res["table"]:
        miou = f"{e['miou']:6.1f}" if e["miou"] is not None else "     -"
        lines.append(
            f"{e['variant']:<14} {e['slaves']:>3} {e['fps']:8.2f} {e['speedup']:7.2f}x {miou} "
            f"{e['seg_fraction'] * 100:6.1f} {e['latency_ms']['p50']:7.0f} "
            f"{e['link_utilisation'] * 100:7.0f} {e['master_utilisation'] * 100:8.0f}"
        )
    lines += ["", *(f"note: {x}" for x in res["notes"])]
    return "\n".join(lines)
