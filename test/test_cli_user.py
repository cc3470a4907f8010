"""
The CLI and a hand-started cluster as a new user meets them (issue 20), one test per numbered point.

Real processes (``python -m dvs_cluster.cli`` = ``dvs-cluster``), real Zenoh on loopback, the command
lines of the issue, ports chosen free at run time. The hand-started cluster (a master and two slaves in
separate processes, the master on a terminal) runs once per module and serves several points.
"""

from __future__ import annotations

import json
import os
import pty
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from cluster_support import REPO, cli, free_port, model_dir
from runtime_support import write_video

W, H = 256, 128  # small frames: the cluster tests are about the console, not the nets
ONE_LINE_ERROR = re.compile(r"^dvs-cluster: error: [^\n]+\n$")


def run_cli(*args: str, timeout: float = 120, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """One ``dvs-cluster`` process to its end; stdout and stderr captured (not a terminal)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "dvs_cluster.cli", *args],
        cwd=cwd or REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assert_one_line_error(r: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert r.returncode == 2, r.stderr[-3000:]
    assert ONE_LINE_ERROR.match(r.stderr), r.stderr[-3000:]
    assert "Traceback" not in r.stderr
    for n in needles:
        assert n in r.stderr, (n, r.stderr)


class Lines:
    """A process's output read on a thread (from a pipe or a pty), searchable while it runs."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.text = ""
        self._lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.fd, 65536)
            except OSError:  # pty closed
                return
            if not data:
                return
            with self._lock:
                self.text += data.decode(errors="replace")

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                m = re.search(pattern, self.text)
            if m:
                return m
            time.sleep(0.1)
        raise AssertionError(f"no {pattern!r} within {timeout} s in:\n{self.text[-3000:]}")


