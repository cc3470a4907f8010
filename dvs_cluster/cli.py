"""
The ``dvs-cluster`` command: ``segment`` (Single), ``bench``, ``train`` and the cluster's commands.

A thin shell over the engine: errors a user can fix (bad source, missing model, unwritable output, bad
option) print one line on stderr and exit with status 2, without a traceback. Subcommands set
``func(args) -> int`` with ``set_defaults``; the cluster package adds its own through
``dvs_cluster.nodes.cli.register(subparsers)`` and ``dvs_cluster.sim.cli.register(subparsers)``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dvs_cluster import __version__, validate
from dvs_cluster.cli_common import (
    DOMAIN_NOTE,
    PROG,
    SAVE_OVERLAY_HELP,
    CliError,
    Parser,
    _nonneg_int,
    _positive_int,
    add_max_age_option,
    add_model_options,
    add_net_options,
    add_record_option,
    add_source_options,
    domain_note,
    frame_sinks,
    make_models_factory,
    models_from_args,
    net_argv,
    note,
    overlay_sink,
    run_command,
)

# The shared pieces live in cli_common (below the command modules); these names stay importable here.
__all__ = [
    "DOMAIN_NOTE",
    "PROG",
    "SAVE_OVERLAY_HELP",
    "add_max_age_option",
    "add_model_options",
    "add_net_options",
    "add_record_option",
    "add_source_options",
    "CliError",
    "domain_note",
    "frame_sinks",
    "make_models_factory",
    "models_from_args",
    "net_argv",
    "_nonneg_int",
    "note",
    "overlay_sink",
    "Parser",
    "_positive_int",
    "build_parser",
    "main",
]


def cmd_segment(args: argparse.Namespace) -> int:
    """Run Single over a source and write the requested outputs."""
    from dvs_cluster.core.policy import make_policy, policy_spec
    from dvs_cluster.engine import Progress, SingleEngine
    from dvs_cluster.inference import propagate_for
    from dvs_cluster.io.sinks import Sink, VideoSink, write_json
    from dvs_cluster.io.sources import is_synthetic, open_source
    from dvs_cluster.model_defaults import default_threshold

    out = Path(args.out) if args.out else None
    labels_dir = args.save_labels or (out / "labels" if out else None)
    overlay_dir = args.save_overlay or (out / "overlay" if out else None)
    json_path = args.json or (out / "stats.json" if out else None)
    gt_dir = args.save_gt or (out / "gt" if out else None)
    try:
        validate.check_grid(args.width, args.height, args.rows, args.cols, args.overlap)
    except ValueError as e:
        raise CliError(str(e)) from None

    models = make_models_factory(args)()
    synthetic = is_synthetic(args.source)
    threshold = args.threshold if args.threshold is not None else default_threshold(models, synthetic)
    try:
        policy = make_policy(policy_spec(args.policy, args.max_age), threshold=threshold)
    except ValueError as e:
        raise CliError(str(e)) from None
    source = open_source(args.source, args.width, args.height, args.resize, args.frames, topic=args.topic)
    with source:
        if args.save_gt and not source.has_labels:
            raise CliError(f"--save-gt: source {source.name} has no ground truth (only synthetic has)")
        domain_note(args.source, args.models, args.quiet)
        dirs: list[tuple[Any, str]] = []
        if labels_dir:
            dirs.append((labels_dir, "labels"))
        if gt_dir and source.has_labels:
            dirs.append((gt_dir, "gt"))
        if args.save_color:
            dirs.append((args.save_color, "color"))
        sinks: list[Sink] = frame_sinks(dirs, args.quiet)
        if overlay_dir:
            sinks.append(overlay_sink(str(overlay_dir), source.fps, args.quiet))
        if args.video:
            sinks.append(VideoSink(args.video, source.fps, "overlay"))
        recorder = None
        if args.record:
            from dvs_cluster.io.bag import BagRecorder

            recorder = BagRecorder(args.record, source)
            sinks.append(recorder)
        try:
            engine = SingleEngine(
                models,
                policy,
                args.width,
                args.height,
                args.rows,
                args.cols,
                args.overlap,
                propagate=propagate_for(args.warp_from, models),
            )
        except ValueError as e:
            raise CliError(str(e)) from None
        r = engine.grid.regions[0]
        models.warmup(r.height, r.width)
        total = args.frames if args.frames is not None else source.length
        progress = Progress(total, enabled=False if args.quiet else None)
        try:
            stats = engine.run(source, sinks, max_frames=args.frames, progress=progress)
            if recorder is not None:
                recorder.set_report(stats.to_dict())
        finally:
            for s in sinks:
                s.close()
    result = stats.to_dict()
    result.update(
        {
            "source": source.name,
            "policy": policy.name,
            "threshold": threshold,
            "warp_from": "previous" if engine.processor.propagate else "key",
            "frame_size": [args.width, args.height],
            "grid": [args.rows, args.cols],
            "overlap": args.overlap,
            "models": models.describe(),
        }
    )
    if json_path:
        write_json(json_path, result)
    if not args.quiet:
        miou = f"{stats.miou:.1f} %" if stats.miou is not None else "n/a (no ground truth)"
        print(
            f"{stats.frames} frames from {source.name}: {stats.fps:.2f} fps (engine), mIoU {miou}, "
            f"segmentation path on {stats.mix.seg_fraction * 100:.1f} % of region steps ({policy.name})"
        )
        for dest in (
            labels_dir,
            gt_dir if source.has_labels else None,
            args.save_color,
            overlay_dir,
            args.video,
            args.record,
        ):
            if dest:
                print(f"  wrote {dest}")
        if json_path:
            print(f"  wrote {json_path}")
    return 0


def _load_bench_hooks() -> None:
    """Register the cluster's ``1+N`` runner and report hook (``nodes/bench.py`` does so on import)."""
    import dvs_cluster.nodes.bench  # noqa: F401  (imported for its registrations)


