"""
``dvs-cluster master | slave | run``: the cluster's processes.

``master`` and ``slave`` are the separate processes of a real cluster (one per board); ``run --slaves N``
starts N slave processes on this machine, acts as the master itself, and stops the slaves when done
(Ctrl-C included). Transport is Zenoh: peer mode with multicast discovery by default; ``--listen`` /
``--connect`` endpoints (e.g. ``tcp/0.0.0.0:7447`` on the master, ``tcp/MASTER_IP:7447`` on slaves)
across hosts. ``dvs_cluster.cli`` calls :func:`register`; ``python -m dvs_cluster.nodes.cli`` runs these
commands alone.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from dvs_cluster import validate
from dvs_cluster.options import CLUSTER_ID, MASTER, SLAVE, add_to, help_text

#: The master's scheduling options, in the order ``--help`` lists them (names of ``options.MASTER``).
SCHEDULING = (
    "slaves_expected",
    "wait_timeout",
    "max_in_flight",
    "max_queued_frames",
    "timeout",
    "lost",
    "status_period",
    "forward_threshold",
    "affinity",
    "region_order",
    "key_quantize",
)

log = logging.getLogger("dvs_cluster.nodes")


def _key_name(text: str) -> str:
    """Cluster ids and slave names become key chunks: refused by argparse, naming the option."""
    from dvs_cluster.transport.base import check_name

    try:
        return check_name(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_transport_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("transport (zenoh)")
    g.add_argument(
        str(CLUSTER_ID.flag),
        *CLUSTER_ID.aliases,
        dest=CLUSTER_ID.name,
        type=_key_name,
        default=CLUSTER_ID.default,
        help=help_text(CLUSTER_ID),
    )
    g.add_argument(
        "--listen",
        action="append",
        default=[],
        type=validate.listen_endpoint,
        metavar="ENDPOINT",
        help="PROTOCOL/HOST:PORT to accept peers on, e.g. tcp/0.0.0.0:7447",
    )
    g.add_argument(
        "--connect",
        action="append",
        default=[],
        type=validate.connect_endpoint,
        metavar="ENDPOINT",
        help="PROTOCOL/HOST:PORT of a peer to reach, e.g. tcp/192.168.1.10:7447",
    )
    g.add_argument("--mode", default="peer", choices=("peer", "client", "router"), help="zenoh mode")
    g.add_argument(
        "--multicast",
        choices=("auto", "on", "off"),
        default="auto",
        help="multicast scouting (auto: on unless --connect is given)",
    )
    g.add_argument(
        "--shm",
        choices=("auto", "on", "off"),
        default="auto",
        help="zenoh shared memory between processes of one host (auto: zenoh's default, on)",
    )
    g.add_argument(
        "--zenoh-config", metavar="FILE", help="zenoh JSON5 config as the base (flags here override it)"
    )
    g.add_argument("--tls-root-ca", metavar="PEM", help="mutual TLS: CA certificate every node trusts")
    g.add_argument("--tls-cert", metavar="PEM", help="mutual TLS: this node's certificate (signed by the CA)")
    g.add_argument("--tls-key", metavar="PEM", help="mutual TLS: this node's private key")
    g.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv: debug)")
    g.add_argument(
        "-q", "--quiet", action="store_true", help="no connection, waiting or progress lines (errors only)"
    )


def _add_model_args(p: argparse.ArgumentParser) -> None:
    """The slave's model options (same names as ``segment``)."""
    from dvs_cluster.cli_common import add_net_options

    g = p.add_argument_group("models (slave)")
    add_net_options(g)
    add_to(g, SLAVE, ("result_quantize",))


