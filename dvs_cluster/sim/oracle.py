"""
What the DN decides and what each path scores, per (region, key frame, frame): the simulator's oracle.

A cluster's path mix and mIoU depend on which key each slave holds when a region arrives, and that
depends on the schedule. So the simulator asks, for every region step it simulates: "with the key of
frame ``k``, what does the DN say at frame ``t``, and which pixels does the flow path get right?".
:class:`ModelOracle` answers by running the real nets and the real warp on the real frames (memoised,
and timing every stage: these are the compute-time samples of the simulator); :class:`TableOracle`
answers from a saved calibration, so ``plan`` works without models.

Accuracy is kept as per-class (true positive, ground truth, predicted) pixel counts: summing them over
region steps gives exactly the confusion-matrix mIoU of :mod:`dvs_cluster.core.metrics` (predictions
are argmax labels, always in range).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from dvs_cluster.core.classes import NUM_CLASSES
from dvs_cluster.core.metrics import confusion_matrix
from dvs_cluster.core.processor import Models, labels_from_logits
from dvs_cluster.core.regions import RegionGrid
from dvs_cluster.core.warp import compose, warp
from dvs_cluster.io.frame import Frame

Counts = npt.NDArray[np.int64]  # (3, NUM_CLASSES): tp, gt, pred
FloatArray = npt.NDArray[np.float32]

#: Logit encodings on the wire, finest first (see ``transport.messages.tensor_to_msg``).
QUANTS = ("float32", "float16", "uint8")
STAGES = ("flow", "dn", "seg", "warp", "labels")


def class_counts(pred: npt.NDArray[np.integer], gt: npt.NDArray[np.integer]) -> Counts:
    """Per-class (tp, gt, pred) pixel counts of one prediction (GT 255 ignored)."""
    cm = confusion_matrix(pred, gt, NUM_CLASSES)
    return np.stack([np.diag(cm), cm.sum(axis=1), cm.sum(axis=0)]).astype(np.int64)


def miou_from_counts(counts: Counts | None) -> float | None:
    """Return the mIoU in percent over the classes present in the GT (as ``ConfusionMatrix.miou``)."""
    if counts is None:
        return None
    tp, gt, pred = (counts[i].astype(np.float64) for i in range(3))
    present = gt > 0
    if not present.any():
        return None
    union = gt + pred - tp
    return float(np.mean(tp[present] / union[present]) * 100.0)


def coarsest(*quants: str) -> str:
    """The lossiest of several encodings a key went through (float16 then uint8 ~ uint8)."""
    return max(quants, key=QUANTS.index)


def roundtrip(logits: FloatArray, quant: str) -> FloatArray:
    """Logits as the receiver sees them after the real serialiser's encoding ``quant``."""
    if quant == "float32":
        return logits
    from dvs_cluster.transport.messages import msg_to_tensor, tensor_to_msg

    return np.ascontiguousarray(msg_to_tensor(tensor_to_msg(logits, quant)), dtype=np.float32)


class Oracle(Protocol):
    """Decisions and accuracy of region steps (see the module docstring)."""

    frames: int
    regions: int
    has_gt: bool

    def score(self, region: int, key: int, t: int) -> float:
        """DN score of frame ``t`` against the key of frame ``key`` (0..100)."""
        ...

    def seg_counts(self, region: int, t: int) -> Counts | None:
        """Accuracy counts of the segmentation path (None without ground truth)."""
        ...

    def flow_counts(self, region: int, key: int, t: int, quant: str) -> Counts | None:
        """Accuracy counts of the flow path with a key whose logits went through ``quant``."""
        ...


def _clock() -> tuple[float, float]:
    """(wall, this thread's CPU) seconds: compute is timed in CPU so other jobs on the core do not count."""
    return time.perf_counter(), time.thread_time()


@contextlib.contextmanager
def pinned(core: int | None) -> Iterator[None]:
    """Run the calling thread on one core with OpenCV single-threaded: one board's budget."""
    import cv2

    if core is None:
        yield
        return
    before = os.sched_getaffinity(0)
    threads = cv2.getNumThreads()
    os.sched_setaffinity(0, {core})
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        cv2.setNumThreads(threads)
        os.sched_setaffinity(0, before)


