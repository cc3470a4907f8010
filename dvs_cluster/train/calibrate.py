"""
`python -m dvs_cluster.train.calibrate OUT IN`: per-class logit biases for a finished seg-net state.

The seg net is trained with class-weighted cross-entropy (rare classes weigh more), which moves its
decision boundaries towards the rare classes: good for their recall, but mIoU also counts their false
positives, and on CamVid the trained net over-predicts bus, bicycle and rider against road, building,
vegetation. A per-class bias on the logits (post-hoc logit adjustment, Menon et al. 2021) moves the
boundaries back; it is added to the classifier's bias, so the exported graph and its cost do not change.

The biases are chosen on the *training* data only, by coordinate ascent of the grouped CamVid mIoU on
the budget's CamVid splits (train + val: never test) through the run-time pipeline (letterbox, 2x2
regions, bilinear upsampling, labels back to the image grid), subject to the synthetic training frames'
19-class mIoU losing at most ``--synth-drop`` points, so the synthetic domain keeps what it has. The
result is a finished slim state of the same budget: copy it to ``--work/lite_state.pt`` and
``python -m dvs_cluster.train.lite --budget <budget> --resume`` exports it; the card's command list
then holds this command too, and ``training.json`` the biases and the scores before and after.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from dvs_cluster.core.classes import NUM_CLASSES
from dvs_cluster.train import data as D
from dvs_cluster.train import datasets as R
from dvs_cluster.train.flowpath import confusion, miou, upsample
from dvs_cluster.train.lite import LITE_BUDGETS, build_net, save_state
from dvs_cluster.train.realeval import camvid_confusion, camvid_scores

F32 = npt.NDArray[np.float32]
U8 = npt.NDArray[np.uint8]
STEPS = (-1.0, -0.5, -0.25, 0.25, 0.5, 1.0)


@dataclass
class Pixels:
    """Logits (n, 19) as the run time upsamples them, at sampled label pixels, and their labels (n,)."""

    logits: F32
    labels: U8


def _region_logits(net: torch.nn.Module, frame: U8) -> F32:
    """The 1024x512 frame's logits at full size: 2x2 regions, bilinear upsampling (as at run time)."""
    from dvs_cluster.train.dnset import region_batch

    rb = region_batch(frame)
    with torch.no_grad():
        lg = net(torch.from_numpy(rb)).numpy()
    up = [upsample(lg[r], rb.shape[1], rb.shape[2]) for r in range(4)]
    out: F32 = np.concatenate([np.concatenate(up[:2], 1), np.concatenate(up[2:], 1)], 0)
    return out


def camvid_pixels(
    net: torch.nn.Module, root: Path, splits: tuple[str, ...], sub: int, limit: int | None
) -> Pixels:
    """Every ``sub``-th label pixel of the splits' images, CamVid class ids (void dropped)."""
    from dvs_cluster.io.frame import FrameTransform

    raw = np.arange(256, dtype=np.uint8)
    logits, labels = [], []
    for split in splits:
        pairs = R.camvid_pairs(root, split)
        n = len(pairs.images) if limit is None else min(limit, len(pairs.images))
        for i in range(n):
            img = R.read_rgb(pairs.images[i])
            gt = R.read_label(pairs.labels[i], raw)
            tf = FrameTransform(img.shape[1], img.shape[0], R.RUNTIME_W, R.RUNTIME_H)
            full = _region_logits(net, tf.forward(img))
            ox, oy, cw, ch = tf.content
            h, w = gt.shape
            # cv2's nearest resize (FrameTransform.labels_back) reads source pixel floor(dst * scale).
            ys = oy + np.floor(np.arange(0, h, sub) * ch / h).astype(np.int64)
            xs = ox + np.floor(np.arange(0, w, sub) * cw / w).astype(np.int64)
            lab = gt[::sub, ::sub].reshape(-1)
            keep = lab < len(R.CAMVID_CLASSES)
            logits.append(full[ys][:, xs].reshape(-1, NUM_CLASSES)[keep])
            labels.append(lab[keep])
    return Pixels(np.concatenate(logits), np.concatenate(labels))


def synth_pixels(net: torch.nn.Module, seeds: list[int], frames: int, stride: int, sub: int) -> Pixels:
    """Every ``sub``-th pixel of synthetic training frames (trainIds, ignore dropped)."""
    logits, labels = [], []
    for s in seeds:
        for _, img, lab, _cut in D.iter_frames(s, [k * stride for k in range(frames)]):
            full = _region_logits(net, img)
            lg = full[::sub, ::sub].reshape(-1, NUM_CLASSES)
            lb = lab[::sub, ::sub].reshape(-1)
            keep = lb < NUM_CLASSES
            logits.append(lg[keep])
            labels.append(lb[keep])
    return Pixels(np.concatenate(logits), np.concatenate(labels))


def camvid_miou(p: Pixels, bias: F32) -> float:
    pred = (p.logits + bias).argmax(1).astype(np.uint8)
    return float(camvid_scores(camvid_confusion(pred, p.labels))["miou"])


