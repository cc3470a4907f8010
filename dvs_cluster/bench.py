"""
``dvs-cluster bench``: a Table-II-like comparison of configurations and a DVSNet threshold sweep.

Every configuration runs on the same frames (decoded once, kept in memory, so the source is not
timed). fps counts engine time only. Configurations:

- ``segpath``: segmentation net on every region of every frame (accuracy reference);
- ``single``: DVSNet on one machine at ``--threshold``; ``dynamic``: with DVSNet's adaptive threshold;
- ``fixedK``: a new key every K frames, no decision network;
- ``1+N`` (one master, N slaves) and anything else: looked up in :data:`RUNNERS` by name prefix, where
  the cluster code registers its runner (see :func:`register_runner`).

The JSON shape is stable: ``{"configs": [...], "sweep": [...], "machine": {...}, "command": "..."}``.
"""

from __future__ import annotations

import argparse
import importlib
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

from dvs_cluster.core.policy import DecisionPolicy, DVSNetPolicy, FixedIntervalPolicy, SegPathPolicy
from dvs_cluster.engine import RunStats, SingleEngine
from dvs_cluster.io.sources import Frame, is_synthetic, open_source


class BenchError(RuntimeError):
    """Bad bench configuration (unknown config name, missing optional dependency)."""


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
    models_factory: Callable[[], Any]
    options: dict[str, Any] = field(default_factory=dict)

    _models: Any = None

    @property
    def models(self) -> Any:
        """Models shared by the in-process configurations (created once)."""
        if self._models is None:
            self._models = self.models_factory()
        return self._models


#: A runner turns (config name, context) into a result dict with at least the keys of
#: :func:`result_from_stats` (name, frames, fps, miou, seg_fraction).
Runner = Callable[[str, BenchContext], dict[str, Any]]

#: Extra configuration runners by (lower-case) name prefix; the cluster registers ``"1+"`` here.
RUNNERS: dict[str, Runner] = {}

#: Optional module imported before configs are resolved, so it can call :func:`register_runner`.
RUNNER_HOOK_MODULE = "dvs_cluster.nodes.bench"

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


def _load_runner_hooks() -> None:
    try:
        importlib.import_module(RUNNER_HOOK_MODULE)
    except ModuleNotFoundError as e:
        if e.name != RUNNER_HOOK_MODULE:
            raise


def parse_configs(text: str) -> list[str]:
    """Comma-separated config names; ``1+N`` names kept as they are."""
    names = [c.strip() for c in text.split(",") if c.strip()]
    if not names:
        raise BenchError("no configuration given (e.g. --configs segpath,single,fixed5)")
    for n in names:
        canonical_name(n)  # validates
    return names


def canonical_name(name: str) -> str:
    """Display name of a config: SegPath, Single, Single-dyn, FixedK, 1+N, or a runner's own name."""
    low = name.lower()
    if low == "segpath":
        return "SegPath"
    if low == "single":
        return "Single"
    if low == "dynamic":
        return "Single-dyn"
    m = re.fullmatch(r"fixed(\d+)", low)
    if m and int(m.group(1)) >= 1:
        return f"Fixed{int(m.group(1))}"
    if re.fullmatch(r"1\+\d+", low) or any(low.startswith(p) for p in RUNNERS):
        return name
    raise BenchError(f"unknown config {name!r} (use segpath, single, dynamic, fixedK or 1+N)")


def _policy_for(name: str, threshold: float) -> DecisionPolicy | None:
    low = name.lower()
    if low == "segpath":
        return SegPathPolicy()
    if low == "single":
        return DVSNetPolicy(threshold)
    if low == "dynamic":
        return DVSNetPolicy(threshold, dynamic=True)
    m = re.fullmatch(r"fixed(\d+)", low)
    if m:
        return FixedIntervalPolicy(int(m.group(1)))
    return None


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
        "latency_ms": {k: {"mean": v["mean"], "p50": v["p50"], "p99": v["p99"]} for k, v in lat.items()},
    }
    row.update(extra)
    return row


