"""
Chaos group (issue 8): real master/slave processes over Zenoh, faults injected mid-run.

Every scenario checks the one promise: each accepted frame comes out exactly once, in order, or is
counted dropped (the camera runs at a fixed ``--rate`` so a cluster that loses capacity must drop, and
count). Figures per fault (frames in/out/dropped, recovery time, added latency) go to the test output and
to ``out/chaos/chaos.json``. Bounded: each scenario is a few seconds of frames at 512x256.
Run: ``pytest -m chaos`` (in CI with the rest).
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from chaos_support import Chaos, W, check_exactly_once, frame_figures, frames_dir, latency_figures, record
from cluster_support import cli, free_port, model_dir

from dvs_cluster.transport.messages import Task, encode_task

pytestmark = [pytest.mark.chaos, pytest.mark.slow]

RATE = ["--rate", "20"]  # camera at 20 fps: faults that cost capacity show up as counted drops


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return model_dir(tmp_path_factory)


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return frames_dir(tmp_path_factory.mktemp("frames"))


@pytest.fixture
def chaos(models: Path, source: Path, tmp_path: Path) -> Iterator[Any]:
    made: list[Chaos] = []

    def make(**kw: Any) -> Chaos:
        out = tmp_path / f"cluster{len(made)}"  # own report files: two clusters may both name a master "m"
        out.mkdir()
        c = Chaos(models, out, source, **kw)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


# -- slave faults --------------------------------------------------------------------------------------


def test_slave_kill9_mid_run(chaos: Any) -> None:
    c = chaos()
    c.start_slave("s0")
    c.start_slave("s1")
    c.start_master("m", 100, 2, *RATE, "--timeout", "2")
    c.wait_for(lambda: c.results_of() >= 30, master="m")
    killed: list[float] = []

    def kill_on_task(key: str, payload: bytes) -> None:  # the moment a task is on its way to s0
        if not killed:
            killed.append(c.now())
            c.slaves["s0"].kill()  # SIGKILL: no goodbye, liveliness has to notice

    c.bus.subscribe(c.keys.task("s0"), kill_on_task)
    c.wait_for(lambda: bool(killed), timeout=30)
    t_fault = killed[0]
    t_gone = c.wait_for(lambda: "s0" not in c.alive, timeout=30)
    rep, trace = c.finish("m")
    check_exactly_once(rep, trace)
    assert c.slaves["s1"].poll() is None
    late = [a for a in c.answers if a[0] > t_fault]
    assert late and all(a[1] == "s1" for a in late if a[0] > t_gone + 0.5)
    redone = [a for a in late if a[4] >= 1]
    t_recovered = redone[0][0] if redone else t_gone
    record(
        "slave_kill9",
        {
            **frame_figures(rep),
            **latency_figures(rep, trace),
            "faults": 1,
            "detect_s": round(t_gone - t_fault, 3),
            "recovery_s": round(t_recovered - t_fault, 3),
        },
    )


def test_slave_stalled_sigstop(chaos: Any) -> None:
    c = chaos()
    c.start_slave("s0")
    c.start_slave("s1")
    c.start_master("m", 240, 2, *RATE, "--timeout", "1")
    c.wait_for(lambda: c.results_of() >= 30, master="m")
    t_fault = c.now()
    c.slaves["s0"].send_signal(signal.SIGSTOP)  # alive (liveliness holds), answers nothing
    t_redone = c.wait_for(lambda: any(a[4] >= 1 and a[0] > t_fault for a in c.answers), timeout=20)
    time.sleep(max(0.0, t_fault + 3.0 - c.now()))
    t_cont = c.now()
    c.slaves["s0"].send_signal(signal.SIGCONT)
    t_back = c.wait_for(lambda: c.results_of("s0", since=t_cont) >= 3, timeout=30, master="m")
    rep, trace = c.finish("m")
    check_exactly_once(rep, trace)
    assert rep["scheduler"]["timeouts"] >= 1 and rep["scheduler"]["redispatched"] >= 1
    record(
        "slave_stalled",
        {
            **frame_figures(rep),
            **latency_figures(rep, trace),
            "faults": 1,
            "stall_s": round(t_cont - t_fault, 3),
            "recovery_s": round(t_redone - t_fault, 3),  # its task answered by another slave
            "rejoin_s": round(t_back - t_cont, 3),  # resumed slave back in use
        },
    )


def test_slave_joins_late_then_restarts(chaos: Any) -> None:
    c = chaos()
    c.start_slave("s0")
    c.start_master("m", 140, 1, *RATE)
    c.wait_for(lambda: c.results_of() >= 20, master="m")
    t_join = c.now()
    c.start_slave("s1")
    t_first = c.wait_for(lambda: c.results_of("s1") >= 1, timeout=60, master="m")
    c.wait_for(lambda: c.results_of("s1") >= 8, timeout=30, master="m")
    t_fault = c.now()
    c.slaves["s1"].kill()
    c.slaves["s1"].wait()
    c.start_slave("s1")  # same name, new incarnation: no keys, tasks of the old one re-queued
    t_again = c.wait_for(lambda: c.results_of("s1", since=t_fault + 0.01) >= 1, timeout=60, master="m")
    rep, trace = c.finish("m")
    check_exactly_once(rep, trace)
    s1 = [r for r in trace["regions"] if r["slave"] == "s1"]
    assert s1, "the late slave got no work"
    # It got keys: some of its flow-path answers warp a key it did not segment itself.
    assert rep["scheduler"]["forwarded_keys"] > 0
    record(
        "slave_late_join_and_restart",
        {
            **frame_figures(rep),
            **latency_figures(rep, trace),
            "faults": 2,
            "join_to_first_result_s": round(t_first - t_join, 3),
            "restart_to_first_result_s": round(t_again - t_fault, 3),
            "late_slave_regions": len(s1),
            "forwarded_keys": rep["scheduler"]["forwarded_keys"],
        },
    )


def test_all_slaves_gone_then_one_returns(chaos: Any) -> None:
    c = chaos()
    c.start_slave("s0")
    c.start_slave("s1")
    c.start_master("m", 140, 2, *RATE, "--lost", "0")
    c.wait_for(lambda: c.results_of() >= 20, master="m")
    t_fault = c.now()
    for name in ("s0", "s1"):
        c.slaves[name].kill()
    c.wait_for(lambda: not c.alive, timeout=30)
    time.sleep(2.0)
    during = [s for t, s in c.master_status if t > t_fault + 0.5]
    # The master lives on, says so, and counts what it cannot serve.
    assert len(during) >= 5, "no master heartbeat while no slave was alive"
    assert during[-1]["slaves_alive"] == []
    assert during[-1]["frames_dropped"] > during[0]["frames_dropped"]
    out_during = {s["frames_out"] for s in during[2:]}
    assert len(out_during) == 1, "frames came out with no slave alive"
    t_return = c.now()
    c.start_slave("s2")
    t_first = c.wait_for(lambda: c.results_of("s2") >= 1, timeout=60, master="m")
    t_out = c.wait_for(
        lambda: c.master_status[-1][1]["frames_out"] > during[-1]["frames_out"], timeout=30, master="m"
    )
    rep, trace = c.finish("m")
    check_exactly_once(rep, trace)
    assert rep["frames_dropped"] > 0
    record(
        "all_slaves_gone",
        {
            **frame_figures(rep),
            **latency_figures(rep, trace),
            "faults": 2,
            "outage_s": round(t_return - t_fault, 3),
            "master_heartbeats_during_outage": len(during),
            "recovery_s": round(t_out - t_return, 3),  # slave start (model load included) -> frames out
            "return_to_first_result_s": round(t_first - t_return, 3),
        },
    )


def test_master_restart_slaves_reconnect(chaos: Any) -> None:
    c = chaos()
    c.start_slave("s0")
    c.start_slave("s1")
    c.start_master("m1", 100_000, 2, *RATE)
    c.wait_for(lambda: c.results_of() >= 20, master="m1")
    pids = {n: p.pid for n, p in c.slaves.items()}
    first_run = c.answers[-1][5]
    t_fault = c.now()
    c.masters["m1"].kill()
    c.masters["m1"].wait()
    c.start_master("m2", 40, 2, *RATE)
    t_first = c.wait_for(lambda: any(a[5] != first_run for a in c.answers), timeout=60, master="m2")
    rep, trace = c.finish("m2")
    check_exactly_once(rep, trace)
    assert set(rep["per_slave"]) == {"s0", "s1"} and all(s["regions"] > 0 for s in rep["per_slave"].values())
    assert {n: p.pid for n, p in c.slaves.items()} == pids and all(
        p.poll() is None for p in c.slaves.values()
    )
    joined = [e["t"] for e in rep["slave_events"] if e["alive"]]
    record(
        "master_restart",
        {
            **frame_figures(rep),
            **latency_figures(rep, trace),
            "faults": 1,
            "slaves_rejoined_after_master_up_s": round(max(joined), 3),
            "kill_to_first_result_s": round(t_first - t_fault, 3),  # includes the new master's start-up
        },
    )


# -- bad input -----------------------------------------------------------------------------------------


def test_fuzz_every_key_of_a_live_cluster(chaos: Any) -> None:
    from dvs_cluster.nodes.fuzz import fuzz_bus

    c = chaos()
    c.start_slave("s0")
    c.start_slave("s1")
    c.start_master("m", 100, 2, *RATE)
    c.wait_for(lambda: c.results_of() >= 10 and c.master_status, master="m")
    run_id = c.master_status[-1][1]["run_id"]
    sent = fuzz_bus(c.bus, c.cluster, ["s0", "s1"], 900, seed=7, rate=600, run_id=run_id)
    rep, trace = c.finish("m")
    check_exactly_once(rep, trace)
    assert all(p.poll() is None for p in c.slaves.values()), "a slave died on fuzz"
    bad = rep["malformed"]["master"] + rep["malformed"]["foreign"] + rep["scheduler"]["late_or_unknown"]
    assert bad >= sent.sent["result"]  # every result-key payload dropped or discarded by some check
    record(
        "fuzz_live_cluster",
        {**frame_figures(rep), "messages_sent": sent.total, "survived": True, "master_dropped": bad},
    )


def test_fuzz_in_process_exactly_once(models: Path) -> None:
    from dvs_cluster.nodes.fuzz import fuzz_in_process

    rep = fuzz_in_process(1500, seed=3, models_dir=str(models), frames=12)
    assert rep["sent_total"] == 1500
    assert rep["in_order_once"] and rep["frames_out"] == rep["frames_in"] == 12
    assert rep["slave"]["errors"] == 0
    record("fuzz_in_process", rep)


def test_absurd_messages_each_have_a_defined_outcome(models: Path) -> None:
    """Well-typed nonsense: dropped with a reason, or (a task the slave can serve) answered safely."""
    from dvs_cluster.inference import OnnxModels
    from dvs_cluster.nodes.fuzz import absurd_messages
    from dvs_cluster.nodes.master import MasterConfig, MasterNode
    from dvs_cluster.nodes.slave import SlaveNode
    from dvs_cluster.transport.loopback import LoopbackTransport

    bus = LoopbackTransport()
    master = MasterNode(bus, MasterConfig(cluster_id="a", width=W, height=256, status_period_s=0))
    slave = SlaveNode("s0", bus, OnnxModels(models, intra_op_threads=1), cluster_id="a")
    msgs = absurd_messages("a", "s0", master.run_id, 256, 128)
    for why, data in msgs["task"]:
        before = (slave.counters.malformed, slave.counters.foreign, slave.counters.tasks_done)
        slave.handle(data)
        after = (slave.counters.malformed, slave.counters.foreign, slave.counters.tasks_done)
        assert after != before, why  # counted as dropped, or answered
        assert slave.counters.errors == 0, why
    for kind in ("result", "status"):
        key = master.keys.result if kind == "result" else master.keys.status("s0")
        for why, data in msgs[kind]:
            dropped = master.malformed + master.foreign + master.wm.unknown + master.wm.duplicates
            bus.publish(key, data)
            master.poll(timeout=0.0)
            now = master.malformed + master.foreign + master.wm.unknown + master.wm.duplicates
            if why != "extreme counters, 255 key sequences, far stamp":  # a valid heartbeat, just odd
                assert now > dropped, why
    assert master.frames_out == 0 and not master.global_keys.get(0)  # no NaN / foreign key got in
    slave.close()
    master.close()


def test_every_slave_suspect_is_probed_again() -> None:
    """A task or its answer lost on the only slave: after the timeout it is tried again, not idle for ever."""
    from dvs_cluster.io.sources import open_source
    from dvs_cluster.nodes.master import MasterConfig, MasterNode
    from dvs_cluster.transport.loopback import LoopbackTransport
    from dvs_cluster.transport.messages import decode_task

    bus = LoopbackTransport()
    cfg = MasterConfig(
        cluster_id="a", width=W, height=256, timeout_s=0.05, status_period_s=0, max_in_flight=1
    )
    master = MasterNode(bus, cfg)
    got: list[bytes] = []
    bus.subscribe(master.keys.task("s0"), lambda k, p: got.append(p))  # a slave whose answers get lost
    bus.declare_liveliness(master.keys.alive_slave("s0"))
    with open_source("synthetic", W, 256, frames=1) as src:
        master.submit(next(iter(src)))
    master.poll()
    assert len(got) == 1
    time.sleep(0.1)
    master.poll()
    time.sleep(0.1)
    master.poll()
    assert len(got) >= 2 and decode_task(got[1]).attempt >= 1  # re-dispatched to the suspect slave
    master.close()


def test_camera_frames_bad_encoding_zero_size_size_change() -> None:
    """The ROS master's image path without ROS: refused frames are counted, accepted ones unaffected."""
    from dvs_cluster.io.imgmsg import ImageEncodingError, image_to_rgb
    from dvs_cluster.io.sources import Frame, FrameTransform
    from dvs_cluster.nodes.master import MasterConfig, MasterNode
    from dvs_cluster.transport.loopback import LoopbackTransport

    master = MasterNode(
        LoopbackTransport(), MasterConfig(cluster_id="a", width=W, height=256, status_period_s=0)
    )

    def msg(w: int, h: int, enc: str = "rgb8", ch: int = 3, step: int | None = None) -> Any:
        step = w * ch if step is None else step
        return SimpleNamespace(width=w, height=h, encoding=enc, step=step, data=bytes(step * h))

    bad = [msg(64, 48, "32FC1", 4), msg(0, 0), msg(64, 0), msg(64, 48, step=10), msg(64, 48, "8UC3")]
    for m in bad:
        with pytest.raises(ImageEncodingError):
            image_to_rgb(m)
    index = 0
    victims: list[int] = []
    for w, h in [(640, 480), (640, 480), (320, 200), (1920, 1080), (640, 480)]:  # size changes mid-stream
        rgb = image_to_rgb(msg(w, h))
        tf = FrameTransform(w, h, W, 256, "letterbox")
        victims += master.submit(Frame(index, tf.forward(rgb), None, 0.0, tf, rgb))
        index += 1
    assert victims == [0]  # no slave: the bounded queue (4) drops the oldest, counted
    with pytest.raises(ValueError, match="expected"):  # not at the processing size: refused, counted
        master.submit(Frame(index, np.zeros((10, 10, 3), np.uint8), None, 0.0, tf, rgb))
    with pytest.raises(ValueError, match="not after"):  # sequence going back
        master.submit(Frame(1, tf.forward(rgb), None, 0.0, tf, rgb))
    assert master.rejected_frames == 2 and master.frames_in == 5 and master.pending == 4
    assert master.frames_dropped == 1
    master.close()


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["run", "--slaves", "0"], "--slaves"),
        (["master", "--threshold", "-5"], "--threshold"),
        (["master", "--threshold", "nan"], "--threshold"),
        (["master", "--timeout", "0"], "--timeout"),
        (["master", "--queue", "0"], "--queue"),
        (["master", "--cluster", "a/b"], "--cluster"),
        (["slave", "--name", "s*"], "--name"),
        (["slave", "--name", "s0", "--providers", "warp_drive"], "warp_drive"),
        (["run", "--providers", "warp_drive"], "warp_drive"),
        (["slave", "--name", "s0", "--tls-cert", "x.pem"], "--tls-root-ca"),
        (
            ["slave", "--name", "s0", "--zenoh-config", "/nonexistent.json5", "--models", "MODELS"],
            "--zenoh-config",
        ),
    ],
)
def test_bad_config_refused_at_startup_naming_it(args: list[str], named: str, models: Path) -> None:
    args = [str(models) if a == "MODELS" else a for a in args]
    r = cli(*args, stderr=subprocess.PIPE, stdout=subprocess.PIPE)
    _, err = r.communicate(timeout=60)
    assert r.returncode == 2, err.decode()[-2000:]
    assert named in err.decode() and b"Traceback" not in err


