"""
In-process backend: transports on one bus deliver to each other at once, on the caller's thread.

For harnesses that need a cluster without a network (fuzzing, unit tests of the nodes, the contract
test). ``*`` matches one key chunk, as in Zenoh. Each :class:`LoopbackTransport` is one node: closing it
withdraws its own subscriptions and tokens (watchers on the bus hear the tokens go), as a process
that leaves a real network would. Callbacks run outside the bus lock, so they may publish.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from .base import Handle, LivelinessCallback, MessageCallback, Payload, Transport


def key_matches(expr: str, key: str) -> bool:
    """Chunk-wise match; ``*`` stands for exactly one chunk."""
    a, b = expr.split("/"), key.split("/")
    return len(a) == len(b) and all(x in ("*", y) for x, y in zip(a, b, strict=True))


class LoopbackBus:
    """What the transports of one process share: subscriptions, tokens, liveliness watches."""

    def __init__(self) -> None:
        """Empty bus."""
        self.lock = threading.Lock()
        self.subs: list[tuple[str, MessageCallback, object]] = []
        self.tokens: dict[str, int] = {}  # key -> how many transports declare it
        self.watches: list[tuple[str, LivelinessCallback, object]] = []

    def notify(self, key: str, alive: bool) -> None:
        """Tell every matching watch that ``key`` appeared or went."""
        with self.lock:
            watches = [cb for expr, cb, _ in self.watches if key_matches(expr, key)]
        for cb in watches:
            cb(key, alive)


class _Closer:
    def __init__(self, fn: Callable[[], object]) -> None:
        self._fn: Callable[[], object] | None = fn

    def close(self) -> None:
        fn, self._fn = self._fn, None
        if fn is not None:
            fn()


class LoopbackTransport(Transport):
    """One node on a :class:`LoopbackBus` (its own, unless ``bus`` is given to share one)."""

    def __init__(self, bus: LoopbackBus | None = None) -> None:
        """Join ``bus`` (default: a new, private one)."""
        self.bus = bus if bus is not None else LoopbackBus()
        self._handles: list[_Closer] = []
        self._closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("transport closed")

    def publish(self, key: str, payload: Payload) -> None:
        """Deliver to every matching subscriber on the bus now."""
        self._check_open()
        data = bytes(payload)
        with self.bus.lock:
            subs = [cb for expr, cb, _ in self.bus.subs if key_matches(expr, key)]
        for cb in subs:
            cb(key, data)

    def subscribe(self, key_expr: str, callback: MessageCallback) -> Handle:
        """Register ``callback`` for keys matching ``key_expr``."""
        self._check_open()
        entry = (key_expr, callback, self)
        with self.bus.lock:
            self.bus.subs.append(entry)

        def close() -> None:
            with self.bus.lock:
                if entry in self.bus.subs:
                    self.bus.subs.remove(entry)

        return self._keep(close)

    def declare_liveliness(self, key: str) -> Handle:
        """A token: watchers hear it now, and when it is closed (or this transport is)."""
        self._check_open()
        with self.bus.lock:
            self.bus.tokens[key] = self.bus.tokens.get(key, 0) + 1
            first = self.bus.tokens[key] == 1
        if first:
            self.bus.notify(key, True)

        def close() -> None:
            with self.bus.lock:
                left = self.bus.tokens.get(key, 0) - 1
                if left > 0:
                    self.bus.tokens[key] = left
                else:
                    self.bus.tokens.pop(key, None)
            if left <= 0:
                self.bus.notify(key, False)

        return self._keep(close)

    def watch_liveliness(self, key_expr: str, callback: LivelinessCallback) -> Handle:
        """Register ``callback`` and replay the tokens alive now (liveliness history)."""
        self._check_open()
        entry = (key_expr, callback, self)
        with self.bus.lock:
            self.bus.watches.append(entry)
            alive = [k for k in self.bus.tokens if key_matches(key_expr, k)]
        for key in alive:
            callback(key, True)

        def close() -> None:
            with self.bus.lock:
                if entry in self.bus.watches:
                    self.bus.watches.remove(entry)

        return self._keep(close)

    def close(self) -> None:
        """Withdraw everything this transport declared; idempotent."""
        if self._closed:
            return
        self._closed = True
        handles, self._handles = self._handles, []
        for h in handles:
            h.close()

    def _keep(self, fn: Callable[[], object]) -> Handle:
        handle = _Closer(fn)
        self._handles.append(handle)
        return handle
