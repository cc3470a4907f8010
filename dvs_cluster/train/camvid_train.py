"""
`python -m dvs_cluster.train.camvid_train`: the seg net on synthetic + CamVid, then the DN re-fitted to it.

Stages (issue 9): (1) seg net trained on a mix of synthetic frames (``data.make_seg_set``) and real
CamVid images (``datasets.py``: run-time scale x jitter, crops, flips), every batch holding both;
(2) export seg.onnx; (3) flow.onnx is copied from ``--base`` (the flow net stays trained on synthetic
ground-truth flow); (4) the DN is retrained on targets measured with the *new* seg net (its target is
the flow path's agreement with the seg net); (5) optional ``--eval``: ``evaluate.py`` with the CamVid
and video sections. Budgets live in :data:`CAMVID_BUDGETS`, beside (not inside) ``cli.BUDGETS``.

CamVid pixels use set-valued targets by default (``datasets.CAMVID_SETS``: e.g. a CamVid "Car" pixel
accepts car, truck, bus and train): the loss is -log of the summed probability of the accepted
trainIds, class-weighted by the canonical trainId; synthetic pixels use the plain weighted CE.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from dvs_cluster.core.classes import IGNORE_LABEL, NUM_CLASSES
from dvs_cluster.train import data as D
from dvs_cluster.train import datasets as R
from dvs_cluster.train.cli import BUDGETS, _example_region, _export_checked, _size_mb
from dvs_cluster.train.data import class_frequencies, log, seg_crops
from dvs_cluster.train.loops import LoopConfig, LoopResult, _jitter, _run, train_dn
from dvs_cluster.train.nets import DecisionNet, SegConfig, SegNet, param_count

# Seg net widths. "default" is the shipped architecture (SegConfig()); "wide" was sized with
# train/cost.py (see docs/CAMVID.md for its measured cost and training speed).
SEG_WIDTHS: dict[str, SegConfig] = {
    "default": SegConfig(),
    "wide": SegConfig(stem=32, c4=64, c8=128, c16=256, c32=384, n16=6, n32=4, ctx=192, dec=128),
    # Sized for a GPU run (2.0 M and 3.2 M params; ~1.55x and ~2.3x the default's CPU cost per region,
    # both inside the 80 ms budget: docs/CAMVID.md).
    "large": SegConfig(stem=32, c4=64, c8=160, c16=256, c32=448, n16=8, n32=4, ctx=256, dec=160),
    "xlarge": SegConfig(stem=32, c4=96, c8=192, c16=320, c32=512, n16=8, n32=6, ctx=256, dec=192),
}


@dataclass(frozen=True)
class CamvidBudget:
    """Everything that sets the cost of a mixed training run."""

    seg_seeds: int  # synthetic sequences (seeds from data.SEG_SEED0)
    seg_frames: int
    seg_stride: int
    camvid_splits: tuple[str, ...]  # CamVid splits trained on ("train" or "train", "val")
    camvid_limit: int | None  # images per split (None: all)
    real_per_batch: int  # CamVid crops in each batch (the rest synthetic)
    jitter: tuple[float, float]  # scale jitter around the run-time scale
    set_targets: bool  # CamVid set-valued targets (else the canonical trainId only)
    width: str  # key of SEG_WIDTHS
    seg: LoopConfig
    dn_budget: str  # DN data/loop sizes taken from cli.BUDGETS[dn_budget]
    # Real-image DN pairs (dnset.build_real: simulated camera motion, no labels) per training image;
    # 0 = synthetic pairs only. Off in the shipped budgets: 3 per image did not move the real-video
    # agreement (docs/CAMVID.md), so --dn-real-pairs N is an experiment switch.
    dn_real_pairs: int = 0
    dn_real_max_gap: int = 10
    dn_seeds: int | None = None  # override of the DN budget's synthetic sequences
    dn_steps: int | None = None  # and of its loop steps
    # "cpu": numpy crop loops (data.seg_crops / datasets.real_crops); "device": devcrops.DeviceCrops,
    # the sets held and cropped on the training device (what a GPU needs to be kept busy).
    sampler: str = "cpu"
    rare: float = 0.0  # share of crops placed by rare-class sampling (device sampler only)
    data_workers: int = 1  # processes rendering the synthetic frames


CAMVID_BUDGETS: dict[str, CamvidBudget] = {
    # Tests / smoke: a few steps on a handful of images.
    "camvid-tiny": CamvidBudget(
        seg_seeds=1,
        seg_frames=2,
        seg_stride=5,
        camvid_splits=("train",),
        camvid_limit=4,
        real_per_batch=1,
        jitter=(0.75, 1.5),
        set_targets=True,
        width="default",
        seg=LoopConfig(2, 2, 128, 128, 1e-3, log_every=1),
        dn_budget="tiny",
        dn_real_pairs=1,
    ),
    # The model for issue 9: CamVid train only (val stays for model selection / honesty), 5 of 8 crops
    # real. Steps or 75 min of loop, whichever ends first (docs/CAMVID.md has the measured step rate).
    "camvid": CamvidBudget(
        seg_seeds=32,
        seg_frames=12,
        seg_stride=11,
        camvid_splits=("train",),
        camvid_limit=None,
        real_per_batch=5,
        jitter=(0.75, 1.5),
        set_targets=True,
        width="default",
        seg=LoopConfig(12000, 8, 256, 256, 3e-3, max_seconds=4500),
        dn_budget="full",
    ),
    # Same, trained on CamVid train + val (the final model once the recipe is fixed on val).
    "camvid-trainval": CamvidBudget(
        seg_seeds=32,
        seg_frames=12,
        seg_stride=11,
        camvid_splits=("train", "val"),
        camvid_limit=None,
        real_per_batch=5,
        jitter=(0.75, 1.5),
        set_targets=True,
        width="default",
        seg=LoopConfig(12000, 8, 256, 256, 3e-3, max_seconds=4500),
        dn_budget="full",
    ),
    # Tests / smoke of the "gpu" recipe on any device: device sampler, rare-class sampling, 2 workers.
    "gpu-tiny": CamvidBudget(
        seg_seeds=2,
        seg_frames=2,
        seg_stride=5,
        camvid_splits=("train",),
        camvid_limit=4,
        real_per_batch=2,
        jitter=(0.75, 1.5),
        set_targets=True,
        width="default",
        seg=LoopConfig(3, 4, 128, 256, 1e-3, log_every=1),
        dn_budget="tiny",
        sampler="device",
        rare=0.5,
        data_workers=2,
    ),
    # One GPU (issue 3's seg target): 5x the synthetic sequences, region-sized crops (256x512), 12 of
    # 32 real, half the crops placed by rare-class sampling; the wall-clock cap sets the step count.
    "gpu": CamvidBudget(
        seg_seeds=160,
        seg_frames=16,
        seg_stride=7,
        camvid_splits=("train", "val"),
        camvid_limit=None,
        real_per_batch=12,
        jitter=(0.75, 1.5),
        set_targets=True,
        width="default",
        seg=LoopConfig(60000, 32, 256, 512, 2e-3, max_seconds=600, log_every=250),
        dn_budget="full",
        sampler="device",
        rare=0.5,
        data_workers=12,
    ),
}


def mixed_class_weights(synth: D.SegSet, real: R.RealSet, real_share: float) -> Tensor:
    """ENet weights 1/ln(1.02 + p) on the batch-share-weighted class frequencies, mean 1 over present."""
    f_s = class_frequencies(synth.labels, NUM_CLASSES)
    f_r = class_frequencies(np.concatenate([lb.ravel() for lb in real.labels]), NUM_CLASSES)
    freq = (1.0 - real_share) * f_s + real_share * f_r
    w = 1.0 / np.log(1.02 + freq)
    w = np.where(freq > 0, w, 0.0)
    w = w / w[freq > 0].mean()
    return torch.tensor(np.clip(w, 0.0, 10.0), dtype=torch.float32)


def _accepted(target: Tensor, source: Tensor, sets: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(valid pixels, target with ignored pixels at 0, accepted trainIds (N, C, H, W)) of a batch."""
    valid = target != IGNORE_LABEL
    t = torch.where(valid, target, torch.zeros_like(target))
    return valid, t, sets[source.view(-1, 1, 1), t].permute(0, 3, 1, 2)


