"""
Evaluate the shipped ONNX files with onnxruntime on held-out synthetic sequences (no torch).

Measures what ships: seg mIoU (+ per class), flow EPE vs the zero-flow baseline, flow-path mIoU at
key intervals 1/3/5/10, DN Spearman vs the true flow-path agreement, per-region cost. Writes
<models>/metrics.json and regenerates <models>/README.md from it, so the card never holds typed numbers.
Optional real-data sections (realeval.py): ``--camvid DIR|auto`` (CamVid test mIoU, 11 classes) and
``--video FILE|camvid:SPLIT:SEQ`` (DVS vs seg-path agreement and speedup); ``--real-only`` runs just those.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from dvs_cluster.core.classes import CLASS_NAMES, NUM_CLASSES
from dvs_cluster.train import data as D
from dvs_cluster.train.cost import measure, session
from dvs_cluster.train.data import log
from dvs_cluster.train.dnset import FlowFn, as_flow_fn, build, region_batch
from dvs_cluster.train.flowpath import confusion, flow_path, iou_per_class, miou, spearman, upsample_argmax

# Held-out seed sets (all >= EVAL_SEED0, never used in training).
SEG_EVAL_SEEDS = tuple(range(D.EVAL_SEED0, D.EVAL_SEED0 + 4))
SEG_EVAL_FRAMES = 8
SEG_EVAL_STRIDE = 11
FLOW_EVAL_SEEDS = tuple(range(D.EVAL_SEED0 + 10, D.EVAL_SEED0 + 14))
FLOW_EVAL_KEYS = (5, 60, 130)
INTERVALS = (1, 3, 5, 10)
DN_EVAL_SEEDS = tuple(range(D.EVAL_SEED0 + 20, D.EVAL_SEED0 + 23))
DN_EVAL_FRAMES = 40


def seg_eval(
    seg: ort.InferenceSession,
    seeds: tuple[int, ...] = SEG_EVAL_SEEDS,
    frames: int = SEG_EVAL_FRAMES,
    stride: int = SEG_EVAL_STRIDE,
) -> npt.NDArray[np.int64]:
    """Confusion matrix of the seg net over the regions of held-out frames (upsampled logits, argmax)."""
    conf = np.zeros((NUM_CLASSES, NUM_CLASSES), np.int64)
    for s in seeds:
        for _, img, lab, _cut in D.iter_frames(s, [k * stride for k in range(frames)]):
            rb = region_batch(img)
            lg = seg.run(["logits"], {"image": rb})[0]
            for r, gt in enumerate(D.regions(lab)):
                conf += confusion(upsample_argmax(lg[r], rb.shape[1], rb.shape[2]), gt)  # type: ignore[arg-type]
    return conf


def flow_eval(seg: ort.InferenceSession, flow: ort.InferenceSession | FlowFn) -> dict[str, Any]:
    """
    EPE (1/4-grid px) vs zero flow and flow-path mIoU per key interval; pairs across cuts are skipped.

    ``flow``: flow.onnx's session or any flow source as a ``dnset.FlowFn`` (e.g. DIS).
    """
    run_flow = as_flow_fn(flow)
    res: dict[str, Any] = {}
    for d in INTERVALS:
        epe_sum = zero_sum = 0.0
        n_valid = 0
        conf_flow = np.zeros((NUM_CLASSES, NUM_CLASSES), np.int64)
        conf_copy = np.zeros_like(conf_flow)
        conf_seg = np.zeros_like(conf_flow)
        conf_gt = np.zeros_like(conf_flow)  # flow path fed the GT flow: what a flow net could reach
        pairs = 0
        for s in FLOW_EVAL_SEEDS:
            for tk in FLOW_EVAL_KEYS:
                gt_full, valid_full = D.gt_flow(s, tk, tk + d)
                if valid_full.mean() < 0.3:
                    continue
                (_, kimg, _, _), (_, cimg, clab, _) = list(D.iter_frames(s, [tk, tk + d]))
                kb, cb = region_batch(kimg), region_batch(cimg)
                klg = seg.run(["logits"], {"image": kb})[0]
                clg = seg.run(["logits"], {"image": cb})[0]
                fl = run_flow(kb, cb)[0]
                rh, rw = kb.shape[1:3]
                gt_small, v_small = D.flow_to_grid(gt_full, valid_full)
                for r, lab in enumerate(D.regions(clab)):
                    gy, gx = (r // 2) * rh // 4, (r % 2) * rw // 4
                    g = gt_small[:, gy : gy + rh // 4, gx : gx + rw // 4]
                    v = v_small[gy : gy + rh // 4, gx : gx + rw // 4]
                    epe_sum += float(np.linalg.norm(fl[r] - g, axis=0)[v].sum())
                    zero_sum += float(np.linalg.norm(g, axis=0)[v].sum())
                    n_valid += int(v.sum())
                    conf_flow += confusion(flow_path(klg[r], fl[r], rh, rw), lab)  # type: ignore[arg-type]
                    conf_gt += confusion(flow_path(klg[r], np.ascontiguousarray(g), rh, rw), lab)  # type: ignore[arg-type]
                    conf_copy += confusion(upsample_argmax(klg[r], rh, rw), lab)  # type: ignore[arg-type]
                    conf_seg += confusion(upsample_argmax(clg[r], rh, rw), lab)  # type: ignore[arg-type]
                pairs += 1
        res[str(d)] = {
            "pairs": pairs,
            "epe": epe_sum / max(1, n_valid),
            "epe_zero_flow": zero_sum / max(1, n_valid),
            "miou_flow_path": miou(conf_flow),
            "miou_key_copy": miou(conf_copy),
            "miou_flow_path_gt_flow": miou(conf_gt),
            "miou_seg_every_frame": miou(conf_seg),
        }
        log(f"[eval] interval {d}: {res[str(d)]}")
    return res


def dn_eval(
    seg: ort.InferenceSession, flow: ort.InferenceSession, dn: ort.InferenceSession
) -> dict[str, Any]:
    """Spearman between DN score and the measured flow-path agreement on held-out region pairs."""
    rng = np.random.default_rng(12345)
    samples = build(seg, flow, DN_EVAL_SEEDS, DN_EVAL_FRAMES, 3, 20, 20, rng)
    feats, targets, gaps = samples.arrays()
    scores = dn.run(["score"], {"features": feats})[0][:, 0]
    inseq = gaps >= 0
    return {
        "samples": int(len(targets)),
        "cross_sequence_samples": int((~inseq).sum()),
        "spearman": spearman(scores, targets),
        "spearman_within_sequence": spearman(scores[inseq], targets[inseq]),
        "mae": float(np.abs(scores - targets).mean()),
        "target_mean": float(targets.mean()),
        "score_mean": float(scores.mean()),
        "scores_finite": bool(np.isfinite(scores).all()),
    }


#: Flow sources beside flow.onnx whose flow path the card measures.
EXTRA_FLOWS = ("dis:ultrafast", "dis:medium")


def flow_sources_eval(models: Path, seg: ort.InferenceSession) -> dict[str, Any]:
    """:func:`flow_eval` for the classical flow sources (DIS presets): no weights, same pairs."""
    from dvs_cluster.core.flow import DisFlow, parse_flow_spec
    from dvs_cluster.train.dnset import cue_flow_fn

    out: dict[str, Any] = {}
    for spec in EXTRA_FLOWS:
        _, preset, scale = parse_flow_spec(spec)
        out[spec] = flow_eval(seg, cue_flow_fn(DisFlow(preset, scale)))
    return out


def dn2_eval(models: Path) -> dict[str, Any]:
    """Held-out Spearman of each shipped DN v2 (``dn2_<flow>.onnx``) on its own flow source's pairs."""
    from dvs_cluster.inference import DN2_FILES
    from dvs_cluster.train import dn2

    out: dict[str, Any] = {}
    for kind, fname in DN2_FILES.items():
        path = models / fname
        if not path.is_file():
            continue
        spec = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_modelmeta()
        flow = spec.custom_metadata_map.get("flow_source", kind)
        ev = dn2.samples(models, flow, list(dn2.EVAL_SEEDS), dn2.EVAL_FRAMES, 3, 20, 12345)
        out[kind] = {**dn2.evaluate(session(path, 2), ev), "flow_source": flow, "seeds": list(dn2.EVAL_SEEDS)}
        log(f"[eval] DN v2 ({flow}) {out[kind]}")
    return out


