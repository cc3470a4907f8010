"""
DN training/evaluation samples computed with the exported ONNX nets (what ships), no torch.

Each sample is one region of one (key, current) pair: the flow net's pooled features and the measured
agreement (percent, GT-ignored pixels left out) between the flow path and the seg net on the current
region. Pairs span key intervals 0..max_gap inside a sequence, scene cuts where the generator makes them,
and extra cross-sequence pairs (a key from another video) that stand for cuts.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from dvs_cluster.train.data import iter_frames, log, regions
from dvs_cluster.train.flowpath import agreement, flow_path, upsample_argmax

F32 = npt.NDArray[np.float32]
U8 = npt.NDArray[np.uint8]

#: (key regions, current regions) NHWC batches -> (backward flows (N, 2, h/4, w/4), DN inputs (N, ...)).
FlowFn = Callable[[U8, U8], tuple[F32, F32]]


def as_flow_fn(flow: ort.InferenceSession | FlowFn) -> FlowFn:
    """A flow.onnx session (FlowNet features as the DN input) or a FlowFn as it is."""
    if isinstance(flow, ort.InferenceSession):
        sess = flow

        def run(kb: U8, cb: U8) -> tuple[F32, F32]:
            fl, feats = sess.run(["flow", "features"], {"key": kb, "current": cb})
            return fl, feats

        return run
    return flow


def cue_flow_fn(flow: ort.InferenceSession | Callable[[U8, U8], F32]) -> FlowFn:
    """
    A FlowFn whose DN inputs are the decision cues (DN v2) of the given flow source.

    ``flow``: a flow.onnx session, or a per-region flow callable (e.g. ``core.flow.DisFlow``).
    """
    from dvs_cluster.core.cues import decision_cues
    from dvs_cluster.core.flow import to_gray

    def run(kb: U8, cb: U8) -> tuple[F32, F32]:
        if isinstance(flow, ort.InferenceSession):
            fl = flow.run(["flow"], {"key": kb, "current": cb})[0]
        else:
            fl = np.stack([flow(k, c) for k, c in zip(kb, cb, strict=True)])
        cues = [decision_cues(to_gray(k), to_gray(c), f) for k, c, f in zip(kb, cb, fl, strict=True)]
        return fl, np.stack(cues)

    return run


@dataclass
class SeqCache:
    """One sequence's frames with the seg net's outputs per region (computed once, reused by all pairs)."""

    seed: int
    images: list[U8] = field(default_factory=list)  # frames (H, W, 3)
    labels: list[U8] = field(default_factory=list)
    logits: list[F32] = field(default_factory=list)  # (4, 19, h, w)
    seg_argmax: list[U8] = field(default_factory=list)  # (4, rh, rw)
    cuts: list[bool] = field(default_factory=list)


def region_batch(frame: U8) -> U8:
    """Frame (H, W, 3) -> the 4 regions stacked as an NHWC batch."""
    return np.ascontiguousarray(np.stack(regions(frame)))


def cache_sequence(seg: ort.InferenceSession, seed: int, times: Sequence[int]) -> SeqCache:
    """Generate frames and run the seg net on their regions."""
    c = SeqCache(seed)
    for _, img, lab, cut in iter_frames(seed, times):
        rb = region_batch(img)
        lg = seg.run(["logits"], {"image": rb})[0]
        rh, rw = rb.shape[1:3]
        c.images.append(img)
        c.labels.append(lab)
        c.logits.append(lg)
        c.seg_argmax.append(np.stack([upsample_argmax(lg[r], rh, rw) for r in range(4)]))
        c.cuts.append(cut)
    return c


@dataclass
class DNSamples:
    """Flat arrays, one row per region-pair."""

    features: list[F32] = field(default_factory=list)
    targets: list[float] = field(default_factory=list)
    gaps: list[int] = field(default_factory=list)  # -1 = cross-sequence pair

    def arrays(self) -> tuple[F32, F32, npt.NDArray[np.int32]]:
        """Stacked (features, targets, gaps)."""
        return (
            np.stack(self.features).astype(np.float32),
            np.array(self.targets, np.float32),
            np.array(self.gaps, np.int32),
        )


def add_pair(
    out: DNSamples,
    flow: ort.InferenceSession | FlowFn,
    key: SeqCache,
    ik: int,
    cur: SeqCache,
    ic: int,
    gap: int,
) -> None:
    """Run the flow source on the 4 region pairs and record its DN inputs and agreement targets."""
    kb, cb = region_batch(key.images[ik]), region_batch(cur.images[ic])
    fl, feats = as_flow_fn(flow)(kb, cb)
    rh, rw = kb.shape[1:3]
    gt_regions = regions(cur.labels[ic])
    for r in range(4):
        pred = flow_path(key.logits[ik][r], fl[r], rh, rw)
        out.features.append(feats[r])
        out.targets.append(agreement(pred, cur.seg_argmax[ic][r], gt_regions[r]))  # type: ignore[arg-type]
        out.gaps.append(gap)


def build(
    seg: ort.InferenceSession,
    flow: ort.InferenceSession | FlowFn,
    seeds: Sequence[int],
    frames: int,
    gaps_per_frame: int,
    max_gap: int,
    cross_pairs: int,
    rng: np.random.Generator,
) -> DNSamples:
    """Samples over ``seeds``: each frame is a current frame for ``gaps_per_frame`` random key intervals."""
    out = DNSamples()
    prev: SeqCache | None = None
    t0 = time.time()
    for i, s in enumerate(seeds):
        c = cache_sequence(seg, s, range(frames))
        for ic in range(frames):
            draws = {0} if rng.random() < 0.05 else set()
            draws |= {int(g) for g in rng.integers(1, max_gap + 1, gaps_per_frame)}
            for g in sorted(draws):
                if ic - g >= 0:
                    add_pair(out, flow, c, ic - g, c, ic, g)
        if prev is not None:
            for _ in range(cross_pairs):
                add_pair(out, flow, prev, int(rng.integers(frames)), c, int(rng.integers(frames)), -1)
        prev = c
        log(f"[dn-data] seed {s} ({i + 1}/{len(seeds)}) {len(out.targets)} samples {time.time() - t0:.0f}s")
    return out


def _chain_step(
    out: DNSamples,
    flow: FlowFn,
    key_img: U8,
    state_img: U8,
    state: list[F32],
    to_key: list[F32] | None,
    src: SeqCache,
    ti: int,
    gap: int,
) -> tuple[list[F32], list[F32]]:
    """
    One propagated step of the 4 regions onto frame ``ti`` of ``src``: samples added.

    The DN input is the decision cues of the current frame against the key with the composed flow, as
    ``RegionProcessor`` gives the DN v2 on a chain. Returns the new state and its flows to the key.
    """
    from dvs_cluster.core.cues import decision_cues
    from dvs_cluster.core.flow import to_gray
    from dvs_cluster.core.warp import compose, warp

    cb = region_batch(src.images[ti])
    rh, rw = cb.shape[1:3]
    fl, _ = flow(state_img, cb)
    gt_regions = regions(src.labels[ti])
    warped = [warp(state[r], fl[r]) for r in range(4)]
    composed = [fl[r] if to_key is None else compose(fl[r], to_key[r]) for r in range(4)]
    for r in range(4):
        pred = upsample_argmax(warped[r], rh, rw)
        out.features.append(decision_cues(to_gray(key_img[r]), to_gray(cb[r]), composed[r]))
        out.targets.append(agreement(pred, src.seg_argmax[ti][r], gt_regions[r]))  # type: ignore[arg-type]
        out.gaps.append(gap)
    return warped, composed


def build_chain(
    seg: ort.InferenceSession,
    flow: FlowFn,
    seeds: Sequence[int],
    frames: int,
    key_every: int,
    max_age: int,
    cross_pairs: int,
    rng: np.random.Generator,
) -> DNSamples:
    """
    Samples of the propagated flow path: from a key, each step warps the previous step's output.

    For key frames every ``key_every`` frames, the chain runs ``max_age`` steps; each step is a sample
    (the cues of the current frame against the key with the composed flow, the key age, and the
    agreement of the chained labels with the seg net). ``cross_pairs`` steps per sequence also get a
    cross-sequence sample: the chain's state against a frame of the previous sequence (a scene cut in
    the middle of a chain).
    """
    out = DNSamples()
    prev: SeqCache | None = None
    t0 = time.time()
    for i, s in enumerate(seeds):
        c = cache_sequence(seg, s, range(frames))
        keys = list(range(0, frames - 1, key_every))
        # Steps (key, frame) that also get a cross-sequence sample; the chain itself goes on.
        cuts = {(int(rng.choice(keys)), int(rng.integers(1, max_age + 1))) for _ in range(cross_pairs)}
        for k in keys:
            key_img = state_img = region_batch(c.images[k])
            state = [c.logits[k][r] for r in range(4)]
            to_key: list[F32] | None = None
            for t in range(k + 1, min(frames, k + max_age + 1)):
                if prev is not None and (k, t - k) in cuts:
                    cut = int(rng.integers(frames))
                    _chain_step(out, flow, key_img, state_img, state, to_key, prev, cut, -1)
                state, to_key = _chain_step(out, flow, key_img, state_img, state, to_key, c, t, t - k)
                state_img = region_batch(c.images[t])
        prev = c
        log(
            f"[dn-data] chains seed {s} ({i + 1}/{len(seeds)}) {len(out.targets)} samples "
            f"{time.time() - t0:.0f}s"
        )
    return out


# ----------------------------------------------------------------------------------------------------
# Real images with simulated camera motion (no labels needed)


def camera_motion(
    width: int, height: int, gap: int, rng: np.random.Generator, static_share: float = 0.3
) -> F32:
    """
    3x3 homography of ``gap`` frames of a camera (zoom about a point near the centre, pan, roll).

    Motion per frame is drawn once per pair; ``static_share`` of pairs are a fixed camera.

    Magnitudes are those of a car or robot at 10-30 fps on a 1024x512 frame: zoom 0-2 % per frame,
    pan up to 4 px, roll up to 0.15 degree.
    """
    if rng.random() < static_share:
        return np.eye(3, dtype=np.float32)
    zoom = (1.0 + rng.uniform(0.0, 0.02)) ** gap
    cx = width * (0.5 + rng.uniform(-0.1, 0.1))
    cy = height * (0.45 + rng.uniform(-0.1, 0.1))
    tx, ty = rng.uniform(-4.0, 4.0, 2) * gap
    ang = np.deg2rad(rng.uniform(-0.15, 0.15) * gap)
    c, s = np.cos(ang) * zoom, np.sin(ang) * zoom
    return np.array(
        [[c, -s, cx - c * cx + s * cy + tx], [s, c, cy - s * cx - c * cy + ty], [0, 0, 1]], np.float32
    )


def camera_view(image: U8, hom: F32, rng: np.random.Generator, noise: float) -> tuple[U8, U8]:
    """The frame a camera moved by ``hom`` sees (+ sensor noise), and its valid-pixel mask (0/255)."""
    import cv2

    h, w = image.shape[:2]
    out = cv2.warpPerspective(image, hom, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    valid = cv2.warpPerspective(np.full((h, w), 255, np.uint8), hom, (w, h), flags=cv2.INTER_NEAREST)
    noisy = out.astype(np.float32) * rng.uniform(0.97, 1.03) + rng.normal(0.0, noise, out.shape)
    return np.clip(noisy, 0, 255).astype(np.uint8), np.asarray(valid, dtype=np.uint8)


def build_real(
    seg: ort.InferenceSession,
    flow: ort.InferenceSession,
    images: Sequence[U8],
    pairs_per_image: int,
    max_gap: int,
    rng: np.random.Generator,
    width: int = 1024,
    height: int = 512,
) -> DNSamples:
    """
    DN samples from real images without labels, under a simulated camera motion.

    Key = the image as the run time frames it, current = the same scene after :func:`camera_motion`,
    each with independent sensor noise.

    The target is the agreement of the flow path with the seg net on the current view, pixels that came
    from outside the key image left out. It carries what synthetic pairs cannot: how much the seg net's
    output on *real* texture changes under small motion and noise (its flicker), which the flow path,
    copying the key, does not follow.
    """
    from dvs_cluster.io.frame import FrameTransform

    out = DNSamples()
    t0 = time.time()
    for i, im in enumerate(images):
        key = FrameTransform(im.shape[1], im.shape[0], width, height).forward(im)
        key_n, _ = camera_view(key, np.eye(3, dtype=np.float32), rng, rng.uniform(1.0, 4.0))
        kb = region_batch(key_n)
        key_logits = seg.run(["logits"], {"image": kb})[0]
        for _ in range(pairs_per_image):
            gap = int(rng.integers(1, max_gap + 1))
            cur, valid = camera_view(key, camera_motion(width, height, gap, rng), rng, rng.uniform(1.0, 4.0))
            cb = region_batch(cur)
            cur_logits = seg.run(["logits"], {"image": cb})[0]
            fl, feats = flow.run(["flow", "features"], {"key": kb, "current": cb})
            rh, rw = kb.shape[1:3]
            ignore = np.where(valid > 0, 0, 255).astype(np.uint8)
            for r, ign in enumerate(regions(ignore)):
                pred = flow_path(key_logits[r], fl[r], rh, rw)
                ref = upsample_argmax(cur_logits[r], rh, rw)
                out.features.append(feats[r])
                out.targets.append(agreement(pred, ref, ign))  # type: ignore[arg-type]
                out.gaps.append(gap)
        if (i + 1) % 50 == 0 or i + 1 == len(images):
            log(f"[dn-real] {i + 1}/{len(images)} images, {len(out.targets)} samples {time.time() - t0:.0f}s")
    return out


def merge(*parts: DNSamples) -> DNSamples:
    """One sample set from several (synthetic + real)."""
    out = DNSamples()
    for p in parts:
        out.features += p.features
        out.targets += p.targets
        out.gaps += p.gaps
    return out