def _add_master_args(p: argparse.ArgumentParser) -> None:
    from dvs_cluster.cli_common import (
        SAVE_OVERLAY_HELP,
        add_record_option,
        add_source_options,
    )

    add_source_options(p)
    add_record_option(p)  # rosbag2 output (issue 6)
    g = p.add_argument_group("outputs")
    g.add_argument("--json", metavar="PATH", help="write the run report as JSON ('-' = stdout)")
    g.add_argument("--trace", metavar="PATH", help="write the per-region trace (slave, path, key) as JSON")
    g.add_argument("--save-labels", metavar="DIR", help="trainId PNG per frame")
    g.add_argument("--save-gt", metavar="DIR", help="ground-truth trainId PNG per frame (synthetic source)")
    g.add_argument("--save-overlay", metavar="PATH", help=SAVE_OVERLAY_HELP)
    g = p.add_argument_group("DVSNet")
    add_to(g, MASTER, ("policy", "max_age", "threshold", "rows", "cols", "overlap"))
    g = p.add_argument_group("scheduling")
    add_to(g, MASTER, SCHEDULING)
    g.add_argument(
        "--preload",
        action="store_true",
        help="read all frames before the clock starts (fps of the cluster alone, not of the source)",
    )
    g.add_argument(
        "--prefetch",
        type=int,
        default=2,
        help="frames read ahead on a thread (default 2; 0 = read on the master's loop)",
    )
    add_to(g, MASTER, ("rate",))


def _slave_count(text: str) -> int:
    from dvs_cluster.cli_common import _positive_int

    return _positive_int(text)


def register(subparsers: Any) -> None:
    """Add ``master``, ``slave`` and ``run`` to the ``dvs-cluster`` command."""
    m = subparsers.add_parser("master", help="cluster master: split, schedule, gather, assemble")
    _add_master_args(m)
    _add_transport_args(m)
    m.set_defaults(func=cmd_master)

    s = subparsers.add_parser("slave", help="cluster slave: run the DVSNet region step on tasks")
    s.add_argument(
        "--name", type=_key_name, required=True, help="slave name, unique in the cluster ([A-Za-z0-9_.-])"
    )
    _add_model_args(s)
    _add_transport_args(s)
    s.set_defaults(func=cmd_slave)

    f = subparsers.add_parser(
        "fuzz", help="seeded fuzzing of the cluster's keys (a live cluster, or --in-process)"
    )
    f.add_argument("--messages", type=_slave_count, default=10_000, help="payloads to send (default 10000)")
    f.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    f.add_argument("--slaves", default="slave0,slave1", help="slave names whose keys get payloads")
    f.add_argument(
        "--rate", type=_nonneg_float, default=0.0, help="messages per second (0 = as fast as possible)"
    )
    f.add_argument(
        "--in-process",
        action="store_true",
        help="no network: a master and a slave (real models) in this process, checked for exactly-once",
    )
    f.add_argument("--frames", type=_slave_count, default=20, help="--in-process: frames through the master")
    f.add_argument("--models", metavar="DIR", help="--in-process: model directory")
    f.add_argument("--json", metavar="PATH", help="write the counts as JSON ('-' = stdout)")
    _add_transport_args(f)
    f.set_defaults(func=cmd_fuzz)

    r = subparsers.add_parser("run", help="master + N local slave processes, stopped when done")
    r.add_argument("--slaves", type=_slave_count, default=2, help="number of slave processes (default 2)")
    _add_master_args(r)
    _add_model_args(r)
    _add_transport_args(r)
    r.set_defaults(func=cmd_run)


# -- helpers --------------------------------------------------------------------------------------------


def _setup_logging(verbose: int) -> None:
    level = logging.WARNING if verbose <= 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(name)s %(levelname)s: %(message)s")


def _multicast(args: argparse.Namespace) -> bool | None:
    return {"auto": None, "on": True, "off": False}[args.multicast]


def _tls(args: argparse.Namespace) -> Any:
    """The mTLS files, all three or none (refused naming the missing option)."""
    from dvs_cluster.cli_common import CliError
    from dvs_cluster.transport.zenoh import TlsFiles

    given = {"--tls-root-ca": args.tls_root_ca, "--tls-cert": args.tls_cert, "--tls-key": args.tls_key}
    if not any(given.values()):
        return None
    missing = [k for k, v in given.items() if not v]
    if missing:
        raise CliError(f"{', '.join(missing)}: mutual TLS needs --tls-root-ca, --tls-cert and --tls-key")
    tls = TlsFiles(args.tls_root_ca, args.tls_cert, args.tls_key)
    try:
        tls.check()
    except ValueError as exc:
        raise CliError(str(exc)) from None
    return tls


