"""
``dvs-cluster bench``: a Table-II-like comparison of configurations and a DVSNet threshold sweep.

Every configuration runs on the same frames (decoded once, kept in memory, so the source is not
timed). fps counts engine time only. The in-process configurations and the sweep run interleaved,
one frame each in turn, so a machine whose speed drifts meets them all alike. A source without labels
(a real video) is scored by agreement with SegPath's labels instead of mIoU. Configurations:

- ``segpath``: segmentation net on every region of every frame (accuracy reference);
- ``segpath@S``: the per-frame front, the same net on every region scaled by S first (e.g. 0.5);
- ``single``: DVSNet on one machine at ``--threshold`` with the default flow source and DN;
  ``single:FLOW`` with another flow source (``single:onnx``: the paper's FlowNet-S + DN v1);
  ``dynamic``: with DVSNet's adaptive threshold;
- ``fixedK`` (``fixedK:FLOW``): a new key every K frames, no decision network;
- ``1+N`` (one master, N slaves) and anything else: looked up in :data:`RUNNERS` by name prefix, where
  the cluster code registers its runner (see :func:`register_runner`).

The JSON shape is stable: ``{"configs": [...], "sweep": [...], "machine": {...}, "command": "..."}``.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shlex
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from dvs_cluster.cli_common import CliError
from dvs_cluster.core.policy import DecisionPolicy, DVSNetPolicy, FixedIntervalPolicy, SegPathPolicy
from dvs_cluster.engine import RunStats, SingleEngine, run_interleaved
from dvs_cluster.io.sources import Frame, is_synthetic, open_source
from dvs_cluster.model_defaults import (  # re-exported: the names lived here
    MODEL_DEFAULT as MODEL_DEFAULT,
)
from dvs_cluster.model_defaults import (
    MODEL_DEFAULT_SYNTHETIC as MODEL_DEFAULT_SYNTHETIC,
)
from dvs_cluster.model_defaults import (
    default_threshold as default_threshold,
)
from dvs_cluster.model_defaults import (
    resolve_threshold as resolve_threshold,
)


class BenchError(CliError):
    """Bad bench configuration (unknown config name, missing optional dependency): a user error."""


@dataclass
class BenchContext:
    """What a configuration runner gets: the frames, the settings and a models factory."""

    frames: list[Frame]
    width: int
    height: int
    rows: int
    cols: int
    overlap: int
    threshold: float
    source: str
    models_factory: Callable[..., Any]
    options: dict[str, Any] = field(default_factory=dict)
    #: Quality axis: "miou" against ground truth, or "agreement" with SegPath's labels (no labels).
    quality: str = "miou"

    @property
    def max_age(self) -> int:
        """The DVSNet rule's key-age cap (``--max-age``, else the default)."""
        from dvs_cluster.core.policy import DEFAULT_MAX_AGE

        v = self.options.get("max_age")
        return DEFAULT_MAX_AGE if v is None else int(v)

    def propagate_for(self, models: Any) -> bool:
        """Whether the flow path warps the previous output with ``models`` (``--warp-from``)."""
        from dvs_cluster.inference import propagate_for

        return propagate_for(str(self.options.get("warp_from") or "auto"), getattr(models, "models", models))

    _models: dict[str, Any] = field(default_factory=dict)

    @property
    def models(self) -> Any:
        """Models of the default flow source, shared by the in-process configurations (created once)."""
        return self.models_for(None)

    def models_for(self, flow: str | None) -> Any:
        """Models with the flow source ``flow`` (None: the command's), each set created once."""
        key = flow or ""
        if key not in self._models:
            self._models[key] = self.models_factory(flow=flow) if flow else self.models_factory()
        return self._models[key]

    def threshold_for(self, models: Any) -> float:
        """``--threshold``, else the default the DN of ``models`` records for this source."""
        given = self.options.get("threshold")
        if given is not None:
            return float(given)
        return default_threshold(models, synthetic=is_synthetic(self.source))


#: A runner turns (config name, context) into a result dict with at least the keys of
#: :func:`result_from_stats` (name, frames, fps, miou, seg_fraction).
Runner = Callable[[str, BenchContext], dict[str, Any]]

#: Extra configuration runners by (lower-case) name prefix; the cluster registers ``"1+"`` here.
RUNNERS: dict[str, Runner] = {}

