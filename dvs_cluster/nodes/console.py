"""
What a cluster process tells the person who started it: connection state, waiting, peers, progress.

A hand-started cluster spans several terminals; each must say whether it is connected, to what, and
when a peer goes. Event lines go to stderr always (``-q`` silences them, stdout stays for data such as
``--json -``); the self-overwriting progress line only when stderr is a terminal. The watchers only
read the node's counters from their own thread (ints and an append-only event list): the node's loop
is untouched.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from dvs_cluster.transport.base import ClusterKeys, Transport


class Console:
    """Lines on stderr, one at a time, with a progress line kept below them on a terminal."""

    def __init__(
        self, prefix: str, quiet: bool = False, progress: bool | None = None, stream: TextIO | None = None
    ) -> None:
        self.stream = stream or sys.stderr
        self.prefix = prefix
        self.quiet = quiet
        tty = self.stream.isatty()
        self.progress_on = (not quiet and tty) if progress is None else progress
        self._lock = threading.Lock()
        self._line = ""  # the progress line on screen now

    def say(self, text: str) -> None:
        """One event line (kept above the progress line)."""
        if self.quiet:
            return
        with self._lock:
            clear = "\r\033[K" if self._line else ""
            self.stream.write(f"{clear}{self.prefix}{text}\n{self._line}")
            self.stream.flush()

    def progress(self, text: str) -> None:
        """Replace the progress line (a terminal only)."""
        if not self.progress_on:
            return
        with self._lock:
            self._line = f"  {text}"
            self.stream.write(f"\r\033[K{self._line}")
            self.stream.flush()

    def end_progress(self) -> None:
        """Leave the last progress line on screen and move below it."""
        with self._lock:
            if self._line:
                self.stream.write("\n")
                self.stream.flush()
                self._line = ""


def where(listen: Sequence[str], connect: Sequence[str], multicast: bool | None = None) -> str:
    """
    How this node finds its peers, as a phrase: ``at tcp/...``, ``via multicast scouting``, or both.

    ``multicast`` None is the CLI's ``auto``: scouting only without ``connect`` endpoints.
    """
    scouting = multicast if multicast is not None else not connect
    ways = [f"at {', '.join(connect)}"] if connect else []
    if listen:
        ways.append(f"on {', '.join(listen)} (listening)")
    if scouting:
        ways.append("via multicast scouting")
    return " or ".join(ways) if ways else "nowhere (no --connect, no --listen, multicast off)"


class SlaveWatch:
    """
    The slave's view of its master: ``connected to master M``, ``master left``, ``no master at X yet``.

    ``at`` is :func:`where`'s phrase (``at tcp/10.0.0.1:7447``).

    Watches the master's liveliness token (and its heartbeat for the name); until a master is there it
    repeats the ``no master`` line every ``every_s`` seconds, the first after ``first_s``.
    """

    def __init__(
        self,
        transport: Transport,
        keys: ClusterKeys,
        console: Console,
        at: str,
        first_s: float = 3.0,
        every_s: float = 5.0,
    ) -> None:
        self.console = console
        self.keys = keys
        self.at = at
        self.first_s = first_s
        self.every_s = every_s
        self.connected = False
        self._master: dict[str, Any] = {}
        self._changed = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._handles = [
            transport.subscribe(keys.master_status, self._on_status),
            transport.watch_liveliness(keys.alive_master, self._on_alive),
        ]
        self._thread = threading.Thread(target=self._loop, name="slave-watch", daemon=True)
        self._thread.start()

    def _on_status(self, key: str, payload: bytes) -> None:
        try:
            status = json.loads(payload)
        except ValueError:
            return
        if isinstance(status, dict):
            with self._lock:
                self._master = status

    def _on_alive(self, key: str, alive: bool) -> None:
        with self._lock:
            self.connected = alive
            if not alive:
                self._master = {}  # the next master has its own name
        self._changed.set()

    def _named(self, wait_s: float) -> bool:
        """Wait up to ``wait_s`` for the master's heartbeat (it carries the name)."""
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline and not self._stop.is_set():
            with self._lock:
                if self._master.get("host") or not self.connected:
                    return True
            time.sleep(0.05)
        return False

    def _name(self) -> str:
        with self._lock:
            m = dict(self._master)
        if m.get("host"):
            return f"master {m['host']} (cluster {self.keys.cluster_id}, run {m.get('run_id', '?')})"
        return f"the master of cluster {self.keys.cluster_id}"

    def _loop(self) -> None:
        shown = False  # what the console last said: connected or not
        next_line = time.monotonic() + self.first_s
        while not self._stop.is_set():
            self._changed.wait(0.5)
            if self._stop.is_set():
                return
            if self._changed.is_set():
                self._changed.clear()
                if self.connected and not shown:
                    self._named(5.0)  # the master's heartbeat (every second) names it
                    # Said even if the master has already left meanwhile (a short run): the slave did
                    # connect and may have served tasks; the next pass then says "master left".
                    self.console.say(f"connected to {self._name()}")
                    shown = True
                elif not self.connected and shown:
                    self.console.say(
                        f"master left (cluster {self.keys.cluster_id}); waiting for the next one "
                        f"{self.at} (Ctrl-C stops this slave)"
                    )
                    shown = False
                    next_line = time.monotonic() + self.every_s
            if not self.connected and time.monotonic() >= next_line:
                self.console.say(f"no master {self.at} yet (cluster {self.keys.cluster_id})")
                next_line = time.monotonic() + self.every_s

    def close(self) -> None:
        """Stop the watcher and withdraw its subscriptions."""
        self._stop.set()
        self._changed.set()
        self._thread.join(timeout=2.0)
        for h in self._handles:
            h.close()


class MasterWatch:
    """
    While a master runs: a progress line (frames, fps, drops, slaves alive) and a line per slave event.

    ``node`` is a :class:`~dvs_cluster.nodes.master.MasterNode`; only its counters and its append-only
    ``slave_events`` are read.
    """

    def __init__(
        self, node: Any, console: Console, total: int | None, period_s: float = 0.5, seen_events: int = 0
    ) -> None:
        self.node = node
        self.console = console
        self.total = total
        self.period_s = period_s
        self._seen = seen_events
        self._stop = threading.Event()
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._loop, name="master-watch", daemon=True)
        self._thread.start()

    def events(self, say: Callable[[str], None]) -> None:
        """Report the slave events not reported yet."""
        ev = self.node.slave_events
        n = len(ev)
        for _, name, alive in ev[self._seen : n]:
            say(f"slave {name} {'joined' if alive else 'left'} ({len(self.node.wm.slaves)} alive)")
        self._seen = n

    def line(self) -> str:
        """The progress text now."""
        n = self.node
        out = n.frames_out
        elapsed = max(time.monotonic() - self._t0, 1e-9)
        total = f"/{self.total}" if self.total else ""
        return (
            f"frame {out}{total}  {out / elapsed:6.2f} fps  in {n.frames_in}  dropped {n.frames_dropped}  "
            f"slaves {len(n.wm.slaves)}"
        )

    def _loop(self) -> None:
        while not self._stop.wait(self.period_s):
            self.events(self.console.say)
            self.console.progress(self.line())

    def close(self) -> None:
        """Stop, with a last progress line and any events not yet said."""
        self._stop.set()
        self._thread.join(timeout=2.0)
        self.events(self.console.say)
        self.console.progress(self.line())
        self.console.end_progress()