def set_cross_entropy(logits: Tensor, target: Tensor, source: Tensor, sets: Tensor, weight: Tensor) -> Tensor:
    """
    Class-weighted CE with set-valued targets.

    logits (N, C, H, W); target (N, H, W) int64 canonical trainIds, 255 ignored; source (N,) int64 index
    into sets (S, C, C) bool, sets[s, t, k] = trainId k is correct for label t of source s. Per pixel
    the loss is -log sum_{k accepted} softmax_k, weighted by weight[t]; identity sets give plain CE.
    """
    valid, t, accepted = _accepted(target, source, sets)
    logp = F.log_softmax(logits, dim=1)
    lse = torch.logsumexp(logp.masked_fill(~accepted, float("-inf")), dim=1)
    w = weight[t] * valid.to(logits.dtype)
    return -(lse * w).sum() / w.sum().clamp_min(1e-6)


def set_lovasz(logits: Tensor, target: Tensor, source: Tensor, sets: Tensor) -> Tensor:
    """
    Lovasz-softmax (Berman et al., CVPR 2018) with set-valued targets: a surrogate of mean IoU itself.

    Cross-entropy spends its gradient on the pixels of the big classes; mIoU counts a thin class's
    IoU as much as the road's. Per pixel the softmax mass of every accepted trainId counts as the
    labelled one's (the grouped CamVid score's view), then the batch's Jaccard loss of each present
    class is averaged. Sorted per class in one ``torch.sort`` over (pixels, classes): no Python loop.
    """
    valid, t, accepted = _accepted(target, source, sets)
    p = F.softmax(logits, dim=1)
    q = p.masked_fill(accepted, 0.0).scatter(1, t.unsqueeze(1), (p * accepted).sum(1, keepdim=True))
    c = logits.shape[1]
    q = q.permute(0, 2, 3, 1).reshape(-1, c)[valid.reshape(-1)]
    fg = F.one_hot(t.reshape(-1)[valid.reshape(-1)], c).to(q.dtype)
    if fg.shape[0] == 0:
        return logits.sum() * 0.0
    errors, perm = torch.sort((fg - q).abs(), dim=0, descending=True)
    fg_sorted = torch.gather(fg, 0, perm)
    gts = fg_sorted.sum(0)
    jaccard = 1.0 - (gts - fg_sorted.cumsum(0)) / (gts + (1.0 - fg_sorted).cumsum(0))
    grad = torch.cat([jaccard[:1], jaccard[1:] - jaccard[:-1]])
    per_class = (errors * grad).sum(0)
    present = gts > 0
    return per_class[present].mean()


