"""
:class:`Frame`, :class:`FrameTransform` and the :class:`Source` base: what every stage passes around.

A leaf of ``dvs_cluster.io`` (numpy and OpenCV only), so sinks, bags and the nodes can name a frame
without importing the source implementations (which import the bag reader, which imports the sinks).
The resize policy is described in :mod:`dvs_cluster.io.sources`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
import numpy.typing as npt

UInt8Array = npt.NDArray[np.uint8]
ResizeMode = Literal["letterbox", "stretch"]
RESIZE_MODES: tuple[str, ...] = ("letterbox", "stretch")

DEFAULT_WIDTH, DEFAULT_HEIGHT = 1024, 512


def _u8(array: object) -> UInt8Array:
    """Typed view of an OpenCV result (always uint8 here)."""
    return np.asarray(array, dtype=np.uint8)


class SourceError(RuntimeError):
    """A source cannot be opened or read (missing file, undecodable video, non-image in a folder)."""


class FrameTransform:
    """Maps one input size to the processing size and results back (see module doc for the policy)."""

    def __init__(
        self, in_width: int, in_height: int, out_width: int, out_height: int, mode: ResizeMode = "letterbox"
    ) -> None:
        if mode not in RESIZE_MODES:
            raise ValueError(f"unknown resize mode {mode!r} (use {', '.join(RESIZE_MODES)})")
        self.in_size = (in_width, in_height)
        self.out_size = (out_width, out_height)
        self.mode = mode
        if mode == "stretch":
            cw, ch, ox, oy = out_width, out_height, 0, 0
        else:
            scale = min(out_width / in_width, out_height / in_height)
            cw = min(out_width, max(1, round(in_width * scale)))
            ch = min(out_height, max(1, round(in_height * scale)))
            ox, oy = (out_width - cw) // 2, (out_height - ch) // 2
        self.content = (ox, oy, cw, ch)  # where the input lands inside the processed frame

    @property
    def identity(self) -> bool:
        return self.in_size == self.out_size

    def forward(self, image: UInt8Array) -> UInt8Array:
        """Input-size RGB image -> processing-size image."""
        if image.shape[1::-1] != self.in_size:
            raise ValueError(f"image is {image.shape[1]}x{image.shape[0]}, transform expects {self.in_size}")
        if self.identity:
            return image
        ox, oy, cw, ch = self.content
        shrink = cw < self.in_size[0] or ch < self.in_size[1]
        resized = _u8(
            cv2.resize(image, (cw, ch), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        )
        ow, oh = self.out_size
        if (cw, ch) == (ow, oh):
            return np.ascontiguousarray(resized)
        return _u8(cv2.copyMakeBorder(resized, oy, oh - ch - oy, ox, ow - cw - ox, cv2.BORDER_REPLICATE))

    def labels_back(self, labels: UInt8Array) -> UInt8Array:
        """Processing-size label map -> input-size label map (bars cropped, nearest resize)."""
        if self.identity:
            return labels
        ox, oy, cw, ch = self.content
        crop = np.ascontiguousarray(labels[oy : oy + ch, ox : ox + cw])
        return _u8(cv2.resize(crop, self.in_size, interpolation=cv2.INTER_NEAREST))


@dataclass
class Frame:
    """
    One frame: ``image`` at processing size, ``raw`` as read, optional ground truth (processing size).

    ``stamp`` (seconds) and ``frame_id`` are the input's header; they travel with the frame to the
    slaves and back to the outputs. ``stamp_ns`` is the same instant to the nanosecond when the source
    has it (a ROS header), so outputs carry the input's stamp exactly, not through a float.
    """

    index: int
    image: UInt8Array
    labels: UInt8Array | None
    stamp: float
    transform: FrameTransform
    raw: UInt8Array
    frame_id: str = ""
    stamp_ns: int | None = None


class Source:
    """Base class: iterate to get frames; ``length`` is the frame count when known (None: endless)."""

    name = "source"
    has_labels = False
    fps = 30.0  # nominal frame rate (used for MP4 output)

    def __init__(
        self, width: int = DEFAULT_WIDTH, height: int = DEFAULT_HEIGHT, resize: ResizeMode = "letterbox"
    ):
        self.width, self.height, self.resize = width, height, resize
        self.length: int | None = None
        self._transforms: dict[tuple[int, int], FrameTransform] = {}

    def transform_for(self, width: int, height: int) -> FrameTransform:
        """Cached transform for an input size (image folders may mix sizes)."""
        key = (width, height)
        if key not in self._transforms:
            self._transforms[key] = FrameTransform(width, height, self.width, self.height, self.resize)
        return self._transforms[key]

    def _frame(self, index: int, rgb: UInt8Array, stamp: float) -> Frame:
        tf = self.transform_for(rgb.shape[1], rgb.shape[0])
        return Frame(index, tf.forward(rgb), None, stamp, tf, rgb)

    def __iter__(self) -> Iterator[Frame]:
        raise NotImplementedError

    def close(self) -> None:
        """Release devices/files (idempotent)."""

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