def cmd_bench(args: argparse.Namespace) -> int:
    from dvs_cluster.bench import run_bench

    _load_bench_hooks()  # here, not in bench.py: the harness does not import the cluster code above it
    run_bench(args, make_models_factory(args), args.argv)
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """Delegate to the training CLI (needs the [train] extra: torch)."""
    train_args = list(args.train_args)
    if {"-h", "--help"} & set(train_args[: train_args.index("--")] if "--" in train_args else train_args):
        from dvs_cluster.train.args import build_parser as train_parser

        train_parser().parse_args(train_args)  # prints the help and exits, without importing torch
    try:
        from dvs_cluster.train import cli as train_cli  # torch: only for this command
    except ModuleNotFoundError as e:
        if e.name in ("torch", "onnx"):
            raise CliError(f"training needs {e.name}: pip install 'dvs_cluster[train]'") from None
        raise
    rc = train_cli.main(list(args.train_args))
    return int(rc or 0)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog=PROG, description="Distributed dynamic video segmentation (DVSNet) on a cluster of boards."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser(
        "segment", help="segment a video on this machine (Single)", description=cmd_segment.__doc__
    )
    add_source_options(p)
    add_model_options(p)
    p.add_argument(
        "--policy", default="dvsnet", help="dvsnet (default) | dynamic | segpath | fixedK, e.g. fixed5"
    )
    g = p.add_argument_group("outputs (at the input size)")
    g.add_argument(
        "--out", metavar="DIR", help="shortcut: DIR/labels, DIR/overlay, DIR/gt (synthetic), DIR/stats.json"
    )
    g.add_argument("--save-labels", metavar="DIR", help="label PNGs (trainIds, 255 = ignore), 000000.png ...")
    g.add_argument("--save-gt", metavar="DIR", help="ground-truth PNGs (synthetic source only)")
    g.add_argument("--save-color", metavar="DIR", help="colour-map PNGs (Cityscapes palette)")
    g.add_argument("--save-overlay", metavar="PATH", help=SAVE_OVERLAY_HELP)
    g.add_argument("--video", metavar="FILE.mp4", help="overlay MP4")
    g.add_argument("--json", metavar="FILE", help="run statistics (fps, mIoU, latency per stage, path mix)")
    add_record_option(g)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress line and no summary")
    p.set_defaults(func=cmd_segment)

    p = sub.add_parser(
        "bench",
        help="compare configurations (Table II) and sweep the DN threshold",
        description=cmd_bench.__doc__,
    )
    add_source_options(p)
    add_model_options(p)
    from dvs_cluster.bench import add_arguments

    add_arguments(p)
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("train", help="train and export the models (needs the [train] extra)", add_help=False)
    p.add_argument("train_args", nargs=argparse.REMAINDER, help="arguments for the training CLI")
    p.set_defaults(func=cmd_train)

    from dvs_cluster.nodes import cli as nodes_cli
    from dvs_cluster.sim import cli as sim_cli

    nodes_cli.register(sub)  # master, slave, fuzz, run
    sim_cli.register(sub)  # `plan` (performance: capacity planner)
    return parser


def main(argv: Sequence[str] | None = None, *, slave_hooks: Any = None) -> int:
    """
    Entry point; returns the exit status.

    ``slave_hooks``: a :class:`~dvs_cluster.nodes.slave.SlaveHooks` for ``slave`` (the bench's slave
    variants), which no command line can carry.
    """
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["train"]:
        # Everything after `train` belongs to the training CLI, options included.
        args = argparse.Namespace(func=cmd_train, train_args=args_list[1:], argv=args_list)
    else:
        args = build_parser().parse_args(args_list)
        args.argv = args_list
    args.slave_hooks = slave_hooks
    return run_command(args)  # BenchError is a CliError: no need to import the bench harness here


if __name__ == "__main__":
    sys.exit(main())