def train_seg_mixed(
    net: SegNet,
    synth: D.SegSet,
    real: R.RealSet,
    b: CamvidBudget,
    seed: int,
    device: torch.device,
    on_checkpoint: Callable[[int, float], None] | None = None,
) -> LoopResult:
    """Every batch: (batch - real_per_batch) synthetic crops + real_per_batch CamVid crops."""
    cfg = b.seg
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    k = min(b.real_per_batch, cfg.batch)
    weights = mixed_class_weights(synth, real, k / cfg.batch).to(device)
    real_sets = real.sets if b.set_targets else R.identity_sets()
    sets = torch.from_numpy(np.stack([R.identity_sets(), real_sets])).to(device)
    source = torch.tensor([0] * (cfg.batch - k) + [1] * k, dtype=torch.int64, device=device)
    net.to(device)
    draw = _device_draw(synth, real, b, seed, device) if b.sampler == "device" else None
    # bf16 autocast on a GPU (the loss stays float32); CPU runs stay float32 as before.
    amp = device.type == "cuda"

    def step_fn(_: int) -> Tensor:
        if draw is not None:
            x, y = draw(cfg.batch - k, k)
        else:
            xs_s, ys_s = seg_crops(synth, cfg.batch - k, cfg.crop_h, cfg.crop_w, rng)
            xs_r, ys_r = R.real_crops(real, k, cfg.crop_h, cfg.crop_w, rng, b.jitter)
            x = torch.from_numpy(np.concatenate([xs_s, xs_r]))
            y = torch.from_numpy(np.concatenate([ys_s, ys_r]).astype(np.int64)).to(device)
        x = _jitter(x, gen).to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            logits = net(x)
        up = F.interpolate(logits.float(), size=y.shape[1:], mode="bilinear", align_corners=False)
        return set_cross_entropy(up, y, source, sets, weights)

    res = _run("seg", cfg, net, step_fn, list(net.parameters()), on_checkpoint=on_checkpoint)
    net.cpu()
    return res


