"""
The flow path in numpy, exactly as the runtime runs it (no torch): DN targets and evaluation share it.

Flow path = key logits (1/4 grid) warped by the predicted backward flow with core.warp.warp, upsampled
bilinearly to the region size, argmax. The seg path = the seg net's logits upsampled the same way.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from dvs_cluster.core.classes import IGNORE_LABEL, NUM_CLASSES
from dvs_cluster.core.warp import warp

F32 = npt.NDArray[np.float32]
U8 = npt.NDArray[np.uint8]


def upsample(logits: F32, height: int, width: int) -> F32:
    """(C, h, w) logits -> (height, width, C), bilinear, as the run time upsamples them."""
    hwc = np.ascontiguousarray(logits.transpose(1, 2, 0), dtype=np.float32)
    out: F32 = np.asarray(cv2.resize(hwc, (width, height), interpolation=cv2.INTER_LINEAR), np.float32)
    return out


def upsample_argmax(logits: F32, height: int, width: int) -> U8:
    """(C, h, w) logits -> (height, width) trainIds, bilinear upsampling before the argmax."""
    out: U8 = upsample(logits, height, width).argmax(axis=2).astype(np.uint8)
    return out


def flow_path(key_logits: F32, flow: F32, height: int, width: int) -> U8:
    """The trainIds of the current region predicted from the key logits and the backward flow."""
    return upsample_argmax(warp(key_logits, flow), height, width)


def agreement(pred: U8, ref: U8, gt: U8 | None = None) -> float:
    """Percent of pixels where ``pred`` equals ``ref``; GT-ignored (255) pixels left out (DN target)."""
    if gt is not None:
        mask = gt != IGNORE_LABEL
        if not mask.any():
            return 100.0
        return float((pred[mask] == ref[mask]).mean() * 100.0)
    return float((pred == ref).mean() * 100.0)


def confusion(pred: U8, gt: U8, num_classes: int = NUM_CLASSES) -> npt.NDArray[np.int64]:
    """Confusion matrix (gt rows, pred columns) over non-ignored pixels."""
    m = gt != IGNORE_LABEL
    idx = gt[m].astype(np.int64) * num_classes + pred[m].astype(np.int64)
    return np.bincount(idx, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def iou_per_class(conf: npt.NDArray[np.int64]) -> tuple[F32, npt.NDArray[np.bool_]]:
    """IoU per class and which classes are present in the ground truth (mIoU is over those)."""
    tp = np.diag(conf).astype(np.float64)
    gt = conf.sum(axis=1).astype(np.float64)
    pr = conf.sum(axis=0).astype(np.float64)
    denom = gt + pr - tp
    iou = np.where(denom > 0, tp / np.maximum(denom, 1), 0.0).astype(np.float32)
    return iou, gt > 0


def miou(conf: npt.NDArray[np.int64]) -> float:
    """Mean IoU in percent over the classes present in the ground truth."""
    iou, present = iou_per_class(conf)
    return float(iou[present].mean() * 100.0) if present.any() else 0.0


def spearman(a: npt.ArrayLike, b: npt.ArrayLike) -> float:
    """Spearman rank correlation (average ranks for ties) without scipy."""

    def rank(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        order = np.argsort(x, kind="mergesort")
        ranks = np.empty(len(x), np.float64)
        ranks[order] = np.arange(len(x), dtype=np.float64)
        # average the ranks of ties
        _, inv, counts = np.unique(x, return_inverse=True, return_counts=True)
        sums = np.bincount(inv, weights=ranks)
        out: npt.NDArray[np.float64] = sums[inv] / counts[inv]
        return out

    x = np.asarray(a, np.float64).ravel()
    y = np.asarray(b, np.float64).ravel()
    rx, ry = rank(x), rank(y)
    rx -= rx.mean()
    ry -= ry.mean()
    denom = np.sqrt((rx * rx).sum() * (ry * ry).sum())
    return float((rx * ry).sum() / denom) if denom > 0 else 0.0