#: Called as ``hook(report, ctx)`` after every config ran, before anything is written or printed; the
#: cluster's hook module adds its simulator validation, figures and Markdown (``report["markdown_extra"]``).
ReportHook = Callable[[dict[str, Any], BenchContext], None]
REPORT_HOOKS: list[ReportHook] = []
#: Around each in-process config: ``start()`` before it runs returns ``finish()``, whose dict is added
#: to the row (the cluster's hook module records the load other jobs put on the machine meanwhile).
RUN_OBSERVERS: list[Callable[[], Callable[[], dict[str, Any]]]] = []


def register_runner(prefix: str, runner: Runner) -> None:
    """Make configs whose name starts with ``prefix`` (case-insensitive) run through ``runner``."""
    RUNNERS[prefix.lower()] = runner


def parse_configs(text: str) -> list[str]:
    """Comma-separated config names; ``1+N`` names kept as they are."""
    names = [c.strip() for c in text.split(",") if c.strip()]
    if not names:
        raise BenchError("no configuration given (e.g. --configs segpath,single,fixed5)")
    for n in names:
        canonical_name(n)  # validates
    return names


#: ``single``, ``dynamic``, ``fixedK``, each with an optional ``:FLOW`` (a flow source, e.g. ``onnx``).
_IN_PROCESS = re.compile(r"(single|dynamic|fixed(\d+))(?::(.+))?")
_SEGPATH = re.compile(r"segpath(?:@([0-9.]+))?")


@dataclass(frozen=True)
class InProcess:
    """An in-process config: its policy kind, flow source (None: the default) and seg scale."""

    kind: str  # segpath | single | dynamic | fixed
    flow: str | None = None
    k: int = 0
    scale: float = 1.0


def parse_in_process(name: str) -> InProcess | None:
    """The in-process config a name stands for, None for runner configs; BenchError if malformed."""
    from dvs_cluster.core.flow import FlowSpecError, canonical_flow_spec

    low = name.strip().lower()
    m = _SEGPATH.fullmatch(low)
    if m:
        scale = float(m.group(1)) if m.group(1) else 1.0
        if not 0.0 < scale <= 1.0:
            raise BenchError(f"config {name!r}: the seg scale must be in (0, 1], e.g. segpath@0.5")
        return InProcess("segpath", scale=scale)
    m = _IN_PROCESS.fullmatch(low)
    if not m:
        return None
    flow = None
    if m.group(3):
        try:
            flow = canonical_flow_spec(m.group(3))
        except FlowSpecError as e:
            raise BenchError(f"config {name!r}: {e}") from None
    if m.group(2):
        k = int(m.group(2))
        if k < 1:
            raise BenchError(f"config {name!r}: the key interval must be >= 1")
        return InProcess("fixed", flow, k)
    return InProcess(m.group(1), flow)


def canonical_name(name: str) -> str:
    """Display name: SegPath[@S], Single[FLOW], Single-dyn[FLOW], FixedK[FLOW], 1+N, a runner's own."""
    cfg = parse_in_process(name)
    if cfg is not None:
        base = {"segpath": "SegPath", "single": "Single", "dynamic": "Single-dyn"}.get(
            cfg.kind, f"Fixed{cfg.k}"
        )
        if cfg.scale != 1.0:
            base += f"@{cfg.scale:g}"
        return base + (f"[{cfg.flow}]" if cfg.flow else "")
    low = name.lower()
    if re.fullmatch(r"1\+\d+", low) or any(low.startswith(p) for p in RUNNERS):
        return name
    raise BenchError(
        f"unknown config {name!r} (use segpath[@S], single[:FLOW], dynamic, fixedK[:FLOW] or 1+N)"
    )


def _policy_for(cfg: InProcess, threshold: float, max_age: int) -> DecisionPolicy:
    if cfg.kind == "segpath":
        return SegPathPolicy()
    if cfg.kind == "single":
        return DVSNetPolicy(threshold, max_age=max_age)
    if cfg.kind == "dynamic":
        return DVSNetPolicy(threshold, dynamic=True, max_age=max_age)
    return FixedIntervalPolicy(cfg.k)


