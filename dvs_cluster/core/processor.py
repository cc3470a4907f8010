"""
The region-level DVSNet step, shared by Single and the slaves.

Given a region crop and its key (or none), choose the path and produce the region's segmentation:

- no key -> segmentation path (first frame);
- score-based policy: flow source (key, current) -> DN score -> policy; flow path = warp the key
  logits with the flow (``core.warp.warp``), upsample bilinearly to the region, argmax;
- age-based policy: decide first, run only the nets the chosen path needs.

``propagate`` (the default): the flow path warps the region's newest state, the previous step's output
when it is at hand, so each flow spans one frame; the key age (what the policy and the DN read) still
counts from the last segmentation step. Off, it warps the key itself, as DVSNet. On the synthetic
bench the flow path's mIoU at 3 / 4 / 5 frames from the key rose from 52.6 / 49.5 / 46.5 to
54.2 / 52.5 / 51.3 (Fixed-K, DIS), the seg path being 57.5 (docs/DESIGN.md).

The models are a Protocol so this module never imports onnxruntime (tests plug fakes in).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol

import cv2
import numpy as np
import numpy.typing as npt

from dvs_cluster.core.keys import KeyBuffer, KeyFrame
from dvs_cluster.core.policy import DecisionPolicy, Path
from dvs_cluster.core.warp import compose, warp

UInt8Array = npt.NDArray[np.uint8]
FloatArray = npt.NDArray[np.float32]

#: Output stride of the segmentation and flow nets (logits and flow live on a 1/4 grid).
STRIDE = 4


class Models(Protocol):
    """The three nets, one region at a time (no batch axis); see the model I/O contract in DESIGN.md."""

    def seg(self, image: UInt8Array) -> FloatArray:
        """(h, w, 3) uint8 RGB -> logits (C, ceil(h/4), ceil(w/4))."""
        ...

    def flow(
        self, key: UInt8Array, current: UInt8Array, *, cues: bool = True
    ) -> tuple[FloatArray, FloatArray]:
        """
        Key and current crops -> (backward flow (2, ceil(h/4), ceil(w/4)), the DN's input).

        ``cues=False``: the caller does not read decision cues of this pair (a chain is judged against
        its key by :meth:`dn_cues`; the flow path alone reads no DN input), so they need not be computed;
        a flow net's own features may still come back, they cost nothing extra.
        """
        ...

    def dn(self, features: FloatArray, key_age: int) -> float:
        """The DN's input (from :meth:`flow`) and the key's age in frames -> predicted agreement (0..100)."""
        ...

    def dn_cues(self, key: UInt8Array, current: UInt8Array, flow: FloatArray) -> FloatArray | None:
        """
        The DN's input against the key itself, given the flow current -> key.

        None if the DN reads a flow net's own features: a propagated step is then judged on its last
        pair alone.
        """
        ...


def logit_grid(height: int, width: int) -> tuple[int, int]:
    """Size (h, w) of the 1/4 logit grid of a ``height`` x ``width`` region."""
    return -(-height // STRIDE), -(-width // STRIDE)


def upsample_logits(logits: FloatArray, height: int, width: int) -> FloatArray:
    """
    Bilinear x4 upsampling of (C, h, w) logits, cropped to the region: returns (height, width, C).

    Scaling by exactly the stride then cropping keeps pixel centres aligned for sizes not divisible
    by 4. Channel-last because OpenCV resizes all channels in one pass.
    """
    c, h, w = logits.shape
    hwc = np.ascontiguousarray(logits.transpose(1, 2, 0))
    up = np.asarray(cv2.resize(hwc, (w * STRIDE, h * STRIDE), interpolation=cv2.INTER_LINEAR), np.float32)
    out: FloatArray = up.reshape(h * STRIDE, w * STRIDE, c)[:height, :width]
    return out


# Bilinear x4 upsampling (OpenCV's pixel-centre convention) seen per cell: output pixels between the
# logit-grid samples i and i+1 of an edge-padded grid form a 4x4 block whose values are fixed convex
# combinations of the cell's 4 corners; the in-cell offsets are (r + 0.5) / 4.
_FRAC = (np.arange(STRIDE, dtype=np.float32) + 0.5) / STRIDE
_AXIS_W = np.stack([1.0 - _FRAC, _FRAC], axis=1)  # (4 offsets, 2 corners)
_CELL_W = np.einsum("ra,sb->rsab", _AXIS_W, _AXIS_W).reshape(STRIDE * STRIDE, 4).astype(np.float32)
_CELL_R = np.repeat(np.arange(STRIDE), STRIDE)
_CELL_C = np.tile(np.arange(STRIDE), STRIDE)


def _argmax_first(x: FloatArray) -> tuple[UInt8Array, FloatArray]:
    """
    (argmax, max) over axis 0 (at most 255 classes).

    numpy's ``argmax`` over a short leading axis is several times slower than its ``max``, so the
    index comes from two max reductions: the max, then the largest ``C - k`` among the classes k that
    reach it, which is the lowest such k. Ties keep the lowest index, like ``np.argmax``.
    """
    c = x.shape[0]
    best = x.max(axis=0)
    rank = np.arange(c, 0, -1, dtype=np.uint8).reshape((c,) + (1,) * (x.ndim - 1))  # C - k
    top = np.multiply(x == best, rank, dtype=np.uint8).max(axis=0)
    idx: UInt8Array = np.subtract(c, top, dtype=np.uint8)
    np.remainder(idx, c, out=idx)  # no class reached the max (NaN logits): class 0, as np.argmax
    return idx, best


def labels_from_logits(logits: FloatArray, height: int, width: int) -> tuple[UInt8Array, FloatArray]:
    """
    (labels uint8 (height, width), confidence = max logit float32 (height, width)).

    Same result as argmax/max over :func:`upsample_logits`, without upsampling 19 channels: where the 4
    logit-grid corners of a cell share their argmax, every pixel between them has it too (each is a
    convex combination of the corners, and that class leads at all four), and its max is the bilinear
    upsampling of the max map. Only the other cells (class borders, ~20 % of them on the shipped net)
    are interpolated in full, as one small matrix product. On every region's path, both paths.
    """
    c, h, w = logits.shape
    top, best = _argmax_first(logits)
    size = (w * STRIDE, h * STRIDE)
    conf = np.ascontiguousarray(
        cv2.resize(best, size, interpolation=cv2.INTER_LINEAR)[:height, :width], dtype=np.float32
    )
    padded = np.pad(top, 1, mode="edge")  # cell (i, j) spans padded[i:i+2, j:j+2]
    corner = padded[:-1, :-1]
    agree = (corner == padded[:-1, 1:]) & (corner == padded[1:, :-1]) & (corner == padded[1:, 1:])
    half = STRIDE // 2  # cell blocks start half a stride before the image
    blocks = np.repeat(np.repeat(corner, STRIDE, axis=0), STRIDE, axis=1)
    labels = np.ascontiguousarray(blocks[half : half + height, half : half + width])
    ci, cj = np.nonzero(~agree)
    if ci.size:
        # the cell's corners in the unpadded grid: padded row i is row i - 1, clamped (edge padding)
        r0, r1 = np.maximum(ci - 1, 0), np.minimum(ci, h - 1)
        c0, c1 = np.maximum(cj - 1, 0), np.minimum(cj, w - 1)
        at = np.stack([r0 * w + c0, r0 * w + c1, r1 * w + c0, r1 * w + c1])
        corners = logits.reshape(c, -1)[:, at]  # (C, 4 corners, cells)
        cell_labels, cell_max = _argmax_first(np.matmul(_CELL_W, corners))  # (16 pixels, cells)
        rows = STRIDE * ci[None, :] - half + _CELL_R[:, None]
        cols = STRIDE * cj[None, :] - half + _CELL_C[:, None]
        inside = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
        labels[rows[inside], cols[inside]] = cell_labels[inside]
        conf[rows[inside], cols[inside]] = cell_max[inside]
    return labels, conf


@dataclass
class RegionOutcome:
    """Result of one region step; ``key`` is set iff the segmentation path ran (the new key)."""

    region: int
    timestep: int
    path: Path
    score: float | None
    logits: FloatArray  # (C, h/4, w/4)
    labels: UInt8Array  # (h, w) at the region's (padded) size
    confidence: FloatArray  # (h, w) max logit, for the overlap merge
    key: KeyFrame | None
    key_timestep: int | None  # key used by the flow path (or offered to the DN); None if no key
    timings_ms: dict[str, float] = field(default_factory=dict)  # stages that ran: flow, dn, seg, warp
    #: What the region's buffer holds after this step: the new key, or with propagation the flow
    #: step's output (rooted at its key); None when the buffer keeps what it had.
    state: KeyFrame | None = None

    @property
    def total_ms(self) -> float:
        return float(sum(self.timings_ms.values()))


def _ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000.0


class RegionProcessor:
    """Runs the DVSNet region step with the given models and decision policy."""

    def __init__(self, models: Models, policy: DecisionPolicy, propagate: bool = True) -> None:
        self.models = models
        self.policy = policy
        self.propagate = propagate

    def process(self, region: int, timestep: int, image: UInt8Array, key: KeyFrame | None) -> RegionOutcome:
        """One region at one timestep; does not touch any buffer (the caller stores ``outcome.state``)."""
        h, w = image.shape[:2]
        timings: dict[str, float] = {}
        score: float | None = None
        flow: FloatArray | None = None
        to_key: FloatArray | None = None
        if key is None:
            path: Path = "seg"
        else:
            if key.image.shape != image.shape:
                raise ValueError(f"region {region}: key is {key.image.shape}, current is {image.shape}")
            age = timestep - key.key_timestep
            forced = self.policy.forced(region, age)
            if forced is not None:
                path = forced
            elif self.policy.uses_score:
                chain = key.root is not None and key.anchor is not None and key.to_key is not None
                t0 = time.perf_counter()
                flow, features = self.models.flow(key.image, image, cues=not chain)
                timings["flow"] = _ms(t0)
                t0 = time.perf_counter()
                if chain:
                    assert key.anchor is not None and key.to_key is not None
                    to_key = compose(flow, key.to_key)  # a chain: judge it against its key
                    cues = self.models.dn_cues(key.anchor, image, to_key)
                    features = features if cues is None else cues
                score = float(self.models.dn(features, age))
                timings["dn"] = _ms(t0)
                path = self.policy.decide(region, age, score)
            else:
                path = self.policy.decide(region, age, None)
        new_key: KeyFrame | None = None
        if path == "seg":
            t0 = time.perf_counter()
            logits = self.models.seg(image)
            timings["seg"] = _ms(t0)
            t0 = time.perf_counter()
            labels, conf = labels_from_logits(logits, h, w)
            timings["upsample"] = _ms(t0)
            new_key = KeyFrame(timestep=timestep, image=np.ascontiguousarray(image), logits=logits)
        else:
            assert key is not None
            if flow is None:
                t0 = time.perf_counter()
                flow, _ = self.models.flow(key.image, image, cues=False)
                timings["flow"] = _ms(t0)
            t0 = time.perf_counter()
            logits = warp(key.logits, flow)
            timings["warp"] = _ms(t0)
            t0 = time.perf_counter()
            labels, conf = labels_from_logits(logits, h, w)
            timings["upsample"] = _ms(t0)
        self.policy.observe(region, path)
        state = new_key
        if new_key is None and self.propagate:
            assert key is not None and flow is not None
            if to_key is None:
                to_key = flow if key.to_key is None else compose(flow, key.to_key)
            anchor = key.image if key.anchor is None else key.anchor
            state = KeyFrame(timestep, np.ascontiguousarray(image), logits, key.key_timestep, anchor, to_key)
        return RegionOutcome(
            region=region,
            timestep=timestep,
            path=path,
            score=score,
            logits=logits,
            labels=labels,
            confidence=conf,
            key=new_key,
            key_timestep=None if key is None else key.key_timestep,
            timings_ms=timings,
            state=state,
        )

    def step(self, region: int, timestep: int, image: UInt8Array, buffer: KeyBuffer) -> RegionOutcome:
        """:meth:`process` with the key taken from, and the new state stored into, ``buffer``."""
        outcome = self.process(region, timestep, image, buffer.get(region))
        if outcome.state is not None:
            buffer.put(region, outcome.state)
        return outcome
