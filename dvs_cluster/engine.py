"""
Single: DVSNet on one machine (the paper's single-board baseline), built from the same core pieces.

Per frame: split into regions -> RegionProcessor per region with one KeyBuffer -> assemble. The run
loop adds metrics (mIoU against ground truth when the source has it, latency per stage, fps, path mix),
sinks and a light stderr progress line. fps counts engine time only (not decoding, rendering or
writing outputs), which is what the cluster's speed-up is compared against.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

import numpy as np
import numpy.typing as npt

from dvs_cluster.core.keys import KeyBuffer
from dvs_cluster.core.metrics import ConfusionMatrix, LatencyRecorder, PathMix, fps
from dvs_cluster.core.policy import DecisionPolicy
from dvs_cluster.core.processor import Models, RegionOutcome, RegionProcessor
from dvs_cluster.core.regions import RegionGrid
from dvs_cluster.io.frame import Frame
from dvs_cluster.io.sinks import Sink

UInt8Array = npt.NDArray[np.uint8]


@dataclass
class FrameResult:
    """One assembled frame (labels at processing size) and its region outcomes."""

    index: int
    labels: UInt8Array
    outcomes: list[RegionOutcome]
    latency_ms: float

    @property
    def paths(self) -> list[str]:
        return [o.path for o in self.outcomes]


@dataclass
class RunStats:
    """Everything a run measured; :meth:`to_dict` is the stats JSON."""

    frames: int = 0
    engine_seconds: float = 0.0
    wall_seconds: float = 0.0
    confusion: ConfusionMatrix = field(default_factory=ConfusionMatrix)
    latency: LatencyRecorder = field(default_factory=LatencyRecorder)
    mix: PathMix = field(default_factory=PathMix)
    region_paths: dict[int, PathMix] = field(default_factory=dict)
    scores: list[float] = field(default_factory=list)
    has_gt: bool = False

    @property
    def fps(self) -> float:
        return fps(self.frames, self.engine_seconds)

    @property
    def miou(self) -> float | None:
        """Return the mIoU in percent, None without ground truth."""
        return self.confusion.miou() if self.has_gt else None

    def record(self, frame: Frame, res: FrameResult) -> None:
        """Count one processed frame: time, path mix, stage latencies, with ground truth the confusion."""
        self.frames += 1
        self.engine_seconds += res.latency_ms / 1000.0
        self.latency.add("frame", res.latency_ms)
        for o in res.outcomes:
            self.mix.add(o.path)
            self.region_paths.setdefault(o.region, PathMix()).add(o.path)
            self.latency.add_all(o.timings_ms)
            self.latency.add(f"region_{o.path}", o.total_ms)
            if o.score is not None:
                self.scores.append(o.score)
        if frame.labels is not None:
            self.has_gt = True
            self.confusion.update(res.labels, frame.labels)

    def to_dict(self) -> dict[str, Any]:
        from dvs_cluster.core.classes import CLASS_NAMES

        out: dict[str, Any] = {
            "frames": self.frames,
            "fps": self.fps,
            "engine_seconds": self.engine_seconds,
            "wall_seconds": self.wall_seconds,
            "miou": self.miou,
            "seg_fraction": self.mix.seg_fraction,
            "region_steps": {"seg": self.mix.seg, "flow": self.mix.flow},
            "seg_fraction_per_region": {str(k): v.seg_fraction for k, v in sorted(self.region_paths.items())},
            "latency_ms": self.latency.summary(),
            "dn_score": (
                {"mean": float(np.mean(self.scores)), "min": float(np.min(self.scores))}
                if self.scores
                else None
            ),
        }
        if self.has_gt:
            iou = self.confusion.iou()
            out["iou"] = {
                CLASS_NAMES[c]: float(iou[c] * 100.0)
                for c in self.confusion.classes_present()
                if c < len(CLASS_NAMES)
            }
            out["pixel_accuracy"] = self.confusion.pixel_accuracy()
        return out


class Progress:
    """A single self-overwriting stderr line, at most a few updates per second; silent when not a tty."""

    def __init__(self, total: int | None, enabled: bool | None = None, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.total = total
        self._last = 0.0

    def update(self, done: int, stats: RunStats, force: bool = False) -> None:
        now = time.monotonic()
        if not self.enabled or (not force and now - self._last < 0.25):
            return
        self._last = now
        total = f"/{self.total}" if self.total else ""
        miou = f"  mIoU {stats.miou:5.1f}" if stats.miou is not None and stats.frames else ""
        seg = stats.mix.seg_fraction * 100
        self.stream.write(f"\r  frame {done}{total}  {stats.fps:6.2f} fps  seg {seg:5.1f}%{miou}   ")
        self.stream.flush()

    def close(self, done: int, stats: RunStats) -> None:
        if self.enabled:
            self.update(done, stats, force=True)
            self.stream.write("\n")
            self.stream.flush()


class SingleEngine:
    """DVSNet over a region grid on one machine."""

    def __init__(
        self,
        models: Models,
        policy: DecisionPolicy,
        width: int = 1024,
        height: int = 512,
        rows: int = 2,
        cols: int = 2,
        overlap: int = 0,
        propagate: bool = True,
    ) -> None:
        self.models = models
        self.policy = policy
        self.grid = RegionGrid(width, height, rows, cols, overlap)
        self.processor = RegionProcessor(models, policy, propagate)
        self.keys = KeyBuffer(len(self.grid))

    def reset(self) -> None:
        """Forget all keys (a new video)."""
        self.keys.clear()

    def process(self, image: UInt8Array, timestep: int) -> FrameResult:
        """Segment one processing-size frame."""
        t0 = time.perf_counter()
        crops = self.grid.split(image)
        outcomes = [
            self.processor.step(r.index, timestep, crop, self.keys)
            for r, crop in zip(self.grid.regions, crops, strict=True)
        ]
        conf = [o.confidence for o in outcomes] if self.grid.overlap else None
        labels = self.grid.assemble_labels([o.labels for o in outcomes], conf)
        return FrameResult(timestep, labels, outcomes, (time.perf_counter() - t0) * 1000.0)

    def run(
        self,
        frames: Iterable[Frame],
        sinks: Sequence[Sink] = (),
        max_frames: int | None = None,
        progress: Progress | None = None,
        on_frame: Callable[[Frame, FrameResult], None] | None = None,
    ) -> RunStats:
        """Process frames until the source ends or ``max_frames``; returns the run's statistics."""
        stats = RunStats()
        wall0 = time.perf_counter()
        for frame in frames:
            if max_frames is not None and stats.frames >= max_frames:
                break
            res = self.process(frame.image, frame.index)
            stats.record(frame, res)
            if sinks:
                back = frame.transform.labels_back(res.labels)
                for sink in sinks:
                    sink.write(frame, back)
            if on_frame is not None:
                on_frame(frame, res)
            if progress is not None:
                progress.update(stats.frames, stats)
        stats.wall_seconds = time.perf_counter() - wall0
        if progress is not None:
            progress.close(stats.frames, stats)
        return stats


def run_interleaved(engines: Sequence[SingleEngine], frames: Sequence[Frame]) -> list[RunStats]:
    """
    Run several engines over the same frames, one frame at a time each, in an order that rotates.

    For comparing configurations in one process: a machine's speed drifts over minutes (other jobs,
    clocks, a shared host), and run one after another each configuration met a different machine;
    interleaved, every configuration sees the same drift, so their fps ratios hold. Rotating who goes
    first keeps any warm-cache advantage of a position spread evenly.
    """
    stats = [RunStats() for _ in engines]
    wall0 = time.perf_counter()
    n = len(engines)
    for t, frame in enumerate(frames):
        for j in range(n):
            i = (t + j) % n
            stats[i].record(frame, engines[i].process(frame.image, frame.index))
    wall = time.perf_counter() - wall0
    for st in stats:
        st.wall_seconds = wall
    return stats