def run_single(ctx: BenchContext, policy: DecisionPolicy) -> RunStats:
    """The in-process engine over the context's frames."""
    engine = SingleEngine(ctx.models, policy, ctx.width, ctx.height, ctx.rows, ctx.cols, ctx.overlap)
    warm = getattr(ctx.models, "warmup", None)
    if callable(warm):
        r = engine.grid.regions[0]
        warm(r.height, r.width)
    return engine.run(ctx.frames)


def run_config(name: str, ctx: BenchContext) -> dict[str, Any]:
    """Run one configuration by name."""
    display = canonical_name(name)
    policy = _policy_for(name, ctx.threshold)
    if policy is not None:
        extra: dict[str, Any] = {"policy": policy.name}
        if isinstance(policy, DVSNetPolicy):
            extra["threshold"] = policy.threshold
        finishers = [start() for start in RUN_OBSERVERS]
        stats = run_single(ctx, policy)
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


def add_speedups(rows: list[dict[str, Any]], baseline: str = "Single") -> str:
    """Fill ``speedup`` = fps / fps of ``baseline`` (or of the first row if absent); returns the baseline."""
    speeds = [r for r in rows if r.get("kind") != "capacity"]  # a master with echo slaves segments nothing
    base = next((r for r in speeds if r["name"] == baseline), speeds[0] if speeds else None)
    if base is None:
        return baseline
    for r in speeds:
        r["speedup"] = r["fps"] / base["fps"] if base["fps"] else None
    return str(base["name"])


