"""
Seeded fuzzing of every key the cluster nodes read: random bytes, mutated valid messages, absurd content.

The nodes promise to count and drop anything malformed and to keep running with nothing already
accepted lost (docs/OPERATIONS.md). This module makes the inputs that check it, deterministically from a
seed so a failure replays: random byte strings of many lengths, mutations of valid ``RegionTask`` /
``RegionResult`` / ``SlaveStatus`` bytes (bit flips, overwritten integers, truncation, splices), and
well-typed messages with absurd content (regions out of the frame, wrong shapes, NaN logits, unknown
sequence numbers, huge sizes). Two harnesses use them:

- :func:`fuzz_bus`: publishes on the task/result/status keys of a running cluster (any transport),
  ``dvs-cluster fuzz --cluster ID --connect ENDPOINT --messages 10000``;
- :func:`fuzz_in_process`: a master and a slave (real models) over an in-memory transport, fed frames and
  fuzz alternately; checks every accepted frame comes out once, in order (``dvs-cluster fuzz --in-process``).
"""

from __future__ import annotations

import queue
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dvs_cluster.transport.base import ClusterKeys, Transport
from dvs_cluster.transport.loopback import LoopbackTransport
from dvs_cluster.transport.messages import (
    PATH_FLOW,
    PATH_SEG,
    KeyPayload,
    Result,
    Status,
    Task,
    encode_result,
    encode_status,
    encode_task,
)

KINDS = ("task", "result", "status")