def _transport(args: argparse.Namespace) -> Any:
    import zenoh

    from dvs_cluster import transport
    from dvs_cluster.cli_common import CliError
    from dvs_cluster.transport.zenoh import make_config

    shm = {"auto": None, "on": True, "off": False}[args.shm]
    tls = _tls(args)
    try:  # config errors name the option
        make_config(args.mode, args.listen, args.connect, _multicast(args), shm, args.zenoh_config, tls)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    except zenoh.ZError as exc:  # e.g. an endpoint zenoh parses differently from validate.py
        raise CliError(f"zenoh configuration refused: {_zenoh_message(exc)}") from None
    options = {
        "mode": args.mode,
        "listen": args.listen,
        "connect": args.connect,
        "multicast": _multicast(args),
        "shm": shm,
        "config_file": args.zenoh_config,
        "tls": tls,
    }
    try:
        return transport.open("zenoh", zenoh=options)
    except zenoh.ZError as exc:
        raise CliError(_open_error(exc, args.listen)) from None


def _zenoh_message(exc: BaseException) -> str:
    """Zenoh's error text without the Rust source locations (``at /root/.cargo/...rs:61.``)."""
    text = re.sub(r"\s*at \S+\.rs:\d+\.?", "", str(exc).splitlines()[0] if str(exc) else repr(exc))
    return text.strip()


def _open_error(exc: BaseException, listen: Sequence[str]) -> str:
    """A zenoh session that did not open, as one line naming the endpoint and the likely fix."""
    text = str(exc)
    endpoint = next((ep for ep in listen if ep in text), listen[0] if listen else None)
    if endpoint is not None and "Address already in use" in text:
        # The OS's words stay in: nodes/bench.py picks another port when it reads them in a log.
        return (
            f"cannot listen on {endpoint}: port in use: pick another with --listen tcp/0.0.0.0:PORT "
            "(Address already in use)"
        )
    if endpoint is not None and "Cannot assign requested address" in text:
        return (
            f"cannot listen on {endpoint}: not an address of this machine "
            "(listen on tcp/0.0.0.0:PORT for every interface)"
        )
    if endpoint is not None and "Permission denied" in text:
        return f"cannot listen on {endpoint}: permission denied (ports below 1024 need root)"
    return f"zenoh session did not open: {_zenoh_message(exc)}"


def _transport_argv(args: argparse.Namespace) -> list[str]:
    """Flags that pass the transport security/config options on to child slave processes."""
    out: list[str] = []
    for flag, value in (
        ("--zenoh-config", args.zenoh_config),
        ("--tls-root-ca", args.tls_root_ca),
        ("--tls-cert", args.tls_cert),
        ("--tls-key", args.tls_key),
    ):
        if value:
            out += [flag, value]
    return out


_threshold = validate.threshold
_positive_float = validate.positive_float
_nonneg_float = validate.nonneg_float