class ScaledSeg:
    """
    The per-frame front: the seg net on the region scaled by ``scale``, logits resized back.

    Same ``Models`` interface; only :meth:`seg` differs (flow and DN pass through, unused by SegPath).
    """

    def __init__(self, models: Any, scale: float) -> None:
        self.models = models
        self.scale = scale

    def seg(self, image: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        import cv2

        from dvs_cluster.core.processor import logit_grid

        h, w = image.shape[:2]
        small = cv2.resize(
            image,
            (max(4, round(w * self.scale)), max(4, round(h * self.scale))),
            interpolation=cv2.INTER_AREA,
        )
        logits = self.models.seg(small)
        gh, gw = logit_grid(h, w)
        hwc = np.ascontiguousarray(logits.transpose(1, 2, 0))
        up = cv2.resize(hwc, (gw, gh), interpolation=cv2.INTER_LINEAR)
        return np.ascontiguousarray(up.reshape(gh, gw, -1).transpose(2, 0, 1), dtype=np.float32)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.models, name)


def result_from_stats(name: str, stats: RunStats, **extra: Any) -> dict[str, Any]:
    """One row of ``configs`` from a run's statistics."""
    lat = stats.latency.summary()
    row: dict[str, Any] = {
        "name": name,
        "frames": stats.frames,
        "fps": stats.fps,
        "miou": stats.miou,
        "speedup": None,
        "seg_fraction": stats.mix.seg_fraction,
        "agreement": stats.confusion.pixel_accuracy() if stats.has_gt else None,
        "latency_ms": {k: {"mean": v["mean"], "p50": v["p50"], "p99": v["p99"]} for k, v in lat.items()},
    }
    row.update(extra)
    return row


def single_engine(ctx: BenchContext, policy: DecisionPolicy, models: Any = None) -> SingleEngine:
    """A warmed-up in-process engine over the context's grid (``models``: the default set if None)."""
    models = ctx.models if models is None else models
    engine = SingleEngine(
        models, policy, ctx.width, ctx.height, ctx.rows, ctx.cols, ctx.overlap, ctx.propagate_for(models)
    )
    warm = getattr(models, "warmup", None)
    if callable(warm):
        r = engine.grid.regions[0]
        warm(r.height, r.width)
    return engine


def config_models(cfg: InProcess, ctx: BenchContext) -> Any:
    """The models an in-process config runs with."""
    models = ctx.models_for(cfg.flow)
    return ScaledSeg(models, cfg.scale) if cfg.scale != 1.0 else models


@dataclass
class InProcessRun:
    """An in-process configuration ready to run: its engine and the row fields known before it runs."""

    display: str
    engine: SingleEngine
    extra: dict[str, Any]


def prepare_in_process(name: str, ctx: BenchContext) -> InProcessRun | None:
    """The engine of an in-process config (None for a config another runner handles)."""
    cfg = parse_in_process(name)
    if cfg is None:
        return None
    models = config_models(cfg, ctx)
    policy = _policy_for(cfg, ctx.threshold_for(models), ctx.max_age)
    extra: dict[str, Any] = {"policy": policy.name, "kind": "per-frame" if cfg.kind == "segpath" else "dvs"}
    if cfg.kind != "segpath":
        extra["flow"] = getattr(models, "flow_source", None)
        extra["dn"] = getattr(models, "dn_version", None)
    if cfg.scale != 1.0:
        extra["seg_scale"] = cfg.scale
    if isinstance(policy, DVSNetPolicy):
        extra["threshold"] = policy.threshold
    return InProcessRun(canonical_name(name), single_engine(ctx, policy, models), extra)


def run_config(name: str, ctx: BenchContext) -> dict[str, Any]:
    """Run one configuration by name, on its own."""
    display = canonical_name(name)
    prepared = prepare_in_process(name, ctx)
    if prepared is not None:
        finishers = [start() for start in RUN_OBSERVERS]
        stats = prepared.engine.run(ctx.frames)
        extra = dict(prepared.extra)
        for finish in finishers:
            extra.update(finish())
        return result_from_stats(display, stats, **extra)
    low = name.lower()
    for prefix in sorted(RUNNERS, key=len, reverse=True):
        if low.startswith(prefix):
            row = RUNNERS[prefix](name, ctx)
            row.setdefault("name", display)
            return row
    raise BenchError(
        f"config {name!r} needs the cluster runner, which is not installed "
        f"(register one with dvs_cluster.bench.register_runner('1+', ...))"
    )


