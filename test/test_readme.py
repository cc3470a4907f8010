"""
The README's *Using it* commands run as written, read from the README itself so it cannot drift.

Each line of the fenced block is run in a scratch directory (its relative outputs land there), changed
only where this machine differs from the reader's, and each change is listed in :data:`SUBSTITUTIONS`:
no camera here (``camera:0`` -> the ``drive.mp4`` the test writes), no boards (the endpoints -> a free
loopback port, the slave line started twice for ``--slaves-expected 2``), no GPU build of onnxruntime
(``cuda,cpu`` -> ``cpu``), fewer frames, and the tiny training budget instead of the hour-long one.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from cluster_support import REPO, free_port
from runtime_support import shipped_model_dir, write_video

pytestmark = pytest.mark.slow

FRAMES = "3"
#: (pattern, replacement) applied to every README command, in order; ``{port}`` is a free port.
SUBSTITUTIONS = [
    (r"camera:0", "drive.mp4"),
    (r"tcp/0\.0\.0\.0:7447", "tcp/127.0.0.1:{port}"),
    (r"tcp/192\.168\.1\.10:7447", "tcp/127.0.0.1:{port}"),
    (r"--frames \d+", f"--frames {FRAMES}"),
    (r"--budget full", "--budget tiny"),
]


def readme_commands() -> list[list[str]]:
    """The ``dvs-cluster`` lines of the first fenced block under ``## Using it``, comments dropped."""
    text = (REPO / "README.md").read_text()
    section = text.split("## Using it", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block, "README: no ```bash block under ## Using it"
    cmds = [shlex.split(line, comments=True) for line in block.group(1).splitlines()]
    cmds = [c for c in cmds if c]
    assert all(c[0] == "dvs-cluster" for c in cmds), cmds
    return cmds


def adapt(cmd: list[str], port: int) -> list[str]:
    """The README command with this machine's :data:`SUBSTITUTIONS` (and --frames where it would run on)."""
    line = shlex.join(cmd)
    for pattern, repl in SUBSTITUTIONS:
        line = re.sub(pattern, repl.format(port=port), line)
    out = shlex.split(line)
    if out[1] in ("segment", "run", "master") and "--frames" not in out:
        out += ["--frames", FRAMES]
    if "--providers" in out and not _cuda():
        i = out.index("--providers")
        out[i + 1] = ",".join(p for p in out[i + 1].split(",") if p not in ("cuda", "tensorrt")) or "cpu"
    return out


def _cuda() -> bool:
    import onnxruntime as ort

    return "CUDAExecutionProvider" in ort.get_available_providers()


def popen(cmd: list[str], cwd: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "dvs_cluster.cli", *cmd[1:]],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(p: subprocess.Popen[str], cmd: list[str], timeout: float = 600) -> str:
    out, err = p.communicate(timeout=timeout)
    assert p.returncode == 0, f"{shlex.join(cmd)} -> {p.returncode}\n{err[-3000:]}"
    return out + err


def test_readme_block_parses_into_every_command() -> None:
    names = [c[1] for c in readme_commands()]
    assert names == ["segment", "run", "master", "slave", "bench", "plan", "train"]


def test_readme_commands_run_as_written(tmp_path: Path) -> None:
    shipped_model_dir()
    write_video(tmp_path / "drive.mp4", frames=int(FRAMES) + 1)
    port = free_port()
    cmds = {c[1]: adapt(c, port) for c in readme_commands()}

    for name in ("segment", "run", "bench", "plan"):  # the train line: its own test below
        finish(popen(cmds[name], tmp_path), cmds[name])
    assert len(list((tmp_path / "out" / "drive" / "labels").glob("*.png"))) == int(FRAMES)
    assert (tmp_path / "out" / "live.mp4").is_file()  # the suffix rule: a video, not a directory
    assert (tmp_path / "bench.json").is_file() and (tmp_path / "sweep.png").is_file()

    # A hand-started cluster: the master line, and the slave line on two "boards".
    master = popen(cmds["master"], tmp_path)
    slave = cmds["slave"]
    slaves = [popen(slave, tmp_path), popen([a.replace("board1", "board2") for a in slave], tmp_path)]
    try:
        finish(master, cmds["master"])
    finally:
        for s in slaves:
            s.terminate()
        logs = [finish(s, slave, timeout=30) for s in slaves]
    assert (tmp_path / "report.json").is_file()
    # "connected to master HOST (...)", or "connected to the master of cluster C" when the master's
    # first heartbeat (which names it) had not come before the slave said so: a short run under load.
    assert all(re.search(r"connected to (the )?master", log) for log in logs), logs


@pytest.mark.train
def test_readme_train_command_runs(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    cmd = adapt(next(c for c in readme_commands() if c[1] == "train"), 0)
    finish(popen(cmd, tmp_path), cmd, timeout=900)
    assert all((tmp_path / "build" / "synth" / f).is_file() for f in ("seg.onnx", "flow.onnx", "dn.onnx"))
