"""
`python -m dvs_cluster.train`: generate -> train seg, flow -> export -> DN targets -> train DN -> export.

Stages checkpoint into --work so an interrupted run resumes (--stages picks what to (re)train).
Everything needed for the model card (seeds, steps, times, parameter counts, ONNX-vs-torch differences,
sizes, the exact command) goes to <out>/training.json; evaluate.py adds the measured metrics.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dvs_cluster.train import data as D
from dvs_cluster.train.args import build_parser
from dvs_cluster.train.budgets import BUDGETS as BUDGETS  # re-exported: camvid_train, callers
from dvs_cluster.train.budgets import Budget as Budget
from dvs_cluster.train.data import log
from dvs_cluster.train.loops import LoopResult, train_dn, train_flow, train_seg
from dvs_cluster.train.nets import DecisionNet, FlowNet, SegNet, param_count


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _size_mb(p: Path) -> float:
    return round(p.stat().st_size / 1e6, 3)


def _example_region(images: np.ndarray) -> torch.Tensor:
    """A real 512x256 region (top-left of the first frame) for the export check."""
    return torch.from_numpy(np.ascontiguousarray(images[:1, : D.REGION_H, : D.REGION_W]))


def main(argv: list[str] | None = None) -> int:
    """Train (some stages of) the three nets and export them to --out."""
    ap = build_parser(sorted(BUDGETS))
    a = ap.parse_args(argv)
    cmd = "python -m dvs_cluster.train " + " ".join(
        shlex.quote(x) for x in (argv if argv is not None else sys.argv[1:])
    )

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    b = BUDGETS[a.budget]
    dev = _device(a.device)
    stages = {s.strip() for s in a.stages.split(",") if s.strip()}
    a.out.mkdir(parents=True, exist_ok=True)
    a.work.mkdir(parents=True, exist_ok=True)
    info_path = a.out / "training.json"
    info: dict[str, Any] = json.loads(info_path.read_text()) if info_path.exists() else {}
    info.update({"budget": a.budget, "torch": torch.__version__, "device": str(dev), "threads": a.threads})
    info.setdefault("stages", {})
    info["seed_ranges"] = {
        "seg_train": [D.SEG_SEED0, D.SEG_SEED0 + b.seg_seeds - 1],
        "flow_train": [D.FLOW_SEED0, D.FLOW_SEED0 + b.flow_seeds - 1],
        "dn_train": [D.DN_SEED0, D.DN_SEED0 + b.dn_seeds - 1],
        "eval_from": D.EVAL_SEED0,
    }
    rng = np.random.default_rng(a.seed)
    t_all = time.time()
    meta = {"training_command": cmd, "budget": a.budget}

    def record(stage: str, res: LoopResult, t0: float, extra: dict[str, Any]) -> None:
        info["stages"][stage] = {
            "steps": res.steps,
            "loop_seconds": round(res.seconds, 1),
            "final_loss_ema": round(res.final_loss, 4),
            "stage_seconds": round(time.time() - t0, 1),
            "command": cmd,
            **extra,
        }
        info_path.write_text(json.dumps(info, indent=2))

    seg = SegNet()
    if "seg" in stages:
        t0 = time.time()
        seeds = list(range(D.SEG_SEED0, D.SEG_SEED0 + b.seg_seeds))
        sset = D.make_seg_set(seeds, b.seg_frames, b.seg_stride)
        res = train_seg(seg, sset, b.seg, a.seed, dev)
        torch.save(seg.state_dict(), a.work / "seg.pt")
        m = {**meta, "train_seeds": f"{seeds[0]}-{seeds[-1]}", "steps": str(res.steps)}
        diff = _export_checked(seg, "seg", a.out / "seg.onnx", (_example_region(sset.images),), m)
        record(
            "seg",
            res,
            t0,
            {
                "params": param_count(seg),
                "onnx_max_abs_diff": diff,
                "frames": int(len(sset.images)),
                "loop": asdict(b.seg),
                "size_mb": _size_mb(a.out / "seg.onnx"),
            },
        )
        del sset
    # Stages not retrained are taken from the ONNX files already in --out (the DN reads those).

    flow = FlowNet()
    if "flow" in stages:
        t0 = time.time()
        seeds = list(range(D.FLOW_SEED0, D.FLOW_SEED0 + b.flow_seeds))
        fset = D.make_flow_set(seeds, b.flow_pairs, b.flow_max_gap, rng)
        res = train_flow(flow, fset, b.flow, a.seed, dev)
        torch.save(flow.state_dict(), a.work / "flow.pt")
        m = {
            **meta,
            "train_seeds": f"{seeds[0]}-{seeds[-1]}",
            "steps": str(res.steps),
            "flow_convention": "backward current->key, dx,dy in pixels of the H/4 x W/4 grid",
        }
        ex = (_example_region(fset.keys), _example_region(fset.currents))
        diff = _export_checked(flow, "flow", a.out / "flow.onnx", ex, m)
        record(
            "flow",
            res,
            t0,
            {
                "params": param_count(flow),
                "onnx_max_abs_diff": diff,
                "pairs": int(len(fset.keys)),
                "max_gap": b.flow_max_gap,
                "loop": asdict(b.flow),
                "size_mb": _size_mb(a.out / "flow.onnx"),
            },
        )
        del fset

    if "dn" in stages:
        from dvs_cluster.train.cost import session
        from dvs_cluster.train.dnset import build

        t0 = time.time()
        seeds = list(range(D.DN_SEED0, D.DN_SEED0 + b.dn_seeds))
        s_seg = session(a.out / "seg.onnx", a.threads)
        s_flow = session(a.out / "flow.onnx", a.threads)
        samples = build(s_seg, s_flow, seeds, b.dn_frames, b.dn_gaps, b.dn_max_gap, b.dn_cross, rng)
        feats, targets, gaps = samples.arrays()
        log(f"[dn] {len(targets)} samples, target mean {targets.mean():.1f} min {targets.min():.1f}")
        dn = DecisionNet()
        res = train_dn(dn, feats, targets, b.dn, a.seed)
        torch.save(dn.state_dict(), a.work / "dn.pt")
        m = {
            **meta,
            "train_seeds": f"{seeds[0]}-{seeds[-1]}",
            "steps": str(res.steps),
            "score": "predicted % of region pixels where the flow path agrees with the seg net (0..100)",
        }
        diff = _export_checked(dn, "dn", a.out / "dn.onnx", (torch.from_numpy(feats[:4]),), m)
        record(
            "dn",
            res,
            t0,
            {
                "params": param_count(dn),
                "onnx_max_abs_diff": diff,
                "samples": int(len(targets)),
                "target_mean": round(float(targets.mean()), 2),
                "target_definition": "agreement of flow path and seg net argmax at region size, "
                "pixels with GT 255 left out",
                "gaps": f"0..{b.dn_max_gap} + {int((gaps < 0).sum())} cross-sequence samples",
                "loop": asdict(b.dn),
                "size_mb": _size_mb(a.out / "dn.onnx"),
            },
        )

    if "dn2" in stages:
        # The DN v2 of the default flow source (the runtime's default set needs it), same budget's data.
        from dvs_cluster.inference import DEFAULT_FLOW
        from dvs_cluster.train import dn2

        info_path.write_text(json.dumps(info, indent=2))  # dn2 adds its record to the same file
        steps = str(max(100, b.dn.steps))
        quick = ["--no-eval"] if a.budget == "tiny" else []
        dn2.main(
            ["--models", str(a.out), "--flow", DEFAULT_FLOW, "--budget", a.budget, "--steps", steps, *quick]
        )
        info = json.loads(info_path.read_text())

    info["total_seconds_this_run"] = round(time.time() - t_all, 1)
    info["command"] = cmd
    info_path.write_text(json.dumps(info, indent=2))
    log(f"[train] done in {time.time() - t_all:.0f}s -> {a.out}")
    if a.eval:
        from dvs_cluster.train import evaluate

        return evaluate.main(["--models", str(a.out)])
    return 0


def _export_checked(
    model: torch.nn.Module, kind: str, path: Path, example: tuple[torch.Tensor, ...], meta: dict[str, str]
) -> dict[str, float]:
    """Export + torch/onnxruntime check, logged."""
    from dvs_cluster.train.export import export

    diff = export(model, kind, path, example, meta)
    log(f"[export] {path} ({_size_mb(path)} MB) max |onnx - torch|: {diff}")
    return diff


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    raise SystemExit(main())