class ModelOracle:
    """Runs the real nets on demand (memoised) and records per-stage compute times."""

    def __init__(
        self,
        models: Models,
        frames: Sequence[Frame],
        grid: RegionGrid,
        core: int | None = None,
        quants: Sequence[str] = QUANTS,
        propagate: bool = True,
    ) -> None:
        """
        ``core``: pin the calling thread there while the nets run (None: leave affinity alone).

        ``propagate``: the flow path warps the previous step's output, as the runtime's default; a pair
        (region, key, t) then stands for the chain key, key + 1, ..., t (Single's chain; a cluster whose
        region skips frames on a board chains over those gaps, which this approximates).
        """
        self.models = models
        self.propagate = propagate
        #: (region, key, quant) -> (frame, logits) of the chain's newest state; (region, key) -> (frame,
        #: composed flow from that frame to the key), which the DN v2 reads against the key.
        self._chains: dict[tuple[int, int, str], tuple[int, FloatArray]] = {}
        self._to_key: dict[tuple[int, int], tuple[int, FloatArray]] = {}
        self._steps: dict[tuple[int, int], FloatArray] = {}  # untimed one-frame flows (region, frame)
        self._frames = list(frames)
        self.grid = grid
        self.core = core
        self.quants = tuple(quants)
        self.frames = len(self._frames)
        self.regions = len(grid)
        self.has_gt = all(f.labels is not None for f in self._frames)
        # CPU time of the (single) computing thread: what a quiet core would take, whatever else runs.
        self.stage_ms: dict[str, list[float]] = {s: [] for s in STAGES}
        self.stage_wall_ms: dict[str, list[float]] = {s: [] for s in STAGES}
        self._seg: dict[tuple[int, int], tuple[FloatArray, Counts | None]] = {}
        self._pairs: dict[tuple[int, int, int], tuple[float, dict[str, Counts | None]]] = {}
        self.compute_s = 0.0  # wall time spent in the nets (what the calibration cost)

    def _crop(self, region: int, t: int) -> npt.NDArray[np.uint8]:
        return np.ascontiguousarray(self.grid.crop(self._frames[t].image, region))

    def _counts(self, labels: npt.NDArray[np.uint8], region: int, t: int) -> Counts | None:
        gt = self._frames[t].labels
        if gt is None:
            return None
        r = self.grid.regions[region]
        ys, xs = r.core_in_padded
        return class_counts(labels[ys, xs], self.grid.crop(gt, region)[ys, xs])

    def _time(self, stage: str, t0: tuple[float, float], record: bool = True) -> None:
        wall, cpu = _clock()
        self.compute_s += wall - t0[0]
        if record:
            self.stage_ms[stage].append((cpu - t0[1]) * 1000.0)
            self.stage_wall_ms[stage].append((wall - t0[0]) * 1000.0)

    def _seg_entry(self, region: int, t: int) -> tuple[FloatArray, Counts | None]:
        hit = self._seg.get((region, t))
        if hit is None:
            crop = self._crop(region, t)
            with pinned(self.core):
                t0 = _clock()
                logits = self.models.seg(crop)
                self._time("seg", t0)
                t0 = _clock()
                labels, _ = labels_from_logits(logits, crop.shape[0], crop.shape[1])
                self._time("labels", t0)
            hit = self._seg[(region, t)] = (logits, self._counts(labels, region, t))
        return hit

    def _chain_logits(self, region: int, key: int, t: int, quant: str) -> FloatArray:
        """Logits the propagated flow path warps at frame ``t``: the chain's state at frame t - 1."""
        cached = self._chains.get((region, key, quant))
        if cached is not None and cached[0] < t:
            s, logits = cached
        else:
            s, logits = key, roundtrip(self._seg_entry(region, key)[0], quant)
        while s < t - 1:  # walk the chain up to t - 1 (steps the simulator did not ask for are untimed)
            s += 1
            logits = warp(logits, self._step_flow(region, s))
        return logits

    def _pair(self, region: int, key: int, t: int) -> tuple[float, dict[str, Counts | None]]:
        hit = self._pairs.get((region, key, t))
        if hit is not None:
            return hit
        if self.propagate:
            return self._chain_pair(region, key, t)
        key_logits, _ = self._seg_entry(region, key)
        cur = self._crop(region, t)
        counts: dict[str, Counts | None] = {}
        with pinned(self.core):
            t0 = _clock()
            flow, features = self.models.flow(self._crop(region, key), cur)
            self._time("flow", t0)
            t0 = _clock()
            score = float(self.models.dn(features, t - key))
            self._time("dn", t0)
            for q in self.quants:
                exact = q == "float32"
                logits = roundtrip(key_logits, q)
                t0 = _clock()
                warped = warp(logits, flow)
                self._time("warp", t0, exact)
                t0 = _clock()
                labels, _ = labels_from_logits(warped, cur.shape[0], cur.shape[1])
                self._time("labels", t0, exact)
                counts[q] = self._counts(labels, region, t)
        hit = self._pairs[(region, key, t)] = (score, counts)
        return hit

    def _step_flow(self, region: int, s: int) -> FloatArray:
        """Flow frame s -> s - 1 of a region, untimed and computed once (both chain walks read it)."""
        hit = self._steps.get((region, s))
        if hit is None:
            hit = self.models.flow(self._crop(region, s - 1), self._crop(region, s), cues=False)[0]
            self._steps[(region, s)] = hit
        return hit

    def _flow_to_key(self, region: int, key: int, t: int) -> FloatArray | None:
        """Composed flow from frame ``t`` to the key along the chain (None at or before the key)."""
        if t <= key:
            return None
        cached = self._to_key.get((region, key))
        if cached is not None and key < cached[0] <= t:
            s, out = cached
        else:
            s, out = key + 1, self._step_flow(region, key + 1)
        while s < t:  # walk forward (untimed: steps the simulator did not ask for)
            s += 1
            out = compose(self._step_flow(region, s), out)
        self._to_key[(region, key)] = (t, out)
        return out

    def _chain_pair(self, region: int, key: int, t: int) -> tuple[float, dict[str, Counts | None]]:
        # Along a chain the images are the frames themselves, so one flow serves every key encoding.
        prev, cur = self._crop(region, t - 1), self._crop(region, t)
        counts: dict[str, Counts | None] = {}
        inner = self._flow_to_key(region, key, t - 1)
        with pinned(self.core):
            t0 = _clock()
            flow, features = self.models.flow(prev, cur)
            self._time("flow", t0)
            t0 = _clock()
            if inner is not None:  # as the processor: the chain judged against its key
                to_key = compose(flow, inner)
                cues = self.models.dn_cues(self._crop(region, key), cur, to_key)
                features = features if cues is None else cues
            else:
                to_key = flow
            score = float(self.models.dn(features, t - key))
            self._time("dn", t0)
        self._to_key[(region, key)] = (t, to_key)
        for q in self.quants:
            exact = q == "float32"
            logits = self._chain_logits(region, key, t, q)
            with pinned(self.core):
                t0 = _clock()
                warped = warp(logits, flow)
                self._time("warp", t0, exact)
                t0 = _clock()
                labels, _ = labels_from_logits(warped, cur.shape[0], cur.shape[1])
                self._time("labels", t0, exact)
            counts[q] = self._counts(labels, region, t)
            self._chains[(region, key, q)] = (t, warped)
        hit = self._pairs[(region, key, t)] = (score, counts)
        return hit

    def prime(self, policy: str, threshold: float, max_age: int | None = None) -> None:
        """Walk Single's key chain once, so every stage has compute-time samples before simulating."""
        from dvs_cluster.core.policy import DEFAULT_MAX_AGE, make_policy

        pol = make_policy(policy, threshold, max_age=DEFAULT_MAX_AGE if max_age is None else max_age)
        keys: dict[int, int] = {}
        for t in range(self.frames):
            for r in range(self.regions):
                k = keys.get(r)
                if k is None:
                    seg = True
                elif pol.forced(r, t - k) is not None:
                    seg = pol.forced(r, t - k) == "seg"
                elif pol.uses_score:
                    seg = pol.decide(r, t - k, self.score(r, k, t)) == "seg"
                else:
                    seg = pol.decide(r, t - k, None) == "seg"
                    if not seg:
                        self._pair(r, k, t)
                if seg:
                    self._seg_entry(r, t)
                    keys[r] = t
                pol.observe(r, "seg" if seg else "flow")

    def score(self, region: int, key: int, t: int) -> float:
        """DN score (runs flow net + DN once per pair)."""
        return self._pair(region, key, t)[0]

    def seg_counts(self, region: int, t: int) -> Counts | None:
        """Segmentation-path accuracy."""
        return self._seg_entry(region, t)[1]

    def flow_counts(self, region: int, key: int, t: int, quant: str) -> Counts | None:
        """Flow-path accuracy with a key encoded as ``quant``."""
        return self._pair(region, key, t)[1][coarsest(quant)]

    def table(self) -> TableOracle:
        """Everything computed so far, as a table (to save, and for ``plan``)."""
        seg_index = np.array(sorted(self._seg), dtype=np.int64).reshape(-1, 2)
        pair_index = np.array(sorted(self._pairs), dtype=np.int64).reshape(-1, 3)
        zero = np.zeros((3, NUM_CLASSES), np.int64)
        sc = []
        for r, t in seg_index:
            c = self._seg[(int(r), int(t))][1]
            sc.append(zero if c is None else c)
        seg_counts = np.stack(sc) if sc else np.zeros((0, 3, NUM_CLASSES), np.int64)
        scores, pc = [], []
        for p in pair_index:
            score, counts = self._pairs[(int(p[0]), int(p[1]), int(p[2]))]
            scores.append(score)
            pc.append(np.stack([_or(counts.get(q), zero) for q in QUANTS]))
        pair_score = np.array(scores, np.float64)
        pair_counts = np.stack(pc) if pc else np.zeros((0, len(QUANTS), 3, NUM_CLASSES), np.int64)
        return TableOracle(
            self.frames,
            self.regions,
            self.has_gt,
            seg_index,
            seg_counts,
            pair_index,
            pair_score,
            pair_counts,
        )


