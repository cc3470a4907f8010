"""
Slave node: receives region tasks, keeps its local key buffer, runs the DVSNet region step, answers.

One task at a time on the main thread (the models use the board's cores); the transport's threads only
enqueue payloads. A task may carry a forwarded key from the master's global key buffer, which goes into
the local key buffer first (newest key wins). The processor is the same ``RegionProcessor`` Single
uses, so a region that takes the same path with the same key gives the same labels on both.

Anything malformed is counted and dropped (:class:`~dvs_cluster.transport.messages.MessageError`), a
task for another cluster or slave likewise; the node never dies on input. A heartbeat
(``SlaveStatus``) goes out a few times a second and a liveliness token says the slave is alive.

Harnesses that need a variant of the slave (the bench's echo slaves and flow-logits slaves) pass
:class:`SlaveHooks` instead of patching this module.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from dvs_cluster.core.keys import KeyBuffer, KeyFrame
from dvs_cluster.core.policy import make_policy
from dvs_cluster.core.processor import Models, RegionOutcome, RegionProcessor
from dvs_cluster.transport.base import ClusterKeys, Handle, Transport
from dvs_cluster.transport.messages import (
    PATH_FLOW,
    PATH_SEG,
    MessageError,
    Result,
    Status,
    Task,
    Timings,
    decode_task,
    encode_result,
    encode_status,
    warmup,
)

log = logging.getLogger(__name__)

# Processor stage names (RegionOutcome.timings_ms) -> StageTimings fields.
_STAGE_FIELDS = {"flow": "flow", "dn": "dn", "seg": "seg", "warp": "warp", "upsample": "labels"}


class SlaveHooks:
    """
    The slave's documented extension points: subclass, override, pass as ``SlaveNode(..., hooks=...)``.

    The defaults are what the slave always does, so a hook changes one step and nothing around it:
    decoding, key handling, timings, encoding, publishing and counting stay the slave's own.
    """

    def process(self, task: Task, run: Callable[[], RegionOutcome]) -> RegionOutcome:
        """The region step for ``task``; ``run()`` is the real one (DVSNet on the local key buffer)."""
        return run()

    def result(self, result: Result, outcome: RegionOutcome) -> Result:
        """The result about to be encoded and sent for ``outcome`` (return a changed copy to alter it)."""
        return result


@dataclass
class SlaveCounters:
    """What the slave counted (also sent in its heartbeat)."""

    tasks_done: int = 0
    seg: int = 0
    flow: int = 0
    malformed: int = 0  # did not decode
    foreign: int = 0  # decoded, but for another cluster / slave
    overflow: int = 0  # inbox full: payload dropped
    errors: int = 0  # processing failed
    keys_received: int = 0
    key_resets: int = 0
    bytes_in: int = 0
    bytes_out: int = 0


class SlaveNode:
    """A slave over any :class:`~dvs_cluster.transport.base.Transport`."""

    def __init__(
        self,
        name: str,
        transport: Transport,
        models: Models,
        *,
        cluster_id: str = "default",
        result_quantize: str = "float32",
        heartbeat_s: float = 0.5,
        inbox_size: int = 64,
        propagate: bool = True,
        hooks: SlaveHooks | None = None,
    ) -> None:
        """Declare the subscriptions and the liveliness token; call :meth:`run` to serve."""
        self.keys = ClusterKeys(cluster_id)
        self.keys.task(name)  # validates the name
        self.name = name
        self.cluster_id = cluster_id
        self.transport = transport
        self.models = models
        self.propagate = propagate
        self.result_quantize = result_quantize
        self.heartbeat_s = heartbeat_s
        self.hooks = hooks if hooks is not None else SlaveHooks()
        self.incarnation = uuid.uuid4().hex[:12]
        self.counters = SlaveCounters()
        self.local_keys: KeyBuffer | None = None
        self._run_id = ""
        self._processors: dict[tuple[str, float], RegionProcessor] = {}
        self._serialize_prev = 0.0
        self._inbox: queue.Queue[bytes] = queue.Queue(maxsize=inbox_size)
        warmup()
        self._handles: list[Handle] = []
        self._handles.append(transport.subscribe(self.keys.task(name), self._on_task))
        self._handles.append(transport.declare_liveliness(self.keys.alive_slave(name)))

    # -- transport side (backend threads) -----------------------------------------------------------

    def _on_task(self, key: str, payload: bytes) -> None:
        try:
            self._inbox.put_nowait(payload)
        except queue.Full:
            self.counters.overflow += 1

    # -- main loop ----------------------------------------------------------------------------------

    def run(self, stop: threading.Event, max_tasks: int | None = None) -> SlaveCounters:
        """Serve tasks until ``stop`` is set (or ``max_tasks`` were answered); heartbeats in between."""
        next_beat = 0.0
        while not stop.is_set():
            now = time.monotonic()
            if now >= next_beat:
                self.publish_status()
                next_beat = now + self.heartbeat_s
            try:
                payload = self._inbox.get(timeout=max(0.0, min(next_beat - now, 0.1)))
            except queue.Empty:
                continue
            self.handle(payload)
            if max_tasks is not None and self.counters.tasks_done >= max_tasks:
                break
        return self.counters

    def close(self) -> None:
        """Withdraw the subscription and the liveliness token (the transport stays open)."""
        for h in self._handles:
            h.close()
        self._handles = []

    def publish_status(self) -> None:
        """Heartbeat: load, counters and the local key table."""
        kb = self.local_keys
        key_ts = tuple(-1 if t is None else t for t in (kb.timestep(r) for r in range(len(kb)))) if kb else ()
        c = self.counters
        status = Status(
            cluster_id=self.cluster_id,
            slave_id=self.name,
            incarnation=self.incarnation,
            in_flight=self._inbox.qsize(),
            tasks_done=c.tasks_done,
            seg_count=c.seg,
            flow_count=c.flow,
            malformed=c.malformed + c.foreign,
            key_sequences=key_ts,
            stamp=time.time(),
        )
        try:
            self.transport.publish(self.keys.status(self.name), encode_status(status))
        except Exception as exc:  # a heartbeat lost is not fatal
            log.warning("heartbeat failed: %s", exc)

    # -- one task -----------------------------------------------------------------------------------

    def handle(self, payload: bytes) -> Result | None:
        """Decode, process and answer one task payload; returns the result sent (None if dropped)."""
        t_arrive = time.perf_counter()
        self.counters.bytes_in += len(payload)
        try:
            task = decode_task(payload)
        except MessageError as exc:
            self.counters.malformed += 1
            log.warning("dropped malformed task (%d bytes): %s", len(payload), exc)
            return None
        if task.cluster_id != self.cluster_id or task.slave_id != self.name:
            self.counters.foreign += 1
            log.warning("dropped task for %s/%s", task.cluster_id, task.slave_id)
            return None
        t_decoded = time.perf_counter()
        try:
            processor = self._processor(task.policy, task.threshold)
        except ValueError as exc:
            self.counters.malformed += 1
            log.warning("dropped task with bad policy: %s", exc)
            return None
        buffer = self._buffer(task)
        t0 = time.perf_counter()
        if task.key is not None:
            self.counters.keys_received += 1
            logits = np.ascontiguousarray(task.key.logits, dtype=np.float32)
            buffer.put(task.region, KeyFrame(task.key.sequence, task.key.image, logits))
        t_key = time.perf_counter() - t0
        try:
            outcome = self.hooks.process(task, lambda: self._process(processor, buffer, task))
        except Exception as exc:
            self.counters.errors += 1
            log.exception("task %d/%d failed: %s", task.sequence, task.region, exc)
            return None
        if outcome.state is not None:  # the new key, or with propagation the step's output
            buffer.put(task.region, outcome.state)
        timings = Timings(deserialize=t_decoded - t_arrive, key_update=t_key)
        for stage, ms in outcome.timings_ms.items():
            field_name = _STAGE_FIELDS.get(stage)
            if field_name is not None:
                setattr(timings, field_name, getattr(timings, field_name) + ms / 1000.0)
        timings.serialize_prev = self._serialize_prev
        seg = outcome.path == "seg"
        result = Result(
            cluster_id=self.cluster_id,
            slave_id=self.name,
            sequence=task.sequence,
            region=task.region,
            path=PATH_SEG if seg else PATH_FLOW,
            score=-1.0 if outcome.score is None else float(outcome.score),
            key_sequence=task.sequence if seg else int(outcome.key_timestep or 0),
            labels=outcome.labels,
            logits=outcome.logits if seg else None,
            confidence=outcome.confidence if task.want_confidence else None,
            run_id=task.run_id,
            attempt=task.attempt,
            stamp=task.stamp,
            frame_id=task.frame_id,
            timings=timings,
        )
        result = self.hooks.result(result, outcome)
        timings.total = time.perf_counter() - t_arrive
        t0 = time.perf_counter()
        data = encode_result(result, self.result_quantize)
        self._serialize_prev = time.perf_counter() - t0
        self.transport.publish(self.keys.result, data)
        self.counters.bytes_out += len(data)
        self.counters.tasks_done += 1
        if seg:
            self.counters.seg += 1
        else:
            self.counters.flow += 1
        return result

    def _processor(self, policy: str, threshold: float) -> RegionProcessor:
        if threshold < 0:  # the master leaves the threshold to the model card (real or synthetic)
            from dvs_cluster.model_defaults import resolve_threshold

            threshold = resolve_threshold(self.models, threshold)
        spec = (policy or "dvsnet", float(threshold))
        proc = self._processors.get(spec)
        if proc is None:
            proc = RegionProcessor(self.models, make_policy(spec[0], spec[1]), self.propagate)
            self._processors[spec] = proc
        return proc

    def _buffer(self, task: Task) -> KeyBuffer:
        """The local key buffer, emptied for a new master run or a different region grid."""
        kb = self.local_keys
        if kb is None or len(kb) != task.num_regions or task.run_id != self._run_id:
            if kb is not None:
                self.counters.key_resets += 1
            kb = self.local_keys = KeyBuffer(task.num_regions)
            self._run_id = task.run_id
            self._processors.clear()  # stateful policies start over too
        return kb

    def _process(self, processor: RegionProcessor, buffer: KeyBuffer, task: Task) -> RegionOutcome:
        key = buffer.get(task.region)
        if key is not None:
            try:
                return processor.process(task.region, task.sequence, task.image, key)
            except ValueError as exc:  # a key that does not fit this region (grid or model changed)
                log.warning("region %d: key unusable (%s); segmentation path instead", task.region, exc)
                buffer.clear(task.region)
        return processor.process(task.region, task.sequence, task.image, None)


def serve(
    name: str,
    transport: Transport,
    models_factory: Callable[[], Models],
    stop: threading.Event,
    **kwargs: object,
) -> SlaveCounters:
    """Load the models, then serve until ``stop``; the liveliness token appears only once models load."""
    models = models_factory()
    node = SlaveNode(name, transport, models, **kwargs)  # type: ignore[arg-type]
    try:
        return node.run(stop)
    finally:
        node.close()