def run_in_process(
    names: Sequence[str],
    ctx: BenchContext,
    thresholds: Sequence[SweepPoint],
    flows: Sequence[str | None],
) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """
    The in-process configs among ``names`` and the threshold sweep, interleaved frame by frame.

    Returns (row by config name, sweep points without speed-ups). One run for all of them, so their
    fps ratios compare configurations on the same machine state (:func:`engine.run_interleaved`).
    """
    prepared = {n: p for n in names if (p := prepare_in_process(n, ctx)) is not None}
    points: list[tuple[dict[str, Any], SingleEngine]] = []
    for flow in flows:
        models = ctx.models_for(flow)
        for th, cap in thresholds:
            age = ctx.max_age if cap is None else cap
            point = {"flow": getattr(models, "flow_source", None), "threshold": th, "max_age": age}
            points.append((point, single_engine(ctx, DVSNetPolicy(th, max_age=age), models)))
    engines = [p.engine for p in prepared.values()] + [e for _, e in points]
    if not engines:
        return {}, []
    finishers = [start() for start in RUN_OBSERVERS]
    stats = run_interleaved(engines, ctx.frames)
    observed: dict[str, Any] = {}
    for finish in finishers:
        observed.update(finish())
    rows = {
        n: result_from_stats(p.display, st, **p.extra, **observed)
        for (n, p), st in zip(prepared.items(), stats[: len(prepared)], strict=True)
    }
    out = []
    for (point, _), st in zip(points, stats[len(prepared) :], strict=True):
        point.update(
            frames=st.frames,
            fps=st.fps,
            miou=st.miou,
            agreement=st.confusion.pixel_accuracy() if st.has_gt else None,
            seg_fraction=st.mix.seg_fraction,
        )
        out.append(point)
    return rows, out


def add_speedups(rows: list[dict[str, Any]], baseline: str = "Single") -> str:
    """Fill ``speedup`` = fps / fps of ``baseline`` (or of the first row if absent); returns the baseline."""
    speeds = [r for r in rows if r.get("kind") != "capacity"]  # a master with echo slaves segments nothing
    base = next((r for r in speeds if r["name"] == baseline), speeds[0] if speeds else None)
    if base is None:
        return baseline
    for r in speeds:
        r["speedup"] = r["fps"] / base["fps"] if base["fps"] else None
    return str(base["name"])


def reference_labels(ctx: BenchContext) -> list[Frame]:
    """
    The frames with SegPath's labels as their ground truth, the bars of a letterbox ignored (255).

    For a source without labels (real video): every config is then scored against the big seg net on
    every region, the quality DVS trades for speed.
    """
    from dataclasses import replace

    from dvs_cluster.core.classes import IGNORE_LABEL

    labels: list[npt.NDArray[np.uint8]] = []
    single_engine(ctx, SegPathPolicy()).run(ctx.frames, on_frame=lambda _f, res: labels.append(res.labels))
    out = []
    for f, lab in zip(ctx.frames, labels, strict=True):
        ref = np.full_like(lab, IGNORE_LABEL)
        ox, oy, cw, ch = f.transform.content
        ref[oy : oy + ch, ox : ox + cw] = lab[oy : oy + ch, ox : ox + cw]
        out.append(replace(f, labels=ref))
    return out


def quality(row: dict[str, Any], axis: str) -> float | None:
    """A row's value on the quality axis (``miou`` or ``agreement``), in percent."""
    v = row.get(axis)
    return None if v is None else float(v)


