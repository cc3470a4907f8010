"""
Region orders against Single across DN thresholds and simulator seeds, on a saved bench calibration.

The check behind the default ``region_order`` (``core/scheduler.py``): simulated one-board-per-process
clusters 1+1..1+6 on loopback for fifo / prefer / strict, speed-up and mIoU gap to Single per N.

    .venv/bin/python scripts/region_order_check.py [--calibration docs/bench/calibration.npz]
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from dvs_cluster.core.scheduler import REGION_ORDERS
from dvs_cluster.sim.des import SimConfig, Simulator, simulate_single
from dvs_cluster.sim.plan import Calibration, default_calibration
from dvs_cluster.sim.profiles import load_board, load_network


def main() -> None:
    """Print one line per (threshold, order, seed): speed-up / mIoU gap for 1+1..1+6."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calibration", type=Path, default=None)
    ap.add_argument("--thresholds", default="85,90,95")
    ap.add_argument("--network", default="loopback")
    a = ap.parse_args()
    cal = Calibration.load(a.calibration or default_calibration())
    board = load_board("local")
    net = load_network(a.network, cal.costs.link)
    frames = cal.oracle.frames
    print(f"calibration {cal.meta.get('created')} ({cal.meta.get('source')}, {frames} frames), {net.name}")
    for th in (float(t) for t in a.thresholds.split(",")):
        single = simulate_single(cal.oracle, cal.costs, board, frames, th)
        seg = single.seg_fraction
        print(f"threshold {th:g}: Single {single.fps:.2f} fps, mIoU {single.miou:.2f}, seg {seg:.1%}")
        for order in REGION_ORDERS:
            for seed in (0, 1):
                cells = []
                for n in range(1, 7):
                    cfg = replace(SimConfig(n, frames, th, seed=seed), region_order=order)
                    r = Simulator(cfg, cal.oracle, cal.costs, board, net).run(f"1+{n}")
                    gap = (r.miou or 0.0) - (single.miou or 0.0)
                    cells.append(f"{r.fps / single.fps:.2f}x/{gap:+.2f}")
                print(f"  {order:7s} seed {seed}  " + "  ".join(cells))


if __name__ == "__main__":
    main()