def _device_draw(
    synth: D.SegSet, real: R.RealSet, b: CamvidBudget, seed: int, device: torch.device
) -> Callable[[int, int], tuple[Tensor, Tensor]]:
    """Both sets on ``device`` (devcrops.DeviceCrops); returns draw(n_synth, n_real) -> (x, y)."""
    from dvs_cluster.train.devcrops import DeviceCrops

    t0 = time.time()
    cs = DeviceCrops(synth.images, synth.labels, device, rare=b.rare, seed=seed)
    scales = [R.runtime_scale(im.shape[1], im.shape[0]) for im in real.images]
    cr = DeviceCrops(real.images, real.labels, device, scales, b.jitter, rare=b.rare, seed=seed + 1)
    log(f"[seg] sets on {device} in {time.time() - t0:.0f}s (rare-class sampling {b.rare:.0%} of crops)")
    cfg = b.seg

    def draw(n_synth: int, n_real: int) -> tuple[Tensor, Tensor]:
        xs, ys = cs.sample(n_synth, cfg.crop_h, cfg.crop_w)
        xr, yr = cr.sample(n_real, cfg.crop_h, cfg.crop_w)
        return torch.cat([xs, xr]), torch.cat([ys, yr])

    return draw


def _letterboxed_region(real: R.RealSet) -> Tensor:
    """Top-left 512x256 region of the first real image as the run time feeds it (export check)."""
    from dvs_cluster.io.frame import FrameTransform

    im = real.images[0]
    frame = FrameTransform(im.shape[1], im.shape[0], R.RUNTIME_W, R.RUNTIME_H).forward(im)
    return _example_region(frame[None])


