"""
Training data from the synthetic generator, pre-generated into memory (no torch here).

Generation runs at ~20 frames/s, far slower than a training step, so every set is generated once and
then cropped/flipped/jittered per step. Seeds are split so that no evaluation sequence is ever trained
on; they are listed here once and written into the model metadata and card.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from dvs_cluster.core.classes import IGNORE_LABEL
from dvs_cluster.core.warp import resize_flow

U8 = npt.NDArray[np.uint8]
F32 = npt.NDArray[np.float32]

FRAME_W, FRAME_H = 1024, 512
REGION_W, REGION_H = 512, 256

# Seed ranges (disjoint). Training: seg 1000+, flow 2000+, DN 3000+. Held-out evaluation: 9000+.
SEG_SEED0 = 1000
FLOW_SEED0 = 2000
DN_SEED0 = 3000
EVAL_SEED0 = 9000


def log(msg: str) -> None:
    """Progress goes to stderr so that stdout stays machine-readable."""
    print(msg, file=sys.stderr, flush=True)


def _video(seed: int, width: int = FRAME_W, height: int = FRAME_H):  # type: ignore[no-untyped-def]
    # Imported late: the generator is a sibling package and this module must import without it.
    from dvs_cluster.data.synthetic import SyntheticVideo

    return SyntheticVideo(seed=seed, width=width, height=height)


def regions(frame: npt.NDArray[np.generic]) -> list[npt.NDArray[np.generic]]:
    """Split a frame (H, W, ...) 2x2 into the runtime's regions, row-major."""
    h, w = frame.shape[0] // 2, frame.shape[1] // 2
    return [frame[r * h : (r + 1) * h, c * w : (c + 1) * w] for r in range(2) for c in range(2)]


@dataclass
class SegSet:
    """Whole frames with their labels; crops are drawn at training time."""

    images: U8  # (F, H, W, 3)
    labels: U8  # (F, H, W)
    seeds: list[int]


def _seg_frames(job: tuple[int, int, int]) -> tuple[U8, U8]:
    seed, frames_per_seed, stride = job
    v = _video(seed)
    fs = [v.frame(k * stride) for k in range(frames_per_seed)]
    return np.stack([f.image for f in fs]), np.stack([f.labels for f in fs])


def make_seg_set(
    seeds: Sequence[int], frames_per_seed: int, stride: int, workers: int = 1, cache: Path | None = None
) -> SegSet:
    """
    Frames t = 0, stride, 2*stride, ... of each seed (spaced so that consecutive frames differ).

    ``workers`` > 1 renders seeds in parallel processes (same bytes: every frame is a pure function of
    its seed and index). ``cache``: a folder where the set is kept as .npy files, keyed by the seeds and
    frames, so that several trainings on one machine render it once.
    """
    seeds = list(seeds)
    stem = f"seg_{seeds[0]}-{seeds[-1]}x{len(seeds)}_f{frames_per_seed}s{stride}"
    if cache is not None and (cache / f"{stem}.labels.npy").is_file():
        log(f"[data] seg set from {cache / stem}.*.npy")
        images = np.load(cache / f"{stem}.images.npy", mmap_mode="r")
        labels = np.load(cache / f"{stem}.labels.npy", mmap_mode="r")
        return SegSet(images, labels, seeds)
    jobs = [(s, frames_per_seed, stride) for s in seeds]
    imgs, labs = [], []
    t0 = time.time()
    results: Iterable[tuple[U8, U8]]
    with contextlib.ExitStack() as stack:
        if workers > 1:
            import multiprocessing as mp

            results = stack.enter_context(mp.get_context("spawn").Pool(workers)).imap(_seg_frames, jobs)
        else:
            results = map(_seg_frames, jobs)
        for i, (im, lb) in enumerate(results):
            imgs.append(im)
            labs.append(lb)
            log(f"[data] seg seed {seeds[i]} ({i + 1}/{len(seeds)}) {time.time() - t0:.0f}s")
    out = SegSet(np.concatenate(imgs), np.concatenate(labs), seeds)
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
        # Labels last: their file marks a complete set (each file appears whole, by rename).
        for part, arr in (("images", out.images), ("labels", out.labels)):
            tmp = cache / f"{stem}.{part}.npy.part"
            with open(tmp, "wb") as fh:
                np.save(fh, arr)
            os.replace(tmp, cache / f"{stem}.{part}.npy")
    return out


def flow_to_grid(
    flow: F32, valid: npt.NDArray[np.bool_], factor: int = 4
) -> tuple[F32, npt.NDArray[np.bool_]]:
    """Full-resolution GT flow -> the 1/``factor`` logit grid (vectors rescaled), valid = fully valid cell."""
    h, w = flow.shape[1] // factor, flow.shape[2] // factor
    small = resize_flow(flow, h, w)
    vfrac = cv2.resize(valid.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA)
    return small, vfrac > 0.999


@dataclass
class FlowSet:
    """Pairs (key, current) with backward GT flow on the 1/4 grid."""

    keys: U8  # (P, H, W, 3)
    currents: U8  # (P, H, W, 3)
    flows: F32  # (P, 2, H/4, W/4)
    valid: npt.NDArray[np.bool_]  # (P, H/4, W/4)
    gaps: npt.NDArray[np.int32]  # key interval of each pair
    seeds: list[int]