def valid_messages(
    cluster_id: str, slave: str, run_id: str, width: int = 256, height: int = 128
) -> dict[str, list[bytes]]:
    """Valid payloads per key kind, the seeds that mutations start from (one region of ``width x height``)."""
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    lab = rng.integers(0, 19, (height, width), dtype=np.uint8)
    logits = rng.standard_normal((19, height // 4, width // 4)).astype(np.float32)
    rect = (0, 0, width, height)
    key = KeyPayload(0, img, logits)
    tasks = [
        Task(cluster_id, slave, 10**6, 0, 4, rect, img, 50.0, run_id=run_id),
        Task(cluster_id, slave, 10**6 + 1, 1, 4, rect, img, 50.0, run_id=run_id, key=key),
    ]
    results = [
        Result(cluster_id, slave, 10**6, 0, PATH_SEG, 40.0, 10**6, lab, logits, run_id=run_id),
        Result(cluster_id, slave, 10**6, 1, PATH_FLOW, 95.0, 3, lab, None, run_id=run_id),
    ]
    status = Status(cluster_id, slave, "fuzz", 1, 5, 2, 3, 0, (1, 2, 3, 4), time.time())
    return {
        "task": [bytes(encode_task(t)) for t in tasks],
        "result": [bytes(encode_result(r)) for r in results],
        "status": [bytes(encode_status(status))],
    }


def absurd_messages(
    cluster_id: str, slave: str, run_id: str, width: int = 256, height: int = 128
) -> dict[str, list[tuple[str, bytes]]]:
    """Well-typed messages with absurd content, per key kind, each with what is absurd about it."""
    img = np.zeros((height, width, 3), np.uint8)
    lab = np.zeros((height, width), np.uint8)
    logits = np.zeros((19, height // 4, width // 4), np.float32)
    nan_logits = logits.copy()
    nan_logits[0, 0, 0] = np.nan
    big = np.zeros((4096, 4096), np.uint8)  # 16 MiB of labels
    out: dict[str, list[tuple[str, bytes]]] = {"task": [], "result": [], "status": []}

    def task(why: str, **kw: Any) -> None:
        args: dict[str, Any] = {
            "cluster_id": cluster_id, "slave_id": slave, "sequence": 10**6, "region": 0, "num_regions": 4,
            "rect": (0, 0, width, height), "image": img, "threshold": 50.0, "run_id": run_id,
        }  # fmt: skip
        args.update(kw)
        out["task"].append((why, bytes(encode_task(Task(**args)))))

    def result(why: str, **kw: Any) -> None:
        args: dict[str, Any] = {
            "cluster_id": cluster_id, "slave_id": slave, "sequence": 10**6, "region": 0, "path": PATH_SEG,
            "score": 10.0, "key_sequence": 10**6, "labels": lab, "logits": logits, "run_id": run_id,
        }  # fmt: skip
        args.update(kw)
        out["result"].append((why, bytes(encode_result(Result(**args)))))

    task("region rectangle outside the frame", rect=(10**6, 10**6, width, height))
    task("1x1 region", image=np.zeros((1, 1, 3), np.uint8), rect=(0, 0, 1, 1))
    task("key logits of the wrong shape", key=KeyPayload(0, img, np.zeros((19, 3, 3), np.float32)))
    task("NaN key logits", key=KeyPayload(0, img, nan_logits))
    task("unknown policy", policy="no-such-policy")
    task("threshold far out of range", threshold=1e30)
    task("largest sequence and attempt", sequence=2**64 - 1, attempt=2**32 - 1)
    task("another cluster", cluster_id=cluster_id + "x")
    task("another slave", slave_id=slave + "x")
    task(
        "whole 1024x512 frame as one region", image=np.zeros((512, 1024, 3), np.uint8), rect=(0, 0, 1024, 512)
    )
    result("region out of the frame", region=200)
    result("labels of the wrong shape", labels=np.zeros((7, 9), np.uint8))
    result("logits of the wrong shape", logits=np.zeros((19, 2, 2), np.float32))
    result("NaN logits", logits=nan_logits)
    result("unknown sequence number", sequence=2**62)
    result("an already finished frame", sequence=0, attempt=2**32 - 1)
    result("huge labels (4096x4096)", labels=big, logits=None, path=PATH_FLOW)
    result("another run of the master", run_id="not-this-run")
    big_ints = (2**32 - 1, 2**64 - 1, 0, 0, 2**64 - 1)
    status = Status(cluster_id, slave, "fuzz", *big_ints, (-(2**63),) * 255, 2.1e9)
    out["status"].append(("extreme counters, 255 key sequences, far stamp", bytes(encode_status(status))))
    status = Status(cluster_id, slave + "x", "fuzz")
    out["status"].append(("slave id differs from the key", bytes(encode_status(status))))
    return out


def mutate(rng: np.random.Generator, data: bytes) -> bytes:
    """One random structural mutation of ``data`` (never the identity for non-empty input)."""
    b = bytearray(data)
    n = len(b)
    op = int(rng.integers(0, 8))
    if n == 0 or op == 0:  # random insert
        pos = int(rng.integers(0, n + 1))
        b[pos:pos] = rng.integers(0, 256, int(rng.integers(1, 64)), dtype=np.uint8).tobytes()
    elif op == 1:  # bit flips
        for pos in rng.integers(0, n, int(rng.integers(1, 9))):
            b[int(pos)] ^= 1 << int(rng.integers(0, 8))
    elif op == 2:  # truncate
        del b[int(rng.integers(0, n)) :]
    elif op == 3:  # overwrite a 32-bit word with an extreme value (lengths, sizes, counts live here)
        pos = int(rng.integers(0, max(1, n - 4)))
        word = [0, 0xFFFFFFFF, 0x7FFFFFFF, 0x80000000, 1, 0x00010000][int(rng.integers(0, 6))]
        b[pos : pos + 4] = word.to_bytes(4, "little")
    elif op == 4:  # random bytes over a range
        pos = int(rng.integers(0, n))
        span = int(rng.integers(1, min(n - pos, 256) + 1))
        b[pos : pos + span] = rng.integers(0, 256, span, dtype=np.uint8).tobytes()
    elif op == 5:  # duplicate a chunk
        pos = int(rng.integers(0, n))
        chunk = b[pos : pos + int(rng.integers(1, 512))]
        b[pos:pos] = chunk
    elif op == 6:  # delete a range
        pos = int(rng.integers(0, n))
        del b[pos : pos + int(rng.integers(1, 256))]
    else:  # extend with trailing garbage
        b += rng.integers(0, 256, int(rng.integers(1, 4096)), dtype=np.uint8).tobytes()
    return bytes(b)


def payloads(
    seed: int, count: int, cluster_id: str, slave: str, run_id: str, width: int = 256, height: int = 128
) -> Iterator[tuple[str, bytes]]:
    """``count`` (kind, payload) pairs, kinds in turn: ~45 % random bytes, ~45 % mutations, rest absurd."""
    rng = np.random.default_rng(seed)
    seeds = valid_messages(cluster_id, slave, run_id, width, height)
    absurd = absurd_messages(cluster_id, slave, run_id, width, height)
    for i in range(count):
        kind = KINDS[i % len(KINDS)]
        r = float(rng.random())
        if r < 0.45:
            size = int(rng.choice([0, 1, 4, 16, 64, 256, 4096, 65536, 300_000]))
            yield kind, rng.integers(0, 256, size, dtype=np.uint8).tobytes()
        elif r < 0.9:
            pool = seeds[kind]
            data = pool[int(rng.integers(0, len(pool)))]
            for _ in range(int(rng.integers(1, 4))):
                data = mutate(rng, data)
            yield kind, data
        else:
            pool2 = absurd[kind]
            yield kind, pool2[int(rng.integers(0, len(pool2)))][1]


@dataclass
class FuzzReport:
    """What was sent, per key kind."""

    sent: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    bytes: int = 0
    seconds: float = 0.0

    @property
    def total(self) -> int:
        """Messages sent over all keys."""
        return sum(self.sent.values())


def fuzz_bus(
    transport: Transport,
    cluster_id: str,
    slaves: list[str],
    count: int,
    seed: int = 0,
    rate: float = 0.0,
    run_id: str = "",
) -> FuzzReport:
    """
    Publish ``count`` fuzz payloads on a live cluster's keys; returns what was sent.

    Keys: every slave's task key, the result key and every slave's status key; ``rate`` > 0 paces
    them (messages/s). ``run_id`` (the master's, from its ``master/status`` heartbeat) makes mutated
    results reach the master's deeper checks.
    """
    keys = ClusterKeys(cluster_id)
    rep = FuzzReport()
    t0 = time.perf_counter()
    for i, (kind, data) in enumerate(payloads(seed, count, cluster_id, slaves[0], run_id)):
        slave = slaves[(i // len(KINDS)) % len(slaves)]
        key = {"task": keys.task(slave), "result": keys.result, "status": keys.status(slave)}[kind]
        transport.publish(key, data)
        rep.sent[kind] += 1
        rep.bytes += len(data)
        if rate > 0:
            wait = t0 + (i + 1) / rate - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
    rep.seconds = time.perf_counter() - t0
    return rep


def fuzz_in_process(
    count: int,
    seed: int = 0,
    models_dir: str | None = None,
    frames: int = 20,
    width: int = 512,
    height: int = 256,
) -> dict[str, Any]:
    """
    Fuzz a master and one slave (real models) in this process; returns counts and the exactly-once check.

    Over :class:`~dvs_cluster.transport.loopback.LoopbackTransport`, ``frames`` frames go through while
    ``count`` fuzz payloads hit the slave's task key, the result key and the status key.
    """
    from dvs_cluster.inference import OnnxModels
    from dvs_cluster.io.sources import open_source
    from dvs_cluster.nodes.master import MasterConfig, MasterNode
    from dvs_cluster.nodes.slave import SlaveNode

    bus = LoopbackTransport()
    cluster = "fuzz"
    master = MasterNode(bus, MasterConfig(cluster_id=cluster, width=width, height=height, status_period_s=0))
    slave = SlaveNode(
        "s0", bus, OnnxModels(models_dir, intra_op_threads=1), cluster_id=cluster, inbox_size=100_000
    )
    master.wait_for_slaves(1, 5.0)
    rw, rh = master.grid.regions[0].width, master.grid.regions[0].height
    keys = master.keys
    fuzz = payloads(seed, count, cluster, "s0", master.run_id, rw, rh)
    per_frame = max(1, count // max(1, frames))
    sent = dict.fromkeys(KINDS, 0)
    t0 = time.perf_counter()

    def drain_slave() -> None:
        while True:
            try:
                data = slave._inbox.get_nowait()
            except queue.Empty:
                return
            slave.handle(data)

    with open_source("synthetic", width, height, frames=frames) as src:
        for frame in src:
            master.submit(frame)
            for _ in range(per_frame):
                item = next(fuzz, None)
                if item is None:
                    break
                kind, data = item
                key = {"task": keys.task("s0"), "result": keys.result, "status": keys.status("s0")}[kind]
                bus.publish(key, data)
                sent[kind] += 1
                master.poll(timeout=0.0)
                drain_slave()
            for _ in range(200):  # the real frame's tasks, answered
                master.poll(timeout=0.0)
                drain_slave()
                if master.pending == 0:
                    break
    for kind, data in fuzz:  # the rest, if frames ran out first
        key = {"task": keys.task("s0"), "result": keys.result, "status": keys.status("s0")}[kind]
        bus.publish(key, data)
        sent[kind] += 1
        master.poll(timeout=0.0)
        drain_slave()
    for _ in range(200):
        master.poll(timeout=0.0)
        drain_slave()
        if master.pending == 0:
            break
    seconds = time.perf_counter() - t0
    c = slave.counters
    out = {
        "sent": sent,
        "sent_total": sum(sent.values()),
        "seconds": seconds,
        "frames_in": master.frames_in,
        "frames_out": master.frames_out,
        "frames_dropped": master.frames_dropped,
        "in_order_once": master.emitted == sorted(set(master.emitted)),
        "master": {
            "malformed": master.malformed,
            "foreign": master.foreign,
            "duplicates": master.wm.duplicates,
            "late_or_unknown": master.wm.unknown,
        },
        "slave": {
            "malformed": c.malformed,
            "foreign": c.foreign,
            "errors": c.errors,
            "tasks_done": c.tasks_done,
            "overflow": c.overflow,
        },
    }
    slave.close()
    master.close()
    bus.close()
    return out
