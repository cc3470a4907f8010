"""
The master's workload manager: region queue, dynamic scheduling, per-slave key tables, key forwarding.

Pure bookkeeping (no I/O, no clock: callers pass ``now``), so every rule is unit-tested:

- **Queue**: a frame is submitted as ``num_regions`` jobs. Which one an available slave (one with fewer
  than ``max_in_flight`` tasks in flight that has not timed out) gets next is the region order below;
  the head of the queue, the lowest pending region of the oldest frame, in the paper's.
- **Bounded queue, newest frame wins**: at most ``max_queued_frames`` frames wait with undispatched jobs.
  Submitting beyond that drops the oldest frame none of whose regions has been dispatched yet (counted
  in :attr:`WorkloadManager.dropped`, the newest few kept in :attr:`WorkloadManager.recent_drops`: an
  endless stream must not grow memory); if every waiting frame is already partly dispatched, the new
  frame is the one dropped.
- **Re-dispatch**: jobs in flight on a slave that leaves (:meth:`remove_slave`) or that exceed
  ``timeout_s`` (:meth:`expire`) go back to the queue with ``attempt + 1``; a timed-out slave is
  *suspect* and gets no new work until it answers again.
- **Duplicates**: the first result for a (frame, region) wins; later ones (a slow slave answering after
  its job was re-dispatched, a dropped frame) are rejected and counted.
- **Keys**: a :class:`KeyTable` per slave mirrors the timesteps in its local key buffer. The global key
  buffer lives here, and only here (:meth:`WorkloadManager.global_key`): a seg-path result's key goes in
  with :meth:`WorkloadManager.complete` (newest wins), so the key the forwarding rule decides on and the
  key the master ships are one object. When a job is dispatched, :func:`should_forward` decides whether
  the newest global key rides along with the task; a caller's ``usable`` check may refuse it first (the
  master's finite-logits scan), which removes it from the buffer before any key table notes it.
- **Key affinity** (option): among available slaves prefer the one holding the freshest key of the
  region, which lowers forwarding traffic and keeps flow-path keys fresh.
- **Region order** (``region_order``), which job an available slave gets:

  - ``fifo`` (the paper): the head of the queue. Region r of frame t+1 may then start while region r
    of frame t is still on the seg path; it starts from an older key, the DN scores it lower and the
    region takes the seg path again: extra seg steps, the paper's stalling 1+6.
  - ``strict``: a region waits while the same region of an earlier frame is in flight, so every step
    starts from the key one board would hold (Single's paths and mIoU exactly). The price is a chain
    of dependent steps per region: the region with the most seg steps caps the cluster (about 2.4x
    Single on the bench video, whatever the number of slaves).
  - ``prefer`` (default): the oldest job of a region with nothing in flight, as ``strict``. When every
    waiting region has a job in flight, no slave is left idle: if the slave running a region's newest
    job has a free slot (``max_in_flight`` > 1), the region's next job queues behind it there; a slave
    works through its tasks in order, so that job starts from the key the one before it leaves, as on
    one board. Otherwise the region whose newest job started last goes to any free slave: a job on
    the flow path is back in a few ms, so one still running long after it was sent is almost surely
    on the seg path (a later frame of its region would start from a key about to be replaced), and
    the most recently started one is the least likely to be. Doubling up still happens when the
    bounded queue holds only the jobs of regions that are behind.

    Second slots (``max_in_flight`` > 1, every slave busy) carry only those chained jobs, except with
    a single live slave: a region with nothing in flight queued behind a busy slave would wait out
    that slave's task, a seg step perhaps, while another slave is about to finish a flow step; with
    one slave there is no other to wait for, so the slot hides the round trip. Simulated on one board
    per process, loopback, 2 in flight (calibration of 2026-12-03): 1+1..1+6 = 0.97, 1.94, 2.83,
    3.67, 4.30, 4.38x Single, against 0.97, 1.88, 2.67, 3.30, 3.63, 4.09x when every second slot took
    the oldest free region, and 0.95, 1.89, 2.73, 3.49, 3.82, 4.08x with 1 in flight. On the
    calibration of 2026-12-04 (a faster host, so transfers weigh more; BENCHMARKS.md, "Predicted"): 0.93,
    1.85, 2.74, 3.52, 4.11, 4.24x against 0.86, 1.68, 2.47, 3.14, 3.42, 3.79x with 1 in flight; over
    1 Gbit/s 0.78, 1.37, 1.92, 2.68, 2.44, 2.28x against 0.53, 0.89, 1.22, 1.81, 1.69, 1.79x.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

from dvs_cluster.core.keys import KeyBuffer, KeyFrame

#: The master's tasks in flight per slave when none is given: a second slot hides the round trip
#: (see the region order ``prefer`` for which jobs it may carry).
DEFAULT_MAX_IN_FLIGHT = 2
#: Values of ``region_order`` (see the module docstring).
REGION_ORDERS = ("fifo", "prefer", "strict")
#: Dropped frame sequences kept for inspection (:attr:`WorkloadManager.recent_drops`); the count is exact.
RECENT_DROPS = 64


@dataclass(frozen=True)
class Job:
    """One region of one frame; ``attempt`` counts re-dispatches."""

    sequence: int
    region: int
    attempt: int = 0


@dataclass(frozen=True)
class Dispatch:
    """A scheduling decision: send ``job`` to ``slave``, attaching the global key of ``forward_key``."""

    job: Job
    slave: str
    forward_key: int | None  # timestep of the global key to forward, None = no key attached


class Outcome(Enum):
    """What :meth:`WorkloadManager.complete` did with a result."""

    ACCEPTED = "accepted"  # first result for its job
    DUPLICATE = "duplicate"  # the job was already answered
    UNKNOWN = "unknown"  # frame not (or no longer) known: dropped, finished long ago, or never sent


class KeyTable:
    """The master's view of one slave's local key buffer: key timestep per region (None = no key)."""

    def __init__(self, num_regions: int) -> None:
        """Empty table (a new slave has no keys)."""
        self._ts: list[int | None] = [None] * num_regions

    def get(self, region: int) -> int | None:
        """Key timestep the slave holds for ``region``."""
        return self._ts[region]

    def note(self, region: int, timestep: int) -> None:
        """The slave now holds a key of ``timestep`` (it keeps the newest, so do we)."""
        cur = self._ts[region]
        if cur is None or timestep > cur:
            self._ts[region] = timestep

    def as_tuple(self) -> tuple[int | None, ...]:
        """All regions' key timesteps."""
        return tuple(self._ts)


