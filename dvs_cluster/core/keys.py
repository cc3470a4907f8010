"""
Key frames and key buffers.

A key is what the flow path needs for one region: the region image of the last segmentation step and
its logits. With propagation (``RegionProcessor(propagate=True)``, the default) a flow step's output
becomes the region's reference for the next step: a :class:`KeyFrame` of that frame whose ``root`` is
the segmentation step it derives from, so the next flow spans one frame, not the whole key age (DIS
follows short motion far better than long). The same :class:`KeyBuffer` serves as Single's buffer, the
master's global key buffer and a slave's local key buffer (one entry per region, newest key wins).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class KeyFrame:
    """What a region's flow path warps from: a segmentation result, or a flow step's output (``root``)."""

    timestep: int  # the frame ``image`` and ``logits`` are of
    image: npt.NDArray[np.uint8]  # (h, w, 3) RGB region crop
    logits: npt.NDArray[np.float32]  # (C, h/4, w/4)
    root: int | None = None  # the segmentation step a propagated state derives from (None: this is one)
    #: For a propagated state: its key's region image, and the composed backward flow from this frame
    #: to the key on the 1/4 grid (what the chain has moved; the DN v2 judges it against the key).
    anchor: npt.NDArray[np.uint8] | None = None
    to_key: npt.NDArray[np.float32] | None = None

    @property
    def key_timestep(self) -> int:
        """The frame of the segmentation step behind this entry: what key ages count from."""
        return self.timestep if self.root is None else self.root

    @property
    def nbytes(self) -> int:
        """Payload size; what shipping this key to a slave costs."""
        return int(self.image.nbytes + self.logits.nbytes)

    def newer_than(self, other: KeyFrame) -> bool:
        """Ordered by the key behind it, then by frame: a fresher segmentation beats a longer chain."""
        return (self.key_timestep, self.timestep) > (other.key_timestep, other.timestep)


class KeyBuffer:
    """One key per region; :meth:`put` keeps the newest (an older key never replaces a newer one)."""

    def __init__(self, num_regions: int) -> None:
        if num_regions <= 0:
            raise ValueError(f"num_regions must be positive, got {num_regions}")
        self._keys: list[KeyFrame | None] = [None] * num_regions

    def __len__(self) -> int:
        return len(self._keys)

    def __iter__(self) -> Iterator[KeyFrame | None]:
        return iter(self._keys)

    def get(self, region: int) -> KeyFrame | None:
        """The region's key, or None before its first segmentation step."""
        return self._keys[region]

    def put(self, region: int, key: KeyFrame) -> bool:
        """Store ``key`` unless the buffer already holds a newer one; returns whether it was stored."""
        cur = self._keys[region]
        if cur is not None and cur.newer_than(key):
            return False
        self._keys[region] = key
        return True

    def timestep(self, region: int) -> int | None:
        """Timestep of the region's key, the segmentation step behind its entry (None if empty)."""
        key = self._keys[region]
        return None if key is None else key.key_timestep

    def age(self, region: int, t: int) -> int | None:
        """Frames between the region's key and timestep ``t`` (None if no key)."""
        ts = self.timestep(region)
        return None if ts is None else t - ts

    def clear(self, region: int | None = None) -> None:
        """Drop one region's key (e.g. after a scene cut) or all keys."""
        if region is None:
            self._keys = [None] * len(self._keys)
        else:
            self._keys[region] = None
