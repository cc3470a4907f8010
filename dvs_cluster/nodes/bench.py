"""
Cluster configurations of ``dvs-cluster bench``: ``1+N[:option...]`` as real processes over Zenoh.

``dvs-cluster bench`` (:mod:`dvs_cluster.cli`) imports this module before it runs; it registers the
``1+`` runner and the report hook (simulator validation, figures, Markdown: :mod:`dvs_cluster.sim.report`).

Each config starts N ``dvs-cluster slave`` processes and one ``dvs-cluster master`` process (TCP on
loopback, multicast off, a fresh cluster id), the master reading the same source and frames as the
in-process configs with ``--preload`` (fps of the cluster, not of the decoder). One slave stands for one
board: onnxruntime intra-op threads = 1 and the process pinned to one core (``sched_setaffinity``).
Cores are assigned round robin with the master first (:func:`dvs_cluster.placement.local_placement`);
when processes outnumber cores they share them, and the row says so (``oversubscribed``: more slaves
than cores; ``shared_cores``: some process shares its core) instead of passing that off as boards.

Options after the name, ``:``-separated, e.g. ``1+2:pipe2:aff:keys16``:

- ``pipeK``: K tasks in flight per slave (``--max-in-flight``; pipelining hides transfers);
- ``queueK``: frames waiting at most (``--max-queued-frames``);
- ``aff``: key-affinity scheduling (``--affinity``);
- ``fifo`` / ``strict``: region order (``--region-order``; the default is ``prefer``, see
  :mod:`dvs_cluster.core.scheduler`): ``fifo`` is the paper's queue order;
- ``fwdK``: forward threshold (``--forward-threshold``);
- ``keys16`` / ``keys8``: forwarded key logits as float16 / uint8 (``--key-quantize``);
- ``res16`` / ``res8``: seg-path result logits as float16 / uint8 (``--result-quantize``);
- ``logits``: flow-path results carry their logits too (the paper's scheme, the "before" of sending
  labels only); done by :class:`FlowLogitsHooks` (``python -m dvs_cluster.nodes.bench slave``), a
  :class:`~dvs_cluster.nodes.slave.SlaveHooks` that changes nothing but the result sent;
- ``echo``: **master capacity**, not a cluster: the slaves (``python -m dvs_cluster.nodes.bench
  echo-slave``, :class:`EchoHooks`) run no network and answer each task at once with canned labels (and
  logits on the seg path, for 2 regions in 5, about Single's seg fraction), through the real decoder,
  serialiser and transport. The master is then the bottleneck and never waits long: its time per frame is
  its overhead with warm caches, and its fps the most one master sustains. Such rows have ``kind``
  ``capacity``: no mIoU or speed-up, left out of the simulator's validation and the cluster tables. They
  run ``ECHO_FRAMES`` frames at least (60 last a fifth of a second);
- ``holdK`` (with ``echo``): the echo slaves hold each answer K ms (asleep, no compute on any core), so
  the master meets a real cluster's pace with nothing else running: its overhead then against the
  capacity row's is what waiting alone costs the code it runs after each wait.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from dvs_cluster import bench as _bench
from dvs_cluster.bench import BenchContext, BenchError, register_runner
from dvs_cluster.core.processor import RegionOutcome
from dvs_cluster.core.scheduler import DEFAULT_MAX_IN_FLIGHT
from dvs_cluster.nodes.slave import SlaveHooks
from dvs_cluster.placement import all_cores as all_cores  # re-exported: it lived here
from dvs_cluster.placement import local_placement, pin_to
from dvs_cluster.transport.messages import Result, Task

QUANT_CODES = {"16": "float16", "8": "uint8", "32": "float32"}
OPTION_RE = re.compile(
    r"(pipe|queue|fwd)(\d+)|(aff)|(keys|res)(16|8|32)|(logits)|(fifo|strict|prefer)|(echo)|hold(\d+)"
)
#: Frames an ``echo`` (master capacity) config runs at least.
ECHO_FRAMES = 300
#: Of every ``ECHO_SEG[1]`` regions an echo slave answers ``ECHO_SEG[0]`` on the seg path (with logits).
ECHO_SEG = (2, 5)
#: Seconds one config may take (start, join, run, stop) before it is abandoned.
RUN_TIMEOUT_S = 600.0


@dataclass
class ClusterOptions:
    """Master/slave options of one bench config (defaults = the CLI's defaults)."""

    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
    max_queued_frames: int = 4
    affinity: bool = False
    forward_threshold: int = 0
    key_quantize: str = "float32"
    result_quantize: str = "float32"
    flow_logits: bool = False
    region_order: str = "prefer"
    echo: bool = False
    hold_ms: int = 0  # echo slaves answer this long after a task arrives


def parse_config(name: str) -> tuple[int, ClusterOptions]:
    """``1+N[:opt...]`` -> (N, options); BenchError for anything else."""
    head, *opts = name.strip().lower().split(":")
    m = re.fullmatch(r"1\+(\d+)", head)
    if not m or int(m.group(1)) < 1:
        raise BenchError(f"bad cluster config {name!r} (use 1+N with N >= 1, e.g. 1+3:pipe2:aff)")
    o = ClusterOptions()
    for opt in opts:
        mo = OPTION_RE.fullmatch(opt)
        if not mo:
            raise BenchError(
                f"unknown option {opt!r} in {name!r} "
                "(pipeK, queueK, fwdK, aff, fifo|strict, keys16|keys8, res16|res8, logits, echo, holdK)"
            )
        if mo.group(1):
            v = int(mo.group(2))
            if mo.group(1) == "pipe":
                o.max_in_flight = max(v, 1)
            elif mo.group(1) == "queue":
                o.max_queued_frames = max(v, 1)
            else:
                o.forward_threshold = v
        elif mo.group(3):
            o.affinity = True
        elif mo.group(4):
            q = QUANT_CODES[mo.group(5)]
            if mo.group(4) == "keys":
                o.key_quantize = q
            else:
                o.result_quantize = q
        elif mo.group(7):
            o.region_order = mo.group(7)
        elif mo.group(8):
            o.echo = True
        elif mo.group(9):
            o.hold_ms = int(mo.group(9))
        else:
            o.flow_logits = True
    if o.echo and o.flow_logits:
        raise BenchError(f"{name!r}: echo slaves send no logits of their own; drop 'logits'")
    if o.hold_ms and not o.echo:
        raise BenchError(f"{name!r}: holdK is for echo slaves; add 'echo'")
    return int(m.group(1)), o


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _workdir(ctx: BenchContext) -> Path:
    """Where the runs' reports and traces go: next to ``--json`` (``<stem>_runs/``), else a temp dir."""
    j = ctx.options.get("json")
    if j:
        p = Path(j)
        d = p.with_name(p.stem + "_runs")
    else:
        d = Path(tempfile.gettempdir()) / "dvs_cluster_bench_runs"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def cluster_commands(
    name: str, ctx: BenchContext, out_dir: Path, cores: list[int]
) -> tuple[list[tuple[list[str], int]], tuple[list[str], int], dict[str, Any]]:
    """The slave and master command lines of a config, each with its core, and the run's metadata."""
    from dvs_cluster.inference import DEFAULT_FLOW, resolve_model_dir

    slaves, opt = parse_config(name)
    master_core, slave_cores = local_placement(slaves, cores)
    cluster = f"bench_{uuid.uuid4().hex[:8]}"
    endpoint = f"tcp/127.0.0.1:{_free_port()}"
    o = ctx.options
    models = str(resolve_model_dir(o.get("models")))
    providers = str(o.get("providers") or "cpu")
    common = ["--cluster", cluster, "--multicast", "off"]
    slave_cmds = []
    for i, core in enumerate(slave_cores):
        if opt.echo:
            entry = ["-m", "dvs_cluster.nodes.bench", "echo-slave", "--hold-ms", str(opt.hold_ms)]
        elif opt.flow_logits:
            entry = ["-m", "dvs_cluster.nodes.bench", "slave"]
        else:
            entry = ["-m", "dvs_cluster.cli", "slave"]
        cmd = [sys.executable, *entry, "--name", f"slave{i}", *common, "--connect", endpoint]
        cmd += ["--threads", "1", "--providers", providers, "--models", models]
        cmd += ["--flow", str(o.get("flow") or DEFAULT_FLOW), "--dn", str(o.get("dn") or "auto")]
        cmd += ["--warp-from", str(o.get("warp_from") or "auto")]
        cmd += ["--result-quantize", opt.result_quantize]
        slave_cmds.append((cmd, core))
    slug = _slug(name)
    report, trace = out_dir / f"{slug}.json", out_dir / f"{slug}.trace.json"
    mcmd = [sys.executable, "-m", "dvs_cluster.cli", "master", *common, "--listen", endpoint]
    mcmd += ["--slaves-expected", str(slaves), "--wait", "120", "--preload"]
    frames = max(len(ctx.frames), ECHO_FRAMES) if opt.echo and not opt.hold_ms else len(ctx.frames)
    mcmd += ["--source", str(o.get("source") or ctx.source), "--frames", str(frames)]
    mcmd += [
        "--width",
        str(ctx.width),
        "--height",
        str(ctx.height),
        "--resize",
        str(o.get("resize") or "letterbox"),
    ]
    mcmd += ["--rows", str(ctx.rows), "--cols", str(ctx.cols), "--overlap", str(ctx.overlap)]
    mcmd += ["--threshold", f"{ctx.threshold:g}", "--max-in-flight", str(opt.max_in_flight)]
    mcmd += ["--max-age", str(ctx.max_age)]
    mcmd += [
        "--max-queued-frames",
        str(opt.max_queued_frames),
        "--forward-threshold",
        str(opt.forward_threshold),
    ]
    mcmd += ["--key-quantize", opt.key_quantize, "--json", str(report), "--trace", str(trace)]
    if opt.affinity:
        mcmd.append("--affinity")
    mcmd += ["--region-order", opt.region_order]
    meta = {
        "slaves": slaves,
        "options": {**asdict(opt), "max_age": ctx.max_age},
        "placement": {"cores": len(cores), "master_core": master_core, "slave_cores": slave_cores},
        "oversubscribed": slaves > len(cores),
        "shared_cores": slaves + 1 > len(cores),
        "report_file": str(report),
        "trace_file": str(trace),
    }
    return slave_cmds, (mcmd, master_core), meta


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 10.0
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def key_age(trace: dict[str, Any]) -> dict[str, float]:
    """Mean and max key age of the flow-path steps in a run's trace (stale keys show up here)."""
    ages = [e["sequence"] - e["key"] for e in trace.get("regions", []) if e.get("path") == "flow"]
    return {"mean": sum(ages) / len(ages) if ages else 0.0, "max": float(max(ages, default=0))}


def row_from_report(
    name: str, rep: dict[str, Any], trace: dict[str, Any], meta: dict[str, Any]
) -> dict[str, Any]:
    """One bench row (the keys of ``bench.result_from_stats`` plus the cluster's own)."""
    master = rep["latency_ms"]["master"]
    frame = rep["latency_ms"]["frame"]
    overhead = sum(v for k, v in master.items() if k not in ("idle", "source"))
    echo = bool(meta["options"].get("echo"))
    return {
        "name": name,
        "frames": rep["frames_out"],
        "fps": rep["fps"],
        "miou": None if echo else rep["miou"],  # echo labels are canned
        "speedup": None,
        "seg_fraction": rep["seg_fraction"],
        "latency_ms": {"frame": {k: frame[k] for k in ("mean", "p50", "p99")}},
        "kind": "capacity" if echo else "cluster",
        **meta,
        "frames_in": rep["frames_in"],
        "frames_dropped": rep["frames_dropped"],
        "bytes_per_frame": rep["bytes_per_frame"],
        "breakdown": {"master": master, "slave": rep["latency_ms"]["slave"]},
        "master_overhead_ms": overhead,
        "master_overhead_ms_excl_metrics": overhead - master.get("metrics", 0.0),
        "master_cpu_ms": rep.get("cpu_ms_per_frame", {}).get("overhead"),
        "master_cpu_ms_process": rep.get("cpu_ms_per_frame", {}).get("process"),
        "master_cpu_ms_main_thread": rep.get("cpu_ms_per_frame", {}).get("main_thread"),
        "per_slave": {
            k: {"regions": v["regions"], "seg": v["seg"], "flow": v["flow"]}
            for k, v in rep["per_slave"].items()
        },
        "slave_utilisation": rep["slave_utilisation"],
        "forwarded_keys": rep["scheduler"]["forwarded_keys"],
        "key_age": key_age(trace),
        "aborted": rep.get("aborted"),
    }


def run_cluster(name: str, ctx: BenchContext) -> dict[str, Any]:
    """Run one ``1+N`` config for real; returns its bench row (retried if its port was taken)."""
    for attempt in range(3):
        try:
            return _run_cluster_once(name, ctx)
        except _PortTaken:
            if attempt == 2:
                raise BenchError(f"{name}: no free loopback port after 3 tries") from None
    raise AssertionError("unreachable")


def _cpu_busy() -> dict[int, float]:
    """Busy seconds per CPU since boot (``/proc/stat``: everything but idle and iowait)."""
    tck = os.sysconf("SC_CLK_TCK")
    out: dict[int, float] = {}
    for line in Path("/proc/stat").read_text().splitlines():
        f = line.split()
        if f and f[0].startswith("cpu") and f[0][3:].isdigit():
            v = [int(x) for x in f[1:9]]
            out[int(f[0][3:])] = (sum(v) - v[3] - v[4]) / tck
    return out


def _sched(pid: int) -> tuple[float, float]:
    """(seconds on a CPU, seconds runnable but waiting) of a process, all its threads."""
    run = wait = 0.0
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            try:
                r, w, _ = (task / "schedstat").read_text().split()
            except (OSError, ValueError):
                continue
            run += int(r) / 1e9
            wait += int(w) / 1e9
    except OSError:
        pass
    return run, wait


class _Sampler(threading.Thread):
    """Samples per-CPU busy time and our processes' run/wait time, to measure other jobs' load."""

    def __init__(self, pids: dict[int, int], period: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.pids = pids  # pid -> core
        self.period = period
        self.samples: list[tuple[float, dict[int, float], dict[int, tuple[float, float]]]] = []
        self.stop_event = threading.Event()

    def sample(self) -> None:
        last = self.samples[-1][2] if self.samples else {}
        procs = {}
        for pid in self.pids:
            rw = _sched(pid)
            procs[pid] = rw if rw != (0.0, 0.0) else last.get(pid, rw)  # keep the last value after exit
        self.samples.append((time.monotonic(), _cpu_busy(), procs))

    def run(self) -> None:
        while not self.stop_event.wait(self.period):
            self.sample()

    def background(self, t0: float, t1: float) -> dict[str, Any]:
        """
        Other jobs on each core over [t0, t1]: their CPU share, and the CPU-bound threads that explain it.

        Our processes on a core are runnable ``S`` core-seconds per second (run + run-queue wait,
        ``schedstat``), so at least one of them is runnable ``u = min(1, S)`` of the time and, when
        they are, ``n = max(1, S)`` of them on average. Other jobs take ``bg`` of the core
        (``/proc/stat`` minus ours). Processor sharing with ``k`` CPU-bound threads gives
        ``bg = (1 - u) + u k / (n + k)``; ``k`` is what the simulator replays on that core.
        """
        empty: dict[str, Any] = {"window_s": 0.0, "cpu_other": {}, "ours_runnable": {}, "threads": {}}
        if len(self.samples) < 2 or t1 <= t0:
            return empty
        a = min(self.samples, key=lambda x: abs(x[0] - t0))
        b = min(self.samples, key=lambda x: abs(x[0] - t1))
        w = b[0] - a[0]
        if w <= 0:
            return empty
        other: dict[str, float] = {}
        runnable: dict[str, float] = {}
        threads: dict[str, float] = {}
        for core in sorted(set(self.pids.values())):
            ours_run = ours_runnable = 0.0
            for pid, c in self.pids.items():
                if c == core:
                    r0, w0 = a[2].get(pid, (0.0, 0.0))
                    r1, w1 = b[2].get(pid, (0.0, 0.0))
                    ours_run += r1 - r0
                    ours_runnable += (r1 - r0) + (w1 - w0)
            bg = min(1.0, max(0.0, (b[1].get(core, 0.0) - a[1].get(core, 0.0) - ours_run) / w))
            big_s = ours_runnable / w
            u, n = min(1.0, big_s), max(1.0, big_s)
            f = (bg - (1.0 - u)) / u if u > 0.05 else 0.0
            f = min(max(f, 0.0), 0.9)
            other[str(core)] = round(bg, 3)
            runnable[str(core)] = round(big_s, 3)
            threads[str(core)] = round(f * n / (1.0 - f), 3)
        return {"window_s": w, "cpu_other": other, "ours_runnable": runnable, "threads": threads}


class _PortTaken(Exception):
    """The master's loopback port was taken between choosing it and binding it."""


def _run_cluster_once(name: str, ctx: BenchContext) -> dict[str, Any]:
    cores = all_cores()
    out_dir = _workdir(ctx)
    slave_cmds, (mcmd, mcore), meta = cluster_commands(name, ctx, out_dir, cores)
    for stale in (meta["report_file"], meta["trace_file"]):
        Path(stale).unlink(missing_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    load_before = os.getloadavg()
    procs: list[subprocess.Popen[bytes]] = []
    log_path = out_dir / f"{_slug(name)}.log"
    log = open(log_path, "wb")  # noqa: SIM115 - closed in finally
    try:
        for cmd, core in slave_cmds:
            procs.append(
                subprocess.Popen(
                    cmd, env=env, preexec_fn=pin_to(core), stdout=log, stderr=log, start_new_session=True
                )
            )
        master = subprocess.Popen(mcmd, env=env, preexec_fn=pin_to(mcore), stdout=log, stderr=log)
        pids = {p.pid: core for p, (_, core) in zip(procs, slave_cmds, strict=True)}
        pids[master.pid] = mcore
        sampler = _Sampler(pids)
        sampler.start()
        try:
            rc = master.wait(timeout=RUN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            master.kill()
            master.wait()
            raise BenchError(f"{name}: the master did not finish within {RUN_TIMEOUT_S:g} s") from None
        finally:
            t_exit = time.monotonic()
            sampler.stop_event.set()
            sampler.join()
            sampler.sample()
    finally:
        _stop(procs)
        log.close()
    report = Path(meta["report_file"])
    if rc != 0 or not report.is_file():
        tail = log_path.read_text(errors="replace")[-800:]
        if "Address already in use" in tail:
            raise _PortTaken()
        raise BenchError(f"{name}: the master exited with status {rc}:\n{tail}")
    rep = json.loads(report.read_text())
    trace_path = Path(meta["trace_file"])
    trace = json.loads(trace_path.read_text()) if trace_path.is_file() else {}
    row = row_from_report(name, rep, trace, meta)
    row["load_avg_1m"] = [load_before[0], os.getloadavg()[0]]
    # The master's clock runs for wall_seconds and stops just before it writes its report and exits.
    row["background"] = sampler.background(t_exit - float(rep["wall_seconds"]), t_exit)
    row["commands"] = {"master": _short(mcmd, mcore), "slave0": _short(slave_cmds[0][0], slave_cmds[0][1])}
    return row


def _short(cmd: list[str], core: int) -> str:
    import shlex

    args = cmd[3:] if cmd[1:3] == ["-m", "dvs_cluster.cli"] else cmd[1:]
    prog = "dvs-cluster" if cmd[1:3] == ["-m", "dvs_cluster.cli"] else "python"
    return f"taskset -c {core} {prog} " + shlex.join(args)


# -- the paper's variant of the slave: flow-path results carry their logits ---------------------------


class FlowLogitsHooks(SlaveHooks):
    """The slave sends the flow path's warped logits along with its labels (option ``logits``)."""

    def result(self, result: Result, outcome: RegionOutcome) -> Result:
        """A flow result gets the outcome's logits (the paper's scheme ships them)."""
        if result.logits is None and outcome.logits is not None:
            return replace(result, logits=outcome.logits)
        return result


def _flow_logits(args: list[str]) -> tuple[SlaveHooks, list[str]]:
    return FlowLogitsHooks(), args


# -- master capacity: a slave that answers at once -----------------------------------------------------


class EchoHooks(SlaveHooks):
    """
    No networks: canned outcomes, the seg path on ``ECHO_SEG`` of the regions (option ``echo``).

    Everything else is the real slave: decoding, keys, encoding, transport. ``hold_ms``: sleep that long
    before answering (option ``holdK``: a cluster's pace with no compute).
    """

    def __init__(self, hold_ms: float = 0.0) -> None:
        """Answer ``hold_ms`` after each task arrives."""
        self.hold_ms = hold_ms
        self._canned: dict[tuple[int, int], tuple[Any, Any, Any]] = {}

    def process(self, task: Task, run: Callable[[], RegionOutcome]) -> RegionOutcome:
        """A canned outcome of the task's region size; ``run`` (the nets) is never called."""
        import numpy as np

        from dvs_cluster.core.classes import NUM_CLASSES
        from dvs_cluster.core.keys import KeyFrame
        from dvs_cluster.core.processor import logit_grid

        if self.hold_ms:
            time.sleep(self.hold_ms / 1000.0)
        h, w = task.image.shape[:2]
        if (h, w) not in self._canned:
            labels = np.zeros((h, w), np.uint8)
            logits = np.zeros((NUM_CLASSES, *logit_grid(h, w)), np.float32)
            self._canned[h, w] = (labels, logits, labels.astype(np.float32))
        labels, logits, confidence = self._canned[h, w]
        seg = (task.sequence + task.region) % ECHO_SEG[1] < ECHO_SEG[0]
        key = KeyFrame(task.sequence, task.image, logits) if seg else None
        return RegionOutcome(
            task.region,
            task.sequence,
            "seg" if seg else "flow",
            100.0,
            logits,
            labels,
            confidence,
            key,
            None,
            state=key,
        )


def _echo(args: list[str]) -> tuple[SlaveHooks, list[str]]:
    """Takes ``--hold-ms K`` off the slave's options."""
    import argparse

    hold = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    hold.add_argument("--hold-ms", type=float, default=0.0)
    opts, rest = hold.parse_known_args(args)
    return EchoHooks(opts.hold_ms), rest


#: Slave variants: each makes the hooks of its variant and returns the slave options it leaves.
WRAPPERS: dict[str, Callable[[list[str]], tuple[SlaveHooks, list[str]]]] = {
    "slave": _flow_logits,
    "echo-slave": _echo,
}


def main(argv: list[str] | None = None) -> int:
    """
    ``python -m dvs_cluster.nodes.bench slave|echo-slave SLAVE-OPTIONS``: the bench's slave variants.

    ``slave``: flow results carry logits (option ``logits``); ``echo-slave [--hold-ms K]``: no networks
    (``echo``), each answer K ms after its task (``holdK``). Both are ``dvs-cluster slave`` with
    :class:`~dvs_cluster.nodes.slave.SlaveHooks`.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] not in ([k] for k in WRAPPERS):
        print("usage: python -m dvs_cluster.nodes.bench slave|echo-slave SLAVE-OPTIONS", file=sys.stderr)
        return 2
    hooks, rest = WRAPPERS[args[0]](args[1:])
    from dvs_cluster.nodes.cli import main as cluster_main

    return cluster_main(["slave", *rest], slave_hooks=hooks)


def observe_in_process() -> Any:
    """``bench.RUN_OBSERVERS`` entry: the other jobs' load on this process's cores during a config."""
    cores = sorted(os.sched_getaffinity(0))
    sampler = _Sampler({os.getpid(): c for c in cores[:1]} if len(cores) == 1 else {})
    sampler.sample()
    t0 = time.monotonic()

    def finish() -> dict[str, Any]:
        sampler.sample()
        if len(cores) != 1:
            return {"background": {"cpu_other": {}, "threads": {}, "note": "bench process not pinned"}}
        return {"background": sampler.background(t0, time.monotonic()), "core": cores[0]}

    return finish


register_runner("1+", run_cluster)
if observe_in_process not in _bench.RUN_OBSERVERS:
    _bench.RUN_OBSERVERS.append(observe_in_process)

try:  # the report hook needs the simulator; the runner works without it
    from dvs_cluster.sim.report import install as _install_report_hook
except ModuleNotFoundError:  # pragma: no cover
    pass
else:
    _install_report_hook()


if __name__ == "__main__":
    sys.exit(main())