def start(*args: str, tty: bool = False) -> tuple[subprocess.Popen[bytes], Lines]:
    """Start ``dvs-cluster ARGS`` with stdout+stderr on a pipe, or on a pseudo-terminal (``tty``)."""
    if tty:
        master_fd, slave_fd = pty.openpty()
        p = cli(*args, stdin=subprocess.DEVNULL, stdout=slave_fd, stderr=slave_fd)
        os.close(slave_fd)
        return p, Lines(master_fd)
    p = cli(*args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert p.stdout is not None
    return p, Lines(p.stdout.fileno())


def stop(*procs: subprocess.Popen[bytes]) -> None:
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return model_dir(tmp_path_factory)


@pytest.fixture()
def held_port() -> Iterator[int]:
    """A loopback port someone else listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


# -- 1. port already in use ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cmd",
    [
        ["master", "--listen", "tcp/127.0.0.1:{port}", "--frames", "2"],
        ["run", "--listen", "tcp/127.0.0.1:{port}", "--frames", "2"],
        ["slave", "--name", "b", "--listen", "tcp/127.0.0.1:{port}"],
    ],
)
def test_1_port_in_use_is_one_line_exit_2(cmd: list[str], held_port: int) -> None:
    r = run_cli(*(a.format(port=held_port) for a in cmd), timeout=60)
    assert_one_line_error(
        r, f"tcp/127.0.0.1:{held_port}", "port in use: pick another with --listen tcp/0.0.0.0:PORT"
    )
    assert "Address already in use" in r.stderr  # what nodes/bench.py looks for to retry on another port


# -- 2. endpoint without a protocol ----------------------------------------------------------------------


def test_2_endpoint_without_protocol_is_one_line_exit_2() -> None:
    r = run_cli("slave", "--name", "b", "--connect", "127.0.0.1:7447")
    assert_one_line_error(r, "--connect", "no protocol", "tcp/127.0.0.1:7447")
    r = run_cli("master", "--listen", "0.0.0.0:7447")
    assert_one_line_error(r, "--listen", "tcp/0.0.0.0:7447")


# -- 3. a slave says where it stands ---------------------------------------------------------------------


def test_3_slave_with_no_master_says_so_within_10_s(models: Path) -> None:
    port = free_port()  # nothing listens there
    t0 = time.monotonic()
    p, out = start(
        "slave", "--name", "b", "--connect", f"tcp/127.0.0.1:{port}", "--models", str(models), "-v"
    )
    try:
        out.wait_for(rf"slave b: connecting to tcp/127\.0\.0\.1:{port} \(cluster default\)", 10)
        out.wait_for(rf"no master at tcp/127\.0\.0\.1:{port} yet", 10 - (time.monotonic() - t0))
        assert time.monotonic() - t0 < 10
        assert "ready" not in out.text  # -v used to claim "ready" with no master anywhere
    finally:
        stop(p)


def test_3_impossible_address_is_refused() -> None:
    r = run_cli("slave", "--name", "b", "--connect", "tcp/999.1.1.1:7447")
    assert_one_line_error(r, "999.1.1.1 is not an IPv4 address")


@pytest.fixture(scope="module")
def hand_cluster(models: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """
    Two slaves started by hand, then a master on a terminal with ``--frames 10000``; one slave is
    stopped mid-run, then the master gets SIGINT. Returns every process's output and the master's JSON.
    """
    tmp = tmp_path_factory.mktemp("hand")
    frames = tmp / "frames"  # a fast source: the queue stays full, so frames are in flight at the stop
    frames.mkdir()
    for i in range(4):
        img = np.full((H, W, 3), 40 * i, np.uint8)
        cv2.rectangle(img, (10 + 20 * i, 20), (90 + 20 * i, 90), (30, 200, 60), -1)
        cv2.imwrite(str(tmp / f"u{i}.png"), img)
    for i in range(3000):
        (frames / f"{i:05d}.png").symlink_to(tmp / f"u{i % 4}.png")
    port, cluster = free_port(), f"hand_{uuid.uuid4().hex[:6]}"
    ep = f"tcp/127.0.0.1:{port}"
    common = ["--cluster", cluster, "--models", str(models), "--threads", "1"]
    s1, out1 = start("slave", "--name", "b1", "--connect", ep, *common)
    s2, out2 = start("slave", "--name", "b2", "--connect", ep, *common)
    m = m_out = None
    try:
        out1.wait_for("no master at", 15)
        m, m_out = start(
            "master", "--listen", ep, "--cluster", cluster, "--slaves-expected", "2", "--frames", "10000",
            "--source", str(frames), "--width", str(W), "--height", str(H), "--json", str(tmp / "m.json"),
            tty=True,
        )  # fmt: skip
        m_out.wait_for(r"2 slave\(s\) joined", 90)
        out1.wait_for("connected to master", 30)
        m_out.wait_for(r"frame ([2-9]|\d\d+)\b", 60)  # the progress line on the terminal
        s2.send_signal(signal.SIGINT)
        assert s2.wait(timeout=20) == 0
        m_out.wait_for(r"slave b2 left \(1 alive\)", 30)
        m_out.wait_for(r"frame \d+\S*  .* slaves 1", 30)
        m.send_signal(signal.SIGINT)
        rc = m.wait(timeout=60)
        m_out.wait_for(r"frame latency", 10)
        out1.wait_for("master left", 30)
        return {
            "master_rc": rc,
            "master": m_out.text,
            "slave1": out1.text,
            "slave2": out2.text,
            "report": json.loads((tmp / "m.json").read_text()),
        }
    finally:
        stop(*(p for p in (s1, s2, m) if p is not None))


@pytest.mark.slow
def test_3_hand_started_slaves_say_connected_and_master_left(hand_cluster: dict[str, object]) -> None:
    s1, s2 = str(hand_cluster["slave1"]), str(hand_cluster["slave2"])
    for text, name in ((s1, "b1"), (s2, "b2")):
        assert f"slave {name}: connecting to tcp/127.0.0.1:" in text
        assert re.search(rf"slave {name}: connected to master \S+ \(cluster hand_\w+, run \w+\)", text), text
    assert s1.index("no master at") < s1.index("connected to master") < s1.index("master left")
    assert "slave b2: stopped after" in s2  # SIGINT: says so, exit 0


# -- 4. the master while it waits and while it runs ------------------------------------------------------


def test_4_master_with_no_slave_says_it_waits_then_fails_exit_2() -> None:
    port = free_port()
    r = run_cli(
        "master",
        "--listen",
        f"tcp/127.0.0.1:{port}",
        "--slaves-expected",
        "1",
        "--wait",
        "3",
        "--frames",
        "2",
    )
    assert r.returncode == 2, r.stderr
    lines = r.stderr.splitlines()
    assert (
        f"master: listening on tcp/127.0.0.1:{port} (cluster default), waiting for 1 slave(s) (0 joined)"
        in lines
    )
    assert lines[-1].startswith(
        "dvs-cluster: error: only 0 of 1 slave(s) joined within 3 s (cluster default)"
    )
    assert "Traceback" not in r.stderr


@pytest.mark.slow
def test_4_master_progress_on_a_terminal_and_peer_lines(hand_cluster: dict[str, object]) -> None:
    text = str(hand_cluster["master"])
    assert "master: listening on tcp/127.0.0.1:" in text and "waiting for 2 slave(s)" in text
    assert re.search(r"\r\x1b\[K  frame \d+/10000 +[\d.]+ fps  in \d+  dropped \d+  slaves 2", text)
    assert "master: slave b2 left (1 alive)" in text


@pytest.mark.slow
def test_4_run_progress_only_on_a_terminal_and_quiet_with_q(models: Path, tmp_path: Path) -> None:
    """On a terminal: the progress line; with -q: nothing (a pipe: test_9_run_clears_...)."""
    args = ["run", "--slaves", "1", "--frames", "3", "--width", str(W), "--height", str(H)]
    args += ["--models", str(models), "--threads", "1"]
    p, out = start(*args, tty=True)
    assert p.wait(timeout=180) == 0
    out.wait_for("frame latency", 10)
    assert re.search(r"\r\x1b\[K  frame 3/3 ", out.text), out.text
    p, out = start(*args, "-q", tty=True)
    assert p.wait(timeout=180) == 0
    time.sleep(0.5)
    assert "frame" not in out.text and "waiting" not in out.text, out.text


# -- 5. plan -------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_5_plan_lists_profiles_and_gives_one_answer() -> None:
    from dvs_cluster.sim.profiles import board_names

    r = run_cli("plan", "--help")
    assert r.returncode == 0
    help_text = " ".join(r.stdout.split())
    assert all(name in help_text for name in board_names())
    r = run_cli("plan", "--target-fps", "30", "--profile", "jetson-orin-nano", "--network", "1gbit")
    assert r.returncode == 0, r.stderr
    answers = [ln for ln in r.stdout.splitlines() if ln.startswith("ANSWER")]
    single = float(re.search(r"Single on one board: ([\d.]+) fps", r.stdout).group(1))  # type: ignore[union-attr]
    assert len(answers) == 1
    assert ("no cluster" in answers[0]) == (single >= 30), r.stdout  # the answer agrees with Single's fps
    assert "ASSUMPTION: ASSUMPTION" not in r.stdout
    assert len(r.stdout.splitlines()) < 20 and "--table" in r.stdout  # no 80-row table by default
    r = run_cli("plan", "--target-fps", "30", "--max-slaves", "3", "--variants", "fifo,default", "--table")
    assert r.returncode == 0
    assert len([ln for ln in r.stdout.splitlines() if re.match(r"(fifo|default) +\d", ln)]) == 6


# -- 6. one set of option checks -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cmd",
    [
        ["segment", "--threshold", "150"],
        ["segment", "--threshold", "-5"],
        ["bench", "--threshold", "150"],
        ["run", "--threshold", "150"],
        ["master", "--threshold", "150"],
    ],
)
def test_6_threshold_checked_alike_everywhere(cmd: list[str]) -> None:
    r = run_cli(*cmd, "--frames", "2")
    assert_one_line_error(r, "argument --threshold: expected a number in 0..100")


def test_6_overlap_and_connect_checked_alike() -> None:
    for cmd in (["segment", "--overlap", "-1"], ["master", "--overlap", "-1"], ["run", "--overlap", "-1"]):
        assert_one_line_error(run_cli(*cmd), "argument --overlap: expected an integer >= 0")
    for cmd in (["master"], ["run"], ["slave", "--name", "b"]):
        assert_one_line_error(run_cli(*cmd, "--connect", "tcp/10.0.0.1"), "expected HOST:PORT")


# -- 7. tiny frame sizes -----------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["segment", "run"])
def test_7_tiny_frame_is_one_line_exit_2(command: str) -> None:
    r = run_cli(command, "--width", "7", "--height", "5", "--frames", "2")
    assert_one_line_error(r, "--width", "too small")
    r = run_cli(command, "--width", "64", "--height", "32", "--rows", "4", "--frames", "2")
    assert_one_line_error(r, "--rows 4 --cols 2", "64x32")


# -- 8. --save-overlay means the same everywhere ---------------------------------------------------------


def _video_frames(path: Path) -> int:
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


def test_8_segment_save_overlay_suffix_rule(tmp_path: Path) -> None:
    common = ["segment", "--frames", "2", "--width", str(W), "--height", str(H), "--threads", "1", "-q"]
    r = run_cli(*common, "--save-overlay", str(tmp_path / "x.mp4"))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "x.mp4").is_file() and _video_frames(tmp_path / "x.mp4") == 2
    r = run_cli(*common, "--save-overlay", str(tmp_path / "ov"))
    assert r.returncode == 0, r.stderr
    assert sorted(f.name for f in (tmp_path / "ov").iterdir()) == ["000000.png", "000001.png"]
    assert "a video if PATH ends in .mp4 or .avi" in " ".join(run_cli("segment", "--help").stdout.split())


@pytest.mark.slow
def test_8_run_save_overlay_suffix_rule(models: Path, tmp_path: Path) -> None:
    common = ["run", "--slaves", "1", "--frames", "2", "--width", str(W), "--height", str(H)]
    common += ["--models", str(models), "--threads", "1", "-q"]
    # run already wrote a video for .mp4 (segment did not); the directory case is the same helper.
    assert run_cli(*common, "--save-overlay", str(tmp_path / "x.mp4")).returncode == 0
    assert _video_frames(tmp_path / "x.mp4") == 2
    assert "a video if PATH ends in .mp4 or .avi" in " ".join(run_cli("run", "--help").stdout.split())


# -- 9. stale outputs ----------------------------------------------------------------------------------


def test_9_segment_clears_its_old_frames_and_says_so(tmp_path: Path) -> None:
    out = tmp_path / "o"
    common = ["segment", "--width", str(W), "--height", str(H), "--threads", "1", "--out", str(out)]
    assert run_cli(*common, "--frames", "5").returncode == 0
    (out / "labels" / "notes.txt").write_text("mine")
    (out / "labels" / "keep.png").write_bytes(b"not a frame of ours")
    r = run_cli(*common, "--frames", "2")
    assert r.returncode == 0, r.stderr
    assert f"{out / 'labels'}: removed 5 frame PNG(s) of an earlier run" in r.stderr
    names = sorted(f.name for f in (out / "labels").iterdir())
    assert names == ["000000.png", "000001.png", "keep.png", "notes.txt"]
    assert len(list((out / "gt").iterdir())) == 2


@pytest.mark.slow
def test_9_run_clears_its_old_frames_and_says_so(models: Path, tmp_path: Path) -> None:
    common = ["run", "--slaves", "1", "--width", str(W), "--height", str(H), "--models", str(models)]
    common += [
        "--threads",
        "1",
        "--save-labels",
        str(tmp_path / "labels"),
        "--json",
        str(tmp_path / "r.json"),
    ]
    assert run_cli(*common, "--frames", "4").returncode == 0
    r = run_cli(*common, "--frames", "2")
    assert r.returncode == 0, r.stderr
    assert "removed 4 frame PNG(s) of an earlier run" in r.stderr
    # stderr is a pipe here: the event lines (point 4) but no progress line
    assert "\r" not in r.stderr and "waiting for 1 slave(s)" in r.stderr
    assert (
        len(list((tmp_path / "labels").iterdir()))
        == json.loads((tmp_path / "r.json").read_text())["frames_out"]
    )


# -- 10. an interrupted master accounts for every frame --------------------------------------------------


@pytest.mark.slow
def test_10_interrupted_master_summary_adds_up(hand_cluster: dict[str, object]) -> None:
    assert hand_cluster["master_rc"] == 130
    rep = hand_cluster["report"]
    assert isinstance(rep, dict)
    fin, fout, drop, flight = (
        rep[k] for k in ("frames_in", "frames_out", "frames_dropped", "frames_pending")
    )
    assert fin == fout + drop + flight and fin > 0
    assert flight > 0  # a fast source keeps the queue full: frames are in flight at the stop
    m = re.search(
        r"frames in (\d+)  out (\d+)  dropped (\d+)  (?:in flight (\d+) at stop  )?",
        str(hand_cluster["master"]),
    )
    assert m is not None
    assert [int(g or 0) for g in m.groups()] == [fin, fout, drop, flight]


def test_10_sigint_while_waiting_says_so() -> None:
    port = free_port()
    p, out = start("master", "--listen", f"tcp/127.0.0.1:{port}", "--frames", "2")
    try:
        out.wait_for("waiting for 1 slave", 60)
        p.send_signal(signal.SIGINT)
        assert p.wait(timeout=30) == 130
        out.wait_for(r"master: interrupted while waiting for 1 slave\(s\) \(0 joined\)", 5)
    finally:
        stop(p)


# -- 11. bench says what it runs and where it wrote ------------------------------------------------------


def test_11_bench_names_its_sweep_and_files(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    r = run_cli(
        "bench", "--configs", "single", "--frames", "2", "--width", str(W), "--height", str(H),
        "--threads", "1", "--json", "b.json", "--plot", "sweep.png", cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    from dvs_cluster.core.flow import canonical_flow_spec
    from dvs_cluster.inference import DEFAULT_FLOW

    flow = canonical_flow_spec(DEFAULT_FLOW)
    want = f"threshold sweep 70, 80, 85, 90, 95 of Single for flow {flow} (the default; --sweep ''"
    assert want in r.stderr
    assert "wrote b.json" in r.stderr and "wrote sweep.png" in r.stderr
    assert (tmp_path / "b.json").is_file() and (tmp_path / "sweep.png").is_file()
    assert "default 70,80,85,90,95" in " ".join(run_cli("bench", "--help").stdout.split())


def test_11_sweep_labels_never_overlap() -> None:
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dvs_cluster.bench import place_labels

    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    # The sweep of the issue: 30 and 50 a hair apart (they printed as "3050"), then a spread.
    pts = [
        ("30", 41.9, 24.5, "tab:blue"),
        ("50", 41.86, 24.6, "tab:blue"),
        ("60", 38.9, 27.3, "tab:blue"),
        ("70", 36.4, 28.4, "tab:blue"),
        ("90", 11.8, 51.1, "tab:blue"),
    ]
    ax.plot([p[1] for p in pts], [p[2] for p in pts], "o-")
    drawn = place_labels(fig, ax, pts)
    r = fig.canvas.get_renderer()
    boxes = [a.get_window_extent(r) for a in drawn]
    assert all(not a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1 :])
    assert {a.get_text() for a in drawn} >= {"30", "50", "60", "70", "90"} - {"50"}  # at most one left out
    plt.close(fig)


# -- 12. fast help, quiet re-runs, no OpenCV noise ---------------------------------------------------------


def test_12_train_help_is_fast_and_named() -> None:
    t0 = time.monotonic()
    r = run_cli("train", "--help")
    assert r.returncode == 0 and r.stdout.startswith("usage: dvs-cluster train"), r.stdout[:200]
    assert time.monotonic() - t0 < 10
    code = (
        "import sys\nfrom dvs_cluster.cli import main\ntry:\n    main(['train', '--help'])\n"
        "except SystemExit:\n    pass\nprint('torch' in sys.modules, file=sys.stderr)"
    )
    r2 = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r2.stderr.strip().endswith("False"), r2.stderr  # the help does not import torch


def test_12_train_help_lists_the_real_budgets() -> None:
    pytest.importorskip("torch")
    from dvs_cluster.train.args import BUDGET_NAMES
    from dvs_cluster.train.cli import BUDGETS

    assert sorted(BUDGET_NAMES) == sorted(BUDGETS)


def test_12_venv_reinstalls_only_when_dependencies_change(tmp_path: Path) -> None:
    """``scripts/_venv.sh`` against a stand-in venv whose python logs its pip calls."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    log = tmp_path / "pip.log"
    (venv / "bin" / "python").write_text(f'#!/bin/sh\necho "$@" >> {log}\n')
    (venv / "bin" / "dvs-cluster").write_text("#!/bin/sh\n")
    for f in ("python", "dvs-cluster"):
        (venv / "bin" / f).chmod(0o755)
    env = {**os.environ, "DVS_VENV": str(venv)}

    def source(extras: str) -> str:
        cmd = f'source scripts/_venv.sh "{extras}"'
        r = subprocess.run(["bash", "-c", cmd], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        return r.stderr

    source("train,dev")
    first = log.read_text()
    assert "install -q -e .[train,dev]" in first
    err = source("train,dev")
    assert log.read_text() == first and "dependencies unchanged" in err  # no pip at all the second time
    source("")  # runtime only: already there
    assert log.read_text() == first
    stamp = venv / ".dvs_cluster-install"
    stamp.write_text("0" * 64 + " train,dev\n")  # as if setup.py had changed
    source("")
    assert log.read_text().count("install -q -e") == 2


def test_12_camera_error_has_no_opencv_warnings() -> None:
    r = run_cli("segment", "--source", "camera:9", "--frames", "1")
    assert_one_line_error(r, "camera 9 cannot be opened")
    assert "WARN" not in r.stderr


# -- 13. the README's data and licence paragraph ---------------------------------------------------------


def test_13_readme_licence_and_data_is_true() -> None:
    text = (REPO / "README.md").read_text()
    section = text.split("## Licence and data", 1)[1]
    assert "trained only on procedurally generated data" not in text
    for needle in ("CamVid", "Brostow", "research", "Apache-2.0", "redistribut"):
        assert needle in section, needle
    assert "CamVid" in text.split("## Using it", 1)[1].split("## On a ROS 2 machine", 1)[0]


# -- 14. out-of-domain note ---------------------------------------------------------------------------


def test_14_real_source_gets_a_one_time_domain_note(tmp_path: Path) -> None:
    video = write_video(tmp_path / "v.mp4", frames=3)
    common = ["segment", "--width", str(W), "--height", str(H), "--threads", "1"]
    r = run_cli(*common, "--source", str(video))
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("trained on CamVid street scenes") == 1
    r = run_cli(*common, "--frames", "2")  # synthetic: no note
    assert r.returncode == 0 and "CamVid" not in r.stderr
    r = run_cli(*common, "--source", str(video), "-q")
    assert r.returncode == 0 and r.stderr == ""
