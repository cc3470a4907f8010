"""
What every ``dvs-cluster`` command shares: the error type, the parser class, and the option groups.

``segment``, ``bench``, ``master``/``slave``/``run`` (:mod:`dvs_cluster.nodes.cli`) and ``plan``
(:mod:`dvs_cluster.sim.cli`) build their parsers from these, so one option reads the same everywhere.
Its own module below the commands, so those can import it while :mod:`dvs_cluster.cli` imports them
(the commands importing ``dvs_cluster.cli`` back was an import cycle). Heavy modules (onnxruntime,
OpenCV sinks) are imported inside the functions: ``dvs-cluster --help`` stays fast.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from dvs_cluster import validate
from dvs_cluster.options import MASTER, SLAVE, add_to

PROG = "dvs-cluster"


class CliError(RuntimeError):
    """A user-facing error: printed as one line, exit status 2."""


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
    add_to(g, MASTER, ("width", "height", "resize"))


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
    add_to(g, SLAVE, ("models", "providers", "provider_options", "threads", "flow", "warp_from", "dn"))


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
    add_to(g, MASTER, ("rows", "cols", "overlap", "threshold", "max_age"))


def add_max_age_option(g: argparse._ArgumentGroup) -> None:
    """--max-age: the key-age cap of the DVSNet rule (every command that picks a policy)."""
    add_to(g, MASTER, ("max_age",))


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


def user_errors() -> tuple[type[BaseException], ...]:
    """Exception types every command reports as one line (imported here so --help stays fast)."""
    from dvs_cluster.inference import ModelError
    from dvs_cluster.io.frame import SourceError
    from dvs_cluster.io.sinks import SinkError

    return (CliError, ModelError, SinkError, SourceError)


def run_command(args: argparse.Namespace, extra_errors: tuple[type[BaseException], ...] = ()) -> int:
    """
    Run ``args.func(args)`` with the CLI's error shape; returns the exit status.

    User errors (:func:`user_errors` and ``extra_errors``) print one line and give 2, Ctrl-C 130, a
    closed stdout 141. Shared by ``dvs-cluster`` and the entry points that build a sub-parser of their
    own (``python -m dvs_cluster.nodes.cli``, the bench's slave variants).
    """
    errors = user_errors() + tuple(extra_errors)
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