def path_costs(models: Path, repeats: int = 20) -> dict[str, Any]:
    """
    Cost (ms per 512x256 region) of a whole seg-path step and a whole flow-path step, per flow source.

    Measured through the runtime's own processor (1 intra-op thread, the components interleaved), on
    a real pair of the synthetic video: what a slave core pays, decision included.
    """
    import statistics

    from dvs_cluster.core.keys import KeyFrame
    from dvs_cluster.core.policy import DVSNetPolicy, FixedIntervalPolicy, SegPathPolicy
    from dvs_cluster.core.processor import RegionProcessor
    from dvs_cluster.inference import DN2_FILES, OnnxModels, ThreadPolicy

    (_, kimg, _, _), (_, cimg, _, _) = list(D.iter_frames(D.EVAL_SEED0 + 30, [20, 21]))
    key_img, cur = (np.ascontiguousarray(D.regions(x)[2]) for x in (kimg, cimg))
    out: dict[str, Any] = {"region": [512, 256], "threads": 1}
    flows = ["onnx"] + [f for f in ("dis",) if (models / DN2_FILES["dis"]).is_file()]
    for flow in flows:
        m = OnnxModels(models, threads=ThreadPolicy(1), flow=flow)
        key = KeyFrame(0, key_img, m.seg(key_img))
        seg_p, flow_p = RegionProcessor(m, SegPathPolicy()), RegionProcessor(m, FixedIntervalPolicy(10**6))
        decide = RegionProcessor(m, DVSNetPolicy(-1.0))  # always the flow path, after flow + DN
        t_seg: list[float] = []
        t_flow: list[float] = []
        t_dec: list[float] = []
        for _ in range(repeats):
            t_seg.append(seg_p.process(0, 1, cur, key).total_ms)
            t_flow.append(flow_p.process(0, 1, cur, key).total_ms)
            t_dec.append(decide.process(0, 1, cur, key).total_ms)
        out[m.flow_source] = {
            "dn": m.dn_version,
            "seg_path_ms": statistics.median(t_seg),
            "flow_path_ms": statistics.median(t_flow),
            "flow_path_with_decision_ms": statistics.median(t_dec),
            "ratio": statistics.median(t_seg) / statistics.median(t_dec),
        }
        log(f"[eval] path costs {m.flow_source}: {out[m.flow_source]}")
    return out


