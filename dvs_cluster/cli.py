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
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from dvs_cluster import __version__, validate

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


# The shared checks live in dvs_cluster.validate; these names stay for the modules that import them.
_positive_int = validate.positive_int
_nonneg_int = validate.nonneg_int


class Parser(argparse.ArgumentParser):
    """argparse with the CLI's error shape: one line ``dvs-cluster: error: ...``, exit status 2."""

    def error(self, message: str) -> NoReturn:
        """Bad options end like every other user error, not with argparse's usage block."""
        self.exit(2, f"{PROG}: error: {message} (see {self.prog} --help)\n")


def note(text: str) -> None:
    """One informational line on stderr, ``dvs-cluster: ...`` (stdout stays for results)."""
    print(f"{PROG}: {text}", file=sys.stderr, flush=True)


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
    lo = validate.MIN_FRAME_SIDE
    g.add_argument(
        "--width", type=validate.frame_side, default=1024, help=f"processing width (default 1024, >= {lo})"
    )
    g.add_argument(
        "--height", type=validate.frame_side, default=512, help=f"processing height (default 512, >= {lo})"
    )
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


def frame_sinks(dirs: Sequence[tuple[Any, str]], quiet: bool = False) -> list[Any]:
    """
    PNG sinks for ``(directory, style)`` pairs, each emptied of an earlier run's frame PNGs first.

    Only files named as the sinks name them (``000042.png``) are removed, and the CLI says so: a
    directory of 10 new frames next to 50 old ones would pass for one run of 60.
    """
    from dvs_cluster.io.sinks import PngSink

    sinks = []
    for directory, style in dirs:
        sink = PngSink(directory, style, clear=True)  # type: ignore[arg-type]
        if sink.cleared and not quiet:
            note(f"{directory}: removed {sink.cleared} frame PNG(s) of an earlier run")
        sinks.append(sink)
    return sinks


def overlay_sink(path: str, fps: float, quiet: bool = False) -> Any:
    """``--save-overlay PATH``: a video when PATH ends in .mp4/.avi, else a directory of PNGs."""
    from dvs_cluster.io.sinks import VideoSink, is_video_path

    if is_video_path(path):
        return VideoSink(path, fps, "overlay")
    return frame_sinks([(path, "overlay")], quiet)[0]


SAVE_OVERLAY_HELP = (
    "colour map blended over the input: a video if PATH ends in .mp4 or .avi, else a directory of "
    "PNGs (000000.png ...)"
)


def add_net_options(g: argparse._ArgumentGroup) -> None:
    """--models/--providers/--provider-options/--threads/--flow/--dn: what builds the nets (every command)."""
    g.add_argument(
        "--models", metavar="DIR", help="model directory (default: $DVS_CLUSTER_MODELS, installed, repo)"
    )
    g.add_argument(
        "--providers",
        default="cpu",
        help="comma-separated onnxruntime providers, e.g. cpu | cuda,cpu | tensorrt,cuda,cpu (default cpu)",
    )
    g.add_argument(
        "--provider-options",
        metavar="SPEC",
        help="onnxruntime provider options, PROVIDER:KEY=VALUE[,KEY=VALUE][;PROVIDER:...], e.g. "
        "tensorrt:trt_engine_cache_enable=1,trt_engine_cache_path=/var/cache/trt (docs/ROS2.md)",
    )
    g.add_argument(
        "--threads",
        type=_positive_int,
        help="intra-op threads of each net (default: every core this process may use; threads never "
        "spin, so the nets do not fight over the cores: docs/DESIGN.md)",
    )
    g.add_argument(
        "--flow",
        default=None,
        metavar="SOURCE",
        help="flow source of the flow path: dis[:ultrafast|fast|medium][@SCALE] (OpenCV DIS on the "
        "region scaled by SCALE; default dis@0.5) | onnx (the paper's FlowNet-S, flow.onnx)",
    )
    g.add_argument(
        "--warp-from",
        choices=("auto", "previous", "key"),
        default="auto",
        help="what the flow path warps: the region's previous output (each flow then spans one frame) or "
        "the key itself (DVSNet); auto (default): previous with the DN v2, key with DVSNet's DN v1",
    )
    g.add_argument(
        "--dn",
        choices=("auto", "v1", "v2"),
        default="auto",
        help="decision network: v2 reads cues any flow gives (default with dis); v1 is DVSNet's DN on "
        "FlowNet features (default with onnx)",
    )


