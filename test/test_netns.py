"""
The cluster across network interfaces: master and slaves in separate Linux network namespaces.

Topology: one namespace per node, each with a veth pair into a "switch" namespace holding a bridge
(10.77.0.0/24; the master is 10.77.0.1). Every veth end gets a ``tc`` token-bucket limit, so each link
runs at the given rate in both directions. Zenoh runs over TCP between the namespaces. Bytes on the wire
are the master veth's interface counters (payload + CDR + Zenoh framing + TCP/IP). Needs root (or
CAP_NET_ADMIN + CAP_SYS_ADMIN) and ``ip``/``tc`` (iproute2); skips with the reason otherwise. The
namespaces are removed whatever happens.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cluster_support import REPO, model_dir

pytestmark = [pytest.mark.slow, pytest.mark.netns]

W, H = 512, 256
FRAMES = 8
SLAVES = 2


def sh(*cmd: str, ns: str | None = None, check: bool = True) -> str:
    full = (["ip", "netns", "exec", ns] if ns else []) + list(cmd)
    res = subprocess.run(full, capture_output=True, text=True, timeout=30)
    if check and res.returncode != 0:
        raise RuntimeError(f"{' '.join(full)}: {res.stderr.strip()}")
    return res.stdout


def netns_unavailable() -> str | None:
    """Why this machine cannot run the test (None when it can)."""
    if sys.platform != "linux":
        return "network namespaces are Linux-only"
    if os.geteuid() != 0:
        return "needs root to create network namespaces (run as root, or skip: -m 'not netns')"
    for tool in ("ip", "tc"):
        if shutil.which(tool) is None:
            return f"`{tool}` not found (install iproute2)"
    probe = f"dvsprobe{uuid.uuid4().hex[:6]}"
    try:
        sh("ip", "netns", "add", probe)
    except (RuntimeError, OSError) as e:
        return f"cannot create a network namespace here: {e}"
    finally:
        subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


class Net:
    """The namespaces, links and limits; :meth:`close` deletes them all."""

    def __init__(self, rate: str, nodes: int) -> None:
        tag = uuid.uuid4().hex[:5]
        self.switch = f"dvsw{tag}"
        self.nodes = [f"dvsn{tag}{i}" for i in range(nodes)]
        self.created: list[str] = []
        self.ips = [f"10.77.0.{i + 1}" for i in range(nodes)]
        try:
            self._build(rate, tag)
        except BaseException:
            self.close()
            raise

    def _build(self, rate: str, tag: str) -> None:
        for ns in [self.switch, *self.nodes]:
            sh("ip", "netns", "add", ns)
            self.created.append(ns)
            sh("ip", "link", "set", "lo", "up", ns=ns)
        sh("ip", "link", "add", "br0", "type", "bridge", ns=self.switch)
        sh("ip", "link", "set", "br0", "up", ns=self.switch)
        for i, (ns, ip) in enumerate(zip(self.nodes, self.ips, strict=True)):
            a, b = f"v{tag}{i}a", f"v{tag}{i}b"
            sh("ip", "link", "add", a, "netns", ns, "type", "veth", "peer", "name", b, "netns", self.switch)
            sh("ip", "link", "set", a, "name", "eth0", ns=ns)
            sh("ip", "addr", "add", f"{ip}/24", "dev", "eth0", ns=ns)
            sh("ip", "link", "set", "eth0", "up", ns=ns)
            sh("ip", "link", "set", b, "master", "br0", ns=self.switch)
            sh("ip", "link", "set", b, "up", ns=self.switch)
            # Token bucket on both ends: node -> switch and switch -> node each at `rate`.
            for dev, where in (("eth0", ns), (b, self.switch)):
                sh("tc", "qdisc", "add", "dev", dev, "root", "tbf", "rate", rate, "burst", "256kb",
                   "latency", "100ms", ns=where)  # fmt: skip

    def counters(self, ns: str) -> tuple[int, int]:
        """(tx_bytes, rx_bytes) of a node's eth0."""
        # Netlink, not /sys: `ip netns exec` cannot always remount sysfs inside a container.
        (link,) = json.loads(sh("ip", "-s", "-j", "link", "show", "dev", "eth0", ns=ns))
        return int(link["stats64"]["tx"]["bytes"]), int(link["stats64"]["rx"]["bytes"])

    def close(self) -> None:
        for ns in reversed(self.created):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        self.created = []


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return model_dir(tmp_path_factory)


@pytest.fixture
def net_factory() -> Iterator[Any]:
    why = netns_unavailable()
    if why:
        pytest.skip(why)
    made: list[Net] = []

    def make(rate: str, nodes: int) -> Net:
        n = Net(rate, nodes)
        made.append(n)
        return n

    yield make
    for n in made:
        n.close()


def node_cmd(ns: str, *args: str) -> list[str]:
    return ["ip", "netns", "exec", ns, sys.executable, "-m", "dvs_cluster.cli", *args]


@pytest.mark.parametrize("rate", ["1gbit", "100mbit"])
def test_cluster_across_namespaces(rate: str, models: Path, net_factory: Any, tmp_path: Path) -> None:
    net = net_factory(rate, 1 + SLAVES)
    master_ns, slave_ns = net.nodes[0], net.nodes[1:]
    endpoint = f"tcp/{net.ips[0]}:7447"
    # No shared memory: the namespaces share /dev/shm, separate boards would not.
    common = ["--cluster", "netns", "--multicast", "off", "--shm", "off"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    threshold = ["--threshold", "40"] if "random_models" in str(models) else []
    before = net.counters(master_ns)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for i, ns in enumerate(slave_ns):
            procs.append(
                subprocess.Popen(
                    node_cmd(
                        ns,
                        "slave",
                        "--name",
                        f"s{i}",
                        *common,
                        "--connect",
                        endpoint,
                        "--models",
                        str(models),
                        "--threads",
                        "1",
                    ),
                    cwd=REPO,
                    env=env,
                )  # fmt: skip
            )
        master = subprocess.Popen(
            node_cmd(master_ns, "master", *common, "--listen", endpoint, "--slaves-expected", str(SLAVES),
                     "--frames", str(FRAMES), "--width", str(W), "--height", str(H), "--preload",
                     "--json", str(tmp_path / "report.json"), *threshold),
            cwd=REPO, env=env,
        )  # fmt: skip
        assert master.wait(timeout=240) == 0
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
    after = net.counters(master_ns)
    rep = json.loads((tmp_path / "report.json").read_text())
    assert rep["frames_out"] == FRAMES and rep["frames_dropped"] == 0
    assert set(rep["per_slave"]) == {f"s{i}" for i in range(SLAVES)}
    assert all(s["regions"] > 0 for s in rep["per_slave"].values())
    wire_tx, wire_rx = after[0] - before[0], after[1] - before[1]
    payload_tx = rep["bytes_total"]["master_to_slaves"]
    payload_rx = rep["bytes_total"]["slaves_to_master"]
    # Everything crossed the veth: wire bytes >= message bytes, with modest protocol overhead.
    assert payload_tx <= wire_tx <= 1.25 * payload_tx + 2_000_000
    assert payload_rx <= wire_rx <= 1.25 * payload_rx + 2_000_000
    summary = {
        "rate": rate,
        "fps": rep["fps"],
        "wire_bytes_per_frame": {"tx": wire_tx / FRAMES, "rx": wire_rx / FRAMES},
        "payload_bytes_per_frame": rep["bytes_per_frame"],
    }
    print(json.dumps(summary))