def make_flow_set(
    seeds: Sequence[int], pairs_per_seed: int, max_gap: int, rng: np.random.Generator
) -> FlowSet:
    """Random (key, current) pairs, key interval 0..max_gap, biased short (a few identical; cuts dropped)."""
    keys, curs, flows, valids, gaps = [], [], [], [], []
    t0 = time.time()
    for i, s in enumerate(seeds):
        v = _video(s)
        n = 0
        tries = 0
        while n < pairs_per_seed and tries < 4 * pairs_per_seed:
            tries += 1
            # Half the pairs at the short intervals the runtime policy mostly sees, half over the full range.
            top = min(5, max_gap) if rng.random() < 0.5 else max_gap
            gap = 0 if rng.random() < 0.05 else int(rng.integers(1, top + 1))
            tk = int(rng.integers(0, 400))
            tc = tk + gap
            fk, fc = v.frame(tk), v.frame(tc)
            fl, val = v.flow(tk, tc)
            if val.mean() < 0.3:  # across a scene cut: no flow to learn
                continue
            small, sval = flow_to_grid(fl, val)
            keys.append(fk.image)
            curs.append(fc.image)
            flows.append(small)
            valids.append(sval)
            gaps.append(gap)
            n += 1
        log(f"[data] flow seed {s} ({i + 1}/{len(seeds)}) {len(keys)} pairs {time.time() - t0:.0f}s")
    return FlowSet(
        np.stack(keys),
        np.stack(curs),
        np.stack(flows),
        np.stack(valids),
        np.array(gaps, np.int32),
        list(seeds),
    )


def class_frequencies(labels: U8, num_classes: int) -> F32:
    """Pixel frequency of each trainId (ignore excluded), for the class-balanced loss."""
    counts = np.bincount(labels[labels != IGNORE_LABEL].ravel(), minlength=256)[:num_classes]
    out: F32 = (counts / max(1, counts.sum())).astype(np.float32)
    return out


def seg_crops(s: SegSet, batch: int, ch: int, cw: int, rng: np.random.Generator) -> tuple[U8, U8]:
    """Random crops with horizontal flips (uint8 NHWC images, uint8 labels)."""
    n, h, w = s.labels.shape
    xs = np.empty((batch, ch, cw, 3), np.uint8)
    ys = np.empty((batch, ch, cw), np.uint8)
    for b in range(batch):
        i = int(rng.integers(n))
        y0 = int(rng.integers(0, h - ch + 1))
        x0 = int(rng.integers(0, w - cw + 1))
        im = s.images[i, y0 : y0 + ch, x0 : x0 + cw]
        lb = s.labels[i, y0 : y0 + ch, x0 : x0 + cw]
        if rng.random() < 0.5:
            im, lb = im[:, ::-1], lb[:, ::-1]
        xs[b], ys[b] = im, lb
    return xs, ys


def flow_crops(
    s: FlowSet, batch: int, ch: int, cw: int, rng: np.random.Generator
) -> tuple[U8, U8, F32, npt.NDArray[np.bool_]]:
    """Aligned crops of key, current and 1/4-grid flow (offsets multiple of 4), flips negate dx."""
    p, h, w = s.keys.shape[:3]
    ks = np.empty((batch, ch, cw, 3), np.uint8)
    cs = np.empty((batch, ch, cw, 3), np.uint8)
    fs = np.empty((batch, 2, ch // 4, cw // 4), np.float32)
    vs = np.empty((batch, ch // 4, cw // 4), bool)
    for b in range(batch):
        i = int(rng.integers(p))
        y0 = 4 * int(rng.integers(0, (h - ch) // 4 + 1))
        x0 = 4 * int(rng.integers(0, (w - cw) // 4 + 1))
        k = s.keys[i, y0 : y0 + ch, x0 : x0 + cw]
        c = s.currents[i, y0 : y0 + ch, x0 : x0 + cw]
        gy, gx = y0 // 4, x0 // 4
        f = s.flows[i, :, gy : gy + ch // 4, gx : gx + cw // 4]
        v = s.valid[i, gy : gy + ch // 4, gx : gx + cw // 4]
        if rng.random() < 0.5:
            k, c, v = k[:, ::-1], c[:, ::-1], v[:, ::-1]
            f = f[:, :, ::-1] * np.array([-1.0, 1.0], np.float32)[:, None, None]
        ks[b], cs[b], fs[b], vs[b] = k, c, f, v
    return ks, cs, fs, vs


def iter_frames(seed: int, times: Iterable[int]) -> Iterable[tuple[int, U8, U8, bool]]:
    """(t, image, labels, cut) of one sequence, for the DN and evaluation sets."""
    v = _video(seed)
    for t in times:
        f = v.frame(t)
        yield t, f.image, f.labels, bool(f.cut)


def gt_flow(seed: int, t_key: int, t_cur: int) -> tuple[F32, npt.NDArray[np.bool_]]:
    """Full-resolution backward GT flow between two frames of one sequence."""
    fl, val = _video(seed).flow(t_key, t_cur)
    return fl.astype(np.float32), val.astype(bool)