def _stop_on_signals(stop: threading.Event) -> None:
    def handler(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def _write_json(path: str, data: Any) -> None:
    from dvs_cluster.io.sinks import write_json

    if path == "-":
        from dvs_cluster.io.sinks import _jsonable

        json.dump(_jsonable(data), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        write_json(path, data)


def _summary(rep: dict[str, Any]) -> str:
    miou = rep["miou"]
    bpf = rep["bytes_per_frame"]
    lines = [
        f"frames in {rep['frames_in']}  out {rep['frames_out']}  dropped {rep['frames_dropped']}  "
        + (f"in flight {rep['frames_pending']} at stop  " if rep.get("frames_pending") else "")
        + f"{rep['fps']:.2f} fps  seg {rep['seg_fraction'] * 100:.1f}%"
        + (f"  mIoU {miou:.2f}" if miou is not None else ""),
        f"bytes/frame  master->slaves {bpf['master_to_slaves'] / 1e6:.2f} MB  "
        f"slaves->master {bpf['slaves_to_master'] / 1e6:.2f} MB",
        "per slave: "
        + ", ".join(
            f"{n}: {s['regions']} ({s['seg']} seg / {s['flow']} flow)" for n, s in rep["per_slave"].items()
        ),
        "master ms/frame: "
        + " ".join(f"{k} {v:.1f}" for k, v in rep["latency_ms"]["master"].items() if v >= 0.05),
        "slave ms/region: "
        + " ".join(f"{k} {v:.1f}" for k, v in rep["latency_ms"]["slave"].items() if v >= 0.05),
    ]
    lat = rep["latency_ms"]["frame"]
    rss = rep.get("rss_mb", {})
    lines.append(
        "frame latency ms: "
        + " ".join(f"{k} {v:.0f}" for k, v in lat.items() if isinstance(v, int | float) and k != "n")
        + f"  queue bound {rep['scheduler']['max_queued_frames']} frames"
        + (f"  master RSS {rss['master_start']:.0f} -> {rss['master_end']:.0f} MiB" if rss else "")
    )
    if rep.get("aborted"):
        lines.append(f"ABORTED: {rep['aborted']}")
    return "\n".join(lines)


def _master_config(args: argparse.Namespace) -> Any:
    from dvs_cluster.core.policy import policy_spec
    from dvs_cluster.io.sources import is_synthetic
    from dvs_cluster.model_defaults import MODEL_DEFAULT, MODEL_DEFAULT_SYNTHETIC
    from dvs_cluster.nodes.master import MasterConfig

    model_default = MODEL_DEFAULT_SYNTHETIC if is_synthetic(args.source) else MODEL_DEFAULT
    return MasterConfig(
        cluster_id=args.cluster_id,
        width=args.width,
        height=args.height,
        rows=args.rows,
        cols=args.cols,
        overlap=args.overlap,
        policy=policy_spec(args.policy, args.max_age),
        threshold=model_default if args.threshold is None else args.threshold,
        max_in_flight=args.max_in_flight,
        max_queued_frames=args.max_queued_frames,
        timeout_s=args.timeout,
        forward_threshold=args.forward_threshold,
        affinity=args.affinity,
        region_order=args.region_order,
        key_quantize=args.key_quantize,
        rate=args.rate,
        lost_s=args.lost,
        keep_trace=bool(getattr(args, "trace", None)),
        status_period_s=args.status_period,
    )


def _wait_line(node: Any, expected: int) -> str:
    joined = sorted(node.wm.slaves)
    return f"waiting for {expected} slave(s) ({len(joined)} joined" + (
        f": {', '.join(joined)})" if joined else ")"
    )


def _wait_for_slaves(
    args: argparse.Namespace,
    node: Any,
    console: Any,
    stop: threading.Event,
    expected: int,
    procs: Sequence[Any],
) -> bool:
    """
    Wait for ``expected`` slaves, saying so (and who joined) every few seconds: False when interrupted.

    No slave in ``--wait`` seconds is a user error (exit 2): which cluster and endpoint they must reach.
    """
    from dvs_cluster.cli_common import CliError
    from dvs_cluster.nodes.console import where

    at = where(args.listen, args.connect, _multicast(args))
    head = f"listening on {', '.join(args.listen)}" if args.listen else f"looking for slaves {at}"
    console.say(f"{head} (cluster {args.cluster_id}), {_wait_line(node, expected)}")
    deadline = time.monotonic() + args.wait_timeout
    said = (time.monotonic(), _wait_line(node, expected))
    node.publish_status(force=True)
    while not node.wait_for_slaves(expected, 0.5, stop):
        node.publish_status()  # slaves name the master they reached from its heartbeat
        if stop.is_set():
            console.say(f"interrupted while {_wait_line(node, expected)}")
            return False
        line = _wait_line(node, expected)
        if line != said[1] or time.monotonic() - said[0] >= 10.0:
            console.say(line)
            said = (time.monotonic(), line)
        dead = [p for p in procs if p.poll() is not None]
        if procs and len(dead) == len(procs):
            raise CliError(f"all {len(procs)} slave processes exited before joining (their errors are above)")
        if time.monotonic() > deadline:
            hint = (
                f"start them with: dvs-cluster slave --name NAME --cluster {args.cluster_id} "
                f"--connect tcp/<this host's address>:{args.listen[0].rsplit(':', 1)[-1]}"
                if args.listen and not procs
                else "raise --wait if they are still loading"
            )
            raise CliError(
                f"only {len(node.wm.slaves)} of {expected} slave(s) joined within {args.wait_timeout:g} s "
                f"(cluster {args.cluster_id}); {hint}"
            )
    joined = sorted(node.wm.slaves)
    console.say(f"{len(joined)} slave(s) joined ({', '.join(joined)}); running")
    return True


def _run_master(
    args: argparse.Namespace,
    stop: threading.Event,
    expected: int,
    launch: Callable[[], Sequence[Any]] | None = None,
) -> int:
    """
    Open the source, sinks and transport, start ``launch``'s slaves, wait for them, run, report.

    Returns the exit code. The transport opens before any slave process starts, so a port in use
    ends the command before there is anything to stop.
    """
    from dvs_cluster.cli_common import CliError, domain_note, frame_sinks, overlay_sink
    from dvs_cluster.core.policy import make_policy, policy_spec
    from dvs_cluster.io.sinks import Sink
    from dvs_cluster.io.sources import open_source
    from dvs_cluster.nodes.console import Console, MasterWatch
    from dvs_cluster.nodes.master import MasterNode, Prefetch

    try:
        make_policy(
            policy_spec(args.policy, args.max_age), 90.0 if args.threshold is None else args.threshold
        )
        validate.check_grid(args.width, args.height, args.rows, args.cols, args.overlap)
    except ValueError as e:
        raise CliError(str(e)) from None
    console = Console("master: ", quiet=args.quiet)
    source = open_source(args.source, args.width, args.height, args.resize, args.frames, topic=args.topic)
    sinks: list[Sink] = []
    gt_sinks: list[Sink] = []
    procs: Sequence[Any] = ()
    transport = node = prefetch = watch = None
    try:
        if args.save_gt and not source.has_labels:
            raise CliError(f"--save-gt: source {source.name} has no ground truth (only synthetic has)")
        domain_note(args.source, getattr(args, "models", None), args.quiet)
        if args.save_labels:
            sinks += frame_sinks([(args.save_labels, "labels")], args.quiet)
        if args.save_overlay:
            sinks.append(overlay_sink(args.save_overlay, source.fps, args.quiet))
        if args.save_gt:
            gt_sinks += frame_sinks([(args.save_gt, "gt")], args.quiet)
        if args.record:  # rosbag2 output (issue 6)
            from dvs_cluster.io.bag import BagRecorder

            sinks.append(BagRecorder(args.record, source))
        transport = _transport(args)
        node = MasterNode(transport, _master_config(args))
        if launch is not None:
            procs = launch()
        if not _wait_for_slaves(args, node, console, stop, expected, procs):
            return 130
        frames: Iterable[Any] = source
        if args.preload:
            frames = list(itertools.islice(source, args.frames))
        elif args.prefetch > 0:
            frames = prefetch = Prefetch(itertools.islice(source, args.frames), args.prefetch)
        from dvs_cluster.nodes.master import rss_mb

        slaves_start = {str(p.pid): rss_mb(p.pid) for p in procs}
        node.rss_watch = {f"slave{i}": p.pid for i, p in enumerate(procs)}
        total = args.frames if args.frames is not None else source.length
        watch = MasterWatch(node, console, total, seen_events=len(node.slave_events))
        try:
            rep = node.run(frames, sinks, gt_sinks, args.frames, stop)
        finally:
            watch.close()
        rep["source"] = source.name
        if procs:  # local slaves (`run`): their memory too
            rep["rss_mb"]["slaves_start"] = slaves_start
            rep["rss_mb"]["slaves_end"] = {str(p.pid): rss_mb(p.pid) for p in procs}
        for sink in sinks:  # rosbag2 output (issue 6): the report goes on /stats
            if hasattr(sink, "set_report"):
                sink.set_report(rep)
    finally:
        if prefetch is not None:
            prefetch.close()
        if node is not None:
            node.close()
        for sink in sinks + gt_sinks:
            sink.close()
        source.close()
        if transport is not None:
            transport.close()
    # Files first: the summary goes to a stream that may already be closed (`| head`).
    if args.trace:
        _write_json(
            args.trace,
            {"regions": node.trace, "emitted": node.emitted, "latency_ms": list(node.frame_latency_ms)},
        )
    if args.json:
        _write_json(args.json, rep)
    if not args.quiet:
        print(_summary(rep), file=sys.stderr)
    if rep.get("aborted") == "stopped":
        return 130
    return 1 if rep.get("aborted") else 0


# -- commands -------------------------------------------------------------------------------------------


def cmd_master(args: argparse.Namespace) -> int:
    """``dvs-cluster master``."""
    _setup_logging(args.verbose)
    stop = threading.Event()
    _stop_on_signals(stop)
    return _run_master(args, stop, args.slaves_expected)


def cmd_slave(args: argparse.Namespace) -> int:
    """``dvs-cluster slave --name NAME``: serve until SIGINT/SIGTERM, saying whether a master is there."""
    _setup_logging(args.verbose)
    from dvs_cluster.cli_common import models_from_args
    from dvs_cluster.inference import propagate_for
    from dvs_cluster.nodes.console import Console, SlaveWatch, where
    from dvs_cluster.nodes.slave import SlaveNode
    from dvs_cluster.transport.base import ClusterKeys

    stop = threading.Event()
    _stop_on_signals(stop)
    console = Console(f"slave {args.name}: ", quiet=args.quiet, progress=False)
    # The session first: a port in use or a refused config ends the command before the models load.
    transport = _transport(args)
    watch = None
    try:
        at = where(args.listen, args.connect, _multicast(args))
        first = f"connecting to {', '.join(args.connect)}" if args.connect else f"looking for a master {at}"
        console.say(f"{first} (cluster {args.cluster_id})")
        watch = SlaveWatch(transport, ClusterKeys(args.cluster_id), console, at)
        models = models_from_args(args)
        node = SlaveNode(
            args.name,
            transport,
            models,
            cluster_id=args.cluster_id,
            result_quantize=args.result_quantize,
            propagate=propagate_for(args.warp_from, models),
            hooks=getattr(args, "slave_hooks", None),
        )
        log.info("slave %s: models loaded, serving tasks (cluster %s)", args.name, args.cluster_id)
        try:
            counters = node.run(stop)
        finally:
            node.close()
    finally:
        if watch is not None:
            watch.close()
        transport.close()
    console.say(f"stopped after {counters.tasks_done} task(s) ({counters.seg} seg / {counters.flow} flow)")
    return 0


def cmd_fuzz(args: argparse.Namespace) -> int:
    """``dvs-cluster fuzz``: bad bytes on every key a node reads; the nodes must count them and go on."""
    _setup_logging(args.verbose)
    logging.getLogger("dvs_cluster").setLevel(logging.ERROR)  # thousands of "dropped ..." warnings
    from dvs_cluster.nodes.fuzz import fuzz_bus, fuzz_in_process

    if args.in_process:
        rep = fuzz_in_process(args.messages, args.seed, args.models, args.frames)
        ok = rep["in_order_once"] and rep["frames_out"] + rep["frames_dropped"] == rep["frames_in"]
        print(
            f"sent {rep['sent_total']} payloads in {rep['seconds']:.1f} s; frames in {rep['frames_in']} "
            f"out {rep['frames_out']} dropped {rep['frames_dropped']}; "
            f"{'every accepted frame out once, in order' if ok else 'FRAMES LOST OR OUT OF ORDER'}",
            file=sys.stderr,
        )
    else:
        transport = _transport(args)
        try:
            slaves = [s for s in args.slaves.split(",") if s]
            r = fuzz_bus(transport, args.cluster_id, slaves, args.messages, args.seed, args.rate)
        finally:
            transport.close()
        rep = {"sent": r.sent, "sent_total": r.total, "bytes": r.bytes, "seconds": r.seconds}
        ok = True
        print(f"sent {r.total} payloads ({r.bytes / 1e6:.1f} MB) in {r.seconds:.1f} s", file=sys.stderr)
    if args.json:
        _write_json(args.json, rep)
    return 0 if ok else 1


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _stop_processes(procs: Sequence[subprocess.Popen[bytes]], grace_s: float = 5.0) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def _check_models(args: argparse.Namespace) -> None:
    """Providers known to onnxruntime and the model files present (ModelError names which)."""
    from dvs_cluster.inference import (
        DEFAULT_FLOW,
        ModelError,
        model_files,
        resolve_model_dir,
        resolve_providers,
    )

    resolve_providers([p for p in args.providers.split(",") if p.strip()])
    d = resolve_model_dir(args.models)
    for name in model_files(args.flow or DEFAULT_FLOW, args.dn).values():
        path = d / name
        if not path.is_file():
            raise ModelError(f"model file {path} is missing")


def cmd_run(args: argparse.Namespace) -> int:
    """``dvs-cluster run --slaves N``: N slave processes + this process as the master, on one host."""
    from dvs_cluster.cli_common import net_argv

    _setup_logging(args.verbose)
    if args.slaves < 1:
        print("--slaves must be >= 1", file=sys.stderr)
        return 2
    _check_models(args)  # refuse before any process starts, naming the provider or the file
    _tls(args)
    if args.cluster_id == "default":
        args.cluster_id = f"run_{uuid.uuid4().hex[:8]}"  # no cross-talk with other clusters on this host
    if not args.listen and not args.connect:
        # Deterministic local wiring: the master listens on a loopback port, slaves connect to it.
        endpoint = f"tcp/127.0.0.1:{_free_port()}"
        args.listen = [endpoint]
        slave_connect = [endpoint]
        if args.multicast == "auto":
            args.multicast = "off"
    else:
        slave_connect = list(args.connect) + list(args.listen)
    threads = args.threads if args.threads is not None else max(1, (os.cpu_count() or 1) // args.slaves)
    procs: list[subprocess.Popen[bytes]] = []
    stop = threading.Event()
    _stop_on_signals(stop)

    def launch() -> list[subprocess.Popen[bytes]]:
        for i in range(args.slaves):
            cmd = [sys.executable, "-m", "dvs_cluster.cli", "slave", "--name", f"slave{i}"]
            cmd += ["--cluster", args.cluster_id, *net_argv(args), "--threads", str(threads)]
            cmd += ["--result-quantize", args.result_quantize, "--multicast", "off", "--shm", args.shm]
            cmd += _transport_argv(args)
            cmd += [a for ep in slave_connect for a in ("--connect", ep)]
            cmd += ["-v"] * args.verbose + ["-q"]  # the master reports them joining and leaving
            # Own process group: Ctrl-C reaches the master only, which then stops the slaves in order.
            procs.append(subprocess.Popen(cmd, start_new_session=True))
        return procs

    try:
        return _run_master(args, stop, args.slaves, launch)
    finally:
        _stop_processes(procs)


def main(argv: Sequence[str] | None = None, *, slave_hooks: Any = None) -> int:
    """
    ``python -m dvs_cluster.nodes.cli master|slave|fuzz|run ...``: the cluster commands of ``dvs-cluster``.

    Same options and error handling; ``slave_hooks`` as in :func:`dvs_cluster.cli.main` (the bench's
    slave variants). Built here rather than through ``dvs_cluster.cli``, which imports this module.
    """
    from dvs_cluster.cli_common import PROG, Parser, run_command

    parser = Parser(prog=PROG, description="The cluster's processes (dvs-cluster master | slave | run).")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    register(sub)
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    args.slave_hooks = slave_hooks
    return run_command(args)


if __name__ == "__main__":
    sys.exit(main())