def retrain_dn(
    out: Path, cb: CamvidBudget, real: list[np.ndarray] | None, seed: int, threads: int, cmd: str = ""
) -> tuple[LoopResult, dict[str, Any]]:
    """
    DN targets measured with out/seg.onnx + out/flow.onnx, DN trained and exported to out/dn.onnx.

    ``real``: images for the real-image pairs (``dnset.build_real``) when ``cb.dn_real_pairs`` > 0.
    """
    from dvs_cluster.train.cost import session
    from dvs_cluster.train.dnset import build, build_real, merge

    b = BUDGETS[cb.dn_budget]
    if cb.dn_seeds is not None:
        b = replace(b, dn_seeds=cb.dn_seeds)
    if cb.dn_steps is not None:
        b = replace(b, dn=replace(b.dn, steps=cb.dn_steps))
    rng = np.random.default_rng(seed)
    seeds = list(range(D.DN_SEED0, D.DN_SEED0 + b.dn_seeds))
    seg_s, flow_s = session(out / "seg.onnx", threads), session(out / "flow.onnx", threads)
    samples = build(seg_s, flow_s, seeds, b.dn_frames, b.dn_gaps, b.dn_max_gap, b.dn_cross, rng)
    n_synth = len(samples.targets)
    n_real = 0
    real_mean = None
    if real and cb.dn_real_pairs > 0:
        rs = build_real(seg_s, flow_s, real, cb.dn_real_pairs, cb.dn_real_max_gap, rng)
        n_real, real_mean = len(rs.targets), float(np.mean(rs.targets))
        log(f"[dn] real-image pairs: {n_real} samples, target mean {real_mean:.1f}")
        samples = merge(samples, rs)
    feats, targets, gaps = samples.arrays()
    log(f"[dn] {len(targets)} samples, target mean {targets.mean():.1f} min {targets.min():.1f}")
    dn = DecisionNet()
    res = train_dn(dn, feats, targets, b.dn, seed)
    meta = {
        "training_command": cmd,
        "train_seeds": f"{seeds[0]}-{seeds[-1]}",
        "steps": str(res.steps),
        "score": "predicted % of region pixels where the flow path agrees with the seg net (0..100)",
    }
    diff = _export_checked(dn, "dn", out / "dn.onnx", (torch.from_numpy(feats[:4]),), meta)
    return res, {
        "params": param_count(dn),
        "onnx_max_abs_diff": diff,
        "samples": int(len(targets)),
        "samples_synthetic": n_synth,
        "samples_real": n_real,
        "real_pairs": (
            f"{cb.dn_real_pairs} per image of {len(real or [])} real images, simulated camera motion "
            f"(key intervals 1..{cb.dn_real_max_gap}, 30 % static camera), no labels"
            if n_real
            else None
        ),
        "real_target_mean": None if real_mean is None else round(real_mean, 2),
        "target_mean": round(float(targets.mean()), 2),
        "target_definition": "agreement of flow path and seg net argmax at region size, "
        "pixels with GT 255 left out",
        "gaps": f"0..{b.dn_max_gap} + {int((gaps < 0).sum())} cross-sequence samples",
        "loop": asdict(b.dn),
        "size_mb": _size_mb(out / "dn.onnx"),
        "train_seeds": [seeds[0], seeds[-1]],
    }


def _export_seg(
    seg: SegNet,
    out: Path,
    example: Tensor,
    stage: dict[str, Any],
    ck: dict[str, Any],
    info: dict[str, Any],
    cmd: str,
) -> None:
    """seg.onnx into ``out`` (checked against torch) and its record into ``info`` (training.json)."""
    lo, hi = ck["seed_range"]
    meta = {
        "training_command": cmd,
        "budget": ck["budget"],
        "train_seeds": f"{lo}-{hi}",
        "train_real": ck["train_real"],
        "steps": str(stage["steps"]),
        "data_terms": "CamVid (Brostow et al. 2008): research use",
    }
    diff = _export_checked(seg, "seg", out / "seg.onnx", (example,), meta)
    info["seed_ranges"] = {**info.get("seed_ranges", {}), "seg_train": [lo, hi]}
    info["stages"]["seg"] = {**stage, "onnx_max_abs_diff": diff, "size_mb": _size_mb(out / "seg.onnx")}
    info["camvid_training"] = True