def synth_miou(p: Pixels, bias: F32) -> float:
    return float(miou(confusion((p.logits + bias).argmax(1).astype(np.uint8), p.labels)))


def fit_bias(cv: Pixels, syn: Pixels, synth_drop: float, rounds: int = 3) -> tuple[F32, dict[str, float]]:
    """Coordinate ascent of CamVid mIoU over the 19 biases, the synthetic mIoU held within the drop."""
    bias = np.zeros(NUM_CLASSES, np.float32)
    cv0, syn0 = camvid_miou(cv, bias), synth_miou(syn, bias)
    best = cv0
    for _ in range(rounds):
        moved = False
        for c in range(NUM_CLASSES):
            for d in STEPS:
                t = bias.copy()
                t[c] += d
                s = camvid_miou(cv, t)
                if s > best + 1e-3 and synth_miou(syn, t) >= syn0 - synth_drop:
                    best, bias, moved = s, t, True
        if not moved:
            break
    scores = {
        "camvid_train_miou_before": round(cv0, 2),
        "camvid_train_miou_after": round(best, 2),
        "synth_train_miou_before": round(syn0, 2),
        "synth_train_miou_after": round(synth_miou(syn, bias), 2),
    }
    return bias, scores


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m dvs_cluster.train.calibrate", description=__doc__)
    ap.add_argument("out", type=Path, help="the calibrated state (finished, slim)")
    ap.add_argument("state", type=Path, help="a finished training state of train/lite.py (or train/soup.py)")
    ap.add_argument("--camvid", default="auto", help="CamVid folder or 'auto' (see datasets.find_camvid)")
    ap.add_argument("--camvid-tar", type=Path, default=None, help="extract this tar to the cache if needed")
    ap.add_argument("--camvid-limit", type=int, default=None, help="images per split (tests)")
    ap.add_argument("--synth-seeds", type=int, default=16, help="synthetic training sequences")
    ap.add_argument("--synth-drop", type=float, default=1.0, help="most synthetic mIoU points to give up")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args(argv)
    cmd = "python -m dvs_cluster.train.calibrate " + " ".join(
        shlex.quote(x) for x in (argv if argv is not None else sys.argv[1:])
    )
    torch.set_num_threads(a.threads)
    if not a.state.is_file():
        print(f"calibrate: no state file at {a.state}", file=sys.stderr)
        return 2
    try:
        st: dict[str, Any] = torch.load(a.state, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001 - any unreadable file is the same one-line error
        print(f"calibrate: {a.state}: not a training state ({type(e).__name__})", file=sys.stderr)
        return 2
    if not isinstance(st, dict) or not st.get("done") or st.get("budget_name") not in LITE_BUDGETS:
        print(f"calibrate: {a.state}: not a finished state of a lite budget", file=sys.stderr)
        return 2
    if st.get("calibration"):
        print(f"calibrate: {a.state} is calibrated already (its biases would add up)", file=sys.stderr)
        return 2
    root = R.camvid_root(None if a.camvid == "auto" else a.camvid, a.camvid_tar)
    if root is None:
        print("CamVid not found: pass --camvid DIR or --camvid-tar camvid.tar", file=sys.stderr)
        return 2
    b = LITE_BUDGETS[st["budget_name"]]
    net = build_net(b, pretrained=False)
    net.load_state_dict(st["state_dict"])
    net.eval()
    t0 = time.time()
    cv = camvid_pixels(net, root, b.camvid_splits, 2, a.camvid_limit)
    seeds = list(range(D.SEG_SEED0, D.SEG_SEED0 + a.synth_seeds))
    syn = synth_pixels(net, seeds, 4, 33, 2)
    n_cv, n_syn, secs = len(cv.labels), len(syn.labels), time.time() - t0
    D.log(f"[calibrate] logits of {n_cv:,} CamVid and {n_syn:,} synthetic pixels in {secs:.0f} s")
    bias, scores = fit_bias(cv, syn, a.synth_drop)
    D.log(
        f"[calibrate] CamVid {'+'.join(b.camvid_splits)} mIoU {scores['camvid_train_miou_before']} -> "
        f"{scores['camvid_train_miou_after']}, synthetic training frames "
        f"{scores['synth_train_miou_before']} -> "
        f"{scores['synth_train_miou_after']}; biases {np.round(bias, 2).tolist()}"
    )
    sd = dict(st["state_dict"])
    sd["cls.bias"] = sd["cls.bias"] + torch.from_numpy(bias)
    out = {
        **st,
        "state_dict": sd,
        "optimizer": None,
        "slim": True,
        "commands": [*st.get("commands", []), cmd],
        "calibration": {
            "bias": [round(float(x), 4) for x in bias],
            "data": f"CamVid {'+'.join(b.camvid_splits)} (every 2nd label pixel), synthetic seeds "
            f"{seeds[0]}-{seeds[-1]} x 4 frames; test never seen",
            "synth_drop": a.synth_drop,
            "seconds": round(time.time() - t0, 1),
            **scores,
        },
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    save_state(a.out, out)
    D.log(f"[calibrate] {a.out}: budget {st['budget_name']}, seconds {time.time() - t0:.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
