"""
Per-region cost of the ONNX models on one CPU thread, the budget a board core has.

DVSNet only pays off when the flow path (flow net + DN) is much cheaper than segmentation, so the
ratio seg / (flow + DN) is measured in the same run, with the same session options, as the runtime.
Runs on the ONNX files only (onnxruntime + numpy), so it measures what ships.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort


def session(path: Path, threads: int = 1) -> ort.InferenceSession:
    """A CPU session the way the runtime opens it: fixed intra-op threads, full graph optimisation."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def _median_ms(sess: ort.InferenceSession, feeds: dict[str, np.ndarray], repeats: int, warmup: int) -> float:
    for _ in range(warmup):
        sess.run(None, feeds)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        sess.run(None, feeds)
        times.append((time.perf_counter() - t0) * 1000.0)
    return statistics.median(times)


def measure(
    model_dir: Path, width: int = 512, height: int = 256, repeats: int = 30, warmup: int = 5, threads: int = 1
) -> dict[str, float]:
    """Median ms per region of seg, flow and DN, and the seg / (flow + DN) ratio."""
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (1, height, width, 3), dtype=np.uint8)
    img2 = rng.integers(0, 256, (1, height, width, 3), dtype=np.uint8)
    seg = session(model_dir / "seg.onnx", threads)
    flow = session(model_dir / "flow.onnx", threads)
    dn = session(model_dir / "dn.onnx", threads)
    feats = flow.run(["features"], {"key": img, "current": img2})[0]
    # Interleave so that load from other processes hits all three alike.
    seg_ms, flow_ms, dn_ms = [], [], []
    rounds = 3
    for _ in range(rounds):
        seg_ms.append(_median_ms(seg, {"image": img}, repeats // rounds + 1, warmup))
        flow_ms.append(_median_ms(flow, {"key": img, "current": img2}, repeats // rounds + 1, warmup))
        dn_ms.append(_median_ms(dn, {"features": feats}, repeats // rounds + 1, warmup))
    s, f, d = statistics.median(seg_ms), statistics.median(flow_ms), statistics.median(dn_ms)
    return {
        "region_width": float(width),
        "region_height": float(height),
        "threads": float(threads),
        "seg_ms": s,
        "flow_ms": f,
        "dn_ms": d,
        "flow_path_ms": f + d,
        "ratio_seg_over_flow_path": s / (f + d),
    }


def main(argv: list[str] | None = None) -> int:
    """Print the cost table as JSON (python -m dvs_cluster.train.cost --models DIR)."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--models", type=Path, default=Path("models"))
    ap.add_argument("--width", type=int, default=512)
    ap.add_argument("--height", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)
    res = measure(a.models, a.width, a.height, a.repeats, threads=a.threads)
    json.dump(res, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