def models_from_args(args: argparse.Namespace, **kw: Any) -> Any:
    """OnnxModels from the options of :func:`add_net_options` (onnxruntime imported only here)."""
    from dvs_cluster.inference import DEFAULT_FLOW, OnnxModels, ThreadPolicy

    providers = [p for p in args.providers.split(",") if p.strip()]
    return OnnxModels(
        args.models,
        providers=providers,
        threads=ThreadPolicy(args.threads),
        provider_options=args.provider_options,
        flow=kw.pop("flow", None) or args.flow or DEFAULT_FLOW,
        dn=kw.pop("dn", None) or args.dn,
        **kw,
    )


def net_argv(args: argparse.Namespace) -> list[str]:
    """The :func:`add_net_options` of ``args`` but ``--threads`` as arguments (for child processes)."""
    out = ["--providers", args.providers, "--dn", args.dn, "--warp-from", args.warp_from]
    for flag, value in (
        ("--models", args.models),
        ("--provider-options", args.provider_options),
        ("--flow", args.flow),
    ):
        if value is not None:
            out += [flag, str(value)]
    return out


def add_model_options(p: argparse.ArgumentParser) -> None:
    """The net options and the DVSNet grid/policy knobs."""
    add_net_options(p.add_argument_group("models"))
    g = p.add_argument_group("DVSNet")
    g.add_argument("--rows", type=_positive_int, default=2, help="region grid rows (default 2)")
    g.add_argument("--cols", type=_positive_int, default=2, help="region grid columns (default 2)")
    g.add_argument("--overlap", type=_nonneg_int, default=0, help="region overlap margin, pixels (default 0)")
    g.add_argument(
        "--threshold",
        type=validate.threshold,
        help="DN threshold on 0..100: score below -> segmentation path (default: model card, else 90)",
    )
    add_max_age_option(g)


def add_max_age_option(g: argparse._ArgumentGroup) -> None:
    """--max-age: the key-age cap of the DVSNet rule (every command that picks a policy)."""
    from dvs_cluster.core.policy import DEFAULT_MAX_AGE

    g.add_argument(
        "--max-age",
        type=_nonneg_int,
        default=None,
        help=f"replace a key this many frames old whatever the DN says (default {DEFAULT_MAX_AGE}; "
        "0 = DVSNet's rule alone)",
    )


def make_models_factory(args: argparse.Namespace) -> Any:
    """Deferred model construction; ``factory(flow=..., dn=...)`` overrides the options (the bench)."""

    def factory(**kw: Any) -> Any:
        return models_from_args(args, **kw)

    return factory


#: Said once per run on a source that is not the synthetic video, while the shipped models are used.
DOMAIN_NOTE = (
    "note: the shipped models were trained on CamVid street scenes (Cambridge, daylight, car height) and "
    "synthetic driving video; other scenes (indoor, cartoons, views from above) get unreliable labels "
    "(README: What to expect)"
)


def domain_note(source: str | None, models: str | None, quiet: bool = False) -> None:
    """Print :data:`DOMAIN_NOTE` for a real source with the shipped models (the user cannot tell)."""
    from dvs_cluster.io.sources import is_synthetic

    if not quiet and models is None and not os.environ.get("DVS_CLUSTER_MODELS") and not is_synthetic(source):
        note(DOMAIN_NOTE)


def cmd_segment(args: argparse.Namespace) -> int:
    """Run Single over a source and write the requested outputs."""
    from dvs_cluster.bench import default_threshold
    from dvs_cluster.core.policy import make_policy, policy_spec
    from dvs_cluster.engine import Progress, SingleEngine
    from dvs_cluster.inference import propagate_for
    from dvs_cluster.io.sinks import Sink, VideoSink, write_json
    from dvs_cluster.io.sources import is_synthetic, open_source

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


def cmd_bench(args: argparse.Namespace) -> int:
    from dvs_cluster.bench import run_bench

    run_bench(args, make_models_factory(args), args.argv)
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """Delegate to the training CLI (needs the [train] extra: torch)."""
    train_args = list(args.train_args)
    if {"-h", "--help"} & set(train_args[: train_args.index("--")] if "--" in train_args else train_args):
        from dvs_cluster.train.args import build_parser as train_parser

        train_parser().parse_args(train_args)  # prints the help and exits, without importing torch
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
    except BrokenPipeError:  # `dvs-cluster plan | head`: the reader left, nothing to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 141
    return rc


if __name__ == "__main__":
    sys.exit(main())