def main(argv: list[str] | None = None) -> int:
    """Train the mixed seg net (+ DN) into --out; --eval adds metrics, CamVid and video sections."""
    ap = argparse.ArgumentParser(prog="python -m dvs_cluster.train.camvid_train", description=__doc__)
    ap.add_argument("--budget", choices=sorted(CAMVID_BUDGETS), default="camvid")
    ap.add_argument("--out", type=Path, default=Path("build/camvid/models"))
    ap.add_argument("--base", type=Path, default=Path("models"), help="flow.onnx (+ training.json) from here")
    ap.add_argument("--work", type=Path, default=Path("build/camvid/work"), help="checkpoints")
    ap.add_argument("--camvid", default="auto", help="CamVid folder or 'auto' (see datasets.find_camvid)")
    ap.add_argument("--camvid-tar", type=Path, default=None, help="extract this tar to the cache if needed")
    ap.add_argument(
        "--stages",
        default="seg,dn",
        help="comma list of seg,export,dn; 'export' writes seg.onnx from the --init checkpoint (a seg net "
        "trained on another machine, e.g. with --no-export on a GPU machine)",
    )
    ap.add_argument("--no-export", action="store_true", help="seg stage: save the checkpoint only")
    ap.add_argument("--synth-cache", type=Path, default=None, help="keep/reuse the synthetic set here (.npy)")
    ap.add_argument("--data-workers", type=int, default=None, help="processes rendering synthetic frames")
    ap.add_argument("--rare", type=float, default=None, help="share of crops by rare-class sampling")
    ap.add_argument("--width", choices=sorted(SEG_WIDTHS), default=None, help="override the budget's")
    ap.add_argument(
        "--seg-minutes", type=float, default=None, help="override the seg loop's wall-clock cap (minutes)"
    )
    ap.add_argument(
        "--init",
        type=Path,
        default=None,
        help="warm start: seg weights from this checkpoint (a seg_camvid.pt of an earlier run; same width)",
    )
    ap.add_argument("--lr", type=float, default=None, help="override the seg loop's peak learning rate")
    ap.add_argument(
        "--batch",
        type=int,
        default=None,
        help="override the seg batch; the real (CamVid) crops keep their share of it (e.g. 8 on a CPU "
        "for a budget sized for a GPU)",
    )
    ap.add_argument(
        "--dn-real-pairs",
        type=int,
        default=None,
        help="DN pairs per real training image under simulated camera motion (default: the budget's)",
    )
    ap.add_argument(
        "--sets-drop",
        default="",
        help="comma list of trainId names no CamVid pixel may take unless it is their own class "
        "(e.g. 'wall': CamVid Building pixels then train building only)",
    )
    ap.add_argument("--dn-seeds", type=int, default=None, help="synthetic sequences for the DN data")
    ap.add_argument("--dn-steps", type=int, default=None, help="DN training steps")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--eval", action="store_true", help="run evaluate.py with --camvid and --video after")
    ap.add_argument("--video", default=None, help="video for the agreement check of --eval")
    a = ap.parse_args(argv)
    cmd = "python -m dvs_cluster.train.camvid_train " + " ".join(
        shlex.quote(x) for x in (argv if argv is not None else sys.argv[1:])
    )
    b = CAMVID_BUDGETS[a.budget]
    if a.seg_minutes is not None:
        b = replace(b, seg=replace(b.seg, max_seconds=60.0 * a.seg_minutes))
    if a.lr is not None:
        b = replace(b, seg=replace(b.seg, lr=a.lr))
    if a.batch is not None:
        if a.batch < 2:
            print("--batch must be at least 2 (every batch holds synthetic and real crops)", file=sys.stderr)
            return 2
        real = min(a.batch - 1, max(1, round(b.real_per_batch * a.batch / b.seg.batch)))
        b = replace(b, seg=replace(b.seg, batch=a.batch), real_per_batch=real)
    if a.dn_real_pairs is not None:
        b = replace(b, dn_real_pairs=a.dn_real_pairs)
    if a.data_workers is not None:
        b = replace(b, data_workers=a.data_workers)
    if a.rare is not None:
        if b.sampler != "device" and a.rare > 0:
            print("--rare needs a budget with the device sampler (e.g. --budget gpu)", file=sys.stderr)
            return 2
        b = replace(b, rare=a.rare)
    if a.dn_seeds is not None or a.dn_steps is not None:
        b = replace(b, dn_seeds=a.dn_seeds, dn_steps=a.dn_steps)
    init: dict[str, Any] | None = None
    if a.init is not None:
        if not a.init.is_file():
            print(f"--init {a.init}: no such checkpoint", file=sys.stderr)
            return 2
        init = torch.load(a.init, map_location="cpu")
        if a.width is not None and a.width != init["width"]:
            print(f"--init {a.init} has width {init['width']!r}, --width says {a.width!r}", file=sys.stderr)
            return 2
    width = a.width or (init["width"] if init else b.width)
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    try:
        dev = torch.device(a.device)
    except RuntimeError as exc:
        print(f"--device {a.device}: {exc}", file=sys.stderr)
        return 2
    if dev.type == "cuda" and not torch.cuda.is_available():
        print(f"--device {a.device}: this torch ({torch.__version__}) sees no CUDA device", file=sys.stderr)
        return 2
    stages = {s.strip() for s in a.stages.split(",") if s.strip()}

    root = R.camvid_root(None if a.camvid == "auto" else a.camvid, a.camvid_tar)
    if root is None:
        print("CamVid not found: pass --camvid DIR or --camvid-tar camvid.tar", file=sys.stderr)
        return 2
    a.out.mkdir(parents=True, exist_ok=True)
    a.work.mkdir(parents=True, exist_ok=True)
    if a.out.resolve() != a.base.resolve():
        for name in ("flow.onnx", "dn.onnx", "seg.onnx", "training.json"):
            if (a.base / name).exists() and not (a.out / name).exists():
                shutil.copy2(a.base / name, a.out / name)
    info_path = a.out / "training.json"
    info: dict[str, Any] = json.loads(info_path.read_text()) if info_path.exists() else {}
    info.setdefault("stages", {})
    info.update({"torch": torch.__version__, "device": str(dev), "threads": a.threads, "budget": a.budget})
    t_all = time.time()

    if "seg" in stages:
        t0 = time.time()
        seeds = list(range(D.SEG_SEED0, D.SEG_SEED0 + b.seg_seeds))
        synth = D.make_seg_set(seeds, b.seg_frames, b.seg_stride, b.data_workers, a.synth_cache)
        real = R.load_pairs([R.camvid_pairs(root, s) for s in b.camvid_splits], b.camvid_limit)
        real = R.drop_from_sets(real, [n.strip() for n in a.sets_drop.split(",") if n.strip()])
        log(f"[data] {real.name}: {len(real)} real images; {len(synth.images)} synthetic frames")
        seg = SegNet(SEG_WIDTHS[width])
        if init is not None:
            seg.load_state_dict(init["state_dict"])
            log(f"[seg] warm start from {a.init} (+{init.get('steps', '?')} earlier steps)")
        prior = int(init.get("steps", 0)) if init else 0
        prior_s = float(init.get("loop_seconds", 0.0)) if init else 0.0
        stage: dict[str, Any] = {
            "command": cmd,
            "device": str(dev),
            "torch": str(torch.__version__),
            "warm_start": None
            if init is None
            else {
                "from": str(a.init),
                "prior_steps": prior,
                "prior_loop_seconds": round(prior_s, 1),
                "prior_commands": list(init.get("commands", [])),
            },
            "params": param_count(seg),
            "frames": int(len(synth.images)),
            "real_images": len(real),
            "real_name": real.name,
            "width": width,
            "seg_config": asdict(SEG_WIDTHS[width]),
            "loop": asdict(b.seg),
            "data_description": (
                f"{len(synth.images)} synthetic frames 1024x512 + {len(real)} CamVid images ({real.name}) "
                f"at the run-time scale x{b.jitter[0]}..{b.jitter[1]}; {b.real_per_batch} of "
                f"{b.seg.batch} crops real, {b.seg.crop_w}x{b.seg.crop_h}, flips, colour jitter"
                + (f", {b.rare:.0%} of crops by rare-class sampling" if b.rare else "")
            ),
            "set_targets": b.set_targets,
            "data_terms": "CamVid is distributed for research use",
        }
        ckpt_meta = {"seed_range": [seeds[0], seeds[-1]], "train_real": real.name, "budget": a.budget}

        def save(steps: int, seconds: float, partial: bool) -> None:
            # Written whole, then renamed: a host that stops the run mid-write leaves the last good file.
            tmp = a.work / "seg_camvid.pt.part"
            torch.save(
                {
                    "width": width,
                    "state_dict": {k: v.detach().cpu() for k, v in seg.state_dict().items()},
                    "steps": prior + steps,
                    "loop_seconds": prior_s + seconds,
                    "commands": [*(init.get("commands", []) if init else []), cmd],
                    "partial": partial,
                    "stage": {**stage, "steps": steps, "loop_seconds": round(seconds, 1)},
                    **ckpt_meta,
                },
                tmp,
            )
            os.replace(tmp, a.work / "seg_camvid.pt")

        res = train_seg_mixed(
            seg, synth, real, b, a.seed, dev, on_checkpoint=lambda n, sec: save(n, sec, True)
        )
        stage.update(
            {
                "steps": res.steps,
                "loop_seconds": round(res.seconds, 1),
                "final_loss_ema": round(res.final_loss, 4),
                "stage_seconds": round(time.time() - t0, 1),
            }
        )
        save(res.steps, res.seconds, False)
        example = _letterboxed_region(real)
        del synth, real
        if not a.no_export:
            _export_seg(seg, a.out, example, stage, ckpt_meta, info, cmd)
            info_path.write_text(json.dumps(info, indent=2))

    if "export" in stages:
        # A checkpoint trained elsewhere (e.g. on a GPU machine): seg.onnx and the card's record from it.
        src = a.init
        if src is None or "seg" in stages:
            print("--stages export takes the checkpoint from --init, without the seg stage", file=sys.stderr)
            return 2
        ck = torch.load(src, map_location="cpu")
        if ck.get("partial"):
            log(f"[export] {src} is a partial checkpoint (its run stopped after {ck['steps']} steps)")
        seg = SegNet(SEG_WIDTHS[ck["width"]])
        seg.load_state_dict(ck["state_dict"])
        one = R.load_pairs([R.camvid_pairs(root, b.camvid_splits[0])], 1)
        stage = {**ck["stage"], "checkpoint": str(src), "partial": bool(ck.get("partial", False))}
        stage["exported_by"] = cmd
        meta = {"seed_range": ck["seed_range"], "train_real": ck["train_real"], "budget": ck["budget"]}
        _export_seg(seg, a.out, _letterboxed_region(one), stage, meta, info, stage["command"])
        info_path.write_text(json.dumps(info, indent=2))

    if "dn" in stages:
        t0 = time.time()
        real_imgs = None
        if b.dn_real_pairs > 0:
            rl = R.load_pairs([R.camvid_pairs(root, s) for s in b.camvid_splits], b.camvid_limit)
            real_imgs = rl.images
        res, extra = retrain_dn(a.out, b, real_imgs, a.seed, a.threads, cmd)
        rng_seeds = extra.pop("train_seeds")
        info["seed_ranges"] = {**info.get("seed_ranges", {}), "dn_train": rng_seeds}
        info["stages"]["dn"] = {
            "steps": res.steps,
            "loop_seconds": round(res.seconds, 1),
            "final_loss_ema": round(res.final_loss, 4),
            "stage_seconds": round(time.time() - t0, 1),
            "command": cmd,
            **extra,
        }
        info_path.write_text(json.dumps(info, indent=2))

    info["total_seconds_this_run"] = round(time.time() - t_all, 1)
    info["command"] = cmd
    info_path.write_text(json.dumps(info, indent=2))
    log(f"[camvid_train] done in {time.time() - t_all:.0f}s -> {a.out}")
    if a.eval:
        from dvs_cluster.train import evaluate

        ev = ["--models", str(a.out), "--camvid", str(root)]
        if a.video:
            ev += ["--video", a.video]
        return evaluate.main(ev)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    raise SystemExit(main())
