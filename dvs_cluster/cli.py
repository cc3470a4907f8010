"""
The ``dvs-cluster`` command: ``segment`` (Single), ``bench``, ``train`` and the cluster's commands.

A thin shell over the engine: errors a user can fix (bad source, missing model, unwritable output, bad
option) print one line on stderr and exit with status 2, without a traceback. Subcommands set
``func(args) -> int`` with ``set_defaults``; the cluster package adds its own through
``dvs_cluster.nodes.cli.register(subparsers)`` when that module exists.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dvs_cluster import __version__

PROG = "dvs-cluster"
NODES_CLI = "dvs_cluster.nodes.cli"
TRAIN_CLI = "dvs_cluster.train.cli"


class CliError(RuntimeError):
    """A user-facing error: printed as one line, exit status 2."""


def _user_errors() -> tuple[type[BaseException], ...]:
    """Exception types reported as one line (imported here so --help stays fast)."""
    from dvs_cluster.bench import BenchError
    from dvs_cluster.inference import ModelError
    from dvs_cluster.io.sinks import SinkError
    from dvs_cluster.io.sources import SourceError

    # Under `python -m dvs_cluster.cli` this module is __main__: node code raises the importable copy's class.
    canonical = importlib.import_module("dvs_cluster.cli").CliError
    return (CliError, canonical, BenchError, ModelError, SinkError, SourceError)


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return v


def _nonneg_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return v


def add_source_options(p: argparse.ArgumentParser) -> None:
    """--source/--frames/--width/--height/--resize (shared by segment, bench and the cluster)."""
    g = p.add_argument_group("input")
    g.add_argument(
        "--source",
        default="synthetic",
        help="synthetic[:SEED] (default), a video file, camera:N, an image directory or image file, "
        "or a rosbag2 bag directory (sqlite3 or MCAP)",
    )
    g.add_argument(
        "--topic",
        metavar="TOPIC",
        help="image topic of a bag --source, e.g. /camera/image_raw (default: its only image topic)",
    )
    g.add_argument("--frames", type=_positive_int, help="stop after N frames (synthetic: default 100)")
    g.add_argument("--width", type=_positive_int, default=1024, help="processing width (default 1024)")
    g.add_argument("--height", type=_positive_int, default=512, help="processing height (default 512)")
    g.add_argument(
        "--resize",
        choices=("letterbox", "stretch"),
        default="letterbox",
        help="fit other input sizes: keep aspect + edge-replicated bars (default) or plain resize",
    )


def add_record_option(p: argparse._ActionsContainer) -> None:
    """--record OUT: the outputs as an MCAP rosbag2 bag (segment, master, run)."""
    p.add_argument(
        "--record",
        metavar="OUT",
        help="write /segmentation (mono8), /segmentation_color, /overlay (rgb8) and /stats to a new "
        "MCAP rosbag2 bag directory OUT (opens in Foxglove; replay with ros2 bag play on Jazzy)",
    )


def add_model_options(p: argparse.ArgumentParser) -> None:
    """--models/--providers/--threads and the DVSNet grid/policy knobs."""
    g = p.add_argument_group("models")
    g.add_argument(
        "--models", metavar="DIR", help="model directory (default: $DVS_CLUSTER_MODELS, installed, repo)"
    )
    g.add_argument(
        "--providers",
        default="cpu",
        help="comma-separated onnxruntime providers, e.g. cpu | cuda,cpu | tensorrt,cuda,cpu (default cpu)",
    )
    g.add_argument(
        "--threads", type=_positive_int, help="onnxruntime intra-op threads (default: onnxruntime's)"
    )
    g = p.add_argument_group("DVSNet")
    g.add_argument("--rows", type=_positive_int, default=2, help="region grid rows (default 2)")
    g.add_argument("--cols", type=_positive_int, default=2, help="region grid columns (default 2)")
    g.add_argument("--overlap", type=_nonneg_int, default=0, help="region overlap margin, pixels (default 0)")
    g.add_argument(
        "--threshold",
        type=float,
        help="DN threshold on 0..100: score below -> segmentation path (default: model card, else 90)",
    )


def make_models_factory(args: argparse.Namespace) -> Any:
    """Deferred OnnxModels construction (onnxruntime is imported only when needed)."""

    def factory() -> Any:
        from dvs_cluster.inference import OnnxModels

        providers = [p for p in args.providers.split(",") if p.strip()]
        return OnnxModels(args.models, providers=providers, intra_op_threads=args.threads)

    return factory


def cmd_segment(args: argparse.Namespace) -> int:
    """Run Single over a source and write the requested outputs."""
    from dvs_cluster.bench import default_threshold
    from dvs_cluster.core.policy import make_policy
    from dvs_cluster.engine import Progress, SingleEngine
    from dvs_cluster.io.sinks import PngSink, Sink, VideoSink, write_json
    from dvs_cluster.io.sources import is_synthetic, open_source

    out = Path(args.out) if args.out else None
    labels_dir = args.save_labels or (out / "labels" if out else None)
    overlay_dir = args.save_overlay or (out / "overlay" if out else None)
    json_path = args.json or (out / "stats.json" if out else None)
    gt_dir = args.save_gt or (out / "gt" if out else None)

    models = make_models_factory(args)()
    synthetic = is_synthetic(args.source)
    threshold = args.threshold if args.threshold is not None else default_threshold(models, synthetic)
    try:
        policy = make_policy(args.policy, threshold=threshold)
    except ValueError as e:
        raise CliError(str(e)) from None
    source = open_source(args.source, args.width, args.height, args.resize, args.frames, topic=args.topic)
    with source:
        if args.save_gt and not source.has_labels:
            raise CliError(f"--save-gt: source {source.name} has no ground truth (only synthetic has)")
        sinks: list[Sink] = []
        if labels_dir:
            sinks.append(PngSink(labels_dir, "labels"))
        if gt_dir and source.has_labels:
            sinks.append(PngSink(gt_dir, "gt"))
        if args.save_color:
            sinks.append(PngSink(args.save_color, "color"))
        if overlay_dir:
            sinks.append(PngSink(overlay_dir, "overlay"))
        if args.video:
            sinks.append(VideoSink(args.video, source.fps, "overlay"))
        recorder = None
        if args.record:
            from dvs_cluster.io.bag import BagRecorder

            recorder = BagRecorder(args.record, source)
            sinks.append(recorder)
        try:
            engine = SingleEngine(models, policy, args.width, args.height, args.rows, args.cols, args.overlap)
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


def cmd_bench(args: argparse.Namespace) -> int:
    from dvs_cluster.bench import run_bench

    run_bench(args, make_models_factory(args), args.argv)
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """Delegate to the training CLI (needs the [train] extra: torch)."""
    try:
        mod = importlib.import_module(TRAIN_CLI)
    except ModuleNotFoundError as e:
        if e.name in ("torch", "onnx"):
            raise CliError(f"training needs {e.name}: pip install 'dvs_cluster[train]'") from None
        if e.name == TRAIN_CLI:
            raise CliError("this installation has no training code (dvs_cluster.train.cli)") from None
        raise
    rc = mod.main(list(args.train_args))
    return int(rc or 0)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
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
    g.add_argument("--save-overlay", metavar="DIR", help="colour map blended over the input, PNGs")
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

    try:
        nodes = importlib.import_module(NODES_CLI)
    except ModuleNotFoundError as e:
        if e.name != NODES_CLI:
            raise
    else:
        nodes.register(sub)
    importlib.import_module("dvs_cluster.sim.cli").register(sub)  # `plan` (performance: capacity planner)
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
    errors = _user_errors()
    try:
        rc: int = args.func(args)
    except errors as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    return rc


if __name__ == "__main__":
    sys.exit(main())
