"""
Master node: source -> split -> workload manager -> tasks out -> results in -> assemble in order -> sinks.

One thread runs the loop (:meth:`MasterNode.run`, for a pulled source and for a pushed stream alike);
every other thread only enqueues events into the one bounded inbox (:mod:`dvs_cluster.nodes.inbox`):
the transport's (results, heartbeats, liveliness) and a camera's (frames, :meth:`MasterNode.push`), so
everything the master owns, its counters included, is written by its own thread. Per loop turn the
master takes frames from the source (as fast as the queue has
room, or at a fixed camera ``rate`` with the scheduler's counted drops when the cluster is slower),
dispatches queued regions to available slaves in the scheduler's region order (attaching the newest
global key when the forwarding rule says so), handles results (first answer per region wins; seg-path
results update the global key buffer), re-dispatches timed-out work, and emits finished frames
strictly in frame order.

Time is booked per stage (the master half of the paper's Figure 6): ``source``, ``split``,
``schedule``, ``serialize``, ``publish``, ``deserialize``, ``keys``, ``assembly``, ``metrics``,
``output``, ``idle`` (blocked waiting with nothing else to do) and ``other`` (the rest of the loop:
result bookkeeping, heartbeats, the loop itself), so the stages add up to the run's wall time.
"""

from __future__ import annotations

import json
import logging
import queue
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from dvs_cluster.core.classes import NUM_CLASSES
from dvs_cluster.core.keys import KeyBuffer, KeyFrame
from dvs_cluster.core.metrics import ConfusionMatrix, PathMix, StreamLatency
from dvs_cluster.core.processor import logit_grid
from dvs_cluster.core.regions import RegionGrid
from dvs_cluster.core.scheduler import DEFAULT_MAX_IN_FLIGHT, Outcome, WorkloadManager
from dvs_cluster.io.frame import Frame
from dvs_cluster.io.sinks import Sink
from dvs_cluster.nodes.inbox import ALIVE, FRAME, RESULT, STATUS, Inbox
from dvs_cluster.transport.base import ClusterKeys, Handle, Transport
from dvs_cluster.transport.messages import (
    PATH_NAMES,
    PATH_SEG,
    TIMING_FIELDS,
    KeyPayload,
    MessageError,
    Result,
    Task,
    decode_result,
    decode_status,
    encode_task,
    values_finite,
    warmup,
)

log = logging.getLogger(__name__)

UInt8Array = npt.NDArray[np.uint8]
FloatArray = npt.NDArray[np.float32]
MASTER_STAGES = (
    "source",
    "split",
    "schedule",
    "serialize",
    "publish",
    "deserialize",
    "keys",
    "assembly",
    "metrics",
    "output",
    "other",
    "idle",
)


@dataclass
class MasterConfig:
    """Knobs of the master: the fields of ``dvs_cluster.options.MASTER`` (names, defaults, help)."""

    cluster_id: str = "default"
    width: int = 1024
    height: int = 512
    rows: int = 2
    cols: int = 2
    overlap: int = 0
    policy: str = "dvsnet"
    # DN threshold; negative = each slave's model default (model_defaults.MODEL_DEFAULT: for real cameras,
    # model_defaults.MODEL_DEFAULT_SYNTHETIC: for the synthetic video; model card, else 90)
    threshold: float = -1.0
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT  # tasks in flight per slave
    max_queued_frames: int = 4
    timeout_s: float = 10.0  # a task unanswered this long is re-dispatched
    forward_threshold: int = 0  # forward the global key when the slave's is more than this older
    affinity: bool = False
    region_order: str = "prefer"  # fifo | prefer | strict (core.scheduler: which job a free slave gets)
    key_quantize: str = "float32"  # forwarded key logits: float32 | float16 | uint8
    rate: float = 0.0  # camera frame rate to emulate (frames/s); 0 = take frames as the queue has room
    lost_s: float = 30.0  # no slave alive this long while work is open: give the open frames up (0: never)
    status_period_s: float = 1.0  # heartbeat (``<prefix>/master/status`` JSON, or the hook); 0 = off
    keep_trace: bool = True  # per-region trace + emitted order (grow with the run: off for endless streams)