def upper_front(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The (fps, quality) points no other point beats on both, by fps."""
    front: list[tuple[float, float]] = []
    for x, y in sorted(points, key=lambda p: (-p[0], -p[1])):
        if not front or y > front[-1][1]:
            front.append((x, y))
    return sorted(front)


def front_check(report: dict[str, Any]) -> list[dict[str, Any]]:
    """
    DVS against the per-frame front: at each per-frame net's fps, each DVS curve's quality.

    The DVS curve is the upper front of its sweep (and its configured rows), linearly interpolated;
    ``margin`` = DVS quality - the per-frame net's (positive: DVS lies above). ``None`` where the
    curve does not reach that fps.
    """
    axis = report.get("quality", "miou")
    curves: dict[str, list[tuple[float, float]]] = {}
    for p in report["sweep"]:
        q = quality(p, axis)
        if q is not None:
            curves.setdefault(str(p["flow"]), []).append((p["fps"], q))
    for r in report["configs"]:
        q = quality(r, axis)
        if r.get("kind") == "dvs" and r.get("flow") and q is not None:
            curves.setdefault(str(r["flow"]), []).append((r["fps"], q))
    out = []
    for r in report["configs"]:
        q = quality(r, axis)
        if r.get("kind") != "per-frame" or q is None:
            continue
        for flow, pts in curves.items():
            front = upper_front(pts)
            xs = [x for x, _ in front]
            dvs = (
                float(np.interp(r["fps"], xs, [y for _, y in front])) if xs[0] <= r["fps"] <= xs[-1] else None
            )
            out.append(
                {
                    "per_frame": r["name"],
                    "fps": r["fps"],
                    "quality": q,
                    "flow": flow,
                    "dvs_quality": dvs,
                    "margin": None if dvs is None else dvs - q,
                }
            )
    return out


def machine_info(models: Any) -> dict[str, Any]:
    """Where the numbers come from."""
    import numpy as np

    info: dict[str, Any] = {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or None,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
    }
    describe = getattr(models, "describe", None)
    if callable(describe):
        d = describe()
        d.pop("metadata", None)
        info.update(d)
    return info


def _fmt(v: float | None, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def axis_label(axis: str) -> str:
    return "mIoU %" if axis == "miou" else "agree %"


def format_table(rows: list[dict[str, Any]], baseline: str, axis: str = "miou") -> str:
    """Plain-text Table-II-like table (quality: mIoU, or agreement with SegPath without labels)."""
    w = max([16, *(len(r["name"]) for r in rows)])
    lines = [
        f"{'config':<{w}} {'frames':>6} {axis_label(axis):>8} {'fps':>7} {'speedup':>8} {'seg %':>6}",
        "-" * (w + 40),
    ]
    for r in rows:
        seg = r["seg_fraction"] * 100 if r.get("seg_fraction") is not None else None
        sp = f"{r['speedup']:.2f}x" if r.get("speedup") is not None else "-"
        lines.append(
            f"{r['name']:<{w}} {r['frames']:>6} {_fmt(quality(r, axis), '8.1f')} {_fmt(r['fps'], '7.2f')} "
            f"{sp:>8} {_fmt(seg, '6.1f')}"
        )
    lines.append(f"(speedup vs {baseline})")
    return "\n".join(lines)


def format_sweep(points: list[dict[str, Any]], axis: str = "miou") -> str:
    lines = [
        f"{'flow':<16} {'threshold':>9} {'cap':>4} {axis_label(axis):>8} {'fps':>7} {'seg %':>6}",
        "-" * 55,
    ]
    for p in points:
        seg = p["seg_fraction"] * 100
        lines.append(
            f"{str(p.get('flow')):<16} {p['threshold']:>9g} {_cap(p):>4} {_fmt(quality(p, axis), '8.1f')} "
            f"{_fmt(p['fps'], '7.2f')} {seg:6.1f}"
        )
    return "\n".join(lines)


def _cap(point: dict[str, Any]) -> str:
    """A sweep point's key-age cap as printed ("-": none; reports before caps were recorded: "?")."""
    cap = point.get("max_age")
    return "?" if cap is None else (str(cap) if cap else "-")


MD_BEGIN = "<!-- dvs-cluster bench: begin (generated by `dvs-cluster bench --markdown`; do not edit) -->"
MD_END = "<!-- dvs-cluster bench: end -->"


def markers(name: str | None) -> tuple[str, str]:
    """Begin/end markers of a generated section; ``--markdown FILE#NAME`` keeps several in one file."""
    if not name:
        return MD_BEGIN, MD_END
    return MD_BEGIN.replace("bench:", f"bench {name}:"), MD_END.replace("bench:", f"bench {name}:")


def markdown_section(report: dict[str, Any], plot: str | None, name: str | None = None) -> str:
    """The generated BENCHMARKS.md section (``name``: which of several in one file)."""
    md_begin, md_end = markers(name)
    m = report["machine"]
    axis = report.get("quality", "miou")
    q = "mIoU %" if axis == "miou" else "agreement with SegPath %"
    th = m.get("threads") or {}
    out = [
        md_begin,
        "",
        f"Command: `{report['command']}`",
        "",
        f"Machine: {m.get('platform')}, {m.get('cpu_count')} CPUs, onnxruntime {m.get('onnxruntime', '?')} "
        f"({', '.join(m.get('providers', []))}, intra-op threads {m.get('intra_op_threads') or 'default'}"
        f"{', no spinning' if th and not th.get('spinning') else ''}). Source `{report.get('source')}`; "
        f"default flow source `{m.get('flow_source', '?')}`, DN {m.get('dn', '?')}.",
        "",
        f"| config | frames | {q} | fps | speedup | seg % |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in report["configs"]:
        sp = f"{r['speedup']:.2f}x" if r.get("speedup") is not None else "-"
        out.append(
            f"| {r['name']} | {r['frames']} | {_fmt(quality(r, axis), '.1f')} | {_fmt(r['fps'], '.2f')} | "
            f"{sp} | {r['seg_fraction'] * 100:.1f} |"
        )
    out.append("")
    out.append(f"Speed-up vs {report.get('speedup_baseline', 'Single')}; fps counts engine time only.")
    if report["sweep"]:
        out += [
            "",
            "Threshold sweep (Single, per flow source):",
            "",
            f"| flow | threshold | key-age cap | {q} | fps | seg % |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for p in report["sweep"]:
            out.append(
                f"| {p.get('flow')} | {p['threshold']:g} | {_cap(p)} | {_fmt(quality(p, axis), '.1f')} | "
                f"{_fmt(p['fps'], '.2f')} | {p['seg_fraction'] * 100:.1f} |"
            )
    if report.get("front_check"):
        out += [
            "",
            "DVS against the per-frame front (the DVS curve interpolated at each per-frame net's fps):",
            "",
        ]
        out += [
            f"| per-frame net | fps | {q} | flow | DVS at that fps | margin |",
            "|---|---:|---:|---|---:|---:|",
        ]
        for c in report["front_check"]:
            out.append(
                f"| {c['per_frame']} | {c['fps']:.2f} | {c['quality']:.1f} | {c['flow']} | "
                f"{_fmt(c['dvs_quality'], '.1f')} | {_fmt(c['margin'], '+.1f')} |"
            )
    if plot:
        out += ["", f"![{q} vs fps]({plot})"]
    if report.get("markdown_extra"):
        out += ["", str(report["markdown_extra"]).rstrip("\n")]
    out += ["", md_end]
    return "\n".join(out) + "\n"


def update_markdown(path: Path, section: str, name: str | None = None) -> None:
    """Replace the generated section ``name`` of ``path`` (or append it; create the file if needed)."""
    md_begin, md_end = markers(name)
    text = path.read_text() if path.exists() else "# Benchmarks\n\n"
    if md_begin in text and md_end in text:
        head, _, rest = text.partition(md_begin)
        _, _, tail = rest.partition(md_end)
        text = head + section.rstrip("\n") + tail
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)


def plot_report(report: dict[str, Any], path: Path) -> None:
    """Quality vs fps: DVS sweeps per flow source, the per-frame front, the other configs as points."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ModuleNotFoundError as e:
        raise BenchError("--plot needs matplotlib: pip install 'dvs_cluster[plot]'") from e
    axis = report.get("quality", "miou")
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    labels: list[tuple[str, float, float, str]] = []
    # One curve per flow source and key-age cap: the cap is the sweep's second knob.
    curves = sorted({(str(p.get("flow")), _cap(p)) for p in report["sweep"]})
    colours = ["tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown", "tab:cyan"]
    several_caps = len({cap for _, cap in curves}) > 1
    for i, (flow, cap) in enumerate(curves):
        pts: list[tuple[float, float, float]] = sorted(
            (p["fps"], v, p["threshold"])
            for p in report["sweep"]
            if (str(p.get("flow")), _cap(p)) == (flow, cap) and (v := quality(p, axis)) is not None
        )
        if not pts:
            continue
        c = colours[i % len(colours)]
        name = f"DVS, flow {flow}" + (f", cap {cap}" if several_caps else "")
        ax.plot([t[0] for t in pts], [t[1] for t in pts], "o-", color=c, label=f"{name} (sweep)")
        labels += [(f"{th:g}", x, y, c) for x, y, th in pts]
    front: list[tuple[float, float, str]] = sorted(
        (r["fps"], v, r["name"])
        for r in report["configs"]
        if r.get("kind") == "per-frame" and (v := quality(r, axis)) is not None
    )
    if front:
        ax.plot([t[0] for t in front], [t[1] for t in front], "s--", color="black", label="per-frame")
        labels += [(name, x, y, "black") for x, y, name in front]
    place_labels(fig, ax, labels)
    for r in report["configs"]:
        v = quality(r, axis)
        if r.get("kind") not in ("per-frame", "capacity") and v is not None:
            ax.plot(r["fps"], v, "D", label=r["name"])
    ax.set_xlabel("frames per second (engine)")
    ax.set_ylabel("mIoU (%)" if axis == "miou" else "agreement with SegPath (%)")
    ax.set_title(f"DVS accuracy vs speed ({report.get('source', '')})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def place_labels(fig: Any, ax: Any, labels: Sequence[tuple[str, float, float, str]]) -> list[Any]:
    """
    Annotate points so that no two labels overlap; returns the annotations drawn.

    Above-right and below-right of the point alternate along the curve, then the left side is tried;
    a label that fits nowhere is left out (its neighbours carry the curve), never drawn over another.
    """
    fig.canvas.draw()  # a renderer for the text extents
    renderer = fig.canvas.get_renderer()
    offsets = ((4, 4), (4, -12), (-14, 4), (-14, -12))
    placed: list[Any] = []
    boxes: list[Any] = []
    for i, (text, x, y, colour) in enumerate(labels):
        for k in range(len(offsets)):
            dx, dy = offsets[(i + k) % 2 if k < 2 else k]  # alternate above/below along the curve first
            ann = ax.annotate(
                text, (x, y), textcoords="offset points", xytext=(dx, dy), fontsize=7, color=colour
            )
            box = ann.get_window_extent(renderer).expanded(1.1, 1.2)
            if not any(box.overlaps(b) for b in boxes):
                placed.append(ann)
                boxes.append(box)
                break
            ann.remove()
    return placed


def plot_path(plot: str) -> Path:
    """``--plot`` as a file: a directory (existing, or a name without suffix) holds ``sweep.png``."""
    p = Path(plot)
    return p / "sweep.png" if p.is_dir() or not p.suffix else p


#: One sweep point: a DN threshold and a key-age cap (None: the run's ``--max-age`` or the default).
SweepPoint = tuple[float, int | None]


def parse_thresholds(text: str) -> list[SweepPoint]:
    """``--sweep``: comma-separated ``THRESHOLD`` or ``THRESHOLD:CAP`` (``94:3``: threshold 94, cap 3)."""
    out: list[SweepPoint] = []
    for item in (t.strip() for t in text.split(",")):
        if not item:
            continue
        th, sep, cap = item.partition(":")
        try:
            point = (float(th), int(cap) if sep else None)
        except ValueError:
            raise BenchError(
                f"bad --sweep entry {item!r} (use THRESHOLD or THRESHOLD:CAP, e.g. 50,70,90 or 94:3)"
            ) from None
        if point[1] is not None and point[1] < 0:
            raise BenchError(f"bad --sweep entry {item!r} (the key-age cap is >= 0; 0: no cap)")
        out.append(point)
    return out


DEFAULT_SWEEP = "70,80,85,90,95"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Bench options (the shared source/model options are added by the CLI)."""
    p.add_argument(
        "--configs",
        default="segpath,single,fixed5",
        help="comma-separated: segpath, segpath@S (per-frame front), single, single:FLOW (e.g. "
        "single:onnx), dynamic, fixedK, 1+N[:opts] (default segpath,single,fixed5)",
    )
    p.add_argument(
        "--sweep",
        default=DEFAULT_SWEEP,
        help=f"DN thresholds of the Single quality/fps sweep, run after the configs for each single[:FLOW] "
        f"config's flow source; THRESHOLD:CAP also sets the key-age cap of that point (94:3), else "
        f"--max-age (default {DEFAULT_SWEEP}; '' for none)",
    )
    p.add_argument("--json", metavar="FILE", help="write the results as JSON")
    p.add_argument(
        "--plot",
        metavar="FILE|DIR",
        help="quality vs fps plot (PNG/SVG; needs matplotlib); a directory: sweep.png + the hooks' figures",
    )
    p.add_argument(
        "--markdown",
        metavar="FILE[#NAME]",
        help="replace the generated section of this file (BENCHMARKS.md); #NAME picks one of several",
    )


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run_bench(
    args: argparse.Namespace, models_factory: Callable[..., Any], argv: Sequence[str]
) -> dict[str, Any]:
    """The whole bench: configs, sweep, outputs; returns the report dict."""
    from dvs_cluster.io.sinks import write_json

    names = parse_configs(args.configs)
    thresholds = parse_thresholds(args.sweep)
    n = args.frames if args.frames is not None else 60
    with open_source(args.source, args.width, args.height, args.resize, n) as src:
        frames = list(islice(iter(src), n))
    if not frames:
        raise BenchError(f"source {args.source} gave no frames")
    ctx = BenchContext(
        frames=frames,
        width=args.width,
        height=args.height,
        rows=args.rows,
        cols=args.cols,
        overlap=args.overlap,
        threshold=90.0,
        source=args.source or "synthetic",
        models_factory=models_factory,
        options=vars(args),
    )
    ctx.threshold = ctx.threshold_for(ctx.models)
    if all(f.labels is None for f in frames):
        _say(f"{ctx.source} has no labels: scoring every config by its agreement with SegPath ...")
        ctx.frames = reference_labels(ctx)
        ctx.quality = "agreement"
    flows: list[str | None] = []
    for name in names:
        cfg = parse_in_process(name)
        if cfg is not None and cfg.kind == "single" and cfg.flow not in flows:
            flows.append(cfg.flow)
    flows = flows or [None]
    local = [canonical_name(n) for n in names if parse_in_process(n) is not None]
    if local:
        _say(f"running {', '.join(local)} on {len(frames)} frames, interleaved frame by frame ...")
    if thresholds:
        srcs = ", ".join(str(getattr(ctx.models_for(f), "flow_source", f or "default")) for f in flows)
        ths = ", ".join(f"{t:g}" + ("" if c is None else f" (cap {c})") for t, c in thresholds)
        default = " (the default; --sweep '' skips it)" if args.sweep == DEFAULT_SWEEP else ""
        _say(f"  with the threshold sweep {ths} of Single for flow {srcs}{default}")
    in_process, points = run_in_process(names, ctx, thresholds, flows)
    rows = []
    for name in names:
        if name in in_process:
            rows.append(in_process[name])
        else:
            _say(f"running {canonical_name(name)} on {len(frames)} frames ...")
            rows.append(run_config(name, ctx))
    baseline = add_speedups(rows)
    base_fps = next((r["fps"] for r in rows if r["name"] == baseline), None)
    for point in points:
        point["speedup"] = point["fps"] / base_fps if base_fps else None
    report: dict[str, Any] = {
        "configs": rows,
        "sweep": points,
        "speedup_baseline": baseline,
        "threshold": ctx.threshold,
        "quality": ctx.quality,
        "source": ctx.source,
        "frame_size": [args.width, args.height],
        "grid": [args.rows, args.cols],
        "machine": machine_info(ctx.models),
        "command": "dvs-cluster " + shlex.join(list(argv)),
        "in_process": "interleaved frame by frame",
    }
    report["front_check"] = front_check(report)
    for hook in REPORT_HOOKS:
        hook(report, ctx)
    print(format_table(rows, baseline, ctx.quality))
    if report["sweep"]:
        print()
        print(format_sweep(report["sweep"], ctx.quality))
    if args.json:
        write_json(args.json, report)
        _say(f"wrote {args.json}")
    plot_file = plot_path(args.plot) if args.plot else None
    if plot_file:
        plot_report(report, plot_file)
        _say(f"wrote {plot_file}")
    if args.markdown:
        file, _, section = str(args.markdown).partition("#")
        md = Path(file)
        plot_rel = os.path.relpath(plot_file, md.parent) if plot_file else None
        update_markdown(md, markdown_section(report, plot_rel, section or None), section or None)
        _say(f"updated {md}" + (f" (section {section})" if section else ""))
    return report
