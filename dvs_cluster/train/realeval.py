"""
Evaluation on real data with the ONNX files (onnxruntime, no torch).

- :func:`camvid_eval`: mIoU over CamVid's 11 classes on a split (default test), through the product's
  own pipeline: letterbox the 480x360 frame to 1024x512 (``io/sources.FrameTransform``), split 2x2,
  seg net per 512x256 region, upsample + argmax, assemble, map back to the 480x360 label grid.
  Two scores from one confusion matrix (CamVid class x predicted trainId):
  *grouped* folds the predicted trainIds into CamVid classes through ``datasets.CAMVID_SETS`` (a
  truck on a CamVid "Car" pixel is right: CamVid's Car includes trucks and buses) and is the number
  comparable to the literature (ENet 51.3 %); *strict* requires the canonical trainId of each class.
- :func:`video_agreement`: a real video without labels played through DVSNet (``SingleEngine``,
  DVSNet policy at the given threshold) and through the seg path (every region segmented); the share
  of equal pixels per frame and the engine-time speedup.

CLI: ``python -m dvs_cluster.train.realeval --models models --camvid auto --video FILE``
(``evaluate.py --camvid/--video`` runs the same and puts the results into metrics.json and the card).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from dvs_cluster.core.classes import CLASS_NAMES, IGNORE_LABEL, NUM_CLASSES
from dvs_cluster.train.data import log
from dvs_cluster.train.datasets import (
    CAMVID_CLASSES,
    CAMVID_TO_TRAINID,
    RUNTIME_H,
    RUNTIME_W,
    camvid_pairs,
    find_camvid,
    read_label,
    read_rgb,
    trainid_to_camvid,
)

U8 = npt.NDArray[np.uint8]
I64 = npt.NDArray[np.int64]


def segment_frame(seg: Any, image: U8, width: int = RUNTIME_W, height: int = RUNTIME_H) -> U8:
    """
    Seg-path labels of one camera image at its native size, as the product computes them.

    ``seg`` is an onnxruntime session of seg.onnx. Letterbox to width x height, 2x2 regions in one
    batch, bilinear upsampling of the logits + argmax per region, labels mapped back (nearest).
    """
    from dvs_cluster.io.frame import FrameTransform
    from dvs_cluster.train.dnset import region_batch
    from dvs_cluster.train.flowpath import upsample_argmax

    tf = FrameTransform(image.shape[1], image.shape[0], width, height)
    frame = tf.forward(image)
    rb = region_batch(frame)
    lg = seg.run(["logits"], {"image": rb})[0]
    rh, rw = rb.shape[1:3]
    parts = [upsample_argmax(lg[r], rh, rw) for r in range(4)]
    full = np.block([[parts[0], parts[1]], [parts[2], parts[3]]]).astype(np.uint8)
    return tf.labels_back(full)


def camvid_confusion(pred: U8, gt_camvid: U8) -> I64:
    """(11, 19) counts: CamVid class of the ground truth x predicted trainId (unlabelled left out)."""
    m = gt_camvid < len(CAMVID_CLASSES)
    idx = gt_camvid[m].astype(np.int64) * NUM_CLASSES + pred[m].astype(np.int64)
    return np.bincount(idx, minlength=len(CAMVID_CLASSES) * NUM_CLASSES).reshape(
        len(CAMVID_CLASSES), NUM_CLASSES
    )


def _ious(conf: I64) -> npt.NDArray[np.float64]:
    tp = np.diag(conf).astype(np.float64)
    denom = conf.sum(0) + conf.sum(1) - tp
    out: npt.NDArray[np.float64] = np.where(denom > 0, tp / np.maximum(denom, 1), np.nan)
    return out


def camvid_scores(conf: I64) -> dict[str, Any]:
    """Grouped and strict per-class IoU / mIoU (%) and pixel accuracy from the (11, 19) confusion."""
    k = len(CAMVID_CLASSES)
    fold = trainid_to_camvid()[:NUM_CLASSES]
    grouped = np.zeros((k, k + 1), np.int64)  # last column: predicted a trainId outside CamVid
    for t in range(NUM_CLASSES):
        col = int(fold[t]) if fold[t] != IGNORE_LABEL else k
        grouped[:, col] += conf[:, t]
    g_sq = grouped[:, :k]
    # Predictions outside CamVid's classes count as false negatives only (they are no CamVid class).
    g_iou = np.diag(g_sq) / np.maximum(grouped.sum(1) + g_sq.sum(0) - np.diag(g_sq), 1)
    strict = conf[:, list(CAMVID_TO_TRAINID)]  # (11, 11) canonical trainIds
    s_tp = np.diag(strict).astype(np.float64)
    s_iou = s_tp / np.maximum(conf.sum(1) + strict.sum(0) - s_tp, 1)
    present = conf.sum(1) > 0
    return {
        "miou": float(np.mean(g_iou[present]) * 100),
        "miou_strict_trainids": float(np.mean(s_iou[present]) * 100),
        "pixel_accuracy": float(np.diag(g_sq).sum() / max(1, conf.sum()) * 100),
        "per_class_iou": {
            CAMVID_CLASSES[c]: (float(g_iou[c] * 100) if present[c] else None) for c in range(k)
        },
        "per_class_iou_strict": {
            f"{CAMVID_CLASSES[c]} -> {CLASS_NAMES[CAMVID_TO_TRAINID[c]]}": (
                float(s_iou[c] * 100) if present[c] else None
            )
            for c in range(k)
        },
        "confusion": conf.tolist(),
    }


def camvid_eval(seg: Any, root: Path, split: str = "test", limit: int | None = None) -> dict[str, Any]:
    """CamVid mIoU of seg.onnx (session) on ``split`` through the run-time pipeline (see module doc)."""
    t0 = time.time()
    pairs = camvid_pairs(root, split)
    raw = np.arange(256, dtype=np.uint8)  # keep CamVid's own class ids
    conf = np.zeros((len(CAMVID_CLASSES), NUM_CLASSES), np.int64)
    n = len(pairs) if limit is None else min(limit, len(pairs))
    for i in range(n):
        img = read_rgb(pairs.images[i])
        gt = read_label(pairs.labels[i], raw)
        conf += camvid_confusion(segment_frame(seg, img), gt)
    out = camvid_scores(conf)
    out.update(
        {
            "split": split,
            "images": n,
            "pipeline": f"letterbox {img.shape[1]}x{img.shape[0]} -> {RUNTIME_W}x{RUNTIME_H}, 2x2 regions "
            f"of {RUNTIME_W // 2}x{RUNTIME_H // 2}, labels back to {img.shape[1]}x{img.shape[0]}",
            "seconds": round(time.time() - t0, 1),
        }
    )
    log(f"[camvid] {split}: mIoU {out['miou']:.2f} (strict {out['miou_strict_trainids']:.2f}) on {n} images")
    return out


def camvid_score_labels(root: Path, split: str, labels_dir: Path, limit: int | None = None) -> dict[str, Any]:
    """
    CamVid mIoU of label PNGs that ``dvs-cluster segment --source <root>/<split> --save-labels DIR`` wrote.

    The CLI reads an image folder in file-name order and numbers its PNGs 000000.png, ... in that
    order, so the i-th PNG is the split's i-th image by name. The same scores as :func:`camvid_eval`,
    from the product's command instead of this module's pipeline (test_camvid checks that they agree).
    """
    pairs = camvid_pairs(root, split)
    order = sorted(range(len(pairs.images)), key=lambda i: pairs.images[i].name)
    n = len(order) if limit is None else min(limit, len(order))
    pngs = sorted(labels_dir.glob("*.png"))
    if len(pngs) != n:
        raise ValueError(f"{labels_dir}: {len(pngs)} label PNGs, CamVid {split} has {n} images to score")
    raw = np.arange(256, dtype=np.uint8)
    conf = np.zeros((len(CAMVID_CLASSES), NUM_CLASSES), np.int64)
    for png, i in zip(pngs, order[:n], strict=True):
        pred = cv2.imread(str(png), cv2.IMREAD_UNCHANGED)
        gt = read_label(pairs.labels[i], raw)
        if pred is None or pred.shape != gt.shape:
            got = "unreadable" if pred is None else f"{pred.shape[1]}x{pred.shape[0]}"
            raise ValueError(
                f"{png}: {got}, its CamVid label {pairs.labels[i].name} is {gt.shape[1]}x{gt.shape[0]}"
            )
        conf += camvid_confusion(np.asarray(pred, np.uint8), gt)
    out = camvid_scores(conf)
    out.update({"split": split, "images": n, "labels": str(labels_dir)})
    return out


# ------------------------------------------------------------------------------------- video check


def camvid_sequence(root: Path, split: str, sequence: str) -> list[Path]:
    """The images of one CamVid sequence in a split, in frame order (1 s apart for most sequences)."""
    return sorted(p for p in (root / split).glob(f"{sequence}_*") if p.suffix in (".jpg", ".png"))


def frames_from(spec: str, max_frames: int | None = None) -> Iterator[U8]:
    """
    Processing-size (1024x512, letterboxed) RGB frames from a video spec.

    ``camvid:SPLIT:SEQUENCE`` (e.g. ``camvid:test:Seq05VD``) plays a CamVid sequence's images in
    order; anything else goes to ``io/sources.open_source`` (video file, image folder, camera).
    """
    if spec.startswith("camvid:"):
        _, split, seq = (spec.split(":") + ["", ""])[:3]
        root = find_camvid()
        if root is None:
            raise FileNotFoundError("CamVid not found (set DVS_CLUSTER_CAMVID or extract to the cache)")
        from dvs_cluster.io.frame import FrameTransform

        paths = camvid_sequence(root, split or "test", seq or "Seq05VD")
        for i, p in enumerate(paths):
            if max_frames is not None and i >= max_frames:
                return
            img = read_rgb(p)
            yield FrameTransform(img.shape[1], img.shape[0], RUNTIME_W, RUNTIME_H).forward(img)
        return
    from dvs_cluster.io.sources import open_source

    with open_source(spec, frames=max_frames) as src:
        for i, f in enumerate(src):
            if max_frames is not None and i >= max_frames:
                return
            yield f.image


def video_agreement(
    models: Any, frames: Iterable[U8], threshold: float, width: int = RUNTIME_W, height: int = RUNTIME_H
) -> dict[str, Any]:
    """
    DVSNet vs seg path on every frame: % of equal pixels (per frame and overall) and speedup.

    ``models`` follows ``core.processor.Models`` (e.g. ``inference.OnnxModels``). Both engines see the
    same frames; speedup = seg-path engine time / DVSNet engine time (the engines' own clocks).
    """
    return video_sweep(models, frames, [threshold], width, height)[0]


def video_sweep(
    models: Any,
    frames: Iterable[U8],
    thresholds: list[float],
    width: int = RUNTIME_W,
    height: int = RUNTIME_H,
    max_age: int | None = None,
) -> list[dict[str, Any]]:
    """
    :func:`video_agreement` at several thresholds in one pass: the seg-path reference runs once.

    The DVS engines run the runtime's default rule: the key-age cap ``max_age`` (None: the default)
    and the propagated flow path.
    """
    from dvs_cluster.core.policy import DEFAULT_MAX_AGE, DVSNetPolicy, SegPathPolicy
    from dvs_cluster.engine import SingleEngine

    if not thresholds:
        raise ValueError("no thresholds")
    cap = DEFAULT_MAX_AGE if max_age is None else max_age
    ref = SingleEngine(models, SegPathPolicy(), width, height)
    engines = [SingleEngine(models, DVSNetPolicy(th, max_age=cap), width, height) for th in thresholds]
    n = len(engines)
    per_frame: list[list[float]] = [[] for _ in range(n)]
    t_dvs = [0.0] * n
    seg_steps = [0] * n
    steps = [0] * n
    equal = [0] * n
    t_seg = 0.0
    total = 0
    for t, img in enumerate(frames):
        b = ref.process(img, t)
        t_seg += b.latency_ms
        total += b.labels.size
        for i, eng in enumerate(engines):
            a = eng.process(img, t)
            t_dvs[i] += a.latency_ms
            same = int((a.labels == b.labels).sum())
            equal[i] += same
            per_frame[i].append(same / a.labels.size * 100.0)
            seg_steps[i] += sum(p == "seg" for p in a.paths)
            steps[i] += len(a.paths)
    if not per_frame[0]:
        raise ValueError("the video has no frames")
    out = []
    for i, th in enumerate(thresholds):
        pf = np.array(per_frame[i])
        out.append(
            {
                "frames": len(pf),
                "threshold": th,
                "max_age": cap,
                "agreement": equal[i] / max(1, total) * 100.0,
                "agreement_min_frame": float(pf.min()),
                "agreement_p10_frame": float(np.percentile(pf, 10)),
                "seg_fraction": seg_steps[i] / max(1, steps[i]),
                "dvs_ms_per_frame": t_dvs[i] / len(pf),
                "segpath_ms_per_frame": t_seg / len(pf),
                "speedup": t_seg / max(t_dvs[i], 1e-9),
            }
        )
    return out


def run_video(
    models_dir: Path, spec: str, threshold: float | None, max_frames: int | None, flow: str | None = None
) -> dict[str, Any]:
    """Open the models with 1 intra-op thread (one board core) and run :func:`video_agreement`."""
    from dvs_cluster.inference import DEFAULT_FLOW, OnnxModels, ThreadPolicy
    from dvs_cluster.model_defaults import default_threshold

    models = OnnxModels(models_dir, threads=ThreadPolicy(1), flow=flow or DEFAULT_FLOW)
    thr = float(threshold if threshold is not None else default_threshold(models))
    t0 = time.time()
    out = video_agreement(models, frames_from(spec, max_frames), thr)
    out["video"] = spec
    out["seconds"] = round(time.time() - t0, 1)
    log(
        f"[video] {spec}: agreement {out['agreement']:.2f} % at {out['speedup']:.2f}x "
        f"(seg fraction {out['seg_fraction']:.3f}, {out['frames']} frames, threshold {thr})"
    )
    return out


def main(argv: list[str] | None = None) -> int:
    """Print CamVid and/or video results as JSON (does not touch metrics.json or the card)."""
    from dvs_cluster.train.cost import session

    ap = argparse.ArgumentParser(prog="python -m dvs_cluster.train.realeval", description=__doc__)
    ap.add_argument("--models", type=Path, default=Path("models"))
    ap.add_argument("--camvid", help="CamVid folder, or 'auto' ($DVS_CLUSTER_CAMVID / user cache)")
    ap.add_argument("--split", default="test")
    ap.add_argument("--limit", type=int, default=None, help="first N images only (smoke runs)")
    ap.add_argument("--video", help="video file / image folder / camvid:SPLIT:SEQUENCE")
    ap.add_argument("--threshold", type=float, default=None, help="default: the models' default")
    ap.add_argument(
        "--sweep", default=None, help="comma list of thresholds: agreement/speedup at each, one pass"
    )
    ap.add_argument("--first-frame", type=int, default=0, help="skip the video's first N frames")
    ap.add_argument("--max-frames", type=int, default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--flow", default=None, help="flow source (default: the runtime's)")
    ap.add_argument(
        "--labels",
        type=Path,
        default=None,
        help="with --camvid: score these PNGs (`dvs-cluster segment --source CAMVID/SPLIT --save-labels`)",
    )
    a = ap.parse_args(argv)
    out: dict[str, Any] = {}
    root = find_camvid(None if a.camvid == "auto" else a.camvid) if a.camvid else None
    if a.camvid and root is None:
        print(f"CamVid not found at {a.camvid}", file=sys.stderr)
        return 2
    if a.labels is not None and root is None:
        print("--labels needs --camvid (the labels to score against)", file=sys.stderr)
        return 2
    if root is not None and a.labels is not None:
        try:
            out["camvid"] = camvid_score_labels(root, a.split, a.labels, a.limit)
        except (ValueError, FileNotFoundError) as e:
            print(f"--labels: {e}", file=sys.stderr)
            return 2
        out["camvid"].pop("confusion")
        log(f"[camvid] {a.split}: mIoU {out['camvid']['miou']:.2f} from {a.labels}")
    elif root is not None:
        seg = session(a.models / "seg.onnx", a.threads)
        out["camvid"] = camvid_eval(seg, root, a.split, a.limit)
        out["camvid"].pop("confusion")
    if a.video and a.sweep:
        from dvs_cluster.inference import DEFAULT_FLOW, OnnxModels, ThreadPolicy

        ths = [float(x) for x in a.sweep.split(",") if x.strip()]
        models = OnnxModels(a.models, threads=ThreadPolicy(a.threads), flow=a.flow or DEFAULT_FLOW)
        frames = frames_from(a.video, None if a.max_frames is None else a.first_frame + a.max_frames)
        out["video_sweep"] = video_sweep(models, itertools.islice(frames, a.first_frame, None), ths)
        for r in out["video_sweep"]:
            log(
                f"[sweep] th {r['threshold']:g}: agreement {r['agreement']:.2f} % at {r['speedup']:.2f}x "
                f"(seg fraction {r['seg_fraction']:.3f})"
            )
    elif a.video:
        out["video"] = run_video(a.models, a.video, a.threshold, a.max_frames, a.flow)
    json.dump(out, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