def should_forward(slave_key: int | None, global_key: int | None, sequence: int, threshold: int) -> bool:
    """
    Forwarding rule: attach the newest global key when the slave's is more than ``threshold`` older.

    A slave without a key always gets it. Only keys older than the task's frame are forwarded (a
    re-dispatched old job never gets a key from its own future). ``threshold = 0`` forwards whenever
    the global key is newer.
    """
    if global_key is None or global_key >= sequence:
        return False
    if slave_key is None:
        return True
    return global_key - slave_key > threshold


@dataclass
class SlaveState:
    """What the workload manager knows about one slave."""

    name: str
    keys: KeyTable
    in_flight: dict[tuple[int, int], tuple[Job, float]] = field(default_factory=dict)
    suspect: bool = False  # a job timed out on it: no new work until it answers
    last_dispatch: int = -1  # dispatch counter value at its last task (round-robin tie-break)
    dispatched: int = 0
    completed: int = 0
    timeouts: int = 0


@dataclass
class _Frame:
    pending: list[int]  # regions waiting in the queue (sorted)
    in_flight: dict[int, str] = field(default_factory=dict)  # region -> slave
    done: set[int] = field(default_factory=set)
    attempts: dict[int, int] = field(default_factory=dict)  # region -> attempts so far
    touched: bool = False  # some region dispatched at least once