def _or(counts: Counts | None, default: Counts) -> Counts:
    return default if counts is None else counts


class TableOracle:
    """
    A saved oracle. Pairs never computed fall back to the nearest computed one (documented guess).

    Fallback order for (region, key, t): same region and frame, nearest key age; same region and key
    age, nearest frame; same key age anywhere; same region, nearest age then frame (ties: the older
    key); else score 0 (segmentation path, the safe side).
    """

    def __init__(
        self,
        frames: int,
        regions: int,
        has_gt: bool,
        seg_index: npt.NDArray[np.int64],
        seg_counts: npt.NDArray[np.int64],
        pair_index: npt.NDArray[np.int64],
        pair_score: npt.NDArray[np.float64],
        pair_counts: npt.NDArray[np.int64],
    ) -> None:
        """Arrays as :meth:`ModelOracle.table` builds them."""
        self.frames = frames
        self.regions = regions
        self.has_gt = has_gt
        self.seg_index = seg_index
        self.seg_counts_arr = seg_counts
        self.pair_index = pair_index
        self.pair_score = pair_score
        self.pair_counts = pair_counts
        self._seg = {(int(r), int(t)): i for i, (r, t) in enumerate(seg_index)}
        self._pairs = {(int(r), int(k), int(t)): i for i, (r, k, t) in enumerate(pair_index)}
        self.fallbacks = 0

    def _pair_row(self, region: int, key: int, t: int) -> int | None:
        i = self._pairs.get((region, key, t))
        if i is not None or not len(self.pair_index):
            return i
        self.fallbacks += 1
        age = t - key
        idx = self.pair_index
        ages = idx[:, 2] - idx[:, 1]
        by_age = 2 * np.abs(ages - age) + (ages < age)  # ties go to the older key (lower score)
        for mask, dist in (
            ((idx[:, 0] == region) & (idx[:, 2] == t), by_age),
            ((idx[:, 0] == region) & (ages == age), np.abs(idx[:, 2] - t)),
            (ages == age, np.abs(idx[:, 2] - t)),
            (idx[:, 0] == region, by_age * (self.frames + 1) + np.abs(idx[:, 2] - t)),
        ):
            if mask.any():
                cand = np.flatnonzero(mask)
                return int(cand[np.argmin(dist[cand])])
        return None

    def score(self, region: int, key: int, t: int) -> float:
        """Saved DN score (or the fallback's)."""
        i = self._pair_row(region, key, t)
        return 0.0 if i is None else float(self.pair_score[i])

    def seg_counts(self, region: int, t: int) -> Counts | None:
        """Saved segmentation-path counts (nearest frame of the region if missing)."""
        if not self.has_gt or not len(self.seg_index):
            return None
        i = self._seg.get((region, t))
        if i is None:
            cand = np.flatnonzero(self.seg_index[:, 0] == region)
            if not len(cand):
                return None
            i = int(cand[np.argmin(np.abs(self.seg_index[cand, 1] - t))])
        out: Counts = self.seg_counts_arr[i]
        return out

    def flow_counts(self, region: int, key: int, t: int, quant: str) -> Counts | None:
        """Saved flow-path counts."""
        if not self.has_gt:
            return None
        i = self._pair_row(region, key, t)
        if i is None:
            return self.seg_counts(region, t)
        out: Counts = self.pair_counts[i, QUANTS.index(coarsest(quant))]
        return out

    def save(self, path: Path, meta: dict[str, Any]) -> None:
        """One ``.npz``: the arrays and a JSON ``meta`` (costs, machine, source)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(
            path,
            meta=np.array(
                json.dumps({**meta, "frames": self.frames, "regions": self.regions, "has_gt": self.has_gt})
            ),
            seg_index=self.seg_index,
            seg_counts=self.seg_counts_arr.astype(np.int32),
            pair_index=self.pair_index,
            pair_score=self.pair_score.astype(np.float32),
            pair_counts=self.pair_counts.astype(np.int32),
        )

    @classmethod
    def load(cls, path: Path) -> tuple[TableOracle, dict[str, Any]]:
        """Inverse of :meth:`save`: the oracle and the meta dict."""
        with np.load(path) as z:
            meta: dict[str, Any] = json.loads(str(z["meta"]))
            table = cls(
                int(meta["frames"]),
                int(meta["regions"]),
                bool(meta["has_gt"]),
                z["seg_index"].astype(np.int64),
                z["seg_counts"].astype(np.int64),
                z["pair_index"].astype(np.int64),
                z["pair_score"].astype(np.float64),
                z["pair_counts"].astype(np.int64),
            )
        return table, meta
