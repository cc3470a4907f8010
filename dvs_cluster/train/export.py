"""
ONNX export of the three nets (opset 17, dynamic N/H/W) with a torch-vs-onnxruntime check.

The legacy TorchScript exporter is used (dynamo=False): it needs no onnxscript and keeps the graphs
small and free of shape-specialisation; metadata_props record what produced each file.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from dvs_cluster import __version__
from dvs_cluster.core.classes import CLASS_NAMES

OPSET = 17

SEG_IO = (["image"], ["logits"])
FLOW_IO = (["key", "current"], ["flow", "features"])
DN_IO = (["features"], ["score"])


def _dynamic_axes(kind: str) -> dict[str, dict[int, str]]:
    img = {0: "N", 1: "H", 2: "W"}
    grid = {0: "N", 2: "H4", 3: "W4"}
    if kind == "seg":
        return {"image": img, "logits": grid}
    if kind == "flow":
        return {"key": img, "current": img, "flow": grid, "features": {0: "N"}}
    return {"features": {0: "N"}, "score": {0: "N"}}


def _io(kind: str) -> tuple[list[str], list[str]]:
    return {"seg": SEG_IO, "flow": FLOW_IO, "dn": DN_IO}[kind]


def export(
    model: nn.Module,
    kind: str,
    path: Path,
    example: tuple[torch.Tensor, ...],
    metadata: dict[str, str] | None = None,
) -> dict[str, float]:
    """Export ``model`` (kind seg|flow|dn) to ``path``; return max |onnx - torch| per output."""
    model = model.eval().cpu()
    inputs, outputs = _io(kind)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            example,
            str(path),
            dynamo=False,
            opset_version=OPSET,
            input_names=inputs,
            output_names=outputs,
            dynamic_axes=_dynamic_axes(kind),
            do_constant_folding=True,
        )
    proto = onnx.load(str(path))
    meta = {
        "dvs_cluster_version": __version__,
        "model": kind,
        "opset": str(OPSET),
        "inputs": ",".join(inputs),
        "outputs": ",".join(outputs),
    }
    if kind in ("seg", "flow"):
        meta["output_stride"] = "4"
        meta["input_format"] = "uint8 NHWC RGB, normalised inside the graph; H, W multiples of 32"
    if kind == "seg":
        meta["classes"] = ",".join(CLASS_NAMES)
    meta.update(metadata or {})
    del proto.metadata_props[:]
    for k, v in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))
    return check(model, path, example)


def check(model: nn.Module, path: Path, example: tuple[torch.Tensor, ...]) -> dict[str, float]:
    """Max abs difference per output between PyTorch and onnxruntime on ``example``."""
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {i.name: t.numpy() for i, t in zip(sess.get_inputs(), example, strict=True)}
    got = sess.run(None, feeds)
    with torch.no_grad():
        ref = model(*example)
    refs = ref if isinstance(ref, tuple) else (ref,)
    return {
        o.name: float(np.abs(g - r.numpy()).max())
        for o, g, r in zip(sess.get_outputs(), got, refs, strict=True)
    }
