"""Training pipeline end to end on the tiny budget, and the torch-free guard for the runtime."""

from __future__ import annotations

import ast
import importlib.util
import json
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "dvs_cluster"

HAS_TORCH = importlib.util.find_spec("torch") is not None


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_runtime_never_imports_torch() -> None:
    """Only dvs_cluster/train/ may import torch: the boards run onnxruntime only."""
    offenders = [
        str(p.relative_to(ROOT))
        for p in PKG.rglob("*.py")
        if "train" not in p.relative_to(PKG).parts[:1] and "torch" in _imports(p)
    ]
    assert offenders == []


def test_train_numpy_helpers_do_not_import_torch() -> None:
    """evaluate/cost/flowpath/dnset/card run on the ONNX files and must work without torch."""
    for name in ("evaluate", "cost", "flowpath", "dnset", "card", "data"):
        assert "torch" not in _imports(PKG / "train" / f"{name}.py"), name


@pytest.mark.train
@pytest.mark.slow
@pytest.mark.skipif(not HAS_TORCH, reason="torch not importable: install the [train] extra")
def test_tiny_budget_end_to_end(tmp_path: Path) -> None:
    """Generate -> train a few steps -> export -> onnxruntime loads them and honours the contract."""
    pytest.importorskip("dvs_cluster.data.synthetic", reason="synthetic generator not available")
    import onnxruntime as ort

    from dvs_cluster.train.cli import main

    t0 = time.time()
    rc = main(["--budget", "tiny", "--out", str(tmp_path / "models"), "--work", str(tmp_path / "work")])
    assert rc == 0
    assert time.time() - t0 < 120
    out = tmp_path / "models"
    info = json.loads((out / "training.json").read_text())
    assert set(info["stages"]) == {"seg", "flow", "dn"}
    for st in info["stages"].values():
        assert all(d < 1e-3 for d in st["onnx_max_abs_diff"].values())

    rng = np.random.default_rng(0)
    n, h, w = 2, 128, 192
    img = rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)
    seg = ort.InferenceSession(str(out / "seg.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in seg.get_inputs()] == ["image"]
    assert seg.get_inputs()[0].type == "tensor(uint8)"
    (logits,) = seg.run(["logits"], {"image": img})
    assert logits.dtype == np.float32 and logits.shape == (n, 19, h // 4, w // 4)

    flow = ort.InferenceSession(str(out / "flow.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in flow.get_inputs()] == ["key", "current"]
    fl, feats = flow.run(["flow", "features"], {"key": img, "current": img[::-1].copy()})
    assert fl.dtype == np.float32 and fl.shape == (n, 2, h // 4, w // 4)
    assert feats.dtype == np.float32 and feats.shape == (n, 64, 4, 8)

    dn = ort.InferenceSession(str(out / "dn.onnx"), providers=["CPUExecutionProvider"])
    (score,) = dn.run(["score"], {"features": feats})
    assert score.dtype == np.float32 and score.shape == (n, 1)
    assert np.isfinite(score).all() and (score >= 0).all() and (score <= 100).all()


def test_confusion_summary_names_share_and_main_confusion() -> None:
    """The model card's per-class columns: pixel share and the class a class is most often taken for."""
    from dvs_cluster.core.classes import CLASS_NAMES, NUM_CLASSES
    from dvs_cluster.train.evaluate import confusion_summary

    conf = np.zeros((NUM_CLASSES, NUM_CLASSES), np.int64)
    conf[0, 0] = 900  # road, all right
    conf[4, 3] = 70  # fence taken for wall ...
    conf[4, 4] = 20  # ... right ...
    conf[4, 2] = 10  # ... taken for building
    s = confusion_summary(conf)
    assert s["pixel_share"][CLASS_NAMES[0]] == pytest.approx(90.0)
    assert s["pixel_share"][CLASS_NAMES[4]] == pytest.approx(10.0)
    assert s["pixel_share"][CLASS_NAMES[3]] is None  # wall: no GT pixels
    assert s["confused_with"][CLASS_NAMES[4]] == [CLASS_NAMES[3], pytest.approx(70.0)]
    assert s["confused_with"][CLASS_NAMES[0]] is None  # never wrong


def test_seg_set_parallel_and_cached(tmp_path: Path) -> None:
    """Rendering in worker processes gives the same bytes; the cache returns them without rendering."""
    from dvs_cluster.train import data as D

    one = D.make_seg_set([1000, 1001], 2, 5)
    two = D.make_seg_set([1000, 1001], 2, 5, workers=2, cache=tmp_path)
    assert np.array_equal(one.images, two.images) and np.array_equal(one.labels, two.labels)
    again = D.make_seg_set([1000, 1001], 2, 5, cache=tmp_path)
    assert isinstance(again.images, np.memmap) and np.array_equal(again.labels, one.labels)


@pytest.mark.skipif(not HAS_TORCH, reason="needs the [train] extra")
def test_dn2_keep_better_keeps_whichever_ranks_the_pairs_better(tmp_path: Path) -> None:
    """seg_chain's --keep-better: a refit that ranks worse than the file it replaces leaves that file."""
    import torch

    from dvs_cluster.train import dn2
    from dvs_cluster.train.cost import session

    models = ROOT / "models"
    ev = dn2.samples(models, "dis", [9020], 8, 3, 4, 0)
    shipped = (models / "dn2_dis.onnx").read_bytes()
    torch.manual_seed(0)
    path = tmp_path / "dn2_dis.onnx"
    dn2.export(dn2.DecisionNetV2(), path, ev, {})  # a refit that learned nothing
    untrained = path.read_bytes()
    record = {"command": "refit", "eval": dn2.evaluate(session(path, 1), ev)}
    kept = dn2.keep_better(path, shipped, record, {"command": "shipped"}, ev)
    assert path.read_bytes() == shipped
    assert kept["command"] == "shipped"
    assert kept["kept_over_refit"]["spearman"] == record["eval"]["spearman"]
    assert kept["eval"]["spearman"] > record["eval"]["spearman"] + 0.2
    # The other way round: the shipped net as the refit replaces the untrained file.
    path.write_bytes(shipped)
    good = {"command": "shipped", "eval": dn2.evaluate(session(path, 1), ev)}
    kept = dn2.keep_better(path, untrained, good, {"command": "refit"}, ev)
    assert path.read_bytes() == shipped
    assert kept["command"] == "shipped"
    assert kept["replaced"]["spearman"] == record["eval"]["spearman"]
