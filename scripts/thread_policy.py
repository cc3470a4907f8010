#!/usr/bin/env python3
"""
The thread-policy candidates of issue 18 side by side: Single and SegPath fps under each.

    .venv/bin/python scripts/thread_policy.py [--frames 30] [--rounds 2] [--flow dis] [--json out.json]

Each candidate runs in a fresh process (a global thread pool is per process), candidates interleaved
over ``--rounds`` so that the machine's drift hits all of them alike; the table gives the median fps of
SegPath and Single (default flow source and DN, the default threshold) and their ratio, with the seg
net's mean ms per region inside each. Candidates:

- ``ort-default``: onnxruntime's defaults (per-session pools of one thread per core, spinning on);
- ``no-spin`` (the shipped policy, ``inference.ThreadPolicy``): per-session pools, spinning off;
- ``shared-pool``: one global pool for all sessions (``set_global_thread_pool_sizes``), spinning on;
- ``threads-1``: one thread per session;
- ``per-path``: the seg net with the default spinning pool, the small nets one thread, no spinning.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from typing import Any

CANDIDATES = ("ort-default", "no-spin", "shared-pool", "threads-1", "per-path")


def child(candidate: str, frames: int, flow: str) -> dict[str, Any]:
    """Run SegPath then Single in this process under ``candidate``; returns fps and seg ms."""
    import itertools

    import onnxruntime as ort

    from dvs_cluster import inference as inf
    from dvs_cluster.model_defaults import default_threshold
    from dvs_cluster.core.policy import DVSNetPolicy, SegPathPolicy
    from dvs_cluster.engine import SingleEngine
    from dvs_cluster.io.sources import open_source

    real_make = inf.make_session

    def make(path: Any, providers: Any, policy: Any, provider_options: Any = None) -> Any:
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        if candidate == "ort-default":
            pass
        elif candidate == "shared-pool":
            opts.use_per_session_threads = False
        elif candidate == "threads-1":
            opts.intra_op_num_threads = 1
        elif candidate == "per-path" and path.name != "seg.onnx":
            opts.intra_op_num_threads = 1
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        elif candidate == "no-spin":
            return real_make(path, providers, policy, provider_options)
        return ort.InferenceSession(str(path), sess_options=opts, providers=list(providers))

    if candidate == "shared-pool":
        from onnxruntime.capi import _pybind_state

        _pybind_state.set_global_thread_pool_sizes(0, 1)
    inf.make_session = make  # type: ignore[assignment]
    models = inf.OnnxModels(flow=flow)
    with open_source("synthetic", frames=frames) as src:
        clip = list(itertools.islice(iter(src), frames))
    out: dict[str, Any] = {"candidate": candidate}
    threshold = default_threshold(models, synthetic=True)
    for name, policy in (("segpath", SegPathPolicy()), ("single", DVSNetPolicy(threshold))):
        stats = SingleEngine(models, policy).run(clip)
        out[name] = {"fps": stats.fps, "seg_ms": stats.latency.summary()["seg"]["mean"], "miou": stats.miou}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--flow", default="dis")
    ap.add_argument("--candidates", default=",".join(CANDIDATES))
    ap.add_argument("--json", default=None)
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(child(a.child, a.frames, a.flow)))
        return 0
    names = [c.strip() for c in a.candidates.split(",") if c.strip()]
    runs: dict[str, list[dict[str, Any]]] = {c: [] for c in names}
    for r in range(a.rounds):
        for c in names:
            cmd = [sys.executable, __file__, "--child", c, "--frames", str(a.frames), "--flow", a.flow]
            res = subprocess.run(cmd, capture_output=True, text=True, check=True)
            runs[c].append(json.loads(res.stdout.strip().splitlines()[-1]))
            print(f"round {r + 1}/{a.rounds} {c}: {runs[c][-1]}", file=sys.stderr, flush=True)
    rows = []
    head = ("candidate", "SegPath fps", "Single fps", "ratio", "seg ms SegPath", "seg ms Single")
    print(f"{head[0]:<12} {head[1]:>11} {head[2]:>10} {head[3]:>6} {head[4]:>14} {head[5]:>13}")
    for c in names:
        med = {k: statistics.median(x[k]["fps"] for x in runs[c]) for k in ("segpath", "single")}
        seg = {k: statistics.median(x[k]["seg_ms"] for x in runs[c]) for k in ("segpath", "single")}
        row = {
            "candidate": c,
            "fps": med,
            "seg_ms": seg,
            "ratio": med["single"] / med["segpath"],
            "runs": runs[c],
        }
        rows.append(row)
        print(
            f"{c:<12} {med['segpath']:>11.2f} {med['single']:>10.2f} {row['ratio']:>5.2f}x "
            f"{seg['segpath']:>14.1f} {seg['single']:>13.1f}"
        )
    if a.json:
        with open(a.json, "w") as fh:
            json.dump({"frames": a.frames, "rounds": a.rounds, "flow": a.flow, "rows": rows}, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
