"""
Chaos group, network faults (issue 8): one slave's link fails while the cluster runs, between namespaces.

Reuses the namespace set-up of ``test_netns.py`` (one namespace per node, veth pairs into a bridge, a
``tbf`` rate limit on both ends). The master and two slaves run for ~25 s of a 20 fps camera while the
test breaks slave ``s1``'s link in three ways, one after the other, with a healthy gap between:
link down then up, ``netem`` loss + delay, and a bandwidth collapse (1 Gbit/s -> 2 Mbit/s). Expected:
the cluster degrades (``s1`` gets less of the work, drops counted) and recovers by itself (``s1`` back
in use after each repair), every accepted frame out exactly once in order or counted dropped.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from chaos_support import W, check_exactly_once, frame_figures, frames_dir, latency_figures, record
from cluster_support import REPO, model_dir
from test_netns import Net, netns_unavailable, node_cmd, sh

pytestmark = [pytest.mark.chaos, pytest.mark.slow, pytest.mark.netns]

FAULT_S = 3.0
GAP_S = 3.0


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return model_dir(tmp_path_factory)


def _share(trace: dict[str, Any], t0: float, t1: float) -> tuple[int, int]:
    """(regions answered by s1, all regions) accepted in [t0, t1) (master clock)."""
    rs = [r for r in trace["regions"] if t0 <= r["t"] < t1]
    return sum(r["slave"] == "s1" for r in rs), len(rs)


def test_link_faults_degrade_and_recover(models: Path, tmp_path: Path) -> None:
    why = netns_unavailable()
    if why:
        pytest.skip(why)
    source = frames_dir(tmp_path / "src", total=700)
    net = Net("1gbit", 3)
    tag = net.switch[len("dvsw") :]
    s1_ns, s1_sw = net.nodes[2], f"v{tag}2b"  # s1's namespace and its veth end in the switch
    endpoint = f"tcp/{net.ips[0]}:7447"
    common = ["--cluster", "netchaos", "--multicast", "off", "--shm", "off"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    thr = ["--threshold", "40"] if "random_models" in str(models) else []
    procs: list[subprocess.Popen[bytes]] = []
    faults: list[tuple[str, float, float]] = []  # (kind, start, end) host clock

    def tbf(rate: str) -> None:
        for dev, ns in (("eth0", s1_ns), (s1_sw, net.switch)):
            sh("tc", "qdisc", "replace", "dev", dev, "root", "tbf", "rate", rate, "burst", "256kb",
               "latency", "100ms", ns=ns)  # fmt: skip

    def netem(spec: list[str]) -> None:
        for dev, ns in (("eth0", s1_ns), (s1_sw, net.switch)):
            sh("tc", "qdisc", "replace", "dev", dev, "root", "netem", *spec, ns=ns)

    probe = sh("tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms", ns=s1_ns, check=False)
    has_netem = "unknown" not in probe and sh("tc", "qdisc", "show", "dev", "lo", ns=s1_ns).find("netem") >= 0
    try:
        for i, ns in enumerate(net.nodes[1:]):
            procs.append(subprocess.Popen(
                node_cmd(ns, "slave", "--name", f"s{i}", *common, "--connect", endpoint,
                         "--models", str(models), "--threads", "1"),
                cwd=REPO, env=env))  # fmt: skip
        master = subprocess.Popen(
            node_cmd(net.nodes[0], "master", *common, "--listen", endpoint, "--slaves-expected", "2",
                     "--frames", "560", "--width", str(W), "--height", "256", "--source", str(source),
                     "--rate", "20", "--timeout", "1.5", "--lost", "0",
                     "--json", str(tmp_path / "report.json"), "--trace", str(tmp_path / "trace.json"), *thr),
            cwd=REPO, env=env)  # fmt: skip
        procs.append(master)
        tx0 = net.counters(net.nodes[0])[0]
        deadline = time.time() + 90
        while net.counters(net.nodes[0])[0] < tx0 + 5_000_000:  # tasks flowing (models loaded, joined)
            assert master.poll() is None and time.time() < deadline, "the cluster did not start"
            time.sleep(0.2)
        time.sleep(GAP_S)
        phases: list[tuple[str, Any, Any]] = [
            ("link_down", lambda: sh("ip", "link", "set", "eth0", "down", ns=s1_ns),
             lambda: sh("ip", "link", "set", "eth0", "up", ns=s1_ns)),
            ("bandwidth_2mbit", lambda: tbf("2mbit"), lambda: tbf("1gbit")),
        ]  # fmt: skip
        if has_netem:
            loss = ["loss", "20%", "delay", "100ms"]
            phases.insert(1, ("netem_loss20_delay100ms", lambda: netem(loss), lambda: tbf("1gbit")))
        for kind, on, off in phases:
            t0 = time.time()
            on()
            time.sleep(FAULT_S)
            off()
            faults.append((kind, t0, time.time()))
            time.sleep(GAP_S)
        assert master.wait(timeout=120) == 0
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        net.close()
    rep = json.loads((tmp_path / "report.json").read_text())
    trace = json.loads((tmp_path / "trace.json").read_text())
    check_exactly_once(rep, trace)
    base = rep["started_unix"]
    first_fault = faults[0][1] - base
    b1, ball = _share(trace, first_fault - GAP_S, first_fault)
    figures: dict[str, Any] = {
        "baseline_s1_share": round(b1 / max(ball, 1), 3),
        **frame_figures(rep),
        **latency_figures(rep, trace),
    }
    assert ball > 0 and b1 > 0, "s1 not in use before the faults"
    for kind, t_on, t_off in faults:
        on, off = t_on - base, t_off - base
        f1, fall = _share(trace, on + 0.5, off)
        back = [r["t"] for r in trace["regions"] if r["slave"] == "s1" and r["t"] >= off]
        assert back, f"s1 never used again after {kind}"
        recovery = back[0] - off
        figures[kind] = {
            "s1_share_during": round(f1 / max(fall, 1), 3),
            "regions_during": fall,
            "recovery_s": round(recovery, 3),  # repair -> first accepted answer from s1
        }
        assert fall > 0, f"nothing came out during {kind}: the healthy slave should carry on"
        assert recovery < GAP_S + 5, f"{kind}: s1 back only after {recovery:.1f} s"
    # The hard faults take s1 (nearly) out of use while they last.
    assert figures["link_down"]["s1_share_during"] < figures["baseline_s1_share"]
    assert figures["bandwidth_2mbit"]["s1_share_during"] < figures["baseline_s1_share"]
    figures["netem"] = "applied" if has_netem else "skipped: this kernel has no sch_netem"
    record("network_faults", figures)