def confusion_summary(conf: npt.NDArray[np.int64]) -> dict[str, Any]:
    """
    Per class: its share of the labelled pixels and the class its pixels are most often taken for.

    Says where the mIoU goes: a class with a tiny share weighs as much in the mean as road, and a
    class mostly predicted as one other class points at what the net cannot tell apart.
    """
    total = max(1, int(conf.sum()))
    share: dict[str, float | None] = {}
    confused: dict[str, list[Any] | None] = {}
    for c in range(NUM_CLASSES):
        n = int(conf[c].sum())
        share[CLASS_NAMES[c]] = n / total * 100 if n else None
        off = conf[c].copy()
        off[c] = 0
        j = int(off.argmax())
        confused[CLASS_NAMES[c]] = [CLASS_NAMES[j], float(off[j] / n * 100)] if n and off[j] else None
    return {"pixel_share": share, "confused_with": confused}


def evaluate(models: Path, quick: bool = False) -> dict[str, Any]:
    """All metrics as one dict (quick: seg and cost only, for smoke runs)."""
    t0 = time.time()
    seg = session(models / "seg.onnx", 2)
    flow = session(models / "flow.onnx", 2)
    dn = session(models / "dn.onnx", 2)
    conf = seg_eval(seg)
    iou, present = iou_per_class(conf)
    out: dict[str, Any] = {
        "seg": {
            "miou": miou(conf),
            "per_class_iou": {
                CLASS_NAMES[c]: (float(iou[c] * 100) if present[c] else None) for c in range(NUM_CLASSES)
            },
            "pixel_accuracy": float(np.diag(conf).sum() / max(1, conf.sum()) * 100),
            **confusion_summary(conf),
            "seeds": list(SEG_EVAL_SEEDS),
            "frames": [k * SEG_EVAL_STRIDE for k in range(SEG_EVAL_FRAMES)],
        }
    }
    log(f"[eval] seg mIoU {out['seg']['miou']:.2f}")
    if not quick:
        out["flow"] = {
            "by_interval": flow_eval(seg, flow),
            "seeds": list(FLOW_EVAL_SEEDS),
            "key_frames": list(FLOW_EVAL_KEYS),
            "unit": "pixels of the H/4 x W/4 grid",
        }
        out["dn"] = dn_eval(seg, flow, dn)
        out["dn"]["seeds"] = list(DN_EVAL_SEEDS)
        log(f"[eval] DN {out['dn']}")
        out["flow_sources"] = flow_sources_eval(models, seg)
        out["dn2"] = dn2_eval(models)
    out["cost"] = measure(models)
    out["paths"] = path_costs(models)
    out["sizes_mb"] = {p.name: round(p.stat().st_size / 1e6, 3) for p in sorted(models.glob("*.onnx"))}
    out["eval_seconds"] = round(time.time() - t0, 1)
    return out


