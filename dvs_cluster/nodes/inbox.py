"""
The master's one inbox: every event from another thread (transport callbacks, a camera) goes through it.

Producers only :meth:`Inbox.put`; the master's thread alone :meth:`Inbox.get` takes and handles events, so
nothing the master owns is written from two threads. The inbox is bounded in two lanes, so a flood of
results cannot shut the camera out and a stalled master cannot hoard frames: at most ``size`` other
events and ``frames`` camera frames wait. What does not fit is refused and counted here, under the
inbox's lock (the only state producers share); the master reads the counts on its own thread.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from typing import Any

#: Event kinds: what the master's event handler understands.
FRAME = "frame"
RESULT = "result"
STATUS = "status"
ALIVE = "alive"

Event = tuple[str, str, Any]  # (kind, key, value)


class Inbox:
    """A bounded multi-producer, single-consumer event queue with per-kind refusal counts."""

    def __init__(self, size: int = 256, frames: int = 16) -> None:
        """At most ``size`` non-frame events and ``frames`` frames wait at once."""
        if size <= 0 or frames <= 0:
            raise ValueError("inbox bounds must be positive")
        self.size = size
        self.max_frames = frames
        self._events: deque[Event] = deque()
        self._cond = threading.Condition(threading.Lock())
        self._frames = 0
        self._refused: Counter[str] = Counter()

    def put(self, kind: str, key: str, value: Any) -> bool:
        """Enqueue without blocking (any thread); False (counted) when the event's lane is full."""
        with self._cond:
            if kind == FRAME:
                if self._frames >= self.max_frames:
                    self._refused[kind] += 1
                    return False
                self._frames += 1
            elif len(self._events) - self._frames >= self.size:
                self._refused[kind] += 1
                return False
            self._events.append((kind, key, value))
            self._cond.notify()
            return True

    def get(self, timeout: float = 0.0) -> Event | None:
        """The oldest event, waiting up to ``timeout`` s for one (the master's thread only)."""
        with self._cond:
            if not self._events and timeout > 0:
                deadline = time.monotonic() + timeout
                while not self._events:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
            if not self._events:
                return None
            event = self._events.popleft()
            if event[0] == FRAME:
                self._frames -= 1
            return event

    def refused(self, kind: str | None = None) -> int:
        """Events refused so far: of ``kind``, or of every kind but frames (None)."""
        with self._cond:
            if kind is not None:
                return self._refused[kind]
            return sum(v for k, v in self._refused.items() if k != FRAME)

    def __len__(self) -> int:
        """Events waiting."""
        with self._cond:
            return len(self._events)

    def frames_waiting(self) -> int:
        """Frames waiting."""
        with self._cond:
            return self._frames
