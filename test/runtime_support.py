"""Shared fixtures: the shipped models (found through the inference layer's resolution) and videos."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from dvs_cluster.inference import ModelError, resolve_model_dir


def shipped_model_dir() -> Path:
    """The directory the runtime would use; skip when no models are installed or shipped yet."""
    try:
        d = resolve_model_dir()
    except ModelError as e:
        pytest.skip(f"models/*.onnx not available: {e}")
    if not all((d / f).is_file() for f in ("seg.onnx", "flow.onnx", "dn.onnx")):
        pytest.skip(f"models/*.onnx incomplete in {d}")
    return d


def write_video(path: Path, frames: int = 6, width: int = 320, height: int = 180) -> Path:
    """A small moving-box MP4 (mp4v) at a size other than the processing size."""
    w = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), 10, (width, height))
    assert w.isOpened()
    for i in range(frames):
        img = np.full((height, width, 3), 90, np.uint8)
        cv2.rectangle(img, (20 + 8 * i, 30), (120 + 8 * i, 120), (30, 200, 60), -1)
        w.write(img)
    w.release()
    return path