def real_sections(
    models: Path,
    camvid: str | None,
    split: str = "test",
    video: str | None = None,
    video_frames: int | None = None,
    threshold: float | None = None,
) -> dict[str, Any] | None:
    """The optional real-data sections (``camvid``, ``video``); None when an explicit --camvid is missing."""
    from dvs_cluster.train import realeval

    out: dict[str, Any] = {}
    if camvid:
        root = realeval.find_camvid(None if camvid == "auto" else camvid)
        if root is None and camvid != "auto":
            print(f"CamVid not found at {camvid}", file=sys.stderr)
            return None
        if root is None:
            log("[eval] CamVid not found (auto): CamVid section skipped")
        else:
            out["camvid"] = realeval.camvid_eval(session(models / "seg.onnx", 2), root, split)
    if video:
        out["video"] = realeval.run_video(models, video, threshold, video_frames)
    return out


def main(argv: list[str] | None = None) -> int:
    """Write metrics.json and the model card (python -m dvs_cluster.train.evaluate --models DIR)."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--models", type=Path, default=Path("models"))
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--no-card", action="store_true")
    ap.add_argument(
        "--camvid", help="add CamVid mIoU: a CamVid folder, or 'auto' (env/cache; skipped when absent)"
    )
    ap.add_argument("--camvid-split", default="test")
    ap.add_argument("--video", help="add the DVS vs seg-path agreement on this video (realeval.frames_from)")
    ap.add_argument("--video-frames", type=int, default=None, help="first N frames of --video only")
    ap.add_argument(
        "--threshold", type=float, default=None, help="DN threshold of --video (default: models')"
    )
    ap.add_argument(
        "--real-only",
        action="store_true",
        help="only the --camvid/--video sections, merged into metrics.json",
    )
    a = ap.parse_args(argv)
    cmd = "python -m dvs_cluster.train.evaluate " + " ".join(
        shlex.quote(x) for x in (argv if argv is not None else sys.argv[1:])
    )
    real = real_sections(a.models, a.camvid, a.camvid_split, a.video, a.video_frames, a.threshold)
    if real is None:
        return 2
    if a.real_only:
        old = a.models / "metrics.json"
        m = json.loads(old.read_text()) if old.exists() else {}
        m.pop("camvid", None)
        m.pop("video", None)
        m["real_command"] = cmd
    else:
        m = evaluate(a.models, a.quick)
        m["command"] = cmd
    m.update(real)
    (a.models / "metrics.json").write_text(json.dumps(m, indent=2))
    if not a.no_card:
        from dvs_cluster.train.card import write_card

        write_card(a.models)
    json.dump({k: m[k] for k in ("seg", "cost", "camvid", "video") if k in m}, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
