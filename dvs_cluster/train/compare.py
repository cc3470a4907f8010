"""
`python -m dvs_cluster.train.compare DIR [DIR ...]`: seg nets side by side, to choose one to ship.

For each model directory: seg mIoU on the model card's held-out set (evaluate.SEG_EVAL_SEEDS, 4 seeds x 8
frames), on a wider held-out set (16 seeds x 4 frames, also >= EVAL_SEED0, never trained on: fewer frames
per sequence, more sequences, so rare classes weigh less on luck), per-class IoU of both, CamVid test
mIoU when CamVid is found, and the seg net's CPU cost per region. One JSON line per directory, then
one line of the costs measured again side by side (all nets in one process, interleaved over rounds,
so that a load from elsewhere or the host's drift hits them alike: the figure to compare).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from dvs_cluster.core.classes import CLASS_NAMES
from dvs_cluster.train import data as D
from dvs_cluster.train import evaluate as E
from dvs_cluster.train.cost import _median_ms, session
from dvs_cluster.train.flowpath import iou_per_class, miou

WIDE_SEEDS = tuple(range(D.EVAL_SEED0, D.EVAL_SEED0 + 16))
WIDE_FRAMES, WIDE_STRIDE = 4, 22


def compare(model_dir: Path, camvid: Path | None) -> dict[str, object]:
    """The numbers above for one directory holding seg.onnx."""
    import numpy as np

    s = session(model_dir / "seg.onnx", 1)
    out: dict[str, object] = {"models": str(model_dir)}
    for name, conf in (
        ("card_set", E.seg_eval(s)),
        ("wide_set", E.seg_eval(s, WIDE_SEEDS, WIDE_FRAMES, WIDE_STRIDE)),
    ):
        iou, present = iou_per_class(conf)
        out[f"miou_{name}"] = round(miou(conf), 2)
        out[f"iou_{name}"] = {
            c: (round(float(v) * 100, 1) if p else None)
            for c, v, p in zip(CLASS_NAMES, iou, present, strict=True)
        }
    if camvid is not None:
        from dvs_cluster.train import realeval

        cv = realeval.camvid_eval(s, camvid, "test")
        out["camvid_test_miou"] = round(float(cv["miou"]), 2)
    img = np.random.default_rng(0).integers(0, 256, (1, 256, 512, 3), dtype=np.uint8)
    out["seg_ms_per_region_1_thread"] = round(_median_ms(s, {"image": img}, 20, 3), 2)
    return out


def side_by_side_ms(model_dirs: list[Path], rounds: int = 5, repeats: int = 10) -> dict[str, float]:
    """Median ms per 512x256 region of each directory's seg net on 1 thread, interleaved round by round."""
    import numpy as np

    img = np.random.default_rng(0).integers(0, 256, (1, 256, 512, 3), dtype=np.uint8)
    sessions = [session(d / "seg.onnx", 1) for d in model_dirs]
    per: list[list[float]] = [[] for _ in sessions]
    for _ in range(rounds):
        for i, s in enumerate(sessions):
            per[i].append(_median_ms(s, {"image": img}, repeats, 2))
    return {str(d): round(float(np.median(t)), 2) for d, t in zip(model_dirs, per, strict=True)}


def main(argv: list[str] | None = None) -> int:
    """Print one JSON line per model directory."""
    ap = argparse.ArgumentParser(prog="python -m dvs_cluster.train.compare", description=__doc__)
    ap.add_argument("models", nargs="+", type=Path, help="directories holding seg.onnx")
    ap.add_argument("--camvid", default="auto", help="CamVid folder, 'auto' or 'none'")
    ap.add_argument(
        "--untrained",
        default="",
        help="also time these encoder variants untrained (e.g. lite1,lite2; needs torch): the cost of a "
        "net before training it",
    )
    a = ap.parse_args(argv)
    root = None
    if a.camvid != "none":
        from dvs_cluster.train import datasets as R

        root = R.find_camvid(None if a.camvid == "auto" else a.camvid)
    for d in a.models:
        if not (d / "seg.onnx").is_file():
            print(f"{d}: no seg.onnx", file=sys.stderr)
            return 2
        print(json.dumps(compare(d, root)), flush=True)
    timed = list(a.models)
    with tempfile.TemporaryDirectory() as tmp:
        for v in (v.strip() for v in a.untrained.split(",") if v.strip()):
            timed.append(export_untrained(v, Path(tmp) / f"untrained-{v}"))
        ms = {k.replace(tmp + "/", ""): v for k, v in side_by_side_ms(timed).items()}
        print(json.dumps({"seg_ms_per_region_1_thread_side_by_side": ms}), flush=True)
    return 0


def export_untrained(variant: str, out: Path) -> Path:
    """seg.onnx of the EfficientNet-Lite seg net of ``variant`` with random weights, into ``out``."""
    import torch

    from dvs_cluster.train.effnet import EffSegConfig, EffSegNet
    from dvs_cluster.train.export import export

    torch.manual_seed(0)
    net = EffSegNet(EffSegConfig(variant=variant), pretrained=False).eval()
    out.mkdir(parents=True)
    export(net, "seg", out / "seg.onnx", (torch.zeros(1, 256, 512, 3, dtype=torch.uint8),), {})
    return out


if __name__ == "__main__":
    raise SystemExit(main())
