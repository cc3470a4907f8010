"""
Frame regions: split a frame into a rows x cols grid (with optional overlap) and put results back.

DVSNet processes each region on its own (and the cluster ships regions to different boards), so the
split must be exact for any frame size: when W or H is not divisible by the grid, the regions simply
differ by a pixel. With an overlap margin each region is padded into its neighbours; when assembling,
a pixel covered by several padded regions keeps the prediction with the higher max-logit (as DVSNet
does), and ties keep the region whose core owns the pixel.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from dvs_cluster.core.classes import IGNORE_LABEL

UInt8Array = npt.NDArray[np.uint8]
FloatArray = npt.NDArray[np.float32]
T = TypeVar("T", bound=np.generic)


@dataclass(frozen=True)
class Region:
    """
    One cell of the grid: its core rectangle and the padded rectangle actually processed.

    Rectangles are half-open ``[x0, x1) x [y0, y1)`` in frame pixels.
    """

    index: int
    row: int
    col: int
    x0: int
    y0: int
    x1: int
    y1: int
    px0: int
    py0: int
    px1: int
    py1: int

    @property
    def width(self) -> int:
        """Padded width (the size of the crop the models see)."""
        return self.px1 - self.px0

    @property
    def height(self) -> int:
        """Padded height (the size of the crop the models see)."""
        return self.py1 - self.py0

    @property
    def core_width(self) -> int:
        return self.x1 - self.x0

    @property
    def core_height(self) -> int:
        return self.y1 - self.y0

    @property
    def padded_slices(self) -> tuple[slice, slice]:
        """(rows, cols) slices of the padded rectangle in the frame."""
        return slice(self.py0, self.py1), slice(self.px0, self.px1)

    @property
    def core_slices(self) -> tuple[slice, slice]:
        """(rows, cols) slices of the core rectangle in the frame."""
        return slice(self.y0, self.y1), slice(self.x0, self.x1)

    @property
    def core_in_padded(self) -> tuple[slice, slice]:
        """(rows, cols) slices of the core rectangle inside the padded crop."""
        oy, ox = self.y0 - self.py0, self.x0 - self.px0
        return slice(oy, oy + self.core_height), slice(ox, ox + self.core_width)


def _edges(size: int, parts: int) -> list[int]:
    return [(i * size) // parts for i in range(parts + 1)]


class RegionGrid:
    """A rows x cols split of a ``width`` x ``height`` frame, regions indexed row-major."""

    def __init__(self, width: int, height: int, rows: int = 2, cols: int = 2, overlap: int = 0) -> None:
        if width <= 0 or height <= 0:
            raise ValueError(f"frame size must be positive, got {width}x{height}")
        if rows <= 0 or cols <= 0 or rows > height or cols > width:
            raise ValueError(f"grid {rows}x{cols} does not fit a {width}x{height} frame")
        if overlap < 0:
            raise ValueError(f"overlap must be >= 0, got {overlap}")
        self.width, self.height, self.rows, self.cols, self.overlap = width, height, rows, cols, overlap
        xs, ys = _edges(width, cols), _edges(height, rows)
        regions = []
        for r in range(rows):
            for c in range(cols):
                x0, x1, y0, y1 = xs[c], xs[c + 1], ys[r], ys[r + 1]
                regions.append(
                    Region(
                        index=r * cols + c,
                        row=r,
                        col=c,
                        x0=x0,
                        y0=y0,
                        x1=x1,
                        y1=y1,
                        px0=max(0, x0 - overlap),
                        py0=max(0, y0 - overlap),
                        px1=min(width, x1 + overlap),
                        py1=min(height, y1 + overlap),
                    )
                )
        self.regions: tuple[Region, ...] = tuple(regions)

    def __len__(self) -> int:
        return len(self.regions)

    def __repr__(self) -> str:
        return f"RegionGrid({self.width}x{self.height}, {self.rows}x{self.cols}, overlap={self.overlap})"

    def _check_frame(self, frame: npt.NDArray[np.generic]) -> None:
        if frame.shape[:2] != (self.height, self.width):
            shape = f"{frame.shape[1]}x{frame.shape[0]}"
            raise ValueError(f"frame is {shape}, grid is {self.width}x{self.height}")

    def crop(self, frame: npt.NDArray[T], index: int) -> npt.NDArray[T]:
        """Contiguous copy of the padded crop of region ``index`` (H, W[, C] frames)."""
        self._check_frame(frame)
        return np.ascontiguousarray(frame[self.regions[index].padded_slices])

    def split(self, frame: npt.NDArray[T]) -> list[npt.NDArray[T]]:
        """Padded crops of all regions, in region order (contiguous copies: safe to keep as keys)."""
        return [np.ascontiguousarray(v) for v in self.views(frame)]

    def views(self, frame: npt.NDArray[T]) -> list[npt.NDArray[T]]:
        """
        Padded crops of all regions as views of ``frame`` (no copy).

        For a consumer that copies anyway (the master serialises each crop into its task), a copy here
        would be a second one; the views keep the whole frame alive while any of them is held.
        """
        self._check_frame(frame)
        return [frame[r.padded_slices] for r in self.regions]

    def split_channels(self, array: npt.NDArray[T]) -> list[npt.NDArray[T]]:
        """Padded crops of a channel-first ``(C, H, W)`` array (e.g. full-resolution logits)."""
        self._check_frame(array.transpose(1, 2, 0))
        return [np.ascontiguousarray(array[(Ellipsis,) + r.padded_slices]) for r in self.regions]

    def merge(
        self,
        parts: Sequence[npt.NDArray[np.generic]],
        confidences: Sequence[FloatArray] | None = None,
        fill: float | int = 0,
    ) -> npt.NDArray[np.generic]:
        """
        Assemble per-region arrays (padded size, ``(h, w)`` or ``(C, h, w)``) into one frame array.

        Without confidences (or without overlap) every pixel comes from the region whose core owns it.
        With confidences (``(h, w)`` per region, e.g. the max logit), pixels in overlaps keep the value of
        the region with the strictly higher confidence.
        """
        if len(parts) != len(self.regions):
            raise ValueError(f"expected {len(self.regions)} parts, got {len(parts)}")
        first = parts[0]
        channel_first = first.ndim == 3
        lead = first.shape[:1] if channel_first else ()
        out = np.full((*lead, self.height, self.width), fill, dtype=first.dtype)
        for region, part in zip(self.regions, parts, strict=True):
            if part.shape[-2:] != (region.height, region.width):
                raise ValueError(
                    f"region {region.index}: part is {part.shape[-1]}x{part.shape[-2]}, "
                    f"expected {region.width}x{region.height}"
                )
            out[(Ellipsis,) + region.core_slices] = part[(Ellipsis,) + region.core_in_padded]
        if confidences is None or self.overlap == 0:
            return out
        if len(confidences) != len(self.regions):
            raise ValueError(f"expected {len(self.regions)} confidence maps, got {len(confidences)}")
        best = np.empty((self.height, self.width), dtype=np.float32)
        for region, conf in zip(self.regions, confidences, strict=True):
            best[region.core_slices] = conf[region.core_in_padded]
        for region, part, conf in zip(self.regions, parts, confidences, strict=True):
            sl = region.padded_slices
            win = conf > best[sl]
            if not win.any():
                continue
            best[sl] = np.where(win, conf, best[sl])
            target = out[(Ellipsis,) + sl]
            target[..., win] = part[..., win]
        return out

    def assemble_labels(
        self, labels: Sequence[UInt8Array], confidences: Sequence[FloatArray] | None = None
    ) -> UInt8Array:
        """Per-region label maps (padded size) -> frame label map; see :meth:`merge` for overlaps."""
        out: UInt8Array = self.merge(labels, confidences, fill=IGNORE_LABEL).astype(np.uint8, copy=False)
        return out

    def assemble_logits(self, logits: Sequence[FloatArray]) -> FloatArray:
        """Per-region full-resolution logits ``(C, h, w)`` -> frame logits, max-logit rule in overlaps."""
        conf = [np.max(lg, axis=0) for lg in logits]
        out: FloatArray = self.merge(logits, conf, fill=0.0).astype(np.float32, copy=False)
        return out
