"""Helpers for the cluster tests: models to run on, free ports, a CLI process launcher."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def make_random_models(out: Path, seed: int = 0) -> Path:
    """
    Tiny random-weight ONNX models that follow the model I/O contract (docs/DESIGN.md).

    Stand-ins while the trained models are not shipped: seg = 1x1 conv on 4x4-pooled RGB; flow = small
    conv of the pooled difference, features = mean |difference| per channel; dn = 100 - 4 * mean.
    """
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto as T
    from onnx import helper as h
    from onnx import numpy_helper as nh

    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)

    def save(nodes: list, inputs: list, outputs: list, inits: list, name: str) -> None:
        graph = h.make_graph(nodes, name, inputs, outputs, inits)
        model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
        model.ir_version = 8
        onnx.checker.check_model(model)
        onnx.save(model, str(out / f"{name}.onnx"))

    def img(n: str) -> object:
        return h.make_tensor_value_info(n, T.UINT8, ["N", "H", "W", 3])

    w = nh.from_array((rng.standard_normal((19, 3, 1, 1)) * 0.05).astype(np.float32), "w")
    save(
        [
            h.make_node("Cast", ["image"], ["f"], to=T.FLOAT),
            h.make_node("Transpose", ["f"], ["t"], perm=[0, 3, 1, 2]),
            h.make_node("AveragePool", ["t"], ["p"], kernel_shape=[4, 4], strides=[4, 4]),
            h.make_node("Conv", ["p", "w"], ["logits"]),
        ],
        [img("image")],
        [h.make_tensor_value_info("logits", T.FLOAT, ["N", 19, "h", "w"])],
        [w],
        "seg",
    )
    wf = nh.from_array((rng.standard_normal((2, 3, 1, 1)) * 0.02).astype(np.float32), "wf")
    w64 = nh.from_array(np.full((64, 3, 1, 1), 1 / 3, np.float32), "w64")
    shp = nh.from_array(np.array([1, 64, 4, 8], np.int64), "shp")
    save(
        [
            h.make_node("Cast", ["key"], ["kf"], to=T.FLOAT),
            h.make_node("Cast", ["current"], ["cf"], to=T.FLOAT),
            h.make_node("Sub", ["cf", "kf"], ["d"]),
            h.make_node("Transpose", ["d"], ["dt"], perm=[0, 3, 1, 2]),
            h.make_node("AveragePool", ["dt"], ["dp"], kernel_shape=[4, 4], strides=[4, 4]),
            h.make_node("Conv", ["dp", "wf"], ["flow"]),
            h.make_node("Abs", ["dp"], ["ad"]),
            h.make_node("Conv", ["ad", "w64"], ["a64"]),
            h.make_node("GlobalAveragePool", ["a64"], ["g"]),
            h.make_node("Expand", ["g", "shp"], ["features"]),
        ],
        [img("key"), img("current")],
        [
            h.make_tensor_value_info("flow", T.FLOAT, ["N", 2, "h", "w"]),
            h.make_tensor_value_info("features", T.FLOAT, ["N", 64, 4, 8]),
        ],
        [wf, w64, shp],
        "flow",
    )
    c = nh.from_array(np.array(4.0, np.float32), "c")
    hundred = nh.from_array(np.array(100.0, np.float32), "hundred")
    ax = nh.from_array(np.array([1], np.int64), "ax")
    save(
        [
            h.make_node("ReduceMean", ["features"], ["m"], axes=[1, 2, 3], keepdims=0),
            h.make_node("Mul", ["m", "c"], ["mc"]),
            h.make_node("Sub", ["hundred", "mc"], ["s"]),
            h.make_node("Unsqueeze", ["s", "ax"], ["score"]),
        ],
        [h.make_tensor_value_info("features", T.FLOAT, ["N", 64, 4, 8])],
        [h.make_tensor_value_info("score", T.FLOAT, ["N", 1])],
        [c, hundred, ax],
        "dn",
    )
    # DN v2 stand-ins (one per flow kind): 100 - 4 * mean(cues) - 10 * age.
    ten = nh.from_array(np.array(10.0, np.float32), "ten")
    for name in ("dn2_dis", "dn2_flownet"):
        save(
            [
                h.make_node("ReduceMean", ["cues"], ["m"], axes=[1, 2, 3], keepdims=0),
                h.make_node("Mul", ["m", "c"], ["mc"]),
                h.make_node("Sub", ["hundred", "mc"], ["s"]),
                h.make_node("Unsqueeze", ["s", "ax"], ["s1"]),
                h.make_node("Mul", ["age", "ten"], ["a10"]),
                h.make_node("Sub", ["s1", "a10"], ["score"]),
            ],
            [
                h.make_tensor_value_info("cues", T.FLOAT, ["N", 8, 4, 8]),
                h.make_tensor_value_info("age", T.FLOAT, ["N", 1]),
            ],
            [h.make_tensor_value_info("score", T.FLOAT, ["N", 1])],
            [c, hundred, ax, ten],
            name,
        )
    return out


def model_dir(tmp_factory: pytest.TempPathFactory) -> Path:
    """The shipped models when present, else random-weight stand-ins (the cluster logic is the same)."""
    from dvs_cluster.inference import ModelError, resolve_model_dir

    try:
        d = resolve_model_dir()
        if all((d / f).is_file() for f in ("seg.onnx", "flow.onnx", "dn.onnx", "dn2_dis.onnx")):
            return d
    except ModelError:
        pass
    return make_random_models(tmp_factory.mktemp("random_models"))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def cli(*args: str, **kwargs: object) -> subprocess.Popen[bytes]:
    """Start ``python -m dvs_cluster.cli ARGS`` (one cluster process)."""
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    return subprocess.Popen(  # type: ignore[call-overload]
        [sys.executable, "-m", "dvs_cluster.cli", *args], cwd=REPO, env=env, **kwargs
    )