class WorkloadManager:
    """Queue + dynamic scheduler of region jobs over the live slaves (see the module docstring)."""

    def __init__(
        self,
        num_regions: int,
        *,
        max_in_flight: int = 1,
        max_queued_frames: int = 4,
        timeout_s: float = 10.0,
        forward_threshold: int = 0,
        affinity: bool = False,
        region_order: str = "prefer",
    ) -> None:
        """Configure; slaves are added as they appear."""
        if num_regions <= 0 or max_in_flight <= 0 or max_queued_frames <= 0:
            raise ValueError("num_regions, max_in_flight and max_queued_frames must be positive")
        if region_order not in REGION_ORDERS:
            raise ValueError(f"region_order {region_order!r} is not one of {', '.join(REGION_ORDERS)}")
        if timeout_s <= 0 or forward_threshold < 0:
            raise ValueError("timeout_s must be positive and forward_threshold >= 0")
        self.num_regions = num_regions
        self.max_in_flight = max_in_flight
        self.max_queued_frames = max_queued_frames
        self.timeout_s = timeout_s
        self.forward_threshold = forward_threshold
        self.affinity = affinity
        self.region_order = region_order
        self.slaves: dict[str, SlaveState] = {}
        # The global key buffer: key frames of seg-path results, or (callers without payloads, e.g. the
        # simulator) the bare timestep.
        self._global = KeyBuffer(num_regions)
        self._global_ts: list[int | None] = [None] * num_regions
        self._frames: dict[int, _Frame] = {}
        self._dispatch_counter = 0
        # Counters for the report.
        self.submitted = 0
        self.dropped = 0  # frames dropped (queue full, abandoned)
        self.recent_drops: deque[int] = deque(maxlen=RECENT_DROPS)  # their newest sequences
        self.redispatched = 0
        self.duplicates = 0
        self.unknown = 0
        self.forwarded = 0

    # -- slaves -------------------------------------------------------------------------------------

    def add_slave(self, name: str) -> None:
        """A slave appeared (liveliness); a name seen before starts over with an empty key table."""
        if name in self.slaves:
            return
        self.slaves[name] = SlaveState(name=name, keys=KeyTable(self.num_regions))

    def remove_slave(self, name: str) -> list[Job]:
        """A slave left or restarted: its jobs in flight go back to the queue; returns them."""
        state = self.slaves.pop(name, None)
        if state is None:
            return []
        return [self._requeue(job) for job, _ in list(state.in_flight.values())]

    def available(self) -> list[str]:
        """Slaves that can take a task now."""
        return [
            s.name for s in self.slaves.values() if not s.suspect and len(s.in_flight) < self.max_in_flight
        ]

    # -- queue --------------------------------------------------------------------------------------

    @property
    def queued_frames(self) -> int:
        """Frames with at least one region still waiting in the queue."""
        return sum(1 for f in self._frames.values() if f.pending)

    @property
    def pending_jobs(self) -> int:
        """Regions waiting in the queue."""
        return sum(len(f.pending) for f in self._frames.values())

    @property
    def in_flight(self) -> int:
        """Tasks sent and not yet answered."""
        return sum(len(s.in_flight) for s in self.slaves.values())

    @property
    def open_frames(self) -> list[int]:
        """Frames submitted and not yet complete or dropped, oldest first."""
        return sorted(self._frames)

    def has_room(self) -> bool:
        """Whether :meth:`submit` would not drop (for sources that can wait: backpressure, no drops)."""
        return self.queued_frames < self.max_queued_frames

    def idle(self) -> bool:
        """Nothing queued and nothing in flight."""
        return not self._frames

    def submit(self, sequence: int) -> list[int]:
        """Queue all regions of frame ``sequence``; returns the frames dropped to make room (maybe it)."""
        if sequence in self._frames:
            raise ValueError(f"frame {sequence} already submitted")
        self.submitted += 1
        dropped: list[int] = []
        if not self.has_room():
            victim = next(
                (
                    seq
                    for seq in sorted(self._frames)
                    if self._frames[seq].pending and not self._frames[seq].touched
                ),
                None,
            )
            if victim is None:
                self._count_drop(sequence)
                return [sequence]
            del self._frames[victim]
            dropped.append(victim)
            self._count_drop(victim)
        self._frames[sequence] = _Frame(pending=list(range(self.num_regions)))
        return dropped

    def _count_drop(self, sequence: int) -> None:
        self.dropped += 1
        self.recent_drops.append(sequence)

    def frame_done(self, sequence: int) -> bool:
        """Whether every region of a submitted frame has been answered (and the frame forgotten)."""
        return sequence not in self._frames

    # -- global keys --------------------------------------------------------------------------------

    @property
    def global_keys(self) -> list[int | None]:
        """Timestep of each region's global key (None: none yet)."""
        return list(self._global_ts)

    def global_key(self, region: int) -> KeyFrame | None:
        """The region's global key frame (None: none yet, or the caller stored timesteps only)."""
        return self._global.get(region)

    def drop_global_key(self, region: int) -> None:
        """Forget the region's global key (it proved unusable); the next seg-path result replaces it."""
        self._global.clear(region)
        self._global_ts[region] = None

    # -- dispatch -----------------------------------------------------------------------------------

    def _head(self, now: float, candidates: list[str]) -> tuple[Job, str | None] | None:
        """The next job, and the slave of ``candidates`` it must go to (None: any, by :meth:`_choose`)."""
        if self.region_order == "fifo":
            for seq in sorted(self._frames):
                frame = self._frames[seq]
                if frame.pending:
                    return self._job(seq, frame.pending[0]), None
            return None
        # Per region, the newest job in flight: (dispatch time, slave), None when nothing is in flight.
        newest: list[tuple[float, str] | None] = [None] * self.num_regions
        for s in self.slaves.values():
            for (_, region), (_, t0) in s.in_flight.items():
                cur = newest[region]
                if cur is None or t0 >= cur[0]:
                    newest[region] = (t0, s.name)
        first: dict[int, int] = {}  # region -> oldest frame waiting with it
        for seq in sorted(self._frames):
            for region in self._frames[seq].pending:
                first.setdefault(region, seq)
        free = [(seq, region) for region, seq in first.items() if newest[region] is None]
        idle = any(not self.slaves[n].in_flight for n in candidates)
        if free and (idle or self.region_order == "strict" or self._lone()):
            return self._job(*min(free)), None
        if self.region_order == "strict" or not first:
            return None
        # prefer, every waiting region busy: queue behind the region's newest job on its own slave if
        # that slave has room, else any slave; among the candidates the region whose newest job started
        # last (ties: the oldest frame, then the lowest region).
        room = set(candidates)
        busy: list[tuple[float, int, int, str]] = []  # (newest dispatch time, -frame, -region, its slave)
        for r, q in first.items():
            n = newest[r]
            if n is not None:
                busy.append((n[0], -q, -r, n[1]))
        chained = [b for b in busy if b[3] in room]
        if not chained and not idle:
            # Only second slots are left: a job queued behind another slave's task waits out that
            # task, a seg step perhaps; the first slave to finish (a flow step: a few ms) takes it.
            return None
        _, q, r, holder = max(chained or busy)
        return self._job(-q, -r), (holder if chained else None)

    def _lone(self) -> bool:
        """One live slave: a job queued behind its task has nowhere better to wait."""
        return sum(not s.suspect for s in self.slaves.values()) == 1

    def _job(self, seq: int, region: int) -> Job:
        return Job(seq, region, self._frames[seq].attempts.get(region, 0))

    def _choose(self, region: int, candidates: list[str]) -> str:
        def load(name: str) -> tuple[int, int]:
            s = self.slaves[name]
            return len(s.in_flight), s.last_dispatch

        if self.affinity:

            def fresh(name: str) -> tuple[int, int, int]:
                ts = self.slaves[name].keys.get(region)
                return (-(ts if ts is not None else -1), *load(name))

            return min(candidates, key=fresh)
        return min(candidates, key=load)

    def next_dispatch(
        self, now: float, usable: Callable[[int, KeyFrame], bool] | None = None
    ) -> Dispatch | None:
        """
        Pop the next job (region order) onto an available slave, or None (nothing can go now).

        ``usable(region, key)``, when given, is asked before a global key frame is forwarded; False drops
        the key from the buffer and the task goes without one.
        """
        candidates = self.available()
        if not candidates:
            return None
        head = self._head(now, candidates)
        if head is None:
            return None
        job, name_or_none = head
        name = name_or_none or self._choose(job.region, candidates)
        slave = self.slaves[name]
        frame = self._frames[job.sequence]
        frame.pending.remove(job.region)
        frame.in_flight[job.region] = name
        frame.attempts[job.region] = job.attempt + 1
        frame.touched = True
        slave.in_flight[(job.sequence, job.region)] = (job, now)
        self._dispatch_counter += 1
        slave.last_dispatch = self._dispatch_counter
        slave.dispatched += 1
        forward: int | None = None
        gk = self._global_ts[job.region]
        if should_forward(slave.keys.get(job.region), gk, job.sequence, self.forward_threshold):
            kf = self._global.get(job.region)
            if usable is not None and kf is not None and not usable(job.region, kf):
                self.drop_global_key(job.region)  # unusable: no slave's table may note it
            else:
                assert gk is not None
                forward = gk
                slave.keys.note(job.region, gk)  # it will hold the key when it runs this task
                self.forwarded += 1
        return Dispatch(job=job, slave=name, forward_key=forward)

    def _requeue(self, job: Job) -> Job:
        frame = self._frames.get(job.sequence)
        if frame is None or job.region in frame.done:
            return job
        frame.in_flight.pop(job.region, None)
        if job.region not in frame.pending:
            frame.pending.append(job.region)
            frame.pending.sort()
            self.redispatched += 1
        return Job(job.sequence, job.region, frame.attempts.get(job.region, job.attempt + 1))

    def expire(self, now: float) -> list[Job]:
        """Re-queue jobs in flight longer than ``timeout_s``; their slaves become suspect."""
        out: list[Job] = []
        for slave in self.slaves.values():
            late = [(k, job) for k, (job, t0) in slave.in_flight.items() if now - t0 > self.timeout_s]
            for k, job in late:
                del slave.in_flight[k]
                slave.suspect = True
                slave.timeouts += 1
                out.append(self._requeue(job))
        return out

    def retry_suspects(self) -> bool:
        """
        When every slave is suspect and idle, trust them all again (True if it did).

        Their answers (or our tasks) were lost, e.g. to a flooded or broken link; waiting for an answer
        that cannot come would stall for ever, so the next tasks probe them.
        """
        slaves = self.slaves.values()
        if not slaves or not all(sl.suspect and not sl.in_flight for sl in slaves):
            return False
        for sl in slaves:
            sl.suspect = False
        return True

    def next_deadline(self) -> float | None:
        """Earliest time a job in flight times out (to bound the master's wait)."""
        times = [t0 for s in self.slaves.values() for _, t0 in s.in_flight.values()]
        return min(times) + self.timeout_s if times else None

    # -- results ------------------------------------------------------------------------------------

    def complete(
        self, slave: str, sequence: int, region: int, seg: bool, key: KeyFrame | None = None
    ) -> Outcome:
        """
        Record a result from ``slave``; only the first result of a job is accepted.

        ``seg``: it took the segmentation path, so its key is now this frame (and so is the global key,
        if newer); ``key`` is that key frame (image and logits) for the global key buffer.
        """
        state = self.slaves.get(slave)
        if state is not None:
            state.in_flight.pop((sequence, region), None)
            state.suspect = False
        frame = self._frames.get(sequence)
        if frame is None or not 0 <= region < self.num_regions:
            self.unknown += 1
            return Outcome.UNKNOWN
        if region in frame.done:
            self.duplicates += 1
            return Outcome.DUPLICATE
        # Another slave may still hold this job (re-dispatched): free it, its answer will be a duplicate.
        holder = frame.in_flight.pop(region, None)
        if holder is not None and holder != slave and holder in self.slaves:
            self.slaves[holder].in_flight.pop((sequence, region), None)
        if region in frame.pending:
            frame.pending.remove(region)
        frame.done.add(region)
        if state is not None:
            state.completed += 1
        if seg:
            if state is not None:
                state.keys.note(region, sequence)
            gk = self._global_ts[region]
            if gk is None or sequence > gk:
                self._global_ts[region] = sequence
                if key is not None:
                    self._global.put(region, key)
                else:
                    self._global.clear(region)
        if len(frame.done) == self.num_regions:
            del self._frames[sequence]
        return Outcome.ACCEPTED

    def abandon(self, sequence: int) -> bool:
        """Forget an open frame (the master gives up on it, e.g. no slaves left); counts as dropped."""
        frame = self._frames.pop(sequence, None)
        if frame is None:
            return False
        for region, name in frame.in_flight.items():
            if name in self.slaves:
                self.slaves[name].in_flight.pop((sequence, region), None)
        self._count_drop(sequence)
        return True