def test_missing_or_corrupt_model_named(tmp_path: Path, models: Path) -> None:
    for name in ("seg.onnx", "flow.onnx", "dn.onnx"):
        (tmp_path / name).write_bytes((models / name).read_bytes())
    (tmp_path / "flow.onnx").write_bytes(b"this is not onnx")
    (tmp_path / "dn.onnx").unlink()
    # The FlowNet path (--flow onnx) needs all three files; the default DIS path needs seg + dn2_dis.
    r = cli("run", "--models", str(tmp_path), "--flow", "onnx", "--slaves", "1", stderr=subprocess.PIPE)
    _, err = r.communicate(timeout=60)
    assert r.returncode == 2 and "dn.onnx" in err.decode() and b"Traceback" not in err
    (tmp_path / "dn.onnx").write_bytes((models / "dn.onnx").read_bytes())
    r = cli(
        "slave",
        "--name",
        "s0",
        "--models",
        str(tmp_path),
        "--flow",
        "onnx",
        "--multicast",
        "off",
        stderr=subprocess.PIPE,
    )
    _, err = r.communicate(timeout=60)
    assert r.returncode == 2 and "flow.onnx" in err.decode() and b"Traceback" not in err


# -- isolation -----------------------------------------------------------------------------------------


def test_two_clusters_one_network_no_crosstalk(chaos: Any) -> None:
    a = chaos()
    b = chaos(endpoint=a.endpoint, shared=True)  # every node of both clusters on one Zenoh network
    for c in (a, b):
        c.start_slave("s0")  # same slave name in both clusters
    a.start_master("m", 40, 1, *RATE)
    b.start_master("m", 40, 1, *RATE)
    a.wait_for(lambda: a.results_of() >= 5, master="m")
    # A master of cluster B sends a well-formed task straight onto A's slave key: A's slave ignores it.
    img = np.zeros((128, 256, 3), np.uint8)
    task = Task(b.cluster, "s0", 0, 0, 4, (0, 0, 256, 128), img, 50.0, run_id="b")
    for _ in range(5):
        a.bus.publish(a.keys.task("s0"), encode_task(task))
    a.wait_for(lambda: "s0" in a.statuses and a.statuses["s0"].malformed >= 5, timeout=15)
    ra, ta = a.finish("m")
    rb, tb = b.finish("m")
    for rep, trace in ((ra, ta), (rb, tb)):
        check_exactly_once(rep, trace)
        assert rep["frames_out"] + rep["frames_dropped"] == 40 and set(rep["per_slave"]) == {"s0"}
        assert rep["malformed"]["foreign"] == 0  # nothing of the other cluster ever arrived
    assert all(run == ra["run_id"] for _, _, _, _, _, run in a.answers)
    assert all(run == rb["run_id"] for _, _, _, _, _, run in b.answers)
    record("two_clusters", {"a": frame_figures(ra), "b": frame_figures(rb), "foreign_tasks_sent_to_a": 5})