def rss_mb(pid: int | str = "self") -> float:
    """Resident memory of a process in MiB (Linux ``/proc``; 0 elsewhere): the soak's flatness check."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


class Prefetch:
    """
    Reads a frame source on a thread, a few frames ahead (as a camera driver would).

    Rendering or decoding then overlaps the master's waiting instead of adding to every frame.
    """

    _END = object()

    def __init__(self, frames: Iterable[Frame], depth: int = 2) -> None:
        """Start reading ``frames`` into a queue of ``depth`` frames."""
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(iter(frames),), daemon=True, name="prefetch")
        self._thread.start()

    def _run(self, it: Iterator[Frame]) -> None:
        try:
            for frame in it:
                while not self._stop.is_set():
                    try:
                        self._queue.put(frame, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if self._stop.is_set():
                    return
        except BaseException as exc:  # re-raised on the master's thread
            self._error = exc
        finally:
            while not self._stop.is_set():
                try:
                    self._queue.put(self._END, timeout=0.1)
                    break
                except queue.Full:
                    continue

    def __iter__(self) -> Iterator[Frame]:
        """Frames in source order; re-raises a source error."""
        while True:
            item = self._queue.get()
            if item is self._END:
                if self._error is not None:
                    raise self._error
                return
            yield item

    def close(self) -> None:
        """Stop reading (the source itself is closed by its owner)."""
        self._stop.set()
        self._thread.join(timeout=5)


@dataclass
class _Slot:
    """A frame between its arrival and its output."""

    frame: Frame
    crops: list[UInt8Array]
    labels: list[UInt8Array | None]
    confidence: list[FloatArray | None]
    t_in: float
    done: int = 0


@dataclass
class _SlaveStats:
    regions: int = 0
    seg: int = 0
    flow: int = 0
    timings: dict[str, float] = field(default_factory=lambda: dict.fromkeys(TIMING_FIELDS, 0.0))
    incarnation: str = ""
    status_malformed: int = 0
    tasks_done: int = 0


#: Called with the master every ``status_period_s`` on the master's thread, instead of the JSON heartbeat.
Heartbeat = Callable[["MasterNode"], None]


class MasterNode:
    """The master over any :class:`~dvs_cluster.transport.base.Transport`."""

    def __init__(
        self, transport: Transport, config: MasterConfig | None = None, *, heartbeat: Heartbeat | None = None
    ) -> None:
        """
        Subscribe to results, heartbeats and slave liveliness; announce the master alive.

        ``heartbeat``: what to do every ``status_period_s`` (default: the JSON summary on
        ``<prefix>/master/status``); the ROS node publishes ``stats`` and ``/diagnostics`` with it.
        """
        self.config = cfg = config or MasterConfig()
        self.heartbeat = heartbeat
        self.transport = transport
        self.keys = ClusterKeys(cfg.cluster_id)
        self.grid = RegionGrid(cfg.width, cfg.height, cfg.rows, cfg.cols, cfg.overlap)
        self.num_regions = len(self.grid)
        self.run_id = uuid.uuid4().hex[:12]
        self.wm = WorkloadManager(
            self.num_regions,
            max_in_flight=cfg.max_in_flight,
            max_queued_frames=cfg.max_queued_frames,
            timeout_s=cfg.timeout_s,
            forward_threshold=cfg.forward_threshold,
            affinity=cfg.affinity,
            region_order=cfg.region_order,
        )
        self._checked_keys: list[int | None] = [None] * self.num_regions  # key timestep found finite
        self.stage_s = dict.fromkeys(MASTER_STAGES, 0.0)
        self.slave_stats: dict[str, _SlaveStats] = {}
        self.mix = PathMix()
        self.confusion = ConfusionMatrix()
        self.has_gt = False
        self.frames_in = 0
        self.frames_out = 0
        self.frames_dropped = 0
        self.malformed = 0
        self.foreign = 0
        self.frames_refused = 0  # pushed frames the full inbox refused (in frames_in and frames_dropped)
        self.rejected_frames = 0  # submitted frames refused (bad size or sequence): never accepted
        self.slave_events: list[tuple[float, str, bool]] = []  # (time, slave, alive): fault timelines
        self.bytes_tasks = 0
        self.bytes_keys = 0
        self.bytes_results = 0
        # Frame latency: running aggregates and a bounded window (cheap to summarise every second); the
        # per-frame list only for the trace (``keep_trace``), like ``emitted``.
        self.latency = StreamLatency()
        self.frame_latency_ms: deque[float] = deque(maxlen=100_000 if cfg.keep_trace else 0)
        self.trace: list[dict[str, Any]] = []
        self.emitted: list[int] = []  # frame sequences in output order
        self.aborted: str | None = None
        self.wall_s = 0.0
        self._slots: dict[int, _Slot] = {}
        self._order: deque[int] = deque()
        self._dropped: set[int] = set()
        self._no_slave_since: float | None = None
        self._last_seq: int | None = None
        self._next_status = 0.0
        self._run_start: float | None = None  # perf_counter at the start of run(), while it runs
        self._started = time.perf_counter()
        self._started_unix = time.time()  # lets tests line faults (host clock) up with trace times
        self.rss_start_mb = 0.0  # at the start of run(): the soak compares it with the end
        # CPU seconds of the whole master process (every thread, transport I/O included) during run(),
        # and the part of it spent making frames (source) and scoring them (metrics): the difference is
        # the master's own cost, which wall-clock stages overstate when slaves share its core.
        self.cpu_s = 0.0
        self.cpu_main_s = 0.0  # of which the node's own thread (the rest: transport I/O threads)
        self._cpu_excluded = 0.0
        # RSS samples every 5 s (master + ``rss_watch`` processes, e.g. local slaves): flat after warm-up?
        self.rss_watch: dict[str, int] = {}
        self.rss_samples: deque[dict[str, float]] = deque(maxlen=2000)
        self._next_rss = 0.0
        # Bounded memory: a pushed frame waits here only while the master thread is busy with a turn;
        # the scheduler's queue (``max_queued_frames``, newest frame wins) is where frames wait for slaves.
        self._inbox = Inbox(256, frames=32)
        warmup()
        self._handles: list[Handle] = [
            transport.subscribe(self.keys.result, self._enqueue(RESULT)),
            transport.subscribe(self.keys.status_all, self._enqueue(STATUS)),
            transport.watch_liveliness(self.keys.alive_slaves, self._enqueue(ALIVE)),
            transport.declare_liveliness(self.keys.alive_master),
        ]

    # -- other threads ------------------------------------------------------------------------------

    def _enqueue(self, kind: str) -> Callable[[str, Any], None]:
        def put(key: str, value: Any) -> None:
            self._inbox.put(kind, key, value)

        return put

    def push(self, frame: Frame) -> bool:
        """
        Hand the master a frame from any thread (a camera callback); never blocks.

        The frame is an event of the inbox, submitted by the master's thread in arrival order (see
        :meth:`submit` for what it must be). False when the inbox already holds its bound of frames (the
        master is stalled): the frame is then counted in and dropped, as the scheduler would have.
        """
        return self._inbox.put(FRAME, "", frame)

    @property
    def inbox_overflow(self) -> int:
        """Transport events the full inbox refused (results, heartbeats, liveliness)."""
        return self._inbox.refused()

    @property
    def global_keys(self) -> KeyBuffer:
        """A snapshot of the global key buffer (its one owner is the workload manager)."""
        kb = KeyBuffer(self.num_regions)
        for r in range(self.num_regions):
            kf = self.wm.global_key(r)
            if kf is not None:
                kb.put(r, kf)
        return kb

    def close(self) -> None:
        """Withdraw subscriptions and the liveliness token (the transport stays open)."""
        for h in self._handles:
            h.close()
        self._handles = []

    # -- events -------------------------------------------------------------------------------------

    def _handle_event(self, kind: str, key: str, value: Any) -> None:
        if kind == FRAME:
            self._handle_frame(value)
        elif kind == RESULT:
            self._handle_result(value)
        elif kind == STATUS:
            self._handle_status(key, value)
        elif kind == ALIVE:
            name = self.keys.last_chunk(key)
            self.slave_events.append((time.perf_counter(), name, bool(value)))
            if value:
                log.info("slave %s alive", name)
                self.wm.add_slave(name)
                self.slave_stats.setdefault(name, _SlaveStats())
            else:
                requeued = self.wm.remove_slave(name)
                log.warning("slave %s gone; %d task(s) re-queued", name, len(requeued))

    def _handle_frame(self, frame: Frame) -> None:
        try:
            self.submit(frame)
        except ValueError as exc:  # counted in rejected_frames; a pushed stream goes on
            log.warning("frame refused: %s", exc)

    def _handle_status(self, key: str, payload: bytes) -> None:
        t0 = time.perf_counter()
        try:
            status = decode_status(payload)
        except MessageError as exc:
            self.malformed += 1
            log.warning("dropped malformed heartbeat on %s: %s", key, exc)
            return
        finally:
            self.stage_s["deserialize"] += time.perf_counter() - t0
        if status.cluster_id != self.config.cluster_id or status.slave_id != self.keys.last_chunk(key):
            self.foreign += 1
            return
        st = self.slave_stats.setdefault(status.slave_id, _SlaveStats())
        if st.incarnation and status.incarnation != st.incarnation and status.slave_id in self.wm.slaves:
            # Restarted faster than liveliness noticed: its keys and tasks in flight are gone.
            log.warning("slave %s restarted; its tasks are re-queued", status.slave_id)
            self.wm.remove_slave(status.slave_id)
            self.wm.add_slave(status.slave_id)
        st.incarnation = status.incarnation
        st.status_malformed = status.malformed
        st.tasks_done = status.tasks_done

    def _check_result(self, res: Result) -> str | None:
        """Why a decoded result does not fit this master's grid (None if it fits)."""
        if not 0 <= res.region < self.num_regions:
            return f"region {res.region} out of range"
        r = self.grid.regions[res.region]
        if res.labels.shape != (r.height, r.width):
            return f"labels {res.labels.shape} for a {r.width}x{r.height} region"
        if res.path == PATH_SEG:
            assert res.logits is not None
            if res.logits.shape != (NUM_CLASSES, *logit_grid(r.height, r.width)):
                return f"logits {res.logits.shape} do not fit region {res.region}"
        if self.grid.overlap and res.confidence is None:
            return "no confidence map for an overlapping grid"
        return None

    def _handle_result(self, payload: bytes) -> None:
        t0 = time.perf_counter()
        try:
            res = decode_result(payload, check_logits=False)  # scanned when forwarded: _key_payload
        except MessageError as exc:
            self.malformed += 1
            log.warning("dropped malformed result (%d bytes): %s", len(payload), exc)
            return
        finally:
            self.stage_s["deserialize"] += time.perf_counter() - t0
        self.bytes_results += len(payload)
        if res.cluster_id != self.config.cluster_id or res.run_id != self.run_id:
            self.foreign += 1  # another cluster, or an answer to a previous master run
            return
        why = self._check_result(res)
        if why is not None:
            self.malformed += 1
            log.warning("dropped result from %s: %s", res.slave_id, why)
            return
        seg = res.path == PATH_SEG
        slot = self._slots.get(res.sequence)
        key = None
        if seg and slot is not None:
            assert res.logits is not None
            key = KeyFrame(res.sequence, slot.crops[res.region], res.logits)
        t0 = time.perf_counter()
        outcome = self.wm.complete(res.slave_id, res.sequence, res.region, seg, key)
        if seg:  # the global key buffer's update (newest wins) happens in there
            self.stage_s["keys"] += time.perf_counter() - t0
        if outcome is not Outcome.ACCEPTED or slot is None:  # slot: the scheduler only accepts open frames
            return
        slot.labels[res.region] = res.labels
        slot.confidence[res.region] = res.confidence
        slot.done += 1
        path = PATH_NAMES[res.path]
        self.mix.add(path)
        st = self.slave_stats.setdefault(res.slave_id, _SlaveStats())
        st.regions += 1
        if seg:
            st.seg += 1
        else:
            st.flow += 1
        for k, v in res.timings.as_dict().items():
            st.timings[k] += v
        if self.config.keep_trace:
            self.trace.append(
                {
                    "sequence": res.sequence,
                    "region": res.region,
                    "slave": res.slave_id,
                    "path": path,
                    "key": res.key_sequence,
                    "score": res.score,
                    "attempt": res.attempt,
                    "t": round(time.perf_counter() - self._started, 4),  # seconds since the node started
                }
            )

    # -- frames in ----------------------------------------------------------------------------------

    def _take(self, frames: Iterator[Frame]) -> bool:
        """Read one frame from ``frames`` and submit it; False when the source is exhausted."""
        t0, c0 = time.perf_counter(), time.thread_time()
        try:
            frame = next(frames)
        except StopIteration:
            return False
        finally:
            self.stage_s["source"] += time.perf_counter() - t0
            self._cpu_excluded += time.thread_time() - c0
        self.submit(frame)
        return True

    def submit(self, frame: Frame) -> list[int]:
        """
        Accept one frame: split it and queue its regions; returns the sequences dropped to make room.

        Public feed for pushed streams (a ROS camera callback's frames, tests): frames must be
        ``width x height`` uint8 RGB with increasing ``index``; anything else raises ``ValueError`` and
        is counted in ``rejected_frames`` without touching what is already queued. The master keeps
        views of the image (region crops, keys): do not write into it after submitting it.
        """
        img = frame.image
        want = (self.config.height, self.config.width, 3)
        if not isinstance(img, np.ndarray) or img.shape != want or img.dtype != np.uint8:
            self.rejected_frames += 1
            shape = getattr(img, "shape", type(img).__name__)
            dtype = getattr(img, "dtype", "")
            raise ValueError(f"frame {frame.index}: image {shape} {dtype}, expected {want} uint8")
        seq = int(frame.index)
        if self._last_seq is not None and seq <= self._last_seq:
            self.rejected_frames += 1
            raise ValueError(f"frame sequence {seq} not after {self._last_seq}")
        self._last_seq = seq
        t0 = time.perf_counter()
        # Views: each crop is copied once, into its task (and the frame is held while a key refers to it).
        crops = self.grid.views(img)
        now = time.perf_counter()
        self.stage_s["split"] += now - t0
        n = self.num_regions
        self._slots[seq] = _Slot(frame, crops, [None] * n, [None] * n, now)
        self._order.append(seq)
        self.frames_in += 1
        victims = self.wm.submit(seq)
        for victim in victims:
            self._slots.pop(victim, None)
            self._dropped.add(victim)
            self.frames_dropped += 1
        return victims

    def has_room(self) -> bool:
        """Whether a frame submitted now would queue without dropping an older one."""
        return self.wm.has_room()

    @property
    def pending(self) -> int:
        """Accepted frames not yet emitted or dropped."""
        return len(self._order) - len(self._dropped)

    def poll(self, sinks: Sequence[Sink] = (), gt_sinks: Sequence[Sink] = (), timeout: float = 0.0) -> int:
        """
        One turn of the master; returns the number of frames emitted (a step for harnesses and tests).

        The turn :meth:`run` makes: dispatch (re-dispatching expired tasks), emit finished frames in
        order, housekeeping (lost slaves, heartbeat, memory samples), then wait up to ``timeout`` for
        events (results, heartbeats, liveliness, pushed frames) and handle them.
        """
        before = self.frames_out
        self._dispatch(time.perf_counter())
        self._emit(sinks, gt_sinks)
        self._housekeeping()
        deadline = self.wm.next_deadline()
        if deadline is not None:
            timeout = min(timeout, max(0.0, deadline - time.perf_counter()) + 1e-3)
        self._pump(timeout)
        self._dispatch(time.perf_counter())
        self._emit(sinks, gt_sinks)
        return self.frames_out - before

    def status(self) -> dict[str, Any]:
        """Small live summary (the master heartbeat's content)."""
        return {
            "cluster_id": self.config.cluster_id,
            "run_id": self.run_id,
            "host": socket.gethostname(),  # how a slave names the master it connected to
            "stamp": time.time(),
            "slaves_alive": sorted(self.wm.slaves),
            "frames_in": self.frames_in,
            "frames_out": self.frames_out,
            "frames_dropped": self.frames_dropped,
            "pending": self.pending,
            "malformed": self.malformed,
            "redispatched": self.wm.redispatched,
        }

    def publish_status(self, force: bool = False) -> None:
        """
        Heartbeat every ``status_period_s``: the ``heartbeat`` hook, or JSON on ``<prefix>/master/status``.

        Lets operators (and the chaos tests) see the master alive and counting while no slave is.
        A backend that cannot carry the key only logs; a hook that fails is logged, never fatal.
        """
        period = self.config.status_period_s
        now = time.perf_counter()
        if period <= 0 or (not force and now < self._next_status):
            return
        self._next_status = now + period
        if self._run_start is not None:
            self.wall_s = now - self._run_start  # reports made while running see the run so far
        if self.heartbeat is not None:
            try:
                self.heartbeat(self)
            except Exception as exc:  # e.g. a ROS context shutting down
                log.debug("heartbeat hook failed: %s", exc)
            return
        try:
            self.transport.publish(self.keys.master_status, json.dumps(self.status()).encode())
        except Exception as exc:
            log.debug("master status not published: %s", exc)

    # -- tasks out ----------------------------------------------------------------------------------

    def _dispatch(self, now: float) -> None:
        t0 = time.perf_counter()
        expired = self.wm.expire(now)
        for job in expired:
            log.warning("task %d/%d timed out; re-queued", job.sequence, job.region)
        if self.wm.retry_suspects():
            log.warning("every slave is suspect; trying them again")
        while True:
            k0 = self.stage_s["keys"]
            d = self.wm.next_dispatch(now, self._key_usable)
            # The finite scan of a key runs inside and books itself as "keys": not twice.
            self.stage_s["schedule"] += time.perf_counter() - t0 - (self.stage_s["keys"] - k0)
            if d is None:
                return
            slot = self._slots[d.job.sequence]
            region = self.grid.regions[d.job.region]
            t1 = time.perf_counter()
            key_payload = self._key_payload(d.job.region) if d.forward_key is not None else None
            t2 = time.perf_counter()
            self.stage_s["keys"] += t2 - t1
            task = Task(
                cluster_id=self.config.cluster_id,
                slave_id=d.slave,
                run_id=self.run_id,
                sequence=d.job.sequence,
                region=d.job.region,
                num_regions=self.num_regions,
                rect=(region.px0, region.py0, region.width, region.height),
                image=slot.crops[d.job.region],
                policy=self.config.policy,
                threshold=self.config.threshold,
                want_confidence=self.grid.overlap > 0,
                attempt=d.job.attempt,
                stamp=float(slot.frame.stamp),
                frame_id=slot.frame.frame_id,
                key=key_payload,
            )
            data = encode_task(task, self.config.key_quantize)
            t1 = time.perf_counter()
            self.stage_s["serialize"] += t1 - t2
            try:
                self.transport.publish(self.keys.task(d.slave), data)
            except Exception as exc:
                log.error("sending to %s failed (%s); treating it as gone", d.slave, exc)
                self.wm.remove_slave(d.slave)
            t0 = time.perf_counter()
            self.stage_s["publish"] += t0 - t1
            self.bytes_tasks += len(data)
            if key_payload is not None:
                per_value = {"float32": 4, "float16": 2, "uint8": 1}[self.config.key_quantize]
                self.bytes_keys += key_payload.image.nbytes + key_payload.logits.size * per_value

    def _key_usable(self, region: int, kf: KeyFrame) -> bool:
        """
        Whether a global key may be forwarded: its logits are checked finite on first forwarding.

        The check is here rather than on arrival because most keys never leave the master (a slave's
        own seg results are already its local keys) and it reads every value. A key that fails it
        came from a broken slave: the scheduler drops it (counted here as malformed) and the task goes
        without key.
        """
        t0 = time.perf_counter()
        try:
            if self._checked_keys[region] == kf.timestep:
                return True
            if not values_finite(kf.logits):
                self.malformed += 1
                log.warning("dropped the key of region %d (frame %d): logits not finite", region, kf.timestep)
                return False
            self._checked_keys[region] = kf.timestep
            return True
        finally:
            self.stage_s["keys"] += time.perf_counter() - t0

    def _key_payload(self, region: int) -> KeyPayload | None:
        """The region's global key for a task (the scheduler decided to forward it)."""
        kf = self.wm.global_key(region)
        return None if kf is None else KeyPayload(kf.timestep, kf.image, kf.logits)

    # -- frames out ---------------------------------------------------------------------------------

    def _emit(self, sinks: Sequence[Sink], gt_sinks: Sequence[Sink]) -> None:
        while self._order:
            seq = self._order[0]
            if seq in self._dropped:
                self._order.popleft()
                self._dropped.discard(seq)
                continue
            slot = self._slots[seq]
            if slot.done < self.num_regions:
                return
            self._order.popleft()
            del self._slots[seq]
            t0 = time.perf_counter()
            parts = [lab for lab in slot.labels if lab is not None]
            conf = [c for c in slot.confidence if c is not None] if self.grid.overlap else None
            labels = self.grid.assemble_labels(parts, conf)
            t1 = time.perf_counter()
            self.stage_s["assembly"] += t1 - t0
            frame = slot.frame
            c1 = time.thread_time()
            if frame.labels is not None:
                self.has_gt = True
                self.confusion.update(labels, frame.labels)
            self._cpu_excluded += time.thread_time() - c1
            t2 = time.perf_counter()
            self.stage_s["metrics"] += t2 - t1
            if sinks or gt_sinks:
                back = frame.transform.labels_back(labels)
                for sink in sinks:
                    sink.write(frame, back)
                for sink in gt_sinks:
                    sink.write(frame, back)
            self.stage_s["output"] += time.perf_counter() - t2
            self.frames_out += 1
            if self.config.keep_trace:
                self.emitted.append(seq)
            ms = (time.perf_counter() - slot.t_in) * 1000.0
            self.latency.add(ms)
            self.frame_latency_ms.append(ms)

    # -- main loop ----------------------------------------------------------------------------------

    def _pump(self, timeout: float) -> None:
        """Wait up to ``timeout`` for an event (booked as idle), then handle all pending events."""
        t0 = time.perf_counter()
        event = self._inbox.get(max(0.0, timeout))
        self.stage_s["idle"] += time.perf_counter() - t0
        while event is not None:
            self._handle_event(*event)
            event = self._inbox.get()

    def wait_for_slaves(self, count: int, timeout_s: float, stop: threading.Event | None = None) -> bool:
        """Block until ``count`` slaves are alive (True) or ``timeout_s`` passes (False)."""
        deadline = time.monotonic() + timeout_s
        while len(self.wm.slaves) < count:
            left = deadline - time.monotonic()
            if left <= 0 or (stop is not None and stop.is_set()):
                return False
            event = self._inbox.get(min(left, 0.2))
            if event is not None:
                self._handle_event(*event)
        return True

    def run(
        self,
        frames: Iterable[Frame] | None = None,
        sinks: Sequence[Sink] = (),
        gt_sinks: Sequence[Sink] = (),
        max_frames: int | None = None,
        stop: threading.Event | None = None,
    ) -> dict[str, Any]:
        """
        The master's loop: until the source ends (or ``max_frames`` / ``stop``); returns the report.

        ``frames`` is a source to pull; None serves a pushed stream (:meth:`push`, e.g. the ROS node's
        camera) until ``stop``. Either way every turn is the same: frames in, dispatch, results, emit in
        order, and the housekeeping (lost slaves, heartbeat, memory samples, pushed frames refused).
        """
        cfg = self.config
        self.rss_start_mb = rss_mb()
        source = iter(frames) if frames is not None else None
        source_done = False
        cpu0, main0 = time.process_time(), time.thread_time()
        start = self._run_start = time.perf_counter()
        next_frame_at = start
        period = 1.0 / cfg.rate if cfg.rate > 0 and source is not None else 0.0
        try:
            while True:
                if stop is not None and stop.is_set():
                    self.aborted = "stopped"
                    break
                now = time.perf_counter()
                while source is not None and not source_done:
                    if max_frames is not None and self.frames_in >= max_frames:
                        break
                    if period:
                        if now < next_frame_at:
                            break
                        # A camera does not deliver the frames it missed later in a burst: when the
                        # source itself is slower than ``rate`` the schedule slips instead, and one frame
                        # is taken per turn so dispatch and results are never starved by a catch-up loop.
                        next_frame_at = max(next_frame_at + period, now)
                        if not self._take(source):
                            source_done = True
                        break
                    elif not self.wm.has_room():
                        break
                    if not self._take(source):
                        source_done = True
                    now = time.perf_counter()
                if source is not None and max_frames is not None and self.frames_in >= max_frames:
                    source_done = True
                self._dispatch(time.perf_counter())
                self._emit(sinks, gt_sinks)
                if source_done and not self._order:
                    break
                self._housekeeping()
                if self.aborted:
                    source_done = True
                    continue
                timeout = 0.2
                deadline = self.wm.next_deadline()
                now = time.perf_counter()
                if deadline is not None:
                    timeout = min(timeout, deadline - now + 1e-3)
                if period and not source_done:
                    timeout = min(timeout, next_frame_at - now)
                self._pump(timeout)
        finally:
            self._run_start = None
            self._count_refused()
            self.wall_s = time.perf_counter() - start
            booked = sum(v for k, v in self.stage_s.items() if k != "other")
            self.stage_s["other"] = max(0.0, self.wall_s - booked)
            self.cpu_s = time.process_time() - cpu0
            self.cpu_main_s = time.thread_time() - main0
        return self.report()

    def _housekeeping(self) -> None:
        """What every turn does besides moving work: the same for a pulled source and a pushed stream."""
        self._count_refused()
        self._check_lost(time.perf_counter())
        self.publish_status()
        self._sample_rss()

    def _count_refused(self) -> None:
        """Pushed frames the full inbox refused: in and dropped (the master thread's counters)."""
        refused = self._inbox.refused(FRAME)
        if refused > self.frames_refused:
            n = refused - self.frames_refused
            self.frames_refused = refused
            self.frames_in += n
            self.frames_dropped += n

    def _sample_rss(self, period_s: float = 5.0) -> None:
        now = time.perf_counter()
        if now < self._next_rss:
            return
        self._next_rss = now + period_s
        sample = {"t": round(now - self._started, 1), "master": round(rss_mb(), 1)}
        for name, pid in self.rss_watch.items():
            sample[name] = round(rss_mb(pid), 1)
        self.rss_samples.append(sample)

    def _check_lost(self, now: float) -> None:
        """With no slave alive for ``lost_s`` while work is open, give the open frames up (dropped)."""
        if self.wm.slaves or not self._order:
            self._no_slave_since = None
            return
        if self._no_slave_since is None:
            self._no_slave_since = now
            return
        if self.config.lost_s <= 0 or now - self._no_slave_since < self.config.lost_s:
            return
        for seq in list(self.wm.open_frames):
            self.wm.abandon(seq)
        for seq in list(self._slots):
            if seq not in self._dropped:
                self._dropped.add(seq)
                self.frames_dropped += 1
                del self._slots[seq]
        self.aborted = f"no slave alive for {self.config.lost_s:g} s"
        log.error("%s; open frames dropped", self.aborted)

    # -- report -------------------------------------------------------------------------------------

    def report(self) -> dict[str, Any]:
        """The run's JSON report (see the CLI help for the fields)."""
        from dvs_cluster.model_defaults import MODEL_DEFAULT_SYNTHETIC

        out_frames = max(self.frames_out, 1)
        regions = max(self.mix.total, 1)
        slave_totals = dict.fromkeys(TIMING_FIELDS, 0.0)
        per_slave: dict[str, dict[str, Any]] = {}
        for name, st in sorted(self.slave_stats.items()):
            for k, v in st.timings.items():
                slave_totals[k] += v
            per_slave[name] = {
                "regions": st.regions,
                "seg": st.seg,
                "flow": st.flow,
                "malformed_seen": st.status_malformed,
                "latency_ms_per_region": {
                    k: v * 1000.0 / st.regions for k, v in st.timings.items() if st.regions
                },
            }
        slave_busy = sum(
            st.timings["total"] + st.timings["serialize_prev"] for st in self.slave_stats.values()
        )
        wm = self.wm
        return {
            "cluster_id": self.config.cluster_id,
            "run_id": self.run_id,
            "slaves": sorted(self.slave_stats),
            "frames_in": self.frames_in,
            "frames_out": self.frames_out,
            "frames_dropped": self.frames_dropped,
            # Accepted, neither out nor dropped when the run ended (a stop): in = out + dropped + pending.
            "frames_pending": self.pending,
            "fps": self.frames_out / self.wall_s if self.wall_s > 0 else 0.0,
            "wall_seconds": self.wall_s,
            "miou": self.confusion.miou() if self.has_gt else None,
            "seg_fraction": self.mix.seg_fraction,
            "region_steps": {"seg": self.mix.seg, "flow": self.mix.flow},
            "bytes_per_frame": {
                "master_to_slaves": self.bytes_tasks / out_frames,
                "slaves_to_master": self.bytes_results / out_frames,
                "forwarded_keys": self.bytes_keys / out_frames,
            },
            "bytes_total": {
                "master_to_slaves": self.bytes_tasks,
                "slaves_to_master": self.bytes_results,
            },
            "per_slave": per_slave,
            "latency_ms": {
                # Master: ms per output frame in each stage; idle = blocked waiting for slaves.
                "master": {k: v * 1000.0 / out_frames for k, v in self.stage_s.items()},
                # Slave: ms per region in each stage, over all slaves.
                "slave": {k: v * 1000.0 / regions for k, v in slave_totals.items()},
                "frame": self.latency.summary(),
            },
            # CPU ms per output frame of the master process (all threads), and without making and
            # scoring frames: the master's overhead independent of who else runs on its core.
            "cpu_ms_per_frame": {
                "process": self.cpu_s * 1000.0 / out_frames,
                "main_thread": self.cpu_main_s * 1000.0 / out_frames,
                "overhead": max(0.0, self.cpu_s - self._cpu_excluded) * 1000.0 / out_frames,
            },
            "slave_utilisation": (
                slave_busy / (self.wall_s * len(self.slave_stats))
                if self.wall_s and self.slave_stats
                else 0.0
            ),
            "scheduler": {
                "policy": self.config.policy,
                "threshold": self.config.threshold
                if self.config.threshold >= 0
                else "model default"
                + (" (synthetic)" if self.config.threshold == MODEL_DEFAULT_SYNTHETIC else ""),
                "max_in_flight": wm.max_in_flight,
                "max_queued_frames": wm.max_queued_frames,
                "forward_threshold": wm.forward_threshold,
                "affinity": wm.affinity,
                "region_order": wm.region_order,
                "forwarded_keys": wm.forwarded,
                "redispatched": wm.redispatched,
                "timeouts": sum(s.timeouts for s in wm.slaves.values()),
                "duplicates": wm.duplicates,
                "late_or_unknown": wm.unknown,
            },
            "malformed": {"master": self.malformed, "foreign": self.foreign, "overflow": self.inbox_overflow},
            "rejected_frames": self.rejected_frames,
            "started_unix": self._started_unix,
            "slave_events": [
                {"t": round(t - self._started, 3), "slave": n, "alive": a} for t, n, a in self.slave_events
            ],
            "rss_mb": {"master_start": self.rss_start_mb, "master_end": rss_mb()},
            "rss_samples": list(self.rss_samples),
            "aborted": self.aborted,
        }
