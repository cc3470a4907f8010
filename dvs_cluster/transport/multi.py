"""
Several backends as one transport: a master that reaches ROS 2 slaves and Zenoh slaves at once.

The key space and the payloads (CDR) are the same on every backend, so bridging is plain fan-out:
publications go to every backend (a backend with no subscriber on the key sends nothing on the
wire), subscriptions and liveliness watches are made on every backend, and a token counts as alive
while any backend reports it. Tokens are declared on every backend, so slaves of either kind see it.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from .base import Handle, LivelinessCallback, MessageCallback, Payload, Transport


class _Group:
    def __init__(self, handles: Sequence[Handle]) -> None:
        self._handles = list(handles)

    def close(self) -> None:
        handles, self._handles = self._handles, []
        for h in handles:
            h.close()


class MultiTransport(Transport):
    """Fan-out over ``backends`` (closed together with this transport)."""

    def __init__(self, backends: Sequence[Transport]) -> None:
        """At least one backend; their order is only the publication order."""
        if not backends:
            raise ValueError("MultiTransport needs at least one backend")
        self.backends = list(backends)
        self._closed = False

    def publish(self, key: str, payload: Payload) -> None:
        """Publish on every backend."""
        for b in self.backends:
            b.publish(key, payload)

    def subscribe(self, key_expr: str, callback: MessageCallback) -> Handle:
        """Subscribe on every backend (a sender uses one of them, so nothing arrives twice)."""
        return _Group([b.subscribe(key_expr, callback) for b in self.backends])

    def declare_liveliness(self, key: str) -> Handle:
        """Declare the token on every backend."""
        return _Group([b.declare_liveliness(key) for b in self.backends])

    def watch_liveliness(self, key_expr: str, callback: LivelinessCallback) -> Handle:
        """Alive while any backend has the token; one event per real change."""
        lock = threading.Lock()
        alive_on: dict[str, set[int]] = {}

        def per_backend(index: int) -> LivelinessCallback:
            def on_change(key: str, alive: bool) -> None:
                with lock:
                    holders = alive_on.setdefault(key, set())
                    before = bool(holders)
                    if alive:
                        holders.add(index)
                    else:
                        holders.discard(index)
                    after = bool(holders)
                if before != after:
                    callback(key, after)

            return on_change

        return _Group([b.watch_liveliness(key_expr, per_backend(i)) for i, b in enumerate(self.backends)])

    def close(self) -> None:
        """Close every backend."""
        if self._closed:
            return
        self._closed = True
        for b in self.backends:
            b.close()
