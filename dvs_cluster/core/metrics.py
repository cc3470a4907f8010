"""
Accuracy and speed metrics: confusion-matrix mIoU, latency statistics, fps, path mix.

Pure numpy (bincount) so the engine can score every frame without slowing down.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterable

import numpy as np
import numpy.typing as npt

from dvs_cluster.core.classes import IGNORE_LABEL, NUM_CLASSES


def confusion_matrix(
    pred: npt.NDArray[np.integer], gt: npt.NDArray[np.integer], num_classes: int = NUM_CLASSES
) -> npt.NDArray[np.int64]:
    """
    (num_classes, num_classes) counts, rows = ground truth, cols = prediction; GT 255 ignored.

    Predictions outside 0..num_classes-1 on valid GT pixels count as wrong (they land in no column but
    still add to the GT row total via :class:`ConfusionMatrix`).
    """
    if pred.shape != gt.shape:
        raise ValueError(f"prediction {pred.shape} and ground truth {gt.shape} differ")
    if _both_uint8(pred, gt):
        return _pair_counts(pred, gt)[:num_classes, :num_classes].copy()
    g = gt.reshape(-1).astype(np.int64)
    p = pred.reshape(-1).astype(np.int64)
    valid = (g != IGNORE_LABEL) & (g >= 0) & (g < num_classes) & (p >= 0) & (p < num_classes)
    idx = g[valid] * num_classes + p[valid]
    return np.bincount(idx, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def _both_uint8(pred: npt.NDArray[np.integer], gt: npt.NDArray[np.integer]) -> bool:
    return pred.dtype == np.uint8 and gt.dtype == np.uint8


def _pair_counts(pred: npt.NDArray[np.integer], gt: npt.NDArray[np.integer]) -> npt.NDArray[np.int64]:
    """
    (256, 256) counts of (gt, pred) byte pairs in one bincount: the fast path for uint8 label maps.

    Rows of ignored or out-of-range GT and columns of out-of-range predictions are simply sliced away
    by the callers, so no mask or int64 copy of the whole frame is made (9.7 -> 0.94 ms per random
    1024x512 frame in a micro-benchmark; the master pays it once per frame it scores).
    """
    pairs = (gt.reshape(-1).astype(np.uint16) << 8) | pred.reshape(-1)
    return np.bincount(pairs, minlength=1 << 16).reshape(256, 256)


class ConfusionMatrix:
    """Accumulates a confusion matrix over frames; IoU per class, mIoU over the classes present."""

    def __init__(self, num_classes: int = NUM_CLASSES) -> None:
        self.num_classes = num_classes
        self.matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
        # GT pixels whose prediction was out of range: false negatives not in any column.
        self._missed = np.zeros(num_classes, dtype=np.int64)

    def update(self, pred: npt.NDArray[np.integer], gt: npt.NDArray[np.integer]) -> None:
        """Add one frame (or region)."""
        if pred.shape == gt.shape and _both_uint8(pred, gt):
            nc = self.num_classes
            table = _pair_counts(pred, gt)
            self.matrix += table[:nc, :nc]
            self._missed += table[:nc, nc:].sum(axis=1)
            return
        self.matrix += confusion_matrix(pred, gt, self.num_classes)
        g = gt.reshape(-1)
        p = pred.reshape(-1).astype(np.int64)
        bad = (g != IGNORE_LABEL) & (g < self.num_classes) & ((p < 0) | (p >= self.num_classes))
        if bad.any():
            self._missed += np.bincount(g[bad].astype(np.int64), minlength=self.num_classes)

    def classes_present(self) -> npt.NDArray[np.int64]:
        """The trainIds that occur in the ground truth so far."""
        return np.flatnonzero(self.matrix.sum(axis=1) + self._missed > 0)

    def iou(self) -> npt.NDArray[np.float64]:
        """IoU per class in 0..1; NaN for classes absent from the ground truth."""
        tp = np.diag(self.matrix).astype(np.float64)
        gt_total = self.matrix.sum(axis=1) + self._missed
        union = gt_total + self.matrix.sum(axis=0) - tp
        out = np.full(self.num_classes, np.nan)
        present = gt_total > 0
        out[present] = tp[present] / union[present]
        return out

    def miou(self) -> float:
        """Mean IoU in percent (0..100) over the classes present in the ground truth; NaN if none."""
        iou = self.iou()
        if np.all(np.isnan(iou)):
            return float("nan")
        return float(np.nanmean(iou) * 100.0)

    def pixel_accuracy(self) -> float:
        """Share of valid GT pixels predicted right, in percent."""
        total = self.matrix.sum() + self._missed.sum()
        return float(np.trace(self.matrix) / total * 100.0) if total else float("nan")


def miou(pred: npt.NDArray[np.integer], gt: npt.NDArray[np.integer], num_classes: int = NUM_CLASSES) -> float:
    """Return the mIoU (percent) of a single prediction."""
    cm = ConfusionMatrix(num_classes)
    cm.update(pred, gt)
    return cm.miou()


def summarize(values: Iterable[float]) -> dict[str, float]:
    """Summary (mean, p50, p99, max, n) of a list of latencies (ms)."""
    a = np.asarray(list(values), dtype=np.float64)
    if a.size == 0:
        return {"n": 0, "mean": float("nan"), "p50": float("nan"), "p99": float("nan"), "max": float("nan")}
    return {
        "n": int(a.size),
        "mean": float(a.mean()),
        "p50": float(np.percentile(a, 50)),
        "p99": float(np.percentile(a, 99)),
        "max": float(a.max()),
    }


#: Newest latencies the percentiles of a :class:`StreamLatency` are taken over.
PERCENTILE_WINDOW = 4096


class StreamLatency:
    """
    Latencies of an endless stream in bounded memory, summarised in bounded time.

    ``n``, ``mean`` and ``max`` are exact running aggregates over every value; ``p50`` and ``p99`` are
    over the newest ``window`` values. Why: a live master summarises itself every second (the ROS
    ``stats`` heartbeat) on the thread that schedules the cluster; percentiles of a 100k-value history
    took 4.7 ms there, these take a fraction of a millisecond. Runs shorter than the window summarise
    exactly as :func:`summarize`.
    """

    def __init__(self, window: int = PERCENTILE_WINDOW) -> None:
        """Empty; ``window`` values are kept for the percentiles."""
        self.n = 0
        self.total = 0.0
        self.max = float("-inf")
        self.window: deque[float] = deque(maxlen=window)

    def add(self, ms: float) -> None:
        """One latency (ms)."""
        self.n += 1
        self.total += ms
        if ms > self.max:
            self.max = ms
        self.window.append(ms)

    def summary(self) -> dict[str, float]:
        """Same keys as :func:`summarize`."""
        if not self.n:
            return summarize(())
        a = np.fromiter(self.window, dtype=np.float64, count=len(self.window))
        p50, p99 = np.percentile(a, (50, 99))
        mean = self.total / self.n
        return {"n": self.n, "mean": mean, "p50": float(p50), "p99": float(p99), "max": self.max}


class LatencyRecorder:
    """Per-stage latency samples in milliseconds."""

    def __init__(self) -> None:
        self.samples: dict[str, list[float]] = defaultdict(list)

    def add(self, stage: str, ms: float) -> None:
        self.samples[stage].append(float(ms))

    def add_all(self, timings_ms: dict[str, float], prefix: str = "") -> None:
        """Add every stage of a timings dict (e.g. a RegionOutcome's)."""
        for k, v in timings_ms.items():
            self.add(prefix + k, v)

    def summary(self) -> dict[str, dict[str, float]]:
        return {k: summarize(v) for k, v in sorted(self.samples.items())}


def fps(frames: int, seconds: float) -> float:
    """Frames per second (0 for an empty run)."""
    return frames / seconds if seconds > 0 else 0.0


class PathMix:
    """Counts of segmentation vs flow region steps."""

    def __init__(self) -> None:
        self.seg = 0
        self.flow = 0

    def add(self, path: str) -> None:
        if path == "seg":
            self.seg += 1
        elif path == "flow":
            self.flow += 1
        else:
            raise ValueError(f"unknown path {path!r}")

    @property
    def total(self) -> int:
        return self.seg + self.flow

    @property
    def seg_fraction(self) -> float:
        """Share of region steps that ran the segmentation net (0..1)."""
        return self.seg / self.total if self.total else 0.0
