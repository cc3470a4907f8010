"""Deterministic stand-ins for the three nets (no onnxruntime): fast tests of the core pipeline."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from dvs_cluster.core.classes import NUM_CLASSES
from dvs_cluster.core.processor import STRIDE, logit_grid


def _block_mean(image: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    h, w = image.shape[:2]
    gh, gw = logit_grid(h, w)
    gray = image.astype(np.float32).mean(axis=2)
    gray = np.pad(gray, ((0, gh * STRIDE - h), (0, gw * STRIDE - w)), mode="edge")
    return gray.reshape(gh, STRIDE, gw, STRIDE).mean(axis=(1, 3))


class FakeModels:
    """seg: class = intensity bucket; flow: zero flow; dn: 100 - mean abs difference."""

    def __init__(self) -> None:
        self.calls = {"seg": 0, "flow": 0, "dn": 0}

    def seg(self, image: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        self.calls["seg"] += 1
        m = _block_mean(image)
        cls = (m // 14).astype(np.int64) % NUM_CLASSES
        logits = np.zeros((NUM_CLASSES, *m.shape), np.float32)
        np.put_along_axis(logits, cls[None], 5.0 + m[None] / 255.0, axis=0)
        return logits

    def flow(
        self, key: npt.NDArray[np.uint8], current: npt.NDArray[np.uint8], *, cues: bool = True
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        self.calls["flow"] += 1
        gh, gw = logit_grid(*current.shape[:2])
        diff = float(np.abs(key.astype(np.float32) - current.astype(np.float32)).mean())
        return np.zeros((2, gh, gw), np.float32), np.full((64, 4, 8), diff, np.float32)

    def dn_cues(
        self, key: npt.NDArray[np.uint8], current: npt.NDArray[np.uint8], flow: npt.NDArray[np.float32]
    ) -> npt.NDArray[np.float32] | None:
        return None  # the fake DN reads its own features, as DN v1 does

    def dn(self, features: npt.NDArray[np.float32], key_age: int = 1) -> float:
        self.calls["dn"] += 1
        return float(np.clip(100.0 - features.mean(), 0.0, 100.0))