def _certs(d: Path, name: str) -> tuple[Path, Path, Path]:
    """A fresh CA and a certificate for localhost/127.0.0.1 signed by it (openssl CLI), as PEM files."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI not found")
    d.mkdir(parents=True, exist_ok=True)
    ca, ca_key, cert, key, csr = d / "ca.pem", d / "ca.key", d / f"{name}.pem", d / f"{name}.key", d / "n.csr"
    ext = d / "san.ext"
    ext.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")

    def ssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)

    ssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
        "-subj", f"/CN={name} CA", "-keyout", str(ca_key), "-out", str(ca))  # fmt: skip
    ssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=localhost",
        "-keyout", str(key), "-out", str(csr))  # fmt: skip
    ssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
        "-days", "2", "-extfile", str(ext), "-out", str(cert))  # fmt: skip
    return ca, cert, key


def test_zenoh_mutual_tls(models: Path, tmp_path: Path) -> None:
    ca, cert, key = _certs(tmp_path / "good", "node")
    ep = f"tls/localhost:{free_port()}"
    tls = ["--tls-root-ca", str(ca), "--tls-cert", str(cert), "--tls-key", str(key)]
    out = tmp_path / "report.json"
    # `run` passes the TLS files on to its slaves: the whole cluster talks over mTLS.
    r = cli(
        "run", "--slaves", "1", "--models", str(models), "--frames", "6", "--width", str(W),
        "--height", "256", "--threads", "1", "--listen", ep, "--multicast", "off", *tls,
        "--json", str(out), "--wait", "60",
    )  # fmt: skip
    assert r.wait(timeout=180) == 0
    rep = json.loads(out.read_text())
    assert rep["frames_out"] == 6
    # An intruder whose certificate another CA signed never joins.
    ca2, cert2, key2 = _certs(tmp_path / "evil", "intruder")
    ep2 = f"tls/localhost:{free_port()}"
    master = cli(
        "master", "--cluster", "tls", "--listen", ep2, "--multicast", "off", *tls, "--frames", "2",
        "--width", str(W), "--height", "256", "--wait", "6", stderr=subprocess.PIPE,
    )  # fmt: skip
    intruder = cli(
        "slave", "--name", "evil", "--cluster", "tls", "--connect", ep2, "--multicast", "off",
        "--models", str(models), "--tls-root-ca", str(ca2), "--tls-cert", str(cert2), "--tls-key", str(key2),
    )  # fmt: skip
    try:
        _, err = master.communicate(timeout=60)
        assert master.returncode == 2 and "dvs-cluster: error: only 0 of 1 slave(s) joined" in err.decode()
    finally:
        intruder.terminate()
        intruder.wait(timeout=10)
    record("mutual_tls", {"frames_out_over_tls": rep["frames_out"], "foreign_ca_slave_joined": False})


def test_non_finite_key_is_never_forwarded() -> None:
    """Seg results with NaN logits: their labels count, their keys are dropped when they would leave."""
    from dvs_cluster.io.sources import open_source
    from dvs_cluster.nodes.master import MasterConfig, MasterNode
    from dvs_cluster.transport.loopback import LoopbackTransport
    from dvs_cluster.transport.messages import PATH_SEG, Result, decode_task, encode_result

    bus = LoopbackTransport()
    master = MasterNode(bus, MasterConfig(cluster_id="a", width=W, height=256, status_period_s=0))
    tasks: list[tuple[str, bytes]] = []
    tokens = {}
    for s in ("s0", "s1"):
        bus.subscribe(master.keys.task(s), lambda k, p: tasks.append((k, p)))
        tokens[s] = bus.declare_liveliness(master.keys.alive_slave(s))
    frames = 6
    with open_source("synthetic", W, 256, frames=frames) as src:
        pending = list(src)
    answered = 0
    while master.frames_out < frames:
        while pending and master.has_room():
            master.submit(pending.pop(0))
        master.poll(timeout=0.0)
        while tasks:
            key, payload = tasks.pop(0)
            t = decode_task(payload)  # a forwarded NaN key would raise MessageError here
            assert t.key is None
            h, w = t.image.shape[:2]
            logits = np.zeros((19, h // 4, w // 4), np.float32)
            logits[0, 0, 0] = np.nan
            labels = np.full((h, w), 7, np.uint8)
            res = Result("a", master.keys.last_chunk(key), t.sequence, t.region, PATH_SEG, 10.0, t.sequence,
                         labels, logits, run_id=t.run_id)  # fmt: skip
            bus.publish(master.keys.result, bytes(encode_result(res)))
            answered += 1
        if master.frames_out >= 1 and "s0" in tokens:  # s0 leaves: s1 gets the regions whose keys s0 made
            tokens.pop("s0").close()
        assert answered <= 4 * frames
    rep = master.report()
    assert rep["frames_out"] == frames and rep["frames_dropped"] == 0
    # Every key the scheduler wanted to forward was refused and counted, none reached a slave (nor
    # counts as forwarded: the one global key buffer dropped it before any key table noted it).
    assert master.malformed >= 1
    assert rep["scheduler"]["forwarded_keys"] == 0
    master.close()