def sweep(ctx: BenchContext, thresholds: Sequence[float], base_fps: float | None) -> list[dict[str, Any]]:
    """DVSNet accuracy/speed trade-off: Single at each threshold."""
    out = []
    for th in thresholds:
        st = run_single(ctx, DVSNetPolicy(th))
        out.append(
            {
                "threshold": th,
                "frames": st.frames,
                "fps": st.fps,
                "miou": st.miou,
                "seg_fraction": st.mix.seg_fraction,
                "speedup": st.fps / base_fps if base_fps else None,
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


def format_table(rows: list[dict[str, Any]], baseline: str) -> str:
    """Plain-text Table-II-like table."""
    lines = [
        f"{'config':<12} {'frames':>6} {'mIoU %':>7} {'fps':>7} {'speedup':>8} {'seg %':>6}",
        "-" * 51,
    ]
    for r in rows:
        seg = r["seg_fraction"] * 100 if r.get("seg_fraction") is not None else None
        sp = f"{r['speedup']:.2f}x" if r.get("speedup") is not None else "-"
        lines.append(
            f"{r['name']:<12} {r['frames']:>6} {_fmt(r['miou'], '7.1f')} {_fmt(r['fps'], '7.2f')} "
            f"{sp:>8} {_fmt(seg, '6.1f')}"
        )
    lines.append(f"(speedup vs {baseline})")
    return "\n".join(lines)


def format_sweep(points: list[dict[str, Any]]) -> str:
    lines = [f"{'threshold':>9} {'mIoU %':>7} {'fps':>7} {'seg %':>6}", "-" * 32]
    for p in points:
        seg = p["seg_fraction"] * 100
        lines.append(f"{p['threshold']:>9g} {_fmt(p['miou'], '7.1f')} {_fmt(p['fps'], '7.2f')} {seg:6.1f}")
    return "\n".join(lines)


MD_BEGIN = "<!-- dvs-cluster bench: begin (generated by `dvs-cluster bench --markdown`; do not edit) -->"
MD_END = "<!-- dvs-cluster bench: end -->"


def markdown_section(report: dict[str, Any], plot: str | None) -> str:
    """The generated BENCHMARKS.md section."""
    m = report["machine"]
    out = [
        MD_BEGIN,
        "",
        f"Command: `{report['command']}`",
        "",
        f"Machine: {m.get('platform')}, {m.get('cpu_count')} CPUs, onnxruntime {m.get('onnxruntime', '?')} "
        f"({', '.join(m.get('providers', []))}, intra-op threads {m.get('intra_op_threads') or 'default'}).",
        "",
        "| config | frames | mIoU % | fps | speedup | seg % |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in report["configs"]:
        sp = f"{r['speedup']:.2f}x" if r.get("speedup") is not None else "-"
        out.append(
            f"| {r['name']} | {r['frames']} | {_fmt(r['miou'], '.1f')} | {_fmt(r['fps'], '.2f')} | {sp} | "
            f"{r['seg_fraction'] * 100:.1f} |"
        )
    out.append("")
    out.append(f"Speed-up vs {report.get('speedup_baseline', 'Single')}; fps counts engine time only.")
    if report["sweep"]:
        out += [
            "",
            "Threshold sweep (Single):",
            "",
            "| threshold | mIoU % | fps | seg % |",
            "|---:|---:|---:|---:|",
        ]
        for p in report["sweep"]:
            out.append(
                f"| {p['threshold']:g} | {_fmt(p['miou'], '.1f')} | {_fmt(p['fps'], '.2f')} | "
                f"{p['seg_fraction'] * 100:.1f} |"
            )
    if plot:
        out += ["", f"![mIoU vs fps]({plot})"]
    if report.get("markdown_extra"):
        out += ["", str(report["markdown_extra"]).rstrip("\n")]
    out += ["", MD_END]
    return "\n".join(out) + "\n"


def update_markdown(path: Path, section: str) -> None:
    """Replace the generated section of ``path`` (or append it; create the file if needed)."""
    text = path.read_text() if path.exists() else "# Benchmarks\n\n"
    if MD_BEGIN in text and MD_END in text:
        head, _, rest = text.partition(MD_BEGIN)
        _, _, tail = rest.partition(MD_END)
        text = head + section.rstrip("\n") + tail
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)


def plot_report(report: dict[str, Any], path: Path) -> None:
    """Plot mIoU vs fps: the threshold sweep as a curve, the configurations as points."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ModuleNotFoundError as e:
        raise BenchError("--plot needs matplotlib: pip install 'dvs_cluster[plot]'") from e
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    pts = sorted((p for p in report["sweep"] if p["miou"] is not None), key=lambda p: p["fps"])
    if pts:
        ax.plot(
            [p["fps"] for p in pts], [p["miou"] for p in pts], "o-", color="tab:blue", label="Single (sweep)"
        )
        place_labels(fig, ax, [(f"{p['threshold']:g}", p["fps"], p["miou"]) for p in pts])
    for r in report["configs"]:
        if r["miou"] is not None:
            ax.plot(r["fps"], r["miou"], "s", label=r["name"])
    ax.set_xlabel("frames per second")
    ax.set_ylabel("mIoU (%)")
    ax.set_title("DVSNet accuracy vs speed")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def place_labels(fig: Any, ax: Any, labels: Sequence[tuple[str, float, float]]) -> list[Any]:
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
    for i, (text, x, y) in enumerate(labels):
        for k in range(len(offsets)):
            dx, dy = offsets[(i + k) % 2 if k < 2 else k]  # alternate above/below along the curve first
            ann = ax.annotate(text, (x, y), textcoords="offset points", xytext=(dx, dy), fontsize=8)
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


def parse_thresholds(text: str) -> list[float]:
    try:
        return [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise BenchError(f"bad --sweep {text!r} (use comma-separated numbers, e.g. 50,70,90)") from None


DEFAULT_SWEEP = "30,50,70,80,90,95"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Bench options (the shared source/model options are added by the CLI)."""
    p.add_argument(
        "--configs", default="segpath,single,fixed5", help="comma-separated: segpath,single,fixed5,1+3"
    )
    p.add_argument(
        "--sweep",
        default=DEFAULT_SWEEP,
        help=f"DN thresholds of the Single mIoU/fps sweep, one Single run each after the configs "
        f"(default {DEFAULT_SWEEP}; '' for none)",
    )
    p.add_argument("--json", metavar="FILE", help="write the results as JSON")
    p.add_argument(
        "--plot",
        metavar="FILE|DIR",
        help="mIoU vs fps plot (PNG/SVG; needs matplotlib); a directory: sweep.png + the hooks' figures",
    )
    p.add_argument(
        "--markdown", metavar="FILE", help="replace the generated section of this file (BENCHMARKS.md)"
    )


def run_bench(
    args: argparse.Namespace, models_factory: Callable[[], Any], argv: Sequence[str]
) -> dict[str, Any]:
    """The whole bench: configs, sweep, outputs; returns the report dict."""
    from dvs_cluster.io.sinks import write_json

    _load_runner_hooks()
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
        threshold=args.threshold if args.threshold is not None else 90.0,
        source=args.source or "synthetic",
        models_factory=models_factory,
        options=vars(args),
    )
    if args.threshold is None:
        ctx.threshold = default_threshold(ctx.models, synthetic=is_synthetic(ctx.source))
    if thresholds:
        default = " (the default; --sweep '' skips it)" if args.sweep == DEFAULT_SWEEP else ""
        print(
            f"bench: {len(names)} config(s), then a threshold sweep of Single at "
            f"{', '.join(f'{t:g}' for t in thresholds)}{default}",
            file=sys.stderr,
            flush=True,
        )
    rows = []
    for name in names:
        print(f"running {canonical_name(name)} on {len(frames)} frames ...", file=sys.stderr, flush=True)
        rows.append(run_config(name, ctx))
    baseline = add_speedups(rows)
    base_fps = next((r["fps"] for r in rows if r["name"] == baseline), None)
    if thresholds:
        print(f"threshold sweep {', '.join(f'{t:g}' for t in thresholds)} ...", file=sys.stderr, flush=True)
    report: dict[str, Any] = {
        "configs": rows,
        "sweep": sweep(ctx, thresholds, base_fps) if thresholds else [],
        "speedup_baseline": baseline,
        "threshold": ctx.threshold,
        "source": ctx.source,
        "frame_size": [args.width, args.height],
        "grid": [args.rows, args.cols],
        "machine": machine_info(ctx.models),
        "command": "dvs-cluster " + shlex.join(list(argv)),
    }
    for hook in REPORT_HOOKS:
        hook(report, ctx)
    print(format_table(rows, baseline))
    if report["sweep"]:
        print()
        print(format_sweep(report["sweep"]))
    if args.json:
        write_json(args.json, report)
        print(f"wrote {args.json}", file=sys.stderr)
    plot_file = plot_path(args.plot) if args.plot else None
    if plot_file:
        plot_report(report, plot_file)
        print(f"wrote {plot_file}", file=sys.stderr)
    if args.markdown:
        md = Path(args.markdown)
        plot_rel = os.path.relpath(plot_file, md.parent) if plot_file else None
        update_markdown(md, markdown_section(report, plot_rel))
        print(f"wrote {md} (generated section)", file=sys.stderr)
    return report


#: Threshold sentinels for "the slave's model default" (MasterConfig, RegionTask.threshold): for real
#: cameras and videos, or for the synthetic video (the master knows its source, the slave its models).
MODEL_DEFAULT = -1.0
MODEL_DEFAULT_SYNTHETIC = -2.0


def default_threshold(models: Any, synthetic: bool = False) -> float:
    """
    The DN threshold a model set records in ``dn.onnx`` metadata, else DVSNet's 90.

    ``default_threshold`` is for real cameras and videos (what a robot gets); ``synthetic_threshold``,
    when present, for the procedural video the DN was fitted on. They differ because the DN, trained on
    synthetic pairs, over-predicts the flow path's agreement on real video (``train/threshold.py``).
    """
    meta = getattr(models, "metadata", {}) or {}
    dn = meta.get("dn", {}) if isinstance(meta, dict) else {}
    raw = (dn.get("synthetic_threshold") if synthetic else None) or dn.get("default_threshold")
    try:
        return float(raw) if raw is not None else 90.0
    except ValueError:
        return 90.0


def resolve_threshold(models: Any, value: float) -> float:
    """A task's threshold: itself when >= 0, else the model default its sentinel names."""
    if value >= 0:
        return value
    return default_threshold(models, synthetic=value == MODEL_DEFAULT_SYNTHETIC)
