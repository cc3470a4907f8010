"""
Key frames and key buffers.

A key is what the flow path needs for one region: the region image of the last segmentation step and
its logits. The same :class:`KeyBuffer` serves as Single's buffer, the master's global key buffer and a
slave's local key buffer (one entry per region, newest key wins).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class KeyFrame:
    """The segmentation result a region's flow path warps from."""

    timestep: int
    image: npt.NDArray[np.uint8]  # (h, w, 3) RGB region crop
    logits: npt.NDArray[np.float32]  # (C, h/4, w/4)

    @property
    def nbytes(self) -> int:
        """Payload size; what shipping this key to a slave costs."""
        return int(self.image.nbytes + self.logits.nbytes)


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
        if cur is not None and cur.timestep > key.timestep:
            return False
        self._keys[region] = key
        return True

    def timestep(self, region: int) -> int | None:
        """Timestep of the region's key (None if empty)."""
        key = self._keys[region]
        return None if key is None else key.timestep

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
