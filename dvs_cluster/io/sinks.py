"""
Output sinks: label / ground-truth PNGs (trainIds), colour maps and overlays (PNG or MP4), stats JSON.

Sinks receive each frame with its labels already mapped back to the input size, so every file has the
input's size. Names are the zero-padded frame index (``000042.png``) so they sort and pair up.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any, Literal, Protocol

import cv2
import numpy as np
import numpy.typing as npt

from dvs_cluster.core.classes import colorize, overlay
from dvs_cluster.io.frame import Frame

UInt8Array = npt.NDArray[np.uint8]
Style = Literal["labels", "gt", "color", "overlay"]
INDEX_DIGITS = 6
#: ``--save-overlay`` (and any output path) with one of these suffixes is a video, else a PNG directory.
VIDEO_SUFFIXES = (".mp4", ".avi")
_FRAME_FILE = re.compile(rf"^\d{{{INDEX_DIGITS},}}\.png$")


class SinkError(RuntimeError):
    """An output cannot be written (unwritable directory, no video encoder)."""


class Sink(Protocol):
    """Receives every processed frame; ``labels`` are at the input size."""

    def write(self, frame: Frame, labels: UInt8Array) -> None: ...

    def close(self) -> None: ...


def frame_name(index: int, ext: str = ".png") -> str:
    """File name of a frame: zero-padded index."""
    return f"{index:0{INDEX_DIGITS}d}{ext}"


def is_video_path(path: str | os.PathLike[str]) -> bool:
    """Whether an output path names a video (by suffix), the one rule every command applies."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def clear_frames(directory: str | os.PathLike[str]) -> int:
    """Remove the frame PNGs (``000042.png``) an earlier run left in ``directory``; returns how many."""
    p = Path(directory)
    if not p.is_dir():
        return 0
    n = 0
    for f in p.iterdir():
        if _FRAME_FILE.match(f.name) and f.is_file():
            try:
                f.unlink()
            except OSError as e:
                raise SinkError(f"cannot remove {f} of an earlier run: {e.strerror or e}") from e
            n += 1
    return n


def _prepare_dir(path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SinkError(f"cannot create output directory {p}: {e.strerror or e}") from e
    return p


def _imwrite(path: Path, image: UInt8Array) -> None:
    ok, buf = cv2.imencode(path.suffix, image)
    if not ok:
        raise SinkError(f"cannot encode {path}")
    try:
        buf.tofile(str(path))
    except OSError as e:
        raise SinkError(f"cannot write {path}: {e.strerror or e}") from e


def _render(style: Style, frame: Frame, labels: UInt8Array) -> UInt8Array:
    """RGB (colour styles) or single-channel (label styles) image of a frame."""
    if style == "labels":
        return labels
    if style == "gt":
        if frame.labels is None:
            raise SinkError("this source has no ground truth to save")
        return frame.transform.labels_back(frame.labels)
    if style == "color":
        return colorize(labels)
    return overlay(frame.raw, labels)


class PngSink:
    """
    One PNG per frame in a directory: trainIds (``labels``/``gt``) or RGB (``color``/``overlay``).

    ``clear``: first remove the frame PNGs of an earlier run (``cleared`` says how many), so the
    directory holds one run's frames only.
    """

    def __init__(
        self, directory: str | os.PathLike[str], style: Style = "labels", clear: bool = False
    ) -> None:
        self.cleared = clear_frames(directory) if clear else 0
        self.directory = _prepare_dir(directory)
        self.style: Style = style
        self.count = 0

    def write(self, frame: Frame, labels: UInt8Array) -> None:
        img = _render(self.style, frame, labels)
        if img.ndim == 3:
            img = np.asarray(cv2.cvtColor(img, cv2.COLOR_RGB2BGR), dtype=np.uint8)
        _imwrite(self.directory / frame_name(frame.index), img)
        self.count += 1

    def close(self) -> None:
        return None


class VideoSink:
    """An MP4 (``mp4v``) of overlays or colour maps, opened on the first frame with its size."""

    def __init__(self, path: str | os.PathLike[str], fps: float = 30.0, style: Style = "overlay") -> None:
        self.path = Path(path)
        _prepare_dir(self.path.parent if str(self.path.parent) else ".")
        self.fps = fps
        self.style: Style = style
        self._writer: cv2.VideoWriter | None = None
        self.count = 0

    def write(self, frame: Frame, labels: UInt8Array) -> None:
        img = cv2.cvtColor(_render(self.style, frame, labels), cv2.COLOR_RGB2BGR)
        if self._writer is None:
            fourcc = cv2.VideoWriter.fourcc(*"mp4v")
            self._writer = cv2.VideoWriter(str(self.path), fourcc, self.fps, (img.shape[1], img.shape[0]))
            if not self._writer.isOpened():
                raise SinkError(f"cannot open {self.path} for writing (no mp4v encoder in this OpenCV?)")
        self._writer.write(img)
        self.count += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None


def _jsonable(obj: Any) -> Any:
    """NaN/inf -> None and numpy scalars/arrays -> Python, so the file is strict JSON."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return _jsonable(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_json(path: str | os.PathLike[str], data: Any) -> None:
    """Write strict JSON (indent 2); NaN becomes null."""
    p = Path(path)
    if str(p.parent):
        _prepare_dir(p.parent)
    try:
        p.write_text(json.dumps(_jsonable(data), indent=2, allow_nan=False) + "\n")
    except OSError as e:
        raise SinkError(f"cannot write {p}: {e.strerror or e}") from e
